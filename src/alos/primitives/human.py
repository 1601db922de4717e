"""human.*: ask a person a question, tell a person something, and (host only) answer a request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from alos import codec, limits
from alos.errors import Denied, Limit
from alos.kernel import Kernel, Site, Tx, approval
from alos.rights import Need, Right
from alos.types import Parked, Process, RequestKind, RequestState, Wait

QUEUE = "human:console"  # the one human queue of this release


@dataclass(frozen=True, slots=True)
class AskArgs:
    """Ask the human a question and wait for a text answer."""

    question: str


@dataclass(frozen=True, slots=True)
class TellArgs:
    """Show the human a message; nothing is waited for."""

    text: str


@dataclass(frozen=True, slots=True)
class AnswerArgs:
    """Answer human request ``request``: verdict once | always | deny | answer (with ``text``)."""

    request: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
    verdict: Literal["once", "always", "deny", "answer"]
    text: str | None = None
    by: str = "host"


def _short(text: str, what: str) -> None:
    if len(text) > limits.QUESTION_MAX_CHARS:
        raise Limit(f"{what} is {len(text)} characters; at most {limits.QUESTION_MAX_CHARS}")


def ask_needs(proc: Process, args: AskArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need(QUEUE, Right.ASK),)


def tell_needs(proc: Process, args: TellArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need(QUEUE, Right.SEND),)


def answer_needs(proc: Process, args: AnswerArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need(QUEUE, Right.ADMIN),)


def ask(kernel: Kernel, tx: Tx, proc: Process, args: AskArgs, site: Site | None) -> str | Parked:
    """Return the human's answer to the question asked at ``site`` once there is one; until then
    record the question and park."""
    _short(args.question, "the question")
    if site is not None:
        req = approval.at(kernel, proc.pid, site, RequestKind.QUESTION)
        if req is not None and req.state is RequestState.ANSWERED:
            return req.answer or ""
        if req is not None and req.state is RequestState.REJECTED:
            raise Denied(f"{req.answered_by or 'the human'} declined to answer: {req.answer or 'no reason given'}")
        if req is not None:
            return Parked(proc.pid, Wait.HUMAN, req.id)
    shown = {"question": codec.escape(args.question, keep_newlines=True)}
    digest = codec.digest_value(["human.ask", proc.pid, args.question])
    req = approval.request(kernel, tx, proc, RequestKind.QUESTION, site, "human.ask", QUEUE, Right.ASK, digest, shown)
    return Parked(proc.pid, Wait.HUMAN, req.id)


async def tell(kernel: Kernel, proc: Process, args: TellArgs) -> dict[str, Any]:
    """Show the message to the human; return how long it was."""
    _short(args.text, "the message")
    kernel.human.tell(proc.pid, args.text)
    return {"told": len(args.text)}


def answer(kernel: Kernel, tx: Tx, proc: Process, args: AnswerArgs) -> dict[str, Any]:
    """Answer the request; return its id, new state and whom it woke."""
    req = approval.answer(kernel, tx, args.request, args.verdict, args.text, args.by)
    return {"request": req.id, "state": req.state.value, "pid": req.pid, "by": req.answered_by}
