"""Rights, resource patterns, grants and capabilities; the pure rules that match them.

A resource is a typed string (``fs:/abs/path``, ``human:console``, ``model:script`` ...). A
pattern is an exact resource or a subtree ``KIND:prefix/*`` (the prefix itself and all
below it, on a component boundary) or ``KIND:*`` (every resource of the kind).
Pure functions, no store; the one touch of the host is ``normalize_pattern``, which resolves a
grant's fs path for real (symlinks) so that grants and calls name the same real paths.
``covers`` never widens on ``..`` because fs resources are resolved before they get here.
"""

from __future__ import annotations

import enum
import ipaddress
import os
import re
from dataclasses import dataclass

from alos import shellforms, urls
from alos.errors import Denied, Invalid

_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
BARE = frozenset({"clock"})  # resources that are a kind alone (ARCHITECTURE.md section 4)
# the resource kinds some syscall of this release needs: a grant on any other kind would be a
# capability nothing ever checks, so it is refused (add a kind with the syscall that needs it)
KINDS = frozenset({"fs", "proc", "human", "image", "model", "clock", "shell", "net", "obj", "ns", "tool"})


class Right(enum.StrEnum):
    READ = "read"
    WRITE = "write"
    DELETE = "delete"
    LIST = "list"
    EXECUTE = "execute"
    SPAWN = "spawn"
    SIGNAL = "signal"
    ASK = "ask"
    REGISTER = "register"
    SEND = "send"
    RECV = "recv"
    ADMIN = "admin"


class Effect(enum.StrEnum):
    ALLOW = "allow"
    ASK = "ask"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class Need:
    """One (resource, right) a syscall needs; resources are already resolved."""

    resource: str
    right: Right


@dataclass(frozen=True, slots=True)
class Grant:
    """A capability to be issued: what a --allow/--ask/--deny spec or an answer says."""

    pattern: str
    rights: frozenset[Right]
    effect: Effect
    expires: float | None = None
    uses: int | None = None
    delegable: bool = False
    digest: str | None = None  # set: a one-shot grant bound to exactly these arguments
    request: int | None = None  # the human request whose answer issued it


@dataclass(frozen=True, slots=True)
class Capability:
    id: int
    pid: int
    pattern: str
    rights: frozenset[Right]
    effect: Effect
    issuer: str
    expires: float | None
    uses: int | None
    delegable: bool
    parent: int | None
    revoked: bool
    digest: str | None
    request: int | None

    def live(self, now: float) -> bool:
        """Return whether this capability can still decide anything at time ``now``."""
        return (
            not self.revoked and (self.expires is None or self.expires > now) and (self.uses is None or self.uses > 0)
        )


def kind(resource: str) -> str:
    """Return the kind of a resource or pattern (``fs`` of ``fs:/a``; ``clock`` of ``clock``)."""
    return resource.partition(":")[0]


def covers(pattern: str, resource: str, *, deny: bool = False) -> bool:
    """Return whether ``pattern`` matches ``resource`` (exact, ``KIND:*`` or ``prefix/*``; a
    ``shell:`` pattern by the argv rules of shellforms.covers). ``net:*`` covers every host name
    and every global address, never an address that is not global (loopback, private, link-local
    ...): such an address is covered only by a grant that names it (docs/network.md).

    Those two narrowings keep an allow or an ask from reaching further than it names; a ``deny``
    pattern is never narrowed: ``shell:python3`` denied denies ``python3 -c`` too, and ``net:*``
    denied denies 127.0.0.1."""
    if pattern.startswith("shell:") and resource.startswith("shell:"):
        return shellforms.covers(pattern, resource, deny=deny)
    if pattern == "net:*":
        return resource.startswith("net:") and (deny or not _private_address(resource))
    if not pattern.endswith("*"):
        return pattern == resource
    if pattern.endswith(":*"):
        return resource.startswith(pattern[:-1])
    base = pattern[:-2]  # "fs:/a/b/*" -> "fs:/a/b"
    if resource == base:
        return True
    if base.endswith("/"):  # "fs:/*": the root subtree
        return resource.startswith(base)
    return resource.startswith(base) and resource[len(base)] == "/"


def specificity(pattern: str) -> int:
    """Return how narrowly ``pattern`` matches: exact beats any subtree, deeper beats shallower."""
    if pattern.startswith("shell:"):
        return shellforms.specificity(pattern)
    if pattern.endswith("*"):
        return len(pattern) - 1
    return 1 << 20


