"""Checkpoints through dispatch(): what a restore rolls back and what it cannot, authority that
never comes back, forks and commits, and a kill -9 while checkpoints are taken
(docs/checkpoints.md)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import alos
from tests.support import spawn, write_script


def d(rt: alos.Runtime, who: int, syscall: str, /, **args: Any) -> Any:
    return asyncio.run(rt.dispatch(who, syscall, args))


def call(tool: str, /, **arguments: Any) -> dict[str, Any]:
    return {"name": tool, "arguments": arguments}


def live(rt: alos.Runtime, pid: int) -> set[str]:
    return {f"{c.pattern}={','.join(sorted(c.rights))}:{c.effect}" for c in rt.kernel.caps(pid)}


def test_a_restore_rolls_objects_context_and_queue_back_and_lists_what_it_cannot_undo(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, allow=("fs:*=read,write",))
    d(runtime, pid, "obj.create", name="plan", type="text", value="v1")
    d(runtime, pid, "obj.create", name="gone", type="text", value="deleted later")
    before = runtime.context(pid)
    ck = d(runtime, pid, "ckpt.create", label="before")
    d(runtime, pid, "obj.write", name="plan", value="v2")
    d(runtime, pid, "obj.delete", name="gone")
    d(runtime, pid, "obj.create", name="new", type="text", value="made later")
    d(runtime, pid, "fs.write", path="out.txt", content="written after the checkpoint")
    asyncio.run(runtime.send(pid, "a message that came after"))
    d(runtime, pid, "msg.recv", block=False)  # taken after the checkpoint
    diff = d(runtime, pid, "ckpt.diff", id=ck["id"])
    assert diff["objects_changed"] == [f"proc/{pid}/gone", f"proc/{pid}/new", f"proc/{pid}/plan"]
    assert [e["syscall"] for e in diff["effects"]] == ["fs.write"]
    back = d(runtime, 0, "ckpt.restore", id=ck["id"])
    assert back["objects_restored"] == 3 and back["messages_returned"] == 1
    assert [(e["syscall"], e["resource"]) for e in back["effects"]] == [("fs.write", f"fs:{ws / 'out.txt'}")]
    assert "does not undo them" in back["effects_note"]
    assert (ws / "out.txt").exists()  # an outside effect is not undone
    names = {o["name"]: o["version"] for o in d(runtime, 0, "obj.list", ns=f"proc/{pid}")["objects"]}
    assert names == {"plan": 3, "gone": 3}  # history is never rewritten: the old payloads as new versions
    assert d(runtime, 0, "obj.read", name="plan", ns=f"proc/{pid}")["value"] == "v1"
    msgs = runtime.context(pid)
    assert msgs[: len(before)] == before and "restored to checkpoint" in msgs[-1]["content"]
    assert "fs.write" in msgs[-1]["content"]
    assert d(runtime, pid, "msg.recv", block=False)["message"]["body"] == "a message that came after"


def test_a_restore_never_brings_back_a_revoked_right_and_drops_allows_issued_since(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, allow=("fs:*=read,write",))
    ck = d(runtime, pid, "ckpt.create")
    write = next(c for c in runtime.kernel.caps(pid) if c.pattern.startswith("fs:") and "write" in c.rights)
    d(runtime, 0, "cap.revoke", id=write.id)
    d(runtime, 0, "cap.grant", pid=pid, pattern="net:example.com", rights=["read"])
    d(runtime, 0, "cap.grant", pid=pid, pattern="fs:.env", rights=["read"], effect="deny")
    back = d(runtime, pid, "ckpt.restore", id=ck["id"])
    assert len(back["capabilities_dropped"]) == 1  # the allow issued since
    held = live(runtime, pid)
    assert not any(h.startswith("net:") for h in held)
    assert any(h.endswith(":deny") for h in held)  # a deny issued since stays
    with pytest.raises(alos.Denied):
        d(runtime, pid, "fs.write", path="x.txt", content="the revoked right is still revoked")


def test_a_fork_gets_only_rights_still_live_and_held_by_the_caller(runtime, ws: Path) -> None:
    root = spawn(runtime, ws, allow=("fs:*=read", "fs:*=write", "proc:spawn=spawn", "model:script=execute"))
    child = int(d(runtime, root, "proc.spawn", name="kid", goal="g", grants=[
        {"pattern": "fs:*", "rights": ["read"]}, {"pattern": "fs:*", "rights": ["write"]},
        {"pattern": "model:script", "rights": ["execute"]}])["pid"])  # fmt: skip
    d(runtime, child, "obj.create", name="notes", type="text", value="the child's notes")
    ck = d(runtime, child, "ckpt.create")
    mine = next(c for c in runtime.kernel.caps(root) if c.pattern.startswith("fs:") and c.rights == {"write"})
    d(runtime, 0, "cap.revoke", id=mine.id)  # revokes the child's derived write too
    forked = d(runtime, root, "ckpt.fork", id=ck["id"], pid=child, name="again")
    pid = forked["pid"]
    assert d(runtime, pid, "obj.read", name="notes")["value"] == "the child's notes"
    assert d(runtime, pid, "fs.read", path="README.md") == "hello\n"
    with pytest.raises(alos.Denied):
        d(runtime, pid, "fs.write", path="x.txt", content="revoked after the checkpoint")
    assert runtime.process(pid).parent == root
    stranger = spawn(runtime, ws, allow=("proc:spawn=spawn",))
    with pytest.raises(alos.Denied, match=f"lacks read on proc:{child}"):
        d(runtime, stranger, "ckpt.fork", id=ck["id"], pid=child)


def test_the_host_forks_a_checkpoint_of_an_exited_process_with_its_objects_and_context(runtime, ws: Path) -> None:
    turns = [{"content": "noting", "tool_calls": [call("obj_create", name="plan", type="text", value="one")]},
             {"content": "checkpoint", "tool_calls": [call("ckpt_create", label="mid")]},
             {"content": "more", "tool_calls": [call("obj_write", name="plan", value="two")]}]  # fmt: skip
    pid = spawn(runtime, ws, turns)
    asyncio.run(runtime.run())
    assert runtime.process(pid).state is alos.ProcState.EXITED
    ck = d(runtime, 0, "ckpt.list", pid=pid)["checkpoints"][0]
    with pytest.raises(alos.Conflict, match="has exited"):
        d(runtime, 0, "ckpt.restore", id=ck["id"])
    forked = d(runtime, 0, "ckpt.fork", id=ck["id"], goal="go on")
    assert d(runtime, forked["pid"], "obj.read", name="plan")["value"] == "one"
    msgs = runtime.context(forked["pid"])
    assert msgs[-1]["content"].startswith(f"[You are process {forked['pid']}, started from checkpoint")
    # the turn that took the checkpoint was in progress: it stays in view, its call without a result
    assert msgs[-2]["role"] == "tool" and msgs[-2]["content"].startswith("[no result: checkpoint")


def test_a_process_that_restores_itself_is_asked_again_from_the_checkpoint(runtime, ws: Path, tmp_path: Path) -> None:
    turns = [
        {"content": "save", "tool_calls": [call("obj_create", name="n", type="text", value="a"),
                                           call("ckpt_create", label="save")]},
        {"content": "break", "tool_calls": [call("obj_write", name="n", value="broken"), call("ckpt_restore", id=1),
                                            call("obj_write", name="n", value="never written")]},
        {"content": "after the restore"},
    ]  # fmt: skip
    pid = spawn(runtime, ws, turns)
    asyncio.run(runtime.run())
    assert d(runtime, 0, "obj.read", name="n", ns=f"proc/{pid}")["value"] == "a"
    log = d(runtime, 0, "obj.log", name="n", ns=f"proc/{pid}")["versions"]
    assert [v["version"] for v in log] == [3, 2, 1]  # a, broken, a again: the third call never ran
    assert runtime.process(pid).result == "after the restore"


def test_a_checkpoint_of_another_process_needs_rights_on_it(runtime, ws: Path) -> None:
    root = spawn(runtime, ws, allow=("proc:spawn=spawn",))
    kid = int(d(runtime, root, "proc.spawn", name="kid", goal="g")["pid"])
    other = spawn(runtime, ws)
    ck = d(runtime, root, "ckpt.create", pid=kid)  # a parent holds signal on its child
    assert d(runtime, root, "ckpt.list", pid=kid)["checkpoints"][0]["id"] == ck["id"]
    for syscall, args in (("ckpt.create", {"pid": kid}), ("ckpt.list", {"pid": kid}),
                          ("ckpt.diff", {"id": ck["id"], "pid": kid}), ("ckpt.restore", {"id": ck["id"], "pid": kid})):  # fmt: skip
        with pytest.raises(alos.Denied, match=f"proc:{kid}"):
            d(runtime, other, syscall, **args)
    # a checkpoint named without its process is looked for among the caller's own: the same answer
    # for another's as for none at all
    answers = []
    for cid in (ck["id"], 999):
        with pytest.raises(alos.NotFound) as err:
            d(runtime, other, "ckpt.diff", id=cid)
        answers.append(str(err.value).replace(str(cid), "N"))
    assert answers[0] == answers[1]


def test_children_are_checkpointed_and_restored_with_their_parent(runtime, ws: Path) -> None:
    root = spawn(runtime, ws, allow=("proc:spawn=spawn",))
    kid = int(d(runtime, root, "proc.spawn", name="kid", goal="g")["pid"])
    d(runtime, kid, "obj.create", name="k", type="text", value="before")
    ck = d(runtime, root, "ckpt.create", children=True)
    assert len(ck["children"]) == 1
    d(runtime, kid, "obj.write", name="k", value="after")
    back = d(runtime, 0, "ckpt.restore", id=ck["id"])
    assert back["children"][0]["pid"] == kid
    assert d(runtime, 0, "obj.read", name="k", ns=f"proc/{kid}")["value"] == "before"


def test_a_committed_image_seeds_its_objects_and_grants_nothing_its_runner_did_not(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, allow=("fs:*=read,write", "image:notes=write"))
    d(runtime, pid, "obj.create", name="facts", type="json", value={"k": 1})
    d(runtime, pid, "obj.create", name="big", type="text", value="z" * 20_000)
    ck = d(runtime, pid, "ckpt.create")
    made = d(runtime, pid, "ckpt.commit", id=ck["id"], name="notes")
    assert made["ref"] == "notes@1" and made["objects"] == 2
    model = write_script(ws.parent / "seeded.jsonl", [])
    runner = asyncio.run(runtime.spawn("notes", "use the notes", workspace=str(ws), model=model))
    assert d(runtime, runner, "obj.read", name="facts")["value"] == {"k": 1}
    assert d(runtime, runner, "obj.read", name="big")["bytes"] == 20_000
    with pytest.raises(alos.Denied):
        d(runtime, runner, "fs.write", path="x.txt", content="the original could; this one was granted nothing")
    with pytest.raises(alos.Denied, match="lacks write on image:other"):
        d(runtime, pid, "ckpt.commit", id=ck["id"], name="other")
    # its seeds are read by starting it: a process starts another image only with execute on it
    spawner = spawn(runtime, ws, allow=("proc:spawn=spawn",))
    with pytest.raises(alos.Denied, match="lacks execute on image:notes"):
        d(runtime, spawner, "proc.spawn", name="thief", goal="read the seeds", image="notes")
    assert runtime.store_problems() == []


_CHECKPOINTER = textwrap.dedent(
    """
    import asyncio, sys, alos
    rt = alos.open(sys.argv[1], host=True)
    pid = int(sys.argv[2])
    async def main():
        i = 0
        while True:
            i += 1
            await rt.dispatch(pid, "obj.write", {"name": f"o{i % 50}", "value": str(i) * 2000})
            c = await rt.dispatch(pid, "ckpt.create", {"label": str(i)})
            print(c["id"], flush=True)
    asyncio.run(main())
    """
)


@pytest.mark.slow
def test_a_kill_9_while_checkpoints_are_taken_leaves_each_whole_or_absent(store: str, ws: Path) -> None:
    rt = alos.open(store, host=True)
    pid = spawn(rt, ws)
    for i in range(50):
        d(rt, pid, "obj.create", name=f"o{i}", type="text", value="0")
    rt.close()
    p = subprocess.Popen([sys.executable, "-c", _CHECKPOINTER, store, str(pid)], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    for _ in range(20):
        p.stdout.readline()
    p.kill()
    p.wait()
    rt = alos.open(store, host=True)
    try:
        cks = d(rt, 0, "ckpt.list", pid=pid)["checkpoints"]
        assert len(cks) >= 20
        for ck in cks[:3]:  # the newest are whole: each restores, and its diff to the next is sane
            back = d(rt, 0, "ckpt.restore", id=ck["id"])
            assert back["checkpoint"] == ck["id"]
            assert d(rt, 0, "ckpt.diff", id=ck["id"])["objects_changed_count"] == 0
        assert rt.store_problems() == [] and rt.verify().ok
    finally:
        rt.close()
