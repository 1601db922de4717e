"""The authority rules a wrong change could break silently: each test here fails under one
mutation of rights.py, caps.py, syscall.py or kernel/approval.py (see `make mutate`)."""

import asyncio
import os
from pathlib import Path

import pytest

import alos
from alos import caps
from alos.kernel import Site, approval
from alos.kernel import action as actions
from alos.rights import Capability, Effect, Grant, Need, Right, derive
from alos.syscall import dispatch
from alos.types import HOST, ModelTurn, ProcState, RequestKind, ToolCall, Wait
from tests.support import spawn


def d(rt: alos.Runtime, subject: int, syscall: str, **args):
    return asyncio.run(rt.dispatch(subject, syscall, args))


def held(id: int, pattern: str, right: Right, effect: Effect, **kw) -> Capability:
    fields = dict(issuer="host", expires=None, uses=None, delegable=False, parent=None, revoked=False)
    fields.update({"digest": None, "request": None, **kw})
    return Capability(id, 1, pattern, frozenset({right}), effect, **fields)


# -- deriving: a child gets no more than its parent ----------------------------------------


def test_a_parents_deny_comes_with_what_it_passes_so_the_child_cannot_read_the_secret(runtime, ws: Path) -> None:
    # the parent's deny on .env is more specific than its allow on everything: it must not be the
    # capability the child's allow is derived from (a deny is never derived into an allow)
    pid = spawn(runtime, ws, allow=("fs:*=read", "proc:spawn=spawn"), deny=("fs:.env=read",))
    child = d(runtime, pid, "proc.spawn", name="kid", goal="g", grants=[{"pattern": "fs:.env", "rights": ["read"]}])
    env = f"fs:{os.path.realpath(ws)}/.env"
    passed = [(c.pattern, c.effect) for c in runtime.kernel.caps(child["pid"]) if c.pattern.startswith("fs:")]
    assert passed == [(env, Effect.ALLOW), (env, Effect.DENY)]
    with pytest.raises(alos.Denied, match=r"is denied read on fs:.*/\.env"):
        d(runtime, child["pid"], "fs.read", path=".env")


def test_a_grant_that_expires_is_never_passed_on_for_longer(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, allow=("proc:spawn=spawn",))
    d(runtime, HOST, "cap.grant", pid=pid, pattern="fs:*", rights=["read"], expires=1e12, delegable=True)
    with pytest.raises(alos.Denied, match="may not outlive the parent"):
        d(runtime, pid, "proc.spawn", name="kid", goal="g", grants=[{"pattern": "fs:*", "rights": ["read"]}])
    assert [p.name for p in runtime.processes()] == ["main"]


def test_derive_keeps_a_childs_lifetime_within_its_parents() -> None:
    parent = held(1, "fs:/ws/*", Right.READ, Effect.ALLOW, expires=100.0, delegable=True)
    within = Grant("fs:/ws/a", frozenset({Right.READ}), Effect.ALLOW, expires=50.0)
    assert derive(parent, within, now=10.0) == within
    for longer in (None, 150.0):
        with pytest.raises(alos.Denied, match="may not outlive the parent"):
            derive(parent, Grant("fs:/ws/a", frozenset({Right.READ}), Effect.ALLOW, expires=longer), now=10.0)


# -- the journal: a re-dispatch must be the same call -------------------------------------------


def test_a_redispatch_with_other_arguments_is_a_conflict_not_an_answer_from_the_journal(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, allow=("fs:*=write",))
    kernel = runtime.kernel
    first = {"path": "out.txt", "content": "A"}
    act = actions.start(kernel, kernel.proc(pid), ModelTurn("", (ToolCall("c0", "fs_write", first),)))
    done = asyncio.run(dispatch(kernel, pid, "fs.write", first, Site(act.id, 0, replay=False)))
    kernel.flush()
    (ws / "out.txt").write_text("changed since")
    assert asyncio.run(dispatch(kernel, pid, "fs.write", first, Site(act.id, 0))) == done  # answered, not run again
    assert (ws / "out.txt").read_text() == "changed since"
    with pytest.raises(alos.Conflict, match="not deterministic"):
        asyncio.run(dispatch(kernel, pid, "fs.write", {"path": "out.txt", "content": "B"}, Site(act.id, 0)))
    assert (ws / "out.txt").read_text() == "changed since"


# -- a person's answers: bound exactly as meant ---------------------------------------------------


def test_a_persons_deny_refuses_that_call_once_and_the_same_call_later_asks_again(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, ask=("fs:*=write",))
    parked = d(runtime, pid, "fs.write", path="a.txt", content="x")
    asyncio.run(runtime.answer(parked.request, "deny", "not now", by="ana"))
    with pytest.raises(alos.Denied, match=f"ana rejected this write .*request {parked.request}.*: not now"):
        d(runtime, pid, "fs.write", path="a.txt", content="x")
    again = d(runtime, pid, "fs.write", path="a.txt", content="x")
    assert isinstance(again, alos.Parked) and again.request != parked.request
    assert not (ws / "a.txt").exists()


