"""Open a store as its host for a command that runs processes (run, resume): who tells the person
what processes say, who answers requests unattended, how shell commands are isolated, and a
SIGTERM that stops the host as Ctrl-C does."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import click

from alos.cli import show
from alos.cli.screen import Screen
from alos.config import ModelConfig
from alos.errors import AlosError

if TYPE_CHECKING:
    from alos.runtime import Runtime


def _terminated(signum: int, frame: object) -> None:
    """Stop the host as Ctrl-C does (the processes stay runnable for the next host; their commands
    are killed as it closes): SIGTERM otherwise ends Python with no clean-up at all."""
    raise KeyboardInterrupt


def open_host(
    store: str,
    ui: Screen,
    names: dict[int, str],
    create: bool = True,
    models: ModelConfig | None = None,
    record: str | None = None,
    isolate: str = "auto",
    answers: str | None = None,
    workspace: str = ".",
) -> Runtime:
    """Open the store as its host, telling the person what processes say; with ``answers`` the
    requests its rules match are answered from that file (a bad one is a usage error: nothing
    is opened)."""
    from alos.providers.base import HumanIO
    from alos.providers.human import CallbackHuman
    from alos.runtime import open

    signal.signal(signal.SIGTERM, _terminated)  # a host stopped cleanly kills its commands on the way out
    human: HumanIO = CallbackHuman(show.tell(ui, names))
    if answers is not None:
        from alos.providers.answers import Answers
        from alos.syscall import TABLE

        try:
            human = Answers.load(answers, workspace, tell=human, syscalls=TABLE)
        except AlosError as err:
            raise click.UsageError(err.message) from None
    return open(store, create=create, host=True, human=human, models=models, record=record, isolate=isolate)
