"""The CLI as a user drives it: exit codes, --json purity, approvals across terminals, kill -9."""

import os
import pty
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support import (
    ALOS,
    call,
    crash_until_done,
    jsonl,
    kill_after_syscalls,
    run_cli,
    stored_requests,
    write_script,
)

WRITE_TURNS = [
    {"content": "read", "tool_calls": [call("fs_read", path="README.md")]},
    {"content": "write", "tool_calls": [call("fs_write", path="out.txt", content="written once\n")]},
    {"content": "done", "tool_calls": [call("human_tell", text="finished")]},
]


def start(tmp_path: Path, ws: Path, turns, *extra: str, approve: str = "never", where: str = "st"):
    model = write_script(tmp_path / "turns.jsonl", turns)
    store = str(tmp_path / where / "store.db")
    return store, run_cli(
        "run", "base", "goal", "--workspace", str(ws), "--store", store, "--model", model, "--approve", approve, *extra
    )


def model_calls(store: str) -> int:
    out = run_cli("audit", "--json", "--store", store).stdout
    return sum(1 for r in jsonl(out) if r["syscall"] == "model.call")


def test_exit_0_when_the_root_exits_ok(tmp_path: Path, ws: Path) -> None:
    store, r = start(tmp_path, ws, WRITE_TURNS, "--allow", "fs:*=read,write")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (ws / "out.txt").read_text() == "written once\n"
    assert "finished" in r.stdout and "exited ok" in r.stdout
    assert run_cli("audit", "verify", "--store", store).returncode == 0


def test_exit_3_when_a_human_is_needed_then_approve_and_resume_without_a_new_model_call(
    tmp_path: Path, ws: Path
) -> None:
    store, r = start(tmp_path, ws, WRITE_TURNS, "--allow", "fs:*=read", "--ask", "fs:*=write")
    assert r.returncode == 3, r.stdout + r.stderr
    assert "alos approve" in r.stdout and not (ws / "out.txt").exists()
    calls_before = model_calls(store)
    pending = jsonl(run_cli("approvals", "--json", "--store", store).stdout)
    assert [p["syscall"] for p in pending] == ["fs.write"]
    assert pending[0]["detail"]["bytes"] == 13
    ps = jsonl(run_cli("ps", "--all", "--json", "--store", store).stdout)
    assert ps[0]["state"] == "waiting" and ps[0]["wait"] == "human"
    a = run_cli("approve", str(pending[0]["id"]), "--store", store)
    assert a.returncode == 0 and "approved once" in a.stdout
    r = run_cli("resume", "--store", store, "--approve", "never")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (ws / "out.txt").read_text() == "written once\n"
    # the write resumed the same action: one model call per turn plus the one that found the script's end
    assert model_calls(store) == calls_before + 2
    answers = [x for x in jsonl(run_cli("audit", "--json", "--store", store).stdout) if x["syscall"] == "human.answer"]
    assert answers and answers[0]["detail"]["by"]


def test_exit_1_when_the_root_fails_and_on_bad_input(tmp_path: Path, ws: Path) -> None:
    _, r = start(tmp_path, ws, [{"tool_calls": [call("proc_exit", status="failed", result="gave up")]}])
    assert r.returncode == 1 and "exited failed" in r.stdout
    _, r = start(tmp_path, ws, WRITE_TURNS, "--allow", "fs:src/*=read,fly", where="bad")
    assert r.returncode == 2 and "unknown right 'fly'" in r.stderr
    assert not (tmp_path / "bad").exists()  # rejected before anything ran
    r = run_cli(
        "run",
        "base",
        "g",
        "--workspace",
        str(ws),
        "--store",
        str(tmp_path / "s2" / "s.db"),
        "--model",
        "script:/nope.jsonl",
    )
    assert r.returncode == 2 and "no model script" in r.stderr
    assert not (tmp_path / "s2").exists()  # a usage error stores nothing
    r = run_cli(
        "run",
        "nosuch",
        "g",
        "--workspace",
        str(ws),
        "--store",
        str(tmp_path / "s3" / "s.db"),
        "--model",
        f"script:{tmp_path}/turns.jsonl",
    )
    assert r.returncode == 2 and "no image 'nosuch'" in r.stderr
    assert not (tmp_path / "s3").exists()


