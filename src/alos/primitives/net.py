"""net.*: one HTTP(S) request through the network provider; every redirect hop is its own call.

resolve() parses the URL strictly and looks its host up once. The address found is pinned (the
provider connects there: a second lookup could name another machine) and, when it is not a
global address (loopback, private, link-local, cloud metadata, ...), the call also needs a grant
on the address itself. The effect follows no redirect: it returns where one points, so dispatch()
decides every hop. What a server sends is hostile: sizes are bounded, header values and anything
a person approving sees are escaped. Touches the host only through kernel.net and kernel.files.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import msgspec

from alos import codec, limits
from alos.errors import Denied, Invalid, NotFound
from alos.kernel import Kernel
from alos.providers.base import NetRequest, NetResponse
from alos.rights import Effect, Need, Right, covers
from alos.types import HOST, Fork, Process

URL_MAX_CHARS = 8_192  # characters of a URL, as given and as sent
HEADERS_MAX = 32  # request headers one call may set
HEADER_VALUE_MAX_CHARS = 8_192  # characters of one request header value (a long bearer token fits)
HEADERS_MAX_BYTES = 16 << 10  # bytes of all request headers together: what servers commonly take
BODY_MAX_BYTES = 1 << 20  # bytes of a request body (UTF-8 text)
BODY_DEFAULT_BYTES = 64 << 10  # body bytes kept for the context by default (the model reads ~16,000 characters)
BODY_CONTEXT_MAX_BYTES = 256 << 10  # the most body bytes a call may take into the context (the journal keeps them)
SAVE_MAX_BYTES = limits.WRITE_MAX_BYTES  # the most body bytes saved to a file: what one fs.write may carry
TIMEOUT_SECONDS = 30.0  # s a request may take when the call names no timeout
TIMEOUT_MAX_SECONDS = 120.0  # s: the longest timeout a call may name
HEADER_SHOWN_CHARS = 512  # characters of a response header value in the result
USER_AGENT = "alos"  # sent when the call sets no User-Agent

READS = frozenset({"GET", "HEAD"})  # methods that need read; every other one needs write
REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PORTS = {"http": 80, "https": 443}
# request headers a call may not set: the provider frames the request and names the host itself
_REFUSED = frozenset(
    {"host", "connection", "keep-alive", "proxy-connection", "proxy-authorization", "proxy-authenticate", "te",
     "trailer", "transfer-encoding", "upgrade", "content-length", "expect", "http2-settings"}
)  # fmt: skip
_SHOWN = ("content-type", "content-length", "content-encoding", "location", "last-modified", "etag",
          "retry-after", "link", "www-authenticate")  # fmt: skip
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_LABEL = re.compile(r"[a-z0-9_-]{1,63}")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PATH_SAFE = _UNRESERVED | frozenset("!$&'()*+,;=:@/")
_QUERY_SAFE = _PATH_SAFE | frozenset("?")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@dataclass(frozen=True, slots=True)
class FetchArgs:
    """Make one HTTP(S) request to ``url``. GET and HEAD need read on net:HOST (or net:HOST/PATH),
    other methods write; a loopback or private address also needs a grant on the address itself.
    The result has the status, a few headers and the body as text, cut at ``max_bytes`` (default
    64 KiB, at most 256 KiB). With ``save_to`` a 2xx body is written to that file instead (you need
    write on it; up to 16 MiB). A redirect is followed only to where you may go."""

    url: Annotated[str, msgspec.Meta(max_length=URL_MAX_CHARS)]
    method: Method = "GET"
    headers: Annotated[
        dict[str, Annotated[str, msgspec.Meta(max_length=HEADER_VALUE_MAX_CHARS)]], msgspec.Meta(max_length=HEADERS_MAX)
    ] = field(default_factory=dict)
    body: Annotated[str, msgspec.Meta(max_length=BODY_MAX_BYTES)] = ""
    save_to: str | None = None
    follow_redirects: bool = True
    max_bytes: Annotated[int, msgspec.Meta(ge=1, le=SAVE_MAX_BYTES)] | None = None
    timeout: Annotated[float, msgspec.Meta(gt=0, le=TIMEOUT_MAX_SECONDS)] = TIMEOUT_SECONDS


@dataclass(frozen=True, slots=True)
class Target:
    """A URL taken apart and normalized: what is decided on is what is sent."""

    scheme: str
    host: str  # lowercase ASCII (IDNA) name, or an IP address (IPv6 without brackets)
    port: int
    path: str  # starts with "/", percent-encoded, no dot segments
    query: str  # without the "?"

    @property
    def url(self) -> str:
        """The absolute URL, without fragment."""
        port = "" if _PORTS[self.scheme] == self.port else f":{self.port}"
        return f"{self.scheme}://{bracketed(self.host)}{port}{self.path}" + (f"?{self.query}" if self.query else "")


@dataclass(frozen=True, slots=True)
class FetchPlan:
    """A resolved net.fetch: the normalized URL, the pinned address ("" when the host was not
    looked up: no grant could allow the call) and the request exactly as it will be sent."""

    method: str
    url: str
    host: str
    path: str
    address: str
    private: bool
    headers: tuple[tuple[str, str], ...]
    body: str
    save_to: str | None
    follow_redirects: bool
    max_bytes: int
    timeout: float


def resolve(kernel: Kernel, proc: Process, args: FetchArgs) -> FetchPlan:
    """Return the plan of ``args``: the URL normalized, the headers checked, ``save_to`` made real
    and the host looked up once. Raises Invalid naming a bad URL, header or size, NotFound for a
    host that does not resolve."""
    try:  # text from Python may hold lone surrogates, which JSON never does
        args.url.encode()
        size = len(args.body.encode())
    except UnicodeEncodeError:
        raise Invalid("the URL or the body is not valid text (a lone surrogate)") from None
    target = parse_url(args.url)
    headers = _headers(args.headers, args.body)
    if size > BODY_MAX_BYTES:
        raise Invalid(f"the request body is over {BODY_MAX_BYTES} bytes; send a smaller one")
    save_to = kernel.files.resolve(proc.cwd, args.save_to) if args.save_to is not None else None
    if save_to is not None and args.method == "HEAD":
        raise Invalid("a HEAD request has no body to save; drop save_to or use GET")
    most = SAVE_MAX_BYTES if save_to is not None else BODY_CONTEXT_MAX_BYTES
    max_bytes = args.max_bytes or (SAVE_MAX_BYTES if save_to is not None else BODY_DEFAULT_BYTES)
    if max_bytes > most:
        raise Invalid(f"max_bytes {max_bytes} is over {most}, the most a body may bring into the context; pass save_to")
    right = Right.READ if args.method in READS else Right.WRITE
    address, private = "", False
    if _may_reach(kernel, proc, Need(resource(target.host, target.path), right)):
        address = pin(kernel.net.lookup(target.host, target.port), target.host)
        private = is_private(ipaddress.ip_address(address))
    return FetchPlan(
        args.method, target.url, target.host, target.path, address, private, headers, args.body, save_to,
        args.follow_redirects, max_bytes, args.timeout,
    )  # fmt: skip


def needs(proc: Process, plan: FetchPlan) -> tuple[Need, ...]:
    """Read (GET, HEAD) or write (any other method) on net:HOST/PATH; the same on net:ADDRESS/PATH
    when the pinned address is not global; write on the file ``save_to`` names."""
    right = Right.READ if plan.method in READS else Right.WRITE
    out = [Need(resource(plan.host, plan.path), right)]
    if plan.private and plan.address != plan.host:
        out.append(Need(resource(plan.address, plan.path), right))
    if plan.save_to is not None:
        out.append(Need("fs:" + plan.save_to, Right.WRITE))
    return tuple(out)


async def fetch(kernel: Kernel, proc: Process, plan: FetchPlan) -> dict[str, Any]:
    """Make the request once; return status, headers, elapsed seconds and the body (or where it was
    saved), and ``redirect`` (the next URL) for a redirect to follow. Raises Unavailable when the
    server cannot be reached or does not answer in time."""
    if not plan.address:  # needs() named a resource no grant covers: dispatch() refused it already
        raise Denied(f"{plan.url} was not looked up: no grant covers {resource(plan.host, plan.path)}")
    request = NetRequest(
        plan.method, plan.url, plan.address, plan.headers, plan.body.encode(), plan.timeout, plan.max_bytes
    )
    response = await kernel.net.fetch(request)
    result: dict[str, Any] = {
        "status": response.status,
        "url": plan.url,
        "address": plan.address,
        "headers": _shown_headers(response.headers),
        "elapsed": round(response.elapsed, 3),
    }
    if plan.follow_redirects and response.status in REDIRECTS:
        result.update(_redirect(plan.url, response))
    if plan.save_to is not None and 200 <= response.status < 300:
        return result | _save(kernel, plan, response)
    result.update(_body(response))
    if plan.save_to is not None and "redirect" not in result:  # the next hop saves, if it may
        result.update(save_to=plan.save_to, saved=False)
    return result


def describe(kernel: Kernel, proc: Process, plan: FetchPlan) -> dict[str, Any]:
    """Return what a person approving this request sees: method, URL, the pinned address and
    whether it is private, the header names, the body's size, digest and preview, and the file
    ``save_to`` would replace. Everything from the call is escaped."""
    data = plan.body.encode()
    shown: dict[str, Any] = {
        "method": plan.method,
        "url": codec.escape(plan.url),
        "address": plan.address or "(not looked up)",
        "private": plan.private,
        "headers": [name for name, _ in plan.headers],
        "follow_redirects": plan.follow_redirects,
        "max_bytes": plan.max_bytes,
        "timeout": plan.timeout,
    }
    if data:
        shown |= {
            "body_bytes": len(data),
            "body_digest": codec.digest(data),
            "preview": codec.escape(plan.body[: limits.PREVIEW_CHARS]),
            "truncated": len(plan.body) > limits.PREVIEW_CHARS,
        }
    if plan.save_to is not None:
        now = kernel.files.peek(plan.save_to)
        shown |= {"save_to": plan.save_to, "overwrite": now.exists}
        if now.exists:
            shown |= {"current_bytes": now.size, "current_digest": now.digest}
    return shown


def cost(plan: FetchPlan) -> dict[str, int]:
    """One tool call; with ``save_to``, max_bytes of bytes_written reserved (``used`` settles it)."""
    return {"tool_calls": 1, "bytes_written": plan.max_bytes} if plan.save_to is not None else {"tool_calls": 1}


def used(plan: FetchPlan, result: dict[str, Any]) -> dict[str, int]:
    """Return what settles the reservation of ``cost``: the bytes saved less those reserved."""
    if plan.save_to is None:
        return {}
    return {"bytes_written": (result["bytes"] if result.get("saved") else 0) - plan.max_bytes}


def audited(plan: FetchPlan, result: dict[str, Any]) -> dict[str, Any]:
    """Return what the audit keeps of a request: status, address, sizes and time, not the body."""
    keep = ("status", "bytes", "truncated", "saved", "digest", "redirect", "elapsed")
    return {"address": plan.address} | {k: result[k] for k in keep if k in result}


# -- URLs and addresses ----------------------------------------------------------------


def parse_url(url: str) -> Target:
    """Return ``url`` taken apart and normalized: host lowercased and IDNA-encoded, path and query
    percent-encoded, dot segments removed, the fragment dropped. Raises Invalid naming what is wrong
    (not http or https, user info, an empty or bad host, a bad port, a control character, a path
    that climbs once decoded)."""
    if len(url) > URL_MAX_CHARS:
        raise Invalid(f"the URL is over {URL_MAX_CHARS} characters")
    if _CONTROL.search(url):
        raise Invalid(f"the URL {codec.escape(url[:200])} holds a control character; percent-encode it")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in _PORTS:
        raise Invalid(f"{codec.escape(url[:200])} is not an http:// or https:// URL")
    scheme = scheme.lower()
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:].partition("#")[0]
    if "@" in authority or "\\" in authority:
        raise Invalid("a URL with user info ('user:password@') is refused; send credentials in a header instead")
    host, port = _host_port(authority, scheme)
    path, _, query = tail.partition("?")
    path = _without_dots(_encoded(path or "/", _PATH_SAFE))
    decoded = path
    for _ in range(3):  # what a server that decodes (even twice) would see
        decoded = urllib.parse.unquote(decoded)
    if any(seg.split(";")[0] in (".", "..") for seg in re.split(r"[/\\]", decoded)):
        raise Invalid(f"the path {codec.escape(path[:200])} climbs with '.' or '..' once decoded; write it plainly")
    target = Target(scheme, host, port, path, _encoded(query, _QUERY_SAFE))
    if len(target.url) > URL_MAX_CHARS:
        raise Invalid(f"the URL is over {URL_MAX_CHARS} characters once percent-encoded")
    return target


def _host_port(authority: str, scheme: str) -> tuple[str, int]:
    """Return the host and port of ``authority`` (``host``, ``host:port``, ``[v6]:port``)."""
    if authority.startswith("["):
        literal, close, after = authority[1:].partition("]")
        try:
            host = ipaddress.IPv6Address(literal).compressed if close and "%" not in literal else ""
        except ValueError:
            host = ""
        if not host:
            raise Invalid(f"bad IPv6 address in URL: {codec.escape(authority[:100])}")
    else:
        name, colon, port = authority.partition(":")
        host, after = _hostname(name), colon + port
    if not after:
        return host, _PORTS[scheme]
    digits = after[1:]
    if after[0] != ":" or not (digits.isascii() and digits.isdigit() and 0 < len(digits) <= 5) or int(digits) > 65535:
        raise Invalid(f"bad port in URL: {codec.escape(after[:20])}; a port is a number from 1 to 65535")
    if int(digits) == 0:
        raise Invalid("port 0 is not a port a server listens on")
    return host, int(digits)


def _hostname(name: str) -> str:
    """Return host ``name`` lowercased, IDNA-encoded and checked label by label."""
    name = name.removesuffix(".")
    if not name:
        raise Invalid("the URL names no host")
    if not name.isascii():
        import idna  # only for a name that needs it

        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError) as err:
            raise Invalid(f"host {codec.escape(name[:100])} is not a valid domain name ({err})") from None
    name = name.lower()
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise Invalid(f"host {codec.escape(name[:100])} is not a valid host name (letters, digits, '-' and '.')")
    if labels[-1].isdigit() or labels[-1].startswith("0x"):  # a number: IPv4, written only one way
        try:
            return str(ipaddress.IPv4Address(name))
        except ValueError:
            raise Invalid(f"host {name} looks like an IPv4 address; write it as four decimal numbers") from None
    return name


def _encoded(text: str, safe: frozenset[str]) -> str:
    """Return ``text`` percent-encoded: escapes kept (upper hex; unreserved ones decoded), every
    character not in ``safe`` encoded as UTF-8. Raises Invalid for a '%' that starts no escape."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "%":
            pair = text[i + 1 : i + 3]
            if len(pair) != 2 or not all(c in "0123456789abcdefABCDEF" for c in pair):
                raise Invalid(f"bad percent escape in URL near {codec.escape(text[i : i + 3])!r}")
            char = chr(int(pair, 16))
            out.append(char if char in _UNRESERVED else "%" + pair.upper())
            i += 3
            continue
        out.append(ch if ch in safe else urllib.parse.quote(ch, safe=""))
        i += 1
    return "".join(out)


