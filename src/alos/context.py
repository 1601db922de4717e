"""The context a model reads: the process's conversation fitted to a token budget.

The stored conversation begins with the stable prefix (the image's prompt and what alos says
about the process, then the goal); the tool table goes with every call unchanged, so a
provider's prompt cache keeps hitting. Past the budget the oldest tool results are elided,
each replaced by a note saying what it was and how big; the prefix and the latest turn are
never elided. Tool results are cut to limits.TOOL_RESULT_MAX_CHARS before they are stored.
Tokens are estimated at limits.CHARS_PER_TOKEN characters each (providers count for real
and the audit keeps their count).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alos import codec, limits

REPAIR = "[repair "  # how a repair turn's text begins: "[repair 2 of 3] ..."


def cut(text: str, most: int = limits.TOOL_RESULT_MAX_CHARS) -> str:
    """Return ``text`` cut to ``most`` characters with a note of its full size."""
    if len(text) <= most:
        return text
    return text[:most] + f"\n[cut: this result is {len(text)} characters; the first {most} are shown]"


def _size(msg: dict[str, Any]) -> int:
    size = len(str(msg.get("content") or ""))
    for call in msg.get("tool_calls") or ():
        size += len(str(call.get("arguments", ""))) + len(str(call.get("name", "")))
    return size


def estimate(msgs: Sequence[dict[str, Any]]) -> int:
    """Return the estimated tokens of ``msgs``."""
    return sum(_size(m) for m in msgs) // limits.CHARS_PER_TOKEN


def fit(msgs: list[dict[str, Any]], budget: int, chars: int | None = None) -> list[dict[str, Any]]:
    """Return ``msgs`` (not copied when they fit) with the oldest tool results elided until the
    estimate is within ``budget`` tokens, or no tool result older than the last turn is left.
    ``chars``: their size, when the caller knows it."""
    if chars is None:
        chars = sum(_size(m) for m in msgs)
    most = budget * limits.CHARS_PER_TOKEN
    if chars <= most:
        return msgs
    last_turn = max((i for i, m in enumerate(msgs) if m.get("role") == "assistant"), default=len(msgs))
    out = list(msgs)
    for i in range(last_turn):
        if chars <= most:
            break
        msg = out[i]
        if msg.get("role") != "tool" or str(msg.get("content", "")).startswith("[elided"):
            continue
        text = str(msg.get("content") or "")
        note = (
            f"[elided to fit the context budget: an old result of {msg.get('name', 'a tool')}, {len(text)} characters]"
        )
        out[i] = {**msg, "content": note}
        chars -= len(text) - len(note)
    return out


def wire(msgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return ``msgs`` in the Chat Completions shape a provider takes: each tool call of an
    assistant turn as ``{"id", "type": "function", "function": {"name", "arguments": JSON}}``
    and its content a string (the store keeps calls as ``{"id", "name", "arguments"}``)."""
    return [_wired(m) for m in msgs]


def _wired(stored: dict[str, Any]) -> dict[str, Any]:
    if "repair" in stored or "summary" in stored:  # alos's own marks: no provider is sent them
        stored = {k: v for k, v in stored.items() if k not in ("repair", "summary")}
    calls = stored.get("tool_calls")
    if stored.get("role") != "assistant" or not calls:
        return stored
    return {
        **stored,
        "content": stored.get("content") or "",
        "tool_calls": [
            {
                "id": c.get("id"),
                "type": "function",
                "function": {"name": c.get("name"), "arguments": codec.dumps(c.get("arguments") or {})},
            }
            for c in calls
        ],
    }


class Window:
    """One process's context as its model is sent it, kept up to date as the context grows:
    the stored messages only ever gain new ones at the end (exec starts a new list), so each
    quantum converts and sizes only what was added since the last (a 200-message context
    would otherwise cost a few hundred microseconds a call)."""

    def __init__(self) -> None:
        self._source: list[dict[str, Any]] | None = None
        self._wired: list[dict[str, Any]] = []
        self._chars = 0

    def messages(self, msgs: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
        """Return ``msgs`` fitted to ``budget`` tokens in the provider's shape (a new list; its
        messages are shared: do not change them)."""
        if msgs is not self._source or len(msgs) < len(self._wired):
            self._source, self._wired, self._chars = msgs, [], 0
        for msg in msgs[len(self._wired) :]:
            self._wired.append(_wired(msg))
            self._chars += _size(msg)
        if self._chars <= budget * limits.CHARS_PER_TOKEN:
            return list(self._wired)
        return wire(fit(msgs, budget, self._chars))  # past the budget: elide, then convert all


def repairs(msgs: Sequence[dict[str, Any]]) -> int:
    """Return the number of the last repair turn if the newest tool result or note is one, else 0.

    Counted by the ``repair`` field the agent loop stores with a repair, never by text: a file
    whose text reads like a repair is just a file."""
    for msg in reversed(msgs):
        if msg.get("role") == "assistant":
            continue
        number = msg.get("repair", 0)
        return number if isinstance(number, int) and not isinstance(number, bool) else 0
    return 0


def last_repair(msgs: Sequence[dict[str, Any]]) -> str:
    """Return the text of the newest repair turn, or ""."""
    for msg in reversed(msgs):
        if msg.get("repair"):
            return str(msg.get("content") or "")
    return ""
