"""A model's turn is recorded with the first thing its calls do (docs/durability.md): whatever
follows reads it as before, and a turn the store never took makes no effect."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import alos
from alos.providers.base import ModelRequest, Providers
from alos.providers.human import RecordedHuman
from alos.types import ModelTurn, ProcState, ToolCall
from tests.support import call, spawn


def test_a_last_turn_without_calls_is_the_processs_result(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, [{"content": "the answer is 42"}])
    asyncio.run(runtime.run())
    p = runtime.process(pid)
    assert (p.state, p.result) == (ProcState.EXITED, "the answer is 42")


def test_the_model_reads_its_own_turns_without_calls(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, [{"content": "first thought"}, {"content": "second thought"}])
    asyncio.run(runtime.run())
    counts = [r.detail["messages"] for r in runtime.audit(pid) if r.syscall == "model.call"]
    assert counts == [2, 3, 4]  # system and goal; then each earlier turn too
    assert [m["content"] for m in runtime.context(pid) if m["role"] == "assistant"] == [
        "first thought",
        "second thought",
    ]


def test_a_fork_inherits_the_turn_before_the_one_that_forked(runtime, ws: Path) -> None:
    turns: list[dict[str, Any]] = [
        {"content": "plan: fork a worker"},
        {
            "content": "forking",
            "tool_calls": [{"name": "proc_fork", "arguments": {"mode": "copy", "name": "w", "goal": "help"}}],
        },
    ]
    pid = spawn(runtime, ws, turns, allow=("proc:spawn=spawn",))
    asyncio.run(runtime.run())
    [child] = [p for p in runtime.processes() if p.creator == pid]
    said = [m["content"] for m in runtime.context(child.pid) if m["role"] == "assistant"]
    assert said[0] == "plan: fork a worker"


class MovedDuringTheCall:
    """A model that, during its second call, has another terminal pause and resume its process
    (which the host's earlier commits left running in the store); its second turn makes ``then``."""

    remote = False

    async def aclose(self) -> None:
        """Nothing to release."""

    def __init__(self, store: str, then: ToolCall) -> None:
        self.store = store
        self.then = then
        self.turns: list[int] = []

    async def complete(self, request: ModelRequest) -> ModelTurn:
        self.turns.append(request.turn)
        if self.turns == [0, 1]:
            other = alos.open(self.store)
            try:
                await other.signal(1, "pause")
                await other.signal(1, "resume")
            finally:
                other.close()
        if request.turn == 0:
            return ModelTurn("what time is it", (ToolCall("c0", "clock_now", {}),))
        if request.turn == 1:
            return ModelTurn("now", (self.then,))
        return ModelTurn("", exhausted=True)


def _host(store: str, model: MovedDuringTheCall, human: RecordedHuman) -> alos.Runtime:
    return alos.open(store, host=True, providers=Providers(human=human, models=lambda spec: model))


@pytest.mark.parametrize(
    ("then", "grants"),
    [
        (ToolCall("c1", "human_tell", {"text": "hello"}), {}),  # an outside effect: its intent
        (ToolCall("c1", "proc_spawn", {"name": "kid", "goal": "g"}), {"allow": ("proc:spawn=spawn",)}),  # a change
        (ToolCall("c1", "fs_write", {"path": "a.txt", "content": "x"}), {"ask": ("fs:*=write",)}),  # a request
    ],
    ids=["outside", "change", "request"],
)
def test_a_turn_dropped_because_another_terminal_moved_the_process_makes_nothing(
    store: str, ws: Path, then: ToolCall, grants: dict[str, tuple[str, ...]]
) -> None:
    model = MovedDuringTheCall(store, then)
    human = RecordedHuman()
    rt = _host(store, model, human)
    try:
        pid = spawn(rt, ws, **grants)
        asyncio.run(rt.run())
        assert model.turns[:3] == [0, 1, 1]  # the dropped turn 1 is asked for again
        refused = [r for r in rt.audit(pid) if r.syscall == then.name.replace("_", ".") and r.outcome == "conflict"]
        assert len(refused) == 1 and "turn was not recorded" in refused[0].detail["error"]
        # what the turn makes is made once, by the turn asked for again
        assert human.told == ([(pid, "hello")] if then.name == "human_tell" else [])
        assert [p.name for p in rt.processes()].count("kid") == (1 if then.name == "proc_spawn" else 0)
        assert len(rt.requests(None)) == (1 if then.name == "fs_write" else 0)
    finally:
        rt.close()


def test_the_context_holds_each_turn_with_its_calls_and_results(runtime, ws: Path) -> None:
    pid = spawn(
        runtime, ws, [{"content": "look", "tool_calls": [call("fs_read", path="README.md")]}], allow=("fs:*=read",)
    )
    asyncio.run(runtime.run())
    said = [m for m in runtime.context(pid) if m["role"] in ("assistant", "tool")][:2]
    assert said[0]["tool_calls"] == [{"id": "call_0_0", "name": "fs_read", "arguments": {"path": "README.md"}}]
    assert (said[1]["tool_call_id"], said[1]["content"]) == ("call_0_0", "hello\n")


def test_an_exec_drops_the_rest_of_its_turn_undispatched(runtime, ws: Path) -> None:
    turn = {
        "content": "become a reader",
        "tool_calls": [call("proc_exec", image="reader", goal="read"), call("fs_write", path="a.txt", content="x")],
    }
    pid = spawn(runtime, ws, [turn], allow=("image:reader=execute", "fs:*=write"))
    asyncio.run(runtime.run())
    assert [r.syscall for r in runtime.audit(pid) if r.syscall not in ("model.call", "proc.exit")] == ["proc.exec"]
    assert not (ws / "a.txt").exists()
