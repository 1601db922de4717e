"""proc.wait, proc.merge, proc.signal, proc.exit: how processes end and hear of each other's end.

wait collects a child's exit (one child or any; blocking with a timeout, or not); a
speculative child's result is withheld until the parent calls merge. signal needs ``signal``
on ``proc:<pid>``: interrupt and term arrive through the message queue, pause and resume
move the process, kill ends it at once. exit ends the caller with a result it can read.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from alos import codec, limits
from alos.errors import Conflict, Denied, Invalid, NotFound
from alos.kernel import Kernel, Tx, objects
from alos.kernel.proc import amend, block, end, post, settle, transition, wake
from alos.rights import Need, Right
from alos.store import rows
from alos.types import HOST, Exit, Fork, Parked, Process, ProcState, Seconds, Wait

PidArg = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]


@dataclass(frozen=True, slots=True)
class WaitArgs:
    """Collect the exit of child ``pid`` (any child when omitted). ``block``: wait for it (at most
    ``timeout`` seconds); otherwise return at once."""

    pid: PidArg | None = None
    block: bool = True
    timeout: Seconds | None = None


@dataclass(frozen=True, slots=True)
class MergeArgs:
    """Take the result of child ``pid`` once it has exited (a speculative child's comes only this
    way), and the objects it wrote into your namespace (unless ``objects`` is false)."""

    pid: PidArg
    objects: bool = True


@dataclass(frozen=True, slots=True)
class SignalArgs:
    """Send process ``pid`` a signal: interrupt (it reads ``text`` before its next model call),
    pause, resume, term (finish now, or be killed) or kill."""

    pid: PidArg
    signal: Literal["interrupt", "pause", "resume", "term", "kill"]
    text: str = ""


@dataclass(frozen=True, slots=True)
class ExitArgs:
    """End this process with status ok or failed and a result for whoever waits on it: ``result``
    text, or the contents of ``file`` (a file you may read)."""

    status: Literal["ok", "failed"] = "ok"
    result: str = ""
    file: str | None = None


def wait_needs(proc: Process, args: WaitArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need(f"proc:{args.pid}", Right.READ),) if args.pid is not None else ()


@dataclass(frozen=True, slots=True)
class MergePlan:
    """A merge as it was decided: what it would change in the caller's namespace (objects.merge_plan)."""

    args: MergeArgs
    changes: objects.Merge


def resolve_merge(kernel: Kernel, proc: Process, args: MergeArgs) -> MergePlan:
    """Return the merge's plan, so that each object it reads and writes is decided."""
    if not args.objects or proc.pid == HOST:
        return MergePlan(args, ())
    return MergePlan(args, objects.merge_plan(kernel.store.conn, args.pid, proc.pid)[0])


def merge_needs(proc: Process, plan: MergePlan) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them: the child, and
    for each object merged a read of the child's and a write (or delete) of the caller's."""
    child, mine = objects.own(plan.args.pid), objects.own(proc.pid)
    needs = [Need(f"proc:{plan.args.pid}", Right.READ)]
    if plan.changes:  # names are listed before any object is named in a refusal
        needs += [Need(f"ns:{child}", Right.LIST), Need(f"ns:{mine}", Right.WRITE)]
    for name, change in plan.changes:
        needs.append(Need(objects.resource(child, name), Right.READ))
        needs.append(Need(objects.resource(mine, name), Right.DELETE if change == "delete" else Right.WRITE))
    return tuple(needs)


def signal_needs(proc: Process, args: SignalArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need(f"proc:{args.pid}", Right.SIGNAL),)


def exit_needs(proc: Process, args: ExitArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need(f"fs:{args.file}", Right.READ),) if args.file is not None else ()  # ending itself is free


def resolve_exit(kernel: Kernel, proc: Process, args: ExitArgs) -> ExitArgs:
    """Return ``args`` with the result file's path made real and absolute."""
    if args.file is None:
        return args
    return dataclasses.replace(args, file=kernel.files.resolve(proc.cwd, args.file))


def wait(kernel: Kernel, tx: Tx, proc: Process, args: WaitArgs) -> dict[str, Any] | Parked:
    """Return the exited child collected, ``{"pid": null}`` when none exited yet, or Parked."""
    if args.pid is not None:
        one = rows.load_process(tx.conn, args.pid)
        if one is None or one.parent != proc.pid:
            raise NotFound(f"process {args.pid} is not a child of process {proc.pid}; proc_list shows yours")
        if one.reaped:
            raise Conflict(f"process {args.pid} was already waited for")
        children = [one]
    else:
        children = rows.children_of(tx.conn, proc.pid, reaped=False)
        if not children:
            raise NotFound(f"process {proc.pid} has no children to wait for")
    done = next((c for c in children if c.state is ProcState.EXITED), None)
    if done is None:
        running = [c.pid for c in children]
        return block(kernel, tx, proc, Wait.CHILD, args.block, args.timeout, {"pid": None, "running": running})
    amend(kernel, tx, done, reaped=True)
    settle(kernel, tx, proc)
    return _exited(done)


