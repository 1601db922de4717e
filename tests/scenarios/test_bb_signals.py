"""Black-box: signals, messages and the host's kill/pause/resume/send (docs/processes.md, docs/cli.md)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import alos
from alos.providers.clock import ManualClock
from alos.types import Event
from tests.scenarios.bb_support import Env, copy_env, json_lines, make_env, turn, write_script
from tests.scenarios.bb_support import alos as alos_cli

EFFECT = {"allow": alos.Effect.ALLOW, "ask": alos.Effect.ASK, "deny": alos.Effect.DENY}
MODEL = {"pattern": "model:script", "rights": ["execute"]}
Root = Callable[..., Awaitable[int]]


def call(tool: str, /, **arguments: Any) -> dict[str, Any]:
    return {"name": tool, "arguments": arguments}


def py(tmp_path: Path, body: Callable[[alos.Runtime, Path, Root], Awaitable[None]]) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "README.md").write_text("hello readme\n")

    async def root(turns: list[dict[str, Any]] | None = None, **grants: Any) -> int:
        n = len(list(tmp_path.glob("script-*.jsonl")))
        script = write_script(tmp_path / f"script-{n}.jsonl", turns or [])
        gs = [alos.parse_grant(s, EFFECT[e], str(ws)) for e, specs in grants.items() for s in specs]
        return await rt.spawn("base", "goal", workspace=str(ws), model=f"script:{script}", grants=gs)

    rt = alos.open(str(tmp_path / "st" / "store.db"), host=True, clock=ManualClock())
    try:
        asyncio.run(body(rt, ws, root))
    finally:
        rt.close()


def results_of(rt: alos.Runtime) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    rt.listen(lambda ev: out.append((ev.pid, ev.detail["text"])) if ev.kind == "result" else None)
    return out


def state(e: Any, pid: int = 1) -> tuple[str, str | None, str | None]:
    row = {p["pid"]: p for p in e.ps()}[pid]
    return row["state"], row["wait"], row["exit"]


# -- signal rights ----------------------------------------------------------------------------


def test_only_the_parent_may_signal_a_child_not_a_sibling_or_grandparent(tmp_path: Path) -> None:
    async def body(rt: alos.Runtime, ws: Path, root: Root) -> None:
        p = await root(allow=["proc:spawn=spawn"])
        spawn = {"pattern": "proc:spawn", "rights": ["spawn"]}
        a = (await rt.dispatch(p, "proc.spawn", {"name": "a", "goal": "g", "grants": [spawn]}))["pid"]
        b = (await rt.dispatch(p, "proc.spawn", {"name": "b", "goal": "g"}))["pid"]
        ga = (await rt.dispatch(a, "proc.spawn", {"name": "ga", "goal": "g"}))["pid"]
        for sender, target in ((a, b), (b, a), (a, p), (p, ga), (ga, a)):
            for sig in ("kill", "pause", "term", "interrupt"):
                with pytest.raises(alos.Denied):
                    await rt.dispatch(sender, "proc.signal", {"pid": target, "signal": sig})
            with pytest.raises(alos.Denied):
                await rt.dispatch(sender, "msg.send", {"pid": target, "body": "hi"})
        assert all(x.state is alos.ProcState.RUNNABLE for x in rt.processes())
        assert rt.messages_waiting(b) == 0 and rt.messages_waiting(ga) == 0
        await rt.dispatch(a, "proc.signal", {"pid": ga, "signal": "kill"})
        assert rt.process(ga).exit is alos.Exit.KILLED

    py(tmp_path, body)


def test_python_signal_and_send_reject_bad_pids_and_signals_cleanly(tmp_path: Path) -> None:
    async def body(rt: alos.Runtime, ws: Path, root: Root) -> None:
        p = await root()
        for pid in (0, -1, 2**63 - 1, 2**64, 999):
            with pytest.raises(alos.AlosError):
                await rt.signal(pid, "kill")
            with pytest.raises(alos.AlosError):
                await rt.send(pid, "hello")
        with pytest.raises(alos.Invalid):
            await rt.signal(p, "hup")
        assert rt.process(p).state is alos.ProcState.RUNNABLE

    py(tmp_path, body)


def test_a_paused_process_makes_no_calls_until_resumed(tmp_path: Path) -> None:
    async def body(rt: alos.Runtime, ws: Path, root: Root) -> None:
        seen = results_of(rt)
        p = await root([turn(call("fs_read", path="README.md"))], allow=["fs:*=read"])
        await rt.signal(p, "pause")
        with pytest.raises(alos.AlosError):
            await rt.dispatch(p, "fs.read", {"path": "README.md"})
        await rt.run()
        assert rt.process(p).state is alos.ProcState.PAUSED and seen == []
        await rt.signal(p, "resume")
        await rt.run()
        assert seen == [(p, "hello readme\n")] and rt.process(p).exit is alos.Exit.OK

    py(tmp_path, body)


# -- interrupt and term -----------------------------------------------------------------------


def test_interrupt_ends_a_blocking_wait_and_a_selective_recv_early(tmp_path: Path) -> None:
    async def body(rt: alos.Runtime, ws: Path, root: Root) -> None:
        seen = results_of(rt)
        p = await root(
            [
                turn(call("proc_spawn", name="k", goal="x", grants=[MODEL]), call("proc_wait")),
                turn(call("msg_recv", kind="job")),
                turn(call("proc_exit", result="fin")),
                turn(call("msg_recv"), proc="k"),
            ],
            allow=["proc:spawn=spawn"],
        )
        await rt.run()
        assert rt.process(p).wait is alos.Wait.CHILD
        await rt.signal(p, "interrupt", "stop waiting")
        await rt.run()
        assert rt.process(p).wait is alos.Wait.MESSAGE
        await rt.signal(p, "interrupt", "stop receiving")
        await rt.run()
        mine = [json.loads(t) for pid, t in seen if pid == p and t.startswith("{")]
        waited, got = mine[1], mine[2]
        assert waited.get("interrupted") is True and waited.get("pid") is None, waited
        assert got.get("interrupted") is True and got.get("message") is None, got
        assert rt.process(p).exit is alos.Exit.OK
        assert rt.process(2).state is alos.ProcState.WAITING  # the child still waits, untouched

    py(tmp_path, body)


def test_term_gives_two_more_quanta_then_kills(tmp_path: Path) -> None:
    async def body(rt: alos.Runtime, ws: Path, root: Root) -> None:
        turns_seen: list[str] = []
        tasks: list[asyncio.Task[Any]] = []

        def on(ev: Event) -> None:
            if ev.kind == "turn":
                turns_seen.append(ev.detail["content"])
                if ev.detail["content"] == "t2":
                    tasks.append(asyncio.get_running_loop().create_task(rt.signal(ev.pid, "term")))

        rt.listen(on)
        p = await root([turn(call("clock_now"), content=f"t{i}") for i in range(10)], allow=["clock=read"])
        await rt.run()
        await asyncio.gather(*tasks)
        await rt.run()
        assert rt.process(p).exit is alos.Exit.KILLED
        assert turns_seen == ["t0", "t1", "t2", "t3", "t4"], turns_seen

    py(tmp_path, body)


def test_term_honoured_by_proc_exit_ends_ok(tmp_path: Path) -> None:
    async def body(rt: alos.Runtime, ws: Path, root: Root) -> None:
        p = await root([turn(call("msg_recv")), turn(call("proc_exit", result="tidy"))])
        await rt.run()
        await rt.signal(p, "term")
        await rt.run()
        assert rt.process(p).exit is alos.Exit.OK and rt.process(p).result == "tidy"

    py(tmp_path, body)


# -- messages ---------------------------------------------------------------------------------


def test_messages_selective_nonblocking_size_limit_and_runtime_kinds(tmp_path: Path) -> None:
    async def body(rt: alos.Runtime, ws: Path, root: Root) -> None:
        p = await root(allow=["proc:spawn=spawn"])
        c = (await rt.dispatch(p, "proc.spawn", {"name": "c", "goal": "g"}))["pid"]
        assert await rt.dispatch(c, "msg.recv", {"block": False}) == {"message": None}
        assert rt.process(c).state is alos.ProcState.RUNNABLE
        await rt.dispatch(p, "msg.send", {"pid": c, "body": "first", "kind": "a", "corr": "1"})
        await rt.dispatch(p, "msg.send", {"pid": c, "body": "second", "kind": "b", "corr": "2"})
        await rt.dispatch(p, "msg.send", {"pid": c, "body": "third", "kind": "a", "corr": "3"})
        for kind in ("interrupt", "human", "term"):
            with pytest.raises(alos.AlosError):
                await rt.dispatch(p, "msg.send", {"pid": c, "body": "forged", "kind": kind})
        with pytest.raises(alos.AlosError):
            await rt.dispatch(p, "msg.send", {"pid": c, "body": "x" * (64 * 1024 + 1)})
        await rt.dispatch(p, "msg.send", {"pid": c, "body": "x" * (64 * 1024)})
        assert rt.messages_waiting(c) == 4
        got = await rt.dispatch(c, "msg.recv", {"block": False, "corr": "3"})
        assert got["message"]["body"] == "third" and got["message"]["from"] == p
        assert (await rt.dispatch(c, "msg.recv", {"block": False, "kind": "zzz"}))["message"] is None
        assert (await rt.dispatch(c, "msg.recv", {"block": False, "kind": "a"}))["message"]["body"] == "first"
        assert (await rt.dispatch(c, "msg.recv", {"block": False}))["message"]["body"] == "second"
        assert rt.messages_waiting(c) == 1

    py(tmp_path, body)


def test_recv_with_timeout_returns_no_message_after_the_timeout(tmp_path: Path) -> None:
    async def body(rt: alos.Runtime, ws: Path, root: Root) -> None:
        seen = results_of(rt)
        p = await root(
            [turn(call("clock_now"), call("msg_recv", timeout=30), call("clock_now"))],
            allow=["clock=read"],
        )
        await rt.run()
        mine = [json.loads(t) for pid, t in seen if pid == p]
        assert mine[1] == {"message": None, "timeout": True}, mine
        assert mine[2]["now"] - mine[0]["now"] == 30, mine  # the manual clock jumps to the deadline
        assert rt.process(p).exit is alos.Exit.OK

    py(tmp_path, body)


def test_messages_are_durable_across_reopening_the_store(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    script = write_script(tmp_path / "s.jsonl", [turn(call("msg_recv"))])
    store = str(tmp_path / "st" / "store.db")

    async def first() -> int:
        rt = alos.open(store, host=True, clock=ManualClock())
        try:
            pid = await rt.spawn("base", "g", workspace=str(ws), model=f"script:{script}")
            await rt.send(pid, "kept across restarts")
            return pid
        finally:
            rt.close()

    pid = asyncio.run(first())
    rt = alos.open(store)
    try:
        assert rt.messages_waiting(pid) == 1
    finally:
        rt.close()


# -- the command line ---------------------------------------------------------------------------


def test_cli_send_wakes_a_process_blocked_in_recv(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    r = e.run([turn(call("msg_recv")), turn(call("proc_exit", result="got it"))])
    assert r.returncode == 3, r.stdout + r.stderr
    assert state(e) == ("waiting", "message", None)
    s = e.cmd("send", "1", "hello there")
    assert s.returncode == 0, s.stderr
    r2 = e.resume()
    assert r2.returncode == 0, r2.stdout + r2.stderr
    texts = [ev["detail"]["text"] for ev in json_lines(r2.stdout) if ev.get("kind") == "result"]
    msg = json.loads(texts[0])["message"]
    assert msg["body"] == "hello there" and msg["kind"] == "human" and msg["from"] == 0
    assert state(e) == ("exited", None, "ok")
    sends = [a for a in e.audit() if a["syscall"] == "msg.send"]
    assert sends and sends[0]["pid"] == 0


def test_cli_send_interrupt_ends_a_selective_recv(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    r = e.run([turn(call("msg_recv", kind="job")), turn(call("proc_exit", result="woke"))])
    assert r.returncode == 3
    assert e.cmd("send", "1", "wake up", "--interrupt").returncode == 0
    r2 = e.resume()
    assert r2.returncode == 0, r2.stdout + r2.stderr
    first = json.loads([ev["detail"]["text"] for ev in json_lines(r2.stdout) if ev.get("kind") == "result"][0])
    assert first.get("interrupted") is True and first.get("message") is None, first


def test_cli_pause_then_resume_pid_of_a_process_waiting_on_a_human(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    r = e.run(
        [turn(call("fs_write", path="a.txt", content="A")), turn(call("proc_exit", result="done"))],
        "--ask",
        "fs:*=write",
    )
    assert r.returncode == 3
    assert e.cmd("pause", "1").returncode == 0
    assert state(e)[0] == "paused"
    assert e.cmd("resume", "1").returncode == 0
    assert state(e) == ("waiting", "human", None)
    assert len(e.approvals()) == 1
    assert e.cmd("approve", "1").returncode == 0
    assert e.resume().returncode == 0
    assert (e.ws / "a.txt").read_text() == "A"


def test_cli_resume_without_pid_does_not_report_success_while_root_is_paused(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    r = e.run(
        [turn(call("fs_write", path="a.txt", content="A")), turn(call("proc_exit", result="done"))],
        "--ask",
        "fs:*=write",
    )
    assert r.returncode == 3
    assert e.cmd("pause", "1").returncode == 0
    assert e.cmd("approve", "1").returncode == 0
    r2 = e.resume()
    assert state(e)[0] == "paused"
    assert r2.returncode == 3, r2.stdout + r2.stderr  # docs/cli.md: 3, waiting on "a resume"


def test_cli_kill_of_a_waiting_process_cancels_its_request_and_nothing_happens_later(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    r = e.run([turn(call("fs_write", path="a.txt", content="A"))], "--ask", "fs:*=write")
    assert r.returncode == 3
    k = e.cmd("kill", "1")
    assert k.returncode == 0, k.stderr
    assert state(e) == ("exited", None, "killed")
    assert e.approvals() == []
    assert e.cmd("approve", "1").returncode == 1
    e.resume()
    assert not (e.ws / "a.txt").exists()
    assert state(e) == ("exited", None, "killed")
    assert any(a["syscall"] == "proc.signal" and a["pid"] == 0 for a in e.audit())


def test_cli_kill_term_of_a_process_waiting_on_a_human_kills_it_at_once(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    r = e.run([turn(call("human_ask", question="what now?"))])
    assert r.returncode == 3
    assert e.cmd("kill", "1", "--term").returncode == 0
    assert state(e) == ("exited", None, "killed")
    assert e.approvals() == []


def test_cli_signalling_an_exited_process_changes_nothing(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    assert e.run([turn(call("proc_exit", result="fine"))]).returncode == 0
    for cmd in (["kill", "1"], ["kill", "1", "--term"], ["pause", "1"], ["resume", "1"], ["send", "1", "hi"]):
        cp = e.cmd(*cmd)
        assert cp.returncode == 1, (cmd, cp.stdout, cp.stderr)
        assert cp.stderr.startswith("alos: ") and "Traceback" not in cp.stderr, cp.stderr
    [p] = e.ps()
    assert (p["state"], p["exit"], p["result"]) == ("exited", "ok", "fine")


@pytest.fixture(scope="module")
def asking(tmp_path_factory: pytest.TempPathFactory) -> Env:
    """A store whose root waits on a human, built once: each test below works on a copy of it."""
    e = make_env(tmp_path_factory.mktemp("asking"))
    assert e.run([turn(call("human_ask", question="q"))]).returncode == 3
    return e


def root_state(store: Path) -> tuple[str, str | None, str | None]:
    """The root's (state, wait, exit), read in-process (what `alos ps` shows, without a CLI start)."""
    rt = alos.open(str(store), create=False)
    try:
        [p] = [p for p in rt.processes() if p.pid == 1]
    finally:
        rt.close()
    return p.state.value, p.wait.value if p.wait else None, p.exit.value if p.exit else None