def parse_rights(text: str, spec: str) -> frozenset[Right]:
    """Return the rights named in a comma list; raises Invalid naming ``spec`` and the bad word."""
    words = [w.strip() for w in text.split(",")]
    if not any(words):
        raise Invalid(f"grant {spec!r} names no rights; write e.g. 'fs:src/*=read,write'")
    if not all(words):
        raise Invalid(f"grant {spec!r} has an empty right between commas; write e.g. 'read,write'")
    rights = set()
    for word in words:
        try:
            rights.add(Right(word))
        except ValueError:
            known = ", ".join(r.value for r in Right)
            raise Invalid(f"grant {spec!r}: unknown right {word!r}; rights are {known}") from None
    return frozenset(rights)


def normalize_pattern(pattern: str, workspace: str, spec: str) -> str:
    """Return ``pattern`` checked, with a relative ``fs:`` path made absolute in ``workspace``.

    Raises Invalid naming ``spec`` when the kind is unknown or ``*`` stands anywhere but last.
    """
    if pattern in BARE:
        return pattern
    kind, sep, rest = pattern.partition(":")
    if not sep:
        raise Invalid(f"grant {spec!r}: resource must be KIND:NAME with KIND one of {', '.join(sorted(KINDS))}")
    if kind not in KINDS:
        raise Invalid(
            f"grant {spec!r}: no syscall of this alos uses resources of kind {kind!r}; "
            f"the kinds are {', '.join(sorted(KINDS))}"
        )
    if not rest:
        raise Invalid(f"grant {spec!r}: empty resource name after {kind!r}")
    if "\x00" in rest:
        raise Invalid(f"grant {spec!r}: a resource name holds no NUL byte")
    if kind == "shell":
        return shellforms.normalize(rest, workspace, spec)
    if kind == "net":
        return _net_pattern(rest, spec)
    star = rest.endswith("*")
    body = rest[:-1] if star else rest
    if "*" in body or (star and body and not body.endswith("/")):
        raise Invalid(f"grant {spec!r}: '*' may only end a pattern as '/*' (a subtree) or stand alone ('{kind}:*')")
    if kind in ("obj", "ns"):
        return _object_pattern(kind, body, star, spec)
    if kind != "fs":
        return pattern
    if not body:  # "fs:*": the workspace
        return f"fs:{_real_dir(workspace)}/*" if star else pattern
    path = body if os.path.isabs(body) else os.path.join(workspace, body)
    path = os.path.realpath(os.path.normpath(path.rstrip("/") or "/"))  # '..' by name, as in a call
    if star:
        return f"fs:{path.rstrip('/')}/*"
    return f"fs:{path}"


def _object_pattern(kind: str, body: str, star: bool, spec: str) -> str:
    """Return an ``obj:`` or ``ns:`` pattern checked: segments of letters, digits, '.', '_' or '-'
    joined by '/' (``obj:NS/NAME``, ``obj:NS/*``, ``ns:NS``, ``KIND:*``)."""
    words = body.rstrip("/")
    segs = words.split("/") if words else []
    ns = 2 if segs[:1] == ["proc"] else 1  # segments that name the namespace
    fits = len(segs) >= ns + (0 if star or kind == "ns" else 1) and (kind == "obj" or star or len(segs) == ns)
    if segs and (not fits or not all(s and s not in (".", "..") and _SEGMENT.fullmatch(s) for s in segs)):
        raise Invalid(
            f"grant {spec!r}: write an object as obj:NAMESPACE/NAME or obj:NAMESPACE/*, a namespace as "
            "ns:NAMESPACE (a namespace is proc/<pid> or a made name; names are segments of letters, digits, "
            "'.', '_' or '-' joined by '/'), e.g. 'obj:proc/4/notes', 'obj:research/*' or 'ns:research'"
        )
    return f"{kind}:{words}/*" if star and words else f"{kind}:{words or '*'}" if star else f"{kind}:{words}"


def _net_pattern(rest: str, spec: str) -> str:
    """Return a ``net:`` pattern in its matching form: the host normalized as a URL's is (lowercase,
    IDNA, IPv4 in four decimal numbers, IPv6 compressed and in brackets), a host or a path prefix
    made a subtree (``net:example.com`` covers every path of that host, on every port). Raises
    Invalid naming ``spec`` for a bad host, a port, or an IPv6 address written without brackets."""
    if rest == "*":
        return "net:*"
    host, _, path = rest.partition("/")
    example = "e.g. 'net:api.github.com=read', 'net:example.com/api/*=read,write' or 'net:[::1]=read'"
    if host.startswith("["):
        name, close, after = host[1:].partition("]")
        if not close:
            raise Invalid(f"grant {spec!r}: an IPv6 address opens '[' and closes ']', e.g. 'net:[::1]=read'")
    elif host.count(":") > 1:
        raise Invalid(f"grant {spec!r}: write an IPv6 address in brackets, e.g. 'net:[::1]=read'")
    else:
        name, colon, port = host.partition(":")
        after = colon + port
    if after.startswith(":"):
        raise Invalid(
            f"grant {spec!r}: a port is not part of a net resource; a grant on a host covers every port "
            f"of it: write 'net:{host[: len(host) - len(after)]}'"
        )
    if after or not name:
        raise Invalid(f"grant {spec!r}: name a host, {example}")
    try:
        host = f"[{urls.ipv6(name)}]" if host.startswith("[") else urls.hostname(name)
    except Invalid as err:
        raise Invalid(f"grant {spec!r}: {err.message}; name a host, {example}") from None
    path = path.removesuffix("*").strip("/")
    return f"net:{host}/{path}/*" if path else f"net:{host}/*"


