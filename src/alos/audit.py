"""The append-only, hash-chained audit log: append a record, read records, verify the chain.

Each record's digest covers its own fields and the digest of the record before it; the
store's head (meta 'audit_head') names the newest record, so truncation shows too.
Decides nothing and acts on nothing but the audit table.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from alos import codec
from alos.store import rows
from alos.types import AuditRecord, Pid

GENESIS = "sha256:" + "0" * 64  # the 'previous digest' of the first record


def _digest(fields: tuple[Any, ...]) -> str:
    return codec.digest_value(list(fields))


def append(
    conn: sqlite3.Connection,
    when: float,
    pid: Pid,
    syscall: str,
    resource: str,
    right: str,
    decision: str,
    outcome: str,
    detail: dict[str, Any],
    head: tuple[int, str] | None = None,
) -> AuditRecord:
    """Append one record inside the caller's transaction; return it. ``head`` is the newest
    record's (seq, digest) when the caller knows it (it appended it in this transaction)."""
    seq, prev = head if head is not None else rows.audit_head(conn)
    seq, prev = seq + 1, prev or GENESIS
    detail_json = codec.dumps(detail)
    dig = _digest((seq, when, pid, syscall, resource, right, decision, outcome, detail_json, prev))
    record = AuditRecord(seq, when, pid, syscall, resource, right, decision, outcome, detail, prev, dig)
    rows.append_audit(conn, record, detail_json)
    return record


def records(conn: sqlite3.Connection, pid: Pid | None = None) -> Iterator[AuditRecord]:
    """Yield audit records in stored order, optionally only those of ``pid``."""
    for r in rows.audit_rows(conn, pid):
        yield record(r)


def record(r: tuple[Any, ...]) -> AuditRecord:
    """Return the audit record of raw row ``r`` (seq, time, pid, syscall, resource, right,
    decision, outcome, detail JSON, prev, digest)."""
    return AuditRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], codec.loads(r[8]), r[9], r[10])


@dataclass(frozen=True, slots=True)
class ChainCheck:
    ok: bool
    count: int
    bad_seq: int | None  # the first record that does not check out
    reason: str
    head: str = ""  # "seq:digest" of the newest record: kept elsewhere, it exposes a rewritten chain


def verify(conn: sqlite3.Connection) -> ChainCheck:
    """Recompute the whole chain; return where it first breaks (edit, deletion, reordering).

    A store whose audit table or head is gone or malformed is a broken chain, not a crash.
    """
    try:
        return _verify(conn)
    except (sqlite3.DatabaseError, ValueError, TypeError) as err:
        return ChainCheck(False, 0, 1, f"the audit log cannot be read ({err}): it was damaged or removed")


def _verify(conn: sqlite3.Connection) -> ChainCheck:
    prev = GENESIS
    expected = 1
    count = 0
    for r in rows.audit_rows(conn):
        seq, prev_field, dig = r[0], r[9], r[10]
        if seq != expected:
            what = "missing (deleted)" if seq > expected else "out of order"
            return ChainCheck(False, count, expected, f"record {expected} is {what}; found {seq} there")
        if prev_field != prev:
            return ChainCheck(
                False,
                count,
                seq,
                f"record {seq} does not follow record {seq - 1} (chain link broken)",
            )
        if _digest(tuple(r[:10])) != dig:
            return ChainCheck(False, count, seq, f"record {seq} was edited (its digest does not match its fields)")
        prev = dig
        expected += 1
        count += 1
    head_seq, head_digest = rows.audit_head(conn)
    if head_seq != count or (count and head_digest != prev):
        return ChainCheck(
            False,
            count,
            count + 1 if head_seq > count else head_seq,
            f"the log ends at record {count} but the store's head says {head_seq}: records were removed",
        )
    return ChainCheck(True, count, None, f"{count} records, chain intact", f"{count}:{prev if count else ''}")
