"""A host that stays (Runtime.serve): it runs what other connections start, answer or signal, at
once, sleeps while idle (it looks at the store only when woken), and leaves its processes
runnable when stopped."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import alos
from alos.errors import Invalid, Unavailable
from alos.types import Exit, ProcState
from tests.support import call, grants, write_script


async def until(check: Callable[[], bool], seconds: float = 10.0) -> float:
    """Wait (in the event loop, a little at a time) until ``check()``; return how long it took."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not within {seconds} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


def serving(store: str, body: Callable[[alos.Runtime, alos.Runtime], Awaitable[Any]]) -> Any:
    """Run ``body(host, other)`` while ``host`` serves; ``other`` is another connection (another
    terminal). The host is stopped (cancelled, then closed) afterwards."""
    host = alos.open(store, host=True)
    other = alos.open(store)

    async def go() -> Any:
        task = asyncio.ensure_future(host.serve())
        try:
            await asyncio.sleep(0.05)
            return await body(host, other)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    try:
        return asyncio.run(go())
    finally:
        host.close()
        other.close()


async def start(rt: alos.Runtime, ws: Path, turns: list[dict[str, Any]], **kw: tuple[str, ...]) -> int:
    model = write_script(ws.parent / f"script-{time.monotonic_ns()}.jsonl", turns)
    return await rt.spawn("base", "serve test", workspace=str(ws), model=model, grants=grants(ws, **kw))


def test_a_process_started_elsewhere_runs_at_once_and_an_idle_host_does_not_poll(store: str, ws: Path) -> None:
    async def body(host: alos.Runtime, other: alos.Runtime) -> tuple[int, float, int]:
        looks = 0
        seen = host.store.changed_elsewhere

        def counted() -> bool:
            nonlocal looks
            looks += 1
            return seen()

        host.store.changed_elsewhere = counted  # type: ignore[method-assign]
        await asyncio.sleep(0.6)
        idle_looks = looks
        pid = await start(other, ws, [{"content": "done", "tool_calls": [call("proc_exit", result="ran")]}])
        took = await until(lambda: other.process(pid).state is ProcState.EXITED)
        return idle_looks, took, pid

    idle_looks, took, pid = serving(store, body)
    assert idle_looks <= 1, f"an idle host looked at the store {idle_looks} times in 0.6 s: it polls"
    assert took < 3.0
    rt = alos.open(store)
    try:
        assert rt.process(pid).exit is Exit.OK and rt.process(pid).result == "ran"
    finally:
        rt.close()


def test_an_answer_from_another_connection_resumes_the_parked_process(store: str, ws: Path) -> None:
    turns = [{"content": "write", "tool_calls": [call("fs_write", path="out.txt", content="hi")]}]

    async def body(host: alos.Runtime, other: alos.Runtime) -> int:
        pid = await start(other, ws, turns, ask=("fs:*=write",))
        await until(lambda: bool(other.requests()))
        await other.answer(other.requests()[0].id, "once", by="test")
        await until(lambda: other.process(pid).state is ProcState.EXITED)
        return pid

    serving(store, body)
    assert (ws / "out.txt").read_text() == "hi"


def test_a_sleeping_process_is_woken_on_time_by_an_idle_host(store: str, ws: Path) -> None:
    turns = [
        {"content": "nap", "tool_calls": [call("clock_sleep", seconds=0.4)]},
        {"content": "up", "tool_calls": [call("proc_exit", result="woke")]},
    ]

    async def body(host: alos.Runtime, other: alos.Runtime) -> float:
        pid = await start(other, ws, turns, allow=("clock=read",))
        await until(lambda: other.process(pid).state is ProcState.WAITING)
        return await until(lambda: other.process(pid).state is ProcState.EXITED, 5)

    slept = serving(store, body)
    assert 0.2 < slept < 2.5


def test_a_pause_and_a_kill_from_another_connection_are_acted_on(store: str, ws: Path) -> None:
    turns = [{"content": "wait", "tool_calls": [call("msg_recv", block=True)]}] * 3

    async def body(host: alos.Runtime, other: alos.Runtime) -> int:
        pid = await start(other, ws, turns)
        await until(lambda: other.process(pid).state is ProcState.WAITING)
        await other.signal(pid, "pause", via="console")
        await until(lambda: other.process(pid).state is ProcState.PAUSED)
        await other.signal(pid, "kill")
        await until(lambda: other.process(pid).state is ProcState.EXITED)
        return pid

    pid = serving(store, body)
    rt = alos.open(store)
    try:
        assert rt.process(pid).exit is Exit.KILLED
        pause = [r for r in rt.audit() if r.syscall == "proc.signal" and r.detail.get("signal") == "pause"]
        assert pause[0].detail["via"] == "console"
        kill = [r for r in rt.audit() if r.syscall == "proc.signal" and r.detail.get("signal") == "kill"]
        assert "via" not in kill[0].detail  # only what a front end names is attributed to it
    finally:
        rt.close()


