"""cap.*: issue and revoke capabilities (host only in this release). Revocation cascades."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from alos import caps
from alos.errors import NotFound
from alos.kernel import Kernel, Tx
from alos.rights import Need, Right, derive, make_grant
from alos.store import rows
from alos.types import Process


@dataclass(frozen=True, slots=True)
class GrantArgs:
    """Give process ``pid`` a capability; with ``parent`` it must attenuate that capability."""

    pid: int
    pattern: str
    rights: list[str]
    effect: Literal["allow", "ask", "deny"] = "allow"
    uses: int | None = None
    expires: float | None = None
    delegable: bool = False
    parent: int | None = None


@dataclass(frozen=True, slots=True)
class RevokeArgs:
    """Revoke capability ``id`` and every capability derived from it."""

    id: int


def grant_needs(proc: Process, args: GrantArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need(f"proc:{args.pid}", Right.ADMIN),)


def revoke_needs(proc: Process, args: RevokeArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need("proc:*", Right.ADMIN),)


def grant(kernel: Kernel, tx: Tx, proc: Process, args: GrantArgs) -> dict[str, Any]:
    """Issue the capability; return its id."""
    target = kernel.proc(args.pid)
    g = make_grant(
        args.pattern,
        args.rights,
        args.effect,
        target.cwd,
        expires=args.expires,
        uses=args.uses,
        delegable=args.delegable,
    )
    if args.parent is not None:
        parent = rows.load_capability(tx.conn, args.parent)
        if parent is None:
            raise NotFound(f"no capability {args.parent} to derive from")
        g = derive(parent, g, tx.now)
    cid = caps.issue(tx.conn, args.pid, g, "host" if proc.pid == 0 else f"pid:{proc.pid}", args.parent)
    tx.on_commit.append(lambda: kernel.forget_caps(args.pid))
    return {"id": cid, "pid": args.pid, "pattern": g.pattern}


def revoke(kernel: Kernel, tx: Tx, proc: Process, args: RevokeArgs) -> dict[str, Any]:
    """Revoke the capability and its descendants; return the ids revoked."""
    if rows.load_capability(tx.conn, args.id) is None:
        raise NotFound(f"no capability {args.id}")
    ids = caps.revoke(tx.conn, args.id)
    tx.on_commit.append(kernel.forget_caps)
    return {"revoked": ids}
