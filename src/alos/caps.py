"""Decide one call against a process's capabilities; issue and revoke capabilities.

Decision rule (ARCHITECTURE.md section 4): a live deny that matches dominates everything.
Otherwise the most specific matching allow or ask decides: a one-shot grant bound to the
call's digest first, then an exact resource, then the deepest subtree; at equal specificity a
human's answer outranks the host's grants (so "approve always" beats the ask that asked), and
then ask wins. Nothing matching means deny. Decides and records; performs no effect.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from alos import shellforms
from alos.errors import Denied
from alos.rights import Capability, Effect, Grant, Need, Right, covers, derive, kind, specificity
from alos.store import rows
from alos.types import Pid


@dataclass(frozen=True, slots=True)
class Decision:
    effect: Effect
    need: Need | None  # the need that decided a deny or an ask
    caps: tuple[Capability, ...]  # the capabilities that decided (empty: nothing matched)


def _decide_need(
    caps: Sequence[Capability], need: Need, digest: Callable[[], str], now: float
) -> tuple[Effect, Capability | None]:
    deny: Capability | None = None
    best: Capability | None = None
    best_key: tuple[int, int, int, int] = (-1, -1, -1, -1)
    for cap in caps:
        if need.right not in cap.rights or not covers(cap.pattern, need.resource, deny=cap.effect is Effect.DENY):
            continue
        if not cap.live(now) or (cap.digest is not None and cap.digest != digest()):
            continue
        if cap.effect is Effect.DENY:
            if deny is None or cap.digest is not None:  # a bound deny carries the human's reason
                deny = cap
            continue
        key = (
            int(cap.digest is not None),
            specificity(cap.pattern),
            int(cap.request is not None),
            int(cap.effect is Effect.ASK),
        )
        if key > best_key:
            best, best_key = cap, key
    if deny is not None:
        return Effect.DENY, deny
    if best is None:
        return Effect.DENY, None
    return best.effect, best


def decide(caps: Sequence[Capability], needs: Sequence[Need], digest: Callable[[], str], now: float) -> Decision:
    """Return the decision for a call with ``needs``; ``digest()`` gives the call's digest."""
    used: list[Capability] = []
    asked: tuple[Need, Capability] | None = None
    for need in needs:
        effect, cap = _decide_need(caps, need, digest, now)
        if effect is Effect.DENY:
            return Decision(Effect.DENY, need, (cap,) if cap else ())
        assert cap is not None
        if effect is Effect.ASK and asked is None:
            asked = (need, cap)
        used.append(cap)
    if asked is not None:
        return Decision(Effect.ASK, asked[0], (asked[1],))
    return Decision(Effect.ALLOW, None, tuple(used))


def _overlap(a: str, b: str) -> bool:
    """Return whether patterns ``a`` and ``b`` match some resource in common (for two shell
    patterns: whether their programs may be the same; their argv rules are not compared)."""
    if a.startswith("shell:") and b.startswith("shell:"):
        pa, pb = shellforms.parse(a).program, shellforms.parse(b).program
        return (
            "*" in (pa, pb)
            or pa == pb
            or (pa.endswith("/*") and pb.startswith(pa[:-1]))
            or (pb.endswith("/*") and pa.startswith(pb[:-1]))
        )
    return covers(a, b.removesuffix("/*").removesuffix("*")) or covers(b, a.removesuffix("/*").removesuffix("*"))