def _private_address(resource: str) -> bool:
    """Return whether the host of a ``net:`` resource or pattern is an IP address that is not global."""
    rest = resource.removeprefix("net:")
    host = rest[1:].partition("]")[0] if rest.startswith("[") else rest.partition("/")[0]
    try:
        return urls.is_private(ipaddress.ip_address(host))
    except ValueError:  # a host name: a grant on its name decides, and on its address once looked up
        return False


def _real_dir(workspace: str) -> str:
    return os.path.realpath(workspace).rstrip("/")


def parse_grant(spec: str, effect: Effect, workspace: str) -> Grant:
    """Return the Grant of a CLI spec ``RESOURCE=RIGHTS`` (e.g. ``fs:src/*=read,write``).

    Raises Invalid naming the spec and the bad part; nothing is issued on error.
    """
    pattern, sep, rights = spec.rpartition("=")
    if not sep or not pattern:
        raise Invalid(f"grant {spec!r} must look like RESOURCE=RIGHTS, e.g. 'fs:src/*=read,write'")
    return Grant(
        pattern=normalize_pattern(pattern.strip(), workspace, spec),
        rights=parse_rights(rights, spec),
        effect=effect,
    )


def make_grant(
    pattern: str,
    rights: list[str],
    effect: str,
    workspace: str,
    *,
    expires: float | None = None,
    uses: int | None = None,
    delegable: bool = False,
) -> Grant:
    """Return the Grant of a syscall's grant arguments, its fs pattern made absolute in ``workspace``.

    Raises Invalid naming the bad part, as parse_grant does for the CLI spelling.
    """
    spec = f"{pattern}={','.join(rights)}"
    return Grant(
        normalize_pattern(pattern, workspace, spec),
        parse_rights(",".join(rights), spec),
        Effect(effect),
        expires=expires,
        uses=uses,
        delegable=delegable,
    )


def derive(parent: Capability, child: Grant, now: float) -> Grant:
    """Return ``child`` checked as an attenuation of ``parent`` at time ``now``: rights only shrink.

    Raises Denied naming what was held and what was asked when ``child`` asks for a right,
    a resource, an effect, a lifetime or a number of uses the parent does not hold, or when
    the parent is not delegable or no longer live (revoked, expired, used up).
    """
    held = f"{parent.pattern}={','.join(sorted(parent.rights))} ({parent.effect})"
    asked = f"{child.pattern}={','.join(sorted(child.rights))} ({child.effect})"
    if not parent.live(now):
        raise Denied(f"capability {parent.id} ({held}) is revoked, expired or used up; nothing derives from it")
    if parent.uses is not None and (child.uses is None or child.uses > parent.uses):
        raise Denied(f"cannot derive {asked} from {held}: it may be used at most {parent.uses} more time(s)")
    if not parent.delegable:
        raise Denied(f"capability {parent.id} ({held}) is not delegable; asked for {asked}")
    if not child.rights <= parent.rights:
        raise Denied(f"cannot derive {asked} from {held}: rights only shrink")
    if kind(parent.pattern) == "shell":  # argv rules: shellforms.within
        inside = kind(child.pattern) == "shell" and shellforms.within(parent.pattern, child.pattern)
    elif parent.pattern.endswith("*"):  # a subtree passes itself or anything inside it
        inside = covers(parent.pattern, child.pattern.removesuffix("/*").removesuffix("*"))
    else:  # an exact resource passes only itself: never the subtree below it
        inside = parent.pattern == child.pattern
    if not inside:
        raise Denied(f"cannot derive {asked} from {held}: resource is outside the held pattern")
    if parent.effect is Effect.DENY and child.effect is not Effect.DENY:
        raise Denied(f"cannot derive {asked} from {held}: a deny is never removed")
    if parent.effect is Effect.ASK and child.effect is Effect.ALLOW:
        raise Denied(f"cannot derive {asked} from {held}: ask never becomes allow")
    if parent.expires is not None and (child.expires is None or child.expires > parent.expires):
        raise Denied(f"cannot derive {asked} from {held}: it may not outlive the parent")
    return child
