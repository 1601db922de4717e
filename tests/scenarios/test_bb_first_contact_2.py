"""Black-box: issue 12, "trustworthy on first contact" (part 2).

Holes 7 to 10: deeply nested JSON, usage too large for the store, a script that is a
directory, refusals through the Python API. Then what a new user trips over:
usage errors exit 2 and leave no store; unused resource kinds are refused; binary files are
said to be binary; unknown tools and bad arguments are shown and audited for what they are;
`alos ps` shows live processes; `run`/`resume` report on what they started; a missing script
parks its process; the first Ctrl-C at the approval prompt stops alos.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import subprocess
import termios
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.scenarios.bb_support import ALOS, turn, write_script
from tests.scenarios.test_bb_first_contact import World, call, cli, json_lines, no_crash, result_texts

WRITE = [turn(call("fs_write", path="out.txt", content="hello\n"), content="writing")]
DONE = [turn(call("clock_now"), content="done")]


# -- 7, 8, 9. hostile scripts: deep JSON, huge usage, a directory -------------------------------

DEEP = 200_000


def test_deeply_nested_tool_arguments_give_a_clear_error(tmp_path: Path) -> None:
    w = World(tmp_path)
    nested = '{"path": ' + "[" * DEEP + "]" * DEEP + "}"
    line = json.dumps({"content": "deep", "tool_calls": [{"name": "fs_read", "arguments": nested}]})
    args = w.run_args([], "--allow", "fs:*=read")
    w.script.write_text(line + "\n")
    r = cli(*args)
    no_crash(r)
    assert "RecursionError" not in r.stdout + r.stderr


def test_a_deeply_nested_script_line_gives_a_clear_error(tmp_path: Path) -> None:
    w = World(tmp_path)
    args = w.run_args([])
    w.script.write_text('{"content": "x", "tool_calls": ' + "[" * DEEP + "]" * DEEP + "}\n")
    r = cli(*args)
    no_crash(r)
    assert r.returncode != 0
    assert "RecursionError" not in r.stdout + r.stderr
    assert w.script.name in r.stderr, f"the error does not name the script: {r.stderr!r}"


@pytest.mark.parametrize("budget", [[], ["--budget", "tokens=2000"]])  # room for the 1,024 reserved
def test_usage_too_large_for_the_store_is_handled_and_the_call_charged(tmp_path: Path, budget: list[str]) -> None:
    w = World(tmp_path)
    turns = [{"content": "huge", "usage": {"prompt_tokens": 10**23}, "tool_calls": []}]
    r = w.run(turns, *budget)
    no_crash(r)
    assert "OverflowError" not in r.stdout + r.stderr
    [main] = [p for p in w.every_process() if p["pid"] == 1]
    assert main["budget"]["model_calls"]["spent"] >= 1, main
    assert w.cmd("audit", "verify").returncode == 0


def test_model_script_naming_a_directory_is_a_clear_error(tmp_path: Path) -> None:
    w = World(tmp_path)
    d = tmp_path / "some" / "dir"
    d.mkdir(parents=True)
    r = cli("run", "base", "g", "--workspace", str(w.ws), "--store", str(w.store), "--model", f"script:{d}",
            "--approve", "never")  # fmt: skip
    no_crash(r)
    assert r.returncode == 2, r.stderr
    said = f"Error: model script {d} is not a regular file; pass --model script:PATH to a JSON Lines file"
    assert said in r.stderr, r.stderr


# -- 10. a refusal through the Python API is durable before the caller hears of it ---------------

PY_DENIALS = """
import asyncio, os, sys
import alos

store, ws, script = sys.argv[1:4]

async def main():
    rt = alos.open(store, host=True)
    pid = await rt.spawn("base", "g", workspace=ws, model="script:" + script, grants=[])
    for path in ("README.md", "nothing-here.txt"):
        try:
            await rt.dispatch(pid, "fs.read", {"path": path})
        except alos.Denied:
            print("denied", flush=True)
    os._exit(0)

