"""The SQL of alos (objrows.py has Object Memory's). Each function runs one small statement.

Callers own transactions (db.Store.transaction). Rows come back as the records of alos.types
and alos.rights; JSON columns are encoded and decoded here. No policy lives here.
Size: every statement alos runs is here, one small function each; that is the point of it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

from alos import codec
from alos.rights import Capability, Effect, Grant, Right
from alos.types import (
    AuditRecord,
    Event,
    Exit,
    Fork,
    HumanRequest,
    Message,
    Pid,
    Process,
    ProcState,
    RequestKind,
    RequestState,
    Wait,
)

Conn = sqlite3.Connection

# -- processes -------------------------------------------------------------------------

_PROC_COLS = (
    "pid, parent, name, image, model, state, wait, exit, cwd, goal, result, turns, created, updated,"
    " priority, mode, epoch, wake, reaped, term, creator, paused_by"
)


def _process(row: tuple[Any, ...]) -> Process:
    return Process(
        pid=row[0],
        parent=row[1],
        name=row[2],
        image=row[3],
        model=row[4],
        state=ProcState(row[5]),
        wait=Wait(row[6]) if row[6] else None,
        exit=Exit(row[7]) if row[7] else None,
        cwd=row[8],
        goal=row[9],
        result=row[10],
        turns=row[11],
        created=row[12],
        updated=row[13],
        priority=row[14],
        mode=Fork(row[15]),
        epoch=row[16],
        wake=row[17],
        reaped=bool(row[18]),
        term=row[19],
        creator=row[20],
        paused_by=row[21],
    )


def insert_process(conn: Conn, p: Process) -> Pid:
    """Insert ``p`` (its pid is ignored) and return the new pid."""
    cur = conn.execute(
        "INSERT INTO processes (parent, name, image, model, state, wait, exit, cwd, goal, result,"
        " turns, created, updated, priority, mode, epoch, wake, reaped, term, creator, paused_by)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            p.parent,
            p.name,
            p.image,
            p.model,
            p.state,
            p.wait,
            p.exit,
            p.cwd,
            p.goal,
            p.result,
            p.turns,
            p.created,
            p.updated,
            p.priority,
            p.mode,
            p.epoch,
            p.wake,
            int(p.reaped),
            p.term,
            p.creator,
            p.paused_by,
        ),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


_MUTABLE = frozenset(
    {"parent", "image", "goal", "state", "wait", "exit", "result", "turns", "cwd", "updated", "epoch", "wake",
     "reaped", "term", "paused_by"}
)  # fmt: skip


def update_process(conn: Conn, pid: Pid, was: ProcState, changes: dict[str, Any], epoch: int | None = None) -> bool:
    """Write only the ``changes`` (column -> value) of process ``pid`` if its stored state is still
    ``was`` (and its epoch ``epoch``, when given); return False when another connection moved it.
    Columns not named are left as they are, so a write never undoes another connection's change."""
    bad = set(changes) - _MUTABLE
    if bad:
        raise ValueError(f"not a mutable process column: {sorted(bad)}")
    cols = ", ".join(f"{name}=?" for name in changes)
    values = [int(v) if isinstance(v, bool) else v for v in changes.values()]
    if epoch is None:
        cur = conn.execute(f"UPDATE processes SET {cols} WHERE pid=? AND state=?", (*values, pid, was))
    else:
        sql = f"UPDATE processes SET {cols} WHERE pid=? AND state=? AND epoch=?"
        cur = conn.execute(sql, (*values, pid, was, epoch))
    return cur.rowcount == 1


def load_process(conn: Conn, pid: Pid) -> Process | None:
    """Return process ``pid`` or None."""
    row = conn.execute(f"SELECT {_PROC_COLS} FROM processes WHERE pid=?", (pid,)).fetchone()
    return _process(row) if row else None


def all_processes(conn: Conn) -> list[Process]:
    """Return every process, oldest first."""
    return [_process(r) for r in conn.execute(f"SELECT {_PROC_COLS} FROM processes ORDER BY pid")]


def children_of(conn: Conn, pid: Pid, reaped: bool = True) -> list[Process]:
    """Return the children of ``pid`` (exited ones included; reaped ones too unless ``reaped`` is
    False), oldest first."""
    sql = f"SELECT {_PROC_COLS} FROM processes WHERE parent=?" + ("" if reaped else " AND reaped=0")
    return [_process(r) for r in conn.execute(sql + " ORDER BY pid", (pid,))]


