"""The ``alos`` commands. Each opens the store, asks the Runtime, and prints.

Human-readable output goes to stdout; with --json, stdout carries only JSON (lines) and
prompts, traces and agent output go to stderr. Errors print 'alos: CODE: message' and exit 1
(2 for usage errors); cli.main is one of the three places a broad except is allowed.
Size: one click command each; rendering lives in show.py, the run loop in drive.py.
"""

from __future__ import annotations

import asyncio
import sys
import traceback
from collections.abc import Coroutine
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console

from alos import codec, limits
from alos.cli import show
from alos.cli.drive import EXIT_FAILED, Driver, who
from alos.errors import AlosError
from alos.providers.human import CallbackHuman
from alos.rights import Effect, parse_grant
from alos.runtime import DEFAULT_STORE, Runtime, open
from alos.types import BUDGETS, Event, RequestState

T = TypeVar("T")

store_option = click.option(
    "--store",
    default=DEFAULT_STORE,
    show_default=True,
    envvar="ALOS_STORE",
    help="The store file (SQLite). Also ALOS_STORE.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON (lines) on stdout, nothing else.")
approve_option = click.option(
    "--approve",
    type=click.Choice(["prompt", "never", "always"]),
    default="prompt",
    show_default=True,
    help="How human requests are answered here: prompt in this terminal (needs a TTY), never "
    "(stop with exit 3 and answer with 'alos approve'), or always approve once.",
)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def _consoles(as_json: bool) -> tuple[Console, Console]:
    """Return (the console for people, the console for JSON)."""
    out = show.console()
    err = show.console(stderr=True)
    return (err, out) if as_json else (out, out)


def _open_host(store: str, ui: Console, names: dict[int, str], create: bool = True) -> Runtime:
    return open(store, create=create, host=True, human=CallbackHuman(show.tell(ui, names)))


def _attach(rt: Runtime, ui: Console, as_json: bool) -> show.Trace:
    trace = show.Trace(ui)
    if as_json:

        def emit(ev: Event) -> None:
            print(
                codec.dumps(
                    {
                        "seq": ev.seq,
                        "time": ev.time,
                        "pid": ev.pid,
                        "kind": ev.kind,
                        "detail": ev.detail,
                    }
                ),
                flush=True,
            )

        rt.listen(emit)
    else:
        rt.listen(trace)
    return trace


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="alos")
def cli() -> None:
    """alos runs LLM agents as processes whose every effect passes one authority path.

    Start with 'alos demo'. Then 'alos run base "GOAL" --model script:turns.jsonl
    --allow "fs:*=read"' in a directory of your own; see docs/ for the rest.
    """


@cli.command()
@click.argument("image")
@click.argument("goal")
@click.option(
    "--workspace",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="The process's working directory; relative fs: grants are relative to it.",
)
@store_option
@click.option(
    "--model",
    "model",
    required=True,
    help="The model: script:PATH (a JSON Lines script; docs/scripted-model.md).",
)
@click.option(
    "--allow",
    multiple=True,
    metavar="RESOURCE=RIGHTS",
    help="Grant, e.g. 'fs:src/*=read,write'. Repeatable.",
)
@click.option(
    "--ask",
    multiple=True,
    metavar="RESOURCE=RIGHTS",
    help="Ask a human first, e.g. 'fs:*=write'. Repeatable.",
)
@click.option(
    "--deny",
    multiple=True,
    metavar="RESOURCE=RIGHTS",
    help="Refuse always (beats any allow), e.g. 'fs:.env=read'. Repeatable.",
)
@click.option(
    "--budget",
    multiple=True,
    metavar="NAME=N",
    help="Limit what the process and its children may spend: model_calls, tokens, tool_calls, "
    "wall_seconds, children, bytes_written. Repeatable.",
)
@click.option(
    "--priority",
    type=click.IntRange(1, 9),
    default=None,
    help="Share of quanta, 1 to 9 (default 5); children never get more than their parent.",
)
@approve_option
@json_option
def run(
    image: str,
    goal: str,
    workspace: str,
    store: str,
    model: str,
    allow: tuple[str, ...],
    ask: tuple[str, ...],
    deny: tuple[str, ...],
    budget: tuple[str, ...],
    priority: int | None,
    approve: str,
    as_json: bool,
) -> None:
    """Start a process running IMAGE with GOAL, and run it (and every process it starts).

    Exits 0 when it exited ok, 3 when it waits on a human no one here can answer, 1 on failure.
    """
    limits_ = parse_budget(budget)
    grants = [
        parse_grant(s, e, workspace)
        for specs, e in ((allow, Effect.ALLOW), (ask, Effect.ASK), (deny, Effect.DENY))
        for s in specs
    ]
    ui, _ = _consoles(as_json)
    names: dict[int, str] = {}
    rt = _open_host(store, ui, names)
    try:
        trace = _attach(rt, ui, as_json)
        trace.names = names
        rt.recover()
        pid = _run(
            rt.spawn(image, goal, workspace=workspace, model=model, grants=grants, budget=limits_, priority=priority)
        )
        code = _run(Driver(rt, ui, approve).drive([pid]))
    finally:
        rt.close()
    sys.exit(code)


