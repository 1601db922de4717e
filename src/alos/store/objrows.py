"""The SQL of Object Memory and checkpoints: namespaces, objects, versions, links, checkpoints.

Like rows.py (the rest of alos's SQL), each function runs one small statement on a connection
it is given; callers own transactions. A version row is never changed or deleted: a
checkpoint is the newest version seq when it was taken, and the objects it holds are read
back as the newest version of each at or below that mark.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from alos import codec
from alos.types import Pid

Conn = sqlite3.Connection


@dataclass(frozen=True, slots=True)
class Version:
    """One version of an object: ``digest`` None when the object was deleted there."""

    seq: int
    object: int
    version: int
    ns: str
    name: str
    type: str
    digest: str | None
    size: int
    body: bytes | None  # the payload when it lives in the row; None: in the blob directory (or deleted)
    pid: Pid
    created: float


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A checkpoint row: its manifest (``body``) and where its objects, audit and context stand."""

    id: int
    pid: Pid
    label: str | None
    prev: int | None
    parent: int | None
    mark: int
    audit: int
    ctxgen: int
    ctxlen: int
    ctxfrom: int
    body: dict[str, Any]
    created: float
    taker: Pid


_V = "v.seq, v.object, v.version, v.ns, o.name, v.type, v.digest, v.size, v.body, v.pid, v.created"
_JOIN = "FROM versions v JOIN objects o ON o.id = v.object"


def _version(row: tuple[Any, ...]) -> Version:
    body = bytes(row[8]) if row[8] is not None else None
    return Version(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], body, row[9], row[10])


# -- namespaces ------------------------------------------------------------------------


def insert_namespace(conn: Conn, name: str, owner: Pid, when: float) -> bool:
    """Create namespace ``name``; return False when it exists already."""
    cur = conn.execute("INSERT OR IGNORE INTO namespaces (name, owner, created) VALUES (?,?,?)", (name, owner, when))
    return cur.rowcount == 1


def namespace_owner(conn: Conn, name: str) -> Pid | None:
    """Return the owner of namespace ``name``, or None when there is no such namespace."""
    row = conn.execute("SELECT owner FROM namespaces WHERE name=?", (name,)).fetchone()
    return int(row[0]) if row else None


def owned_namespaces(conn: Conn, owner: Pid) -> list[str]:
    """Return the namespaces ``owner`` owns (its own first)."""
    rows = [r[0] for r in conn.execute("SELECT name FROM namespaces WHERE owner=? ORDER BY created, name", (owner,))]
    own = f"proc/{owner}"
    return ([own] if own in rows else []) + [n for n in rows if n != own]


# -- objects and versions --------------------------------------------------------------


def head(conn: Conn, ns: str, name: str) -> Version | None:
    """Return the newest version of ``ns``/``name`` (a tombstone when deleted), or None."""
    row = conn.execute(f"SELECT {_V} {_JOIN} AND v.seq = o.head WHERE o.ns=? AND o.name=?", (ns, name)).fetchone()
    return _version(row) if row else None


def version_of(conn: Conn, ns: str, name: str, version: int) -> Version | None:
    """Return version ``version`` of ``ns``/``name``, or None."""
    row = conn.execute(f"SELECT {_V} {_JOIN} WHERE o.ns=? AND o.name=? AND v.version=?", (ns, name, version)).fetchone()
    return _version(row) if row else None


def base_of(conn: Conn, ns: str, name: str) -> int | None:
    """Return the seq of the version ``ns``/``name`` was copied from by a fork, or None."""
    row = conn.execute("SELECT base FROM objects WHERE ns=? AND name=?", (ns, name)).fetchone()
    return row[0] if row else None


def insert_version(
    conn: Conn,
    ns: str,
    name: str,
    type_: str,
    digest: str | None,
    size: int,
    body: bytes | None,
    pid: Pid,
    when: float,
    base: int | None = None,
) -> Version:
    """Add a version of ``ns``/``name`` (creating the object) and make it the head; return it."""
    row = conn.execute("SELECT id, head FROM objects WHERE ns=? AND name=?", (ns, name)).fetchone()
    if row is None:
        obj = conn.execute(
            "INSERT INTO objects (ns, name, head, base) VALUES (?,?,0,?) RETURNING id", (ns, name, base)
        ).fetchone()[0]
        number = 1
    else:
        obj = row[0]
        number = conn.execute("SELECT version FROM versions WHERE seq=?", (row[1],)).fetchone()[0] + 1
    seq = conn.execute(
        "INSERT INTO versions (object, version, ns, type, digest, size, body, pid, created)"
        " VALUES (?,?,?,?,?,?,?,?,?) RETURNING seq",
        (obj, number, ns, type_, digest, size, body, pid, when),
    ).fetchone()[0]
    conn.execute("UPDATE objects SET head=? WHERE id=?", (seq, obj))
    return Version(seq, obj, number, ns, name, type_, digest, size, body, pid, when)