def roots(conn: Conn) -> list[Process]:
    """Return the processes without a parent (the host's children), oldest first."""
    return [_process(r) for r in conn.execute(f"SELECT {_PROC_COLS} FROM processes WHERE parent IS NULL ORDER BY pid")]


def pids_in(conn: Conn, state: ProcState) -> list[Pid]:
    """Return the pids of the processes in ``state``, oldest first."""
    return [r[0] for r in conn.execute("SELECT pid FROM processes WHERE state=? ORDER BY pid", (state,))]


def timed_waits(conn: Conn) -> list[tuple[float, Pid]]:
    """Return (wake, pid) of every waiting process whose wait has a deadline."""
    sql = "SELECT wake, pid FROM processes WHERE state='waiting' AND wake IS NOT NULL"
    return [(r[0], r[1]) for r in conn.execute(sql)]


# -- capabilities ----------------------------------------------------------------------

_CAP_COLS = "id, pid, pattern, rights, effect, issuer, expires, uses, delegable, parent, revoked, digest, request"


def _capability(row: tuple[Any, ...]) -> Capability:
    return Capability(
        id=row[0],
        pid=row[1],
        pattern=row[2],
        rights=frozenset(Right(r) for r in row[3].split(",")),
        effect=Effect(row[4]),
        issuer=row[5],
        expires=row[6],
        uses=row[7],
        delegable=bool(row[8]),
        parent=row[9],
        revoked=bool(row[10]),
        digest=row[11],
        request=row[12],
    )


def insert_capability(conn: Conn, pid: Pid, g: Grant, issuer: str, parent: int | None) -> int:
    """Insert a capability for ``pid`` from grant ``g``; return its id."""
    cur = conn.execute(
        "INSERT INTO capabilities (pid, pattern, rights, effect, issuer, expires, uses, delegable,"
        " parent, digest, request) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            pid,
            g.pattern,
            ",".join(sorted(g.rights)),
            g.effect,
            issuer,
            g.expires,
            g.uses,
            int(g.delegable),
            parent,
            g.digest,
            g.request,
        ),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def capabilities_of(conn: Conn, pid: Pid) -> list[Capability]:
    """Return the capabilities of ``pid`` that are neither revoked nor used up, oldest first."""
    sql = f"SELECT {_CAP_COLS} FROM capabilities WHERE pid=? AND revoked=0 AND (uses IS NULL OR uses > 0) ORDER BY id"
    return [_capability(r) for r in conn.execute(sql, (pid,))]


def load_capability(conn: Conn, cap_id: int) -> Capability | None:
    """Return capability ``cap_id`` or None."""
    row = conn.execute(f"SELECT {_CAP_COLS} FROM capabilities WHERE id=?", (cap_id,)).fetchone()
    return _capability(row) if row else None


def use_capability(conn: Conn, cap_id: int) -> None:
    """Spend one use of a counted capability."""
    conn.execute("UPDATE capabilities SET uses = uses - 1 WHERE id=? AND uses > 0", (cap_id,))


def drop_capabilities(conn: Conn, ids: list[int]) -> None:
    """Revoke exactly ``ids`` (their holder let them go); what was derived from them stays."""
    conn.executemany("UPDATE capabilities SET revoked=1 WHERE id=?", [(i,) for i in ids])


def revoke_capability(conn: Conn, cap_id: int) -> list[int]:
    """Revoke ``cap_id`` and everything derived from it; return the ids newly revoked."""
    ids = [
        r[0]
        for r in conn.execute(
            "WITH RECURSIVE tree(id) AS (SELECT ? UNION SELECT c.id FROM capabilities c"
            " JOIN tree t ON c.parent = t.id) SELECT c.id FROM capabilities c JOIN tree t"
            " ON c.id = t.id WHERE c.revoked = 0 ORDER BY c.id",
            (cap_id,),
        )
    ]
    conn.executemany("UPDATE capabilities SET revoked=1 WHERE id=?", [(i,) for i in ids])
    return ids


# -- human requests --------------------------------------------------------------------

