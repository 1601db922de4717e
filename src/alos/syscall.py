"""THE syscall table and dispatch(): the one path every effect takes.

dispatch() reads top to bottom: look up, decode, resolve, replay from the journal, decide
(deny dominates), park if asked, run the effect, audit. It returns the syscall's result or
a Parked record; it raises AlosError for a refused or failed call, after auditing it.
Nothing else in alos checks authority.
Size: the table and one dispatch's bookkeeping (decide, park, replay, perform, audit) are kept
together so the authority path reads top to bottom in one file.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from alos import caps, codec
from alos.errors import AlosError, Conflict, Denied, Invalid, NotFound, ProviderDown, Unavailable
from alos.kernel import Deferred, Kernel, Site, Tx, approval
from alos.kernel import action as actions
from alos.primitives import cap, clock, fs, human, model, msg, proc, signal
from alos.rights import Capability, Effect, Need, kind
from alos.store import rows
from alos.types import HOST, Fork, Parked, Process, ProcState, RequestKind, RequestState, Wait


@dataclass(frozen=True, slots=True)
class Entry:
    """One syscall. Exactly one of ``run`` (an effect outside the store, run before the audit
    transaction) and ``apply`` (a change inside the store, run in the audit transaction)."""

    name: str
    args: type
    needs: Callable[[Process, Any], tuple[Need, ...]]
    run: Callable[[Kernel, Process, Any], Awaitable[Any]] | None = None
    apply: Callable[[Kernel, Tx, Process, Any], Any] | None = None
    resolve: Callable[[Kernel, Process, Any], Any] | None = None
    describe: Callable[[Kernel, Process, Any], dict[str, Any]] | None = None
    # what the target is now; a one-shot approval applies only while the target stays as approved
    state: Callable[[Kernel, Process, Any], str] | None = None
    outside: bool = False  # an outside effect: journaled, and never silently retried
    host_only: bool = False  # only the host may call it (it issues authority)
    once: bool = False  # changes the store: inside a pending action a re-dispatch answers from the journal
    reaches: bool = False  # acts beyond the caller (other processes): refused to speculative processes
    cost: Callable[[Any], dict[str, int]] = lambda args: {"tool_calls": 1}  # budget charged before it runs
    used: Callable[[Any], dict[str, int]] | None = None  # budget charged from the result (a model's tokens)


def _spawning(args: Any) -> dict[str, int]:
    return {"tool_calls": 1, "children": 1}


def _writing(args: Any) -> dict[str, int]:
    return {"tool_calls": 1, "bytes_written": len(args.content.encode())}


def _fs(name: str, args: type, needs: Any, run: Any, *, changes: bool = False, **kw: Any) -> Entry:
    """An fs entry: paths resolved, the target described to a human; one that changes the disk is
    an outside effect and its approvals hold only while the target stays as approved."""
    kw.setdefault("resolve", fs.resolve)
    kw.setdefault("describe", fs.describe_path)
    if changes:
        kw.update(state=fs.target_state, outside=True)
    return Entry(name, args, needs, run=run, **kw)


TABLE: dict[str, Entry] = {
    e.name: e
    for e in (
        _fs("fs.read", fs.ReadArgs, fs.read_needs, fs.read),
        _fs(
            "fs.write", fs.WriteArgs, fs.write_needs, fs.write, changes=True, describe=fs.describe_write, cost=_writing
        ),
        _fs("fs.list", fs.ListArgs, fs.list_needs, fs.list_dir),
        _fs("fs.mkdir", fs.MkdirArgs, fs.mkdir_needs, fs.mkdir, changes=True, resolve=fs.resolve_mkdir),
        _fs("fs.delete", fs.DeleteArgs, fs.delete_needs, fs.delete, changes=True),
        Entry("human.ask", human.AskArgs, human.ask_needs, apply=human.ask, once=True, reaches=True),
        Entry("human.tell", human.TellArgs, human.tell_needs, run=human.tell, outside=True),
        Entry("human.answer", human.AnswerArgs, human.answer_needs, apply=human.answer, host_only=True),
        Entry(
            "model.call",
            model.CallArgs,
            model.call_needs,
            run=model.call,
            describe=model.describe,
            cost=model.cost,
            used=model.used,
        ),
        Entry(
            "proc.spawn",
            proc.SpawnArgs,
            proc.spawn_needs,
            apply=proc.spawn,
            resolve=proc.resolve_spawn,
            describe=proc.describe_spawn,
            once=True,
            reaches=True,
            cost=_spawning,
        ),
        Entry(
            "proc.fork",
            proc.ForkArgs,
            proc.fork_needs,
            apply=proc.fork,
            describe=proc.describe_fork,
            once=True,
            cost=_spawning,
        ),
        Entry("proc.exec", proc.ExecArgs, proc.exec_needs, apply=proc.exec_, once=True),
        Entry("proc.wait", signal.WaitArgs, signal.wait_needs, apply=signal.wait, once=True),
        Entry("proc.merge", signal.MergeArgs, signal.merge_needs, apply=signal.merge, once=True),
        Entry("proc.signal", signal.SignalArgs, signal.signal_needs, apply=signal.signal, once=True, reaches=True),
        Entry(
            "proc.exit",
            signal.ExitArgs,
            signal.exit_needs,
            apply=signal.exit_,
            resolve=signal.resolve_exit,
            cost=lambda args: {},
        ),
        Entry("proc.chdir", proc.ChdirArgs, proc.chdir_needs, apply=proc.chdir, resolve=proc.resolve_chdir, once=True),
        Entry("proc.list", proc.ListArgs, proc.list_needs, run=proc.list_children),
        Entry("msg.send", msg.SendArgs, msg.send_needs, apply=msg.send, once=True, reaches=True),
        Entry("msg.recv", msg.RecvArgs, msg.recv_needs, apply=msg.recv, once=True),
        Entry("clock.now", clock.NowArgs, clock.now_needs, run=clock.now),
        Entry("clock.sleep", clock.SleepArgs, clock.sleep_needs, apply=clock.sleep, once=True),
        Entry("cap.grant", cap.GrantArgs, cap.grant_needs, apply=cap.grant, host_only=True),
        Entry("cap.revoke", cap.RevokeArgs, cap.revoke_needs, apply=cap.revoke, host_only=True),
    )
}

_HOST_PROC = Process(
    pid=HOST,
    parent=None,
    name="host",
    image="-",
    model="-",
    state=ProcState.RUNNING,
    wait=None,
    exit=None,
    cwd="/",
    goal="-",
    result=None,
    turns=0,
    created=0.0,
    updated=0.0,
)


async def dispatch(kernel: Kernel, subject: int, name: str, raw: dict[str, Any]) -> Any:
    """Perform syscall ``name`` with arguments ``raw`` as process ``subject`` (0: the host).

    Returns the syscall's result, or Parked when the process now waits (nothing performed).
    Raises Denied, Invalid, NotFound, ... (each audited) when the call is refused or fails.
    """
    kernel.refresh()
    call = _Call(kernel, subject, name, raw, _step(kernel, subject))
    entry, p = call.prepare()
    if (entry.outside or entry.once) and call.site is not None and call.site.replay:
        try:
            replayed = call.replay(entry, p)
        except AlosError as err:
            call.refused(err)
            raise
        if replayed is not None:
            return replayed[0]
    call.charge(entry, p)
    decision = call.decide(entry, p)
    if decision.effect is Effect.ASK:
        return call.ask(entry, p, decision)
    return await call.perform(entry, p, decision)


def _step(kernel: Kernel, subject: int) -> Site | None:
    site = kernel.sites.get(subject)
    if site is None:
        return None
    site.step += 1
    return Site(site.action, site.call, site.step, site.replay)


def _denial(subject: int, decision: caps.Decision, kernel: Kernel, shown: Callable[[str], str]) -> str:
    """Return the refusal the process reads, naming its resources by ``shown``."""
    need = decision.need
    assert need is not None
    need = Need(shown(need.resource), need.right)
    if not decision.caps:
        return f"process {subject} lacks {need.right} on {need.resource}"
    cap = decision.caps[0]
    if cap.request is not None:
        req = rows.load_request(kernel.store.conn, cap.request)
        who = req.answered_by if req else "a human"
        reason = (req.answer if req else None) or "no reason given"
        return f"{who} rejected this {need.right} on {need.resource} (request {cap.request}): {reason}"
    return f"process {subject} is denied {need.right} on {need.resource} (capability {cap.id}: {cap.pattern})"


def _label(decision: caps.Decision) -> str:
    if any(c.request is not None for c in decision.caps):
        return "rejected" if decision.effect is Effect.DENY else "approved"
    return decision.effect.value


class _Call:
    """The bookkeeping of one dispatch: its digest, audit records and journal entries."""

    def __init__(self, kernel: Kernel, subject: int, name: str, raw: dict[str, Any], site: Site | None) -> None:
        self.kernel = kernel
        self.subject = subject
        self.name = name
        self.raw = raw
        self.site = site
        self.args: Any = None
        self.resource = ""  # set from the needs once resolved, or guessed when resolution fails
        self.right = "-"
        self.named: dict[str, str] = {}  # a resolved fs resource -> the path as the process wrote it
        self.needs: tuple[Need, ...] = ()
        self.retry: int | None = None  # the recovery request whose approval re-runs a lost effect
        self.note = ""  # why this call asks again
        self._digest: str | None = None
        self._charged: tuple[list[Process], dict[str, int]] | None = None

    def prepare(self) -> tuple[Entry, Process]:
        """Look up the entry, decode and resolve the arguments; audit and raise on failure."""
        entry = TABLE.get(self.name)
        p = _HOST_PROC
        try:
            if entry is None:
                raise NotFound(f"no syscall {self.name!r}; known: {', '.join(sorted(TABLE))}")
            p = _HOST_PROC if self.subject == HOST else self.kernel.proc(self.subject)
            if p.state is ProcState.EXITED:
                raise Denied(f"process {self.subject} has exited; it can make no more calls")
            if p.state is ProcState.PAUSED:
                raise Denied(f"process {self.subject} is paused; it makes no calls until resumed ('alos resume PID')")
            try:
                args: Any = msgspec.convert(self.raw, entry.args)
            except msgspec.ValidationError as err:
                raise Invalid(f"{self.name}: {err}") from None
            if entry.resolve is not None:
                args = entry.resolve(self.kernel, p, args)
        except AlosError as err:
            self.resource = _guess(self.name, self.raw, p.cwd)
            self.refused(err)
            raise
        self.args = args
        needs = entry.needs(p, args)
        self.needs = needs
        self.resource = needs[0].resource if needs else f"proc:{self.subject}"
        self.right = needs[0].right.value if needs else "-"
        # what a refusal names: each path as the process wrote it, so that a denial never tells
        # a process where a symlink it may not follow points (the audit keeps the real one)
        self.named = _written(self.raw, args, p.cwd)
        return entry, p

    def charge(self, entry: Entry, p: Process) -> None:
        """Charge the call's cost to the caller and every ancestor, or audit and raise Limit naming
        the budget. The host has no budget; exit is free."""
        if self.subject == HOST:
            return
        cost = entry.cost(self.args)
        if not cost:
            return
        kernel = self.kernel
        chain = kernel.chain(self.subject)
        try:
            kernel.ledger.check(kernel.store.conn, chain, cost, kernel.clock.now())
        except AlosError as err:
            self.refused(err)
            raise
        kernel.ledger.charge(chain, cost)
        self._charged = (chain, cost)

    def refund(self, keep: tuple[str, ...] = ()) -> None:
        """Give back the charge of a call that parked (it is charged again when carried out), or,
        keeping the ``keep`` budgets, of one that was refused or failed (nothing was written or made)."""
        if self._charged is not None:
            chain, cost = self._charged
            self.kernel.ledger.charge(chain, {k: -v for k, v in cost.items() if k not in keep})
            self._charged = None

    def decide(self, entry: Entry, p: Process) -> caps.Decision:
        """Return allow or ask for this call; audit and raise Denied for a deny (deny dominates)."""
        if self.subject == HOST:
            return caps.Decision(Effect.ALLOW, None, ())
        if entry.host_only:
            err = Denied(f"only the host may call {self.name}; a process can ask for authority, never issue it")
            self.refused(err)
            raise err
        if p.mode is Fork.SPECULATIVE and (entry.outside or entry.reaches):
            err = Denied(
                f"process {self.subject} is speculative: it makes no outside effects ({self.name}); "
                "its parent takes its result with proc_merge"
            )
            self.refused(err)
            raise err
        kernel = self.kernel
        if not self.needs:  # a call that needs nothing (exit, recv, wait for any child)
            return caps.Decision(Effect.ALLOW, None, ())
        held = kernel.caps_on(self.subject, frozenset(kind(n.resource) for n in self.needs))
        decision = caps.decide(held, self.needs, self.digest, kernel.clock.now())
        if decision.effect is Effect.DENY:
            err = Denied(_denial(self.subject, decision, kernel, self.show))
            self.refused(err, decision)
            raise err
        for need in self.needs:  # the store is unreachable whatever the grants say (and never asked about)
            if kind(need.resource) == "fs" and kernel.files.hidden(need.resource[3:]):
                err = Denied(f"{self.show(need.resource)} is inside alos's store directory; no process may reach it")
                self.refused(err)
                raise err
        if decision.effect is Effect.ASK and p.mode is Fork.SPECULATIVE:
            err = Denied(f"process {self.subject} is speculative: it may not ask a human ({self.name} needs approval)")
            self.refused(err, decision)
            raise err
        if self.retry is not None:  # a human's recovery answer stands in for ask, never for deny
            return caps.Decision(Effect.ALLOW, None, ())
        if decision.effect is Effect.ALLOW and entry.state is not None:
            return self._still_as_approved(entry, p, decision)
        return decision

    def _still_as_approved(self, entry: Entry, p: Process, decision: caps.Decision) -> caps.Decision:
        """Return ``decision``, or ask again if a one-shot approval in it was given for a target
        that has changed since (the human approved that diff, not this one); the grant is spent."""
        assert entry.state is not None
        kernel = self.kernel
        for grant in decision.caps:
            if grant.digest is None or grant.request is None:
                continue
            req = rows.load_request(kernel.store.conn, grant.request)
            approved = req.detail.get("state") if req is not None else None
            now = entry.state(kernel, p, self.args)
            if approved is not None and approved != now:
                with kernel.transaction() as tx:
                    caps.spend(tx.conn, [grant])
                    tx.on_commit.append(lambda: kernel.forget_caps(self.subject))
                self.note = (
                    f"the target changed after request {grant.request} was approved (it was {approved}, now {now})"
                )
                need = next(n for n in self.needs if n.resource == grant.pattern)
                return caps.Decision(Effect.ASK, need, (grant,))
        return decision

    def show(self, resource: str) -> str:
        """Return ``resource`` as a message to the process may name it."""
        return self.named.get(resource, resource)

    def digest(self) -> str:
        """Return the digest of (syscall, subject, resolved arguments): what a one-shot grant binds."""
        if self._digest is None:
            self._digest = codec.digest_value([self.name, self.subject, msgspec.to_builtins(self.args)])
        return self._digest

    def summary(self) -> dict[str, Any]:
        """Return the arguments as the audit shows them: scalars kept, long text and lists sized."""
        out: dict[str, Any] = {}
        if self.args is not None:
            items = [(f, getattr(self.args, f)) for f in self.args.__dataclass_fields__]
        elif isinstance(self.raw, dict):
            items = list(self.raw.items())
        else:
            return {"args": "<not an object>"}
        for key, value in items:
            if isinstance(value, str):
                out[key] = value if len(value) <= 120 else f"<{len(value)} chars>"
            elif isinstance(value, (int, float, bool)) or value is None:
                out[key] = value
            else:
                out[key] = f"<{len(value) if hasattr(value, '__len__') else '?'} items>"
        if self._digest is not None:
            out["digest"] = self._digest
        return out

    def whole(self) -> dict[str, Any]:
        """Return the arguments in full, as an approval shows them: nothing a human authorizes is cut."""
        value = msgspec.to_builtins(self.args)
        return value if isinstance(value, dict) else {"arguments": value}

    def _detail(self, extra: dict[str, Any] | None) -> dict[str, Any]:
        detail = self.summary()
        if extra:
            detail.update(extra)
        return detail

    def _audit(self, tx: Tx, decision: str, outcome: str, extra: dict[str, Any] | None = None) -> None:
        """Append the audit record inside ``tx`` (with the state changes it records)."""
        self.kernel.audit(tx, self._deferred(tx.now, decision, outcome, extra))

    def _audit_alone(self, decision: str, outcome: str, extra: dict[str, Any] | None = None) -> None:
        """Audit a call that changed nothing: its record goes with the host's next transaction."""
        record = self._deferred(self.kernel.clock.now(), decision, outcome, extra)
        self.kernel.defer(lambda tx: self.kernel.audit(tx, record))

    def _deferred(self, when: float, decision: str, outcome: str, extra: dict[str, Any] | None) -> Deferred:
        return Deferred(
            when, self.subject, self.name, self.resource, self.right, decision, outcome, self._detail(extra)
        )

    def refused(self, err: AlosError, decision: caps.Decision | None = None) -> None:
        """Audit a call refused before its effect ran (it still counts as a call)."""
        self.refund(keep=_COUNTED)
        # refused before any authority decision (bad arguments, a budget, no such syscall): "-"
        label = _label(decision) if decision is not None else "deny" if isinstance(err, Denied) else "-"
        spent = [c for c in decision.caps if c.request is not None] if decision is not None else []
        if not spent:
            self._audit_alone(label, err.code, {"error": err.message})
            return
        with self.kernel.transaction() as tx:  # a human's one-shot deny is used up with it
            self._audit(tx, label, err.code, {"error": err.message})
            caps.spend(tx.conn, spent)
            tx.on_commit.append(lambda: self.kernel.forget_caps(self.subject))

    def ask(self, entry: Entry, p: Process, decision: caps.Decision) -> Parked:
        """Record an approval request showing exactly what would happen, and park."""
        self.refund()
        if self.site is not None:  # dispatched again while its request still waits: the same request
            waiting = approval.at(self.kernel, self.subject, self.site, RequestKind.APPROVAL)
            if waiting is not None and waiting.state is RequestState.PENDING and waiting.digest == self.digest():
                with self.kernel.transaction() as tx:
                    approval.park_on(self.kernel, tx, p)
                return Parked(p.pid, Wait.HUMAN, waiting.id)
        shown = entry.describe(self.kernel, p, self.args) if entry.describe else self.whole()
        if entry.state is not None:
            shown["state"] = entry.state(self.kernel, p, self.args)
        if self.note:
            shown["note"] = self.note
        need = decision.need
        assert need is not None
        with self.kernel.transaction() as tx:
            req = approval.request(
                self.kernel,
                tx,
                p,
                RequestKind.APPROVAL,
                self.site,
                self.name,
                need.resource,
                need.right.value,
                self.digest(),
                {"syscall": self.name, **shown},
            )
            self._audit(tx, "ask", "parked", {"request": req.id})
        return Parked(p.pid, Wait.HUMAN, req.id)

    def replay(self, entry: Entry, p: Process) -> tuple[Any] | None:
        """Answer a re-dispatched outside effect from the journal; None when it has not run."""
        assert self.site is not None
        found = actions.journaled(self.kernel, self.subject, self.site)
        if found is None:
            return None
        syscall, dig, state, result, carried = found
        if syscall != self.name or dig != self.digest():
            raise Conflict(
                f"re-dispatch of process {self.subject}'s action made {self.name} where the journal "
                f"has {syscall} with other arguments; the tool is not deterministic"
            )
        if state == "done":
            if "error" in result:
                code, message = result["error"]
                raise _rebuild(code, message)
            return (result["ok"],)
        return self._recover(entry, p, carried)

    def _recover(self, entry: Entry, p: Process, carried: int | None) -> tuple[Any] | None:
        """The effect's outcome was lost: retry it once per human approval, else park on a request.

        ``carried`` is the recovery request the lost attempt was itself carrying out: its
        approval is used up, so a second loss asks the human again.
        """
        assert self.site is not None
        req = approval.at(self.kernel, self.subject, self.site, RequestKind.RECOVERY)
        if req is not None and req.id == carried:
            req = None  # that approval was spent on the attempt that was lost too
        if req is not None and req.state is RequestState.APPROVED:
            self.retry = req.id  # the human said: run it again, once
            return None
        if req is not None and req.state is RequestState.REJECTED:
            raise Conflict(
                f"{self.name} on {self.resource} may or may not have happened before the host stopped; "
                f"{req.answered_by} chose not to retry it: {req.answer or 'no reason given'}"
            )
        if req is not None:
            return (Parked(p.pid, Wait.HUMAN, req.id),)
        note = (
            "the host stopped after this effect began and before its outcome was recorded; "
            "it may or may not have happened"
        )
        return (self._recovery(entry, p, note, "ask", {}),)

    def _recovery(self, entry: Entry, p: Process, note: str, label: str, extra: dict[str, Any]) -> Parked:
        """File a recovery request that shows the call whole with ``note``, park on it and audit it,
        in one transaction."""
        shown = {
            "syscall": self.name,
            "note": note,
            **(entry.describe(self.kernel, p, self.args) if entry.describe else self.whole()),
        }
        with self.kernel.transaction() as tx:
            req = approval.request(
                self.kernel, tx, p, RequestKind.RECOVERY, self.site, self.name, self.resource, self.right,
                self.digest(), shown,
            )  # fmt: skip
            self._audit(tx, label, "parked", {"request": req.id, "recovery": True, **extra})
        return Parked(p.pid, Wait.HUMAN, req.id)

    async def perform(self, entry: Entry, p: Process, decision: caps.Decision) -> Any:
        """Run the allowed effect and commit its outcome with its audit record."""
        label = "approved" if self.retry is not None else _label(decision)
        kernel = self.kernel
        spent = [c for c in decision.caps if c.uses is not None]
        if entry.apply is not None:
            try:
                with kernel.transaction() as tx:
                    result = entry.apply(kernel, tx, p, self.args)
                    if isinstance(result, Parked):
                        self.refund()
                    elif entry.once and self.site is not None:
                        actions.record_result(tx, self.subject, self.site, self.name, self.digest(), result)
                    self._finish(tx, label, spent, result)
            except AlosError as err:
                self.failed(label, spent, err)
                raise
            return result
        assert entry.run is not None
        site = self.site if entry.outside else None
        if site is not None:  # journaled: intent (and the grant) committed before the effect
            actions.intend(kernel, self.subject, site, self.name, self.digest(), spent, self.retry)
            spent = []
        try:
            result = await entry.run(kernel, p, self.args)
        except ProviderDown as err:
            if site is not None:  # a journaled effect that did not happen: its outcome says so
                self.failed(label, spent, err, site, entry.outside)
                raise
            return self.stall(entry, p, label, err)
        except AlosError as err:
            self.failed(label, spent, err, site, entry.outside)
            raise
        if entry.used is not None and self._charged is not None:
            kernel.ledger.charge(self._charged[0], entry.used(result))
        if site is not None:  # the outcome goes with the transaction that records the tool result
            self._outcome(site, {"ok": result}, self._deferred(kernel.clock.now(), label, "ok", None))
        elif entry.outside or spent:
            with kernel.transaction() as tx:
                self._finish(tx, label, spent, result)
        else:
            self._audit_alone(label, "ok")
        return result

    def stall(self, entry: Entry, p: Process, label: str, err: ProviderDown) -> Parked:
        """The provider cannot serve the call now: park on a recovery request that says why (its
        audit record in the same transaction). A person puts it right and approves a retry, or
        denies, and then the call fails with their reason. Raises Unavailable after a denial."""
        kernel = self.kernel
        last = approval.at(kernel, self.subject, self.site or _NOWHERE, RequestKind.RECOVERY)
        if last is not None and last.syscall == self.name and last.state is RequestState.REJECTED:
            refused = Unavailable(
                f"{err.message}; {last.answered_by} chose not to try again: {last.answer or 'no reason given'}"
            )
            self.failed(label, [], refused)  # counted, like every call that failed
            raise refused
        self.refund()  # a parked call is charged when it is carried out
        if last is not None and last.syscall == self.name and last.state is RequestState.PENDING:
            with kernel.transaction() as tx:
                approval.park_on(kernel, tx, p)
            return Parked(p.pid, Wait.HUMAN, last.id)
        note = f"{err.message}. Put it right and approve to try again; deny to end the call"
        return self._recovery(entry, p, note, label, {"error": err.message})

    def _outcome(self, site: Site, result: dict[str, Any], record: Deferred) -> None:
        """Defer the journal outcome and audit record of an effect to the next transaction."""
        kernel, subject = self.kernel, self.subject

        def write(tx: Tx) -> None:
            actions.record_done(tx, subject, site, result)
            kernel.audit(tx, record)

        kernel.defer(write)

    def _finish(self, tx: Tx, label: str, spent: list[Capability], result: Any) -> None:
        caps.spend(tx.conn, spent)
        if spent:
            tx.on_commit.append(lambda: self.kernel.forget_caps(self.subject))
        parked = isinstance(result, Parked)
        self._audit(tx, label, "parked" if parked else "ok")

    def failed(
        self, label: str, spent: list[Capability], err: AlosError, site: Site | None = None, outside: bool = False
    ) -> None:
        """Audit an allowed call whose effect failed; journal the failure inside an action."""
        self.refund(keep=_COUNTED)
        extra = {"error": err.message}
        if site is not None:
            record = self._deferred(self.kernel.clock.now(), label, err.code, extra)
            self._outcome(site, {"error": [err.code, err.message]}, record)
        elif outside or spent:
            with self.kernel.transaction() as tx:
                caps.spend(tx.conn, spent)
                self._audit(tx, label, err.code, extra)
                if spent:
                    tx.on_commit.append(lambda: self.kernel.forget_caps(self.subject))
        else:
            self._audit_alone(label, err.code, extra)


