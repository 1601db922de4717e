"""ckpt.*: take, list, compare, restore, fork from and commit checkpoints (docs/checkpoints.md).

A process checkpoints, restores and compares itself freely; another process's checkpoints
need ``signal`` on it (take, restore) or ``read`` (list, diff, fork, commit), as a parent holds
on its child. Forking from a checkpoint needs ``spawn``; committing one registers an image
(``write`` on ``image:NAME``). The mechanics are in kernel/ckpt.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from alos import limits
from alos.errors import Invalid, Limit, NotFound
from alos.kernel import Kernel, Tx, ckpt, images, objects
from alos.kernel.action import complete
from alos.kernel.proc import create, parent_rights
from alos.rights import Need, Right
from alos.store import objrows, rows
from alos.store.objrows import Checkpoint
from alos.types import HOST, Fork, Pid, Process, ProcState

Id = Annotated[int, msgspec.Meta(ge=1, le=2**62)]
PidArg = Annotated[int, msgspec.Meta(ge=1, le=2**62)]


@dataclass(frozen=True, slots=True)
class CreateArgs:
    """Take a checkpoint of yourself (or of process ``pid``, e.g. a child), with an optional
    ``label``; ``children``: of its live descendants too."""

    pid: PidArg | None = None
    label: str | None = None
    children: bool = False


@dataclass(frozen=True, slots=True)
class ListArgs:
    """List your checkpoints (or process ``pid``'s), newest first."""

    pid: PidArg | None = None


@dataclass(frozen=True, slots=True)
class DiffArgs:
    """Say what changed between checkpoint ``id`` and checkpoint ``to`` (or now)."""

    id: Id
    to: Id | None = None


@dataclass(frozen=True, slots=True)
class RestoreArgs:
    """Roll the process of checkpoint ``id`` back to it: objects, context, queue. Rights issued
    since are dropped; outside effects since are listed, not undone."""

    id: Id


@dataclass(frozen=True, slots=True)
class ForkArgs:
    """Start a new process from checkpoint ``id`` (its objects, context and the rights it had
    that you still hold), named ``name``, with ``goal`` (the checkpoint's own by default)."""

    id: Id
    name: str | None = None
    goal: str | None = None


@dataclass(frozen=True, slots=True)
class CommitArgs:
    """Make checkpoint ``id`` a new version of image ``name``: its process's image with the
    checkpoint's objects as the seed objects of every process started from it."""

    id: Id
    name: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """A call about one checkpoint, with whose it is (read from the store, never from the caller)."""

    args: DiffArgs | RestoreArgs | ForkArgs | CommitArgs
    owner: Pid


def _target(proc: Process, pid: int | None) -> Pid:
    if pid is None:
        if proc.pid == HOST:
            raise Invalid("the host has no checkpoints of its own; name a process (pid)")
        return proc.pid
    return pid


def resolve(kernel: Kernel, proc: Process, args: DiffArgs | RestoreArgs | ForkArgs | CommitArgs) -> Plan:
    """Return the plan of a call about checkpoint ``args.id``; raises NotFound when there is none."""
    for cid in (args.id, getattr(args, "to", None)):
        if cid is not None and objrows.load_checkpoint(kernel.store.conn, cid) is None:
            raise NotFound(f"no checkpoint {cid}; ckpt_list lists them")
    c = objrows.load_checkpoint(kernel.store.conn, args.id)
    assert c is not None
    return Plan(args, c.pid)


def _on(proc: Process, pid: Pid, right: Right) -> tuple[Need, ...]:
    return () if pid == proc.pid else (Need(f"proc:{pid}", right),)


def create_needs(proc: Process, args: CreateArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return _on(proc, _target(proc, args.pid), Right.SIGNAL)


def list_needs(proc: Process, args: ListArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return _on(proc, _target(proc, args.pid), Right.READ) if args.pid is not None or proc.pid != HOST else ()


def diff_needs(proc: Process, plan: Plan) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return _on(proc, plan.owner, Right.READ)


def restore_needs(proc: Process, plan: Plan) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return _on(proc, plan.owner, Right.SIGNAL)


def fork_needs(proc: Process, plan: Plan) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need("proc:spawn", Right.SPAWN), *_on(proc, plan.owner, Right.READ))


def commit_needs(proc: Process, plan: Plan) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    assert isinstance(plan.args, CommitArgs)
    return (Need(f"image:{plan.args.name}", Right.WRITE), *_on(proc, plan.owner, Right.READ))


def spawning(plan: Plan) -> dict[str, int]:
    """A fork from a checkpoint costs a call and a child."""
    return {"tool_calls": 1, "children": 1}


def _load(tx: Tx, cid: int) -> Checkpoint:
    c = objrows.load_checkpoint(tx.conn, cid)
    if c is None:
        raise NotFound(f"no checkpoint {cid}")
    return c


def _shown(c: Checkpoint) -> dict[str, Any]:
    return {"id": c.id, "pid": c.pid, "label": c.label, "time": c.created, "by": c.taker, "with": c.parent,
            "context_messages": c.ctxlen, "state": c.body["process"]["state"]}  # fmt: skip


def create_checkpoint(kernel: Kernel, tx: Tx, proc: Process, args: CreateArgs) -> dict[str, Any]:
    """Take the checkpoint (and its descendants' with ``children``); return its id."""
    pid = _target(proc, args.pid)
    target = rows.load_process(tx.conn, pid)
    if target is None or pid == HOST:
        raise NotFound(f"no process {pid}")
    c = ckpt.take(kernel, tx, pid, proc.pid, args.label)
    out = _shown(c)
    if args.children:
        out["children"] = [ckpt.take(kernel, tx, k.pid, proc.pid, args.label, c.id).id
                           for k in ckpt.descendants(tx.conn, pid)]  # fmt: skip
    return out


async def list_checkpoints(kernel: Kernel, proc: Process, args: ListArgs) -> dict[str, Any]:
    """Return the checkpoints (the host with no pid: every process's), newest first."""
    pid = None if proc.pid == HOST and args.pid is None else _target(proc, args.pid)
    found = objrows.checkpoints_of(kernel.store.conn, pid, limits.CKPT_LIST_MAX)
    return {"checkpoints": [_shown(c) for c in found]}


async def diff(kernel: Kernel, proc: Process, plan: Plan) -> dict[str, Any]:
    """Return what changed from one checkpoint to another (or to now): objects, capabilities,
    context, record, and the outside effects in between."""
    args = plan.args
    assert isinstance(args, DiffArgs)
    conn = kernel.store.conn
    a = objrows.load_checkpoint(conn, args.id)
    b = objrows.load_checkpoint(conn, args.to) if args.to is not None else None
    assert a is not None
    if b is not None and b.pid != a.pid:
        raise Invalid(f"checkpoints {a.id} and {b.id} are of different processes ({a.pid}, {b.pid})")
    now = rows.load_process(conn, a.pid)
    upto = b.mark if b is not None else None
    namespaces = list(dict.fromkeys([*a.body["namespaces"], *(b.body["namespaces"] if b else
                                                                objrows.owned_namespaces(conn, a.pid))]))  # fmt: skip
    changed = [f"{ns}/{n}" for ns in namespaces for n in objrows.changed_since(conn, ns, a.mark, upto)
               if _differs(conn, ns, n, a.mark, upto)]  # fmt: skip
    caps_then = set(a.body["capabilities"])
    caps_now = set(b.body["capabilities"]) if b else {c.id for c in rows.capabilities_of(conn, a.pid)}
    record_now = b.body["process"] if b else ({k: getattr(now, k) for k in ckpt.KEPT} if now else {})
    effects = ckpt.effects_since(conn, a, [a.pid], namespaces)
    if b is not None:
        effects = [e for e in effects if e["audit"] <= b.audit]
    return {
        "from": a.id,
        "to": b.id if b else "now",
        "objects_changed": changed[: limits.CKPT_CHANGES_MAX],
        "objects_changed_count": len(changed),
        "capabilities_added": sorted(caps_now - caps_then),
        "capabilities_gone": sorted(caps_then - caps_now),
        "context_messages": [a.ctxlen, b.ctxlen if b else objrows.context_length(conn, a.pid)],
        "record": {k: [v, record_now.get(k)] for k, v in a.body["process"].items() if record_now.get(k) != v},
        **ckpt.listed(effects),
    }


def _differs(conn: Any, ns: str, name: str, mark: int, upto: int | None) -> bool:
    """Return whether ``ns``/``name`` holds another payload (or type) at ``upto`` (now: None) than at ``mark``."""
    then = objrows.as_of(conn, ns, name, mark)
    now = objrows.as_of(conn, ns, name, upto) if upto is not None else objrows.head(conn, ns, name)
    return _held(then) != _held(now)


def _held(v: objrows.Version | None) -> tuple[str, str] | None:
    return None if v is None or v.digest is None else (v.digest, v.type)


def restore(kernel: Kernel, tx: Tx, proc: Process, plan: Plan) -> dict[str, Any]:
    """Roll the process back to the checkpoint (kernel/ckpt.restore)."""
    c = _load(tx, plan.args.id)
    out = ckpt.restore(kernel, tx, c, proc.pid)
    skipped = []
    for child in objrows.taken_with(tx.conn, c.id):
        kid = rows.load_process(tx.conn, child.pid)
        if kid is None or kid.state is ProcState.EXITED:
            skipped.append(child.pid)
            continue
        out.setdefault("children", []).append(ckpt.restore(kernel, tx, child, proc.pid))
    if skipped:
        out["children_not_restored"] = {"pids": skipped, "why": "exited since the checkpoint"}
    return out


def fork(kernel: Kernel, tx: Tx, proc: Process, plan: Plan) -> dict[str, Any]:
    """Start a new process from the checkpoint: its objects (as they were), its context to the last
    complete turn, and the rights it had that are still live and that the caller holds now."""
    args = plan.args
    assert isinstance(args, ForkArgs)
    c = _load(tx, args.id)
    was = c.body["process"]
    name = args.name or f"{was['name']}.ckpt{c.id}"
    goal = args.goal or was["goal"]
    if not name.strip() or len(name) > 64 or not goal.strip():
        raise Invalid("a process needs a name (1 to 64 characters) and a non-empty goal")
    parent = None if proc.pid == HOST else proc.pid
    priority = min(was["priority"], proc.priority) if parent is not None else was["priority"]
    child = create(kernel, tx, parent=parent, name=name, image=was["image"], model=was["model"], cwd=was["cwd"],
                   goal=goal, priority=priority, mode=Fork.SPAWN)  # fmt: skip
    note = (
        f"[You are process {child.pid}, started from checkpoint {c.id} of process {c.pid}: the conversation "
        f"above and your objects are as they were then. Your goal: {goal}]"
    )
    objrows.replace_context(tx.conn, child.pid, [*complete(ckpt.context_at(tx.conn, c)), {"role": "user",
                                                                                         "content": note}])  # fmt: skip
    copied = 0
    for v in objrows.view(tx.conn, objects.own(c.pid), c.mark):
        objects.copy(kernel, tx, v, objects.own(child.pid), v.name, child.pid)
        copied += 1
    issued, missing = ckpt.passed_on(kernel, tx, c, proc.pid, child.pid)
    if parent is not None:
        parent_rights(kernel, tx, parent, child.pid)
    tx.on_commit.append(lambda: kernel.forget_caps(child.pid))
    out: dict[str, Any] = {"pid": child.pid, "name": name, "checkpoint": c.id, "objects": copied,
                           "capabilities": issued}  # fmt: skip
    if missing:
        out["not_passed"] = {"patterns": missing, "why": "you no longer hold them (or may not pass them on)"}
    return out


def commit(kernel: Kernel, tx: Tx, proc: Process, plan: Plan) -> dict[str, Any]:
    """Register the checkpoint's image with its objects as seed objects; return the new ref.
    The image's grants stay requests: whoever runs it grants what they choose."""
    args = plan.args
    assert isinstance(args, CommitArgs)
    c = _load(tx, args.id)
    body = dict(images.body(kernel, c.body["process"]["image"]))
    seeds: list[dict[str, Any]] = []
    for v in objrows.view(tx.conn, objects.own(c.pid), c.mark):
        if len(seeds) >= limits.OBJ_SEED_MAX:
            raise Limit(f"checkpoint {c.id} holds more than {limits.OBJ_SEED_MAX} objects; an image seeds at most that")
        assert v.digest is not None
        kernel.blobs.put(objects.payload(kernel, v), v.digest)  # the image names its payloads by digest
        seeds.append({"name": v.name, "type": v.type, "digest": v.digest.removeprefix("sha256:"), "bytes": v.size})
    description = args.description or f"{body.get('description', '')} (checkpoint {c.id} of process {c.pid})"
    body.update(name=args.name, description=description[:500], objects=seeds)
    body.pop("version", None)
    out = images.store(kernel, tx, body, proc.pid, listed=True)
    return {**out, "checkpoint": c.id, "objects": len(seeds)}
