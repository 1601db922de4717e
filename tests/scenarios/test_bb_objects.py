"""Black-box: Object Memory as docs/objects.md promises it, attacked the way a hostile model would.

Namespaces and capabilities (names are not capabilities, digests read nothing), versions and
races, validation of names, types and sizes, the file/object bridge, fork views and merges,
the objects shown to the model, and payloads that are corrupt on disk or cut by kill -9.
Driven through ``Runtime.dispatch`` (the Python API) and, for `alos store check`, the CLI.
Checkpoints are in test_bb_checkpoints.py.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
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

import pytest

import alos
from tests.scenarios.bb_support import alos as alos_cli
from tests.scenarios.bb_support import json_lines, write_script

EFFECT = {"allow": alos.Effect.ALLOW, "ask": alos.Effect.ASK, "deny": alos.Effect.DENY}
BIG = 5000  # > 4 KiB: the payload lives in the blob directory


def call(tool: str, /, **arguments: Any) -> dict[str, Any]:
    return {"name": tool, "arguments": arguments}


def turn(*calls: dict[str, Any], content: str = "step") -> dict[str, Any]:
    return {"content": content, "tool_calls": list(calls)}


class World:
    """A host runtime on a fresh store, a workspace, and shorthands for dispatch."""

    def __init__(self, tmp_path: Path, record: bool = False) -> None:
        self.tmp = tmp_path
        self.ws = tmp_path / "ws"
        self.ws.mkdir()
        (self.ws / "README.md").write_text("hello readme\n")
        self.store = tmp_path / "state" / "store.db"
        self.blobs = Path(str(self.store) + ".blobs")
        self.record = tmp_path / "record.jsonl"
        self.rt = alos.open(str(self.store), host=True, record=str(self.record) if record else None)
        self.n = 0

    async def proc(
        self,
        *allow: str,
        deny: tuple[str, ...] = (),
        ask: tuple[str, ...] = (),
        name: str = "main",
        image: str = "base",
        turns: list[dict[str, Any]] | None = None,
        budget: dict[str, int] | None = None,
    ) -> int:
        self.n += 1
        script = write_script(self.tmp / f"script-{self.n}.jsonl", turns or [])
        specs = {"allow": allow, "deny": deny, "ask": ask}
        grants = [alos.parse_grant(s, EFFECT[e], str(self.ws)) for e, ss in specs.items() for s in ss]
        return await self.rt.spawn(
            image, "goal", workspace=str(self.ws), model=f"script:{script}", grants=grants, name=name, budget=budget
        )

    async def ok(self, pid: int, syscall: str, /, **args: Any) -> Any:
        return await self.rt.dispatch(pid, syscall, args)

    async def err(self, pid: int, syscall: str, /, **args: Any) -> alos.AlosError:
        try:
            out = await self.rt.dispatch(pid, syscall, args)
        except alos.AlosError as e:
            return e
        raise AssertionError(f"{syscall} {args} by {pid} was not refused: {out!r}")

    async def value(self, ns: str, name: str) -> Any:
        return (await self.ok(0, "obj.read", name=name, ns=ns))["value"]

    async def names(self, ns: str) -> list[str]:
        return [o["name"] for o in (await self.ok(0, "obj.list", ns=ns))["objects"]]

    def blob(self, digest: str) -> Path:
        h = digest.removeprefix("sha256:")
        return self.blobs / h[:2] / h


def run(tmp_path: Path, body: Callable[[World], Awaitable[None]], record: bool = False) -> None:
    w = World(tmp_path, record=record)
    try:
        asyncio.run(body(w))
    finally:
        w.rt.close()


# -- namespaces: isolation, and names are not capabilities ---------------------------------------


def test_siblings_cannot_reach_each_others_objects_by_any_syscall(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        a = await w.proc(name="a")
        b = await w.proc(name="b")
        await w.ok(a, "obj.create", name="plan", type="text", value="A's plan")
        await w.ok(b, "obj.create", name="plan", type="text", value="B's plan")  # the same bare name, its own
        ns = f"proc/{a}"
        attempts = [
            ("obj.read", {"name": "plan", "ns": ns}),
            ("obj.read", {"name": "plan", "ns": ns, "version": 1}),
            ("obj.log", {"name": "plan", "ns": ns}),
            ("obj.list", {"ns": ns}),
            ("obj.write", {"name": "plan", "ns": ns, "value": "B was here"}),
            ("obj.append", {"name": "plan", "ns": ns, "value": "!"}),
            ("obj.create", {"name": "planted", "ns": ns, "type": "text", "value": "x"}),
            ("obj.delete", {"name": "plan", "ns": ns}),
            ("obj.link", {"name": "plan", "ns": ns, "kind": "cites", "to": "plan"}),
            ("obj.link", {"name": "plan", "kind": "cites", "to": "plan", "to_ns": ns}),
            ("obj.to_file", {"name": "plan", "ns": ns, "path": "stolen.txt"}),
            ("obj.share", {"pid": b, "pattern": f"obj:{ns}/plan", "rights": ["read"]}),
        ]
        for syscall, args in attempts:
            e = await w.err(b, syscall, **args)
            assert isinstance(e, alos.Denied), (syscall, e)
            assert "B's plan" not in str(e) and "A's plan" not in str(e)
        assert await w.value(ns, "plan") == "A's plan"
        assert await w.names(ns) == ["plan"]
        assert (await w.ok(a, "obj.log", name="plan"))["versions"][0]["version"] == 1
        assert (await w.ok(b, "obj.read", name="plan"))["value"] == "B's plan"
        assert not (w.ws / "stolen.txt").exists()

    run(tmp_path, body)


def test_a_refusal_is_the_same_for_an_existing_and_a_missing_name(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        a = await w.proc(name="a")
        b = await w.proc("ns:*=admin", "fs:*=read", name="b")
        await w.ok(a, "obj.create", name="secret", type="text", value="s3cret")
        await w.ok(a, "obj.write", name="secret", value="s3cret v2")
        ns = f"proc/{a}"
        calls: list[tuple[str, dict[str, Any]]] = [
            ("obj.read", {"ns": ns}),
            ("obj.read", {"ns": ns, "version": 2}),
            ("obj.log", {"ns": ns}),
            ("obj.write", {"ns": ns, "value": "x"}),
            ("obj.write", {"ns": ns, "value": "x", "expect": 2}),
            ("obj.append", {"ns": ns, "value": "x"}),
            ("obj.create", {"ns": ns, "type": "text", "value": "x"}),
            ("obj.delete", {"ns": ns}),
            ("obj.to_file", {"ns": ns, "path": "out.txt"}),
            ("obj.from_file", {"ns": ns, "path": "README.md"}),
        ]
        for syscall, args in calls:
            there = await w.err(b, syscall, name="secret", **args)
            absent = await w.err(b, syscall, name="nosuch", **args)
            assert type(there) is type(absent) is alos.Denied, (syscall, there, absent)
            assert str(there).replace("secret", "NAME") == str(absent).replace("nosuch", "NAME"), syscall
        # a version that exists and one that does not
        v2 = await w.err(b, "obj.read", name="secret", ns=ns, version=2)
        v99 = await w.err(b, "obj.read", name="secret", ns=ns, version=99)
        assert str(v2) == str(v99)
        # links: a target that exists and one that does not
        await w.ok(b, "obj.create", name="mine", type="text", value="m")
        l1 = await w.err(b, "obj.link", name="mine", kind="cites", to="secret", to_ns=ns)
        l2 = await w.err(b, "obj.link", name="mine", kind="cites", to="nosuch", to_ns=ns)
        assert str(l1).replace("secret", "NAME") == str(l2).replace("nosuch", "NAME")
        # namespaces: one that exists (and holds objects) and one that does not
        await w.ok(b, "ns.create", name="made")
        await w.ok(b, "obj.create", name="x", ns="made", type="text", value="x")
        e1 = await w.err(a, "obj.list", ns="made")
        e2 = await w.err(a, "obj.list", ns="never")
        assert str(e1).replace("made", "NS") == str(e2).replace("never", "NS")
        assert "s3cret" not in json.dumps([str(x) for x in (there, absent, v2, v99, l1, l2)])

    run(tmp_path, body)


@pytest.mark.parametrize(
    "ns",
    [
        "proc/1/../2",
        "proc/2/",
        "/proc/2",
        "proc/02",
        "PROC/2",
        "proc/ 2",
        "proc/*",
        "proc/2/*",
        "proc",
        "proc/0",
        "proc/-2",
        "",
        "..",
        "proc/1/proc/2",
        "team\n",
        "a" * 65,
    ],
)
def test_hostile_namespaces_are_refused_as_invalid(tmp_path: Path, ns: str) -> None:
    async def body(w: World) -> None:
        a = await w.proc(name="a")
        b = await w.proc(name="b")
        await w.ok(b, "obj.create", name="secret", type="text", value="B-SECRET")
        for syscall, args in [
            ("obj.read", {"name": "secret"}),
            ("obj.list", {}),
            ("obj.write", {"name": "secret", "value": "x"}),
        ]:
            e = await w.err(a, syscall, ns=ns, **args)
            assert isinstance(e, alos.Invalid), (syscall, e)
            assert "B-SECRET" not in str(e)
        assert await w.value(f"proc/{b}", "secret") == "B-SECRET"

    run(tmp_path, body)


def test_a_bare_name_that_looks_like_a_path_stays_in_the_callers_namespace(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        a = await w.proc(name="a")
        b = await w.proc(name="b")
        await w.ok(a, "obj.create", name="secret", type="text", value="A-SECRET")
        made = await w.ok(b, "obj.create", name=f"proc/{a}/secret", type="text", value="B's own")
        assert made["ns"] == f"proc/{b}" and made["name"] == f"proc/{a}/secret"
        assert (await w.ok(b, "obj.read", name=f"proc/{a}/secret"))["value"] == "B's own"
        assert await w.value(f"proc/{a}", "secret") == "A-SECRET"
        assert await w.names(f"proc/{a}") == ["secret"]

    run(tmp_path, body)


def test_a_namespace_grant_stops_at_the_namespace_boundary(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        a = await w.proc(name="a")
        for ns in ("team", "team2", "team-b"):
            await w.ok(0, "ns.create", name=ns)
            await w.ok(0, "obj.create", name="doc", ns=ns, type="text", value=f"in {ns}")
        await w.ok(0, "cap.grant", pid=a, pattern="obj:team/*", rights=["read", "write"])
        await w.ok(0, "cap.grant", pid=a, pattern="ns:team", rights=["list"])
        assert (await w.ok(a, "obj.read", name="doc", ns="team"))["value"] == "in team"
        assert [o["name"] for o in (await w.ok(a, "obj.list", ns="team"))["objects"]] == ["doc"]
        for ns in ("team2", "team-b"):
            assert isinstance(await w.err(a, "obj.read", name="doc", ns=ns), alos.Denied)
            assert isinstance(await w.err(a, "obj.write", name="doc", ns=ns, value="x"), alos.Denied)
            assert isinstance(await w.err(a, "obj.list", ns=ns), alos.Denied)
        # a name inside team that spells another namespace is still inside team
        assert isinstance(await w.err(a, "obj.read", name="../team2/doc", ns="team"), alos.Invalid)

    run(tmp_path, body)


def test_no_syscall_reads_by_digest(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        a = await w.proc(name="a")
        b = await w.proc(name="b")
        made = await w.ok(a, "obj.create", name="secret", type="text", value="A-SECRET")
        digest = made["digest"]
        hexd = digest.removeprefix("sha256:")
        assert isinstance(await w.err(b, "obj.read", name=digest), alos.Invalid)
        assert isinstance(await w.err(b, "obj.read", name=hexd), alos.NotFound)  # a name in B's own namespace
        e = await w.err(b, "obj.read", name=hexd, ns=f"proc/{a}")
        assert isinstance(e, alos.Denied)
        # an extra 'digest' argument changes nothing: still B's own (missing) object
        assert isinstance(await w.err(b, "obj.read", name="secret", digest=digest), alos.NotFound)

    run(tmp_path, body)


def test_a_digest_seen_in_a_listing_is_not_a_capability_through_image_seeds(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        a = await w.proc(name="victim")
        b = await w.proc("proc:spawn=spawn", "image:loot=write", "model:script=execute", name="thief")
        secret = "launch code 0000 " * 400  # > 4 KiB: kept in the blob directory
        await w.ok(a, "obj.create", name="secret", type="text", value=secret)
        # B may list A's namespace (names, sizes, digests) but read nothing in it
        await w.ok(0, "cap.grant", pid=b, pattern=f"ns:proc/{a}", rights=["list"])
        assert isinstance(await w.err(b, "obj.read", name="secret", ns=f"proc/{a}"), alos.Denied)
        [row] = (await w.ok(b, "obj.list", ns=f"proc/{a}"))["objects"]
        seed = {"name": "loot", "type": "text", "digest": row["digest"].removeprefix("sha256:"), "bytes": row["bytes"]}
        image = {"name": "loot", "description": "x", "tools": ["obj.read", "proc.exit"], "objects": [seed]}
        leaked = None
        try:
            await w.ok(b, "image.register", image=image)
            child = await w.ok(b, "proc.spawn", name="c", goal="g", image="loot")
            leaked = (await w.ok(child["pid"], "obj.read", name="loot"))["value"]
        except alos.AlosError:
            pass  # refused somewhere on the way: what we want
        assert leaked != secret

    run(tmp_path, body)


def test_ns_create_refuses_process_namespaces_and_existing_ones(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        a = await w.proc(name="a")
        assert isinstance(await w.err(a, "ns.create", name="team"), alos.Denied)  # no admin on ns:team
        await w.ok(0, "cap.grant", pid=a, pattern="ns:*", rights=["admin"])
        b = await w.proc("ns:*=admin", name="b")
        for bad in [f"proc/{a}", f"proc/{b}", "proc/999", "proc", "Team", "team/x", "", "t\n", "a" * 65, "../x"]:
            assert isinstance(await w.err(a, "ns.create", name=bad), alos.Invalid), bad
        made = await w.ok(a, "ns.create", name="team")
        assert made["ns"] == "team"
        await w.ok(a, "obj.create", name="doc", ns="team", type="text", value="TEAM-DOC")
        again = await w.err(b, "ns.create", name="team")  # B may make namespaces, not take A's
        assert again.code in ("exists", "conflict"), again
        assert isinstance(await w.err(b, "obj.read", name="doc", ns="team"), alos.Denied)
        assert isinstance(await w.err(b, "obj.list", ns="team"), alos.Denied)
        assert isinstance(await w.err(b, "obj.write", name="doc", ns="team", value="x"), alos.Denied)
        assert await w.value("team", "doc") == "TEAM-DOC"

    run(tmp_path, body)


# -- obj.share ----------------------------------------------------------------------------------


def test_share_passes_only_a_subset_of_held_rights_and_a_revoke_takes_it_back(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        a = await w.proc("proc:spawn=spawn", name="a")
        kid = (await w.ok(a, "proc.spawn", name="kid", goal="g"))["pid"]
        stranger = await w.proc(name="stranger")
        await w.ok(0, "ns.create", name="team")
        cap = await w.ok(0, "cap.grant", pid=a, pattern="obj:team/*", rights=["read", "write"], delegable=True)
        await w.ok(0, "cap.grant", pid=a, pattern="ns:team", rights=["list", "write"], delegable=True)
        await w.ok(0, "cap.grant", pid=a, pattern="obj:team/private", rights=["read"], effect="deny")
        await w.ok(a, "obj.create", name="doc", ns="team", type="text", value="DOC")
        await w.ok(a, "obj.create", name="private", ns="team", type="text", value="PRIVATE")
        await w.ok(a, "obj.create", name="mine", type="text", value="MINE")
        # more than held, wider than held, other kinds, malformed: refused
        refused = [
            {"pattern": "obj:team/*", "rights": ["read", "delete"]},
            {"pattern": "obj:team/*", "rights": ["admin"]},
            {"pattern": "obj:*", "rights": ["read"]},
            {"pattern": "obj:proc/999/*", "rights": ["read"]},
            {"pattern": f"obj:proc/{kid}/*", "rights": ["read"]},
            {"pattern": "ns:team", "rights": ["admin"]},
            {"pattern": "obj:team/do*", "rights": ["read"]},
            {"pattern": "fs:*", "rights": ["read"]},
            {"pattern": "proc:spawn", "rights": ["spawn"]},
            {"pattern": "obj:team/*", "rights": []},
            {"pattern": "obj:team/*", "rights": ["bogus"]},
        ]
        for share in refused:
            e = await w.err(a, "obj.share", pid=kid, **share)
            assert isinstance(e, (alos.Denied, alos.Invalid)), (share, e)
        assert isinstance(await w.err(kid, "obj.read", name="doc", ns="team"), alos.Denied)
        # a process may share only with one it may send to
        assert isinstance(await w.err(a, "obj.share", pid=stranger, pattern="mine", rights=["read"]), alos.Denied)
        assert isinstance(await w.err(stranger, "obj.read", name="mine", ns=f"proc/{a}"), alos.Denied)
        # a subset: read only; the deny on private comes along
        await w.ok(a, "obj.share", pid=kid, pattern="obj:team/*", rights=["read"])
        await w.ok(a, "obj.share", pid=kid, pattern="mine", rights=["read"])
        assert (await w.ok(kid, "obj.read", name="doc", ns="team"))["value"] == "DOC"
        assert (await w.ok(kid, "obj.read", name="mine", ns=f"proc/{a}"))["value"] == "MINE"
        assert isinstance(await w.err(kid, "obj.read", name="private", ns="team"), alos.Denied)
        assert isinstance(await w.err(kid, "obj.write", name="doc", ns="team", value="x"), alos.Denied)
        assert isinstance(await w.err(kid, "obj.list", ns="team"), alos.Denied)
        assert isinstance(await w.err(kid, "obj.write", name="mine", ns=f"proc/{a}", value="x"), alos.Denied)
        # revoking A's capability revokes what A shared from it
        await w.ok(0, "cap.revoke", id=cap["id"])
        assert isinstance(await w.err(kid, "obj.read", name="doc", ns="team"), alos.Denied)
        assert isinstance(await w.err(a, "obj.read", name="doc", ns="team"), alos.Denied)
        assert (await w.ok(kid, "obj.read", name="mine", ns=f"proc/{a}"))["value"] == "MINE"  # another capability

    run(tmp_path, body)


# -- versions and races --------------------------------------------------------------------------


def test_a_version_conflict_between_two_processes(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        a = await w.proc("proc:spawn=spawn", name="a")
        b = (await w.ok(a, "proc.spawn", name="b", goal="g"))["pid"]
        await w.ok(a, "obj.create", name="plan", type="plan", value={"steps": ["draft"]})
        await w.ok(a, "obj.share", pid=b, pattern="plan", rights=["read", "write"])
        seen_a = await w.ok(a, "obj.read", name="plan")
        seen_b = await w.ok(b, "obj.read", name="plan", ns=f"proc/{a}")
        assert seen_a["version"] == seen_b["version"] == 1
        await w.ok(a, "obj.write", name="plan", value={"steps": ["a's"]}, expect=seen_a["version"])
        e = await w.err(b, "obj.write", name="plan", ns=f"proc/{a}", value={"steps": ["b's"]}, expect=1)
        assert isinstance(e, alos.Conflict), e
        assert "version 2" in str(e) and "not 1" in str(e)
        e = await w.err(b, "obj.append", name="plan", ns=f"proc/{a}", value="x", expect=1)
        assert isinstance(e, (alos.Conflict, alos.Invalid)), e
        assert await w.value(f"proc/{a}", "plan") == {"steps": ["a's"]}
        again = await w.ok(b, "obj.read", name="plan", ns=f"proc/{a}")
        done = await w.ok(
            b, "obj.write", name="plan", ns=f"proc/{a}", value={"steps": ["b's"]}, expect=again["version"]
        )
        assert done["version"] == 3
        assert [v["version"] for v in (await w.ok(a, "obj.log", name="plan"))["versions"]] == [3, 2, 1]

    run(tmp_path, body)


def test_two_runtimes_on_one_store_never_both_win_a_race(tmp_path: Path) -> None:
    """Threads, each with its own Runtime on the same store, increment one counter with expect."""

    async def setup(w: World) -> tuple[int, int]:
        a = await w.proc("proc:spawn=spawn", name="a")
        b = (await w.ok(a, "proc.spawn", name="b", goal="g"))["pid"]
        await w.ok(a, "obj.create", name="ctr", type="json", value=0)
        await w.ok(a, "obj.share", pid=b, pattern="ctr", rights=["read", "write"])
        return a, b

    w = World(tmp_path)
    try:
        a, b = asyncio.run(setup(w))
    finally:
        w.rt.close()
    wins: list[int] = []
    conflicts: list[str] = []
    problems: list[BaseException] = []
    per_thread = 8

    def worker(pid: int) -> None:
        rt = alos.open(str(w.store))

        async def go() -> None:
            for _ in range(per_thread):
                for _try in range(200):
                    cur = await rt.dispatch(pid, "obj.read", {"name": "ctr", "ns": f"proc/{a}"})
                    try:
                        done = await rt.dispatch(
                            pid,
                            "obj.write",
                            {"name": "ctr", "ns": f"proc/{a}", "value": cur["value"] + 1, "expect": cur["version"]},
                        )
                    except alos.Conflict as e:
                        conflicts.append(str(e))
                        continue
                    wins.append(done["version"])
                    break

        try:
            asyncio.run(go())
        except BaseException as e:
            problems.append(e)
        finally:
            rt.close()

    threads = [threading.Thread(target=worker, args=(p,)) for p in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not problems, problems
    total = per_thread * len(threads)
    assert len(wins) == total and len(set(wins)) == total, (wins, conflicts[:3])
    rt = alos.open(str(w.store))
    try:
        final = asyncio.run(rt.dispatch(0, "obj.read", {"name": "ctr", "ns": f"proc/{a}"}))
    finally:
        rt.close()
    assert final["value"] == total and final["version"] == total + 1


def test_expect_on_a_deleted_object_resurrects_nothing(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        a = await w.proc()
        await w.ok(a, "obj.create", name="doc", type="text", value="v1")
        gone = await w.ok(a, "obj.delete", name="doc")
        assert gone["version"] == 2
        for syscall, args in [
            ("obj.write", {"value": "zombie", "expect": 1}),
            ("obj.write", {"value": "zombie", "expect": 2}),
            ("obj.write", {"value": "zombie"}),
            ("obj.append", {"value": "zombie", "expect": 1}),
            ("obj.delete", {}),
            ("obj.link", {"kind": "cites", "to": "doc"}),
        ]:
            e = await w.err(a, syscall, name="doc", **args)
            assert isinstance(e, (alos.NotFound, alos.Conflict)), (syscall, e)
        assert isinstance(await w.err(a, "obj.read", name="doc"), alos.NotFound)
        assert (await w.ok(a, "obj.read", name="doc", version=1))["value"] == "v1"  # history stays
        assert isinstance(await w.err(a, "obj.read", name="doc", version=2), alos.NotFound)  # the deletion
        assert (await w.ok(a, "obj.list"))["objects"] == []
        # made again (even with another type), its versions go on
        again = await w.ok(a, "obj.create", name="doc", type="json", value={"n": 1})
        assert again["version"] == 3
        assert isinstance(await w.err(a, "obj.create", name="doc", type="json", value={"n": 2}), alos.AlosError)
        assert (await w.ok(a, "obj.read", name="doc", version=1))["value"] == "v1"
        for bad in (0, -1, "1", True, 1.0):
            assert isinstance(await w.err(a, "obj.write", name="doc", value={"n": 9}, expect=bad), alos.Invalid)
        assert (await w.ok(a, "obj.read", name="doc"))["version"] == 3

    run(tmp_path, body)


# -- validation: names, types, sizes ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "a/../../b",
        "/etc/passwd",
        "",
        "a\x00b",
        "a\nb",
        "a\x1b]0;pwned\x07",
        "a\u202eb",
        "x" * 201,
        "x" * 10_000,
        "a//b",
        "a/",
        "/a",
        ".",
        "..",
        "a/./b",
        "é",
        "a b",
        "sha256:abc",
        "a*",
        "a\\b",
        "C:\\x",
    ],
)
def test_hostile_object_names_are_refused_with_a_clear_error(tmp_path: Path, name: str) -> None:
    async def body(w: World) -> None:
        a = await w.proc()
        e = await w.err(a, "obj.create", name=name, type="text", value="v")
        assert isinstance(e, alos.Invalid), e
        assert "object name" in str(e) and "200" in str(e)
        assert len(str(e)) < 1000  # a 10,000-character name is not echoed whole
        for ch in ("\x00", "\n", "\x1b", "\u202e"):
            assert ch not in str(e)
        assert (await w.ok(a, "obj.list"))["objects"] == []
        assert isinstance(await w.err(a, "obj.read", name=name), alos.Invalid)

    run(tmp_path, body)


def test_a_name_of_exactly_200_characters_is_accepted(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        a = await w.proc()
        name = "d/" * 50 + "x" * 100
        assert len(name) == 200
        await w.ok(a, "obj.create", name=name, type="text", value="deep")
        assert (await w.ok(a, "obj.read", name=name))["value"] == "deep"

    run(tmp_path, body)


@pytest.mark.parametrize(
    ("type_", "value"),
    [
        ("TEXT", "x"),
        ("nope", "x"),
        ("", "x"),
        ("text", 1),
        ("text", None),
        ("text", ["x"]),
        ("bytes", "hello world!"),
        ("bytes", "aGVsbG8"),  # padding missing
        ("bytes", "aGVs bG8="),
        ("bytes", "aGVsbG8=\n"),
        ("bytes", "-_-_"),  # urlsafe alphabet
        ("bytes", 12),
        ("bytes", {"b64": "aGk="}),
        ("plan", {}),
        ("plan", {"steps": "one"}),
        ("plan", []),
        ("file_ref", {}),
        ("file_ref", {"path": 1}),
        ("context", {}),
        ("context", {"summary": 1}),
    ],
)
def test_wrong_types_and_values_are_refused_and_store_nothing(tmp_path: Path, type_: str, value: Any) -> None:
    async def body(w: World) -> None:
        a = await w.proc()
        e = await w.err(a, "obj.create", name="thing", type=type_, value=value)
        assert isinstance(e, alos.Invalid), e
        assert (await w.ok(a, "obj.list"))["objects"] == []

    run(tmp_path, body)


def test_a_write_must_fit_the_objects_existing_type(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        a = await w.proc()
        await w.ok(a, "obj.create", name="t", type="text", value="t")
        await w.ok(a, "obj.create", name="p", type="plan", value={"steps": []})
        await w.ok(a, "obj.create", name="j", type="json", value={"k": 1})
        await w.ok(a, "obj.create", name="b", type="bytes", value=base64.b64encode(b"ab").decode())
        for name, value in [("t", {"x": 1}), ("p", "not a plan"), ("p", {"steps": 3}), ("b", "!!not base64!!")]:
            assert isinstance(await w.err(a, "obj.write", name=name, value=value), alos.Invalid), name
        for name, value in [("t", 5), ("j", "item"), ("p", "step"), ("b", "%%%")]:
            assert isinstance(await w.err(a, "obj.append", name=name, value=value), alos.Invalid), name
        await w.ok(a, "obj.append", name="b", value=base64.b64encode(b"\x00c").decode())
        assert base64.b64decode((await w.ok(a, "obj.read", name="b"))["value"]) == b"ab\x00c"
        for name in "tpj":
            assert (await w.ok(a, "obj.read", name=name))["version"] == 1

    run(tmp_path, body)


def test_a_json_value_that_is_not_json_is_refused_not_silently_changed(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        a = await w.proc()
        for i, value in enumerate([float("nan"), {"x": float("inf")}, [float("-inf")]]):
            try:
                await w.ok(a, "obj.create", name=f"j{i}", type="json", value=value)
            except alos.Invalid:
                continue
            back = (await w.ok(a, "obj.read", name=f"j{i}"))["value"]
            assert json.dumps(back) == json.dumps(value), f"stored {back!r} for {value!r}"

    run(tmp_path, body)


def test_declared_types_are_checked_by_their_schema_on_every_path(tmp_path: Path) -> None:
    image = tmp_path / "memo.yaml"
    image.write_text(
        "name: memo\ndescription: declares a type\ntools: [obj.create, obj.write, obj.from_file, proc.exit]\n"
        "types:\n  finding:\n    type: object\n    required: [severity]\n"
        "    properties:\n      severity: {enum: [low, high]}\n"
    )

    async def body(w: World) -> None:
        a = await w.proc("fs:*=read", image=str(image))
        (w.ws / "bad.json").write_text('{"severity": "high!"}')
        (w.ws / "text.txt").write_text("not json")
        e = await w.err(a, "obj.create", name="f", type="finding", value={"severity": "high!"})
        assert isinstance(e, alos.Invalid) and "finding" in str(e) and "severity" in str(e), e
        assert isinstance(await w.err(a, "obj.create", name="f", type="finding", value={}), alos.Invalid)
        e = await w.err(a, "obj.create", name="f", type="Finding", value={"severity": "low"})
        assert isinstance(e, alos.Invalid) and "finding" in str(e), e
        await w.ok(a, "obj.create", name="f", type="finding", value={"severity": "low"})
        assert isinstance(await w.err(a, "obj.write", name="f", value={"severity": "mid"}), alos.Invalid)
        assert isinstance(await w.err(a, "obj.write", name="f", value="low"), alos.Invalid)
        assert isinstance(await w.err(a, "obj.from_file", path="bad.json", name="f"), alos.Invalid)
        assert isinstance(await w.err(a, "obj.from_file", path="text.txt", name="f"), alos.Invalid)
        assert (await w.ok(a, "obj.read", name="f"))["version"] == 1
        # another process (another image) does not know the type
        b = await w.proc(name="b")
        assert isinstance(
            await w.err(b, "obj.create", name="f", type="finding", value={"severity": "low"}), alos.Invalid
        )

    run(tmp_path, body)


def test_payload_size_is_counted_in_bytes_and_a_refused_write_stores_nothing(tmp_path: Path) -> None:
    mib16 = 16 * 1024 * 1024

    async def body(w: World) -> None:
        a = await w.proc("fs:*=read")
        for name, type_, value in [
            ("t", "text", "é" * (mib16 // 2 + 1)),  # 8 Mi characters, 16 MiB + 2 bytes
            ("t", "text", "x" * (mib16 + 1)),
            ("b", "bytes", base64.b64encode(b"\0" * (mib16 + 1)).decode()),
            ("j", "json", ["x" * mib16]),
        ]:
            e = await w.err(a, "obj.create", name=name, type=type_, value=value)
            assert isinstance(e, alos.Limit), e
            assert str(mib16) in str(e)
        await w.ok(a, "obj.create", name="near", type="text", value="x" * (mib16 - 1))
        assert isinstance(await w.err(a, "obj.append", name="near", value="yz"), alos.Limit)
        with (w.ws / "huge.bin").open("wb") as f:
            f.truncate(mib16 + 1)
        assert isinstance(
            await w.err(a, "obj.from_file", path="huge.bin", name="h", new=True, type="bytes"), alos.Limit
        )
        rows = (await w.ok(a, "obj.list"))["objects"]
        assert [(r["name"], r["version"]) for r in rows] == [("near", 1)]
        assert w.rt.store_problems() == []

    run(tmp_path, body)


def test_obj_list_prefix_is_literal_and_pages_with_after(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        a = await w.proc()
        for n in ["a_b", "axb", "aXb", "a.b", "abc", "a_bc", "A_b"]:
            await w.ok(a, "obj.create", name=n, type="text", value=n)

        async def listed(**kw: Any) -> list[str]:
            return [o["name"] for o in (await w.ok(a, "obj.list", **kw))["objects"]]

        assert await listed(prefix="a_") == ["a_b", "a_bc"]  # '_' is not a wildcard
        assert await listed(prefix="a.") == ["a.b"]
        for pattern in ("%", "a%", "_", "*", "a[", "a\\"):
            assert await listed(prefix=pattern) == [], pattern
        first = await w.ok(a, "obj.list", limit=3)
        rest = await w.ok(a, "obj.list", limit=3, after=first["next"])
        last = await w.ok(a, "obj.list", limit=3, after=rest["next"])
        seen = [o["name"] for o in first["objects"] + rest["objects"] + last["objects"]]
        assert seen == sorted(seen) and len(seen) == 7 and len(set(seen)) == 7
        assert last["next"] is None
        assert isinstance(await w.err(a, "obj.list", limit=1001), alos.Invalid)

    run(tmp_path, body)


def test_links_need_read_on_the_target_and_are_capped_at_64(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        a = await w.proc(name="a")
        b = await w.proc(name="b")
        await w.ok(a, "obj.create", name="src", type="text", value="s")
        await w.ok(b, "obj.create", name="theirs", type="text", value="t")
        assert isinstance(
            await w.err(a, "obj.link", name="src", kind="cites", to="theirs", to_ns=f"proc/{b}"), alos.Denied
        )
        assert isinstance(await w.err(a, "obj.link", name="src", kind="depends_on", to="src"), alos.Invalid)
        for i in range(64):
            await w.ok(a, "obj.create", name=f"t{i}", type="text", value="t")
            await w.ok(a, "obj.link", name="src", kind="cites", to=f"t{i}")
        await w.ok(a, "obj.create", name="t64", type="text", value="t")
        assert isinstance(await w.err(a, "obj.link", name="src", kind="cites", to="t64"), alos.Limit)
        read = await w.ok(a, "obj.read", name="src")
        assert len(read["links"]) == 64
        assert all(link["object"].startswith(f"proc/{a}/") for link in read["links"])

    run(tmp_path, body)


# -- the file/object bridge ------------------------------------------------------------------------


def test_the_bridge_moves_content_without_it_entering_the_models_context(tmp_path: Path) -> None:
    marker = "MARKER-XYZZY-"

    async def body(w: World) -> None:
        (w.ws / "in.txt").write_text((marker + "\n") * 600)
        (w.ws / "small.bin").write_bytes(b"\x00TINY-PLUGH\xff")
        turns = [
            turn(
                call("obj_from_file", path="in.txt", name="big", new=True),
                call("obj_from_file", path="small.bin", name="small", new=True, type="bytes"),
                call("obj_to_file", name="big", path="out.txt"),
                call("obj_to_file", name="small", path="out.bin"),
                call("obj_list"),
                call("obj_log", name="big"),
            ),
            turn(call("proc_exit", result="moved")),
        ]
        p = await w.proc("fs:*=read,write", "model:script=execute", turns=turns)
        await w.rt.run()
        assert w.rt.process(p).exit is alos.Exit.OK
        assert (w.ws / "out.txt").read_text() == (w.ws / "in.txt").read_text()
        assert (w.ws / "out.bin").read_bytes() == b"\x00TINY-PLUGH\xff"
        ctx = json.dumps(w.rt.context(p))
        assert marker not in ctx and "TINY-PLUGH" not in ctx
        assert base64.b64encode(b"\x00TINY-PLUGH\xff").decode() not in ctx
        tool_results = [m["content"] for m in w.rt.context(p) if m.get("role") == "tool"]
        assert len(tool_results) == 6
        moved = json.loads(tool_results[0])
        assert moved["version"] == 1 and moved["bytes"] == len((marker + "\n") * 600)
        assert moved["digest"] == "sha256:" + hashlib.sha256((w.ws / "in.txt").read_bytes()).hexdigest()
        # and nothing of it went to the model either
        recorded = w.record.read_text()
        assert recorded and marker not in recorded and "TINY-PLUGH" not in recorded

    run(tmp_path, body, record=True)


def test_the_bridge_needs_the_file_right_and_the_object_right(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        (w.ws / ".env").write_text("SECRET=1\n")
        (w.ws / "notes.txt").write_text("notes\n")
        a = await w.proc("fs:notes.txt=read", "fs:out/*=write", deny=("obj:proc/1/locked=write",), name="a")
        b = await w.proc(name="b")
        await w.ok(b, "obj.create", name="theirs", type="text", value="THEIRS")
        # the file right
        assert isinstance(await w.err(a, "obj.from_file", path=".env", name="env", new=True), alos.Denied)
        assert isinstance(await w.err(a, "obj.from_file", path="/etc/hostname", name="h", new=True), alos.Denied)
        assert isinstance(await w.err(a, "obj.from_file", path="../outside", name="h", new=True), alos.Denied)
        # the object right
        e = await w.err(a, "obj.from_file", path="notes.txt", name="theirs", ns=f"proc/{b}")
        assert isinstance(e, alos.Denied)
        assert isinstance(await w.err(a, "obj.from_file", path="notes.txt", name="locked", new=True), alos.Denied)
        assert await w.value(f"proc/{b}", "theirs") == "THEIRS"
        await w.ok(a, "obj.from_file", path="notes.txt", name="notes", new=True)
        # obj.to_file: an object A may not read, a file A may not write
        assert isinstance(await w.err(a, "obj.to_file", name="theirs", ns=f"proc/{b}", path="out/t.txt"), alos.Denied)
        assert isinstance(await w.err(a, "obj.to_file", name="notes", path="README.md"), alos.Denied)
        assert isinstance(await w.err(a, "obj.to_file", name="notes", path="out/../README.md"), alos.Denied)
        assert (w.ws / "README.md").read_text() == "hello readme\n"
        assert not (w.ws / "out").exists()
        assert (await w.ok(a, "obj.list"))["objects"][0]["name"] == "notes"
        assert len((await w.ok(a, "obj.list"))["objects"]) == 1

    run(tmp_path, body)


def test_the_bridge_never_reaches_the_store_directory(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    store = ws / ".alos" / "store.db"
    rt = alos.open(str(store), host=True)

    async def attack() -> None:
        script = write_script(tmp_path / "s.jsonl", [])
        g = [alos.parse_grant(s, alos.Effect.ALLOW, str(ws)) for s in ("fs:/*=read,write",)]
        p = await rt.spawn("base", "g", workspace=str(ws), model=f"script:{script}", grants=g)
        big = await rt.dispatch(p, "obj.create", {"name": "x", "type": "text", "value": "y" * BIG})
        (ws / "lnk").symlink_to(ws / ".alos")
        blob = f".alos/store.db.blobs/{big['digest'][7:9]}/{big['digest'][7:]}"
        for path in [".alos/store.db", str(store), "lnk/store.db", blob, ".alos/store.db-wal"]:
            with pytest.raises(alos.Denied):
                await rt.dispatch(p, "obj.from_file", {"path": path, "name": "db", "new": True, "type": "bytes"})
        for path in [".alos/evil", ".alos/store.db", "lnk/evil", blob]:
            with pytest.raises(alos.Denied):
                await rt.dispatch(p, "obj.to_file", {"name": "x", "path": path})
        assert not (ws / ".alos" / "evil").exists()
        assert (await rt.dispatch(p, "obj.read", {"name": "x"}))["value"] == "y" * BIG
        assert rt.store_problems() == []

    try:
        asyncio.run(attack())
    finally:
        rt.close()


def test_an_approved_obj_to_file_writes_only_what_the_person_was_shown(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        a = await w.proc("fs:*=read", ask=("fs:*=write",))
        await w.ok(a, "obj.create", name="doc", type="text", value="SHOWN-V1\n")
        parked = await w.rt.dispatch(a, "obj.to_file", {"name": "doc", "path": "out.txt"})
        assert isinstance(parked, alos.Parked)
        [req] = w.rt.requests()
        assert "SHOWN-V1" in json.dumps(req.detail)
        await w.ok(0, "obj.write", name="doc", ns=f"proc/{a}", value="SNEAKY-V2\n")  # changed before the answer
        await w.rt.answer(req.id, "once", by="tester")
        out = await w.rt.dispatch(a, "obj.to_file", {"name": "doc", "path": "out.txt"})
        text = (w.ws / "out.txt").read_text() if (w.ws / "out.txt").exists() else None
        assert text != "SNEAKY-V2\n", (out, text)
        if isinstance(out, alos.Parked):  # asked again, showing the new content
            assert any("SNEAKY-V2" in json.dumps(r.detail) for r in w.rt.requests())

    run(tmp_path, body)


# -- forks: worker, copy, speculative, merge -------------------------------------------------------


def test_a_worker_fork_cannot_write_its_parents_objects(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        p = await w.proc("proc:spawn=spawn", "fs:*=read,write", deny=("obj:proc/1/secret=read",))
        (w.ws / "f.txt").write_text("from a file")
        await w.ok(p, "obj.create", name="plan", type="plan", value={"steps": ["a"]})
        await w.ok(p, "obj.create", name="arr", type="json", value=[])
        await w.ok(p, "obj.create", name="secret", type="text", value="PARENT-SECRET")
        ck = await w.ok(p, "ckpt.create")
        wk = (await w.ok(p, "proc.fork", mode="worker", goal="look"))["pid"]
        ns = f"proc/{p}"
        assert (await w.ok(wk, "obj.read", name="plan", ns=ns))["value"] == {"steps": ["a"]}
        for syscall, args in [
            ("obj.write", {"name": "plan", "ns": ns, "value": {"steps": []}}),
            ("obj.write", {"name": "plan", "ns": ns, "value": {"steps": []}, "expect": 1}),
            ("obj.append", {"name": "arr", "ns": ns, "value": 1}),
            ("obj.create", {"name": "planted", "ns": ns, "type": "text", "value": "x"}),
            ("obj.delete", {"name": "plan", "ns": ns}),
            ("obj.link", {"name": "plan", "ns": ns, "kind": "cites", "to": "arr", "to_ns": ns}),
            ("obj.from_file", {"path": "f.txt", "name": "plan", "ns": ns}),
            ("obj.share", {"pid": p, "pattern": f"obj:{ns}/plan", "rights": ["write"]}),
            ("ckpt.restore", {"id": ck["id"], "pid": p}),
            ("ckpt.create", {"pid": p}),
            ("obj.read", {"name": "secret", "ns": ns}),  # the parent's deny came along
        ]:
            e = await w.err(wk, syscall, **args)
            assert isinstance(e, alos.Denied), (syscall, e)
        assert sorted(await w.names(ns)) == ["arr", "plan", "secret"]
        log = (await w.ok(p, "obj.log", name="plan"))["versions"]
        assert [v["version"] for v in log] == [1]
        assert (w.ws / "f.txt").read_text() == "from a file"
        # the view is the parent's namespace as it is now
        await w.ok(p, "obj.write", name="plan", value={"steps": ["later"]})
        assert (await w.ok(wk, "obj.read", name="plan", ns=ns))["value"] == {"steps": ["later"]}

    run(tmp_path, body)


def test_a_copy_fork_gets_copies_but_not_what_its_parent_may_not_pass_on(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        p = await w.proc("proc:spawn=spawn", deny=("obj:proc/1/secret=read",), ask=("obj:proc/1/asky=read",))
        await w.ok(p, "obj.create", name="plan", type="text", value="v1")
        await w.ok(p, "obj.create", name="secret", type="text", value="DENIED-TO-PARENT")
        await w.ok(p, "obj.create", name="asky", type="text", value="ASKED-OF-PARENT")
        c = (await w.ok(p, "proc.fork", mode="copy", goal="go"))["pid"]
        assert await w.names(f"proc/{c}") == ["plan"]
        for name in ("secret", "asky"):
            assert isinstance(await w.err(c, "obj.read", name=name), (alos.NotFound, alos.Denied))
            assert isinstance(await w.err(c, "obj.read", name=name, ns=f"proc/{p}"), alos.Denied)
        await w.ok(c, "obj.write", name="plan", value="child's")
        await w.ok(p, "obj.write", name="plan", value="parent's")
        assert (await w.ok(c, "obj.read", name="plan"))["value"] == "child's"
        assert (await w.ok(p, "obj.read", name="plan"))["value"] == "parent's"
        assert isinstance(await w.err(c, "obj.write", name="plan", ns=f"proc/{p}", value="x"), alos.Denied)

    run(tmp_path, body)


def test_a_speculative_fork_writes_only_its_own_namespace_until_merged(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        p = await w.proc("proc:spawn=spawn", "fs:*=read,write")
        await w.ok(p, "obj.create", name="plan", type="text", value="parent v1")
        await w.ok(p, "obj.create", name="both", type="text", value="parent v1")
        ck = await w.ok(p, "ckpt.create")
        s = (await w.ok(p, "proc.fork", mode="speculative", goal="try"))["pid"]
        other = (await w.ok(p, "proc.spawn", name="other", goal="g"))["pid"]
        e = await w.err(s, "obj.to_file", name="plan", path="leak.txt")
        assert isinstance(e, alos.Denied) and "speculative" in str(e)
        assert not (w.ws / "leak.txt").exists()
        for syscall, args in [
            ("obj.write", {"name": "plan", "ns": f"proc/{p}", "value": "x"}),
            ("obj.share", {"pid": p, "pattern": "plan", "rights": ["read"]}),
            ("ckpt.restore", {"id": ck["id"]}),
            ("fs.write", {"path": "leak.txt", "content": "x"}),
        ]:
            assert isinstance(await w.err(s, syscall, **args), alos.Denied), syscall
        await w.ok(s, "obj.write", name="plan", value="speculated")
        await w.ok(s, "obj.write", name="both", value="speculated")
        await w.ok(s, "obj.create", name="fresh", type="text", value="new idea")
        await w.ok(p, "obj.write", name="both", value="parent v2")
        assert await w.value(f"proc/{p}", "plan") == "parent v1"
        assert isinstance(await w.err(p, "proc.merge", pid=s), alos.Conflict)  # not exited yet
        await w.ok(s, "proc.exit", result="done")
        assert isinstance(await w.err(other, "proc.merge", pid=s), alos.Denied)
        merged = await w.ok(p, "proc.merge", pid=s)
        assert sorted(o["name"] for o in merged["objects"]) == ["fresh", "plan"]
        assert [c["name"] for c in merged["conflicts"]] == ["both"]
        assert await w.value(f"proc/{p}", "plan") == "speculated"
        assert await w.value(f"proc/{p}", "both") == "parent v2"
        links = (await w.ok(p, "obj.read", name="plan"))["links"]
        assert links and links[0]["kind"] == "derived_from" and links[0]["object"] == f"proc/{s}/plan"

    run(tmp_path, body)


def test_a_merge_does_not_bypass_a_deny_on_the_parents_object(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        p = await w.proc("proc:spawn=spawn", deny=("obj:proc/1/frozen=write", "obj:proc/1/locked=write"))
        await w.ok(0, "obj.create", name="frozen", ns=f"proc/{p}", type="text", value="as the person left it")
        assert isinstance(await w.err(p, "obj.write", name="frozen", value="x"), alos.Denied)
        assert isinstance(await w.err(p, "obj.create", name="locked", type="text", value="x"), alos.Denied)
        s = (await w.ok(p, "proc.fork", mode="speculative", goal="try"))["pid"]
        await w.ok(s, "obj.write", name="frozen", value="EVIL")
        await w.ok(s, "obj.create", name="locked", type="text", value="EVIL")
        await w.ok(s, "proc.exit", result="done")
        with contextlib.suppress(alos.Denied):
            await w.ok(p, "proc.merge", pid=s)
        assert await w.value(f"proc/{p}", "frozen") == "as the person left it"
        assert "locked" not in await w.names(f"proc/{p}")

    run(tmp_path, body)


# -- the objects shown to the model ----------------------------------------------------------------


def _context_image(tmp_path: Path, objects: list[str], extra: str = "") -> Path:
    path = tmp_path / "ctx-image.yaml"
    path.write_text(
        "name: memo\ndescription: shows objects\n"
        "tools: [fs.read, obj.create, obj.write, obj.read, proc.exit]\n"
        f"context:\n  objects: {json.dumps(objects)}\n{extra}"
    )
    return path


def test_each_model_call_audits_the_object_versions_it_was_shown(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        turns = [
            turn(call("obj_create", name="plan", type="plan", value={"steps": ["PLAN-ONE"]})),
            turn(call("obj_write", name="plan", value={"steps": ["PLAN-TWO"]})),
            turn(call("proc_exit", result="done")),
        ]
        p = await w.proc("model:script=execute", image=str(_context_image(w.tmp, ["plan", "notes"])), turns=turns)
        await w.rt.run()
        assert w.rt.process(p).exit is alos.Exit.OK
        shown = [r.detail.get("shown") for r in w.rt.audit(p) if r.syscall == "model.call"]
        assert len(shown) == 3
        assert not shown[0]  # nothing exists yet
        log = {v["version"]: v["digest"] for v in (await w.ok(0, "obj.log", name="plan", ns=f"proc/{p}"))["versions"]}
        assert shown[1] == [{"object": f"proc/{p}/plan", "version": 1, "digest": log[1]}]
        assert shown[2] == [{"object": f"proc/{p}/plan", "version": 2, "digest": log[2]}]
        recorded = w.record.read_text()
        assert "PLAN-ONE" in recorded and "PLAN-TWO" in recorded

    run(tmp_path, body, record=True)


def test_context_objects_never_reach_another_namespace(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        victim = await w.proc(name="victim")
        await w.ok(victim, "obj.create", name="secret", type="text", value="VICTIM-SECRET")
        image = _context_image(w.tmp, [f"proc/{victim}/secret", "secret"])
        turns = [turn(content="look"), turn(call("proc_exit", result="done"))]
        p = await w.proc("model:script=execute", image=str(image), turns=turns, name="peeker")
        await w.ok(p, "obj.create", name="secret", type="text", value="OWN-NOTE")
        await w.rt.run()
        recorded = w.record.read_text()
        assert "VICTIM-SECRET" not in recorded and "OWN-NOTE" in recorded
        calls = [r for r in w.rt.audit(p) if r.syscall == "model.call"]
        assert calls
        for r in calls:
            for shown in r.detail.get("shown") or []:
                assert shown["object"].startswith(f"proc/{p}/"), shown
        bad = _context_image(w.tmp, ["../proc/1/secret"])
        with pytest.raises(alos.Invalid):
            await w.proc("model:script=execute", image=str(bad))

    run(tmp_path, body, record=True)


def test_an_object_the_process_may_not_read_is_never_shown(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        image = _context_image(w.tmp, ["plan"])
        turns = [turn(content="look"), turn(call("proc_exit", result="done"))]
        p = await w.proc("model:script=execute", image=str(image), turns=turns, deny=("obj:proc/1/plan=read",))
        await w.ok(0, "obj.create", name="plan", ns=f"proc/{p}", type="text", value="HIDDEN-PLAN")
        await w.rt.run()
        recorded = w.record.read_text() if w.record.exists() else ""
        assert "HIDDEN-PLAN" not in recorded
        assert "HIDDEN-PLAN" not in json.dumps(w.rt.context(p))

    run(tmp_path, body, record=True)


def test_a_compaction_summary_is_private_to_its_process(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        (w.ws / "big.txt").write_text("lorem ipsum dolor sit amet " * 200)
        image = _context_image(w.tmp, [], "  max_tokens: 256\n  compact: true\n")
        turns = [turn(call("fs_read", path="big.txt")) for _ in range(5)] + [turn(call("proc_exit", result="ok"))]
        p = await w.proc("model:script=execute", "fs:*=read", image=str(image), turns=turns)
        await w.rt.run()
        log = (await w.ok(0, "obj.log", name="context/summary", ns=f"proc/{p}"))["versions"]
        assert log and all(v["type"] == "context" for v in log)
        other = await w.proc(name="other")
        there = await w.err(other, "obj.read", name="context/summary", ns=f"proc/{p}")
        absent = await w.err(other, "obj.read", name="context/nosuch", ns=f"proc/{p}")
        assert isinstance(there, alos.Denied)
        assert str(there).replace("summary", "X") == str(absent).replace("nosuch", "X")
        assert isinstance(await w.err(other, "obj.list", ns=f"proc/{p}", prefix="context/"), alos.Denied)

    run(tmp_path, body)


# -- payloads on disk: corrupt, missing, kill -9 ---------------------------------------------------


def test_a_corrupt_or_missing_blob_is_never_served(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        p = await w.proc("proc:spawn=spawn", "fs:*=read,write", "image:snap=write")
        secret_v1 = "A" * BIG
        made = await w.ok(p, "obj.create", name="data", type="text", value=secret_v1)
        await w.ok(p, "obj.write", name="data", value="B" * BIG)
        await w.ok(p, "obj.create", name="twin", type="text", value=secret_v1)  # the same blob
        blob = w.blob(made["digest"])
        assert blob.read_bytes() == secret_v1.encode()
        blob.write_bytes(secret_v1.encode()[:-1] + b"Z")
        for syscall, args in [
            ("obj.read", {"name": "data", "version": 1}),
            ("obj.read", {"name": "twin"}),
            ("obj.to_file", {"name": "twin", "path": "out.txt"}),
            ("obj.append", {"name": "twin", "value": "more"}),
        ]:
            e = await w.err(p, syscall, **args)
            assert e.code == "corrupt", (syscall, e)
            assert "AAAA" not in str(e) and "AAAZ" not in str(e)
        assert "proc/1/twin version 1" in str(e)
        assert not (w.ws / "out.txt").exists()
        assert (await w.ok(p, "obj.read", name="data"))["value"] == "B" * BIG  # version 2 is whole
        ck = await w.ok(p, "ckpt.create")
        e = await w.err(p, "ckpt.commit", id=ck["id"], name="snap")
        assert e.code == "corrupt", e
        problems = {(x["object"], x["version"]) for x in w.rt.store_problems()}
        assert problems == {(f"proc/{p}/data", 1), (f"proc/{p}/twin", 1)}
        blob.unlink()
        e = await w.err(p, "obj.read", name="twin")
        assert e.code == "corrupt" and "missing" in str(e), e
        # a blob planted under a digest before anyone wrote that content is not trusted either
        planted_value = "C" * BIG
        planted = w.blob("sha256:" + hashlib.sha256(planted_value.encode()).hexdigest())
        planted.parent.mkdir(parents=True, exist_ok=True)
        planted.write_bytes(b"planted by someone else")
        await w.ok(p, "obj.create", name="c", type="text", value=planted_value)
        assert (await w.ok(p, "obj.read", name="c"))["value"] == planted_value
        # writing the lost content again heals every version that names it
        await w.ok(p, "obj.create", name="again", type="text", value=secret_v1)
        assert (await w.ok(p, "obj.read", name="twin"))["value"] == secret_v1
        assert w.rt.store_problems() == []

    run(tmp_path, body)


def test_alos_store_check_names_each_bad_object_and_version(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        p = await w.proc()
        made = await w.ok(p, "obj.create", name="data", type="text", value="D" * BIG)
        await w.ok(p, "obj.write", name="data", value="E" * BIG)
        await w.ok(p, "obj.create", name="fine", type="text", value="F" * BIG)
        w.blob(made["digest"]).write_bytes(b"torn")

    run(tmp_path, body)
    store = str(tmp_path / "state" / "store.db")
    cp = alos_cli("store", "check", "--store", store)
    assert cp.returncode == 1, cp.stdout + cp.stderr
    assert "proc/1/data version 1" in cp.stdout, cp.stdout
    assert "fine" not in cp.stdout and "version 2" not in cp.stdout
    cp = alos_cli("store", "check", "--store", store, "--json")
    assert cp.returncode == 1
    lines = json_lines(cp.stdout)
    problems = [p for line in lines for p in line.get("problems", [])]
    assert [(p["object"], p["version"]) for p in problems] == [("proc/1/data", 1)]


_WRITER = r"""
import asyncio, sys, alos
store, ws, script = sys.argv[1:4]

