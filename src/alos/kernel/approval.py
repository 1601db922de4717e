"""Human requests: record one (the process parks), and take a human's answer to one.

An answer to an approval becomes authority bound as tightly as the human meant it: approve
once is a one-shot grant bound to the exact argument digest; approve always is a standing
allow on that resource and right; deny is a one-shot deny carrying the reason. The process
becomes runnable when nothing else holds it, and the same pending action is dispatched again.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from alos import caps
from alos.errors import Conflict, Invalid, NotFound
from alos.kernel.kernel import Kernel, Site, Tx
from alos.kernel.proc import park, transition
from alos.requestform import can_always
from alos.rights import Effect, Grant, Right
from alos.store import rows
from alos.types import HumanRequest, Process, ProcState, RequestKind, RequestState, Wait

VERDICTS = ("once", "always", "deny", "answer")


def request(
    kernel: Kernel,
    tx: Tx,
    proc: Process,
    kind: RequestKind,
    site: Site | None,
    syscall: str,
    resource: str,
    right: str,
    digest: str,
    detail: dict[str, Any],
) -> HumanRequest:
    """Record a pending request and park ``proc`` on it, inside ``tx``; return the request."""
    blank = HumanRequest(
        id=0,
        pid=proc.pid,
        kind=kind,
        action=site.action if site else -1,
        call=site.call if site else -1,
        step=site.step if site else -1,
        syscall=syscall,
        resource=resource,
        right=right,
        digest=digest,
        detail=detail,
        state=RequestState.PENDING,
        answer=None,
        always=False,
        answered_by=None,
        created=tx.now,
        answered=None,
    )
    rid = rows.insert_request(tx.conn, blank)
    if proc.state is not ProcState.WAITING:
        park(kernel, tx, proc, Wait.HUMAN)
    tx.event(
        proc.pid,
        "request",
        {
            "id": rid,
            "kind": kind.value,
            "syscall": syscall,
            "resource": resource,
            "right": right,
            "detail": detail,
        },
    )
    return dataclasses.replace(blank, id=rid)


def park_on(kernel: Kernel, tx: Tx, proc: Process) -> None:
    """Park ``proc`` on a human request it already has, inside ``tx``."""
    if proc.state is not ProcState.WAITING:
        park(kernel, tx, proc, Wait.HUMAN)


def at(kernel: Kernel, pid: int, site: Site, kind: RequestKind) -> HumanRequest | None:
    """Return the newest request of ``kind`` made at ``site`` by ``pid``, or None."""
    return rows.request_at(kernel.store.conn, pid, site.action, site.call, site.step, kind)


def answer(kernel: Kernel, tx: Tx, request_id: int, verdict: str, text: str | None, by: str) -> HumanRequest:
    """Answer request ``request_id`` inside ``tx``; return it as answered.

    ``verdict`` is once | always | deny (approvals and recoveries) or answer (questions).
    Raises NotFound for an unknown id, Conflict when it was already answered (naming by whom),
    Invalid when the verdict does not fit the request.
    """
    req = rows.load_request(tx.conn, request_id)
    if req is None:
        raise NotFound(f"no human request {request_id}; 'alos approvals' lists the pending ones")
    if req.state is not RequestState.PENDING:
        raise Conflict(
            f"request {request_id} was already {req.state.value} by {req.answered_by or 'someone'}; nothing changed"
        )
    state = _check(req, verdict, text)
    if not rows.answer_request(tx.conn, request_id, state, text, verdict == "always", by, tx.now):
        raise Conflict(f"request {request_id} was answered elsewhere a moment ago; nothing changed")
    if req.kind is RequestKind.APPROVAL:
        _issue(tx, req, verdict, by)
    tx.event(req.pid, "answer", {"id": request_id, "verdict": verdict, "by": by, "text": text})
    proc = rows.load_process(tx.conn, req.pid)
    if (
        proc is not None
        and proc.state is ProcState.WAITING
        and proc.wait is Wait.HUMAN
        and rows.pending_requests_of(tx.conn, req.pid) == 0
    ):
        transition(kernel, tx, proc, ProcState.RUNNABLE)
    tx.on_commit.append(lambda: kernel.forget_caps(req.pid))
    answered = rows.load_request(tx.conn, request_id)
    assert answered is not None
    return answered


def _check(req: HumanRequest, verdict: str, text: str | None) -> RequestState:
    if verdict not in VERDICTS:
        raise Invalid(f"verdict {verdict!r} is not one of {', '.join(VERDICTS)}")
    if req.kind is RequestKind.QUESTION:
        if verdict == "deny":
            return RequestState.REJECTED
        if verdict != "answer" or text is None:
            raise Invalid(f"request {req.id} is a question; answer it with text ('alos answer {req.id} TEXT')")
        return RequestState.ANSWERED
    if verdict == "answer":
        raise Invalid(f"request {req.id} asks for approval; use approve (once or --always) or deny")
    if verdict == "always" and req.kind is RequestKind.RECOVERY:
        raise Invalid(f"request {req.id} is a recovery; approve it once (retry) or deny it (do not retry)")
    if verdict == "always" and not can_always(req):
        raise Invalid(
            f"request {req.id} is about {req.resource[:200]}, whose name ends in '*': a standing grant on it "
            "would cover every resource below it, not only this one; approve it once, or grant what you "
            "mean with --allow"
        )
    return RequestState.REJECTED if verdict == "deny" else RequestState.APPROVED


def _issue(tx: Tx, req: HumanRequest, verdict: str, by: str) -> None:
    right = frozenset({Right(req.right)})
    if verdict == "once":
        grant = Grant(req.resource, right, Effect.ALLOW, uses=1, digest=req.digest, request=req.id)
    elif verdict == "always":
        grant = Grant(req.resource, right, Effect.ALLOW, request=req.id)
    else:
        grant = Grant(req.resource, right, Effect.DENY, uses=1, digest=req.digest, request=req.id)
    caps.issue(tx.conn, req.pid, grant, issuer=f"human:{by}")