def _exited(child: Process) -> dict[str, Any]:
    out: dict[str, Any] = {"pid": child.pid, "name": child.name, "status": (child.exit or Exit.OK).value}
    if child.mode == Fork.SPECULATIVE:
        out["result"] = None
        out["note"] = f"speculative: take its result with proc_merge(pid={child.pid})"
    else:
        out["result"] = child.result
    return out


def merge(kernel: Kernel, tx: Tx, proc: Process, plan: MergePlan) -> dict[str, Any]:
    """Return the result of an exited child and merge the objects it wrote as decided (objects.merge)."""
    args = plan.args
    child = rows.load_process(tx.conn, args.pid)
    if child is None or child.parent != proc.pid:
        raise NotFound(f"process {args.pid} is not a child of process {proc.pid}")
    if child.state is not ProcState.EXITED:
        raise Conflict(f"process {args.pid} has not exited yet; wait for it first")
    merged: list[dict[str, Any]] = []
    conflicts: list[dict[str, Any]] = []
    if args.objects:
        changes, conflicts = objects.merge_plan(tx.conn, args.pid, proc.pid)
        if changes != plan.changes:
            raise Conflict(f"process {args.pid}'s objects or yours changed while the merge was decided; merge again")
        merged = objects.merge(kernel, tx, args.pid, proc.pid, changes)
    tx.event(proc.pid, "merge", {"child": args.pid, "objects": len(merged), "conflicts": len(conflicts)})
    out: dict[str, Any] = {"pid": args.pid, "status": (child.exit or Exit.OK).value, "result": child.result}
    if args.objects:
        out.update(objects=merged, conflicts=conflicts)
    return out


def signal(kernel: Kernel, tx: Tx, proc: Process, args: SignalArgs) -> dict[str, Any]:
    """Deliver the signal; return the target's state after it."""
    target = rows.load_process(tx.conn, args.pid)
    if target is None:
        raise NotFound(f"no process {args.pid}")
    if target.state is ProcState.EXITED:
        raise Conflict(f"process {args.pid} has already exited ({target.exit})")
    sender = "the host" if proc.pid == HOST else f"process {proc.pid}"
    sig = args.signal
    if len(args.text) > limits.QUESTION_MAX_CHARS:
        raise Invalid(f"signal text is {len(args.text)} characters; at most {limits.QUESTION_MAX_CHARS}")
    if sig == "interrupt":
        _queue(kernel, tx, proc, target, "interrupt", args.text or f"{sender} interrupted you")
    elif sig == "pause" and target.state is not ProcState.PAUSED:
        target = transition(kernel, tx, target, ProcState.PAUSED, by=proc.pid)
    elif sig == "resume" and target.state is ProcState.PAUSED:
        if proc.pid not in (HOST, target.paused_by):
            who = "the host" if target.paused_by == HOST else f"process {target.paused_by}"
            raise Denied(f"process {args.pid} was paused by {who}; only it or the host may resume it")
        held = rows.pending_requests_of(tx.conn, target.pid) > 0
        target = (
            transition(kernel, tx, target, ProcState.WAITING, wait=Wait.HUMAN)
            if held
            else transition(kernel, tx, target, ProcState.RUNNABLE)
        )
    elif sig == "term":
        if target.state in (ProcState.PAUSED, ProcState.WAITING) and target.wait in (None, Wait.HUMAN):
            target = end(kernel, tx, target, Exit.KILLED, f"terminated by {sender}", f"term by {sender}")
        else:
            text = args.text or f"{sender} asks you to finish now: wrap up and call proc_exit"
            _queue(kernel, tx, proc, target, "term", text)
            now = rows.load_process(tx.conn, target.pid) or target  # the queue may have woken it
            target = amend(kernel, tx, now, term=limits.TERM_GRACE_QUANTA)
    elif sig == "kill":
        target = end(kernel, tx, target, Exit.KILLED, f"killed by {sender}", f"kill by {sender}")
    tx.event(args.pid, "signal", {"signal": sig, "from": proc.pid})
    return {"pid": args.pid, "signal": sig, "state": target.state.value}


def _queue(kernel: Kernel, tx: Tx, proc: Process, target: Process, kind: str, text: str) -> None:
    """Queue a runtime message for ``target`` and end a wait other than a human's."""
    post(kernel, tx, target.pid, proc.pid, kind, None, text)
    wake(kernel, tx, target.pid, Wait.MESSAGE, Wait.TIMER, Wait.CHILD)


def exit_(kernel: Kernel, tx: Tx, proc: Process, args: ExitArgs) -> dict[str, Any]:
    """Exit the process with its result; its pending action ends with it."""
    if proc.pid == HOST:
        raise Invalid("the host does not exit through a syscall")
    result = args.result
    if args.file is not None:
        data, size = kernel.files.read(args.file, 0, limits.READ_MAX_BYTES)
        text = codec.text_of(data, to_end=len(data) >= size)
        if text is None:
            raise Invalid(f"{args.file} is a binary file of {size} bytes; a result is text")
        result = text
    end(kernel, tx, proc, Exit(args.status), result, "exit")
    return {"pid": proc.pid, "status": args.status}