def test_json_output_is_only_json(tmp_path: Path, ws: Path) -> None:
    store, r = start(tmp_path, ws, WRITE_TURNS, "--allow", "fs:*=read", "--ask", "fs:*=write", "--json")
    assert r.returncode == 3
    events = jsonl(r.stdout)  # raises if any line is not JSON
    assert any(e["kind"] == "request" for e in events)
    assert "alos approve" in r.stderr
    r = run_cli("approve", "1", "--store", store)
    r = run_cli("resume", "--store", store, "--approve", "never", "--json")
    assert r.returncode == 0
    jsonl(r.stdout)
    assert "finished" in r.stderr  # what the agent tells the human goes to stderr under --json
    for cmd in (["ps"], ["approvals", "--all"], ["audit"]):
        jsonl(run_cli(*cmd, "--json", "--store", store).stdout)


def test_deny_with_reason_reaches_the_model(tmp_path: Path, ws: Path) -> None:
    store, r = start(tmp_path, ws, WRITE_TURNS, "--allow", "fs:*=read", "--ask", "fs:*=write")
    run_cli("deny", "1", "--reason", "use notes/ instead", "--store", store)
    r = run_cli("resume", "--store", store, "--approve", "never", "--json")
    assert r.returncode == 0
    results = [e for e in jsonl(r.stdout) if e["kind"] == "result" and e["detail"]["name"] == "fs_write"]
    assert "use notes/ instead" in results[0]["detail"]["text"] and not results[0]["detail"]["ok"]
    assert not (ws / "out.txt").exists()


def test_a_question_is_answered_from_the_cli(tmp_path: Path, ws: Path) -> None:
    turns = [{"tool_calls": [call("human_ask", question="Which file?")]}]
    store, r = start(tmp_path, ws, turns)
    assert r.returncode == 3 and "Which file?" in r.stdout
    assert run_cli("approve", "1", "--store", store).returncode == 1  # a question wants text
    assert run_cli("answer", "1", "notes.md", "--store", store).returncode == 0
    r = run_cli("resume", "--store", store, "--approve", "never", "--json")
    results = [e for e in jsonl(r.stdout) if e["kind"] == "result"]
    assert results[0]["detail"]["text"] == "notes.md"


def test_resume_of_a_finished_run_changes_nothing(tmp_path: Path, ws: Path) -> None:
    store, r = start(tmp_path, ws, WRITE_TURNS, "--allow", "fs:*=read,write")
    assert r.returncode == 0
    before = len(jsonl(run_cli("audit", "--json", "--store", store).stdout))
    r = run_cli("resume", "--store", store, "--approve", "never")
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(jsonl(run_cli("audit", "--json", "--store", store).stdout)) == before


# -- a host that waits at its prompt (a real TTY) ----------------------------------------


def host_in_tty(tmp_path: Path, ws: Path, turns, *grants: str) -> tuple[subprocess.Popen, str, int]:
    model = write_script(tmp_path / "turns.jsonl", turns)
    store = str(tmp_path / "st" / "store.db")
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*ALOS, "run", "base", "goal", "--workspace", str(ws), "--store", store, "--model", model, *grants],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1"},
    )
    os.close(slave)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if stored_requests(store):  # in-process: a poll
            return proc, store, master
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the host never asked")


def test_kill_9_while_a_request_waits_then_approve_then_resume_writes_once(tmp_path: Path, ws: Path) -> None:
    proc, store, master = host_in_tty(tmp_path, ws, WRITE_TURNS, "--allow", "fs:*=read", "--ask", "fs:*=write")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    os.close(master)
    assert not (ws / "out.txt").exists()
    assert run_cli("approve", "1", "--store", store).returncode == 0
    r = run_cli("resume", "--store", store, "--approve", "never")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (ws / "out.txt").read_text() == "written once\n"
    writes = [
        x
        for x in jsonl(run_cli("audit", "--json", "--store", store).stdout)
        if x["syscall"] == "fs.write" and x["outcome"] == "ok"
    ]
    assert len(writes) == 1
    assert run_cli("audit", "verify", "--store", store).returncode == 0


