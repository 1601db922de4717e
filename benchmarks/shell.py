"""shell.run of /bin/true through dispatch() against a bare subprocess.run of it.

A process granted ``shell:/bin/true=execute`` (or wherever true is) runs it through
Runtime.dispatch: the program found and made real, the decision, the journal's intent and
outcome, the command in a session of its own with its rlimits, its group killed and its
marked processes looked for, the durable audit record. A bare ``subprocess.run([true])`` runs it
too. The two take turns, call by call, so a busy machine slows both alike; the row is alos's
overhead per call (each dispatch less the bare run after it), the note gives both medians. A
second row measures the same with bubblewrap isolation, where it is installed (for scale).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import statistics
import subprocess
import tempfile
import time

import alos
from alos.rights import Effect, parse_grant
from benchmarks.cases import Bench, Plan, Result, Target
from benchmarks.stats import summarize

OVERHEAD_TARGET_US = 2_000  # alos's cost per shell.run over a bare subprocess.run, at most (issue 15)


async def _measure(plan: Plan, isolate: str) -> tuple[list[int], list[int], bool]:
    """Return (dispatch times, bare run times, whether the runs were isolated)."""
    true = shutil.which("true") or "/bin/true"
    root = tempfile.mkdtemp(prefix="alos-bench-")
    alos_ns: list[int] = []
    bare_ns: list[int] = []
    isolated = False
    try:
        ws = os.path.join(root, "ws")
        os.mkdir(ws)
        script = os.path.join(root, "empty.jsonl")
        open(script, "w").close()
        rt = alos.open(os.path.join(root, ".alos", "store.db"), host=True, isolate=isolate)
        try:
            grants = [parse_grant(f"shell:{true}=execute", Effect.ALLOW, ws)]
            pid = await rt.spawn("base", "benchmark", workspace=ws, model=f"script:{script}", grants=grants)
            for i in range(plan.warmup + plan.calls):
                start = time.perf_counter_ns()
                got = await rt.dispatch(pid, "shell.run", {"argv": ["true"]})
                middle = time.perf_counter_ns()
                subprocess.run([true], check=True, stdin=subprocess.DEVNULL, capture_output=True)
                end = time.perf_counter_ns()
                if got["exit_code"] != 0:
                    raise RuntimeError(f"true did not exit 0: {got!r:.300}")
                isolated = bool(got["isolated"])
                if i >= plan.warmup:
                    alos_ns.append(middle - start)
                    bare_ns.append(end - middle)
            audited = sum(1 for r in rt.audit(pid) if r.syscall == "shell.run" and r.outcome == "ok")
            if audited != plan.warmup + plan.calls:
                raise RuntimeError(f"{audited} audited commands for {plan.warmup + plan.calls} calls")
        finally:
            rt.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return alos_ns, bare_ns, isolated


async def shell_run(plan: Plan) -> Result:
    """shell.run of true through dispatch(), unisolated, against a bare subprocess.run (module docstring)."""
    small = dataclasses.replace(plan, calls=min(plan.calls, 300), warmup=min(plan.warmup, 20))
    alos_ns, bare_ns, _ = await _measure(small, "off")
    overhead = [a - b for a, b in zip(alos_ns, bare_ns, strict=True)]
    note = f"shell.run through dispatch() {_us(alos_ns)}, bare subprocess.run {_us(bare_ns)} (medians, unisolated)"
    return Result(
        "shell.run true: alos's overhead over subprocess.run",
        summarize(overhead),
        None,
        "",
        Target("median", OVERHEAD_TARGET_US),
        note=note,
    )


async def shell_run_isolated(plan: Plan) -> Result:
    """The same with bubblewrap isolation (for scale; unisolated where bwrap is not installed)."""
    small = dataclasses.replace(plan, calls=min(plan.calls, 100), warmup=min(plan.warmup, 5))
    alos_ns, bare_ns, isolated = await _measure(small, "auto")
    overhead = [a - b for a, b in zip(alos_ns, bare_ns, strict=True)]
    how = "in bubblewrap" if isolated else "unisolated: bwrap is not installed"
    note = f"shell.run through dispatch() {_us(alos_ns)} ({how}), bare subprocess.run {_us(bare_ns)} (medians)"
    return Result("shell.run true, isolated: overhead over subprocess.run", summarize(overhead), None, "", note=note)


def _us(samples: list[int]) -> str:
    return f"{statistics.median(samples) / 1e3:,.0f} us"


BENCHES: dict[str, Bench] = {
    "shell": shell_run,
    "shell_isolated": shell_run_isolated,
}