_REQ_COLS = (
    'id, pid, kind, action, call, step, syscall, resource, "right", digest, detail, state, answer,'
    " always, answered_by, created, answered"
)


def _request(row: tuple[Any, ...]) -> HumanRequest:
    return HumanRequest(
        id=row[0],
        pid=row[1],
        kind=RequestKind(row[2]),
        action=row[3],
        call=row[4],
        step=row[5],
        syscall=row[6],
        resource=row[7],
        right=row[8],
        digest=row[9],
        detail=codec.loads(row[10]),
        state=RequestState(row[11]),
        answer=row[12],
        always=bool(row[13]),
        answered_by=row[14],
        created=row[15],
        answered=row[16],
    )


def insert_request(conn: Conn, r: HumanRequest) -> int:
    """Insert request ``r`` (its id is ignored); return the new id."""
    cur = conn.execute(
        'INSERT INTO human_requests (pid, kind, action, call, step, syscall, resource, "right",'
        " digest, detail, state, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            r.pid,
            r.kind,
            r.action,
            r.call,
            r.step,
            r.syscall,
            r.resource,
            r.right,
            r.digest,
            codec.dumps(r.detail),
            r.state,
            r.created,
        ),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def load_request(conn: Conn, request_id: int) -> HumanRequest | None:
    """Return request ``request_id`` or None."""
    row = conn.execute(f"SELECT {_REQ_COLS} FROM human_requests WHERE id=?", (request_id,)).fetchone()
    return _request(row) if row else None


def requests(conn: Conn, state: RequestState | None = None) -> list[HumanRequest]:
    """Return requests (all, or those in ``state``), oldest first."""
    if state is None:
        rows = conn.execute(f"SELECT {_REQ_COLS} FROM human_requests ORDER BY id")
    else:
        rows = conn.execute(f"SELECT {_REQ_COLS} FROM human_requests WHERE state=? ORDER BY id", (state,))
    return [_request(r) for r in rows]


def request_at(conn: Conn, pid: Pid, action: int, call: int, step: int, kind: RequestKind) -> HumanRequest | None:
    """Return the newest request of ``kind`` made at this call site, or None."""
    row = conn.execute(
        f"SELECT {_REQ_COLS} FROM human_requests WHERE pid=? AND action=? AND call=? AND step=?"
        " AND kind=? ORDER BY id DESC LIMIT 1",
        (pid, action, call, step, kind),
    ).fetchone()
    return _request(row) if row else None


def cancel_requests_of(conn: Conn, pid: Pid, by: str, when: float) -> int:
    """Mark every pending request of ``pid`` cancelled; return how many there were."""
    cur = conn.execute(
        "UPDATE human_requests SET state='cancelled', answered_by=?, answered=? WHERE pid=? AND state='pending'",
        (by, when, pid),
    )
    return cur.rowcount


def pending_requests_of(conn: Conn, pid: Pid) -> int:
    """Return how many requests of ``pid`` are still pending."""
    row = conn.execute("SELECT count(*) FROM human_requests WHERE pid=? AND state='pending'", (pid,)).fetchone()
    return int(row[0])


def answer_request(
    conn: Conn,
    request_id: int,
    state: RequestState,
    answer: str | None,
    always: bool,
    by: str,
    when: float,
) -> bool:
    """Record the answer to a pending request; return False if it was no longer pending."""
    cur = conn.execute(
        "UPDATE human_requests SET state=?, answer=?, always=?, answered_by=?, answered=?"
        " WHERE id=? AND state='pending'",
        (state, answer, int(always), by, when, request_id),
    )
    return cur.rowcount == 1


# -- pending actions, journal, context -------------------------------------------------


def save_action(conn: Conn, pid: Pid, action: int, calls: list[dict[str, Any]], nxt: int) -> None:
    """Write the pending action of ``pid`` (replacing any)."""
    conn.execute(
        "INSERT OR REPLACE INTO pending_actions (pid, action, calls, next) VALUES (?,?,?,?)",
        (pid, action, codec.dumps(calls), nxt),
    )


def advance_action(conn: Conn, pid: Pid, nxt: int) -> None:
    """Record that the calls before index ``nxt`` are done."""
    conn.execute("UPDATE pending_actions SET next=? WHERE pid=?", (nxt, pid))