asyncio.run(main())
"""


def test_python_dispatch_denials_are_audited_before_the_caller_hears(tmp_path: Path) -> None:
    w = World(tmp_path)
    write_script(w.script, [])
    prog = tmp_path / "prog.py"
    prog.write_text(PY_DENIALS)
    python = str(Path(ALOS).parent / "python")
    r = subprocess.run(
        [python, str(prog), str(w.store), str(w.ws), str(w.script)],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert r.stdout.split() == ["denied", "denied"], r.stdout + r.stderr
    reads = [a for a in w.audit() if a["syscall"] == "fs.read"]
    assert len(reads) == 2, reads
    assert all(a["decision"] == "deny" for a in reads), reads
    assert w.cmd("audit", "verify").returncode == 0


# -- every usage error of `alos run` exits 2 and creates no store -------------------------------

USAGE_ERRORS = {
    "allow without rights": ["--allow", "fs:*"],
    "allow unknown right": ["--allow", "fs:*=fly"],
    "deny empty resource": ["--deny", "=read"],
    "ask star in the middle": ["--ask", "fs:src/*x=read"],
    "bad budget value": ["--budget", "model_calls=abc"],
    "unknown budget": ["--budget", "nosuch=3"],
    "obj without an object name": ["--allow", "obj:x=read"],
    "shell program not found": ["--allow", "shell:no-such-program-here=execute"],
    "shell argv unbalanced quote": ["--allow", "shell:git 'status=execute"],
    "kind mcp": ["--allow", "mcp:x=register"],
    "kind mem": ["--allow", "mem:x=list"],
    "ns that is an object": ["--deny", "ns:team/notes=read"],
    "net without host": ["--ask", "net:=read"],
}


def _no_store_at(store: Path) -> None:
    assert not store.exists(), "a failed run created the store"
    leftovers = sorted(p.name for p in store.parent.iterdir()) if store.parent.exists() else []
    assert leftovers == [], leftovers


@pytest.mark.parametrize("bad", list(USAGE_ERRORS.values()), ids=list(USAGE_ERRORS))
def test_run_usage_errors_exit_2_and_create_no_store(tmp_path: Path, bad: list[str]) -> None:
    w = World(tmp_path)
    r = w.run(DONE, *bad)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    no_crash(r)
    assert r.stderr.strip(), "a usage error says nothing"
    _no_store_at(w.store)


def test_run_with_an_unknown_image_exits_2_and_creates_no_store(tmp_path: Path) -> None:
    w = World(tmp_path)
    args = w.run_args(DONE)
    args[1] = "nosuchimage"
    r = cli(*args)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    no_crash(r)
    _no_store_at(w.store)


@pytest.mark.parametrize("spec", ["mem:x=read", "mcp:x=register"])
def test_a_grant_on_an_unused_kind_names_the_kinds_that_exist(tmp_path: Path, spec: str) -> None:
    w = World(tmp_path)
    r = w.run(DONE, "--allow", spec)
    assert r.returncode != 0
    for kind in ("fs", "model", "proc", "human", "image", "clock", "shell", "net", "obj", "ns"):
        assert re.search(rf"\b{kind}\b", r.stderr), f"{kind!r} not named: {r.stderr!r}"


# -- binary files ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"\x00\x01\xff\xfe" * 300 + b"\x00", b"caf\xe9 \xff\xfe not utf-8 \x80\x81\n" * 40],
    ids=["nul bytes", "invalid utf-8"],
)
def test_fs_read_of_a_binary_file_says_binary_with_its_size(tmp_path: Path, data: bytes) -> None:
    w = World(tmp_path)
    (w.ws / "blob.bin").write_bytes(data)
    r = w.run([turn(call("fs_read", path="blob.bin"))], "--allow", "fs:*=read", "--json")
    no_crash(r)
    [text] = result_texts(r.stdout)
    assert "\ufffd" not in text and "\ufffd" not in r.stdout, text
    assert "binary" in text.lower(), text
    assert str(len(data)) in text, text


# -- unknown tools and bad arguments are shown and audited for what they are ----------------------


def test_a_call_to_a_tool_the_image_lacks_is_audited_and_shown(tmp_path: Path) -> None:
    w = World(tmp_path)
    turns = [turn(call("nosuch_tool_xyz", path="README.md"), call("clock_now"), content="try")]
    r = w.run(turns, "--allow", "fs:*=read")
    no_crash(r)
    lines = (r.stdout + r.stderr).split("\n")
    shown = [ln for ln in lines if "nosuch_tool_xyz" in ln]
    outcome = [ln for ln in shown if not ln.lstrip().startswith("→")]
    assert shown and outcome, "the trace shows the call but not its outcome:\n" + "\n".join(lines)
    audited = [a for a in w.audit() if "nosuch_tool_xyz" in json.dumps(a)]
    assert audited, "the refused call is not in the audit log"
    assert all(a["outcome"] != "ok" for a in audited), audited


def test_a_call_with_bad_arguments_is_shown_and_audited_as_invalid_not_deny(tmp_path: Path) -> None:
    w = World(tmp_path)
    r = w.run([turn(call("fs_read", path=123), content="bad")], "--allow", "fs:*=read")
    no_crash(r)
    lines = r.stdout.splitlines() + r.stderr.splitlines()
    at = [i for i, ln in enumerate(lines) if "fs_read" in ln and "123" in ln]
    assert at, r.stdout + r.stderr
    outcome = lines[at[0] + 1] if at[0] + 1 < len(lines) else ""
    assert "invalid" in outcome and "deny" not in outcome, outcome
    [rec] = [a for a in w.audit() if a["syscall"] == "fs.read"]
    assert rec["outcome"] == "invalid" and rec["decision"] != "deny", rec


# -- ps shows live processes; run and resume report on what they started --------------------------


def _pids(text: str) -> set[int]:
    return {int(m.group(1)) for m in re.finditer(r"^\s*(\d+)\s", text, re.M)}


def test_ps_hides_exited_processes_and_all_shows_them(tmp_path: Path) -> None:
    w = World(tmp_path)
    assert w.run(DONE, goal="finished one").returncode == 0
    assert w.run(WRITE, "--ask", "fs:*=write", goal="waiting one").returncode == 3
    live = w.ps()
    assert [p["pid"] for p in live] == [2], live
    every = w.cmd("ps", "--all", "--json")
    assert every.returncode == 0, every.stderr
    assert sorted(p["pid"] for p in json_lines(every.stdout)) == [1, 2]
    text, text_all = w.cmd("ps"), w.cmd("ps", "--all")
    assert text.returncode == 0 and text_all.returncode == 0, text.stderr + text_all.stderr
    assert "exited" not in text.stdout and _pids(text.stdout) == {2}, text.stdout
    assert "exited" in text_all.stdout and _pids(text_all.stdout) == {1, 2}, text_all.stdout


def test_a_new_run_that_finishes_exits_0_though_an_old_process_waits(tmp_path: Path) -> None:
    w = World(tmp_path)
    assert w.run(WRITE, "--ask", "fs:*=write").returncode == 3
    r = w.run(DONE, goal="a second, unrelated run")
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)


@pytest.mark.slow
def test_resume_after_killing_an_old_waiting_root_is_not_a_silent_failure(tmp_path: Path) -> None:
    w = World(tmp_path)
    assert w.run(WRITE, "--ask", "fs:*=write").returncode == 3
    no_crash(w.run(DONE, goal="a second run"))
    k = w.cmd("kill", "1")
    assert k.returncode == 0, k.stderr
    for _ in range(2):
        r = w.cmd("resume", "--approve", "never")
        no_crash(r)
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.startswith(f"nothing to resume: every process in {w.store} has exited\n"), r.stdout


def test_a_script_missing_at_resume_parks_the_process_on_a_request(tmp_path: Path) -> None:
    w = World(tmp_path)
    turns = [*WRITE, turn(call("clock_now"), content="after the write")]
    assert w.run(turns, "--ask", "fs:*=write").returncode == 3
    [req] = w.approvals()
    assert w.cmd("approve", str(req["id"])).returncode == 0
    w.script.unlink()
    r = w.cmd("resume", "--approve", "never")
    no_crash(r)
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    [main] = [p for p in w.ps() if p["pid"] == 1]
    assert main["state"] != "exited", main
    pending = [q for q in w.approvals() if q["pid"] == 1]
    assert pending and all(q["id"] != req["id"] for q in pending), pending
    shown = w.cmd("approvals")
    assert w.script.name in shown.stdout, shown.stdout


# -- a real terminal: the first Ctrl-C at the prompt stops alos; no agent string drives the terminal --


def _controlling_tty() -> None:
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Tty:
    """`alos run ... --approve prompt` with a pty as its controlling terminal (stdin, stdout, stderr)."""

    def __init__(self, args: list[str]) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [ALOS, *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**os.environ, "NO_COLOR": "1", "COLUMNS": "120"},
            preexec_fn=_controlling_tty,  # noqa: PLW1509 (the child needs the pty as its controlling terminal)
        )
        os.close(slave)
        self.seen = b""

    def pump(self, seconds: float, want: Callable[[], bool]) -> bool:
        """Read the terminal until want() holds or SECONDS pass (after the last writer closes, just poll)."""
        until = time.monotonic() + seconds
        open_ = True
        while time.monotonic() < until:
            if want():
                return True
            if not open_:
                time.sleep(0.02)
                continue
            r, _, _ = select.select([self.master], [], [], 0.05)
            if r:
                try:
                    self.seen += os.read(self.master, 65536)
                except OSError:  # EIO: every process holding the pty has closed it
                    open_ = False
        return want()

    def wait_for_prompt(self) -> None:
        asked = self.pump(30, lambda: b"[o]nce" in self.seen or self.proc.poll() is not None)
        assert asked and self.proc.poll() is None, (self.proc.poll(), self.text())

    def text(self) -> str:
        return self.seen.decode(errors="replace")[-1500:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        os.close(self.master)


def _prompting(w: World, turns: list[dict[str, Any]], *grants: str) -> list[str]:
    args = w.run_args(turns, *grants)
    args[args.index("--approve") + 1] = "prompt"
    return args


@pytest.mark.slow
def test_first_ctrl_c_at_the_approval_prompt_exits_130_at_once(tmp_path: Path) -> None:
    w = World(tmp_path)
    tty = Tty(_prompting(w, WRITE, "--ask", "fs:*=write"))
    try:
        tty.wait_for_prompt()
        os.write(tty.master, b"\x03")
        stopped = tty.pump(6, lambda: tty.proc.poll() is not None)  # it used to sit 10 s; a busy machine is slow
        assert stopped, f"alos still runs 6 s after Ctrl-C: {tty.text()}"
        assert tty.proc.returncode == 130, (tty.proc.returncode, tty.text())
        assert b"Traceback" not in tty.seen
    finally:
        tty.close()
    assert not (w.ws / "out.txt").exists()


# Payloads no honest output contains: clipboard write, window title, absolute cursor moves
# (7-bit and 8-bit CSI), a right-to-left override.
TTY_EVIL = "\x1b]52;c;UFdORUQ=\x07\x1b]0;PWNED\x07\x1b[7;77H\u202e\x9b8;88H"
NEVER_RAW = [b"\x1b]52;", b"\x1b]0;PWNED", b"\x1b[7;77H", "\u202e".encode(), "\x9b8;88H".encode()]


@pytest.mark.slow
def test_no_agent_string_drives_a_real_terminal_at_the_prompt(tmp_path: Path) -> None:
    w = World(tmp_path)
    kid = "kid" + TTY_EVIL
    turns = [
        turn(
            call("fs_read" + TTY_EVIL, path="README.md"),
            call("human_tell", text="tell" + TTY_EVIL),
            call(
                "proc_spawn",
                name=kid,
                goal="goal" + TTY_EVIL,
                grants=[{"pattern": "model:script", "rights": ["execute"]}],
            ),
            call("proc_wait"),
            call("fs_write", path="out" + TTY_EVIL + ".txt", content="body" + TTY_EVIL),
            content="thinking" + TTY_EVIL,
        ),
        turn(content="kid result" + TTY_EVIL, proc=kid),
    ]
    grants = ("--allow", "fs:*=read", "--ask", "fs:*=write", "--allow", "proc:spawn=spawn")
    tty = Tty(_prompting(w, turns, *grants))
    try:
        tty.wait_for_prompt()
        os.write(tty.master, b"\x03")
        tty.pump(10, lambda: tty.proc.poll() is not None)
    finally:
        tty.close()
    raw = [p for p in NEVER_RAW if p in tty.seen]
    assert not raw, (raw, tty.text())
    assert b"thinking" in tty.seen and b"PWNED" in tty.seen, "the strings were not shown at all: " + tty.text()
