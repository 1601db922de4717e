"""THE syscall table and dispatch(): the one path every effect takes.

dispatch() reads top to bottom: look up, decode, resolve, replay from the journal, charge the
budget, decide (deny dominates), park if asked, run the effect, audit. It returns the
syscall's result or a Parked record; it raises AlosError for a refused or failed call, after
auditing it. Nothing else in alos checks authority.

An entry says what its effect is, and so how dispatch() carries it out:
- ``Read``: changes nothing; it runs outside any transaction and its record goes with the
  host's next commit.
- ``Outside``: an effect outside the store (a file, a person's screen). Inside a pending
  action its intent is committed before it runs and its outcome after; it is never silently
  run twice. ``state`` says what its target is now: a one-shot approval holds only while the
  target stays as approved.
- ``Change``: a change inside the store, made in the transaction that audits it. Inside a
  pending action its result is journaled with it, so a re-dispatch answers from the journal.
  ``before`` (optional) runs first, outside the transaction, and hands apply what it made.
- ``Question``: a change that files a human request at the call's site and, dispatched there
  again, returns the answer.
Size: the table and one dispatch's bookkeeping (decide, park, replay, perform, audit) are kept
together so the authority path reads top to bottom in one file.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec

from alos import caps, codec
from alos.errors import AlosError, BadArguments, Conflict, Denied, Diverged, NotFound, ProviderDown, Unavailable
from alos.kernel import Deferred, Kernel, Site, Tx, approval
from alos.kernel import action as actions
from alos.primitives import (
    cap,
    ckpt,
    clock,
    fs,
    human,
    image,
    model,
    msg,
    net,
    ns,
    obj,
    objfile,
    proc,
    shell,
    signal,
    tool,
)  # fmt: skip
from alos.rights import Capability, Effect, Need, Right, kind
from alos.store import rows
from alos.types import HOST, Fork, Parked, Process, ProcState, RequestKind, RequestState, Wait

A = TypeVar("A")  # the arguments as the effect takes them (resolved)
R = TypeVar("R")  # what the effect returns


@dataclass(frozen=True, slots=True)
class Read(Generic[A, R]):
    """An effect that changes nothing; see the module docstring."""

    run: Callable[[Kernel, Process, A], Awaitable[R]]


@dataclass(frozen=True, slots=True)
class Outside(Generic[A, R]):
    """An effect outside the store, journaled; see the module docstring."""

    run: Callable[[Kernel, Process, A], Awaitable[R]]
    state: Callable[[Kernel, Process, A], str] | None = None


@dataclass(frozen=True, slots=True)
class Change(Generic[A, R]):
    """A change inside the store; ``journaled``: answered from the journal when dispatched again
    inside the same pending action (never for a host-only call or exit, which end or stand alone)."""

    apply: Callable[[Kernel, Tx, Process, A], R]
    journaled: bool = True
    # run after the decision, outside any transaction: what may take time (a type check); apply gets what it returns
    before: Callable[[Kernel, Process, A], Awaitable[Any]] | None = None


@dataclass(frozen=True, slots=True)
class Question(Generic[A, R]):
    """A change that files a human request at the call's site; see the module docstring."""

    apply: Callable[[Kernel, Tx, Process, A, Site | None], R]


def _one_call(args: object) -> dict[str, int]:
    return {"tool_calls": 1}


@dataclass(frozen=True, slots=True)
class Entry(Generic[A, R]):
    """One syscall: its arguments, what it needs, its effect and what it costs.

    ``args`` is the type the caller's JSON decodes into (the tool's schema); ``resolve`` turns
    it into the ``A`` the needs and the effect take (paths made real), or it is used as it is.
    ``host_only``: only the host may call it (it issues authority). ``reaches``: it acts beyond
    the caller (other processes, a person), so a speculative process may not make it.
    ``cost`` is charged before the effect runs, ``used`` from its result (a model's tokens:
    what it used less what ``cost`` reserved); ``audited`` adds what the result says to its
    audit record. A call that ``keeps`` budgets keeps them charged when its effect fails.
    """

    name: str
    args: type
    needs: Callable[[Process, A], tuple[Need, ...]]
    effect: Read[A, R] | Outside[A, R] | Change[A, R] | Question[A, R]
    resolve: Callable[[Kernel, Process, Any], A] | None = None
    describe: Callable[[Kernel, Process, A], dict[str, Any]] | None = None
    host_only: bool = False
    reaches: bool = False
    cost: Callable[[A], dict[str, int]] = _one_call
    used: Callable[[A, R], dict[str, int]] | None = None
    audited: Callable[[A, R], dict[str, Any]] | None = None
    keeps: tuple[str, ...] = ()

    @property
    def journaled(self) -> bool:
        """Whether a re-dispatch inside a pending action answers from the journal."""
        effect = self.effect
        return not isinstance(effect, Read) and (not isinstance(effect, Change) or effect.journaled)


