"""Black-box: `alos console`, the local web console, driven over plain HTTP as docs/console.md shows.

One store and one console per module (the tests each act on processes and requests of their own):
a root whose goal, model replies and file name are hostile HTML / ANSI / bidi text, and nine
children, one per thing a test does to it. What is checked is what a user, or a script holding the
URL, would notice: status codes and messages, what the pages show (escaped), what the store and the
audit log say afterwards (through the CLI).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.scenarios.bb_support import ALOS, Env, alos, json_lines, make_env, result_texts, write_script

H1 = "<script>alert(1)</script>"
H2 = '"><img src=x onerror=alert(1)>'
ESC = "\x1b[2J"
BIDI = "\u202e"
KID = H2 + BIDI + ESC + "kid"
GOAL = f"{H1} goal {ESC} {BIDI} {H2}"

WRITE_ASK = {"pattern": "fs:*", "rights": ["write"], "effect": "ask"}
MODEL = {"pattern": "model:script", "rights": ["execute"]}
ASK = {"pattern": "human:console", "rights": ["ask"]}


def c(tool: str, **arguments: Any) -> dict[str, Any]:
    return {"name": tool, "arguments": arguments}


CHILDREN: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {
    KID: ([c("msg_recv")], []),
    "asker": ([c("human_ask", question=f"{H1} {ESC} {BIDI}?")], [ASK]),
    "approve-me": ([c("fs_write", path="once.txt", content="once\n")], [WRITE_ASK]),
    "twice": ([c("fs_write", path="twice.txt", content="twice\n")], [WRITE_ASK]),
    "plain-twice": ([c("fs_write", path="plain.txt", content="plain\n")], [WRITE_ASK]),
    "question": ([c("human_ask", question="what colour?")], [ASK]),
    "deny-me": ([c("fs_write", path="denied.txt", content="no\n")], [WRITE_ASK]),
    "signal-me": ([c("msg_recv")], []),
    "message-me": ([c("msg_recv")], []),
    "kill-me": ([c("msg_recv")], []),
}


def script() -> list[dict[str, Any]]:
    spawns = [
        c("proc_spawn", name=name, goal=f"goal of {name}", grants=[MODEL, *grants])
        for name, (_, grants) in CHILDREN.items()
    ]
    turns = [
        {"content": f"{H1} thinking {ESC}{BIDI}", "tool_calls": spawns},
        {
            "content": f"writing {H2}",
            "tool_calls": [c("fs_write", path=f"{H2}.txt", content=f"{H1}\n{ESC}{BIDI}line\n")],
        },
    ]
    for name, (calls, _) in CHILDREN.items():
        turns.append({"proc": name, "content": f"{name} says {H1}{ESC}", "tool_calls": calls})
    return turns


@dataclass
class Console:
    e: Env
    proc: subprocess.Popen[str]
    log: Path
    url: str  # the URL with its token, as read from the file the log names
    kept: Path  # that file
    base: str  # http://127.0.0.1:PORT, the origin
    port: int
    token: str
    web: httpx.Client  # under the token's root: web.get("/processes") is /TOKEN/processes
    csrf: str
    pids: dict[str, int] = field(default_factory=dict)  # child name -> pid
    requests: dict[int, int] = field(default_factory=dict)  # pid -> its request id

    @property
    def root(self) -> str:
        """The path every page lives under."""
        return "/" + self.token

    def post(
        self, path: str, data: dict[str, str], hx: bool = True, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        hdrs = {"HX-Request": "true"} if hx else {}
        return self.web.post(path, data={**data, "csrf": self.csrf}, headers={**hdrs, **(headers or {})})

    def ps(self, pid: int) -> dict[str, Any]:
        return next(p for p in self.e.ps() if p["pid"] == pid)


KEPT = re.compile(r"^console: (http://[^\s/]+/) \(the URL with its token is in (.+)\)$", re.M)


@dataclass
class Started:
    """An `alos console` whose output goes to a file: what it printed there, and its URL."""

    proc: subprocess.Popen[str]
    log: Path
    address: str  # what the log shows: http://HOST:PORT/, no token
    kept: Path  # the file the log names, holding the URL with its token
    url: str  # http://HOST:PORT/?token=TOKEN, read from that file

    @property
    def port(self) -> int:
        return int(self.address.rstrip("/").rsplit(":", 1)[1])

    @property
    def token(self) -> str:
        return self.url.split("?token=", 1)[1]


def start_console(e: Env, *extra: str, log_name: str = "console.log", **env: str) -> Started:
    """Start `alos console --port 0` with its output to a log file (not a terminal): return it,
    what the log says and the URL the file it names holds."""
    log = e.root / log_name
    out = log.open("w")
    proc = subprocess.Popen(
        [ALOS, "console", "--store", str(e.store), "--port", "0", *extra],
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "300", **env},  # one line, whatever the path's length
    )
    out.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = KEPT.search(log.read_text())
        if m:
            kept = Path(m.group(2))
            return Started(proc, log, m.group(1), kept, kept.read_text().rstrip("\n"))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise AssertionError(f"alos console did not say where its URL is kept: {log.read_text()}")


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    e = make_env(tmp_path_factory.mktemp("console"))
    path = write_script(e.root / "team.jsonl", script())
    run = alos(
        "run", "base", GOAL, "--workspace", str(e.ws), "--store", str(e.store), "--model", f"script:{path}",
        "--allow", "proc:spawn=spawn", "--allow", "fs:*=read", "--ask", "fs:*=write", "--approve", "never",
    )  # fmt: skip
    assert run.returncode == 3, run.stdout + run.stderr  # every process waits on a person or a message
    s = start_console(e)
    try:
        base = s.address.rstrip("/")
        web = httpx.Client(base_url=f"{base}/{s.token}", headers={"Origin": base}, timeout=20)
        page = web.get(s.url, follow_redirects=True)
        assert page.status_code == 200, page.text
        m = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert m, page.text
        cs = Console(e, s.proc, s.log, s.url, s.kept, base, s.port, s.token, web, m.group(1))
        cs.pids = {p["name"]: p["pid"] for p in e.ps() if p["parent"] is not None}
        cs.pids["main"] = 1
        cs.requests = {r["pid"]: r["id"] for r in e.approvals()}
        assert set(cs.pids) == {*CHILDREN, "main"}
        yield cs
        web.close()
    finally:
        stop(s.proc)


def request_of(con: Console, name: str) -> int:
    return con.requests[con.pids[name]]


def audit(con: Console) -> list[dict[str, Any]]:
    return con.e.audit()


def fresh(con: Console) -> httpx.Client:
    """A client at the console's origin that does not hold the token."""
    return httpx.Client(base_url=con.base, headers={"Origin": con.base}, timeout=20)


