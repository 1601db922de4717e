"""Object Memory through dispatch(): namespaces, names that are not capabilities, versions and
races, the file/object bridge, fork views and merges, objects in the model's context,
compaction, and payloads on disk (docs/objects.md)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import alos
from tests.support import call, grants, spawn, write_script


def d(rt: alos.Runtime, who: int, syscall: str, /, **args: Any) -> Any:
    return asyncio.run(rt.dispatch(who, syscall, args))


def kid(rt: alos.Runtime, parent: int, name: str = "kid", **kw: Any) -> int:
    return int(d(rt, parent, "proc.spawn", name=name, goal="help", **kw)["pid"])


def test_siblings_see_nothing_of_each_other_and_a_refusal_never_says_what_exists(runtime, ws: Path) -> None:
    root = spawn(runtime, ws, allow=("proc:spawn=spawn",))
    a, b = kid(runtime, root, "a"), kid(runtime, root, "b")
    d(runtime, a, "obj.create", name="secret", type="text", value="a's plan")
    refusals = []
    for name in ("secret", "no-such-object"):
        for syscall, extra in (("obj.read", {}), ("obj.write", {"value": "x"}), ("obj.delete", {}), ("obj.log", {})):
            with pytest.raises(alos.Denied) as err:
                d(runtime, b, syscall, name=name, ns=f"proc/{a}", **extra)
            refusals.append(str(err.value).replace(name, "NAME"))
    assert refusals[:4] == refusals[4:]  # the same words whether the name exists or not
    with pytest.raises(alos.Denied, match=f"lacks list on ns:proc/{a}"):
        d(runtime, b, "obj.list", ns=f"proc/{a}")
    with pytest.raises(alos.Denied, match=f"lacks write on obj:proc/{a}/mine"):
        d(runtime, b, "obj.create", name="mine", type="text", value="planted", ns=f"proc/{a}")
    assert d(runtime, a, "obj.read", name="secret")["value"] == "a's plan"


def test_no_call_takes_a_digest_and_a_digest_as_a_name_reads_nothing(runtime, ws: Path) -> None:
    root = spawn(runtime, ws, allow=("proc:spawn=spawn",))
    made = d(runtime, root, "obj.create", name="plan", type="text", value="the plan")
    other = kid(runtime, root)
    digest = made["digest"]
    for guess in (digest, digest.removeprefix("sha256:")):
        with pytest.raises(alos.AlosError):
            d(runtime, other, "obj.read", name=guess)
    with pytest.raises(alos.Denied):  # an unknown argument is no key either
        d(runtime, other, "obj.read", name="plan", ns=f"proc/{root}", digest=digest)


def test_a_version_conflict_between_two_processes_lets_exactly_one_win(runtime, ws: Path) -> None:
    root = spawn(runtime, ws, allow=("proc:spawn=spawn",))
    d(runtime, root, "obj.create", name="plan", type="json", value={"step": 0})
    a, b = kid(runtime, root, "a"), kid(runtime, root, "b")
    for pid in (a, b):
        d(runtime, root, "obj.share", pid=pid, pattern="plan", rights=["read", "write"])
    seen = d(runtime, a, "obj.read", name="plan", ns=f"proc/{root}")["version"]
    assert d(runtime, b, "obj.read", name="plan", ns=f"proc/{root}")["version"] == seen
    d(runtime, a, "obj.write", name="plan", ns=f"proc/{root}", value={"step": "a"}, expect=seen)
    with pytest.raises(alos.Conflict, match=f"is at version {seen + 1}, not {seen}"):
        d(runtime, b, "obj.write", name="plan", ns=f"proc/{root}", value={"step": "b"}, expect=seen)
    assert d(runtime, root, "obj.read", name="plan")["value"] == {"step": "a"}
    log = d(runtime, root, "obj.log", name="plan")["versions"]
    assert [(v["version"], v["pid"]) for v in log] == [(2, a), (1, root)]


def test_races_across_connections_are_decided_by_the_store(store: str, ws: Path) -> None:
    host = alos.open(store, host=True)
    pid = spawn(host, ws)
    d(host, pid, "obj.create", name="counter", type="text", value="0")
    other = alos.open(store)  # a second terminal's connection to the same store
    try:
        v = d(host, pid, "obj.read", name="counter")["version"]
        d(other, 0, "obj.write", name="counter", ns=f"proc/{pid}", value="other", expect=v)
        with pytest.raises(alos.Conflict):
            d(host, pid, "obj.write", name="counter", value="host", expect=v)
    finally:
        other.close()
        host.close()


def test_names_types_and_sizes_are_checked_with_clear_errors(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws)
    bad_names = ["", "../x", "a/../b", "/abs", "a//b", "x\x00y", "tab\there", "é", "a" * 201]
    for name in bad_names:
        with pytest.raises(alos.Invalid, match="object name"):
            d(runtime, pid, "obj.create", name=name, type="text", value="x")
    with pytest.raises(alos.Invalid, match="unknown object type 'frob'"):
        d(runtime, pid, "obj.create", name="x", type="frob", value="x")
    with pytest.raises(alos.Invalid, match="text object's value is a string"):
        d(runtime, pid, "obj.create", name="x", type="text", value={"a": 1})
    with pytest.raises(alos.Invalid, match="not valid base64"):
        d(runtime, pid, "obj.create", name="x", type="bytes", value="not base64!")
    with pytest.raises(alos.Invalid, match="not a valid plan"):
        d(runtime, pid, "obj.create", name="x", type="plan", value={"no": "steps"})
    with pytest.raises(alos.Limit, match="at most 16777216 bytes"):
        d(runtime, pid, "obj.create", name="x", type="text", value="x" * (16 << 20 | 1))
    with pytest.raises(alos.Invalid, match="bad namespace"):
        d(runtime, pid, "obj.read", name="x", ns="proc/01")
    d(runtime, pid, "obj.create", name="y", type="text", value="1")
    with pytest.raises(alos.Exists, match="exists"):
        d(runtime, pid, "obj.create", name="y", type="text", value="2")
    assert d(runtime, pid, "obj.list")["objects"] == [{"name": "y", "type": "text", "version": 1, "bytes": 1,
                                                        "digest": d(runtime, pid, "obj.read", name="y")["digest"]}]  # fmt: skip


def test_an_image_type_is_validated_by_its_schema(runtime, ws: Path, tmp_path: Path) -> None:
    image = tmp_path / "typed.yaml"
    image.write_text(
        textwrap.dedent(
            """
            name: typed
            description: findings
            tools: [obj.create, obj.write]
            types:
              finding:
                type: object
                required: [severity]
                properties:
                  severity: {enum: [low, high]}
            """
        )
    )
    model = write_script(tmp_path / "none.jsonl", [])
    pid = asyncio.run(runtime.spawn(str(image), "g", workspace=str(ws), model=model))
    d(runtime, pid, "obj.create", name="f1", type="finding", value={"severity": "low"})
    with pytest.raises(alos.Invalid, match=r"at severity it fails the schema's enum \["):
        d(runtime, pid, "obj.write", name="f1", value={"severity": "urgent"})
    base = spawn(runtime, ws)
    with pytest.raises(alos.Invalid, match="unknown object type 'finding'"):
        d(runtime, base, "obj.create", name="f1", type="finding", value={"severity": "low"})


def test_append_and_delete_keep_every_version_readable(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws)
    d(runtime, pid, "obj.create", name="log", type="text", value="a")
    d(runtime, pid, "obj.append", name="log", value="b")
    d(runtime, pid, "obj.create", name="items", type="json", value=[1])
    d(runtime, pid, "obj.append", name="items", value={"two": 2})
    raw = base64.b64encode(b"\x00\xff").decode()
    d(runtime, pid, "obj.create", name="blob", type="bytes", value=raw)
    d(runtime, pid, "obj.append", name="blob", value=raw)
    assert d(runtime, pid, "obj.read", name="log")["value"] == "ab"
    assert d(runtime, pid, "obj.read", name="items")["value"] == [1, {"two": 2}]
    assert base64.b64decode(d(runtime, pid, "obj.read", name="blob")["value"]) == b"\x00\xff\x00\xff"
    d(runtime, pid, "obj.create", name="conf", type="json", value={"a": 1})
    with pytest.raises(alos.Invalid, match="holds a JSON object"):
        d(runtime, pid, "obj.append", name="conf", value=2)
    d(runtime, pid, "obj.delete", name="log")
    with pytest.raises(alos.NotFound):
        d(runtime, pid, "obj.read", name="log")
    with pytest.raises(alos.NotFound):
        d(runtime, pid, "obj.write", name="log", value="again", expect=3)
    assert d(runtime, pid, "obj.read", name="log", version=1)["value"] == "a"
    assert [o["name"] for o in d(runtime, pid, "obj.list")["objects"]] == ["blob", "conf", "items"]


def test_list_pages_by_prefix_and_after(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws)
    for name in ("notes/a", "notes/b", "notes/c", "other"):
        d(runtime, pid, "obj.create", name=name, type="text", value=name)
    page = d(runtime, pid, "obj.list", prefix="notes/", limit=2)
    assert [o["name"] for o in page["objects"]] == ["notes/a", "notes/b"] and page["next"] == "notes/b"
    rest = d(runtime, pid, "obj.list", prefix="notes/", after=page["next"], limit=2)
    assert [o["name"] for o in rest["objects"]] == ["notes/c"] and rest["next"] is None


def test_the_bridge_moves_content_without_it_reaching_the_model(runtime, ws: Path) -> None:
    secret = "the content the model never sees " * 100
    (ws / "big.txt").write_text(secret)
    turns = [
        {
            "content": "in",
            "tool_calls": [{"name": "obj_from_file", "arguments": {"path": "big.txt", "name": "big", "new": True}}],
        },
        {"content": "out", "tool_calls": [{"name": "obj_to_file", "arguments": {"name": "big", "path": "copy.txt"}}]},
    ]
    pid = spawn(runtime, ws, turns, allow=("fs:*=read,write",))
    asyncio.run(runtime.run())
    assert (ws / "copy.txt").read_text() == secret
    context = json.dumps(runtime.context(pid))
    assert "never sees" not in context and "3300" in context  # its size and digest, never its content
    assert d(runtime, 0, "obj.read", name="big", ns=f"proc/{pid}")["value"] == secret


def test_the_bridge_needs_both_the_file_right_and_the_object_right(runtime, ws: Path) -> None:
    root = spawn(runtime, ws, allow=("fs:README.md=read", "proc:spawn=spawn"))
    with pytest.raises(alos.Denied, match="lacks read on fs:"):
        d(runtime, root, "obj.from_file", path=".env", name="env", new=True)
    d(runtime, root, "obj.from_file", path="README.md", name="readme", new=True)
    with pytest.raises(alos.Denied, match="lacks write on fs:"):
        d(runtime, root, "obj.to_file", name="readme", path="out.md")
    other = kid(runtime, root, grants=[{"pattern": "fs:README.md", "rights": ["read"]}])
    with pytest.raises(alos.Denied, match=f"lacks write on obj:proc/{root}/readme"):
        d(runtime, other, "obj.from_file", path="README.md", name="readme", ns=f"proc/{root}")
    assert not (ws / "out.md").exists()


def test_writing_an_object_to_a_file_asks_with_the_diff(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, allow=("fs:*=read",), ask=("fs:*=write",))
    d(runtime, pid, "obj.create", name="readme", type="text", value="hello\nworld\n")
    parked = d(runtime, pid, "obj.to_file", name="readme", path="README.md")
    assert isinstance(parked, alos.Parked)
    req = runtime.requests()[0]
    assert req.syscall == "obj.to_file" and req.detail["object"] == f"proc/{pid}/readme"
    assert "+world" in req.detail["diff"] and req.detail["overwrite"] is True


def test_a_worker_fork_reads_its_parent_s_objects_and_may_not_write_them(runtime, ws: Path) -> None:
    root = spawn(runtime, ws, allow=("proc:spawn=spawn",))
    d(runtime, root, "obj.create", name="plan", type="text", value="v1")
    worker = int(d(runtime, root, "proc.fork", mode="worker", goal="look")["pid"])
    d(runtime, root, "obj.write", name="plan", value="v2")
    assert d(runtime, worker, "obj.read", name="plan", ns=f"proc/{root}")["value"] == "v2"  # a live view
    for syscall, extra in (("obj.write", {"value": "w"}), ("obj.delete", {}), ("obj.append", {"value": "w"})):
        with pytest.raises(alos.Denied, match=f"lacks (write|delete) on obj:proc/{root}/plan"):
            d(runtime, worker, syscall, name="plan", ns=f"proc/{root}", **extra)
    with pytest.raises(alos.Denied):
        d(runtime, worker, "obj.create", name="new", type="text", value="x", ns=f"proc/{root}")
    d(runtime, worker, "obj.create", name="mine", type="text", value="its own")  # its own namespace is its own


def test_copies_and_speculative_forks_merge_back_what_they_changed(runtime, ws: Path) -> None:
    root = spawn(runtime, ws, allow=("proc:spawn=spawn",))
    for name, value in (("keep", "k"), ("theirs", "t"), ("both", "b")):
        d(runtime, root, "obj.create", name=name, type="text", value=value)
    spec = int(d(runtime, root, "proc.fork", mode="speculative", goal="try")["pid"])
    assert {o["name"] for o in d(runtime, spec, "obj.list")["objects"]} == {"keep", "theirs", "both"}
    d(runtime, spec, "obj.write", name="theirs", value="changed by the child")
    d(runtime, spec, "obj.write", name="both", value="child")
    d(runtime, spec, "obj.create", name="made", type="json", value={"by": "child"})
    with pytest.raises(alos.Denied, match="speculative"):
        d(runtime, spec, "obj.to_file", name="theirs", path="out.txt")
    d(runtime, root, "obj.write", name="both", value="parent")  # the parent moved too: a conflict
    d(runtime, spec, "proc.exit", status="ok", result="done")
    merged = d(runtime, root, "proc.merge", pid=spec)
    assert {o["name"] for o in merged["objects"]} == {"theirs", "made"}
    assert [c["name"] for c in merged["conflicts"]] == ["both"]
    assert d(runtime, root, "obj.read", name="theirs")["value"] == "changed by the child"
    assert d(runtime, root, "obj.read", name="both")["value"] == "parent"
    assert d(runtime, root, "obj.read", name="theirs")["links"][0]["kind"] == "derived_from"
    again = d(runtime, root, "proc.merge", pid=spec)
    assert again["objects"] == [] and [c["name"] for c in again["conflicts"]] == ["both"]


def test_a_fork_copies_nothing_its_parent_may_not_pass(runtime, ws: Path) -> None:
    root = spawn(runtime, ws, allow=("proc:spawn=spawn",))
    d(runtime, root, "obj.create", name="public", type="text", value="p")
    d(runtime, root, "obj.create", name="private", type="text", value="s")
    d(runtime, 0, "cap.grant", pid=root, pattern=f"obj:proc/{root}/private", rights=["read"], effect="deny")
    copy = int(d(runtime, root, "proc.fork", mode="copy", goal="go")["pid"])
    assert [o["name"] for o in d(runtime, copy, "obj.list")["objects"]] == ["public"]
    worker = int(d(runtime, root, "proc.fork", mode="worker", goal="go")["pid"])
    with pytest.raises(alos.Denied):
        d(runtime, worker, "obj.read", name="private", ns=f"proc/{root}")


def test_sharing_passes_only_what_is_held_and_a_revoke_takes_it_back(runtime, ws: Path) -> None:
    root = spawn(runtime, ws, allow=("proc:spawn=spawn",))
    d(runtime, root, "obj.create", name="plan", type="text", value="p")
    other = kid(runtime, root)
    with pytest.raises(alos.Denied, match="obj_share"):
        d(runtime, root, "obj.share", pid=other, pattern="obj:proc/999/x", rights=["read"])
    with pytest.raises(alos.Invalid, match="object and namespace rights"):
        d(runtime, root, "obj.share", pid=other, pattern="fs:*", rights=["read"])
    shared = d(runtime, root, "obj.share", pid=other, pattern="plan", rights=["read"])
    assert d(runtime, other, "obj.read", name="plan", ns=f"proc/{root}")["value"] == "p"
    own = next(c for c in runtime.kernel.caps(root) if c.pattern == f"obj:proc/{root}/*")
    d(runtime, 0, "cap.revoke", id=own.id)
    with pytest.raises(alos.Denied):
        d(runtime, other, "obj.read", name="plan", ns=f"proc/{root}")
    assert shared["capabilities"]


def test_a_made_namespace_is_its_maker_s_to_share(runtime, ws: Path) -> None:
    root = spawn(runtime, ws, allow=("proc:spawn=spawn", "ns:team=admin"))
    with pytest.raises(alos.Invalid, match="the processes' own"):
        d(runtime, root, "ns.create", name="proc/7")
    with pytest.raises(alos.Denied, match="lacks admin on ns:other"):
        d(runtime, root, "ns.create", name="other")
    d(runtime, root, "ns.create", name="team")
    with pytest.raises(alos.Exists):
        d(runtime, root, "ns.create", name="team")
    d(runtime, root, "obj.create", name="board", type="text", value="hi", ns="team")
    member = kid(runtime, root)
    d(runtime, root, "obj.share", pid=member, pattern="obj:team/*", rights=["read", "write"])
    d(runtime, member, "obj.append", name="board", ns="team", value=" there")
    assert d(runtime, root, "obj.read", name="board", ns="team")["value"] == "hi there"
    with pytest.raises(alos.Denied, match="lacks write on ns:team"):
        d(runtime, member, "obj.create", name="mine", type="text", value="x", ns="team")


def test_the_model_is_shown_the_image_s_objects_and_the_audit_names_their_versions(
    runtime, ws: Path, tmp_path: Path
) -> None:
    image = tmp_path / "noted.yaml"
    image.write_text("name: noted\ndescription: keeps a plan in view\ntools: [obj.write]\ncontext:\n"
                     "  objects: [plan]\n")  # fmt: skip
    turns = [
        {"content": "revise", "tool_calls": [{"name": "obj_write", "arguments": {"name": "plan", "value": "step two"}}]}
    ]
    model = write_script(tmp_path / "noted.jsonl", turns)
    pid = asyncio.run(runtime.spawn(str(image), "g", workspace=str(ws), model=model))
    d(runtime, pid, "obj.create", name="plan", type="text", value="step one")
    asyncio.run(runtime.run())
    calls = [r for r in runtime.audit(pid) if r.syscall == "model.call"]
    shown = [r.detail.get("shown") for r in calls]
    assert shown[0][0]["object"] == f"proc/{pid}/plan" and shown[0][0]["version"] == 1
    assert shown[1][0]["version"] == 2  # the second call saw the version the first turn wrote


def test_compaction_summarizes_old_turns_into_an_object(runtime, ws: Path, tmp_path: Path) -> None:
    image = tmp_path / "compact.yaml"
    image.write_text("name: compact\ndescription: compacts\ntools: [fs.read]\ncontext:\n  max_tokens: 256\n"
                     "  compact: true\n")  # fmt: skip
    (ws / "big.txt").write_text("line of text\n" * 60)
    # every turn reads again; a compaction's summary is the text of the turn that answers it
    turns = [{"content": "SUMMARY: big.txt has lines of text", "tool_calls": [call("fs_read", path="big.txt")]}] * 6
    model = write_script(tmp_path / "compact.jsonl", turns)
    pid = asyncio.run(runtime.spawn(str(image), "g", workspace=str(ws), model=model,
                                    grants=grants(ws, allow=("fs:*=read",))))  # fmt: skip
    asyncio.run(runtime.run())
    summary = d(runtime, 0, "obj.read", name="context/summary", ns=f"proc/{pid}")
    assert summary["type"] == "context" and summary["value"]["summary"] == "SUMMARY: big.txt has lines of text"
    msgs = runtime.context(pid)
    assert msgs[2]["content"].startswith("[a summary of") and msgs[2]["content"].endswith("lines of text")
    reads = [r for r in runtime.audit(pid) if r.syscall == "fs.read"]
    calls = [r for r in runtime.audit(pid) if r.syscall == "model.call"]
    assert len(reads) == len(turns) - summary["version"]  # each summary took the line of one turn
    assert any(r.detail.get("messages") == 2 and r.outcome == "ok" for r in calls)  # the summary's own call


def test_a_payload_changed_on_disk_is_never_served_and_the_check_names_it(runtime, ws: Path, store: str) -> None:
    pid = spawn(runtime, ws)
    d(runtime, pid, "obj.create", name="data", type="text", value="x" * 10_000)
    d(runtime, pid, "obj.create", name="gone", type="text", value="y" * 10_000)
    blobs = [p for p in Path(store + ".blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 2
    data = next(p for p in blobs if p.read_text()[0] == "x")
    data.write_text("x" * 9_999 + "z")
    next(p for p in blobs if p is not data).unlink()
    with pytest.raises(alos.AlosError, match="corrupt on disk; it is not served") as err:
        d(runtime, pid, "obj.read", name="data")
    assert err.value.code == "corrupt"
    problems = runtime.store_problems()
    assert {(p["object"], p["version"]) for p in problems} == {(f"proc/{pid}/data", 1), (f"proc/{pid}/gone", 1)}
    assert any("missing" in p["problem"] for p in problems)


def test_gc_keeps_what_versions_and_images_name(runtime, ws: Path, store: str) -> None:
    pid = spawn(runtime, ws)
    d(runtime, pid, "obj.create", name="data", type="text", value="x" * 10_000)
    stray = Path(store + ".blobs") / "ab" / ("ab" + "0" * 62)
    stray.parent.mkdir(exist_ok=True)
    stray.write_bytes(b"left by a writer that died")
    tmp = Path(store + ".blobs") / "ab" / ".tmp-1-ab00"
    tmp.write_bytes(b"half")
    assert runtime.sweep(grace=3600) == (0, 0)  # too young: a writer's row may be on its way
    assert runtime.sweep(grace=0)[0] == 2
    assert not stray.exists() and not tmp.exists()
    assert d(runtime, pid, "obj.read", name="data")["bytes"] == 10_000


_WRITER = textwrap.dedent(
    """
    import asyncio, sys, alos
    rt = alos.open(sys.argv[1], host=True)
    pid = int(sys.argv[2])
    async def main():
        i = 0
        while True:
            i += 1
            await rt.dispatch(pid, "obj.write", {"name": "big", "value": str(i % 10) * (1 << 20)})
            print(i, flush=True)
    asyncio.run(main())
    """
)


@pytest.mark.slow
def test_a_kill_9_during_large_writes_leaves_a_whole_version(store: str, ws: Path) -> None:
    rt = alos.open(store, host=True)
    pid = spawn(rt, ws)
    d(rt, pid, "obj.create", name="big", type="text", value="0" * (1 << 20))
    rt.close()
    for _ in range(3):
        p = subprocess.Popen([sys.executable, "-c", _WRITER, store, str(pid)], stdout=subprocess.PIPE, text=True)
        assert p.stdout is not None
        for _ in range(1 + os.getpid() % 3):
            p.stdout.readline()  # a few writes done, the next under way
        p.kill()
        p.wait()
        rt = alos.open(store, host=True)
        try:
            got = d(rt, 0, "obj.read", name="big", ns=f"proc/{pid}")
            assert got["value"] == got["value"][0] * (1 << 20)
            assert rt.store_problems() == []
        finally:
            rt.close()


def test_the_bridge_counts_the_bytes_it_moves_against_the_budget(runtime, ws: Path, tmp_path: Path) -> None:
    (ws / "big.txt").write_text("x" * 100_000)
    model = write_script(tmp_path / "none.jsonl", [])
    pid = asyncio.run(runtime.spawn("base", "g", workspace=str(ws), model=model, budget={"bytes_written": 50},
                                    grants=grants(ws, allow=("fs:*=read,write",))))  # fmt: skip
    assert d(runtime, pid, "obj.from_file", path="big.txt", name="big", new=True)["bytes"] == 100_000
    assert runtime.budgets()[pid]["bytes_written"] == (50, 100_000)  # charged once it was moved
    with pytest.raises(alos.Limit, match="bytes_written exhausted"):
        d(runtime, pid, "obj.to_file", name="big", path="out.txt")
    assert not (ws / "out.txt").exists()


def test_an_object_write_under_ask_shows_the_person_what_it_would_write(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, allow=("proc:spawn=spawn",))
    d(runtime, pid, "obj.create", name="plan", type="text", value="v1")
    d(runtime, 0, "cap.grant", pid=pid, pattern=f"obj:proc/{pid}/plan", rights=["write"], effect="ask")
    parked = d(runtime, pid, "obj.write", name="plan", value="\x1b[31mred\x1b[0m and more", expect=1)
    assert isinstance(parked, alos.Parked)
    shown = runtime.requests()[0].detail
    assert shown["object"] == f"proc/{pid}/plan" and shown["current_version"] == 1 and shown["expect"] == 1
    assert shown["bytes"] == len("\x1b[31mred\x1b[0m and more") and "\x1b" not in shown["preview"]
    assert shown["append"] is False and shown["truncated"] is False


def test_bad_arguments_name_what_is_wrong(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws)
    d(runtime, pid, "obj.create", name="a", type="text", value="x")
    with pytest.raises(alos.Invalid, match="object name"):
        d(runtime, pid, "obj.link", name="a", kind="cites", to="../b")
    with pytest.raises(alos.Invalid, match="version"):
        d(runtime, pid, "obj.read", name="a", version=0)
    with pytest.raises(alos.NotFound, match="no namespace nowhere"):
        d(runtime, 0, "obj.create", name="a", type="text", value="x", ns="nowhere")
