"""The process benchmarks: spawn and exit, many scripted processes alive at once, and how soon
a process blocked in proc.wait or msg.recv runs again. Like cases.py, each checks that every
timed call did what it claims (a pid came back, the child exited, every process ended ok, the
audit chain verifies), so a fast wrong path cannot pass."""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
import resource
import statistics
import time
from array import array
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import alos
from alos.kernel.sched import Scheduler
from alos.rights import Grant, Right
from alos.types import HOST, Event, Pid
from benchmarks.cases import Bench, Plan, Result, Target, stamped
from benchmarks.fixture import Env, environment
from benchmarks.stats import summarize, time_calls

STEPS = 10  # scripted turns of each process in the concurrent runs, one tool call each
LITTER = 100  # children one parent makes in the spawn benchmark before a fresh parent takes over
WAITS = 50  # children one parent makes and waits for in the wait benchmark before a fresh one
FLEET_TARGET = (10_000, 60.0)  # (processes, seconds): 10,000 processes x 10 steps within 60 s
SPAWNER = [{"pattern": "proc:spawn", "rights": ["spawn"]}]  # lets a root process spawn children
THINK = {"pattern": "model:script", "rights": ["execute"]}  # what a child needs to call its model


def _grants(*wanted: dict[str, Any]) -> list[Grant]:
    """Return host grants (delegable) of the given ``{"pattern", "rights"}`` shapes."""
    return [Grant(w["pattern"], frozenset(Right(r) for r in w["rights"]), alos.Effect.ALLOW) for w in wanted]


async def _root(env: Env, turns: list[dict[str, Any]], *wanted: dict[str, Any]) -> Pid:
    """Spawn a root process running ``turns`` with the default grants and ``wanted``; return its pid."""
    model = env.script(turns)
    return await env.rt.spawn("base", "benchmark", workspace=env.workspace, model=model, grants=_grants(*wanted))


def _host_spawn_args(env: Env, model: str) -> dict[str, Any]:
    """Return proc.spawn's arguments as the host passes them (see Runtime.spawn)."""
    return {
        "name": "main",
        "image": "base",
        "goal": "benchmark",
        "model": model,
        "cwd": os.path.realpath(env.workspace),
        "grants": [
            {"pattern": "model:script", "rights": ["execute"], "effect": "allow"},
            {"pattern": "clock", "rights": ["read"], "effect": "allow"},
        ],
    }


async def _exit(rt: alos.Runtime, pid: Pid) -> None:
    """Let process ``pid`` exit ok; raise unless the call says it did."""
    done = await rt.dispatch(pid, "proc.exit", {"status": "ok", "result": "done"})
    if done != {"pid": pid, "status": "ok"}:
        raise RuntimeError(f"proc.exit of {pid} returned {done!r}")


def _check_exited(rt: alos.Runtime, pids: list[Pid], *parents: Pid | None) -> None:
    """Raise unless every one of ``pids`` exited ok as a child of one of ``parents`` (None: the host)."""
    procs = {p.pid: p for p in rt.processes()}
    for pid in pids:
        p = procs[pid]
        if p.state is not alos.ProcState.EXITED or p.exit is not alos.Exit.OK or p.parent not in parents:
            raise RuntimeError(f"process {pid} is {p.state} ({p.exit}), parent {p.parent}; expected exited ok")


# -- spawn and exit -------------------------------------------------------------------


async def host_spawn(plan: Plan) -> Result:
    """The host spawns a root process (image base, a scripted model, a workspace) and it exits."""
    async with environment() as env:
        args = _host_spawn_args(env, env.script([{"content": "never called"}]))
        pids: list[Pid] = []

        async def call(i: int) -> None:
            spawned = await env.rt.dispatch(HOST, "proc.spawn", args)
            pid = int(spawned["pid"])
            await _exit(env.rt, pid)
            pids.append(pid)

        samples = await time_calls(call, plan.spawns, plan.warmup)
        _check_exited(env.rt, pids, None)
    summary = summarize(samples)
    name = "proc.spawn by the host + proc.exit"
    return Result(name, summary, summary.per_second, "pairs/s", Target("median", 300))


