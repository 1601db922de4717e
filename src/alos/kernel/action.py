"""Pending actions, the syscall journal and the process's context.

A pending action is the model turn being carried out: its tool calls and how many are done.
It is written before the first call is dispatched and cleared, with the last result, in one
transaction, so a host that dies mid-turn resumes the same calls without asking the model again.
The journal records outside effects inside an action (intent, then outcome) so that a
re-dispatch answers completed ones from it and never repeats them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from alos import caps, limits
from alos.errors import Conflict
from alos.kernel import images
from alos.kernel.kernel import Kernel, Site, Tx
from alos.rights import Capability
from alos.store import objrows, rows
from alos.types import SHOWN_KINDS, Fork, ModelTurn, Pid, Process, ToolCall


@dataclass(frozen=True, slots=True)
class Action:
    id: int
    calls: tuple[ToolCall, ...]
    next: int  # index of the first call not yet done


def _call_row(c: ToolCall) -> dict[str, Any]:
    return {"id": c.id, "name": c.name, "arguments": c.arguments}


def pending(kernel: Kernel, pid: Pid) -> Action | None:
    """Return ``pid``'s pending action, or None when it has none."""
    row = rows.load_action(kernel.store.conn, pid)
    if row is None:
        return None
    action, calls, nxt = row
    return Action(action, tuple(ToolCall(c["id"], c["name"], c["arguments"]) for c in calls), nxt)


def context(kernel: Kernel, pid: Pid) -> list[dict[str, Any]]:
    """Return ``pid``'s context messages (cached; the list is shared, do not mutate it)."""
    msgs = kernel.contexts.get(pid)
    if msgs is None:
        if len(kernel.contexts) >= limits.CONTEXTS_CACHED:  # memory stays flat with thousands of processes
            del kernel.contexts[next(iter(kernel.contexts))]
        msgs = kernel.contexts[pid] = rows.load_context(kernel.store.conn, pid)
    return msgs


def _append(kernel: Kernel, tx: Tx, pid: Pid, role: str, body: dict[str, Any]) -> None:
    """Append ``body`` to ``pid``'s context inside ``tx``; the cache learns it once it commits."""
    seq = rows.append_context(tx.conn, pid, role, body)

    def learn() -> None:
        msgs = kernel.contexts.get(pid)
        if msgs is not None and len(msgs) == seq:
            msgs.append(body)
        elif msgs is not None:  # read back while the transaction was open: read it again
            del kernel.contexts[pid]

    tx.on_commit.append(learn)


def seed(kernel: Kernel, tx: Tx, proc: Process, inherit: Sequence[dict[str, Any]] = ()) -> None:
    """Write the first messages of a new process's context: who it is, what it inherits, its goal.

    A fork inherits its parent's context up to the last complete turn (the turn that forked is
    still open: its calls have no results yet).
    """
    kernel.contexts[proc.pid] = []
    prompt = str(images.body(kernel, proc.image).get("prompt") or "").strip()
    system = (f"{prompt}\n\n" if prompt else "") + (
        f"You are alos process {proc.pid} ({proc.name}), image {proc.image}. "
        f"Your working directory is {proc.cwd}. Use the tools; a denied call names the missing right."
    )
    _append(kernel, tx, proc.pid, "system", {"role": "system", "content": system})
    for msg in complete(inherit)[1:]:
        _append(kernel, tx, proc.pid, str(msg.get("role", "user")), msg)
    if inherit:
        note = f"You are a {proc.mode} fork of process {proc.parent}; the conversation above is its context. "
        if proc.mode is Fork.SPECULATIVE:
            note += "You may make no outside effects; your parent takes your result with proc_merge. "
        _append(kernel, tx, proc.pid, "user", {"role": "user", "content": note + "Your goal: " + proc.goal})
    else:
        _append(kernel, tx, proc.pid, "user", {"role": "user", "content": proc.goal})


def complete(msgs: Sequence[dict[str, Any]]) -> Sequence[dict[str, Any]]:
    """Return ``msgs`` cut before an assistant turn whose tool calls do not all have results."""
    cut = len(msgs)
    open_at, owed = -1, 0
    for i, msg in enumerate(msgs):
        if msg.get("role") == "assistant" and msg.get("tool_calls"):
            open_at, owed = i, len(msg["tool_calls"])
        elif msg.get("role") == "tool" and owed:
            owed -= 1
    if owed:
        cut = open_at
    return msgs[:cut]


