"""The benchmarks of a person's view of the host: what the CLI trace costs over ``--json``, and how
soon an approval given after a kill -9 and a reopen is carried out. Each checks that the work
was done (every step audited, the approved file written) so a fast wrong path cannot pass."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

import alos
from alos.types import Event
from benchmarks.cases import Bench, Plan, Result, Target
from benchmarks.fixture import ASKED, KIB
from benchmarks.stats import summarize

TRACE_STEPS = 300  # scripted fs_write steps of each CLI run
TRACE_RATIO = 1.3  # the trace may cost at most this many times the --json run


def _cli_run(root: str, script: str, as_json: bool) -> int:
    """Run ``alos run`` on a fresh store with stdout to a file; return its wall time in ns."""
    store = os.path.join(root, f"store-{time.perf_counter_ns()}", "store.db")
    args = ["run", "base", "bench", "--model", f"script:{script}", "--workspace", os.path.join(root, "ws")]
    args += ["--store", store, "--allow", "fs:*=write"] + (["--json"] if as_json else [])
    with open(os.path.join(root, "out"), "w", encoding="utf-8") as out:
        start = time.perf_counter_ns()
        done = subprocess.run(
            [sys.executable, "-m", "alos.cli", *args], check=False, stdout=out, stderr=subprocess.PIPE
        )
        elapsed = time.perf_counter_ns() - start
    if done.returncode != 0:
        raise RuntimeError(f"alos run exited {done.returncode}: {done.stderr.decode()[-500:]}")
    with open(os.path.join(root, "out"), encoding="utf-8") as f:
        lines = f.read().count("fs.write")
    if lines < TRACE_STEPS:
        raise RuntimeError(f"the {'JSON' if as_json else 'trace'} output names {lines} writes of {TRACE_STEPS}")
    return elapsed


async def trace_cost(plan: Plan) -> Result:
    """``alos run`` of a scripted process writing 1 KiB a step, its trace on (stdout a file),
    against the same run with ``--json``; runs alternate so load falls on both alike."""
    root = tempfile.mkdtemp(prefix="alos-bench-")
    try:
        os.mkdir(os.path.join(root, "ws"))
        script = os.path.join(root, "turns.jsonl")
        with open(script, "w", encoding="utf-8") as f:
            for i in range(TRACE_STEPS):
                call = {"name": "fs_write", "arguments": {"path": f"f{i % 16}.txt", "content": KIB}}
                f.write(json.dumps({"content": f"step {i}", "tool_calls": [call]}) + "\n")
        traced: list[float] = []
        plain: list[float] = []
        for _ in range(plan.cli_runs):
            traced.append(_cli_run(root, script, as_json=False) / TRACE_STEPS)
            plain.append(_cli_run(root, script, as_json=True) / TRACE_STEPS)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ratio = statistics.median(traced) / statistics.median(plain)
    note = f"--json: {statistics.median(plain) / 1e3:,.0f} us a step; the trace costs {ratio:.2f}x that"
    name = f"alos run, trace on, per step ({TRACE_STEPS} steps, fs_write 1 KiB)"
    return Result(name, summarize(traced), None, "", Target("ratio", TRACE_RATIO), ratio=ratio, note=note)


_FIRST_HOST = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    import alos
    from benchmarks.fixture import grants

    async def main(root):
        rt = alos.open(os.path.join(root, ".alos", "store.db"), host=True)
        ws = os.path.join(root, "ws")
        await rt.spawn("base", "bench", workspace=ws, model="script:" + os.path.join(root, "turns.jsonl"),
                       grants=grants(ws))
        await rt.run()  # the write asks: the process parks on a request
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main(sys.argv[1]))
    """
)


async def _reopened(root: str) -> int:
    """Leave a parked write behind a host killed with SIGKILL; reopen, approve it and return the
    ns from the answer to the write's committed audit record."""
    os.mkdir(os.path.join(root, "ws"))
    with open(os.path.join(root, "turns.jsonl"), "w", encoding="utf-8") as f:
        call = {"name": "fs_write", "arguments": {"path": ASKED, "content": KIB}}
        f.write(json.dumps({"content": "write it", "tool_calls": [call]}) + "\n")
    killed = subprocess.run(
        [sys.executable, "-c", _FIRST_HOST, root], check=False, cwd=os.getcwd(), capture_output=True
    )
    if killed.returncode != -9:
        raise RuntimeError(f"the first host exited {killed.returncode}: {killed.stderr.decode()[-500:]}")
    rt = alos.open(os.path.join(root, ".alos", "store.db"), host=True)
    try:
        [req] = rt.requests()
        done: list[int] = []

        def heard(ev: Event) -> None:
            if ev.kind == "syscall" and ev.detail["syscall"] == "fs.write" and ev.detail["outcome"] == "ok":
                done.append(time.perf_counter_ns())

        rt.listen(heard)
        start = time.perf_counter_ns()
        await rt.answer(req.id, "once")
        await rt.run()
        if not done:
            raise RuntimeError("the approved write was not carried out")
        with open(os.path.join(root, "ws", ASKED), encoding="utf-8") as f:
            if f.read() != KIB:
                raise RuntimeError("the approved write did not write what was approved")
        return done[0] - start
    finally:
        rt.close()


async def reopened_approval(plan: Plan) -> Result:
    """An approval answered after the host was killed with SIGKILL and the store reopened: from
    the answer to the approved write done (its audit record committed), in the new host."""
    samples: list[int] = []
    for _ in range(plan.reopens):
        root = tempfile.mkdtemp(prefix="alos-bench-")
        try:
            samples.append(await _reopened(root))
        finally:
            shutil.rmtree(root, ignore_errors=True)
    summary = summarize(samples)
    name = "approval after kill -9 + reopen: answer -> write done"
    return Result(name, summary, summary.per_second, "answers/s", Target("median", 2_000))


BENCHES: dict[str, Bench] = {
    "trace": trace_cost,
    "reopen": reopened_approval,
}