# --- the URL and the token ----------------------------------------------------------------------


def test_the_log_shows_the_address_and_where_the_url_is_kept_never_the_token(con: Console) -> None:
    log = con.log.read_text()
    assert con.token not in log
    assert "token=" not in log
    assert set(re.findall(r"http://\S+", log)) == {con.base + "/"}, log
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\?token=[A-Za-z0-9_\-]{20,}", con.url), con.url
    assert con.url.startswith(con.base + "/?") and con.port > 0
    assert con.kept == Path(os.path.realpath(con.e.store)).parent / f"console-{con.port}.url"
    st = con.kept.stat()
    assert st.st_mode & 0o777 == 0o600, oct(st.st_mode)
    assert st.st_uid == os.getuid()
    assert con.kept.read_text() == con.url + "\n"


def test_the_first_visit_moves_the_token_from_the_query_into_the_path_and_sets_no_cookie(con: Console) -> None:
    t = con.token
    with fresh(con) as web:
        moves = {
            f"/?token={t}": f"/{t}/processes",
            f"/audit?token={t}&pid=1": f"/{t}/audit?pid=1",
            f"/audit?pid=1&token={t}&decision=ask": f"/{t}/audit?pid=1&decision=ask",
            f"/{t}": f"/{t}/processes",
        }
        for asked, there in moves.items():
            r = web.get(asked)
            assert r.status_code == 303, (asked, r.status_code, r.text)
            assert r.headers["location"] == there, (asked, r.headers["location"])
            assert "set-cookie" not in r.headers, asked
        page = web.get(moves[f"/?token={t}"])
        assert page.status_code == 200 and "set-cookie" not in page.headers
        assert f'id="proc-{con.pids["asker"]}"' in page.text
        assert not web.cookies  # nothing for a browser to keep, or to send to another port
        again = web.get("/processes")  # the visits left this client nothing that opens the pages
        assert again.status_code == 403, again.status_code


NO_TOKEN_PATHS = [
    "/",
    "/processes",
    "/process/1",
    "/approvals",
    "/audit",
    "/audit/verify",
    "/audit/export.jsonl",
    "/events",
    "/static/console.css",
    "/static/vendor/htmx.min.js",
    "/static/vendor/htmx-ext-sse.min.js",
    "/nonexistent",
]


@pytest.mark.parametrize("path", NO_TOKEN_PATHS)
def test_without_the_token_everything_is_refused_403(con: Console, path: str) -> None:
    with fresh(con) as web:
        r = web.get(path)
        assert r.status_code == 403, (path, r.status_code)
        assert "token" in r.text  # says what is missing
        for secret in ("main", "approve-me", str(con.e.store), "htmx"):
            assert secret not in r.text, (path, secret)


WRONG = [
    "wrong token in the URL",
    "empty token",
    "wrong token in the path",
    "a prefix of the token in the path",
    "the token deeper in the path",
    "the token only in a cookie",
    "the token only in a header",
    "the token in the query of a change",
]


