"""The read-only ``alos`` commands: ps, approvals, audit and audit verify.

They open the store without becoming its host and change nothing (audit records of calls
that changed nothing are written first, so what is listed is what is durable).
"""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING

import click

from alos.cli import show
from alos.cli.options import json_option, store_option
from alos.cli.screen import Screen, clip_left, command, text
from alos.config import DEFAULT_STORE
from alos.errors import NotFound
from alos.types import HumanRequest, ProcState, RequestState

if TYPE_CHECKING:
    from alos.runtime import Runtime


def reader(store: str) -> Runtime:
    """Return a Runtime on an existing store that does not run its processes."""
    from alos.runtime import open  # here, not at import: 'alos --help' never opens a store

    return open(store, create=False)


@click.command()
@click.option("--all", "everything", is_flag=True, help="Show exited processes too.")
@store_option
@json_option
def ps(everything: bool, store: str, as_json: bool) -> None:
    """Show the live processes as a tree (--all: every process): pid, parent, name, image, state
    (and why it waits), priority, model turns and what each spent of its budget with its descendants."""
    rt = reader(store)
    try:
        procs = rt.processes()
        budgets = rt.budgets()
    finally:
        rt.close()
    shown = procs if everything else [p for p in procs if p.state is not ProcState.EXITED]
    out = Screen(soft_wrap=False)
    if as_json:
        for p in shown:
            out.json(
                {
                    "pid": p.pid,
                    "parent": p.parent,
                    "name": p.name,
                    "image": p.image,
                    "state": p.state.value,
                    "wait": p.wait.value if p.wait else None,
                    "exit": p.exit.value if p.exit else None,
                    "turns": p.turns,
                    "priority": p.priority,
                    "mode": p.mode.value,
                    "budget": {
                        name: {"limit": lim, "spent": used} for name, (lim, used) in budgets.get(p.pid, {}).items()
                    },
                    "cwd": p.cwd,
                    "goal": p.goal,
                    "result": p.result,
                    "updated": p.updated,
                }
            )
    elif shown:
        out.show(show.process_table(shown, budgets, out.width))
    elif procs:
        out.say(f"no live processes; '{command()} ps --all' shows the {len(procs)} that exited")
    else:
        out.say("no processes in this store")


def _request_json(r: HumanRequest) -> dict[str, object]:
    return {
        "id": r.id,
        "pid": r.pid,
        "kind": r.kind.value,
        "syscall": r.syscall,
        "resource": r.resource,
        "right": r.right,
        "digest": r.digest,
        "detail": r.detail,
        "state": r.state.value,
        "answer": r.answer,
        "always": r.always,
        "answered_by": r.answered_by,
        "created": r.created,
    }


@click.command()
@store_option
@click.option("--all", "everything", is_flag=True, help="Show answered requests too.")
@click.option(
    "--full",
    "full",
    type=click.IntRange(1, 2**63 - 1),
    default=None,
    metavar="ID",
    help="Show request ID whole, with nothing cut (the whole diff).",
)
@json_option
def approvals(store: str, everything: bool, full: int | None, as_json: bool) -> None:
    """List the human requests that wait for an answer, showing exactly what each would let happen
    (--all: every request; --full ID: one request, nothing cut). JSON always carries everything."""
    rt = reader(store)
    try:
        if full is not None:
            one = rt.request(full)
            if one is None:
                raise NotFound(f"no human request {full}; '{command()} approvals --all' lists them")
            reqs = [one]
        else:
            reqs = rt.requests(None if everything else RequestState.PENDING)
    finally:
        rt.close()
    out = Screen(soft_wrap=False)
    if as_json:
        for r in reqs:
            out.json(_request_json(r))
    elif not reqs:
        out.say("no requests wait for a human" if not everything else "no human requests in this store")
    else:
        for r in reqs:
            out.show(show.request_panel(r, full=full is not None))


@click.group(invoke_without_command=True)
@click.option("--pid", type=click.IntRange(0, 2**63 - 1), default=None, help="Only this process's records.")
@store_option
@json_option
@click.pass_context
def audit(ctx: click.Context, pid: int | None, store: str, as_json: bool) -> None:
    """List the audit log (every decision and effect), or check it with 'alos audit verify'."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = store
        return
    rt = reader(store)
    try:
        out = Screen()
        for r in rt.audit(pid):
            if as_json:
                out.json(dataclasses.asdict(r))  # every field, as the console's export has them
            else:
                colour = "green" if r.outcome == "ok" else "yellow" if r.outcome == "parked" else "red"
                out.say(
                    f"{r.seq:>6} {r.pid:>4} {clip_left(r.syscall, 12):<12} {clip_left(r.resource, 60):<60} "
                    f"{r.right:<8} {r.decision:<9} ",
                    (r.outcome, colour),
                )
    finally:
        rt.close()


@audit.command()
@store_option
@json_option
@click.pass_context
def verify(ctx: click.Context, store: str, as_json: bool) -> None:
    """Check the audit chain; exit 1 naming the first record edited, deleted or reordered."""
    if store == DEFAULT_STORE and isinstance(ctx.obj, str):
        store = ctx.obj
    rt = reader(store)
    try:
        v = rt.verify()
    finally:
        rt.close()
    if as_json:
        Screen().json({"ok": v.ok, "count": v.count, "bad_seq": v.bad_seq, "reason": v.reason, "head": v.head})
    elif v.ok:
        out = Screen()
        out.say(("✓ audit chain intact", "green"), f": {v.count} records")
        out.say(f"head {v.head}")
        out.say(
            "(keep the head somewhere the host cannot write: a later verify that does not extend it "
            "shows a rewritten chain)"
        )
    else:
        Screen(stderr=True).show(text((f"✗ audit chain broken at record {v.bad_seq}", "red"), f": {v.reason}"))
    sys.exit(0 if v.ok else 1)
