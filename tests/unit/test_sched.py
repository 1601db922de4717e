"""kernel/sched.py: a quantum that raises a bug ends its own process 'failed', audited, and
nothing else: the other processes go on and the host keeps running."""

from __future__ import annotations

import asyncio
from pathlib import Path

import alos
from alos.kernel.sched import Scheduler
from alos.types import Exit, ProcState
from tests.support import call, spawn


def test_a_quantum_that_raises_fails_only_its_own_process(runtime: alos.Runtime, ws: Path) -> None:
    bad = spawn(runtime, ws)
    good = spawn(runtime, ws)
    quanta: list[int] = []

    async def quantum(pid: int) -> None:
        quanta.append(pid)
        await runtime.dispatch(pid, "clock.now", {})
        if pid == bad:
            raise KeyError("tool table lost fs_read")  # a bug, not an AlosError
        if quanta.count(good) == 3:
            await runtime.dispatch(pid, "proc.exit", {"result": "three quanta"})

    asyncio.run(Scheduler(runtime.kernel, quantum).run())

    failed = runtime.process(bad)
    assert failed.state is ProcState.EXITED and failed.exit is Exit.FAILED
    assert failed.result == "KeyError: 'tool table lost fs_read'"
    assert quanta.count(bad) == 1  # a process that crashed is not given another quantum
    assert runtime.process(good).exit is Exit.OK and runtime.process(good).result == "three quanta"

    [crash] = [r for r in runtime.audit(bad) if r.outcome == "failed"]
    assert (crash.syscall, crash.resource) == ("proc.exit", f"proc:{bad}")
    assert crash.detail["error"] == "KeyError: 'tool table lost fs_read'"
    assert "Traceback" in crash.detail["trace"] and "tool table lost fs_read" in crash.detail["trace"]
    assert [e.detail["error"] for e in runtime.events() if e.kind == "crash" and e.pid == bad] == [
        crash.detail["error"]
    ]
    assert runtime.verify().ok

    # the host survives: the real agent loop runs a new process to its end on the same runtime
    after = spawn(runtime, ws, [{"content": "still here", "tool_calls": [call("clock_now")]}])
    asyncio.run(runtime.run())
    assert runtime.process(after).exit is Exit.OK and runtime.process(after).result == "still here"


def test_a_bug_after_the_process_exited_does_not_rewrite_its_exit(runtime: alos.Runtime, ws: Path) -> None:
    pid = spawn(runtime, ws)

    async def quantum(pid: int) -> None:
        await runtime.dispatch(pid, "proc.exit", {"result": "finished"})
        raise RuntimeError("teardown bug after the exit")

    asyncio.run(Scheduler(runtime.kernel, quantum).run())
    done = runtime.process(pid)
    assert done.exit is Exit.OK and done.result == "finished"
    assert not [r for r in runtime.audit(pid) if r.outcome == "failed"]
    assert not [e for e in runtime.events() if e.kind == "crash"]
