"""Hostile calls straight through dispatch(): every denial path, traversal, symlinks, the store."""

import asyncio
import os
from pathlib import Path

import pytest

import alos
from alos.types import Parked, ProcState
from tests.support import spawn


def d(rt: alos.Runtime, subject: int, name: str, **args):
    return asyncio.run(rt.dispatch(subject, name, args))


def last_audit(rt: alos.Runtime):
    return list(rt.audit())[-1]


def test_allowed_read_and_the_missing_right_named_in_a_denial(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, allow=("fs:*=read",))
    assert d(runtime, pid, "fs.read", path="README.md") == "hello\n"
    with pytest.raises(alos.Denied) as err:
        d(runtime, pid, "fs.write", path="README.md", content="x")
    assert str(err.value) == f"denied: process {pid} lacks write on fs:{os.path.realpath(ws)}/README.md"
    assert (ws / "README.md").read_text() == "hello\n"
    rec = last_audit(runtime)
    assert (rec.syscall, rec.decision, rec.outcome) == ("fs.write", "deny", "denied")


def test_deny_beats_allow(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, allow=("fs:*=read",), deny=("fs:.env=read",))
    with pytest.raises(alos.Denied, match="is denied read"):
        d(runtime, pid, "fs.read", path=".env")


@pytest.mark.parametrize("path", ["../outside.txt", "src/../../outside.txt", "/etc/hostname", "//etc/hostname"])
def test_paths_that_leave_the_workspace_never_match(runtime, ws: Path, path: str) -> None:
    (ws.parent / "outside.txt").write_text("secret")
    pid = spawn(runtime, ws, allow=("fs:*=read",))
    with pytest.raises(alos.Denied, match="lacks read"):
        d(runtime, pid, "fs.read", path=path)


def test_a_symlink_out_of_a_granted_subtree_does_not_match(runtime, ws: Path) -> None:
    (ws.parent / "outside.txt").write_text("secret")
    os.symlink(ws.parent / "outside.txt", ws / "src" / "link.txt")
    os.symlink(ws.parent, ws / "src" / "up")
    pid = spawn(runtime, ws, allow=("fs:src/*=read,write",))
    for path in ("src/link.txt", "src/up/outside.txt"):
        with pytest.raises(alos.Denied, match="lacks"):
            d(runtime, pid, "fs.read", path=path)
    with pytest.raises(alos.Denied):
        d(runtime, pid, "fs.write", path="src/link.txt", content="overwrite")
    assert (ws.parent / "outside.txt").read_text() == "secret"


def test_a_symlink_that_stays_inside_is_followed(runtime, ws: Path) -> None:
    os.symlink(ws / "README.md", ws / "src" / "readme-link")
    pid = spawn(runtime, ws, allow=("fs:*=read",))
    assert d(runtime, pid, "fs.read", path="src/readme-link") == "hello\n"


def test_the_store_directory_is_unreachable_whatever_the_grants(tmp_path: Path, ws: Path) -> None:
    store = ws / ".alos" / "store.db"
    rt = alos.open(str(store), host=True)
    try:
        pid = spawn(rt, ws, allow=("fs:/*=read,write,list,delete",))
        for name, args in [
            ("fs.read", {"path": ".alos/store.db"}),
            ("fs.write", {"path": ".alos/store.db", "content": "x"}),
            ("fs.delete", {"path": ".alos/store.db-wal"}),
            ("fs.list", {"path": ".alos"}),
            ("fs.read", {"path": str(store)}),
        ]:
            with pytest.raises(alos.Denied, match="store directory"):
                asyncio.run(rt.dispatch(pid, name, args))
        os.symlink(ws / ".alos", ws / "innocent")
        with pytest.raises(alos.Denied, match="store directory"):
            d(rt, pid, "fs.read", path="innocent/store.db")
        names = [e["name"] for e in d(rt, pid, "fs.list", path=".")["entries"]]
        assert ".alos" not in names and "README.md" in names
        assert rt.verify().ok
    finally:
        rt.close()


