import asyncio
import os
import sqlite3
from pathlib import Path

import pytest

import alos
from alos import limits
from alos.errors import Invalid, StoreLost, Unavailable
from alos.store.db import open_store


def test_a_new_store_is_wal_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    s = open_store(str(path))
    assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    s.close()
    s = open_store(str(path), create=False)
    assert s.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(
        limits.SCHEMA_VERSION
    )
    s.close()


def _refused_untouched(path: Path, words: str) -> None:
    before = path.read_bytes()
    with pytest.raises(Invalid) as err:
        open_store(str(path))
    assert words in str(err.value)
    assert path.read_bytes() == before


def test_a_corrupt_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not a database at all\x00" * 100)
    _refused_untouched(path, "not a usable alos store")


def test_an_sqlite_file_of_another_program_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER)")
    conn.commit()
    conn.close()
    _refused_untouched(path, "not an alos store")


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    open_store(str(path)).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    _refused_untouched(path, "newer than this alos understands")


def test_a_missing_store_is_not_created_by_readers(tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="no alos store"):
        open_store(str(tmp_path / "nope.db"), create=False)
    assert not (tmp_path / "nope.db").exists()


def test_only_one_host_runs_a_store(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    first = alos.open(path, host=True)
    try:
        with pytest.raises(Unavailable, match="another host"):
            alos.open(path, host=True)
        reader = alos.open(path)  # approvals from another terminal need no host lock
        reader.close()
    finally:
        first.close()
    alos.open(path, host=True).close()


def test_a_version_1_store_migrates_forward_and_keeps_its_processes(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript((Path(__file__).parent / "schema_v1.sql").read_text())
    conn.execute("INSERT INTO meta VALUES ('schema_version', '1'), ('audit_head', '0:')")
    conn.execute(
        "INSERT INTO processes (parent, name, image, model, state, cwd, goal, turns, created, updated)"
        " VALUES (NULL, 'main', 'base', 'script:/x', 'waiting', '/', 'g', 3, 1.0, 2.0)"
    )
    conn.close()
    rt = alos.open(str(path), create=False)
    try:
        (p,) = rt.processes()
        assert (p.name, p.turns, p.priority, p.mode, p.reaped) == ("main", 3, 5, "spawn", False)
        version = rt.store.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
        assert version == str(limits.SCHEMA_VERSION)
        tables = {r[0] for r in rt.store.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"messages", "budgets", "objects", "versions", "checkpoints", "tools", "tool_specs"} <= tables
        # a live process of an old store gets the namespace, tool table and rights a new one gets
        held = {c.pattern for c in rt.kernel.caps(p.pid)}
        assert {f"obj:proc/{p.pid}/*", f"ns:proc/{p.pid}", f"tool:proc/{p.pid}/*"} <= held
        made = asyncio.run(rt.dispatch(p.pid, "obj.create", {"name": "n", "type": "text", "value": "kept"}))
        assert made["version"] == 1
        assert asyncio.run(rt.dispatch(p.pid, "tool.list", {}))["tools"] == []
        index = rt.store.conn.execute("SELECT sql FROM sqlite_master WHERE name='audit_effects'").fetchone()[0]
        assert "'tool.register'" in index  # made again by the migration to schema 5
    finally:
        rt.close()


def test_a_store_with_a_second_name_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    open_store(str(path)).close()
    os.link(path, tmp_path / "other-name.db")
    for name in (path, tmp_path / "other-name.db"):
        with pytest.raises(Invalid, match="2 names"):
            open_store(str(name))


def test_the_host_lock_is_on_the_file_not_the_path(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    first = open_store(str(path))
    first.lock_host()
    (tmp_path / "link").symlink_to(path)
    second = open_store(str(tmp_path / "link"))
    try:
        with pytest.raises(Unavailable, match="another host"):
            second.lock_host()
    finally:
        second.close()
    first.close()
    third = open_store(str(path))  # released with the first host
    third.lock_host()
    third.close()


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_store_deleted_or_replaced_under_a_host_stops_it(tmp_path: Path, how: str) -> None:
    path = tmp_path / "s.db"
    s = open_store(str(path))
    with s.transaction() as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES ('x', 'y')")
    os.unlink(path)
    if how == "replaced":
        open_store(str(path)).close()
    with pytest.raises(StoreLost, match=how):
        s.changed_elsewhere()
    with pytest.raises(StoreLost, match=how), s.transaction():
        pass
    s.close()


@pytest.mark.parametrize("content", [b"", b"a"])
def test_a_reader_never_turns_a_small_file_into_a_store(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(Invalid, match="not an alos store"):
        open_store(str(path), create=False)
    assert path.read_bytes() == content
    if content:  # a host creates a store only in a new or empty file
        with pytest.raises(Invalid, match="left untouched"):
            open_store(str(path), create=True)
        assert path.read_bytes() == content
