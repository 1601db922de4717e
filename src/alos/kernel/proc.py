"""Process lifecycle: the table of allowed transitions and the one function that moves along it.

Every transition writes the process row and a 'state' event in the caller's transaction.
Blocking is a transition to waiting (``park``), never an exception; ``wake`` ends a wait.
``end`` is the one way out: it drops what the process left pending, hands its children to
the nearest living ancestor (or the host) and wakes a parent that waits on it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from alos import caps
from alos.errors import Conflict
from alos.kernel.kernel import Kernel, Tx
from alos.rights import Capability, Effect, Grant, Right
from alos.store import objrows, rows
from alos.types import SHOWN_KINDS, Exit, Fork, Parked, Pid, Process, ProcState, Wait

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
        (P, W),  # resumed while a human request of its own is still pending
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
    by: Pid | None = None,
    until: float | None = None,
) -> Process:
    """Move ``proc`` to ``state`` inside ``tx``; return the new record. A move to paused
    records ``by``, who paused it; a move to waiting records its deadline ``until`` (or keeps
    the one it has).

    Raises Conflict naming both states when the edge is not in EDGES, or when another
    connection moved the process since ``proc`` was read.
    """
    if (proc.state, state) not in EDGES:
        raise Conflict(f"process {proc.pid} cannot go from {proc.state} to {state}")
    if (state is ProcState.WAITING) != (wait is not None):
        raise ValueError("wait is given exactly when the new state is waiting")
    changes: dict[str, object] = {
        "state": state,
        "wait": wait,
        "exit": exit if state is ProcState.EXITED else None,
        "result": result if result is not None else proc.result,
        "updated": tx.now,
        "paused_by": by if state is ProcState.PAUSED else None,
    }
    if state is ProcState.WAITING:
        changes["wake"] = until if until is not None else proc.wake
    if state is ProcState.EXITED:  # no wait or term outlives the process (one row write, not two)
        changes.update(wake=None, term=0)
    new = proc.changed(**changes)
    if not rows.update_process(tx.conn, proc.pid, proc.state, changes):
        raise Conflict(f"process {proc.pid} was changed by another connection while it was {proc.state}")
    detail: dict[str, object] = {"from": proc.state.value, "state": state.value}
    if wait is not None:
        detail["wait"] = wait.value
        if new.wake is not None:
            detail["wake"] = new.wake
    if state is ProcState.EXITED:
        detail["exit"] = (exit or Exit.OK).value
        detail["result"] = new.result
    tx.event(proc.pid, "state", detail)
    tx.on_commit.append(lambda: kernel.remember(new))
    return new


def mark(kernel: Kernel, proc: Process, state: ProcState) -> Process:
    """Move ``proc`` between runnable and running without a commit of its own; return the new record.

    The scheduler does this twice a quantum. The row and its event are written with the host's
    next transaction (group commit): a host that dies first leaves the process runnable, which
    is what recovery makes of a running one anyway. If another connection moved the process
    meanwhile (a kill from another terminal), the write is skipped and that move stands.
    """
    if {proc.state, state} != {ProcState.RUNNABLE, ProcState.RUNNING}:
        raise ValueError("mark only moves between runnable and running")
    new = proc.changed(state=state, updated=kernel.clock.now())
    kernel.remember(new)

    def write(tx: Tx) -> None:
        if rows.update_process(tx.conn, proc.pid, proc.state, {"state": state, "updated": new.updated}):
            tx.event(proc.pid, "state", {"from": proc.state.value, "state": state.value})

    kernel.defer(write)
    return new


def park(kernel: Kernel, tx: Tx, proc: Process, wait: Wait, until: float | None = None) -> Process:
    """Make ``proc`` wait for ``wait`` (until time ``until`` at the latest); return the new record.

    The scheduler will not run it until it is woken. A process that already waits keeps waiting.
    """
    if proc.state is ProcState.WAITING:
        if proc.wait is wait:
            return proc if until is None else amend(kernel, tx, proc, wake=until)
        proc = transition(kernel, tx, proc, ProcState.RUNNABLE)
    return transition(kernel, tx, proc, ProcState.WAITING, wait=wait, until=until)


def wake(kernel: Kernel, tx: Tx, pid: Pid, *waits: Wait) -> bool:
    """Make ``pid`` runnable if it waits for one of ``waits``; return whether it did.

    Its blocking call is dispatched again and decides whether what it waited for came.
    """
    proc = rows.load_process(tx.conn, pid)
    if proc is None or proc.state is not ProcState.WAITING or proc.wait not in waits:
        return False
    transition(kernel, tx, proc, ProcState.RUNNABLE)
    return True


def amend(kernel: Kernel, tx: Tx, proc: Process, **fields: Any) -> Process:
    """Change fields of ``proc`` other than its state inside ``tx``; return the new record."""
    new = proc.changed(**fields)
    if not rows.update_process(tx.conn, proc.pid, proc.state, fields):
        raise Conflict(f"process {proc.pid} was changed by another connection; it is no longer {proc.state}")
    tx.on_commit.append(lambda: kernel.remember(new))
    return new


def settle(kernel: Kernel, tx: Tx, proc: Process) -> Process:
    """Clear ``proc``'s timed wait once its blocking call returned; return the new record."""
    return proc if proc.wake is None else amend(kernel, tx, proc, wake=None)


