"""ns.create and obj.share: making namespaces and passing object rights (docs/objects.md).

A namespace made by ns.create belongs to its maker: its checkpoints cover it, and the maker
gets every right on it, able to pass them on. obj.share passes another process a subset of
the object or namespace rights the caller holds, derived from them as a spawn's grants are
(rights only shrink; revoking the source revokes what was passed), with every deny and ask
of the caller that overlaps it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from alos import caps
from alos.errors import Denied, Exists, Invalid, NotFound
from alos.kernel import Kernel, Tx
from alos.kernel import objects as om
from alos.rights import Effect, Grant, Need, Right, kind, make_grant
from alos.store import objrows, rows
from alos.types import HOST, Process, ProcState

NS_RIGHTS = frozenset({Right.LIST, Right.WRITE, Right.ADMIN})
OBJ_RIGHTS = frozenset({Right.READ, Right.WRITE, Right.DELETE})


@dataclass(frozen=True, slots=True)
class CreateArgs:
    """Make namespace ``name`` (a lowercase name); you get every right on it and may share them."""

    name: str


@dataclass(frozen=True, slots=True)
class ShareArgs:
    """Pass process ``pid`` ``rights`` on ``pattern`` (obj:NS/NAME, obj:NS/* or ns:NS) that you
    hold yourself; ``effect`` allow or ask. A bare name is in your namespace."""

    pid: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
    pattern: str
    rights: list[str]
    effect: Literal["allow", "ask"] = "allow"


def create_needs(proc: Process, args: CreateArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need(f"ns:{args.name}", Right.ADMIN),)


def resolve_create(kernel: Kernel, proc: Process, args: CreateArgs) -> CreateArgs:
    """Check the name: a made namespace is never ``proc/...``."""
    om.check_ns(args.name)
    if args.name.startswith("proc/"):
        raise Invalid("proc/<pid> namespaces are the processes' own; name another, e.g. 'research'")
    return args


def create(kernel: Kernel, tx: Tx, proc: Process, args: CreateArgs) -> dict[str, Any]:
    """Make the namespace owned by the caller and give it every right on it."""
    if not objrows.insert_namespace(tx.conn, args.name, proc.pid, tx.now):
        raise Exists(f"namespace {args.name} exists")
    issued: list[int] = []
    if proc.pid != HOST:
        issued = own(kernel, tx, proc.pid, args.name, issuer=f"ns:{args.name}")
    return {"ns": args.name, "capabilities": issued}


def own(kernel: Kernel, tx: Tx, pid: int, ns: str, issuer: str) -> list[int]:
    """Issue ``pid`` every right on namespace ``ns`` and its objects (passable); return the ids."""
    ids = [
        caps.issue(tx.conn, pid, Grant(f"obj:{ns}/*", OBJ_RIGHTS, Effect.ALLOW, delegable=True), issuer),
        caps.issue(tx.conn, pid, Grant(f"ns:{ns}", NS_RIGHTS, Effect.ALLOW, delegable=True), issuer),
    ]
    tx.on_commit.append(lambda: kernel.forget_caps(pid))
    return ids


def resolve_share(kernel: Kernel, proc: Process, args: ShareArgs) -> ShareArgs:
    """Return ``args`` with a bare object name made ``obj:proc/<caller>/NAME``."""
    if ":" not in args.pattern and proc.pid != HOST:
        return ShareArgs(args.pid, f"obj:{om.own(proc.pid)}/{args.pattern}", args.rights, args.effect)
    return args


def share_needs(proc: Process, args: ShareArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need(f"proc:{args.pid}", Right.SEND),)


def share(kernel: Kernel, tx: Tx, proc: Process, args: ShareArgs) -> dict[str, Any]:
    """Issue the grant to ``pid``, derived from what the caller holds; return the ids issued."""
    if kind(args.pattern) not in ("obj", "ns"):
        raise Invalid(f"obj_share passes object and namespace rights (obj:..., ns:...), not {args.pattern[:80]!r}")
    target = rows.load_process(tx.conn, args.pid)
    if target is None or target.state is ProcState.EXITED:
        raise NotFound(f"no live process {args.pid} to share with")
    if args.pid == proc.pid:
        raise Invalid("a process already holds what it would share with itself")
    grant = make_grant(args.pattern, args.rights, args.effect, "/")
    issued: list[tuple[Grant, int | None]]
    if proc.pid == HOST:
        issued = [(grant, None)]
    else:
        held = kernel.caps_on(proc.pid, frozenset({kind(grant.pattern)}))
        try:
            issued = list(caps.attenuate(held, grant, tx.now))
        except Denied as err:
            raise Denied(f"obj_share: {err.message}") from None
    issuer = "host" if proc.pid == HOST else f"pid:{proc.pid}"
    ids = [caps.issue(tx.conn, args.pid, g, issuer, source) for g, source in issued]
    tx.on_commit.append(lambda: kernel.forget_caps(args.pid))
    tx.event(args.pid, "share", {"from": proc.pid, "pattern": grant.pattern, "rights": sorted(grant.rights)})
    return {"pid": args.pid, "pattern": grant.pattern, "rights": sorted(grant.rights), "capabilities": ids}
