"""syscall.py: an outside effect that failed inside a pending action is journaled with its error,
and dispatched again (after a park or a host restart) it raises that same error from the journal
without running again, even when running again would now succeed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import alos
from alos.errors import AlosError, Conflict, Invalid, NotFound
from alos.kernel import Site
from alos.kernel import action as actions
from alos.syscall import dispatch
from alos.types import Exit, ModelTurn, ToolCall
from tests.support import call, spawn


def failed_in_an_action(rt: alos.Runtime, ws: Path, args: dict[str, Any]) -> tuple[int, Site, AlosError]:
    """Spawn a process whose first turn is one fs_write with ``args``, make that turn its pending
    action and dispatch the call at its site as the agent loop does; return (pid, site, the error)."""
    turns = [{"tool_calls": [call("fs_write", **args)]}, {"content": "the write failed; stopping"}]
    pid = spawn(rt, ws, turns, allow=("fs:*=write",))
    act = actions.start(rt.kernel, rt.process(pid), ModelTurn("", (ToolCall("call_0_0", "fs_write", args),)))
    site = Site(act.id, 0)
    with pytest.raises(AlosError) as info:
        asyncio.run(dispatch(rt.kernel, pid, "fs.write", args, site))
    rt.flush()  # the outcome is durable (another process's commit would write it just the same)
    return pid, site, info.value


def test_a_journaled_failure_is_raised_again_without_running_again(runtime: alos.Runtime, ws: Path) -> None:
    args = {"path": "new/out.txt", "content": "x"}
    pid, site, first = failed_in_an_action(runtime, ws, args)
    assert type(first) is NotFound and str(ws / "new" / "out.txt") in first.message

    (ws / "new").mkdir()  # running the write again would now succeed
    with pytest.raises(AlosError) as again:
        asyncio.run(dispatch(runtime.kernel, pid, "fs.write", args, site))
    assert type(again.value) is NotFound and again.value.message == first.message
    assert not (ws / "new" / "out.txt").exists()


def test_a_journaled_invalid_is_raised_again_as_invalid(runtime: alos.Runtime, ws: Path) -> None:
    args = {"path": "src", "content": "x"}  # a directory: a file cannot replace it
    pid, site, first = failed_in_an_action(runtime, ws, args)
    assert type(first) is Invalid
    (ws / "src" / "app.py").unlink()
    (ws / "src").rmdir()  # running the write again would now create the file
    with pytest.raises(Invalid) as again:
        asyncio.run(dispatch(runtime.kernel, pid, "fs.write", args, site))
    assert again.value.message == first.message
    assert not (ws / "src").exists()


def test_a_host_restarted_after_the_failure_gives_the_model_the_journaled_error(store: str, ws: Path) -> None:
    rt = alos.open(store, host=True)
    pid, _, first = failed_in_an_action(rt, ws, {"path": "new/out.txt", "content": "x"})
    rt.close()  # the host stops before the tool result is recorded
    (ws / "new").mkdir()

    rt = alos.open(store, host=True)
    try:
        rt.recover()
        asyncio.run(rt.run())
        [result] = [m["content"] for m in rt.context(pid) if m["role"] == "tool"]
        assert result == str(first) and result.startswith("not_found: ")
        assert not (ws / "new" / "out.txt").exists()
        writes = [r for r in rt.audit(pid) if r.syscall == "fs.write"]
        assert [r.outcome for r in writes] == ["not_found", "not_found"]  # the replay is audited too
        assert rt.process(pid).exit is Exit.OK
        assert rt.verify().ok
    finally:
        rt.close()


def test_a_redispatch_with_other_arguments_is_refused_as_not_deterministic(runtime: alos.Runtime, ws: Path) -> None:
    pid, site, _ = failed_in_an_action(runtime, ws, {"path": "new/out.txt", "content": "x"})
    (ws / "new").mkdir()
    with pytest.raises(Conflict, match="the journal has fs.write with other arguments; the tool is not deterministic"):
        asyncio.run(dispatch(runtime.kernel, pid, "fs.write", {"path": "new/out.txt", "content": "y"}, site))
    assert not (ws / "new" / "out.txt").exists()
