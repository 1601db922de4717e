"""clock.*: the time (clock.now) and waiting for it (clock.sleep), through the clock provider.

A sleeping process is parked with a deadline and costs nothing until the scheduler wakes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alos.kernel import Kernel, Tx
from alos.kernel.proc import block
from alos.rights import Need, Right
from alos.types import Parked, Process, Seconds, Wait

RESOURCE = "clock"


@dataclass(frozen=True, slots=True)
class NowArgs:
    """Return the current time in seconds since the epoch."""


@dataclass(frozen=True, slots=True)
class SleepArgs:
    """Wait ``seconds``; an interrupt ends the wait early."""

    seconds: Seconds


def now_needs(proc: Process, args: NowArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need(RESOURCE, Right.READ),)


def sleep_needs(proc: Process, args: SleepArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need(RESOURCE, Right.READ),)


async def now(kernel: Kernel, proc: Process, args: NowArgs) -> dict[str, Any]:
    """Return the clock provider's time."""
    return {"now": kernel.clock.now()}


def sleep(kernel: Kernel, tx: Tx, proc: Process, args: SleepArgs) -> dict[str, Any] | Parked:
    """Park until ``seconds`` have passed; return how long was slept (and whether an interrupt cut it)."""
    started = tx.now if proc.wake is None else proc.wake - args.seconds
    result = block(kernel, tx, proc, Wait.TIMER, True, args.seconds, {})
    if isinstance(result, Parked):
        return result
    return {"slept": round(tx.now - started, 6), **({"interrupted": True} if "interrupted" in result else {})}
