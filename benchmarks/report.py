"""Render benchmark results as a rich table."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from benchmarks.cases import Result


def duration(ns: float) -> str:
    """Return ``ns`` in the unit that reads best: us below 10 ms, else ms."""
    if ns < 10_000_000:
        return f"{ns / 1_000:,.1f} us"
    return f"{ns / 1_000_000:,.1f} ms"


def verdict(result: Result) -> str:
    """Return the PASS/FAIL cell (or a dash for a row reported only for scale)."""
    passed = result.passed
    if passed is None:
        return "-"
    return "[green]PASS[/]" if passed else "[red]FAIL[/]"


def table(results: Sequence[Result], title: str) -> Table:
    """Return the report table: one row per result."""
    out = Table(title=title, title_justify="left")
    out.add_column("benchmark")
    out.add_column("n", justify="right")
    out.add_column("median", justify="right")
    out.add_column("p95", justify="right")
    out.add_column("throughput", justify="right")
    out.add_column("target")
    out.add_column("result")
    for r in results:
        rate = f"{r.rate:,.0f} {r.unit}" if r.rate is not None else "-"
        out.add_row(
            f"{escape(r.name)}\n[dim]  {escape(r.note)}[/]" if r.note else escape(r.name),
            f"{r.summary.count:,}",
            duration(r.summary.median_ns),
            duration(r.summary.p95_ns),
            rate,
            str(r.target) if r.target else "(for scale)",
            verdict(r),
        )
    return out


def show(results: Sequence[Result], title: str) -> None:
    """Print the report table to stdout."""
    Console(width=120).print(table(results, title))


def _figure(r: Result) -> str:
    """Return what a target is about: the median, the wall time, the ratio or the rate."""
    metric = r.target.metric if r.target else "median"
    if metric == "wall" and r.wall_ns is not None:
        return f"{r.wall_ns / 1e9:,.1f} s"
    if metric == "ratio" and r.ratio is not None:
        return f"{r.ratio:.2f}x"
    if metric == "rate" and r.rate is not None:
        return f"{r.rate:,.0f} {r.unit}"
    return duration(r.summary.median_ns)


def show_pairs(pairs: Sequence[tuple[str, Result, Result]], title: str) -> None:
    """Print one row per benchmark: its figure before and after, the target and the verdict now."""
    out = Table(title=title, title_justify="left")
    for name, justify in (("benchmark", "left"), ("before", "right"), ("after", "right"), ("target", "left")):
        out.add_column(name, justify=justify)  # type: ignore[arg-type]
    out.add_column("result")
    for _, before, after in pairs:
        notes = "\n".join(
            f"[dim]  {label}: {escape(r.note)}[/]" for label, r in (("before", before), ("after", after)) if r.note
        )
        out.add_row(
            escape(after.name) + ("\n" + notes if notes else ""),
            _figure(before),
            _figure(after),
            str(after.target) if after.target else "(for scale)",
            verdict(after),
        )
    Console(width=140).print(out)