@pytest.mark.parametrize("how", WRONG)
def test_a_wrong_token_or_one_not_leading_the_path_is_refused_403(con: Console, how: str) -> None:
    t = con.token
    with fresh(con) as web:
        if how == "wrong token in the URL":
            r = web.get("/?token=" + t[:-2] + "xx")
        elif how == "empty token":
            r = web.get("/?token=")
        elif how == "wrong token in the path":
            r = web.get(f"/{t[:-2]}xx/processes")
        elif how == "a prefix of the token in the path":
            r = web.get(f"/{t[:-1]}/processes")
        elif how == "the token deeper in the path":
            r = web.get(f"/static/{t}/processes")
        elif how == "the token only in a cookie":  # the old console's cookie, and plain names
            cookie = f"alos_console_{con.port}={t}; token={t}; alos_console={t}"
            r = web.get("/processes", headers={"Cookie": cookie})
        elif how == "the token only in a header":
            r = web.get("/processes", headers={"Authorization": f"Bearer {t}", "X-Token": t})
        else:  # the printed URL's query opens pages; it never makes a change
            r = web.post(
                f"/process/1/signal?token={t}",
                data={"signal": "kill", "csrf": con.csrf},
                headers={"HX-Request": "true"},
            )
        assert r.status_code == 403, (how, r.status_code, r.text)
        assert "token" in r.text and t not in r.text
        assert "set-cookie" not in r.headers
    assert con.ps(1)["state"] == "waiting"


def test_every_link_of_a_page_stays_under_the_token(con: Console) -> None:
    attrs = r'\b(href|src|action|hx-get|hx-post|sse-connect)="([^"]*)"'
    for path in ["/processes", "/process/1", f"/process/{con.pids['message-me']}", "/approvals", "/audit"]:
        html = con.web.get(path).text
        links = re.findall(attrs, html)
        assert len(links) > 5, (path, links)
        astray = [(a, v) for a, v in links if not v.startswith(con.root + "/")]
        assert not astray, (path, astray)  # a link outside /TOKEN/ would be refused: a dead page
        assert "token=" not in html  # no URL in a page carries the token where a log would keep it


# --- Host, Origin, cross-site, CSRF -------------------------------------------------------------


@pytest.mark.parametrize("host", ["evil.example:{port}", "evil.example", "127.0.0.1.nip.io:{port}", "127.0.0.1:1"])
def test_a_request_naming_another_host_is_refused_400(con: Console, host: str) -> None:
    forged = host.format(port=con.port)
    page = con.web.get("/processes", headers={"Host": forged})
    assert page.status_code == 400, page.text
    change = con.post("/process/1/signal", {"signal": "pause"}, headers={"Host": forged})
    assert change.status_code == 400
    assert con.ps(1)["state"] != "paused"


def _nothing_changed(con: Console, before_audit: int, strict: bool = True) -> None:
    """Nothing changed since the audit held ``before_audit`` records. ``strict``: not even a record
    (a refusal at the door); otherwise only refused syscalls may have been recorded, none that did
    anything."""
    after = audit(con)
    if strict:
        assert len(after) == before_audit, f"a refused request left audit records: {after[before_audit:]}"
    else:
        assert all(a["outcome"] != "ok" for a in after[before_audit:]), after[before_audit:]
    assert con.ps(1)["state"] == "waiting"  # the root, every refused change's target, is as it was
    pending = {r["id"] for r in con.e.approvals()}
    assert con.requests[1] in pending  # the hostile write still waits


def test_changes_from_a_foreign_origin_no_origin_or_cross_site_are_refused_403(con: Console) -> None:
    before = len(audit(con))
    kill = "/process/1/signal"
    answer = f"/requests/{con.requests[1]}/answer"
    cases = [
        (kill, {"signal": "kill"}, {"Origin": "http://evil.example"}),
        (kill, {"signal": "kill"}, {"Origin": "null"}),
        (kill, {"signal": "kill"}, {"Origin": f"http://127.0.0.1:{con.port + 1}"}),
        (kill, {"signal": "kill"}, {"Origin": con.base, "Sec-Fetch-Site": "cross-site"}),
        (answer, {"verdict": "once"}, {"Origin": "http://evil.example"}),
        ("/process/1/send", {"text": "hi"}, {"Origin": "http://evil.example"}),
    ]
    for path, data, headers in cases:
        r = con.web.post(path, data={**data, "csrf": con.csrf}, headers={"HX-Request": "true", **headers})
        assert r.status_code == 403, (path, headers, r.status_code, r.text)
    no_origin = httpx.post(con.base + con.root + kill, data={"signal": "kill", "csrf": con.csrf}, timeout=20)
    assert no_origin.status_code == 403
    _nothing_changed(con, before)


@pytest.mark.parametrize("csrf", [None, "", "wrong", "CSRF-of-another-start"])
def test_a_change_without_the_csrf_token_or_with_a_wrong_one_is_refused_and_changes_nothing(
    con: Console, csrf: str | None
) -> None:
    before = len(audit(con))
    routes = [
        ("/process/1/signal", {"signal": "kill"}),
        (f"/requests/{con.requests[1]}/answer", {"verdict": "once"}),
        ("/process/1/send", {"text": "hi"}),
    ]
    for path, data in routes:
        form = dict(data) if csrf is None else {**data, "csrf": csrf}
        r = con.web.post(path, data=form, headers={"HX-Request": "true"})
        assert r.status_code == 403, (path, r.status_code, r.text)
        assert "CSRF" in r.text
        hdr = con.web.post(path, data=data, headers={"X-CSRF-Token": csrf or "", "HX-Request": "true"})
        assert hdr.status_code == 403, (path, "header", hdr.status_code)
    _nothing_changed(con, before)


# --- bad input on every route -------------------------------------------------------------------

