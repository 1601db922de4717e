"""How soon ``alos --help`` answers, and that it gets there without httpx, yaml or jsonschema.

Both run the installed console script (``alos`` beside ``sys.executable``) in fresh processes, so
they measure what a person typing ``alos --help`` waits for: the interpreter, site, alos's imports
and click. Each run is checked to have printed the usage text.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time

from benchmarks.cases import Bench, Plan, Result, Target
from benchmarks.stats import summarize

HELP_TARGET_MS = 250  # the median wall time of `alos --help`, at most
UNWANTED = ("httpx", "yaml", "jsonschema")  # imported on first use only: they cost start-up time
IMPORT_RUNS = 3  # runs under -X importtime


def _script() -> str:
    """Return the path of the installed ``alos`` console script; raise when there is none."""
    path = os.path.join(os.path.dirname(sys.executable), "alos")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"no alos console script at {path}; install alos in this venv (make bench does)")
    return path


def _timed(argv: list[str]) -> tuple[int, float, str]:
    """Run ``argv``; return its wall time (ns), its CPU time (user + system, ns) and its stderr.
    Raises unless it exits 0 having printed alos's usage text."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter_ns()
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60)
    wall = time.perf_counter_ns() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1e9
    if done.returncode != 0 or "Usage: alos" not in done.stdout:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {(done.stderr or done.stdout)[-500:]}")
    return wall, cpu, done.stderr


async def help_startup(plan: Plan) -> Result:
    """``alos --help``, run ``plan.startups`` times after one untimed run; the note shows its CPU
    time and, for scale, an interpreter that does nothing (``python -c pass``), run in turns."""
    script = _script()
    _timed([script, "--help"])  # the page cache and __pycache__ warm
    walls: list[int] = []
    cpus: list[float] = []
    bare: list[int] = []
    for _ in range(plan.startups):
        wall, cpu, _ = _timed([script, "--help"])
        walls.append(wall)
        cpus.append(cpu)
        start = time.perf_counter_ns()
        subprocess.run([sys.executable, "-c", "pass"], check=True, timeout=60)
        bare.append(time.perf_counter_ns() - start)
    note = (
        f"CPU (user + system) {statistics.median(cpus) / 1e6:,.0f} ms; "
        f"python -c pass {statistics.median(bare) / 1e6:,.0f} ms"
    )
    summary = summarize(walls)
    return Result("alos --help start-up", summary, None, "", Target("median", HELP_TARGET_MS * 1_000), note=note)


def unwanted_imports(stderr: str) -> dict[str, int]:
    """Return the UNWANTED packages a ``-X importtime`` report (``stderr``) shows imported, each
    with its cumulative import time in microseconds (at least 1)."""
    found: dict[str, int] = {}
    for line in stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if len(fields) == 3 and fields[2].strip() in UNWANTED and fields[1].strip().isdigit():
            found[fields[2].strip()] = max(1, int(fields[1]))
    return found


async def help_imports(plan: Plan) -> Result:
    """``alos --help`` under ``-X importtime``: the time spent importing httpx, yaml and jsonschema,
    which should be none (the target is 0 us: any of them imported fails the row). Every run must
    import the same of them, or the benchmark raises."""
    script = _script()
    samples: list[int] = []
    found: dict[str, int] = {}
    modules = 0
    for _ in range(IMPORT_RUNS):
        _, _, report = _timed([sys.executable, "-X", "importtime", script, "--help"])
        now = unwanted_imports(report)
        if samples and set(now) != set(found):
            raise RuntimeError(f"one run imported {sorted(found)}, the next {sorted(now)}: the check is not stable")
        found.update(now)
        samples.append(sum(now.values()) * 1_000)
        modules = report.count("import time:") - 1  # less the header line
    named = ", ".join(f"{name} ({us / 1e3:,.1f} ms)" for name, us in sorted(found.items()))
    note = f"imported {named or 'none of them'}; {modules} modules in all"
    name = f"alos --help: time importing {', '.join(UNWANTED)}"
    return Result(name, summarize(samples), None, "", Target("median", 0), note=note)


BENCHES: dict[str, Bench] = {
    "startup": help_startup,
    "imports": help_imports,
}