async def _child_pair(env: Env, parent: Pid, pids: list[Pid]) -> None:
    """Spawn one child of ``parent`` passing it two grants, let it exit; note its pid."""
    wanted = {"name": "child", "goal": "exit at once", "grants": [THINK, {"pattern": "clock", "rights": ["read"]}]}
    spawned = await env.rt.dispatch(parent, "proc.spawn", wanted)
    pid = int(spawned["pid"])
    if len(spawned["capabilities"]) != 2:
        raise RuntimeError(f"the child got capabilities {spawned['capabilities']}; expected 2")
    await _exit(env.rt, pid)
    pids.append(pid)


async def child_spawn(plan: Plan) -> Result:
    """A process spawns a child (its grants derived from the parent's) and the child exits.

    A fresh parent takes over every LITTER children, so the row shows the cost for a parent
    with few children; the note shows how it grows for one parent that makes ``plan.brood``.
    """
    async with environment() as env:
        parents: list[Pid] = []
        pids: list[Pid] = []

        async def call(i: int) -> None:
            if i % LITTER == 0:
                parents.append(await _root(env, [], *SPAWNER, {"pattern": "clock", "rights": ["read"]}))
            await _child_pair(env, parents[-1], pids)

        samples = await time_calls(call, plan.spawns, plan.warmup)
        for k, parent in enumerate(parents):
            _check_exited(env.rt, pids[k * LITTER : (k + 1) * LITTER], parent)
        # one parent making plan.brood children: the cost of its last LITTER against its first
        brood: list[Pid] = []
        parent = await _root(env, [], *SPAWNER, {"pattern": "clock", "rights": ["read"]})
        growth = await time_calls(lambda i: _child_pair(env, parent, brood), plan.brood, 0)
        _check_exited(env.rt, brood, parent)
    summary = summarize(samples)
    first, last = statistics.median(growth[:LITTER]), statistics.median(growth[-LITTER:])
    note = (
        f"one parent's children 1-{LITTER}: {first / 1e3:,.0f} us each; "
        f"{plan.brood - LITTER + 1:,}-{plan.brood:,}: {last / 1e3:,.0f} us (it grows with the children)"
    )
    name = "proc.spawn by a process + proc.exit"
    return Result(name, summary, summary.per_second, "pairs/s", None, note=note)


# -- many processes at once -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FleetRun:
    """What one concurrent run measured (returned from its own interpreter)."""

    processes: int
    gaps: list[int]  # ns between the starts of consecutive quanta: each a step's cost, amortized
    spawn_ns: int  # spawning all the processes
    run_ns: int  # the one rt.run() that took them all to their exit
    baseline_kib: int  # RSS before the first spawn
    peak_kib: int  # peak RSS after the run


def _ticking(steps: int) -> list[dict[str, Any]]:
    """Return ``steps`` scripted turns, each reading the clock (the default grants allow it)."""
    return [{"content": f"tick {i}", "tool_calls": [{"name": "clock_now", "arguments": {}}]} for i in range(steps)]


def _check_fleet(env: Env, pids: list[Pid], steps: int) -> None:
    """Raise unless every process took ``steps`` turns and exited ok, each step is audited, and
    the audit chain verifies."""
    procs = {p.pid: p for p in env.rt.processes()}
    for pid in pids:
        p = procs[pid]
        if p.state is not alos.ProcState.EXITED or p.exit is not alos.Exit.OK or p.turns != steps:
            raise RuntimeError(f"process {pid} is {p.state} ({p.exit}) after {p.turns} of {steps} turns")
    ticks = sum(1 for r in env.rt.audit() if r.syscall == "clock.now" and r.outcome == "ok")
    if ticks != len(pids) * steps:
        raise RuntimeError(f"{ticks} audited clock.now calls for {len(pids)} x {steps} steps")
    verdict = env.rt.verify()
    if not verdict.ok:
        raise RuntimeError(f"verify: {verdict.reason}")


def _peak_kib() -> int:
    """Return the peak resident set size of this interpreter so far, in KiB (Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _rss_kib() -> int:
    """Return the resident set size of this interpreter now, in KiB (its peak if /proc is missing)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except OSError:
        return _peak_kib()


