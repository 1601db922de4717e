"""net.*: HTTP(S) requests through the network provider (placeholder until it lands)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alos.errors import Unavailable
from alos.kernel import Kernel
from alos.rights import Need, Right
from alos.types import Process


@dataclass(frozen=True, slots=True)
class FetchArgs:
    """Make an HTTP(S) request."""

    url: str
    method: str = "GET"


def resolve(kernel: Kernel, proc: Process, args: FetchArgs) -> FetchArgs:
    """Not yet."""
    return args


def needs(proc: Process, args: FetchArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need("net:" + args.url, Right.READ),)


async def fetch(kernel: Kernel, proc: Process, args: FetchArgs) -> dict[str, Any]:
    """Not yet."""
    raise Unavailable("net.fetch is not built yet")


def describe(kernel: Kernel, proc: Process, args: FetchArgs) -> dict[str, Any]:
    """Return what a person approving this request sees."""
    return {"url": args.url}


def cost(args: FetchArgs) -> dict[str, int]:
    """One tool call."""
    return {"tool_calls": 1}