BAD_GETS = [
    ("/process/999999", 404, "no process 999999"),
    ("/process/0", 404, "no process 0"),
    ("/process/abc", 404, "/process/abc"),
    ("/process/-1", 404, ""),
    ("/process/99999999999999999999999999", 404, "no process"),
    ("/process/9223372036854775807", 404, "no process 9223372036854775807"),
    ("/processes?page=999", 404, "no page 999"),
    ("/processes?page=0", 400, "page"),
    ("/processes?page=-1", 400, "page"),
    ("/processes?page=abc", 400, "page"),
    ("/processes?page=99999999999999999999999999", 400, "page"),
    ("/processes/rows?page=999", 404, "no page 999"),
    ("/audit?decision=bogus", 400, "decision must be one of"),
    ("/audit?pid=abc", 400, "pid"),
    ("/audit?pid=-1", 400, "pid"),
    ("/audit?before=0", 400, "before"),
    ("/audit?before=-5", 400, "before"),
    ("/audit?before=abc", 400, "before"),
    ("/audit?before=99999999999999999999999999", 400, "before"),
    ("/audit/rows?decision=%3Cscript%3E", 400, "decision"),
    ("/audit/export.jsonl?decision=bogus", 400, "decision"),
    ("/audit/export.jsonl?pid=abc", 400, "pid"),
    ("/requests/1/answer", 405, "GET"),
    ("/process/1/signal", 405, "GET"),
    ("/process/1/send", 405, "GET"),
    ("/no/such/page", 404, "/no/such/page"),
]


@pytest.mark.parametrize(("path", "status", "says"), BAD_GETS)
def test_bad_get_is_refused_with_a_useful_message(con: Console, path: str, status: int, says: str) -> None:
    r = con.web.get(path)
    assert r.status_code == status, (path, r.status_code, r.text[-400:])
    assert says in r.text, r.text[-400:]
    assert "Traceback" not in r.text
    assert H1 not in r.text


def test_a_page_past_the_end_of_the_audit_is_empty_not_an_error(con: Console) -> None:
    r = con.web.get("/audit?before=1")
    assert r.status_code == 200
    assert '<tr class="decision' not in r.text
    assert "no audit record matches" in r.text


def _bad_posts(con: Console) -> list[tuple[str, str, dict[str, Any], int, str]]:
    sig = "/process/1/signal"
    ans = f"/requests/{con.requests[1]}/answer"
    send = "/process/1/send"
    form = "application/x-www-form-urlencoded"
    return [
        ("json body", sig, {"json": {"signal": "kill", "csrf": con.csrf}}, 415, "x-www-form-urlencoded"),
        (
            "text/plain body",
            sig,
            {"content": f"signal=kill&csrf={con.csrf}", "headers": {"Content-Type": "text/plain"}},
            415,
            "",
        ),
        (
            "non-UTF-8 body",
            ans,
            {
                "content": b"verdict=once&csrf=" + con.csrf.encode() + b"&reason=\xff\xfe",
                "headers": {"Content-Type": form},
            },
            400,
            "UTF-8",
        ),
        (
            "oversized body",
            send,
            {"content": f"csrf={con.csrf}&text=".encode() + b"a" * 2_000_000, "headers": {"Content-Type": form}},
            413,
            "at most",
        ),
        ("missing verdict", ans, {"data": {"csrf": con.csrf}}, 400, "verdict must be one of"),
        ("bad verdict", ans, {"data": {"verdict": "yes please", "csrf": con.csrf}}, 400, "verdict must be one of"),
        ("missing signal", sig, {"data": {"csrf": con.csrf}}, 400, "signal must be one of"),
        ("bad signal", sig, {"data": {"signal": "SIGKILL", "csrf": con.csrf}}, 400, "signal must be one of"),
        ("empty message", send, {"data": {"text": "", "csrf": con.csrf}}, 400, "text"),
        ("unknown pid", "/process/999999/signal", {"data": {"signal": "kill", "csrf": con.csrf}}, 404, "999999"),
        ("non-numeric pid", "/process/abc/signal", {"data": {"signal": "kill", "csrf": con.csrf}}, 404, ""),
        ("message to unknown pid", "/process/999999/send", {"data": {"text": "x", "csrf": con.csrf}}, 404, "999999"),
        (
            "unknown request",
            "/requests/999999/answer",
            {"data": {"verdict": "once", "csrf": con.csrf}},
            404,
            "no request 999999",
        ),
        ("request 0", "/requests/0/answer", {"data": {"verdict": "once", "csrf": con.csrf}}, 404, ""),
        ("non-numeric request", "/requests/abc/answer", {"data": {"verdict": "once", "csrf": con.csrf}}, 404, ""),
    ]


def test_malformed_changes_are_refused_with_a_useful_status_and_change_nothing(con: Console) -> None:
    before = len(audit(con))
    problems = []
    for what, path, kw, status, says in _bad_posts(con):
        r = con.web.post(path, headers={"HX-Request": "true", **kw.pop("headers", {})}, **kw)
        if r.status_code != status or says not in r.text or "Traceback" in r.text:
            problems.append(f"{what}: POST {path} -> {r.status_code} {r.text[-200:]!r} (wanted {status}, {says!r})")
    assert not problems, "\n".join(problems)
    _nothing_changed(con, before, strict=False)


