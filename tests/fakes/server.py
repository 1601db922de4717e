"""A scripted HTTP server for tests: a Starlette app served by uvicorn on 127.0.0.1 in a thread.

Each test pushes the answers it wants, in order (Step: a status, a body, a stream of chunks, a
delay, a connection dropped mid-body or mid-stream); the server answers each request with the next
one, records every request (path, headers, JSON body) and notices a client that hangs up before
the answer is complete. With nothing pushed it answers 418, which no client retries. The server
listens on a real port, so a CLI run in a subprocess can use it too (pass it ``base_url``).
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import json
import socket
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import Receive, Scope, Send


@dataclass
class Step:
    """One scripted answer."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    body: bytes = b""
    chunks: list[bytes] | None = None  # a streamed (chunked) body, one send per piece
    delay: float = 0.0  # seconds before the answer starts
    gap: float = 0.0  # seconds between streamed pieces
    drop_after: int | None = None  # close the connection after this many pieces (mid-body for a plain body)


@dataclass
class Seen:
    """One request the server received."""

    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def body(self) -> Any:
        return json.loads(self.raw)


def status(code: int, message: str = "scripted failure", headers: dict[str, str] | None = None) -> Step:
    """An error answer with an OpenAI/Anthropic-style error body."""
    body = json.dumps({"type": "error", "error": {"type": "scripted", "message": message}}).encode()
    return Step(code, {"content-type": "application/json", **(headers or {})}, body)


def malformed() -> Step:
    """A 200 answer whose body is not JSON."""
    return Step(200, body=b'{"choices": [ this is not json')


def sse(*events: Any, event_names: bool = False) -> list[bytes]:
    """Server-Sent Events frames for ``events`` (dicts become JSON; strings are sent as they are)."""
    frames = []
    for event in events:
        data = event if isinstance(event, str) else json.dumps(event)
        name = f"event: {event['type']}\n" if event_names and isinstance(event, dict) else ""
        frames.append(f"{name}data: {data}\n\n".encode())
    return frames


class FakeServer:
    """Serves the scripted Steps at ``paths`` on 127.0.0.1; ``url`` is its root. Its routes take
    the HTTP ``methods`` named (POST: what model APIs take), or every method for None."""

    def __init__(self, paths: list[str], methods: Collection[str] | None = ("POST",)) -> None:
        self.requests: list[Seen] = []
        self.disconnects = 0  # answers the client hung up on before they were complete
        self._steps: collections.deque[Step] = collections.deque()
        self._lock = threading.Lock()
        self._hung_up = threading.Condition(self._lock)
        app = Starlette(routes=[Route(p, _Endpoint(self), methods=methods) for p in paths])
        # protocol IPPROTO_TCP, not 0: asyncio then turns Nagle off on each accepted connection, so a
        # reply is not held ~40 ms for the client's delayed acknowledgement
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        config = uvicorn.Config(
            app,
            log_config=None,
            log_level="critical",
            access_log=False,
            lifespan="off",
            http="h11",
            ws="none",
            loop="asyncio",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def start(self) -> FakeServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake model server did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(2)  # a daemon thread: a step still sleeping does not hold the process

    def push(self, *steps: Step) -> None:
        """Answer the next requests with ``steps``, in order."""
        with self._lock:
            self._steps.extend(steps)

    def reset(self) -> None:
        """Forget the steps not yet used, the requests seen and the disconnects counted."""
        with self._lock:
            self._steps.clear()
            self.requests = []
            self.disconnects = 0

    def wait_disconnect(self, timeout: float = 5.0) -> bool:
        """Return whether a client hung up on an unfinished answer within ``timeout`` seconds."""
        with self._hung_up:
            return self._hung_up.wait_for(lambda: self.disconnects > 0, timeout)

    def _next(self, seen: Seen) -> Step:
        with self._lock:
            self.requests.append(seen)
            if self._steps:
                return self._steps.popleft()
        return status(418, "fake server: no answer was scripted for this request")

    def _hang_up(self) -> None:
        with self._hung_up:
            self.disconnects += 1
            self._hung_up.notify_all()


class _Endpoint:
    """The ASGI app behind every route: it answers with the next Step and watches for hang-ups."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            raw += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        step = self.server._next(Seen(scope["path"], headers, raw))
        finished = asyncio.Event()
        answer = asyncio.create_task(self._answer(step, send, finished))
        watch = asyncio.create_task(self._watch(receive, finished))
        await asyncio.wait({answer, watch}, return_when=asyncio.FIRST_COMPLETED)
        for task in (answer, watch):
            task.cancel()
        await asyncio.gather(answer, watch, return_exceptions=True)

    async def _watch(self, receive: Receive, finished: asyncio.Event) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if not finished.is_set():
                    self.server._hang_up()
                return

    async def _answer(self, step: Step, send: Send, finished: asyncio.Event) -> None:
        await asyncio.sleep(step.delay)
        headers = [(k.encode(), v.encode()) for k, v in step.headers.items()]
        if step.chunks is None:
            headers.append((b"content-length", str(len(step.body)).encode()))
            await send({"type": "http.response.start", "status": step.status, "headers": headers})
            if step.drop_after is not None:  # half the body, then the connection closes
                await send({"type": "http.response.body", "body": step.body[: len(step.body) // 2], "more_body": True})
                finished.set()
                return
            finished.set()
            await send({"type": "http.response.body", "body": step.body})
            return
        await send({"type": "http.response.start", "status": step.status, "headers": headers})
        for i, chunk in enumerate(step.chunks):
            if i == step.drop_after:
                finished.set()  # uvicorn closes a connection whose answer the app left unfinished
                return
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await asyncio.sleep(step.gap)
        finished.set()
        await send({"type": "http.response.body", "body": b""})


_shared: dict[str, FakeServer] = {}
_shared_lock = threading.Lock()


def shared(kind: str, paths: list[str], methods: Collection[str] | None = ("POST",)) -> FakeServer:
    """Return this process's one running server of ``kind``, started on first use (``paths`` and
    ``methods`` are those of its first use)."""
    with _shared_lock:
        server = _shared.get(kind)
        if server is None:
            server = _shared[kind] = FakeServer(paths, methods).start()
            atexit.register(server.stop)
        return server
