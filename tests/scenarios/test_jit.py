"""JIT tools end to end: a scripted toolmaker proposes, validates, registers and calls a tool;
the tool's syscalls are the process's own (decided, audited, parked for approval); hostile
tools are stopped with a clear error and an audit record while the host carries on."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

import alos
from alos import limits
from tests.support import grants, write_script

pytestmark = pytest.mark.slow

COUNT = """
export async function run(args: { path: string }, libos: Libos) {
  const text: string = await libos.fs.read(args.path);
  return { lines: text.split("\\n").length - 1 };
}
"""
SCHEMA = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}


def maker(rt: alos.Runtime, ws: Path, turns: list[dict[str, Any]], **kw: tuple[str, ...]) -> int:
    """Spawn a toolmaker in ``ws`` with a script of ``turns`` and grants ``allow/ask/deny``."""
    model = write_script(ws.parent / f"script-{len(list(ws.parent.iterdir()))}.jsonl", turns)
    kw.setdefault("allow", ("fs:*=read,list", "tool:proc/*=register"))
    return asyncio.run(rt.spawn("toolmaker", "make a tool", workspace=str(ws), model=model, grants=grants(ws, **kw)))


def call(tool: str, **arguments: Any) -> dict[str, Any]:
    return {"name": tool, "arguments": arguments}


def make(name: str, source: str, schema: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The turns that propose, validate and register tool ``name``."""
    return [
        {"tool_calls": [call("tool_propose", name=name, source=source, description=f"the {name} tool",
                             parameters=schema or {"type": "object"})]},
        {"tool_calls": [call("tool_validate", name=name)]},
        {"tool_calls": [call("tool_register", name=name)]},
    ]  # fmt: skip


def results(rt: alos.Runtime, pid: int) -> list[str]:
    return [str(m["content"]) for m in rt.context(pid) if m.get("role") == "tool"]


def test_a_toolmaker_writes_validates_registers_and_calls_its_tool(runtime: alos.Runtime, ws: Path) -> None:
    turns = [*make("count_lines", COUNT, SCHEMA), {"tool_calls": [call("count_lines", path="README.md")]},
             {"tool_calls": [call("proc_exit", status="ok", result="done")]}]  # fmt: skip
    pid = maker(runtime, ws, turns)
    asyncio.run(runtime.run())
    assert runtime.kernel.jit.broker == "used"  # Deno asked alos, its permission broker
    got = results(runtime, pid)
    assert json.loads(got[1])["ok"] is True, got[1]
    assert '"registered":"count_lines"' in got[2].replace(" ", "")
    assert json.loads(got[3]) == {"lines": 1}
    assert runtime.process(pid).exit is not None and runtime.process(pid).exit.value == "ok"
    records = [r for r in runtime.audit(pid) if r.syscall in ("tool.open", "fs.read")]
    assert [r.syscall for r in records] == ["tool.open", "fs.read"]  # the tool's read is the process's own


def test_a_tool_s_syscall_is_decided_on_the_process_s_rights(runtime: alos.Runtime, ws: Path) -> None:
    turns = [*make("count_lines", COUNT, SCHEMA), {"tool_calls": [call("count_lines", path=".env")]},
             {"tool_calls": [call("proc_exit", status="ok", result="done")]}]  # fmt: skip
    pid = maker(runtime, ws, turns, allow=("fs:*=read,list", "tool:proc/*=register"), deny=("fs:.env=read",))
    asyncio.run(runtime.run())
    got = results(runtime, pid)[3]
    assert "denied" in got and ".env" in got and "SECRET" not in got
    denied = [r for r in runtime.audit(pid) if r.syscall == "fs.read"]
    assert denied and denied[-1].decision == "deny"


def test_registration_without_the_register_right_is_refused(runtime: alos.Runtime, ws: Path) -> None:
    turns = [*make("count_lines", COUNT, SCHEMA), {"tool_calls": [call("proc_exit", status="ok", result="done")]}]
    pid = maker(runtime, ws, turns, allow=("fs:*=read,list",))
    asyncio.run(runtime.run())
    got = results(runtime, pid)[2]
    assert got.startswith("denied") and "register" in got and "tool:proc/" in got
    assert [r.decision for r in runtime.audit(pid) if r.syscall == "tool.register"] == ["deny"]


