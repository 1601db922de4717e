"""HTTP egress: one request, to the address dispatch() decided on, read no further than asked.

HostNetwork connects to NetRequest.address (it never looks the host up again), sends the URL's
host in the Host header and as TLS SNI (the certificate is checked against that name), follows
no redirect, keeps no cookie and ignores proxy variables. It holds no policy. httpx is imported
at the first request, never at import (``alos --help`` does not pay for it).
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import ipaddress
import socket
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from alos import codec, limits, urls
from alos.errors import Invalid, NotFound, Unavailable
from alos.providers.base import NetRequest, NetResponse

if TYPE_CHECKING:
    import httpx


@dataclass(slots=True)
class _Pool:
    client: httpx.AsyncClient
    busy: int = 0  # requests in flight on it: a busy pool is never closed to make room


class HostNetwork:
    """The host's network. ``verify`` is the TLS context that checks servers (default: the
    system's usual CA bundle, certifi's); tests pass one that trusts their own CA."""

    def __init__(self, verify: ssl.SSLContext | None = None) -> None:
        self._verify = verify
        # a connection made for one host name never carries another's requests: one pool per name
        self._pools: dict[tuple[str, str, str, int], _Pool] = {}  # least recently used first
        self._loop: asyncio.AbstractEventLoop | None = None

    def lookup(self, host: str, port: int) -> list[str]:
        """Return the addresses ``host`` resolves to, in the resolver's order (an IP address
        resolves to itself). Raises NotFound when it does not resolve, Unavailable when the lookup
        takes more than NET_LOOKUP_SECONDS (it holds the event loop: resolve() is synchronous)."""
        try:
            return [ipaddress.ip_address(host).compressed]
        except ValueError:
            pass
        found: list[tuple[int, str]] = []
        failed: list[OSError] = []

        def look() -> None:
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                found.extend((family, str(addr[0])) for family, _, _, _, addr in infos)
            except (OSError, UnicodeError) as err:
                failed.append(err if isinstance(err, OSError) else OSError(str(err)))

        # a thread, so that a resolver that never answers costs NET_LOOKUP_SECONDS, not its own timeouts
        thread = threading.Thread(target=look, name="alos-net-lookup", daemon=True)
        thread.start()
        thread.join(limits.NET_LOOKUP_SECONDS)
        if thread.is_alive():
            raise Unavailable(f"looking up host {host} took more than {limits.NET_LOOKUP_SECONDS:g} s; try again later")
        addresses = []
        for family, found_address in found:
            address = found_address.partition("%")[0]  # an IPv6 scope: the address is what is decided on
            if family in (socket.AF_INET, socket.AF_INET6) and address not in addresses:
                addresses.append(address)
        if not addresses:
            why = codec.escape(str(failed[0].strerror or failed[0])) if failed else "no address"
            if failed and failed[0].errno in (socket.EAI_AGAIN, socket.EAI_FAIL):  # the resolver, not the name
                raise Unavailable(f"looking up host {host} failed ({why}); try again later")
            raise NotFound(f"host {host} does not resolve ({why}); check the name")
        return addresses

    async def fetch(self, request: NetRequest) -> NetResponse:
        """Make the request once, within ``request.timeout`` seconds in all, and read at most
        ``max_bytes`` of the body (past it, the whole size is counted when cheap; -1 when it was
        not). Raises Unavailable for a refused connection, a TLS failure, a timeout or a broken
        answer, naming the host; Invalid for a URL it cannot send."""
        import httpx

        parts = urllib.parse.urlsplit(request.url)
        host, scheme = parts.hostname or "", parts.scheme
        port = parts.port or urls.PORTS.get(scheme, 0)
        where = ipaddress.ip_address(request.address)
        named = f"{host} port {port}" if host == where.compressed else f"{host} ({request.address}) port {port}"
        netloc = f"[{where.compressed}]" if where.version == 6 else where.compressed
        target = f"{scheme}://{netloc}:{port}{parts.path or '/'}" + (f"?{parts.query}" if parts.query else "")
        shown_host = urls.bracketed(host)
        headers = [("Host", shown_host if port == urls.PORTS.get(scheme) else f"{shown_host}:{port}"), *request.headers]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.timeout
        key = (scheme, host, request.address, port)
        pool = self._pool(key)
        pool.busy += 1
        start = time.perf_counter()
        try:
            try:
                sent = pool.client.build_request(
                    request.method, target, headers=headers, content=request.body,
                    extensions={"sni_hostname": host} if scheme == "https" else {},
                )  # fmt: skip
                async with asyncio.timeout_at(deadline):
                    response = await pool.client.send(sent, stream=True)
                try:
                    body, total, cut = await _read(response, request.max_bytes, deadline)
                finally:
                    await response.aclose()
            except (TimeoutError, httpx.TimeoutException):
                raise Unavailable(f"{named} sent no complete answer within {request.timeout:g} s") from None
            except (httpx.InvalidURL, httpx.UnsupportedProtocol, httpx.LocalProtocolError) as err:
                raise Invalid(f"cannot send this request to {named}: {_said(err)}") from None
            except httpx.ConnectError as err:
                raise Unavailable(_connect_failure(named, host, err)) from None
            except httpx.TransportError as err:
                raise Unavailable(f"the connection to {named} failed: {_said(err)}") from None
        finally:
            pool.busy -= 1
            await self._trim()
        headers_seen = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers.raw)
        return NetResponse(response.status_code, headers_seen, body, total, cut, time.perf_counter() - start)

    async def aclose(self) -> None:
        """Close every idle connection (those of another event loop are dropped: they cannot be
        closed from this one)."""
        pools, self._pools = self._pools, {}
        if self._loop is asyncio.get_running_loop():
            for pool in pools.values():
                await pool.client.aclose()

    def _pool(self, key: tuple[str, str, str, int]) -> _Pool:
        """Return the pool of ``key``, made on first use, now the most recently used."""
        import httpx

        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a client is bound to the event loop it was made on
            self._pools, self._loop = {}, loop
        pool = self._pools.pop(key, None)
        if pool is None:
            # a cookie policy that takes and sends nothing: no cookie outlives its response
            jar = http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
            client = httpx.AsyncClient(
                verify=self._context(), trust_env=False, follow_redirects=False, cookies=jar, timeout=None
            )
            pool = _Pool(client)
        self._pools[key] = pool
        return pool

    async def _trim(self) -> None:
        """Close the least recently used idle pools beyond NET_POOLS_KEPT."""
        while len(self._pools) > limits.NET_POOLS_KEPT:
            idle = next((k for k, p in self._pools.items() if not p.busy), None)
            if idle is None:
                return
            await self._pools.pop(idle).client.aclose()

    def _context(self) -> ssl.SSLContext:
        if self._verify is None:
            import certifi

            self._verify = ssl.create_default_context(cafile=certifi.where())
        return self._verify


async def _read(response: httpx.Response, most: int, deadline: float) -> tuple[bytes, int, bool]:
    """Return (at most ``most`` bytes of the body as sent, its whole size, whether it was cut).
    Raises TimeoutError past ``deadline`` and httpx's errors before ``most`` bytes are in. Past
    ``most`` the size is the declared Content-Length, else what reading on NET_COUNT_MAX_BYTES more
    finds before the deadline, else -1 (unknown); a failure then only leaves it unknown."""
    import httpx

    body = bytearray()
    pieces = response.aiter_raw()
    async with asyncio.timeout_at(deadline):
        async for piece in pieces:
            body += piece
            if len(body) > most:
                break
        else:
            return bytes(body), len(body), False
    kept, seen = bytes(body[:most]), len(body)
    declared = response.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) >= seen:
        return kept, int(declared), True
    try:
        async with asyncio.timeout_at(deadline):
            async for piece in pieces:
                seen += len(piece)
                if seen > most + limits.NET_COUNT_MAX_BYTES:
                    return kept, -1, True
    except (TimeoutError, httpx.TransportError):
        return kept, -1, True
    return kept, seen, True


def _connect_failure(named: str, host: str, err: Exception) -> str:
    """Return why a connection failed, naming a TLS failure as one."""
    cause: BaseException | None = err
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, ssl.SSLError):
        reason = getattr(cause, "verify_message", None) or cause.reason or str(cause)
        why = codec.escape(str(reason))
        return f"TLS with {named} failed ({why}): the server is not {host}, or its certificate is bad"
    return f"could not connect to {named}: {_said(err)}"


def _said(err: Exception) -> str:
    """Return an error's text (it may quote what the server sent) escaped and cut short."""
    text = " ".join(str(err).split()) or type(err).__name__
    return codec.escape(text[: limits.PREVIEW_CHARS])
