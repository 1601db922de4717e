"""Checkpoints: take one, tell what changed since, restore a process to one, fork from one.

A checkpoint is a manifest (ARCHITECTURE.md section 7): the process record, the ids of its
live capabilities, its pending action, its queue cursor and the namespaces it owns, with
the context messages new since its previous checkpoint. The object versions it holds are
not copied: versions are never changed or deleted, so the newest version seq when it was
taken (its mark) names them. Taking one costs in proportion to what changed since the last.

Restoring never adds authority: allows issued since the checkpoint are dropped (not the rights
on children made since), nothing revoked or spent is brought back, denies and asks stay. It
rolls back the objects of the namespaces the process owns (each write decided by dispatch(),
from the plan ``rollback`` makes), its context (a turn in progress stays in view with the
results it had; nothing of it is re-run), its queue and its record; outside effects recorded
since are listed, not undone, and effects in doubt are listed as such.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from alos import caps, limits
from alos.errors import Conflict, Denied, Invalid
from alos.kernel import action as actions
from alos.kernel import objects as om
from alos.kernel.kernel import Kernel, Tx
from alos.kernel.proc import OWN, transition
from alos.rights import Effect
from alos.store import objrows, rows, toolrows
from alos.store.objrows import Checkpoint
from alos.types import Pid, Process, ProcState

# syscalls whose effect reaches outside the process's own state: a restore lists those made
# after the checkpoint (a test keeps this in step with the syscall table)
OUTSIDE = (
    "fs.write", "fs.mkdir", "fs.delete", "shell.run", "net.fetch", "human.tell", "human.ask", "msg.send",
    "proc.signal", "proc.spawn", "proc.fork", "image.register", "obj.to_file", "obj.share", "ckpt.fork",
    "ckpt.commit", "ckpt.restore", "ckpt.create", "ns.create", "tool.register", "tool.unregister",
)  # fmt: skip
# object changes outside the namespaces a restore rolls back are listed too
OBJECT_CHANGES = ("obj.create", "obj.write", "obj.append", "obj.delete", "obj.link", "obj.from_file")
KEPT = ("name", "image", "model", "cwd", "goal", "priority", "state", "wait", "exit", "result", "epoch", "turns")


def take(kernel: Kernel, tx: Tx, pid: Pid, taker: Pid, label: str | None, parent: int | None = None) -> Checkpoint:
    """Take a checkpoint of process ``pid`` inside ``tx``; return it."""
    proc = rows.load_process(tx.conn, pid)
    if proc is None:
        raise Invalid(f"no process {pid}")
    if label is not None and len(label) > limits.CKPT_LABEL_MAX_CHARS:
        raise Invalid(f"a checkpoint label is at most {limits.CKPT_LABEL_MAX_CHARS} characters")
    conn = tx.conn
    prev = objrows.last_checkpoint(conn, pid)
    gen, length = objrows.context_generation(conn, pid), objrows.context_length(conn, pid)
    # the context only grows between rewrites: keep only what is new since the last checkpoint, and
    # all of it every CKPT_CONTEXT_CHAIN checkpoints, so that a restore reads a bounded chain
    depth = int(prev.body.get("depth", 0)) + 1 if prev is not None else 0
    grown = prev is not None and prev.ctxgen == gen and prev.ctxlen <= length
    first = prev.ctxlen if prev is not None and grown and depth < limits.CKPT_CONTEXT_CHAIN else 0
    pending = rows.load_action(conn, pid)
    newest, waiting = objrows.message_cursor(conn, pid)
    body: dict[str, Any] = {
        "process": {k: getattr(proc, k) for k in KEPT},
        "capabilities": [c.id for c in rows.capabilities_of(conn, pid)],
        "action": {"action": pending[0], "calls": pending[1], "next": pending[2]} if pending else None,
        "queue": {"newest": newest, "waiting": waiting},
        "namespaces": objrows.owned_namespaces(conn, pid),
        "tools": toolrows.manifest(conn, f"proc/{pid}"),  # its own JIT tool table, by digest
        "depth": depth if first else 0,  # checkpoints since the last that kept the whole context
    }
    c = Checkpoint(0, pid, label, prev.id if prev else None, parent, objrows.newest_seq(conn), rows.audit_head(conn)[0],
                   gen, length, first, body, tx.now, taker)  # fmt: skip
    cid = objrows.insert_checkpoint(conn, c)
    objrows.save_context(conn, cid, pid, first)
    tx.event(pid, "checkpoint", {"id": cid, "by": taker, "label": label})
    return dataclasses.replace(c, id=cid)


def descendants(conn: Any, pid: Pid) -> list[Process]:
    """Return the live descendants of ``pid``, parents before children."""
    out: list[Process] = []
    todo = [pid]
    while todo:
        for child in rows.children_of(conn, todo.pop(0)):
            if child.state is not ProcState.EXITED:
                out.append(child)
                todo.append(child.pid)
    return out


def context_at(conn: Any, c: Checkpoint) -> list[dict[str, Any]]:
    """Return the context messages checkpoint ``c`` holds, in order."""
    chain = [c]
    while chain[-1].ctxfrom > 0 and chain[-1].prev is not None:
        prev = objrows.load_checkpoint(conn, chain[-1].prev)
        if prev is None:
            break
        chain.append(prev)
    return objrows.checkpoint_context(conn, [x.id for x in reversed(chain)], c.ctxlen)


def effects_since(conn: Any, c: Checkpoint, pids: Sequence[Pid], skip: Sequence[str]) -> list[dict[str, Any]]:
    """Return the outside effects of ``pids`` recorded after ``c``: every OUTSIDE call carried
    out, and object changes outside the namespaces ``skip`` (a restore rolls those back)."""
    out = []
    for seq, when, pid, syscall, resource, _ in objrows.audit_after(conn, pids, c.audit, OUTSIDE + OBJECT_CHANGES):
        if syscall in OBJECT_CHANGES and any(resource.startswith((f"obj:{ns}/", f"ns:{ns}")) for ns in skip):
            continue
        if syscall == "ckpt.create" and resource == f"proc:{pid}":
            continue  # a checkpoint of itself changed nothing outside it
        if syscall in ("tool.register", "tool.unregister") and resource.startswith(f"tool:proc/{pid}/"):
            continue  # its own tool table: a restore sets it back
        out.append({"audit": seq, "time": when, "pid": pid, "syscall": syscall, "resource": resource})
    return out


def listed(effects: list[dict[str, Any]]) -> dict[str, Any]:
    """Return ``effects`` as a result lists them: at most CKPT_EFFECTS_MAX, counted past that, with
    the note that they were not undone."""
    shown = effects[: limits.CKPT_EFFECTS_MAX]
    out: dict[str, Any] = {"effects": shown}
    if len(effects) > len(shown):
        out["effects_more"] = len(effects) - len(shown)
    if effects:
        out["effects_note"] = (
            "these outside effects happened after the checkpoint; a restore does not undo them "
            "(files stay written, commands ran, messages were sent); one in doubt may or may not have happened"
        )
    return out


Rollback = tuple[tuple[str, str, str], ...]  # (namespace, name, "write" | "delete") a restore would make


def namespaces(conn: Any, c: Checkpoint) -> list[str]:
    """Return the namespaces a restore of ``c`` rolls back: those its process owned then or owns now."""
    return list(dict.fromkeys([*c.body["namespaces"], *objrows.owned_namespaces(conn, c.pid)]))


def rollback(conn: Any, c: Checkpoint) -> Rollback:
    """Return what restoring ``c`` would change in its namespaces: each object changed since is
    written back (a new version with the old payload) or deleted (made since). Costs what changed."""
    out: list[tuple[str, str, str]] = []
    for ns in namespaces(conn, c):
        for name in objrows.changed_since(conn, ns, c.mark):
            was = objrows.as_of(conn, ns, name, c.mark)
            head = objrows.head(conn, ns, name)
            assert head is not None
            if was is None or was.digest is None:
                if head.digest is not None:
                    out.append((ns, name, "delete"))
            elif head.digest != was.digest or head.type != was.type:
                out.append((ns, name, "write"))
    return tuple(out)


def restore(kernel: Kernel, tx: Tx, c: Checkpoint, by: Pid, plan: Rollback) -> dict[str, Any]:
    """Roll process ``c.pid`` back to checkpoint ``c`` inside ``tx``, its objects as ``plan`` (the
    rollback dispatch() decided) says; return what was done. Raises Conflict when the objects
    changed since the plan was made."""
    conn = tx.conn
    proc = rows.load_process(conn, c.pid)
    if proc is None or proc.state is ProcState.EXITED:
        raise Conflict(f"process {c.pid} has exited; ckpt_fork starts a new process from its checkpoint {c.id}")
    if rollback(conn, c) != plan:
        raise Conflict(f"process {c.pid}'s objects changed while the restore was decided; restore again")
    effects = effects_since(conn, c, [c.pid], namespaces(conn, c))
    effects += [{"syscall": s, "pid": c.pid, "in_doubt": True} for s in objrows.intents(conn, c.pid)]
    for ns, name, change in plan:
        if change == "delete":
            head = objrows.head(conn, ns, name)
            assert head is not None
            om.put(kernel, tx, ns, name, head.type, None, by)
        else:
            was = objrows.as_of(conn, ns, name, c.mark)
            assert was is not None
            om.copy(kernel, tx, was, ns, name, by)
    dropped = _drop_allows_since(kernel, tx, c)
    if "tools" in c.body:  # taken before JIT tools: the table is left as it is
        toolrows.set_table(conn, f"proc/{c.pid}", c.body["tools"])
    returned = objrows.untake_messages(conn, c.pid, c.body["queue"]["newest"], c.body["queue"]["waiting"])
    rows.clear_action(conn, c.pid)
    rows.cancel_requests_of(conn, c.pid, "restore", tx.now)
    msgs = actions.closed(context_at(conn, c), f"[no result: the process was restored to checkpoint {c.id}]")
    note = f"[restored to checkpoint {c.id}: your objects, context and queue are as they were then."
    if effects:
        note += f" {len(effects)} outside effect(s) since then were not undone: " + "; ".join(
            f"{e['syscall']} {e.get('resource', '(may or may not have happened)')}"
            for e in effects[: limits.CKPT_EFFECTS_NOTED]
        )
    objrows.replace_context(conn, c.pid, [*msgs, {"role": "user", "content": note + "]"}])
    was = c.body["process"]
    changes: dict[str, Any] = {"cwd": was["cwd"], "goal": was["goal"], "image": was["image"], "result": None,
                               "epoch": proc.epoch + 1, "wake": None, "updated": tx.now}  # fmt: skip
    if not rows.update_process(conn, c.pid, proc.state, changes):
        raise Conflict(f"process {c.pid} was changed by another connection; try again")
    now = proc.changed(**changes)
    if now.state is ProcState.WAITING:
        now = transition(kernel, tx, now, ProcState.RUNNABLE)
    elif now.state is ProcState.PAUSED and now.wait is not None:
        rows.update_process(conn, c.pid, now.state, {"wait": None})
        now = now.changed(wait=None)
    kernel.contexts.pop(c.pid, None)
    tx.on_commit.append(lambda: _forget(kernel, c.pid))
    tx.event(c.pid, "restore", {"checkpoint": c.id, "by": by, "objects": len(plan), "dropped": dropped})
    return {"pid": c.pid, "checkpoint": c.id, "objects_restored": len(plan), "capabilities_dropped": dropped,
            "tools": [t[0] for t in c.body.get("tools", [])],
            "messages_returned": returned, "context_messages": len(msgs), **listed(effects)}  # fmt: skip


def _forget(kernel: Kernel, pid: Pid) -> None:
    kernel.forget_process(pid)
    kernel.forget_caps(pid)
    kernel.quiet.discard(pid)


def _drop_allows_since(kernel: Kernel, tx: Tx, c: Checkpoint) -> list[int]:
    """Revoke the allows ``c.pid`` was issued after ``c``; return their ids. Denies and asks stay,
    and what was revoked or spent since stays so."""
    then = set(c.body["capabilities"])
    live = rows.capabilities_of(tx.conn, c.pid)
    # its rights on children it made since stay: those children live on, and it answers for them
    dropped = [
        cap.id
        for cap in live
        if cap.id not in then and cap.effect is Effect.ALLOW and not cap.issuer.startswith("spawn:")
    ]
    for cap_id in dropped:
        caps.revoke(tx.conn, cap_id)
    return dropped


def passed_on(kernel: Kernel, tx: Tx, c: Checkpoint, caller: Pid, child: Pid) -> tuple[list[int], list[str]]:
    """Issue ``child`` the capabilities of checkpoint ``c`` that are still live, each derived from
    what ``caller`` holds now (the host: from the capability itself); return (ids issued, the
    patterns not passed because the caller no longer holds them)."""
    issued: list[int] = []
    missing: list[str] = []
    held = rows.capabilities_of(tx.conn, caller) if caller else []
    for cap_id in c.body["capabilities"]:
        cap = rows.load_capability(tx.conn, cap_id)
        if cap is None or not cap.live(tx.now) or cap.issuer == OWN or cap.digest is not None:
            continue  # revoked, expired or spent since; its own namespace (the fork has its own); one-shot
        grant = caps.as_grant(cap)
        if not caller:
            issued.append(caps.issue(tx.conn, child, grant, "host", cap.id))
            continue
        if cap.effect is Effect.DENY:  # a deny binds the fork too; an ask is passed only if held, as an allow
            issued.append(caps.issue(tx.conn, child, grant, f"pid:{caller}", cap.id))
            continue
        try:
            derived = caps.attenuate(held, grant, tx.now)
        except Denied:  # the caller no longer holds it (or may not pass it on)
            missing.append(cap.pattern)
            continue
        issued.extend(caps.issue(tx.conn, child, g, f"pid:{caller}", source) for g, source in derived)
    return issued, missing