def _without_dots(path: str) -> str:
    """Return ``path`` with its '.' and '..' segments removed (RFC 3986 section 5.2.4)."""
    kept: list[str] = []
    segments = path.split("/")[1:]
    for seg in segments:
        if seg == "..":
            if kept:
                kept.pop()
        elif seg != ".":
            kept.append(seg)
    if segments and segments[-1] in (".", ".."):
        kept.append("")
    return "/" + "/".join(kept)


def bracketed(host: str) -> str:
    """Return ``host`` as a URL or a resource names it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


def resource(host: str, path: str) -> str:
    """Return the resource a request to ``host`` for ``path`` is decided on: ``net:HOST/PATH``."""
    return f"net:{bracketed(host)}{path}"


def is_private(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Return whether ``ip`` is not a global address: loopback, private, link-local (169.254.0.0/16,
    cloud metadata), unique-local, multicast, unspecified, reserved, shared (100.64.0.0/10), or an
    IPv6 form that carries such an IPv4 address (mapped, 6to4, NAT64, compatible)."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_private(ip.ipv4_mapped)
        if ip.sixtofour is not None:
            return is_private(ip.sixtofour)
        if ip in _NAT64:
            return is_private(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_link_local or ip.is_private


def pin(addresses: list[str], host: str) -> str:
    """Return the address to connect to: an IPv4 one when there is one (IPv6 routes are often
    missing), the lowest of that family, so that the same answer pins the same address."""
    ips = []
    for text in addresses:
        try:
            ips.append(ipaddress.ip_address(text.partition("%")[0]))
        except ValueError:
            continue
    if not ips:
        raise NotFound(f"host {host} resolves to no address")
    v4 = [ip for ip in ips if ip.version == 4]
    return str(min(v4) if v4 else min(ips))


def _may_reach(kernel: Kernel, proc: Process, need: Need) -> bool:
    """Return whether the host may be looked up for this call: some live allow or ask covers
    ``need`` and no standing deny does. A lookup already sends the name out (a name can carry data
    to whoever answers for its domain), so a process no grant lets reach the host makes none:
    dispatch() then refuses it on ``need``. This only spares a lookup; dispatch() decides."""
    if proc.pid == HOST:
        return True
    if proc.mode is Fork.SPECULATIVE:
        return False
    now = kernel.clock.now()
    held = [
        c
        for c in kernel.caps_on(proc.pid, frozenset({"net"}))
        if c.live(now) and need.right in c.rights and covers(c.pattern, need.resource)
    ]
    if any(c.effect is Effect.DENY and c.digest is None for c in held):
        return False
    return any(c.effect is not Effect.DENY for c in held)


# -- headers and bodies -----------------------------------------------------------------


def _headers(given: dict[str, str], body: str) -> tuple[tuple[str, str], ...]:
    """Return the request headers to send: the call's, checked, then User-Agent, Accept-Encoding
    (identity: the body is read as sent, never inflated) and Content-Type for a body, unless set."""
    seen: set[str] = set()
    size = 0
    for name, value in given.items():
        lower = name.lower()
        if not _TOKEN.fullmatch(name):
            raise Invalid(f"header name {codec.escape(name[:64])!r} is not an HTTP token")
        if lower in _REFUSED:
            raise Invalid(f"header {name} is set by alos, not by a call; drop it")
        if lower in seen:
            raise Invalid(f"header {name} is given twice; give it once")
        if any(c in value for c in "\r\n\x00") or not value.isascii() or _CONTROL.search(value.replace("\t", " ")):
            raise Invalid(f"header {name}'s value holds a line break, control or non-ASCII character")
        seen.add(lower)
        size += len(name) + len(value) + 4
    if size > HEADERS_MAX_BYTES:
        raise Invalid(f"the request headers are over {HEADERS_MAX_BYTES} bytes together")
    defaults = [("User-Agent", USER_AGENT), ("Accept-Encoding", "identity")]
    if body:
        defaults.append(("Content-Type", "text/plain; charset=utf-8"))
    return (*given.items(), *((n, v) for n, v in defaults if n.lower() not in seen))


def _shown_headers(headers: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """Return the response headers a result shows (a few, by name), each value escaped and cut."""
    out: dict[str, str] = {}
    for name, value in headers:
        lower = name.lower()
        if lower in _SHOWN:
            joined = f"{out[lower]}, {value}" if lower in out else value
            out[lower] = joined[:HEADER_SHOWN_CHARS]
    return {name: codec.escape(value) for name, value in out.items()}


def _body(response: NetResponse) -> dict[str, Any]:
    """Return the body as the context gets it: UTF-8 text, or a description of a binary one."""
    whole = response.body_bytes if response.body_bytes >= 0 else None  # -1: the server did not say
    out: dict[str, Any] = {"bytes": whole, "truncated": response.truncated}
    if response.truncated:
        out["kept"] = len(response.body)
    text = codec.text_of(response.body, to_end=not response.truncated)
    if text is None:
        out["digest"] = codec.digest(response.body)
        out["body"] = None
        out["note"] = "the body is not UTF-8 text and is not shown; pass save_to to keep it in a file"
    else:
        out["body"] = text
    return out


def _save(kernel: Kernel, plan: FetchPlan, response: NetResponse) -> dict[str, Any]:
    """Write the whole body to ``plan.save_to``; a cut one is not written (a file half there is worse)."""
    assert plan.save_to is not None
    if response.truncated:
        size = response.body_bytes if response.body_bytes >= 0 else None
        return {
            "save_to": plan.save_to,
            "saved": False,
            "bytes": size,
            "truncated": True,
            "note": f"the body is over max_bytes ({plan.max_bytes}); nothing was written. "
            f"Pass a larger max_bytes (at most {SAVE_MAX_BYTES})",
        }
    kernel.files.write(plan.save_to, response.body)
    return {"save_to": plan.save_to, "saved": True, "bytes": len(response.body), "digest": codec.digest(response.body)}


def _redirect(url: str, response: NetResponse) -> dict[str, Any]:
    """Return ``{"redirect": next URL}`` for a redirect's Location, made absolute from ``url`` and
    normalized, or why it is not followed."""
    location = next((v for n, v in response.headers if n.lower() == "location"), None)
    if location is None:
        return {}
    raw = location.encode("latin-1", "replace")  # the bytes the server sent: non-ASCII ones escaped
    text = urllib.parse.quote(raw, safe="".join(chr(c) for c in range(0x21, 0x7F)))
    try:
        return {"redirect": parse_url(urllib.parse.urljoin(url, text)).url}
    except (Invalid, ValueError) as err:
        return {"redirect_refused": codec.escape(str(err))[: limits.PREVIEW_CHARS]}
