"""shell.run end to end: the coder runs the tests, decisions on what would really run, limits,
process groups killed on timeout, exit, kill and crash, and isolation."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

import alos
from alos.errors import Denied, Unavailable
from alos.providers.base import Providers
from alos.providers.shell import HostShell
from alos.rights import Effect, parse_grant
from tests.scenarios.bb_support import ALOS, json_lines, wait_until
from tests.scenarios.bb_support import alos as run_alos
from tests.support import audited

BWRAP = shutil.which("bwrap") is not None


def _marked(token: str) -> list[int]:
    """Return the pids of processes whose command line holds ``token``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if token.encode() in f.read():
                    found.append(int(name))
        except OSError:
            continue
    return found


def _open(tmp_path: Path, **kw: Any) -> alos.Runtime:
    return alos.open(str(tmp_path / "store" / "store.db"), host=True, **kw)


async def _spawn(rt: alos.Runtime, ws: Path, *allow: str, deny: tuple[str, ...] = ()) -> int:
    script = ws.parent / "empty.jsonl"
    script.write_text("")
    grants = [parse_grant(a, Effect.ALLOW, str(ws)) for a in allow]
    grants += [parse_grant(d, Effect.DENY, str(ws)) for d in deny]
    return await rt.spawn("base", "test", workspace=str(ws), model=f"script:{script}", grants=grants)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


# -- the coder runs the tests -----------------------------------------------------------------