def test_bad_arguments_are_invalid_and_audited(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, allow=("fs:*=read,write",))
    with pytest.raises(alos.Invalid, match="fs.write"):
        d(runtime, pid, "fs.write", path="a.txt")  # no content
    with pytest.raises(alos.Invalid):
        d(runtime, pid, "fs.read", path=7)
    with pytest.raises(alos.Invalid, match="NUL"):
        d(runtime, pid, "fs.read", path="a\x00b")
    with pytest.raises(alos.NotFound, match="no syscall"):
        d(runtime, pid, "fs.chmod", path="a")
    assert [r.outcome for r in list(runtime.audit())[-4:]] == ["invalid", "invalid", "invalid", "not_found"]


def test_a_process_cannot_answer_requests_or_issue_authority(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, allow=("fs:*=read",), ask=("fs:*=write",))
    parked = d(runtime, pid, "fs.write", path="x", content="1")
    assert isinstance(parked, Parked)
    for name, args in [
        ("human.answer", {"request": parked.request, "verdict": "once"}),
        ("cap.grant", {"pid": pid, "pattern": "fs:/*", "rights": ["write"]}),
    ]:
        with pytest.raises(alos.Denied, match="only the host"):
            asyncio.run(runtime.dispatch(pid, name, args))
    assert runtime.requests()[0].state.value == "pending"


def test_ask_parks_and_performs_nothing(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, ask=("fs:*=write",))
    parked = d(runtime, pid, "fs.write", path="new.txt", content="hello\x1b[31m")
    assert isinstance(parked, Parked) and parked.pid == pid
    assert not (ws / "new.txt").exists()
    req = runtime.requests()[0]
    assert req.detail["bytes"] == 10 and req.detail["digest"].startswith("sha256:")
    assert "\x1b" not in req.detail["preview"] and "\\x1b" in req.detail["preview"]
    assert runtime.process(pid).state is ProcState.WAITING


def test_an_overwrite_request_shows_the_current_digest_and_a_diff(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, ask=("fs:*=write",))
    d(runtime, pid, "fs.write", path="README.md", content="goodbye\n")
    detail = runtime.requests()[0].detail
    assert detail["overwrite"] is True and detail["current_bytes"] == 6
    assert detail["current_digest"] != detail["digest"]
    assert "-hello" in detail["diff"] and "+goodbye" in detail["diff"]


def test_approve_once_is_bound_to_the_exact_arguments(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, ask=("fs:*=write",))
    first = d(runtime, pid, "fs.write", path="a.txt", content="approved")
    asyncio.run(runtime.answer(first.request, "once", by="tester"))
    # a different call is not authorized by that answer
    other = d(runtime, pid, "fs.write", path="a.txt", content="something else")
    assert isinstance(other, Parked) and other.request != first.request
    assert not (ws / "a.txt").exists()
    # the approved call runs exactly once
    assert d(runtime, pid, "fs.write", path="a.txt", content="approved")["bytes"] == 8
    assert isinstance(d(runtime, pid, "fs.write", path="a.txt", content="approved"), Parked)
    assert (ws / "a.txt").read_text() == "approved"
    approved = [r for r in runtime.audit() if r.decision == "approved"]
    assert len(approved) == 1
    answer = next(r for r in runtime.audit() if r.syscall == "human.answer")
    assert answer.detail["by"] == "tester"


def test_approve_always_allows_that_resource_from_then_on(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, ask=("fs:*=write",))
    req = d(runtime, pid, "fs.write", path="log.txt", content="1").request
    asyncio.run(runtime.answer(req, "always"))
    for i in range(3):
        assert d(runtime, pid, "fs.write", path="log.txt", content=str(i))["bytes"] == 1
    assert isinstance(d(runtime, pid, "fs.write", path="other.txt", content="x"), Parked)


def test_deny_gives_the_model_the_reason(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, ask=("fs:*=write",))
    req = d(runtime, pid, "fs.write", path="a.txt", content="x").request
    asyncio.run(runtime.answer(req, "deny", "not today", by="ops"))
    with pytest.raises(alos.Denied, match="ops rejected this write .*: not today"):
        d(runtime, pid, "fs.write", path="a.txt", content="x")
    assert list(runtime.audit())[-1].decision == "rejected"


def test_answering_twice_or_a_missing_request_fails_clearly(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, ask=("fs:*=write",))
    req = d(runtime, pid, "fs.write", path="a.txt", content="x").request
    asyncio.run(runtime.answer(req, "once", by="first"))
    with pytest.raises(alos.Conflict, match="already approved by first"):
        asyncio.run(runtime.answer(req, "deny", by="second"))
    with pytest.raises(alos.NotFound, match="no human request 999"):
        asyncio.run(runtime.answer(999, "once"))
    with pytest.raises(alos.Invalid, match="verdict"):
        asyncio.run(runtime.answer(req, "maybe"))


