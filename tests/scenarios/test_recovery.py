"""An outside effect whose intent was journaled but whose outcome was not is never silently retried.

The state a host leaves when it dies between intent and outcome is made here for real: the
host's file provider stops the host (a BaseException, as SIGKILL would) while the write runs,
after dispatch() committed its intent; the store is then reopened by a new host.
"""

import asyncio
from pathlib import Path

import pytest

import alos
from tests.support import call, spawn


class HostDies(BaseException):
    """The host stops in the middle of an effect."""


def die_in_writes(rt: alos.Runtime) -> None:
    def write(*args: object, **kw: object) -> None:
        raise HostDies

    rt.kernel.files.write = write  # type: ignore[method-assign]


def run_until_the_host_dies(rt: alos.Runtime) -> None:
    with pytest.raises(BaseExceptionGroup) as stopped:  # out of the scheduler's task group
        asyncio.run(rt.run())
    assert stopped.value.subgroup(HostDies) is not None


def reopened_after_dying_in_a_write(rt: alos.Runtime, store: str) -> alos.Runtime:
    """Stop ``rt`` inside its next write (its intent committed); return a new host on ``store``
    that recovered and ran what it could."""
    die_in_writes(rt)
    run_until_the_host_dies(rt)
    rt.close()
    rt = alos.open(store, host=True)
    rt.recover()
    asyncio.run(rt.run())
    return rt


def crashed_mid_write(store: str, ws: Path) -> int:
    rt = alos.open(store, host=True)
    pid = spawn(rt, ws, [{"tool_calls": [call("fs_write", path="out.txt", content="x")]}], allow=("fs:*=write",))
    die_in_writes(rt)
    run_until_the_host_dies(rt)
    rt.close()  # the host is gone: intent journaled, effect unknown
    return pid


@pytest.mark.parametrize(("verdict", "written"), [("once", True), ("deny", False)])
def test_a_lost_outcome_becomes_a_recovery_request(store: str, ws: Path, verdict: str, written: bool) -> None:
    pid = crashed_mid_write(store, ws)
    rt = alos.open(store, host=True)
    try:
        rt.recover()
        asyncio.run(rt.run())
        assert not (ws / "out.txt").exists()
        [req] = rt.requests()
        assert req.kind.value == "recovery" and "may or may not have happened" in req.detail["note"]
        asyncio.run(rt.answer(req.id, verdict, "checked by hand" if verdict == "deny" else None, by="ops"))
        asyncio.run(rt.run())
        assert (ws / "out.txt").exists() is written
        assert rt.process(pid).state.value == "exited"
        if verdict == "deny":
            refused = [r for r in rt.audit() if r.syscall == "fs.write" and r.outcome == "conflict"]
            assert "chose not to retry" in refused[-1].detail["error"]
        assert rt.verify().ok
    finally:
        rt.close()


def test_an_approved_retry_is_used_once_even_if_the_host_dies_again(store: str, ws: Path) -> None:
    pid = crashed_mid_write(store, ws)
    rt = alos.open(store, host=True)
    rt.recover()
    asyncio.run(rt.run())
    [req] = rt.requests()
    asyncio.run(rt.answer(req.id, "once"))
    rt = reopened_after_dying_in_a_write(rt, store)  # the host dies again during the approved retry
    try:
        assert not (ws / "out.txt").exists()
        [again] = rt.requests()
        assert again.kind.value == "recovery" and again.id != req.id
    finally:
        rt.close()


def test_a_deny_added_after_the_crash_stops_an_approved_retry(store: str, ws: Path) -> None:
    pid = crashed_mid_write(store, ws)
    rt = alos.open(store, host=True)
    try:
        rt.recover()
        asyncio.run(rt.run())
        [req] = rt.requests()
        asyncio.run(
            rt.dispatch(0, "cap.grant", {"pid": pid, "pattern": "fs:out.txt", "rights": ["write"], "effect": "deny"})
        )
        asyncio.run(rt.answer(req.id, "once"))
        asyncio.run(rt.run())
        assert not (ws / "out.txt").exists()
        assert any(r.syscall == "fs.write" and r.decision == "deny" for r in rt.audit())
    finally:
        rt.close()


def test_a_model_that_cannot_be_opened_parks_its_process_until_a_person_decides(store: str, ws: Path) -> None:
    """A script moved since the process started: a recovery request (with its audit record, in one
    transaction), a retry once approved, and a failed exit with the reason once denied."""
    rt = alos.open(store, host=True)
    pid = spawn(rt, ws, [{"content": "hello"}])
    script = rt.process(pid).model.partition(":")[2]
    rt.close()
    Path(script).rename(script + ".moved")
    for attempt, verdict in enumerate(("once", "deny")):
        rt = alos.open(store, host=True)  # a new host: nothing cached
        try:
            asyncio.run(rt.run())
            proc = rt.process(pid)
            assert (proc.state.value, proc.wait) == ("waiting", alos.Wait.HUMAN), proc
            [req] = rt.requests()
            assert (req.kind.value, req.syscall, req.detail["model"]) == ("recovery", "model.call", f"script:{script}")
            assert "cannot be opened" in req.detail["note"]
            last = list(rt.audit())[-1]
            assert (last.syscall, last.outcome, last.detail["request"]) == ("model.call", "parked", req.id)
            asyncio.run(rt.answer(req.id, verdict, "moved for good" if verdict == "deny" else None, by="ops"))
            asyncio.run(rt.run())
            if attempt == 0:  # approved, still missing: asked again, nothing lost
                assert [r.id for r in rt.requests()] == [req.id + 1]
        finally:
            rt.close()
    rt = alos.open(store)
    proc = rt.process(pid)
    rt.close()
    assert proc.exit is alos.Exit.FAILED and "ops chose not to try again: moved for good" in (proc.result or "")


def test_host_calls_through_the_python_api_are_durable_before_they_return(store: str) -> None:
    import sqlite3

    rt = alos.open(store, host=True)
    for call_ in (lambda: rt.signal(99, "kill"), lambda: rt.answer(999, "once"), lambda: rt.send(98, "hi")):
        with pytest.raises(alos.NotFound):
            asyncio.run(call_())
    conn = sqlite3.connect(store)  # another connection: what a kill -9 now would leave
    rows = conn.execute("SELECT syscall, outcome FROM audit ORDER BY seq").fetchall()
    conn.close()
    rt.close()
    assert rows == [("proc.signal", "not_found"), ("human.answer", "not_found"), ("msg.send", "not_found")]


def test_an_approved_retry_of_a_write_that_asked_is_not_asked_again(store: str, ws: Path) -> None:
    rt = alos.open(store, host=True)
    pid = spawn(rt, ws, [{"tool_calls": [call("fs_write", path="out.txt", content="x")]}], ask=("fs:*=write",))
    asyncio.run(rt.run())
    [asked] = rt.requests()
    asyncio.run(rt.answer(asked.id, "once"))
    rt = reopened_after_dying_in_a_write(rt, store)
    try:
        [recovery] = rt.requests()
        assert recovery.kind.value == "recovery"
        asyncio.run(rt.answer(recovery.id, "once"))  # the person's retry stands in for the ask
        asyncio.run(rt.run())
        assert (ws / "out.txt").read_text() == "x"
        assert rt.requests() == [] and rt.process(pid).state.value == "exited"
    finally:
        rt.close()
