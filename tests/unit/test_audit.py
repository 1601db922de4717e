import itertools
import sqlite3
from pathlib import Path

import pytest

from alos import audit
from alos.store.db import open_store


@pytest.fixture
def chained(tmp_path: Path) -> Path:
    path = tmp_path / "s.db"
    s = open_store(str(path))
    for i in range(5):
        with s.transaction() as conn:
            audit.append(conn, float(i), 1, "fs.read", f"fs:/w/{i}", "read", "allow", "ok", {"i": i})
    assert audit.verify(s.conn).ok
    s.close()
    return path


def _tamper(path: Path, *sql: str) -> audit.ChainCheck:
    conn = sqlite3.connect(path)
    for statement in sql:
        conn.execute(statement)
    conn.commit()
    conn.close()
    s = open_store(str(path))
    try:
        return audit.verify(s.conn)
    finally:
        s.close()


def test_the_chain_links_each_record_to_the_one_before(chained: Path) -> None:
    s = open_store(str(chained))
    records = list(audit.records(s.conn))
    s.close()
    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert records[0].prev == audit.GENESIS
    assert all(b.prev == a.digest for a, b in itertools.pairwise(records))


def test_an_edited_record_is_named(chained: Path) -> None:
    v = _tamper(chained, "UPDATE audit SET decision='deny' WHERE seq=3")
    assert not v.ok and v.bad_seq == 3 and "edited" in v.reason


def test_a_deleted_record_is_named(chained: Path) -> None:
    v = _tamper(chained, "DELETE FROM audit WHERE seq=2")
    assert not v.ok and v.bad_seq == 2 and "missing" in v.reason


def test_a_deleted_last_record_is_noticed(chained: Path) -> None:
    v = _tamper(chained, "DELETE FROM audit WHERE seq=5")
    assert not v.ok and "removed" in v.reason


def test_swapped_records_are_noticed(chained: Path) -> None:
    v = _tamper(
        chained,
        "UPDATE audit SET seq=-2 WHERE seq=2",
        "UPDATE audit SET seq=2 WHERE seq=3",
        "UPDATE audit SET seq=3 WHERE seq=-2",
    )
    assert not v.ok and v.bad_seq == 2


def test_a_recomputed_digest_still_breaks_the_next_link(chained: Path) -> None:
    # An editor who recomputes record 3's digest breaks record 4's link to it.
    s = open_store(str(chained))
    row = s.conn.execute("SELECT * FROM audit WHERE seq=3").fetchone()
    s.close()
    fields = list(row[:10])
    fields[6] = "deny"
    new = audit._digest(tuple(fields))
    v = _tamper(chained, f"UPDATE audit SET decision='deny', digest='{new}' WHERE seq=3")
    assert not v.ok and v.bad_seq == 4