def test_the_coder_runs_the_failing_test_fixes_the_code_and_sees_it_pass(tmp_path: Path) -> None:
    shop = tmp_path / "shop"
    shop.mkdir()
    (shop / "prices.py").write_text("def total(prices):\n    return sum(prices) - 1\n")
    (shop / "test_prices.py").write_text(
        "import unittest\n\nfrom prices import total\n\n\nclass T(unittest.TestCase):\n"
        "    def test_total(self):\n        self.assertEqual(total([2, 3]), 5)\n"
    )
    tests = {"name": "shell_run", "arguments": {"argv": ["python3", "-m", "unittest", "-q"]}}
    fixed = "def total(prices):\n    return sum(prices)\n"
    turns = [
        {"content": "run the tests", "tool_calls": [tests]},
        {"content": "read", "tool_calls": [{"name": "fs_read", "arguments": {"path": "prices.py"}}]},
        {"content": "fix", "tool_calls": [{"name": "fs_write", "arguments": {"path": "prices.py", "content": fixed}}]},
        {"content": "again", "tool_calls": [tests]},
        {"content": "done", "tool_calls": [{"name": "proc_exit", "arguments": {"result": "fixed total()"}}]},
    ]
    script = tmp_path / "fix.jsonl"
    script.write_text("".join(json.dumps(t) + "\n" for t in turns))
    store = str(tmp_path / "st" / "store.db")
    r = run_alos(
        "run", "coder", "make the failing test pass", "--workspace", str(shop), "--model", f"script:{script}",
        "--store", store, "--allow", "fs:*=read,list,write", "--allow", "shell:python3 -m unittest *=execute",
        "--approve", "never", "--json", timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert (shop / "prices.py").read_text() == fixed
    done = [
        e["detail"] for e in json_lines(r.stdout) if e["kind"] == "result" and e["detail"].get("name") == "shell_run"
    ]
    codes = [json.loads(d["text"])["exit_code"] for d in done]
    assert codes == [1, 0], done
    assert "FAILED" in json.loads(done[0]["text"])["stderr"]
    audit = json_lines(run_alos("audit", "--json", "--store", store).stdout)
    assert [a["outcome"] for a in audit if a["syscall"] == "shell.run"] == ["ok", "ok"]


# -- decided on what would really run -----------------------------------------------------------


def test_a_repository_alias_makes_git_a_form_a_plain_grant_does_not_cover(tmp_path: Path, ws: Path) -> None:
    subprocess.run(["git", "init", "-q", str(ws)], check=True)
    with open(ws / ".git" / "config", "a") as f:
        f.write('[alias]\n\tst = "!touch pwned"\n[core]\n\tfsmonitor = ./watch.sh\n')

    async def go() -> None:
        rt = _open(tmp_path)
        try:
            pid = await _spawn(rt, ws, "shell:git status=execute", "shell:git=execute")
            for argv in (["git", "status"], ["git", "st"]):
                with pytest.raises(Denied) as err:
                    await rt.dispatch(pid, "shell.run", {"argv": argv})
                assert "-c alias.st=sha256:" in str(err.value)  # values by digest: a refusal shows no config
                assert "core.fsmonitor=sha256:" in str(err.value) and "watch.sh" not in str(err.value)
        finally:
            rt.close()

    asyncio.run(go())
    assert not (ws / "pwned").exists()


def test_a_wrapper_needs_the_command_it_runs_too(tmp_path: Path, ws: Path) -> None:
    (ws / "keep").write_text("x")

    async def go() -> None:
        rt = _open(tmp_path)
        try:
            pid = await _spawn(rt, ws, "shell:env X=1 rm *=execute", "shell:env=execute")
            with pytest.raises(Denied) as err:
                await rt.dispatch(pid, "shell.run", {"argv": ["env", "X=1", "rm", "keep"]})
            assert "rm keep" in str(err.value)
            with pytest.raises(Denied):
                await rt.dispatch(pid, "shell.run", {"argv": ["/usr/bin/env", "rm", "keep"]})
        finally:
            rt.close()

    asyncio.run(go())
    assert (ws / "keep").exists()


# -- limits and process groups -------------------------------------------------------------------


def test_a_timeout_kills_the_whole_group_and_says_so(tmp_path: Path, ws: Path) -> None:
    token = f"1000.{os.getpid()}1"

    async def go() -> dict[str, Any]:
        rt = _open(tmp_path)
        try:
            pid = await _spawn(rt, ws, "shell:sh -c *=execute")
            script = f"trap '' TERM; sleep {token} & sleep {token}"
            result: dict[str, Any] = await rt.dispatch(pid, "shell.run", {"argv": ["sh", "-c", script], "timeout": 1})
            return result
        finally:
            rt.close()

    started = time.monotonic()
    result = asyncio.run(go())
    assert time.monotonic() - started < 10
    assert result["limit"] == "wall" and result["signal"] == "SIGKILL" and result["exit_code"] is None
    wait_until(lambda: not _marked(token), 5, "the command's processes to be gone")


def test_a_child_that_daemonised_is_killed_when_the_command_ends(tmp_path: Path, ws: Path) -> None:
    token = f"1000.{os.getpid()}2"

    async def go() -> dict[str, Any]:
        rt = _open(tmp_path)
        try:
            pid = await _spawn(rt, ws, "shell:sh -c *=execute")
            script = f"setsid sleep {token} > /dev/null 2>&1 < /dev/null & echo started"
            result: dict[str, Any] = await rt.dispatch(pid, "shell.run", {"argv": ["sh", "-c", script]})
            return result
        finally:
            rt.close()

    result = asyncio.run(go())
    assert result["exit_code"] == 0 and result["stdout"] == "started\n"
    wait_until(lambda: not _marked(token), 5, "the daemonised sleep to be gone")


def test_output_is_cut_with_its_full_size_and_secrets_stay_behind(
    tmp_path: Path, ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-very-secret")

    async def go() -> tuple[dict[str, Any], dict[str, Any]]:
        rt = _open(tmp_path)
        try:
            pid = await _spawn(rt, ws, "shell:python3 -c *=execute", "shell:env=execute")
            big = await rt.dispatch(
                pid, "shell.run", {"argv": ["python3", "-c", "import sys; sys.stdout.write('x' * 300000)"]}
            )
            env = await rt.dispatch(pid, "shell.run", {"argv": ["env"]})
            return big, env
        finally:
            rt.close()

    big, env = asyncio.run(go())
    assert big["stdout_bytes"] == 300000 and big["truncated"]
    head, gap, tail = big["stdout"].partition("\n[... 295904 bytes not kept ...]\n")
    assert gap and len(head) == 1024 and len(tail) == 3072, big["stdout"][1000:1100]
    assert "very-secret" not in env["stdout"] and "ALOS_PID=1" in env["stdout"]


def test_the_host_killing_the_process_kills_its_command_at_once(tmp_path: Path, ws: Path) -> None:
    token = f"1000.{os.getpid()}3"

    async def go() -> Any:
        rt = _open(tmp_path)
        try:
            pid = await _spawn(rt, ws, "shell:sleep=execute")
            running = asyncio.ensure_future(rt.dispatch(pid, "shell.run", {"argv": ["sleep", token]}))
            while not _marked(token):
                await asyncio.sleep(0.02)
            await rt.signal(pid, "kill")
            return await asyncio.wait_for(running, 10)
        finally:
            rt.close()

    result = asyncio.run(go())
    assert result["limit"] == "killed" and result["signal"] == "SIGKILL"
    assert not _marked(token)


def _host_sleeping(tmp_path: Path, token: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start `alos run coder` whose script runs `sleep TOKEN`; return the host and its store once
    the sleep runs."""
    ws = tmp_path / "ws"
    ws.mkdir()
    script = tmp_path / "s.jsonl"
    sleep = {"name": "shell_run", "arguments": {"argv": ["sleep", token]}}
    script.write_text(json.dumps({"content": "", "tool_calls": [sleep]}) + "\n")
    store = str(tmp_path / "st" / "store.db")
    host = subprocess.Popen(
        [ALOS, "run", "coder", "wait", "--workspace", str(ws), "--model", f"script:{script}", "--store", store,
         "--allow", "shell:sleep=execute", "--approve", "never"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until(lambda: bool(_marked(token)), 20, "the sleep to start")
    except BaseException:
        host.kill()
        host.wait()
        raise
    return host, store


def test_alos_kill_from_another_terminal_kills_the_running_command(tmp_path: Path) -> None:
    token = f"1000.{os.getpid()}4"
    host, store = _host_sleeping(tmp_path, token)
    try:
        assert run_alos("kill", "1", "--store", store).returncode == 0
        wait_until(lambda: not _marked(token), 5, "the sleep to be killed")
        assert host.wait(20) == 1
    finally:
        host.kill()
        host.wait()
    ps = json_lines(run_alos("ps", "--all", "--json", "--store", store).stdout)
    assert ps[0]["exit"] == "killed"


def test_a_host_killed_during_a_command_never_runs_it_again_silently(tmp_path: Path) -> None:
    token = f"1000.{os.getpid()}5"
    host, store = _host_sleeping(tmp_path, token)
    host.send_signal(signal.SIGKILL)
    host.wait(10)
    before = audited(store)
    # an isolated command dies with its host (bwrap --die-with-parent); any other is killed when
    # the next host of the store starts
    r = run_alos("resume", "--store", store, "--approve", "never", timeout=60)
    assert r.returncode == 3, r.stderr
    wait_until(lambda: not _marked(token), 5, "the sleep to be gone")
    requests = json_lines(run_alos("approvals", "--json", "--store", store).stdout)
    assert [q["kind"] for q in requests] == ["recovery"] and requests[0]["syscall"] == "shell.run"
    assert not _marked(token) and audited(store) >= before


# -- isolation -----------------------------------------------------------------------------------


def test_isolation_required_without_bubblewrap_refuses_to_run(tmp_path: Path, ws: Path) -> None:
    async def go() -> None:
        rt = _open(tmp_path, isolate="required", providers=Providers(shell=HostShell(bwrap="")))
        try:
            pid = await _spawn(rt, ws, "shell:touch=execute")
            with pytest.raises(Unavailable, match="isolation is required"):
                await rt.dispatch(pid, "shell.run", {"argv": ["touch", "made"]})
            records = [a for a in rt.audit(pid) if a.syscall == "shell.run"]
            assert records and records[-1].outcome != "ok"
        finally:
            rt.close()

    asyncio.run(go())
    assert not (ws / "made").exists()


@pytest.mark.skipif(not BWRAP, reason="bubblewrap is not installed ('make system-packages')")
def test_an_isolated_command_writes_only_where_the_process_may(tmp_path: Path, ws: Path) -> None:
    (ws / "out").mkdir()

    async def go() -> list[dict[str, Any]]:
        rt = _open(tmp_path, isolate="required")
        try:
            pid = await _spawn(rt, ws, "shell:touch=execute", "shell:ls=execute", "fs:out/*=write")
            return [
                await rt.dispatch(pid, "shell.run", {"argv": argv})
                for argv in (["touch", "top"], ["touch", "out/inside"], ["ls", "-A", "/tmp"],
                             ["ls", "-A", str(tmp_path / "store")])
            ]  # fmt: skip
        finally:
            rt.close()

    top, inside, tmp, store = asyncio.run(go())
    assert all(r["isolated"] for r in (top, inside, tmp, store))
    assert top["exit_code"] != 0 and "Read-only file system" in top["stderr"]
    assert inside["exit_code"] == 0 and (ws / "out" / "inside").exists()
    assert not (ws / "top").exists()
    # a private /tmp: only the command's own empty home and the mount points of the workspace (when
    # it lies under /tmp) are in it
    listed = [n for n in tmp["stdout"].split() if not n.startswith("alos-home-")]
    assert listed == ([ws.parts[2]] if ws.parts[1] == "tmp" else [])
    assert store["stdout"] == "", "the store's directory is hidden"


def test_the_approval_shows_argv_program_cwd_limits_and_isolation(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    script = tmp_path / "s.jsonl"
    argv = ["ls", "-la", "\x1b[2Jevil"]
    script.write_text(
        json.dumps({"content": "", "tool_calls": [{"name": "shell_run", "arguments": {"argv": argv}}]}) + "\n"
    )
    store = str(tmp_path / "st" / "store.db")
    r = run_alos(
        "run", "coder", "look", "--workspace", str(ws), "--model", f"script:{script}", "--store", store,
        "--ask", "shell:*=execute", "--approve", "never",
    )  # fmt: skip
    assert r.returncode == 3, r.stderr
    assert "\x1b" not in r.stdout + r.stderr
    [req] = json_lines(run_alos("approvals", "--json", "--store", store).stdout)
    shown = req["detail"]
    assert shown["program"] == shutil.which("ls") or shown["program"].endswith("/ls")
    assert shown["cwd"] == str(ws.resolve()) and "wall" in shown["limits"] and "isolation" in shown
    assert json.loads(shown["argv"]) == ["ls", "-la", "\u001b[2Jevil"] and "\x1b" not in json.dumps(shown)
    assert run_alos("approve", str(req["id"]), "--store", store).returncode == 0
    again = run_alos("resume", "--store", store, "--approve", "never", "--json", timeout=60)
    done = [e for e in json_lines(again.stdout) if e["kind"] == "result"]
    assert done and json.loads(done[0]["detail"]["text"])["exit_code"] == 2  # ls: no such file, ran once


def test_an_image_sets_variables_for_its_commands_but_never_one_that_runs_code(tmp_path: Path, ws: Path) -> None:
    image = tmp_path / "tester.yaml"
    image.write_text(
        "name: tester\ndescription: runs tests\ntools: [shell.run]\nenv:\n  TEST_MODE: fast\n  LANG: C.UTF-8\n"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ndescription: x\ntools: [shell.run]\nenv:\n  LD_PRELOAD: ./evil.so\n  PYTHONPATH: .\n")

    async def go() -> dict[str, Any]:
        rt = _open(tmp_path)
        try:
            with pytest.raises(alos.Invalid) as err:
                rt.image(str(bad))
            assert "env.LD_PRELOAD" in str(err.value) and "env.PYTHONPATH" in str(err.value)
            script = ws.parent / "empty.jsonl"
            script.write_text("")
            pid = await rt.spawn(
                rt.image(str(image)), "t", workspace=str(ws), model=f"script:{script}",
                grants=[parse_grant("shell:env=execute", Effect.ALLOW, str(ws))],
            )  # fmt: skip
            result: dict[str, Any] = await rt.dispatch(pid, "shell.run", {"argv": ["env"]})
            return result
        finally:
            rt.close()

    got = asyncio.run(go())
    assert "TEST_MODE=fast" in got["stdout"].splitlines()


def test_an_approved_script_that_changes_before_it_runs_is_asked_about_again(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "test.sh").write_text("echo approved\n")
    script = tmp_path / "s.jsonl"
    run_it = {"name": "shell_run", "arguments": {"argv": ["sh", "test.sh"]}}
    script.write_text(json.dumps({"content": "", "tool_calls": [run_it]}) + "\n")
    store = str(tmp_path / "st" / "store.db")
    first = run_alos(
        "run", "coder", "t", "--workspace", str(ws), "--model", f"script:{script}", "--store", store,
        "--ask", "shell:sh test.sh=execute", "--approve", "never",
    )  # fmt: skip
    assert first.returncode == 3, first.stderr
    [req] = json_lines(run_alos("approvals", "--json", "--store", store).stdout)
    assert run_alos("approve", str(req["id"]), "--store", store).returncode == 0
    (ws / "test.sh").write_text("echo something else\n")  # after the person looked
    again = run_alos("resume", "--store", store, "--approve", "never", timeout=60)
    assert again.returncode == 3, again.stderr
    [second] = json_lines(run_alos("approvals", "--json", "--store", store).stdout)
    assert second["id"] != req["id"] and second["detail"]["state"] != req["detail"]["state"]
