"""The web console in a real browser, as a person uses it beside 'alos serve --console'.

Each test starts its own host that stays (console_support.start_console), starts scripted agents
for it from another terminal ('alos run --detach') while the page is open, and watches the pages
change by themselves (Server-Sent Events; a page that reloaded would lose the mark
watch_for_reloads puts on it). Headless chromium (Debian's) through Playwright; one browser for
the module, fresh contexts (a fresh "browser": no history, so no token) per test.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.scenarios.console_support import (
    ASK_GRANTS,
    CHROMIUM,
    Console,
    answers,
    browser_app,
    console,
    contexts,
    open_console,
    screenshot,
    still_same_document,
    turn,
    wait_in,
    wait_until,
    watch_for_reloads,
)
from tests.support import call, cli_process, stored_requests

pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed in this venv")
from playwright.sync_api import BrowserContext, Dialog, Locator, Page, expect

pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("browser"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: 'make system-packages' installs it"),
]

__all__ = ["browser_app", "console", "contexts"]  # the fixtures this module uses, imported by name

Contexts = Callable[[], BrowserContext]

WRITE = [
    turn("I will write out.txt", call("fs_write", path="out.txt", content="written from the console\n")),
    turn("done", call("proc_exit", result="wrote out.txt")),
]
ASK = [turn("I need to know", call("human_ask", question="Which file should I read?"))]


def row(page: Page, pid: int) -> Locator:
    return page.locator(f"tr#proc-{pid}")


def request_section(page: Page, rid: int) -> Locator:
    return page.locator(f"section.request#req-{rid}")


def only_request(c: Console, pid: int) -> int:
    """Return the id of the one request process ``pid`` waits on, once it asked (read in-process, as
    'alos approvals' reads it: a poll)."""
    found: list[int] = []

    def asked() -> bool:
        found[:] = [r.id for r in stored_requests(c.store) if r.pid == pid]
        return bool(found)

    wait_until(asked, f"process {pid} to ask a person")
    (rid,) = found
    return rid


# -- 1. watch an agent park, approve it once, watch it finish -----------------------------------


def test_an_agent_started_elsewhere_parks_live_and_one_approval_in_the_browser_finishes_it(
    console: Console, contexts: Contexts, ws: Path
) -> None:
    ctx = contexts()
    procs = open_console(ctx, console)
    expect(procs.locator("#procs")).to_contain_text("no processes")
    watch_for_reloads(procs)

    pid = console.detach(WRITE, *ASK_GRANTS)  # another terminal, while the page is open
    expect(row(procs, pid)).to_have_attribute("data-state", "waiting human")
    expect(row(procs, pid).locator("td.why")).to_have_text("waits for a person to answer a request")
    expect(procs.locator("#pending-count")).to_have_text("1")
    assert not (ws / "out.txt").exists()

    approvals = ctx.new_page()  # a second tab: the first keeps watching the processes
    approvals.goto(f"{console.home}/approvals")
    rid = only_request(console, pid)
    section = request_section(approvals, rid)
    expect(section.locator("p.headline")).to_contain_text("fs.write")
    expect(section.locator("pre.diff")).to_contain_text("+written from the console")
    section.get_by_role("button", name="approve once").click()
    expect(approvals.locator("#notice")).to_have_text(f"request {rid} approved once; process {pid} can go on")
    expect(section).to_have_count(0)
    expect(approvals.locator("#requests")).to_contain_text("No request waits for a person.")

    wait_until((ws / "out.txt").exists, "the approved write to reach the workspace")
    assert (ws / "out.txt").read_text() == "written from the console\n"
    expect(row(procs, pid)).to_have_attribute("data-state", "exited ok")
    expect(row(procs, pid).locator("td.why")).to_have_text("wrote out.txt")
    expect(row(procs, pid).locator("button")).to_have_count(0)  # nothing to pause or kill any more
    expect(procs.locator("#pending-count")).to_have_text("0")
    assert still_same_document(procs), "the processes page reloaded instead of updating itself"

    records = console.audit()
    (answer,) = answers(records)
    assert answer["detail"]["request"] == rid and answer["detail"]["verdict"] == "once"
    assert answer["detail"]["by"] == "console" and answer["detail"]["via"] == "console"
    writes = [r for r in records if r["syscall"] == "fs.write" and r["outcome"] == "ok"]
    assert len(writes) == 1


# -- 2. deny with a reason: the agent reads it ----------------------------------------------------


def test_a_denial_with_a_reason_typed_in_the_browser_reaches_the_agent(
    console: Console, contexts: Contexts, ws: Path
) -> None:
    ctx = contexts()
    page = open_console(ctx, console, "/approvals")
    watch_for_reloads(page)
    expect(page.locator("#requests")).to_contain_text("No request waits for a person.")
    pid = console.detach(
        [
            turn("I will write out.txt", call("fs_write", path="out.txt", content="no\n")),
            turn("then notes", call("fs_write", path="notes.md", content="yes\n"), call("proc_exit", result="noted")),
        ],
        "--allow",
        "fs:*=read,list",
        "--ask",
        "fs:out.txt=write",
        "--allow",
        "fs:notes.md=write",
    )
    rid = only_request(console, pid)
    section = request_section(page, rid)
    expect(section).to_be_visible()  # it came in by itself
    process = ctx.new_page()  # a second tab on the process, watching its conversation
    process.goto(f"{console.home}/process/{pid}")
    expect(process.locator("dd.state")).to_have_text("waiting human")
    expect(process.locator("#turn-1 p.pending")).to_have_text("no result yet")
    watch_for_reloads(process)

    reason = "not there: write notes.md instead"
    section.get_by_label("reason").fill(reason)
    section.get_by_role("button", name="deny").click()
    expect(page.locator("#notice")).to_have_text(f"request {rid} denied; process {pid} can go on")
    expect(section).to_have_count(0)
    assert still_same_document(page)

    # what the agent read, its tool result, as its conversation shows it (live, in the other tab)
    expect(process.locator("#turn-1 pre.result")).to_have_text(
        f"denied: console rejected this write on fs:{ws}/out.txt (request {rid}): {reason}"
    )
    expect(process.locator("#turn-1 ul.decisions li")).to_have_text(
        [f"fs.write fs:{ws}/out.txt: ask, parked", f"fs.write fs:{ws}/out.txt: rejected, denied"]
    )
    expect(process.locator("dd.state")).to_have_text("exited ok")
    assert still_same_document(process)
    assert (ws / "notes.md").read_text() == "yes\n" and not (ws / "out.txt").exists()

    records = console.audit()
    (answer,) = answers(records)
    assert answer["detail"] == {"by": "console", "request": rid, "text": reason, "verdict": "deny", "via": "console"}
    (refused,) = [r for r in records if r["syscall"] == "fs.write" and r["outcome"] == "denied"]
    assert refused["pid"] == pid and reason in refused["detail"]["error"]


# -- 3. pause, resume and kill from the processes page --------------------------------------------


def test_pause_resume_and_kill_from_the_processes_page(console: Console, contexts: Contexts) -> None:
    ctx = contexts()
    page = open_console(ctx, console)
    watch_for_reloads(page)
    pid = console.detach(ASK)  # it waits for an answer: alive until someone acts
    r = row(page, pid)
    expect(r).to_have_attribute("data-state", "waiting human")
    expect(page.locator("#pending-count")).to_have_text("1")

    r.get_by_role("button", name="pause").click()
    expect(page.locator("#notice")).to_have_text(f"process {pid} paused; it is now paused")
    expect(r).to_have_attribute("data-state", "paused")
    expect(r.locator("td.why")).to_have_text("paused: resume it to go on")
    expect(r.get_by_role("button", name="pause")).to_have_count(0)

    r.get_by_role("button", name="resume").click()
    expect(page.locator("#notice")).to_contain_text(f"process {pid} resumed")
    expect(r).to_have_attribute("data-state", "waiting human")
    expect(r.get_by_role("button", name="resume")).to_have_count(0)

    # the kill button should ask first (see the xfail test below): accept if it does
    page.on("dialog", lambda d: d.accept())
    r.get_by_role("button", name="kill").click()
    expect(page.locator("#notice")).to_contain_text(f"process {pid} killed")
    expect(r).to_have_attribute("data-state", "exited killed")
    expect(r.locator("button")).to_have_count(0)
    expect(page.locator("#pending-count")).to_have_text("0")  # its question went with it
    assert still_same_document(page)

    signals = [x for x in console.audit() if x["syscall"] == "proc.signal"]
    assert [(x["detail"].get("signal"), x["detail"].get("via")) for x in signals] == [
        ("pause", "console"),
        ("resume", "console"),
        ("kill", "console"),
    ]


def test_kill_and_approve_always_ask_first_and_a_dismissed_dialog_changes_nothing(
    console: Console, contexts: Contexts, ws: Path
) -> None:
    ctx = contexts()
    page = open_console(ctx, console)
    asker = console.detach(ASK)
    writer = console.detach(WRITE, *ASK_GRANTS)
    r = row(page, asker)
    expect(r).to_have_attribute("data-state", "waiting human")
    expect(row(page, writer)).to_have_attribute("data-state", "waiting human")

    said: list[str] = []

    def second_thoughts(d: Dialog) -> None:
        said.append(d.message)
        d.dismiss()

    page.on("dialog", second_thoughts)
    r.get_by_role("button", name="kill").click()
    wait_in(page, lambda: bool(said) or r.get_attribute("data-state") == "exited killed", "a dialog or the kill")
    assert said == [f"Kill process {asker} (main)?"], f"killed without asking: {r.get_attribute('data-state')}"
    assert r.get_attribute("data-state") == "waiting human"
    r.get_by_role("button", name="pause").click()  # answered only because it still lives
    expect(page.locator("#notice")).to_have_text(f"process {asker} paused; it is now paused")

    page.goto(f"{console.home}/approvals")
    rid = only_request(console, writer)
    section = request_section(page, rid)
    section.get_by_role("button", name="approve always").click()
    wait_in(page, lambda: len(said) == 2 or section.count() == 0, "a dialog or the approval")
    assert said[1] == f"Allow write on fs:{ws}/out.txt from now on, not only this once?"
    assert [q.id for q in stored_requests(console.store) if q.pid == writer] == [rid]  # still waits
    expect(section).to_be_visible()


# -- 4. the token and the CSRF token guard every request -------------------------------------------


def test_requests_without_the_token_or_with_a_wrong_csrf_token_are_refused_and_change_nothing(
    console: Console, contexts: Contexts, ws: Path
) -> None:
    ctx = contexts()
    page = open_console(ctx, console, "/approvals")
    watch_for_reloads(page)
    pid = console.detach(WRITE, *ASK_GRANTS)
    rid = only_request(console, pid)
    section = request_section(page, rid)
    expect(section).to_be_visible()
    csrf = section.locator("input[name=csrf]").first.get_attribute("value")
    assert csrf and csrf not in console.url
    answer = f"{console.home}/requests/{rid}/answer"
    mine = {"Origin": console.base}
    # the person's browser holds no cookie at all: the token is in the address, nowhere else
    assert page.url == f"{console.home}/approvals" and ctx.cookies() == []

    stranger = contexts()  # another browser: the console's address without its token
    other = stranger.new_page()
    got = other.goto(f"{console.base}/approvals")
    assert got is not None and got.status == 403
    expect(other.locator("body")).to_contain_text("this console needs its token")
    expect(other.locator("section.request")).to_have_count(0)
    wrong = "x" * len(console.token)
    for url in (
        f"{console.base}/approvals?token=not-{console.token}",
        f"{console.base}/{wrong}/approvals",
        f"{console.base}/{console.token[:-1]}/approvals",  # a token cut short is another token
        f"{console.base}/approvals/{console.token}",  # the token anywhere but first is no token
    ):
        got = other.goto(url)
        assert got is not None and got.status == 403, url
        expect(other.locator("section.request")).to_have_count(0)
    # cookies are ignored: the token in one (under the name the console once gave it, or any) opens nothing
    stranger.add_cookies(
        [{"name": n, "value": console.token, "url": console.base} for n in (f"alos_console_{console.port}", "token")]
    )
    got = other.goto(f"{console.base}/approvals")
    assert got is not None and got.status == 403
    for path in ("/approvals/list", "/events", "/audit/export.jsonl", "/static/console.css"):
        assert stranger.request.get(console.base + path).status == 403, path
    # even the right CSRF token is nothing without the access token in the path (nor in the query of a POST)
    for url in (f"{console.base}/requests/{rid}/answer", f"{console.base}/requests/{rid}/answer?token={console.token}"):
        refused = stranger.request.post(url, form={"csrf": csrf, "verdict": "once"}, headers=mine)
        assert refused.status == 403 and "needs its token" in refused.text(), (url, refused.status)

    tries: list[tuple[dict[str, str | float | bool], dict[str, str], str]] = [
        ({"csrf": "not-the-csrf-token", "verdict": "once"}, mine, "CSRF token is missing or wrong"),
        ({"verdict": "once"}, mine, "CSRF token is missing or wrong"),
        ({"verdict": "once"}, {**mine, "X-CSRF-Token": csrf[:-1]}, "CSRF token is missing or wrong"),
        ({"csrf": csrf, "verdict": "once"}, {"Origin": "http://attacker.example"}, "console's own page"),
        ({"csrf": csrf, "verdict": "once"}, {}, "console's own page"),  # no Origin, no Referer
    ]
    for form, headers, says in tries:
        refused = ctx.request.post(answer, form=form, headers=headers)
        assert refused.status == 403 and says in refused.text(), (form, headers, refused.text())
    refused = ctx.request.post(
        answer, form={"csrf": csrf, "verdict": "once"}, headers={**mine, "Sec-Fetch-Site": "cross-site"}
    )
    assert refused.status == 403 and "other sites" in refused.text()

    # a page under another name (DNS rebinding) is refused even with the token; the printed URL moves
    # the token into the path, and no cookie is ever set
    rebound = httpx.get(
        f"{console.base}/processes?token={console.token}", headers={"Host": f"attacker.example:{console.port}"}
    )
    assert rebound.status_code == 400
    rebound = httpx.get(f"{console.home}/processes", headers={"Host": f"attacker.example:{console.port}"})
    assert rebound.status_code == 400
    first = httpx.get(f"{console.base}/processes?token={console.token}")
    assert first.status_code == 303 and first.headers["location"] == f"/{console.token}/processes"
    assert "set-cookie" not in first.headers
    assert ctx.cookies() == []  # the person's browser still holds none

    # nothing changed: the request still waits, everywhere
    assert [q["id"] for q in console.pending()] == [rid]  # what 'alos approvals' lists
    assert not (ws / "out.txt").exists()
    expect(section).to_be_visible()
    assert still_same_document(page)
    again = ctx.new_page()
    again.goto(f"{console.home}/approvals")
    expect(request_section(again, rid)).to_be_visible()

    # the same post with the page's CSRF token, from the page's origin, is answered: the guards refused above
    done = ctx.request.post(answer, form={"csrf": csrf, "verdict": "once"}, headers={**mine, "HX-Request": "true"})
    assert done.status == 200 and f"request {rid} approved once" in done.text()
    expect(section).to_have_count(0)  # the open page saw it go
    wait_until((ws / "out.txt").exists, "the approved write")


# -- 5. two browsers: an answer in one clears the other ---------------------------------------------


def test_an_answer_in_one_browser_clears_the_request_from_another(
    console: Console, contexts: Contexts, ws: Path
) -> None:
    one, two = contexts(), contexts()
    first = open_console(one, console, "/approvals")
    second = open_console(two, console, "/approvals")
    for page in (first, second):
        watch_for_reloads(page)
    pid = console.detach(
        [
            turn("first write", call("fs_write", path="out.txt", content="one\n")),
            turn("second write", call("fs_write", path="out.txt", content="two\n")),
        ],
        *ASK_GRANTS,
    )
    rid = only_request(console, pid)
    for page in (first, second):
        expect(request_section(page, rid)).to_be_visible()
        expect(page.locator("#pending-count")).to_have_text("1")

    first.on("dialog", lambda d: d.accept())  # 'approve always' should ask first (see the xfail test)
    request_section(first, rid).get_by_role("button", name="approve always").click()
    expect(first.locator("#notice")).to_have_text(f"request {rid} approved always; process {pid} can go on")
    for page in (first, second):
        expect(request_section(page, rid)).to_have_count(0)
        expect(page.locator("#requests")).to_contain_text("No request waits for a person.")
        expect(page.locator("#pending-count")).to_have_text("0")
        assert still_same_document(page)
    expect(second.locator("#notice")).to_be_empty()  # the second person was told nothing they did not do

    # always: the second write to the same file does not ask again
    wait_until(lambda: (ws / "out.txt").exists() and (ws / "out.txt").read_text() == "two\n", "both writes")
    assert [a["detail"]["verdict"] for a in answers(console.audit())] == ["always"]
    assert stored_requests(console.store) == []


# -- 6. every page, seen: screenshots, and the audit page's filter, export and verification ----------


def test_each_page_screenshot_and_the_audit_page_filters_exports_and_verifies(
    console: Console, contexts: Contexts, ws: Path
) -> None:
    ctx = contexts()
    pid = console.detach(
        [
            turn("Let me read the README first.", call("fs_read", path="README.md")),
            turn("Now a second line.", call("fs_write", path="README.md", content="hello\nfrom the console\n")),
            turn("done", call("proc_exit", result="README.md has two lines")),
        ],
        *ASK_GRANTS,
        goal="add a line to README.md",
    )
    page = open_console(ctx, console)
    expect(row(page, pid)).to_have_attribute("data-state", "waiting human")
    screenshot(page, "processes")

    page.get_by_role("link", name="approvals").click()
    rid = only_request(console, pid)
    diff = request_section(page, rid).locator("pre.diff")
    expect(diff.locator("span.same")).to_contain_text(["hello"])
    expect(diff.locator("span.add")).to_have_text(["+from the console"])
    expect(diff.locator("span.del")).to_have_count(0)
    screenshot(page, "approvals")
    request_section(page, rid).get_by_role("button", name="approve once").click()
    expect(page.locator("#notice")).to_contain_text(f"request {rid} approved once")
    wait_until(lambda: "from the console" in (ws / "README.md").read_text(), "the approved write")

    page.get_by_role("link", name="processes").click()
    expect(row(page, pid)).to_have_attribute("data-state", "exited ok")
    page.get_by_role("link", name="audit").click()
    expect(page.locator("#audit-rows")).to_contain_text("proc.exit")
    page.get_by_label("syscall").fill("human.answer")
    page.get_by_role("button", name="filter").click()
    expect(page).to_have_url(f"{console.home}/audit?pid=&syscall=human.answer&decision=")
    rows = page.locator("#audit-rows tr")
    expect(rows).to_have_count(1)
    expect(rows.locator("td.detail")).to_contain_text('by="console"')
    expect(rows.locator("td.detail")).to_contain_text('via="console"')

    with page.expect_download() as got:
        page.get_by_role("link", name="export JSON Lines").click()
    exported = [json.loads(line) for line in Path(got.value.path()).read_text().splitlines()]
    records = console.audit()  # all of them: the process has exited
    assert exported == answers(records)  # the filter applies; the same fields as 'alos audit --json'
    assert got.value.suggested_filename == "alos-audit.jsonl"

    page.get_by_role("button", name="verify the chain").click()
    total = len(records)
    expect(page.locator("#verdict")).to_have_text(
        re.compile(rf"^the chain holds: {total} records, head {total}:sha256:[0-9a-f]{{64}}\s*$")
    )
    screenshot(page, "audit")  # the process page's is taken by the test of that page


# -- the process page ------------------------------------------------------------------------------


def test_the_process_page_shows_its_state_conversation_and_capabilities_and_takes_a_message(
    console: Console, contexts: Contexts, ws: Path
) -> None:
    ctx = contexts()
    pid = console.detach(
        [
            turn("Let me read the README first.", call("fs_read", path="README.md")),
            turn("I need to know", call("human_ask", question="Shall I go on?")),
        ],
        *ASK_GRANTS,
        goal="read README.md and ask",
    )
    page = open_console(ctx, console)
    expect(row(page, pid)).to_have_attribute("data-state", "waiting human")
    page.locator(f"tr#proc-{pid} td.pid a").click()
    expect(page).to_have_url(f"{console.home}/process/{pid}")
    watch_for_reloads(page)
    expect(page.locator("h1")).to_have_text(f"Process {pid} main")
    expect(page.locator("dd.state")).to_have_text("waiting human")
    expect(page.locator("dd.goal")).to_have_text("read README.md and ask")
    conversation = page.locator("section.conversation")
    expect(conversation.locator("div.msg.goal")).to_contain_text("read README.md and ask")
    expect(conversation.locator("#turn-1 code.tool")).to_have_text("fs_read")
    expect(conversation.locator("#turn-1 pre.result")).to_contain_text("hello")
    expect(conversation.locator("#turn-2 code.tool")).to_have_text("human_ask")
    expect(page.locator("section.caps")).to_contain_text(f"fs:{ws}/*")
    expect(page.locator("section.children li")).to_have_text(["none"])
    screenshot(page, "process")

    page.get_by_label("send a message").fill("please be brief")
    page.get_by_role("button", name="send").click()
    expect(page.locator("#notice")).to_have_text(
        re.compile(rf"^message \d+ queued for process {pid}; its model reads it next$")
    )
    rid = only_request(console, pid)
    assert cli_process("answer", str(rid), "yes, go on", "--store", console.store).returncode == 0  # another terminal
    expect(page.locator("dd.state")).to_have_text("exited ok")
    expect(conversation.locator("#turn-2 pre.result")).to_contain_text("yes, go on")
    expect(conversation).to_contain_text("please be brief")
    expect(page.locator("div.actions button")).to_have_count(0)
    assert still_same_document(page)


def test_a_reason_being_typed_survives_another_request_arriving(console: Console, contexts: Contexts) -> None:
    ctx = contexts()
    page = open_console(ctx, console, "/approvals")
    rid = only_request(console, console.detach(WRITE, *ASK_GRANTS))
    reason = request_section(page, rid).get_by_label("reason")
    reason.fill("not this file: half a reason")
    console.detach(ASK)  # another agent asks meanwhile
    expect(page.locator("section.request")).to_have_count(2)
    expect(reason).to_have_value("not this file: half a reason", timeout=2_000)  # or the person retypes it


def test_each_turn_shows_its_own_syscalls_when_the_script_runs_out(
    console: Console, contexts: Contexts, ws: Path
) -> None:
    ctx = contexts()
    page = open_console(ctx, console)
    pid = console.detach(
        [
            turn("first", call("fs_write", path="one.txt", content="1\n")),
            turn("second", call("fs_write", path="two.txt", content="2\n")),
        ],  # no proc_exit: the process exits when its script runs out (docs/scripted-model.md)
        "--allow",
        "fs:*=read,write",
    )
    expect(row(page, pid)).to_have_attribute("data-state", "exited ok")
    page.goto(f"{console.home}/process/{pid}")
    expect(page.locator("#turn-1 ul.decisions li")).to_have_text(
        [f"fs.write fs:{ws}/one.txt: allow, ok"], timeout=2_000
    )
    expect(page.locator("#turn-2 ul.decisions li")).to_have_text(
        [f"fs.write fs:{ws}/two.txt: allow, ok"], timeout=2_000
    )