def load_action(conn: Conn, pid: Pid) -> tuple[int, list[dict[str, Any]], int] | None:
    """Return (action, calls, next) of ``pid``'s pending action, or None."""
    row = conn.execute("SELECT action, calls, next FROM pending_actions WHERE pid=?", (pid,)).fetchone()
    return (row[0], codec.loads(row[1]), row[2]) if row else None


def action_pending(conn: Conn, pid: Pid, action: int) -> bool:
    """Return whether ``pid``'s pending action is ``action``."""
    return conn.execute("SELECT 1 FROM pending_actions WHERE pid=? AND action=?", (pid, action)).fetchone() is not None


def clear_action(conn: Conn, pid: Pid) -> None:
    """Drop ``pid``'s pending action and its journal entries."""
    conn.execute("DELETE FROM pending_actions WHERE pid=?", (pid,))
    conn.execute("DELETE FROM journal WHERE pid=?", (pid,))


def journal_entry(
    conn: Conn, pid: Pid, action: int, call: int, step: int
) -> tuple[str, str, str, Any, int | None] | None:
    """Return (syscall, digest, state, result, recovery request) journaled at this call site, or None."""
    row = conn.execute(
        "SELECT syscall, digest, state, result, request FROM journal WHERE pid=? AND action=? AND call=? AND step=?",
        (pid, action, call, step),
    ).fetchone()
    if row is None:
        return None
    return (row[0], row[1], row[2], codec.loads(row[3]) if row[3] is not None else None, row[4])


def journal_seen(conn: Conn, pid: Pid, action: int, call: int, step: int, syscall: str, digest: str) -> None:
    """Record which call a JIT tool made at this call site when it changes nothing (no result is kept):
    a re-run of the tool must make the same call there."""
    conn.execute(
        "INSERT OR IGNORE INTO journal (pid, action, call, step, syscall, digest, state)"
        " VALUES (?, ?, ?, ?, ?, ?, 'done')",
        (pid, action, call, step, syscall, digest),
    )


def journal_intent(
    conn: Conn, pid: Pid, action: int, call: int, step: int, syscall: str, digest: str, request: int | None
) -> None:
    """Record that an outside effect is about to run at this call site (carrying out ``request``)."""
    conn.execute(
        "INSERT OR REPLACE INTO journal (pid, action, call, step, syscall, digest, state, request)"
        " VALUES (?,?,?,?,?,?,'intent',?)",
        (pid, action, call, step, syscall, digest, request),
    )


def journal_result(
    conn: Conn, pid: Pid, action: int, call: int, step: int, syscall: str, digest: str, result: Any
) -> None:
    """Record a completed change to the store at this call site with its result."""
    conn.execute(
        "INSERT OR REPLACE INTO journal (pid, action, call, step, syscall, digest, state, result)"
        " VALUES (?,?,?,?,?,?,'done',?)",
        (pid, action, call, step, syscall, digest, codec.dumps(result)),
    )


def journal_done(conn: Conn, pid: Pid, action: int, call: int, step: int, result: Any) -> None:
    """Record the outcome of the effect journaled at this call site."""
    conn.execute(
        "UPDATE journal SET state='done', result=? WHERE pid=? AND action=? AND call=? AND step=?",
        (codec.dumps(result), pid, action, call, step),
    )


def append_context(conn: Conn, pid: Pid, role: str, body: dict[str, Any]) -> int:
    """Append one message to ``pid``'s context; return its position (0 for the first)."""
    row = conn.execute(
        "INSERT INTO context (pid, seq, role, body) "
        "SELECT ?, COALESCE(MAX(seq) + 1, 0), ?, ? FROM context WHERE pid=? RETURNING seq",
        (pid, role, codec.dumps(body), pid),
    ).fetchone()
    return int(row[0])


def clear_context(conn: Conn, pid: Pid) -> None:
    """Drop ``pid``'s context (exec starts a new one): a rewrite, so its generation moves on."""
    conn.execute("DELETE FROM context WHERE pid=?", (pid,))
    conn.execute("UPDATE processes SET ctxgen = ctxgen + 1 WHERE pid=?", (pid,))


def load_context(conn: Conn, pid: Pid) -> list[dict[str, Any]]:
    """Return ``pid``'s context messages in order."""
    return [codec.loads(r[0]) for r in conn.execute("SELECT body FROM context WHERE pid=? ORDER BY seq", (pid,))]