def _spawning(args: object) -> dict[str, int]:
    return {"tool_calls": 1, "children": 1}


def _writing(args: fs.WriteArgs) -> dict[str, int]:
    return {"tool_calls": 1, "bytes_written": len(args.content.encode())}


def _free(args: object) -> dict[str, int]:
    return {}


TABLE: dict[str, Entry[Any, Any]] = {
    e.name: e
    for e in (
        Entry("fs.read", fs.ReadArgs, fs.read_needs, Read(fs.read), fs.resolve, fs.describe_path),
        Entry(
            "fs.write", fs.WriteArgs, fs.write_needs, Outside(fs.write, fs.target_state), fs.resolve,
            fs.describe_write, cost=_writing,
        ),
        Entry("fs.list", fs.ListArgs, fs.list_needs, Read(fs.list_dir), fs.resolve, fs.describe_path),
        Entry(
            "fs.mkdir", fs.MkdirArgs, fs.mkdir_needs, Outside(fs.mkdir, fs.target_state), fs.resolve_mkdir,
            fs.describe_path,
        ),
        Entry(
            "fs.delete", fs.DeleteArgs, fs.delete_needs, Outside(fs.delete, fs.target_state), fs.resolve,
            fs.describe_path,
        ),
        Entry("human.ask", human.AskArgs, human.ask_needs, Question(human.ask), reaches=True),
        Entry("human.tell", human.TellArgs, human.tell_needs, Outside(human.tell)),
        Entry(
            "human.answer", human.AnswerArgs, human.answer_needs, Change(human.answer, journaled=False),
            host_only=True,
        ),
        Entry(
            "model.call", model.CallArgs, model.call_needs, Read(model.call), describe=model.describe,
            cost=model.cost, used=model.used, audited=model.audited, keeps=("tokens",),
        ),
        Entry(
            "proc.spawn", proc.SpawnArgs, proc.spawn_needs, Change(proc.spawn), proc.resolve_spawn,
            proc.describe_spawn, reaches=True, cost=_spawning,
        ),
        Entry(
            "proc.fork", proc.ForkArgs, proc.fork_needs, Change(proc.fork), describe=proc.describe_fork,
            cost=_spawning,
        ),
        Entry("proc.exec", proc.ExecArgs, proc.exec_needs, Change(proc.exec_)),
        Entry("proc.wait", signal.WaitArgs, signal.wait_needs, Change(signal.wait)),
        Entry("proc.merge", signal.MergeArgs, signal.merge_needs, Change(signal.merge), signal.resolve_merge),
        Entry("proc.signal", signal.SignalArgs, signal.signal_needs, Change(signal.signal), reaches=True),
        Entry(
            "proc.exit", signal.ExitArgs, signal.exit_needs, Change(signal.exit_, journaled=False), signal.resolve_exit,
            cost=_free,
        ),
        Entry("proc.chdir", proc.ChdirArgs, proc.chdir_needs, Change(proc.chdir), proc.resolve_chdir),
        Entry("proc.list", proc.ListArgs, proc.list_needs, Read(proc.list_children)),
        Entry("msg.send", msg.SendArgs, msg.send_needs, Change(msg.send), reaches=True),
        Entry("msg.recv", msg.RecvArgs, msg.recv_needs, Change(msg.recv)),
        Entry("clock.now", clock.NowArgs, clock.now_needs, Read(clock.now)),
        Entry("clock.sleep", clock.SleepArgs, clock.sleep_needs, Change(clock.sleep)),
        Entry(
            "image.register", image.RegisterArgs, image.register_needs, Change(image.register),
            image.resolve_register, image.describe_register, reaches=True,
        ),
        Entry("image.list", image.ListArgs, image.list_needs, Read(image.list_images)),
        Entry("image.show", image.ShowArgs, image.show_needs, Read(image.show)),
        Entry("shell.run", shell.RunArgs, shell.needs, Outside(shell.run, shell.state), shell.resolve, shell.describe),
        Entry(
            "net.fetch", net.FetchArgs, net.needs, Outside(net.fetch, net.state), net.resolve, net.describe,
            cost=net.cost,
            used=net.used, audited=net.audited,
        ),
        Entry(
            "obj.create", obj.CreateArgs, obj.create_needs, Change(obj.create), obj.resolve, obj.describe,
            cost=obj.cost,
        ),
        Entry("obj.read", obj.ReadArgs, obj.read_needs, Read(obj.read), obj.resolve),
        Entry(
            "obj.write", obj.WriteArgs, obj.write_needs, Change(obj.write), obj.resolve, obj.describe, cost=obj.cost,
        ),
        Entry(
            "obj.append", obj.AppendArgs, obj.write_needs, Change(obj.write), obj.resolve, obj.describe,
            cost=obj.cost,
        ),
        Entry("obj.list", obj.ListArgs, obj.list_needs, Read(obj.list_objects), obj.resolve),
        Entry("obj.log", obj.LogArgs, obj.read_needs, Read(obj.log), obj.resolve),
        Entry("obj.link", obj.LinkArgs, obj.link_needs, Change(obj.link), obj.resolve),
        Entry("obj.delete", obj.DeleteArgs, obj.delete_needs, Change(obj.delete), obj.resolve),
        Entry(
            "obj.from_file", objfile.FromFileArgs, objfile.from_needs, Change(objfile.from_file), objfile.resolve,
            cost=objfile.cost, used=objfile.moved,
        ),
        Entry(
            "obj.to_file", objfile.ToFileArgs, objfile.to_needs, Outside(objfile.to_file, objfile.target),
            objfile.resolve, objfile.describe_to, cost=objfile.cost, used=objfile.moved,
        ),
        Entry("obj.share", ns.ShareArgs, ns.share_needs, Change(ns.share), ns.resolve_share, reaches=True),
        Entry("ns.create", ns.CreateArgs, ns.create_needs, Change(ns.create), ns.resolve_create, reaches=True),
        Entry("ckpt.create", ckpt.CreateArgs, ckpt.create_needs, Change(ckpt.create_checkpoint), ckpt.resolve_create),
        Entry("ckpt.list", ckpt.ListArgs, ckpt.list_needs, Read(ckpt.list_checkpoints)),
        Entry("ckpt.diff", ckpt.DiffArgs, ckpt.diff_needs, Read(ckpt.diff), ckpt.resolve),
        Entry("ckpt.restore", ckpt.RestoreArgs, ckpt.restore_needs, Change(ckpt.restore), ckpt.resolve, reaches=True),
        Entry(
            "ckpt.fork", ckpt.ForkArgs, ckpt.fork_needs, Change(ckpt.fork), ckpt.resolve, reaches=True,
            cost=ckpt.spawning,
        ),
        Entry("ckpt.commit", ckpt.CommitArgs, ckpt.commit_needs, Change(ckpt.commit), ckpt.resolve, reaches=True),
        Entry("tool.propose", tool.ProposeArgs, tool.propose_needs, Change(tool.propose), tool.resolve_named),
        Entry("tool.validate", tool.ValidateArgs, tool.validate_needs, Read(tool.validate), tool.resolve_named),
        Entry(
            "tool.register", tool.RegisterArgs, tool.register_needs,
            Change(tool.register, before=tool.check_registration), tool.resolve_register, tool.describe_register,
            reaches=True,
        ),
        Entry(
            "tool.unregister", tool.UnregisterArgs, tool.unregister_needs, Change(tool.unregister), tool.resolve_named,
            reaches=True,
        ),
        Entry("tool.list", tool.ListArgs, tool.list_needs, Read(tool.list_tools), tool.resolve_list),
        Entry(
            "tool.open", tool.OpenArgs, tool.open_needs, Read(tool.open_tool), tool.resolve_named, audited=tool.opened,
        ),
        Entry("tool.permit", tool.PermitArgs, tool.permit_needs, Read(tool.permit), tool.resolve_permit),
        Entry("cap.grant", cap.GrantArgs, cap.grant_needs, Change(cap.grant, journaled=False), host_only=True),
        Entry("cap.revoke", cap.RevokeArgs, cap.revoke_needs, Change(cap.revoke, journaled=False), host_only=True),
    )
}  # fmt: skip

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


