"""kernel/proc.py: a move the allowed-edges table does not hold is refused, and writes nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import alos
from alos.errors import Conflict
from alos.kernel.proc import transition
from alos.types import Exit, Process, ProcState, Wait
from tests.support import spawn


def killed(rt: alos.Runtime, ws: Path) -> Process:
    """Return a process the host killed (exited, exit 'killed')."""
    pid = spawn(rt, ws)
    asyncio.run(rt.signal(pid, "kill"))
    proc = rt.process(pid)
    assert proc.state is ProcState.EXITED and proc.exit is Exit.KILLED
    return proc


@pytest.mark.parametrize("state", [ProcState.RUNNING, ProcState.RUNNABLE, ProcState.PAUSED, ProcState.WAITING])
def test_an_exited_process_never_moves_again(runtime: alos.Runtime, ws: Path, state: ProcState) -> None:
    proc = killed(runtime, ws)
    seen = len(runtime.events())
    wait = Wait.HUMAN if state is ProcState.WAITING else None
    with (
        pytest.raises(Conflict, match=f"process {proc.pid} cannot go from exited to {state.value}$"),
        runtime.kernel.transaction() as tx,
    ):
        transition(runtime.kernel, tx, proc, state, wait=wait)
    after = runtime.process(proc.pid)
    assert after.state is ProcState.EXITED and after.exit is Exit.KILLED
    assert after.result == proc.result
    assert len(runtime.events()) == seen  # no 'state' event for a move that did not happen


def test_a_paused_process_cannot_run_without_a_resume(runtime: alos.Runtime, ws: Path) -> None:
    pid = spawn(runtime, ws)
    asyncio.run(runtime.signal(pid, "pause"))
    paused = runtime.process(pid)
    assert paused.state is ProcState.PAUSED
    with pytest.raises(Conflict, match="cannot go from paused to running"), runtime.kernel.transaction() as tx:
        transition(runtime.kernel, tx, paused, ProcState.RUNNING)  # only a resume (to runnable) leaves a pause
    assert runtime.process(pid).state is ProcState.PAUSED and runtime.process(pid).paused_by == paused.paused_by


def test_a_move_from_a_stale_record_is_refused_and_the_newer_state_stands(runtime: alos.Runtime, ws: Path) -> None:
    pid = spawn(runtime, ws)
    stale = runtime.process(pid)
    assert stale.state is ProcState.RUNNABLE
    asyncio.run(runtime.signal(pid, "kill"))  # another writer moves it after the record was read
    with (
        pytest.raises(Conflict, match=f"process {pid} was changed by another connection while it was runnable"),
        runtime.kernel.transaction() as tx,
    ):
        transition(runtime.kernel, tx, stale, ProcState.PAUSED)  # an allowed edge, from a state it no longer has
    assert runtime.process(pid).state is ProcState.EXITED and runtime.process(pid).exit is Exit.KILLED
