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
from alos.errors import Conflict, Invalid, Limit, NotFound
from alos.kernel import Kernel, Tx, ckpt, images, objects
from alos.kernel.action import closed
from alos.kernel.proc import create, own_namespace, parent_rights
from alos.rights import Need, Right
from alos.store import objrows, rows, toolrows
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
    """Say what changed between checkpoint ``id`` and checkpoint ``to`` (or now) of yourself, or
    of process ``pid``."""

    id: Id
    to: Id | None = None
    pid: PidArg | None = None


@dataclass(frozen=True, slots=True)
class RestoreArgs:
    """Roll the process of checkpoint ``id`` back to it: objects, context, queue. Rights issued
    since are dropped; outside effects since are listed, not undone. ``pid``: whose checkpoint
    it is (yourself by default)."""

    id: Id
    pid: PidArg | None = None


@dataclass(frozen=True, slots=True)
class ForkArgs:
    """Start a new process from checkpoint ``id`` (its objects, context and the rights it had
    that you still hold), named ``name``, with ``goal`` (the checkpoint's own by default).
    ``pid``: whose checkpoint it is (yourself by default)."""

    id: Id
    name: str | None = None
    goal: str | None = None
    pid: PidArg | None = None


@dataclass(frozen=True, slots=True)
class CommitArgs:
    """Make checkpoint ``id`` a new version of image ``name``: its process's image with the
    checkpoint's objects as the seed objects of every process started from it. ``pid``: whose
    checkpoint it is (yourself by default)."""

    id: Id
    name: str
    description: str | None = None
    pid: PidArg | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """A call about one checkpoint as it was decided: whose it is (from the arguments, never from
    the store, so that a refusal says nothing of what exists), whether it is there, and the
    objects the call reads or changes (each decided), or the processes it reaches."""

    args: DiffArgs | RestoreArgs | ForkArgs | CommitArgs
    owner: Pid
    found: bool
    objects: tuple[tuple[str, str, str], ...] = ()  # (namespace, name, "read" | "write" | "delete")
    children: tuple[Pid, ...] = ()  # processes restored with it
    model: str = ""  # a fork's model and working directory (the checkpoint's)
    cwd: str = ""


@dataclass(frozen=True, slots=True)
class CreatePlan:
    """A checkpoint to take: of whom, and of which descendants with it."""

    args: CreateArgs
    pid: Pid
    descendants: tuple[Pid, ...] = ()


def _target(proc: Process, pid: int | None) -> Pid:
    if pid is None:
        if proc.pid == HOST:
            raise Invalid("the host has no checkpoints of its own; name a process (pid)")
        return proc.pid
    return pid


def resolve(kernel: Kernel, proc: Process, args: DiffArgs | RestoreArgs | ForkArgs | CommitArgs) -> Plan:
    """Return the plan of a call about checkpoint ``args.id`` of process ``args.pid`` (the caller's
    own by default; the host's: the checkpoint's). A checkpoint that is not there, or not that
    process's, is found absent after the decision, never before."""
    conn = kernel.store.conn
    c = objrows.load_checkpoint(conn, args.id)
    if proc.pid == HOST and args.pid is None:  # the host may know what exists
        if c is None:
            raise NotFound(f"no checkpoint {args.id}; 'alos ckpt ls' lists them")
        owner = c.pid
    else:
        owner = args.pid if args.pid is not None else proc.pid
    to = objrows.load_checkpoint(conn, args.to) if isinstance(args, DiffArgs) and args.to is not None else None
    if c is None or c.pid != owner or (isinstance(args, DiffArgs) and args.to is not None and
                                        (to is None or to.pid != owner)):  # fmt: skip
        return Plan(args, owner, False)
    if isinstance(args, RestoreArgs):
        kids = [k for k in objrows.taken_with(conn, c.id) if _alive(conn, k.pid)]
        changes = ckpt.rollback(conn, c) + tuple(x for k in kids for x in ckpt.rollback(conn, k))
        return Plan(args, owner, True, changes, tuple(k.pid for k in kids))
    if isinstance(args, (ForkArgs, CommitArgs)):
        ns = objects.own(c.pid)
        reads = tuple((ns, v.name, "read") for v in objrows.view(conn, ns, c.mark))
        return Plan(args, owner, True, reads, model=c.body["process"]["model"], cwd=c.body["process"]["cwd"])
    return Plan(args, owner, True)


def _alive(conn: Any, pid: Pid) -> bool:
    p = rows.load_process(conn, pid)
    return p is not None and p.state is not ProcState.EXITED


