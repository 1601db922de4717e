"""shell.*: run a command on the host through the shell provider (placeholder)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alos.errors import Unavailable
from alos.kernel import Kernel
from alos.rights import Need, Right
from alos.types import Process


@dataclass(frozen=True, slots=True)
class RunArgs:
    """Run a program."""

    argv: list[str]


def resolve(kernel: Kernel, proc: Process, args: RunArgs) -> RunArgs:
    """Not yet."""
    return args


def needs(proc: Process, args: RunArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need("shell:" + args.argv[0], Right.EXECUTE),)


async def run(kernel: Kernel, proc: Process, args: RunArgs) -> dict[str, Any]:
    """Not yet."""
    raise Unavailable("shell.run is not built yet")


def describe(kernel: Kernel, proc: Process, args: RunArgs) -> dict[str, Any]:
    """Return what a person approving this command sees."""
    return {"argv": args.argv}
