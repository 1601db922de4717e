"""model.call: one call to the process's model, through its provider."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alos.kernel import Kernel
from alos.providers.base import ModelRequest
from alos.rights import Need, Right
from alos.types import ModelTurn, Process


@dataclass(frozen=True, slots=True)
class CallArgs:
    """Call the process's model with ``messages`` and the ``tools`` it may use."""

    messages: list[Any]
    tools: list[Any]


def resource(proc: Process) -> str:
    """Return the resource a call to ``proc``'s model needs execute on: ``model:<kind>``."""
    return "model:" + proc.model.partition(":")[0]


def cost(args: CallArgs) -> dict[str, int]:
    """Return what a call charges before it runs: one model call, and that some tokens are left."""
    return {"model_calls": 1, "tokens": 0}


def used(turn: ModelTurn) -> dict[str, int]:
    """Return the tokens a turn used, as its usage reports them."""
    usage = turn.usage
    total = usage.get("total_tokens", usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0))
    return {"tokens": max(0, int(total))}


def call_needs(proc: Process, args: CallArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need(resource(proc), Right.EXECUTE),)


async def call(kernel: Kernel, proc: Process, args: CallArgs) -> ModelTurn:
    """Return the model's next turn for this process."""
    model = kernel.model(proc.model)
    return await model.complete(ModelRequest(proc.name, proc.turns, args.messages, args.tools))
