"""kernel/approval.py: a person's answer is taken only in a form that fits the request, is
stored as given, is heard by listeners, and wakes a process only when nothing else holds it."""

import asyncio
from pathlib import Path

import pytest

import alos
from alos.kernel import approval
from alos.types import Event, ProcState, RequestKind, RequestState
from tests.support import spawn


def _file(rt: alos.Runtime, pid: int, kind: RequestKind) -> int:
    kernel = rt.kernel
    with kernel.transaction() as tx:
        req = approval.request(kernel, tx, kernel.proc(pid), kind, None, "fs.write", "fs:/w/a", "write", "d", {})
    return req.id


def test_an_answer_leaves_a_paused_process_paused(runtime: alos.Runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, ask=("fs:*=write",))
    parked = asyncio.run(runtime.dispatch(pid, "fs.write", {"path": "a.txt", "content": "x"}))
    asyncio.run(runtime.signal(pid, "pause"))
    asyncio.run(runtime.answer(parked.request, "once"))
    assert runtime.process(pid).state is ProcState.PAUSED
    asyncio.run(runtime.signal(pid, "resume"))
    assert runtime.process(pid).state is ProcState.RUNNABLE


def test_only_approve_always_is_stored_as_always(runtime: alos.Runtime, ws: Path) -> None:
    pid = spawn(runtime, ws)
    ids = {verdict: _file(runtime, pid, RequestKind.APPROVAL) for verdict in ("once", "always", "deny")}
    assert [runtime.request(i).always for i in ids.values()] == [False, False, False]
    for verdict, rid in ids.items():
        asyncio.run(runtime.answer(rid, verdict))
    assert {v: runtime.request(i).always for v, i in ids.items()} == {"once": False, "always": True, "deny": False}


def test_listeners_hear_of_a_request_and_of_its_answer(runtime: alos.Runtime, ws: Path) -> None:
    heard: list[Event] = []
    runtime.listen(heard.append)
    pid = spawn(runtime, ws, ask=("fs:*=write",))
    parked = asyncio.run(runtime.dispatch(pid, "fs.write", {"path": "a.txt", "content": "x"}))
    asyncio.run(runtime.answer(parked.request, "deny", "no", by="ana"))
    told = [(e.kind, e.detail.get("id")) for e in heard if e.kind in ("request", "answer")]
    assert told == [("request", parked.request), ("answer", parked.request)]
    assert [e.detail for e in heard if e.kind == "answer"] == [
        {"id": parked.request, "verdict": "deny", "by": "ana", "text": "no"}
    ]


def test_a_question_is_answered_with_text_or_declined(runtime: alos.Runtime, ws: Path) -> None:
    pid = spawn(runtime, ws)
    first = asyncio.run(runtime.dispatch(pid, "human.ask", {"question": "which file?"}))
    with pytest.raises(alos.Invalid, match="is a question; answer it with text"):
        asyncio.run(runtime.answer(first.request, "once"))
    with pytest.raises(alos.Invalid, match="is a question; answer it with text"):
        asyncio.run(runtime.answer(first.request, "answer"))  # no text
    asyncio.run(runtime.answer(first.request, "deny", "not now"))
    assert runtime.request(first.request).state is RequestState.REJECTED
    second = asyncio.run(runtime.dispatch(pid, "human.ask", {"question": "and now?"}))
    asyncio.run(runtime.answer(second.request, "answer", "b.txt"))
    assert (runtime.request(second.request).state, runtime.request(second.request).answer) == (
        RequestState.ANSWERED,
        "b.txt",
    )


def test_an_approval_takes_no_text_answer_and_a_recovery_no_always(runtime: alos.Runtime, ws: Path) -> None:
    pid = spawn(runtime, ws)
    asking = _file(runtime, pid, RequestKind.APPROVAL)
    recovery = _file(runtime, pid, RequestKind.RECOVERY)
    with pytest.raises(alos.Invalid, match="asks for approval; use approve"):
        asyncio.run(runtime.answer(asking, "answer", "yes"))
    with pytest.raises(alos.Invalid, match="is a recovery; approve it once"):
        asyncio.run(runtime.answer(recovery, "always"))
    kernel = runtime.kernel
    with pytest.raises(alos.Invalid, match="verdict 'maybe' is not one of"), kernel.transaction() as tx:
        approval.answer(kernel, tx, asking, "maybe", None, "host")
    assert runtime.request(asking).state is RequestState.PENDING  # nothing was taken
    asyncio.run(runtime.answer(asking, "once", by="ana"))
    with pytest.raises(alos.Conflict, match="already approved by ana"):
        asyncio.run(runtime.answer(asking, "deny"))
