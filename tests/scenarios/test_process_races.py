"""Exploits and races a reviewer found in the process model, each kept as a test that must stay shut."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

import alos
from alos.kernel.proc import mark
from alos.kernel.sched import Scheduler
from alos.types import Exit, Parked, ProcState
from tests.scenarios.test_processes import d, root
from tests.support import call


def test_an_exact_grant_cannot_be_passed_on_as_the_subtree_below_it(runtime, ws: Path) -> None:
    (ws / "src" / "secret.txt").write_text("TOP SECRET")
    pid = root(runtime, ws, allow=("fs:src=list,read", "proc:spawn=spawn"))
    with pytest.raises(alos.Denied, match="outside the held pattern"):
        d(runtime, pid, "proc.spawn", name="c", goal="g", grants=[{"pattern": "fs:src/*", "rights": ["read"]}])
    assert [p.name for p in runtime.processes()] == ["main"]


def test_a_narrow_allow_passed_under_an_ask_still_asks(runtime, ws: Path) -> None:
    (ws / "prod").mkdir()
    pid = root(runtime, ws, allow=("fs:*=write", "proc:spawn=spawn"), ask=("fs:prod/*=write",))
    assert isinstance(d(runtime, pid, "fs.write", path="prod/config", content="x"), Parked)
    gs = [{"pattern": "fs:prod/config", "rights": ["write"]}]
    kid = d(runtime, pid, "proc.spawn", name="c", goal="g", grants=gs)["pid"]
    assert isinstance(d(runtime, kid, "fs.write", path="prod/config", content="pwned"), Parked)
    assert not (ws / "prod" / "config").exists()


def test_a_parents_exit_does_not_release_its_descendants_from_its_budget(runtime, ws: Path) -> None:
    pid = root(runtime, ws, allow=("proc:spawn=spawn",), budget={"tool_calls": 3, "children": 1})
    gs = [{"pattern": "clock", "rights": ["read"]}]
    kid = d(runtime, pid, "proc.spawn", name="c", goal="g", grants=gs)["pid"]
    d(runtime, kid, "clock.now")
    d(runtime, pid, "proc.exit")
    assert runtime.process(kid).parent is None  # adopted by the host ...
    d(runtime, kid, "clock.now")
    with pytest.raises(alos.Limit, match="ancestor 1's limit of 3"):  # ... and still under its maker's budget
        d(runtime, kid, "clock.now")


def test_only_who_paused_a_process_or_the_host_resumes_it(runtime, ws: Path) -> None:
    pid = root(runtime, ws, allow=("proc:spawn=spawn",))
    kid = d(runtime, pid, "proc.spawn", name="c", goal="g")["pid"]
    asyncio.run(runtime.signal(kid, "pause"))
    with pytest.raises(alos.Denied, match="paused by the host"):
        d(runtime, pid, "proc.signal", pid=kid, signal="resume")
    assert runtime.process(kid).state is ProcState.PAUSED
    asyncio.run(runtime.signal(kid, "resume"))
    d(runtime, pid, "proc.signal", pid=kid, signal="pause")
    assert d(runtime, pid, "proc.signal", pid=kid, signal="resume")["state"] == "runnable"


def test_the_hosts_deferred_state_write_never_undoes_another_terminals_change(store: str, ws: Path) -> None:
    rt = alos.open(store, host=True)
    try:
        pid = root(rt, ws, allow=("proc:spawn=spawn",))
        kid = d(rt, pid, "proc.spawn", name="c", goal="g")["pid"]
        kernel = rt.kernel
        running = mark(kernel, kernel.proc(kid), ProcState.RUNNING)
        kernel.flush()
        mark(kernel, running, ProcState.RUNNABLE)  # the end of a quantum: written with the next commit
        other = alos.open(store)
        asyncio.run(other.signal(kid, "term"))
        asyncio.run(other.signal(pid, "kill"))
        other.close()
        kernel.refresh()
        kernel.flush()
        c = rt.process(kid)
        assert (c.parent, c.term) == (None, 2)
    finally:
        rt.close()


def test_a_pause_from_another_terminal_mid_action_makes_the_rest_wait_not_fail(store: str, ws: Path) -> None:
    rt = alos.open(store, host=True)
    try:
        turns = [
            {
                "content": "",
                "tool_calls": [
                    call("fs_write", path="a.txt", content="a"),
                    call("fs_write", path="b.txt", content="b"),
                ],
            }
        ]
        pid = root(rt, ws, turns, allow=("fs:*=write",))
        files = rt.kernel.files
        write = files.write

        def pausing(path: str, data: bytes) -> None:
            write(path, data)
            if path.endswith("a.txt"):  # while the first write runs, another terminal: alos pause

                def other() -> None:
                    o = alos.open(store)
                    asyncio.run(o.signal(pid, "pause"))
                    o.close()

                t = threading.Thread(target=other)
                t.start()
                t.join()

        files.write = pausing  # type: ignore[method-assign]
        asyncio.run(rt.run())
        assert rt.process(pid).state is ProcState.PAUSED and not (ws / "b.txt").exists()
        files.write = write  # type: ignore[method-assign]
        asyncio.run(rt.signal(pid, "resume"))
        asyncio.run(rt.run())
        assert rt.process(pid).exit is Exit.OK and (ws / "b.txt").read_text() == "b"
        results = [m["content"] for m in rt.context(pid) if m["role"] == "tool"]
        assert len(results) == 2 and not any("paused" in r for r in results), results
    finally:
        rt.close()


def test_a_process_woken_before_its_quantum_ends_is_not_lost(runtime, ws: Path) -> None:
    from alos.rights import Effect, Grant, Right

    a = asyncio.run(runtime.spawn("base", "a", workspace=str(ws), model=_empty(ws), name="a"))
    gs = [Grant(f"proc:{a}", frozenset({Right.SEND}), Effect.ALLOW)]
    b = asyncio.run(runtime.spawn("base", "b", workspace=str(ws), model=_empty(ws), name="b", grants=gs))
    got: list[Any] = []

    async def quantum(pid: int) -> None:
        if pid == a:
            r = await runtime.dispatch(a, "msg.recv", {})
            if isinstance(r, Parked):
                await asyncio.sleep(0.05)  # a tool that awaits after its call parked (a JIT tool's teardown)
                return
            got.append(r)
            await runtime.dispatch(a, "proc.exit", {})
            return
        await runtime.dispatch(b, "msg.send", {"pid": a, "body": "hi"})
        await runtime.dispatch(b, "proc.exit", {})

    runtime.kernel.listeners.remove(runtime.scheduler._heard)
    asyncio.run(Scheduler(runtime.kernel, quantum).run())
    assert runtime.process(a).exit is Exit.OK and got and got[0]["message"]["body"] == "hi"


def _empty(ws: Path) -> str:
    path = ws.parent / "empty.jsonl"
    path.write_text("")
    return f"script:{path}"


def test_a_speculative_fork_may_not_reach_a_human(runtime, ws: Path) -> None:
    pid = root(runtime, ws, allow=("proc:spawn=spawn", "fs:*=read"), ask=("fs:.env=read",))
    gs = [{"pattern": "human:console", "rights": ["ask"]}, {"pattern": "fs:*", "rights": ["read"]}]
    spec = d(runtime, pid, "proc.fork", mode="speculative", goal="g", grants=gs)["pid"]
    with pytest.raises(alos.Denied, match="speculative"):
        d(runtime, spec, "human.ask", question="may I?")
    with pytest.raises(alos.Denied, match="may not ask a human"):
        d(runtime, spec, "fs.read", path=".env")
    assert runtime.requests() == []
