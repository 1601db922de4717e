"""Process lifecycle: the table of allowed transitions and the one function that moves along it.

Every transition writes the process row and a 'state' event in the caller's transaction.
Blocking is a transition to waiting (``park``), never an exception.
"""

from __future__ import annotations

import dataclasses

from alos.errors import Conflict
from alos.kernel.kernel import Kernel, Tx
from alos.store import rows
from alos.types import Exit, Pid, Process, ProcState, Wait

R, N, W, P, X = (
    ProcState.RUNNABLE,
    ProcState.RUNNING,
    ProcState.WAITING,
    ProcState.PAUSED,
    ProcState.EXITED,
)

EDGES: frozenset[tuple[ProcState, ProcState]] = frozenset(
    {
        (R, N),
        (R, W),
        (R, P),
        (R, X),
        (N, R),
        (N, W),
        (N, P),
        (N, X),
        (W, R),
        (W, P),
        (W, X),
        (P, R),
        (P, X),
    }
)


def transition(
    kernel: Kernel,
    tx: Tx,
    proc: Process,
    state: ProcState,
    *,
    wait: Wait | None = None,
    exit: Exit | None = None,
    result: str | None = None,
) -> Process:
    """Move ``proc`` to ``state`` inside ``tx``; return the new record.

    Raises Conflict naming both states when the edge is not in EDGES.
    """
    if (proc.state, state) not in EDGES:
        raise Conflict(f"process {proc.pid} cannot go from {proc.state} to {state}")
    if (state is ProcState.WAITING) != (wait is not None):
        raise ValueError("wait is given exactly when the new state is waiting")
    new = dataclasses.replace(
        proc,
        state=state,
        wait=wait,
        exit=exit if state is ProcState.EXITED else None,
        result=result if result is not None else proc.result,
        updated=tx.now,
    )
    rows.update_process(tx.conn, new)
    detail: dict[str, object] = {"from": proc.state.value, "state": state.value}
    if wait is not None:
        detail["wait"] = wait.value
    if state is ProcState.EXITED:
        detail["exit"] = (exit or Exit.OK).value
        detail["result"] = new.result
    tx.event(proc.pid, "state", detail)
    tx.on_commit.append(lambda: kernel.remember(new))
    return new


def park(kernel: Kernel, tx: Tx, proc: Process, wait: Wait) -> Process:
    """Make ``proc`` wait for ``wait``; the scheduler will not run it until it is woken."""
    return transition(kernel, tx, proc, ProcState.WAITING, wait=wait)


def create(
    kernel: Kernel,
    tx: Tx,
    *,
    parent: Pid | None,
    name: str,
    image: str,
    model: str,
    cwd: str,
    goal: str,
) -> Process:
    """Insert a new runnable process inside ``tx``; return it."""
    blank = Process(
        pid=0,
        parent=parent,
        name=name,
        image=image,
        model=model,
        state=ProcState.RUNNABLE,
        wait=None,
        exit=None,
        cwd=cwd,
        goal=goal,
        result=None,
        turns=0,
        created=tx.now,
        updated=tx.now,
    )
    pid = rows.insert_process(tx.conn, blank)
    proc = dataclasses.replace(blank, pid=pid)
    tx.event(pid, "spawn", {"name": name, "image": image, "parent": parent, "goal": goal})
    tx.on_commit.append(lambda: kernel.remember(proc))
    return proc