def refuse(kernel: Kernel, subject: int, resource: str, err: AlosError) -> None:
    """Audit a call refused before it reached the table (a tool the process's image lacks).

    Like every refused call it counts against the tool_calls budget (a model that loops on names
    it has no tool for runs out), and its record goes with the host's next transaction, at the
    latest the one that records the tool result the model reads.
    """
    kernel.ledger.charge(kernel.chain(subject), {"tool_calls": 1})
    record = Deferred(kernel.clock.now(), subject, "-", resource, "execute", "-", err.code, {"error": err.message})
    kernel.defer(lambda tx: kernel.audit(tx, record))


_COUNTED = ("tool_calls", "model_calls")  # budgets a call spends even when refused or failed
_NOWHERE = Site(-1, -1, -1)  # where the requests of a call made outside any pending action are filed


def _guess(name: str, raw: Any, cwd: str) -> str:
    """Return the resource a refused call was about, as well as it can be told without resolving."""
    family = name.partition(".")[0]
    if isinstance(raw, dict) and isinstance(raw.get("path"), str) and "\x00" not in raw["path"]:
        return f"{family}:{_by_name(cwd, raw['path'])}"
    return f"{family}:?"


def _by_name(cwd: str, path: str) -> str:
    """Return ``path`` made absolute from ``cwd`` by name alone (no symlink followed)."""
    return os.path.normpath(os.path.join(cwd, path))


def _written(raw: Any, args: Any, cwd: str) -> dict[str, str]:
    """Return, for each path argument that resolution changed, its fs resource as resolved ->
    as written (made absolute from ``cwd`` by name only: no symlink followed)."""
    out: dict[str, str] = {}
    if not isinstance(raw, dict) or not hasattr(args, "__dataclass_fields__"):
        return out
    for field in args.__dataclass_fields__:
        given, now = raw.get(field), getattr(args, field, None)
        if not isinstance(given, str) or not isinstance(now, str) or given == now or "\x00" in given:
            continue
        prefix = "script:" if given.startswith("script:") and now.startswith("script:") else ""
        if prefix or field in ("path", "cwd", "file"):
            out["fs:" + now[len(prefix) :]] = "fs:" + _by_name(cwd, given[len(prefix) :])
    return out


def _rebuild(code: str, message: str) -> AlosError:
    for cls in AlosError.__subclasses__():
        if cls.code == code:
            return cls(message)
    return AlosError(message)


__all__ = ["TABLE", "Entry", "dispatch", "refuse"]
