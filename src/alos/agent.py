"""The agent loop: one quantum = fit the context, one model.call, dispatch the tool calls.

If the process has a pending action (a turn interrupted by a park or a host crash), the
quantum continues it instead of calling the model: the same calls, not a new decision.
Interrupts and messages from a person are put into the context before a model call. A
process paused, killed or exec'd during its quantum stops at the next call boundary.
A malformed turn (a tool the image lacks, arguments that fit no schema, an empty reply) gets
a repair turn naming what was wrong, at most limits.MODEL_REPAIRS in a row; then the next
model call parks the process on a request where a person lets it try again or ends it.
Never checks authority; everything goes through dispatch() (directly or via tools).
"""

from __future__ import annotations

from dataclasses import dataclass

from alos import compaction, context, limits, tooljit, tools
from alos.errors import AlosError
from alos.images import Image, from_json
from alos.kernel import Kernel, Site, reads
from alos.kernel import action as actions
from alos.syscall import dispatch
from alos.tools import ToolSpec
from alos.types import ModelTurn, Parked, Pid, ProcState


@dataclass(frozen=True, slots=True)
class _Loaded:
    """What the loop needs of an image: it, its tool table and the table as the model sees it."""

    image: Image
    table: dict[str, tools.ToolSpec]
    wire: list[dict[str, object]]


class Agent:
    """Runs quanta for the processes of one kernel; caches each image's tool table by ref."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self._images: dict[str, _Loaded] = {}
        self._windows: dict[Pid, context.Window] = {}  # each process's context in the model's shape

    def loaded(self, ref: str) -> _Loaded:
        """Return image ``ref`` with its tool table (refs never change, so they are cached)."""
        found = self._images.get(ref)
        if found is None:
            image = from_json(reads.image(self.kernel, ref), source=f"store:{ref}")
            table = tools.table(image)
            found = self._images[ref] = _Loaded(image, table, [t.wire() for t in table.values()])
        return found

    def tools(self, ref: str) -> dict[str, tools.ToolSpec]:
        """Return the tool table of image ``ref``."""
        return self.loaded(ref).table

    def _jit(self, pid: Pid, loaded: _Loaded) -> dict[str, tooljit.JitSpec]:
        """Return the JIT tools of ``pid`` (read each quantum: a tool registered is callable next turn)."""
        return tooljit.table(self.kernel, pid, loaded.image.tool_tables, set(loaded.table))

    async def quantum(self, pid: Pid) -> None:
        """Run one quantum of process ``pid``."""
        kernel = self.kernel
        proc = kernel.proc(pid)
        loaded = self.loaded(proc.image)
        jit = self._jit(pid, loaded)  # read once a quantum: a tool registered is callable from the next
        act = actions.pending(kernel, pid)
        replay = act is not None  # re-entered: earlier dispatches may have journaled effects
        if act is None:
            actions.deliver(kernel, pid)
            turn = await self._think(pid, loaded, jit)
            if turn is None:
                return
            if kernel.proc(pid).epoch != proc.epoch:
                return  # exec'd or restored from elsewhere while its model thought: that turn is of the past
            if turn.exhausted:
                await dispatch(kernel, pid, "proc.exit", {"status": "ok", "result": _last_words(kernel, pid)})
                return
            act = actions.start(kernel, kernel.proc(pid), turn, proc.epoch)
            if not act.calls and not turn.content.strip():
                self._repair(pid, "your reply was empty: call one of your tools (proc_exit when you are done)")
                return
        epoch = proc.epoch
        table: dict[str, ToolSpec | tooljit.JitSpec] = {**loaded.table, **jit}
        repair = 0  # the number of this turn's repair, once one of its calls is malformed
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
            text = context.cut(result.text)
            number = 0
            if result.malformed:
                repair = number = repair or self._next_repair(pid)  # every malformed call of a turn: one repair
                text = f"{context.REPAIR}{repair} of {limits.MODEL_REPAIRS}] {text}"
            actions.finish_call(kernel, pid, act, index, text, result.ok, number)

    async def _think(self, pid: Pid, loaded: _Loaded, jit: dict[str, tooljit.JitSpec]) -> ModelTurn | None:
        """Make the process's model call; return its turn, or None when the process stopped,
        parked, or failed (then it has exited)."""
        kernel = self.kernel
        image = loaded.image
        msgs = actions.context(kernel, pid)
        budget = image.context_tokens or limits.CONTEXT_TOKENS
        max_tokens = image.max_tokens or limits.MODEL_MAX_TOKENS
        if image.compact and compaction.due(msgs, budget) and await compaction.compact(kernel, pid, msgs, budget,
                                                                                        max_tokens):  # fmt: skip
            if kernel.proc(pid).state is not ProcState.RUNNING:
                return None
            msgs = actions.context(kernel, pid)
        window = self._windows.get(pid)
        if window is None:
            if len(self._windows) >= limits.CONTEXTS_CACHED:  # as many as the kernel keeps contexts
                del self._windows[next(iter(self._windows))]
            window = self._windows[pid] = context.Window()
        args: dict[str, object] = {
            "messages": window.messages(msgs, budget),
            "tools": loaded.wire + [t.wire() for t in jit.values()],
            "max_tokens": max_tokens,
            "temperature": image.temperature,
            "constrain": image.constrain,
        }
        if image.context_objects:
            args["objects"] = list(image.context_objects)
            args["object_tokens"] = budget // limits.CONTEXT_OBJECTS_SHARE
        if context.repairs(msgs) >= limits.MODEL_REPAIRS:  # a person decides whether it tries again
            args["stuck"] = context.last_repair(msgs)[:300]
        try:
            turn = await dispatch(kernel, pid, "model.call", args)
        except AlosError as err:
            if reads.process(kernel, pid).state is not ProcState.RUNNING:
                return None  # paused or killed during the call: it was cancelled
            await dispatch(kernel, pid, "proc.exit", {"status": "failed", "result": f"model call failed: {err}"})
            return None
        if isinstance(turn, Parked):
            return None
        assert isinstance(turn, ModelTurn)
        if kernel.proc(pid).state is ProcState.EXITED:
            return None  # killed while the model thought (from elsewhere: start() meets a Conflict)
        return turn

    def _next_repair(self, pid: Pid) -> int:
        """Return the number of the next repair turn: one more than the last, or 1 after a person
        let the process try again (or after a turn that was not a repair)."""
        last = context.repairs(actions.context(self.kernel, pid))
        return 1 if last >= limits.MODEL_REPAIRS else last + 1

    def _repair(self, pid: Pid, what: str) -> None:
        number = self._next_repair(pid)
        actions.note(self.kernel, pid, f"{context.REPAIR}{number} of {limits.MODEL_REPAIRS}] {what}", number)


def _last_words(kernel: Kernel, pid: Pid) -> str:
    for msg in reversed(actions.context(kernel, pid)):
        if msg.get("role") == "assistant" and msg.get("content"):
            return str(msg["content"])
    return ""