HOSTILE = {
    "reads_a_file": ("Deno.readTextFile('/etc/passwd')", "not allowed"),
    "fetches": ("fetch('http://127.0.0.1:9/')", "not allowed"),
}


@pytest.mark.parametrize(
    "body", ["while (true) {}", "const a: number[][] = []; while (true) a.push(new Array(1e6).fill(1));"]
)
def test_a_runaway_tool_is_stopped_and_the_process_goes_on(
    runtime: alos.Runtime, ws: Path, body: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A CPU limit of 1 s, not 5: the spin costs a core for that long (tests/unit/test_jit_worker.py
    # runs a tool into the real limit).
    monkeypatch.setattr(limits, "JIT_CPU_SECONDS", 1)
    source = f"export async function run(args: Record<string, unknown>, libos: Libos) {{ {body} }}\n"
    turns = [*make("runaway", source), {"tool_calls": [call("runaway")]},
             {"tool_calls": [call("proc_exit", status="ok", result="still here")]}]  # fmt: skip
    pid = maker(runtime, ws, turns)
    asyncio.run(runtime.run())
    got = results(runtime, pid)[3]
    assert "runaway stopped" in got and ("CPU" in got or "memory" in got), got
    assert runtime.process(pid).result == "still here"
    stopped = [r for r in runtime.audit(pid) if r.resource == f"tool:proc/{pid}/runaway" and r.outcome != "ok"]
    assert stopped, "the stop is audited"


def test_an_approval_inside_a_tool_parks_and_the_same_call_resumes(runtime: alos.Runtime, ws: Path) -> None:
    source = """
export async function run(args: { text: string }, libos: Libos) {
  const before = await libos.fs.read("README.md");
  await libos.fs.write("out.txt", { content: args.text + before });
  return "written";
}
"""
    schema = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
    turns = [*make("writer", source, schema), {"tool_calls": [call("writer", text="x")]},
             {"tool_calls": [call("proc_exit", status="ok", result="done")]}]  # fmt: skip
    pid = maker(runtime, ws, turns, allow=("fs:*=read,list", "tool:proc/*=register"), ask=("fs:*=write",))
    asyncio.run(runtime.run())
    assert runtime.process(pid).state.value == "waiting"
    [req] = runtime.requests()
    assert req.resource.endswith("out.txt")
    assert not (ws / "out.txt").exists()
    asyncio.run(runtime.answer(req.id, "once"))
    asyncio.run(runtime.run())
    assert (ws / "out.txt").read_text() == "xhello\n"
    assert results(runtime, pid)[3] == '"written"'
    assert runtime.process(pid).result == "done"


def d(rt: alos.Runtime, who: int, syscall: str, /, **args: Any) -> Any:
    return asyncio.run(rt.dispatch(who, syscall, args))


def test_registered_tools_survive_a_restart_and_a_checkpoint_restore_brings_them_back(store: str, ws: Path) -> None:
    rt = alos.open(store, host=True)
    pid = maker(rt, ws, [], allow=("fs:*=read,list", "tool:proc/*=register", "proc:spawn=spawn"))
    d(rt, pid, "tool.propose", name="count_lines", source=COUNT, description="count", parameters=SCHEMA)
    assert d(rt, pid, "tool.register", name="count_lines")["registered"] == "count_lines"
    ckpt = d(rt, pid, "ckpt.create")["id"]
    d(rt, pid, "tool.unregister", name="count_lines")
    assert d(rt, pid, "tool.list")["tools"] == []
    rt.close()
    rt = alos.open(store, host=True)  # a new host: the store holds everything
    try:
        restored = d(rt, pid, "ckpt.restore", id=ckpt)
        assert restored["tools"] == ["count_lines"]
        assert [t["name"] for t in d(rt, pid, "tool.list")["tools"]] == ["count_lines"]
        forked = d(rt, pid, "ckpt.fork", id=ckpt)["pid"]
        assert [t["name"] for t in d(rt, forked, "tool.list")["tools"]] == ["count_lines"]
        other = maker(rt, ws, [])  # tool names are per process: another has none of them
        assert d(rt, other, "tool.list")["tools"] == []
        with pytest.raises(alos.Denied):
            d(rt, other, "tool.list", table=f"proc/{pid}")
    finally:
        rt.close()


def test_a_shared_table_needs_register_to_fill_and_execute_to_run(runtime: alos.Runtime, ws: Path) -> None:
    writer = maker(runtime, ws, [], allow=("fs:*=read,list", "tool:team/*=register"))
    d(runtime, writer, "tool.propose", name="count_lines", source=COUNT, description="count", parameters=SCHEMA)
    with pytest.raises(alos.Denied, match="another process's own"):
        d(runtime, writer, "tool.register", name="count_lines", table=f"proc/{writer + 99}")
    assert d(runtime, writer, "tool.register", name="count_lines", table="team")["table"] == "team"
    user = maker(runtime, ws, [], allow=("fs:*=read,list",))
    with pytest.raises(alos.Denied, match="lacks execute on tool:team/count_lines"):
        d(runtime, user, "tool.open", name="count_lines", table="team")
    trusted = maker(runtime, ws, [], allow=("fs:*=read,list", "tool:team/*=execute,list"))
    opened = d(runtime, trusted, "tool.open", name="count_lines", table="team")
    assert opened["source"] == COUNT and [
        t["name"] for t in d(runtime, trusted, "tool.list", table="team")["tools"]
    ] == ["count_lines"]
    record = [r for r in runtime.audit(trusted) if r.syscall == "tool.open"][-1]
    assert "libos" not in json.dumps(record.detail) and opened["digest"] in json.dumps(record.detail)


HOST = """
import asyncio, sys, alos
store, ws, script = sys.argv[1:4]
async def main():
    rt = alos.open(store, host=True)
    grants = [alos.parse_grant(g, alos.Effect.ALLOW, ws) for g in ("fs:*=read,list,write", "tool:proc/*=register")]
    await rt.spawn("toolmaker", "write once", workspace=ws, model="script:" + script, grants=grants)
    await rt.run()
asyncio.run(main())
"""
ONCE = """
export async function run(args: Record<string, unknown>, libos: Libos) {
  await libos.fs.write("marker.txt", { content: "written by the tool" });
  const began = Date.now();
  while (Date.now() - began < 2500) { /* the host is killed here */ }
  return "finished";
}
"""


def test_a_host_killed_in_the_middle_of_a_tool_call_never_repeats_its_effect(store: str, ws: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    turns = [*make("once", ONCE), {"tool_calls": [call("once")]},
             {"tool_calls": [call("proc_exit", status="ok", result="done")]}]  # fmt: skip
    script = write_script(ws.parent / "once.jsonl", turns)[len("script:") :]
    host = subprocess.Popen([sys.executable, "-c", HOST, store, str(ws), script], start_new_session=True)
    marker = ws / "marker.txt"
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline and host.poll() is None:
        time.sleep(0.02)
    assert marker.exists(), "the tool wrote its marker"
    time.sleep(0.3)  # its outcome is committed before the tool goes on (a kill before it: a recovery request)
    os.killpg(host.pid, signal.SIGKILL)
    host.wait()
    marker.write_text("changed after the crash")  # a second write by a re-run tool would undo this
    rt = alos.open(store, host=True)
    try:
        [pid] = rt.recover()  # it was running when its host died
        asyncio.run(rt.run())
        assert rt.process(pid).result == "done"
        assert results(rt, pid)[-1] == '"finished"'
        assert marker.read_text() == "changed after the crash"
        writes = [r for r in rt.audit(pid) if r.syscall == "fs.write"]
        assert len(writes) == 1 and writes[0].outcome == "ok"
    finally:
        rt.close()


def test_a_tool_that_does_not_repeat_its_calls_after_a_park_gets_a_conflict(runtime: alos.Runtime, ws: Path) -> None:
    source = """
export async function run(args: Record<string, unknown>, libos: Libos) {
  await libos.fs.write(`random/${Math.random()}.txt`, { content: "first" });
  await libos.fs.write("asked.txt", { content: "second" });
  return "both";
}
"""
    turns = [*make("fickle", source), {"tool_calls": [call("fickle")]},
             {"tool_calls": [call("proc_exit", status="ok", result="done")]}]  # fmt: skip
    (ws / "random").mkdir()
    pid = maker(runtime, ws, turns, allow=("fs:*=read,list", "fs:random/*=write", "tool:proc/*=register"),
                ask=("fs:asked.txt=write",))  # fmt: skip
    asyncio.run(runtime.run())
    [req] = runtime.requests()
    asyncio.run(runtime.answer(req.id, "once"))
    asyncio.run(runtime.run())
    got = results(runtime, pid)[3]
    assert "not deterministic" in got, got
    assert len(list((ws / "random").glob("*.txt"))) == 1 and not (ws / "asked.txt").exists()


def test_a_schema_that_could_hold_the_host_is_refused_and_a_property_may_be_named_pattern(
    runtime: alos.Runtime, ws: Path
) -> None:
    pid = maker(runtime, ws, [])
    for bad, said in (
        ({"type": "object", "properties": {"p": {"type": "string", "pattern": "^(a+)+$"}}}, "uses pattern"),
        ({"type": "object", "properties": {"p": {"$ref": "https://example.com/s.json"}}}, "uses \\$ref"),
        ({"type": "object", "items": {"items": {"items": {"items": {"items": {"items": {"items": {"items": {
            "items": {"items": {"items": {"items": {"items": {"items": {"items": {"items": {}}}}}}}}}}}}}}}}},
         "nests deeper"),
    ):  # fmt: skip
        with pytest.raises(alos.Invalid, match=said):
            d(runtime, pid, "tool.propose", name="grep", source=COUNT, description="d", parameters=bad)
    fine = {"type": "object", "properties": {"pattern": {"type": "string"}}, "required": ["pattern"]}
    assert d(runtime, pid, "tool.propose", name="grep", source=COUNT, description="d", parameters=fine)["version"] == 1


def test_a_tool_whose_state_changes_its_calls_is_stopped_before_an_effect_runs_twice(
    runtime: alos.Runtime, ws: Path
) -> None:
    source = """
let calls = 0;  // lives as long as the worker: a warm worker's second call differs from a fresh one's
export async function run(args: { warm: boolean }, libos: Libos) {
  calls += 1;
  if (args.warm) return "warm";
  if (calls === 1) await libos.fs.read("README.md");
  await libos.human.tell("told once");
  await libos.fs.write("asked.txt", { content: "x" });
  return "done";
}
"""
    schema = {"type": "object", "properties": {"warm": {"type": "boolean"}}, "required": ["warm"]}
    turns = [*make("stateful", source, schema), {"tool_calls": [call("stateful", warm=True)]},
             {"tool_calls": [call("stateful", warm=False)]},
             {"tool_calls": [call("proc_exit", status="ok", result="done")]}]  # fmt: skip
    pid = maker(runtime, ws, turns, allow=("fs:*=read,list", "tool:proc/*=register", "human:console=send"),
                ask=("fs:asked.txt=write",))  # fmt: skip
    asyncio.run(runtime.run())
    [req] = runtime.requests()  # parked in the warm worker, where the read was skipped
    asyncio.run(runtime.answer(req.id, "once"))
    asyncio.run(runtime.run())  # the re-run is in a fresh worker: it reads first
    got = results(runtime, pid)[4]
    assert "not deterministic" in got, got
    told = [r for r in runtime.audit(pid) if r.syscall == "human.tell" and r.outcome == "ok"]
    assert len(told) == 1 and not (ws / "asked.txt").exists()


def test_approving_a_registration_shows_the_source_and_binds_it(runtime: alos.Runtime, ws: Path) -> None:
    turns = [make("count_lines", COUNT, SCHEMA)[0], make("count_lines", COUNT, SCHEMA)[2],
             {"tool_calls": [call("proc_exit", status="ok", result="done")]}]  # fmt: skip
    pid = maker(runtime, ws, turns, allow=("fs:*=read,list",), ask=("tool:proc/*=register",))
    asyncio.run(runtime.run())
    [req] = runtime.requests()
    assert req.detail["preview"] == COUNT and req.detail["bytes"] == len(COUNT) and req.detail["table"] == f"proc/{pid}"
    other = COUNT.replace("length - 1", "length + 100")  # proposed again while the person looks
    d(runtime, pid, "tool.propose", name="count_lines", source=other, description="count", parameters=SCHEMA)
    asyncio.run(runtime.answer(req.id, "once"))
    asyncio.run(runtime.run())
    [again] = runtime.requests()  # the approval was of the first source: the second is asked for
    assert again.id != req.id and again.detail["preview"] == other
    assert d(runtime, pid, "tool.list")["tools"] == []


def test_arguments_that_do_not_fit_the_schema_are_a_repair_and_the_tool_never_runs(
    runtime: alos.Runtime, ws: Path
) -> None:
    turns = [*make("count_lines", COUNT, SCHEMA), {"tool_calls": [call("count_lines", file="README.md")]},
             {"tool_calls": [call("proc_exit", status="ok", result="done")]}]  # fmt: skip
    pid = maker(runtime, ws, turns)
    asyncio.run(runtime.run())
    got = results(runtime, pid)[3]
    assert "do not fit its schema" in got and "'path' is a required property" in got, got
    assert not [r for r in runtime.audit(pid) if r.syscall == "fs.read"]  # it never ran
    assert runtime.process(pid).result == "done"


def test_a_schema_must_be_an_object_s_and_a_pattern_is_found_wherever_it_is(runtime: alos.Runtime, ws: Path) -> None:
    pid = maker(runtime, ws, [])
    for bad, said in (
        ({"type": "array"}, 'must be a JSON Schema with "type": "object"'),
        ({"type": "object", "properties": {"xs": {"type": "array", "items": {"pattern": "(a+)+$"}}}}, "uses pattern"),
        ({"type": "object", "anyOf": [{"patternProperties": {"^a": {}}}]}, "uses patternProperties"),
    ):
        with pytest.raises(alos.Invalid, match=said):
            d(runtime, pid, "tool.propose", name="t", source=COUNT, description="d", parameters=bad)


def test_the_broker_may_ask_only_about_a_file_by_its_absolute_path(runtime: alos.Runtime, ws: Path) -> None:
    pid = maker(runtime, ws, [])
    for value in ("README.md", "/tmp/a\x00b", None):
        with pytest.raises(alos.Denied, match="absolute path"):
            d(runtime, pid, "tool.permit", permission="read", value=value)
    with pytest.raises(alos.Denied, match="never reads /proc"):
        d(runtime, pid, "tool.permit", permission="read", value="/proc/self/environ")
    assert d(runtime, pid, "tool.permit", permission="read", value=str(ws / "README.md")) == "allow"


def test_a_process_s_own_tool_comes_before_a_shared_one_of_the_same_name(runtime: alos.Runtime, ws: Path) -> None:
    from alos import tooljit

    pid = maker(runtime, ws, [], allow=("fs:*=read,list", "tool:proc/*=register", "tool:team/*=register"))
    d(runtime, pid, "tool.propose", name="count_lines", source=COUNT, description="mine", parameters=SCHEMA)
    d(runtime, pid, "tool.register", name="count_lines")
    d(runtime, pid, "tool.register", name="count_lines", table="team")
    d(runtime, pid, "tool.propose", name="other", source=COUNT, description="shared", parameters=SCHEMA)
    d(runtime, pid, "tool.register", name="other", table="team")
    seen = tooljit.table(runtime.kernel, pid, ("team",), {"fs_read"})
    assert {n: (t.table, t.description) for n, t in seen.items()} == {
        "count_lines": (f"proc/{pid}", "mine"), "other": ("team", "shared")
    }  # fmt: skip


def test_running_a_tool_under_ask_parks_before_it_runs(runtime: alos.Runtime, ws: Path) -> None:
    turns = [*make("count_lines", COUNT, SCHEMA), {"tool_calls": [call("count_lines", path="README.md")]},
             {"tool_calls": [call("proc_exit", status="ok", result="done")]}]  # fmt: skip
    pid = maker(runtime, ws, turns)
    d(runtime, 0, "cap.grant", pid=pid, pattern=f"tool:proc/{pid}/count_lines", rights=["execute"], effect="ask")
    asyncio.run(runtime.run())
    [req] = runtime.requests()
    assert req.syscall == "tool.open" and not [r for r in runtime.audit(pid) if r.syscall == "fs.read"]
    asyncio.run(runtime.answer(req.id, "once"))
    asyncio.run(runtime.run())
    assert json.loads(results(runtime, pid)[3]) == {"lines": 1}


def test_unregistering_a_tool_that_is_not_there_says_so(runtime: alos.Runtime, ws: Path) -> None:
    pid = maker(runtime, ws, [])
    with pytest.raises(alos.NotFound, match=f"no tool nothing_here in table proc/{pid}"):
        d(runtime, pid, "tool.unregister", name="nothing_here")
