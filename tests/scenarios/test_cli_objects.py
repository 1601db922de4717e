"""alos obj, alos ckpt and alos store from the command line, as a hostile user drives them.

The commands run in-process (alos.cli.main.main under click's isolation: stdin, stdout and
stderr are bytes we read back); one test runs `alos obj cat` on a real pseudo-terminal.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import pty
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import alos
from alos.cli import objects
from alos.cli.main import main
from tests.support import ALOS, call, spawn

HOSTILE = "ok\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\x1b[1;1H\u202eevil\x9b31m\r\n"
RAW = ("\x1b", "\x07", "\u202e", "\x9b", "\r")  # none of these may reach a terminal as it is


@dataclass
class Ran:
    code: int
    out: bytes
    err: str

    @property
    def text(self) -> str:
        return self.out.decode()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]


def alos_cli(*args: str, store: str, input: bytes | None = None, tty: bool = False) -> Ran:
    """Run ``alos ARGS --store STORE`` in-process; ``tty``: stdin and stdout say they are terminals."""
    env = {"NO_COLOR": "1", "COLUMNS": "200", "TERM": "dumb", "ALOS_STORE": None}
    with CliRunner().isolation(input=input, env=env) as (out, err, _):
        if tty:
            sys.stdout.isatty = lambda: True  # type: ignore[method-assign]
            sys.stdin.isatty = lambda: True  # type: ignore[method-assign]
        try:
            main([*args, "--store", store])
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        return Ran(code, out.getvalue(), err.getvalue().decode())


def ok(ran: Ran) -> Ran:
    assert ran.code == 0, (ran.code, ran.out, ran.err)
    return ran


def make_process(store: str, ws: Path, turns: list[dict[str, Any]] | None = None) -> int:
    """Start a base process (not run) whose script is ``turns``, allowed to read and write its workspace."""
    rt = alos.open(store, host=True)
    try:
        return spawn(rt, ws, turns, allow=("fs:*=read,write",))
    finally:
        rt.close()


def run_host(store: str) -> None:
    """Run the store's processes until none can run (a host, as 'alos resume' would)."""
    rt = alos.open(store, host=True)
    try:
        asyncio.run(rt.run())
    finally:
        rt.close()


def test_put_cat_ls_log_round_trip_text_json_and_bytes(store: str, ws: Path, tmp_path: Path) -> None:
    pid = make_process(store, ws)
    assert "no objects in proc/1" in ok(alos_cli("obj", "ls", str(pid), store=store)).text
    assert (
        "created proc/1/notes version 1 (text"
        in ok(alos_cli("obj", "put", "1", "notes", "--value", "héllo\n", store=store)).text
    )
    assert (
        "wrote proc/1/notes version 2" in ok(alos_cli("obj", "put", "1", "notes", store=store, input=b"second\n")).text
    )
    ok(alos_cli("obj", "put", "1", "cfg", "--type", "json", "--value", '{"retries": 3, "hosts": ["a"]}', store=store))
    blob = bytes(range(256)) * 20 + b"\xff\xfe"  # not UTF-8, more than 4 KiB: a bytes object, in the blob directory
    (tmp_path / "logo.bin").write_bytes(blob)
    made = ok(alos_cli("obj", "put", "1", "logo", "--json", store=store, input=blob)).lines()[0]
    assert (made["type"], made["version"], made["bytes"]) == ("bytes", 1, len(blob))
    ok(alos_cli("obj", "put", "1", "logo", "--file", str(tmp_path / "logo.bin"), store=store))

    assert ok(alos_cli("obj", "cat", "1", "notes", store=store)).out == b"second\n"  # a pipe gets the exact bytes
    assert ok(alos_cli("obj", "cat", "1", "notes", "--version", "1", store=store)).out == "héllo\n".encode()
    assert ok(alos_cli("obj", "cat", "1", "logo", store=store)).out == blob
    assert json.loads(ok(alos_cli("obj", "cat", "1", "cfg", store=store)).text) == {"retries": 3, "hosts": ["a"]}
    assert "\n  " in alos_cli("obj", "cat", "1", "cfg", store=store).text  # pretty-printed
    read = ok(alos_cli("obj", "cat", "1", "logo", "--json", store=store)).lines()[0]
    assert base64.b64decode(read["value"]) == blob and read["version"] == 2

    listed = ok(alos_cli("obj", "ls", "1", "--json", store=store)).lines()
    assert [(o["ns"], o["name"], o["type"], o["version"]) for o in listed] == [
        ("proc/1", "cfg", "json", 1), ("proc/1", "logo", "bytes", 2), ("proc/1", "notes", "text", 2),
    ]  # fmt: skip
    table = ok(alos_cli("obj", "ls", "1", store=store)).text
    assert "NAME" in table and "DIGEST" in table and listed[1]["digest"][7:23] in table
    assert [o["name"] for o in ok(alos_cli("obj", "ls", "proc/1", "--prefix", "n", "--json", store=store)).lines()] == [
        "notes"
    ]

    versions = ok(alos_cli("obj", "log", "1", "notes", "--json", store=store)).lines()
    assert [(v["version"], v["pid"], v["object"]) for v in versions] == [(2, 0, "proc/1/notes"), (1, 0, "proc/1/notes")]
    assert versions[0]["bytes"] == 7 and versions[0]["digest"].startswith("sha256:")
    shown = ok(alos_cli("obj", "log", "1", "notes", store=store)).text.splitlines()
    assert "VERSION" in shown[0] and shown[1].split()[:3] == ["2", "text", "7"] and "host" in shown[1]


