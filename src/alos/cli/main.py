"""The ``alos`` commands that run and steer processes; the read-only ones are in look.py.

Human-readable output goes to stdout; with --json, stdout carries only JSON (lines) and
prompts, traces and agent output go to stderr. Everything printed goes through screen.Screen.
Errors print 'alos: CODE: message' and exit 1; usage errors exit 2 before any store is made.
cli.main is one of the three places a broad except is allowed.

Size: ~420 lines: the commands that run and steer processes (run, resume, the signals, the
answers, the demo), each a short function over the runtime; the serve, console, read-only,
object and image commands are in modules of their own.
"""

from __future__ import annotations

import asyncio
import sys
import traceback
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from alos.cli import ckpts, look, objects, serve, show
from alos.cli.drive import EXIT_FAILED, Driver, who
from alos.cli.grants import parse_budget, parse_grants, requested, written_by_a_person
from alos.cli.host import open_host
from alos.cli.image import image as image_group
from alos.cli.models import models as models_group
from alos.cli.options import (
    approve_option,
    host_options,
    json_option,
    model_config,
    model_options,
    store_option,
)
from alos.cli.screen import Screen, command
from alos.errors import AlosError
from alos.types import Event

if TYPE_CHECKING:
    from alos.runtime import Runtime

T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def _screens(as_json: bool) -> tuple[Screen, Screen]:
    """Return (the screen for people, the screen for JSON): people read stderr under --json."""
    out = Screen()
    return (Screen(stderr=True), out) if as_json else (out, out)


def _attach(rt: Runtime, ui: Screen, out: Screen, as_json: bool) -> show.Trace:
    trace = show.Trace(ui)
    rt.listen_tokens(trace.token)  # with --json too: people read the trace on stderr
    if as_json:

        def emit(ev: Event) -> None:
            out.json({"seq": ev.seq, "time": ev.time, "pid": ev.pid, "kind": ev.kind, "detail": ev.detail})

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
    default=None,
    help="The model: openai:MODEL, anthropic:MODEL, script:PATH or replay:PATH (docs/models.md). "
    "Default: ALOS_MODEL, or model = in .alos/config.toml.",
)
@model_options
@click.option(
    "--allow", multiple=True, metavar="RESOURCE=RIGHTS", help="Grant, e.g. 'fs:src/*=read,write'. Repeatable."
)
@click.option(
    "--ask", multiple=True, metavar="RESOURCE=RIGHTS", help="Ask a human first, e.g. 'fs:*=write'. Repeatable."
)
@click.option(
    "--deny",
    multiple=True,
    metavar="RESOURCE=RIGHTS",
    help="Refuse always (beats any allow), e.g. 'fs:.env=read'. Repeatable.",
)
@click.option(
    "--grant-requested",
    is_flag=True,
    help="Grant what the image requests (shown first). Without it a person is asked at a terminal; "
    "elsewhere nothing requested is granted.",
)
@click.option(
    "--budget",
    multiple=True,
    metavar="NAME=N",
    help="Limit what the process and its children may spend: model_calls, tokens, tool_calls, "
    "wall_seconds, children, bytes_written. Repeatable; overrides the image's default.",
)
@click.option(
    "--priority",
    type=click.IntRange(1, 9),
    default=None,
    help="Share of quanta, 1 to 9 (default 5); children never get more than their parent.",
)
@click.option(
    "--detach",
    is_flag=True,
    help="Only start it: store the process, print its pid and return at once, for the host that "
    "'alos serve' runs (with that host's model settings).",
)
@host_options
@approve_option
@json_option
def run(
    image: str,
    goal: str,
    workspace: str,
    store: str,
    model: str | None,
    base_url: str | None,
    api_key: str | None,
    constrain: bool,
    record: str | None,
    allow: tuple[str, ...],
    ask: tuple[str, ...],
    deny: tuple[str, ...],
    grant_requested: bool,
    budget: tuple[str, ...],
    priority: int | None,
    isolate: str,
    detach: bool,
    answers: str | None,
    approve: str,
    as_json: bool,
) -> None:
    """Start a process running IMAGE with GOAL, and run it (and every process it starts).

    IMAGE is a built-in (base, reader, coder, reviewer), a registered image, NAME@VERSION, or
    the path of an image file. It grants nothing: the grants it requests are shown, and granted
    only with --grant-requested or a yes at the prompt.

    Exits 0 when it exited ok, 3 when a process of this run waits on a human no one here can
    answer, 1 on failure, 2 on a usage error (nothing is stored then). Other processes in the
    store run too, but only this run's decide the exit code.
    """
    limits_ = parse_budget(budget)
    grants = parse_grants(workspace, allow=allow, ask=ask, deny=deny)
    config = model_config(model, base_url, api_key, constrain)
    spec = model or config.model
    if not spec:
        raise click.UsageError(
            "name a model: --model openai:MODEL (or anthropic:MODEL, script:PATH, replay:PATH), "
            "ALOS_MODEL, or model = in .alos/config.toml (docs/models.md)"
        )
    try:
        from alos.runtime import check_start

        check_start(image, workspace, spec, store)
    except AlosError as err:
        raise click.UsageError(err.message) from None
    ui, out = _screens(as_json)
    if detach:
        if answers is not None or record is not None:
            raise click.UsageError("--answers and --record are the host's: pass them to 'alos serve'")
        start = serve.Start(image, goal, workspace, spec, grants, limits_, priority, grant_requested, approve)
        serve.detach(store, start, ui, out if as_json else None)
        return
    names: dict[int, str] = {}
    rt = open_host(
        store, ui, names, models=config, record=record, isolate=isolate, answers=answers, workspace=workspace
    )
    try:
        found = rt.image(image)
        written_by_a_person(rt.image_registrant(found), found, grant_requested)
        grants += requested(ui, found, workspace, grant_requested, bool(grants), approve)
        trace = _attach(rt, ui, out, as_json)
        trace.names = names
        rt.recover()
        pid = _run(
            rt.spawn(found, goal, workspace=workspace, model=spec, grants=grants, budget=limits_, priority=priority)
        )
        code = _run(Driver(rt, ui, approve).drive([pid]))
    finally:
        rt.close()
    sys.exit(code)


