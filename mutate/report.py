"""Progress on stderr while mutants run, and the final table of survivors and kill rates on stdout."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from mutate.mutants import Mutant
from mutate.sandbox import Outcome

KILLED = ("killed", "timeout")  # a mutant that makes the tests hang is caught too
SURVIVED = ("survived", "unreached")


@dataclass(frozen=True, slots=True)
class Result:
    mutant: Mutant
    outcome: Outcome


class Progress:
    """One status line on stderr: mutants done of total, killed, survived, elapsed time."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.counts: Counter[str] = Counter()
        self.begun = time.monotonic()
        self.tty = sys.stderr.isatty()

    def add(self, result: Result) -> None:
        """Count ``result`` and redraw the status line."""
        self.counts[result.outcome.status] += 1
        done = sum(self.counts.values())
        elapsed = time.monotonic() - self.begun
        left = elapsed / done * (self.total - done)
        line = (
            f"[{done}/{self.total}] killed {sum(self.counts[s] for s in KILLED)}"
            f" survived {sum(self.counts[s] for s in SURVIVED)}"
            + (f" errors {self.counts['error']}" if self.counts["error"] else "")
            + f"  {_clock(elapsed)} elapsed, about {_clock(left)} left"
        )
        if self.tty:
            print(f"\r{line}\033[K", end="" if done < self.total else "\n", file=sys.stderr, flush=True)
        else:
            where = f"{result.mutant.path}:{result.mutant.line}"
            print(f"{line}  {where} {result.outcome.status}", file=sys.stderr, flush=True)


def table(results: Sequence[Result], paths: Sequence[str]) -> str:
    """Return the report: every survivor (file:line, original -> mutant), every error, and the
    kill rate per module and in total (timeouts count as killed; errors count for neither)."""
    ordered = sorted(results, key=lambda r: (r.mutant.path, r.mutant.line, r.mutant.start))
    out = ["", "Surviving mutants:"]
    survivors = [r for r in ordered if r.outcome.status in SURVIVED]
    out += [_row(r) for r in survivors] or ["  none"]
    errors = [r for r in ordered if r.outcome.status == "error"]
    if errors:
        out += ["", "Mutants the tests could not judge (pytest failed to run):"]
        out += [f"{_row(r)}\n      {r.outcome.detail}" for r in errors]
    out += ["", f"{'module':32} {'mutants':>8} {'killed':>7} {'survived':>9} {'kill rate':>10}"]
    for path in [*paths, "total"]:
        mine = [r for r in results if path in ("total", r.mutant.path)]
        out.append(_rate(path, mine))
    return "\n".join(out)


def _row(result: Result) -> str:
    m = result.mutant
    note = "  (no test reaches it)" if result.outcome.status == "unreached" else ""
    return f"  {m.path}:{m.line}  [{m.kind}]  {m.before}  ->  {m.after}{note}"


def _rate(path: str, results: Sequence[Result]) -> str:
    killed = sum(r.outcome.status in KILLED for r in results)
    survived = sum(r.outcome.status in SURVIVED for r in results)
    judged = killed + survived
    rate = f"{100 * killed / judged:.1f}%" if judged else "-"
    return f"{path:32} {len(results):>8} {killed:>7} {survived:>9} {rate:>10}"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"
