"""HostNetwork against real servers on 127.0.0.1: the pinned address, Host and SNI, caps, timeouts.

The plain HTTP cases use tests/fakes' FakeServer; the TLS cases a small TLS server below with a
certificate for alos.test made by the openssl command (skipped where there is none).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import alos
from alos import limits
from alos.providers.base import NetRequest, NetResponse
from alos.providers.net import HostNetwork
from tests.fakes.server import FakeServer, Step, shared

PORT_NOBODY_HEARS = 9  # discard: nothing listens on it on 127.0.0.1 in a test machine


@pytest.fixture
def web() -> Iterator[FakeServer]:
    """This process's one scripted web server on 127.0.0.1, answering any path and method."""
    fake = shared("web", ["/{path:path}"], methods=None)
    fake.reset()
    yield fake
    fake.reset()


def text(body: bytes, status: int = 200, **headers: str) -> Step:
    return Step(status, {"content-type": "text/plain", **headers}, body)


def port_of(fake: FakeServer) -> int:
    return int(fake.url.rsplit(":", 1)[1])


def get(url: str, *, address: str = "127.0.0.1", method: str = "GET", body: bytes = b"", **kw) -> NetRequest:
    fields = {"headers": (), "timeout": 5.0, "max_bytes": 1 << 20, **kw}
    return NetRequest(method, url, address, fields["headers"], body, fields["timeout"], fields["max_bytes"])


def fetch(request: NetRequest, net: HostNetwork | None = None) -> NetResponse:
    async def go() -> NetResponse:
        network = net or HostNetwork()
        try:
            return await network.fetch(request)
        finally:
            await network.aclose()

    return asyncio.run(go())


def test_it_connects_to_the_address_and_names_the_host_in_the_host_header(web) -> None:
    web.push(text(b"hello", etag='"v1"'))
    got = fetch(get(f"http://alos.test:{port_of(web)}/a/b?q=1", headers=(("X-Trace", "7"),)))
    assert (got.status, got.body, got.body_bytes, got.truncated) == (200, b"hello", 5, False)
    assert ("etag", '"v1"') in got.headers and got.elapsed > 0
    seen = web.requests[0]
    assert seen.path == "/a/b"
    assert seen.headers["host"] == f"alos.test:{port_of(web)}"
    assert seen.headers["x-trace"] == "7"


def test_a_body_is_sent_as_given(web) -> None:
    web.push(text(b"made", status=201))
    got = fetch(
        get(web.url + "/items", method="POST", body=b'{"a": 1}', headers=(("Content-Type", "application/json"),))
    )
    assert got.status == 201
    assert web.requests[0].raw == b'{"a": 1}'


def test_a_body_is_cut_at_max_bytes_and_its_declared_size_reported(web) -> None:
    web.push(text(b"x" * 10_000))
    got = fetch(get(web.url + "/big", max_bytes=100))
    assert (len(got.body), got.body_bytes, got.truncated) == (100, 10_000, True)


def test_a_streamed_body_past_max_bytes_is_counted_when_cheap(web) -> None:
    web.push(Step(200, {"content-type": "text/plain"}, chunks=[b"y" * 1000] * 10))
    got = fetch(get(web.url + "/stream", max_bytes=1500))
    assert (got.body, got.body_bytes, got.truncated) == (b"y" * 1500, 10_000, True)


def test_a_streamed_body_too_long_to_count_has_no_known_size(web, monkeypatch) -> None:
    monkeypatch.setattr(limits, "NET_COUNT_MAX_BYTES", 2_000)
    web.push(Step(200, {"content-type": "text/plain"}, chunks=[b"z" * 1000] * 20))
    got = fetch(get(web.url + "/endless", max_bytes=500))
    assert (len(got.body), got.body_bytes, got.truncated) == (500, -1, True)


