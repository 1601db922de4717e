"""net.fetch through the real runtime, as a hostile process would call it, against a local server.

A Recording network wraps the real HostNetwork: it records every provider call (so a test can
show a refusal came before any lookup or connection) and answers lookups of the names in its
table itself, the way /etc/hosts would (nothing here reaches beyond 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import alos
from alos import tools
from alos.errors import BadArguments
from alos.providers.base import NetRequest, NetResponse, Providers
from alos.providers.net import HostNetwork
from alos.syscall import TABLE
from alos.types import Parked, ToolCall
from tests.fakes.server import FakeServer, Step
from tests.support import call, spawn, write_script
from tests.support import grants as support_grants
from tests.unit.test_net_provider import text, web

__all__ = ["web"]  # the fixture, shared with the provider's tests

NAMES = {
    "api.test": ["127.0.0.1"],  # a name for the local server: a loopback address, so it needs its grant too
    "metadata.test": ["169.254.169.254"],  # a name pointing at the cloud metadata service
    "mapped.test": ["::ffff:169.254.169.254"],
    "public.test": ["2606:4700::1111", "93.184.216.34"],
}


class Recording:
    """A Network that records each call and resolves the names in NAMES itself."""

    def __init__(self) -> None:
        self.inner = HostNetwork()
        self.calls: list[tuple[str, str]] = []

    def lookup(self, host: str, port: int) -> list[str]:
        self.calls.append(("lookup", host))
        return NAMES[host] if host in NAMES else self.inner.lookup(host, port)

    async def fetch(self, request: NetRequest) -> NetResponse:
        self.calls.append(("fetch", request.address))
        return await self.inner.fetch(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
def net() -> Recording:
    return Recording()


@pytest.fixture
def rt(store: str, net: Recording) -> Iterator[alos.Runtime]:
    runtime = alos.open(store, host=True, providers=Providers(net=net))
    yield runtime
    runtime.close()


def fetch(rt: alos.Runtime, pid: int, url: str, **args: Any) -> Any:
    return asyncio.run(rt.dispatch(pid, "net.fetch", {"url": url, **args}))


def last(rt: alos.Runtime) -> alos.AuditRecord:
    return list(rt.audit())[-1]


def port(web: FakeServer) -> int:
    return int(web.url.rsplit(":", 1)[1])


def test_a_get_granted_by_address_is_made_and_audited(rt, net, ws: Path, web) -> None:
    pid = spawn(rt, ws, allow=("net:127.0.0.1=read",))
    web.push(text(b"hello\n", etag='"e1"', **{"x-secret-header": "not shown"}))
    got = fetch(rt, pid, web.url + "/docs/a.txt?v=1#top")
    assert got["status"] == 200 and got["body"] == "hello\n"
    assert (got["bytes"], got["truncated"], got["url"]) == (6, False, web.url + "/docs/a.txt?v=1")
    assert got["headers"] == {"content-type": "text/plain", "etag": '"e1"', "content-length": "6"}
    assert net.calls == [("lookup", "127.0.0.1"), ("fetch", "127.0.0.1")]
    rec = last(rt)
    assert (rec.syscall, rec.resource, rec.right, rec.decision, rec.outcome) == (
        "net.fetch", "net:127.0.0.1/docs/a.txt", "read", "allow", "ok",
    )  # fmt: skip
    assert rec.detail["address"] == "127.0.0.1" and rec.detail["private"] is True
    if TABLE["net.fetch"].audited is not None:  # syscall.py passes audited=net.audited
        assert rec.detail["status"] == 200


def test_a_path_grant_covers_its_subtree_only(rt, net, ws: Path, web) -> None:
    pid = spawn(rt, ws, allow=("net:127.0.0.1/api=read",))
    web.push(text(b"[]"))
    assert fetch(rt, pid, web.url + "/api/items")["body"] == "[]"
    for path in ("/apix", "/", "/api/../admin", "/api/%2e%2e/admin"):
        with pytest.raises(alos.Denied, match="lacks read on net:127.0.0.1/"):
            fetch(rt, pid, web.url + path)
    with pytest.raises(alos.Invalid, match="climbs"):
        fetch(rt, pid, web.url + "/api/x%2F..%2F..%2Fadmin")
    assert [c for c in net.calls if c[0] == "fetch"] == [("fetch", "127.0.0.1")]


def test_without_a_grant_it_is_denied_naming_the_resource_and_nothing_is_looked_up(rt, net, ws: Path) -> None:
    pid = spawn(rt, ws, allow=("fs:*=read",))
    with pytest.raises(alos.Denied) as err:
        fetch(rt, pid, "https://exfil-c2VjcmV0.example.org/upload")
    assert str(err.value) == f"denied: process {pid} lacks read on net:exfil-c2vjcmv0.example.org/upload"
    assert net.calls == []  # not even a DNS query: a name can carry data out
    rec = last(rt)
    assert (rec.syscall, rec.decision, rec.outcome) == ("net.fetch", "deny", "denied")


def test_a_post_with_only_read_is_denied_for_want_of_write(rt, net, ws: Path, web) -> None:
    pid = spawn(rt, ws, allow=("net:127.0.0.1=read",))
    for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        with pytest.raises(alos.Denied, match=f"process {pid} lacks write on net:127.0.0.1/items"):
            fetch(rt, pid, web.url + "/items", method=method, body="{}")
    assert not any(c[0] == "fetch" for c in net.calls)
    assert last(rt).right == "write"


def test_a_post_with_write_sends_its_body(rt, ws: Path, web) -> None:
    pid = spawn(rt, ws, allow=("net:127.0.0.1=write",))
    web.push(text(b"created", status=201))
    got = fetch(
        rt, pid, web.url + "/items", method="POST", body='{"n": 1}', headers={"Content-Type": "application/json"}
    )
    assert got["status"] == 201
    assert web.requests[0].raw == b'{"n": 1}' and web.requests[0].headers["content-type"] == "application/json"


def test_a_head_needs_read_and_brings_no_body(rt, ws: Path, web) -> None:
    pid = spawn(rt, ws, allow=("net:127.0.0.1=read",))
    web.push(text(b"abc"))
    got = fetch(rt, pid, web.url + "/file", method="HEAD")
    assert (got["status"], got["body"], got["headers"]["content-length"]) == (200, "", "3")
    with pytest.raises(alos.Invalid, match="HEAD request has no body to save"):
        fetch(rt, pid, web.url + "/file", method="HEAD", save_to="file")


def test_a_name_that_resolves_to_loopback_needs_the_address_grant_too(rt, net, ws: Path, web) -> None:
    url = f"http://api.test:{port(web)}/v1/ping"
    pid = spawn(rt, ws, allow=("net:api.test=read",))
    with pytest.raises(alos.Denied, match=rf"process {pid} lacks read on net:127\.0\.0\.1/v1/ping"):
        fetch(rt, pid, url)
    assert net.calls == [("lookup", "api.test")]  # looked up, never connected
    both = spawn(rt, ws, allow=("net:api.test=read", "net:127.0.0.1=read"))
    web.push(text(b"pong"))
    assert fetch(rt, both, url)["body"] == "pong"
    assert web.requests[0].headers["host"] == f"api.test:{port(web)}"


def test_localhost_needs_the_address_grant_too(rt, ws: Path, web) -> None:
    url = f"http://localhost:{port(web)}/"
    pid = spawn(rt, ws, allow=("net:localhost=read",))
    with pytest.raises(alos.Denied, match=r"lacks read on net:127\.0\.0\.1/"):
        fetch(rt, pid, url)
    both = spawn(rt, ws, allow=("net:localhost=read", "net:127.0.0.1=read"))
    web.push(text(b"here"))
    assert fetch(rt, both, url)["body"] == "here"


def test_an_address_grant_never_covers_a_name(rt, net, ws: Path, web) -> None:
    pid = spawn(rt, ws, allow=("net:127.0.0.1=read",))
    with pytest.raises(alos.Denied, match=r"lacks read on net:api\.test/"):
        fetch(rt, pid, f"http://api.test:{port(web)}/")
    assert net.calls == []


def test_net_star_reaches_no_private_address_without_its_own_grant(rt, net, ws: Path, web) -> None:
    pid = spawn(rt, ws, allow=("net:*=read,write",))
    for url in (web.url + "/", f"http://api.test:{port(web)}/", "http://169.254.169.254/latest/meta-data/"):
        with pytest.raises(alos.Denied, match=r"lacks read on net:(127\.0\.0\.1|169\.254\.169\.254)/"):
            fetch(rt, pid, url)
    assert net.calls == [("lookup", "api.test")]  # a name is looked up under net:*; no address is reached
    both = spawn(rt, ws, allow=("net:*=read", "net:127.0.0.1=read"))
    web.push(text(b"local"), text(b"named"))
    assert fetch(rt, both, web.url + "/")["body"] == "local"
    assert fetch(rt, both, f"http://api.test:{port(web)}/")["body"] == "named"


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://metadata.test/latest/meta-data/", "169.254.169.254"),
        ("http://mapped.test/latest/meta-data/", "[::ffff:a9fe:a9fe]"),
    ],
)
def test_cloud_metadata_is_refused_before_any_connection(rt, net, ws: Path, url: str, address: str) -> None:
    host = url.split("/")[2]
    pid = spawn(rt, ws, allow=(f"net:{host}=read",))
    with pytest.raises(alos.Denied) as err:
        fetch(rt, pid, url)
    assert str(err.value) == f"denied: process {pid} lacks read on net:{address}/latest/meta-data/"
    assert net.calls == [("lookup", host)]
    rec = last(rt)
    assert (rec.resource, rec.decision, rec.outcome) == (f"net:{host}/latest/meta-data/", "deny", "denied")


def test_the_metadata_address_itself_is_refused_without_its_grant(rt, net, ws: Path) -> None:
    pid = spawn(rt, ws, allow=("net:metadata.test=read",))
    with pytest.raises(alos.Denied, match=r"lacks read on net:169\.254\.169\.254/latest/meta-data/"):
        fetch(rt, pid, "http://169.254.169.254/latest/meta-data/")
    assert net.calls == []


def test_a_public_address_needs_no_address_grant_and_ipv4_is_pinned(rt, ws: Path) -> None:
    pid = spawn(rt, ws, ask=("net:public.test=read",))
    parked = fetch(rt, pid, "https://public.test/")
    assert isinstance(parked, Parked)  # asked, never connected: the person sees where it would go
    req = rt.request(parked.request)
    assert req is not None and req.resource == "net:public.test/"
    assert (req.detail["address"], req.detail["private"]) == ("93.184.216.34", False)


def test_a_redirect_is_returned_for_dispatch_to_decide_and_an_ungranted_hop_is_refused(rt, net, ws: Path, web) -> None:
    pid = spawn(rt, ws, allow=("net:127.0.0.1=read",))
    web.push(text(b"", status=302, location="http://elsewhere.test/landing?x=1"), text(b"", status=301, location="/b"))
    got = fetch(rt, pid, web.url + "/a")
    assert got["status"] == 302 and got["redirect"] == "http://elsewhere.test/landing?x=1"
    with pytest.raises(alos.Denied, match=r"lacks read on net:elsewhere\.test/landing"):
        fetch(rt, pid, got["redirect"])
    assert ("lookup", "elsewhere.test") not in net.calls
    assert fetch(rt, pid, web.url + "/a")["redirect"] == web.url + "/b"  # relative: from the request's URL
    assert len(web.requests) == 2  # one request a call: the effect follows nothing itself


def test_a_redirect_not_to_follow_or_to_a_bad_place_is_said_so(rt, ws: Path, web) -> None:
    pid = spawn(rt, ws, allow=("net:127.0.0.1=read",))
    web.push(text(b"", status=302, location="/next"), text(b"", status=302, location="file:///etc/passwd"))
    kept = fetch(rt, pid, web.url + "/", follow_redirects=False)
    assert "redirect" not in kept and kept["headers"]["location"] == "/next"
    bad = fetch(rt, pid, web.url + "/")
    assert "redirect" not in bad and "not an http" in bad["redirect_refused"]


def test_a_body_over_max_bytes_is_cut_and_its_whole_size_reported(rt, ws: Path, web) -> None:
    pid = spawn(rt, ws, allow=("net:127.0.0.1=read",))
    web.push(text("é".encode() * 50_000))
    got = fetch(rt, pid, web.url + "/big", max_bytes=1001)
    assert (got["bytes"], got["kept"], got["truncated"]) == (100_000, 1001, True)
    assert got["body"] == "é" * 500  # the character the cut split is dropped
    with pytest.raises(alos.Invalid, match="max_bytes 300000 is over 262144"):
        fetch(rt, pid, web.url + "/big", max_bytes=300_000)
    with pytest.raises(BadArguments):
        fetch(rt, pid, web.url + "/big", max_bytes=0)


def test_a_binary_body_is_described_not_inlined(rt, ws: Path, web) -> None:
    pid = spawn(rt, ws, allow=("net:127.0.0.1=read",))
    web.push(Step(200, {"content-type": "image/png"}, b"\x89PNG\r\n\x1a\n\x00\x00\x1b[2J"))
    got = fetch(rt, pid, web.url + "/logo.png")
    assert got["body"] is None and got["bytes"] == 14 and got["digest"].startswith("sha256:")
    assert "save_to" in got["note"]


def test_hostile_response_headers_are_escaped(rt, ws: Path, web) -> None:
    pid = spawn(rt, ws, allow=("net:127.0.0.1=read",))
    web.push(text(b"x", **{"content-type": "text/plain\x1b]0;pwned\x07", "link": "<a>" * 1000}))
    got = fetch(rt, pid, web.url + "/")
    assert "\x1b" not in got["headers"]["content-type"] and "\\x1b" in got["headers"]["content-type"]
    assert len(got["headers"]["link"]) == 512


def test_a_timeout_is_reported_as_unavailable_and_audited(rt, ws: Path, web) -> None:
    pid = spawn(rt, ws, allow=("net:127.0.0.1=read",))
    web.push(Step(200, body=b"late", delay=3.0))
    with pytest.raises(alos.Unavailable, match=r"sent no complete answer within 0\.3 s"):
        fetch(rt, pid, web.url + "/slow", timeout=0.3)
    rec = last(rt)
    assert (rec.decision, rec.outcome) == ("allow", "unavailable")
    with pytest.raises(BadArguments):
        fetch(rt, pid, web.url + "/slow", timeout=1000)


def test_save_to_writes_the_file_and_needs_write_on_it(rt, net, ws: Path, web) -> None:
    data = bytes(range(256)) * 8
    reader = spawn(rt, ws, allow=("net:127.0.0.1=read", "fs:*=read"))
    with pytest.raises(alos.Denied, match=f"lacks write on fs:{os.path.realpath(ws)}/logo.bin"):
        fetch(rt, reader, web.url + "/logo", save_to="logo.bin")
    assert not any(c[0] == "fetch" for c in net.calls) and not (ws / "logo.bin").exists()
    pid = spawn(rt, ws, allow=("net:127.0.0.1=read", "fs:*=read,write"))
    web.push(Step(200, {"content-type": "application/octet-stream"}, data))
    got = fetch(rt, pid, web.url + "/logo", save_to="logo.bin")
    assert (got["saved"], got["bytes"], got["save_to"]) == (True, len(data), f"{os.path.realpath(ws)}/logo.bin")
    assert "body" not in got and (ws / "logo.bin").read_bytes() == data
    web.push(text(b"gone", status=404))
    missing = fetch(rt, pid, web.url + "/nothing", save_to="logo.bin")
    assert (missing["status"], missing["saved"], missing["body"]) == (404, False, "gone")
    assert (ws / "logo.bin").read_bytes() == data  # an error page never replaces the file
    web.push(text(b"q" * 5000))
    cut = fetch(rt, pid, web.url + "/long", save_to="long.txt", max_bytes=100)
    assert (cut["saved"], cut["bytes"]) == (False, 5000) and not (ws / "long.txt").exists()


def test_save_to_spends_the_bytes_written_budget(rt, ws: Path, web) -> None:
    pid = spawn(rt, ws, allow=("net:127.0.0.1=read", "fs:*=write"))
    web.push(text(b"a" * 1000))
    fetch(rt, pid, web.url + "/f", save_to="f.txt", max_bytes=4096)
    assert rt.budgets()[pid]["bytes_written"][1] == 1000


@pytest.mark.parametrize(
    ("headers", "said"),
    [
        ({"X-A": "1\r\nX-Injected: 2"}, "line break"),
        ({"X-A": "1\nX: 2"}, "line break"),
        ({"X-A\r\nX": "1"}, "not an HTTP token"),
        ({"Host": "evil.test"}, "set by alos"),
        ({"Transfer-Encoding": "chunked"}, "set by alos"),
        ({"Connection": "close"}, "set by alos"),
        ({"x-a": "1", "X-A": "2"}, "given twice"),
        ({"X-A": "caf\u00e9"}, "non-ASCII"),
    ],
)
def test_bad_request_headers_are_refused_before_anything_is_sent(rt, net, ws: Path, web, headers, said) -> None:
    pid = spawn(rt, ws, allow=("net:127.0.0.1=read",))
    with pytest.raises(alos.Invalid, match=said):
        fetch(rt, pid, web.url + "/", headers=headers)
    assert net.calls == [] and web.requests == []
    rec = last(rt)
    assert (rec.syscall, rec.outcome) == ("net.fetch", "invalid")


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("file:///etc/passwd", "not an http"),
        ("gopher://127.0.0.1/", "not an http"),
        ("http://user:pw@127.0.0.1/", "user info"),
        ("http://127.0.0.1\\@evil.test/", "user info"),
        ("http://2130706433/", "four decimal numbers"),
        ("http://127.0.0.1:99999/", "bad port"),
        ("http:///etc", "names no host"),
        ("http://127.0.0.1/a\r\nHost: x", "control character"),
        ("http://[::1%25lo]/", "bad IPv6"),
        ("http://no_such host/", "not a valid host name"),
    ],
)
def test_bad_urls_are_refused_and_audited(rt, net, ws: Path, url: str, said: str) -> None:
    pid = spawn(rt, ws, allow=("net:*=read",))
    with pytest.raises(alos.Invalid, match=said):
        fetch(rt, pid, url)
    assert net.calls == []
    assert (last(rt).syscall, last(rt).outcome) == ("net.fetch", "invalid")


def test_an_ask_shows_the_request_and_an_approval_carries_it_out_once(rt, ws: Path, web) -> None:
    pid = spawn(rt, ws, ask=("net:127.0.0.1=write",))
    args = {"method": "PUT", "body": "x" * 300, "headers": {"Authorization": "Bearer t0ken"}}
    parked = fetch(rt, pid, web.url + "/doc", **args)
    assert isinstance(parked, Parked) and web.requests == []
    detail = rt.request(parked.request).detail
    assert detail["url"] == web.url + "/doc" and detail["method"] == "PUT"
    assert (detail["address"], detail["private"], detail["body_bytes"]) == ("127.0.0.1", True, 300)
    assert any(h.startswith("Authorization: <") for h in detail["headers"]) and "t0ken" not in str(detail)
    assert detail["truncated"] is True and len(detail["preview"]) == 240
    asyncio.run(rt.answer(parked.request, "once"))
    web.push(text(b"stored"))
    assert fetch(rt, pid, web.url + "/doc", **args)["body"] == "stored"
    assert isinstance(fetch(rt, pid, web.url + "/doc", **args), Parked)  # once: the next one asks again


# -- redirects hop by hop through the tool (alos.tools.call), each hop decided by dispatch() ------


def tool(rt: alos.Runtime, pid: int, **arguments: Any) -> tools.ToolResult:
    """Call the net_fetch tool as the agent loop does, outside any pending action."""
    call = ToolCall("call_1", "net_fetch", arguments)
    try:
        result = asyncio.run(tools.call(rt.kernel, pid, {"net_fetch": tools.spec("net.fetch")}, call))
    finally:
        rt.flush()
    assert isinstance(result, tools.ToolResult)
    return result


def fetches(rt: alos.Runtime) -> list[tuple[str, str, str]]:
    return [(r.resource, r.right, r.outcome) for r in rt.audit() if r.syscall == "net.fetch"]


def test_a_redirect_within_the_grant_is_followed(rt, ws: Path, web) -> None:
    pid = spawn(rt, ws, allow=("net:127.0.0.1=read",))
    web.push(text(b"", status=301, location="/new/place"), text(b"arrived"))
    got = tool(rt, pid, url=web.url + "/old")
    assert got.ok and got.text.startswith(f"redirected to {web.url}/new/place\n")
    assert '"body":"arrived"' in got.text
    assert fetches(rt) == [("net:127.0.0.1/old", "read", "ok"), ("net:127.0.0.1/new/place", "read", "ok")]


def test_a_redirect_to_an_ungranted_host_is_refused_at_the_hop(rt, net, ws: Path, web) -> None:
    pid = spawn(rt, ws, allow=("net:127.0.0.1=read",))
    web.push(text(b"", status=302, location="https://elsewhere.test/landing"))
    got = tool(rt, pid, url=web.url + "/go")
    assert not got.ok
    assert got.text == (
        f"redirected to https://elsewhere.test/landing\ndenied: process {pid} lacks read on net:elsewhere.test/landing"
    )
    assert ("lookup", "elsewhere.test") not in net.calls and len(web.requests) == 1
    assert fetches(rt)[-1] == ("net:elsewhere.test/landing", "read", "denied")


def test_a_redirect_to_a_loopback_address_from_a_granted_name_is_refused(rt, net, ws: Path, web) -> None:
    pid = spawn(rt, ws, allow=("net:127.0.0.1=read", "net:metadata.test=read"))
    web.push(text(b"", status=307, location="http://metadata.test/latest/meta-data/iam"))
    got = tool(rt, pid, url=web.url + "/innocent")
    assert not got.ok and "lacks read on net:169.254.169.254/latest/meta-data/iam" in got.text
    assert [c for c in net.calls if c[0] == "fetch"] == [("fetch", "127.0.0.1")]


def test_a_303_after_a_post_is_followed_as_a_get_without_a_body(rt, ws: Path, web) -> None:
    pid = spawn(rt, ws, allow=("net:127.0.0.1=read,write",))
    web.push(text(b"", status=303, location="/status/1"), text(b"done"))
    got = tool(rt, pid, url=web.url + "/jobs", method="POST", body="payload")
    assert got.ok and '"body":"done"' in got.text
    assert [s.raw for s in web.requests] == [b"payload", b""]
    assert fetches(rt) == [("net:127.0.0.1/jobs", "write", "ok"), ("net:127.0.0.1/status/1", "read", "ok")]


def test_a_redirect_loop_stops(rt, ws: Path, web) -> None:
    pid = spawn(rt, ws, allow=("net:127.0.0.1=read",))
    web.push(*[text(b"", status=302, location="/again")] * 10)
    got = tool(rt, pid, url=web.url + "/again")
    assert not got.ok and "stopped after" in got.text
    assert len(web.requests) == len(fetches(rt)) <= 6


def test_credentials_are_not_carried_to_another_host(rt, ws: Path, web) -> None:
    pid = spawn(rt, ws, allow=("net:127.0.0.1=read", "net:api.test=read"))
    web.push(text(b"", status=302, location=f"http://api.test:{port(web)}/x"), text(b"there"))
    assert tool(rt, pid, url=web.url + "/", headers={"Authorization": "Bearer t0ken", "Cookie": "s=1"}).ok
    assert "authorization" not in web.requests[1].headers and "cookie" not in web.requests[1].headers


# -- inside a process's quanta: the agent loop, an approval, the journal -----------------------------

FETCHER = "name: fetcher\nversion: 1\ndescription: fetches pages\ntools:\n  - net.fetch\n  - proc.exit\n"


def run_fetcher(rt: alos.Runtime, ws: Path, turns: list[dict[str, Any]], **grants: tuple[str, ...]) -> int:
    """Spawn a process of an image with net_fetch that runs ``turns``; run until nothing is runnable."""
    (ws.parent / "fetcher.yaml").write_text(FETCHER)
    script = write_script(ws.parent / "fetcher.jsonl", turns)
    image = rt.image(str(ws.parent / "fetcher.yaml"))
    pid = asyncio.run(rt.spawn(image, "fetch", workspace=str(ws), model=script, grants=support_grants(ws, **grants)))
    asyncio.run(rt.run())
    return pid


def test_an_asked_fetch_inside_a_quantum_runs_once_after_approval(rt, net, ws: Path, web) -> None:
    url = web.url + "/report"
    turns = [
        {"tool_calls": [call("net_fetch", url=url, method="POST", body="numbers")]},
        {"tool_calls": [call("proc_exit", status="ok", result="sent")]},
    ]
    pid = run_fetcher(rt, ws, turns, ask=("net:127.0.0.1=write",))
    (req,) = rt.requests()
    assert (req.pid, req.syscall, req.resource) == (pid, "net.fetch", "net:127.0.0.1/report")
    assert web.requests == []
    web.push(text(b"thanks"))
    asyncio.run(rt.answer(req.id, "once"))
    asyncio.run(rt.run())
    assert rt.process(pid).result == "sent"
    assert [s.raw for s in web.requests] == [b"numbers"]  # made once, after the approval
    said = [m for m in rt.context(pid) if m.get("role") == "tool"]
    assert '"body":"thanks"' in said[0]["content"]
    assert [(r.decision, r.outcome) for r in rt.audit(pid) if r.syscall == "net.fetch"] == [
        ("ask", "parked"), ("approved", "ok"),
    ]  # fmt: skip