def end(kernel: Kernel, tx: Tx, proc: Process, how: Exit, result: str | None, by: str) -> Process:
    """Exit ``proc`` inside ``tx`` the one way: return the exited record.

    Its pending action and journal go, its pending human requests are cancelled, its children
    go to the nearest living ancestor (or the host), and a parent waiting on a child wakes.
    """
    new = transition(kernel, tx, proc, ProcState.EXITED, exit=how, result=result)
    rows.clear_action(tx.conn, proc.pid)
    rows.cancel_requests_of(tx.conn, proc.pid, by, tx.now)
    heir = _heir(tx, proc)
    adopted = _adopt(kernel, tx, proc, heir)
    if proc.parent is not None:
        wake(kernel, tx, proc.parent, Wait.CHILD)
    if adopted and heir is not None and heir != proc.parent:
        wake(kernel, tx, heir, Wait.CHILD)
    pid = proc.pid
    tx.on_commit.append(lambda: kernel.forget_context(pid))
    tx.on_commit.append(lambda: _stop_commands(kernel, pid))
    return new


def _stop_commands(kernel: Kernel, pid: Pid) -> None:
    """Kill every command the exited process still has running: nothing it started outlives it."""
    kernel.shell.kill(pid)


def _heir(tx: Tx, proc: Process) -> Pid | None:
    """Return the nearest living ancestor of ``proc``, or None (the host)."""
    parent = proc.parent
    while parent is not None:
        p = rows.load_process(tx.conn, parent)
        if p is None:
            return None
        if p.state is not ProcState.EXITED:
            return p.pid
        parent = p.parent
    return None


def _adopt(kernel: Kernel, tx: Tx, proc: Process, heir: Pid | None) -> int:
    """Give ``proc``'s children that are alive or not yet reaped to ``heir``; return how many."""
    moved = 0
    for child in rows.children_of(tx.conn, proc.pid, reaped=False):
        amend(kernel, tx, child, parent=heir, updated=tx.now)
        tx.event(child.pid, "adopt", {"from": proc.pid, "parent": heir})
        moved += 1
    return moved


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
    priority: int,
    mode: Fork = Fork.SPAWN,
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
        priority=priority,
        mode=mode,
        creator=parent,
    )
    pid = rows.insert_process(tx.conn, blank)
    proc = dataclasses.replace(blank, pid=pid)
    tx.event(pid, "spawn", {"name": name, "image": image, "parent": parent, "goal": goal, "mode": mode})
    tx.on_commit.append(lambda: kernel.remember(proc))
    return proc


