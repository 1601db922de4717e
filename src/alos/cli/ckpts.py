"""``alos ckpt``: take, list, compare, restore, fork from and commit checkpoints, as the host.

Every command is a ckpt.* syscall dispatched as the host (decided and audited). A restore
shows what it will do first, above all the outside effects since the checkpoint, which it does
not undo, and asks at a terminal unless --yes. Labels, goals and resources are hostile: they
go through the Screen.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from alos.cli.objects import host_call, opened, when, who
from alos.cli.options import json_option, store_option
from alos.cli.screen import Screen, clip, clip_left, command, text

if TYPE_CHECKING:
    from alos.runtime import Runtime

CKPT_ID = click.IntRange(1, 2**62)
PID = click.IntRange(1, 2**62)


@click.group()
def ckpt() -> None:
    """Take, list, compare, restore, fork from and commit checkpoints of processes, as the host.

    A checkpoint holds a process's record, rights, objects, context and queue. Restoring one never
    brings back revoked rights and does not undo outside effects (files written, commands run).
    """


@ckpt.command("ls")
@click.argument("pid", type=PID, required=False)
@store_option
@json_option
def ls(pid: int | None, store: str, as_json: bool) -> None:
    """List the checkpoints of process PID (without PID: of every process), newest first
    (JSON: one line each).

    \b
    Example:  alos ckpt ls 4
    """
    with opened(store) as rt:
        if pid is not None:
            rt.process(pid)
        found: list[dict[str, Any]] = host_call(rt, "ckpt.list", {} if pid is None else {"pid": pid})["checkpoints"]
    out = Screen(soft_wrap=False)
    if as_json:
        for c in found:
            out.json(c)
        return
    if not found:
        out.say(f"no checkpoints{'' if pid is None else f' of process {pid}'}; '{command()} ckpt create PID' takes one")
        return
    from rich.table import Table  # on first use, as look.py does

    table = Table(box=None, header_style="bold")
    for col in ("ID", "PID", "TIME", "BY", "WITH", "STATE", "CONTEXT", "LABEL"):
        table.add_column(col, no_wrap=col != "LABEL")
    for c in found:
        cells = (str(c["id"]), str(c["pid"]), when(c["time"]), who(c["by"]), str(c["with"] or "-"), c["state"],
                 f"{c['context_messages']} msgs", clip(c["label"] or "", 60))  # fmt: skip
        table.add_row(*(text(x) for x in cells))
    out.show(table)


@ckpt.command()
@click.argument("pid", type=PID)
@click.option("--label", default=None, help="A label to find it by.")
@click.option("--children", is_flag=True, help="Also take one of each live descendant, taken with this one.")
@store_option
@json_option
def create(pid: int, label: str | None, children: bool, store: str, as_json: bool) -> None:
    """Take a checkpoint of process PID: its record, rights, objects, context and queue.

    \b
    Example:  alos ckpt create 4 --label before-refactor --children
    """
    args: dict[str, Any] = {"pid": pid, "children": children}
    if label is not None:
        args["label"] = label
    with opened(store) as rt:
        got = host_call(rt, "ckpt.create", args)
    out = Screen()
    if as_json:
        out.json(got)
        return
    labelled = f" ({clip(got['label'], 60)})" if got.get("label") else ""
    out.say(f"checkpoint {got['id']} of process {got['pid']}{labelled} taken")
    if got.get("children"):
        out.say(f"  with its descendants: checkpoints {', '.join(str(c) for c in got['children'])}")
    cmd = command()
    out.say(f"('{cmd} ckpt diff {got['id']}' shows what changes since; '{cmd} ckpt restore {got['id']}' goes back)")


@ckpt.command()
@click.argument("id_", metavar="ID", type=CKPT_ID)
@click.argument("to", metavar="[TO]", type=CKPT_ID, required=False)
@store_option
@json_option
def diff(id_: int, to: int | None, store: str, as_json: bool) -> None:
    """Show what changed from checkpoint ID to checkpoint TO (default: now): objects, rights,
    context, the process record, and the outside effects in between.

    \b
    Example:  alos ckpt diff 3
              alos ckpt diff 3 5
    """
    args: dict[str, Any] = {"id": id_} if to is None else {"id": id_, "to": to}
    with opened(store) as rt:
        got = host_call(rt, "ckpt.diff", args)
    out = Screen()
    if as_json:
        out.json(got)
        return
    out.say((f"checkpoint {got['from']} → {'now' if got['to'] == 'now' else 'checkpoint ' + str(got['to'])}", "bold"))
    show_diff(out, got)


def show_diff(out: Screen, d: dict[str, Any]) -> None:
    """Print a ckpt.diff result for a person: every change, and the outside effects whole."""
    changed = d["objects_changed"]
    if changed:
        out.say(f"  objects changed ({d['objects_changed_count']}):")
        for name in changed:
            out.say("    ", clip_left(name, 120))
        if d["objects_changed_count"] > len(changed):
            out.say(f"    … and {d['objects_changed_count'] - len(changed)} more")
    for key, words in (("capabilities_added", "rights issued since"), ("capabilities_gone", "rights gone since")):
        if d[key]:
            out.say(f"  {words}: capabilities {', '.join(str(c) for c in d[key])}")
    then, now = d["context_messages"]
    if then != now:
        out.say(f"  context: {then} → {now} messages")
    for key, (was, became) in d["record"].items():
        out.say(f"  {clip(key, 20)}: {clip(_none(was), 60)} → {clip(_none(became), 60)}")
    show_effects(out, d)
    if not (changed or d["capabilities_added"] or d["capabilities_gone"] or then != now or d["record"] or d["effects"]):
        out.say("  nothing changed")


def _none(value: Any) -> Any:
    return "-" if value is None else value


def show_effects(out: Screen, d: dict[str, Any]) -> None:
    """Print the outside effects a diff or restore lists, each with its audit record, and the note."""
    if not d.get("effects"):
        return
    when_ = "since the checkpoint" if d.get("to", "now") == "now" else "between the two checkpoints"
    out.say((f"  outside effects {when_} (a restore does NOT undo them):", "bold yellow"))
    for e in d["effects"]:
        out.say(
            f"    audit {e['audit']}  {when(e['time'])}  process {e['pid']}  ",
            (clip(e["syscall"], 20), "bold"),
            f"  {clip_left(e['resource'], 100)}",
        )
    if d.get("effects_more"):
        out.say(f"    … and {d['effects_more']} more ('{command()} audit' lists them)")
    if d.get("effects_note"):
        out.say(("  " + d["effects_note"], "yellow"))


@ckpt.command()
@click.argument("id_", metavar="ID", type=CKPT_ID)
@click.option("--yes", is_flag=True, help="Restore without asking (needed when stdin is not a terminal).")
@store_option
@json_option
def restore(id_: int, yes: bool, store: str, as_json: bool) -> None:
    """Roll the process of checkpoint ID (and the descendants taken with it) back to it: its
    objects, context, queue and record. Rights issued since are dropped; nothing revoked since
    comes back. Outside effects since (files written, commands run, messages sent) are NOT
    undone. Shows all of that first and asks, unless --yes.

    \b
    Example:  alos ckpt restore 3
    """
    if not yes and not sys.stdin.isatty():
        raise click.UsageError(
            f"no terminal to confirm the restore at: pass --yes ('{command()} ckpt diff {id_}' shows what it does)"
        )
    ui = Screen(stderr=as_json)
    with opened(store) as rt:
        d = host_call(rt, "ckpt.diff", {"id": id_})
        ui.say((_restoring(rt, id_), "bold"))
        show_diff(ui, d)
        if not yes and not click.confirm(f"Restore checkpoint {id_}?", default=False, err=True):
            ui.say("not restored; nothing changed")
            sys.exit(1)
        got = host_call(rt, "ckpt.restore", {"id": id_})
    if as_json:
        Screen().json(got)
        return
    show_restored(ui, got)


def _restoring(rt: Runtime, cid: int) -> str:
    """Return the heading of a restore: whose checkpoint, its label and time (from ckpt.list)."""
    found = [c for c in host_call(rt, "ckpt.list", {})["checkpoints"] if c["id"] == cid]
    if not found:
        return f"restoring checkpoint {cid} would change:"
    c = found[0]
    labelled = f" ({clip(c['label'], 60)})" if c["label"] else ""
    return f"restoring process {c['pid']} to checkpoint {cid}{labelled}, taken {when(c['time'])}, would change:"


def show_restored(out: Screen, got: dict[str, Any]) -> None:
    """Print a ckpt.restore result: what was rolled back, what was dropped, what was not undone."""
    dropped = ", ".join(str(c) for c in got["capabilities_dropped"]) or "none"
    out.say(
        ("✓ ", "green"),
        f"process {got['pid']} restored to checkpoint {got['checkpoint']}: {got['objects_restored']} object(s) "
        f"rolled back, capabilities dropped: {dropped}, {got['messages_returned']} message(s) back in its queue, "
        f"context of {got['context_messages']} message(s)",
    )
    show_effects(out, got)
    for child in got.get("children", []):
        show_restored(out, child)
    skipped = got.get("children_not_restored")
    if skipped:
        out.say(f"  not restored: processes {', '.join(str(p) for p in skipped['pids'])} ({clip(skipped['why'], 80)})")


@ckpt.command()
@click.argument("id_", metavar="ID", type=CKPT_ID)
@click.option("--name", default=None, help="The new process's name (default: NAME.ckptID).")
@click.option("--goal", default=None, help="Its goal (default: the checkpoint's).")
@store_option
@json_option
def fork(id_: int, name: str | None, goal: str | None, store: str, as_json: bool) -> None:
    """Start a new process from checkpoint ID: its objects and context as they were then, and the
    rights it had that are still live. A running host runs it; otherwise 'alos resume' does.

    \b
    Example:  alos ckpt fork 3 --name retry --goal "try the other approach"
    """
    args: dict[str, Any] = {"id": id_}
    for key, value in (("name", name), ("goal", goal)):
        if value is not None:
            args[key] = value
    with opened(store) as rt:
        got = host_call(rt, "ckpt.fork", args)
    out = Screen()
    if as_json:
        out.json(got)
        return
    issued = ", ".join(str(c) for c in got["capabilities"]) or "none"
    out.say(
        f"process {got['pid']} ({clip(got['name'], 64)}) started from checkpoint {got['checkpoint']}: "
        f"{got['objects']} object(s), capabilities {issued}"
    )
    missing = got.get("not_passed")
    if missing:
        out.say(
            ("  not passed: ", "yellow"), ", ".join(clip(p, 80) for p in missing["patterns"]), f" ({missing['why']})"
        )
    out.say(f"(a host running this store runs it; otherwise '{command()} resume')")


@ckpt.command()
@click.argument("id_", metavar="ID", type=CKPT_ID)
@click.argument("name")
@click.option("--description", default=None, help="The image's description (default: its process image's, noted).")
@store_option
@json_option
def commit(id_: int, name: str, description: str | None, store: str, as_json: bool) -> None:
    """Register checkpoint ID as the next version of image NAME: its process's image, with the
    checkpoint's objects as the seed objects of every process started from it. Its grants stay
    requests.

    \b
    Example:  alos ckpt commit 3 triage --description "triage, with its notes"
    """
    args: dict[str, Any] = {"id": id_, "name": name}
    if description is not None:
        args["description"] = description
    with opened(store) as rt:
        got = host_call(rt, "ckpt.commit", args)
    out = Screen()
    if as_json:
        out.json(got)
        return
    out.say(
        f"registered image {clip(got['ref'], 80)} (sha256 {str(got['digest'])[:16]}…) from checkpoint "
        f"{got['checkpoint']} with {got['objects']} seed object(s); run it with "
        f"'{command()} run {clip(got['name'], 64)} GOAL --model SPEC'"
    )