@cli.command()
@click.argument("pid", type=click.IntRange(1, 2**63 - 1), required=False)
@store_option
@approve_option
@json_option
def resume(pid: int | None, store: str, approve: str, as_json: bool) -> None:
    """Continue every process in the store where it stopped (after a crash, or once answered).

    With PID: resume that paused process and return (a running host, or a later 'alos resume',
    runs it). Without: exits like 'alos run': 0 all root processes exited ok, 3 waiting on a
    human, 1 failure.
    """
    if pid is not None:
        _signal(store, pid, "resume", "")
        return
    ui, _ = _consoles(as_json)
    names: dict[int, str] = {}
    rt = _open_host(store, ui, names, create=False)
    try:
        trace = _attach(rt, ui, as_json)
        procs = rt.processes()
        trace.names.update({p.pid: p.name for p in procs})
        names.update(trace.names)
        for moved in rt.recover():
            ui.print(f"● process {moved} was running when the host stopped; it resumes", style="yellow")
        roots = [p.pid for p in procs if p.parent is None]
        code = _run(Driver(rt, ui, approve).drive(roots))
    finally:
        rt.close()
    sys.exit(code)


def _signal(store: str, pid: int, signal: str, text: str) -> None:
    rt = _reader(store)
    try:
        result = _run(rt.signal(pid, signal, text))
        show.console().print(
            f"process {pid}: {signal} delivered; it is now {result['state']}. "
            "A host running this store sees it at once; otherwise 'alos resume' continues the run."
        )
    finally:
        rt.close()


@cli.command()
@click.argument("pid", type=click.IntRange(1, 2**63 - 1))
@click.option("--term", is_flag=True, help="Ask it to finish first (it gets a message and a few quanta), then kill.")
@store_option
def kill(pid: int, term: bool, store: str) -> None:
    """End process PID now (exit 'killed'); its children are adopted by its nearest living ancestor."""
    _signal(store, pid, "term" if term else "kill", "")


@cli.command()
@click.argument("pid", type=click.IntRange(1, 2**63 - 1))
@store_option
def pause(pid: int, store: str) -> None:
    """Pause process PID: it gets no quanta and makes no calls until 'alos resume PID'."""
    _signal(store, pid, "pause", "")


@cli.command()
@click.argument("pid", type=click.IntRange(1, 2**63 - 1))
@click.argument("text")
@click.option("--interrupt", is_flag=True, help="Send it as an interrupt: it also ends a sleep or wait.")
@store_option
def send(pid: int, text: str, interrupt: bool, store: str) -> None:
    """Write TEXT to process PID: its model reads it before its next model call."""
    if interrupt:
        _signal(store, pid, "interrupt", text)
        return
    rt = _reader(store)
    try:
        result = _run(rt.send(pid, text))
        show.console().print(f"message {result['id']} queued for process {pid}; its model reads it next.")
    finally:
        rt.close()