async def dispatch(
    kernel: Kernel, subject: int, name: str, raw: dict[str, Any], site: Site | None = None, *, via: str | None = None
) -> Any:
    """Perform syscall ``name`` with arguments ``raw`` as process ``subject`` (0: the host).

    ``via`` says which of the host's front ends made a host call (e.g. "console"); its audit
    record names it. It is the host's word, never an argument: a process cannot set it.

    ``site`` is where the call stands inside the process's pending action (None outside one):
    there its outside effects and store changes are journaled, and a re-dispatch answers
    from the journal. Returns the syscall's result, or Parked when the process now waits
    (nothing performed). Raises Denied, Invalid, NotFound, ... (each audited) when the call
    is refused or fails.
    """
    kernel.refresh()
    if via is not None and subject != HOST:
        raise ValueError("only the host's calls carry which front end made them")
    call = _Call(kernel, subject, name, raw, site)
    call.via = via
    entry, p = call.prepare()
    if entry.journaled and site is not None and site.replay:
        replayed = call.replay(entry, p)
        if replayed is not None:
            return replayed[0]
    call.charge(entry)
    decision = call.decide(entry, p)
    if decision.effect is Effect.ASK:
        return call.ask(entry, p, decision)
    return await call.perform(entry, p, decision)


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


_ALLOWED = caps.Decision(Effect.ALLOW, None, ())


