"""``alos serve`` (a host that stays) and ``alos console`` (the web console alone).

A host that stays runs every runnable process, those that other terminals start ('alos run
--detach'), answer, signal or message included, and sleeps on the store's bell in between: no
polling. SIGTERM and Ctrl-C stop it cleanly (processes stay runnable for the next host), so a
supervisor such as systemd can run it (docs/serve.md). The console serves on loopback unless
--host says otherwise, and prints its URL with its token.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from alos.cli.host import open_host
from alos.cli.options import host_options, model_config, model_options, store_option
from alos.cli.screen import Screen, command, is_terminal
from alos.errors import AlosError
from alos.rights import Grant
from alos.types import Event

if TYPE_CHECKING:
    from alos.console.app import Server
    from alos.runtime import Runtime


def console_options(f: click.decorators.FC) -> click.decorators.FC:
    """Add --port and --host, the console's address."""
    f = click.option(
        "--host",
        "address",
        default="127.0.0.1",
        show_default=True,
        help="The address the console listens on. Anything but loopback lets other machines reach it "
        "(the token still guards it): only with a reason, behind a firewall.",
    )(f)
    f = click.option(
        "--port", type=click.IntRange(0, 65535), default=8470, show_default=True, help="Its port (0: any free one)."
    )(f)
    return f


def console_server(rt: Runtime, address: str, port: int, ui: Screen, hosted: str) -> Server:
    """Return the console's server for ``rt``, bound; say its URL (and warn off loopback)."""
    from alos.console.app import Server, bind, check_host

    try:
        loopback = check_host(address)
        sock = bind(address, port)
    except AlosError as err:
        raise click.UsageError(err.message) from None
    if not loopback:
        ui.say(
            (f"alos: the console listens on {address}, not on loopback: other machines can reach it. ", "yellow"),
            ("Anyone with its URL can approve what your agents ask.", "yellow"),
        )
    server = Server(rt, sock, hosted=hosted)
    if is_terminal(ui):
        ui.say(("console: ", "bold"), server.url)
        ui.say(("         (open it in a browser on this machine; the token in it is the only key)", "dim"))
    else:  # a log (a file, a journal) may be read by a process: the token goes where none may reach
        try:
            kept = server.keep_url(os.path.dirname(os.path.realpath(rt.store.path)))
        except AlosError:
            sock.close()
            raise
        ui.say(("console: ", "bold"), server.address, f" (the URL with its token is in {kept})")
    return server


