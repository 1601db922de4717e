"""The pytest side of ``mutate.reach``: name the running test, and record each test's time.

Loaded with ``-p mutate.plugin`` in the baseline run only. Lines reached before the first test
(imports, collection) are recorded under ``BEFORE``: every test depends on them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Generator
from pathlib import Path

import pytest

from mutate import reach


def pytest_configure(config: pytest.Config) -> None:
    """Start with no test named: lines reached from here to the first test count for every test."""
    os.environ.pop(reach.TEST, None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    """Name ``item`` in the environment while it runs; record the lines it reached in this process."""
    before = reach.take()
    if before:
        reach.write(reach.BEFORE, before)
    os.environ[reach.TEST] = item.nodeid
    try:
        return (yield)
    finally:
        hits = reach.take()
        if hits:
            reach.write(item.nodeid, hits)
        os.environ.pop(reach.TEST, None)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Record each phase's time (setup, call, teardown) and whether it failed."""
    row = {"test": report.nodeid, "duration": report.duration, "failed": report.failed}
    with (Path(os.environ[reach.OUT]) / "tests.jsonl").open("a") as f:
        f.write(json.dumps(row) + "\n")
