"""proc.*: spawn a process (host only in this release) and exit the calling process."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal

from alos import caps
from alos.errors import Invalid
from alos.kernel import Kernel, Tx, action
from alos.kernel.proc import create, transition
from alos.rights import Need, Right, make_grant
from alos.types import Exit, Process, ProcState


@dataclass(frozen=True, slots=True)
class GrantArgs:
    """One capability to hand a new process: pattern, rights, effect (allow | ask | deny)."""

    pattern: str
    rights: list[str]
    effect: Literal["allow", "ask", "deny"] = "allow"


@dataclass(frozen=True, slots=True)
class SpawnArgs:
    """Start a new process running ``image`` with ``goal`` in working directory ``cwd``."""

    name: str
    image: str
    goal: str
    model: str
    cwd: str
    grants: list[GrantArgs] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ExitArgs:
    """End this process with status ok or failed and a result for whoever waits on it."""

    status: Literal["ok", "failed"] = "ok"
    result: str = ""


def spawn_needs(proc: Process, args: SpawnArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need("proc:spawn", Right.SPAWN),)


def exit_needs(proc: Process, args: ExitArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return ()  # a process may always end itself


def spawn(kernel: Kernel, tx: Tx, proc: Process, args: SpawnArgs) -> dict[str, Any]:
    """Create the process with its context and capabilities; return its pid."""
    if not args.name or not args.goal.strip():
        raise Invalid("a process needs a name and a non-empty goal")
    if not os.path.isabs(args.cwd) or not kernel.files.is_dir(args.cwd):
        raise Invalid(f"working directory {args.cwd} is not an absolute path to a directory; create it first")
    if kernel.files.hidden(args.cwd):
        raise Invalid(
            f"working directory {args.cwd} is inside the store's directory, which no process may reach; "
            "keep the store in a directory of its own, e.g. --store .alos/store.db"
        )
    kernel.model(args.model)  # a bad model spec or script fails here, before anything is stored
    grants = [make_grant(g.pattern, g.rights, g.effect, args.cwd) for g in args.grants]
    child = create(
        kernel,
        tx,
        parent=proc.pid or None,
        name=args.name,
        image=args.image,
        model=args.model,
        cwd=args.cwd,
        goal=args.goal,
    )
    action.seed(kernel, tx, child)
    issuer = "host" if proc.pid == 0 else f"pid:{proc.pid}"
    ids = [caps.issue(tx.conn, child.pid, g, issuer) for g in grants]
    tx.on_commit.append(lambda: kernel.forget_caps(child.pid))
    return {"pid": child.pid, "capabilities": ids}


def exit_(kernel: Kernel, tx: Tx, proc: Process, args: ExitArgs) -> dict[str, Any]:
    """Exit the process; its pending action ends with it."""
    if proc.state is ProcState.EXITED:
        raise Invalid(f"process {proc.pid} has already exited")
    transition(kernel, tx, proc, ProcState.EXITED, exit=Exit(args.status), result=args.result)
    action.drop(tx, proc.pid)
    return {"pid": proc.pid, "status": args.status}