def test_ls_pages_through_every_object(store: str, ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_process(store, ws)
    for i in range(5):
        ok(alos_cli("obj", "put", "1", f"n{i}", "--value", str(i), store=store))
    monkeypatch.setattr(objects, "PAGE", 2)
    assert [o["name"] for o in alos_cli("obj", "ls", "1", "--json", store=store).lines()] == [f"n{i}" for i in range(5)]
    pages = [r for r in alos_cli("audit", "--json", store=store).lines() if r["syscall"] == "obj.list"]
    assert len(pages) == 3


def test_expect_gives_a_conflict_when_someone_wrote_since(store: str, ws: Path) -> None:
    make_process(store, ws)
    ok(alos_cli("obj", "put", "1", "plan", "--value", "one", store=store))
    ok(alos_cli("obj", "put", "1", "plan", "--value", "two", "--expect", "1", store=store))
    lost = alos_cli("obj", "put", "1", "plan", "--value", "three", "--expect", "1", store=store)
    assert lost.code == 1 and lost.err.startswith("alos: conflict: object proc/1/plan is at version 2, not 1"), lost.err
    assert alos_cli("obj", "cat", "1", "plan", store=store).out == b"two"
    absent = alos_cli("obj", "put", "1", "nothing", "--value", "x", "--expect", "1", store=store)
    assert absent.code == 1 and "alos: not_found: no object proc/1/nothing" in absent.err
    retyped = alos_cli("obj", "put", "1", "plan", "--type", "json", "--value", "[]", store=store)
    assert retyped.code == 1 and "is a text object" in retyped.err
    both = alos_cli("obj", "put", "1", "plan", "--value", "x", "--file", __file__, store=store)
    assert both.code == 2 and "not both" in both.err
    not_json = alos_cli("obj", "put", "1", "cfg", "--type", "json", "--value", "{oops", store=store)
    assert not_json.code == 1 and "alos: invalid:" in not_json.err and "not JSON" in not_json.err


def test_errors_name_the_unknown_process_name_namespace_and_checkpoint(store: str, ws: Path) -> None:
    make_process(store, ws)
    cases = [
        (("obj", "ls", "99"), 1, "alos: not_found: no process 99"),
        (("obj", "cat", "1", "missing"), 1, "alos: not_found: no object proc/1/missing"),
        (("obj", "cat", "1", "../etc/passwd"), 1, "alos: invalid: bad object name"),
        (("obj", "log", "1", "missing"), 1, "alos: not_found: no object proc/1/missing"),
        (("obj", "ls", "Research"), 1, "alos: invalid: bad namespace 'Research'"),
        (("obj", "ls", "0"), 2, "the host (pid 0) has no namespace"),
        (
            ("obj", "put", "research", "x", "--value", "v"),
            1,
            "no namespace research; a process makes one with ns_create",
        ),
        (("ckpt", "ls", "42"), 1, "alos: not_found: no process 42"),
        (("ckpt", "create", "42"), 1, "alos: not_found: no process 42"),
        (("ckpt", "diff", "7"), 1, "alos: not_found: no checkpoint 7; "),
        (("ckpt", "restore", "7", "--yes"), 1, "alos: not_found: no checkpoint 7"),
        (("ckpt", "fork", "7"), 1, "alos: not_found: no checkpoint 7"),
        (("ckpt", "commit", "7", "x"), 1, "alos: not_found: no checkpoint 7"),
        (("ckpt", "diff", "0"), 2, "Invalid value for 'ID'"),
    ]
    for args, code, words in cases:
        ran = alos_cli(*args, store=store)
        assert (ran.code, words in ran.err) == (code, True), (args, ran.code, ran.err)
        assert "Traceback" not in ran.err
    assert "ckpt ls' lists them" in alos_cli("ckpt", "diff", "7", store=store).err  # the person's hint, not the tool's
    missing = alos_cli("obj", "ls", "1", store=str(Path(store).parent / "none.db"))
    assert missing.code == 1 and missing.err.startswith("alos: ") and not os.path.exists(Path(store).parent / "none.db")


def test_hostile_names_and_values_never_reach_a_terminal_unescaped(store: str, ws: Path) -> None:
    make_process(store, ws)
    ok(alos_cli("obj", "put", "1", "evil", "--value", HOSTILE, store=store))
    assert alos_cli("obj", "cat", "1", "evil", store=store).out == HOSTILE.encode()  # a pipe: exactly what was stored
    shown = ok(alos_cli("obj", "cat", "1", "evil", store=store, tty=True)).text
    assert not any(c in shown for c in RAW), repr(shown)
    assert "\\x1b]52;c;" in shown and "\\u202e" in shown and "\\x9b" in shown
    as_json = ok(alos_cli("obj", "cat", "1", "evil", "--json", store=store, tty=True)).text
    assert not any(c in as_json for c in RAW) and json.loads(as_json)["value"] == HOSTILE

    ok(alos_cli("obj", "put", "1", "blob", store=store, input=b"\x1b]52;c;AAAA\x07\xff"))
    refused = alos_cli("obj", "cat", "1", "blob", store=store, tty=True)
    assert refused.code == 1 and refused.out == b"" and "redirect them" in refused.err and "> FILE" in refused.err

    for args in (
        ("obj", "cat", "1", "a\x1b[2Jb"),
        ("obj", "ls", "ns\x1b]0;title\x07"),
        ("obj", "put", "1", "\u202eabc", "--value", "x"),
        ("obj", "ls", "1", "--prefix", "\x1b[31m"),
        ("ckpt", "create", "1", "--label", HOSTILE),
        ("ckpt", "ls"),
        ("ckpt", "fork", "1", "--name", "x\x1b[2J", "--goal", HOSTILE),
        ("ps", "--all"),
    ):
        ran = alos_cli(*args, store=store, tty=True)
        assert not any(c in ran.text + ran.err for c in RAW), (args, ran.text, ran.err)
    labelled = ok(alos_cli("ckpt", "ls", store=store, tty=True)).text
    assert "ok\\x1b]52;c;" in labelled


def test_cat_on_a_real_terminal_shows_control_characters_escaped(store: str, ws: Path) -> None:
    make_process(store, ws)
    ok(alos_cli("obj", "put", "1", "evil", "--value", HOSTILE, store=store))
    main_fd, sub_fd = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"}
    env.pop("NO_COLOR", None)
    p = subprocess.Popen(
        [*ALOS, "obj", "cat", "1", "evil", "--store", store],
        stdin=subprocess.DEVNULL,
        stdout=sub_fd,
        stderr=sub_fd,
        env=env,
    )
    os.close(sub_fd)
    got = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main_fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(main_fd, 4096)
            except OSError:  # the other end closed
                break
            if not chunk:
                break
            got += chunk
        elif p.poll() is not None:
            break
    os.close(main_fd)
    assert p.wait(timeout=30) == 0, got
    shown = got.decode()
    assert "\\x1b]52;c;" in shown and "\\u202e" in shown, shown
    for seq in ("\x1b]52", "\x1b[2J", "\x1b[1;1H", "\u202e", "\x07", "\x9b"):
        assert seq not in shown, repr(shown)


def test_ckpt_create_ls_diff_restore_fork_commit(store: str, ws: Path) -> None:
    turns = [
        {"content": "write", "tool_calls": [call("fs_write", path="after.txt", content="written after\n")]},
        {"content": "wait", "tool_calls": [call("msg_recv")]},
    ]
    pid = make_process(store, ws, turns)
    ok(alos_cli("obj", "put", str(pid), "notes", "--value", "as at the checkpoint", store=store))
    taken = ok(alos_cli("ckpt", "create", str(pid), "--label", "before", "--json", store=store)).lines()[0]
    assert (taken["id"], taken["pid"], taken["label"]) == (1, pid, "before")
    ok(alos_cli("obj", "put", str(pid), "notes", "--value", "changed since", store=store))
    ok(alos_cli("obj", "put", str(pid), "extra", "--value", "made since", store=store))
    run_host(store)  # the process writes after.txt (an outside effect) and waits for a message
    assert (ws / "after.txt").exists()

    assert [c["id"] for c in ok(alos_cli("ckpt", "ls", str(pid), "--json", store=store)).lines()] == [1]
    listed = ok(alos_cli("ckpt", "ls", store=store)).text
    assert "before" in listed and "host" in listed and "LABEL" in listed
    d = ok(alos_cli("ckpt", "diff", "1", "--json", store=store)).lines()[0]
    assert d["from"] == 1 and d["to"] == "now" and sorted(d["objects_changed"]) == ["proc/1/extra", "proc/1/notes"]
    assert [(e["syscall"], e["resource"]) for e in d["effects"]] == [("fs.write", f"fs:{ws / 'after.txt'}")]
    diff = ok(alos_cli("ckpt", "diff", "1", store=store)).text
    assert "proc/1/notes" in diff and "fs.write" in diff and "NOT undo" in diff

    refused = alos_cli("ckpt", "restore", "1", store=store)  # no terminal to ask at, no --yes: nothing changes
    assert refused.code == 2 and "--yes" in refused.err
    declined = alos_cli("ckpt", "restore", "1", store=store, tty=True, input=b"n\n")
    assert declined.code == 1 and "not restored" in declined.text and "fs.write" in declined.text
    assert "restoring process 1 to checkpoint 1 (before)" in declined.text
    assert alos_cli("obj", "cat", str(pid), "notes", store=store).out == b"changed since"

    done = ok(alos_cli("ckpt", "restore", "1", store=store, tty=True, input=b"y\n"))
    assert "Restore checkpoint 1?" in done.err
    shown_before, _, after = done.text.partition("✓ process 1 restored to checkpoint 1")
    assert "fs.write" in shown_before and f"fs:{ws / 'after.txt'}" in shown_before and "NOT undo" in shown_before
    assert after.startswith(": 2 object(s) rolled back")
    assert "fs.write" in after and "a restore does not undo them" in after  # the result's effects list and note
    assert alos_cli("obj", "cat", str(pid), "notes", store=store).out == b"as at the checkpoint"
    assert alos_cli("obj", "cat", str(pid), "extra", store=store).code == 1
    assert (ws / "after.txt").read_text() == "written after\n"  # listed, not undone

    again = ok(alos_cli("ckpt", "restore", "1", "--yes", "--json", store=store)).lines()
    assert len(again) == 1 and again[0]["checkpoint"] == 1 and again[0]["effects"][0]["syscall"] == "fs.write"

    forked = ok(alos_cli("ckpt", "fork", "1", "--name", "clone", "--goal", "try again", "--json", store=store)).lines()[
        0
    ]
    assert forked["name"] == "clone" and forked["objects"] == 1
    assert alos_cli("obj", "cat", str(forked["pid"]), "notes", store=store).out == b"as at the checkpoint"
    said = ok(alos_cli("ckpt", "fork", "1", store=store)).text
    assert "started from checkpoint 1" in said and "resume" in said

    committed = ok(alos_cli("ckpt", "commit", "1", "snap", "--description", "a snapshot", store=store)).text
    assert "registered image snap@1" in committed and "1 seed object(s)" in committed
    shown = ok(alos_cli("image", "show", "snap", "--json", store=store)).lines()[0]
    assert [o["name"] for o in shown["objects"]] == ["notes"] and shown["description"] == "a snapshot"
    bad = alos_cli("ckpt", "commit", "1", "Not A Name", store=store)
    assert bad.code == 1 and "alos: invalid:" in bad.err

    kids = ok(alos_cli("ckpt", "create", str(pid), "--children", store=store)).text
    assert "checkpoint 2 of process 1 taken" in kids


def test_store_check_names_a_deleted_and_a_corrupted_blob(store: str, ws: Path) -> None:
    make_process(store, ws)
    check = ok(alos_cli("store", "check", store=store)).text.splitlines()
    assert len(check) == 1 and check[0].startswith("✓ store intact")
    big = [os.urandom(5000), os.urandom(6000)]
    digests = [
        ok(alos_cli("obj", "put", "1", f"big{i}", "--json", store=store, input=b)).lines()[0]["digest"]
        for i, b in enumerate(big)
    ]
    ok(alos_cli("obj", "put", "1", "big1", "--json", store=store, input=os.urandom(7000)))  # version 2 stays whole

    def blob(digest: str) -> Path:
        hex_ = digest.removeprefix("sha256:")
        return Path(store + ".blobs") / hex_[:2] / hex_

    blob(digests[0]).unlink()
    blob(digests[1]).write_bytes(b"x" + big[1][1:])
    ran = alos_cli("store", "check", store=store)
    assert ran.code == 1, ran.text
    assert "object proc/1/big0 version 1: its payload" in ran.text and "is missing" in ran.text
    assert "object proc/1/big1 version 1: its payload" in ran.text and "does not match its digest" in ran.text
    assert "big1 version 2" not in ran.text and "2 problem(s)" in ran.text
    report = alos_cli("store", "check", "--json", store=store)
    assert report.code == 1
    (line,) = report.lines()
    assert not line["ok"] and line["audit"]["ok"]
    assert sorted((p["object"], p["version"]) for p in line["problems"]) == [("proc/1/big0", 1), ("proc/1/big1", 1)]
    served = alos_cli("obj", "cat", "1", "big1", "--version", "1", store=store)
    assert served.code == 1 and served.out == b"" and "alos: corrupt:" in served.err


def test_store_gc_removes_only_what_nothing_names(store: str, ws: Path) -> None:
    make_process(store, ws)
    data = os.urandom(5000)
    digest = ok(alos_cli("obj", "put", "1", "big", "--json", store=store, input=data)).lines()[0]["digest"]
    folder = Path(store + ".blobs") / "ab"
    folder.mkdir(parents=True, exist_ok=True)
    stray, leftover = folder / ("ab" * 32), folder / ".tmp-123-abababab"
    stray.write_bytes(b"nobody names me")
    leftover.write_bytes(b"half")
    old = time.time() - 7200
    for f in (stray, leftover):
        os.utime(f, (old, old))
    kept = ok(alos_cli("store", "gc", store=store)).text  # the default grace keeps nothing younger than an hour
    assert "removed 2 file(s), 19 bytes" in kept
    assert not stray.exists() and not leftover.exists()
    stray.write_bytes(b"new")
    assert ok(alos_cli("store", "gc", "--json", store=store)).lines() == [{"files": 0, "bytes": 0, "grace": 3600.0}]
    assert ok(alos_cli("store", "gc", "--grace", "0", "--json", store=store)).lines()[0]["files"] == 1
    assert alos_cli("obj", "cat", "1", "big", store=store).out == data  # what a version names stays
    assert alos_cli("store", "gc", "--grace", "-1", store=store).code == 2


def test_the_audit_log_shows_the_hosts_reads(store: str, ws: Path) -> None:
    make_process(store, ws)
    ok(alos_cli("obj", "put", "1", "notes", "--value", "private", store=store))
    ok(alos_cli("obj", "cat", "1", "notes", store=store))
    ok(alos_cli("obj", "ls", "1", store=store))
    ok(alos_cli("obj", "log", "1", "notes", store=store))
    ok(alos_cli("ckpt", "ls", "1", store=store))
    records = ok(alos_cli("audit", "--json", "--pid", "0", store=store)).lines()
    seen = {(r["syscall"], r["resource"], r["right"]) for r in records if r["outcome"] == "ok"}
    assert {
        ("obj.create", "obj:proc/1/notes", "write"),
        ("obj.read", "obj:proc/1/notes", "read"),
        ("obj.list", "ns:proc/1", "list"),
        ("obj.log", "obj:proc/1/notes", "read"),
        ("ckpt.list", "proc:1", "read"),
    } <= seen, seen
    assert all(r["pid"] == 0 for r in records)
    ok(alos_cli("audit", "verify", store=store))


def test_a_short_payload_never_enters_an_audit_record(store: str, ws: Path) -> None:
    make_process(store, ws)
    ok(alos_cli("obj", "put", "1", "notes", "--value", "private", store=store))
    ok(alos_cli("obj", "put", "1", "notes", "--value", "private too", store=store))
    records = ok(alos_cli("audit", "--json", "--pid", "0", store=store)).lines()
    assert "private" not in json.dumps(records)


@pytest.mark.parametrize(
    "args",
    [
        ("obj", "ls"), ("obj", "cat"), ("obj", "log"), ("obj", "put"), ("ckpt", "ls"), ("ckpt", "create"),
        ("ckpt", "diff"), ("ckpt", "restore"), ("ckpt", "fork"), ("ckpt", "commit"), ("store", "check"),
        ("store", "gc"),
    ],
)  # fmt: skip
def test_every_command_has_help_with_an_example_and_the_common_options(args: tuple[str, ...], store: str) -> None:
    shown = ok(alos_cli(*args, "--help", store=store)).text
    assert "Example:" in shown and f"alos {' '.join(args)}" in shown
    assert "--store" in shown and "--json" in shown
