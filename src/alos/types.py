"""The records alos is made of: processes, human requests, audit records, events, model turns.

Pure data (frozen, slotted dataclasses and string enums); no behaviour beyond formatting.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec

from alos import limits

Pid = int
Seconds = Annotated[float, msgspec.Meta(ge=0, le=limits.WAIT_MAX_SECONDS)]  # a wait or sleep in syscall arguments
HOST: Pid = 0  # the host program's subject id: the only issuer of authority


class ProcState(enum.StrEnum):
    RUNNABLE = "runnable"
    RUNNING = "running"
    WAITING = "waiting"
    PAUSED = "paused"
    EXITED = "exited"


class Wait(enum.StrEnum):
    """Why a waiting process waits."""

    HUMAN = "human"
    CHILD = "child"
    MESSAGE = "message"
    TIMER = "timer"


class Exit(enum.StrEnum):
    """How an exited process exited."""

    OK = "ok"
    FAILED = "failed"
    KILLED = "killed"


class Fork(enum.StrEnum):
    """How a process was made (ARCHITECTURE.md section 6)."""

    SPAWN = "spawn"  # a fresh child: its own context, the grants passed
    WORKER = "worker"  # sees the parent's context; passed grants are cut to read and list
    SPECULATIVE = "speculative"  # sees the parent's context; no outside effects; its result waits for a merge
    COPY = "copy"  # a copy of the parent's context, then on its own


@dataclass(frozen=True, slots=True)
class Process:
    pid: Pid
    parent: Pid | None
    name: str
    image: str
    model: str
    state: ProcState
    wait: Wait | None
    exit: Exit | None
    cwd: str
    goal: str
    result: str | None
    turns: int  # model calls made so far: the scripted model's cursor
    created: float
    updated: float
    priority: int = 5  # share of quanta, 1..9
    mode: Fork = Fork.SPAWN  # how it was made
    epoch: int = 0  # how many times it exec'd: a quantum that sees it change stops
    wake: float | None = None  # when its timed wait ends
    reaped: bool = False  # its exit was collected by its parent
    term: int = 0  # quanta left after a term signal; 0: none pending
    creator: Pid | None = None  # who made it; unlike parent, adoption never changes it
    paused_by: Pid | None = None  # who paused it (HOST: the host)

    def changed(self, **changes: Any) -> Process:
        """Return this record with ``changes`` (field -> value): ``dataclasses.replace`` without
        its per-call introspection, which a step pays three times."""
        if not changes.keys() <= _PROCESS_FIELDS.keys():
            raise TypeError(f"Process has no field {sorted(changes.keys() - _PROCESS_FIELDS.keys())}")
        new = object.__new__(Process)
        for name in _PROCESS_FIELDS:
            object.__setattr__(new, name, changes[name] if name in changes else getattr(self, name))
        return new


_PROCESS_FIELDS = Process.__dataclass_fields__


def state_words(p: Process) -> str:
    """Return a process's state as a person reads it, in a word or two: ``waiting human``,
    ``exited ok``, ``paused``."""
    if p.state is ProcState.WAITING:
        return f"waiting {p.wait}"
    if p.state is ProcState.EXITED:
        return f"exited {p.exit}"
    return p.state.value


# message kinds the runtime puts into a process's context before its next model call
SHOWN_KINDS = ("interrupt", "human", "term")

BUDGETS = ("model_calls", "tokens", "tool_calls", "wall_seconds", "children", "bytes_written")


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    pid: Pid  # the receiver
    sender: Pid
    kind: str
    corr: str | None
    body: str
    sent: float


class RequestKind(enum.StrEnum):
    APPROVAL = "approval"  # may this exact call run?
    QUESTION = "question"  # human.ask: a text answer
    RECOVERY = "recovery"  # an outside effect may or may not have happened: retry it?


class RequestState(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    ANSWERED = "answered"
    CANCELLED = "cancelled"  # its process exited before anyone answered


@dataclass(frozen=True, slots=True)
class HumanRequest:
    id: int
    pid: Pid
    kind: RequestKind
    action: int
    call: int
    step: int
    syscall: str
    resource: str
    right: str
    digest: str
    detail: dict[str, Any]
    state: RequestState
    answer: str | None
    always: bool
    answered_by: str | None
    created: float
    answered: float | None


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    time: float
    pid: Pid
    syscall: str
    resource: str
    right: str
    decision: str  # allow | deny | ask | approved | rejected
    outcome: str  # ok | parked | an error code
    detail: dict[str, Any]
    prev: str
    digest: str


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    time: float
    pid: Pid
    kind: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Parked:
    """What dispatch() returns when the call cannot finish now: the process waits.

    Nothing was performed. The same pending action is dispatched again once the wait ends.
    """

    pid: Pid
    wait: Wait
    request: int | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ModelTurn:
    """One model response: text and the tool calls to dispatch, in order."""

    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    exhausted: bool = False  # the model has nothing more to say (a script ran out)
    # prompt_tokens, completion_tokens, total_tokens, cached_tokens (read from the prompt cache)
    usage: dict[str, int] = field(default_factory=dict)
    finish_reason: str = ""  # as the provider reported it: stop, tool_calls, length, ...
    model: str = ""  # the model that answered, as the provider named it
    elapsed: float = 0.0  # seconds the call took, retries included
    constrained: bool = False  # the server was asked to allow only one call of a declared tool
    request: str = ""  # the digest of the request it answers (model.call's audit record keeps it)
    sent: int = 0  # bytes of that request's messages and tools, as canonical JSON
    shown: tuple[tuple[str, int, str], ...] = ()  # (object, version, digest) of each object version in the request
