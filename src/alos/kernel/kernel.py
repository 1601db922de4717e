"""The Kernel object: the store, the providers, and the in-memory caches of the process table.

The store is the source of truth; these caches are dropped whenever another connection
(another terminal's ``alos approve``) has committed. Every write goes through
``transaction()``, whose events reach listeners only after the commit.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from alos import audit, limits
from alos.errors import NotFound
from alos.kernel.budget import Ledger
from alos.providers.base import Clock, FileSystem, HumanIO, ImageCatalog, Model, Network, Shell
from alos.providers.jit import Jit
from alos.rights import Capability, kind
from alos.store import rows
from alos.store.blobs import Blobs
from alos.store.db import Store
from alos.types import AuditRecord, Event, Pid, Process, ProcState


@dataclass(frozen=True, slots=True)
class Site:
    """Where a primitive call stands inside a pending action: which action, which tool call,
    and which of that tool call's primitive calls it is (the first is step 1). The agent loop
    passes it to dispatch(); the journal and human requests are keyed by it, so a tool that
    makes several primitive calls passes each its own step, in the same order every time."""

    action: int
    call: int
    step: int = 1
    replay: bool = True  # the action may have journal entries (re-entered after a park or a restart)


@dataclass(slots=True)
class Tx:
    """One open transaction: its connection, the events it wrote and what to do on commit."""

    conn: sqlite3.Connection
    now: float
    events: list[Event] = field(default_factory=list)
    on_commit: list[Callable[[], None]] = field(default_factory=list)
    audit_head: tuple[int, str] | None = None  # (seq, digest) of the record this transaction appended last

    def event(self, pid: Pid, kind: str, detail: dict[str, Any]) -> None:
        """Record an event in this transaction."""
        seq = rows.append_event(self.conn, self.now, pid, kind, detail)
        self.events.append(Event(seq, self.now, pid, kind, detail))

    def publish(self, pid: Pid, kind: str, detail: dict[str, Any]) -> None:
        """Tell listeners about a fact stored elsewhere in this transaction (seq 0: no event row).

        A syscall's event is its audit record: storing it twice would keep one fact twice.
        """
        self.events.append(Event(0, self.now, pid, kind, detail))


@dataclass(frozen=True, slots=True)
class Deferred:
    """The audit record of a call that changed nothing, waiting for the next transaction."""

    when: float
    pid: Pid
    syscall: str
    resource: str
    right: str
    decision: str
    outcome: str
    detail: dict[str, Any]


class Kernel:
    """The store, the providers and the caches; see the module docstring.

    Group commit: the audit records of calls that changed nothing (refusals, reads, model calls)
    and the outcomes of journaled effects are written by the host's next transaction, at the
    latest by ``flush()``. The agent loop records every tool result in a transaction, so no
    result reaches the model before its records are durable. A host that dies first leaves a
    pending action: a refused or read-only call is dispatched and audited again, and an effect
    whose intent has no outcome becomes a human recovery request (ARCHITECTURE.md section 5).
    """

    def __init__(
        self,
        store: Store,
        files: FileSystem,
        human: HumanIO,
        clock: Clock,
        models: Callable[[str], Model],
        images: ImageCatalog,
        *,
        shell: Shell,
        net: Network,
        isolate: str = "auto",
        jit: Jit | None = None,
    ) -> None:
        self.store = store
        self.blobs = Blobs(store.path)  # large object payloads, beside the store
        self.files = files
        self.shell = shell
        self.net = net
        self.isolate = isolate  # shell.run isolation: auto (bwrap when installed) | off | required
        self.jit = jit if jit is not None else Jit(isolate=isolate)  # Deno workers for JIT tools, started on first use
        self.human = human
        self.clock = clock
        self._open_model = models
        self.images = images  # the built-in images and how to check one (images live above the kernel)
        self.image_bodies: dict[str, dict[str, Any]] = {}  # ref -> JSON form (refs never change: never dropped)
        self.streams: list[Callable[[Pid, str], None]] = []  # called with a model's text as it arrives
        self.requests: dict[Pid, Any] = {}  # each process's running digest of its model requests (model.call)
        self._models: dict[str, Model] = {}
        self._procs: dict[Pid, Process] = {}
        self._caps: dict[Pid, list[Capability]] = {}
        self._bykind: dict[Pid, dict[str, list[Capability]]] = {}
        self.contexts: dict[Pid, list[dict[str, Any]]] = {}
        self.listeners: list[Callable[[Event], None]] = []
        self.deferred: list[Callable[[Tx], object]] = []
        self.ledger = Ledger()
        self.generation = 0  # how many times the caches were dropped for another connection's commits
        self.quiet: set[Pid] = set()  # pids known to have no interrupt or human message queued

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        """Yield a Tx; on commit run its hooks and publish its events, on error drop both."""
        deferred, self.deferred = self.deferred, []
        spent: dict[Pid, dict[str, int]] = {}
        try:
            with self.store.transaction() as conn:
                tx = Tx(conn, self.clock.now())
                for write in deferred:
                    write(tx)
                spent = self.ledger.write(conn)
                yield tx
        except BaseException:
            self.deferred[:0] = deferred  # still to be written, in order
            self.ledger.written(spent, committed=False)
            self.contexts.clear()  # a context read back inside the rolled-back transaction
            raise
        self.ledger.written(spent, committed=True)
        for hook in tx.on_commit:
            hook()
        for ev in tx.events:
            self.publish(ev)

    def audit(self, tx: Tx, d: Deferred) -> AuditRecord:
        """Append the audit record ``d`` inside ``tx`` and publish it as a 'syscall' event."""
        rec = audit.append(
            tx.conn, d.when, d.pid, d.syscall, d.resource, d.right, d.decision, d.outcome, d.detail, tx.audit_head
        )
        tx.audit_head = (rec.seq, rec.digest)  # no other writer can append before this transaction ends
        if self.listeners:
            tx.publish(
                d.pid,
                "syscall",
                {
                    "audit": rec.seq,
                    "syscall": d.syscall,
                    "resource": d.resource,
                    "right": d.right,
                    "decision": d.decision,
                    "outcome": d.outcome,
                    "detail": d.detail,
                },
            )
        return rec

    def defer(self, write: Callable[[Tx], object]) -> None:
        """Queue ``write`` for the host's next transaction (group commit); see the class docstring."""
        self.deferred.append(write)
        if len(self.deferred) >= limits.AUDIT_DEFER_MAX:
            self.flush()

    def flush(self) -> None:
        """Write every deferred audit record (and budget spending) now."""
        if self.deferred or self.ledger.pending():
            with self.transaction():
                pass

    def publish(self, ev: Event) -> None:
        """Hand ``ev`` to every listener (after its facts committed)."""
        for listen in self.listeners:
            listen(ev)

    def refresh(self) -> bool:
        """Drop the caches if another connection committed; return whether it had. What this host
        still holds for its next transaction is written first, so that nothing it read from the
        caches is lost with them."""
        if not self.store.changed_elsewhere():
            return False
        self.flush()
        self._procs.clear()
        self._caps.clear()
        self._bykind.clear()
        self.contexts.clear()
        self.ledger.forget()
        self.quiet.clear()
        self.generation += 1
        return True

    def proc(self, pid: Pid) -> Process:
        """Return process ``pid``; raises NotFound naming it."""
        p = self._procs.get(pid)
        if p is None:
            p = rows.load_process(self.store.conn, pid)
            if p is None:
                raise NotFound(f"no process {pid}; 'alos ps' lists the processes in this store")
            self._procs[pid] = p
        return p

    def state_now(self, pid: Pid) -> ProcState:
        """Return process ``pid``'s state as the store holds it now (another terminal may have
        paused or killed it since this host last looked); for a long effect to notice."""
        row = rows.load_process(self.store.conn, pid)
        return self.proc(pid).state if row is None else row.state

    def chain(self, pid: Pid) -> list[Process]:
        """Return process ``pid`` and the processes that made it, nearest first: whose budgets a
        call charges. The line is the creators', exited ones included: a parent's exit never
        releases its descendants from its budget (adoption changes ``parent``, not this)."""
        out = [self.proc(pid)]
        while out[-1].creator is not None and len(out) <= limits.ANCESTRY_MAX:
            out.append(self.proc(out[-1].creator))
        return out

    def forget_process(self, pid: Pid) -> None:
        """Drop the cached record of ``pid`` (another connection moved it): it is read again."""
        self._procs.pop(pid, None)

    def remember(self, p: Process) -> None:
        """Cache ``p`` as the current record of its pid (call after its row committed)."""
        self._procs[p.pid] = p

    def processes(self) -> list[Process]:
        """Return every process in the store, oldest first."""
        procs = rows.all_processes(self.store.conn)
        self._procs = {p.pid: p for p in procs}
        return procs

    def caps(self, pid: Pid) -> list[Capability]:
        """Return the live-by-count capabilities of ``pid`` (the decision also skips expired ones)."""
        caps = self._caps.get(pid)
        if caps is None:
            caps = self._caps[pid] = rows.capabilities_of(self.store.conn, pid)
        return caps

    def forget_context(self, pid: Pid) -> None:
        """Drop the cached context of ``pid`` (it exited: no model reads it again)."""
        self.contexts.pop(pid, None)

    def caps_on(self, pid: Pid, kinds: frozenset[str]) -> list[Capability]:
        """Return the capabilities of ``pid`` on resources of ``kinds``, oldest first: a decision
        about a file never looks through a parent's capabilities on its hundred children."""
        by = self._bykind.get(pid)
        if by is None:
            by = self._bykind[pid] = {}
            for cap in self.caps(pid):
                by.setdefault(kind(cap.pattern), []).append(cap)
        if len(kinds) == 1:
            return by.get(next(iter(kinds)), [])
        return sorted((c for k in kinds for c in by.get(k, ())), key=lambda c: c.id)

    def learn_cap(self, cap: Capability) -> None:
        """Add a just-committed capability to the caches (instead of reloading them all)."""
        cached = self._caps.get(cap.pid)
        if cached is not None:
            cached.append(cap)
        by = self._bykind.get(cap.pid)
        if by is not None:
            by.setdefault(kind(cap.pattern), []).append(cap)

    def unlearn_caps(self, pid: Pid, ids: set[int]) -> None:
        """Remove just-dropped capabilities from the caches."""
        if pid in self._caps:
            self._caps[pid] = [c for c in self._caps[pid] if c.id not in ids]
        by = self._bykind.get(pid)
        if by is not None:
            for k, caps in by.items():
                by[k] = [c for c in caps if c.id not in ids]

    def forget_caps(self, pid: Pid | None = None) -> None:
        """Drop cached capabilities of ``pid`` (of everyone when None)."""
        if pid is None:
            self._caps.clear()
            self._bykind.clear()
        else:
            self._caps.pop(pid, None)
            self._bykind.pop(pid, None)

    async def close_models(self) -> None:
        """Release every opened model's connections, the network's and the JIT workers; they are
        opened again when next needed."""
        opened, self._models = self._models, {}
        for m in opened.values():
            await m.aclose()
        await self.net.aclose()  # its connections belong to this event loop too
        await self.jit.aclose()  # so do the Deno workers' pipes

    def model(self, spec: str) -> Model:
        """Return the model provider for ``spec``, opened once."""
        m = self._models.get(spec)
        if m is None:
            m = self._models[spec] = self._open_model(spec)
        return m