@cli.command()
@click.argument("pid", type=click.IntRange(1, 2**63 - 1), required=False)
@store_option
@model_options
@host_options
@approve_option
@json_option
def resume(
    pid: int | None,
    store: str,
    base_url: str | None,
    api_key: str | None,
    constrain: bool,
    record: str | None,
    isolate: str,
    answers: str | None,
    approve: str,
    as_json: bool,
) -> None:
    """Continue the processes of this store where they stopped (after a crash, or once answered).

    With PID: resume that paused process and return (a running host, or a later 'alos resume',
    runs it). Without: run every live process; exits like 'alos run', on the live root processes:
    0 they exited ok (or nothing was left to run), 3 one waits on a human, 1 failure.
    """
    if pid is not None:
        _signal(store, pid, "resume", "")
        return
    ui, out = _screens(as_json)
    names: dict[int, str] = {}
    config = model_config(None, base_url, api_key, constrain)
    rt = open_host(store, ui, names, create=False, models=config, record=record, isolate=isolate, answers=answers)
    try:
        trace = _attach(rt, ui, out, as_json)
        procs = rt.processes()
        trace.names.update({p.pid: p.name for p in procs})
        names.update(trace.names)
        for moved in rt.recover():
            ui.say((f"● process {moved} was running when the host stopped; it resumes", "yellow"))
        roots = [p.pid for p in rt.processes() if p.parent is None and p.exit is None]
        if not roots:
            ui.say(f"nothing to resume: every process in {rt.store.path} has exited")
            ui.say(f"('{command()} ps --all' lists them)")
            code = 0
        else:
            code = _run(Driver(rt, ui, approve).drive(roots))
    finally:
        rt.close()
    sys.exit(code)