def listing(conn: Conn, ns: str, prefix: str, after: str, most: int) -> list[Version]:
    """Return the heads of the live objects of ``ns`` whose names start with ``prefix``, after
    ``after`` in name order, at most ``most``."""
    rows = conn.execute(
        f"SELECT {_V} {_JOIN} AND v.seq = o.head WHERE o.ns=? AND o.name > ? AND substr(o.name, 1, ?) = ?"
        " AND v.digest IS NOT NULL ORDER BY o.name LIMIT ?",
        (ns, after, len(prefix), prefix, most),
    )
    return [_version(r) for r in rows]


def history(conn: Conn, ns: str, name: str, most: int) -> list[Version]:
    """Return the versions of ``ns``/``name``, newest first, at most ``most``."""
    rows = conn.execute(
        f"SELECT {_V} {_JOIN} WHERE o.ns=? AND o.name=? ORDER BY v.version DESC LIMIT ?", (ns, name, most)
    )
    return [_version(r) for r in rows]


def newest_seq(conn: Conn) -> int:
    """Return the newest version seq of the store (0 when there is none)."""
    return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM versions").fetchone()[0])


def changed_since(conn: Conn, ns: str, mark: int, upto: int | None = None) -> list[str]:
    """Return the names in ``ns`` with a version after ``mark`` (and at or before ``upto``), sorted."""
    sql = f"SELECT DISTINCT o.name {_JOIN} WHERE v.ns=? AND v.seq > ?"
    params: tuple[Any, ...] = (ns, mark)
    if upto is not None:
        sql += " AND v.seq <= ?"
        params += (upto,)
    return sorted(r[0] for r in conn.execute(sql, params))


def as_of(conn: Conn, ns: str, name: str, mark: int) -> Version | None:
    """Return the newest version of ``ns``/``name`` at or before seq ``mark``, or None."""
    row = conn.execute(
        f"SELECT {_V} {_JOIN} WHERE o.ns=? AND o.name=? AND v.seq <= ? ORDER BY v.seq DESC LIMIT 1", (ns, name, mark)
    ).fetchone()
    return _version(row) if row else None


def view(conn: Conn, ns: str, mark: int | None = None) -> Iterator[Version]:
    """Yield the live objects of ``ns`` as they were at seq ``mark`` (now when None), by name."""
    if mark is None:
        sql = f"SELECT {_V} {_JOIN} AND v.seq = o.head WHERE o.ns=? AND v.digest IS NOT NULL ORDER BY o.name"
        rows = conn.execute(sql, (ns,))
    else:
        sql = (
            f"SELECT {_V} {_JOIN} WHERE v.seq IN (SELECT MAX(seq) FROM versions WHERE ns=? AND seq <= ?"
            " GROUP BY object) AND v.digest IS NOT NULL ORDER BY o.name"
        )
        rows = conn.execute(sql, (ns, mark))
    for row in rows:
        yield _version(row)


def blob_versions(conn: Conn) -> Iterator[Version]:
    """Yield every version whose payload is in the blob directory."""
    for row in conn.execute(f"SELECT {_V} {_JOIN} WHERE v.body IS NULL AND v.digest IS NOT NULL ORDER BY v.seq"):
        yield _version(row)


def blob_in_use(conn: Conn, digest: str) -> bool:
    """Return whether a version names blob ``digest``."""
    sql = "SELECT 1 FROM versions WHERE digest=? AND body IS NULL AND digest IS NOT NULL LIMIT 1"
    return conn.execute(sql, (digest,)).fetchone() is not None


def image_seed_list(conn: Conn) -> list[tuple[str, str, str, int]]:
    """Return (image ref, object name, ``sha256:<hex>``, size) of every image's seed objects."""
    out = []
    for ref, body in conn.execute("SELECT ref, body FROM images WHERE body LIKE '%\"objects\"%'"):
        for item in codec.loads(body).get("objects") or ():
            out.append((ref, str(item["name"]), "sha256:" + str(item["digest"]), int(item["bytes"])))
    return out


