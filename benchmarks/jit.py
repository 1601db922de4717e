"""JIT tools in Deno workers (providers/jit.py, docs/jit.md), the provider used directly.

Three rows: a cold start (a fresh Jit, from nothing to the first call's result: Deno started,
the runner ready, the tool written, loaded and run), a warm call (a tool returning a constant,
the same owner, so the worker it used last), and a syscall's round trip through the broker
protocol (one JSON line out, the host's callback, one line back), measured between the host's
callbacks. The host's callbacks answer at once, so the rows are the worker and protocol alone,
without dispatch(). Each call is checked to have returned what the tool returns. Workers run
under bubblewrap where it is installed, as a host runs them; the notes say which.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from alos import limits
from alos.providers.jit import Jit
from benchmarks.cases import Bench, Plan, Result, Target
from benchmarks.stats import summarize, time_calls

WARM_TARGET_US = 5_000  # a warm call of a tool returning a constant, median
SYSCALL_TARGET_US = 300  # one libos.syscall round trip, median
SYSCALLS = 1_000  # round trips measured, in calls of at most JIT_SYSCALLS_MAX - 6 each
CONSTANT = "export async function run() { return 42; }\n"
LOOP = """export async function run(args: any, libos: any) {
  for (let i = 0; i < args.n; i++) await libos.syscall("clock.now", {});
  return args.n;
}
"""


async def _answer(name: str, args: dict[str, Any]) -> Any:
    return {"ok": 1}


async def _deny(permission: str, value: str | None) -> Any:
    return f"the benchmark allows no {permission}"


def _how(jit: Jit) -> str:
    return "in bubblewrap" if jit.isolation() else "unisolated: bwrap is not installed"


async def jit_cold(plan: Plan) -> Result:
    """A fresh Jit's first call: Deno's start-up, the runner's, the tool's load and run."""
    samples: list[int] = []
    how = ""
    for _ in range(max(3, plan.startups)):
        start = time.perf_counter_ns()
        jit = Jit()
        try:
            got = await jit.run(1, "constant.ts", CONSTANT, {}, _answer, _deny, {})
            samples.append(time.perf_counter_ns() - start)
            if not got.ok or got.value != 42:
                raise RuntimeError(f"the first call did not return 42: {got!r:.300}")
            how = _how(jit)
        finally:
            await jit.aclose()
    return Result("JIT cold start: fresh Jit to first result", summarize(samples), None, "", note=how)


async def jit_warm(plan: Plan) -> Result:
    """A warm call: the same owner, its kept worker, a tool returning a constant."""
    jit = Jit()
    try:

        async def call(i: int) -> None:
            got = await jit.run(1, "constant.ts", CONSTANT, {}, _answer, _deny, {})
            if not got.ok or got.value != 42:
                raise RuntimeError(f"call {i} did not return 42: {got!r:.300}")

        samples = await time_calls(call, min(plan.calls, 200), min(plan.warmup, 20))
        how = _how(jit)
    finally:
        await jit.aclose()
    summary = summarize(samples)
    note = f"p95 {summary.p95_ns / 1e3:,.0f} us; {how}"
    target = Target("median", WARM_TARGET_US)
    return Result("JIT warm call (same owner)", summary, summary.per_second, "calls/s", target, note=note)


async def jit_syscall(plan: Plan) -> Result:
    """libos.syscall's round trip: the time between two of the host's callbacks in one call."""
    per_call = limits.JIT_SYSCALLS_MAX - 6
    stamps: list[int] = []

    async def answer(name: str, args: dict[str, Any]) -> Any:
        stamps.append(time.perf_counter_ns())
        return {"ok": 1}

    jit = Jit()
    samples: list[int] = []
    try:
        await jit.run(1, "loop.ts", LOOP, {"n": 10}, answer, _deny, {})  # warm-up: worker and module
        left = SYSCALLS
        while left > 0:
            n = min(per_call, left + 1)  # n callbacks make n - 1 round trips
            stamps.clear()
            got = await jit.run(1, "loop.ts", LOOP, {"n": n}, answer, _deny, {})
            if not got.ok or got.value != n or got.syscalls != n or len(stamps) != n:
                raise RuntimeError(f"a call of {n} syscalls returned {got!r:.300} after {len(stamps)} callbacks")
            samples += [b - a for a, b in itertools.pairwise(stamps)]
            left -= n - 1
        how = _how(jit)
    finally:
        await jit.aclose()
    summary = summarize(samples)
    note = f"{len(samples):,} round trips in calls of up to {per_call}; p95 {summary.p95_ns / 1e3:,.0f} us; {how}"
    return Result("JIT libos.syscall round trip", summary, summary.per_second, "syscalls/s",
                  Target("median", SYSCALL_TARGET_US), note=note)  # fmt: skip


async def jit_dispatch(plan: Plan) -> Result:
    """A registered tool's libos.syscall as a process makes it: clock.now through dispatch()
    (decided and audited), the runtime's own path (tooljit.call), per syscall."""
    from alos import tooljit
    from alos.rights import Effect, parse_grant
    from alos.types import ToolCall
    from benchmarks.fixture import environment

    per_call = limits.JIT_SYSCALLS_MAX - 6
    async with environment() as env:
        rt = env.rt
        grant = [parse_grant("tool:proc/*=register", Effect.ALLOW, env.workspace),
                 parse_grant("clock=read", Effect.ALLOW, env.workspace)]  # fmt: skip
        pid = await rt.spawn("base", "benchmark", workspace=env.workspace, model=env.script([]), grants=grant)
        params = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
        await rt.dispatch(
            pid, "tool.propose", {"name": "loop", "source": LOOP, "description": "d", "parameters": params}
        )
        await rt.dispatch(pid, "tool.register", {"name": "loop"})
        [spec] = tooljit.table(rt.kernel, pid, (), set()).values()
        await tooljit.call(rt.kernel, pid, spec, ToolCall("w", "loop", {"n": 10}), None)  # warm-up
        samples: list[int] = []
        for i in range(max(2, plan.calls // 500)):
            start = time.perf_counter_ns()
            text, ok, _ = await tooljit.call(rt.kernel, pid, spec, ToolCall(str(i), "loop", {"n": per_call}), None)
            took = time.perf_counter_ns() - start
            if not ok or text != str(per_call):
                raise RuntimeError(f"the tool returned {text!r:.300}")
            samples += [took // per_call] * per_call
        how = _how(rt.kernel.jit)
        await rt.kernel.jit.aclose()
    summary = summarize(samples)
    note = f"per syscall of calls of {per_call}, each decided and audited; {how}"
    return Result("JIT syscall through dispatch (clock.now)", summary, summary.per_second, "syscalls/s", None,
                  note=note)  # fmt: skip


BENCHES: dict[str, Bench] = {
    "jit_cold": jit_cold,
    "jit_warm": jit_warm,
    "jit_syscall": jit_syscall,
    "jit_dispatch": jit_dispatch,
}
