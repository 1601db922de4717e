"""A malformed turn gets a repair turn; after limits.MODEL_REPAIRS in a row a person decides
whether the model tries again (docs/models.md)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import alos
from alos import limits
from alos.types import ProcState, RequestKind, Wait
from tests.support import call, spawn

BAD = {"content": "", "tool_calls": [call("fs_reed", path="README.md")]}


def tool_texts(rt: alos.Runtime, pid: int) -> list[str]:
    return [str(m["content"]) for m in rt.context(pid) if m["role"] in ("tool", "user")][1:]


def test_an_unknown_tool_and_bad_arguments_get_numbered_repair_turns(runtime: alos.Runtime, ws: Path) -> None:
    turns = [
        BAD,
        {"content": "", "tool_calls": [call("fs_read", pathh="README.md")]},
        {"content": "", "tool_calls": [call("fs_read", path="README.md")]},
        {"content": "", "tool_calls": [call("proc_exit", result="read")]},
    ]
    pid = spawn(runtime, ws, turns, allow=("fs:*=read",))
    asyncio.run(runtime.run())
    texts = tool_texts(runtime, pid)
    assert texts[0].startswith("[repair 1 of 3] invalid: no tool named 'fs_reed'") and "fs_read" in texts[0]
    assert texts[1].startswith("[repair 2 of 3]") and '"path"' in texts[1]  # the schema the arguments must match
    assert texts[2] == "hello\n" or "hello" in texts[2]  # a good call ends the run of repairs
    assert runtime.process(pid).result == "read"


def test_an_empty_reply_gets_a_repair_turn(runtime: alos.Runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, [{"content": ""}, {"content": "", "tool_calls": [call("proc_exit", result="ok")]}])
    asyncio.run(runtime.run())
    assert tool_texts(runtime, pid)[0].startswith("[repair 1 of 3] your reply was empty")
    assert runtime.process(pid).result == "ok"


def test_after_the_last_repair_a_person_lets_the_model_try_again_or_ends_it(runtime: alos.Runtime, ws: Path) -> None:
    turns = [BAD] * limits.MODEL_REPAIRS + [BAD, {"content": "", "tool_calls": [call("proc_exit", result="done")]}]
    pid = spawn(runtime, ws, turns, allow=("fs:*=read",))
    asyncio.run(runtime.run())
    p = runtime.process(pid)
    assert (p.state, p.wait, p.turns) == (ProcState.WAITING, Wait.HUMAN, limits.MODEL_REPAIRS)
    [req] = runtime.requests()
    assert req.kind is RequestKind.RECOVERY and req.syscall == "model.call"
    assert "malformed tool calls in a row" in req.detail["note"] and "fs_reed" in req.detail["note"]
    asyncio.run(runtime.answer(req.id, "once"))
    asyncio.run(runtime.run())
    texts = tool_texts(runtime, pid)
    assert texts[-1].startswith("[repair 1 of 3]")  # the person's yes gave it a fresh count
    assert runtime.process(pid).result == "done"


def test_a_denied_retry_ends_the_process_with_the_reason(runtime: alos.Runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, [BAD] * (limits.MODEL_REPAIRS + 1), allow=("fs:*=read",))
    asyncio.run(runtime.run())
    [req] = runtime.requests()
    asyncio.run(runtime.answer(req.id, "deny", "this model is hopeless"))
    asyncio.run(runtime.run())
    p = runtime.process(pid)
    assert p.state is ProcState.EXITED and p.exit is alos.Exit.FAILED
    assert "this model is hopeless" in (p.result or "")