def resolve_create(kernel: Kernel, proc: Process, args: CreateArgs) -> CreatePlan:
    """Return whom the checkpoint is of, with the descendants it reaches (``children``)."""
    pid = _target(proc, args.pid)
    kids = tuple(k.pid for k in ckpt.descendants(kernel.store.conn, pid)) if args.children else ()
    return CreatePlan(args, pid, kids)


def _on(proc: Process, pid: Pid, right: Right) -> tuple[Need, ...]:
    return () if pid == proc.pid else (Need(f"proc:{pid}", right),)


def _objects(plan: Plan) -> list[Need]:
    """Each object the call touches, after a list of each namespace: a refusal names an object
    only to a process that may list its names."""
    rights = {"read": Right.READ, "write": Right.WRITE, "delete": Right.DELETE}
    spaces = dict.fromkeys(ns for ns, _, _ in plan.objects)
    return [Need(f"ns:{ns}", Right.LIST) for ns in spaces] + [
        Need(objects.resource(ns, name), rights[change]) for ns, name, change in plan.objects
    ]


def create_needs(proc: Process, plan: CreatePlan) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (*_on(proc, plan.pid, Right.SIGNAL), *(Need(f"proc:{k}", Right.SIGNAL) for k in plan.descendants))


def list_needs(proc: Process, args: ListArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return _on(proc, _target(proc, args.pid), Right.READ) if args.pid is not None or proc.pid != HOST else ()


def diff_needs(proc: Process, plan: Plan) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return _on(proc, plan.owner, Right.READ)


def restore_needs(proc: Process, plan: Plan) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them: the process
    (and each restored with it), and each object the restore writes back or deletes."""
    return (*_on(proc, plan.owner, Right.SIGNAL), *(Need(f"proc:{k}", Right.SIGNAL) for k in plan.children),
            *_objects(plan))  # fmt: skip


def fork_needs(proc: Process, plan: Plan) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them: spawning, and
    a read of each object the fork copies."""
    needs = [Need("proc:spawn", Right.SPAWN), *_on(proc, plan.owner, Right.READ)]
    if proc.pid != HOST and plan.model and plan.model != proc.model:  # as a spawn of another model needs
        kind, _, path = plan.model.partition(":")
        needs.append(Need(f"model:{kind}", Right.EXECUTE))
        if kind in ("script", "replay"):
            needs.append(Need(f"fs:{path}", Right.READ))
    if proc.pid != HOST and plan.cwd and plan.cwd != proc.cwd:
        needs.append(Need(f"fs:{plan.cwd}", Right.LIST))
    return (*needs, *_objects(plan))


def commit_needs(proc: Process, plan: Plan) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them: the image, and
    a read of each object it makes a seed."""
    assert isinstance(plan.args, CommitArgs)
    return (Need(f"image:{plan.args.name}", Right.WRITE), *_on(proc, plan.owner, Right.READ), *_objects(plan))


def spawning(plan: Plan) -> dict[str, int]:
    """A fork from a checkpoint costs a call and a child."""
    return {"tool_calls": 1, "children": 1}


def _load(tx: Tx, plan: Plan) -> Checkpoint:
    """Return the plan's checkpoint; raise NotFound, the same for one that is not there and for one
    of another process, and Conflict when what it reads or changes moved since the decision."""
    c = objrows.load_checkpoint(tx.conn, plan.args.id)
    if not plan.found or c is None or c.pid != plan.owner:
        raise NotFound(f"process {plan.owner} has no checkpoint {plan.args.id}; ckpt_list lists them")
    return c


def _shown(c: Checkpoint) -> dict[str, Any]:
    return {"id": c.id, "pid": c.pid, "label": c.label, "time": c.created, "by": c.taker, "with": c.parent,
            "context_messages": c.ctxlen, "state": c.body["process"]["state"]}  # fmt: skip


def create_checkpoint(kernel: Kernel, tx: Tx, proc: Process, plan: CreatePlan) -> dict[str, Any]:
    """Take the checkpoint (and the descendants' it was decided with); return its id."""
    target = rows.load_process(tx.conn, plan.pid)
    if target is None or plan.pid == HOST:
        raise NotFound(f"no process {plan.pid}")
    c = ckpt.take(kernel, tx, plan.pid, proc.pid, plan.args.label)
    out = _shown(c)
    if plan.args.children:
        kids = [k.pid for k in ckpt.descendants(tx.conn, plan.pid) if k.pid in plan.descendants]
        out["children"] = [ckpt.take(kernel, tx, k, proc.pid, plan.args.label, c.id).id for k in kids]
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
    if not plan.found or a is None or (args.to is not None and b is None):
        missing = args.id if a is None or a.pid != plan.owner else args.to
        raise NotFound(f"process {plan.owner} has no checkpoint {missing}; ckpt_list lists them")
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
    c = _load(tx, plan)
    kids = [k for k in objrows.taken_with(tx.conn, c.id) if _alive(tx.conn, k.pid)]
    parts = [(x, ckpt.rollback(tx.conn, x)) for x in (c, *kids)]
    if tuple(k.pid for k in kids) != plan.children or sum((p for _, p in parts), ()) != plan.objects:
        raise Conflict(f"process {c.pid} or its children changed while the restore was decided; restore again")
    out = ckpt.restore(kernel, tx, c, proc.pid, parts[0][1])
    if kids:
        out["children"] = [ckpt.restore(kernel, tx, k, proc.pid, changes) for k, changes in parts[1:]]
    gone = [k.pid for k in objrows.taken_with(tx.conn, c.id) if k.pid not in plan.children]
    if gone:
        out["children_not_restored"] = {"pids": gone, "why": "exited since the checkpoint"}
    return out


def fork(kernel: Kernel, tx: Tx, proc: Process, plan: Plan) -> dict[str, Any]:
    """Start a new process from the checkpoint: its objects (as they were), its context to the last
    complete turn, and the rights it had that are still live and that the caller holds now."""
    args = plan.args
    assert isinstance(args, ForkArgs)
    c = _load(tx, plan)
    was = c.body["process"]
    name = args.name or f"{was['name']}.ckpt{c.id}"[: limits.PROC_NAME_MAX_CHARS]
    goal = args.goal or was["goal"]
    if not name.strip() or len(name) > limits.PROC_NAME_MAX_CHARS or not goal.strip():
        raise Invalid(f"a process needs a name (1 to {limits.PROC_NAME_MAX_CHARS} characters) and a non-empty goal")
    parent = None if proc.pid == HOST else proc.pid
    if parent is not None and len(kernel.chain(parent)) > limits.ANCESTRY_MAX:
        raise Limit(f"process {parent} is {len(kernel.chain(parent))} generations deep; at most {limits.ANCESTRY_MAX}")
    priority = min(was["priority"], proc.priority) if parent is not None else was["priority"]
    child = create(kernel, tx, parent=parent, name=name, image=was["image"], model=was["model"], cwd=was["cwd"],
                   goal=goal, priority=priority, mode=Fork.SPAWN)  # fmt: skip
    note = (
        f"[You are process {child.pid}, started from checkpoint {c.id} of process {c.pid}: the conversation "
        f"above and your objects are as they were then. Your goal: {goal}]"
    )
    msgs = closed(ckpt.context_at(tx.conn, c), f"[no result: checkpoint {c.id} was taken before this call ended]")
    objrows.replace_context(tx.conn, child.pid, [*msgs, {"role": "user", "content": note}])
    copied = 0
    for v in objrows.view(tx.conn, objects.own(c.pid), c.mark):
        objects.copy(kernel, tx, v, objects.own(child.pid), v.name, child.pid)
        copied += 1
    toolrows.set_table(tx.conn, f"proc/{child.pid}", c.body.get("tools", []))  # the tools it had registered
    issued, missing = ckpt.passed_on(kernel, tx, c, proc.pid, child.pid)
    own_namespace(kernel, tx, child.pid)
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
    c = _load(tx, plan)
    body = dict(images.body(kernel, c.body["process"]["image"]))
    seeds: list[dict[str, Any]] = []
    for v in objrows.view(tx.conn, objects.own(c.pid), c.mark):
        if len(seeds) >= limits.OBJ_SEED_MAX:
            raise Limit(f"checkpoint {c.id} holds more than {limits.OBJ_SEED_MAX} objects; an image seeds at most that")
        assert v.digest is not None
        kernel.blobs.put(objects.payload(kernel, v), v.digest)  # the image names its payloads by digest
        seeds.append({"name": v.name, "type": v.type, "digest": v.digest.removeprefix("sha256:"), "bytes": v.size})
    description = args.description or f"{body.get('description', '')} (checkpoint {c.id} of process {c.pid})"
    body.update(name=args.name, description=description[: limits.IMAGE_DESCRIPTION_MAX_CHARS], objects=seeds)
    body.pop("version", None)
    out = images.store(kernel, tx, body, proc.pid, listed=True)
    return {**out, "checkpoint": c.id, "objects": len(seeds)}
