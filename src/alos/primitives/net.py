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

from alos import codec, limits, urls
from alos.errors import Denied, Invalid
from alos.kernel import Kernel
from alos.providers.base import NetRequest, NetResponse
from alos.rights import Effect, Need, Right, covers
from alos.types import HOST, Fork, Process

USER_AGENT = "alos"  # sent when the call sets no User-Agent

READS = frozenset({"GET", "HEAD"})  # methods that need read; every other one needs write
REDIRECTS = frozenset({301, 302, 303, 307, 308})
# request headers a call may not set: the provider frames the request and names the host itself
_REFUSED = frozenset(
    {"host", "connection", "keep-alive", "proxy-connection", "proxy-authorization", "proxy-authenticate", "te",
     "trailer", "transfer-encoding", "upgrade", "content-length", "expect", "http2-settings"}
)  # fmt: skip
_SHOWN = ("content-type", "content-length", "content-encoding", "location", "last-modified", "etag",
          "retry-after", "link", "www-authenticate")  # fmt: skip
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@dataclass(frozen=True, slots=True)
class FetchArgs:
    """Make one HTTP(S) request to ``url``. GET and HEAD need read on net:HOST (or net:HOST/PATH),
    other methods write; a loopback or private address also needs a grant on the address itself.
    The result has the status, a few headers and the body as text, cut at ``max_bytes`` (default
    64 KiB, at most 256 KiB). With ``save_to`` a 2xx body is written to that file instead (you need
    write on it; up to 16 MiB). A redirect is followed only to where you may go."""

    url: Annotated[str, msgspec.Meta(max_length=limits.NET_URL_MAX_CHARS)]
    method: Method = "GET"
    headers: Annotated[
        dict[str, Annotated[str, msgspec.Meta(max_length=limits.NET_HEADER_VALUE_MAX_CHARS)]],
        msgspec.Meta(max_length=limits.NET_HEADERS_MAX),
    ] = field(default_factory=dict)
    body: Annotated[str, msgspec.Meta(max_length=limits.NET_BODY_MAX_BYTES)] = ""
    save_to: str | None = None
    follow_redirects: bool = True
    max_bytes: Annotated[int, msgspec.Meta(ge=1, le=limits.WRITE_MAX_BYTES)] | None = None
    timeout: Annotated[float, msgspec.Meta(gt=0, le=limits.NET_TIMEOUT_MAX_SECONDS)] = limits.NET_TIMEOUT_SECONDS


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
    target = urls.parse_url(args.url)
    headers = _headers(args.headers, args.body)
    if size > limits.NET_BODY_MAX_BYTES:
        raise Invalid(f"the request body is over {limits.NET_BODY_MAX_BYTES} bytes; send a smaller one")
    save_to = kernel.files.resolve(proc.cwd, args.save_to) if args.save_to is not None else None
    if save_to is not None and args.method == "HEAD":
        raise Invalid("a HEAD request has no body to save; drop save_to or use GET")
    most = limits.WRITE_MAX_BYTES if save_to is not None else limits.NET_BODY_CONTEXT_MAX_BYTES
    max_bytes = args.max_bytes or (limits.WRITE_MAX_BYTES if save_to is not None else limits.NET_BODY_DEFAULT_BYTES)
    if max_bytes > most:
        raise Invalid(f"max_bytes {max_bytes} is over {most}, the most a body may bring into the context; pass save_to")
    right = Right.READ if args.method in READS else Right.WRITE
    address, private = "", False
    if _may_reach(kernel, proc, Need(resource(target.host, target.path), right)):
        address = urls.pin(kernel.net.lookup(target.host, target.port), target.host)
        private = urls.is_private(ipaddress.ip_address(address))
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
        "headers": [_header_shown(name, value) for name, value in plan.headers],
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


def _header_shown(name: str, value: str) -> str:
    """Return a request header as a person approving sees it: the value escaped and cut, a
    credential's only by its size and digest (the person sees that one is sent, not the secret)."""
    if name.lower() in ("authorization", "cookie", "proxy-authorization", "x-api-key"):
        return f"{name}: <{len(value)} characters, {codec.digest(value.encode())[:19]}>"
    shown = codec.escape(value[: limits.PREVIEW_CHARS])
    return f"{name}: {shown}" + ("…" if len(value) > limits.PREVIEW_CHARS else "")


def state(kernel: Kernel, proc: Process, plan: FetchPlan) -> str:
    """Return what the file ``save_to`` names is now (its digest, 'dir' or 'absent'), or '-' without
    one: an approval to overwrite it holds only while it stays as approved."""
    if plan.save_to is None:
        return "-"
    now = kernel.files.peek(plan.save_to)
    if now.exists:
        return now.digest or "unreadable"
    return "dir" if kernel.files.is_dir(plan.save_to) else "absent"


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


# -- authority --------------------------------------------------------------------------


def resource(host: str, path: str) -> str:
    """Return the resource a request to ``host`` for ``path`` is decided on: ``net:HOST/PATH``."""
    return f"net:{urls.bracketed(host)}{path}"


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
        if c.live(now) and need.right in c.rights and covers(c.pattern, need.resource, deny=c.effect is Effect.DENY)
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
        if any(c in value for c in "\r\n\x00") or not value.isascii() or urls.CONTROL.search(value.replace("\t", " ")):
            raise Invalid(f"header {name}'s value holds a line break, control or non-ASCII character")
        seen.add(lower)
        size += len(name) + len(value) + 4
    if size > limits.NET_HEADERS_MAX_BYTES:
        raise Invalid(f"the request headers are over {limits.NET_HEADERS_MAX_BYTES} bytes together")
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
            out[lower] = joined[: limits.NET_HEADER_SHOWN_CHARS]
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
            f"Pass a larger max_bytes (at most {limits.WRITE_MAX_BYTES})",
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
        return {"redirect": urls.parse_url(urllib.parse.urljoin(url, text)).url}
    except (Invalid, ValueError) as err:
        return {"redirect_refused": codec.escape(str(err))[: limits.PREVIEW_CHARS]}