async def _fleet(processes: int, steps: int) -> FleetRun:
    """Spawn ``processes`` root processes sharing one script, then run them all in one rt.run()."""
    async with environment() as env:
        rt = env.rt
        model = env.script(_ticking(steps))
        stamps = array("q")
        rt.kernel.listeners.remove(rt.scheduler._heard)  # the replaced scheduler would queue every pid
        rt.scheduler = Scheduler(rt.kernel, stamped(rt.agent.quantum, stamps))
        baseline = _rss_kib()
        start = time.perf_counter_ns()
        pids = [await rt.spawn("base", "benchmark", workspace=env.workspace, model=model) for _ in range(processes)]
        spawned = time.perf_counter_ns()
        await rt.run()
        ran = time.perf_counter_ns()
        peak = _peak_kib()
        _check_fleet(env, pids, steps)
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    return FleetRun(processes, gaps, spawned - start, ran - spawned, baseline, peak)


def fleet_in_fresh_interpreter(processes: int, steps: int) -> FleetRun:
    """Run one concurrent run (the entry point of the child interpreter)."""
    return asyncio.run(_fleet(processes, steps))


async def _isolated(processes: int, plan: Plan) -> FleetRun:
    """Run a concurrent run in a fresh interpreter, so that its peak RSS is its own."""
    if not plan.isolate:
        return await _fleet(processes, STEPS)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        return await asyncio.get_running_loop().run_in_executor(pool, fleet_in_fresh_interpreter, processes, STEPS)


async def _fleet_result(processes: int, plan: Plan) -> Result:
    run = await _isolated(processes, plan)
    grown = max(0, run.peak_kib - run.baseline_kib)
    note = (
        f"spawn {run.spawn_ns / 1e9:,.1f} s; peak RSS {run.peak_kib / 1024:,.0f} MiB "
        f"(+{grown / 1024:,.0f} MiB, {grown / processes:,.1f} KiB per process)"
    )
    count, seconds = FLEET_TARGET
    target = Target("wall", seconds * processes / count)  # the 10,000-process target, scaled
    name = f"{processes:,} processes x {STEPS} steps at once"
    rate = processes * STEPS * 1e9 / run.run_ns
    return Result(name, summarize(run.gaps), rate, "steps/s", target, wall_ns=run.run_ns, note=note)


async def fleet_small(plan: Plan) -> Result:
    """The smaller of the two concurrent runs (1,000 processes; 200 with --quick)."""
    return await _fleet_result(plan.fleets[0], plan)


async def fleet_large(plan: Plan) -> Result:
    """The larger (10,000 processes; 1,000 with --quick): the target is 10 steps each in 60 s."""
    return await _fleet_result(plan.fleets[1], plan)


# -- waking a blocked process ---------------------------------------------------------


class Wakes:
    """A listener timing wake-ups: from the commit that wakes a blocked process (``cause``
    "exit": its child's exit; "message": a message to it) to the commit of its blocking call's
    result, re-dispatched by the scheduler. Only causes that find the process waiting count."""

    def __init__(self, syscall: str, cause: str) -> None:
        self.syscall = syscall
        self.cause = cause
        self.waiting: set[Pid] = set()
        self.started: dict[Pid, int] = {}
        self.samples: list[int] = []

    def heard(self, ev: Event) -> None:
        """Note states, causes and results as their transactions commit."""
        now = time.perf_counter_ns()
        if ev.kind == "state":
            if ev.detail.get("state") == "waiting":
                self.waiting.add(ev.pid)
            else:
                self.waiting.discard(ev.pid)
            woken = self._woken(ev)
        elif ev.kind == "message" and self.cause == "message":
            woken = ev.pid
        else:
            woken = None
            if ev.kind == "syscall" and ev.detail["syscall"] == self.syscall and ev.detail["outcome"] == "ok":
                started = self.started.pop(ev.pid, None)
                if started is not None:
                    self.samples.append(now - started)
        if woken is not None and woken in self.waiting:
            self.started.setdefault(woken, now)

    def _woken(self, ev: Event) -> Pid | None:
        """Return the parent an exit wakes (the wait benchmark has one parent: the lowest pid)."""
        if self.cause != "exit" or ev.detail.get("state") != "exited" or not self.waiting:
            return None
        parent = min(self.waiting)
        return parent if parent != ev.pid else None


_WAIT_TURN = {
    "content": "spawn and wait",
    "tool_calls": [
        {"name": "proc_spawn", "arguments": {"name": "child", "goal": "exit at once", "grants": [THINK]}},
        {"name": "proc_wait", "arguments": {}},
    ],
}


