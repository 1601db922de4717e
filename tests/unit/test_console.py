"""The console's routes in process (ASGI, no socket): every route's bad input, the gate, and what a
page shows. The browser and black-box tests drive a real server; these pin each refusal."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import alos
from alos.console import views
from alos.console.access import CSP, Keys
from alos.console.app import application
from alos.console.feed import Feed, topics
from alos.kernel.pages import News
from tests.support import call, grants, write_script

PORT = 8470
BASE = f"http://127.0.0.1:{PORT}"
HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>\x1b[2J\u202e'


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A store with a process waiting on an approval (a hostile name and goal), and one exited."""
    ws = tmp_path / "ws"
    ws.mkdir()
    store = str(tmp_path / "store" / "store.db")
    rt = alos.open(store, host=True)
    turns = [{"proc": HOSTILE, "content": "write", "tool_calls": [call("fs_write", path="out.txt", content="new\n")]}]
    model = write_script(tmp_path / "s.jsonl", turns)
    pid = asyncio.run(
        rt.spawn("base", HOSTILE, workspace=str(ws), model=model, grants=grants(ws, ask=("fs:*=write",)), name=HOSTILE)
    )
    asyncio.run(rt.run())
    keys = Keys()
    try:
        yield {"rt": rt, "pid": pid, "keys": keys, "request": rt.requests()[0].id, "ws": ws}
    finally:
        rt.close()


def web(world: dict[str, Any], **headers: str) -> httpx.AsyncClient:
    rt, keys = world["rt"], world["keys"]
    app = application(rt, keys, Feed(rt), frozenset({f"127.0.0.1:{PORT}", f"localhost:{PORT}"}))
    return httpx.AsyncClient(  # every path under the token's root
        transport=httpx.ASGITransport(app=app), base_url=BASE + keys.root, headers={"origin": BASE, **headers}
    )


def get(world: dict[str, Any], path: str, **headers: str) -> httpx.Response:
    async def go() -> httpx.Response:
        async with web(world, **headers) as client:
            return await client.get(path)

    return asyncio.run(go())


