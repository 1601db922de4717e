"""The console's pages and the fragments that redraw them: processes, a process, approvals, audit.

Reads only, through the runtime (kernel/reads.py and kernel/pages.py); every page is bounded (a
page of the tree, of the audit log, the newest turns). Bad input (a pid that is not a number, a
page past the end, a decision that is none) is answered 400 or 404 with what to do; nothing here
changes a fact.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse

from alos import codec
from alos.console import shape
from alos.errors import NotFound
from alos.kernel import pages
from alos.requestform import form
from alos.types import AuditRecord, state_words

if TYPE_CHECKING:
    from alos.console.access import Keys
    from alos.console.feed import Feed
    from alos.runtime import Runtime

PAGE_ROWS = 100  # processes a page of the tree shows
AUDIT_ROWS = 50  # audit records a page shows
REQUESTS_SHOWN = 50  # waiting requests the approvals page shows, oldest first (the rest wait their turn)
TEXT_MOST = 4000  # characters a message, reason or answer typed in the console may have
DECISIONS = ("allow", "deny", "ask", "approved", "rejected")


class BadInput(Exception):
    """A request the console cannot answer: its status and what to do instead."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def _shown(value: Any) -> str:
    """What every {{ }} in a template prints: controls, escapes and bidi marks made visible
    (codec.escape), then HTML-escaped by autoescape."""
    return "" if value is None else codec.escape(str(value), keep_newlines=True)