def test_a_body_of_exactly_max_bytes_is_whole(web) -> None:
    web.push(text(b"k" * 64))
    got = fetch(get(web.url + "/exact", max_bytes=64))
    assert (len(got.body), got.body_bytes, got.truncated) == (64, 64, False)


def test_a_slow_server_is_unavailable_after_the_timeout(web) -> None:
    web.push(Step(200, body=b"late", delay=3.0))
    with pytest.raises(
        alos.Unavailable, match=r"alos\.test \(127\.0\.0\.1\) port \d+ sent no complete answer within 0\.3 s"
    ):
        fetch(get(f"http://alos.test:{port_of(web)}/slow", timeout=0.3))


def test_a_body_that_stalls_is_unavailable_after_the_timeout(web) -> None:
    web.push(Step(200, {"content-type": "text/plain"}, chunks=[b"a", b"b", b"c"], gap=2.0))
    with pytest.raises(alos.Unavailable, match="within 0.5 s"):
        fetch(get(web.url + "/drip", timeout=0.5))


def test_a_refused_connection_is_unavailable_naming_the_host() -> None:
    with pytest.raises(
        alos.Unavailable, match=rf"could not connect to nobody\.test \(127\.0\.0\.1\) port {PORT_NOBODY_HEARS}"
    ):
        fetch(get(f"http://nobody.test:{PORT_NOBODY_HEARS}/"))


def test_no_redirect_is_followed(web) -> None:
    web.push(text(b"", status=302, location="/elsewhere"), text(b"never"))
    got = fetch(get(web.url + "/moved"))
    assert got.status == 302 and ("location", "/elsewhere") in got.headers
    assert [s.path for s in web.requests] == ["/moved"]


def test_no_cookie_is_kept_between_requests(web) -> None:
    net = HostNetwork()

    async def two() -> None:
        try:
            await net.fetch(get(web.url + "/login"))
            await net.fetch(get(web.url + "/after"))
        finally:
            await net.aclose()

    web.push(text(b"in", **{"set-cookie": "session=s3cret; Path=/"}), text(b"ok"))
    asyncio.run(two())
    assert "cookie" not in web.requests[1].headers