def post(world: dict[str, Any], path: str, data: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        async with web(world, **kw.pop("headers", {})) as client:
            form = {"csrf": world["keys"].csrf, **(data or {})}
            return await client.post(path, data=form, **kw)

    return asyncio.run(go())


# -- the gate -------------------------------------------------------------------------------


def test_every_page_needs_the_token_in_its_path_and_the_printed_url_moves_it_there(world: dict[str, Any]) -> None:
    rt, keys = world["rt"], world["keys"]
    app = application(rt, keys, Feed(rt), frozenset({f"127.0.0.1:{PORT}"}))
    root = keys.root

    async def go() -> dict[str, Any]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
            bare = [
                await client.get(p) for p in ("/processes", "/static/console.css", "/events", "/audit/export.jsonl")
            ]
            return {
                "bare": bare,
                "wrong": [
                    await client.get("/processes?token=" + keys.token[:-1] + "x"),
                    await client.get(root[:-1] + "x/processes"),
                    await client.get(root + "x/processes"),
                    await client.get("/x" + root + "/processes"),
                ],
                # a cookie is no key: browsers send it to every port of this host
                "cookie": await client.get("/processes", headers={"cookie": f"alos_console_{PORT}={keys.token}"}),
                "posted": await client.post(
                    f"/process/{world['pid']}/signal?token={keys.token}",
                    data={"signal": "pause", "csrf": keys.csrf},
                    headers={"origin": BASE},
                ),
                "first": await client.get("/?token=" + keys.token),
                "deep": await client.get("/processes?token=" + keys.token + "&live=1"),
                "bare root": await client.get(root),
                "page": await client.get(root + "/processes"),
            }

    got = asyncio.run(go())
    assert len(keys.token) == len(keys.csrf) == 43  # 32 random bytes each, URL-safe base64
    assert {r.status_code for r in got["bare"]} == {403} and "token" in got["bare"][0].text
    assert [r.status_code for r in got["wrong"]] == [403] * 4
    assert got["cookie"].status_code == 403 and got["posted"].status_code == 403
    assert rt.process(world["pid"]).state.value != "paused"
    assert got["first"].status_code == 303 and got["first"].headers["location"] == root + "/processes"
    assert got["deep"].status_code == 303 and got["deep"].headers["location"] == root + "/processes?live=1"
    assert got["bare root"].status_code == 303 and got["bare root"].headers["location"] == root + "/processes"
    page = got["page"]
    assert page.status_code == 200
    links = re.findall(r'(?:href|src|action|hx-get|hx-post|sse-connect)="([^"]*)"', page.text)
    assert links and all(link.startswith(root + "/") for link in links), links  # no link leaves the root
    everything = [*got["bare"], *got["wrong"], got["cookie"], got["first"], got["deep"], got["bare root"], page]
    assert not any("set-cookie" in r.headers for r in everything)
    for r in everything:
        assert r.headers["content-security-policy"] == CSP and r.headers["x-frame-options"] == "DENY"


def test_another_host_name_a_foreign_origin_and_a_cross_site_fetch_are_refused(world: dict[str, Any]) -> None:
    assert get(world, "/processes", host="evil.example:8470").status_code == 400  # DNS rebinding
    assert get(world, "/processes", **{"sec-fetch-site": "cross-site"}).status_code == 403
    pid = world["pid"]
    assert (
        post(
            world, f"/process/{pid}/signal", {"signal": "pause"}, headers={"origin": "http://evil.example"}
        ).status_code
        == 403
    )
    assert world["rt"].process(pid).state.value == "waiting"  # nothing changed


def test_a_change_without_the_csrf_token_or_with_a_wrong_one_is_refused(world: dict[str, Any]) -> None:
    rid = world["request"]
    missing = post(world, f"/requests/{rid}/answer", {"verdict": "once", "csrf": ""})
    wrong = post(world, f"/requests/{rid}/answer", {"verdict": "once", "csrf": "x" * 43})
    assert missing.status_code == wrong.status_code == 403 and "CSRF" in wrong.text
    assert world["rt"].request(rid).state.value == "pending"


# -- bad input on every route ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/process/999999", 404, "no process 999999"),
        ("/process/999999/head", 404, "no process 999999"),
        ("/process/999999/body", 404, "no process 999999"),
        ("/process/abc", 404, "no page"),
        ("/process/-1", 404, "no page"),
        ("/processes?page=0", 400, "whole number from 1"),
        ("/processes?page=-3", 400, "whole number from 1"),
        ("/processes?page=99", 404, "no page 99"),
        ("/processes?page=99999999999999999999999", 400, "whole number"),
        ("/processes/rows?live=yes", 400, "live must be 0 or 1"),
        ("/audit?decision=maybe", 400, "decision must be one of"),
        ("/audit?pid=x", 400, "process must be a pid"),
        ("/audit/rows?before=x", 400, "before must be"),
        ("/audit/export.jsonl?decision=maybe", 400, "decision must be one of"),
        ("/nowhere", 404, "no page"),
    ],
)
def test_bad_input_on_a_page_is_refused_saying_what_to_do(
    world: dict[str, Any], path: str, status: int, says: str
) -> None:
    got = get(world, path)
    assert got.status_code == status, got.text
    assert says in got.text


def test_a_refusal_asked_by_htmx_goes_to_the_notice(world: dict[str, Any]) -> None:
    got = get(world, "/process/999999/body", **{"hx-request": "true"})
    assert got.status_code == 404 and got.headers["hx-retarget"] == "#notice" and "no process 999999" in got.text


@pytest.mark.parametrize(
    ("path", "form", "status", "says"),
    [
        ("/requests/{rid}/answer", {}, 400, "verdict must be one of"),
        ("/requests/{rid}/answer", {"verdict": "yes"}, 400, "verdict must be one of"),
        ("/requests/{rid}/answer", {"verdict": "deny", "reason": "r" * 4001}, 400, "at most 4000"),
        ("/requests/{rid}/answer", {"verdict": "answer", "text": ""}, 400, "needs its text"),
        ("/requests/424242/answer", {"verdict": "once"}, 404, "no request 424242"),
        ("/process/{pid}/signal", {"signal": "stop"}, 400, "signal must be one of"),
        ("/process/999999/signal", {"signal": "pause"}, 404, "no process 999999"),
        ("/process/{pid}/send", {"text": "  "}, 400, "needs its text"),
        ("/process/999999/send", {"text": "hi"}, 404, "no process 999999"),
    ],
)
def test_a_malformed_form_is_refused_and_changes_nothing(
    world: dict[str, Any], path: str, form: dict[str, str], status: int, says: str
) -> None:
    got = post(world, path.format(rid=world["request"], pid=world["pid"]), form)
    assert got.status_code == status, got.text
    assert says in got.text
    assert world["rt"].request(world["request"]).state.value == "pending"
    assert world["rt"].process(world["pid"]).state.value == "waiting"


