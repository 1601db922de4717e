"""The SQL of JIT tools (docs/jit.md): registered tools by table and name, their specs by digest.

Like rows.py, each function runs one small statement on a connection the caller holds; the
kernel decides and commits.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from alos.types import Pid


@dataclass(frozen=True, slots=True)
class Tool:
    table: str
    name: str
    digest: str  # of the source
    spec: dict[str, Any]  # source, description, parameters
    pid: Pid
    created: float


_COLUMNS = "t.tbl, t.name, t.digest, s.spec, t.pid, t.created"
_FROM = "tools t JOIN tool_specs s ON s.digest = t.spec"


def _tool(row: tuple[Any, ...]) -> Tool:
    return Tool(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5])


def keep_spec(conn: sqlite3.Connection, spec: dict[str, Any]) -> str:
    """Store ``spec`` (once) and return its digest."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(text.encode()).hexdigest()
    conn.execute("INSERT OR IGNORE INTO tool_specs (digest, spec) VALUES (?, ?)", (digest, text))
    return digest


def put(conn: sqlite3.Connection, t: Tool) -> bool:
    """Register ``t``, replacing a tool of its name in its table; return whether one was replaced."""
    had = conn.execute("SELECT 1 FROM tools WHERE tbl=? AND name=?", (t.table, t.name)).fetchone() is not None
    spec = keep_spec(conn, t.spec)
    conn.execute(
        "INSERT OR REPLACE INTO tools (tbl, name, digest, spec, pid, created) VALUES (?, ?, ?, ?, ?, ?)",
        (t.table, t.name, t.digest, spec, t.pid, t.created),
    )
    return had


def remove(conn: sqlite3.Connection, table: str, name: str) -> bool:
    """Unregister a tool; return whether there was one (its spec stays, for checkpoints)."""
    return conn.execute("DELETE FROM tools WHERE tbl=? AND name=?", (table, name)).rowcount > 0


def get(conn: sqlite3.Connection, table: str, name: str) -> Tool | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM {_FROM} WHERE t.tbl=? AND t.name=?", (table, name)).fetchone()
    return _tool(row) if row else None


def of_table(conn: sqlite3.Connection, table: str) -> list[Tool]:
    """Return the tools of ``table`` by name."""
    return [_tool(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM {_FROM} WHERE t.tbl=? ORDER BY t.name", (table,))]


def count(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute("SELECT count(*) FROM tools WHERE tbl=?", (table,)).fetchone()[0])


def manifest(conn: sqlite3.Connection, table: str) -> list[list[Any]]:
    """Return what a checkpoint keeps of ``table``: [name, source digest, spec digest, pid, created] each."""
    return [list(r) for r in conn.execute("SELECT name, digest, spec, pid, created FROM tools WHERE tbl=? "
                                          "ORDER BY name", (table,))]  # fmt: skip


def set_table(conn: sqlite3.Connection, table: str, kept: list[list[Any]]) -> int:
    """Make ``table`` hold exactly the tools of a checkpoint's ``kept`` manifest; return how many."""
    conn.execute("DELETE FROM tools WHERE tbl=?", (table,))
    for name, digest, spec, pid, created in kept:
        conn.execute(
            "INSERT INTO tools (tbl, name, digest, spec, pid, created) VALUES (?, ?, ?, ?, ?, ?)",
            (table, name, digest, spec, pid, created),
        )
    return len(kept)
