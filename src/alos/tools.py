"""Tools: what the model sees. Each tool of an image wraps one syscall and calls dispatch().

Tool names are syscall names with '_' for '.'; descriptions and JSON schemas are generated
from the syscall table's Args types, never written by hand. A tool checks no authority:
a refused call comes back as a result the model can read ("denied: process 1 lacks ...").
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from alos import codec, limits, tooljit
from alos.errors import AlosError, BadArguments, Invalid
from alos.images import Image
from alos.kernel import Kernel, Site
from alos.providers.calls import INVALID
from alos.syscall import TABLE, dispatch, refuse
from alos.tooljit import JitSpec
from alos.types import Parked, ToolCall


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool: its name and the syscall it wraps. Its description and JSON schema are made from
    the syscall's Args type the first time a model is shown them (a host that only carries out
    a pending action never needs them)."""

    name: str
    syscall: str

    @property
    def description(self) -> str:
        """What the tool does: its syscall's Args docstring."""
        return _description(self.syscall)

    @property
    def parameters(self) -> dict[str, Any]:
        """The JSON schema of the tool's arguments (a copy: a caller may change it freely)."""
        return copy.deepcopy(_parameters(self.syscall))

    def wire(self) -> dict[str, Any]:
        """Return the tool in the OpenAI function-tool shape."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


@dataclass(frozen=True, slots=True)
class ToolResult:
    text: str
    ok: bool
    malformed: bool = False  # the call named no tool of the image, or its arguments fit no schema


def schema(args: type) -> dict[str, Any]:
    """Return the JSON schema of an Args type, its own definition inlined."""
    raw = msgspec.json.schema(args)
    defs = dict(raw.get("$defs", {}))
    ref = raw.get("$ref", "")
    body = dict(defs.pop(ref.rsplit("/", 1)[-1], raw))
    body.pop("title", None)
    body.pop("description", None)
    if defs:
        body["$defs"] = defs
    return body


def spec(syscall: str) -> ToolSpec:
    """Return the tool that wraps ``syscall``."""
    if syscall not in TABLE:
        raise KeyError(f"no syscall {syscall!r} to make a tool of")
    return ToolSpec(syscall.replace(".", "_"), syscall)


@functools.cache
def _description(syscall: str) -> str:
    return " ".join((TABLE[syscall].args.__doc__ or syscall).split())


@functools.cache
def _parameters(syscall: str) -> dict[str, Any]:
    return schema(TABLE[syscall].args)


def table(image: Image) -> dict[str, ToolSpec]:
    """Return the tool table of ``image``, by tool name."""
    return {t.name: t for t in (spec(s) for s in image.syscalls)}


def render(value: Any) -> str:
    """Return a syscall result as the text the model reads."""
    if isinstance(value, str):
        return value
    return codec.dumps(value)


async def call(
    kernel: Kernel, pid: int, tools: Mapping[str, ToolSpec | JitSpec], tc: ToolCall, site: Site | None = None
) -> ToolResult | Parked:
    """Run tool call ``tc`` for ``pid`` at ``site`` of its pending action; return its result or
    Parked (nothing performed)."""
    tool = tools.get(tc.name)
    if tool is None:  # seeing no tool, the model has no way to the syscall: refused, and audited
        named = tc.name if len(tc.name) <= 100 else tc.name[:99] + "…"
        err = Invalid(f"no tool named {named!r} in this image; its tools are {', '.join(sorted(tools))}")
        refuse(kernel, pid, f"tool:{named}", err)
        return ToolResult(str(err), ok=False, malformed=True)
    if isinstance(tool, JitSpec):
        done = await tooljit.call(kernel, pid, tool, tc, site)
        return done if isinstance(done, Parked) else ToolResult(*done)
    bad = tc.arguments.get(INVALID)  # a client's stand-in for arguments that were not a JSON object
    if isinstance(bad, str) and len(tc.arguments) == 1:
        err = Invalid(f"the arguments of {tool.name} were not a JSON object: {bad[:200]!r}")
        refuse(kernel, pid, f"tool:{tool.name}", err)
        return ToolResult(f"{err}; they must match: {codec.dumps(_parameters(tool.syscall))}", False, True)
    args, hops = tc.arguments, list[str]()
    while True:
        try:
            result = await dispatch(kernel, pid, tool.syscall, args, site)
        except BadArguments as err:
            return ToolResult(f"{err}; the arguments must match: {codec.dumps(_parameters(tool.syscall))}", False, True)
        except AlosError as err:
            return ToolResult(_after(hops, str(err)), ok=False)
        if isinstance(result, Parked):
            return result
        follow = _next_hop(tool.syscall, args, result)
        if follow is None:
            return ToolResult(_after(hops, render(result)), ok=True)
        if len(hops) >= limits.NET_REDIRECTS_MAX:
            return ToolResult(_after(hops, f"stopped after {len(hops)} redirects: {render(result)}"), ok=False)
        hops.append(str(result["redirect"]))
        args = follow
        site = dataclasses.replace(site, step=site.step + 1) if site is not None else None


def _next_hop(syscall: str, args: dict[str, Any], result: Any) -> dict[str, Any] | None:
    """Return the arguments of the next call a redirect asks for (net.fetch only), or None.

    Each hop is its own call through dispatch(), decided on its own host and path. A 303, and a
    301 or 302 after a method other than GET or HEAD, becomes a GET without a body (as browsers do).
    """
    if syscall != "net.fetch" or not isinstance(result, dict) or not isinstance(result.get("redirect"), str):
        return None
    status = result.get("status")
    method = str(args.get("method", "GET")).upper()
    follow = {**args, "url": result["redirect"]}
    if status == 303 or (status in (301, 302) and method not in ("GET", "HEAD")):
        follow.update(method="GET", body="")
    here, there = urllib.parse.urlsplit(str(result.get("url", ""))), urllib.parse.urlsplit(result["redirect"])
    if (here.scheme, here.netloc) != (there.scheme, there.netloc):  # credentials stay with their origin
        given = args.get("headers")
        kept = given.items() if isinstance(given, dict) else ()
        follow["headers"] = {k: v for k, v in kept if str(k).lower() not in ("authorization", "cookie")}
    return follow


def _after(hops: list[str], text: str) -> str:
    """Return ``text`` prefixed by the redirects followed to reach it."""
    if not hops:
        return text
    return "".join(f"redirected to {codec.escape(h)}\n" for h in hops) + text
