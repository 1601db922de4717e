"""Black-box: checkpoints as docs/checkpoints.md promises them, attacked the way a hostile model would.

Restore and fork never bring back revoked authority and never grant more than the caller holds;
outside effects since a checkpoint are listed, not undone; another process's checkpoints are out
of reach; a committed image grants nothing; a kill -9 while checkpointing leaves whole
checkpoints. Driven through ``Runtime.dispatch`` and, for commit-then-run, the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import alos
from tests.scenarios.bb_support import alos as alos_cli
from tests.scenarios.bb_support import json_lines, write_script

EFFECT = {"allow": alos.Effect.ALLOW, "ask": alos.Effect.ASK, "deny": alos.Effect.DENY}


def call(tool: str, /, **arguments: Any) -> dict[str, Any]:
    return {"name": tool, "arguments": arguments}


class World:
    """A host runtime on a fresh store, a workspace, and shorthands for dispatch."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.ws = tmp_path / "ws"
        self.ws.mkdir()
        (self.ws / "f.txt").write_text("a file\n")
        self.rt = alos.open(str(tmp_path / "state" / "store.db"), host=True)
        self.n = 0

    async def proc(
        self,
        *allow: str,
        deny: tuple[str, ...] = (),
        name: str = "main",
        budget: dict[str, int] | None = None,
    ) -> int:
        self.n += 1
        script = write_script(self.tmp / f"script-{self.n}.jsonl", [])
        grants = [alos.parse_grant(s, EFFECT["allow"], str(self.ws)) for s in allow]
        grants += [alos.parse_grant(s, EFFECT["deny"], str(self.ws)) for s in deny]
        return await self.rt.spawn(
            "base", "goal", workspace=str(self.ws), model=f"script:{script}", grants=grants, name=name, budget=budget
        )

    async def ok(self, pid: int, syscall: str, /, **args: Any) -> Any:
        return await self.rt.dispatch(pid, syscall, args)

    async def err(self, pid: int, syscall: str, /, **args: Any) -> alos.AlosError:
        try:
            out = await self.rt.dispatch(pid, syscall, args)
        except alos.AlosError as e:
            return e
        raise AssertionError(f"{syscall} {args} by {pid} was not refused: {out!r}")

    async def value(self, pid: int, name: str) -> Any:
        return (await self.ok(0, "obj.read", name=name, ns=f"proc/{pid}"))["value"]

    async def names(self, pid: int) -> list[str]:
        return [o["name"] for o in (await self.ok(0, "obj.list", ns=f"proc/{pid}"))["objects"]]

    def fs(self, pid: int, right: str = "write") -> dict[str, Any]:
        return {"pid": pid, "pattern": f"fs:{self.ws}/*", "rights": [right]}


def run(tmp_path: Path, body: Callable[[World], Awaitable[None]]) -> None:
    w = World(tmp_path)
    try:
        asyncio.run(body(w))
    finally:
        w.rt.close()


# -- restore ---------------------------------------------------------------------------------------