def test_a_persons_deny_and_reason_are_what_the_process_reads_even_beside_a_standing_deny(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, ask=("fs:*=write",))
    parked = d(runtime, pid, "fs.write", path="a.txt", content="x")
    # while the request waits, the host also denies writes to a.txt (a capability older than the answer)
    d(runtime, HOST, "cap.grant", pid=pid, pattern="fs:a.txt", rights=["write"], effect="deny")
    asyncio.run(runtime.answer(parked.request, "deny", "wrong file", by="ana"))
    with pytest.raises(alos.Denied, match="ana rejected this write .*: wrong file"):
        d(runtime, pid, "fs.write", path="a.txt", content="x")
    with pytest.raises(alos.Denied, match=r"is denied write .*\(capability \d+: fs:"):  # the answer is used up
        d(runtime, pid, "fs.write", path="a.txt", content="x")


def test_decide_names_the_bound_deny_whichever_deny_comes_first() -> None:
    need = Need("fs:/ws/a.txt", Right.WRITE)
    standing = held(1, "fs:/ws/a.txt", Right.WRITE, Effect.DENY)
    bound = held(2, "fs:/ws/a.txt", Right.WRITE, Effect.DENY, uses=1, digest="d1", request=9)
    for order in ([standing, bound], [bound, standing]):
        decision = caps.decide(order, [need], lambda: "d1", now=0.0)
        assert decision.effect is Effect.DENY and decision.caps == (bound,)


def test_an_answer_wakes_a_process_only_when_none_of_its_requests_still_waits(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws)
    kernel = runtime.kernel
    filed = []
    for n in ("one", "two"):
        with kernel.transaction() as tx:
            proc = kernel.proc(pid)
            filed.append(approval.request(kernel, tx, proc, RequestKind.APPROVAL, None, "fs.write", n, "write", n, {}))
    first, second = filed
    assert (runtime.process(pid).state, runtime.process(pid).wait) == (ProcState.WAITING, Wait.HUMAN)
    asyncio.run(runtime.answer(first.id, "once"))
    assert runtime.process(pid).state is ProcState.WAITING  # request two still waits
    asyncio.run(runtime.answer(second.id, "deny"))
    assert runtime.process(pid).state is ProcState.RUNNABLE


# -- a grant is spent where it is used -----------------------------------------------------------


def test_a_read_approved_once_is_read_once_and_then_asks_again(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, ask=("fs:*=read",))
    parked = d(runtime, pid, "fs.read", path="README.md")
    asyncio.run(runtime.answer(parked.request, "once"))
    assert d(runtime, pid, "fs.read", path="README.md") == "hello\n"
    again = d(runtime, pid, "fs.read", path="README.md")
    assert isinstance(again, alos.Parked) and again.request != parked.request


def test_an_approved_write_asks_again_when_its_target_changed_before_it_ran(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, ask=("fs:*=write",))
    parked = d(runtime, pid, "fs.write", path="a.txt", content="mine")
    assert runtime.request(parked.request).detail["state"] == "absent"
    asyncio.run(runtime.answer(parked.request, "once"))
    (ws / "a.txt").write_text("someone else's")
    again = d(runtime, pid, "fs.write", path="a.txt", content="mine")
    assert isinstance(again, alos.Parked)
    assert "the target changed after request" in runtime.request(again.request).detail["note"]
    assert (ws / "a.txt").read_text() == "someone else's"


def test_a_persons_approve_always_is_not_passed_on_to_a_child(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, ask=("fs:*=write",), allow=("proc:spawn=spawn",))
    parked = d(runtime, pid, "fs.write", path="a.txt", content="x")
    asyncio.run(runtime.answer(parked.request, "always"))
    with pytest.raises(alos.Denied, match="cannot pass fs:.*a.txt=write"):
        d(runtime, pid, "proc.spawn", name="kid", goal="g", grants=[{"pattern": "fs:a.txt", "rights": ["write"]}])


# -- what the audit says of a refusal ------------------------------------------------------------


def test_a_refusal_before_any_decision_is_labelled_by_what_refused_it(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, allow=("fs:*=read",))
    with pytest.raises(alos.Invalid):
        d(runtime, pid, "fs.read", path=3)
    d(runtime, pid, "proc.exit")
    with pytest.raises(alos.Denied, match="has exited"):
        d(runtime, pid, "fs.read", path="README.md")
    records = [(r.syscall, r.decision, r.outcome) for r in runtime.audit(pid)][-3:]
    assert records == [("fs.read", "-", "invalid"), ("proc.exit", "allow", "ok"), ("fs.read", "deny", "denied")]


def test_a_call_to_a_tool_the_image_lacks_is_audited_and_counted(runtime, ws: Path) -> None:
    from alos import tools
    from alos.types import ToolCall

    pid = spawn(runtime, ws)
    table = runtime.agent.tools("base")
    result = asyncio.run(tools.call(runtime.kernel, pid, table, ToolCall("c0", "shell_run", {"argv": ["ls"]})))
    assert not result.ok and result.text.startswith("invalid: no tool named 'shell_run' in this image")
    [record] = [r for r in runtime.audit(pid) if r.syscall == "-"]
    assert (record.resource, record.decision, record.outcome) == ("tool:shell_run", "-", "invalid")
    assert runtime.budgets()[pid]["tool_calls"][1] == 1


