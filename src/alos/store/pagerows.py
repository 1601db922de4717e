"""The SQL of reads that front ends page through (the console): a bounded slice at a time.

Each query is bounded by a LIMIT or by an id list the caller bounded, so that a page costs the
same with ten processes or ten thousand. Reads only; never called inside a transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from alos.types import Pid

Conn = sqlite3.Connection
_AUDIT = 'SELECT seq, time, pid, syscall, resource, "right", decision, outcome, detail, prev, digest FROM audit'


def tree_links(conn: Conn) -> list[tuple[Pid, Pid | None, str]]:
    """Return (pid, parent, state) of every process, by pid: what a tree order needs, no more."""
    return [(r[0], r[1], r[2]) for r in conn.execute("SELECT pid, parent, state FROM processes ORDER BY pid")]


def budgets_of(conn: Conn, pids: Sequence[Pid]) -> dict[Pid, dict[str, tuple[int | None, int]]]:
    """Return the budgets of ``pids``: pid -> name -> (limit or None, spent)."""
    out: dict[Pid, dict[str, tuple[int | None, int]]] = {}
    if not pids:
        return out
    marks = ",".join("?" * len(pids))
    for pid, name, lim, spent in conn.execute(
        f"SELECT pid, name, lim, spent FROM budgets WHERE pid IN ({marks})", tuple(pids)
    ):
        out.setdefault(pid, {})[name] = (lim, spent)
    return out


def audit_page(
    conn: Conn,
    *,
    pid: Pid | None,
    syscall: str | None,
    decision: str | None,
    before: int | None,
    limit: int,
) -> list[tuple[Any, ...]]:
    """Return up to ``limit`` raw audit rows matching the filters, newest first, older than seq
    ``before`` when given (the page after the one that ended there)."""
    where, args = _filters(pid, syscall, decision)
    if before is not None:
        where.append("seq < ?")
        args.append(before)
    sql = _AUDIT + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY seq DESC LIMIT ?"
    return list(conn.execute(sql, (*args, limit)))


def audit_after(
    conn: Conn, *, pid: Pid | None, syscall: str | None, decision: str | None, after: int, limit: int
) -> list[tuple[Any, ...]]:
    """Return up to ``limit`` raw audit rows matching the filters after seq ``after``, oldest first
    (an export, a page at a time: no cursor stays open while others write)."""
    where, args = _filters(pid, syscall, decision)
    where.append("seq > ?")
    sql = _AUDIT + " WHERE " + " AND ".join(where) + " ORDER BY seq LIMIT ?"
    return list(conn.execute(sql, (*args, after, limit)))


def _filters(pid: Pid | None, syscall: str | None, decision: str | None) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    if pid is not None:
        where.append("pid = ?")
        args.append(pid)
    if syscall is not None:
        where.append("syscall = ?")
        args.append(syscall)
    if decision is not None:
        where.append("decision = ?")
        args.append(decision)
    return where, args


def audit_between(conn: Conn, pid: Pid, after: int, limit: int) -> list[tuple[Any, ...]]:
    """Return up to ``limit`` raw audit rows of ``pid`` after seq ``after``, oldest first."""
    return list(conn.execute(_AUDIT + " WHERE pid = ? AND seq > ? ORDER BY seq LIMIT ?", (pid, after, limit)))


def heads(conn: Conn) -> tuple[int, int]:
    """Return the seq of the newest event and of the newest audit record (0 when none)."""
    row = conn.execute("SELECT (SELECT max(seq) FROM events), (SELECT max(seq) FROM audit)").fetchone()
    return int(row[0] or 0), int(row[1] or 0)


def events_since(conn: Conn, seq: int, limit: int) -> list[tuple[int, Pid, str]]:
    """Return (seq, pid, kind) of up to ``limit`` events after ``seq``, oldest first."""
    sql = "SELECT seq, pid, kind FROM events WHERE seq > ? ORDER BY seq LIMIT ?"
    return [(r[0], r[1], r[2]) for r in conn.execute(sql, (seq, limit))]


def audit_since(conn: Conn, seq: int, limit: int) -> list[tuple[int, Pid]]:
    """Return (seq, pid) of up to ``limit`` audit records after ``seq``, oldest first."""
    return [
        (r[0], r[1])
        for r in conn.execute("SELECT seq, pid FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit))
    ]


def pending_requests(conn: Conn, limit: int) -> tuple[list[int], int]:
    """Return the ids of the oldest ``limit`` requests waiting for a person, and how many wait."""
    query = "SELECT id FROM human_requests WHERE state='pending' ORDER BY id LIMIT ?"
    ids = [r[0] for r in conn.execute(query, (limit,))]
    return ids, int(conn.execute("SELECT count(*) FROM human_requests WHERE state='pending'").fetchone()[0])


__all__ = [
    "audit_after",
    "audit_between",
    "audit_page",
    "audit_since",
    "budgets_of",
    "events_since",
    "heads",
    "pending_requests",
    "tree_links",
]