# -- messages ------------------------------------------------------------------------

_MSG_COLS = "id, pid, sender, kind, corr, body, sent"


def _message(row: tuple[Any, ...]) -> Message:
    return Message(id=row[0], pid=row[1], sender=row[2], kind=row[3], corr=row[4], body=row[5], sent=row[6])


def insert_message(conn: Conn, pid: Pid, sender: Pid, kind: str, corr: str | None, body: str, when: float) -> int:
    """Queue a message for ``pid``; return its id."""
    cur = conn.execute(
        "INSERT INTO messages (pid, sender, kind, corr, body, sent) VALUES (?,?,?,?,?,?)",
        (pid, sender, kind, corr, body, when),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def first_message(conn: Conn, pid: Pid, kinds: tuple[str, ...], corr: str | None) -> Message | None:
    """Return the oldest message still queued for ``pid`` of one of ``kinds`` (any when empty)
    and correlation id ``corr`` (any when None), or None."""
    sql = f"SELECT {_MSG_COLS} FROM messages WHERE pid=? AND taken IS NULL"
    params: list[Any] = [pid]
    if kinds:
        sql += f" AND kind IN ({','.join('?' * len(kinds))})"
        params += kinds
    if corr is not None:
        sql += " AND corr=?"
        params.append(corr)
    row = conn.execute(sql + " ORDER BY id LIMIT 1", params).fetchone()
    return _message(row) if row else None


def queued_messages(conn: Conn, pid: Pid, kinds: tuple[str, ...], limit: int) -> list[Message]:
    """Return up to ``limit`` messages still queued for ``pid`` of one of ``kinds``, oldest first."""
    sql = (
        f"SELECT {_MSG_COLS} FROM messages WHERE pid=? AND taken IS NULL"
        f" AND kind IN ({','.join('?' * len(kinds))}) ORDER BY id LIMIT ?"
    )
    return [_message(r) for r in conn.execute(sql, (pid, *kinds, limit))]


def take_message(conn: Conn, message_id: int, when: float) -> None:
    """Mark message ``message_id`` taken."""
    conn.execute("UPDATE messages SET taken=? WHERE id=?", (when, message_id))


def queue_length(conn: Conn, pid: Pid) -> int:
    """Return how many messages wait in ``pid``'s queue."""
    row = conn.execute("SELECT count(*) FROM messages WHERE pid=? AND taken IS NULL", (pid,)).fetchone()
    return int(row[0])


# -- budgets ---------------------------------------------------------------------------


def set_limit(conn: Conn, pid: Pid, name: str, limit: int) -> None:
    """Set ``pid``'s own limit on budget ``name``."""
    conn.execute(
        "INSERT INTO budgets (pid, name, lim) VALUES (?,?,?) ON CONFLICT (pid, name) DO UPDATE SET lim=excluded.lim",
        (pid, name, limit),
    )


def add_spent(conn: Conn, amounts: list[tuple[Pid, str, int]], most: int) -> None:
    """Add each (pid, budget name, amount) (at most ``most``; negative for a refund) to what
    ``pid`` (with its descendants) spent of that budget, saturating at ``most``: the sum never
    overflows SQLite's 64-bit integers."""
    conn.executemany(
        "INSERT INTO budgets (pid, name, spent) VALUES (?,?,?)"
        " ON CONFLICT (pid, name) DO UPDATE SET spent ="
        " CASE WHEN excluded.spent > 0 AND spent > ? - excluded.spent THEN ? ELSE spent + excluded.spent END",
        [(pid, name, amount, most, most) for pid, name, amount in amounts],
    )


def budget_of(conn: Conn, pid: Pid) -> dict[str, tuple[int | None, int]]:
    """Return ``pid``'s budgets: name -> (limit or None, spent)."""
    return {r[0]: (r[1], r[2]) for r in conn.execute("SELECT name, lim, spent FROM budgets WHERE pid=?", (pid,))}


def all_budgets(conn: Conn) -> dict[Pid, dict[str, tuple[int | None, int]]]:
    """Return every process's budgets: pid -> name -> (limit or None, spent)."""
    out: dict[Pid, dict[str, tuple[int | None, int]]] = {}
    for pid, name, lim, spent in conn.execute("SELECT pid, name, lim, spent FROM budgets"):
        out.setdefault(pid, {})[name] = (lim, spent)
    return out


# -- audit and events ------------------------------------------------------------------


def audit_head(conn: Conn) -> tuple[int, str]:
    """Return (seq, digest) of the newest audit record, as the store's head says."""
    row = conn.execute("SELECT value FROM meta WHERE key='audit_head'").fetchone()
    seq, _, dig = str(row[0]).partition(":")
    return int(seq), dig


def append_audit(conn: Conn, r: AuditRecord, detail_json: str) -> None:
    """Append audit record ``r`` (whose detail is ``detail_json``) and move the head to it."""
    conn.execute(
        'INSERT INTO audit (seq, time, pid, syscall, resource, "right", decision, outcome, detail,'
        " prev, digest) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            r.seq,
            r.time,
            r.pid,
            r.syscall,
            r.resource,
            r.right,
            r.decision,
            r.outcome,
            detail_json,
            r.prev,
            r.digest,
        ),
    )
    # the audit_head trigger moves the store's head in the same statement


