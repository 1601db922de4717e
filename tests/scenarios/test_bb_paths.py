"""Black-box: path traversal, symlinks and the store directory, driven through `alos run`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.scenarios.bb_support import Env, call, make_env, result_texts, turn


@pytest.mark.parametrize(
    "path",
    ["../outside.txt", "sub/../../outside.txt", "./../outside.txt", "OUTSIDE_ABS", "sub/../../ws/../outside.txt"],
)
def test_traversal_out_of_the_workspace_is_denied_with_fs_star(tmp_path: Path, path: str) -> None:
    e = make_env(tmp_path)
    (e.ws / "sub").mkdir()
    (tmp_path / "outside.txt").write_text("TOP SECRET OUTSIDE")
    if path == "OUTSIDE_ABS":
        path = str(tmp_path / "outside.txt")
    cp = e.run([turn(call("fs_read", path=path))], "--allow", "fs:*=read,list,write")
    assert cp.returncode == 0, cp.stderr
    texts = result_texts(cp.stdout)
    assert len(texts) == 1
    assert "TOP SECRET" not in cp.stdout
    assert texts[0].startswith("denied"), texts
    assert "read" in texts[0] and str(tmp_path / "outside.txt") in texts[0]


def test_absolute_etc_passwd_is_denied_with_whole_workspace_grant(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    cp = e.run([turn(call("fs_read", path="/etc/passwd"))], "--allow", "fs:*=read")
    texts = result_texts(cp.stdout)
    assert texts and texts[0].startswith("denied")
    assert "root:" not in cp.stdout


def test_write_via_dotdot_creates_nothing_outside(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    cp = e.run(
        [turn(call("fs_write", path="../escape.txt", content="x"), call("fs_mkdir", path="../escdir"))],
        "--allow",
        "fs:*=read,write,list,delete",
    )
    assert cp.returncode == 0, cp.stderr
    assert not (tmp_path / "escape.txt").exists()
    assert not (tmp_path / "escdir").exists()
    assert all(t.startswith("denied") for t in result_texts(cp.stdout))


def test_symlink_inside_workspace_pointing_outside_is_denied(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    (tmp_path / "outside.txt").write_text("OUTSIDE DATA")
    os.symlink(tmp_path / "outside.txt", e.ws / "link.txt")
    os.symlink(tmp_path, e.ws / "dirlink")
    cp = e.run(
        [
            turn(
                call("fs_read", path="link.txt"),
                call("fs_read", path="dirlink/outside.txt"),
                call("fs_write", path="link.txt", content="clobbered"),
                call("fs_write", path="dirlink/new.txt", content="planted"),
            )
        ],
        "--allow",
        "fs:*=read,write",
    )
    assert cp.returncode == 0, cp.stderr
    assert "OUTSIDE DATA" not in cp.stdout
    assert (tmp_path / "outside.txt").read_text() == "OUTSIDE DATA"
    assert not (tmp_path / "new.txt").exists()
    texts = result_texts(cp.stdout)
    assert len(texts) == 4 and all(t.startswith("denied") for t in texts), texts


def test_symlink_leaving_a_granted_subtree_does_not_match(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    (e.ws / "pub").mkdir()
    (e.ws / "private.txt").write_text("PRIVATE")
    os.symlink("../private.txt", e.ws / "pub" / "p")
    (e.ws / "pub" / "ok.txt").write_text("public ok")
    cp = e.run([turn(call("fs_read", path="pub/p"), call("fs_read", path="pub/ok.txt"))], "--allow", "fs:pub/*=read")
    texts = result_texts(cp.stdout)
    assert texts[0].startswith("denied") and "PRIVATE" not in cp.stdout
    assert texts[1] == "public ok"


def test_dotdot_inside_a_grant_subtree_does_not_escape_it(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    (e.ws / "pub").mkdir()
    (e.ws / "private.txt").write_text("PRIVATE")
    cp = e.run([turn(call("fs_read", path="pub/../private.txt"))], "--allow", "fs:pub/*=read")
    texts = result_texts(cp.stdout)
    assert texts[0].startswith("denied") and "PRIVATE" not in cp.stdout


def test_store_inside_workspace_is_unreachable_whatever_the_grants(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    e.store = e.ws / ".alos" / "store.db"
    os.symlink(".alos/store.db", e.ws / "dblink")
    calls = [
        call("fs_read", path=".alos/store.db"),
        call("fs_read", path="dblink"),
        call("fs_read", path="./sub/../.alos/store.db"),
        call("fs_read", path=str(e.ws / ".alos" / "store.db")),
        call("fs_write", path=".alos/store.db", content="garbage"),
        call("fs_write", path="dblink", content="garbage"),
        call("fs_delete", path=".alos/store.db"),
        call("fs_delete", path=".alos"),
        call("fs_list", path=".alos"),
        call("fs_write", path=".alos/store.db-journal", content="garbage"),
    ]
    cp = e.run([turn(*calls)], "--allow", "fs:*=read,write,delete,list", "--allow", "fs:.alos/*=read,write,delete,list")
    assert cp.returncode == 0, cp.stderr
    texts = result_texts(cp.stdout)
    assert len(texts) == len(calls)
    for c, t in zip(calls, texts):
        # refused before any lookup, naming the path as the process wrote it (dblink, not its target)
        written = os.path.normpath(os.path.join(e.ws, c["arguments"]["path"]))
        assert t == f"denied: fs:{written} is inside alos's store directory; no process may reach it", (c, t)
    assert "SQLite format" not in cp.stdout
    assert not (e.ws / ".alos" / "store.db-journal").exists()
    # the store still works afterwards
    assert e.cmd("audit", "verify").returncode == 0


def test_fs_list_does_not_show_the_store_directory(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    e.store = e.ws / ".alos" / "store.db"
    cp = e.run([turn(call("fs_list"), call("fs_list", path="."))], "--allow", "fs:*=read,list")
    texts = result_texts(cp.stdout)
    assert len(texts) == 2
    for t in texts:
        assert "README.md" in t
        assert ".alos" not in t and "store.db" not in t


def test_store_outside_workspace_reached_through_a_parent_grant_is_still_protected(tmp_path: Path) -> None:
    e = make_env(tmp_path)  # store at tmp_path/state/store.db, a sibling of the workspace
    cp = e.run(
        [
            turn(
                call("fs_read", path="../state/store.db"),
                call("fs_write", path="../state/store.db", content="x"),
                call("fs_delete", path="../state/store.db"),
            )
        ],
        "--allow",
        f"fs:{tmp_path}/*=read,write,delete,list",
    )
    texts = result_texts(cp.stdout)
    assert len(texts) == 3 and all(t.startswith("denied") for t in texts), texts
    assert e.store.read_bytes().startswith(b"SQLite format 3")


def test_store_directory_not_named_alos_cannot_receive_planted_files(tmp_path: Path) -> None:
    e = make_env(tmp_path)  # store dir is tmp_path/state
    cp = e.run([turn(call("fs_write", path="../state/planted", content="x"))], "--allow", f"fs:{tmp_path}/*=write")
    assert not (tmp_path / "state" / "planted").exists(), result_texts(cp.stdout)


def test_a_grant_with_dotdot_names_the_workspace_parent_and_nothing_above_it(tmp_path: Path) -> None:
    # docs/authority.md: a relative fs: pattern is relative to the workspace, so the host who
    # writes 'fs:../*' grants the directory holding the workspace; '..' does not widen it further.
    top = tmp_path / "top"
    e = Env(root=tmp_path, ws=top / "ws", store=tmp_path / "state" / "store.db")
    e.ws.mkdir(parents=True)
    (top / "beside.txt").write_text("BESIDE")
    (tmp_path / "above.txt").write_text("ABOVE")
    reads = [call("fs_read", path="../beside.txt"), call("fs_read", path="../../above.txt")]
    cp = e.run([turn(*reads)], "--allow", "fs:../*=read")
    assert cp.returncode == 0, cp.stderr
    assert result_texts(cp.stdout) == ["BESIDE", f"denied: process 1 lacks read on fs:{tmp_path / 'above.txt'}"]


def test_a_grant_with_dotdot_inside_is_normalized(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    (e.ws / "a").mkdir()
    (e.ws / "b").mkdir()
    (e.ws / "b" / "f.txt").write_text("in b")
    (e.ws / "a" / "g.txt").write_text("in a")
    cp = e.run([turn(call("fs_read", path="b/f.txt"), call("fs_read", path="a/g.txt"))], "--allow", "fs:a/../b/*=read")
    texts = result_texts(cp.stdout)
    assert texts[0] == "in b"
    assert texts[1].startswith("denied")


def test_nul_byte_and_huge_path_are_rejected_not_crashing(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    cp = e.run(
        [turn(call("fs_read", path="README.md\x00/../../etc/passwd"), call("fs_read", path="a/" * 5000 + "x"))],
        "--allow",
        "fs:*=read",
    )
    assert cp.returncode == 0, cp.stderr
    texts = result_texts(cp.stdout)
    assert len(texts) == 2
    assert texts[0] == "invalid: a path contains a NUL byte; name the file without it"
    huge = f"{e.ws.resolve()}/{'a/' * 5000}x"
    assert texts[1] == (
        f"invalid: read: {huge}: a name in it is too long for the host's filesystem; use a shorter one"
    ), texts[1][:200]
    assert "Traceback" not in cp.stderr
