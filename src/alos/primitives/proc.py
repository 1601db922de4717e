"""proc.spawn, proc.fork, proc.exec, proc.chdir, proc.list: making and changing processes.

A child gets no authority by default: only the grants its parent passes, each derived from a
capability the parent holds (rights only shrink), together with every deny and ask of the
parent that overlaps it. Its budget never exceeds what its ancestors have left, its priority
never exceeds its parent's. exec keeps the pid and drops every allow it is not told to keep.
Waiting, signals and exit are in signal.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import msgspec

from alos import caps, limits
from alos.errors import Denied, Invalid, Limit, NotFound
from alos.kernel import Kernel, Tx, action, images, objects
from alos.kernel.budget import check_names
from alos.kernel.proc import OWN, create, move, own_namespace, parent_rights
from alos.rights import Effect, Grant, Need, Right, covers, kind, make_grant, normalize_pattern
from alos.store import objrows, rows
from alos.types import HOST, Fork, Process

Priority = Annotated[int, msgspec.Meta(ge=1, le=limits.PRIORITY_MAX)]
Amount = Annotated[int, msgspec.Meta(ge=0, le=limits.BUDGET_MAX)]
READ_ONLY = frozenset({Right.READ, Right.LIST, Right.EXECUTE, Right.ASK, Right.SEND, Right.RECV})


@dataclass(frozen=True, slots=True)
class GrantArgs:
    """One capability to pass: pattern, rights, effect (allow | ask | deny), and whether the
    receiver may pass it on (default: no for a process's grants, yes for the host's)."""

    pattern: str
    rights: list[str]
    effect: Literal["allow", "ask", "deny"] = "allow"
    delegable: bool | None = None


@dataclass(frozen=True, slots=True)
class SpawnArgs:
    """Start a child process named ``name`` with ``goal``. It gets only the ``grants`` you pass
    (a subset of yours), a ``budget`` within what you have left, and your image, model and working
    directory unless you name others."""

    name: str
    goal: str
    image: str | None = None
    model: str | None = None
    cwd: str | None = None
    grants: list[GrantArgs] = field(default_factory=list)
    budget: dict[str, Amount] = field(default_factory=dict)
    priority: Priority | None = None


@dataclass(frozen=True, slots=True)
class ForkArgs:
    """Start a child that sees your context so far, with ``goal``. ``mode`` worker: your grants are
    cut to read-only rights; speculative: it makes no outside effects and you take its result with
    proc_merge; copy: it goes on on its own."""

    mode: Literal["worker", "speculative", "copy"]
    goal: str
    name: str | None = None
    grants: list[GrantArgs] = field(default_factory=list)
    budget: dict[str, Amount] = field(default_factory=dict)
    priority: Priority | None = None


@dataclass(frozen=True, slots=True)
class ExecArgs:
    """Become image ``image`` (same pid, new tools, a new context with ``goal``). Every allow you hold
    is dropped except those whose pattern is in ``keep``; denies and asks always stay."""

    image: str
    goal: str | None = None
    keep: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ChdirArgs:
    """Change your working directory to ``path`` (relative paths resolve from it)."""

    path: str


@dataclass(frozen=True, slots=True)
class ListArgs:
    """List your child processes with their states."""


_FILE_MODELS = ("script", "replay")  # model kinds that name a file the host reads


def resolve_spawn(kernel: Kernel, proc: Process, args: SpawnArgs) -> SpawnArgs:
    """Return ``args`` with the working directory made real and absolute (the caller's by default),
    and a model script or record file named by its real path, as a file read would name it."""
    if proc.pid == HOST:
        return args  # the host names an absolute working directory and model; spawn checks them
    cwd = proc.cwd if args.cwd is None else kernel.files.resolve(proc.cwd, args.cwd)
    model = args.model
    kind, sep, path = (model or "").partition(":")
    if model is not None and model != proc.model and kind in _FILE_MODELS and sep and path:
        model = f"{kind}:" + kernel.files.resolve(proc.cwd, path)
    return dataclasses.replace(args, cwd=cwd, model=model)


def resolve_chdir(kernel: Kernel, proc: Process, args: ChdirArgs) -> ChdirArgs:
    """Return ``args`` with the path made real and absolute."""
    return ChdirArgs(kernel.files.resolve(proc.cwd, args.path))


def spawn_needs(proc: Process, args: SpawnArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    needs = [Need("proc:spawn", Right.SPAWN)]
    if args.image is not None and args.image.partition("@")[0] != proc.image.partition("@")[0]:
        # another image, as exec: its prompt and seed objects are the caller's to start only with a right
        needs.append(Need(f"image:{args.image.partition('@')[0]}", Right.EXECUTE))
    if args.cwd is not None and args.cwd != proc.cwd:
        needs.append(Need(f"fs:{args.cwd}", Right.LIST))
    if args.model is not None and args.model != proc.model:
        # another model: the caller must hold it; a script or a record is a file the host reads for it
        kind, _, path = args.model.partition(":")
        needs.append(Need(f"model:{kind}", Right.EXECUTE))
        if kind in _FILE_MODELS:
            needs.append(Need(f"fs:{path}", Right.READ))
    return tuple(needs)


def describe_spawn(kernel: Kernel, proc: Process, args: SpawnArgs) -> dict[str, Any]:
    """Return what a human approving this spawn sees: everything the child would get, in full,
    each grant's pattern as it would be issued (a relative fs: pattern made absolute)."""
    cwd = args.cwd or proc.cwd
    shown: dict[str, Any] = msgspec.to_builtins(args)
    shown.update(
        image=args.image or proc.image,
        model=args.model or proc.model,
        cwd=cwd,
        priority=args.priority or proc.priority,
        grants=_issued(args.grants, cwd),
    )
    return shown


def describe_fork(kernel: Kernel, proc: Process, args: ForkArgs) -> dict[str, Any]:
    """Return what a human approving this fork sees: the child's grants as they would be issued,
    and the working directory their relative patterns are relative to."""
    shown: dict[str, Any] = msgspec.to_builtins(args)
    shown.update(cwd=proc.cwd, priority=args.priority or proc.priority, grants=_issued(args.grants, proc.cwd))
    return shown


def _issued(grants: list[GrantArgs], cwd: str) -> list[dict[str, Any]]:
    out = []
    for g in grants:
        shown: dict[str, Any] = msgspec.to_builtins(g)
        with contextlib.suppress(Invalid):  # the spawn itself refuses a bad one, naming the bad part
            shown["pattern"] = normalize_pattern(g.pattern, cwd, g.pattern)
        out.append(shown)
    return out


def fork_needs(proc: Process, args: ForkArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need("proc:spawn", Right.SPAWN),)


def exec_needs(proc: Process, args: ExecArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need(f"image:{args.image.partition('@')[0]}", Right.EXECUTE),)


def chdir_needs(proc: Process, args: ChdirArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need(f"fs:{args.path}", Right.LIST),)


def list_needs(proc: Process, args: ListArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return ()  # a process sees its own children


def spawn(kernel: Kernel, tx: Tx, proc: Process, args: SpawnArgs) -> dict[str, Any]:
    """Create the child with its context, grants and budget; return its pid and capability ids."""
    if proc.pid == HOST and (args.image is None or args.model is None or args.cwd is None):
        raise Invalid("the host names the image, model and working directory of a process it spawns")
    image = args.image or proc.image
    model = args.model or proc.model
    cwd = args.cwd or proc.cwd
    _check_cwd(kernel, cwd)
    image, _ = images.lookup(kernel, image)  # an unknown image fails here, before anything is stored
    kernel.model(model)  # so does a bad model spec or script
    return _make(kernel, tx, proc, args.name, args.goal, image, model, cwd, args, Fork.SPAWN)


def fork(kernel: Kernel, tx: Tx, proc: Process, args: ForkArgs) -> dict[str, Any]:
    """Create a child that starts from this process's context; return its pid and capability ids."""
    if proc.pid == HOST:
        raise Invalid("the host has no context to fork; use proc.spawn")
    if proc.mode == Fork.SPECULATIVE and args.mode != "speculative":
        raise Invalid("a speculative process may fork only speculative children")
    name = args.name or f"{proc.name}.{args.mode}"
    return _make(kernel, tx, proc, name, args.goal, proc.image, proc.model, proc.cwd, args, Fork(args.mode))


def _make(
    kernel: Kernel,
    tx: Tx,
    proc: Process,
    name: str,
    goal: str,
    image: str,
    model: str,
    cwd: str,
    args: SpawnArgs | ForkArgs,
    mode: Fork,
) -> dict[str, Any]:
    if not name.strip() or len(name) > 64 or not goal.strip():
        raise Invalid("a process needs a name (1 to 64 characters) and a non-empty goal")
    check_names(args.budget)
    chain = kernel.chain(proc.pid) if proc.pid != HOST else []
    if len(chain) > limits.ANCESTRY_MAX:
        raise Limit(f"process {proc.pid} is {len(chain)} generations deep; at most {limits.ANCESTRY_MAX}")
    for name_, amount in args.budget.items():
        left = kernel.ledger.left(tx.conn, chain, name_, tx.now)
        if left is not None and amount > left:
            raise Limit(f"budget {name_}={amount} is more than process {proc.pid} has left ({left})")
    top = limits.PRIORITY_DEFAULT if proc.pid == HOST else proc.priority
    priority = args.priority or top
    if priority > top and proc.pid != HOST:
        raise Invalid(f"priority {priority} is above process {proc.pid}'s own ({top}); a child never gets more")
    issued = _grants(kernel, tx, proc, args.grants, cwd, mode)
    parent = None if proc.pid == HOST else proc.pid
    child = create(
        kernel, tx, parent=parent, name=name, image=image, model=model, cwd=cwd, goal=goal, priority=priority, mode=mode
    )
    if mode is Fork.SPAWN:
        action.seed(kernel, tx, child)
    else:
        action.seed(kernel, tx, child, inherit=action.context(kernel, proc.pid))
    issuer = "host" if proc.pid == HOST else f"pid:{proc.pid}"
    ids = [caps.issue(tx.conn, child.pid, g, issuer, source) for g, source in issued]
    own_namespace(kernel, tx, child.pid)
    if parent is not None:
        parent_rights(kernel, tx, parent, child.pid)
    if mode is Fork.SPAWN:
        objects.seed(kernel, tx, child.pid, images.body(kernel, image).get("objects") or ())
    if parent is not None and mode is not Fork.SPAWN:
        _view(kernel, tx, proc, child.pid, mode)
    kernel.ledger.set_limits(tx.conn, child.pid, args.budget)
    tx.on_commit.append(lambda: kernel.forget_caps(child.pid))
    return {"pid": child.pid, "name": name, "mode": mode.value, "capabilities": ids}


def _grants(
    kernel: Kernel, tx: Tx, proc: Process, wanted: list[GrantArgs], cwd: str, mode: Fork
) -> list[tuple[Grant, int | None]]:
    """Return the grants to issue with the capability each derives from (None: from the host)."""
    out: list[tuple[Grant, int | None]] = []
    for g in wanted:
        delegable = g.delegable if g.delegable is not None else proc.pid == HOST
        grant = make_grant(g.pattern, g.rights, g.effect, cwd, delegable=delegable)
        if mode is Fork.WORKER and grant.effect is not Effect.DENY:
            cut = grant.rights & READ_ONLY
            if not cut:
                raise Invalid(f"a worker fork gets read-only rights; {g.pattern}={','.join(g.rights)} has none")
            grant = Grant(grant.pattern, cut, grant.effect, delegable=grant.delegable)
        if proc.pid == HOST:
            out.append((grant, None))
        else:
            held = kernel.caps_on(proc.pid, frozenset({kind(grant.pattern)}))
            try:
                out.extend((d, source) for d, source in caps.attenuate(held, grant, tx.now))
            except Denied as err:  # named as the process wrote it: never where a symlink in it leads
                raise Denied(err.message.replace(grant.pattern, g.pattern)) from None
    return out


def _view(kernel: Kernel, tx: Tx, proc: Process, child: int, mode: Fork) -> None:
    """Give a fork its view of the parent's objects, derived from the parent's own rights on
    them (what it may no longer read, the child does not see): a worker reads the parent's
    namespace as it is now; a copy or a speculative fork gets copies in its own namespace,
    which proc.merge compares with the parent's when it brings them back."""
    ns = objects.own(proc.pid)
    held = kernel.caps_on(proc.pid, frozenset({"obj", "ns"}))
    try:
        derived = caps.attenuate(held, Grant(f"obj:{ns}/*", frozenset({Right.READ}), Effect.ALLOW), tx.now)
    except Denied:
        return  # the parent cannot pass a read of its namespace: the fork sees nothing of it
    issuer = f"pid:{proc.pid}"
    if mode is Fork.WORKER:
        for g, source in derived:
            caps.issue(tx.conn, child, g, issuer, source)
        with contextlib.suppress(Denied):
            for g, source in caps.attenuate(held, Grant(f"ns:{ns}", frozenset({Right.LIST}), Effect.ALLOW), tx.now):
                caps.issue(tx.conn, child, g, issuer, source)
        return
    shadows = [g.pattern for g, _ in derived[1:]]  # denies and asks under the parent's read
    for v in objrows.view(tx.conn, ns):
        if not any(covers(p, objects.resource(ns, v.name), deny=True) for p in shadows):
            objects.copy(kernel, tx, v, objects.own(child), v.name, child, base=v.seq)


def _check_cwd(kernel: Kernel, cwd: str) -> None:
    if not os.path.isabs(cwd) or not kernel.files.is_dir(cwd):
        raise Invalid(f"working directory {cwd} is not an absolute path to a directory; create it first")
    if kernel.files.hidden(cwd):
        raise Invalid(
            f"working directory {cwd} is inside the store's directory, which no process may reach; "
            "keep the store in a directory of its own, e.g. --store .alos/store.db"
        )


def exec_(kernel: Kernel, tx: Tx, proc: Process, args: ExecArgs) -> dict[str, Any]:
    """Replace the image, tool table and context; drop the allows not kept; return what stayed.

    The rest of the current model turn is dropped with the old program.
    """
    if proc.pid == HOST:
        raise Invalid("the host has no image to replace")
    ref, _ = images.lookup(kernel, args.image)  # the version it runs from now on; it grants nothing
    written = {normalize_pattern(k, proc.cwd, k): k for k in args.keep}  # as a grant would name it
    keep = set(written)
    kept: list[int] = []
    dropped: list[int] = []
    held = kernel.caps(proc.pid)
    for cap in held:
        if cap.effect is not Effect.ALLOW or cap.pattern in keep or cap.issuer == OWN:
            kept.append(cap.id)  # a deny or an ask never goes: authority never grows (nor its own namespace)
        else:
            dropped.append(cap.id)
    missing = keep - {c.pattern for c in held}
    if missing:
        shown = written[sorted(missing)[0]]
        raise NotFound(f"process {proc.pid} holds no capability with pattern {shown!r} to keep")
    rows.drop_capabilities(tx.conn, dropped)
    new = action.reset(kernel, tx, proc, ref, args.goal or proc.goal)
    tx.event(proc.pid, "exec", {"image": ref, "kept": kept, "dropped": dropped, "epoch": new.epoch})
    tx.on_commit.append(lambda: kernel.forget_caps(proc.pid))
    return {"pid": proc.pid, "image": ref, "kept": kept, "dropped": dropped}


def chdir(kernel: Kernel, tx: Tx, proc: Process, args: ChdirArgs) -> dict[str, Any]:
    """Change the working directory; return the new one."""
    if proc.pid == HOST:
        raise Invalid("the host has no working directory here")
    _check_cwd(kernel, args.path)
    move(kernel, tx, proc, args.path)
    return {"cwd": args.path}


async def list_children(kernel: Kernel, proc: Process, args: ListArgs) -> dict[str, Any]:
    """Return this process's children (the host's: the root processes)."""
    conn = kernel.store.conn
    children = rows.children_of(conn, proc.pid) if proc.pid != HOST else rows.roots(conn)
    return {
        "children": [
            {
                "pid": c.pid,
                "name": c.name,
                "mode": c.mode,
                "state": c.state.value,
                "wait": c.wait.value if c.wait else None,
                "exit": c.exit.value if c.exit else None,
                "reaped": c.reaped,
            }
            for c in children
        ]
    }