def test_restore_rolls_objects_back_and_lists_the_outside_effects_it_did_not_undo(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        p = await w.proc("proc:spawn=spawn", "fs:*=read,write")
        kid = (await w.ok(p, "proc.spawn", name="kid", goal="g"))["pid"]
        await w.ok(p, "obj.create", name="plan", type="text", value="plan v1")
        await w.ok(p, "obj.create", name="keep", type="json", value={"k": 1})
        ck = await w.ok(p, "ckpt.create", label="before")
        # after the checkpoint: object changes and outside effects
        await w.ok(p, "obj.write", name="plan", value="plan v2")
        await w.ok(p, "obj.create", name="new", type="text", value="made since")
        await w.ok(p, "obj.delete", name="keep")
        await w.ok(p, "fs.write", path="effect.txt", content="written after the checkpoint")
        await w.ok(p, "msg.send", pid=kid, body="sent after the checkpoint")
        await w.ok(p, "obj.share", pid=kid, pattern="plan", rights=["read"])
        k2 = (await w.ok(p, "proc.spawn", name="k2", goal="g"))["pid"]
        diff = await w.ok(p, "ckpt.diff", id=ck["id"])
        assert sorted(diff["objects_changed"]) == [f"proc/{p}/keep", f"proc/{p}/new", f"proc/{p}/plan"]
        out = await w.ok(p, "ckpt.restore", id=ck["id"])
        effects = {(e["syscall"], e["resource"]) for e in out["effects"]}
        assert ("fs.write", f"fs:{w.ws}/effect.txt") in effects
        assert ("msg.send", f"proc:{kid}") in effects
        assert {"obj.share", "proc.spawn"} <= {s for s, _ in effects}
        assert all(isinstance(e["audit"], int) for e in out["effects"])
        assert "not undo" in out["effects_note"]
        # objects as they were, by new versions: history is never rewritten
        assert await w.value(p, "plan") == "plan v1"
        assert [v["version"] for v in (await w.ok(p, "obj.log", name="plan"))["versions"]] == [3, 2, 1]
        assert (await w.ok(p, "obj.read", name="plan", version=2))["value"] == "plan v2"
        assert await w.value(p, "keep") == {"k": 1}
        assert sorted(await w.names(p)) == ["keep", "plan"]
        assert isinstance(await w.err(p, "obj.read", name="new"), alos.NotFound)
        # the effects happened and stay
        assert (w.ws / "effect.txt").read_text() == "written after the checkpoint"
        got = await w.ok(kid, "msg.recv", block=False)
        assert got["message"]["body"] == "sent after the checkpoint"
        assert w.rt.process(k2).state is not alos.ProcState.EXITED
        # and the process is told
        note = w.rt.context(p)[-1]["content"]
        assert "restored" in note and "fs.write" in note and "not undone" in note

    run(tmp_path, body)


def test_restore_after_a_revoke_keeps_the_right_revoked(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        p = await w.proc("fs:*=read")
        cap = await w.ok(0, "cap.grant", **w.fs(p))
        await w.ok(p, "fs.write", path="before.txt", content="ok")
        ck = await w.ok(p, "ckpt.create")
        await w.ok(0, "cap.revoke", id=cap["id"])
        later = await w.ok(0, "cap.grant", pid=p, pattern=f"fs:{w.ws}/later.txt", rights=["write"])
        await w.ok(0, "cap.grant", pid=p, pattern=f"fs:{w.ws}/f.txt", rights=["read"], effect="deny")
        assert isinstance(await w.err(p, "fs.write", path="x.txt", content="x"), alos.Denied)
        out = await w.ok(p, "ckpt.restore", id=ck["id"])
        assert later["id"] in out["capabilities_dropped"]
        for path in ("x.txt", "before.txt", "later.txt"):
            assert isinstance(await w.err(p, "fs.write", path=path, content="x"), alos.Denied), path
        assert isinstance(await w.err(p, "fs.read", path="f.txt"), alos.Denied)  # a deny issued since stays
        assert (await w.ok(p, "fs.read", path="before.txt")) == "ok"
        assert not (w.ws / "x.txt").exists() and not (w.ws / "later.txt").exists()
        # restoring again (from the host, too) changes nothing about that
        await w.ok(0, "ckpt.restore", id=ck["id"])
        assert isinstance(await w.err(p, "fs.write", path="x.txt", content="x"), alos.Denied)

    run(tmp_path, body)


def test_restore_after_a_revoked_share_keeps_the_object_out_of_reach(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        owner = await w.proc("proc:spawn=spawn", name="owner")
        kid = (await w.ok(owner, "proc.spawn", name="kid", goal="g"))["pid"]
        await w.ok(owner, "obj.create", name="doc", type="text", value="OWNER-DOC")
        shared = await w.ok(owner, "obj.share", pid=kid, pattern="doc", rights=["read"])
        assert (await w.ok(kid, "obj.read", name="doc", ns=f"proc/{owner}"))["value"] == "OWNER-DOC"
        ck = await w.ok(kid, "ckpt.create")
        for cap_id in shared["capabilities"]:
            await w.ok(0, "cap.revoke", id=cap_id)
        await w.ok(kid, "ckpt.restore", id=ck["id"])
        assert isinstance(await w.err(kid, "obj.read", name="doc", ns=f"proc/{owner}"), alos.Denied)
        fork = await w.ok(0, "ckpt.fork", id=ck["id"])
        assert isinstance(await w.err(fork["pid"], "obj.read", name="doc", ns=f"proc/{owner}"), alos.Denied)

    run(tmp_path, body)


def test_spent_and_expired_rights_do_not_come_back_by_restore_or_fork(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        (w.ws / "r.txt").write_text("r")
        p = await w.proc("proc:spawn=spawn")
        await w.ok(0, "cap.grant", **w.fs(p), uses=1, delegable=True)
        await w.ok(0, "cap.grant", **w.fs(p, "read"), expires=time.time() + 0.4, delegable=True)
        ck = await w.ok(p, "ckpt.create")
        await w.ok(p, "fs.write", path="one.txt", content="1")  # the one use
        assert await w.ok(p, "fs.read", path="r.txt") == "r"
        time.sleep(0.5)
        assert isinstance(await w.err(p, "fs.read", path="r.txt"), alos.Denied)
        await w.ok(p, "ckpt.restore", id=ck["id"])
        pids = [p, (await w.ok(p, "ckpt.fork", id=ck["id"]))["pid"], (await w.ok(0, "ckpt.fork", id=ck["id"]))["pid"]]
        for pid in pids:
            assert isinstance(await w.err(pid, "fs.write", path=f"again{pid}.txt", content="x"), alos.Denied), pid
            assert isinstance(await w.err(pid, "fs.read", path="r.txt"), alos.Denied), pid
        assert sorted(x.name for x in w.ws.iterdir()) == ["f.txt", "one.txt", "r.txt"]

    run(tmp_path, body)


def test_restore_does_not_refund_budgets(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        p = await w.proc("proc:spawn=spawn", budget={"tool_calls": 6, "children": 1})
        ck = await w.ok(p, "ckpt.create")
        await w.ok(p, "obj.create", name="a", type="text", value="a")
        await w.ok(p, "proc.spawn", name="kid", goal="g")
        before = w.rt.budgets()[p]
        await w.ok(p, "ckpt.restore", id=ck["id"])
        after = w.rt.budgets()[p]
        for budget in ("tool_calls", "children"):
            assert after[budget][1] >= before[budget][1], (budget, before, after)
        assert isinstance(await w.err(p, "proc.spawn", name="again", goal="g"), alos.Limit)
        assert isinstance(await w.err(p, "ckpt.fork", id=ck["id"]), alos.Limit)
        while True:  # spend what is left; the restore gave nothing back
            try:
                await w.ok(p, "obj.list")
            except alos.Limit:
                break
        assert w.rt.budgets()[p]["tool_calls"][1] == 6

    run(tmp_path, body)


def test_restore_does_not_write_an_object_a_person_has_since_denied(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        p = await w.proc()
        await w.ok(p, "obj.create", name="plan", type="text", value="draft")
        ck = await w.ok(p, "ckpt.create")
        await w.ok(p, "obj.write", name="plan", value="approved by a person")
        await w.ok(0, "cap.grant", pid=p, pattern=f"obj:proc/{p}/plan", rights=["write", "delete"], effect="deny")
        assert isinstance(await w.err(p, "obj.write", name="plan", value="x"), alos.Denied)
        with contextlib.suppress(alos.Denied):
            await w.ok(p, "ckpt.restore", id=ck["id"])
        assert await w.value(p, "plan") == "approved by a person"

    run(tmp_path, body)


def test_restore_gives_the_queue_back_and_keeps_what_came_since(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        p = await w.proc("proc:spawn=spawn")
        kid = (await w.ok(p, "proc.spawn", name="kid", goal="g"))["pid"]
        await w.ok(p, "msg.send", pid=kid, body="waiting at the checkpoint")
        ck = await w.ok(kid, "ckpt.create")
        assert (await w.ok(kid, "msg.recv", block=False))["message"]["body"] == "waiting at the checkpoint"
        await w.ok(p, "msg.send", pid=kid, body="came since")
        out = await w.ok(kid, "ckpt.restore", id=ck["id"])
        assert out["messages_returned"] == 1
        bodies = [(await w.ok(kid, "msg.recv", block=False))["message"]["body"] for _ in range(2)]
        assert bodies == ["waiting at the checkpoint", "came since"]
        assert (await w.ok(kid, "msg.recv", block=False))["message"] is None

    run(tmp_path, body)


def test_a_checkpoint_with_children_restores_them_too(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        p = await w.proc("proc:spawn=spawn")
        kid = (await w.ok(p, "proc.spawn", name="kid", goal="g"))["pid"]
        await w.ok(kid, "obj.create", name="k", type="text", value="kid v1")
        await w.ok(p, "obj.create", name="p", type="text", value="parent v1")
        ck = await w.ok(p, "ckpt.create", children=True)
        assert ck["children"] == [kid]
        assert [c["pid"] for c in (await w.ok(p, "ckpt.list", pid=kid))["checkpoints"]] == [kid]
        await w.ok(kid, "obj.write", name="k", value="kid v2")
        await w.ok(p, "obj.write", name="p", value="parent v2")
        out = await w.ok(p, "ckpt.restore", id=ck["id"])
        assert [c["pid"] for c in out["children"]] == [kid]
        assert await w.value(kid, "k") == "kid v1"
        assert await w.value(p, "p") == "parent v1"

    run(tmp_path, body)


def test_restore_is_refused_for_an_exited_process_and_to_a_speculative_one(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        p = await w.proc("proc:spawn=spawn")
        await w.ok(p, "obj.create", name="plan", type="text", value="v1")
        ck = await w.ok(p, "ckpt.create")
        s = (await w.ok(p, "proc.fork", mode="speculative", goal="try"))["pid"]
        sck = await w.ok(s, "ckpt.create")
        await w.ok(s, "obj.write", name="plan", value="speculated")
        e = await w.err(s, "ckpt.restore", id=sck["id"])
        assert isinstance(e, alos.Denied) and "speculative" in str(e)
        assert isinstance(await w.err(s, "ckpt.restore", id=ck["id"], pid=p), alos.Denied)
        assert (await w.ok(s, "obj.read", name="plan"))["value"] == "speculated"
        kid = (await w.ok(p, "proc.spawn", name="kid", goal="g"))["pid"]
        kck = await w.ok(p, "ckpt.create", pid=kid)
        await w.ok(kid, "proc.exit", result="bye")
        e = await w.err(p, "ckpt.restore", id=kck["id"], pid=kid)
        assert isinstance(e, alos.Conflict) and "ckpt_fork" in str(e), e
        assert w.rt.process(kid).state is alos.ProcState.EXITED

    run(tmp_path, body)


# -- another process's checkpoints ---------------------------------------------------------------


def test_another_processes_checkpoints_are_out_of_reach(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        a = await w.proc("proc:spawn=spawn", name="a")
        await w.ok(a, "obj.create", name="secret", type="text", value="A-SECRET")
        ck = await w.ok(a, "ckpt.create", label="mine")
        b = await w.proc("proc:spawn=spawn", "image:loot=write", "model:script=execute", name="b")
        before = {x.pid for x in w.rt.processes()}
        for syscall, args in [
            ("ckpt.create", {"pid": a}),
            ("ckpt.list", {"pid": a}),
            ("ckpt.diff", {"id": ck["id"], "pid": a}),
            ("ckpt.restore", {"id": ck["id"], "pid": a}),
            ("ckpt.fork", {"id": ck["id"], "pid": a}),
            ("ckpt.commit", {"id": ck["id"], "name": "loot", "pid": a}),
        ]:
            e = await w.err(b, syscall, **args)
            assert isinstance(e, alos.Denied), (syscall, e)
            assert "A-SECRET" not in str(e) and "secret" not in str(e)
        assert {x.pid for x in w.rt.processes()} == before
        assert isinstance(await w.err(b, "proc.spawn", name="c", goal="g", image="loot"), alos.AlosError)
        assert [c["id"] for c in (await w.ok(a, "ckpt.list"))["checkpoints"]] == [ck["id"]]
        # a child cannot reach its parent's checkpoints either; the parent can reach the child's
        kid = (await w.ok(a, "proc.spawn", name="kid", goal="g"))["pid"]
        for syscall, args in [("ckpt.create", {"pid": a}), ("ckpt.restore", {"id": ck["id"], "pid": a})]:
            assert isinstance(await w.err(kid, syscall, **args), alos.Denied), syscall
        kck = await w.ok(a, "ckpt.create", pid=kid)
        assert kck["pid"] == kid
        assert await w.value(a, "secret") == "A-SECRET"

    run(tmp_path, body)


def test_a_refusal_for_another_processes_checkpoint_id_is_the_same_as_for_a_missing_one(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        a = await w.proc(name="a")
        ck = await w.ok(a, "ckpt.create")
        b = await w.proc("proc:spawn=spawn", name="b")
        missing = ck["id"] + 100
        for syscall in ("ckpt.restore", "ckpt.diff", "ckpt.fork"):
            there = await w.err(b, syscall, id=ck["id"])
            absent = await w.err(b, syscall, id=missing)
            assert (type(there), there.code) == (type(absent), absent.code), (syscall, there, absent)
            assert str(there).replace(str(ck["id"]), "ID") == str(absent).replace(str(missing), "ID")

    run(tmp_path, body)


# -- fork from a checkpoint -------------------------------------------------------------------------


def test_a_fork_after_a_revoke_gets_only_what_is_still_live(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        p = await w.proc("proc:spawn=spawn", "fs:*=read")
        cap = await w.ok(0, "cap.grant", **w.fs(p), delegable=True)
        await w.ok(p, "obj.create", name="plan", type="text", value="at the checkpoint")
        ck = await w.ok(p, "ckpt.create")
        await w.ok(p, "obj.write", name="plan", value="since")
        await w.ok(0, "cap.revoke", id=cap["id"])
        await w.ok(0, "cap.grant", pid=p, pattern=f"fs:{w.ws}/f.txt", rights=["read"], effect="deny")
        forks = {who: (await w.ok(who, "ckpt.fork", id=ck["id"], name=f"by{who}"))["pid"] for who in (p, 0)}
        assert w.rt.process(forks[p]).parent == p
        for f in forks.values():
            assert isinstance(await w.err(f, "fs.write", path="x.txt", content="x"), alos.Denied)
            assert (await w.ok(f, "obj.read", name="plan"))["value"] == "at the checkpoint"
            assert isinstance(await w.err(f, "obj.write", name="plan", ns=f"proc/{p}", value="x"), alos.Denied)
            assert isinstance(await w.err(f, "obj.read", name="plan", ns=f"proc/{p}"), alos.Denied)
        assert isinstance(await w.err(forks[p], "fs.read", path="f.txt"), alos.Denied)  # the caller's deny came along
        assert not (w.ws / "x.txt").exists()
        assert await w.value(p, "plan") == "since"

    run(tmp_path, body)


def test_a_fork_never_gets_more_than_its_caller_holds_now(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        (w.ws / "secret.txt").write_text("TOPSECRET")
        p = await w.proc("proc:spawn=spawn", name="parent")
        kid = (await w.ok(p, "proc.spawn", name="kid", goal="g"))["pid"]
        await w.ok(0, "cap.grant", pid=kid, pattern=f"fs:{w.ws}/secret.txt", rights=["read"])  # the parent lacks it
        assert await w.ok(kid, "fs.read", path="secret.txt") == "TOPSECRET"
        ck = await w.ok(p, "ckpt.create", pid=kid)
        fork = await w.ok(p, "ckpt.fork", id=ck["id"], pid=kid)
        assert f"fs:{w.ws}/secret.txt" in fork["not_passed"]["patterns"]
        e = await w.err(fork["pid"], "fs.read", path="secret.txt")
        assert isinstance(e, alos.Denied) and "TOPSECRET" not in str(e)
        assert isinstance(await w.err(fork["pid"], "obj.list", ns=f"proc/{kid}"), alos.Denied)

    run(tmp_path, body)


def test_a_fork_from_a_checkpoint_counts_as_a_child(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        p = await w.proc(name="nospawn")
        ck = await w.ok(p, "ckpt.create")
        assert isinstance(await w.err(p, "ckpt.fork", id=ck["id"]), alos.Denied)  # no spawn on proc:spawn
        q = await w.proc("proc:spawn=spawn", budget={"children": 1}, name="one-child")
        qck = await w.ok(q, "ckpt.create")
        f = await w.ok(q, "ckpt.fork", id=qck["id"], goal="again")
        assert w.rt.process(f["pid"]).parent == q
        assert isinstance(await w.err(q, "ckpt.fork", id=qck["id"]), alos.Limit)

    run(tmp_path, body)


# -- commit ----------------------------------------------------------------------------------------


def test_commit_needs_the_image_right_and_the_image_grants_nothing(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        p = await w.proc("proc:spawn=spawn", "fs:*=read,write", "image:snap=write", "image:*=write")
        await w.ok(p, "obj.create", name="notes", type="text", value="N" * 6000)
        await w.ok(p, "obj.create", name="plan", type="plan", value={"steps": ["seeded"]})
        ck = await w.ok(p, "ckpt.create")
        other = await w.proc(name="other")
        assert isinstance(await w.err(other, "ckpt.commit", id=ck["id"], name="snap", pid=p), alos.Denied)
        for name in ("base", "coder", "Snap", "../snap", ""):
            assert isinstance(await w.err(p, "ckpt.commit", id=ck["id"], name=name), alos.AlosError), name
        done = await w.ok(p, "ckpt.commit", id=ck["id"], name="snap")
        assert done["objects"] == 2
        seeds = {s.name: s for s in w.rt.image("snap").objects}
        assert set(seeds) == {"notes", "plan"}
        assert w.rt.image("snap").requests  # the grants stay requests
        # run it with no grants: the objects are there, the authority is not
        r = await w.rt.spawn(
            "snap", "g", workspace=str(w.ws), model=f"script:{write_script(w.tmp / 'e.jsonl', [])}", grants=[]
        )
        assert (await w.ok(r, "obj.read", name="plan"))["value"] == {"steps": ["seeded"]}
        assert (await w.ok(r, "obj.read", name="notes"))["value"] == "N" * 6000
        for syscall, args in [
            ("fs.write", {"path": "x.txt", "content": "x"}),
            ("fs.read", {"path": "f.txt"}),
            ("proc.spawn", {"name": "c", "goal": "g"}),
            ("obj.read", {"name": "plan", "ns": f"proc/{p}"}),
            ("obj.write", {"name": "plan", "ns": f"proc/{p}", "value": {"steps": []}}),
            ("ckpt.commit", {"id": ck["id"], "name": "snap", "pid": p}),
            ("ckpt.restore", {"id": ck["id"], "pid": p}),
        ]:
            assert isinstance(await w.err(r, syscall, **args), alos.Denied), syscall
        # seeds are copies: one process's write is not another's
        await w.ok(r, "obj.write", name="plan", value={"steps": ["mine"]})
        r2 = await w.rt.spawn("snap", "g", workspace=str(w.ws), model=f"script:{w.tmp / 'e.jsonl'}", grants=[])
        assert (await w.ok(r2, "obj.read", name="plan"))["value"] == {"steps": ["seeded"]}
        assert await w.value(p, "plan") == {"steps": ["seeded"]}
        assert not (w.ws / "x.txt").exists()

    run(tmp_path, body)


def test_cli_commit_then_run_the_image_without_the_grants(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    store = str(tmp_path / "state" / "store.db")
    first = write_script(
        tmp_path / "first.jsonl",
        [
            {
                "content": "work",
                "tool_calls": [
                    call("obj_create", name="plan", type="text", value="SEEDED-PLAN"),
                    call("fs_write", path="orig.txt", content="the original could write"),
                ],
            }
        ],
    )
    common = ["--workspace", str(ws), "--store", store, "--approve", "never", "--json"]
    cp = alos_cli("run", "base", "work", "--model", f"script:{first}", "--allow", "fs:*=read,write", *common)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert (ws / "orig.txt").exists()
    cp = alos_cli("ckpt", "create", "1", "--store", store, "--json")
    assert cp.returncode == 0, cp.stderr
    ckpt_id = json_lines(cp.stdout)[0]["id"]
    cp = alos_cli("ckpt", "commit", str(ckpt_id), "snap", "--store", store, "--json")
    assert cp.returncode == 0, cp.stderr
    second = write_script(
        tmp_path / "second.jsonl",
        [
            {
                "content": "again",
                "tool_calls": [
                    call("obj_read", name="plan"),
                    call("fs_write", path="copy.txt", content="the copy could too"),
                    call("fs_read", path="orig.txt"),
                    call("proc_spawn", name="helper", goal="g"),
                ],
            }
        ],
    )
    cp = alos_cli("run", "snap", "again", "--model", f"script:{second}", *common)
    results = [e["detail"] for e in json_lines(cp.stdout) if e.get("kind") == "result" and e["pid"] == 2]
    assert len(results) == 4, cp.stdout + cp.stderr
    assert results[0]["ok"] and json.loads(results[0]["text"])["value"] == "SEEDED-PLAN"
    for r in results[1:]:
        assert not r["ok"] and r["text"].startswith("denied"), r
    assert not (ws / "copy.txt").exists()


# -- durability: kill -9 while checkpointing -------------------------------------------------------

_CHECKPOINTER = r"""
import asyncio, sys, alos
store, ws, script = sys.argv[1:4]

async def main():
    rt = alos.open(store, host=True)
    pid = await rt.spawn("base", "g", workspace=ws, model="script:" + script, grants=[])
    await rt.dispatch(pid, "obj.create", {"name": "ctr", "type": "json", "value": 0})
    for i in range(20):
        await rt.dispatch(pid, "obj.create", {"name": f"o{i}", "type": "text", "value": "x" * (i * 400)})
    i = 0
    while True:
        i += 1
        await rt.dispatch(pid, "obj.write", {"name": "ctr", "value": i})
        await rt.dispatch(pid, "obj.write", {"name": f"o{i % 20}", "value": f"{i}:" + "y" * (i * 97 % 9000)})
        await rt.dispatch(pid, "ckpt.create", {"label": str(i)})
        print(i, flush=True)

asyncio.run(main())
"""


def test_kill9_while_checkpointing_leaves_the_previous_checkpoint_whole(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    script = write_script(tmp_path / "none.jsonl", [])
    store = tmp_path / "state" / "store.db"
    p = subprocess.Popen(
        [sys.executable, "-c", _CHECKPOINTER, str(store), str(ws), str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    guard = threading.Timer(30, p.kill)
    guard.start()
    printed = 0
    try:
        assert p.stdout is not None
        for _ in range(6):
            line = p.stdout.readline()
            assert line, "the checkpointer stopped"
            printed = int(line)
        time.sleep(random.uniform(0, 0.02))
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)
    finally:
        guard.cancel()
        p.kill()
        p.wait()

    rt = alos.open(str(store), host=True)
    try:

        async def check() -> None:
            listed = (await rt.dispatch(0, "ckpt.list", {"pid": 1}))["checkpoints"]
            labels = [int(c["label"]) for c in listed]
            assert labels == list(range(labels[0], 0, -1)), labels  # newest first, none missing
            assert labels[0] >= printed
            for c in listed[:3]:
                label = int(c["label"])
                fork = await rt.dispatch(0, "ckpt.fork", {"id": c["id"], "name": f"at{label}"})
                ns = f"proc/{fork['pid']}"
                assert (await rt.dispatch(0, "obj.read", {"name": "ctr", "ns": ns}))["value"] == label
                o = await rt.dispatch(0, "obj.read", {"name": f"o{label % 20}", "ns": ns})
                assert o["value"] == f"{label}:" + "y" * (label * 97 % 9000)
                assert fork["objects"] == 21
            newest = listed[0]
            diff = await rt.dispatch(0, "ckpt.diff", {"id": listed[1]["id"], "to": newest["id"]})
            assert "proc/1/ctr" in diff["objects_changed"]
            await rt.dispatch(0, "ckpt.restore", {"id": newest["id"]})
            assert (await rt.dispatch(0, "obj.read", {"name": "ctr", "ns": "proc/1"}))["value"] == int(newest["label"])

        asyncio.run(check())
        assert rt.store_problems() == []
    finally:
        rt.close()


def test_cli_restore_asks_first_and_says_what_it_does_not_undo(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        p = await w.proc("fs:*=read,write")
        await w.ok(p, "obj.create", name="plan", type="text", value="v1")
        await w.ok(p, "ckpt.create", label="before")
        await w.ok(p, "obj.write", name="plan", value="v2")
        await w.ok(p, "fs.write", path="effect.txt", content="stays")

    run(tmp_path, body)
    store = str(tmp_path / "state" / "store.db")
    cp = alos_cli("ckpt", "restore", "1", "--store", store)  # no terminal, no --yes: nothing happens
    assert cp.returncode == 2, cp.stdout + cp.stderr
    rt = alos.open(store)
    try:
        assert asyncio.run(rt.dispatch(0, "obj.read", {"name": "plan", "ns": "proc/1"}))["value"] == "v2"
    finally:
        rt.close()
    cp = alos_cli("ckpt", "restore", "1", "--yes", "--store", store)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    out = cp.stdout + cp.stderr
    assert "effect.txt" in out and "not undo" in out.lower(), out
    assert (tmp_path / "ws" / "effect.txt").read_text() == "stays"
    rt = alos.open(store)
    try:
        assert asyncio.run(rt.dispatch(0, "obj.read", {"name": "plan", "ns": "proc/1"}))["value"] == "v1"
    finally:
        rt.close()
