"""The options several ``alos`` commands share: --store, --json, --approve."""

from __future__ import annotations

import click

from alos.runtime import DEFAULT_STORE

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
