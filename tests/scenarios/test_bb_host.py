"""Black-box: a live host waiting at a TTY prompt; kill -9; --json purity with a terminal attached."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import time
from pathlib import Path

from tests.scenarios.bb_support import ALOS, call, make_env, turn, write_script
from tests.support import stored_requests


def start_tty_host(e, turns, *grants: str, json_out: bool = False):
    script = write_script(e.root / "host.jsonl", turns)
    master, slave = pty.openpty()
    args = [
        ALOS,
        "run",
        "base",
        "goal",
        "--workspace",
        str(e.ws),
        "--store",
        str(e.store),
        "--model",
        f"script:{script}",
        *grants,
    ]
    if json_out:
        args.append("--json")
    proc = subprocess.Popen(
        args, stdin=slave, stdout=subprocess.PIPE, stderr=slave, env={**os.environ, "NO_COLOR": "1"}
    )
    os.close(slave)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if stored_requests(e.store):  # in-process: a poll
            return proc, master
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    os.close(master)
    raise AssertionError("the host never parked a request")


def drain(master: int) -> None:
    try:
        while True:
            import select

            r, _, _ = select.select([master], [], [], 0)
            if not r:
                return
            os.read(master, 4096)
    except OSError:
        return


def test_kill_9_while_pending_then_deny_then_resume_never_writes(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    proc, master = start_tty_host(
        e,
        [turn(call("fs_write", path="out.txt", content="x")), turn(call("human_tell", text="after"))],
        "--ask",
        "fs:*=write",
    )
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    os.close(master)
    assert e.cmd("deny", "1", "--reason", "killed host").returncode == 0
    r = e.resume()
    assert r.returncode == 0, r.stdout + r.stderr
    assert not (e.ws / "out.txt").exists()
    assert not [x for x in e.audit() if x["syscall"] == "fs.write" and x["outcome"] == "ok"]
    assert e.cmd("audit", "verify").returncode == 0


def test_kill_9_while_pending_then_approve_always_then_resume_writes_once_and_reuses(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    proc, master = start_tty_host(
        e,
        [turn(call("fs_write", path="out.txt", content="1")), turn(call("fs_write", path="out.txt", content="12"))],
        "--ask",
        "fs:*=write",
    )
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    os.close(master)
    assert e.cmd("approve", "1", "--always").returncode == 0
    r = e.resume()
    assert r.returncode == 0, r.stdout + r.stderr
    assert (e.ws / "out.txt").read_text() == "12"
    writes = [x for x in e.audit() if x["syscall"] == "fs.write" and x["outcome"] == "ok"]
    assert len(writes) == 2


def test_json_stdout_stays_pure_when_a_tty_host_prompts(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    proc, master = start_tty_host(
        e,
        [turn(call("fs_write", path="out.txt", content="x")), turn(call("human_tell", text="bye"))],
        "--ask",
        "fs:*=write",
        json_out=True,
    )
    try:
        a = subprocess.run(
            [ALOS, "approve", "1", "--store", str(e.store)],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
        assert a.returncode == 0, a.stderr
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            drain(master)
            time.sleep(0.05)
        out = proc.stdout.read().decode() if proc.stdout else ""
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.close(master)
    assert proc.returncode == 0, out
    assert (e.ws / "out.txt").read_text() == "x"
    for ln in out.splitlines():
        if ln.strip():
            assert isinstance(json.loads(ln), dict), ln
