"""The options several ``alos`` commands share: --store, --json, --approve, and where models are served."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from alos.config import DEFAULT_STORE, ModelConfig
from alos.config import load as load_config
from alos.errors import AlosError

F = TypeVar("F", bound=Callable[..., Any])

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


def host_options(f: F) -> F:
    """Add the options of a command that hosts processes: --isolate and --answers."""
    f = click.option(
        "--answers",
        metavar="FILE",
        default=None,
        type=click.Path(dir_okay=False),
        help="Answer human requests from the rules in FILE (TOML; docs/providers.md), for unattended runs; "
        "a request no rule matches still waits for a person.",
    )(f)
    f = click.option(
        "--isolate",
        type=click.Choice(["auto", "off", "required"]),
        default="auto",
        show_default=True,
        envvar="ALOS_ISOLATE",
        help="How shell commands are isolated: auto (with bubblewrap when installed), off, or required "
        "(refuse to run a command unisolated). Also ALOS_ISOLATE. docs/shell.md",
    )(f)
    return f


def model_options(f: F) -> F:
    """Add the options that say where models are served: --base-url, --api-key, --constrain, --record."""
    f = click.option(
        "--record",
        metavar="FILE",
        default=None,
        help="Append every model request and reply to FILE as JSON Lines (keys redacted); "
        "replay it with --model replay:FILE.",
    )(f)
    f = click.option(
        "--constrain",
        is_flag=True,
        help="Ask the model server to allow only one call of a declared tool per reply (a JSON schema "
        "response_format; for small local models, docs/models.md).",
    )(f)
    f = click.option(
        "--api-key",
        default=None,
        metavar="KEY",
        help="The key for the model server. Prefer OPENAI_API_KEY / ANTHROPIC_API_KEY or a config file: "
        "other users can read a command line.",
    )(f)
    f = click.option(
        "--base-url",
        default=None,
        metavar="URL",
        help="The model server's base URL, e.g. http://127.0.0.1:8080/v1 (also OPENAI_BASE_URL, "
        "ANTHROPIC_BASE_URL or .alos/config.toml).",
    )(f)
    return f


def model_config(model: str | None, base_url: str | None, api_key: str | None, constrain: bool) -> ModelConfig:
    """Return where models are served: these options, then the environment, then config files
    (.alos/config.toml, then ~/.config/alos/config.toml); raises click.UsageError for a bad file."""
    flags = {"model": model, "base_url": base_url, "api_key": api_key, "constrain": "true" if constrain else None}
    try:
        return load_config(os.getcwd(), flags)
    except AlosError as err:
        raise click.UsageError(err.message) from None