def test_revoking_a_capability_revokes_what_was_derived_from_it(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws)
    root = d(runtime, 0, "cap.grant", pid=pid, pattern="fs:*", rights=["read", "write"], delegable=True)["id"]
    child = d(runtime, 0, "cap.grant", pid=pid, pattern="fs:src/*", rights=["read"], parent=root, delegable=True)["id"]
    d(runtime, 0, "cap.grant", pid=pid, pattern="fs:src/app.py", rights=["read"], parent=child)
    with pytest.raises(alos.Denied, match="rights only shrink"):
        d(runtime, 0, "cap.grant", pid=pid, pattern="fs:src/*", rights=["delete"], parent=root)
    assert d(runtime, pid, "fs.read", path="src/app.py")
    assert len(d(runtime, 0, "cap.revoke", id=root)["revoked"]) == 3
    with pytest.raises(alos.Denied):
        d(runtime, pid, "fs.read", path="src/app.py")


def test_an_exited_process_can_make_no_calls(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, allow=("fs:*=read",))
    d(runtime, pid, "proc.exit", status="ok", result="bye")
    with pytest.raises(alos.Denied, match="has exited"):
        d(runtime, pid, "fs.read", path="README.md")


def test_an_approval_does_not_cover_a_file_that_changed_since(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, ask=("fs:*=write",))
    first = d(runtime, pid, "fs.write", path="README.md", content="approved text\n")
    assert runtime.requests()[0].detail["state"].startswith("sha256:")
    asyncio.run(runtime.answer(first.request, "once", by="reviewer"))
    (ws / "README.md").write_text("someone else edited this\n")
    again = d(runtime, pid, "fs.write", path="README.md", content="approved text\n")
    assert isinstance(again, Parked) and again.request != first.request
    assert (ws / "README.md").read_text() == "someone else edited this\n"
    new = runtime.request(again.request)
    assert "changed after request" in new.detail["note"] and "-someone else edited this" in new.detail["diff"]
    asyncio.run(runtime.answer(again.request, "once"))
    assert d(runtime, pid, "fs.write", path="README.md", content="approved text\n")["bytes"] == 14


def test_reading_a_fifo_is_refused_without_blocking_the_host(runtime, ws: Path) -> None:
    os.mkfifo(ws / "pipe")
    pid = spawn(runtime, ws, allow=("fs:*=read",), ask=("fs:*=write",))
    with pytest.raises(alos.Invalid, match="not a regular file"):
        d(runtime, pid, "fs.read", path="pipe")
    parked = d(runtime, pid, "fs.write", path="pipe", content="x")  # the approval preview must not block
    assert isinstance(parked, Parked) and runtime.request(parked.request).detail["overwrite"] is False


def test_a_denial_does_not_reveal_where_a_symlink_points(runtime, ws: Path) -> None:
    os.symlink("/etc/hostname", ws / "lnk")
    pid = spawn(runtime, ws)
    with pytest.raises(alos.Denied) as err:
        d(runtime, pid, "fs.read", path="lnk")
    assert "/etc/hostname" not in str(err.value) and str(err.value).endswith("/lnk")
    assert last_audit(runtime).resource == "fs:/etc/hostname"  # the host's record keeps the truth


def test_mkdir_with_parents_needs_write_on_every_directory_it_makes(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, allow=("fs:out/deep/*=write",))
    with pytest.raises(alos.Denied, match="lacks write"):
        d(runtime, pid, "fs.mkdir", path="out/deep/x")
    assert not (ws / "out").exists()
    (ws / "out" / "deep").mkdir(parents=True)
    assert d(runtime, pid, "fs.mkdir", path="out/deep/x/y")["created"] is True
    with pytest.raises(alos.NotFound, match="parents=true"):
        d(runtime, pid, "fs.mkdir", path="out/deep/p/q", parents=False)


def spawn_as(rt: alos.Runtime, pid: int, **args):
    return asyncio.run(rt.dispatch(pid, "proc.spawn", args))


