"""Helpers the tests share: scripts, grants, spawning, and running the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import alos
from alos.rights import Effect, parse_grant
from alos.types import HumanRequest

ALOS = [sys.executable, "-m", "alos.cli"]


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A workspace with a README, a secret and a src/ tree."""
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "README.md").write_text("hello\n")
    (root / ".env").write_text("SECRET=1\n")
    (root / "src" / "app.py").write_text("print('hi')\n")
    return root


def write_script(path: Path, turns: list[dict[str, Any]]) -> str:
    """Write a scripted-model file; return its --model spec."""
    path.write_text("".join(json.dumps(t) + "\n" for t in turns))
    return f"script:{path}"


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


@pytest.fixture
def store(tmp_path: Path) -> str:
    return str(tmp_path / "store" / "store.db")


@pytest.fixture
def runtime(store: str) -> Iterator[alos.Runtime]:
    rt = alos.open(store, host=True)
    yield rt
    rt.close()


def grants(
    ws: Path, allow: tuple[str, ...] = (), ask: tuple[str, ...] = (), deny: tuple[str, ...] = ()
) -> list[alos.Grant]:
    return [
        parse_grant(s, e, str(ws))
        for specs, e in ((allow, Effect.ALLOW), (ask, Effect.ASK), (deny, Effect.DENY))
        for s in specs
    ]


