"""``python -m benchmarks [--quick] [--only NAME ...] [--profile NAME] [--before REV]``: run and report.

Prints one table row per benchmark with its median, p95, throughput and PASS/FAIL against
its target. Always exits 0: the suite reports, it does not gate. Stores and workspaces go
in the temp directory; set TMPDIR to measure on another filesystem (e.g. TMPDIR=/dev/shm).
With ``--before REV`` each benchmark runs twice in the same run, in fresh interpreters, with
alos as it was at git revision REV and as it is now, taking turns; the table shows both.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import os
import platform
import pstats
import sys
import tempfile
import time

from benchmarks import cases, console, host, jit, model_loop, net, objects, procs, shell, startup
from benchmarks.cases import FULL, QUICK, Plan, Result
from benchmarks.compare import before_and_after, emit
from benchmarks.fixture import filesystem
from benchmarks.report import show, show_pairs

BENCHES = {
    **cases.BENCHES, **procs.BENCHES, **host.BENCHES, **model_loop.BENCHES, **startup.BENCHES, **shell.BENCHES,
    **net.BENCHES, **objects.BENCHES, **jit.BENCHES, **console.BENCHES,
}  # fmt: skip


def parse(argv: list[str]) -> argparse.Namespace:
    """Return the command line's options."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    ap.add_argument("--only", nargs="+", choices=sorted(BENCHES), help="run only these benchmarks")
    ap.add_argument("--profile", choices=sorted(BENCHES), help="run one benchmark under cProfile instead")
    ap.add_argument("--before", metavar="REV", help="also measure alos at git revision REV, in the same run")
    ap.add_argument("--emit", action="store_true", help=argparse.SUPPRESS)  # print results as JSON (--before)
    return ap.parse_args(argv)


async def run_all(names: list[str], plan: Plan) -> list[Result]:
    """Run the named benchmarks in order; return their results."""
    results = []
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        results.append(await BENCHES[name](plan))
    return results


def profile(name: str, plan: Plan) -> None:
    """Run benchmark ``name`` under cProfile, all in this interpreter; print its 25 costliest
    calls by cumulative time."""
    prof = cProfile.Profile()
    prof.runcall(lambda: asyncio.run(BENCHES[name](dataclasses.replace(plan, isolate=False))))
    pstats.Stats(prof).strip_dirs().sort_stats("cumulative").print_stats(25)


def main(argv: list[str]) -> int:
    """Run the suite, print the table, return 0."""
    opts = parse(argv)
    plan = QUICK if opts.quick else FULL
    if opts.profile:
        profile(opts.profile, plan)
        return 0
    names = opts.only or list(BENCHES)
    start = time.perf_counter()
    if opts.emit:
        emit(asyncio.run(run_all(names, plan)))
        return 0
    mode = "quick" if opts.quick else "full"
    tmp = tempfile.gettempdir()
    where = f"Python {platform.python_version()}, {os.cpu_count()} cpus; stores in {tmp} ({filesystem(tmp)})"
    if opts.before:
        pairs = before_and_after(opts.before, names, opts.quick)
        elapsed = time.perf_counter() - start
        show_pairs(pairs, f"alos benchmarks, {opts.before} -> now ({mode}; {where}; {elapsed:.1f} s)")
        return 0
    results = asyncio.run(run_all(names, plan))
    elapsed = time.perf_counter() - start
    show(results, f"alos benchmarks ({mode}; {where}; {elapsed:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
