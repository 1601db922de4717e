"""Black-box: budgets (docs/processes.md "Budgets"), from the CLI and from Python."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import alos
from alos.providers.clock import ManualClock
from tests.scenarios.bb_support import alos as alos_cli
from tests.scenarios.bb_support import make_env, results, turn, write_script

EFFECT = {"allow": alos.Effect.ALLOW, "ask": alos.Effect.ASK, "deny": alos.Effect.DENY}
MODEL = {"pattern": "model:script", "rights": ["execute"]}
Root = Callable[..., Awaitable[int]]


def call(tool: str, /, **arguments: Any) -> dict[str, Any]:
    return {"name": tool, "arguments": arguments}


def py(tmp_path: Path, body: Callable[[alos.Runtime, Path, Root, ManualClock], Awaitable[None]]) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "README.md").write_text("hello readme\n")
    clock = ManualClock()

    async def root(
        turns: list[dict[str, Any]] | None = None, budget: dict[str, int] | None = None, **grants: Any
    ) -> int:
        n = len(list(tmp_path.glob("script-*.jsonl")))
        script = write_script(tmp_path / f"script-{n}.jsonl", turns or [])
        gs = [alos.parse_grant(s, EFFECT[e], str(ws)) for e, specs in grants.items() for s in specs]
        return await rt.spawn("base", "goal", workspace=str(ws), model=f"script:{script}", grants=gs, budget=budget)

    rt = alos.open(str(tmp_path / "st" / "store.db"), host=True, clock=clock)
    try:
        asyncio.run(body(rt, ws, root, clock))
    finally:
        rt.close()


def spent(rt: alos.Runtime, pid: int, name: str) -> int:
    return rt.budgets()[pid].get(name, (None, 0))[1]


# -- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        "foo=1",
        "model_calls=abc",
        "model_calls=-1",
        "model_calls",
        "model_calls=1.5",
        "=3",
        "model_calls=",
        "MODEL_CALLS=3",
    ],
)
def test_cli_budget_garbage_is_a_usage_error_before_anything_runs(tmp_path: Path, spec: str) -> None:
    e = make_env(tmp_path)
    r = e.run([turn(call("fs_write", path="made.txt", content="x"))], "--allow", "fs:*=write", "--budget", spec)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "--budget" in r.stderr and "Traceback" not in r.stderr
    assert not e.store.exists() and not (e.ws / "made.txt").exists()


def test_cli_huge_budget_is_refused_cleanly(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    r = e.run([turn(content="hi")], "--budget", "model_calls=99999999999999999999")
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    assert r.returncode == 2, r.returncode  # a usage error: nothing runs, nothing is stored
    said = "Error: Invalid value for --budget: 'model_calls=99999999999999999999': at most 4611686018427387904"
    assert said in r.stderr, r.stderr
    assert not e.store.exists()


def test_cli_model_calls_budget_ends_the_process_failed_naming_the_budget(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    turns = [turn(call("fs_read", path="README.md"), content=f"t{i}") for i in range(6)]
    r = e.run(turns, "--allow", "fs:*=read", "--budget", "model_calls=2")
    assert r.returncode == 1, r.stdout + r.stderr
    [p] = e.ps()
    assert p["exit"] == "failed" and "model_calls" in p["result"], p
    assert p["budget"]["model_calls"] == {"limit": 2, "spent": 2}
    assert p["turns"] == 2
    refused = [a for a in e.audit() if a["syscall"] == "model.call" and a["outcome"] != "ok"]
    assert all(a["outcome"] == "limit" for a in refused)


def test_cli_tool_calls_budget_refuses_the_third_call_before_it_runs(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    r = e.run(
        [
            turn(
                call("fs_write", path="a.txt", content="a"),
                call("fs_write", path="b.txt", content="b"),
                call("fs_write", path="c.txt", content="c"),
            ),
            turn(call("proc_exit", result="done")),
        ],
        "--allow",
        "fs:*=write",
        "--budget",
        "tool_calls=2",
    )
    assert (e.ws / "a.txt").exists() and (e.ws / "b.txt").exists()
    assert not (e.ws / "c.txt").exists()
    texts = [ev["text"] for ev in results(r.stdout)]
    assert texts[2].startswith("limit") and "tool_calls" in texts[2], texts
    [p] = e.ps()
    assert p["exit"] == "ok"  # proc_exit is free
    assert p["budget"]["tool_calls"]["spent"] <= 2


def test_cli_children_budget_refuses_the_second_spawn(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    r = e.run(
        [
            turn(
                call("proc_spawn", name="one", goal="x"),
                call("proc_spawn", name="two", goal="x"),
                call("proc_fork", mode="copy", name="three", goal="x"),
            ),
        ],
        "--allow",
        "proc:spawn=spawn",
        "--budget",
        "children=1",
    )
    texts = [ev["text"] for ev in results(r.stdout)]
    assert texts[0].startswith("{")
    assert texts[1].startswith("limit") and "children" in texts[1], texts
    assert texts[2].startswith("limit") and "children" in texts[2], texts
    assert [p["name"] for p in e.ps()] == ["main", "one"]


def test_cli_ps_shows_spending_over_limits(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    e.run(
        [
            turn(call("proc_spawn", name="kid", goal="x", grants=[MODEL]), call("proc_wait")),
            turn(content="k", proc="kid"),
        ],
        "--allow",
        "proc:spawn=spawn",
        "--budget",
        "model_calls=20",
    )
    cp = alos_cli("ps", "--all", "--store", str(e.store), env={**os.environ, "COLUMNS": "250"})
    assert cp.returncode == 0, cp.stderr
    line1 = next(ln for ln in cp.stdout.splitlines() if ln.split() and ln.split()[0] == "1")
    assert "/20" in line1 and "kids=1" in line1, cp.stdout


# -- refusals and hierarchy (Python) --------------------------------------------------------------


def test_bytes_written_refused_before_it_runs_and_denied_writes_cost_nothing(tmp_path: Path) -> None:
    async def body(rt: alos.Runtime, ws: Path, root: Root, clock: ManualClock) -> None:
        p = await root(allow=["fs:*=write"], deny=["fs:locked.txt=write"], budget={"bytes_written": 5})
        with pytest.raises(alos.Limit) as ei:
            await rt.dispatch(p, "fs.write", {"path": "big.txt", "content": "0123456789"})
        assert "bytes_written" in str(ei.value)
        assert not (ws / "big.txt").exists()
        with pytest.raises(alos.Denied):
            await rt.dispatch(p, "fs.write", {"path": "locked.txt", "content": "1234"})
        await rt.dispatch(p, "fs.write", {"path": "ok.txt", "content": "1234"})
        assert (ws / "ok.txt").read_text() == "1234"
        assert spent(rt, p, "bytes_written") == 4

    py(tmp_path, body)


def test_refused_spawns_do_not_use_up_the_children_budget(tmp_path: Path) -> None:
    async def body(rt: alos.Runtime, ws: Path, root: Root, clock: ManualClock) -> None:
        p = await root(allow=["proc:spawn=spawn", "fs:*=read"], budget={"children": 1})
        for grants in ([{"pattern": "fs:*", "rights": ["write"]}], [{"pattern": "fs:/*", "rights": ["read"]}]):
            with pytest.raises(alos.AlosError):
                await rt.dispatch(p, "proc.spawn", {"name": "bad", "goal": "g", "grants": grants})
        with pytest.raises(alos.AlosError):
            await rt.dispatch(p, "proc.spawn", {"name": "bad", "goal": "g", "budget": {"nope": 1}})
        r = await rt.dispatch(p, "proc.spawn", {"name": "good", "goal": "g"})
        assert rt.process(r["pid"]).name == "good"

    py(tmp_path, body)


def test_child_budget_larger_than_what_parent_has_left_is_refused(tmp_path: Path) -> None:
    async def body(rt: alos.Runtime, ws: Path, root: Root, clock: ManualClock) -> None:
        p = await root(allow=["proc:spawn=spawn", "fs:*=read"], budget={"tool_calls": 5})
        await rt.dispatch(p, "fs.read", {"path": "README.md"})
        await rt.dispatch(p, "fs.read", {"path": "README.md"})
        # 2 spent: at most 3 left for the child (the spawn itself costs one more)
        with pytest.raises(alos.Limit) as ei:
            await rt.dispatch(p, "proc.spawn", {"name": "c", "goal": "g", "budget": {"tool_calls": 4}})
        assert "tool_calls" in str(ei.value)
        assert [x.pid for x in rt.processes()] == [p]

    py(tmp_path, body)


def test_child_budget_larger_than_the_parents_limit_is_refused(tmp_path: Path) -> None:
    async def body(rt: alos.Runtime, ws: Path, root: Root, clock: ManualClock) -> None:
        p = await root(allow=["proc:spawn=spawn"], budget={"model_calls": 4, "bytes_written": 10})
        for budget in ({"model_calls": 5}, {"bytes_written": 11}, {"model_calls": 10**6}):
            with pytest.raises(alos.Limit) as ei:
                await rt.dispatch(p, "proc.spawn", {"name": "c", "goal": "g", "budget": budget})
            assert next(iter(budget)) in str(ei.value)
        for bad in ({"model_calls": -1}, {"bogus": 1}, {"tool_calls": "many"}):
            with pytest.raises(alos.Invalid):
                await rt.dispatch(p, "proc.spawn", {"name": "c", "goal": "g", "budget": bad})
        assert [x.pid for x in rt.processes()] == [p]
        c = (await rt.dispatch(p, "proc.spawn", {"name": "c", "goal": "g", "budget": {"model_calls": 4}}))["pid"]
        assert rt.budgets()[c]["model_calls"][0] == 4

    py(tmp_path, body)


def test_huge_child_budget_is_an_alos_error(tmp_path: Path) -> None:
    async def body(rt: alos.Runtime, ws: Path, root: Root, clock: ManualClock) -> None:
        p = await root(allow=["proc:spawn=spawn"])
        with pytest.raises(alos.AlosError):
            await rt.dispatch(p, "proc.spawn", {"name": "c", "goal": "g", "budget": {"model_calls": 2**63}})

    py(tmp_path, body)


def test_grandchild_spending_counts_at_the_root_and_is_refused_by_its_limit(tmp_path: Path) -> None:
    async def body(rt: alos.Runtime, ws: Path, root: Root, clock: ManualClock) -> None:
        p = await root(allow=["proc:spawn=spawn", "fs:*=read"], budget={"tool_calls": 6})
        read = {"pattern": "fs:*", "rights": ["read"], "delegable": True}
        spawn = {"pattern": "proc:spawn", "rights": ["spawn"]}
        c = (await rt.dispatch(p, "proc.spawn", {"name": "c", "goal": "g", "grants": [read, spawn]}))["pid"]
        gc = (await rt.dispatch(c, "proc.spawn", {"name": "gc", "goal": "g", "grants": [read]}))["pid"]
        for _ in range(4):
            assert await rt.dispatch(gc, "fs.read", {"path": "README.md"}) == "hello readme\n"
        assert spent(rt, p, "tool_calls") == 6
        assert spent(rt, c, "tool_calls") == 5
        with pytest.raises(alos.Limit) as ei:
            await rt.dispatch(gc, "fs.read", {"path": "README.md"})
        msg = str(ei.value)
        assert "tool_calls" in msg and f"ancestor {p}" in msg, msg
        with pytest.raises(alos.Limit):
            await rt.dispatch(p, "fs.read", {"path": "README.md"})

    py(tmp_path, body)


def test_wall_seconds_budget_refuses_calls_once_the_time_is_up(tmp_path: Path) -> None:
    async def body(rt: alos.Runtime, ws: Path, root: Root, clock: ManualClock) -> None:
        p = await root(allow=["fs:*=read"], budget={"wall_seconds": 10})
        assert await rt.dispatch(p, "fs.read", {"path": "README.md"}) == "hello readme\n"
        clock.advance(11)
        with pytest.raises(alos.Limit) as ei:
            await rt.dispatch(p, "fs.read", {"path": "README.md"})
        assert "wall_seconds" in str(ei.value)

    py(tmp_path, body)


def test_tokens_budget_reserves_max_tokens_before_each_call_and_settles_to_the_usage(tmp_path: Path) -> None:
    """docs/models.md: 1,024 tokens (no image max_tokens) are reserved before a call and settled
    to what the model reported; a call whose reservation would pass the limit is not made."""
    e = make_env(tmp_path)
    usage = {"prompt_tokens": 30, "completion_tokens": 20}
    turns = [
        {"content": "one", "tool_calls": [], "usage": usage},
        {"content": "two", "tool_calls": [], "usage": usage},
        {"content": "three", "tool_calls": []},
    ]
    r = e.run(turns, "--budget", "tokens=1100")
    assert r.returncode == 1, r.stdout + r.stderr
    [p] = e.ps()
    assert p["exit"] == "failed" and "tokens" in p["result"] and "needs 1024" in p["result"], p
    assert p["turns"] == 2  # 100 spent + 1,024 reserved would pass 1,100: the third call is never made
    assert p["budget"]["tokens"]["spent"] == 100 and p["budget"]["tokens"]["limit"] == 1100


def test_a_tokens_budget_smaller_than_the_reservation_refuses_the_first_call(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    r = e.run([{"content": "one", "tool_calls": []}], "--budget", "tokens=40")
    assert r.returncode == 1, r.stdout + r.stderr
    [p] = e.ps()
    assert p["exit"] == "failed" and "tokens" in p["result"], p
    assert p["turns"] == 0 and p["budget"]["tokens"]["spent"] == 0


def test_a_sleeping_child_spends_no_model_calls(tmp_path: Path) -> None:
    async def body(rt: alos.Runtime, ws: Path, root: Root, clock: ManualClock) -> None:
        grants = [MODEL, {"pattern": "clock", "rights": ["read"]}]
        p = await root(
            [
                turn(
                    call("proc_spawn", name="z", goal="nap", grants=grants, budget={"model_calls": 3}),
                    call("proc_wait"),
                ),
                turn(call("proc_exit", result="ok")),
                turn(call("clock_sleep", seconds=3600), proc="z"),
                turn(call("proc_exit", result="rested"), proc="z"),
            ],
            allow=["proc:spawn=spawn"],
        )
        await rt.run()
        kid = [x for x in rt.processes() if x.name == "z"][0]
        assert kid.exit is alos.Exit.OK and kid.result == "rested"
        assert spent(rt, kid.pid, "model_calls") == 2
        assert rt.process(p).exit is alos.Exit.OK

    py(tmp_path, body)
