"""What the front ends read: processes, contexts, budgets, queues, human requests, the audit log
and events, and the store they are read from (layer 4).

The one door for reads, as dispatch() is for changes: the runtime, the console and model clients
read here and never import the store or the audit log. Nothing here decides or changes a fact:
a reader may commit what its host already holds (audit records, budget spending, a turn), so
that what is read is what is durable, and ``open_store`` opens (or makes) the store itself. The
SQL stays in store/rows.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from alos import audit
from alos.audit import ChainCheck
from alos.kernel import images, objects
from alos.kernel.kernel import Kernel
from alos.store import db, rows, toolrows
from alos.types import AuditRecord, Event, HumanRequest, Pid, Process, RequestState


def open_store(path: str, *, create: bool = True, host: bool = False) -> db.Store:
    """Return the store at ``path`` (created when ``create`` and new). With ``host`` also become
    the one host that runs its processes, else only read it and answer its requests.

    Raises Unavailable when another host runs it (or it stays locked); Invalid for a file that is
    missing (without ``create``), corrupt, not an alos store, or newer than this alos.
    """
    store = db.open_store(path, create=create)
    if host:
        try:
            store.lock_host()
        except BaseException:
            store.close()
            raise
    return store


def processes(kernel: Kernel) -> list[Process]:
    """Return every process, oldest first (what this host still holds written first, so that the
    records it reads back are not older than its caches)."""
    kernel.flush()
    return kernel.processes()


def process(kernel: Kernel, pid: Pid) -> Process:
    """Return process ``pid`` as last committed by any connection; raises NotFound."""
    kernel.refresh()
    return kernel.proc(pid)


def image(kernel: Kernel, ref: str) -> dict[str, Any]:
    """Return the JSON form of the image ``ref`` names (a built-in or one stored); raises NotFound."""
    return images.body(kernel, ref)


def image_registrant(kernel: Kernel, ref: str) -> Pid | None:
    """Return who stored image ``ref`` (HOST or a process's pid), or None when it is not stored."""
    return images.registrant(kernel, ref)


def lookup_image(kernel: Kernel, name: str) -> tuple[str, dict[str, Any]]:
    """Return (ref, JSON form) of the image ``name`` means now: a ref, a built-in or the newest
    registered version; raises NotFound."""
    return images.lookup(kernel, name)


def context(kernel: Kernel, pid: Pid) -> list[dict[str, Any]]:
    """Return a copy of process ``pid``'s context: the messages its model reads."""
    return [dict(m) for m in rows.load_context(kernel.store.conn, pid)]


def budgets(kernel: Kernel) -> dict[Pid, dict[str, tuple[int | None, int]]]:
    """Return every process's budgets: pid -> name -> (limit or None, spent by it and its descendants)."""
    kernel.flush()
    return rows.all_budgets(kernel.store.conn)


def messages_waiting(kernel: Kernel, pid: Pid) -> int:
    """Return how many messages wait in ``pid``'s queue."""
    return rows.queue_length(kernel.store.conn, pid)


def requests(kernel: Kernel, state: RequestState | None = RequestState.PENDING) -> list[HumanRequest]:
    """Return the human requests in ``state`` (None: all), oldest first."""
    return rows.requests(kernel.store.conn, state)


def request(kernel: Kernel, request_id: int) -> HumanRequest | None:
    """Return human request ``request_id``, or None when there is none."""
    return rows.load_request(kernel.store.conn, request_id)


def audit_records(kernel: Kernel, pid: Pid | None = None) -> Iterator[AuditRecord]:
    """Yield the audit records in order, optionally only process ``pid``'s."""
    kernel.flush()
    return audit.records(kernel.store.conn, pid)


def verify(kernel: Kernel) -> ChainCheck:
    """Check the whole audit chain; return the verdict, naming the first bad record."""
    kernel.flush()
    return audit.verify(kernel.store.conn)


def events(kernel: Kernel, after: int = 0) -> list[Event]:
    """Return the events after seq ``after``, oldest first."""
    return rows.events_after(kernel.store.conn, after)


# ChainCheck is named here so that a front end can name verify()'s verdict without importing the audit log.
__all__ = [
    "ChainCheck",
    "audit_records",
    "budgets",
    "context",
    "events",
    "messages_waiting",
    "open_store",
    "process",
    "processes",
    "request",
    "requests",
    "verify",
]


def store_problems(kernel: Kernel) -> list[dict[str, Any]]:
    """Return every object version and image seed whose payload is missing or corrupt on disk,
    each named (object and version, or image and seed name) with what is wrong."""
    out: list[dict[str, Any]] = [
        {"object": f"{v.ns}/{v.name}", "version": v.version, "digest": v.digest, "problem": wrong}
        for v, wrong in objects.problems(kernel)
    ]
    out += [{"image": ref, "seed": name, "problem": wrong} for ref, name, wrong in objects.seed_problems(kernel)]
    return out


def tools(kernel: Kernel, table: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Return the JIT tools registered in ``table``: (name, description, JSON Schema of its arguments)."""
    return [(t.name, str(t.spec.get("description", "")), dict(t.spec.get("parameters") or {"type": "object"}))
            for t in toolrows.of_table(kernel.store.conn, table)]  # fmt: skip