def image_seeds(conn: Conn) -> set[str]:
    """Return the payload digests the images' seed objects name."""
    return {digest for _, _, digest, _ in image_seed_list(conn)}


def insert_link(conn: Conn, src: int, kind: str, dst: int) -> bool:
    """Record a typed edge between two versions; return False when it was there."""
    return conn.execute("INSERT OR IGNORE INTO links (src, kind, dst) VALUES (?,?,?)", (src, kind, dst)).rowcount == 1


def links_from(conn: Conn, src: int) -> list[tuple[str, Version]]:
    """Return (kind, target version) of the edges from version ``src``."""
    rows = conn.execute(f"SELECT l.kind, {_V} FROM links l JOIN versions v ON v.seq = l.dst"
                        " JOIN objects o ON o.id = v.object WHERE l.src=? ORDER BY l.kind, l.dst", (src,))  # fmt: skip
    return [(r[0], _version(r[1:])) for r in rows]


def derived_in(conn: Conn, ns: str, src: int) -> bool:
    """Return whether a version in ``ns`` links ``derived_from`` version ``src`` (a merge brought it)."""
    sql = "SELECT 1 FROM links l JOIN versions v ON v.seq = l.src WHERE l.dst=? AND l.kind='derived_from' AND v.ns=?"
    return conn.execute(sql + " LIMIT 1", (src, ns)).fetchone() is not None


def count_links(conn: Conn, src: int) -> int:
    """Return how many edges leave version ``src``."""
    return int(conn.execute("SELECT count(*) FROM links WHERE src=?", (src,)).fetchone()[0])


# -- checkpoints -----------------------------------------------------------------------

_CK = "id, pid, label, prev, parent, mark, audit, ctxgen, ctxlen, ctxfrom, body, created, taker"


def _checkpoint(row: tuple[Any, ...]) -> Checkpoint:
    r = row
    return Checkpoint(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], codec.loads(r[10]), r[11], r[12])


def insert_checkpoint(conn: Conn, c: Checkpoint) -> int:
    """Insert checkpoint ``c`` (its id is ignored); return its id."""
    return int(
        conn.execute(
            "INSERT INTO checkpoints (pid, label, prev, parent, mark, audit, ctxgen, ctxlen, ctxfrom, body, created,"
            " taker) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
            (c.pid, c.label, c.prev, c.parent, c.mark, c.audit, c.ctxgen, c.ctxlen, c.ctxfrom, codec.dumps(c.body),
             c.created, c.taker),
        ).fetchone()[0]
    )  # fmt: skip


def load_checkpoint(conn: Conn, ckpt: int) -> Checkpoint | None:
    """Return checkpoint ``ckpt`` or None."""
    row = conn.execute(f"SELECT {_CK} FROM checkpoints WHERE id=?", (ckpt,)).fetchone()
    return _checkpoint(row) if row else None


def last_checkpoint(conn: Conn, pid: Pid) -> Checkpoint | None:
    """Return the newest checkpoint of ``pid``, or None."""
    row = conn.execute(f"SELECT {_CK} FROM checkpoints WHERE pid=? ORDER BY id DESC LIMIT 1", (pid,)).fetchone()
    return _checkpoint(row) if row else None


def checkpoints_of(conn: Conn, pid: Pid | None, most: int) -> list[Checkpoint]:
    """Return the checkpoints of ``pid`` (every process's when None), newest first, at most ``most``."""
    if pid is None:
        rows = conn.execute(f"SELECT {_CK} FROM checkpoints ORDER BY id DESC LIMIT ?", (most,))
    else:
        rows = conn.execute(f"SELECT {_CK} FROM checkpoints WHERE pid=? ORDER BY id DESC LIMIT ?", (pid, most))
    return [_checkpoint(r) for r in rows]


def taken_with(conn: Conn, ckpt: int) -> list[Checkpoint]:
    """Return the checkpoints taken together with ``ckpt`` (its children's)."""
    return [_checkpoint(r) for r in conn.execute(f"SELECT {_CK} FROM checkpoints WHERE parent=? ORDER BY id", (ckpt,))]