HUGE = str(2**63)


@pytest.mark.parametrize(
    ("path", "data"),
    [
        (f"/requests/{HUGE}/answer", {"verdict": "once"}),
        (f"/process/{HUGE}/signal", {"signal": "pause"}),
        (f"/process/{HUGE}/send", {"text": "x"}),
    ],
)
def test_a_huge_id_in_a_change_is_not_found(con: Console, path: str, data: dict[str, str]) -> None:
    r = con.post(path, data)
    assert r.status_code == 404, (r.status_code, r.text[-300:])
    assert "no process" in r.text or "no request" in r.text


# --- the pages ----------------------------------------------------------------------------------


def form_with(html: str, needle: str) -> str:
    """The <form>...</form> of ``html`` that holds ``needle``."""
    forms = [f for f in re.findall(r"<form\b.*?</form>", html, re.S) if needle in f]
    assert len(forms) == 1, (needle, html)
    return str(forms[0])


def test_the_processes_page_shows_the_tree_states_and_buttons(con: Console) -> None:
    page = con.web.get("/processes").text
    rows = re.findall(r'<tr id="proc-(\d+)"', page)
    assert rows[0] == "1" and set(map(int, rows)) >= set(con.pids.values())  # root first, children under it
    asker = re.search(rf'<tr id="proc-{con.pids["asker"]}".*?</tr>', page, re.S)
    assert asker and "waiting human" in asker.group(0)
    waiter = re.search(rf'<tr id="proc-{con.pids["message-me"]}".*?</tr>', page, re.S)
    assert waiter and "waiting message" in waiter.group(0)
    assert 'value="pause"' in waiter.group(0)
    assert "hx-confirm=" in form_with(waiter.group(0), 'value="kill"')  # kill asks first


def test_the_approval_shows_the_diff_and_the_fields_the_terminal_shows(con: Console) -> None:
    page = con.web.get("/approvals").text
    rid = request_of(con, "approve-me")
    section = re.search(rf'<section class="request" id="req-{rid}".*?</section>', page, re.S)
    assert section, page
    body = section.group(0)
    assert "fs.write" in body and "once.txt" in body
    terminal = next(r for r in con.e.approvals() if r["id"] == rid)
    assert terminal["detail"]["digest"] in body
    assert '<pre class="diff">' in body and '<span class="add">+once</span>' in body
    for verdict in ("once", "always", "deny"):
        assert f'value="{verdict}"' in body
    assert "hx-confirm=" in form_with(body, 'value="always"')  # approve always asks first
    question = re.search(rf'id="req-{request_of(con, "question")}".*?</section>', page, re.S)
    assert question and "what colour?" in question.group(0) and 'name="text"' in question.group(0)


def test_the_diff_of_a_new_file_has_only_added_lines(con: Console) -> None:
    page = con.web.get("/approvals").text
    rid = request_of(con, "approve-me")
    diff = re.search(rf'id="req-{rid}".*?<pre class="diff">(.*?)</pre>', page, re.S)
    assert diff
    kinds = re.findall(r'<span class="(\w+)">', diff.group(1))
    assert kinds and set(kinds) <= {"file", "hunk", "add"}, kinds


def test_approve_in_the_console_is_audited_by_console_and_disappears(con: Console) -> None:
    rid = request_of(con, "approve-me")
    r = con.post(f"/requests/{rid}/answer", {"verdict": "once"})
    assert r.status_code == 200, r.text
    assert f"request {rid}" in r.text and "approved" in r.text
    assert f'id="req-{rid}"' not in con.web.get("/approvals/list").text
    assert f'id="req-{rid}"' not in con.web.get("/approvals").text
    answers = [a for a in audit(con) if a["syscall"] == "human.answer" and a["detail"].get("request") == rid]
    assert len(answers) == 1, answers
    assert answers[0]["outcome"] == "ok"
    assert answers[0]["detail"]["by"] == "console" and answers[0]["detail"]["via"] == "console"
    assert answers[0]["detail"]["verdict"] == "once"
    stored = next(x for x in con.e.approvals(all_=True) if x["id"] == rid)
    assert stored["state"] == "approved" and stored["answered_by"] == "console"


def test_deny_in_the_console_keeps_the_reason_for_the_agent(con: Console) -> None:
    rid = request_of(con, "deny-me")
    r = con.post(f"/requests/{rid}/answer", {"verdict": "deny", "reason": f"not {H1} today"})
    assert r.status_code == 200, r.text
    assert H1 not in r.text
    stored = next(x for x in con.e.approvals(all_=True) if x["id"] == rid)
    assert stored["state"] == "rejected" and stored["answered_by"] == "console"
    assert stored["answer"] == f"not {H1} today"


def test_answer_a_question_in_the_console(con: Console) -> None:
    rid = request_of(con, "question")
    r = con.post(f"/requests/{rid}/answer", {"verdict": "answer", "text": "blue"})
    assert r.status_code == 200, r.text
    stored = next(x for x in con.e.approvals(all_=True) if x["id"] == rid)
    assert stored["answer"] == "blue" and stored["answered_by"] == "console"
    rec = [a for a in audit(con) if a["syscall"] == "human.answer" and a["detail"].get("request") == rid]
    assert rec and rec[-1]["detail"]["via"] == "console"


