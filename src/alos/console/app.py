"""The console as a web application, and the server that serves it on loopback.

``application`` builds the Starlette app: the routes of views.py (reads) and acts.py (changes),
the vendored htmx (static/vendor, from the npm packages htmx.org and htmx-ext-sse: no CDN, no
build step) and the gate of access.py in front of all of it. ``Server`` runs it with uvicorn in
the caller's event loop, beside a host's scheduler or alone, and stops when told: no ticking
loop of its own while idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import secrets
import socket
from collections.abc import Iterator
from importlib import resources
from typing import TYPE_CHECKING, Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from uvicorn.protocols.http.h11_impl import H11Protocol

from alos.console.access import Gate, Keys
from alos.console.acts import Acts
from alos.console.feed import Feed
from alos.console.views import BadInput, Pages
from alos.errors import AlosError, Invalid, Unavailable

if TYPE_CHECKING:
    from alos.runtime import Runtime

LOOPBACK = "127.0.0.1"
CONNECTIONS = 100  # connections held at once (a page holds one stream, a browser ~6 more); more are closed
BACKLOG = 16  # connections accepted per turn of the event loop: a burst never takes many descriptors at once
FIRST_REQUEST_SECONDS = 5.0  # a connection that sends no request by then is closed (idle sockets starve a host)
WHOLE_REQUEST_SECONDS = 10.0  # and one whose first request has not come whole by then (a trickled head)


def application(rt: Runtime, keys: Keys, feed: Feed, hosts: frozenset[str], hosted: str = "") -> Any:
    """Return the console's ASGI app for ``rt`` (see the module docstring)."""
    pages = Pages(rt, keys, feed, hosted)
    acts = Acts(pages)
    static = str(resources.files("alos.console") / "static")
    routes = [
        Route("/", lambda request: RedirectResponse(keys.root + "/processes", status_code=303)),
        Route("/processes", pages.processes),
        Route("/processes/rows", pages.process_rows),
        Route("/process/{pid:int}", pages.process),
        Route("/process/{pid:int}/head", pages.process_head),
        Route("/process/{pid:int}/body", pages.process_body),
        Route("/process/{pid:int}/signal", acts.signal, methods=["POST"]),
        Route("/process/{pid:int}/send", acts.send, methods=["POST"]),
        Route("/approvals", pages.approvals),
        Route("/approvals/list", pages.request_list),
        Route("/approvals/count", pages.pending_count),
        Route("/requests/{rid:int}/answer", acts.answer, methods=["POST"]),
        Route("/audit", pages.audit),
        Route("/audit/rows", pages.audit_rows),
        Route("/audit/verify", pages.verify),
        Route("/audit/export.jsonl", pages.export),
        Route("/events", pages.events),
        Mount("/static", StaticFiles(directory=static), name="static"),
    ]

    async def bad_input(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BadInput)
        return _refused(pages, request, exc.status, exc.text)

    async def not_found(request: Request, exc: Exception) -> Response:
        return _refused(pages, request, 404, f"there is no page {path_shown(request)[:100]!r}: start at /processes")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return _refused(pages, request, 405, f"{request.method[:10]} is not how {path_shown(request)[:100]!r} is used")

    app = Starlette(routes=routes, exception_handlers={BadInput: bad_input, 404: not_found, 405: not_allowed})
    return Gate(app, keys, hosts)


def _refused(pages: Pages, request: Request, status: int, text: str) -> Response:
    if request.headers.get("hx-request") == "true":
        answer = pages.render("notice.html", status=status, text=text, tone="bad")
        answer.headers["hx-retarget"] = "#notice"
        answer.headers["hx-reswap"] = "innerHTML"
        return answer
    if path_shown(request).startswith(("/static/", "/events", "/audit/export")):
        return PlainTextResponse(text + "\n", status_code=status)
    heading = {400: "Bad request", 403: "Refused", 404: "Not found", 409: "Conflict"}.get(status, "Cannot do that")
    return pages.render("refused.html", status=status, text=text, heading=heading)


def path_shown(request: Request) -> str:
    """Return the path of ``request`` after the token (every request that reaches a route passed
    the gate, so its first part is the token): what a refusal may show."""
    path: str = request.scope["path"]
    return "/" + path[1:].partition("/")[2]


def hosts_for(host: str, port: int) -> frozenset[str]:
    """Return the Host header values that name a console bound to ``host``:``port``."""
    names = {f"{host}:{port}"}
    if host in (LOOPBACK, "localhost"):
        names |= {f"127.0.0.1:{port}", f"localhost:{port}"}
    if ":" in host:
        names.add(f"[{host}]:{port}")
    return frozenset(names)


