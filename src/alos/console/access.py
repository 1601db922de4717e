"""Who may use the console: the token, the CSRF token, same-origin checks and safe headers.

The console binds to loopback, but any web page the person's browser opens can send requests to
loopback, and any local user can connect. So every request must carry the access token, name
this console as its Host (DNS rebinding), and every request that changes something must come
from this console's own origin and carry the CSRF token. The token travels in the path: the URL
'alos console' prints (``/?token=T``) moves to ``/T/processes``, every link of a page is made
under ``/T/``, and nothing else is answered. Never in a cookie: browsers send a host's cookies
to every port of that host (RFC 6265 keeps no port apart), so a server an agent started on
another local port would get it the moment the person opened it. Responses forbid framing,
inline scripts, sniffing, caching and referrers (no link ever tells another site the token).
Decides access only: what a person may do once in is the runtime's decision, through dispatch().
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import URL, Headers
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
SAFE_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class Keys:
    """The secrets of one console run: made at start-up, never stored."""

    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    @property
    def root(self) -> str:
        """Return the path every page of this console lives under: the token is its first part."""
        return "/" + self.token


def same(given: str | None, expected: str) -> bool:
    """Return whether ``given`` is ``expected``, in time that does not depend on where they differ."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class Gate:
    """ASGI middleware in front of every route, static files included; see the module docstring."""

    def __init__(self, app: ASGIApp, keys: Keys, hosts: frozenset[str]) -> None:
        self.app = app
        self.keys = keys
        self.hosts = hosts  # the Host header values that name this console, with the port
        self.origins = frozenset(f"http://{h}" for h in hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = self.refusal(scope)
        if refused is not None:
            await refused(scope, receive, send)
            return

        async def guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.decode().lower() not in HEADERS]
                headers += [(k.encode(), v.encode()) for k, v in HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        rooted = {**scope, "root_path": scope.get("root_path", "") + self.keys.root}  # routes see the rest
        await self.app(rooted, receive, guarded)

    def refusal(self, scope: Scope) -> Response | None:
        """Return the response that refuses (or redirects) this request, or None to let it
        through: then its path is under the token's root."""
        headers = Headers(scope=scope)
        if headers.get("host", "") not in self.hosts:
            return _refuse(400, "this console answers only to its own address (the URL 'alos console' printed)")
        method = scope["method"]
        if method not in SAFE_METHODS and not self._same_origin(headers):
            return _refuse(403, "refused: a change must come from the console's own page")
        site = headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return _refuse(403, "refused: requests from other sites are not answered")
        path: str = scope["path"]
        first, slash, _ = path[1:].partition("/")
        if same(first, self.keys.token):
            if not slash:  # the bare root: its pages start at the process list
                return _headed(RedirectResponse(self.keys.root + "/processes", status_code=303))
            return None
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if method == "GET" and same(query.get("token"), self.keys.token):  # the URL it printed
            rest = urlencode([(k, v) for k, v in parse_qsl(URL(scope=scope).query) if k != "token"])
            target = self.keys.root + "/" + (path.lstrip("/") or "processes") + ("?" + rest if rest else "")
            return _headed(RedirectResponse(target, status_code=303))
        return _refuse(
            403,
            "this console needs its token: open the URL that 'alos console' printed (it ends in ?token=...) "
            "or, when its output was not a terminal, the one in console-PORT.url beside the store",
        )

    def _same_origin(self, headers: Headers) -> bool:
        origin = headers.get("origin")
        if origin is not None:
            return origin in self.origins
        referer = headers.get("referer")
        return referer is not None and any(referer == o or referer.startswith(o + "/") for o in self.origins)


def _refuse(status: int, text: str) -> Response:
    return _headed(PlainTextResponse(text + "\n", status_code=status))


def _headed(response: Response) -> Response:
    for key, value in HEADERS.items():
        response.headers[key] = value
    return response


def check_csrf(form: dict[str, Any], headers: Headers, keys: Keys) -> bool:
    """Return whether a change carries this console's CSRF token (form field or X-CSRF-Token)."""
    given = headers.get("x-csrf-token") or form.get("csrf")
    return same(given if isinstance(given, str) else None, keys.csrf)


__all__ = ["CSP", "Gate", "Keys", "check_csrf", "same"]