def test_a_request_answered_elsewhere_first_is_refused_naming_who(con: Console) -> None:
    rid = request_of(con, "twice")
    first = con.e.cmd("approve", str(rid))
    assert first.returncode == 0, first.stderr
    r = con.post(f"/requests/{rid}/answer", {"verdict": "deny", "reason": "too late"})
    assert r.status_code == 409, (r.status_code, r.text)
    assert "already approved by" in r.text
    stored = next(x for x in con.e.approvals(all_=True) if x["id"] == rid)
    assert stored["state"] == "approved" and stored["answered_by"] != "console"
    again = con.post(f"/requests/{rid}/answer", {"verdict": "once"})
    assert again.status_code == 409


def test_a_plain_form_answer_to_a_request_answered_elsewhere_says_so(con: Console) -> None:
    rid = request_of(con, "plain-twice")
    assert con.e.cmd("approve", str(rid)).returncode == 0
    r = con.post(f"/requests/{rid}/answer", {"verdict": "deny"}, hx=False)
    if r.status_code in (302, 303):
        assert r.headers["location"].startswith(con.root + "/"), r.headers["location"]  # back under the token
        r = con.web.get(con.base + r.headers["location"])
    assert r.status_code == 409 or "already approved" in r.text, (r.status_code, r.text[-300:])


def test_pause_and_resume_in_the_console_are_audited_via_console(con: Console) -> None:
    pid = con.pids["signal-me"]
    r = con.post(f"/process/{pid}/signal", {"signal": "pause"})
    assert r.status_code == 200 and f"process {pid} paused" in r.text, r.text
    assert con.ps(pid)["state"] == "paused"
    page = con.web.get("/processes").text
    row = re.search(rf'<tr id="proc-{pid}".*?</tr>', page, re.S)
    assert row and 'value="resume"' in row.group(0)
    r = con.post(f"/process/{pid}/signal", {"signal": "resume"})
    assert r.status_code == 200, r.text
    assert con.ps(pid)["state"] in ("runnable", "waiting")  # no longer paused: the next host runs it
    signals = [a for a in audit(con) if a["syscall"] == "proc.signal" and a["detail"].get("pid") == pid]
    assert [s["detail"]["signal"] for s in signals] == ["pause", "resume"]
    assert all(s["detail"]["via"] == "console" and s["pid"] == 0 for s in signals)


def test_kill_in_the_console_ends_it_and_live_only_hides_it(con: Console) -> None:
    pid = con.pids["kill-me"]
    r = con.post(f"/process/{pid}/signal", {"signal": "kill"})
    assert r.status_code == 200, r.text
    p = con.ps(pid)
    assert (p["state"], p["exit"]) == ("exited", "killed")
    assert f'id="proc-{pid}"' in con.web.get("/processes").text
    assert f'id="proc-{pid}"' not in con.web.get("/processes?live=1").text
    again = con.post(f"/process/{pid}/signal", {"signal": "pause"})
    assert again.status_code in (400, 409), again.text  # a dead process takes no signal, and says so
    assert str(pid) in again.text


def test_a_message_sent_in_the_console_is_queued_and_audited(con: Console) -> None:
    pid = con.pids["message-me"]
    page = con.web.get(f"/process/{pid}").text
    assert f'action="{con.root}/process/{pid}/send"' in page  # the page carries the form
    r = con.post(f"/process/{pid}/send", {"text": "the word is pelican"})
    assert r.status_code == 200 and "queued" in r.text, r.text
    sent = [a for a in audit(con) if a["syscall"] == "msg.send" and a["detail"].get("pid") == pid]
    assert len(sent) == 1 and sent[0]["detail"]["body"] == "the word is pelican"
    assert sent[0]["detail"]["via"] == "console"


# --- audit: filter, export, verify --------------------------------------------------------------


def _export(con: Console, query: str) -> list[dict[str, Any]]:
    r = con.web.get("/audit/export.jsonl" + query)
    assert r.status_code == 200, r.text
    assert "ndjson" in r.headers["content-type"] or "jsonl" in r.headers["content-type"]
    return json_lines(r.text)


def test_export_json_lines_matches_alos_audit_json_for_the_same_filter(con: Console) -> None:
    pid = con.pids["approve-me"]
    assert _export(con, f"?pid={pid}") == con.e.audit(pid)
    assert _export(con, "?pid=0") == con.e.audit(0)
    everything = _export(con, "")
    assert everything == con.e.audit()
    cli_ask = [a for a in everything if a["decision"] == "ask"]
    assert cli_ask and _export(con, "?decision=ask") == cli_ask
    asks_of_1 = [a for a in con.e.audit(1) if a["decision"] == "ask" and a["syscall"] == "fs.write"]
    assert _export(con, "?pid=1&decision=ask&syscall=fs.write") == asks_of_1


def test_audit_filter_by_process_syscall_and_decision(con: Console) -> None:
    page = con.web.get("/audit?pid=1&syscall=fs.write&decision=ask").text
    rows = re.findall(r"<tr class=\"decision-(\w+)\"><td>(\d+)</td>", page)
    want = [a for a in con.e.audit(1) if a["syscall"] == "fs.write" and a["decision"] == "ask"]
    assert [int(s) for _, s in rows] == sorted((a["seq"] for a in want), reverse=True)  # newest first
    assert all(d == "ask" for d, _ in rows)


