"""Full runs under the scheduler: fairness, priorities, timed waits, messages, signals, budgets."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import alos
from alos.providers.clock import ManualClock
from alos.types import Exit, ProcState, Wait
from tests.scenarios.test_processes import d, root
from tests.support import call


@pytest.fixture
def clocked(store: str):  # type: ignore[no-untyped-def]
    clock = ManualClock()
    rt = alos.open(store, host=True, clock=clock)
    yield rt, clock
    rt.close()


def now_turns(n: int, proc: str | None = None) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = [{"content": f"step {i}", "tool_calls": [call("clock_now")]} for i in range(n)]
    if proc:
        for t in turns:
            t["proc"] = proc
    return turns


def order(rt: alos.Runtime) -> list[int]:
    """Return the pids in the order their model turns were recorded."""
    seen: list[int] = []
    rt.listen(lambda ev: seen.append(ev.pid) if ev.kind == "turn" else None)
    asyncio.run(rt.run())
    return seen


def tool_texts(rt: alos.Runtime, pid: int) -> list[str]:
    return [str(m["content"]) for m in rt.context(pid) if m["role"] == "tool"]


def test_a_process_that_loops_does_not_starve_the_others(runtime, ws: Path) -> None:
    busy = root(runtime, ws, now_turns(200), name="busy")
    quiet = root(runtime, ws, now_turns(3, "quiet"), name="quiet")
    seen = order(runtime)
    done_at = max(i for i, pid in enumerate(seen) if pid == quiet)
    assert seen[:done_at].count(busy) <= 4, seen[: done_at + 1]
    assert runtime.process(quiet).exit is Exit.OK and runtime.process(busy).exit is Exit.OK


def test_priorities_share_quanta_in_proportion(runtime, ws: Path) -> None:
    high = root(runtime, ws, now_turns(60, "high"), name="high", priority=9)
    low = root(runtime, ws, now_turns(60, "low"), name="low", priority=3)
    runtime.scheduler.concurrency = 1  # contention: more ready than may run at once
    seen = order(runtime)[:40]
    ratio = seen.count(high) / max(1, seen.count(low))
    assert 2.0 <= ratio <= 4.0, (ratio, seen)


def test_a_child_never_gets_a_higher_priority_than_its_parent(runtime, ws: Path) -> None:
    pid = root(runtime, ws, allow=("proc:spawn=spawn",), priority=4)
    with pytest.raises(alos.Invalid, match="above process"):
        d(runtime, pid, "proc.spawn", name="k", goal="g", priority=5)
    kid = d(runtime, pid, "proc.spawn", name="k", goal="g")["pid"]
    assert runtime.process(kid).priority == 4


def test_sleep_parks_on_a_deadline_and_the_manual_clock_makes_it_deterministic(clocked, ws: Path) -> None:
    rt, clock = clocked
    start = clock.now()
    turns = [
        {"content": "nap", "tool_calls": [call("clock_sleep", seconds=3600)]},
        {"content": "time?", "tool_calls": [call("clock_now")]},
    ]
    pid = root(rt, ws, turns)
    rt.listen(lambda ev: None)
    asyncio.run(rt.run())
    assert rt.process(pid).exit is Exit.OK
    texts = tool_texts(rt, pid)
    assert '"slept":3600' in texts[0].replace(".0", "")
    assert clock.now() >= start + 3600
    waits = [e for e in rt.events() if e.kind == "state" and e.detail.get("wait") == "timer"]
    assert waits and waits[0].detail["wake"] == pytest.approx(start + 3600)


def test_wait_with_a_timeout_returns_when_it_passes(clocked, ws: Path) -> None:
    rt, _ = clocked
    turns = [
        {
            "content": "spawn",
            "tool_calls": [
                {
                    "name": "proc_spawn",
                    "arguments": {
                        "name": "slow",
                        "goal": "sleep",
                        "grants": [
                            {"pattern": "model:script", "rights": ["execute"]},
                            {"pattern": "clock", "rights": ["read"]},
                        ],
                    },
                }
            ],
        },
        {"content": "wait", "tool_calls": [call("proc_wait", timeout=5)]},
        {"content": "kill it", "tool_calls": [call("proc_signal", pid=2, signal="kill")]},
        {"proc": "slow", "content": "zzz", "tool_calls": [call("clock_sleep", seconds=100)]},
    ]
    pid = root(rt, ws, turns, allow=("proc:spawn=spawn",))
    asyncio.run(rt.run())
    texts = tool_texts(rt, pid)
    assert '"timeout":true' in texts[1]
    assert rt.process(2).exit is Exit.KILLED and rt.process(pid).exit is Exit.OK


def test_messages_are_selective_and_a_blocked_receiver_wakes(runtime, ws: Path) -> None:
    pid = root(runtime, ws, allow=("proc:spawn=spawn",))
    kid = d(runtime, pid, "proc.spawn", name="k", goal="g")["pid"]
    with pytest.raises(alos.Denied, match=f"lacks send on proc:{pid}"):
        d(runtime, kid, "msg.send", pid=pid, body="hi")
    assert d(runtime, kid, "msg.recv", block=False) == {"message": None}
    assert isinstance(d(runtime, kid, "msg.recv", kind="job"), alos.Parked)
    assert runtime.process(kid).wait is Wait.MESSAGE
    d(runtime, pid, "msg.send", pid=kid, body="note", kind="note", corr="a")
    assert runtime.process(kid).state is ProcState.RUNNABLE  # woken; the job is not there yet
    d(runtime, pid, "msg.send", pid=kid, body="do it", kind="job", corr="7")
    got = d(runtime, kid, "msg.recv", kind="job")["message"]
    assert (got["body"], got["from"], got["corr"]) == ("do it", pid, "7")
    assert d(runtime, kid, "msg.recv", corr="a")["message"]["body"] == "note"
    with pytest.raises(alos.Denied, match="sent by the runtime"):
        d(runtime, pid, "msg.send", pid=kid, body="x", kind="interrupt")


def test_a_persons_message_reaches_the_model_before_its_next_call(runtime, ws: Path) -> None:
    turns = [
        {"content": "wait for word", "tool_calls": [call("msg_recv")]},
        {"content": "thanks"},
    ]
    pid = root(runtime, ws, turns)
    asyncio.run(runtime.run())
    assert runtime.process(pid).wait is Wait.MESSAGE
    asyncio.run(runtime.send(pid, "go ahead"))
    asyncio.run(runtime.run())
    assert runtime.process(pid).exit is Exit.OK
    assert '"body":"go ahead"' in tool_texts(runtime, pid)[0]


def test_an_interrupt_ends_a_sleep_and_is_read_before_the_next_model_call(clocked, ws: Path) -> None:
    rt, _ = clocked
    turns = [{"content": "nap", "tool_calls": [call("clock_sleep", seconds=100)]}, {"content": "awake"}]
    pid = root(rt, ws, turns)
    rt.kernel.clock.sleep = _never  # type: ignore[method-assign]  # the deadline must not come first
    task_done = asyncio.run(_run_then_interrupt(rt, pid))
    assert task_done
    assert '"interrupted":true' in tool_texts(rt, pid)[0]
    users = [m["content"] for m in rt.context(pid) if m["role"] == "user"]
    assert users[-1] == "[interrupt from process 0] stop napping"


async def _never(seconds: float) -> None:
    await asyncio.sleep(0.01)


async def _run_then_interrupt(rt: alos.Runtime, pid: int) -> bool:
    task = asyncio.create_task(rt.run())
    for _ in range(1000):
        await asyncio.sleep(0.01)
        if rt.process(pid).wait is Wait.TIMER:
            break
    else:
        raise AssertionError("the process never went to sleep")
    await rt.signal(pid, "interrupt", "stop napping")
    await asyncio.wait_for(task, 10)
    return rt.process(pid).exit is Exit.OK


def test_term_gives_a_process_a_few_quanta_then_kills_it(runtime, ws: Path) -> None:
    pid = root(runtime, ws, now_turns(50))
    asyncio.run(runtime.signal(pid, "term"))
    asyncio.run(runtime.run())
    p = runtime.process(pid)
    assert (p.exit, p.result) == (Exit.KILLED, "killed: it did not exit after a term signal")
    assert p.turns == 2  # docs/processes.md: 2 more quanta, then killed
    users = [m["content"] for m in runtime.context(pid) if m["role"] == "user"]
    assert [u for u in users if u.startswith("[term]")] == [
        "[term] the host asks you to finish now: wrap up and call proc_exit"
    ]


def test_a_model_call_budget_refuses_before_the_call_and_names_the_budget(runtime, ws: Path) -> None:
    pid = root(runtime, ws, now_turns(10), budget={"model_calls": 3})
    asyncio.run(runtime.run())
    p = runtime.process(pid)
    assert (p.exit, p.result) == (
        Exit.FAILED,
        "model call failed: limit: budget model_calls exhausted: process 1 would exceed its limit of 3 "
        "(3 spent, this call needs 1); the call was not made. The host can raise it only for new processes",
    )
    assert p.turns == 3
    assert runtime.budgets()[pid]["model_calls"] == (3, 3)


def test_a_childs_spending_counts_against_every_ancestor(runtime, ws: Path) -> None:
    pid = root(runtime, ws, allow=("proc:spawn=spawn", "fs:*=write"), budget={"bytes_written": 10, "children": 1})
    gs = [{"pattern": "fs:*", "rights": ["write"]}]
    with pytest.raises(alos.Limit, match="more than process"):
        d(runtime, pid, "proc.spawn", name="k", goal="g", grants=gs, budget={"bytes_written": 11})
    kid = d(runtime, pid, "proc.spawn", name="k", goal="g", grants=gs, budget={"bytes_written": 8})["pid"]
    with pytest.raises(alos.Limit, match="budget children exhausted"):
        d(runtime, pid, "proc.spawn", name="k2", goal="g")
    d(runtime, kid, "fs.write", path="a", content="12345")
    with pytest.raises(alos.Limit, match="bytes_written"):
        d(runtime, kid, "fs.write", path="b", content="12345")  # 10 > its own 8
    assert not (ws / "b").exists()
    with pytest.raises(alos.Limit, match="bytes_written"):
        d(runtime, pid, "fs.write", path="c", content="123456")  # 5 + 6 > the root's 10
    spent = runtime.budgets()
    assert spent[pid]["bytes_written"] == (10, 5) and spent[kid]["bytes_written"] == (8, 5)
    assert spent[pid]["tool_calls"][1] >= 2


def test_a_wall_time_budget_refuses_once_the_time_is_up(clocked, ws: Path) -> None:
    rt, clock = clocked
    pid = root(rt, ws, budget={"wall_seconds": 60})
    d(rt, pid, "clock.now")
    clock.advance(61)
    with pytest.raises(alos.Limit, match="wall_seconds"):
        d(rt, pid, "clock.now")
    d(rt, pid, "proc.exit", result="exit is always allowed")
    assert rt.process(pid).exit is Exit.OK


def test_a_bad_budget_is_refused_before_anything_is_stored(runtime, ws: Path) -> None:
    with pytest.raises(alos.Invalid, match="no budget 'coins'"):
        root(runtime, ws, budget={"coins": 3})
    with pytest.raises(alos.Invalid):
        root(runtime, ws, budget={"tokens": -1})
    assert runtime.processes() == []


def test_a_termed_process_that_goes_back_to_waiting_is_killed(runtime, ws: Path) -> None:
    turns = [{"content": "wait", "tool_calls": [call("msg_recv")]} for _ in range(5)]
    pid = root(runtime, ws, turns)
    asyncio.run(runtime.run())
    assert runtime.process(pid).wait is Wait.MESSAGE
    asyncio.run(runtime.signal(pid, "term"))
    asyncio.run(runtime.run())
    p = runtime.process(pid)
    assert (p.exit, p.result) == (Exit.KILLED, "killed: it did not exit after a term signal"), p


def test_a_timed_wait_is_in_the_store_not_only_in_memory(clocked, ws: Path) -> None:
    rt, clock = clocked
    pid = root(rt, ws)
    assert isinstance(d(rt, pid, "clock.sleep", seconds=30), alos.Parked)
    other = alos.open(rt.store.path)  # what a host started after a kill -9 would read
    try:
        assert other.process(pid).wake == pytest.approx(clock.now() + 30)
    finally:
        other.close()


def test_what_the_host_remembers_is_what_the_store_says(clocked, ws: Path) -> None:
    rt, _ = clocked
    kid_grants = [
        {"pattern": "model:script", "rights": ["execute"]},
        {"pattern": "clock", "rights": ["read"]},
        {"pattern": "image:reader", "rights": ["execute"]},
    ]
    turns = [
        {
            "content": "",
            "tool_calls": [{"name": "proc_spawn", "arguments": {"name": "k", "goal": "g", "grants": kid_grants}}],
        },
        {"content": "", "tool_calls": [call("proc_signal", pid=2, signal="pause"), call("clock_sleep", seconds=5)]},
        {"content": "", "tool_calls": [call("proc_signal", pid=2, signal="resume"), call("proc_wait", timeout=50)]},
        {"proc": "k", "content": "", "tool_calls": [call("clock_sleep", seconds=20)]},
        {"proc": "k", "content": "", "tool_calls": [call("proc_exec", image="reader", keep=["model:script"])]},
    ]
    pid = root(rt, ws, turns, allow=("proc:spawn=spawn", "image:reader=execute"))
    asyncio.run(rt.run())
    rt.flush()
    fresh = alos.open(rt.store.path)
    try:
        for p in fresh.processes():
            assert rt.kernel.proc(p.pid) == p
        assert [(p.pid, p.exit, p.image) for p in fresh.processes()] == [(pid, Exit.OK, "base"), (2, Exit.OK, "reader")]
    finally:
        fresh.close()