def test_the_audit_keeps_arguments_up_to_120_characters_and_sizes_longer_ones(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, allow=("human:console=send",))
    d(runtime, pid, "human.tell", text="x" * 120)
    d(runtime, pid, "human.tell", text="x" * 121)
    shown = [r.detail["text"] for r in runtime.audit(pid) if r.syscall == "human.tell"]
    assert shown == ["x" * 120, "<121 chars>"]


@pytest.mark.parametrize(
    ("syscall", "args"),
    [
        ("cap.grant", {"pid": 1, "pattern": "fs:*", "rights": ["write"]}),
        ("cap.revoke", {"id": 1}),
        ("human.answer", {"request": 1, "verdict": "once"}),
    ],
)
def test_only_the_host_issues_authority_whatever_a_process_holds(runtime, ws: Path, syscall: str, args) -> None:
    pid = spawn(runtime, ws, allow=("proc:*=admin", "human:console=admin"))
    with pytest.raises(alos.Denied, match=f"only the host may call {syscall}"):
        d(runtime, pid, syscall, **args)
    assert not any(c.pattern.startswith("fs:") for c in runtime.kernel.caps(pid))


def test_the_store_directory_is_refused_by_dispatch_not_left_to_the_provider(tmp_path: Path, ws: Path) -> None:
    rt = alos.open(str(ws / ".alos" / "store.db"), host=True)
    try:
        pid = spawn(rt, ws, allow=("fs:*=read",))
        with pytest.raises(alos.Denied, match="inside alos's store directory"):
            d(rt, pid, "fs.read", path=".alos/store.db")
        [record] = [r for r in rt.audit(pid) if r.syscall == "fs.read"]
        assert (record.decision, record.outcome) == ("deny", "denied")  # refused before the effect
    finally:
        rt.close()


def test_a_speculative_fork_may_not_reach_beyond_itself(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, allow=("proc:spawn=spawn", "proc:*=signal"))
    fork = d(runtime, pid, "proc.fork", mode="speculative", goal="try")["pid"]
    for syscall, args in (("proc.spawn", {"name": "k", "goal": "g"}), ("proc.signal", {"pid": pid, "signal": "pause"})):
        with pytest.raises(alos.Denied, match=f"is speculative: it makes no outside effects \\({syscall}\\)"):
            d(runtime, fork, syscall, **args)
    assert runtime.process(pid).state is not alos.ProcState.PAUSED


def test_a_message_approved_once_is_told_once(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, ask=("human:console=send",))
    parked = d(runtime, pid, "human.tell", text="deploying")
    asyncio.run(runtime.answer(parked.request, "once"))
    assert d(runtime, pid, "human.tell", text="deploying") == {"told": 9}
    assert isinstance(d(runtime, pid, "human.tell", text="deploying"), alos.Parked)
    assert runtime.human.told == [(pid, "deploying")]


# -- what a call costs ---------------------------------------------------------------------------


def test_a_call_is_charged_once_whether_it_parked_first_or_was_refused(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, ask=("fs:*=write",), deny=("fs:.env=write",))
    parked = d(runtime, pid, "fs.write", path="a.txt", content="12345")
    asyncio.run(runtime.answer(parked.request, "once"))
    d(runtime, pid, "fs.write", path="a.txt", content="12345")
    with pytest.raises(alos.Denied):
        d(runtime, pid, "fs.write", path=".env", content="1234567")
    spent = {name: used for name, (_, used) in runtime.budgets()[pid].items()}
    assert (spent["tool_calls"], spent["bytes_written"]) == (2, 5)  # the refused call counts, its bytes do not


def test_a_models_reported_tokens_are_charged(runtime, ws: Path) -> None:
    turns = [{"content": "a", "usage": {"total_tokens": 40}}, {"content": "b", "usage": {"total_tokens": 2}}]
    pid = spawn(runtime, ws, turns)
    asyncio.run(runtime.run())
    assert runtime.budgets()[pid]["tokens"][1] == 42


# -- what the audit keeps of a call --------------------------------------------------------------


def test_the_audit_keeps_numbers_the_digest_and_the_path_of_a_refused_call(runtime, ws: Path) -> None:
    pid = spawn(runtime, ws, allow=("fs:*=read",), ask=("fs:*=write",))
    d(runtime, pid, "fs.read", path="README.md", offset=2)
    parked = d(runtime, pid, "fs.write", path="a.txt", content="x")
    with pytest.raises(alos.Invalid):
        d(runtime, pid, "fs.read", path="README.md", offset=-1)
    read, asked, bad = [r for r in runtime.audit(pid) if r.syscall.startswith("fs.")]
    assert (read.detail["offset"], read.detail["length"]) == (2, 1048576)
    assert asked.detail["digest"] == runtime.request(parked.request).digest
    assert bad.resource == f"fs:{os.path.realpath(ws)}/README.md" and bad.decision == "-"
