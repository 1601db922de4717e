"""The baseline: the unmutated test pool run once, traced, to learn which tests reach each line.

Its results pick each mutant's tests (those that reach the mutant's lines, fastest first) and
bound each mutant's time. A failing baseline is an error: a mutant cannot be judged by tests
that already fail.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mutate import reach
from mutate.mutants import Mutant
from mutate.sandbox import Sandbox, run

LIMIT = 3600.0  # seconds the traced baseline may take before it counts as failed


class BaselineFailed(Exception):
    """The unmutated tests fail; ``tests`` names the failing ones (or what pytest said)."""

    def __init__(self, tests: list[str]) -> None:
        super().__init__("the unmutated baseline fails: " + ", ".join(tests))
        self.tests = tests


@dataclass(frozen=True, slots=True)
class Baseline:
    durations: dict[str, float]  # test id -> seconds in the traced run (slower than a plain one)
    reached: dict[str, dict[int, set[str]]]  # file (relative to the repository) -> line -> test ids
    seconds: float

    def tests_for(self, mutant: Mutant) -> list[str]:
        """Return the tests that reach any line of ``mutant``, fastest first."""
        lines = self.reached.get(mutant.path, {})
        found: set[str] = set()
        for line in range(mutant.line, mutant.last + 1):
            found |= lines.get(line, set())
        if reach.BEFORE in found:  # reached while importing: every test depends on it
            found = set(self.durations)
        return sorted(found & set(self.durations), key=lambda t: (self.durations[t], t))

    def budget(self, tests: Sequence[str]) -> float:
        """Return the seconds a mutant's run of ``tests`` may take before it counts as a hang."""
        return 20.0 + 2.0 * sum(self.durations[t] for t in tests)


def measure(sandbox: Sandbox, pool: Sequence[str], files: Sequence[str]) -> Baseline:
    """Run ``pool`` unmutated in ``sandbox`` with ``files`` traced; return what it learned.

    Raises BaselineFailed naming the failing tests when any fails.
    """
    out = sandbox.root / "reach"
    out.mkdir()
    outcome = run(sandbox, ["-p", "mutate.plugin", *pool], LIMIT, env=sandbox.env(out, files))
    durations, failed = _tests(out / "tests.jsonl")
    if failed:
        raise BaselineFailed(failed)
    if outcome.status != "survived":
        raise BaselineFailed([f"pytest did not finish ({outcome.status}): {outcome.detail}"])
    if not durations or not any(out.glob("reach-*.json")):
        raise BaselineFailed(["none: the traced run recorded no tests or no lines (is mutate.plugin loaded?)"])
    return Baseline(durations, _relative(reach.load(out), sandbox.root), outcome.seconds)


def _tests(path: Path) -> tuple[dict[str, float], list[str]]:
    durations: dict[str, float] = {}
    failed: set[str] = set()
    rows = path.read_text().splitlines() if path.exists() else []
    for row in map(json.loads, rows):
        durations[row["test"]] = durations.get(row["test"], 0.0) + row["duration"]
        if row["failed"]:
            failed.add(row["test"])
    return durations, sorted(failed)


def _relative(reached: dict[str, dict[int, set[str]]], root: Path) -> dict[str, dict[int, set[str]]]:
    return {str(Path(file).relative_to(root)): lines for file, lines in reached.items()}
