"""The process model from the command line: ps as a tree, kill/pause/resume/send, kill -9 of a tree."""

from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support import ALOS, audited, call, crash_until_done, jsonl, kill_after_syscalls, run_cli, write_script

KIDS = [{"pattern": "fs:*", "rights": ["write"]}, {"pattern": "model:script", "rights": ["execute"]}]


def spawn_call(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": "proc_spawn", "arguments": {"name": name, "goal": f"work as {name}", "grants": KIDS, **extra}}


def run(
    tmp_path: Path, ws: Path, turns: list[dict[str, Any]], *extra: str
) -> tuple[str, subprocess.CompletedProcess[str]]:
    model = write_script(tmp_path / "turns.jsonl", turns)
    store = str(tmp_path / "st" / "store.db")
    r = run_cli(
        "run", "base", "manage", "--workspace", str(ws), "--store", store, "--model", model,
        "--allow", "fs:*=read,write", "--allow", "proc:spawn=spawn", "--approve", "never", *extra,
    )  # fmt: skip
    return store, r


def test_ps_shows_the_tree_with_what_each_subtree_spent(tmp_path: Path, ws: Path) -> None:
    turns = [
        {"content": "two workers", "tool_calls": [spawn_call("w1"), spawn_call("w2", budget={"model_calls": 4})]},
        {"content": "wait", "tool_calls": [call("proc_wait"), call("proc_wait")]},
        {"proc": "w1", "content": "write", "tool_calls": [call("fs_write", path="a.txt", content="12345")]},
        {"proc": "w2", "content": "write", "tool_calls": [call("fs_write", path="b.txt", content="123")]},
    ]
    store, r = run(tmp_path, ws, turns, "--budget", "model_calls=20")
    assert r.returncode == 0, r.stdout + r.stderr
    out = run_cli("ps", "--all", "--store", store)
    rows = [line for line in out.stdout.splitlines() if line.strip()]
    assert "SPENT" in rows[0] and "PRI" in rows[0]
    assert "main" in rows[1] and "bytes=8" in rows[1] and "kids=2" in rows[1] and "/20" in rows[1]
    assert "  w1" in rows[2] and "  w2" in rows[3] and "calls=2/4" in rows[3]
    procs = jsonl(run_cli("ps", "--all", "--json", "--store", store).stdout)
    assert [(p["pid"], p["parent"]) for p in procs] == [(1, None), (2, 1), (3, 1)]
    assert procs[0]["budget"]["bytes_written"] == {"limit": None, "spent": 8}
    assert procs[0]["budget"]["model_calls"]["limit"] == 20


def test_a_person_sends_a_message_to_a_waiting_agent_then_resumes(tmp_path: Path, ws: Path) -> None:
    turns = [
        {"content": "what now?", "tool_calls": [call("msg_recv")]},
        {"content": "ok", "tool_calls": [call("proc_exit", result="got it")]},
    ]
    store, r = run(tmp_path, ws, turns)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "waits for a message" in r.stdout and "alos send 1" in r.stdout
    sent = run_cli("send", "1", "build the docs", "--store", store)
    assert sent.returncode == 0 and "queued" in sent.stdout, sent.stderr
    r = run_cli("resume", "--store", store, "--approve", "never")
    assert r.returncode == 0, r.stdout + r.stderr
    (p,) = jsonl(run_cli("ps", "--all", "--json", "--store", store).stdout)
    assert (p["state"], p["exit"], p["result"]) == ("exited", "ok", "got it")


def test_pause_resume_and_kill_from_the_command_line(tmp_path: Path, ws: Path) -> None:
    turns = [{"content": "wait", "tool_calls": [call("msg_recv")]}]
    store, r = run(tmp_path, ws, turns)
    assert r.returncode == 3
    assert run_cli("pause", "1", "--store", store).returncode == 0
    assert jsonl(run_cli("ps", "--all", "--json", "--store", store).stdout)[0]["state"] == "paused"
    r = run_cli("resume", "--store", store, "--approve", "never")
    assert r.returncode == 3 and "alos resume 1" in r.stdout, r.stdout
    out = run_cli("resume", "1", "--store", store)
    assert out.returncode == 0 and "runnable" in out.stdout, out.stderr
    out = run_cli("kill", "1", "--store", store)
    assert out.returncode == 0 and "exited" in out.stdout
    (p,) = jsonl(run_cli("ps", "--all", "--json", "--store", store).stdout)
    assert (p["exit"], p["result"]) == ("killed", "killed by the host")
    again = run_cli("kill", "1", "--store", store)
    assert again.returncode == 1 and "already exited" in again.stderr
    audit = jsonl(run_cli("audit", "--json", "--store", store).stdout)
    assert [a["detail"]["signal"] for a in audit if a["syscall"] == "proc.signal" and a["outcome"] == "ok"] == [
        "pause",
        "resume",
        "kill",
    ]


@pytest.mark.parametrize("args", [["kill", "0"], ["pause", "-3"], ["resume", "x"], ["send", "abc", "hi"]])
def test_bad_pids_are_usage_errors(tmp_path: Path, args: list[str]) -> None:
    r = run_cli(*args, "--store", str(tmp_path / "s.db"))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr


def test_an_unknown_pid_is_named(tmp_path: Path, ws: Path) -> None:
    store, _ = run(tmp_path, ws, [])
    r = run_cli("kill", "99", "--store", store)
    assert r.returncode == 1 and "no process 99" in r.stderr


@pytest.mark.slow
def test_kill_9_of_a_process_tree_at_random_points_loses_and_repeats_nothing(tmp_path: Path, ws: Path) -> None:
    rng = random.Random(11)
    workers, files = 3, 100
    turns: list[dict[str, Any]] = [
        {"content": "start", "tool_calls": [spawn_call(f"w{i}") for i in range(workers)]},
        *({"content": "wait", "tool_calls": [call("proc_wait")]} for _ in range(workers)),
        {"content": "done", "tool_calls": [call("proc_exit", result="all done")]},
    ]
    for i in range(workers):
        turns += [
            {"proc": f"w{i}", "content": f"{j}", "tool_calls": [call("fs_write", path=f"w{i}-{j}.txt", content=f"{j}")]}
            for j in range(files)
        ]
    model = write_script(tmp_path / "turns.jsonl", turns)
    store = str(tmp_path / "st" / "store.db")
    first = [
        *ALOS, "run", "base", "manage", "--workspace", str(ws), "--store", store, "--model", model,
        "--allow", "fs:*=read,write", "--allow", "proc:spawn=spawn", "--approve", "never",
    ]  # fmt: skip
    # 6 kills (each a host start, a ps and often approvals: about 2 s of CPU) over ~620 audit records;
    # the tree tests of test_bb_crashes.py kill spawns, waits and writes at 20 more points
    code, kills = crash_until_done(first, store, kill_after_syscalls(store, rng, kills=6, most=80))
    assert code == 0 and kills >= 3, (code, kills)
    procs = jsonl(run_cli("ps", "--all", "--json", "--store", store).stdout)
    assert sorted(p["name"] for p in procs) == ["main", "w0", "w1", "w2"]  # no spawn made twice
    assert all(p["exit"] == "ok" for p in procs), procs
    assert procs[0]["result"] == "all done"
    audit = jsonl(run_cli("audit", "--json", "--store", store).stdout)
    writes = [a["resource"] for a in audit if a["syscall"] == "fs.write" and a["outcome"] == "ok"]
    assert len(writes) == len(set(writes)) == workers * files
    for i in range(workers):
        for j in range(files):
            assert (ws / f"w{i}-{j}.txt").read_text() == f"{j}"
    assert run_cli("audit", "verify", "--store", store).returncode == 0


def test_run_does_not_report_success_while_an_orphan_waits_on_a_human(tmp_path: Path, ws: Path) -> None:
    grants = [{"pattern": "human:console", "rights": ["ask"]}, {"pattern": "model:script", "rights": ["execute"]}]
    turns = [
        {
            "content": "hand off",
            "tool_calls": [{"name": "proc_spawn", "arguments": {"name": "q", "goal": "ask", "grants": grants}}],
        },
        {"content": "bye", "tool_calls": [call("proc_exit", result="left early")]},
        {"proc": "q", "content": "?", "tool_calls": [call("human_ask", question="which colour?")]},
    ]
    store, r = run(tmp_path, ws, turns)
    assert r.returncode == 3, r.stdout + r.stderr
    procs = jsonl(run_cli("ps", "--all", "--json", "--store", store).stdout)
    assert [(p["name"], p["parent"], p["state"]) for p in procs] == [
        ("main", None, "exited"),
        ("q", None, "waiting"),
    ]
    (req,) = jsonl(run_cli("approvals", "--json", "--store", store).stdout)
    assert run_cli("answer", str(req["id"]), "blue", "--store", store).returncode == 0
    assert run_cli("resume", "--store", store, "--approve", "never").returncode == 0


def start_host(tmp_path: Path, ws: Path, turns: list[dict[str, Any]]) -> tuple[str, subprocess.Popen[str]]:
    model = write_script(tmp_path / "turns.jsonl", turns)
    store = str(tmp_path / "st" / "store.db")
    cmd = [
        *ALOS,
        "run",
        "base",
        "busy",
        "--workspace",
        str(ws),
        "--store",
        store,
        "--model",
        model,
        "--approve",
        "never",
    ]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    while audited(store) < 20:
        assert p.poll() is None, p.communicate()
        time.sleep(0.01)
    return store, p


def test_a_kill_from_another_terminal_stops_a_running_agent(tmp_path: Path, ws: Path) -> None:
    store, host = start_host(
        tmp_path, ws, [{"content": f"{i}", "tool_calls": [call("clock_now")]} for i in range(20_000)]
    )
    r = run_cli("kill", "1", "--store", store)
    assert r.returncode == 0, r.stderr
    out, err = host.communicate(timeout=30)
    assert host.returncode == 1, out + err
    (p,) = jsonl(run_cli("ps", "--all", "--json", "--store", store).stdout)
    assert (p["state"], p["exit"], p["result"]) == ("exited", "killed", "killed by the host")
    assert p["turns"] < 20_000
    assert run_cli("audit", "verify", "--store", store).returncode == 0


def test_a_pause_from_another_terminal_holds_a_running_agent_until_resumed(tmp_path: Path, ws: Path) -> None:
    naps = [{"content": f"{i}", "tool_calls": [call("clock_sleep", seconds=0.01)]} for i in range(400)]
    store, host = start_host(tmp_path, ws, naps)  # 4 s of real time: the pause lands even on a busy machine
    assert run_cli("pause", "1", "--store", store).returncode == 0
    out, err = host.communicate(timeout=30)
    assert host.returncode == 3 and "alos resume 1" in out, out + err
    (p,) = jsonl(run_cli("ps", "--all", "--json", "--store", store).stdout)
    assert p["state"] == "paused" and p["turns"] < 400
    assert run_cli("resume", "1", "--store", store).returncode == 0
    r = run_cli("resume", "--store", store, "--approve", "never")
    assert r.returncode == 0, r.stdout + r.stderr
    (p,) = jsonl(run_cli("ps", "--all", "--json", "--store", store).stdout)
    assert (p["exit"], p["turns"]) == ("ok", 400)
