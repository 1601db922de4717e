"""model.call: one call to the process's model, through its provider.

Budgeted: one model call, and the reply's ``max_tokens`` reserved from the tokens budget
before the request leaves (committed first, so a host killed during the call keeps it
charged), then settled from the usage the provider reports. Audited with the model, the
token counts, the latency, the finish reason and a digest of the request (never its text).
A process paused or killed while its model thinks has the request cancelled.

A model that cannot answer (a script moved since the process started, a server down after
retries, a refused key) raises ProviderDown: dispatch() parks the process on a request that
shows the error, where a person approves a retry or denies (and the process then fails).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field, replace
from typing import Any

from alos import codec, limits
from alos.errors import Conflict, Corrupt, Invalid, NotFound, ProviderDown, Unavailable
from alos.kernel import Kernel, Site, approval, objects
from alos.providers.base import ModelRequest
from alos.rights import Need, Right
from alos.store import objrows
from alos.types import HumanRequest, ModelTurn, Process, ProcState, RequestKind, RequestState

_OUTSIDE = Site(-1, -1, -1)  # where dispatch() files the requests of a call made outside a pending action


@dataclass(frozen=True, slots=True)
class CallArgs:
    """Call the process's model with ``messages`` and the ``tools`` it may use."""

    messages: list[Any]
    tools: list[Any]
    max_tokens: int | None = None  # reserved from the tokens budget before the call
    temperature: float | None = None
    constrain: bool = False
    stuck: str | None = None  # the last repair after limits.MODEL_REPAIRS malformed calls: a person decides
    objects: list[str] = field(default_factory=list)  # names in the caller's namespace to show the model
    object_tokens: int = 0  # how many tokens of the context the objects may take


def resource(proc: Process) -> str:
    """Return the resource a call to ``proc``'s model needs execute on: ``model:<kind>``."""
    return "model:" + proc.model.partition(":")[0]


def _reserved(args: CallArgs) -> int:
    return max(0, args.max_tokens or 0)


def cost(args: CallArgs) -> dict[str, int]:
    """Return what a call charges before it runs: one model call and its ``max_tokens`` (or, with
    none, only that some tokens are left)."""
    return {"model_calls": 1, "tokens": _reserved(args)}


def used(args: CallArgs, turn: ModelTurn) -> dict[str, int]:
    """Return what settles the reservation: the tokens the turn used, as its usage reports them,
    less what was reserved (the ledger saturates a huge figure). A reply that reports no usage
    (some servers' streams) keeps the reservation charged: it may have spent all of it."""
    usage = turn.usage
    if not usage:
        return {"tokens": 0}
    total = usage.get("total_tokens", usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0))
    return {"tokens": max(0, int(total)) - _reserved(args)}


def audited(args: CallArgs, turn: ModelTurn) -> dict[str, Any]:
    """Return what the audit keeps of a call: counts, timing and a digest of the request, not its text."""
    usage = turn.usage
    return {
        "model": turn.model,
        "prompt_tokens": usage.get("prompt_tokens", 0),
        "completion_tokens": usage.get("completion_tokens", 0),
        "cached_tokens": usage.get("cached_tokens", 0),
        "latency_ms": round(turn.elapsed * 1000, 1),
        "finish_reason": turn.finish_reason,
        "request": turn.request,
        "messages": len(args.messages),
        "tokens_sent": turn.sent // limits.CHARS_PER_TOKEN,
        "tool_calls": len(turn.tool_calls),
        "constrain": turn.constrained,
        **({"shown": [{"object": o, "version": v, "digest": d} for o, v, d in turn.shown]} if turn.shown else {}),
    }


def describe(kernel: Kernel, proc: Process, args: CallArgs) -> dict[str, Any]:
    """Return what a person deciding about this call sees: the model, not the whole context."""
    shown: dict[str, Any] = {"model": proc.model, "messages": len(args.messages), "tools": len(args.tools)}
    if args.stuck is not None:
        shown["stuck"] = args.stuck
    return shown