def test_a_process_names_a_model_script_only_through_the_file_authority(runtime, ws: Path) -> None:
    """A child's model script is a file the host reads on the caller's behalf: naming one needs
    execute on model:script and read on the file, decided like fs.read (and named as written)."""
    (ws / "child.jsonl").write_text('{"content": "hi"}\n')
    os.symlink(ws / "child.jsonl", ws / "src" / "alias.jsonl")
    pid = spawn(runtime, ws, allow=("proc:spawn=spawn", "fs:src/*=read"))
    with pytest.raises(alos.Denied) as err:
        spawn_as(runtime, pid, name="c", goal="g", model="script:src/alias.jsonl")
    assert "lacks read on fs:" in str(err.value) and str(err.value).endswith("/src/alias.jsonl")  # not the target
    with pytest.raises(alos.Denied, match="lacks read"):
        spawn_as(runtime, pid, name="c", goal="g", model="script:/etc/shadow")
    with pytest.raises(alos.Denied, match="lacks execute on model:other"):
        spawn_as(runtime, pid, name="c", goal="g", model="other:thing")
    reader = spawn(runtime, ws, allow=("proc:spawn=spawn", "fs:*=read"))
    child = spawn_as(runtime, reader, name="c", goal="g", model="script:child.jsonl")
    assert runtime.process(child["pid"]).model == f"script:{os.path.realpath(ws)}/child.jsonl"
    assert spawn_as(runtime, reader, name="same", goal="g")["pid"]  # its own model needs nothing more


def test_a_denial_is_durable_before_the_python_caller_hears_of_it(store: str, ws: Path) -> None:
    import sqlite3

    rt = alos.open(store, host=True)
    pid = spawn(rt, ws)
    for _ in range(2):
        with pytest.raises(alos.Denied):
            d(rt, pid, "fs.read", path="README.md")
    conn = sqlite3.connect(store)  # another connection sees both records before close()
    rows = conn.execute("SELECT outcome FROM audit WHERE syscall='fs.read'").fetchall()
    conn.close()
    rt.close()
    assert rows == [("denied",), ("denied",)]


def test_a_process_with_no_right_learns_nothing_of_what_exists(runtime, ws: Path, tmp_path: Path) -> None:
    (tmp_path / "exists").mkdir()
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    pid = spawn(runtime, ws)
    seen = set()
    for path in ("exists/sub", "missing/sub", "loop/x", "exists", "missing"):
        for name, args in (("fs.mkdir", {"parents": False}), ("fs.read", {}), ("fs.list", {}), ("fs.delete", {})):
            with pytest.raises(alos.Denied) as err:
                asyncio.run(runtime.dispatch(pid, name, {"path": str(tmp_path / path), **args}))
            seen.add(str(err.value).replace(path, "PATH"))
    assert len(seen) == 4, seen  # one message per syscall, whatever is there


def test_an_approval_diff_shows_a_line_end_changed_to_a_carriage_return(runtime, ws: Path) -> None:
    """splitlines() ends lines at '\\r' too: a '\\n' made '\\r' (which hides the next line from sh)
    would show as no change at all. The diff shows it."""
    (ws / "deploy.sh").write_text("#!/bin/sh\n# tidy\nverify || exit 1\necho go\n")
    pid = spawn(runtime, ws, ask=("fs:*=write",))
    parked = d(runtime, pid, "fs.write", path="deploy.sh", content="#!/bin/sh\n# tidy\rverify || exit 1\necho go\n")
    assert isinstance(parked, Parked)
    diff = runtime.request(parked.request).detail["diff"]
    assert "-# tidy" in diff and "+# tidy\\x0dverify || exit 1" in diff


def test_a_name_that_is_not_utf8_is_never_reached_and_breaks_nothing(runtime, ws: Path, tmp_path: Path) -> None:
    odd = os.path.join(os.fsencode(tmp_path), b"d\xfe")
    os.mkdir(odd)
    os.symlink(odd, ws / "lk")
    open(os.path.join(odd, b"f\xff"), "w").close()
    pid = spawn(runtime, ws, allow=("fs:*=read,list",))
    with pytest.raises(alos.Denied):
        d(runtime, pid, "fs.read", path="lk/x")  # resolves to a name alos cannot hold: not granted
    listing = d(runtime, pid, "fs.list", path=".")
    assert {"lk"} <= {e["name"] for e in listing["entries"]}
    (ws / "sub").mkdir()
    open(os.path.join(os.fsencode(ws), b"sub", b"g\xff"), "w").close()
    names = [e["name"] for e in d(runtime, pid, "fs.list", path="sub")["entries"]]
    assert names == ["g\\udcff"]
    assert runtime.verify().ok  # the store took every record


