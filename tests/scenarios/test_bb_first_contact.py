"""Black-box: issue 12, "trustworthy on first contact" (part 1).

The demo never writes into a user's directory and cleans up after itself; a host whose store
vanishes stops; the ten authority, audit and terminal holes stay closed. Driven through the
`alos` command line (and once through the Python API in a subprocess), like a user or a
hostile model would.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.scenarios.bb_support import ALOS, alos_here, turn, write_script
from tests.support import stored_processes

BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}
# What a model or process might choose, aimed at the operator's terminal: OSC 52 (clipboard),
# cursor up + erase line, a right-to-left override, an 8-bit CSI, backspace, CR, VT, FF, NEL, an isolate.
EVIL = "\x1b]52;c;SGVsbG8=\x07\x1b[1A\x1b[2K\u202e\x9b31m\x08\r\x0b\x0c\x85\u2066"
MODEL = {"pattern": "model:script", "rights": ["execute"]}


# -- helpers ------------------------------------------------------------------------------


def call(tool: str, /, **arguments: Any) -> dict[str, Any]:
    return {"name": tool, "arguments": arguments}


def json_lines(text: str) -> list[dict[str, Any]]:
    """JSON Lines split on newlines only (str.splitlines also splits inside strings at NEL, VT, FF...)."""
    return [json.loads(line) for line in text.split("\n") if line.strip()]


def cli(
    *args: str, timeout: float = 30, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "NO_COLOR": "1", "COLUMNS": "250", **(env or {})}
    return subprocess.run(
        [ALOS, *args],
        capture_output=True,
        text=True,
        errors="backslashreplace",
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=full,
        cwd=str(cwd) if cwd else None,
    )


def cli_bytes(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "250"}
    return subprocess.run([ALOS, *args], capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL, env=env)


class World:
    """A workspace, a store and a place for scripts, all under tmp_path."""

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path
        self.ws = tmp_path / "ws"
        self.ws.mkdir(parents=True)
        (self.ws / "README.md").write_text("hello readme\n")
        self.store = tmp_path / "state" / "store.db"
        self.script = tmp_path / "script.jsonl"

    def run_args(self, turns: list[dict[str, Any]], *extra: str, goal: str = "goal") -> list[str]:
        """The first run's script is self.script; a later run gets a script of its own."""
        script = self.script
        n = 1
        while script.exists():
            n += 1
            script = self.root / f"script-{n}.jsonl"
        write_script(script, turns)
        return [
            "run", "base", goal, "--workspace", str(self.ws), "--store", str(self.store),
            "--model", f"script:{script}", "--approve", "never", *extra,
        ]  # fmt: skip

    def run(
        self, turns: list[dict[str, Any]], *extra: str, timeout: float = 30, goal: str = "goal"
    ) -> subprocess.CompletedProcess[str]:
        """Run a host to its end as cli() would, in-process (bb_support.alos_here: ``timeout`` is
        then pytest's); the tests that start alos themselves (cli(), Popen) get a real process."""
        return self.cmd(*self.run_args(turns, *extra, goal=goal), store=False)

    def cmd(self, *args: str, timeout: float = 30, store: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``alos ARGS --store STORE`` as cli() would, in-process (see run())."""
        env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "250"}
        args = (*args, "--store", str(self.store)) if store else args
        return alos_here(*args, env=env, errors="backslashreplace")

    def audit(self) -> list[dict[str, Any]]:
        r = self.cmd("audit", "--json")
        assert r.returncode == 0, r.stderr
        return json_lines(r.stdout)

    def ps(self, *extra: str) -> list[dict[str, Any]]:
        r = self.cmd("ps", "--json", *extra)
        assert r.returncode == 0, r.stderr
        return json_lines(r.stdout)

    def every_process(self) -> list[dict[str, Any]]:
        """Every process, exited ones included (`ps --all`)."""
        r = self.cmd("ps", "--json", "--all")
        assert r.returncode == 0, r.stderr
        return json_lines(r.stdout)

    def approvals(self, *extra: str) -> list[dict[str, Any]]:
        r = self.cmd("approvals", "--json", *extra)
        assert r.returncode == 0, r.stderr
        return json_lines(r.stdout)


def result_texts(stdout: str) -> list[str]:
    return [str(e["detail"].get("text", "")) for e in json_lines(stdout) if e.get("kind") == "result"]


def no_crash(r: subprocess.CompletedProcess[str]) -> None:
    out = r.stdout + r.stderr
    assert r.returncode != 70, out
    assert "Traceback" not in out and "internal error" not in out, out


def wait_until(pred: Any, timeout: float = 30, what: str = "a condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def start_sleeping_host(w: World) -> tuple[subprocess.Popen[bytes], Path]:
    """A host running one process parked in a one-hour clock_sleep; returns it and its stderr file."""
    args = w.run_args([turn(call("clock_sleep", seconds=3600), content="sleeping")])
    err = w.root / "host.err"
    with open(err, "wb") as fe:
        proc = subprocess.Popen(
            [ALOS, *args],
            stdout=subprocess.DEVNULL,
            stderr=fe,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "NO_COLOR": "1"},
        )

    def parked() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"the host exited early ({proc.returncode}): {err.read_text()}")
        return any(p.state.value == "waiting" for p in stored_processes(w.store))  # in-process: a poll

    try:
        wait_until(parked, what="the host's process to sleep")
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc, err


def snapshot(d: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(d)): (p.read_bytes() if p.is_file() and not p.is_symlink() else None)
        for p in sorted(d.rglob("*"))
    }


def bad_chars(data: bytes) -> list[str]:
    """Terminal controls in output: C0 except newline and tab, C1 (as UTF-8 or raw bytes), bidi controls."""
    found = []
    for ch in data.decode("utf-8", "surrogateescape"):
        o = ord(ch)
        if (o < 0x20 and ch not in "\n\t") or 0x80 <= o <= 0x9F or 0xDC80 <= o <= 0xDC9F or ch in BIDI:
            found.append(ch)
    return sorted({repr(c) for c in found})


# -- the demo never touches a user's files -------------------------------------------------


@pytest.mark.parametrize(
    "files",
    [
        {"README.md": b"my own readme\n", ".env": b"TOKEN=hunter2\n"},
        {".env": b"ONLY_A_HIDDEN_FILE=1\n"},
        {"src/app.py": b"print('mine')\n", "SUMMARY.md": b"my summary\n"},
    ],
)
def test_demo_refuses_a_non_empty_workspace_and_leaves_it_byte_identical(
    tmp_path: Path, files: dict[str, bytes]
) -> None:
    mine = tmp_path / "mine"
    for name, data in files.items():
        (mine / name).parent.mkdir(parents=True, exist_ok=True)
        (mine / name).write_bytes(data)
    before = snapshot(mine)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    r = cli("demo", "--workspace", str(mine), env={"TMPDIR": str(tmpdir)}, cwd=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    no_crash(r)
    assert f"Error: Invalid value for --workspace: {mine} is not empty; the demo writes only into" in r.stderr, out
    assert snapshot(mine) == before, "the demo changed or added files in the user's directory"


def test_demo_refuses_a_symlink_to_a_non_empty_directory_and_a_file(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / ".env").write_bytes(b"TOKEN=hunter2\n")
    (tmp_path / "link").symlink_to(mine)
    (tmp_path / "notes.txt").write_bytes(b"my notes\n")
    before, note = snapshot(mine), (tmp_path / "notes.txt").read_bytes()
    link, notes = tmp_path / "link", tmp_path / "notes.txt"
    refusals = {
        link: f"Error: Invalid value for --workspace: {link} is not empty;",
        notes: f"Error: Invalid value for '--workspace': Directory '{notes}' is a file.",
    }
    for target, said in refusals.items():
        r = cli("demo", "--workspace", str(target), env={"TMPDIR": str(tmp_path)}, cwd=tmp_path)
        assert r.returncode == 2, (target, r.stdout, r.stderr)
        assert said in r.stderr, r.stderr
        no_crash(r)
    assert snapshot(mine) == before
    assert (tmp_path / "notes.txt").read_bytes() == note


def test_demo_in_an_empty_directory_runs(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    r = cli("demo", "--workspace", str(empty), env={"TMPDIR": str(tmp_path)}, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


# -- a host notices that its store is gone ---------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("how", ["delete the store directory", "replace the store file"])
def test_host_stops_with_a_clear_error_when_its_store_is_gone(tmp_path: Path, how: str) -> None:
    w = World(tmp_path)
    w.store = tmp_path / ".alos" / "store.db"
    host, err = start_sleeping_host(w)
    try:
        if how.startswith("delete"):
            shutil.rmtree(w.store.parent)
        else:  # a copy of the same bytes under the same name: another file all the same
            shutil.copyfile(w.store, tmp_path / "copy.db")
            os.replace(tmp_path / "copy.db", w.store)
        deadline = time.monotonic() + 10
        while host.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert host.poll() is not None, f"the host kept running 10 s after: {how}"
    finally:
        if host.poll() is None:
            host.kill()
        host.wait()
    text = err.read_text(errors="backslashreplace")
    assert host.returncode not in (0, 70), (host.returncode, text)
    assert "Traceback" not in text, text
    assert "store" in text.lower(), f"the error does not mention the store: {text!r}"


# -- 1. proc.spawn's model must not reach the host's disk --------------------------------------


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


def _spawn_with_model(w: World, *specs: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """Root spawns a child naming each model SPEC (kid, kid1, ...) in one turn, then waits for them.
    Returns the run and all output (run, resume, audit) as one text. Each spawn is decided on its
    own, so one run tries several specs (one host start, not one a spec)."""
    spawns = [
        call("proc_spawn", name=f"kid{i or ''}", goal="kid goal", model=spec, grants=[MODEL])
        for i, spec in enumerate(specs)
    ]
    turns = [turn(*spawns, *[call("proc_wait") for _ in specs], content="spawning")]
    args = w.run_args(turns, "--allow", "fs:*=read", "--allow", "proc:spawn=spawn", "--json")
    env = {**os.environ, "NO_COLOR": "1"}
    try:
        r = subprocess.run(
            [ALOS, *args],
            capture_output=True,
            text=True,
            errors="backslashreplace",
            timeout=20,
            stdin=subprocess.DEVNULL,
            env=env,
            preexec_fn=_limit_memory,
        )
    except subprocess.TimeoutExpired:
        raise AssertionError(f"alos run hung on a child with model {specs}") from None
    no_crash(r)  # the timeout and the memory limit above catch a host that reads the device
    assert "MemoryError" not in r.stdout + r.stderr, r.stdout + r.stderr
    assert r.returncode == 0, ("a refused spawn is a result the parent reads; it exits ok", r.stdout, r.stderr)
    try:
        again = cli("resume", "--store", str(w.store), "--approve", "never", "--json", timeout=20)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"alos resume hung replaying the spawn of model {specs}") from None
    no_crash(again)
    [root] = [p for p in w.every_process() if p["pid"] == 1]
    assert (root["state"], root["exit"]) == ("exited", "ok"), root
    audit = w.audit()
    tried = [a for a in audit if a["pid"] == 1 and a["syscall"] == "proc.spawn"]
    assert len(tried) == len(specs), tried  # every spec was decided, not only the first
    kid_calls = [a for a in audit if a["pid"] not in (0, 1) and a["syscall"] == "model.call" and a["outcome"] == "ok"]
    assert not kid_calls, f"a child thought with model {specs}: {kid_calls}"
    everything = r.stdout + r.stderr + again.stdout + again.stderr + json.dumps(audit)
    return r, everything


def test_spawn_with_model_dev_zero_a_fifo_or_a_directory_is_refused_quickly_and_never_blocks(tmp_path: Path) -> None:
    w = World(tmp_path)
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    (tmp_path / "adir").mkdir()
    _spawn_with_model(w, "script:/dev/zero", f"script:{fifo}", f"script:{tmp_path / 'adir'}")


def test_spawn_with_files_outside_the_grants_never_quotes_or_replays_them(tmp_path: Path) -> None:
    w = World(tmp_path)
    secret = tmp_path / "outside" / "config.json"
    secret.parent.mkdir()
    secret.write_text(json.dumps({"MARKER_KEY_q7zx": "MARKER_VALUE_q7zx", "password": "hunter2"}) + "\n")
    other = tmp_path / "outside" / "turns.jsonl"
    write_script(
        other,
        [turn(call("human_tell", text="MARKER_TELL_k3p9"), content="MARKER_CONTENT_k3p9", proc="kid1")],
    )
    _, everything = _spawn_with_model(w, f"script:{secret}", f"script:{other}")
    assert "MARKER_KEY_q7zx" not in everything and "MARKER_VALUE_q7zx" not in everything
    assert "hunter2" not in everything
    assert "MARKER_TELL_k3p9" not in everything and "MARKER_CONTENT_k3p9" not in everything


def test_spawn_model_script_is_no_existence_oracle(tmp_path: Path) -> None:
    """A non-JSON file outside the grants and a missing file give the same answer, modulo the path."""
    outputs = []
    for label, make in (("exists", True), ("absent", False)):
        w = World(tmp_path / label)
        target = tmp_path / label / "hidden" / "shadow"
        if make:
            target.parent.mkdir()
            target.write_text("root:MARKER_SHADOW_x1:19000:0:99999:7:::\n")
        r, everything = _spawn_with_model(w, f"script:{target}")
        assert "MARKER_SHADOW_x1" not in everything
        texts = [re.sub(r"\d+", "N", t.replace(str(target), "<P>")) for t in result_texts(r.stdout)]
        outputs.append(texts)
    assert outputs[0] == outputs[1], outputs


# -- 2. terminal escapes chosen by a model never reach the operator's terminal ------------------


@pytest.mark.slow
def test_no_terminal_control_reaches_any_output(tmp_path: Path) -> None:
    w = World(tmp_path)
    kid = "w" + EVIL
    turns = [
        turn(
            call("fs_read" + EVIL, path="README.md"),
            call("fs_read", path="no" + EVIL + ".txt"),
            call("fs_read", path="/etc/" + EVIL),
            call("human_tell", text="tell" + EVIL),
            call(
                "proc_spawn",
                name=kid,
                goal="goal" + EVIL,
                grants=[MODEL, {"pattern": "human:console", "rights": ["send"]}],
            ),
            call("proc_spawn", name="v" + EVIL, goal="g", grants=[{"pattern": "fs:/nope" + EVIL, "rights": ["write"]}]),
            call("proc_wait"),
            call("fs_write", path="out" + EVIL + ".txt", content="body" + EVIL),
            content="thinking" + EVIL,
        ),
        turn(call("human_ask", question="question" + EVIL), content="after" + EVIL),
        turn(call("human_tell", text="kid says" + EVIL), content="kid done" + EVIL, proc=kid),
    ]
    grants = ("--allow", "fs:*=read", "--ask", "fs:*=write", "--allow", "proc:spawn=spawn")
    store = ["--store", str(w.store)]
    outputs: dict[str, bytes] = {}
    failed: dict[str, tuple[int, str]] = {}
    first = cli_bytes(*w.run_args(turns, *grants))
    outputs["run"] = first.stdout + first.stderr
    pending = [q["id"] for q in w.approvals()]
    assert pending, outputs["run"].decode(errors="replace")
    for name, args in {
        "approvals": ["approvals"],
        "deny": ["deny", str(pending[0]), "--reason", "no" + EVIL],
        "resume": ["resume", "--approve", "never"],
        "ps": ["ps"],
        "ps --all": ["ps", "--all"],
        "approvals again": ["approvals"],
        "approvals --all": ["approvals", "--all"],
        "audit": ["audit"],
    }.items():
        r = cli_bytes(*args, *store)
        outputs[name] = r.stdout + r.stderr
        if r.returncode not in (0, 3):
            failed[name] = (r.returncode, outputs[name].decode(errors="replace"))
    # JSON on stdout escapes C0 by its own rules; what goes to stderr is for a terminal
    for name, args in {
        "ps --json": ["ps", "--json"],
        "audit --json": ["audit", "--json"],
        "approvals --all --json": ["approvals", "--all", "--json"],
    }.items():
        r = cli_bytes(*args, *store)
        outputs[name + " (stderr)"] = r.stderr
        c0 = [c for c in r.stdout.decode("utf-8", "surrogateescape") if ord(c) < 0x20 and c not in "\n"]
        assert not c0, (name, sorted(set(map(repr, c0))))
    j = World(tmp_path / "json")
    rj = cli_bytes(*j.run_args(turns, *grants, "--json"))
    outputs["run --json (stderr)"] = rj.stderr
    assert not [c for c in rj.stdout.decode("utf-8", "surrogateescape") if ord(c) < 0x20 and c not in "\n"]
    leaks = {name: bad for name, data in outputs.items() if (bad := bad_chars(data))}
    assert not leaks, leaks
    crashed = [name for name, data in outputs.items() if b"Traceback" in data]
    assert not crashed, crashed
    assert not failed, failed
    # the strings were shown at all (escaped), not silently dropped: the child's name is in ps --all
    assert b"w" in outputs["ps --all"]


# -- 3. a replacement never carries setuid or setgid -------------------------------------------


@pytest.mark.parametrize("mode", [0o4755, 0o2755, 0o6755], ids=oct)
def test_fs_write_over_a_setuid_file_drops_setuid_and_setgid(tmp_path: Path, mode: int) -> None:
    w = World(tmp_path)
    target = w.ws / "tool.sh"
    target.write_text("#!/bin/sh\necho original\n")
    os.chmod(target, mode)
    assert os.stat(target).st_mode & (stat.S_ISUID | stat.S_ISGID)
    r = w.run([turn(call("fs_write", path="tool.sh", content="#!/bin/sh\necho model\n"))], "--allow", "fs:*=read,write")
    assert r.returncode == 0, r.stdout + r.stderr
    assert target.read_text() == "#!/bin/sh\necho model\n"
    st = os.stat(target)
    assert not st.st_mode & (stat.S_ISUID | stat.S_ISGID), oct(st.st_mode)


# -- 4. approvals show everything they authorize ----------------------------------------------


def test_spawn_approval_shows_grants_budget_image_and_model(tmp_path: Path) -> None:
    w = World(tmp_path)
    spawn = call(
        "proc_spawn",
        name="helper",
        goal="help",
        image="reader",
        grants=[{"pattern": "fs:*", "rights": ["write", "delete"]}, MODEL],
        budget={"model_calls": 7, "bytes_written": 43210},
    )
    # another image than its own: execute on it, as exec needs (starting an image reads its seed objects)
    r = w.run(
        [turn(spawn)],
        "--allow",
        "fs:*=read,write,delete",
        "--allow",
        "image:reader=execute",
        "--ask",
        "proc:spawn=spawn",
    )
    assert r.returncode == 3, r.stdout + r.stderr
    text = w.cmd("approvals")
    assert text.returncode == 0, text.stderr
    [req] = w.approvals()
    as_json = json.dumps(req)
    assert "items>" not in as_json, as_json
    for shown, where in ((text.stdout, "text"), (as_json, "json")):
        for needle in ("write", "delete", "model:script", "43210", "model_calls", "reader", "script.jsonl"):
            assert needle in shown, f"{needle!r} missing from the {where} approval: {shown}"
    ws = w.ws.resolve()
    assert f"--allow 'fs:{ws}/*=write,delete'" in text.stdout, text.stdout
    assert "--allow 'model:script=execute'" in text.stdout, text.stdout
    grants = [(g["effect"], g["pattern"], g["rights"]) for g in req["detail"]["grants"]]
    assert grants == [("allow", f"fs:{ws}/*", ["write", "delete"]), ("allow", "model:script", ["execute"])]


def test_exec_approval_shows_the_keep_list(tmp_path: Path) -> None:
    w = World(tmp_path)
    keep = [f"fs:{w.ws}/*", "model:script"]
    r = w.run(
        [turn(call("proc_exec", image="reader", goal="read on", keep=keep))],
        "--allow", "fs:*=read,write", "--ask", "image:reader=execute",
    )  # fmt: skip
    assert r.returncode == 3, r.stdout + r.stderr
    text = w.cmd("approvals")
    [req] = w.approvals()
    as_json = json.dumps(req)
    assert "items>" not in as_json, as_json
    for shown in (text.stdout, as_json):
        assert f"{w.ws}/*" in shown and "model:script" in shown, shown


def _diff_request(w: World) -> None:
    (w.ws / "app.conf").write_text("".join(f"line {i}\n" for i in range(1, 401)))
    new = "".join(
        "line 290 CHANGED\n" if i == 290 else (f"line {i} edited\n" if i <= 60 else f"line {i}\n")
        for i in range(1, 401)
    )
    r = w.run([turn(call("fs_write", path="app.conf", content=new))], "--ask", "fs:*=write")
    assert r.returncode == 3, r.stdout + r.stderr


SAYS_HIDDEN = re.compile(r"\d+\D*\b(not shown|more|hidden|omitted|truncated|elided|cut)\b", re.I)


def test_a_long_overwrite_diff_is_never_cut_silently(tmp_path: Path) -> None:
    w = World(tmp_path)
    _diff_request(w)
    r = w.cmd("approvals")
    assert r.returncode == 0, r.stderr
    # the text view cuts the diff after 40 lines and says how many it hides and how to see them
    assert "line 290 CHANGED" not in r.stdout
    told = [ln for ln in r.stdout.splitlines() if SAYS_HIDDEN.search(ln) and "preview" not in ln]
    assert len(told) == 1, r.stdout
    assert "… 89 more diff line(s) not shown: '" in told[0] and " approvals --full 1' shows all" in told[0], told


def test_approvals_full_shows_the_whole_diff(tmp_path: Path) -> None:
    w = World(tmp_path)
    _diff_request(w)
    r = w.cmd("approvals", "--full", "1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "line 290 CHANGED" in r.stdout
    for extra in ((), ("--full", "1")):  # --json always holds the whole diff
        [req] = w.approvals(*extra)
        assert "+line 290 CHANGED" in req["detail"]["diff"], extra


# -- 5. nothing about the host before the decision ---------------------------------------------


def test_no_file_rights_means_the_same_denial_whatever_exists(tmp_path: Path) -> None:
    w = World(tmp_path)
    host = tmp_path / "host"
    (host / "exists").mkdir(parents=True)
    (host / "exists" / "file.txt").write_text("x")
    (host / "secretplace").mkdir()
    (host / "secretplace" / "file.txt").write_text("x")
    (w.ws / "lnk").symlink_to(host / "secretplace")
    pairs: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
        ("fs_mkdir", {"path": str(host / "exists")}, {"path": str(host / "absent")}),
        ("fs_mkdir", {"path": str(host / "exists" / "sub"), "parents": False},
         {"path": str(host / "absent" / "sub"), "parents": False}),
        ("fs_read", {"path": str(host / "exists" / "file.txt")}, {"path": str(host / "absent" / "file.txt")}),
        ("fs_list", {"path": str(host / "exists")}, {"path": str(host / "absent")}),
        ("fs_delete", {"path": str(host / "exists" / "file.txt")}, {"path": str(host / "absent" / "file.txt")}),
    ]  # fmt: skip
    calls = [call(tool, **args) for tool, a, b in pairs for args in (a, b)]
    calls.append(call("fs_read", path="lnk/file.txt"))
    calls += [call("fs_read", path=f"/proc/self/fd/{n}") for n in range(3, 10)]
    r = w.run([turn(*calls)], "--json")
    no_crash(r)
    texts = result_texts(r.stdout)
    assert len(texts) == len(calls), texts
    for i, (tool, a, b) in enumerate(pairs):
        ta = texts[2 * i].replace(a["path"], "<P>")
        tb = texts[2 * i + 1].replace(b["path"], "<P>")
        assert ta == tb, (tool, ta, tb)
        assert not ta.startswith("not_found") and (host / "exists").is_dir()
    assert (host / "exists" / "file.txt").read_text() == "x"
    assert "secretplace" not in texts[2 * len(pairs)], texts[2 * len(pairs)]
    for t in texts[2 * len(pairs) + 1 :]:
        assert str(w.store.parent) not in t and "store.db" not in t, t


# -- 6. one host per store, whatever the name ----------------------------------------------------


def test_a_hard_link_to_the_store_does_not_admit_a_second_host(tmp_path: Path) -> None:
    w = World(tmp_path)
    host, _ = start_sleeping_host(w)
    try:
        link = tmp_path / "elsewhere" / "store.db"
        link.parent.mkdir()
        os.link(w.store, link)
        r = cli("resume", "--store", str(link), "--approve", "never", timeout=20)
        assert r.returncode != 0, ("a second host ran through a hard link", r.stdout, r.stderr)
        no_crash(r)
        other = w.root / "other.jsonl"
        write_script(other, [turn(call("clock_now"), content="second host")])
        r = cli("run", "base", "g", "--workspace", str(w.ws), "--store", str(link), "--model", f"script:{other}",
                "--approve", "never")  # fmt: skip
        assert r.returncode != 0, ("a second host ran through a hard link", r.stdout, r.stderr)
        no_crash(r)
        assert host.poll() is None, "the first host died"
    finally:
        host.kill()
        host.wait()
