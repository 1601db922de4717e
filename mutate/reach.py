"""Which tests reach which lines of the mutated modules: a line tracer for every process.

Runs only in the baseline run, inside a sandbox (never in the developer's interpreter): the
sandbox's ``sitecustomize.py`` calls ``start()`` in every Python process, the pytest one and
every ``alos`` CLI a test starts, so lines run by a subprocess count for the test that started
it (the test's id travels in the environment; ``mutate.plugin`` sets it). A process killed
with SIGKILL records nothing. Imports nothing beyond the standard library: it runs in the CLI.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

OUT = "MUTATE_REACH_DIR"  # where each process writes what it reached
FILES = "MUTATE_REACH_FILES"  # the traced files, os.pathsep-separated absolute paths
TEST = "MUTATE_REACH_TEST"  # the id of the test running now
BEFORE = "*"  # the key of lines reached before any test: every test depends on them

_hits: dict[str, set[int]] = {}
_written = [0]


def _trace(frame: FrameType, event: str, arg: Any) -> Any:
    lines = _hits.get(frame.f_code.co_filename)
    if lines is None:
        return None
    lines.add(frame.f_lineno)
    return _line


def _line(frame: FrameType, event: str, arg: Any) -> Any:
    if event == "line":
        _hits[frame.f_code.co_filename].add(frame.f_lineno)
    return _line


def start() -> None:
    """Trace the files named in the environment in this process, if the environment asks for it."""
    if not os.environ.get(OUT):
        return
    for path in os.environ.get(FILES, "").split(os.pathsep):
        _hits[path] = set()
    threading.settrace(_trace)
    sys.settrace(_trace)
    atexit.register(_dump)


def take() -> dict[str, list[int]]:
    """Return the lines reached since the last take, and start afresh."""
    out = {path: sorted(lines) for path, lines in _hits.items() if lines}
    for lines in _hits.values():
        lines.clear()
    return out


def _dump() -> None:
    """At exit, record what this process reached for the test that started it (pytest's own
    process has no test by then: the plugin records its lines test by test)."""
    test = os.environ.get(TEST)
    hits = take()
    if test is not None and hits:
        write(test, hits)


def write(test: str, hits: dict[str, list[int]]) -> None:
    """Record that ``test`` reached ``hits`` (file -> lines), in a file of its own."""
    _written[0] += 1
    path = Path(os.environ[OUT]) / f"reach-{os.getpid()}-{_written[0]}.json"
    path.write_text(json.dumps({"test": test, "hits": hits}))


def load(folder: Path) -> dict[str, dict[int, set[str]]]:
    """Return file -> line -> the tests that reached it, from every record in ``folder``."""
    out: dict[str, dict[int, set[str]]] = {}
    for path in folder.glob("reach-*.json"):
        row = json.loads(path.read_text())
        for file, lines in row["hits"].items():
            by_line = out.setdefault(file, {})
            for line in lines:
                by_line.setdefault(line, set()).add(row["test"])
    return out