class _Call:
    """The bookkeeping of one dispatch: its digest, its audit record and journal entries.

    ``_record`` is the one place a call's audit record is written.
    """

    def __init__(self, kernel: Kernel, subject: int, name: str, raw: dict[str, Any], site: Site | None) -> None:
        self.kernel = kernel
        self.subject = subject
        self.name = name
        self.raw = raw
        self.site = site
        self.via: str | None = None  # the host's front end that made it, for the audit
        self.entry: Entry[Any, Any] | None = None  # set once looked up
        self.args: Any = None
        self.resource = ""  # set from the needs once resolved, or guessed when resolution fails
        self.right = "-"
        self.named: dict[str, str] = {}  # a resolved fs resource -> the path as the process wrote it
        self.needs: tuple[Need, ...] = ()
        self.retry: int | None = None  # the recovery request whose approval re-runs a lost effect
        self.note = ""  # why this call asks again
        self._digest: str | None = None
        self._charged: tuple[list[Process], dict[str, int]] | None = None

    # -- before the decision ----------------------------------------------------------

    def prepare(self) -> tuple[Entry[Any, Any], Process]:
        """Look up the entry, decode and resolve the arguments; audit and raise on failure."""
        entry = self.entry = TABLE.get(self.name)
        p = _HOST_PROC
        try:
            if entry is None:
                raise NotFound(f"no syscall {self.name!r}; known: {', '.join(sorted(TABLE))}")
            p = _HOST_PROC if self.subject == HOST else self.kernel.proc(self.subject)
            if p.state is ProcState.EXITED:
                raise Denied(f"process {self.subject} has exited; it can make no more calls")
            if p.state is ProcState.PAUSED:
                raise Denied(f"process {self.subject} is paused; it makes no calls until resumed ('alos resume PID')")
            # model.call's arguments are the agent loop's, made from JSON (which never holds a lone
            # surrogate), and grow with the context: walking them each turn would cost O(context)
            bad = None if self.name == "model.call" else codec.unencodable(self.raw)
            if bad is not None:
                self.raw = {}  # what the audit keeps of them: they cannot be written as text
                raise BadArguments(
                    f"{self.name}: an argument is not valid Unicode text (a lone surrogate in "
                    f"{bad[:40].encode('utf-8', 'backslashreplace').decode()!r}); pass UTF-8 text"
                )
            try:
                args: Any = msgspec.convert(self.raw, entry.args)
            except msgspec.ValidationError as err:
                raise BadArguments(f"{self.name}: {err}") from None
            if entry.resolve is not None:
                args = entry.resolve(self.kernel, p, args)
        except AlosError as err:
            self.resource = _guess(self.name, self.raw, p.cwd)
            raise self.refused(err) from None
        self.args = args
        needs = entry.needs(p, args)
        self.needs = needs
        self.resource = needs[0].resource if needs else f"proc:{self.subject}"
        self.right = needs[0].right.value if needs else "-"
        # what a refusal names: each path as the process wrote it, so that a denial never tells
        # a process where a symlink it may not follow points (the audit keeps the real one)
        self.named = _written(self.raw, args, p.cwd)
        return entry, p

    def replay(self, entry: Entry[Any, Any], p: Process) -> tuple[Any] | None:
        """Answer a re-dispatched call from the journal; None when it has not run (or a human
        approved running a lost one again). Raises what the journaled call raised."""
        assert self.site is not None
        found = actions.journaled(self.kernel, self.subject, self.site)
        if found is None:
            return None
        syscall, dig, state, result, carried = found
        if syscall != self.name or dig != self.digest():
            raise self.refused(
                Diverged(
                    f"re-dispatch of process {self.subject}'s action made {self.name} where the journal "
                    f"has {syscall} with other arguments; the tool is not deterministic"
                )
            )
        if state != "done":
            return self._recover(entry, p, carried)
        if "error" in result:
            code, message = result["error"]
            raise self.refused(_rebuild(code, message))
        return (result["ok"],)

    def charge(self, entry: Entry[Any, Any]) -> None:
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
            raise self.refused(err) from None
        kernel.ledger.charge(chain, cost)
        self._charged = (chain, cost)

    def refund(self, keep: tuple[str, ...] = ()) -> None:
        """Give back the charge of a call that parked (it is charged again when carried out), or,
        keeping the ``keep`` budgets, of one that was refused or failed (nothing was written or made)."""
        if self._charged is not None:
            chain, cost = self._charged
            self.kernel.ledger.charge(chain, {k: -v for k, v in cost.items() if k not in keep})
            self._charged = None

    # -- the decision -----------------------------------------------------------------

    def decide(self, entry: Entry[Any, Any], p: Process) -> caps.Decision:
        """Return allow or ask for this call; audit and raise Denied for a deny (deny dominates)."""
        if self.subject == HOST:
            return _ALLOWED
        if entry.host_only:
            raise self.refused(
                Denied(f"only the host may call {self.name}; a process can ask for authority, never issue it")
            )
        if p.mode is Fork.SPECULATIVE and (isinstance(entry.effect, Outside) or entry.reaches):
            raise self.refused(
                Denied(
                    f"process {self.subject} is speculative: it makes no outside effects ({self.name}); "
                    "its parent takes its result with proc_merge"
                )
            )
        beyond = _beyond_own(p, self.needs) if p.mode is Fork.SPECULATIVE else None
        if beyond is not None:
            raise self.refused(
                Denied(
                    f"process {self.subject} is speculative: it changes nothing outside its own namespace, not "
                    f"{self.show(beyond)}; its parent takes what it wrote with proc_merge"
                )
            )
        kernel = self.kernel
        if not self.needs:  # a call that needs nothing (exit, recv, wait for any child)
            return _ALLOWED
        held = kernel.caps_on(self.subject, frozenset(kind(n.resource) for n in self.needs))
        decision = caps.decide(held, self.needs, self.digest, kernel.clock.now())
        if decision.effect is Effect.DENY:
            raise self.refused(Denied(_denial(self.subject, decision, kernel, self.show)), decision)
        for need in self.needs:  # the store is unreachable whatever the grants say (and never asked about)
            if kind(need.resource) == "fs" and kernel.files.hidden(need.resource[3:]):
                raise self.refused(
                    Denied(f"{self.show(need.resource)} is inside alos's store directory; no process may reach it")
                )
        if decision.effect is Effect.ASK and p.mode is Fork.SPECULATIVE:
            raise self.refused(
                Denied(f"process {self.subject} is speculative: it may not ask a human ({self.name} needs approval)"),
                decision,
            )
        if self.retry is not None:  # a human's recovery answer stands in for ask, never for deny
            return _ALLOWED
        effect = entry.effect
        if decision.effect is Effect.ALLOW and isinstance(effect, Outside) and effect.state is not None:
            return self._still_as_approved(effect.state, p, decision)
        return decision

    def _still_as_approved(
        self, state: Callable[[Kernel, Process, Any], str], p: Process, decision: caps.Decision
    ) -> caps.Decision:
        """Return ``decision``, or ask again if a one-shot approval in it was given for a target
        that has changed since (the human approved that diff, not this one); the grant is spent."""
        kernel = self.kernel
        for grant in decision.caps:
            if grant.digest is None or grant.request is None:
                continue
            req = rows.load_request(kernel.store.conn, grant.request)
            approved = req.detail.get("state") if req is not None else None
            now = state(kernel, p, self.args)
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

    # -- asking a person --------------------------------------------------------------

    def ask(self, entry: Entry[Any, Any], p: Process, decision: caps.Decision) -> Parked:
        """Record an approval request showing exactly what would happen, and park."""
        self.refund()
        if self.site is not None:  # dispatched again while its request still waits: the same request
            waiting = approval.at(self.kernel, self.subject, self.site, RequestKind.APPROVAL)
            if waiting is not None and waiting.state is RequestState.PENDING and waiting.digest == self.digest():
                with self.kernel.transaction() as tx:
                    approval.park_on(self.kernel, tx, p)
                return Parked(p.pid, Wait.HUMAN, waiting.id)
        shown = self._shown(entry, p)
        effect = entry.effect
        if isinstance(effect, Outside) and effect.state is not None:
            shown["state"] = effect.state(self.kernel, p, self.args)
        if self.note:
            shown["note"] = self.note
        need = decision.need
        assert need is not None
        try:
            return self._file(p, RequestKind.APPROVAL, need.resource, need.right.value, shown, "ask", {})
        except AlosError as err:  # its turn was not recorded: nothing is asked
            raise self.failed("ask", err, [], journal=False) from None

    def _shown(self, entry: Entry[Any, Any], p: Process) -> dict[str, Any]:
        """Return what a person deciding about this call sees: the call whole, or as its entry describes it."""
        if entry.describe is not None:
            return entry.describe(self.kernel, p, self.args)
        value = msgspec.to_builtins(self.args)
        return value if isinstance(value, dict) else {"arguments": value}

    def _file(
        self,
        p: Process,
        kind_: RequestKind,
        resource: str,
        right: str,
        shown: dict[str, Any],
        label: str,
        extra: dict[str, Any],
    ) -> Parked:
        """File a human request showing ``shown``, park on it and audit it, in one transaction."""
        with self.kernel.transaction() as tx:
            if self.site is not None:
                actions.recorded(tx, self.subject, self.site)
            req = approval.request(
                self.kernel, tx, p, kind_, self.site, self.name, resource, right, self.digest(),
                {"syscall": self.name, **shown},
            )  # fmt: skip
            self._record(label, "parked", {"request": req.id, **extra}, tx=tx)
        return Parked(p.pid, Wait.HUMAN, req.id)

    def _recover(self, entry: Entry[Any, Any], p: Process, carried: int | None) -> tuple[Any] | None:
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
            raise self.refused(
                Conflict(
                    f"{self.name} on {self.resource} may or may not have happened before the host stopped; "
                    f"{req.answered_by} chose not to retry it: {req.answer or 'no reason given'}"
                )
            )
        if req is not None:
            return (Parked(p.pid, Wait.HUMAN, req.id),)
        note = (
            "the host stopped after this effect began and before its outcome was recorded; "
            "it may or may not have happened"
        )
        return (self._recovery(entry, p, note, "ask", {}),)

    def _recovery(self, entry: Entry[Any, Any], p: Process, note: str, label: str, extra: dict[str, Any]) -> Parked:
        """File a recovery request that shows the call whole with ``note``, park on it and audit it."""
        shown = {"note": note, **self._shown(entry, p)}
        return self._file(p, RequestKind.RECOVERY, self.resource, self.right, shown, label, {"recovery": True, **extra})

    # -- the effect ---------------------------------------------------------------------

    async def perform(self, entry: Entry[Any, Any], p: Process, decision: caps.Decision) -> Any:
        """Run the allowed effect and commit its outcome with its audit record."""
        label = "approved" if self.retry is not None else _label(decision)
        spent = [c for c in decision.caps if c.uses is not None]
        effect = entry.effect
        if isinstance(effect, Change) and effect.before is not None:
            try:
                self.args = await effect.before(self.kernel, p, self.args)
            except AlosError as err:
                raise self.failed(label, err, spent) from None
        if isinstance(effect, (Change, Question)):
            return self._change(effect, entry.journaled, p, label, spent)
        kernel = self.kernel
        site = self.site if isinstance(effect, Outside) else None
        if site is not None:  # journaled: intent (and the grant) committed before the effect
            try:
                actions.intend(kernel, self.subject, site, self.name, self.digest(), spent, self.retry)
            except AlosError as err:  # the turn was not recorded: nothing ran, nothing to journal
                raise self.failed(label, err, spent, journal=False) from None
            spent = []
        try:
            result = await effect.run(kernel, p, self.args)
        except ProviderDown as err:
            if site is not None:  # a journaled effect that did not happen: its outcome says so
                raise self.failed(label, err, spent) from None
            return self.stall(entry, p, label, err)
        except AlosError as err:
            raise self.failed(label, err, spent) from None
        if entry.used is not None and self._charged is not None:
            kernel.ledger.charge(self._charged[0], entry.used(self.args, result))
        extra = entry.audited(self.args, result) if entry.audited is not None else None
        self._record(label, "ok", extra, spent=spent, journal={"ok": result} if site is not None else None)
        return result

    def _change(
        self,
        effect: Change[Any, Any] | Question[Any, Any],
        journaled: bool,
        p: Process,
        label: str,
        spent: list[Capability],
    ) -> Any:
        """Make a change inside the store in the transaction that audits it (and journals its result)."""
        kernel = self.kernel
        try:
            with kernel.transaction() as tx:
                if journaled and self.site is not None:
                    actions.recorded(tx, self.subject, self.site)
                if isinstance(effect, Question):
                    result = effect.apply(kernel, tx, p, self.args, self.site)
                else:
                    result = effect.apply(kernel, tx, p, self.args)
                if isinstance(result, Parked):
                    self.refund()
                elif journaled and self.site is not None:
                    actions.record_result(tx, self.subject, self.site, self.name, self.digest(), result)
                self._record(label, "parked" if isinstance(result, Parked) else "ok", tx=tx, spent=spent)
        except AlosError as err:
            raise self.failed(label, err, spent) from None
        used = self.entry.used if self.entry is not None else None
        if used is not None and self._charged is not None and not isinstance(result, Parked):
            kernel.ledger.charge(self._charged[0], used(self.args, result))  # what it moved, once it is done
        return result

    def stall(self, entry: Entry[Any, Any], p: Process, label: str, err: ProviderDown) -> Parked:
        """The provider cannot serve the call now: park on a recovery request that says why (its
        audit record in the same transaction). A person puts it right and approves a retry, or
        denies, and then the call fails with their reason. Raises Unavailable after a denial."""
        kernel = self.kernel
        last = approval.at(kernel, self.subject, self.site or _NOWHERE, RequestKind.RECOVERY)
        if last is not None and last.syscall == self.name and last.state is RequestState.REJECTED:
            refused = Unavailable(
                f"{err.message}; {last.answered_by} chose not to try again: {last.answer or 'no reason given'}"
            )
            raise self.failed(label, refused, [])  # counted, like every call that failed
        self.refund()  # a parked call is charged when it is carried out
        if last is not None and last.syscall == self.name and last.state is RequestState.PENDING:
            with kernel.transaction() as tx:
                approval.park_on(kernel, tx, p)
            return Parked(p.pid, Wait.HUMAN, last.id)
        note = f"{err.message}. Put it right and approve to try again; deny to end the call"
        return self._recovery(entry, p, note, label, {"error": err.message})

    # -- the audit record ---------------------------------------------------------------

    def refused(self, err: AlosError, decision: caps.Decision | None = None) -> AlosError:
        """Audit a call refused before its effect ran (it still counts as a call); return ``err``."""
        self.refund(keep=_COUNTED)
        # refused before any authority decision (bad arguments, a budget, no such syscall): "-"
        label = _label(decision) if decision is not None else "deny" if isinstance(err, Denied) else "-"
        # a human's one-shot deny is used up by the call it refused
        spent = [c for c in decision.caps if c.request is not None] if decision is not None else []
        self._record(label, err.code, {"error": err.message}, spent=spent)
        return err

    def failed(self, label: str, err: AlosError, spent: Sequence[Capability], journal: bool = True) -> AlosError:
        """Audit an allowed call whose effect failed (journaling the failure of an outside effect
        inside an action, unless ``journal`` is false: no intent was recorded); return ``err``."""
        self.refund(keep=_COUNTED + (self.entry.keeps if self.entry is not None else ()))
        outcome = {"error": [err.code, err.message]}
        outside = self.entry is not None and isinstance(self.entry.effect, Outside)
        journaled = journal and self.site is not None and outside
        self._record(label, err.code, {"error": err.message}, spent=spent, journal=outcome if journaled else None)
        return err

    def _record(
        self,
        label: str,
        outcome: str,
        extra: dict[str, Any] | None = None,
        *,
        tx: Tx | None = None,
        spent: Sequence[Capability] = (),
        journal: dict[str, Any] | None = None,
    ) -> None:
        """THE writer of this call's audit record, with the one-shot grants it spent and the
        journal outcome of its effect: into ``tx`` when given; at once when it spent a grant or
        is an outside call made outside any action, allowed or not (both must be durable before
        anything else); else with the host's next transaction (group commit, see Kernel)."""
        kernel, subject, site = self.kernel, self.subject, self.site
        detail = self.summary()
        if extra:
            detail.update(extra)
        detail.pop("via", None)  # the host's word alone: arguments that failed to decode are copied raw
        if self.via is not None:
            detail["via"] = self.via
        when = tx.now if tx is not None else kernel.clock.now()
        record = Deferred(when, subject, self.name, self.resource, self.right, label, outcome, detail)

        def write(tx: Tx) -> None:
            if journal is not None:
                assert site is not None
                actions.record_done(tx, subject, site, journal)
            if spent:
                caps.spend(tx.conn, spent)
                tx.on_commit.append(lambda: kernel.forget_caps(subject))
            kernel.audit(tx, record)

        if tx is not None:
            write(tx)
        elif spent or (site is None and self.entry is not None and isinstance(self.entry.effect, Outside)):
            with kernel.transaction() as now:
                write(now)
        else:
            kernel.defer(write)

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
            # a plan (the call's arguments and what resolving them found): its arguments first
            inner = [(k, v) for k, v in items if hasattr(v, "__dataclass_fields__")]
            items = [(f, getattr(v, f)) for _, v in inner for f in v.__dataclass_fields__] + [
                (k, v) for k, v in items if not hasattr(v, "__dataclass_fields__")
            ]
        elif isinstance(self.raw, dict):
            items = list(self.raw.items())
        else:
            return {"args": "<not an object>"}
        for key, value in items:
            if key == "value" and self.name.startswith("obj."):  # an object's payload: its size only
                out[key] = f"<{len(codec.dumps(value))} bytes of JSON>"
            elif isinstance(value, str):
                out[key] = value if len(value) <= 120 else f"<{len(value)} chars>"
            elif isinstance(value, (int, float, bool)) or value is None:
                out[key] = value
            else:
                out[key] = f"<{len(value) if hasattr(value, '__len__') else '?'} items>"
        if self._digest is not None:
            out["digest"] = self._digest
        return out


