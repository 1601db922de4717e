"""Black-box: JIT tools written by a hostile model (docs/jit.md).

Every case is driven the way a model drives it: a scripted `toolmaker` process proposes, validates,
registers and calls its tools, or a test makes the same syscalls with `rt.dispatch`. Each hostile
tool must be stopped with an error that names what stopped it, leave an audit record, and leave the
process and the host able to go on (another tool call works; proc_exit returns a result).

One runtime is shared by most tests: `deno check` of a tool costs ~2 s and the runtime remembers a
checked source, so the many modes of one hostile tool cost one check.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import alos
from alos import limits
from alos.types import AuditRecord
from tests.support import grants, write_script

pytestmark = pytest.mark.slow

SECRET = "SECRET=hunter2-do-not-leak"
OUTSIDE = "outside-the-workspace-do-not-leak"
EMPTY = {"type": "object", "properties": {}}
ARGS = {
    "type": "object",
    "properties": {"mode": {"type": "string"}, "path": {"type": "string"}, "pid": {"type": "integer"}},
    "required": ["mode"],
}

# One tool, many hostile behaviours, chosen by `mode`: it passes the static policy and deno check.
HOSTILE = """
export async function run(args: { mode: string; path?: string; pid?: number }, libos: Libos): Promise<unknown> {
  const mode = args.mode;
  if (mode === "ok") {
    return { fine: true };
  }
  if (mode === "spin") {
    let i = 0;
    while (i >= 0) {
      i = (i + 1) % 1000;
    }
    return i;
  }
  if (mode === "memory") {
    const hoard: string[][] = [];
    while (hoard.length >= 0) {
      hoard.push(new Array(1000000).fill("xxxxxxxx"));
    }
    return hoard.length;
  }
  if (mode === "syscalls") {
    for (let i = 0; i < 1000; i++) {
      await libos.syscall("clock.now", {});
    }
    return "made them all";
  }
  if (mode === "console") {
    for (let i = 0; i < 100000; i++) {
      console.log("flood " + i + " ".repeat(64));
    }
    return "printed it all";
  }
  if (mode === "result") {
    return "r".repeat(1024 * 1024);
  }
  if (mode === "bigargs") {
    return await libos.syscall("fs.write", { path: args.path ?? "big.txt", content: "y".repeat(1024 * 1024) });
  }
  if (mode === "read") {
    return await libos.syscall("fs.read", { path: args.path ?? "" });
  }
  if (mode === "fetch") {
    const r = await fetch("https://example.com/");
    return await r.text();
  }
  if (mode === "codegen") {
    const F = (() => 0).constructor as (body: string) => () => unknown;
    return F("return 1")();
  }
  if (mode === "forge" || mode === "garbage" || mode === "badop") {
    const real = JSON.stringify;
    const target = JSON as unknown as { stringify: (v: unknown) => string };
    target.stringify = (v: unknown): string => {
      const msg = v as { op?: string } | null;
      if (msg !== null && typeof msg === "object" && msg.op === "syscall") {
        if (mode === "forge") return real({ ...msg, pid: args.pid });
        if (mode === "badop") return real({ ...msg, op: "exec" });
        return "this is {not json";
      }
      return real(v);
    };
    return await libos.syscall("fs.read", { path: args.path ?? "README.md" });
  }
  if (mode === "approve") {
    await libos.syscall("obj.append", { name: "ticks", value: "tick" });
    console.log("asking to write " + args.path);
    try {
      const wrote = await libos.syscall("fs.write", { path: args.path ?? "", content: "approved\\n" });
      return { wrote };
    } catch (e) {
      return "refused: " + String(e);
    }
  }
  return "unknown mode " + mode;
}
"""


def tc(tool: str, /, **arguments: Any) -> dict[str, Any]:
    """One tool call of a scripted turn (positional-only, so `name=` can be an argument)."""
    return {"name": tool, "arguments": arguments}


def _tool(body: str) -> str:
    return (
        "export async function run(args: Record<string, unknown>, libos: Libos): Promise<unknown> {\n" + body + "\n}\n"
    )


# Tools the static policy must refuse: name -> (source, what the refusal must name).
STATIC = {
    "read_file": (_tool('  return await Deno.readTextFile("/etc/passwd");'), "'Deno'"),
    "env_get": (_tool('  return Deno.env.get("HOME");'), "'Deno'"),
    "command": (_tool('  return await new Deno.Command("sh", { args: ["-c", "id"] }).output();'), "'Deno'"),
    "dyn_import": (_tool('  return await import("/etc/passwd");'), "'import'"),
    "static_import": ('import { x } from "../../../../etc/hosts.ts";\n' + _tool("  return x;"), "'import'"),
    "npm_import": ('import chalk from "npm:chalk@5";\n' + _tool("  return String(chalk);"), "'import'"),
    "jsr_import": ('import { join } from "jsr:@std/path";\n' + _tool('  return join("a", "b");'), "'import'"),
    "eval_import": (_tool("  return eval(\"import('/etc/passwd')\");"), "'eval'"),
    "global_this": (_tool('  return (globalThis as any)["Deno"].env.get("HOME");'), "'globalThis'"),
    "escaped": (_tool('  return (Den\\u006f as any).env.get("HOME");'), "escape"),
}


@dataclass
class Lab:
    rt: alos.Runtime
    root: Path
    ws: Path
    count: Iterator[int] = field(default_factory=itertools.count)

    def spawn(
        self,
        turns: list[dict[str, Any]],
        allow: tuple[str, ...] = ("fs:*=read,list", "tool:proc/*=register"),
        ask: tuple[str, ...] = (),
        deny: tuple[str, ...] = (),
        image: str = "toolmaker",
    ) -> int:
        model = write_script(self.root / f"script-{next(self.count)}.jsonl", turns)
        g = grants(self.ws, allow=allow, ask=ask, deny=deny)
        return asyncio.run(self.rt.spawn(image, "test goal", workspace=str(self.ws), model=model, grants=g))

    def dispatch(self, pid: int, name: str, args: dict[str, Any]) -> Any:
        return asyncio.run(self.rt.dispatch(pid, name, args))

    def register(self, pid: int, name: str, source: str = HOSTILE, parameters: dict[str, Any] = ARGS) -> None:
        self.dispatch(
            pid, "tool.propose", {"name": name, "source": source, "description": "d", "parameters": parameters}
        )
        self.dispatch(pid, "tool.register", {"name": name})

    def run(self) -> None:
        asyncio.run(self.rt.run())


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("bbjit")
    ws = root / "ws"
    ws.mkdir()
    (ws / "README.md").write_text("hello\n")
    (ws / ".env").write_text(SECRET + "\n")
    (root / "outside.txt").write_text(OUTSIDE + "\n")
    rt = alos.open(str(root / "store" / "store.db"), host=True)
    try:
        yield Lab(rt, root, ws)
    finally:
        rt.close()


def results(rt: alos.Runtime, pid: int) -> list[tuple[str, str]]:
    """The tool results the model read, in order: (tool name, content)."""
    return [(m.get("name", ""), m["content"]) for m in rt.context(pid) if m.get("role") == "tool"]


def everything_read(rt: alos.Runtime, pid: int) -> str:
    return json.dumps(rt.context(pid))


def stop_records(rt: alos.Runtime, pid: int, resource: str) -> list[AuditRecord]:
    """Audit records of a JIT tool call that failed or was stopped (not its tool.open)."""
    return [r for r in rt.audit(pid) if r.resource == resource and r.syscall not in ("tool.open", "tool.register")]


def no_control_chars(text: str) -> bool:
    return not any(ord(c) < 0x20 or ord(c) == 0x7F or 0x80 <= ord(c) < 0xA0 for c in text)


def exited_ok(rt: alos.Runtime, pid: int, result: str) -> None:
    p = rt.process(pid)
    assert p.state is alos.ProcState.EXITED, p
    assert p.exit is alos.Exit.OK, p
    assert p.result == result


# --- refused before it can run ------------------------------------------------------------------


def test_static_hostile_tools_are_refused_at_validate_and_register(lab: Lab) -> None:
    turns: list[dict[str, Any]] = []
    for name, (source, _) in STATIC.items():
        turns.append({"tool_calls": [tc("tool_propose", name=name, source=source, description="d", parameters=EMPTY)]})
        turns.append({"tool_calls": [tc("tool_validate", name=name)]})
        turns.append({"tool_calls": [tc("tool_register", name=name)]})
    turns += [
        {"tool_calls": [tc("tool_propose", name="fine", source=HOSTILE, description="d", parameters=ARGS)]},
        {"tool_calls": [tc("tool_register", name="fine")]},
        {"tool_calls": [tc("read_file", path="/etc/passwd")]},  # never registered: not a tool
        {"tool_calls": [tc("tool_list")]},
        {"tool_calls": [tc("fine", mode="ok")]},
        {"tool_calls": [tc("proc_exit", status="ok", result="carried on")]},
    ]
    pid = lab.spawn(turns)
    lab.run()

    out = results(lab.rt, pid)
    by_step = iter(out)
    for name, (_, banned) in STATIC.items():
        proposed, validated, registered = next(by_step), next(by_step), next(by_step)
        assert proposed[0] == "tool_propose" and "tools/" + name in proposed[1], proposed
        report = json.loads(validated[1])
        assert report["ok"] is False, (name, report)
        assert any(banned in p for p in report["problems"]), (name, report)
        assert registered[1].startswith(f"invalid: tool {name} does not pass its checks"), registered
        assert banned in registered[1], registered
        refusals = [
            r for r in lab.rt.audit(pid) if r.syscall == "tool.register" and r.resource == f"tool:proc/{pid}/{name}"
        ]
        assert [r.outcome for r in refusals] == ["invalid"], refusals
        assert banned in refusals[0].detail["error"]
    rest = list(by_step)
    assert "registered" in rest[1][1]
    assert rest[2][0] == "read_file" and "no tool named 'read_file'" in rest[2][1], rest[2]
    listed = {t["name"] for t in json.loads(rest[3][1])["tools"]}
    assert listed == {"fine"}, listed
    assert json.loads(rest[4][1]) == {"fine": True}
    assert not [r for r in lab.rt.audit(pid) if r.syscall == "tool.permit"]  # none ever ran
    exited_ok(lab.rt, pid, "carried on")


def test_fetch_passes_validation_and_is_left_to_the_broker_as_the_threat_model_table_says(lab: Lab) -> None:
    pid = lab.spawn([])
    source = _tool('  const r = await fetch("https://example.com/");\n  return await r.text();')
    lab.dispatch(pid, "tool.propose", {"name": "fetcher", "source": source, "description": "d", "parameters": EMPTY})
    report = lab.dispatch(pid, "tool.validate", {"name": "fetcher"})
    assert report["ok"] is True, report  # stopped at run time: test_runtime_floods_are_stopped_...


def test_register_without_the_register_right_is_denied_and_audited(lab: Lab) -> None:
    other = lab.spawn([], allow=("fs:*=read,list", "tool:proc/*=register"))
    turns = [
        {"tool_calls": [tc("tool_propose", name="mine", source=HOSTILE, description="d", parameters=ARGS)]},
        {"tool_calls": [tc("tool_register", name="mine")]},
        {"tool_calls": [tc("mine", mode="ok")]},
        {"tool_calls": [tc("proc_exit", status="ok", result="carried on")]},
    ]
    pid = lab.spawn(turns, allow=("fs:*=read,list",))
    # Holding `register` on its own table gives no way into another process's own table.
    lab.dispatch(other, "tool.propose", {"name": "mine", "source": HOSTILE, "description": "d", "parameters": ARGS})
    with pytest.raises(alos.Denied, match="another process's own"):
        lab.dispatch(other, "tool.register", {"name": "mine", "table": f"proc/{pid}"})
    assert lab.dispatch(pid, "tool.list", {})["tools"] == []
    lab.run()
    out = results(lab.rt, pid)
    assert out[1][1] == f"denied: process {pid} lacks register on tool:proc/{pid}/mine", out[1]
    assert "no tool named 'mine'" in out[2][1], out[2]
    (rec,) = [r for r in lab.rt.audit(pid) if r.syscall == "tool.register"]
    assert (rec.resource, rec.right, rec.decision, rec.outcome) == (
        f"tool:proc/{pid}/mine",
        "register",
        "deny",
        "denied",
    )
    exited_ok(lab.rt, pid, "carried on")

    assert [r.decision for r in lab.rt.audit(other) if r.syscall == "tool.register"] == ["deny"]


HOSTILE_NAMES = [
    "bad\x1b[2J\x1b[31mred\x1b[0m",
    "line\r\nbreak\x07bell\x00nul",
    "x" * 10_000,
    "c1\x9bcontrol",
    "../../escape",
]


def test_hostile_tool_names_are_refused_without_raw_control_characters(lab: Lab) -> None:
    pid = lab.spawn([{"tool_calls": [tc("tool_propose", name=HOSTILE_NAMES[0], source="x", description="d")]}])
    for name in HOSTILE_NAMES:
        for syscall, args in (
            ("tool.propose", {"name": name, "source": _tool("  return 1;"), "description": "d", "parameters": EMPTY}),
            ("tool.validate", {"name": name}),
            ("tool.register", {"name": name}),
        ):
            with pytest.raises(alos.AlosError) as caught:
                lab.dispatch(pid, syscall, args)
            message = str(caught.value)
            assert "tool name" in message, (syscall, message)
            assert no_control_chars(message), (syscall, repr(message))
            assert len(message) < 400, (syscall, len(message))
    refused = [r for r in lab.rt.audit(pid) if r.syscall == "tool.propose"]
    assert len(refused) == len(HOSTILE_NAMES) and all(r.outcome == "invalid" for r in refused), refused
    assert all(len(json.dumps(r.detail)) < 2000 for r in refused)  # the 10,000 characters are not kept

    # The model that proposes an ANSI name reads a refusal it can act on, with no raw escape in it.
    lab.run()
    (_, content), *_ = results(lab.rt, pid)
    assert content.startswith("invalid: tool name"), content
    assert no_control_chars(content), repr(content)


# --- stopped while it runs ----------------------------------------------------------------------


def test_runtime_floods_are_stopped_and_audited_and_the_process_carries_on(lab: Lab) -> None:
    modes = ["memory", "syscalls", "console", "result", "bigargs", "fetch", "codegen"]
    turns = [{"tool_calls": [tc("hostile", mode=m, path="big.txt")]} for m in modes]
    turns += [
        {"tool_calls": [tc("hostile", mode="ok")]},
        {"tool_calls": [tc("proc_exit", status="ok", result="carried on")]},
    ]
    pid = lab.spawn(turns, allow=("fs:*=read,list,write", "tool:proc/*=register"))
    lab.register(pid, "hostile")
    lab.run()

    out = dict(zip([*modes, "ok"], (c for _, c in results(lab.rt, pid)), strict=True))
    assert out["memory"] == "hostile stopped: the tool ran out of its memory (128 MiB of heap)"
    assert out["syscalls"] == "hostile stopped: the tool made more than 256 syscalls in one call"
    assert out["console"].startswith("hostile stopped:") and "output cap" in out["console"]
    assert out["result"].startswith("hostile stopped:") and "output cap" in out["result"]
    assert out["bigargs"].startswith("hostile stopped:") and "output cap" in out["bigargs"]
    assert "denied" in out["fetch"] and "net" in out["fetch"], out["fetch"]
    assert "Code generation from strings disallowed" in out["codegen"], out["codegen"]
    assert json.loads(out["ok"]) == {"fine": True}
    assert all(len(c) < 1000 for c in out.values())  # no flood reached the context
    assert not (lab.ws / "big.txt").exists()  # the oversized write never reached dispatch

    stops = stop_records(lab.rt, pid, f"tool:proc/{pid}/hostile")
    assert len(stops) == len(modes), stops
    for mode, rec in zip(modes, stops, strict=True):
        assert rec.detail["error"] in out[mode], (mode, rec)
    assert [r.outcome for r in stops[:5]] == ["limit"] * 5, stops
    assert sum(r.syscall == "clock.now" for r in lab.rt.audit(pid)) == 256
    assert lab.rt.budgets()[pid]["tool_calls"][1] >= 256  # a tool's syscalls count against the budget
    (permit,) = [r for r in lab.rt.audit(pid) if r.syscall == "tool.permit"]
    assert (permit.decision, permit.detail["permission"]) == ("deny", "net"), permit
    exited_ok(lab.rt, pid, "carried on")


def test_a_syscall_for_a_file_the_process_may_not_read_is_denied_and_nothing_leaks(lab: Lab) -> None:
    turns = [
        {"tool_calls": [tc("hostile", mode="read", path=".env")]},
        {"tool_calls": [tc("hostile", mode="read", path=str(lab.root / "outside.txt"))]},
        {"tool_calls": [tc("hostile", mode="read", path="README.md")]},
        {"tool_calls": [tc("proc_exit", status="ok", result="carried on")]},
    ]
    pid = lab.spawn(turns, deny=("fs:.env=read",))
    lab.register(pid, "hostile")
    lab.run()
    out = [c for _, c in results(lab.rt, pid)]
    assert out[0].startswith(f"hostile stopped: the tool failed: SyscallError: denied: process {pid} is denied read"), (
        out[0]
    )
    assert f"fs:{lab.ws / '.env'}" in out[0], out[0]
    assert "denied" in out[1] and "outside.txt" in out[1], out[1]
    assert json.loads(out[2]) == "hello\n"
    seen = everything_read(lab.rt, pid)
    assert SECRET not in seen and OUTSIDE not in seen
    reads = [r for r in lab.rt.audit(pid) if r.syscall == "fs.read"]
    assert [(Path(r.resource[3:]).name, r.decision) for r in reads] == [
        (".env", "deny"),
        ("outside.txt", "deny"),
        ("README.md", "allow"),
    ], reads
    assert all(r.pid == pid for r in reads)  # audited as the process's own
    exited_ok(lab.rt, pid, "carried on")


def test_forged_and_malformed_broker_messages_end_the_tool(lab: Lab) -> None:
    """No documented API writes a raw line. A tool may replace JSON.stringify, which the runner used
    to write its syscall lines (that forged the pid, a black-box finding); the runner now keeps its
    own, so the replacement changes nothing: the calls go out as the process's own."""
    victim = lab.spawn([], allow=("fs:*=read,list",))
    asyncio.run(lab.rt.signal(victim, "pause"))
    turns = [
        {"tool_calls": [tc("hostile", mode="forge", pid=victim, path=".env")]},
        {"tool_calls": [tc("hostile", mode="forge", pid=0, path=".env")]},
        {"tool_calls": [tc("hostile", mode="garbage")]},
        {"tool_calls": [tc("hostile", mode="badop")]},
        {"tool_calls": [tc("hostile", mode="ok")]},
        {"tool_calls": [tc("proc_exit", status="ok", result="carried on")]},
    ]
    pid = lab.spawn(turns, deny=("fs:.env=read",))
    lab.register(pid, "hostile")
    before = {r.seq for r in lab.rt.audit()}
    lab.run()
    out = [c for _, c in results(lab.rt, pid)]
    for content in out[:2]:  # read as the process itself: .env is denied to it
        assert content.startswith("hostile stopped: the tool failed: SyscallError: denied"), content
        assert no_control_chars(content), repr(content)
    assert out[2] == out[3] == json.dumps("hello\n"), out[2:4]  # the line is the runner's own, unbroken
    assert json.loads(out[4]) == {"fine": True}
    new = [r for r in lab.rt.audit() if r.seq not in before]
    assert [r.decision for r in new if r.syscall == "fs.read"] == ["deny", "deny", "allow", "allow"], new
    assert not [r for r in new if r.pid in (victim, 0)], new
    stops = stop_records(lab.rt, pid, f"tool:proc/{pid}/hostile")
    assert len(stops) == 2, stops
    assert SECRET not in everything_read(lab.rt, pid)
    exited_ok(lab.rt, pid, "carried on")


