"""The filesystem contract: the real host filesystem (providers/files.py on a temporary directory)
and MemoryFiles answer every call alike, and a process run over either sees the same tool
results and meets the same authority decisions. A swapped provider changes no tool schema.

The one difference kept on purpose: a directory's listed size (the host reports its block size).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import alos
from alos import limits, tools
from alos.errors import AlosError, Conflict, Denied, Exists, Invalid, NotFound
from alos.providers.base import FileSystem, ModelRequest, Providers
from alos.providers.clock import ManualClock
from alos.providers.files import Files
from alos.providers.memfs import MemoryFiles
from alos.providers.model import ScriptedModel
from alos.providers.recording import ProviderCall, record
from alos.rights import Effect, parse_grant
from alos.types import ModelTurn

SEED: dict[str, bytes | None] = {  # None: a directory
    "README.md": b"hello\n",
    "bin.dat": b"\xff\x00\xfe",
    "src/app.py": b"print('hi')\n",
    "empty": None,
    "store/s.db": b"the store",
}


@dataclass
class World:
    """A filesystem seeded with SEED under ``root`` (a real absolute path); ``put`` changes a file
    behind the provider's back, as another program would."""

    kind: str
    root: str
    fs: FileSystem
    put: Callable[[str, bytes], object]

    def at(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else self.root


def make_world(kind: str, root: str, forbidden: list[str]) -> World:
    """Return a world of ``kind`` ("host" or "memory"); ``root`` exists on the host either way."""
    os.makedirs(root)
    if kind == "host":
        for rel, data in SEED.items():
            path = Path(root, rel)
            if data is None:
                path.mkdir(parents=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
        return World(kind, root, Files(forbidden), lambda rel, data: Path(root, rel).write_bytes(data))
    memory = MemoryFiles(
        {os.path.join(root, rel): data for rel, data in SEED.items() if data is not None},
        directories=[root, *(os.path.join(root, rel) for rel, data in SEED.items() if data is None)],
        forbidden=forbidden,
    )
    return World(kind, root, memory, lambda rel, data: memory.write(os.path.join(root, rel), data))


@pytest.fixture(params=["host", "memory"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> World:
    root = os.path.realpath(tmp_path) + "/w"
    return make_world(request.param, root, [root + "/store"])


def outcome(op: Callable[[], Any], root: str) -> Any:
    """Return what ``op`` returned, or (error class, message), with ``root`` written as <root>."""
    try:
        value = op()
    except AlosError as err:
        return type(err).__name__, err.message.replace(root, "<root>")
    text = json.dumps(value, default=repr).replace(root, "<root>")
    return json.loads(text)


# -- direct calls --------------------------------------------------------------------------


def test_resolution_takes_dotdot_by_name_and_never_fails_on_what_exists(world: World) -> None:
    fs, r = world.fs, world.root
    assert fs.resolve(r, "src/../README.md") == f"{r}/README.md"
    assert fs.resolve(r, "..") == os.path.dirname(r)
    assert fs.resolve(r + "/src", "../../w/./src//app.py") == f"{r}/src/app.py"
    assert fs.resolve(r, "README.md/x/../y") == f"{r}/README.md/y"
    assert fs.resolve(r, "missing/deeper/x") == f"{r}/missing/deeper/x"
    assert fs.resolve(r, "/" + r) == r  # '//' at the start is '/'
    assert fs.resolve(r, "a" * 5000).startswith(r)
    for bad in ("", "a\x00b"):
        with pytest.raises(Invalid):
            fs.resolve(r, bad)


def test_read_returns_a_range_and_the_size(world: World) -> None:
    fs = world.fs
    assert fs.read(world.at("README.md"), 1, 3) == (b"ell", 6)
    assert fs.read(world.at("README.md"), 0, 100) == (b"hello\n", 6)
    assert fs.read(world.at("README.md"), 10, 5) == (b"", 6)
    assert fs.read(world.at("bin.dat"), 0, 2) == (b"\xff\x00", 3)


ERRORS = [
    ("read", "missing.txt", NotFound, "read: no such file or directory <p>; check the name with fs_list"),
    ("read", "nodir/x", NotFound, "read: no such file or directory <p>; check the name with fs_list"),
    ("read", "README.md/x", NotFound, "read: a component of <p> is not a directory; check the path with fs_list"),
    ("read", "src", Invalid, "<p> is a directory; use fs_list to see what it holds"),
    ("read", "/", Invalid, "/ names no file"),
    ("read", "a" * 256, Invalid, "read: <p>: a name in it is too long for the host's filesystem; use a shorter one"),
    (
        "read",
        "d/" * 2100 + "x",
        Invalid,
        "read: <p>: a name in it is too long for the host's filesystem; use a shorter one",
    ),
    ("write", "src", Invalid, "<p> is a directory; a file cannot replace it"),
    ("write", "nodir/x", NotFound, "write: no such file or directory <p>; check the name with fs_list"),
    ("write", "README.md/x", NotFound, "write: a component of <p> is not a directory; check the path with fs_list"),
    ("write", "b" * 256, Invalid, "write: <p>: a name in it is too long for the host's filesystem; use a shorter one"),
    ("write", "é" * 128, Invalid, "write: <p>: a name in it is too long for the host's filesystem; use a shorter one"),
    ("list", "missing", NotFound, "list: no such file or directory <p>; check the name with fs_list"),
    ("list", "README.md", NotFound, "list: a component of <p> is not a directory; check the path with fs_list"),
    ("delete", "missing", NotFound, "delete: no such file or directory <p>; check the name with fs_list"),
    ("delete", "src", Invalid, "delete: directory <p> is not empty; delete what it holds first"),
    ("delete", "/", Invalid, "/ names no file"),
]


@pytest.mark.parametrize(("op", "rel", "error", "message"), ERRORS, ids=[f"{e[0]}-{e[1][:12]}" for e in ERRORS])
def test_every_error_has_the_same_class_and_message(
    world: World, op: str, rel: str, error: type[AlosError], message: str
) -> None:
    path = rel if rel == "/" else world.at(rel)
    calls: dict[str, Callable[[], Any]] = {
        "read": lambda: world.fs.read(path, 0, 10),
        "write": lambda: world.fs.write(path, b"x"),
        "list": lambda: world.fs.list(path),
        "delete": lambda: world.fs.delete(path),
    }
    with pytest.raises(error) as err:
        calls[op]()
    assert err.value.message == message.replace("<p>", path)


def test_a_write_creates_or_replaces_whole(world: World) -> None:
    fs = world.fs
    fs.write(world.at("new.txt"), b"one")
    fs.write(world.at("README.md"), b"replaced")
    assert fs.read(world.at("new.txt"), 0, 10) == (b"one", 3)
    assert fs.read(world.at("README.md"), 0, 100) == (b"replaced", 8)
    fs.write(world.at("README.md"), b"")
    assert fs.read(world.at("README.md"), 0, 100) == (b"", 0)


def test_a_listing_is_sorted_typed_sized_and_leaves_the_store_out(world: World) -> None:
    entries, cut = world.fs.list(world.root)
    assert not cut
    assert [(e["name"], e["type"]) for e in entries] == [
        ("README.md", "file"),
        ("bin.dat", "file"),
        ("empty", "dir"),
        ("src", "dir"),
    ]
    assert [e["size"] for e in entries if e["type"] == "file"] == [6, 3]
    assert all(isinstance(e["size"], int) and e["size"] >= 0 for e in entries)  # a directory's: the host's own


def test_a_listing_is_cut_at_the_limit(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "LIST_MAX_ENTRIES", 2)
    entries, cut = world.fs.list(world.root)
    assert cut and [e["name"] for e in entries] == ["README.md", "bin.dat"]
    monkeypatch.setattr(limits, "LIST_MAX_ENTRIES", 4)
    assert world.fs.list(world.root)[1] is False


def test_missing_names_the_directories_a_mkdir_would_make(world: World) -> None:
    fs, at = world.fs, world.at
    assert fs.missing(at("src")) == ()
    assert fs.missing(at("README.md")) == ()
    assert fs.missing(at("a/b/c")) == (at("a"), at("a/b"), at("a/b/c"))
    assert fs.missing(at("README.md/x")) == (at("README.md/x"),)
    deep = "d/" * 2100 + "x"  # longer than a path the host opens: each part of it counts as missing
    assert fs.missing(at(deep)) == (*(at("d/" * n + "d") for n in range(2100)), at(deep))


def test_mkdir_makes_the_plan_or_says_why_not(world: World) -> None:
    fs, at = world.fs, world.at
    assert fs.mkdir(at("a/b"), fs.missing(at("a/b"))) is True
    assert fs.is_dir(at("a")) and fs.is_dir(at("a/b"))
    assert fs.mkdir(at("a/b"), ()) is False
    with pytest.raises(Exists, match=r"README.md exists and is not a directory$"):
        fs.mkdir(at("README.md"), ())
    with pytest.raises(Conflict, match=r"/w/gone vanished while the call ran; try again$"):
        fs.mkdir(at("gone/x"), (at("gone/x"),))  # a stale plan: its parent is not there
    with pytest.raises(Conflict, match=r"README.md vanished"):
        fs.mkdir(at("README.md/x"), fs.missing(at("README.md/x")))
    plan = fs.missing(at("c/d"))
    fs.mkdir(at("c"), fs.missing(at("c")))  # another call made part of the plan meanwhile
    with pytest.raises(Exists) as err:
        fs.mkdir(at("c/d"), plan)
    assert err.value.message == f"mkdir: {at('c/d')} already exists; choose another name, or delete it first"


def test_delete_takes_a_file_or_an_empty_directory(world: World) -> None:
    fs, at = world.fs, world.at
    assert fs.delete(at("README.md")) == "file"
    assert fs.delete(at("empty")) == "dir"
    assert not fs.is_dir(at("empty"))
    assert fs.delete(at("src/app.py")) == "file"
    assert fs.delete(at("src")) == "dir"
    assert [e["name"] for e in fs.list(world.root)[0]] == ["bin.dat"]


def test_is_dir(world: World) -> None:
    assert world.fs.is_dir(world.root) and world.fs.is_dir(world.at("src"))
    for rel in ("README.md", "missing", "README.md/x", "a" * 300):
        assert not world.fs.is_dir(world.at(rel))


def test_peek_shows_digest_size_and_text_as_an_approval_does(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    fs, at = world.fs, world.at
    hello = fs.peek(at("README.md"))
    assert (hello.exists, hello.size, hello.text) == (True, 6, "hello\n")
    assert hello.digest == "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
    binary = fs.peek(at("bin.dat"))
    assert (binary.exists, binary.size, binary.text) == (True, 3, None) and binary.digest
    for absent in ("src", "missing", "README.md/x", "nodir/x"):
        assert fs.peek(at(absent)) == fs.peek(at("missing")) and not fs.peek(at(absent)).exists
    assert not fs.peek("/").exists
    monkeypatch.setattr(limits, "DIFF_MAX_BYTES", 4)
    assert fs.peek(at("README.md")).text is None and fs.peek(at("README.md")).digest == hello.digest
    monkeypatch.setattr(limits, "PEEK_MAX_BYTES", 4)
    big = fs.peek(at("README.md"))
    assert big.exists and big.size == 6 and big.text is None
    assert big.digest is not None and big.digest.startswith("size:6:mtime:")


def test_the_store_is_refused_without_naming_it_and_hidden(world: World) -> None:
    fs, at = world.fs, world.at
    assert fs.hidden(at("store")) and fs.hidden(at("store/s.db")) and fs.hidden(at("store/x/y"))
    assert not fs.hidden(at("storex")) and not fs.hidden(world.root)
    calls: list[Callable[[], Any]] = [
        lambda: fs.read(at("store/s.db"), 0, 10),
        lambda: fs.write(at("store/n"), b""),
        lambda: fs.list(at("store")),
        lambda: fs.mkdir(at("store/d"), (at("store/d"),)),
        lambda: fs.delete(at("store/s.db")),
    ]
    for call in calls:
        with pytest.raises(Denied) as err:
            call()
        assert err.value.message == "that path is inside alos's store directory; no process may reach it"


def test_both_filesystems_answer_a_random_run_of_calls_alike(tmp_path: Path) -> None:
    """Differential: 400 calls drawn over a small tree, the same on both, compare call by call."""
    root = os.path.realpath(tmp_path)
    host = make_world("host", root + "/h/w", [root + "/h/w/store"])
    memory = make_world("memory", root + "/m/w", [root + "/m/w/store"])
    names = ["a", "b", "a/b", "a/c", "b/x", "a/b/c", "README.md", "src", "src/app.py", "empty", "store/s.db"]
    rng = random.Random(15)
    for step in range(400):
        op = rng.choice(["read", "write", "list", "mkdir", "delete", "peek", "missing", "is_dir"])
        rel = rng.choice(names)
        seen = [outcome(functools.partial(call, w.fs, op, w.at(rel), step), w.root) for w in (host, memory)]
        assert seen[0] == seen[1], f"step {step}: {op} {rel}"


def call(fs: FileSystem, op: str, path: str, step: int) -> Any:
    """Make call ``op`` on ``path``; return what it returned, a directory's listed size as 0."""
    if op == "read":
        return fs.read(path, 1, 4)
    if op == "write":
        return fs.write(path, f"step {step}".encode())
    if op == "list":
        return [{**e, "size": 0 if e["type"] == "dir" else e["size"]} for e in fs.list(path)[0]]
    if op == "mkdir":
        return fs.mkdir(path, fs.missing(path))
    if op == "delete":
        return fs.delete(path)
    if op == "peek":
        p = fs.peek(path)
        return p.exists, p.size, p.digest, p.text
    if op == "missing":
        return fs.missing(path)
    return fs.is_dir(path)


# -- processes over either filesystem ------------------------------------------------------

WORKSPACE = {"README.md": b"hello\n", ".env": b"SECRET=1\n", "src/app.py": b"print('hi')\n"}
KINDS = ["host", "memory", "memory-recorded"]  # the last: memory, a manual clock, every call recorded


class Capturing:
    """The scripted model, keeping the tools each request showed."""

    remote = False

    def __init__(self, path: str) -> None:
        self.inner = ScriptedModel(path)
        self.tools: list[list[dict[str, Any]]] = []

    async def complete(self, request: ModelRequest) -> ModelTurn:
        self.tools.append(request.tools)
        return await self.inner.complete(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Run:
    """A host runtime over one kind of world, with a process spawned in ``ws``."""

    rt: alos.Runtime
    pid: int
    base: str
    ws: str
    fs: FileSystem  # a provider that sees the world's files (for the host: a Files of its own)
    put: Callable[[str, bytes], object]
    model: list[Capturing]
    calls: list[ProviderCall]

    def transcript(self) -> dict[str, Any]:
        """Return what the process saw and what was decided, with the run's directory as <base>."""
        audit = [(a.syscall, a.resource, a.right, a.decision, a.outcome) for a in self.rt.audit(self.pid)]
        requests = [(q.kind.value, q.syscall, q.resource, q.state.value, q.detail) for q in self.rt.requests(None)]
        results = [m["content"] for m in self.rt.context(self.pid) if m["role"] == "tool"]
        seen = {"audit": audit, "requests": requests, "results": results, "files": tree(self.fs, self.ws)}
        plain: dict[str, Any] = json.loads(json.dumps(seen).replace(self.base, "<base>"))
        return plain


def tree(fs: FileSystem, path: str) -> dict[str, Any]:
    """Return the files under ``path`` by name: their text, or the tree of a directory."""
    out: dict[str, Any] = {}
    for entry in fs.list(path)[0]:
        full = os.path.join(path, entry["name"])
        out[entry["name"]] = tree(fs, full) if entry["type"] == "dir" else fs.read(full, 0, 1000)[0].decode()
    return out


def start(kind: str, tmp_path: Path, turns: list[dict[str, Any]], **grants: tuple[str, ...]) -> Run:
    base = os.path.realpath(tmp_path) + "/" + kind
    ws = base + "/ws"
    os.makedirs(ws)
    Path(base, "outside.txt").write_text("not yours\n")
    script = Path(base, "script.jsonl")
    script.write_text("".join(json.dumps(t) + "\n" for t in turns))
    model: list[Capturing] = []

    def models(spec: str) -> Capturing:
        model.append(Capturing(spec.partition(":")[2]))
        return model[-1]

    calls: list[ProviderCall] = []
    if kind == "host":
        for rel, data in WORKSPACE.items():
            Path(ws, rel).parent.mkdir(parents=True, exist_ok=True)
            Path(ws, rel).write_bytes(data)
        providers = Providers(models=models)  # the real filesystem: the one alos.open builds
        fs: FileSystem = Files()
        put: Callable[[str, bytes], object] = lambda rel, data: Path(ws, rel).write_bytes(data)  # noqa: E731
    else:
        seed = {f"{base}/outside.txt": b"not yours\n", **{f"{ws}/{rel}": data for rel, data in WORKSPACE.items()}}
        memory = MemoryFiles(seed, directories=[ws])
        fs, put = memory, lambda rel, data: memory.write(f"{ws}/{rel}", data)
        providers = Providers(files=memory, models=models)
        if kind == "memory-recorded":
            providers = record(Providers(files=memory, clock=ManualClock(), models=models), calls.append)
    rt = alos.open(f"{base}/store/store.db", host=True, providers=providers)
    issued = [
        parse_grant(spec, effect, ws)
        for effect, specs in ((Effect.ALLOW, grants.get("allow", ())), (Effect.ASK, grants.get("ask", ())))
        for spec in specs
    ] + [parse_grant(spec, Effect.DENY, ws) for spec in grants.get("deny", ())]
    pid = asyncio.run(rt.spawn("base", "test goal", workspace=ws, model=f"script:{script}", grants=issued))
    return Run(rt, pid, base, ws, fs, put, model, calls)


def calls_turn(*calls: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {"content": "working", "tool_calls": [{"name": n, "arguments": a} for n, a in calls]}


WORK = [
    calls_turn(
        ("fs_read", {"path": "README.md"}),
        ("fs_read", {"path": ".env"}),
        ("fs_list", {"path": "src"}),
        ("fs_write", {"path": "src/new.py", "content": "x = 1\n"}),
        ("fs_write", {"path": "notes.md", "content": "no grant"}),
        ("fs_read", {"path": "../outside.txt"}),
        ("fs_write", {"path": "src/../../escape.txt", "content": "out"}),
        ("fs_mkdir", {"path": "src/pkg/sub"}),
        ("fs_delete", {"path": "src/app.py"}),
        ("fs_delete", {"path": "src/new.py"}),
        ("fs_read", {"path": "missing.txt"}),
        ("fs_read", {"path": "src"}),
        ("fs_delete", {"path": "src"}),
    ),
    {"content": "done"},
]
WORK_GRANTS = {
    "allow": ("fs:*=read,list", "fs:src/*=write,delete"),
    "deny": ("fs:.env=read,write", "fs:src/app.py=delete"),
}


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def run_work(run: Run) -> None:
    asyncio.run(run.rt.run())


def run_approvals(run: Run) -> None:
    """Run until the write is asked for; change the file after the person saw the diff; approve
    once (spent: the file changed), then once more."""
    asyncio.run(run.rt.run())
    [first] = run.rt.requests()
    assert first.detail["diff"] == ["--- current", "+++ proposed", "@@ -1 +1 @@", "-hello", "+new"]
    run.put("README.md", b"changed by someone\n")
    asyncio.run(run.rt.answer(first.id, "once", by="me"))
    asyncio.run(run.rt.run())
    [second] = run.rt.requests()
    assert second.detail["diff"][3] == "-changed by someone" and second.detail["current_bytes"] == 19
    asyncio.run(run.rt.answer(second.id, "once", by="me"))
    asyncio.run(run.rt.run())


APPROVALS = [
    calls_turn(("fs_write", {"path": "README.md", "content": "new\n"})),
    calls_turn(("fs_read", {"path": "README.md"})),
]
APPROVAL_GRANTS = {"allow": ("fs:*=read",), "ask": ("fs:*=write",)}


def scenario(
    kind: str,
    where: Path,
    turns: list[dict[str, Any]],
    grants: Mapping[str, tuple[str, ...]],
    drive: Callable[[Run], None],
) -> tuple[dict[str, Any], list[ProviderCall]]:
    """Return the transcript of ``turns`` driven by ``drive`` over a world of ``kind``, and the calls recorded."""
    run = start(kind, where, turns, **grants)
    try:
        drive(run)
        return run.transcript(), run.calls
    finally:
        run.rt.close()


def test_a_process_gets_the_same_results_and_decisions_over_either_filesystem(kind: str, tmp_path: Path) -> None:
    seen, calls = scenario(kind, tmp_path / "a", WORK, WORK_GRANTS, run_work)
    results = seen["results"]
    assert results[0] == "hello\n"
    assert results[1].startswith("denied:") and ".env" in results[1]
    assert json.loads(results[2])["entries"] == [{"name": "app.py", "size": 12, "type": "file"}]
    assert all(results[i].startswith("denied:") for i in (4, 5, 6, 8))
    assert results[10].startswith("not_found:") and results[11].startswith("invalid:")
    assert results[12].startswith("invalid:") and "not empty" in results[12]
    src = {"app.py": "print('hi')\n", "pkg": {"sub": {}}}
    assert seen["files"] == {".env": "SECRET=1\n", "README.md": "hello\n", "src": src}
    decisions = [(a[0], a[1].rsplit("/", 1)[-1], a[3]) for a in seen["audit"] if a[0] != "model.call"]
    assert ("fs.write", "notes.md", "deny") in decisions and ("fs.read", ".env", "deny") in decisions
    assert seen == scenario("host", tmp_path / "b", WORK, WORK_GRANTS, run_work)[0]
    if kind == "memory-recorded":
        assert {(c.provider, c.method) for c in calls} >= {
            ("files", "read"),
            ("files", "resolve"),
            ("model", "complete"),
        }


def test_an_approval_spent_by_a_changed_file_asks_again_over_either_filesystem(kind: str, tmp_path: Path) -> None:
    seen, _ = scenario(kind, tmp_path / "a", APPROVALS, APPROVAL_GRANTS, run_approvals)
    assert seen["files"]["README.md"] == "new\n" and seen["results"][-1] == "new\n"
    assert [r[3] for r in seen["requests"]] == ["approved", "approved"]
    assert seen == scenario("host", tmp_path / "b", APPROVALS, APPROVAL_GRANTS, run_approvals)[0]


def test_swapping_the_providers_changes_no_tool_schema(tmp_path: Path) -> None:
    shown = []
    for kind in KINDS:
        run = start(kind, tmp_path / kind, [{"content": "nothing to do"}])
        try:
            asyncio.run(run.rt.run())
            shown.append(run.model[0].tools[0])
            table = tools.table(run.rt.image("base"))
        finally:
            run.rt.close()
    assert shown[0] == shown[1] == shown[2]
    assert [t["function"]["name"] for t in shown[0]] == list(table)
    for wire in shown[0]:
        assert wire["function"]["parameters"] == table[wire["function"]["name"]].parameters