@dataclass
class Pages:
    """What every page needs: the runtime it reads, the console's keys, its feed and templates."""

    rt: Runtime
    keys: Keys
    feed: Feed
    hosted: str = ""

    def __post_init__(self) -> None:
        env = Environment(
            loader=PackageLoader("alos.console", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            finalize=_shown,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.globals.update(state=state_words, why=shape.why, spent=shape.spent, when=_when, brief=_brief)
        env.globals.update(diffclass=_diffclass, most=TEXT_MOST, cut=shape.cut, said=shape.SAID_SHOWN)
        env.globals.update(root=self.keys.root)  # every link is made under the token's path (access.py)
        self.env = env

    def render(self, name: str, status: int = 200, **values: Any) -> HTMLResponse:
        """Return template ``name`` filled with ``values`` and what every page shows."""
        values.setdefault("csrf", self.keys.csrf)
        if name.endswith(".html") and name in _WHOLE:
            values.setdefault("store", self.rt.store.path)
            values.setdefault("hosted", self.hosted or _hosted(self.rt))
            values.setdefault("pending", pages.waiting(self.rt.kernel, 0)[1])
        return HTMLResponse(self.env.get_template(name).render(**values), status_code=status)

    # -- processes ------------------------------------------------------------------------

    async def processes(self, request: Request) -> Response:
        return self.render("processes.html", here="processes", **self._tree(request))

    async def process_rows(self, request: Request) -> Response:
        return self.render("proc_rows.html", **self._tree(request))

    def _tree(self, request: Request) -> dict[str, Any]:
        live = _flag(request, "live")
        number = _number(request, "page", 1)
        page = pages.tree(self.rt.kernel, live=live, offset=(number - 1) * PAGE_ROWS, limit=PAGE_ROWS)
        count = max(1, math.ceil(page.total / PAGE_ROWS))
        if number > count:
            raise BadInput(404, f"there is no page {number} of processes: there are {count}")

        def pager(n: int) -> str:
            return urlencode({"page": n, **({"live": 1} if live else {})})

        return {"page": page, "live": live, "number": number, "pages": count, "pager": pager, "query": pager(number)}

    # -- one process ----------------------------------------------------------------------

    async def process(self, request: Request) -> Response:
        return self.render("process.html", here="processes", **{**self._head(request), **self._body(request)})

    async def process_head(self, request: Request) -> Response:
        return self.render("process_head.html", **self._head(request))

    async def process_body(self, request: Request) -> Response:
        return self.render("process_body.html", **self._body(request))

    def _proc(self, request: Request) -> Any:
        pid = pid_of(request, "pid")
        try:
            return self.rt.process(pid)
        except NotFound:
            raise BadInput(404, f"no process {pid} in this store: the processes page lists them") from None

    def _head(self, request: Request) -> dict[str, Any]:
        p = self._proc(request)
        return {"p": p, "budget": pages.tree_budget(self.rt.kernel, p.pid)}

    def _body(self, request: Request) -> dict[str, Any]:
        p = self._proc(request)
        records = list(reversed(pages.audit_page(self.rt.kernel, pid=p.pid, limit=shape.TURNS_SHOWN * 8)))
        opening, turns = shape.turns(self.rt.context(p.pid), records)
        kids = pages.children(self.rt.kernel, p.pid)
        return {
            "p": p,
            "opening": opening,
            "turns": turns,
            "caps": pages.capabilities(self.rt.kernel, p.pid),
            "kids": kids,
        }

    # -- approvals ------------------------------------------------------------------------

    async def approvals(self, request: Request) -> Response:
        return self.render("approvals.html", here="approvals", **self._requests())

    async def request_list(self, request: Request) -> Response:
        shown = self._requests()
        if request.query_params.get("have") == shown["have"]:
            return Response(status_code=204)  # the same requests wait: keep what the person is typing
        return self.render("request_list.html", **shown)

    async def pending_count(self, request: Request) -> Response:
        return HTMLResponse(str(pages.waiting(self.rt.kernel, 0)[1]))

    def _requests(self) -> dict[str, Any]:
        waiting, total = pages.waiting(self.rt.kernel, REQUESTS_SHOWN)
        forms = []
        for req in waiting:
            try:
                proc = self.rt.process(req.pid)
            except NotFound:
                proc = None
            forms.append({"req": req, "form": form(req), "proc": proc})
        # what is drawn: a redraw of the same requests (and the same number beyond) keeps what is typed
        have = ",".join(str(r.id) for r in waiting) + f"+{total - len(waiting)}"
        return {"forms": forms, "have": have, "more": total - len(waiting)}

    # -- audit ----------------------------------------------------------------------------

    async def audit(self, request: Request) -> Response:
        return self.render("audit.html", here="audit", **self._audit(request))

    async def audit_rows(self, request: Request) -> Response:
        return self.render("audit_rows.html", **self._audit(request))

    def _audit(self, request: Request) -> dict[str, Any]:
        f = _filters(request)
        records = pages.audit_page(self.rt.kernel, limit=AUDIT_ROWS, **f)
        older = None
        if len(records) == AUDIT_ROWS:
            older = urlencode({k: v for k, v in {**f, "before": records[-1].seq}.items() if v is not None})
        query = urlencode({k: v for k, v in f.items() if v is not None and k != "before"})
        return {
            "records": records,
            "f": f,
            "older": older,
            "query": query,
            "decisions": DECISIONS,
            "syscalls": self.rt.syscalls(),
        }

    async def verify(self, request: Request) -> Response:
        return self.render("verdict.html", check=await pages.verify_aside(self.rt.kernel))

    async def export(self, request: Request) -> Response:
        f = _filters(request)
        f.pop("before")
        rt = self.rt

        async def lines() -> AsyncIterator[str]:
            # async: a plain iterator would be read in a worker thread, and the store's connection
            # belongs to this one; a pause between batches lets the host and other pages go on
            batch: list[str] = []
            for r in pages.audit_export(rt.kernel, **f):
                batch.append(_line(r))
                if len(batch) == 1000:
                    yield "".join(batch)
                    batch.clear()
                    await asyncio.sleep(0)
            yield "".join(batch)

        name = "alos-audit.jsonl"
        return StreamingResponse(
            lines(),
            media_type="application/x-ndjson",
            headers={"content-disposition": f'attachment; filename="{name}"'},
        )

    async def events(self, request: Request) -> Response:
        return StreamingResponse(
            self.feed.stream(), media_type="text/event-stream", headers={"x-accel-buffering": "no"}
        )


_WHOLE = frozenset({"processes.html", "process.html", "approvals.html", "audit.html", "refused.html"})


def _hosted(rt: Runtime) -> str:
    return "a host runs these processes" if rt.host_running() else "no host runs them now: 'alos serve' would"


def pid_of(request: Request, name: str) -> int:
    """Return the id in the path parameter ``name``; raises BadInput past what the store can hold."""
    value = int(request.path_params[name])
    if value >= 2**63:
        what = "process" if name == "pid" else "request"
        raise BadInput(404, f"no {what} {str(value)[:30]} in this store (ids are below 2**63)")
    return value


def _flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "")
    if value not in ("", "0", "1"):
        raise BadInput(400, f"{name} must be 0 or 1, not {value[:20]!r}")
    return value == "1"


def _number(request: Request, name: str, default: int) -> int:
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    if not value.isdigit() or not 0 < int(value) < 2**63:
        raise BadInput(400, f"{name} must be a whole number from 1, not {value[:20]!r}")
    return int(value)


def _filters(request: Request) -> dict[str, Any]:
    q = request.query_params
    pid = q.get("pid") or None
    if pid is not None and (not pid.isdigit() or int(pid) >= 2**63):
        raise BadInput(400, f"process must be a pid (a whole number), not {pid[:20]!r}")
    decision = q.get("decision") or None
    if decision is not None and decision not in DECISIONS:
        raise BadInput(400, f"decision must be one of {', '.join(DECISIONS)}, not {decision[:20]!r}")
    syscall = q.get("syscall") or None
    if syscall is not None and len(syscall) > 64:
        raise BadInput(400, "syscall must be a syscall's name, like fs.write")
    before = _number(request, "before", 0) or None
    return {"pid": int(pid) if pid is not None else None, "syscall": syscall, "decision": decision, "before": before}


def _line(r: AuditRecord) -> str:
    """Return one exported record: the fields 'alos audit --json' prints, one JSON object a line."""
    return codec.dumps(dataclasses.asdict(r)) + "\n"


def _when(t: float) -> str:
    return datetime.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def _brief(detail: dict[str, Any]) -> str:
    return shape.cut(" ".join(f"{k}={codec.dumps(v)}" for k, v in detail.items()), 300)


def _diffclass(line: str, index: int) -> str:
    if index < 2 and line.startswith(("+++", "---")):  # only a diff's first two lines name its files
        return "file"
    if line.startswith("+"):
        return "add"
    if line.startswith("-"):
        return "del"
    if line.startswith("@@"):
        return "hunk"
    return "same"


__all__ = ["AUDIT_ROWS", "PAGE_ROWS", "BadInput", "Pages", "pid_of"]