def test_proxy_variables_are_ignored(web, monkeypatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{PORT_NOBODY_HEARS}")
    monkeypatch.setenv("ALL_PROXY", f"http://127.0.0.1:{PORT_NOBODY_HEARS}")
    web.push(text(b"direct"))
    assert fetch(get(web.url + "/")).body == b"direct"


def test_connections_are_reused_for_one_host_and_never_across_names(web) -> None:
    net = HostNetwork()
    port = port_of(web)

    async def three() -> None:
        try:
            for name in ("one.test", "one.test", "two.test"):
                await net.fetch(get(f"http://{name}:{port}/"))
            assert len(net._pools) == 2
        finally:
            await net.aclose()

    web.push(text(b"1"), text(b"2"), text(b"3"))
    asyncio.run(three())
    assert [s.headers["host"] for s in web.requests] == [f"one.test:{port}", f"one.test:{port}", f"two.test:{port}"]


def test_idle_pools_beyond_the_cap_are_closed(web, monkeypatch) -> None:
    monkeypatch.setattr(limits, "NET_POOLS_KEPT", 2)
    net = HostNetwork()

    async def many() -> None:
        try:
            for i in range(5):
                await net.fetch(get(f"http://h{i}.test:{port_of(web)}/"))
            assert len(net._pools) == 2
        finally:
            await net.aclose()

    web.push(*[text(b"ok")] * 5)
    asyncio.run(many())


def test_a_network_used_from_another_event_loop_starts_afresh(web) -> None:
    net = HostNetwork()
    web.push(text(b"a"), text(b"b"))
    assert asyncio.run(net.fetch(get(web.url + "/"))).body == b"a"
    assert asyncio.run(net.fetch(get(web.url + "/"))).body == b"b"


def test_lookup_of_an_address_is_the_address_and_of_a_name_its_addresses() -> None:
    net = HostNetwork()
    assert net.lookup("127.0.0.1", 80) == ["127.0.0.1"]
    assert net.lookup("::1", 80) == ["::1"]
    assert "127.0.0.1" in net.lookup("localhost", 80)


def test_lookup_of_a_name_that_does_not_resolve_is_not_found() -> None:
    try:
        socket.getaddrinfo("no-such-host.invalid", 80)
    except socket.gaierror as err:
        if err.errno != socket.EAI_NONAME:
            pytest.skip(f"this machine's resolver does not answer ({err})")
    with pytest.raises(alos.NotFound, match=r"host no-such-host\.invalid does not resolve"):
        HostNetwork().lookup("no-such-host.invalid", 80)


def test_importing_the_provider_does_not_import_httpx() -> None:
    code = "import sys, alos.providers.net, alos.primitives.net; print('httpx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- TLS ----------------------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    """A CA and a certificate for alos.test that it signed."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make a test certificate")
    d = tmp_path_factory.mktemp("certs")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=alos test CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign", cwd=d)  # fmt: skip
    _openssl("req", *ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=alos.test", cwd=d)
    (d / "leaf.ext").write_text(
        "subjectAltName=DNS:alos.test\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
    )
    _openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext", cwd=d)  # fmt: skip
    return d


class TlsServer:
    """Answers each TLS connection with one 200 "ok" and records the SNI name and the Host header."""

    def __init__(self, certs: Path) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(certs / "leaf.pem", certs / "leaf.key")
        self.names: list[str | None] = []
        self.hosts: list[str] = []
        self.context.sni_callback = lambda sock, name, ctx: self.names.append(name)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    head = b""
                    while b"\r\n\r\n" not in head:
                        head += tls.recv(4096) or b"\r\n\r\n"
                    self.hosts += [
                        line[6:].decode() for line in head.split(b"\r\n") if line.lower().startswith(b"host: ")
                    ]
                    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            except (OSError, ssl.SSLError):
                conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def tls(certs: Path) -> Iterator[tuple[TlsServer, HostNetwork]]:
    server = TlsServer(certs)
    trusting = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    yield server, HostNetwork(verify=trusting)
    server.close()


def test_tls_goes_to_the_address_with_the_host_name_as_sni_and_host(tls) -> None:
    server, net = tls
    got = fetch(get(f"https://alos.test:{server.port}/secure"), net)
    assert (got.status, got.body) == (200, b"ok")
    assert server.names == ["alos.test"]
    assert server.hosts == [f"alos.test:{server.port}"]


def test_tls_to_an_address_that_is_not_the_named_host_fails(tls) -> None:
    server, net = tls
    with pytest.raises(
        alos.Unavailable, match=r"TLS with other\.test \(127\.0\.0\.1\) port \d+ failed .*not other\.test"
    ):
        fetch(get(f"https://other.test:{server.port}/"), net)
    assert server.hosts == []


def test_tls_with_a_server_no_trusted_ca_signed_fails(certs: Path) -> None:
    server = TlsServer(certs)
    try:
        with pytest.raises(alos.Unavailable, match="TLS with alos.test"):
            fetch(get(f"https://alos.test:{server.port}/"))
    finally:
        server.close()


def test_https_to_a_plain_http_server_is_unavailable(web) -> None:
    with pytest.raises(alos.Unavailable, match=r"alos\.test \(127\.0\.0\.1\)"):
        fetch(get(f"https://alos.test:{port_of(web)}/", timeout=3.0))


def test_no_certificate_file_of_the_environment_is_used(monkeypatch, certs: Path) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certs / "ca.pem"))
    server = TlsServer(certs)
    try:
        with pytest.raises(alos.Unavailable, match="TLS"):
            fetch(get(f"https://alos.test:{server.port}/"))
    finally:
        server.close()
    assert os.environ["SSL_CERT_FILE"]
