"""Who may use the console: the token, the CSRF token, same-origin checks and safe headers.

The console binds to loopback, but any web page the person's browser opens can send requests to
loopback, and any local user can connect. So every request must carry the access token (in the
URL the console printed, then in a cookie named for this console's port: browsers send it to
every port of the host, see docs/console.md's limits), name this console as
its Host (DNS rebinding), and every request that changes something must come from this console's
own origin and carry the CSRF token. Responses forbid framing, inline scripts, sniffing,
caching and referrers (the first URL holds the token). Decides access only: what a person may
do once in is the runtime's decision, through dispatch().
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

    def cookie(self, port: int) -> str:
        """Return the name of the cookie that carries the token (cookies ignore ports: one per port)."""
        return f"alos_console_{port}"


def same(given: str | None, expected: str) -> bool:
    """Return whether ``given`` is ``expected``, in time that does not depend on where they differ."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class Gate:
    """ASGI middleware in front of every route, static files included; see the module docstring."""

    def __init__(self, app: ASGIApp, keys: Keys, hosts: frozenset[str], port: int) -> None:
        self.app = app
        self.keys = keys
        self.hosts = hosts  # the Host header values that name this console, with the port
        self.port = port
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

        await self.app(scope, receive, guarded)

    def refusal(self, scope: Scope) -> Response | None:
        """Return the response that refuses this request, or None to let it through."""
        headers = Headers(scope=scope)
        if headers.get("host", "") not in self.hosts:
            return _refuse(400, "this console answers only to its own address (the URL 'alos console' printed)")
        method = scope["method"]
        if method not in SAFE_METHODS and not self._same_origin(headers):
            return _refuse(403, "refused: a change must come from the console's own page")
        site = headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return _refuse(403, "refused: requests from other sites are not answered")
        cookie = _cookie(headers.get("cookie", ""), self.keys.cookie(self.port))
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if same(query.get("token"), self.keys.token):
            if method == "GET":  # keep the token out of the address bar, history and logs from now on
                url = URL(scope=scope)
                rest = urlencode([(k, v) for k, v in parse_qsl(url.query) if k != "token"])
                target = "/" + url.path.lstrip("/") + ("?" + rest if rest else "")  # never '//elsewhere'

                moved = RedirectResponse(target, status_code=303)
                moved.set_cookie(
                    self.keys.cookie(self.port), self.keys.token, httponly=True, samesite="strict", path="/"
                )
                return _headed(moved)
            return None
        if same(cookie, self.keys.token):
            return None
        return _refuse(
            403, "this console needs its token: open the URL that 'alos console' printed (it ends in ?token=...)"
        )

    def _same_origin(self, headers: Headers) -> bool:
        origin = headers.get("origin")
        if origin is not None:
            return origin in self.origins
        referer = headers.get("referer")
        return referer is not None and any(referer == o or referer.startswith(o + "/") for o in self.origins)


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value
    return None


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