def _signal(store: str, pid: int, signal: str, text: str) -> None:
    rt = look.reader(store)
    try:
        result = _run(rt.signal(pid, signal, text))
        Screen().say(
            f"process {pid}: {signal} delivered; it is now {result['state']}. "
            f"A host running this store sees it at once; otherwise '{command()} resume' continues the run."
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
    rt = look.reader(store)
    try:
        result = _run(rt.send(pid, text))
        Screen().say(f"message {result['id']} queued for process {pid}; its model reads it next.")
    finally:
        rt.close()


def _answer(store: str, rid: int, verdict: str, text: str | None) -> None:
    rt = look.reader(store)
    try:
        result = _run(rt.answer(rid, verdict, text, who()))
        Screen().say(
            f"request {rid} {show.VERDICT_WORDS[verdict]}; process {result['pid']} can go on. "
            f"A host running this store continues it; if none is running, use '{command()} resume'."
        )
    finally:
        rt.close()


@cli.command()
@click.argument("request_id", type=click.IntRange(1, 2**63 - 1))
@click.option("--always", is_flag=True, help="Allow this right on this resource from now on, not just this once.")
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


@cli.command()
@click.option(
    "--workspace",
    default=None,
    type=click.Path(file_okay=False),
    help="Make the demo in DIR (created, or empty) and keep it; by default a temporary directory, removed after.",
)
@click.option(
    "--interactive", is_flag=True, help="Answer the approval yourself instead of letting the demo play the human."
)
@click.option(
    "--real",
    is_flag=True,
    help="Let the local model (Qwen2.5-Coder-0.5B on llama.cpp, offline; 'make real-model' installs it) "
    "play the agent instead of the script.",
)
@click.option(
    "--console",
    "console_port",
    type=click.IntRange(0, 65535),
    default=None,
    is_flag=False,
    flag_value=8470,
    help="Open the web console (on PORT, default 8470; 0: any free one) and answer the approval there.",
)
def demo(workspace: str | None, interactive: bool, real: bool, console_port: int | None) -> None:
    """Watch an agent read a file, get denied a secret, ask for a write, and resume after approval.

    The demo makes its own workspace and store; it never writes into a directory it did not create.
    """
    from alos.cli.demo import run_demo

    sys.exit(run_demo(workspace, interactive, real, console_port))


for _command in (look.ps, look.approvals, look.audit, image_group, models_group):
    cli.add_command(_command)
for _command in (objects.obj, objects.store, ckpts.ckpt, serve.serve, serve.console):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> NoReturn:
    """Run the alos command line; AlosErrors print as 'alos: CODE: message' and exit 1."""
    err_screen = Screen(stderr=True)
    try:
        cli.main(args=argv, prog_name="alos", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        if e.exit_code == 2 and isinstance(e, click.UsageError) and e.ctx is not None:
            err_screen.say(e.ctx.get_usage())
            err_screen.say(f"Try '{e.ctx.command_path} --help' for help.")
            err_screen.say("")
        err_screen.say(f"Error: {e.format_message()}")
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        err_screen.say(f"alos: stopped; the processes are saved in the store ('{command()} resume' continues)")
        sys.exit(130)
    except AlosError as err:
        err_screen.say(f"alos: {err}", keep_newlines=True)  # an image file's errors: one a line
        sys.exit(EXIT_FAILED)
    except KeyboardInterrupt:
        err_screen.say("")
        err_screen.say(f"alos: interrupted; the processes are saved in the store ('{command()} resume' continues)")
        sys.exit(130)
    except Exception:  # noqa: BLE001 - the CLI boundary: say it is a bug, show where, keep the exit code honest
        err_screen.say("alos: internal error (a bug in alos); please report it with this trace:")
        err_screen.say(traceback.format_exc(), keep_newlines=True)
        sys.exit(70)
    sys.exit(0)