def parse_budget(specs: tuple[str, ...]) -> dict[str, int]:
    """Return the limits of ``--budget NAME=N`` options; raises click.BadParameter naming the bad one."""
    out: dict[str, int] = {}
    for spec in specs:
        name, sep, amount = spec.partition("=")
        if not sep or not amount.strip().isdigit():
            raise click.BadParameter(f"{spec!r} must look like NAME=N, e.g. model_calls=20", param_hint="--budget")
        if name.strip() not in BUDGETS:
            raise click.BadParameter(f"no budget {name!r}; budgets are {', '.join(BUDGETS)}", param_hint="--budget")
        if int(amount) > limits.BUDGET_MAX:
            raise click.BadParameter(f"{spec!r}: at most {limits.BUDGET_MAX}", param_hint="--budget")
        out[name.strip()] = int(amount)
    return out


def _reader(store: str) -> Runtime:
    return open(store, create=False)


@cli.command()
@store_option
@json_option
def ps(store: str, as_json: bool) -> None:
    """Show the process tree: pid, parent, name, image, state (and why it waits), priority,
    model turns and what each process with its descendants spent of its budget."""
    rt = _reader(store)
    try:
        procs = rt.processes()
        budgets = rt.budgets()
        if as_json:
            for p in procs:
                print(
                    codec.dumps(
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
                            "mode": p.mode,
                            "budget": {
                                name: {"limit": lim, "spent": used}
                                for name, (lim, used) in budgets.get(p.pid, {}).items()
                            },
                            "cwd": p.cwd,
                            "goal": p.goal,
                            "result": p.result,
                            "updated": p.updated,
                        }
                    )
                )
        elif not procs:
            show.console().print("no processes in this store")
        else:
            console = show.console(soft_wrap=False)
            console.print(show.process_table(procs, budgets, console.width))
    finally:
        rt.close()