def save_context(conn: Conn, ckpt: int, pid: Pid, first: int) -> int:
    """Copy ``pid``'s context messages from seq ``first`` on into checkpoint ``ckpt``; return how many."""
    cur = conn.execute(
        "INSERT INTO checkpoint_context (ckpt, seq, body) SELECT ?, seq, body FROM context WHERE pid=? AND seq >= ?",
        (ckpt, pid, first),
    )
    return cur.rowcount


def checkpoint_context(conn: Conn, chain: Sequence[int], upto: int) -> list[dict[str, Any]]:
    """Return the context messages kept by the checkpoints ``chain`` (oldest first), below seq ``upto``."""
    out: list[dict[str, Any]] = []
    for ckpt in chain:
        for row in conn.execute(
            "SELECT body FROM checkpoint_context WHERE ckpt=? AND seq < ? AND seq >= ? ORDER BY seq",
            (ckpt, upto, len(out)),
        ):
            out.append(codec.loads(row[0]))
    return out


def context_generation(conn: Conn, pid: Pid) -> int:
    """Return how many times ``pid``'s context was rewritten rather than appended to."""
    row = conn.execute("SELECT ctxgen FROM processes WHERE pid=?", (pid,)).fetchone()
    return int(row[0]) if row else 0


def context_length(conn: Conn, pid: Pid) -> int:
    """Return how many messages ``pid``'s context holds."""
    return int(conn.execute("SELECT COALESCE(MAX(seq) + 1, 0) FROM context WHERE pid=?", (pid,)).fetchone()[0])


def replace_context(conn: Conn, pid: Pid, msgs: Sequence[dict[str, Any]]) -> None:
    """Make ``msgs`` the whole of ``pid``'s context, a rewrite (its generation moves on)."""
    conn.execute("DELETE FROM context WHERE pid=?", (pid,))
    conn.executemany(
        "INSERT INTO context (pid, seq, role, body) VALUES (?,?,?,?)",
        [(pid, i, str(m.get("role", "user")), codec.dumps(m)) for i, m in enumerate(msgs)],
    )
    conn.execute("UPDATE processes SET ctxgen = ctxgen + 1 WHERE pid=?", (pid,))


def message_cursor(conn: Conn, pid: Pid) -> tuple[int, list[int]]:
    """Return the newest message id of the store and the ids waiting in ``pid``'s queue."""
    newest = int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM messages").fetchone()[0])
    waiting = [r[0] for r in conn.execute("SELECT id FROM messages WHERE pid=? AND taken IS NULL ORDER BY id", (pid,))]
    return newest, waiting


def untake_messages(conn: Conn, pid: Pid, newest: int, waiting: Sequence[int]) -> int:
    """Put back in ``pid``'s queue the messages that waited in it at a checkpoint or came after; return how many."""
    n = conn.execute(
        "UPDATE messages SET taken=NULL WHERE pid=? AND taken IS NOT NULL AND id > ?", (pid, newest)
    ).rowcount
    for mid in waiting:
        sql = "UPDATE messages SET taken=NULL WHERE id=? AND pid=? AND taken IS NOT NULL"
        n += conn.execute(sql, (mid, pid)).rowcount
    return n


def intents(conn: Conn, pid: Pid) -> list[str]:
    """Return the syscalls of ``pid``'s journaled effects whose outcome was never recorded."""
    return [r[0] for r in conn.execute("SELECT syscall FROM journal WHERE pid=? AND state='intent'", (pid,))]


def audit_after(conn: Conn, pids: Sequence[Pid], after: int, syscalls: Sequence[str]) -> list[tuple[Any, ...]]:
    """Return (seq, time, pid, syscall, resource, outcome) of the audit records of ``pids`` after
    seq ``after`` whose syscall is one of ``syscalls`` and whose effect was carried out."""
    marks = ",".join("?" * len(pids))
    if not all(n.replace(".", "").replace("_", "").isalpha() for n in syscalls):
        raise ValueError(f"not syscall names: {syscalls!r}")
    # the names as literals, as the partial index audit_effects names them, so that it is used
    names = ", ".join(f"'{n}'" for n in syscalls)
    sql = (
        f"SELECT seq, time, pid, syscall, resource, outcome FROM audit WHERE pid IN ({marks}) AND seq > ?"
        f" AND outcome = 'ok' AND syscall IN ({names}) ORDER BY seq"
    )
    return list(conn.execute(sql, (*pids, after)))