# Each command declares its own PID argument (click.IntRange(1, 2**63 - 1)), so each meets one pid
# of each way to fail it: below the range ("0"; "-1" is the same check), above it, and not an
# integer ("abc"; "1.5" and "" fail the same int()). One CLI start a case: the store is a copy of
# one built once, and the check that nothing changed reads it in-process.
@pytest.mark.parametrize("cmd", [["kill"], ["pause"], ["resume"], ["send"]])
@pytest.mark.parametrize("pid", ["0", "99999999999999999999999", "abc"])
def test_cli_bad_pids_are_usage_errors(tmp_path: Path, asking: Env, cmd: list[str], pid: str) -> None:
    e = copy_env(asking, tmp_path)
    args = [*cmd, "--store", str(e.store), "--", pid]
    if cmd == ["send"]:
        args.append("text")
    cp = alos_cli(*args)
    assert cp.returncode == 2, (cp.stdout, cp.stderr)
    assert "Traceback" not in cp.stderr
    assert root_state(e.store) == ("waiting", "human", None)


@pytest.mark.parametrize("cmd", [["kill", "7"], ["pause", "7"], ["resume", "7"], ["send", "7", "hi"]])
def test_cli_unknown_pid_is_an_error_naming_it(tmp_path: Path, asking: Env, cmd: list[str]) -> None:
    e = copy_env(asking, tmp_path)
    cp = e.cmd(*cmd)
    assert cp.returncode == 1, (cp.stdout, cp.stderr)
    assert cp.stderr.startswith("alos: ") and "7" in cp.stderr and "Traceback" not in cp.stderr


def test_cli_signals_on_an_empty_or_missing_store_fail_cleanly(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    for cmd in (["kill", "1"], ["pause", "1"], ["resume", "1"], ["send", "1", "x"]):
        cp = e.cmd(*cmd)
        assert cp.returncode == 1, (cmd, cp.stdout, cp.stderr)
        assert cp.stderr.startswith("alos: ") and "Traceback" not in cp.stderr
    assert not e.store.exists()