@cli.command()
@store_option
@click.option("--all", "everything", is_flag=True, help="Show answered requests too.")
@json_option
def approvals(store: str, everything: bool, as_json: bool) -> None:
    """List the human requests that wait for an answer (--all: every request)."""
    rt = _reader(store)
    try:
        reqs = rt.requests(None if everything else RequestState.PENDING)
        if as_json:
            for r in reqs:
                print(
                    codec.dumps(
                        {
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
                    )
                )
        elif not reqs:
            show.console().print(
                "no requests wait for a human" if not everything else "no human requests in this store"
            )
        else:
            console = show.console(soft_wrap=False)
            for r in reqs:
                console.print(show.request_panel(r))
    finally:
        rt.close()


def _answer(store: str, rid: int, verdict: str, text: str | None) -> None:
    rt = _reader(store)
    try:
        result = _run(rt.answer(rid, verdict, text, who()))
        words = {
            "once": "approved once",
            "always": "approved always",
            "deny": "denied",
            "answer": "answered",
        }[verdict]
        show.console().print(
            f"request {rid} {words}; process {result['pid']} can go on. "
            "A host running this store continues it; if none is running, use 'alos resume'."
        )
    finally:
        rt.close()


@cli.command()
@click.argument("request_id", type=click.IntRange(1, 2**63 - 1))
@click.option(
    "--always",
    is_flag=True,
    help="Allow this right on this resource from now on, not just this once.",
)
@store_option
def approve(request_id: int, always: bool, store: str) -> None:
    """Approve request REQUEST_ID: this exact call once (or, with --always, this right on this resource)."""
    _answer(store, request_id, "always" if always else "once", None)


@cli.command()
@click.argument("request_id", type=click.IntRange(1, 2**63 - 1))
@click.option("--reason", default=None, help="Why; the agent sees it in the denial.")
@store_option
def deny(request_id: int, reason: str | None, store: str) -> None:
    """Deny request REQUEST_ID; the process gets a denial it can read (with your reason)."""
    _answer(store, request_id, "deny", reason)


@cli.command()
@click.argument("request_id", type=click.IntRange(1, 2**63 - 1))
@click.argument("text")
@store_option
def answer(request_id: int, text: str, store: str) -> None:
    """Answer question REQUEST_ID (asked with human_ask) with TEXT."""
    _answer(store, request_id, "answer", text)


@cli.group(invoke_without_command=True)
@click.option("--pid", type=click.IntRange(0, 2**63 - 1), default=None, help="Only this process's records.")
@store_option
@json_option
@click.pass_context
def audit(ctx: click.Context, pid: int | None, store: str, as_json: bool) -> None:
    """List the audit log (every decision and effect), or check it with 'alos audit verify'."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = store
        return
    rt = _reader(store)
    try:
        console = show.console()
        for r in rt.audit(pid):
            if as_json:
                print(
                    codec.dumps(
                        {
                            "seq": r.seq,
                            "time": r.time,
                            "pid": r.pid,
                            "syscall": r.syscall,
                            "resource": r.resource,
                            "right": r.right,
                            "decision": r.decision,
                            "outcome": r.outcome,
                            "detail": r.detail,
                            "prev": r.prev,
                            "digest": r.digest,
                        }
                    )
                )
            else:
                colour = "green" if r.outcome == "ok" else "yellow" if r.outcome == "parked" else "red"
                console.print(
                    show.line(
                        f"{r.seq:>6} {r.pid:>4} {r.syscall:<12} {show.clip_resource(r.resource, 60):<60} "
                        f"{r.right:<8} {r.decision:<9} ",
                        (r.outcome, colour),
                    )
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
    rt = _reader(store)
    try:
        v = rt.verify()
    finally:
        rt.close()
    if as_json:
        print(codec.dumps({"ok": v.ok, "count": v.count, "bad_seq": v.bad_seq, "reason": v.reason, "head": v.head}))
    elif v.ok:
        show.console().print(
            show.line(
                ("✓ audit chain intact", "green"),
                f": {v.count} records\nhead {v.head}\n(keep the head somewhere the host cannot write: "
                "a later verify that does not extend it shows a rewritten chain)",
            )
        )
    else:
        show.console(stderr=True).print(
            show.line((f"✗ audit chain broken at record {v.bad_seq}", "red"), f": {v.reason}")
        )
    sys.exit(0 if v.ok else 1)


@cli.command()
@click.option(
    "--workspace",
    default=None,
    type=click.Path(file_okay=False),
    help="Where to make the demo (default: a new temporary directory).",
)
@click.option(
    "--interactive",
    is_flag=True,
    help="Answer the approval yourself instead of letting the demo play the human.",
)
def demo(workspace: str | None, interactive: bool) -> None:
    """Watch an agent read a file, get denied a secret, ask for a write, and resume after approval."""
    from alos.cli.demo import run_demo

    sys.exit(run_demo(workspace, interactive))


def main(argv: list[str] | None = None) -> NoReturn:
    """Run the alos command line; AlosErrors print as 'alos: CODE: message' and exit 1."""
    try:
        cli.main(args=argv, prog_name="alos", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        print(
            "\nalos: stopped; the processes are saved in the store ('alos resume' continues)",
            file=sys.stderr,
        )
        sys.exit(130)
    except AlosError as err:
        print(f"alos: {err}", file=sys.stderr)
        sys.exit(EXIT_FAILED)
    except KeyboardInterrupt:
        print(
            "\nalos: interrupted; the processes are saved in the store ('alos resume' continues)",
            file=sys.stderr,
        )
        sys.exit(130)
    except Exception:  # noqa: BLE001 - the CLI boundary: say it is a bug, show where, keep the exit code honest
        print(
            "alos: internal error (a bug in alos); please report it with this trace:",
            file=sys.stderr,
        )
        traceback.print_exc()
        sys.exit(70)
    sys.exit(0)
