"""``alos image``: list, show, validate and register AgentImages (docs/images.md).

Registering goes through the image.register syscall as the host; reading through the runtime.
An image file is hostile input: everything shown from it goes through the Screen.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TYPE_CHECKING

import click
from rich.table import Table

from alos import images
from alos.cli.options import json_option, store_option
from alos.cli.screen import Screen, clip, command, text
from alos.errors import AlosError
from alos.images import is_path
from alos.images.load import load as load_image
from alos.types import HOST

if TYPE_CHECKING:
    from alos.runtime import Runtime


@click.group()
def image() -> None:
    """List, show, check and register AgentImages (docs/images.md). An image grants nothing."""


@image.command("list")
@store_option
@json_option
def list_(store: str, as_json: bool) -> None:
    """List the built-in images and the newest version of every image registered in the store."""
    rt = _open(store, create=False) if _exists(store) else None
    try:
        if rt is None:
            found = [
                {"name": n, "version": "built-in", "description": images.image(n).description} for n in images.BUILTIN
            ]
        else:
            found = asyncio.run(rt.dispatch(HOST, "image.list", {}))["images"]
    finally:
        if rt is not None:
            rt.close()
    screen = Screen()
    if as_json:
        for row in found:
            screen.json(row)
        return
    table = Table(box=None, header_style="bold")
    for col in ("NAME", "VERSION", "DESCRIPTION"):
        table.add_column(col)
    for row in found:
        table.add_row(text(clip(row["name"], 64)), text(str(row["version"])), text(clip(row["description"], 80)))
    screen.show(table)


@image.command()
@click.argument("name")
@store_option
@json_option
def show(name: str, store: str, as_json: bool) -> None:
    """Show image NAME: a built-in, a registered name (its newest version), NAME@VERSION, or the
    path of an image file. Shows the grants it requests; running it grants none of them."""
    rt = _open(store, create=False) if _exists(store) else None
    try:
        if rt is not None:
            found = rt.image(name)
        elif is_path(name):
            found = load_image(name)
        else:
            found = images.image(name)
    finally:
        if rt is not None:
            rt.close()
    screen = Screen()
    if as_json:
        screen.json(images.to_json(found))
        return
    describe(screen, found)


def describe(screen: Screen, found: images.Image) -> None:
    """Print an image for a person: what it is, its tools, its defaults, what it requests."""
    screen.say((clip(found.name, 64), "bold"), f"  version {clip(found.version, 20)}  ({clip(found.source, 120)})")
    screen.say("  ", clip(found.description, 200))
    screen.say(("  tools: ", "dim"), ", ".join(found.syscalls))
    if found.budget:
        screen.say(("  budget: ", "dim"), ", ".join(f"{k}={v}" for k, v in found.budget))
    model = [
        f"{k}={v}" for k, v in (("temperature", found.temperature), ("max_tokens", found.max_tokens)) if v is not None
    ]
    if found.constrain:
        model.append("constrain")
    if model:
        screen.say(("  model: ", "dim"), ", ".join(model))
    if found.context_tokens:
        screen.say(("  context: ", "dim"), f"{found.context_tokens} tokens")
    requested(screen, found)


def requested(screen: Screen, found: images.Image) -> None:
    """Print the grants an image requests (declarations: nothing is granted by them)."""
    if not found.requests:
        screen.say(("  requests no grants", "dim"))
        return
    screen.say(("  requests (granted only with --grant-requested or yes at the prompt):", "dim"))
    for effect, spec in found.requests:
        screen.say(f"    --{effect} ", (clip(spec, 120), "bold"))


@image.command()
@click.argument("path", type=click.Path())
def validate(path: str) -> None:
    """Check the image file (or directory) at PATH against the image schema; print every error
    with its file, line and field. Exits 0 when it is valid, 1 when not."""
    try:
        found = load_image(path)
    except AlosError as err:
        Screen(stderr=True).say(f"alos: {err}", keep_newlines=True)
        sys.exit(1)
    screen = Screen()
    screen.say(("✓ ", "green"), f"{path}: image {clip(found.name, 64)} is valid ({len(found.syscalls)} tools)")
    requested(screen, found)


@image.command()
@click.argument("path", type=click.Path())
@store_option
def register(path: str, store: str) -> None:
    """Register the image file at PATH in the store, as the next version of its name. Processes
    already running keep the version they started with."""
    rt = _open(store, create=True)
    try:
        result = asyncio.run(rt.register(path))
    finally:
        rt.close()
    Screen().say(
        f"registered {clip(result['ref'], 80)} (sha256 {result['digest'][:16]}…); "
        f"run it with '{command()} run {clip(result['name'], 64)} GOAL --model SPEC'"
    )


def _open(store: str, create: bool) -> Runtime:
    from alos.runtime import open  # here, not at import: 'alos --help' never opens a store

    return open(store, create=create)


def _exists(store: str) -> bool:
    return os.path.exists(store)