def spawn(rt: alos.Runtime, ws: Path, turns: list[dict[str, Any]] | None = None, **kw: tuple[str, ...]) -> int:
    """Spawn a base process in ``ws`` with a script of ``turns`` and grants ``allow/ask/deny``."""
    model = write_script(ws.parent / f"script-{len(list(ws.parent.iterdir()))}.jsonl", turns or [])
    return asyncio.run(rt.spawn("base", "test goal", workspace=str(ws), model=model, grants=grants(ws, **kw)))


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 60, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the alos CLI with no TTY, in-process (alos_here: ``timeout`` is then pytest's); return
    the completed process. Tests of a host killed or signalled start ALOS themselves."""
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    return alos_here(*args, cwd=cwd, env=env, input=input)


def cli_process(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the alos CLI in a subprocess with no TTY, as run_cli() does in-process."""
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(
        [*ALOS, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env, stdin=subprocess.DEVNULL
    )


def alos_here(
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    errors: str = "strict",
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `alos ARGS` as a subprocess.run of the CLI with no terminal would, in this process,
    through the entry point the `alos` script runs (alos.cli.main.main) under click's isolation:
    the same arguments in, the same stdout, stderr and exit code out, ``input`` (or nothing) on
    stdin. ``env`` replaces the environment as subprocess.run(env=...) does; ``errors`` decodes
    the output as subprocess.run(errors=...) would. (A TMPDIR in ``env`` would not be used:
    tempfile keeps the first one it found.)

    A CLI start costs about a quarter of a second of CPU (half a second under coverage) and, for a
    command run to its end, tests only that Python starts. The tests whose subject is a process
    (a host killed -9 or signalled, two commands racing, the raw bytes a terminal gets, the doc
    examples) still start `alos` for real. What a process's exit would hide must not happen here:
    the command leaves no file of its store open, no child process behind, and the SIGTERM handler
    a host sets is put back."""
    from click.testing import CliRunner

    from alos.cli.main import main

    changes: dict[str, str | None] = {}
    if env is not None:
        changes = {k: None for k in os.environ if k not in env}
        changes.update(env)
    store = args[args.index("--store") + 1] if "--store" in args else None
    children = {c.pid for c in psutil.Process().children(recursive=True)}
    on_term = signal.getsignal(signal.SIGTERM)
    code = 0
    try:
        with CliRunner().isolation(input=input, env=changes) as (out, err, _), contextlib.chdir(cwd or os.getcwd()):
            try:
                main(list(args))
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else 1
            stdout, stderr = out.getvalue().decode(errors=errors), err.getvalue().decode(errors=errors)
    finally:
        signal.signal(signal.SIGTERM, on_term)
    left = [c for c in psutil.Process().children(recursive=True) if c.pid not in children]
    assert not left, f"alos {' '.join(args)} left processes behind: {left}"
    if store is not None:
        held = [f for f in _open_files() if f.startswith(str(Path(store).parent))]
        assert not held, f"alos {' '.join(args)} left {held} open"
    return subprocess.CompletedProcess(["alos", *args], code, stdout, stderr)


def _open_files() -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            found.append(os.readlink(f"/proc/self/fd/{fd}"))
    return found


@pytest.fixture
def cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    return run_cli


def jsonl(text: str) -> list[dict[str, Any]]:
    """Return the JSON lines of a command's ``--json`` output."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def crash_until_done(
    first: list[str], store: str, stop: Callable[[subprocess.Popen[bytes]], int | None], tries: int = 200
) -> tuple[int | None, int]:
    """Run host command ``first``, then ``alos resume``, each cut short by ``stop`` (which returns the
    host's exit code, or None when it killed it), until a run exits 0; a human approves every
    recovery request on the way. Return (the last exit code, how many hosts were killed)."""
    cmd, kills, code = first, 0, None
    for _ in range(tries):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        code = stop(p)
        kills += code is None
        started = bool(stored_processes(store))
        cmd = [*ALOS, "resume", "--store", store, "--approve", "never"] if started else first
        if code == 0:
            break
        if code == 3:  # an effect was cut between intent and outcome: a human says retry
            for req in stored_requests(store):  # what `alos approvals` lists, read in-process
                assert req.kind.value == "recovery", req
                run_cli("approve", str(req.id), "--store", store)
    return code, kills


def stored_processes(store: str | os.PathLike[str]) -> list[alos.Process]:
    """Return the store's processes, read in-process as ``alos ps`` reads them; [] before a host has
    made the store or while another program keeps it locked (a failed ``alos ps``). For loops that
    poll until a host gets somewhere: an ``alos ps`` each look costs a CLI start (half a second of
    CPU under coverage) and is no part of what the test checks."""
    rt = _reader(store)
    if rt is None:
        return []
    try:
        return rt.processes()
    finally:
        rt.close()


def stored_requests(store: str | os.PathLike[str]) -> list[HumanRequest]:
    """Return the store's pending human requests, read in-process, for polls as stored_processes."""
    rt = _reader(store)
    if rt is None:
        return []
    try:
        return rt.requests()
    finally:
        rt.close()


def _reader(store: str | os.PathLike[str]) -> alos.Runtime | None:
    if not os.path.exists(store):
        return None
    try:
        return alos.open(str(store), create=False)
    except alos.Unavailable:
        return None


def audited(store: str) -> int:
    """Return how many audit records the store holds (0 before it exists)."""
    if not os.path.exists(store):
        return 0
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5)
    try:
        return int(conn.execute("SELECT count(*) FROM audit").fetchone()[0])
    except sqlite3.OperationalError:  # the host is still creating the schema
        return 0
    finally:
        conn.close()


def kill_after_syscalls(
    store: str, rng: random.Random, *, kills: int, most: int
) -> Callable[[subprocess.Popen[bytes]], int | None]:
    """Return a ``stop`` for crash_until_done that kills -9 the host once the store holds 1 to
    ``most`` more audit records, ``kills`` times at most, and then lets the host finish.

    The kill points are counted in work done, not seconds, so a busy machine makes the test
    slower but never longer: the same number of hosts start whatever the load.
    """
    left = [kills]

    def stop(p: subprocess.Popen[bytes]) -> int | None:
        if not left[0]:
            return p.wait(timeout=300)
        left[0] -= 1
        target = audited(store) + rng.randint(1, most)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            code = p.poll()
            if code is not None:
                return code
            if audited(store) >= target:
                break
            time.sleep(0.01)  # each look opens the store: not so often that it starves the host
        p.kill()
        p.wait()
        return None

    return stop