def test_verify_shows_the_same_chain_head_as_alos_audit_verify(con: Console) -> None:
    r = con.web.get("/audit/verify")
    cli = alos("audit", "verify", "--json", "--store", str(con.e.store))
    assert cli.returncode == 0, cli.stderr
    head = json.loads(cli.stdout)["head"]
    assert r.status_code == 200
    assert head in r.text, (head, r.text)
    assert "holds" in r.text or "intact" in r.text


def test_every_link_on_the_audit_page_leads_somewhere(con: Console) -> None:
    page = con.web.get("/audit").text
    links = sorted(set(re.findall(rf'href="({re.escape(con.root)}/process/\d+)"', page)))
    assert links
    broken = [link for link in links if con.web.get(con.base + link).status_code != 200]
    assert not broken, broken


# --- nothing a process chose runs in the page ---------------------------------------------------

PAGES = [
    "/processes",
    "/processes?live=1",
    "/processes/rows?page=1",
    "/process/1",
    "/process/1/head",
    "/process/1/body",
    "/process/2",
    "/approvals",
    "/approvals/list",
    "/audit",
    "/audit/rows",
    "/audit?pid=2",
]


@pytest.mark.parametrize("path", PAGES)
def test_hostile_names_goals_and_replies_are_escaped_on_every_page(con: Console, path: str) -> None:
    r = con.web.get(path)
    assert r.status_code == 200, r.text[-300:]
    html = r.text
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert "onerror=alert(1)>" not in html.replace("onerror=alert(1)&gt;", "")
    assert "\x1b" not in html, "a raw ESC reached the page"
    assert "\u202e" not in html, "a raw bidi override reached the page"
    for ch in html:
        assert ch in "\n\t" or not (ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0), f"raw control character {ch!r}"
    scripts = re.findall(r"<script\b[^>]*>", html)
    own = rf'<script src="{re.escape(con.root)}/static/vendor/[\w.-]+\.js">'
    assert all(re.fullmatch(own, s) for s in scripts), scripts  # none in a fragment


def test_hostile_text_is_shown_visibly_escaped_where_it_belongs(con: Console) -> None:
    kid = con.pids[KID]
    procs = con.web.get("/processes").text
    row = re.search(rf'<tr id="proc-{kid}".*?</tr>', procs, re.S)
    assert row and "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;\\u202e\\x1b[2Jkid" in row.group(0)
    one = con.web.get("/process/1").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; goal \\x1b[2J \\u202e" in one  # the goal
    assert "&lt;script&gt;alert(1)&lt;/script&gt; thinking \\x1b[2J\\u202e" in one  # what the model said
    approvals = con.web.get("/approvals").text
    assert '<span class="add">+&lt;script&gt;alert(1)&lt;/script&gt;</span>' in approvals  # in the diff
    assert "\\x1b[2J\\u202eline" in approvals


# --- headers on every response ------------------------------------------------------------------


def test_every_response_carries_the_content_security_policy(con: Console) -> None:
    with fresh(con) as anon:
        responses = {
            "token moved": anon.get(f"/?token={con.token}"),
            "bare root": anon.get(con.root),
            "403 wrong token": anon.get(f"/{con.token[::-1]}/processes"),
            "403 no token": anon.get("/processes"),
            "403 static": anon.get("/static/console.css"),
            "400 host": con.web.get("/processes", headers={"Host": "evil.example"}),
            "403 origin": con.web.post("/process/1/signal", data={"signal": "pause"}, headers={"Origin": "http://x"}),
        }
    for path in ["/processes", "/process/1", "/approvals", "/audit", "/audit/verify", "/audit/export.jsonl",
                 "/static/console.css", "/static/vendor/htmx.min.js", "/process/999999", "/audit?decision=x",
                 "/process/1/signal"]:  # fmt: skip
        responses[path] = con.web.get(path)
    responses["403 csrf"] = con.web.post("/process/1/signal", data={"signal": "pause", "csrf": "no"})
    responses["415"] = con.web.post("/process/1/signal", json={})
    for what, r in responses.items():
        csp = r.headers.get("content-security-policy", "")
        assert "default-src 'none'" in csp, (what, r.status_code, csp)
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, (what, csp)
        assert r.headers.get("referrer-policy") == "no-referrer", what
    with con.web.stream("GET", "/events") as ev:
        assert ev.status_code == 200
        assert "default-src 'none'" in ev.headers.get("content-security-policy", "")


# --- live ---------------------------------------------------------------------------------------


def test_the_live_stream_names_what_changed_in_another_terminal(con: Console) -> None:
    pid = con.pids[KID]
    seen: list[str] = []
    with con.web.stream("GET", "/events", timeout=httpx.Timeout(10.0)) as ev:
        assert ev.status_code == 200
        assert ev.headers["content-type"].startswith("text/event-stream")
        lines = ev.iter_lines()
        for line in lines:  # the stream's opening comment: it is connected
            if line.startswith(":") or line.startswith("retry"):
                break
        sent = con.e.cmd("send", str(pid), "from the terminal")
        assert sent.returncode == 0, sent.stderr
        deadline = time.monotonic() + 10
        for line in lines:
            if line.startswith("event:"):
                seen.append(line.split(":", 1)[1].strip())
            if f"proc-{pid}" in seen or time.monotonic() > deadline:
                break
    assert f"proc-{pid}" in seen, seen


# --- starting it: off a terminal, another address, a taken port, a new token ----------------------


def test_a_console_writing_to_a_file_keeps_the_token_out_and_its_url_file_goes_on_sigterm(con: Console) -> None:
    """Off a terminal the URL goes to a 0600 file beside the store (by its real path), whatever the
    environment claims (FORCE_COLOR), and SIGTERM removes that file and no other console's."""
    link = con.e.root / "via-link"
    link.symlink_to(con.e.store.parent, target_is_directory=True)
    store = link / con.e.store.name
    log = con.e.root / "console-file.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [ALOS, "console", "--store", str(store), "--port", "0"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "1", "COLUMNS": "300"},
        )
    try:
        deadline = time.monotonic() + 30
        while not (m := KEPT.search(re.sub(r"\x1b\[[0-9;]*m", "", log.read_text()))):  # FORCE_COLOR styles it
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        address, kept = m.group(1), Path(m.group(2))
        port = int(address.rstrip("/").rsplit(":", 1)[1])
        assert port != con.port
        assert kept == Path(os.path.realpath(con.e.store)).parent / f"console-{port}.url", kept
        assert kept.stat().st_mode & 0o777 == 0o600, oct(kept.stat().st_mode)
        url = kept.read_text()
        assert re.fullmatch(rf"{re.escape(address)}\?token=[A-Za-z0-9_\-]{{20,}}\n", url), url
        token = url.strip().split("?token=", 1)[1]
        assert token != con.token
        assert token not in log.read_text()
        with httpx.Client(timeout=20) as web:
            assert web.get(url.strip(), follow_redirects=True).status_code == 200  # the file's URL opens it
            assert web.get(f"{address}{con.token}/processes").status_code == 403  # not the other one's
            assert web.get(f"{con.base}/{token}/processes").status_code == 403  # nor the other way round
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, log.read_text()
        assert not kept.exists(), "the URL file outlived the console"
        assert con.kept.read_text() == con.url + "\n"  # the running console's file is left alone
        assert token not in log.read_text() and "token=" not in log.read_text(), log.read_text()
    finally:
        stop(proc)