def call_needs(proc: Process, args: CallArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them: the model,
    and a read of each object it is shown."""
    ns = objects.own(proc.pid)
    return (Need(resource(proc), Right.EXECUTE), *(Need(objects.resource(ns, n), Right.READ) for n in args.objects))


async def call(kernel: Kernel, proc: Process, args: CallArgs) -> ModelTurn:
    """Return the model's next turn for this process. Raises ProviderDown when its model cannot
    answer (dispatch() then parks the process on a recovery request) and Conflict when the
    process was paused or killed meanwhile (the request was cancelled)."""
    try:
        model = kernel.model(proc.model)
    except (NotFound, Invalid, Unavailable) as err:
        raise ProviderDown(f"model {proc.model} cannot be opened: {err}") from None
    # an in-process model answers at once and spends nothing: a failure of its own meets the
    # person's answer in dispatch()'s stall; a remote one is asked nothing a person refused
    last = approval.at(kernel, proc.pid, _OUTSIDE, RequestKind.RECOVERY) if model.remote or args.stuck else None
    if last is not None and last.syscall == "model.call" and last.state is RequestState.REJECTED:
        # a person said not to try again: the call ends here, and with it the process
        raise Unavailable(
            f"the model failed and request {last.id} asked whether to try again; {last.answered_by} chose not "
            f"to: {last.answer or 'no reason given'}"
        )
    if args.stuck is not None and not _retry_approved(last, args):
        raise ProviderDown(
            f"the model made {limits.MODEL_REPAIRS} malformed tool calls in a row (the last: {args.stuck}). "
            "Approve to let it try again, or deny to end the process"
        )
    if args.max_tokens and model.remote:
        kernel.flush()  # the reservation is durable before the request leaves
    streams = kernel.streams
    pid = proc.pid

    def stream(text: str) -> None:
        for listen in streams:
            listen(pid, text)

    messages, shown = _with_objects(kernel, proc, args)
    request = ModelRequest(
        proc.name, proc.turns, messages, args.tools, pid=pid, max_tokens=args.max_tokens,
        temperature=args.temperature, constrain=args.constrain or bool(getattr(model, "constrain", False)),
        stream=stream if streams else None,
    )  # fmt: skip
    started = time.monotonic()
    if not model.remote:  # answers at once: nothing to cancel, no task to watch
        turn = await model.complete(request)
        digest, sent = _digest(kernel, pid, args)
        return replace(
            turn, elapsed=time.monotonic() - started, constrained=request.constrain, request=digest, sent=sent,
            shown=shown,
        )  # fmt: skip
    task = asyncio.ensure_future(model.complete(request))
    try:
        while True:
            done, _ = await asyncio.wait((task,), timeout=limits.POLL_SECONDS)
            if done:
                break
            stopped = _stopped(kernel, proc)
            if stopped is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                raise Conflict(f"process {pid} was {stopped} during its model call; the call was cancelled")
    except BaseException:
        task.cancel()  # the host itself is stopping (Ctrl-C): the request goes with it
        await asyncio.gather(task, return_exceptions=True)
        raise
    digest, sent = _digest(kernel, pid, args)
    return replace(
        task.result(), elapsed=time.monotonic() - started, constrained=request.constrain, request=digest, sent=sent,
        shown=shown,
    )  # fmt: skip


def _with_objects(kernel: Kernel, proc: Process, args: CallArgs) -> tuple[list[Any], tuple[tuple[str, int, str], ...]]:
    """Return the messages with the objects the image shows the model put after the system prompt
    (newest versions, within ``object_tokens``: what does not fit is named with its size), and
    (object, version, digest) of each version shown."""
    if not args.objects:
        return args.messages, ()
    ns = objects.own(proc.pid)
    room = max(0, args.object_tokens) * limits.CHARS_PER_TOKEN
    parts: list[str] = []
    shown: list[tuple[str, int, str]] = []
    for name in args.objects:
        head = objrows.head(kernel.store.conn, ns, name)
        if head is None or head.digest is None:
            parts.append(f"## {name}\n(no such object yet)")
            continue
        try:
            data = objects.payload(kernel, head)
        except Corrupt as err:
            parts.append(f"## {name}\n({err.message})")
            continue
        text = codec.text_of(data) if head.type != "bytes" else None
        if text is None:
            parts.append(f"## {name} (version {head.version}, {head.type})\n({head.size} bytes, not text)")
        elif len(text) > room:
            parts.append(
                f"## {name} (version {head.version}, {head.type})\n{text[:room]}\n[cut: {len(text)} characters]"
            )
        else:
            parts.append(f"## {name} (version {head.version}, {head.type})\n{text}")
        room = max(0, room - len(text or ""))
        shown.append((f"{ns}/{name}", head.version, head.digest))
    note = {
        "role": "user",
        "content": "[the objects your image keeps in view, as they are now]\n\n" + "\n\n".join(parts),
    }
    msgs = list(args.messages)
    return [*msgs[:1], note, *msgs[1:]], tuple(shown)


class _Running:
    """A process's requests hashed so far: a context only grows at its end, so each call hashes
    only the messages added since the last (the whole of a 200-message context would cost
    ~100 us a call). Holds the messages it hashed, so that their identities stay theirs."""

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.hasher = hashlib.sha256()
        self.size = 0
        self.tools: list[Any] = []  # the tool table last sent, and its canonical JSON
        self.tools_json = b""


def _digest(kernel: Kernel, pid: int, args: CallArgs) -> tuple[str, int]:
    """Return the digest of the request (sha256 over the canonical JSON of each message in turn,
    then of the tools) and its size in bytes."""
    running = kernel.requests.get(pid)
    msgs = args.messages
    seen = running.seen if running is not None else []
    if running is None or len(msgs) < len(seen) or any(a is not b for a, b in zip(seen, msgs, strict=False)):
        if len(kernel.requests) >= limits.CONTEXTS_CACHED:
            del kernel.requests[next(iter(kernel.requests))]
        running = kernel.requests[pid] = _Running()
    for msg in msgs[len(running.seen) :]:
        data = codec.dumps(msg).encode()
        running.hasher.update(data)
        running.size += len(data)
        running.seen.append(msg)
    same = len(args.tools) == len(running.tools)
    if not same or any(a is not b for a, b in zip(running.tools, args.tools, strict=True)):
        running.tools, running.tools_json = list(args.tools), codec.dumps(args.tools).encode()
    tools = running.tools_json
    whole = running.hasher.copy()
    whole.update(tools)
    return "sha256:" + whole.hexdigest(), running.size + len(tools)


def _retry_approved(req: HumanRequest | None, args: CallArgs) -> bool:
    """Return whether a person approved trying again after exactly this run of malformed calls."""
    return (
        req is not None
        and req.state is RequestState.APPROVED
        and req.detail.get("stuck") == args.stuck
        and req.detail.get("messages") == len(args.messages)
    )


def _stopped(kernel: Kernel, proc: Process) -> str | None:
    """Return 'paused' or 'killed' when ``proc`` stopped running, here or from another terminal."""
    state = kernel.state_now(proc.pid)
    if state is ProcState.PAUSED:
        return "paused"
    if state is ProcState.EXITED:
        return "killed"
    return None