async def _waits(env: Env, probe: Wakes, rounds: int) -> list[int]:
    """Run a parent whose every turn spawns a child and waits for it; return its wake-ups.

    The child has no turns, so its first quantum exits it. Everything runs in the scheduler.
    """
    before = len(probe.samples)
    parent = await _root(env, [_WAIT_TURN] * rounds, *SPAWNER)
    await env.rt.run()
    children = [p.pid for p in env.rt.processes() if p.parent == parent]
    _check_exited(env.rt, [parent], None)
    _check_exited(env.rt, children, parent)
    parked = sum(1 for r in env.rt.audit(parent) if r.syscall == "proc.wait" and r.outcome == "parked")
    samples = probe.samples[before:]
    if len(children) != rounds or parked != rounds or len(samples) != rounds:
        raise RuntimeError(f"{len(children)} children, {parked} parked waits, {len(samples)} wake-ups for {rounds}")
    return samples


async def wait_wake(plan: Plan) -> Result:
    """A parent blocked in proc.wait runs again: from its child's exit commit to proc.wait's result.

    A fresh parent takes over every WAITS waits, so the row shows a parent with few children;
    the note shows one parent making ``plan.wakes`` children, one at a time.
    """
    async with environment() as env:
        probe = Wakes("proc.wait", "exit")
        env.rt.listen(probe.heard)
        samples: list[int] = []
        for _ in range(max(1, plan.wakes // WAITS)):
            samples += await _waits(env, probe, WAITS)
        long = await _waits(env, probe, plan.wakes)
    summary = summarize(samples)
    first, last = statistics.median(long[:WAITS]), statistics.median(long[-WAITS:])
    note = (
        f"one parent's waits 1-{WAITS}: {first / 1e3:,.0f} us; "
        f"{plan.wakes - WAITS + 1:,}-{plan.wakes:,}: {last / 1e3:,.0f} us (it grows with the children)"
    )
    return Result("wake: child exit -> proc.wait returns", summary, summary.per_second, "wakes/s", note=note)


async def message_wake(plan: Plan) -> Result:
    """Ping-pong: a process and its child take turns in msg.recv, each woken by the other's msg.send.

    Timed from the send's commit to the blocked msg.recv's result, both run by the scheduler.
    The script names both pids, so they are predicted in the fresh store and checked.
    """
    async with environment() as env:
        a = max((p.pid for p in env.rt.processes()), default=0) + 1
        b = a + 1
        ping = [
            {"name": "proc_spawn", "arguments": {"name": "b", "goal": "pong", "grants": [THINK, _send(a)]}},
        ]
        turns = [{"content": "spawn b", "tool_calls": ping}]
        for i in range(plan.wakes):
            send_a = {"name": "msg_send", "arguments": {"pid": b, "body": f"ping {i}"}}
            send_b = {"name": "msg_send", "arguments": {"pid": a, "body": f"pong {i}"}}
            recv = {"name": "msg_recv", "arguments": {}}
            turns.append({"content": "ping", "tool_calls": [send_a, recv]})
            turns.append({"proc": "b", "content": "pong", "tool_calls": [recv, send_b]})
        probe = Wakes("msg.recv", "message")
        env.rt.listen(probe.heard)
        pid = await _root(env, turns, *SPAWNER, _send(a))
        if pid != a:
            raise RuntimeError(f"process got pid {pid}; the script expected {a}")
        await env.rt.run()
        _check_exited(env.rt, [a, b], None, a)  # b goes to the host if a exits first
        got = sum(1 for r in env.rt.audit() if r.syscall == "msg.recv" and r.outcome == "ok")
        if got != 2 * plan.wakes or len(probe.samples) < plan.wakes:
            raise RuntimeError(f"{got} messages received, {len(probe.samples)} wake-ups for {plan.wakes} round trips")
    summary = summarize(probe.samples)
    return Result("wake: msg.send -> blocked msg.recv returns", summary, summary.per_second, "wakes/s")


def _send(pid: Pid) -> dict[str, Any]:
    return {"pattern": f"proc:{pid}", "rights": ["send"]}


BENCHES: dict[str, Bench] = {
    "spawn": host_spawn,
    "childspawn": child_spawn,
    "waitwake": wait_wake,
    "msgwake": message_wake,
    "fleet": fleet_small,
    "bigfleet": fleet_large,
}
