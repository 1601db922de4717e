"""A model's turn is recorded with the first thing its calls do (docs/durability.md): whatever
follows reads it as before, and a turn the store never took makes no effect."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import alos
from alos.kernel import Kernel, reads
from alos.providers.base import ModelRequest
from alos.providers.clock import SystemClock
from alos.providers.files import Files
from alos.providers.human import RecordedHuman
from alos.runtime import forbidden_paths
from alos.types import ModelTurn, ProcState, ToolCall
from tests.support import spawn


def test_a_last_turn_without_calls_is_the_processs_result(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, [{"content": "the answer is 42"}])
    asyncio.run(runtime.run())
    p = runtime.process(pid)
    assert (p.state, p.result) == (ProcState.EXITED, "the answer is 42")


def test_the_model_reads_its_own_turns_without_calls(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, [{"content": "first thought"}, {"content": "second thought"}])
    asyncio.run(runtime.run())
    counts = [r.detail["messages"] for r in runtime.audit(pid) if r.syscall == "model.call"]
    assert counts == ["<2 items>", "<3 items>", "<4 items>"]  # system and goal; then each earlier turn too
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
    (which the host's earlier commits left running in the store)."""

    def __init__(self, store: str) -> None:
        self.store = store
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
            return ModelTurn("tell them", (ToolCall("c1", "human_tell", {"text": "hello"}),))
        return ModelTurn("", exhausted=True)


def test_a_turn_dropped_because_another_terminal_moved_the_process_makes_no_effect(store: str, ws: Path) -> None:
    model = MovedDuringTheCall(store)
    human = RecordedHuman()
    db = reads.open_store(store, host=True)
    rt = alos.Runtime(Kernel(db, Files(forbidden_paths(store)), human, SystemClock(), lambda spec: model))
    try:
        pid = spawn(rt, ws)
        asyncio.run(rt.run())
        assert human.told == [(pid, "hello")]  # told once: the dropped turn's call was never made
        assert model.turns == [0, 1, 1, 2]  # the dropped turn 1 is asked for again
        refused = [r for r in rt.audit(pid) if r.syscall == "human.tell" and r.outcome != "ok"]
        assert [r.outcome for r in refused] == ["conflict"]
        assert "turn was not recorded" in refused[0].detail["error"]
        assert rt.process(pid).state is ProcState.EXITED
    finally:
        rt.close()