async def main():
    rt = alos.open(store, host=True)
    pid = await rt.spawn("base", "g", workspace=ws, model="script:" + script, grants=[])
    await rt.dispatch(pid, "obj.create", {"name": "big", "type": "text", "value": "1:" + "a" * 100})
    while True:
        cur = await rt.dispatch(pid, "obj.read", {"name": "big"})
        n = cur["version"] + 1
        body = f"{n}:" + chr(97 + n % 26) * (400_000 + 7919 * n)
        await rt.dispatch(pid, "obj.write", {"name": "big", "value": body, "expect": cur["version"]})
        print(n, flush=True)

asyncio.run(main())
"""


def _check_big(value: str, version: int) -> None:
    n, _, body = value.partition(":")
    assert int(n) == version, (n, version)
    if version > 1:
        assert len(body) == 400_000 + 7919 * version and set(body) == {chr(97 + version % 26)}


def test_kill9_during_large_writes_leaves_old_or_new_versions_never_torn(tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    script = write_script(tmp_path / "none.jsonl", [])
    store = tmp_path / "state" / "store.db"
    rng = random.Random()
    for _round in range(2):
        p = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(store), str(tmp_path / "ws"), str(script)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        guard = threading.Timer(30, p.kill)
        guard.start()
        try:
            assert p.stdout is not None
            for _ in range(3):
                assert p.stdout.readline(), "the writer stopped before writing"
            time.sleep(rng.uniform(0, 0.03))
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=10)
        finally:
            guard.cancel()
            p.kill()
            p.wait()

    rt = alos.open(str(store), host=True)
    try:
        assert rt.store_problems() == []

        async def check() -> None:
            for pid in (1, 2):
                latest = await rt.dispatch(0, "obj.read", {"name": "big", "ns": f"proc/{pid}"})
                _check_big(latest["value"], latest["version"])
                assert latest["version"] >= 4
                log = (await rt.dispatch(0, "obj.log", {"name": "big", "ns": f"proc/{pid}"}))["versions"]
                assert [v["version"] for v in log] == list(range(latest["version"], 0, -1))
                for v in log[:3]:
                    old = await rt.dispatch(
                        0, "obj.read", {"name": "big", "ns": f"proc/{pid}", "version": v["version"]}
                    )
                    _check_big(old["value"], v["version"])
                    assert old["digest"] == v["digest"]

        asyncio.run(check())
        rt.sweep(grace=0)  # removes what writers left; never a blob a version names
        assert rt.store_problems() == []
        asyncio.run(check())
    finally:
        rt.close()
    cp = alos_cli("store", "check", "--store", str(store))
    assert cp.returncode == 0, cp.stdout + cp.stderr
