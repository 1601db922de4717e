"""The benchmarks: each sets up a fresh store, measures one path through dispatch(), and
returns a Result. Every timed call is checked to have done what it claims (allowed, denied,
parked, audited), so a fast wrong path cannot pass."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Awaitable, Callable, Coroutine, MutableSequence
from dataclasses import dataclass
from typing import Any

import alos
from alos.kernel.sched import Scheduler
from alos.syscall import dispatch
from alos.types import Pid
from benchmarks.fixture import ASKED, KIB, SECRET, Env, environment, replace_file
from benchmarks.stats import Summary, summarize, time_calls


@dataclass(frozen=True, slots=True)
class Plan:
    """How many iterations each benchmark runs."""

    calls: int  # timed iterations of a per-call benchmark
    warmup: int  # untimed iterations before them
    asks: int  # timed ask round trips (each leaves a spent one-shot capability behind)
    short: tuple[int, int]  # (steps per run, runs) of the short scripted runs
    long: tuple[int, int]  # (steps per run, runs) of the long ones: the context grows per step
    records: int  # audit records in the verified log
    verifies: int  # timed verifications
    spawns: int  # timed spawn+exit pairs (benchmarks/procs.py)
    brood: int  # children one parent makes to show how a spawn's cost grows with them
    fleets: tuple[int, int]  # processes alive at once in the two concurrent runs
    wakes: int  # timed wake-ups of a process blocked in proc.wait or msg.recv
    cli_runs: int  # pairs of `alos run` (trace, --json) in the trace benchmark (benchmarks/host.py)
    reopens: int  # hosts killed with SIGKILL and reopened to carry out an approval
    loops: tuple[int, int]  # (timed quanta per run, runs) of an openai: process (benchmarks/model_loop.py)
    startups: int  # timed runs of `alos --help` (benchmarks/startup.py)
    isolate: bool = True  # run each concurrent run in a fresh interpreter (False under --profile)


FULL = Plan(
    2_000,
    200,
    asks=300,
    short=(100, 10),
    long=(1_000, 3),
    records=10_000,
    verifies=5,
    spawns=2_000,
    brood=1_000,
    fleets=(1_000, 10_000),
    wakes=300,
    cli_runs=5,
    reopens=30,
    loops=(25, 4),
    startups=10,
)
QUICK = Plan(
    300,
    50,
    asks=60,
    short=(100, 2),
    long=(300, 1),
    records=10_000,
    verifies=2,
    spawns=300,
    brood=300,
    fleets=(200, 1_000),
    wakes=100,
    cli_runs=2,
    reopens=8,
    loops=(25, 1),
    startups=3,
)


@dataclass(frozen=True, slots=True)
class Target:
    """A goal: the median at most ``limit`` microseconds, the rate at least ``limit``/s, the
    wall time of the whole run at most ``limit`` seconds, or a ratio to another run at most ``limit``."""

    metric: str  # "median" | "rate" | "wall" | "ratio"
    limit: float

    def met(self, result: Result) -> bool:
        """Return whether the measurement meets this target."""
        if self.metric == "median":
            return result.summary.median_ns <= self.limit * 1_000
        if self.metric == "wall":
            return result.wall_ns is not None and result.wall_ns <= self.limit * 1e9
        if self.metric == "ratio":
            return result.ratio is not None and result.ratio <= self.limit
        return result.rate is not None and result.rate >= self.limit

    def __str__(self) -> str:
        if self.metric == "median":
            return f"median <= {self.limit:g} us"
        if self.metric == "wall":
            return f"wall <= {self.limit:g} s"
        if self.metric == "ratio":
            return f"<= {self.limit:g}x"
        return f">= {self.limit:,.0f}/s"


@dataclass(frozen=True, slots=True)
class Result:
    """One row of the report."""

    name: str
    summary: Summary
    rate: float | None  # operations per second, where that means something
    unit: str  # what the rate counts, e.g. "calls/s"
    target: Target | None = None
    wall_ns: float | None = None  # the wall time of the whole run, where a target is set on it
    note: str = ""  # what else the run measured, shown under the name
    ratio: float | None = None  # against another run, where the target is a ratio

    @property
    def passed(self) -> bool | None:
        """Return whether the target is met (None: no target, reported for scale)."""
        return None if self.target is None else self.target.met(self)


Bench = Callable[[Plan], Coroutine[Any, Any, Result]]


def _per_call(name: str, samples: list[int], target: Target | None = None) -> Result:
    summary = summarize(samples)
    return Result(name, summary, summary.per_second, "calls/s", target)


async def _expect_denied(call: Awaitable[Any]) -> None:
    try:
        result = await call
    except alos.Denied:
        return
    raise RuntimeError(f"the call was not denied; it returned {result!r}")


# -- per-call benchmarks ----------------------------------------------------------------


async def write_1k(plan: Plan) -> Result:
    """An allowed fs.write of 1 KiB, effect and durable audit record included."""
    async with environment() as env:
        pid = await env.spawn()

        async def call(i: int) -> None:
            args = {"path": f"w{i % 16}.txt", "content": KIB}
            result = await env.rt.dispatch(pid, "fs.write", args)
            if result["bytes"] != len(KIB):
                raise RuntimeError(f"fs.write wrote {result['bytes']} bytes")

        samples = await time_calls(call, plan.calls, plan.warmup)
    return _per_call("fs.write 1 KiB (allowed)", samples, Target("median", 150))


async def read_1k(plan: Plan) -> Result:
    """An allowed fs.read of a 1 KiB file, as the agent loop makes it (its record group-committed)."""
    async with environment() as env:
        pid = await env.spawn()
        await env.rt.dispatch(pid, "fs.write", {"path": "r.txt", "content": KIB})

        async def call(i: int) -> None:
            text = await dispatch(env.rt.kernel, pid, "fs.read", {"path": "r.txt"})
            if len(text) != len(KIB):
                raise RuntimeError(f"fs.read returned {len(text)} characters")

        samples = await time_calls(call, plan.calls, plan.warmup)
    return _per_call("fs.read 1 KiB (allowed)", samples)


async def denied_by_cap(plan: Plan) -> Result:
    """A read the process holds a deny capability on, as the agent loop meets it (the refusal's
    record goes with the transaction that records the tool result)."""
    async with environment() as env:
        pid = await env.spawn()

        async def call(i: int) -> None:
            await _expect_denied(dispatch(env.rt.kernel, pid, "fs.read", {"path": SECRET}))

        samples = await time_calls(call, plan.calls, plan.warmup)
    return _per_call("denied: deny capability", samples, Target("median", 50))


async def denied_no_cap(plan: Plan) -> Result:
    """A delete no capability covers (nothing matching means deny), as the agent loop meets it."""
    async with environment() as env:
        pid = await env.spawn()

        async def call(i: int) -> None:
            await _expect_denied(dispatch(env.rt.kernel, pid, "fs.delete", {"path": "w.txt"}))

        samples = await time_calls(call, plan.calls, plan.warmup)
    return _per_call("denied: no capability", samples, Target("median", 50))


async def denied_durable(plan: Plan) -> Result:
    """A refusal through Runtime.dispatch, the Python API: durable before the caller hears of it,
    so each one commits."""
    async with environment() as env:
        pid = await env.spawn()

        async def call(i: int) -> None:
            await _expect_denied(env.rt.dispatch(pid, "fs.read", {"path": SECRET}))

        samples = await time_calls(call, plan.calls, plan.warmup)
    return _per_call("denied through Runtime.dispatch (durable)", samples)


async def ask_round_trip(plan: Plan) -> Result:
    """A write that asks: park, approve once as the host, re-dispatch and perform it."""
    async with environment() as env:
        pid = await env.spawn()
        args = {"path": ASKED, "content": "approved once"}

        async def call(i: int) -> None:
            parked = await env.rt.dispatch(pid, "fs.write", args)
            if not isinstance(parked, alos.Parked) or parked.request is None:
                raise RuntimeError(f"the write did not park; it returned {parked!r}")
            await env.rt.answer(parked.request, "once")
            done = await env.rt.dispatch(pid, "fs.write", args)
            if isinstance(done, alos.Parked):
                raise RuntimeError("the approved write parked again")

        samples = await time_calls(call, plan.asks, min(plan.warmup, plan.asks // 4))
    return _per_call("ask + approve once + re-dispatch", samples)


# -- the audit log --------------------------------------------------------------------


async def _fill_audit(env: Env, pid: Pid, records: int) -> None:
    """Append denied calls (one audit record each) until the log holds ``records``."""
    for _ in range(records - env.rt.verify().count):
        await _expect_denied(env.rt.dispatch(pid, "fs.read", {"path": SECRET}))


async def audit_verify(plan: Plan) -> Result:
    """``alos audit verify`` (Runtime.verify) of the whole chain, scaled to 10,000 records."""
    async with environment() as env:
        await _fill_audit(env, await env.spawn(), plan.records)
        samples: list[float] = []
        for _ in range(plan.verifies):
            start = time.perf_counter_ns()
            verdict = env.rt.verify()
            elapsed = time.perf_counter_ns() - start
            if not verdict.ok or verdict.count != plan.records:
                raise RuntimeError(f"verify: {verdict.reason}")
            samples.append(elapsed * 10_000 / verdict.count)
    summary = summarize(samples)
    return Result("audit verify per 10,000 records", summary, 1e13 / summary.median_ns, "records/s")


# -- the scripted agent step --------------------------------------------------------------


def _turns(steps: int, tool: str) -> list[dict[str, Any]]:
    """Return ``steps`` scripted turns, each one fs_write or fs_read of a small file."""
    return [{"content": f"step {i}", "tool_calls": [_call(i, tool)]} for i in range(steps)]


def _call(i: int, tool: str) -> dict[str, Any]:
    if tool == "fs_read":
        return {"name": "fs_read", "arguments": {"path": f"s{i % 16}.txt"}}
    return {"name": "fs_write", "arguments": {"path": f"s{i % 16}.txt", "content": f"{i}"}}


Quantum = Callable[[Pid], Awaitable[None]]


def stamped(quantum: Quantum, stamps: MutableSequence[int]) -> Quantum:
    """Return ``quantum`` noting the time each quantum starts in ``stamps``."""

    async def run(pid: Pid) -> None:
        stamps.append(time.perf_counter_ns())
        await quantum(pid)

    return run


def _check_run(env: Env, pid: Pid, steps: int, tool: str) -> None:
    proc = env.rt.process(pid)
    if proc.state is not alos.ProcState.EXITED or proc.turns != steps:
        raise RuntimeError(f"process {pid} is {proc.state} after {proc.turns} of {steps} turns")
    syscall = tool.replace("_", ".")
    done = sum(1 for r in env.rt.audit(pid) if r.syscall == syscall and r.outcome == "ok")
    if done != steps:
        raise RuntimeError(f"{done} audited {syscall} calls for {steps} steps")


async def _scripted_run(steps: int, tool: str) -> tuple[list[int], int, int]:
    """Run one process through ``steps`` turns; return each step's cost, the wall time and the
    store transactions committed."""
    async with environment() as env:
        for i in range(16):  # the files the steps read
            with open(os.path.join(env.workspace, f"s{i}.txt"), "w", encoding="utf-8") as f:
                f.write(f"{i}")
        pid = await env.spawn(_turns(steps, tool))
        stamps: list[int] = []
        rt = env.rt
        rt.scheduler = Scheduler(rt.kernel, stamped(rt.agent.quantum, stamps))
        commits = _count_commits(rt.store)
        start = time.perf_counter_ns()
        await rt.run()
        wall = time.perf_counter_ns() - start
        _check_run(env, pid, steps, tool)
    # quantum k+1 starts when step k (its model call, tool call, syscall, audit) is done
    return [b - a for a, b in itertools.pairwise(stamps)], wall, commits[0]


def _count_commits(store: Any) -> list[int]:
    """Count ``store``'s transactions from now on (the measuring instrument wraps the store's own)."""
    counted = [0]
    begin = store.transaction

    def transaction() -> Any:
        counted[0] += 1
        return begin()

    store.transaction = transaction
    return counted


async def _agent_step(steps: int, runs: int, tool: str = "fs_write") -> Result:
    """Run ``runs`` scripted processes of ``steps`` steps; rate = steps / wall time of run()."""
    await _scripted_run(min(50, steps), tool)  # warm-up
    samples: list[int] = []
    wall = commits = 0
    for _ in range(runs):
        deltas, elapsed, committed = await _scripted_run(steps, tool)
        samples += deltas
        wall += elapsed
        commits += committed
    rate = steps * runs * 1e9 / wall
    name = f"agent step, {tool} ({steps:,}-step runs)"
    note = f"{commits / (steps * runs):.2f} commits a step (the last step's exit included)"
    return Result(name, summarize(samples), rate, "steps/s", Target("median", 300), note=note)


async def agent_step_short(plan: Plan) -> Result:
    """One scripted agent step (model call, one tool call, its syscall and audit), short runs."""
    return await _agent_step(*plan.short)


async def agent_step_long(plan: Plan) -> Result:
    """The same step in long runs, where each process's context has grown."""
    return await _agent_step(*plan.long)


async def agent_step_read(plan: Plan) -> Result:
    """The same step reading a file: alos's own cost without the disk's write floor."""
    return await _agent_step(*plan.short, tool="fs_read")


async def os_floor(plan: Plan) -> Result:
    """No alos: the OS cost of the provider's atomic 1 KiB write (temp file, write, rename)."""
    async with environment() as env:

        async def call(i: int) -> None:
            replace_file(env.workspace, f"w{i % 16}.txt", KIB.encode())

        samples = await time_calls(call, plan.calls, plan.warmup)
    return _per_call("OS floor: atomic 1 KiB write", samples)


BENCHES: dict[str, Bench] = {
    "write": write_1k,
    "floor": os_floor,
    "read": read_1k,
    "denied": denied_by_cap,
    "nocap": denied_no_cap,
    "durable": denied_durable,
    "step": agent_step_short,
    "longstep": agent_step_long,
    "readstep": agent_step_read,
    "ask": ask_round_trip,
    "verify": audit_verify,
}