def test_a_process_whose_workspace_holds_the_store_cannot_read_the_url_file(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    made = e.run([{"content": "", "tool_calls": [c("proc_exit", result="a store")]}])
    assert made.returncode == 0, made.stdout + made.stderr
    s = start_console(e)
    try:
        rel = os.path.relpath(s.kept, e.root)  # state/console-PORT.url, under the workspace
        peek = write_script(
            e.root / "peek.jsonl",
            [
                {"content": "", "tool_calls": [c("fs_read", path=rel)]},
                {"content": "", "tool_calls": [c("fs_list", path=os.path.dirname(rel))]},
                {"content": "", "tool_calls": [c("proc_exit", result="looked")]},
            ],
        )
        cp = alos(
            "run", "base", "peek", "--workspace", str(e.root), "--store", str(e.store), "--model", f"script:{peek}",
            "--allow", "fs:*=read,list", "--approve", "never", "--json",
        )  # fmt: skip
        assert cp.returncode == 0, cp.stdout + cp.stderr
        seen = result_texts(cp.stdout)
        assert len(seen) == 2 and all(t.startswith("denied:") and "store" in t for t in seen), seen
        assert s.token not in cp.stdout + cp.stderr
        assert s.kept.read_text() == s.url + "\n"  # there all along
    finally:
        stop(s.proc)


@pytest.mark.slow
def test_host_0000_warns_a_new_start_has_a_new_token_and_a_taken_port_is_a_clear_error(con: Console) -> None:
    taken = alos("console", "--store", str(con.e.store), "--port", str(con.port), timeout=30)
    assert taken.returncode != 0
    out = taken.stdout + taken.stderr
    assert str(con.port) in out and "Traceback" not in out, out
    assert re.search(r"in use|taken|busy", out, re.I), out
    assert con.kept.read_text() == con.url + "\n"  # the refused start did not write over the URL file
    s = start_console(con.e, "--host", "0.0.0.0", log_name="console-any.log")
    try:
        text = s.log.read_text()
        assert re.search(r"warn|anyone|other machines", text, re.I), text
        assert s.address == f"http://0.0.0.0:{s.port}/" and s.token not in text
        assert s.token != con.token
        named = {"Host": f"0.0.0.0:{s.port}"}  # the address it printed, reached over loopback
        with httpx.Client(base_url=f"http://127.0.0.1:{s.port}", headers=named, timeout=20) as web:
            assert web.get(f"/{s.token}/processes").status_code == 200
            assert web.get(f"/?token={con.token}").status_code == 403  # old URLs stop working
            assert web.get(f"/{con.token}/processes").status_code == 403
    finally:
        stop(s.proc)
    assert not s.kept.exists()
