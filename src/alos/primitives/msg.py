"""msg.*: durable message queues between processes (and from the host).

send queues a message and wakes a receiver that waits on its queue; recv takes the oldest
message that matches (by kind and correlation id), or waits for one (until a timeout), or
says none is there. Interrupts and human guidance arrive through the same queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from alos import limits
from alos.errors import Denied, Invalid, Limit, NotFound
from alos.kernel import Kernel, Tx
from alos.kernel.proc import block, post, settle, wake
from alos.rights import Need, Right
from alos.store import rows
from alos.types import HOST, SHOWN_KINDS, Message, Parked, Process, ProcState, Seconds, Wait


@dataclass(frozen=True, slots=True)
class SendArgs:
    """Send process ``pid`` a message: ``body`` text, a ``kind`` and an optional correlation id."""

    pid: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
    body: str
    kind: str = "message"
    corr: str | None = None


@dataclass(frozen=True, slots=True)
class RecvArgs:
    """Take the oldest message in your queue (of ``kind`` / ``corr`` if given). ``block``: wait
    for one (at most ``timeout`` seconds); otherwise return at once with none."""

    kind: str | None = None
    corr: str | None = None
    block: bool = True
    timeout: Seconds | None = None


def send_needs(proc: Process, args: SendArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need(f"proc:{args.pid}", Right.SEND),)


def recv_needs(proc: Process, args: RecvArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return ()  # a process reads its own queue


def send(kernel: Kernel, tx: Tx, proc: Process, args: SendArgs) -> dict[str, Any]:
    """Queue the message; return its id. Wakes the receiver if it waits on its queue."""
    if len(args.body.encode()) > limits.MESSAGE_MAX_BYTES:
        raise Limit(f"message body is {len(args.body.encode())} bytes; at most {limits.MESSAGE_MAX_BYTES}")
    if not args.kind or len(args.kind) > 64:
        raise Invalid("a message kind is 1 to 64 characters, e.g. 'message' or 'result'")
    if args.kind in SHOWN_KINDS and proc.pid != HOST:
        raise Denied(f"kind {args.kind!r} is sent by the runtime (proc.signal, 'alos send'), not by a process")
    target = rows.load_process(tx.conn, args.pid)
    if target is None or args.pid == HOST:
        raise NotFound(f"no process {args.pid} to send to; 'alos ps' lists the processes")
    if target.state is ProcState.EXITED:
        raise Invalid(f"process {args.pid} has exited; its queue takes no more messages")
    mid = post(kernel, tx, args.pid, proc.pid, args.kind, args.corr, args.body)
    tx.event(args.pid, "message", {"id": mid, "from": proc.pid, "kind": args.kind, "corr": args.corr})
    waits = (Wait.MESSAGE, Wait.TIMER, Wait.CHILD) if args.kind in SHOWN_KINDS else (Wait.MESSAGE,)
    wake(kernel, tx, args.pid, *waits)
    return {"id": mid, "pid": args.pid}


def recv(kernel: Kernel, tx: Tx, proc: Process, args: RecvArgs) -> dict[str, Any] | Parked:
    """Return the message taken, ``{"message": null}`` when none came, or Parked while waiting."""
    kinds = (args.kind,) if args.kind else ()
    msg = rows.first_message(tx.conn, proc.pid, kinds, args.corr)
    if msg is not None:
        rows.take_message(tx.conn, msg.id, tx.now)
        settle(kernel, tx, proc)
        return {"message": shape(msg)}
    return block(kernel, tx, proc, Wait.MESSAGE, args.block, args.timeout, {"message": None})


def shape(msg: Message) -> dict[str, Any]:
    """Return a message as a process reads it."""
    return {"id": msg.id, "from": msg.sender, "kind": msg.kind, "corr": msg.corr, "body": msg.body, "sent": msg.sent}
