"""The scheduler: give runnable processes quanta, round robin, until none is runnable.

It owns the running state: a process is 'running' only inside its quantum. The quantum's
body is injected (the agent loop lives above the kernel). The agent loop turns caller errors
into tool results, so whatever escapes a quantum is a bug: the process exits failed, its
pending action is dropped, and the error is audited.
"""

from __future__ import annotations

import traceback
from collections import deque
from collections.abc import Awaitable, Callable

from alos import audit
from alos.kernel.kernel import Kernel
from alos.kernel.proc import transition
from alos.store import rows
from alos.types import Exit, Pid, ProcState


class Scheduler:
    """Round-robin quanta over one kernel's runnable processes; owns the running state."""

    def __init__(self, kernel: Kernel, quantum: Callable[[Pid], Awaitable[None]]) -> None:
        self.kernel = kernel
        self._quantum = quantum
        self.quanta = 0

    def runnable(self) -> list[Pid]:
        """Return the pids that are runnable now, oldest first."""
        return [p.pid for p in self.kernel.processes() if p.state is ProcState.RUNNABLE]

    async def run(self) -> None:
        """Run quanta until no process is runnable (all exited, waiting or paused).

        A process whose quantum ends with nothing else runnable keeps running into its next
        quantum: it is not written runnable and running again, which would be two empty commits.
        """
        kernel = self.kernel
        queue = deque(self.runnable())
        current: Pid | None = None  # the process left running between consecutive quanta
        while queue:
            pid = queue.popleft()
            if kernel.refresh():
                queue.extend(p for p in self.runnable() if p not in queue and p != pid)
            proc = kernel.proc(pid)
            if pid != current or proc.state is not ProcState.RUNNING:
                if proc.state is not ProcState.RUNNABLE:
                    continue
                with kernel.transaction() as tx:
                    transition(kernel, tx, proc, ProcState.RUNNING)
            await self._guarded(pid)
            self.quanta += 1
            current = None
            if kernel.proc(pid).state is ProcState.RUNNING:
                if not queue and kernel.refresh():
                    queue.extend(p for p in self.runnable() if p != pid)
                if queue:
                    self._yield(pid)
                else:
                    current = pid
                queue.append(pid)
            elif not queue and kernel.refresh():
                queue.extend(self.runnable())
        kernel.flush()  # idle: every deferred audit record is written before anyone waits

    def _yield(self, pid: Pid) -> None:
        proc = self.kernel.proc(pid)
        with self.kernel.transaction() as tx:
            transition(self.kernel, tx, proc, ProcState.RUNNABLE)

    async def _guarded(self, pid: Pid) -> None:
        try:
            await self._quantum(pid)
        except Exception as err:  # noqa: BLE001 - the quantum boundary: a bug ends this process, not the host
            self.fail(pid, f"{type(err).__name__}: {err}", traceback.format_exc())

    def fail(self, pid: Pid, message: str, trace: str = "") -> None:
        """Exit ``pid`` failed with ``message``, audited."""
        kernel = self.kernel
        kernel.refresh()
        proc = kernel.proc(pid)
        if proc.state is ProcState.EXITED:
            return
        with kernel.transaction() as tx:
            transition(kernel, tx, proc, ProcState.EXITED, exit=Exit.FAILED, result=message)
            rows.clear_action(tx.conn, pid)
            audit.append(
                tx.conn,
                tx.now,
                pid,
                "proc.exit",
                f"proc:{pid}",
                "-",
                "allow",
                "failed",
                {"error": message, "trace": trace[-2000:]},
            )
            tx.event(pid, "crash", {"error": message})

    def recover(self) -> list[Pid]:
        """Make processes left 'running' by a host that died runnable again; return their pids."""
        kernel = self.kernel
        moved = []
        for proc in kernel.processes():
            if proc.state is ProcState.RUNNING:
                with kernel.transaction() as tx:
                    transition(kernel, tx, proc, ProcState.RUNNABLE)
                    tx.event(
                        proc.pid,
                        "recovered",
                        {"note": "the host stopped during this process's quantum"},
                    )
                moved.append(proc.pid)
        return moved
