"""URLs and addresses as net.fetch decides on them: strict parsing, one normal form, and which
addresses are not global.

Pure functions on text and ipaddress values: no lookup, no kernel, no store. What is decided is
what is sent, so the URL a grant is checked against is the one parse_url returns.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass

from alos import codec, limits
from alos.errors import Invalid, NotFound

PORTS = {"http": 80, "https": 443}  # the schemes a URL may have, with their default ports
# control and bidi characters: refused in a URL and in a header value
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_LABEL = re.compile(r"[a-z0-9_-]{1,63}")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PATH_SAFE = _UNRESERVED | frozenset("!$&'()*+,;=:@/")
_QUERY_SAFE = _PATH_SAFE | frozenset("?")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


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
        port = "" if PORTS[self.scheme] == self.port else f":{self.port}"
        return f"{self.scheme}://{bracketed(self.host)}{port}{self.path}" + (f"?{self.query}" if self.query else "")


def parse_url(url: str) -> Target:
    """Return ``url`` taken apart and normalized: host lowercased and IDNA-encoded, path and query
    percent-encoded, dot segments removed, the fragment dropped. Raises Invalid naming what is wrong
    (not http or https, user info, an empty or bad host, a bad port, a control character, a path
    that climbs once decoded)."""
    most = limits.NET_URL_MAX_CHARS
    if len(url) > most:
        raise Invalid(f"the URL is over {most} characters")
    if CONTROL.search(url):
        raise Invalid(f"the URL {codec.escape(url[:200])} holds a control character; percent-encode it")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in PORTS:
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
    if len(target.url) > most:
        raise Invalid(f"the URL is over {most} characters once percent-encoded")
    return target


def _host_port(authority: str, scheme: str) -> tuple[str, int]:
    """Return the host and port of ``authority`` (``host``, ``host:port``, ``[v6]:port``)."""
    if authority.startswith("["):
        literal, close, after = authority[1:].partition("]")
        if not close:
            raise Invalid(f"bad IPv6 address in URL: {codec.escape(authority[:100])}")
        host = ipv6(literal)
    else:
        name, colon, port = authority.partition(":")
        host, after = hostname(name), colon + port
    if not after:
        return host, PORTS[scheme]
    digits = after[1:]
    if after[0] != ":" or not (digits.isascii() and digits.isdigit() and 0 < len(digits) <= 5) or int(digits) > 65535:
        raise Invalid(f"bad port in URL: {codec.escape(after[:20])}; a port is a number from 1 to 65535")
    if int(digits) == 0:
        raise Invalid("port 0 is not a port a server listens on")
    return host, int(digits)


def hostname(name: str) -> str:
    """Return host ``name`` lowercased, one trailing dot dropped, IDNA-encoded, an IPv4 address in
    its one decimal form. Raises Invalid for an empty name, a bad label or another IPv4 form."""
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


def ipv6(literal: str) -> str:
    """Return the IPv6 address ``literal`` (what stands between brackets) in its compressed form.
    Raises Invalid for anything else, an address with a zone ('%eth0') included."""
    try:
        if "%" not in literal:
            return ipaddress.IPv6Address(literal).compressed
    except ValueError:
        pass
    raise Invalid(f"bad IPv6 address: [{codec.escape(literal[:100])}]")


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
    missing), the lowest of that family, so that the same answer pins the same address. Raises
    NotFound when ``addresses`` holds no IP address."""
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
