"""Context compaction: old turns summarized into an object by the process's own model call.

An image with ``context.compact`` chooses this over eliding old tool results (context.fit).
When its context passes the budget, the loop asks the process's model, through dispatch()
(budgeted and audited like every model call), to summarize the turns between the goal and
the latest turn; the summary becomes a new version of the object ``context/summary`` (type
``context``) in the process's namespace, written through dispatch() too; and the context is
rewritten as: system prompt, goal, the summary, the latest turn. The summary's call counts as a
turn of the process (a scripted model answers it from its own line). A host that dies between
the object and the rewrite compacts again next turn.
"""

from __future__ import annotations

from typing import Any

from alos import codec, limits
from alos.errors import AlosError
from alos.kernel import Kernel
from alos.kernel import action as actions
from alos.syscall import dispatch
from alos.types import ModelTurn, Pid

SUMMARY = "context/summary"
_KEEP = 2  # the system prompt and the goal stay as they are
_ASK = (
    "You keep the working notes of an agent. Summarize the conversation below: the goal's progress, "
    "what was learned (facts, file names, results), what was decided and why, what failed, and what "
    "is left to do. Be concrete and brief; the agent will read only your summary from now on."
)


def due(msgs: list[dict[str, Any]], budget: int) -> bool:
    """Return whether ``msgs`` pass ``budget`` tokens with old turns to compact."""
    from alos.context import estimate

    return estimate(msgs) > budget and len(_old(msgs)) >= 2


def _old(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the messages between the goal and the latest turn."""
    last = max((i for i, m in enumerate(msgs) if m.get("role") == "assistant"), default=_KEEP)
    return msgs[_KEEP:last] if last > _KEEP else []


def _transcript(old: list[dict[str, Any]], most: int) -> str:
    """Return ``old`` as text for the summarizer, each message cut so the whole fits ``most`` characters."""
    each = max(200, most // max(1, len(old)))
    lines = []
    for m in old:
        text = str(m.get("content") or "")
        for call in m.get("tool_calls") or ():
            text += f"\n-> {call.get('name')}({codec.dumps(call.get('arguments') or {})})"
        role = m.get("name") or m.get("role")
        lines.append(f"[{role}] {text[:each]}" + (" [cut]" if len(text) > each else ""))
    return "\n".join(lines)[:most]


async def compact(kernel: Kernel, pid: Pid, msgs: list[dict[str, Any]], budget: int, max_tokens: int) -> bool:
    """Summarize the old turns of ``pid`` and rewrite its context; return False (changing nothing)
    when the summary could not be made (the model refused, the budget ran out, it parked)."""
    old = _old(msgs)
    prior = str(msgs[_KEEP].get("content") or "") if msgs[_KEEP].get("summary") else ""
    text = _transcript(old, budget * limits.CHARS_PER_TOKEN // 2)
    request = [{"role": "system", "content": _ASK}, {"role": "user", "content": text}]
    try:
        actions.count_turn(kernel, pid)
        turn = await dispatch(kernel, pid, "model.call", {"messages": request, "tools": [], "max_tokens": max_tokens})
    except AlosError:
        return False
    if not isinstance(turn, ModelTurn) or not turn.content.strip():
        return False
    summary = turn.content.strip()
    value = {"summary": summary, "messages": len(old), "earlier": bool(prior)}
    version = await _keep(kernel, pid, value)
    kept = f"object {SUMMARY} version {version}" if version else "not kept as an object: the write was refused"
    note = {
        "role": "user",
        "summary": True,
        "content": f"[a summary of {len(old)} earlier messages, made when the context passed its budget ({kept})]\n"
        + summary,
    }
    actions.compact(kernel, pid, _KEEP, len(old), note)
    return True


async def _keep(kernel: Kernel, pid: Pid, value: dict[str, Any]) -> int | None:
    """Write ``value`` as the next version of the summary object; return its version (None: refused)."""
    try:
        got = await dispatch(kernel, pid, "obj.write", {"name": SUMMARY, "value": value})
    except AlosError:
        try:
            got = await dispatch(kernel, pid, "obj.create", {"name": SUMMARY, "type": "context", "value": value})
        except AlosError:
            return None
    return int(got["version"]) if isinstance(got, dict) else None
