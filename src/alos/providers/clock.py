"""Clocks: the host's wall clock and a manual clock for deterministic tests."""

from __future__ import annotations

import asyncio
import time


class SystemClock:
    real = True  # sleeping takes real time

    def now(self) -> float:
        """Return the host's wall-clock time in seconds since the epoch."""
        return time.time()

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of real time."""
        await asyncio.sleep(seconds)


class ManualClock:
    """A clock that moves only when told to, or when the scheduler sleeps on it (it jumps ahead
    at once: timed waits run deterministically and take no real time)."""

    real = False

    def __init__(self, start: float = 1_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        """Return the current manual time."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        """Jump ``seconds`` ahead at once."""
        self._now += max(0.0, seconds)
        await asyncio.sleep(0)