def test_a_form_that_is_not_a_small_urlencoded_utf8_body_is_refused(world: dict[str, Any]) -> None:
    path = f"/process/{world['pid']}/send"
    as_json = post(world, path, json={"text": "hi"}, headers={"content-type": "application/json"})
    assert as_json.status_code == 415

    async def raw(body: bytes) -> httpx.Response:
        async with web(world) as client:
            return await client.post(path, content=body, headers={"content-type": "application/x-www-form-urlencoded"})

    assert asyncio.run(raw(b"text=\xff\xfe&csrf=" + world["keys"].csrf.encode())).status_code == 400
    assert asyncio.run(raw(b"text=" + b"a" * 20000)).status_code == 413
    assert get(world, path).status_code == 405  # a change is never a GET


def test_an_answered_request_cannot_be_answered_again(world: dict[str, Any]) -> None:
    rid = world["request"]
    first = post(
        world, f"/requests/{rid}/answer", {"verdict": "deny", "reason": "not now"}, headers={"hx-request": "true"}
    )
    again = post(world, f"/requests/{rid}/answer", {"verdict": "once"}, headers={"hx-request": "true"})
    assert first.status_code == 200 and "denied" in first.text
    assert again.status_code == 409 and "already" in again.text and "console" in again.text
    answered = world["rt"].request(rid)
    assert answered.state.value == "rejected" and answered.answered_by == "console" and answered.answer == "not now"
    record = [r for r in world["rt"].audit() if r.syscall == "human.answer"][-1]
    assert record.detail["via"] == "console" and record.detail["by"] == "console"


def test_a_plain_form_post_goes_back_to_its_page_under_the_token_s_root(world: dict[str, Any]) -> None:
    """Without htmx (a form the browser posts itself) a change answers 303 to the page it came from,
    under the token's root: the person stays in."""
    keys, pid = world["keys"], world["pid"]
    got = post(world, f"/process/{pid}/send", {"text": "hello"})
    assert got.status_code == 303 and got.headers["location"] == f"{keys.root}/process/{pid}"
    got = post(world, f"/requests/{world['request']}/answer", {"verdict": "deny", "reason": "no"})
    assert got.status_code == 303 and got.headers["location"] == f"{keys.root}/approvals"


# -- what the pages show ---------------------------------------------------------------------


