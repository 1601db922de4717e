"""The process model through dispatch(): attenuation, exec, wait, signals, orphans, fork modes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import alos
from alos.types import Exit, Parked, ProcState, Wait
from tests.support import call, grants, write_script


def d(rt: alos.Runtime, who: int, syscall: str, /, **args: Any) -> Any:
    return asyncio.run(rt.dispatch(who, syscall, args))


def root(
    rt: alos.Runtime,
    ws: Path,
    turns: list[dict[str, Any]] | None = None,
    *,
    name: str = "main",
    budget: dict[str, int] | None = None,
    priority: int | None = None,
    **kw: tuple[str, ...],
) -> int:
    model = write_script(ws.parent / f"script-{name}-{len(list(ws.parent.iterdir()))}.jsonl", turns or [])
    return asyncio.run(
        rt.spawn(
            "base",
            "test goal",
            workspace=str(ws),
            model=model,
            grants=grants(ws, **kw),
            name=name,
            budget=budget,
            priority=priority,
        )
    )


def child(rt: alos.Runtime, parent: int, *passed: tuple[str, list[str]], **kw: Any) -> int:
    gs = [{"pattern": p, "rights": r, **({"effect": e} if (e := kw.pop("effect", None)) else {})} for p, r in passed]
    out = d(rt, parent, "proc.spawn", name=kw.pop("name", "kid"), goal=kw.pop("goal", "help"), grants=gs, **kw)
    return int(out["pid"])


# -- attenuation -----------------------------------------------------------------------


def test_a_child_gets_only_what_is_passed_and_never_more_than_the_parent_holds(runtime, ws: Path) -> None:
    pid = root(runtime, ws, allow=("fs:*=read", "proc:spawn=spawn"))
    with pytest.raises(alos.Denied, match="cannot pass"):
        child(runtime, pid, ("fs:*", ["write"]))
    with pytest.raises(alos.Denied, match="cannot pass"):
        child(runtime, pid, ("fs:/*", ["read"]))  # broader than the workspace the parent holds
    kid = child(runtime, pid, ("fs:src/*", ["read"]))
    assert d(runtime, kid, "fs.read", path="src/app.py") == "print('hi')\n"
    with pytest.raises(alos.Denied, match="lacks read"):
        d(runtime, kid, "fs.read", path="README.md")
    assert runtime.process(kid).parent == pid


def test_spawn_needs_the_spawn_right(runtime, ws: Path) -> None:
    pid = root(runtime, ws, allow=("fs:*=read",))
    with pytest.raises(alos.Denied, match="lacks spawn on proc:spawn"):
        child(runtime, pid)


def test_a_parents_deny_and_ask_go_with_what_it_passes(runtime, ws: Path) -> None:
    pid = root(
        runtime,
        ws,
        allow=("fs:*=read,write", "proc:spawn=spawn"),
        deny=("fs:.env=read",),
        ask=("fs:src/*=write",),
    )
    kid = child(runtime, pid, ("fs:*", ["read", "write"]))
    with pytest.raises(alos.Denied, match="denied read"):
        d(runtime, kid, "fs.read", path=".env")
    assert isinstance(d(runtime, kid, "fs.write", path="src/new.py", content="x"), Parked)
    assert not (ws / "src" / "new.py").exists()
    d(runtime, kid, "fs.write", path="notes.md", content="ok")  # outside the ask: allowed
    narrow = child(runtime, pid, ("fs:src/*", ["write"]))  # an allow carved out of the parent's ask ...
    assert isinstance(d(runtime, narrow, "fs.write", path="src/b.py", content="x"), Parked)  # ... still asks


def test_passing_on_needs_a_delegable_capability(runtime, ws: Path) -> None:
    pid = root(runtime, ws, allow=("fs:*=read", "proc:spawn=spawn"))
    plain = child(runtime, pid, ("fs:*", ["read"]), ("proc:spawn", ["spawn"]))
    with pytest.raises(alos.Denied, match="not delegable"):
        child(runtime, plain, ("fs:*", ["read"]))
    gs = [{"pattern": p, "rights": r, "delegable": True} for p, r in (("fs:*", ["read"]), ("proc:spawn", ["spawn"]))]
    passer = d(runtime, pid, "proc.spawn", name="p", goal="g", grants=gs)["pid"]
    grandchild = child(runtime, passer, ("fs:src/*", ["read"]))
    assert d(runtime, grandchild, "fs.read", path="src/app.py")


def test_revoking_a_parents_capability_revokes_every_copy_below_it(runtime, ws: Path) -> None:
    model = write_script(ws.parent / "m.jsonl", [])
    spec = {"pattern": "fs:*", "rights": ["read"]}
    top = d(
        runtime,
        0,
        "proc.spawn",
        name="main",
        goal="g",
        image="base",
        model=model,
        cwd=str(ws),
        grants=[spec, {"pattern": "proc:spawn", "rights": ["spawn"]}],
    )
    gs = [{**spec, "delegable": True}, {"pattern": "proc:spawn", "rights": ["spawn"], "delegable": True}]
    mid = d(runtime, top["pid"], "proc.spawn", name="mid", goal="g", grants=gs)["pid"]
    low = child(runtime, mid, ("fs:*", ["read"]))
    assert d(runtime, low, "fs.read", path="README.md") == "hello\n"
    d(runtime, 0, "cap.revoke", id=top["capabilities"][0])
    for pid in (top["pid"], mid, low):
        with pytest.raises(alos.Denied):
            d(runtime, pid, "fs.read", path="README.md")


# -- exec ------------------------------------------------------------------------------


def test_exec_keeps_only_what_it_asks_for_and_never_drops_a_deny(runtime, ws: Path) -> None:
    pid = root(runtime, ws, allow=("fs:*=read,write", "image:reader=execute"), deny=("fs:.env=read",))
    with pytest.raises(alos.NotFound, match="holds no capability"):
        d(runtime, pid, "proc.exec", image="reader", keep=["fs:/*"])
    with pytest.raises(alos.Denied, match="lacks execute on image:base"):
        d(runtime, pid, "proc.exec", image="base")
    out = d(runtime, pid, "proc.exec", image="reader", keep=[f"fs:{ws}/*"], goal="read only now")
    assert out["image"] == "reader" and out["dropped"]
    p = runtime.process(pid)
    assert (p.image, p.epoch, p.goal) == ("reader", 1, "read only now")
    assert d(runtime, pid, "fs.read", path="README.md") == "hello\n"
    with pytest.raises(alos.Denied):
        d(runtime, pid, "fs.read", path=".env")
    with pytest.raises(alos.Denied, match="lacks execute on image:reader"):
        d(runtime, pid, "proc.exec", image="reader")  # the image right was not kept
    assert [m["content"] for m in runtime.context(pid) if m["role"] == "user"] == ["read only now"]


def test_an_execd_process_runs_the_new_tool_table(runtime, ws: Path) -> None:
    turns = [
        {
            "content": "become a reader",
            "tool_calls": [call("proc_exec", image="reader", keep=[f"fs:{ws}/*", "model:script"])],
        },
        {"content": "try to write", "tool_calls": [call("fs_write", path="x.txt", content="no")]},
    ]
    pid = root(runtime, ws, turns, allow=("fs:*=read,write", "image:reader=execute"))
    asyncio.run(runtime.run())
    assert not (ws / "x.txt").exists()
    tool = [m for m in runtime.context(pid) if m["role"] == "tool"]
    assert "no tool named 'fs_write'" in tool[-1]["content"]


# -- wait and exit ---------------------------------------------------------------------


def test_wait_blocks_until_the_child_exits_and_collects_it_once(runtime, ws: Path) -> None:
    pid = root(runtime, ws, allow=("proc:spawn=spawn",))
    kid = child(runtime, pid)
    assert d(runtime, pid, "proc.wait", block=False) == {"pid": None, "running": [kid]}
    assert isinstance(d(runtime, pid, "proc.wait"), Parked)
    p = runtime.process(pid)
    assert (p.state, p.wait) == (ProcState.WAITING, Wait.CHILD)
    d(runtime, kid, "proc.exit", result="42")
    assert runtime.process(pid).state is ProcState.RUNNABLE
    got = d(runtime, pid, "proc.wait", pid=kid)
    assert got == {"pid": kid, "name": "kid", "status": "ok", "result": "42"}
    with pytest.raises(alos.Conflict, match="already waited"):
        d(runtime, pid, "proc.wait", pid=kid)
    with pytest.raises(alos.NotFound, match="no children"):
        d(runtime, pid, "proc.wait")


def test_wait_on_a_process_that_is_not_a_child_is_refused(runtime, ws: Path) -> None:
    a = root(runtime, ws, name="a")
    b = root(runtime, ws, name="b")
    with pytest.raises(alos.Denied, match=f"lacks read on proc:{b}"):
        d(runtime, a, "proc.wait", pid=b)


def test_exit_with_a_file_needs_read_on_it(runtime, ws: Path) -> None:
    pid = root(runtime, ws, allow=("fs:README.md=read",))
    with pytest.raises(alos.Denied):
        d(runtime, pid, "proc.exit", file=".env")
    assert runtime.process(pid).state is not ProcState.EXITED
    d(runtime, pid, "proc.exit", file="README.md")
    assert runtime.process(pid).result == "hello\n"


# -- signals and orphans ---------------------------------------------------------------


def test_signals_need_the_signal_right_and_a_parent_has_it_on_its_child(runtime, ws: Path) -> None:
    pid = root(runtime, ws, allow=("proc:spawn=spawn",), name="a")
    stranger = root(runtime, ws, name="b")
    kid = child(runtime, pid)
    with pytest.raises(alos.Denied, match=f"lacks signal on proc:{kid}"):
        d(runtime, stranger, "proc.signal", pid=kid, signal="kill")
    assert d(runtime, pid, "proc.signal", pid=kid, signal="pause")["state"] == "paused"
    with pytest.raises(alos.Denied, match="paused"):
        d(runtime, kid, "clock.now")
    assert d(runtime, pid, "proc.signal", pid=kid, signal="resume")["state"] == "runnable"
    assert d(runtime, pid, "proc.signal", pid=kid, signal="kill")["state"] == "exited"
    assert runtime.process(kid).exit is Exit.KILLED
    with pytest.raises(alos.Conflict, match="already exited"):
        d(runtime, pid, "proc.signal", pid=kid, signal="kill")


def test_orphans_go_to_the_nearest_living_ancestor_then_the_host(runtime, ws: Path) -> None:
    top = root(runtime, ws, allow=("proc:spawn=spawn",))
    gs = [{"pattern": "proc:spawn", "rights": ["spawn"], "delegable": True}]
    mid = d(runtime, top, "proc.spawn", name="mid", goal="g", grants=gs)["pid"]
    low = child(runtime, mid, ("proc:spawn", ["spawn"]))
    d(runtime, 0, "proc.signal", pid=mid, signal="kill")
    assert runtime.process(low).parent == top
    assert runtime.process(mid).exit is Exit.KILLED
    d(runtime, top, "proc.exit", result="done")
    assert runtime.process(low).parent is None
    assert any(e.kind == "adopt" and e.pid == low for e in runtime.events())


def test_kill_cancels_the_processs_open_requests(runtime, ws: Path) -> None:
    pid = root(runtime, ws, ask=("fs:*=write",))
    parked = d(runtime, pid, "fs.write", path="x", content="1")
    d(runtime, 0, "proc.signal", pid=pid, signal="kill")
    assert runtime.requests() == []
    assert runtime.request(parked.request).state.value == "cancelled"


def test_pausing_a_process_that_waits_on_a_human_resumes_it_waiting(runtime, ws: Path) -> None:
    pid = root(runtime, ws, ask=("fs:*=write",))
    d(runtime, pid, "fs.write", path="x", content="1")
    d(runtime, 0, "proc.signal", pid=pid, signal="pause")
    d(runtime, 0, "proc.signal", pid=pid, signal="resume")
    p = runtime.process(pid)
    assert (p.state, p.wait) == (ProcState.WAITING, Wait.HUMAN)


# -- fork modes ------------------------------------------------------------------------


def test_a_speculative_fork_makes_no_outside_effect_and_its_result_waits_for_a_merge(runtime, ws: Path) -> None:
    pid = root(runtime, ws, allow=("proc:spawn=spawn", "fs:*=read,write"))
    kid = d(
        runtime, pid, "proc.fork", mode="speculative", goal="try", grants=[{"pattern": "fs:*", "rights": ["write"]}]
    )
    spec = kid["pid"]
    with pytest.raises(alos.Denied, match="speculative"):
        d(runtime, spec, "fs.write", path="x.txt", content="no")
    with pytest.raises(alos.Denied, match="speculative"):
        d(runtime, spec, "msg.send", pid=pid, body="hi")
    assert not (ws / "x.txt").exists()
    d(runtime, spec, "proc.exit", result="plan B")
    waited = d(runtime, pid, "proc.wait", pid=spec)
    assert waited["result"] is None and "proc_merge" in waited["note"]
    assert d(runtime, pid, "proc.merge", pid=spec)["result"] == "plan B"


def test_a_fork_starts_from_the_parents_context_and_a_worker_gets_read_only_rights(runtime, ws: Path) -> None:
    pid = root(runtime, ws, allow=("proc:spawn=spawn", "fs:*=read,write"))
    kid = d(
        runtime, pid, "proc.fork", mode="worker", goal="look", grants=[{"pattern": "fs:*", "rights": ["read", "write"]}]
    )
    ctx = runtime.context(kid["pid"])
    assert ctx[1]["content"] == "test goal" and "worker fork" in ctx[-1]["content"]
    with pytest.raises(alos.Denied, match="lacks write"):
        d(runtime, kid["pid"], "fs.write", path="x", content="1")
    assert d(runtime, kid["pid"], "fs.read", path="README.md") == "hello\n"
    with pytest.raises(alos.Invalid, match="read-only"):
        d(runtime, pid, "proc.fork", mode="worker", goal="g", grants=[{"pattern": "fs:*", "rights": ["write"]}])


def test_chdir_needs_list_on_the_directory_and_moves_relative_paths(runtime, ws: Path) -> None:
    pid = root(runtime, ws, allow=("fs:src=list", "fs:*=read"))
    with pytest.raises(alos.Denied, match="lacks list"):
        d(runtime, pid, "proc.chdir", path="/")
    d(runtime, pid, "proc.chdir", path="src")
    assert d(runtime, pid, "fs.read", path="app.py") == "print('hi')\n"


# -- journal: state changes are not made twice -----------------------------------------


def test_a_redispatched_spawn_answers_from_the_journal(runtime, ws: Path) -> None:
    from alos.kernel import Site
    from alos.kernel import action as actions
    from alos.syscall import dispatch
    from alos.types import ModelTurn, ToolCall

    pid = root(runtime, ws, allow=("proc:spawn=spawn",))
    args = {"name": "kid", "goal": "g"}
    kernel = runtime.kernel
    act = actions.start(kernel, kernel.proc(pid), ModelTurn("", (ToolCall("c0", "proc_spawn", args),)))
    first = asyncio.run(dispatch(kernel, pid, "proc.spawn", args, Site(act.id, 0, replay=False)))
    # the same call again, as after a crash
    again = asyncio.run(dispatch(kernel, pid, "proc.spawn", args, Site(act.id, 0, replay=True)))
    assert first == again
    assert [p.name for p in runtime.processes()].count("kid") == 1
