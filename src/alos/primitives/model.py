"""model.call: one call to the process's model, through its provider.

When the provider cannot be opened (a model script moved or broken since the process started),
the process is not failed for good: it parks on a recovery request that says why. Approving it
tries again; denying it ends the call with the person's reason, and the agent loop exits the
process failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alos import codec, limits
from alos.errors import AlosError, Invalid, NotFound, Unavailable
from alos.kernel import Kernel, approval
from alos.kernel.kernel import Site
from alos.providers.base import ModelRequest
from alos.rights import Need, Right
from alos.types import ModelTurn, Parked, Process, RequestKind, RequestState, Wait


@dataclass(frozen=True, slots=True)
class CallArgs:
    """Call the process's model with ``messages`` and the ``tools`` it may use."""

    messages: list[Any]
    tools: list[Any]


NOWHERE = Site(-1, -1, -1)  # a model call belongs to no pending action: its requests are filed here


def resource(proc: Process) -> str:
    """Return the resource a call to ``proc``'s model needs execute on: ``model:<kind>``."""
    return "model:" + proc.model.partition(":")[0]


def cost(args: CallArgs) -> dict[str, int]:
    """Return what a call charges before it runs: one model call, and that some tokens are left."""
    return {"model_calls": 1, "tokens": 0}


def used(turn: ModelTurn) -> dict[str, int]:
    """Return the tokens a turn used, as its usage reports them (at most a budget's largest limit)."""
    usage = turn.usage
    total = usage.get("total_tokens", usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0))
    return {"tokens": min(max(0, int(total)), limits.BUDGET_MAX)}


def call_needs(proc: Process, args: CallArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need(resource(proc), Right.EXECUTE),)


async def call(kernel: Kernel, proc: Process, args: CallArgs) -> ModelTurn | Parked:
    """Return the model's next turn for this process, or Parked on a recovery request when its
    model cannot be opened. Raises Unavailable when a person chose not to try again."""
    try:
        model = kernel.model(proc.model)
    except (NotFound, Invalid, Unavailable) as err:
        return _unavailable(kernel, proc, err)
    return await model.complete(ModelRequest(proc.name, proc.turns, args.messages, args.tools))


def _unavailable(kernel: Kernel, proc: Process, err: AlosError) -> Parked:
    last = approval.at(kernel, proc.pid, NOWHERE, RequestKind.RECOVERY)
    if last is not None and last.syscall == "model.call":
        if last.state is RequestState.PENDING:
            return Parked(proc.pid, Wait.HUMAN, last.id)
        if last.state is RequestState.REJECTED:
            raise Unavailable(
                f"model {proc.model} could not be opened ({err}); {last.answered_by} chose not to try again: "
                f"{last.answer or 'no reason given'}"
            )
    detail = {
        "syscall": "model.call",
        "model": proc.model,
        "note": f"the model cannot be opened: {err}. Put it back and approve to try again; deny to end the process",
    }
    with kernel.transaction() as tx:
        req = approval.request(
            kernel,
            tx,
            proc,
            RequestKind.RECOVERY,
            NOWHERE,
            "model.call",
            resource(proc),
            Right.EXECUTE.value,
            codec.digest_value(["model.call", proc.pid, proc.model, proc.turns]),
            detail,
        )
    return Parked(proc.pid, Wait.HUMAN, req.id)