def test_a_stopped_host_leaves_its_processes_runnable_for_the_next(store: str, ws: Path) -> None:
    turns = [{"content": f"step {i}", "tool_calls": [call("clock_now")]} for i in range(400)]

    async def body(host: alos.Runtime, other: alos.Runtime) -> int:
        pid = await start(other, ws, turns, allow=("clock=read",))
        await until(lambda: other.process(pid).turns > 2)
        return pid

    pid = serving(store, body)  # cancelled mid-run, then closed
    rt = alos.open(store)
    try:
        assert rt.process(pid).state is ProcState.RUNNABLE
    finally:
        rt.close()


def test_only_the_host_serves(store: str) -> None:
    rt = alos.open(store)
    try:
        with pytest.raises(Unavailable, match="host=True"):
            asyncio.run(rt.serve())
    finally:
        rt.close()


def test_a_host_that_stays_answers_from_its_answers_file_as_requests_come(store: str, ws: Path) -> None:
    from alos.providers.answers import Answers

    rules = ws.parent / "answers.toml"
    rules.write_text('[[rule]]\nsyscall = "fs.write"\nresource = "fs:*"\nanswer = "once"\n')
    turns = [{"content": "write", "tool_calls": [call("fs_write", path="auto.txt", content="unattended")]}]
    host = alos.open(store, host=True, human=Answers.load(rules, str(ws)))
    other = alos.open(store)

    async def go() -> int:
        task = asyncio.ensure_future(host.serve())
        try:
            pid = await start(other, ws, turns, ask=("fs:*=write",))
            await until(lambda: other.process(pid).state is ProcState.EXITED)
            return pid
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    try:
        asyncio.run(go())
        answered = other.requests(None)
    finally:
        host.close()
        other.close()
    assert (ws / "auto.txt").read_text() == "unattended"
    assert [r.answered_by for r in answered] == ["answers:answers.toml"]


def test_the_demo_with_the_console_is_answered_in_the_console(tmp_path: Path) -> None:
    """'alos demo --console' (make console-demo): the person approves the write in the console;
    the story ends, the console stays until SIGTERM, and the demo's report follows."""
    import os
    import re
    import signal
    import subprocess
    import sys

    import httpx

    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "120"}
    demo = subprocess.Popen(
        [sys.executable, "-m", "alos.cli", "demo", "--workspace", str(tmp_path / "ws"), "--console", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            lines.append(line)
            if line.startswith("console: "):
                break
        # its output is a pipe, not a terminal: it says where the URL is kept, not the token
        kept = re.fullmatch(r"console: (http://127\.0\.0\.1:\d+/) \(the URL with its token is in (.+)\)\n", lines[-1])
        assert kept, "".join(lines)
        address, where = kept.group(1), Path(kept.group(2))
        assert where.stat().st_mode & 0o777 == 0o600
        url = where.read_text().removesuffix("\n")
        assert url.startswith(address + "?token="), url
        token = url.split("?token=", 1)[1]
        assert re.fullmatch(r"[A-Za-z0-9_\-]{20,}", token), url
        base = address.rstrip("/")
        headers = {"Origin": base, "HX-Request": "true"}
        with httpx.Client(base_url=f"{base}/{token}", headers=headers, timeout=30) as web:
            page = web.get(url, follow_redirects=True).text
            csrf = re.search(r'"X-CSRF-Token": "([^"]+)"', page)
            assert csrf
            deadline = time.monotonic() + 30
            while 'id="req-1"' not in web.get("/approvals").text:
                assert time.monotonic() < deadline, "the demo's agent never asked"
                time.sleep(0.1)
            done = web.post("/requests/1/answer", data={"verdict": "once", "csrf": csrf.group(1)})
            assert done.status_code == 200 and "approved once" in done.text
        for line in demo.stdout:
            lines.append(line)
            if line.startswith("The story is done"):
                break
        demo.send_signal(signal.SIGTERM)
        rest, _ = demo.communicate(timeout=30)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    out = "".join(lines) + rest
    assert demo.returncode == 0, out
    assert token not in out
    assert not where.exists(), "the URL file outlived the demo"
    assert "chain intact" in out and "SUMMARY.md" in out
    assert (tmp_path / "ws" / "SUMMARY.md").read_text().startswith("# Summary")


def test_only_the_host_says_which_front_end_made_a_call(store: str, ws: Path) -> None:
    """'via' is the host's word: a process's call cannot carry it, and an argument of that name
    that failed to decode is not taken for it."""
    rt = alos.open(store, host=True)
    try:
        pid = asyncio.run(start(rt, ws, []))
        with pytest.raises(ValueError, match="front end"):
            asyncio.run(rt.dispatch(pid, "clock.now", {}, via="console"))
        with pytest.raises(Invalid, match="path"):
            asyncio.run(rt.dispatch(pid, "fs.read", {"path": 5, "via": "console"}))
        forged = [r for r in rt.audit(pid) if r.syscall == "fs.read"]
        assert forged and "via" not in forged[-1].detail
    finally:
        rt.close()
