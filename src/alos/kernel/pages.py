"""What a front end reads a page at a time (the console): the process tree, a process's turns,
the audit log filtered (layer 4).

Like reads.py, a door for reads only: nothing here decides or changes a fact. Every read is
bounded (a page of rows, a page of records), so a page of the console costs about the same
whether the store holds ten processes or ten thousand. The SQL is in store/pagerows.py.
"""

from __future__ import annotations

import asyncio
import sqlite3
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass

from alos import audit
from alos.audit import ChainCheck
from alos.kernel.kernel import Kernel
from alos.rights import Capability
from alos.store import pagerows, rows
from alos.store.bell import Listener
from alos.types import AuditRecord, HumanRequest, Pid, Process, ProcState, RequestState


@dataclass(frozen=True, slots=True)
class TreePage:
    """One page of the process tree: (depth, process) in tree order, and how many there are in all."""

    rows: list[tuple[int, Process]]
    total: int
    budgets: dict[Pid, dict[str, tuple[int | None, int]]]


def tree(kernel: Kernel, *, live: bool, offset: int, limit: int) -> TreePage:
    """Return ``limit`` processes from ``offset`` in tree order: the newest root first, each
    followed by its descendants (oldest child first). With ``live``, exited ones are left out
    (adoption keeps a live process's parent live, so the tree stays whole)."""
    kernel.refresh()
    kernel.flush()
    head = pagerows.heads(kernel.store.conn)[0]  # the tree changes only with an event (spawn, exit, adopt)
    key = (kernel.store.path, head, live)
    order = _orders.get(key)
    if order is None:
        order = _order(pagerows.tree_links(kernel.store.conn), live)
        _orders.clear()
        _orders[key] = order
    page = order[offset : offset + limit]
    procs = [(depth, kernel.proc(pid)) for depth, pid in page]
    return TreePage(procs, len(order), pagerows.budgets_of(kernel.store.conn, [pid for _, pid in page]))


def waiting(kernel: Kernel, limit: int) -> tuple[list[HumanRequest], int]:
    """Return the oldest ``limit`` requests waiting for a person, and how many wait in all."""
    ids, total = pagerows.pending_requests(kernel.store.conn, limit)
    found = (rows.load_request(kernel.store.conn, i) for i in ids)
    return [r for r in found if r is not None and r.state is RequestState.PENDING], total


def tree_budget(kernel: Kernel, pid: Pid) -> dict[str, tuple[int | None, int]]:
    """Return process ``pid``'s budgets: name -> (limit or None, spent by it and its descendants)."""
    kernel.flush()
    return pagerows.budgets_of(kernel.store.conn, [pid]).get(pid, {})


_orders: dict[tuple[str, int, bool], list[tuple[int, Pid]]] = {}  # the last tree order made, by its key


def _order(links: list[tuple[Pid, Pid | None, str]], live: bool) -> list[tuple[int, Pid]]:
    if live:
        links = [x for x in links if x[2] != ProcState.EXITED.value]
    known = {pid for pid, _, _ in links}
    kids: dict[Pid | None, list[Pid]] = {}
    for pid, parent, _ in links:
        kids.setdefault(parent if parent in known else None, []).append(pid)
    order: list[tuple[int, Pid]] = []
    stack = [(0, pid) for pid in kids.get(None, [])]  # the last root, the newest, is popped first
    while stack:
        depth, pid = stack.pop()
        order.append((depth, pid))
        stack.extend((depth + 1, child) for child in reversed(kids.get(pid, [])))
    return order


def capabilities(kernel: Kernel, pid: Pid) -> list[Capability]:
    """Return process ``pid``'s live capabilities, oldest first."""
    return rows.capabilities_of(kernel.store.conn, pid)


def children(kernel: Kernel, pid: Pid) -> list[Process]:
    """Return the processes whose parent is ``pid`` (reaped ones too), oldest first."""
    return rows.children_of(kernel.store.conn, pid)


def audit_page(
    kernel: Kernel,
    *,
    pid: Pid | None = None,
    syscall: str | None = None,
    decision: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[AuditRecord]:
    """Return up to ``limit`` audit records that match, newest first, older than seq ``before``."""
    kernel.flush()
    got = pagerows.audit_page(
        kernel.store.conn, pid=pid, syscall=syscall, decision=decision, before=before, limit=limit
    )
    return [audit.record(r) for r in got]


def audit_export(
    kernel: Kernel, *, pid: Pid | None = None, syscall: str | None = None, decision: str | None = None
) -> Iterator[AuditRecord]:
    """Yield every audit record that matches, oldest first, read a page at a time."""
    kernel.flush()
    after = 0
    while True:
        got = pagerows.audit_after(
            kernel.store.conn, pid=pid, syscall=syscall, decision=decision, after=after, limit=1000
        )
        for r in got:
            yield audit.record(r)
        if len(got) < 1000:
            return
        after = got[-1][0]


@dataclass(frozen=True, slots=True)
class News:
    """What changed in the store since a look: the newest event and audit seqs seen, the kinds
    of the new events, and the pids the new events and audit records are about."""

    event: int
    audit: int
    kinds: frozenset[str]
    pids: frozenset[Pid]


def news(kernel: Kernel, since: News | None, limit: int = 2000) -> News:
    """Return what changed since ``since`` (None: only where the store stands now). At most
    ``limit`` new events and records are read: more, and the pids named are a subset (a reader
    then refreshes what it shows anyway, since ``kinds`` is not empty)."""
    kernel.refresh()
    kernel.flush()
    conn = kernel.store.conn
    if since is None:
        event, audit = pagerows.heads(conn)
        return News(event, audit, frozenset(), frozenset())
    evs = pagerows.events_since(conn, since.event, limit)
    recs = pagerows.audit_since(conn, since.audit, limit)
    return News(
        evs[-1][0] if evs else since.event,
        recs[-1][0] if recs else since.audit,
        frozenset(kind for _, _, kind in evs) | (frozenset({"audit"}) if recs else frozenset()),
        frozenset(pid for _, pid, _ in evs) | frozenset(pid for _, pid in recs),
    )


async def verify_aside(kernel: Kernel) -> ChainCheck:
    """Check the whole audit chain on a connection of its own in a worker thread, so that the
    event loop (a host's, a console's) goes on meanwhile; return the verdict."""
    kernel.flush()
    path = kernel.store.path

    def check() -> ChainCheck:
        conn = sqlite3.connect(f"file:{urllib.parse.quote(path)}?mode=ro", uri=True)
        try:
            return audit.verify(conn)
        finally:
            conn.close()

    return await asyncio.to_thread(check)


def listen(kernel: Kernel) -> Listener:
    """Return a new listener on the store's bell (store/bell.py): its ``wait`` returns when another
    program commits. Raises OSError when the store's directory lets none be made."""
    return kernel.store.bell.listen()


__all__ = [
    "Listener",
    "News",
    "TreePage",
    "audit_export",
    "audit_page",
    "capabilities",
    "children",
    "listen",
    "news",
    "tree",
    "tree_budget",
    "verify_aside",
    "waiting",
]