def check_host(host: str) -> bool:
    """Return whether ``host`` is a loopback address (the default and the safe choice); raises
    Invalid for something that is neither an IP address nor 'localhost'."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        raise Invalid(f"--host must be an IP address to listen on (e.g. 127.0.0.1), not {host[:60]!r}") from None


def bind(host: str, port: int) -> socket.socket:
    """Return a listening socket on ``host``:``port`` (port 0: any free one); raises Unavailable
    naming the port when it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say so, and without it a
    # reused connection waits ~40 ms for a delayed ACK on many responses
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise Unavailable(
            f"the console cannot listen on {host}:{port} ({err.strerror}); pass another --port (0: any free one)"
        ) from None
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


class Server:
    """The console's web server in this event loop: ``run`` serves until ``stop``."""

    def __init__(self, rt: Runtime, sock: socket.socket, keys: Keys | None = None, hosted: str = "") -> None:
        self.rt = rt
        self.sock = sock
        self.keys = keys or Keys()
        host, port = sock.getsockname()[:2]
        self.host, self.port = str(host), int(port)
        self.feed = Feed(rt)
        self._kept: tuple[str, int, int] | None = None  # the file keep_url wrote: path, device, inode
        app = application(rt, self.keys, self.feed, hosts_for(self.host, self.port), hosted)
        config = uvicorn.Config(
            app,
            http=_Deadline,
            limit_concurrency=CONNECTIONS,
            backlog=BACKLOG,
            timeout_keep_alive=int(FIRST_REQUEST_SECONDS),
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
            ws="none",
            date_header=False,
            server_header=False,
        )
        self._server = _Quiet(config)

    @property
    def address(self) -> str:
        """Return the console's address without its token (what a log may show)."""
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}/"

    @property
    def url(self) -> str:
        """Return the URL a person opens: with the token, which then leads every path of the console."""
        return f"{self.address}?token={self.keys.token}"

    def keep_url(self, directory: str) -> str:
        """Write the URL to ``directory``/console-PORT.url, readable by this user only, and return
        that path; the file goes when the console stops. Raises Unavailable naming the file when it
        cannot be written."""
        path = os.path.join(directory, f"console-{self.port}.url")
        fresh = f"{path}.{secrets.token_hex(4)}"  # made new (never a file or link someone put there), then renamed
        try:
            fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, (self.url + "\n").encode())
                st = os.fstat(fd)
            finally:
                os.close(fd)
            os.replace(fresh, path)
        except OSError as err:
            with contextlib.suppress(OSError):
                os.unlink(fresh)
            raise Unavailable(
                f"the console cannot keep its URL in {path} ({err.strerror}); its output is not a terminal, "
                "so the token is not printed: remove what is at that path or make its directory writable, "
                "or start it on a terminal"
            ) from None
        self._kept = (path, st.st_dev, st.st_ino)
        return path

    async def run(self) -> None:
        """Serve until cancelled or ``stop``; raises what stopped the feed (a lost store, say)."""
        try:
            async with asyncio.TaskGroup() as group:  # the feed and the server live and fail together
                feeding = group.create_task(self.feed.run())
                serving = group.create_task(self._server.serve(sockets=[self.sock]))
                serving.add_done_callback(lambda _: feeding.cancel())
        except* AlosError as failed:
            raise failed.exceptions[0] from None
        finally:
            self.feed.close()

    def stop(self) -> None:
        """Ask the server to finish: open pages' streams end, then it stops; its URL file goes."""
        if self._kept is not None:
            path, dev, ino = self._kept
            with contextlib.suppress(OSError):
                st = os.stat(path, follow_symlinks=False)
                if (st.st_dev, st.st_ino) == (dev, ino):  # another console on this port may have its own there now
                    os.unlink(path)
            self._kept = None
        self.feed.close()
        self._server.should_exit = True
        self._server.stopping.set()


class _Deadline(H11Protocol):
    """HTTP/1.1 whose keep-alive timer runs from the connection's start too (uvicorn starts it only
    after a first response, so a connection that never sends a request would hold a file
    descriptor of the host for ever), that closes a connection whose first request has not come
    whole in WHOLE_REQUEST_SECONDS, and that closes at once a connection past CONNECTIONS."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > CONNECTIONS:  # a flood: never let it take the host's descriptors
            transport.close()
            return
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)
        # the keep-alive timer stops at the first byte: a request's head trickled byte by byte
        # would hold the connection for ever without this deadline on the whole first request
        self._first = self.loop.call_later(WHOLE_REQUEST_SECONDS, self._no_request)

    def _no_request(self) -> None:
        if self.cycle is None and not self.transport.is_closing():
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        first = getattr(self, "_first", None)
        if first is not None:
            first.cancel()
        super().connection_lost(exc)


class _Quiet(uvicorn.Server):
    """uvicorn's server without its signal handlers (the caller owns the process's signals) and
    without its tenth-of-a-second tick: it sleeps until told to stop."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.stopping = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def main_loop(self) -> None:
        await self.on_tick(0)  # the default headers, once (the Date header is off: it would go stale)
        await self.stopping.wait()


__all__ = ["LOOPBACK", "Server", "application", "bind", "check_host", "hosts_for"]