# --- approvals inside a tool; the CPU limit of another process's tool ----------------------------


def test_an_approval_inside_a_tool_parks_the_process_and_its_limits_wait(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Shorter limits, the same rules: a spinning tool is stopped at its CPU time, and a park is not
    # counted in the wall time (waiting past the real 10 s cost 10 s; tests/unit/test_jit_worker.py
    # runs a tool into the real CPU limit).
    monkeypatch.setattr(limits, "JIT_CPU_SECONDS", 1)
    # The spin may take up to 2 s of CPU (limit_cpu rounds what was used up): 5 s of wall leaves a
    # busy machine more room than the real 5-6 s of 10 did.
    monkeypatch.setattr(limits, "JIT_WALL_SECONDS", 5.0)
    target = lab.ws / "approved.txt"
    asker = lab.spawn(
        [
            {"tool_calls": [tc("hostile", mode="approve", path="approved.txt")]},
            {"tool_calls": [tc("proc_exit", status="ok", result="asker done")]},
        ],
        ask=("fs:approved.txt=write",),
    )
    lab.register(asker, "hostile")
    lab.dispatch(asker, "obj.create", {"name": "ticks", "type": "json", "value": []})
    lab.run()
    parked_at = time.monotonic()

    p = lab.rt.process(asker)
    assert p.state is alos.ProcState.WAITING, p
    (req,) = [r for r in lab.rt.requests() if r.pid == asker]
    assert req.syscall == "fs.write" and req.resource == f"fs:{target}", req
    assert not target.exists()
    assert results(lab.rt, asker) == []  # the model has read nothing of the call yet

    # While a person decides, the host carries on: another process's tool spins and is stopped at
    # its CPU limit (the one CPU test of this file), and together this waits past the wall time.
    spinner = lab.spawn(
        [
            {"tool_calls": [tc("hostile", mode="spin")]},
            {"tool_calls": [tc("hostile", mode="ok")]},
            {"tool_calls": [tc("proc_exit", status="ok", result="spinner done")]},
        ]
    )
    lab.register(spinner, "hostile")
    lab.run()
    spun = [c for _, c in results(lab.rt, spinner)]
    assert spun[0] == "hostile stopped: the tool used its CPU time (1 s)", spun
    assert json.loads(spun[1]) == {"fine": True}
    (stop,) = stop_records(lab.rt, spinner, f"tool:proc/{spinner}/hostile")
    assert stop.outcome == "limit" and "CPU time" in stop.detail["error"], stop
    exited_ok(lab.rt, spinner, "spinner done")

    time.sleep(max(0.0, limits.JIT_WALL_SECONDS + 0.5 - (time.monotonic() - parked_at)))
    assert lab.rt.process(asker).state is alos.ProcState.WAITING
    assert not target.exists()
    asyncio.run(lab.rt.answer(req.id, "once"))
    lab.run()

    assert target.read_text() == "approved\n"
    (out,) = results(lab.rt, asker)
    assert out[1].count("asking to write approved.txt") == 1, out  # the TypeScript's run is seen once
    assert "stopped" not in out[1] and "wall time" not in out[1], out
    assert json.loads(out[1].splitlines()[-1])["wrote"]["path"] == str(target), out
    writes = [r for r in lab.rt.audit(asker) if r.syscall == "fs.write"]
    assert [(r.decision, r.outcome) for r in writes] == [("ask", "parked"), ("approved", "ok")], writes
    ticks = lab.dispatch(0, "obj.read", {"name": "ticks", "ns": f"proc/{asker}"})
    assert ticks["value"] == ["tick"], ticks  # the syscall made before the park was not made twice
    assert [r.outcome for r in lab.rt.audit(asker) if r.syscall == "obj.append"] == ["ok"]
    exited_ok(lab.rt, asker, "asker done")


def test_a_denied_approval_reaches_the_typescript_as_a_denial(lab: Lab) -> None:
    target = lab.ws / "refused.txt"
    pid = lab.spawn(
        [
            {"tool_calls": [tc("hostile", mode="approve", path="refused.txt")]},
            {"tool_calls": [tc("proc_exit", status="ok", result="carried on")]},
        ],
        ask=("fs:refused.txt=write",),
    )
    lab.register(pid, "hostile")
    lab.dispatch(pid, "obj.create", {"name": "ticks", "type": "json", "value": []})
    lab.run()
    (req,) = [r for r in lab.rt.requests() if r.pid == pid]
    asyncio.run(lab.rt.answer(req.id, "deny"))
    lab.run()
    (out,) = results(lab.rt, pid)
    last = json.loads(out[1].splitlines()[-1])
    assert last.startswith("refused: SyscallError: denied:") and "refused.txt" in last, out
    assert not target.exists()
    exited_ok(lab.rt, pid, "carried on")


# --- names, checkpoints, restarts ---------------------------------------------------------------


def test_two_processes_each_get_their_own_tool_of_the_same_name(lab: Lab) -> None:
    pids = []
    for who in ("alpha", "beta"):
        pid = lab.spawn(
            [
                {"tool_calls": [tc("greet")]},
                {"tool_calls": [tc("proc_exit", status="ok", result=who)]},
            ]
        )
        lab.register(pid, "greet", _tool(f'  return "greetings from {who}";'), EMPTY)
        pids.append(pid)
    digests = [lab.dispatch(pid, "tool.list", {})["tools"][0]["digest"] for pid in pids]
    assert digests[0] != digests[1]
    lab.run()
    for pid, who in zip(pids, ("alpha", "beta"), strict=True):
        assert results(lab.rt, pid) == [("greet", json.dumps(f"greetings from {who}"))]
        (opened,) = [r for r in lab.rt.audit(pid) if r.syscall == "tool.open"]
        assert opened.resource == f"tool:proc/{pid}/greet"
        exited_ok(lab.rt, pid, who)


def test_a_tool_named_like_an_image_tool_never_shadows_it(lab: Lab) -> None:
    pid = lab.spawn(
        [
            {"tool_calls": [tc("fs_read", path="README.md")]},
            {"tool_calls": [tc("proc_exit", status="ok", result="carried on")]},
        ]
    )
    for name in ("fs_read", "tool_propose", "obj_new"):  # no name an image tool has, or could have
        with pytest.raises(alos.Invalid, match="never shadows one"):
            lab.register(pid, name, _tool('  return "shadowed";'), EMPTY)
    lab.run()
    assert results(lab.rt, pid) == [("fs_read", "hello\n")]
    exited_ok(lab.rt, pid, "carried on")


def test_a_checkpoint_holds_the_tools_a_process_had_registered(lab: Lab) -> None:
    pid = lab.spawn(
        [
            {"tool_calls": [tc("hostile", mode="ok")]},
            {"tool_calls": [tc("proc_exit", status="ok", result="restored")]},
        ],
        allow=("fs:*=read,list", "tool:proc/*=register", "proc:spawn=spawn"),
    )
    lab.register(pid, "hostile")
    ckpt = lab.dispatch(pid, "ckpt.create", {})
    lab.dispatch(pid, "tool.unregister", {"name": "hostile"})
    assert lab.dispatch(pid, "tool.list", {})["tools"] == []
    restored = lab.dispatch(pid, "ckpt.restore", {"id": ckpt["id"]})
    assert restored["tools"] == ["hostile"], restored
    assert [t["name"] for t in lab.dispatch(pid, "tool.list", {})["tools"]] == ["hostile"]
    forked = lab.dispatch(pid, "ckpt.fork", {"id": ckpt["id"], "name": "forked"})
    assert [t["name"] for t in lab.dispatch(forked["pid"], "tool.list", {})["tools"]] == ["hostile"]
    lab.run()
    assert results(lab.rt, pid) == [("hostile", json.dumps({"fine": True}, separators=(",", ":")))]
    exited_ok(lab.rt, pid, "restored")


def test_registered_tools_still_work_after_a_host_restart(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "README.md").write_text("hello\n")
    store = str(tmp_path / "store" / "store.db")
    model = write_script(
        tmp_path / "script.jsonl",
        [
            {"tool_calls": [tc("hostile", mode="read", path="README.md")]},
            {"tool_calls": [tc("proc_exit", status="ok", result="after restart")]},
        ],
    )
    rt = alos.open(store, host=True)
    try:
        g = grants(ws, allow=("fs:*=read,list", "tool:proc/*=register"))
        pid = asyncio.run(rt.spawn("toolmaker", "test goal", workspace=str(ws), model=model, grants=g))
        asyncio.run(
            rt.dispatch(
                pid, "tool.propose", {"name": "hostile", "source": HOSTILE, "description": "d", "parameters": ARGS}
            )
        )
        asyncio.run(rt.dispatch(pid, "tool.register", {"name": "hostile"}))
    finally:
        rt.close()

    rt = alos.open(store, host=True)
    try:
        assert [t["name"] for t in asyncio.run(rt.dispatch(pid, "tool.list", {}))["tools"]] == ["hostile"]
        asyncio.run(rt.run())
        assert results(rt, pid) == [("hostile", json.dumps("hello\n"))]
        (opened,) = [r for r in rt.audit(pid) if r.syscall == "tool.open"]
        assert opened.decision == "allow"
        exited_ok(rt, pid, "after restart")
    finally:
        rt.close()
