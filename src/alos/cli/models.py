"""``alos models``: what models are configured, and one tiny call to check one (docs/models.md).

Keys are never shown: only whether one is set and where it comes from.
"""

from __future__ import annotations

import asyncio
import sys
import time

import click

from alos.cli.options import model_config, model_options
from alos.cli.screen import Screen, clip
from alos.config import ModelConfig, describe
from alos.errors import AlosError
from alos.types import ModelTurn

CHECK_PROMPT = "Reply with the single word: ok"


@click.group(invoke_without_command=True)
@click.pass_context
def models(ctx: click.Context) -> None:
    """List the configured models: the default model and each provider's base URL and key source."""
    if ctx.invoked_subcommand is not None:
        return
    config = model_config(None, None, None, False)
    screen = Screen()
    screen.say(("default model: ", "dim"), clip(config.model or "none (pass --model, or set ALOS_MODEL)", 120))
    for row in describe(config):
        shown = " ".join(f"{k}={clip(v, 100)}" for k, v in row.items() if k != "provider")
        screen.say((f"{row.get('provider', '?')}: ", "bold"), shown)


@models.command()
@click.argument("spec")
@model_options
def check(spec: str, base_url: str | None, api_key: str | None, constrain: bool, record: str | None) -> None:
    """Make one tiny call to model SPEC (openai:MODEL, anthropic:MODEL, script:PATH, replay:PATH)
    and print its reply, its latency and the tokens it reported. Exits 1 when it fails."""
    config = model_config(spec, base_url, api_key, constrain)
    screen = Screen()
    try:
        from alos.runtime import absolute_model

        turn, took = asyncio.run(_ask(absolute_model(spec), config, record))
    except AlosError as err:
        Screen(stderr=True).say(f"alos: {spec}: {err}")
        sys.exit(1)
    usage = ", ".join(f"{k}={v}" for k, v in sorted(turn.usage.items())) or "no usage reported"
    screen.say(
        ("✓ ", "green"), f"{clip(spec, 80)} answered in {took * 1000:.0f} ms: ", (clip(turn.content, 200), "bold")
    )
    screen.say(
        ("  ", "dim"), f"model {clip(turn.model or '?', 80)}; finish {clip(turn.finish_reason or '?', 40)}; {usage}"
    )


async def _ask(spec: str, config: ModelConfig, record: str | None) -> tuple[ModelTurn, float]:
    from alos.providers.base import ModelRequest
    from alos.providers.model import open_model

    model = open_model(spec, config, record=record)
    try:
        started = time.monotonic()
        request = ModelRequest(
            "check", 0, [{"role": "user", "content": CHECK_PROMPT}], [], max_tokens=16, temperature=0
        )
        turn = await model.complete(request)
        return turn, time.monotonic() - started
    finally:
        await model.aclose()
