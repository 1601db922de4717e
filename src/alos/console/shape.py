"""What the console's pages show, shaped from what the runtime reads: a process's conversation
turn by turn, states and budgets in words. Pure functions of records; no I/O, no escaping (the
templates escape everything they print)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from alos import codec
from alos.types import AuditRecord, Process, ProcState

TURNS_SHOWN = 100  # the newest turns a process page shows
ARGUMENTS_SHOWN = 2000  # characters of a tool call's arguments or result shown; the rest is cut, saying so
SAID_SHOWN = 8000  # characters of a reply, a message or a goal shown (a model's reply may have megabytes)


@dataclass
class Call:
    """One tool call of a turn: what the model asked and what it got back."""

    id: str
    name: str
    arguments: str
    result: str | None = None


@dataclass
class Turn:
    """One model call: its tokens, what the model said and called, and the syscalls decided meanwhile."""

    number: int
    said: str
    message: bool = False  # a message sent to the process between turns, not a model call
    calls: list[Call] = field(default_factory=list)
    model: AuditRecord | None = None
    decisions: list[AuditRecord] = field(default_factory=list)

    @property
    def tokens(self) -> str:
        if self.model is None:
            return ""
        d = self.model.detail
        return f"{d.get('prompt_tokens', 0)} in, {d.get('completion_tokens', 0)} out"


def turns(context: list[dict[str, Any]], records: list[AuditRecord]) -> tuple[list[str], list[Turn]]:
    """Return (the messages before the first turn: the goal and what people sent, the turns,
    oldest first, at most TURNS_SHOWN). ``records`` are the process's audit records, oldest first.
    A turn is the model call whose request held the messages before it (its ``messages``
    count), so a call that added no turn (one that found nothing more to do) is matched to none."""
    opening: list[str] = []
    made: list[Turn] = []
    by_id: dict[str, Call] = {}
    at: dict[int, Turn] = {}  # context position of an assistant message -> its turn
    for position, message in enumerate(context):
        role = message.get("role")
        if role == "assistant":
            turn = Turn(len(made) + 1, cut(str(message.get("content") or ""), SAID_SHOWN))
            for c in message.get("tool_calls") or []:
                call = Call(str(c.get("id", "")), str(c.get("name", "")), cut(codec.dumps(c.get("arguments", {}))))
                turn.calls.append(call)
                by_id[call.id] = call
            made.append(turn)
            at[position] = turn
        elif role == "tool":
            found = by_id.get(str(message.get("tool_call_id", "")))
            if found is not None:
                found.result = cut(str(message.get("content", "")))
        elif role == "user" and not made:
            opening.append(cut(str(message.get("content", "")), SAID_SHOWN))
        elif role == "user":
            made.append(Turn(len(made) + 1, cut(str(message.get("content", "")), SAID_SHOWN), message=True))
    _match(at, records)
    return opening, made[-TURNS_SHOWN:]


def _match(at: dict[int, Turn], records: list[AuditRecord]) -> None:
    """Give each turn its model call and the syscalls decided until the next model call (the
    newest call of a request size wins: a compacted context starts counting again)."""
    turn: Turn | None = None
    for r in records:
        if r.syscall == "model.call":
            turn = at.get(int(r.detail.get("messages", -1))) if r.outcome == "ok" else None
            if turn is not None:
                turn.model, turn.decisions = r, []
        elif turn is not None:
            turn.decisions.append(r)


def cut(text: str, most: int = ARGUMENTS_SHOWN) -> str:
    """Return ``text``, cut to ``most`` characters saying how many more there are."""
    if len(text) <= most:
        return text
    return text[:most] + f"… ({len(text) - most} more characters)"


def why(p: Process) -> str:
    """Return why a process does not run, in words (empty when it runs or may)."""
    if p.state is ProcState.WAITING:
        return {
            "human": "waits for a person to answer a request",
            "child": "waits for a child to exit",
            "message": "waits for a message",
            "timer": "sleeps",
        }.get(str(p.wait), f"waits ({p.wait})")
    if p.state is ProcState.PAUSED:
        return "paused: resume it to go on"
    if p.state is ProcState.EXITED and p.result:
        return cut(str(p.result), 200)
    return ""


def spent(amounts: dict[str, tuple[int | None, int]]) -> list[str]:
    """Return each budget as 'name spent/limit' (or 'name spent' without a limit), by name."""
    return [
        f"{name} {used}/{lim}" if lim is not None else f"{name} {used}" for name, (lim, used) in sorted(amounts.items())
    ]


__all__ = ["Call", "Turn", "cut", "spent", "turns", "why"]