def test_an_answer_from_another_terminal_reaches_the_running_host(tmp_path: Path, ws: Path) -> None:
    proc, store, master = host_in_tty(tmp_path, ws, WRITE_TURNS, "--allow", "fs:*=read", "--ask", "fs:*=write")
    try:
        assert run_cli("approve", "1", "--store", store).returncode == 0
        out, _ = proc.communicate(timeout=30)
    finally:
        os.close(master)
    assert proc.returncode == 0, out
    assert b"in another terminal" in out
    assert (ws / "out.txt").read_text() == "written once\n"


def test_a_second_host_on_the_same_store_is_refused(tmp_path: Path, ws: Path) -> None:
    proc, store, master = host_in_tty(tmp_path, ws, WRITE_TURNS, "--allow", "fs:*=read", "--ask", "fs:*=write")
    try:
        r = run_cli("resume", "--store", store, "--approve", "never")
        assert r.returncode == 1 and "another host" in r.stderr
    finally:
        proc.kill()
        proc.wait()
        os.close(master)


@pytest.mark.slow
def test_kill_9_at_random_points_loses_nothing_and_repeats_nothing(tmp_path: Path, ws: Path) -> None:
    import random

    rng = random.Random(7)
    n = 300
    turns = [
        {
            "content": f"t{i}",
            "tool_calls": [call("fs_write", path=f"f{i}.txt", content=f"{i}\n"), call("fs_read", path=f"f{i}.txt")],
        }
        for i in range(n)
    ]
    model = write_script(tmp_path / "turns.jsonl", turns)
    store = str(tmp_path / "st" / "store.db")
    first = [
        *ALOS,
        "run",
        "base",
        "goal",
        "--workspace",
        str(ws),
        "--store",
        store,
        "--model",
        model,
        "--allow",
        "fs:*=read,write",
        "--approve",
        "never",
    ]

    # 5 kills (each a host start, a ps and often approvals: about 2 s of CPU) over ~900 audit records;
    # the write-once check below holds at every one of them
    code, kills = crash_until_done(first, store, kill_after_syscalls(store, rng, kills=5, most=150))
    assert code == 0 and kills >= 3, kills
    for i in range(n):
        assert (ws / f"f{i}.txt").read_text() == f"{i}\n"
    audit = jsonl(run_cli("audit", "--json", "--store", store).stdout)
    for i in range(n):
        oks = [
            a
            for a in audit
            if a["syscall"] == "fs.write" and a["outcome"] == "ok" and a["resource"].endswith(f"/f{i}.txt")
        ]
        assert len(oks) == 1, (i, oks)
    assert run_cli("audit", "verify", "--store", store).returncode == 0


def test_names_that_look_like_markup_are_printed_as_they_are(tmp_path: Path, ws: Path) -> None:
    turns = [{"content": "[bold]hi[/]", "tool_calls": [call("fs_write", path="[/]x[red]", content="[/]")]}]
    store, r = start(tmp_path, ws, turns, "--ask", "fs:*=write")
    assert r.returncode == 3, r.stdout + r.stderr
    assert "[bold]hi[/]" in r.stdout and "[/]x[red]" in r.stdout
    for cmd in (["audit"], ["approvals"], ["ps"]):
        out = run_cli(*cmd, "--store", store)
        assert out.returncode == 0 and "Traceback" not in out.stderr, (cmd, out.stderr)
    assert "[/]x[red]" in run_cli("audit", "--store", store).stdout


def test_calls_to_tools_the_image_lacks_spend_the_tool_calls_budget(tmp_path: Path, ws: Path) -> None:
    turns = [
        {"content": "try", "tool_calls": [call("rm_rf", path="/"), call("sudo"), call("fs_read", path="README.md")]}
    ]
    store, r = start(tmp_path, ws, turns, "--allow", "fs:*=read", "--budget", "tool_calls=2")
    assert r.returncode == 0, r.stdout + r.stderr
    audit = jsonl(run_cli("audit", "--json", "--store", store).stdout)
    refused = [(a["resource"], a["outcome"]) for a in audit if a["syscall"] == "-"]
    assert refused == [("tool:rm_rf", "invalid"), ("tool:sudo", "invalid")]
    [read] = [a for a in audit if a["syscall"] == "fs.read"]
    assert read["outcome"] == "limit"  # the two refusals spent the budget: the third call is not made