async def until_stopped(main: asyncio.Future[Any], server: Server | None) -> None:
    """Run ``main`` (and the console) until it ends or SIGTERM/SIGINT arrives."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    for signum in before:
        loop.add_signal_handler(signum, stopping.set)
    parts: list[asyncio.Future[Any]] = [main]
    if server is not None:
        parts.append(asyncio.ensure_future(server.run()))
    stopper: asyncio.Future[Any] = asyncio.ensure_future(stopping.wait())
    try:
        done, _ = await asyncio.wait([*parts, stopper], return_when=asyncio.FIRST_COMPLETED)
        for part in parts:
            failed = part.exception() if part in done else None
            if failed is not None:
                raise failed
    finally:
        if server is not None:
            server.stop()
        for part in [*parts, stopper]:
            part.cancel()
        await asyncio.gather(*parts, stopper, return_exceptions=True)
        for signum, handler in before.items():  # a second signal while closing stops as the first did
            loop.remove_signal_handler(signum)
            signal.signal(signum, handler)


@click.command()
@store_option
@model_options
@host_options
@click.option("--console", "with_console", is_flag=True, help="Serve the web console too (docs/console.md).")
@console_options
def serve(
    store: str,
    base_url: str | None,
    api_key: str | None,
    constrain: bool,
    record: str | None,
    isolate: str,
    answers: str | None,
    with_console: bool,
    port: int,
    address: str,
) -> None:
    """Run this store's processes and stay: pick up processes other terminals start ('alos run
    --detach'), answer, signal or message, at once, until SIGTERM or Ctrl-C.

    Exactly one host runs a store: a second 'alos serve' (or 'alos run') on it is refused.
    Stopping leaves every process runnable for the next host. Idle, it uses no CPU: it sleeps
    until another program changes the store or a process's timer is due.
    """
    ui = Screen()
    names: dict[int, str] = {}
    config = model_config(None, base_url, api_key, constrain)
    rt = open_host(store, ui, names, models=config, record=record, isolate=isolate, answers=answers)
    try:
        from alos.cli.show import Trace

        trace = Trace(ui)
        trace.names = names
        names.update({p.pid: p.name for p in rt.processes()})

        def learn(ev: Event) -> None:  # a process another terminal started: its spawn event was theirs
            if ev.pid and ev.pid not in names:
                names[ev.pid] = rt.name(ev.pid)

        rt.listen(learn)
        rt.listen(trace)
        rt.listen_tokens(trace.token)
        for moved in rt.recover():
            ui.say((f"● process {moved} was running when the last host stopped; it resumes", "yellow"))
        live = sum(1 for p in rt.processes() if p.exit is None)
        ui.say(
            ("alos serve: ", "bold"),
            f"hosting {rt.store.path} ({live} live process(es)); "
            f"'{command()} run --detach IMAGE GOAL' starts one; Ctrl-C or SIGTERM stops",
        )
        server = console_server(rt, address, port, ui, "this host runs these processes") if with_console else None

        async def main() -> None:
            await until_stopped(asyncio.ensure_future(rt.serve()), server)

        asyncio.run(main())
        left = sum(1 for p in rt.processes() if p.exit is None)
        ui.say(f"alos serve: stopped; {left} live process(es) wait in the store for the next host")
    finally:
        rt.close()


@click.command()
@store_option
@console_options
def console(store: str, port: int, address: str) -> None:
    """Serve the web console for this store: watch processes, answer approvals, read the audit.

    It works whether or not a host runs the store ('alos serve' runs one; 'alos serve --console'
    does both in one program). Ctrl-C or SIGTERM stops it.
    """
    from alos.runtime import open

    ui = Screen()
    try:
        rt = open(store, create=False)
    except AlosError as err:
        raise click.UsageError(f"{err.message} ('{command()} serve --store {store}' makes a store)") from None
    try:
        server = console_server(rt, address, port, ui, "")

        async def main() -> None:
            await until_stopped(asyncio.ensure_future(asyncio.Event().wait()), server)

        asyncio.run(main())
        ui.say("alos console: stopped")
    finally:
        rt.close()
    sys.exit(0)


@dataclass(frozen=True)
class Start:
    """What 'alos run' was asked to start."""

    image: str
    goal: str
    workspace: str
    model: str
    grants: list[Grant]
    budget: dict[str, int]
    priority: int | None
    grant_requested: bool
    approve: str


def detach(store: str, start: Start, ui: Screen, out: Screen | None) -> None:
    """Store the process ``start`` describes, for a host to run, and say its pid (as JSON on
    ``out`` when given); say how to get it run when no host runs the store now."""
    from alos.cli.grants import requested, written_by_a_person
    from alos.runtime import open

    rt = open(store)
    try:
        found = rt.image(start.image)
        written_by_a_person(rt.image_registrant(found), found, start.grant_requested)
        grants = start.grants + requested(
            ui, found, start.workspace, start.grant_requested, bool(start.grants), start.approve
        )
        pid = asyncio.run(
            rt.spawn(
                found,
                start.goal,
                workspace=start.workspace,
                model=start.model,
                grants=grants,
                budget=start.budget,
                priority=start.priority,
            )
        )
        hosted = rt.host_running()
    finally:
        rt.close()
    if out is not None:
        out.json({"pid": pid, "hosted": hosted})
    else:
        ui.say(f"process {pid} started")
    if not hosted:
        ui.say(
            (f"no host runs {store} now: '{command()} serve --store {store}' runs it ", "yellow"),
            (f"(or '{command()} resume --store {store}' until it is done)", "yellow"),
        )


__all__ = ["Start", "console", "console_server", "detach", "serve", "until_stopped"]