_CHANGES = frozenset({Right.WRITE, Right.DELETE, Right.ADMIN})


def _beyond_own(p: Process, needs: Sequence[Need]) -> str | None:
    """Return the first object or namespace outside ``p``'s own namespace that a call would change,
    or another process it would act on (signal), or None."""
    own = f"proc/{p.pid}"
    for need in needs:
        mine = need.resource == f"ns:{own}" or need.resource.startswith(f"obj:{own}/")
        if need.right in _CHANGES and kind(need.resource) in ("obj", "ns") and not mine:
            return need.resource
        if need.right is Right.SIGNAL:
            return need.resource
    return None


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
    if name == "tool.permit" and isinstance(raw, dict):  # a host API a JIT tool reached for
        return f"tool:permit/{codec.escape(str(raw.get('permission'))[:40])}"
    if family == "tool" and isinstance(raw, dict) and isinstance(raw.get("name"), str):
        table = raw.get("table") if isinstance(raw.get("table"), str) and raw.get("table") else "?"
        return f"tool:{codec.escape(str(table)[:80])}/{codec.escape(raw['name'][:80])}"
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
        if prefix or field in ("path", "cwd", "file", "save_to"):
            out["fs:" + now[len(prefix) :]] = "fs:" + _by_name(cwd, given[len(prefix) :])
    return out


def _rebuild(code: str, message: str) -> AlosError:
    """Return the error a journaled failure ``code`` stands for, with its ``message``."""
    for cls in AlosError.__subclasses__():
        if cls.code == code:
            return cls(message)
    return AlosError(message)


__all__ = ["TABLE", "Change", "Entry", "Outside", "Question", "Read", "dispatch", "refuse"]
