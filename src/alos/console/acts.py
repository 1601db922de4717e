"""What a person does in the console: answer a request, signal a process, send it a message.

Each is one call of the runtime as the host, through dispatch(), attributed to the console (the
audit record says ``via: console``; an answer is made ``by: console``): the console decides
nothing itself. A form must be a small urlencoded body carrying the CSRF token (access.py);
anything else is refused with a status and a message that says what was wrong. The runtime's
own refusals (an answered request, an exited process) come back as the page's notice.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from alos.console.access import check_csrf
from alos.console.views import TEXT_MOST, BadInput, pid_of
from alos.errors import AlosError, Conflict, NotFound

if TYPE_CHECKING:
    from alos.console.views import Pages

FORM_BYTES = 16 * 1024  # the largest form body read: the longest text allowed, URL-encoded, fits
VIA = "console"
VERDICTS = {"once": "approved once", "always": "approved always", "deny": "denied", "answer": "answered"}
SIGNALS = {
    "pause": "paused",
    "resume": "resumed",
    "kill": "killed",
    "term": "asked to finish (term)",
    "interrupt": "interrupted",
}


class Acts:
    """The console's POST routes; each returns a notice for the page (or, without htmx, goes back)."""

    def __init__(self, pages: Pages) -> None:
        self.pages = pages
        self.rt = pages.rt

    async def answer(self, request: Request) -> Response:
        form = await self._form(request)
        rid = pid_of(request, "rid")
        verdict = _choice(form, "verdict", VERDICTS)
        text = _text(form, "text" if verdict == "answer" else "reason")
        if verdict == "answer" and not text:
            raise BadInput(400, "an answer needs its text")
        req = self.rt.request(rid)
        if req is None:
            raise BadInput(404, f"no request {rid} in this store: the approvals page lists those that wait")
        try:
            await self.rt.answer(rid, verdict, text or None, by=VIA, via=VIA)
        except Conflict as err:
            return self._notice(request, f"request {rid}: {err.message}", "bad", 409)
        except AlosError as err:  # a verdict that does not fit the request (a question, a '*' resource)
            return self._notice(request, err.message, "bad", 400)
        return self._notice(request, f"request {rid} {VERDICTS[verdict]}; process {req.pid} can go on")

    async def signal(self, request: Request) -> Response:
        form = await self._form(request)
        pid = pid_of(request, "pid")
        signal = _choice(form, "signal", SIGNALS)
        got = await self._to(request, pid, self.rt.signal(pid, signal, via=VIA))
        if isinstance(got, Response):
            return got
        return self._notice(request, f"process {pid} {SIGNALS[signal]}; it is now {got.get('state')}")

    async def send(self, request: Request) -> Response:
        form = await self._form(request)
        pid = pid_of(request, "pid")
        text = _text(form, "text")
        if not text:
            raise BadInput(400, "a message needs its text")
        got = await self._to(request, pid, self.rt.send(pid, text, via=VIA))
        if isinstance(got, Response):
            return got
        return self._notice(request, f"message {got.get('id')} queued for process {pid}; its model reads it next")

    async def _to(self, request: Request, pid: int, call: Awaitable[dict[str, Any]]) -> dict[str, Any] | Response:
        """Return what ``call`` (a syscall about process ``pid``) returned, or the notice of its refusal."""
        try:
            return await call
        except NotFound:
            raise BadInput(404, f"no process {pid} in this store: the processes page lists them") from None
        except AlosError as err:  # an exited process, a resume of what no one paused: the runtime's word
            return self._notice(request, f"process {pid}: {err.message}", "bad", 409)

    async def _form(self, request: Request) -> dict[str, str]:
        kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            raise BadInput(415, "send the form as application/x-www-form-urlencoded")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > FORM_BYTES:
                raise BadInput(413, f"a form may have at most {FORM_BYTES} bytes")
        try:
            fields = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body)))
        except (UnicodeDecodeError, ValueError):
            raise BadInput(400, "the form is not valid URL-encoded UTF-8") from None
        if not check_csrf(fields, request.headers, self.pages.keys):
            raise BadInput(403, "refused: the form's CSRF token is missing or wrong; reload the page")
        return fields

    def _notice(self, request: Request, text: str, tone: str = "ok", status: int = 200) -> Response:
        if request.headers.get("hx-request") != "true":  # a plain form post (no htmx)
            if tone == "bad":  # a refusal is a page of its own, saying why
                return self.pages.render("refused.html", status=status, text=text, heading="Not done")
            return RedirectResponse(_back(request), status_code=303)  # done: back to where it came from
        return self.pages.render("notice.html", status=status, text=text, tone=tone)


def _choice(form: dict[str, str], name: str, allowed: dict[str, str]) -> str:
    value = form.get(name, "")
    if value not in allowed:
        raise BadInput(400, f"{name} must be one of {', '.join(allowed)}, not {value[:20]!r}")
    return value


def _text(form: dict[str, str], name: str) -> str:
    value = form.get(name, "").strip()
    if len(value) > TEXT_MOST:
        raise BadInput(400, f"{name} may have at most {TEXT_MOST} characters")
    return value


def _back(request: Request) -> str:
    root = request.scope.get("root_path", "")
    if "rid" in request.path_params:
        return f"{root}/approvals"
    return f"{root}/process/{request.path_params.get('pid', '')}"


__all__ = ["Acts", "FORM_BYTES", "VIA"]