OWN = "own"  # the issuer of a process's rights on its own namespace (exec keeps them)
OWN_OBJECTS = frozenset({Right.READ, Right.WRITE, Right.DELETE})
OWN_NAMESPACE = frozenset({Right.LIST, Right.WRITE})
OWN_TOOLS = frozenset({Right.EXECUTE, Right.LIST})  # run and list its own JIT tools; registering is granted


def own_namespace(kernel: Kernel, tx: Tx, pid: Pid) -> None:
    """Make ``proc/<pid>`` and give ``pid`` its rights there and on its own JIT tool table:
    capabilities like any other (a person may revoke them, or deny beside them), which it may
    pass on. Called by who
    creates a process, after the grants it passes (their ids come first)."""
    objrows.insert_namespace(tx.conn, f"proc/{pid}", pid, tx.now)
    caps.issue(tx.conn, pid, Grant(f"obj:proc/{pid}/*", OWN_OBJECTS, Effect.ALLOW, delegable=True), OWN)
    caps.issue(tx.conn, pid, Grant(f"ns:proc/{pid}", OWN_NAMESPACE, Effect.ALLOW, delegable=True), OWN)
    caps.issue(tx.conn, pid, Grant(f"tool:proc/{pid}/*", OWN_TOOLS, Effect.ALLOW, delegable=True), OWN)


CHILD_RIGHTS = frozenset({Right.READ, Right.SIGNAL, Right.SEND})  # what a parent holds on its child


def parent_rights(kernel: Kernel, tx: Tx, parent: Pid, child: Pid) -> None:
    """Give ``parent`` the rights to wait on, signal and write to the child it made, and to list,
    read and change its objects (what proc.merge reads and a restore of its checkpoints writes)."""
    issuer = f"spawn:{child}"
    made: list[Capability] = []
    for own in (
        Grant(f"proc:{child}", CHILD_RIGHTS, Effect.ALLOW),
        Grant(f"obj:proc/{child}/*", OWN_OBJECTS, Effect.ALLOW),
        Grant(f"ns:proc/{child}", OWN_NAMESPACE, Effect.ALLOW),
    ):
        cid = caps.issue(tx.conn, parent, own, issuer)
        made.append(Capability(cid, parent, own.pattern, own.rights, own.effect, issuer, None, None, False, None,
                               False, None, None))  # fmt: skip

    def learn() -> None:
        for cap in made:
            kernel.learn_cap(cap)

    tx.on_commit.append(learn)


def move(kernel: Kernel, tx: Tx, proc: Process, cwd: str) -> Process:
    """Give ``proc`` working directory ``cwd`` inside ``tx``; return the new record."""
    new = amend(kernel, tx, proc, cwd=cwd, updated=tx.now)
    tx.event(proc.pid, "chdir", {"cwd": cwd})
    return new


def block(
    kernel: Kernel,
    tx: Tx,
    proc: Process,
    wait: Wait,
    blocking: bool,
    timeout: float | None,
    none: dict[str, Any],
) -> dict[str, Any] | Parked:
    """The one way a blocking call waits: park until woken or ``timeout``; return ``none`` with
    ``timeout: true`` once the deadline passed (or at once when not ``blocking``), or with
    ``interrupted: true`` when an interrupt came first."""
    if not blocking or timeout == 0:
        return none
    if rows.first_message(tx.conn, proc.pid, SHOWN_KINDS, None) is not None:
        settle(kernel, tx, proc)  # like a signal: a pending interrupt ends any wait
        return {**none, "interrupted": True}
    if proc.wake is not None and tx.now >= proc.wake:
        settle(kernel, tx, proc)
        return {**none, "timeout": True}
    until = tx.now + timeout if proc.wake is None and timeout is not None else None
    park(kernel, tx, proc, wait, until=until)
    return Parked(proc.pid, wait)


def post(kernel: Kernel, tx: Tx, pid: Pid, sender: Pid, kind: str, corr: str | None, body: str) -> int:
    """Queue a message for ``pid`` inside ``tx``; return its id. The one way a message is queued."""
    kernel.quiet.discard(pid)  # the agent looks at its queue again before the next model call
    return rows.insert_message(tx.conn, pid, sender, kind, corr, body, tx.now)
