"""The scheduler: give runnable processes quanta, fairly, until none is runnable or due.

One asyncio task group owns every quantum task; at most SCHED_CONCURRENCY quanta are in
flight (real model calls overlap; the store stays one writer because every transaction is
synchronous). Stride scheduling: each quantum advances a process's pass by STRIDE/priority
and the lowest pass runs next, so shares follow priorities and a process that loops cannot
starve the others. Waiting processes cost nothing: the scheduler hears of runnable ones
from state events and keeps a heap of deadlines for timed waits, which it fires through the
clock provider. It owns the running state; the quantum's body is injected (the agent loop
lives above the kernel). Whatever escapes a quantum is a bug: the process exits failed.
While it has nothing to do it sleeps in the event loop on the store's bell (store/bell.py):
other programs' commits wake it, nothing polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import traceback
from collections.abc import Awaitable, Callable

from alos import limits
from alos.errors import Conflict, StoreLost
from alos.kernel.kernel import Deferred, Kernel
from alos.kernel.proc import amend, end, mark, transition
from alos.store import rows
from alos.store.bell import Listener
from alos.types import Event, Exit, Pid, ProcState


class Scheduler:
    """Quanta over one kernel's runnable processes; see the module docstring."""

    def __init__(self, kernel: Kernel, quantum: Callable[[Pid], Awaitable[None]]) -> None:
        self.kernel = kernel
        self._quantum = quantum
        self.quanta = 0
        self.concurrency = limits.SCHED_CONCURRENCY  # priorities decide who runs when more are ready than this
        self._ready: list[tuple[int, int, Pid]] = []  # (pass, tie-break, pid)
        self._queued: set[Pid] = set()
        self._pass: dict[Pid, int] = {}
        self._floor = 0  # the pass of the last process picked: where newcomers start
        self._timers: list[tuple[float, Pid]] = []
        self._running: set[Pid] = set()
        self._seq = 0
        self._done: asyncio.Event | None = None  # made inside run(): an Event belongs to one loop
        self._ear: Listener | None = None  # on the store's bell, from the first run on a real clock
        kernel.listeners.append(self._heard)

    def runnable(self) -> list[Pid]:
        """Return the pids that are runnable now, oldest first."""
        return rows.pids_in(self.kernel.store.conn, ProcState.RUNNABLE)

    def _heard(self, ev: Event) -> None:
        """Learn of runnable processes and timed waits from committed events."""
        if ev.kind == "spawn":
            self._enqueue(ev.pid)
        elif ev.kind == "state":
            state = ev.detail.get("state")
            if state == ProcState.RUNNABLE:
                self._enqueue(ev.pid)
            elif state == ProcState.WAITING and ev.detail.get("wake") is not None:
                heapq.heappush(self._timers, (float(ev.detail["wake"]), ev.pid))

    def _enqueue(self, pid: Pid, ran: bool = False) -> None:
        """Queue ``pid``: one that just ran keeps its pass; one that waited starts no earlier than
        the last pass picked, so a long sleep earns no burst of quanta."""
        if pid in self._queued or pid in self._running:
            return  # a running process is put back when its quantum ends
        self._seq += 1
        start = self._pass.get(pid, 0) if ran else max(self._pass.get(pid, 0), self._floor)
        heapq.heappush(self._ready, (start, self._seq, pid))
        self._queued.add(pid)
        if self._done is not None:
            self._done.set()

    def _load(self) -> None:
        """Rebuild the queues from the store (at start, and after another connection committed)."""
        for pid in self.runnable():
            self._enqueue(pid)
        self._timers = rows.timed_waits(self.kernel.store.conn)
        heapq.heapify(self._timers)

    async def run(self, stay: bool = False) -> None:
        """Run quanta until no process is runnable and no timed wait is pending; with ``stay``,
        go on until cancelled, asleep while there is nothing to do (other programs' commits, the
        next timed wait and this program's own changes wake it).

        A process whose quantum ends with nothing else to run keeps running into its next
        quantum: it is not written runnable and running again, which would be two empty commits.
        """
        kernel = self.kernel
        done = self._done = asyncio.Event()
        self._running.clear()
        if kernel.clock.real:
            self._listen()  # before the first look: a commit made after it rings this listener
        kernel.refresh()
        self._load()
        seen = kernel.generation
        try:
            await self._loop(done, seen, stay)
        except* StoreLost as lost:  # no host can go on without its store: stop, say why
            raise lost.exceptions[0] from None
        kernel.flush()  # idle: every deferred audit record is written before anyone waits

    async def _loop(self, done: asyncio.Event, seen: int, stay: bool) -> None:
        kernel = self.kernel
        async with asyncio.TaskGroup() as group:
            while True:
                kernel.refresh()
                if kernel.generation != seen:  # another terminal committed: approvals, signals, messages
                    seen = kernel.generation
                    self._load()
                self._fire()
                if len(self._ready) == 1 and not self._running:  # one process alone: no task to hand off to
                    pid = self._pick()
                    if pid is not None:
                        self._running.add(pid)
                        await self._slot(pid)
                    await asyncio.sleep(0)  # let the loop breathe: Ctrl-C and other tasks get their turn
                    continue
                while self._ready and len(self._running) < self.concurrency:
                    pid = self._pick()
                    if pid is not None:
                        self._running.add(pid)
                        group.create_task(self._slot(pid))
                if self._running:  # until a slot is free, or another program starts or answers one
                    await self._idle(done, None, full=True)
                elif self._ready:
                    continue
                elif self._timers:
                    await self._sleep(done)
                elif stay:
                    kernel.flush()  # idle: every deferred audit record is written before anyone waits
                    await self._idle(done, None)
                else:
                    break

    def _pick(self) -> Pid | None:
        """Pop the lowest pass; return its pid if it is still runnable (or left running)."""
        pass_, _, pid = heapq.heappop(self._ready)
        self._queued.discard(pid)
        self._floor = pass_
        proc = self.kernel.proc(pid)
        if proc.state is ProcState.RUNNING or proc.state is ProcState.RUNNABLE:
            return pid
        return None

    async def _slot(self, pid: Pid) -> None:
        """Run one quantum of ``pid`` and put it back in line if it can go on."""
        kernel = self.kernel
        try:
            proc = kernel.proc(pid)
            if proc.state is ProcState.RUNNABLE:
                mark(kernel, proc, ProcState.RUNNING)
            await self._guarded(pid)
            self.quanta += 1
            proc = kernel.proc(pid)  # as the quantum's last dispatch() left the caches
            self._pass[pid] = self._pass.get(pid, self._floor) + limits.STRIDE // max(1, proc.priority)
            if proc.term and proc.state is not ProcState.EXITED:
                self._countdown(pid)
                proc = kernel.proc(pid)
            if proc.state is ProcState.RUNNING and (self._ready or len(self._running) > 1):
                proc = mark(kernel, proc, ProcState.RUNNABLE)
            if proc.state in (ProcState.RUNNING, ProcState.RUNNABLE):  # runnable: parked and woken already
                self._running.discard(pid)
                self._enqueue(pid, ran=True)
        except Conflict:
            kernel.refresh()  # another connection moved it (a signal from another terminal): that stands
        finally:
            self._running.discard(pid)
            if self._done is not None:
                self._done.set()

    async def _guarded(self, pid: Pid) -> None:
        try:
            await self._quantum(pid)
        except Conflict:
            self.kernel.refresh()  # changed by another connection mid-quantum: its state stands
        except StoreLost:
            raise  # not this process's fault: the host stops
        except Exception as err:  # noqa: BLE001 - the quantum boundary: a bug ends this process, not the host
            self.fail(pid, f"{type(err).__name__}: {err}", traceback.format_exc())

    def _countdown(self, pid: Pid) -> None:
        """Count down a term signal's grace; kill the process when it is used up, or when it went
        back to waiting instead of exiting (it would never get the quanta to count down)."""
        kernel = self.kernel
        proc = kernel.proc(pid)
        with kernel.transaction() as tx:
            if proc.term <= 1 or proc.state is not ProcState.RUNNING:
                end(kernel, tx, proc, Exit.KILLED, "killed: it did not exit after a term signal", "term")
            else:
                amend(kernel, tx, proc, term=proc.term - 1)

    def _fire(self) -> None:
        """Wake the processes whose timed wait is due; forget deadlines no one waits for any more."""
        kernel = self.kernel
        while self._timers:
            wake, pid = self._timers[0]
            proc = kernel.proc(pid)
            if proc.state is ProcState.WAITING and proc.wake == wake:
                break
            heapq.heappop(self._timers)  # woken early (a message, a child, an interrupt) or gone
        now = kernel.clock.now()
        while self._timers and self._timers[0][0] <= now:
            _, pid = heapq.heappop(self._timers)
            proc = kernel.proc(pid)
            if proc.state is ProcState.WAITING and proc.wake is not None and proc.wake <= now:
                try:
                    with kernel.transaction() as tx:
                        transition(kernel, tx, proc, ProcState.RUNNABLE)
                except Conflict:
                    kernel.refresh()  # killed or woken from another terminal meanwhile: that stands

    async def _sleep(self, done: asyncio.Event) -> None:
        """Sleep until the next deadline, or until another program or this one changes something."""
        kernel = self.kernel
        delay = max(0.0, self._timers[0][0] - kernel.clock.now())
        if kernel.clock.real:
            await self._idle(done, delay)
        else:
            await kernel.clock.sleep(delay)

    async def _idle(self, done: asyncio.Event, timeout: float | None, full: bool = False) -> None:
        """Wait until the store's bell rings, this program queues a process or ends a quantum
        (``done``), or ``timeout`` seconds pass. Without a bell, look at the store every
        POLL_SECONDS. ``full``: every slot is taken, so what is queued already must wait too."""
        ear = self._listen() if self.kernel.clock.real else None
        done.clear()
        if self._ready and not full:
            return  # queued while the caller decided to wait
        if ear is not None:
            await ear.wait(timeout, also=done)
            return
        if self.kernel.clock.real:
            timeout = limits.POLL_SECONDS if timeout is None else min(timeout, limits.POLL_SECONDS)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), timeout)

    def _listen(self) -> Listener | None:
        """Return the listener on the store's bell, made now if need be; None when the store's
        directory lets none be made (then the caller looks every POLL_SECONDS, and tries again)."""
        if self._ear is None:
            try:
                self._ear = self.kernel.store.bell.listen()
            except OSError:
                return None
        return self._ear

    def close(self) -> None:
        """Stop listening on the store's bell."""
        if self._ear is not None:
            self._ear.close()
            self._ear = None

    def fail(self, pid: Pid, message: str, trace: str = "") -> None:
        """Exit ``pid`` failed with ``message``, audited."""
        kernel = self.kernel
        kernel.refresh()
        proc = kernel.proc(pid)
        if proc.state is ProcState.EXITED:
            return
        with kernel.transaction() as tx:
            end(kernel, tx, proc, Exit.FAILED, message, "crash")
            detail = {"error": message, "trace": trace[-2000:]}
            kernel.audit(tx, Deferred(tx.now, pid, "proc.exit", f"proc:{pid}", "-", "allow", "failed", detail))
            tx.event(pid, "crash", {"error": message})

    def recover(self) -> list[Pid]:
        """Make processes left 'running' by a host that died runnable again; return their pids."""
        kernel = self.kernel
        moved = []
        for pid in rows.pids_in(kernel.store.conn, ProcState.RUNNING):
            kernel.shell.kill(pid)  # a command the dead host left behind does not run on unseen
            proc = kernel.proc(pid)
            with kernel.transaction() as tx:
                transition(kernel, tx, proc, ProcState.RUNNABLE)
                tx.event(pid, "recovered", {"note": "the host stopped during this process's quantum"})
            moved.append(pid)
        return moved
