"""image.*: register AgentImages in the store, list them and show one.

An image is a tool table, a prompt, defaults and the grants it *requests*; storing or running
one grants nothing. Registering a name again makes a new version; a running process keeps the
version it started with (kernel/images.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from alos import limits
from alos.errors import Denied, Invalid
from alos.kernel import Kernel, Tx
from alos.kernel import images as registry
from alos.rights import Need, Right
from alos.store import rows
from alos.types import HOST, Process


@dataclass(frozen=True, slots=True)
class RegisterArgs:
    """Register ``image`` (an object with the fields of an image file: name, description,
    prompt, tools, grants, budget, model, context; docs/images.md) as the next version of its
    name. Needs write on image:NAME. It grants nothing to anyone."""

    image: dict[str, Any]
    listed: bool = True  # false: keep it only under its digest, for one run (what alos run FILE does)


@dataclass(frozen=True, slots=True)
class ListArgs:
    """List the built-in images and the newest version of every registered one."""


@dataclass(frozen=True, slots=True)
class ShowArgs:
    """Show image ``name`` (a built-in, a registered name for its newest version, or NAME@VERSION)."""

    name: str


def resolve_register(kernel: Kernel, proc: Process, args: RegisterArgs) -> RegisterArgs:
    """Check the whole image before anything is decided: its resource is built from its name,
    and a person asked about it sees it as it would be stored."""
    name = args.image.get("name")
    if not isinstance(name, str):
        raise Invalid("image.register: the image needs a 'name' (a letter, then letters, digits, - or _)")
    registry.check_name(name)
    if proc.pid != HOST and args.image.get("objects"):
        # a seed names a payload by digest: from a process, that would read whatever the digest names
        raise Denied(
            "image.register: a process may not register seed objects (objects); they come from the "
            "checkpoints it may read, through ckpt_commit"
        )
    return RegisterArgs(kernel.images.check(args.image), args.listed)


def register_needs(proc: Process, args: RegisterArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need(f"image:{args.image['name']}", Right.WRITE),)


def list_needs(proc: Process, args: ListArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need("image:*", Right.LIST),)


def show_needs(proc: Process, args: ShowArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need(f"image:{args.name.partition('@')[0]}", Right.READ),)


def describe_register(kernel: Kernel, proc: Process, args: RegisterArgs) -> dict[str, Any]:
    """Return what a person deciding about this registration sees: what the image would be."""
    image = args.image
    prompt = str(image.get("prompt") or "")
    return {
        "name": image.get("name"),
        "by": f"process {proc.pid}" if proc.pid != HOST else "the host",
        "description": image.get("description"),
        "tools": image.get("tools"),
        "requests": image.get("grants"),
        "prompt": prompt if len(prompt) <= limits.PREVIEW_CHARS else prompt[: limits.PREVIEW_CHARS] + "…",
        "prompt_sha256": hashlib.sha256(prompt.encode()).hexdigest(),
    }


def register(kernel: Kernel, tx: Tx, proc: Process, args: RegisterArgs) -> dict[str, Any]:
    """Store the image as the next version of its name; return its ref, version and digest."""
    return registry.store(kernel, tx, args.image, proc.pid, listed=args.listed)


async def list_images(kernel: Kernel, proc: Process, args: ListArgs) -> dict[str, Any]:
    """Return the built-in images and the newest version of each registered one."""
    out: list[dict[str, Any]] = []
    for name in kernel.images.names():
        body = kernel.images.builtin(name) or {}
        out.append({"name": name, "version": "built-in", "description": body.get("description", "")})
    for name, version, digest, description, created, pid in rows.registered_images(kernel.store.conn):
        out.append(
            {
                "name": name,
                "version": version,
                "description": description,
                "digest": digest,
                "registered": created,
                "by": pid,
            }
        )
    return {"images": out}


async def show(kernel: Kernel, proc: Process, args: ShowArgs) -> dict[str, Any]:
    """Return the image ``name`` means, whole, with its ref."""
    ref, body = registry.lookup(kernel, args.name)
    return {"ref": ref, "image": body}
