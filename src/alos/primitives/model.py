"""model.call: one call to the process's model, through its provider.

A model that cannot be opened (a script moved or broken since the process started) raises
ProviderDown: dispatch() parks the process on a recovery request instead of failing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alos.errors import Invalid, NotFound, ProviderDown, Unavailable
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
    """Return the tokens a turn used, as its usage reports them (the ledger saturates a huge figure)."""
    usage = turn.usage
    total = usage.get("total_tokens", usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0))
    return {"tokens": max(0, int(total))}


def describe(kernel: Kernel, proc: Process, args: CallArgs) -> dict[str, Any]:
    """Return what a person deciding about this call sees: the model, not the whole context."""
    return {"model": proc.model, "messages": len(args.messages), "tools": len(args.tools)}


def call_needs(proc: Process, args: CallArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need(resource(proc), Right.EXECUTE),)


async def call(kernel: Kernel, proc: Process, args: CallArgs) -> ModelTurn:
    """Return the model's next turn for this process. Raises ProviderDown when its model cannot
    be opened (dispatch() then parks the process on a recovery request)."""
    try:
        model = kernel.model(proc.model)
    except (NotFound, Invalid, Unavailable) as err:
        raise ProviderDown(f"model {proc.model} cannot be opened: {err}") from None
    return await model.complete(ModelRequest(proc.name, proc.turns, args.messages, args.tools))
