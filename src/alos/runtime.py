"""The composition root: open a store, wire kernel, providers, scheduler and agent loop.

Runtime is what the CLI, the console and Python programs hold. Every change it makes goes
through dispatch() with the host as subject; every read goes through kernel/reads.py. It never
imports the store, the audit log, capabilities or primitives.

Size: ~450 lines: one short method for each thing a front end asks of the runtime (run, serve,
answer, signal, read), and the checks a start makes before any store is opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from alos import codec, images, limits
from alos.agent import Agent
from alos.config import DEFAULT_STORE, ModelConfig
from alos.config import load as load_config
from alos.errors import AlosError, Conflict, Invalid, NotFound, Unavailable
from alos.images import is_path
from alos.images.load import load as load_image
from alos.kernel import Kernel, objects, pages, reads
from alos.kernel.reads import ChainCheck
from alos.kernel.sched import Scheduler
from alos.providers.base import Clock, HumanIO, Model, Providers
from alos.providers.clock import SystemClock
from alos.providers.files import Files
from alos.providers.human import RecordedHuman
from alos.providers.model import open_model
from alos.providers.net import HostNetwork
from alos.providers.shell import HostShell
from alos.requestform import can_always
from alos.rights import Effect, Grant, Right
from alos.syscall import TABLE, dispatch
from alos.types import HOST, AuditRecord, Event, HumanRequest, Pid, Process, RequestState


def forbidden_paths(store_path: str) -> list[str]:
    """Return what no process may reach: the directory that holds the store (and so the store,
    its side files and anything else the host keeps beside it)."""
    return [os.path.dirname(os.path.realpath(store_path))]


class Runtime:
    """One store's processes, and the host's handle on them (made by ``open``)."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.store = kernel.store
        self.human = kernel.human
        self.agent = Agent(self.kernel)
        self.scheduler = Scheduler(self.kernel, self.agent.quantum)
        self._ear: pages.Listener | None = None  # on the store's bell, for ``changed``

    # -- changing things: always through dispatch() as the host ------------------------

    async def dispatch(self, pid: Pid, name: str, args: dict[str, Any], via: str | None = None) -> Any:
        """Perform syscall ``name`` as process ``pid`` (0 is the host); see syscall.dispatch.
        ``via`` names the host's front end that asks (e.g. "console"): its audit record says so.

        Its audit record is durable before this returns or raises, refusals and reads included
        (the agent loop instead writes them with the transaction that records the tool result).
        """
        try:
            return await dispatch(self.kernel, pid, name, args, via=via)
        finally:
            self.kernel.flush()

    def listen(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener`` with every event (state changes, syscalls, model turns, results) once committed."""
        self.kernel.listeners.append(listener)

    def listen_tokens(self, listener: Callable[[Pid, str], None]) -> None:
        """Call ``listener`` with each piece of a model's reply as it streams in (not stored: the
        turn event carries the whole reply once it is recorded)."""
        self.kernel.streams.append(listener)

    async def close_models(self) -> None:
        """Release the connections of the models this runtime opened (in the event loop that used them)."""
        await self.kernel.close_models()

    def flush(self) -> None:
        """Write every audit record still held for the next transaction."""
        self.kernel.flush()

    async def spawn(
        self,
        image_name: str | images.Image,
        goal: str,
        *,
        workspace: str,
        model: str,
        grants: Sequence[Grant] = (),
        name: str = "main",
        defaults: bool = True,
        budget: dict[str, int] | None = None,
        priority: int | None = None,
    ) -> Pid:
        """Start a root process; return its pid.

        With ``defaults`` the process may call its model, read the clock and ask/tell the human
        console; everything else comes from ``grants``. The host's grants are delegable: the
        process may pass them, attenuated, to children it spawns. ``budget`` limits what the
        process and its descendants spend (see docs/processes.md), over the image's default budget.
        The image is a name (see ``image``) or an Image that ``image`` returned: the one a person
        was shown is the one that runs, even if its file changes meanwhile. Raises NotFound/Invalid
        for a bad image, workspace, model or budget before anything is stored.
        """
        found = image_name if isinstance(image_name, images.Image) else self.image(image_name)
        ref = await self.image_ref(found)
        budget = {**dict(found.budget), **(budget or {})}  # the image's budget, where ``budget`` names none
        cwd = codec.utf8(os.path.realpath(workspace))
        if not os.path.isdir(cwd):
            raise Invalid(f"workspace {workspace} is not a directory; create it or pass --workspace DIR")
        model = absolute_model(model)
        issued = list(grants)
        if defaults:
            issued += [
                Grant("model:" + model.partition(":")[0], frozenset({Right.EXECUTE}), Effect.ALLOW),
                Grant("human:console", frozenset({Right.ASK, Right.SEND}), Effect.ALLOW),
                Grant("clock", frozenset({Right.READ}), Effect.ALLOW),
            ]
        result = await self.dispatch(
            HOST,
            "proc.spawn",
            {
                "name": name,
                "image": ref,
                "goal": goal,
                "model": model,
                "cwd": cwd,
                "grants": [
                    {"pattern": g.pattern, "rights": sorted(g.rights), "effect": g.effect.value} for g in issued
                ],
                "budget": budget or {},
                "priority": priority,
            },
        )
        return int(result["pid"])

    def image(self, name: str) -> images.Image:
        """Return the image ``name`` means: the path of an image file (a YAML file or a directory),
        a built-in, a registered name (its newest version) or NAME@VERSION. Its ``source`` says
        which ("built-in", "store:REF" or the file). Raises NotFound or Invalid naming what is wrong."""
        if is_path(name):
            return load_image(name)
        ref, body = reads.lookup_image(self.kernel, name)
        return images.from_json(body, source="built-in" if "@" not in ref else f"store:{ref}")

    def image_registrant(self, image: images.Image) -> Pid | None:
        """Return who stored ``image`` in the store (HOST, or a process's pid), or None for a
        built-in or a file not stored yet."""
        if not image.source.startswith("store:"):
            return None
        return reads.image_registrant(self.kernel, image.source.removeprefix("store:"))

    async def image_ref(self, image: images.Image) -> str:
        """Return the ref a process started with ``image`` keeps: an image read from a file is
        stored (unlisted, under its digest) so the process keeps it whatever becomes of the file."""
        if image.source == "built-in":
            return image.name
        if image.source.startswith("store:"):
            return image.source.removeprefix("store:")
        stored = await self.dispatch(HOST, "image.register", {"image": images.to_json(image), "listed": False})
        return str(stored["ref"])

    async def register(self, path: str) -> dict[str, Any]:
        """Register the image file at ``path`` as the next version of its name; return its ref."""
        image = load_image(path)
        result: dict[str, Any] = await self.dispatch(HOST, "image.register", {"image": images.to_json(image)})
        return result

    async def signal(self, pid: Pid, signal: str, text: str = "", via: str | None = None) -> dict[str, Any]:
        """Send process ``pid`` a signal as the host: interrupt | pause | resume | term | kill."""
        args = {"pid": pid, "signal": signal, "text": text}
        result: dict[str, Any] = await self.dispatch(HOST, "proc.signal", args, via)
        return result

    async def send(self, pid: Pid, text: str, kind: str = "human", via: str | None = None) -> dict[str, Any]:
        """Queue ``text`` for process ``pid`` as the host; a 'human' message is shown to its model
        before its next model call, and wakes it if it waits on its queue."""
        result: dict[str, Any] = await self.dispatch(HOST, "msg.send", {"pid": pid, "body": text, "kind": kind}, via)
        return result

    async def answer(
        self, request_id: int, verdict: str, text: str | None = None, by: str = "host", via: str | None = None
    ) -> dict[str, Any]:
        """Answer a human request as the host (once | always | deny | answer); see approval.answer."""
        result: dict[str, Any] = await self.dispatch(
            HOST,
            "human.answer",
            {"request": request_id, "verdict": verdict, "text": text, "by": by},
            via,
        )
        return result

    async def settle(self) -> int:
        """Answer, through dispatch() as the host, every pending request that this runtime's human
        provider answers by itself (an answers file); return how many were answered."""
        answered = 0
        for req in self.requests(RequestState.PENDING):
            got = self.kernel.human.answer(req)
            if got is None:
                continue
            # a rule's "always" on a resource ending in '*' would be a grant on all below it: once
            verdict = "once" if got.verdict == "always" and not can_always(req) else got.verdict
            try:
                await self.answer(req.id, verdict, got.text, got.by)
            except Conflict:  # answered meanwhile, elsewhere
                continue
            except AlosError:  # an answer that does not fit the request: it waits for a person
                continue
            answered += 1
        return answered

    async def run(self) -> None:
        """Run every runnable process until none is runnable; then release the models'
        connections in this event loop (the next run opens them again, in its own)."""
        try:
            await self.scheduler.run()
        finally:
            await self.kernel.close_models()

    async def serve(self) -> None:
        """Run every process, those other programs start, answer, signal or message included, until
        cancelled; asleep (no polling) while nothing is runnable. A request this runtime's human
        provider answers by itself (an answers file) is answered as it comes (see ``settle``).
        Needs ``open(..., host=True)``. Cancelled, it leaves its processes runnable for the next
        host (with ``close``)."""
        if not self.store.hosting:
            raise Unavailable("only the store's host serves its processes: open it with host=True")
        self.recover()
        asked = asyncio.Event()  # a process asked a person: the human provider may answer (an answers file)

        def heard(ev: Event) -> None:
            if ev.kind == "request":
                asked.set()

        async def settling() -> None:
            while True:
                await self.settle()  # those waiting at the start too
                await asked.wait()
                asked.clear()

        self.kernel.listeners.append(heard)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.scheduler.run(stay=True))
                group.create_task(settling())
        except* AlosError as failed:  # the store was lost, say: one error, as run() raises it
            raise failed.exceptions[0] from None
        finally:
            self.kernel.listeners.remove(heard)
            await self.kernel.close_models()

    def host_running(self) -> bool:
        """Return whether a host (this program or another) runs this store's processes now."""
        return self.store.host_running()

    def recover(self) -> list[Pid]:
        """Make processes a dead host left running runnable again; return their pids."""
        return self.scheduler.recover()

    # -- reading ------------------------------------------------------------------------

    def syscalls(self) -> list[str]:
        """Return the names of every syscall, sorted."""
        return sorted(TABLE)

    def refresh(self) -> bool:
        """Notice changes other terminals made; return whether there were any."""
        return self.kernel.refresh()

    async def changed(self, timeout: float | None = None, also: asyncio.Event | None = None) -> bool:
        """Sleep until another program commits to the store, ``also`` is set, or ``timeout``
        seconds pass, on the store's bell: no polling; return whether the store changed. Where the
        store's directory lets no listener be made, look every POLL_SECONDS instead."""
        if self._ear is None:
            try:
                self._ear = pages.listen(self.kernel)
            except OSError:
                wait = limits.POLL_SECONDS if timeout is None else min(timeout, limits.POLL_SECONDS)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for((also or asyncio.Event()).wait(), wait)
                return self.kernel.refresh()
            if self.kernel.refresh():  # committed before the listener was there: no ring for it
                return True
        rang = await self._ear.wait(timeout, also)
        return self.kernel.refresh() or rang

    def processes(self) -> list[Process]:
        """Return every process, oldest first."""
        return reads.processes(self.kernel)

    def process(self, pid: Pid) -> Process:
        """Return process ``pid``; raises NotFound."""
        return reads.process(self.kernel, pid)

    def name(self, pid: Pid) -> str:
        """Return process ``pid``'s name as this runtime knows it, without looking for others'
        changes first (so it may be called from a listener, mid-commit); "" for no such process."""
        try:
            return self.kernel.proc(pid).name
        except NotFound:
            return ""

    def context(self, pid: Pid) -> list[dict[str, Any]]:
        """Return a copy of process ``pid``'s context: the messages its model reads."""
        return reads.context(self.kernel, pid)

    def budgets(self) -> dict[Pid, dict[str, tuple[int | None, int]]]:
        """Return every process's budgets: pid -> name -> (limit or None, spent by it and its descendants)."""
        return reads.budgets(self.kernel)

    def messages_waiting(self, pid: Pid) -> int:
        """Return how many messages wait in ``pid``'s queue."""
        return reads.messages_waiting(self.kernel, pid)

    def requests(self, state: RequestState | None = RequestState.PENDING) -> list[HumanRequest]:
        """Return human requests in ``state`` (None: all), oldest first."""
        return reads.requests(self.kernel, state)

    def request(self, request_id: int) -> HumanRequest | None:
        """Return one human request or None."""
        return reads.request(self.kernel, request_id)

    def audit(self, pid: Pid | None = None) -> Iterator[AuditRecord]:
        """Yield audit records in order, optionally one process's."""
        return reads.audit_records(self.kernel, pid)

    def verify(self) -> ChainCheck:
        """Check the audit chain; return the verdict naming the first bad record."""
        return reads.verify(self.kernel)

    def store_problems(self) -> list[dict[str, Any]]:
        """Return every object version and image seed whose payload is missing or corrupt on disk,
        each named (object and version, or image and seed name) with what is wrong."""
        return reads.store_problems(self.kernel)

    def sweep(self, grace: float = limits.BLOB_GC_GRACE_SECONDS) -> tuple[int, int]:
        """Remove the blobs nothing names, older than ``grace`` seconds; return (files, bytes)."""
        return objects.sweep(self.kernel, grace)

    def events(self, after: int = 0) -> list[Event]:
        """Return events after seq ``after``."""
        return reads.events(self.kernel, after)

    def close(self) -> None:
        """Write what is held, then release the store. A host stopped mid-quantum (Ctrl-C) leaves
        its processes runnable, not 'running' with no host to run them."""
        try:
            self.scheduler.close()
            if self._ear is not None:
                self._ear.close()
            self.kernel.shell.close()  # no command outlives the host
            self.kernel.jit.close()  # nor a JIT tool
            self.kernel.flush()  # first: a 'running' move may still be held for the next commit
            if self.store.hosting:
                self.scheduler.recover()
        finally:
            self.store.close()


def check_start(image_name: str, workspace: str, model: str, store: str) -> None:
    """Check what ``spawn`` would be given, before any store is opened: raises NotFound for a
    missing image file or script, Invalid for a bad image file, a workspace that is not a
    directory (or is inside the store's directory) or a bad model spec or script. A registered
    image's name is checked once the store is open."""
    if is_path(image_name):
        load_image(image_name)
    elif image_name not in images.BUILTIN:
        _check_registered(image_name, store)
    cwd = codec.utf8(os.path.realpath(workspace))
    if not os.path.isdir(cwd):
        raise Invalid(f"workspace {workspace} is not a directory (named in UTF-8); create it or pass --workspace DIR")
    for hidden in forbidden_paths(store):
        if cwd == hidden or cwd.startswith(hidden + "/"):
            raise Invalid(
                f"workspace {workspace} is inside the store's directory, which no process may reach; "
                "keep the store in a directory of its own, e.g. --store .alos/store.db"
            )
    if model.partition(":")[0] in ("script", "replay"):
        open_model(absolute_model(model))


def _check_registered(image_name: str, store: str) -> None:
    """Raise NotFound unless the store at ``store`` has an image registered as ``image_name``."""
    if not os.path.exists(store):
        known = ", ".join(images.BUILTIN)
        raise NotFound(
            f"no image {image_name[:80]!r}; images are {known}, those registered in the store "
            "('alos image register FILE'), or the path of an image file"
        )
    rt = open(store, create=False)
    try:
        reads.lookup_image(rt.kernel, image_name)
    finally:
        rt.close()


def absolute_model(spec: str) -> str:
    """Return ``spec`` with a script path made real and absolute (the host may move; the script is
    later opened without following a symlink)."""
    kind, sep, rest = spec.partition(":")
    if kind in ("script", "replay") and sep and rest:
        return f"{kind}:{codec.utf8(os.path.realpath(rest))}"
    return spec


def open(
    store: str = DEFAULT_STORE,
    *,
    create: bool = True,
    host: bool = False,
    human: HumanIO | None = None,
    clock: Clock | None = None,
    models: ModelConfig | None = None,
    record: str | None = None,
    providers: Providers | None = None,
    isolate: str = "auto",
) -> Runtime:
    """Return a Runtime on the store at ``store``.

    With ``host`` this program becomes the one host that runs the store's processes
    (raises Unavailable when another is). Raises Invalid for a store that is corrupt, not
    an alos store, or newer than this alos. ``models`` says where openai: and anthropic: models
    are served (default: the environment and config files, config.load); with ``record`` every
    model request and reply is appended to that file as JSON Lines (docs/models.md).
    ``providers`` swaps the provider of any effect (docs/providers.md); ``human`` and ``clock``
    are short for ``providers.human`` and ``providers.clock``. ``isolate`` is how shell.run commands
    are isolated: auto (with bubblewrap when it is installed), off, or required (a command runs only
    isolated); see docs/shell.md.
    """
    if isolate not in ("auto", "off", "required"):
        raise Invalid(f"isolate must be auto, off or required, not {isolate[:40]!r}")
    chosen = providers or Providers()
    s = reads.open_store(store, create=create, host=host)
    config = models if models is not None else load_config(os.getcwd(), {})

    def model(spec: str) -> Model:
        return open_model(spec, config, record=record)

    kernel = Kernel(
        s,
        chosen.files or Files(forbidden_paths(s.path)),
        human or chosen.human or RecordedHuman(),
        clock or chosen.clock or SystemClock(),
        chosen.models or model,
        images.Catalog(),
        shell=chosen.shell or HostShell(tag=codec.digest(s.path.encode()).removeprefix("sha256:")[:16]),
        net=chosen.net or HostNetwork(),
        isolate=isolate,
    )
    return Runtime(kernel)


__all__ = ["DEFAULT_STORE", "Runtime", "check_start", "is_path", "open"]