def test_what_a_process_chose_is_escaped_on_every_page(world: dict[str, Any]) -> None:
    pid = world["pid"]
    for path in ("/processes", f"/process/{pid}", "/approvals", "/audit", f"/audit?pid={pid}"):
        page = get(world, path).text
        assert "<script>alert" not in page and "<img src=x" not in page, path
        assert "\x1b" not in page and "\u202e" not in page, path
    shown = get(world, f"/process/{pid}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown and "\\x1b[2J" in shown and "\\u202e" in shown


def test_the_approval_shows_what_the_terminal_shows(world: dict[str, Any]) -> None:
    page = get(world, "/approvals").text
    rid = world["request"]
    assert f'id="req-{rid}"' in page and "fs.write" in page and "out.txt" in page
    assert re.search(r'<span class="add">\+new</span>', page)
    req = world["rt"].request(rid)
    assert req.detail["digest"] in page and f"<dd><div>{req.detail['bytes']}</div></dd>" in page


def test_the_request_list_is_left_alone_while_the_same_requests_wait(world: dict[str, Any]) -> None:
    rid = world["request"]
    assert get(world, f"/approvals/list?have={rid}%2B0").status_code == 204  # these ids, none beyond
    assert get(world, "/approvals/list?have=").status_code == 200
    assert get(world, "/approvals/count").text == "1"


def test_the_audit_export_is_json_lines_of_the_filtered_records(world: dict[str, Any]) -> None:
    got = get(world, f"/audit/export.jsonl?pid={world['pid']}")
    lines = [line for line in got.text.splitlines() if line]
    records = [r for r in world["rt"].audit(world["pid"])]
    assert len(lines) == len(records) > 0 and got.headers["content-type"].startswith("application/x-ndjson")
    assert '"syscall":"fs.write"' in got.text and "attachment" in got.headers["content-disposition"]
    verdict = get(world, "/audit/verify").text
    assert "the chain holds" in verdict and world["rt"].verify().head in verdict


def test_topics_name_what_to_redraw() -> None:
    assert topics(News(5, 0, frozenset({"state"}), frozenset({3}))) == {"procs", "requests", "proc-3"}
    assert topics(News(0, 9, frozenset({"audit"}), frozenset({0, 4}))) == {"audit", "procs", "proc-4"}
    assert topics(News(1, 0, frozenset({"spawn"}), frozenset({7}))) == {"procs", "proc-7"}


def test_a_change_from_the_console_s_own_page_may_show_its_origin_by_a_referer(world: dict[str, Any]) -> None:
    rt, keys, pid = world["rt"], world["keys"], world["pid"]
    app = application(rt, keys, Feed(rt), frozenset({f"127.0.0.1:{PORT}"}))

    async def go(path: str, **headers: str) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
            return await client.post(path, data={"signal": "pause", "csrf": keys.csrf}, headers=headers)

    foreign = asyncio.run(go(f"{keys.root}/process/{pid}/signal", referer="http://evil.example/"))
    assert foreign.status_code == 403 and rt.process(pid).state.value == "waiting"
    done = asyncio.run(go(f"{keys.root}/process/{pid}/signal", referer=BASE, **{"hx-request": "true"}))
    assert done.status_code == 200 and "paused" in done.text  # no Origin: a Referer of its own
    assert rt.process(pid).state.value == "paused"


def test_a_missing_static_file_or_page_is_refused_in_plain_words_without_the_token(world: dict[str, Any]) -> None:
    keys = world["keys"]
    missing = get(world, "/static/nope.css")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/plain")
    page = get(world, "/nope")
    assert page.status_code == 404 and "there is no page &#39;/nope&#39;: start at" in page.text
    assert keys.token not in missing.text  # the page's own links hold it, never its words
    said = re.search(r'<p class="error">(.*?)</p>', page.text)
    assert said is not None and keys.token not in said.group(1)


def test_the_approvals_page_shows_the_oldest_requests_and_counts_the_rest(
    world: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thousands of waiting requests make no page of thousands of forms: the oldest REQUESTS_SHOWN,
    the number beyond, and the next one drawn as one is answered."""
    monkeypatch.setattr(views, "REQUESTS_SHOWN", 1)
    rt, ws = world["rt"], world["ws"]
    turns = [{"proc": "second", "content": "w", "tool_calls": [call("fs_write", path="two.txt", content="2\n")]}]
    model = write_script(tmp_path / "second.jsonl", turns)
    asyncio.run(
        rt.spawn(
            "base", "second", workspace=str(ws), model=model, grants=grants(ws, ask=("fs:*=write",)), name="second"
        )
    )
    asyncio.run(rt.run())
    first, second = (r.id for r in rt.requests())
    page = get(world, "/approvals").text
    assert f'id="req-{first}"' in page and f'id="req-{second}"' not in page
    assert "and 1 more waiting" in page and get(world, "/approvals/count").text == "2"
    same = get(world, f"/approvals/list?have={first}%2B1")
    assert same.status_code == 204  # nothing changed: what the person types is kept
    post(world, f"/requests/{first}/answer", {"verdict": "deny", "reason": "no"}, headers={"hx-request": "true"})
    after = get(world, f"/approvals/list?have={first}%2B1").text
    assert f'id="req-{second}"' in after and f'id="req-{first}"' not in after and "more waiting" not in after