def audit_rows(conn: Conn, pid: Pid | None = None) -> Iterator[tuple[Any, ...]]:
    """Yield raw audit rows (seq, time, pid, syscall, resource, right, decision, outcome,
    detail_json, prev, digest) in stored order, optionally only those of ``pid``."""
    sql = 'SELECT seq, time, pid, syscall, resource, "right", decision, outcome, detail, prev, digest FROM audit'
    if pid is None:
        yield from conn.execute(sql + " ORDER BY rowid")
    else:
        yield from conn.execute(sql + " WHERE pid=? ORDER BY rowid", (pid,))


def append_event(conn: Conn, when: float, pid: Pid, kind: str, detail: dict[str, Any]) -> int:
    """Append an event; return its seq."""
    cur = conn.execute(
        "INSERT INTO events (time, pid, kind, detail) VALUES (?,?,?,?)",
        (when, pid, kind, codec.dumps(detail)),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def events_after(conn: Conn, seq: int) -> list[Event]:
    """Return the events after ``seq``, in order."""
    return [
        Event(seq=r[0], time=r[1], pid=r[2], kind=r[3], detail=codec.loads(r[4]))
        for r in conn.execute("SELECT seq, time, pid, kind, detail FROM events WHERE seq > ? ORDER BY seq", (seq,))
    ]


# -- images ----------------------------------------------------------------------------


def insert_image(
    conn: Conn, ref: str, name: str, version: int | None, digest: str, body: str, when: float, pid: Pid
) -> bool:
    """Store image ``ref``; return False when that ref is already stored (a file run twice)."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO images (ref, name, version, digest, body, created, pid) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (ref, name, version, digest, body, when, pid),
    )
    return cur.rowcount == 1


def load_image(conn: Conn, ref: str) -> tuple[str, int | None, str, dict[str, Any], float, Pid] | None:
    """Return (name, version, digest, body, created, pid) of stored image ``ref``, or None."""
    row = conn.execute("SELECT name, version, digest, body, created, pid FROM images WHERE ref=?", (ref,)).fetchone()
    if row is None:
        return None
    return row[0], row[1], row[2], codec.parse(row[3]), row[4], row[5]


def latest_image(conn: Conn, name: str) -> tuple[int, str] | None:
    """Return (version, digest) of the newest registered version of ``name``, or None."""
    row = conn.execute(
        "SELECT version, digest FROM images WHERE name=? AND version IS NOT NULL ORDER BY version DESC LIMIT 1", (name,)
    ).fetchone()
    return (int(row[0]), str(row[1])) if row is not None else None


def registered_images(conn: Conn) -> list[tuple[str, int, str, str, float, Pid]]:
    """Return (name, newest version, digest, description, created, pid) of every registered image, by name."""
    rows = conn.execute(
        "SELECT name, version, digest, body, created, pid FROM images i WHERE version ="
        " (SELECT MAX(version) FROM images WHERE name = i.name) ORDER BY name"
    ).fetchall()
    return [(r[0], r[1], r[2], str(codec.parse(r[3]).get("description", "")), r[4], r[5]) for r in rows]
