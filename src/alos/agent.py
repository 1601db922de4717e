"""The agent loop: one quantum = materialize the context, one model.call, dispatch the tool calls.

If the process has a pending action (a turn interrupted by a park or a host crash), the
quantum continues it instead of calling the model: the same calls, not a new decision.
Interrupts and messages from a person are put into the context before a model call. A
process paused, killed or exec'd during its quantum stops at the next call boundary.
Never checks authority; everything goes through dispatch() (directly or via tools).
"""

from __future__ import annotations

from alos import tools
from alos.errors import AlosError
from alos.images import image
from alos.kernel import Kernel, Site
from alos.kernel import action as actions
from alos.syscall import dispatch
from alos.types import ModelTurn, Parked, Pid, ProcState


class Agent:
    """Runs quanta for the processes of one kernel; caches each image's tool table."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self._tables: dict[str, dict[str, tools.ToolSpec]] = {}
        self._wires: dict[str, list[dict[str, object]]] = {}

    def tools(self, image_name: str) -> dict[str, tools.ToolSpec]:
        """Return the tool table of image ``image_name``."""
        found = self._tables.get(image_name)
        if found is None:
            found = self._tables[image_name] = tools.table(image(image_name))
        return found

    async def quantum(self, pid: Pid) -> None:
        """Run one quantum of process ``pid``."""
        kernel = self.kernel
        proc = kernel.proc(pid)
        table = self.tools(proc.image)
        act = actions.pending(kernel, pid)
        replay = act is not None  # re-entered: earlier dispatches may have journaled effects
        if act is None:
            actions.deliver(kernel, pid)
            wire = self._wires.get(proc.image)
            if wire is None:
                wire = self._wires[proc.image] = [t.wire() for t in table.values()]
            try:
                turn = await dispatch(
                    kernel,
                    pid,
                    "model.call",
                    {"messages": actions.context(kernel, pid), "tools": wire},
                )
            except AlosError as err:
                await dispatch(
                    kernel,
                    pid,
                    "proc.exit",
                    {"status": "failed", "result": f"model call failed: {err}"},
                )
                return
            if isinstance(turn, Parked):
                return
            assert isinstance(turn, ModelTurn)
            if kernel.proc(pid).state is ProcState.EXITED:
                return  # killed while the model thought (from elsewhere: start() meets a Conflict)
            if turn.exhausted:
                await dispatch(kernel, pid, "proc.exit", {"status": "ok", "result": _last_words(kernel, pid)})
                return
            act = actions.start(kernel, kernel.proc(pid), turn)
        epoch = proc.epoch
        for index in range(act.next, len(act.calls)):
            if kernel.proc(pid).state is not ProcState.RUNNING:  # the cache was refreshed after the last call
                return  # paused or killed: the rest of the action waits in the store
            result = await tools.call(kernel, pid, table, act.calls[index], Site(act.id, index, replay=replay))
            if isinstance(result, Parked):
                return
            now = kernel.proc(pid)  # dispatch() looked at the store for other terminals' changes
            if now.state is not ProcState.RUNNING or now.epoch != epoch:
                # exited, exec'd, or paused from elsewhere: a call refused because of the pause
                # made nothing, and a journaled one answers again from the journal
                return
            actions.finish_call(kernel, pid, act, index, result.text, result.ok)


def _last_words(kernel: Kernel, pid: Pid) -> str:
    for msg in reversed(actions.context(kernel, pid)):
        if msg.get("role") == "assistant" and msg.get("content"):
            return str(msg["content"])
    return ""