def count_turn(kernel: Kernel, pid: Pid) -> None:
    """Count a model turn that is not an action (a compaction's summary): turns number the
    process's model calls, so a scripted model answers each from its own line."""
    proc = kernel.proc(pid)
    new = proc.changed(turns=proc.turns + 1, updated=kernel.clock.now())
    with kernel.transaction() as tx:
        if not rows.update_process(tx.conn, pid, proc.state, {"turns": new.turns, "updated": new.updated}):
            raise Conflict(f"process {pid} was changed by another connection")
        tx.on_commit.append(lambda: kernel.remember(new))


def compact(kernel: Kernel, pid: Pid, keep: int, drop: int, summary: dict[str, Any]) -> None:
    """Rewrite ``pid``'s context in one transaction: its first ``keep`` messages, ``summary`` in
    place of the ``drop`` after them, then the rest (compaction.py)."""
    msgs = context(kernel, pid)
    new = [*msgs[:keep], summary, *msgs[keep + drop :]]
    with kernel.transaction() as tx:
        objrows.replace_context(tx.conn, pid, new)
        tx.event(pid, "compact", {"dropped": drop, "kept": len(new)})
    kernel.contexts[pid] = new


def closed(msgs: Sequence[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """Return ``msgs`` with a result ``text`` for each tool call of the last turn that has none
    (a turn in progress when a checkpoint was taken: the calls it made stay in view)."""
    out = list(msgs)
    for i in range(len(out) - 1, -1, -1):
        msg = out[i]
        if msg.get("role") == "assistant":
            answered = {m.get("tool_call_id") for m in out[i + 1 :] if m.get("role") == "tool"}
            for call in msg.get("tool_calls") or ():
                if call.get("id") not in answered:
                    answer = {"role": "tool", "tool_call_id": call.get("id"), "name": call.get("name"), "content": text}
                    out.append(answer)
            break
    return out


def reset(kernel: Kernel, tx: Tx, proc: Process, image: str, goal: str) -> Process:
    """Give ``proc`` a new image and a fresh context with ``goal``, dropping its pending action (exec)."""
    rows.clear_context(tx.conn, proc.pid)
    rows.clear_action(tx.conn, proc.pid)
    changes = {"image": image, "goal": goal, "epoch": proc.epoch + 1, "updated": tx.now}
    new = proc.changed(**changes)
    if not rows.update_process(tx.conn, proc.pid, proc.state, changes):
        raise Conflict(f"process {proc.pid} was changed by another connection")
    seed(kernel, tx, new)
    tx.on_commit.append(lambda: kernel.remember(new))
    return new


_SHOWN_AS = {"interrupt": "interrupt from process {sender}", "human": "message from a person", "term": "term"}


def deliver(kernel: Kernel, pid: Pid) -> int:
    """Put the interrupts and human messages waiting in ``pid``'s queue into its context, in one
    transaction with taking them; return how many. Called before a model call."""
    if pid in kernel.quiet:
        return 0
    queued = rows.queued_messages(kernel.store.conn, pid, SHOWN_KINDS, limits.MESSAGES_SHOWN)
    if not queued:
        kernel.quiet.add(pid)  # until a message is queued for it here, or another connection commits
        return 0
    with kernel.transaction() as tx:
        for msg in queued:
            head = _SHOWN_AS.get(msg.kind, msg.kind).format(sender=msg.sender)
            _append(kernel, tx, pid, "user", {"role": "user", "content": f"[{head}] {msg.body}"})
            rows.take_message(tx.conn, msg.id, tx.now)
        tx.publish(pid, "delivered", {"messages": [m.id for m in queued]})
    return len(queued)


def note(kernel: Kernel, pid: Pid, text: str, repair: int = 0) -> None:
    """Append a note from the runtime to ``pid``'s context (the model reads it next); ``repair``
    numbers a repair turn (the agent loop counts them by this field, never by any text)."""
    body: dict[str, Any] = {"role": "user", "content": text}
    if repair:
        body["repair"] = repair
    with kernel.transaction() as tx:
        _append(kernel, tx, pid, "user", body)


def start(kernel: Kernel, proc: Process, turn: ModelTurn, epoch: int | None = None) -> Action:
    """Make the model's turn and its tool calls the pending action; return it.

    The turn is written with the host's next transaction, which is at the latest the one that
    commits its first call's intent (an outside effect), its first change to the store, or its
    first result: until a call has done something, a host that dies loses only the model call,
    which the process makes again. So a step that reads commits once. If another connection
    moved the process meanwhile (a kill from another terminal), or exec'd or restored it since
    ``epoch`` (when the model was asked), the turn is not written and
    that move stands, and no call of the turn is carried out (``recorded`` refuses them).
    A turn without calls is committed at once: the next model call, the process's last words
    and a fork read it.
    """
    action = Action(proc.turns, turn.tool_calls, 0)
    calls = [_call_row(c) for c in turn.tool_calls]
    body: dict[str, Any] = {"role": "assistant", "content": turn.content}
    if calls:
        body["tool_calls"] = calls
    new = proc.changed(turns=proc.turns + 1, updated=kernel.clock.now())
    kernel.remember(new)

    def write(tx: Tx) -> None:
        changes = {"turns": new.turns, "updated": new.updated}
        if not rows.update_process(tx.conn, proc.pid, proc.state, changes, proc.epoch if epoch is None else epoch):
            kernel.forget_process(proc.pid)
            return
        _append(kernel, tx, proc.pid, "assistant", body)
        if calls:
            rows.save_action(tx.conn, proc.pid, action.id, calls, 0)
        # the context row holds this fact; listeners hear of it without a second row
        tx.publish(proc.pid, "turn", {"content": turn.content, "calls": calls})

    kernel.defer(write)
    if not calls:
        kernel.flush()
    return action


def recorded(tx: Tx, pid: Pid, site: Site) -> None:
    """Raise Conflict, inside ``tx``, unless the turn that holds ``site`` is ``pid``'s pending
    action: a call is journaled, or parks, only for a turn the store holds, so a turn dropped
    because another connection moved the process (start) makes no effect."""
    if not rows.action_pending(tx.conn, pid, site.action):
        raise Conflict(
            f"process {pid}'s turn was not recorded (another connection moved the process during its model "
            "call); the call was not made and the model will be asked again"
        )


def finish_call(kernel: Kernel, pid: Pid, action: Action, index: int, text: str, ok: bool, repair: int = 0) -> None:
    """Append tool call ``index``'s result to the context and move the action on, in one transaction.

    ``repair`` numbers a malformed call's repair turn (see ``note``). After the last call the
    pending action and its journal are cleared in the same transaction.
    """
    call = action.calls[index]
    body: dict[str, Any] = {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": text}
    if repair:
        body["repair"] = repair
    with kernel.transaction() as tx:
        _append(kernel, tx, pid, "tool", body)
        if index + 1 >= len(action.calls):
            rows.clear_action(tx.conn, pid)
        else:
            rows.advance_action(tx.conn, pid, index + 1)
        tx.publish(pid, "result", {"call": call.id, "name": call.name, "ok": ok, "text": text})


# -- the syscall journal ---------------------------------------------------------------


def journaled(kernel: Kernel, pid: Pid, site: Site) -> tuple[str, str, str, Any, int | None] | None:
    """Return (syscall, digest, state, result, recovery request) journaled at ``site``, or None."""
    return rows.journal_entry(kernel.store.conn, pid, site.action, site.call, site.step)


def seen(kernel: Kernel, pid: Pid, site: Site) -> tuple[str, str] | None:
    """Return (syscall, digest) of the call made at ``site`` before (journaled or traced), or None."""
    found = rows.journal_entry(kernel.store.conn, pid, site.action, site.call, site.step)
    return (found[0], found[1]) if found is not None else None


def trace(kernel: Kernel, pid: Pid, site: Site, syscall: str, digest: str) -> None:
    """Record, with the host's next transaction, that a JIT tool made ``syscall`` at ``site``
    (a call that changes nothing is not journaled, yet a re-run must make it at the same step)."""
    kernel.defer(lambda tx: rows.journal_seen(tx.conn, pid, site.action, site.call, site.step, syscall, digest))


def intend(
    kernel: Kernel,
    pid: Pid,
    site: Site,
    syscall: str,
    digest: str,
    spent: Sequence[Capability],
    recovery: int | None = None,
) -> None:
    """Commit the intent of an outside effect at ``site`` before it runs, spending the counted
    capabilities that allowed it: a grant is used up by the attempt, whatever becomes of it.
    Raises Conflict when the turn was not recorded (``recorded``)."""
    with kernel.transaction() as tx:
        recorded(tx, pid, site)
        rows.journal_intent(tx.conn, pid, site.action, site.call, site.step, syscall, digest, recovery)
        caps.spend(tx.conn, spent)
        if spent:
            tx.on_commit.append(lambda: kernel.forget_caps(pid))


def record_done(tx: Tx, pid: Pid, site: Site, result: Any) -> None:
    """Record, inside ``tx``, that the effect at ``site`` completed with ``result``."""
    rows.journal_done(tx.conn, pid, site.action, site.call, site.step, result)


def record_result(tx: Tx, pid: Pid, site: Site, syscall: str, digest: str, result: Any) -> None:
    """Journal, inside ``tx``, the result of a change to the store made at ``site``, so that a
    re-dispatch of the action returns it instead of making the change again."""
    rows.journal_result(tx.conn, pid, site.action, site.call, site.step, syscall, digest, {"ok": result})