def attenuate(held: Sequence[Capability], grant: Grant, now: float) -> list[tuple[Grant, int]]:
    """Return what passing ``grant`` to a child issues: (grant, the held capability it derives from).

    The first pair is ``grant`` itself, derived from a held capability (rights only shrink). Then
    come copies of every held deny, and for an allow every held ask, that overlaps it, each on
    the narrower of the two patterns (so it ties or beats the grant, and ties go to ask): a child
    never escapes a deny or an ask its parent is under. Raises Denied naming what was asked and
    what is held when no held capability covers ``grant``.
    """
    refusals: list[str] = []
    source: Capability | None = None
    for cap in held:
        if cap.digest is not None or not cap.live(now) or not _overlap(cap.pattern, grant.pattern):
            continue
        try:
            derive(cap, grant, now)
        except Denied as err:
            refusals.append(err.message)
            continue
        if source is None or specificity(cap.pattern) > specificity(source.pattern):
            source = cap
    if source is None:
        asked = f"{grant.pattern}={','.join(sorted(grant.rights))} ({grant.effect})"
        why = "; ".join(refusals[:3]) if refusals else "it holds no capability on that resource"
        raise Denied(f"cannot pass {asked}: a process passes only what it holds, attenuated ({why})")
    out = [(grant, source.id)]
    for cap in held:
        shadows = cap.effect is Effect.DENY or (cap.effect is Effect.ASK and grant.effect is Effect.ALLOW)
        rights = cap.rights & grant.rights
        if cap is source or not shadows or not rights or cap.digest is not None or not cap.live(now):
            continue
        if _overlap(cap.pattern, grant.pattern):
            # the narrower of the two: an ask at least as specific as the grant still wins over it
            narrow = max(cap.pattern, grant.pattern, key=specificity)
            out.append((Grant(narrow, rights, cap.effect, expires=cap.expires), cap.id))
    return out


def sandbox_writes(held: Sequence[Capability], now: float) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Return what an isolated command of a process holding ``held`` may write, as bubblewrap binds
    it: (the paths bound writable, the paths inside them bound read-only again).

    Writable: a live, unbound, unlimited allow of write on an fs path, unless a deny of write
    covers it (deny dominates, as for fs.write). Read-only again: every deny or ask of write (a
    command cannot ask a person, so an ask is a no). A path that does not exist yet cannot be
    bound: a denied file not yet made can be made by a command (docs/shell.md).
    """
    allowed: list[str] = []
    kept: list[str] = []
    denied: list[str] = []
    for cap in held:
        if kind(cap.pattern) != "fs" or Right.WRITE not in cap.rights or cap.digest is not None or not cap.live(now):
            continue
        path = cap.pattern.removeprefix("fs:").removesuffix("/*").removesuffix("*") or "/"
        if cap.effect is Effect.ALLOW:
            if cap.uses is None:  # a counted allow cannot be counted inside a command
                allowed.append(path)
        else:
            kept.append(path)
            if cap.effect is Effect.DENY:
                denied.append(cap.pattern)
    free = [p for p in allowed if not any(covers(d, "fs:" + p) for d in denied)]
    return tuple(sorted(set(free))), tuple(sorted(set(kept)))


def sandbox_network(held: Sequence[Capability], now: float) -> bool:
    """Return whether an isolated command of a process holding ``held`` keeps the host's network:
    only with a live allow on every host and address (``net:*``, read and write) and no deny
    or ask on any net resource (a command's traffic cannot be decided host by host)."""
    live = [c for c in held if kind(c.pattern) == "net" and c.live(now) and c.digest is None]
    if any(c.effect is not Effect.ALLOW for c in live):
        return False
    return any(c.pattern == "net:*" and {Right.READ, Right.WRITE} <= c.rights and c.uses is None for c in live)


def as_grant(cap: Capability) -> Grant:
    """Return the grant ``cap`` was issued from (to issue its like to another process)."""
    return Grant(cap.pattern, cap.rights, cap.effect, cap.expires, cap.uses, cap.delegable)


def issue(conn: sqlite3.Connection, pid: Pid, grant: Grant, issuer: str, parent: int | None = None) -> int:
    """Insert a capability for ``pid`` inside the caller's transaction; return its id."""
    return rows.insert_capability(conn, pid, grant, issuer, parent)


def spend(conn: sqlite3.Connection, used: Sequence[Capability]) -> None:
    """Spend one use of every counted capability in ``used``."""
    for cap in used:
        if cap.uses is not None:
            rows.use_capability(conn, cap.id)


def revoke(conn: sqlite3.Connection, cap_id: int) -> list[int]:
    """Revoke ``cap_id`` and all capabilities derived from it; return the ids revoked."""
    return rows.revoke_capability(conn, cap_id)
