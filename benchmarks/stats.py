"""Timing samples and their summary: median, p95 and throughput, in nanoseconds."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

Call = Callable[[int], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Summary:
    """What a list of per-operation timings says."""

    count: int
    median_ns: float
    p95_ns: float
    mean_ns: float

    @property
    def per_second(self) -> float:
        """Return operations per second at the mean cost."""
        return 1e9 / self.mean_ns if self.mean_ns > 0 else 0.0


def percentile(samples: list[int] | list[float], fraction: float) -> float:
    """Return the ``fraction`` quantile of ``samples`` (nearest rank)."""
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered)) - 1))
    return float(ordered[rank])


def summarize(samples: list[int] | list[float]) -> Summary:
    """Return the summary of non-empty ``samples`` (nanoseconds each)."""
    if not samples:
        raise ValueError("no samples to summarize")
    return Summary(
        count=len(samples),
        median_ns=float(statistics.median(samples)),
        p95_ns=percentile(samples, 0.95),
        mean_ns=float(statistics.fmean(samples)),
    )


async def time_calls(call: Call, iterations: int, warmup: int) -> list[int]:
    """Await ``call(i)`` ``warmup`` times untimed, then ``iterations`` times; return each cost."""
    for i in range(warmup):
        await call(i)
    gc.collect()
    samples: list[int] = []
    clock = time.perf_counter_ns
    for i in range(iterations):
        start = clock()
        await call(warmup + i)
        samples.append(clock() - start)
    return samples
