"""A private copy of the repository's src/ and tests/ in which one mutant at a time is applied and tested.

The developer's work tree is only ever read: a mutant is written into a sandbox under a temp
directory, so neither Ctrl-C nor kill -9 can leave src/ mutated (kill -9 may leave the temp
directory behind). Tests run with ``PYTHONPATH=<sandbox>/src``, which comes before the venv's
editable install of alos on sys.path, for pytest and for every ``alos`` CLI a test starts
(they inherit the environment); ``check()`` verifies that ``import alos`` finds the copy.
"""

from __future__ import annotations

import compileall
import os
import py_compile
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from mutate import reach
from mutate.mutants import Mutant, apply

PYTEST = ["-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider"]  # -rfE: the FAILED/ERROR lines _judge reads
COPIED = ("src", "tests", "mutate", "docs", "pyproject.toml", "real-model-constraints.txt")  # what tests read
HOOK = "from mutate import reach\n\nreach.start()\n"  # the sandbox's sitecustomize.py in a traced run

_running: set[subprocess.Popen[str]] = set()
_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Outcome:
    """How the tests met one mutant: killed, survived, timeout (counts as killed) or error."""

    status: str
    seconds: float
    detail: str  # the test that failed first, or the end of pytest's output for an error


@dataclass(frozen=True, slots=True)
class Sandbox:
    root: Path

    def env(self, traced: Path | None = None, files: Sequence[str] = ()) -> dict[str, str]:
        """Return the environment tests run in; with ``traced``, lines of ``files`` (paths relative to
        the repository) are traced and recorded in the folder ``traced``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHONDONTWRITEBYTECODE", "MUTATE_"))}
        paths = [self.root / "src"]
        if traced is not None:
            paths += [self.root / "hook", self.root]
            env[reach.OUT] = str(traced)
            env[reach.FILES] = os.pathsep.join(str(self.root / f) for f in files)
        env["PYTHONPATH"] = os.pathsep.join(map(str, paths))
        return env


def make(repo: Path, root: Path, texts: dict[str, bytes]) -> Sandbox:
    """Copy what the tests need from ``repo`` into the new directory ``root``, the files in ``texts``
    (path relative to ``repo`` -> text) as the mutants were made from them; return the sandbox."""
    root.mkdir(parents=True)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache")
    for name in COPIED:
        source = repo / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=skip)
        else:
            shutil.copy2(source, root / name)
    for path, text in texts.items():  # src/ may have changed since the mutants were enumerated
        (root / path).write_bytes(text)
    if (repo / ".venv").is_dir():  # tests find the CLI as <repo>/.venv/bin/alos
        (root / ".venv").symlink_to(repo / ".venv")
    (root / "hook").mkdir()
    (root / "hook" / "sitecustomize.py").write_text(HOOK)
    # compiled once here: every CLI start a test makes would otherwise compile alos anew
    compileall.compile_dir(root / "src", quiet=2)
    return Sandbox(root)


def check(sandbox: Sandbox) -> None:
    """Raise RuntimeError unless ``import alos`` in the test environment finds the sandbox's copy."""
    code = "import alos; print(alos.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=sandbox.env(), capture_output=True, text=True, check=False
    ).stdout.strip()
    if not out.startswith(str(sandbox.root / "src")):
        raise RuntimeError(f"import alos found {out or 'nothing'}, not the copy in {sandbox.root}/src")


@contextmanager
def mutated(sandbox: Sandbox, mutant: Mutant, original: bytes) -> Iterator[None]:
    """Apply ``mutant`` to the sandbox's copy of its file for the duration of the block."""
    path = sandbox.root / mutant.path
    _write(path, apply(original, mutant))
    try:
        yield
    finally:
        _write(path, original)


def _write(path: Path, text: bytes) -> None:
    # a swapped operator keeps the file's size, and its mtime may fall in the same second as the
    # last write: a timestamp pyc could go stale, so the pyc is checked by the source's hash
    path.write_bytes(text)
    py_compile.compile(str(path), doraise=True, invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)


def run(sandbox: Sandbox, args: list[str], timeout: float, env: dict[str, str] | None = None) -> Outcome:
    """Run pytest with ``args`` in ``sandbox`` (in ``env``, by default ``sandbox.env()``); return how it
    went: a run over ``timeout`` seconds is killed, with every process it started."""
    cmd = [sys.executable, *PYTEST, "--basetemp", str(sandbox.root / "tmp"), *args]
    begun = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=sandbox.root,
        env=env or sandbox.env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: a timeout or Ctrl-C kills the CLIs it started too
    )
    with _lock:
        _running.add(proc)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        proc.communicate()
        return Outcome("timeout", time.monotonic() - begun, f"over {timeout:.0f} s")
    finally:
        with _lock:
            _running.discard(proc)
    return _judge(proc.returncode, out, time.monotonic() - begun)


def _judge(code: int, out: str, seconds: float) -> Outcome:
    failed = [
        line.split(" ", 1)[1].split(" - ")[0] for line in out.splitlines() if line.startswith(("FAILED ", "ERROR "))
    ]
    if code == 0:
        return Outcome("survived", seconds, "")
    if code in (1, 2) and failed:  # 2: a mutant that breaks an import fails collection
        return Outcome("killed", seconds, failed[0])
    return Outcome("error", seconds, " | ".join(out.strip().splitlines()[-3:]))


def stop_all() -> None:
    """Kill every test run still going, with the processes it started."""
    with _lock:
        for proc in list(_running):
            _kill(proc)


def _kill(proc: subprocess.Popen[str]) -> None:
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
