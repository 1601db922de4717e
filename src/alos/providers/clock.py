"""Clocks: the host's wall clock and a manual clock for deterministic tests."""

from __future__ import annotations

import time


class SystemClock:
    def now(self) -> float:
        """Return the host's wall-clock time in seconds since the epoch."""
        return time.time()


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        """Return the current manual time."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self._now += seconds