def test_a_pattern_through_a_symlink_is_named_as_written_in_a_refusal(runtime, ws: Path, tmp_path: Path) -> None:
    (tmp_path / "sec" / "dir").mkdir(parents=True)
    os.symlink(tmp_path / "sec" / "dir", tmp_path / "sec" / "link")
    pid = spawn(runtime, ws, allow=("fs:*=read", "proc:spawn=spawn", "image:*=execute"))
    written = f"fs:{tmp_path}/sec/link/*"
    with pytest.raises(alos.Denied) as err:
        spawn_as(runtime, pid, name="c", goal="g", grants=[{"pattern": written, "rights": ["read"]}])
    assert written in str(err.value) and "sec/dir" not in str(err.value)
    with pytest.raises(alos.NotFound) as nf:
        d(runtime, pid, "proc.exec", image="base", keep=[written])
    assert written in str(nf.value) and "sec/dir" not in str(nf.value)


@pytest.mark.parametrize("field", ["grants", "keep"])
def test_a_nul_in_a_pattern_is_an_invalid_call_not_a_crash(runtime, ws: Path, field: str) -> None:
    pid = spawn(runtime, ws, allow=("fs:*=read", "proc:spawn=spawn", "image:*=execute"))
    with pytest.raises(alos.Invalid, match="NUL"):
        if field == "grants":
            spawn_as(runtime, pid, name="c", goal="g", grants=[{"pattern": "fs:a\x00b", "rights": ["read"]}])
        else:
            d(runtime, pid, "proc.exec", image="base", keep=["fs:x\x00"])
    assert last_audit(runtime).outcome == "invalid"


def test_dotdot_is_taken_by_name_so_a_symlink_tells_nothing(runtime, ws: Path, tmp_path: Path) -> None:
    """`sec/deep/../../x` working would tell a process with no right on sec/ where deep leads."""
    (tmp_path / "sec" / "a" / "b").mkdir(parents=True)
    os.symlink(tmp_path / "sec" / "a" / "b", tmp_path / "sec" / "deep")
    (tmp_path / "sec" / "plain").mkdir()
    pid = spawn(runtime, ws, allow=("fs:*=read",))
    for name in ("deep", "plain", "none"):  # the same answer whatever sec/NAME is
        assert d(runtime, pid, "fs.read", path=f"{tmp_path}/sec/{name}/../../ws/README.md") == "hello\n"


def test_a_fork_approval_shows_the_grants_as_they_will_be_issued(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, allow=("fs:*=read,write,list",), ask=("proc:spawn=spawn",))
    d(runtime, pid, "proc.chdir", path="src")
    parked = d(runtime, pid, "proc.fork", mode="copy", goal="tidy", grants=[{"pattern": "fs:*", "rights": ["read"]}])
    detail = runtime.request(parked.request).detail
    assert detail["cwd"] == f"{os.path.realpath(ws)}/src"
    assert detail["grants"][0]["pattern"] == f"fs:{os.path.realpath(ws)}/src/*"


def test_a_python_caller_passing_a_lone_surrogate_gets_a_clear_refusal_and_an_audit(runtime, ws: Path) -> None:
    """JSON never carries a lone surrogate, a Python str may: refused as bad arguments, audited,
    the store intact (it used to escape as a raw UnicodeEncodeError from the audit)."""
    pid = spawn(runtime, ws, allow=("fs:*=read,write",))
    for name, args in (("fs.write", {"path": "x.txt", "content": "hi\ud800"}), ("fs.read", {"path": "a\udc80"})):
        with pytest.raises(alos.Invalid, match="lone surrogate"):
            d(runtime, pid, name, **args)
    assert not (ws / "x.txt").exists()
    refused = [a for a in runtime.audit(pid) if a.syscall in ("fs.write", "fs.read")]
    assert len(refused) == 2 and all(a.outcome == "invalid" for a in refused)
    assert runtime.verify().ok
