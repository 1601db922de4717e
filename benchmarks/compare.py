"""Measure alos at an earlier git revision and now, in one run (``python -m benchmarks --before REV``).

The earlier alos is checked out into a temporary git worktree. Each benchmark runs in a fresh
interpreter per side, the earlier one first, so that both meet the same machine; the child
puts the worktree's ``src`` first on its path and prints its results as JSON (``--emit``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence

from benchmarks.cases import Result, Target
from benchmarks.stats import Summary

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def emit(results: Sequence[Result]) -> None:
    """Print ``results`` as one JSON document on stdout (the child side of --before)."""
    print(json.dumps([dataclasses.asdict(r) for r in results]))


def _load(text: str) -> list[Result]:
    out = []
    for r in json.loads(text):
        r["summary"] = Summary(**r["summary"])
        r["target"] = Target(**r["target"]) if r["target"] else None
        out.append(Result(**r))
    return out


def _run(names: Sequence[str], quick: bool, src: str | None) -> list[Result]:
    """Run ``names`` in a fresh interpreter with alos from ``src`` (None: this checkout)."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    argv = [sys.executable, "-m", "benchmarks", "--emit", "--only", *names] + (["--quick"] if quick else [])
    done = subprocess.run(argv, check=False, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the benchmarks of {src or 'this checkout'} exited {done.returncode}")
    return _load(done.stdout)


def _check_source(src: str) -> None:
    """Raise unless an interpreter given ``src`` first on its path imports alos from there."""
    probe = "import alos, sys; sys.stdout.write(alos.__file__)"
    env = {**os.environ, "PYTHONPATH": src}
    found = subprocess.run([sys.executable, "-c", probe], check=False, env=env, capture_output=True, text=True).stdout
    if not found.startswith(src):
        raise RuntimeError(f"alos came from {found}, not from the worktree {src}")


def before_and_after(rev: str, names: Sequence[str], quick: bool) -> list[tuple[str, Result, Result]]:
    """Return (benchmark, result at ``rev``, result now) for each of ``names``."""
    tree = tempfile.mkdtemp(prefix="alos-before-")
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", "--quiet", tree, rev], check=True)
    try:
        src = os.path.join(tree, "src")
        _check_source(src)
        out = []
        for name in names:
            print(f"running {name} at {rev} and now ...", file=sys.stderr, flush=True)
            [before] = _run([name], quick, src)
            [after] = _run([name], quick, None)
            out.append((name, before, after))
        return out
    finally:
        subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", tree], check=False)
