"""fs.*: read, write, list, mkdir and delete files in the host filesystem through the provider.

Paths are resolved against the process's working directory (symlinks followed) before the
decision, so the resource decided on is the one the provider touches.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import msgspec

from alos import codec, limits, written
from alos.errors import Invalid, Limit, NotFound
from alos.kernel import Kernel
from alos.rights import Need, Right
from alos.types import Process


@dataclass(frozen=True, slots=True)
class ReadArgs:
    """Read a text file (UTF-8) from ``offset``, at most ``length`` bytes."""

    path: str
    offset: Annotated[int, msgspec.Meta(ge=0, le=limits.FILE_MAX_OFFSET)] = 0
    length: Annotated[int, msgspec.Meta(ge=0, le=limits.READ_MAX_BYTES)] = limits.READ_MAX_BYTES


@dataclass(frozen=True, slots=True)
class WriteArgs:
    """Create or replace a file with ``content`` (UTF-8 text). Readers see the old or the new file."""

    path: str
    content: str


@dataclass(frozen=True, slots=True)
class ListArgs:
    """List a directory: name, type (file, dir, link, other) and size of each entry."""

    path: str = "."


@dataclass(frozen=True, slots=True)
class MkdirArgs:
    """Make a directory (and missing parents unless ``parents`` is false)."""

    path: str
    parents: bool = True


@dataclass(frozen=True, slots=True)
class DeleteArgs:
    """Delete a file or an empty directory."""

    path: str


@dataclass(frozen=True, slots=True)
class MkdirPlan:
    """A resolved fs.mkdir: the directories it will create, top down (what it needs write on)."""

    path: str
    parents: bool
    creates: tuple[str, ...]


PathArgs = TypeVar("PathArgs", ReadArgs, WriteArgs, ListArgs, MkdirArgs, DeleteArgs)


def resolve(kernel: Kernel, proc: Process, args: PathArgs) -> PathArgs:
    """Return ``args`` with ``path`` made absolute and real from the process's directory."""
    return dataclasses.replace(args, path=kernel.files.resolve(proc.cwd, args.path))


def resolve_mkdir(kernel: Kernel, proc: Process, args: MkdirArgs) -> MkdirPlan:
    """Return the plan of ``args``: its real path and each missing directory it would create.
    Whether it may run is decided on the plan; only then does mkdir say a parent is missing."""
    path = kernel.files.resolve(proc.cwd, args.path)
    return MkdirPlan(path, args.parents, kernel.files.missing(path))


def read_needs(proc: Process, args: ReadArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need("fs:" + args.path, Right.READ),)


def write_needs(proc: Process, args: WriteArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need("fs:" + args.path, Right.WRITE),)


def list_needs(proc: Process, args: ListArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need("fs:" + args.path, Right.LIST),)


def mkdir_needs(proc: Process, plan: MkdirPlan) -> tuple[Need, ...]:
    """Write on every directory the call creates (the target first), or on the target if none."""
    made = (plan.creates[-1], *plan.creates[:-1]) if plan.creates else (plan.path,)
    return tuple(Need("fs:" + d, Right.WRITE) for d in made)


def delete_needs(proc: Process, args: DeleteArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need("fs:" + args.path, Right.DELETE),)


async def read(kernel: Kernel, proc: Process, args: ReadArgs) -> str:
    """Return the text of the requested range; raises Invalid, with the file's size, for a file
    that is not UTF-8 text (a range may cut a character at either end: those bytes are dropped)."""
    data, size = kernel.files.read(args.path, args.offset, args.length)
    text = codec.text_of(data, cut_before=args.offset > 0, to_end=args.offset + len(data) >= size)
    if text is None:
        raise Invalid(f"{args.path} is a binary file of {size} bytes, not UTF-8 text; fs_read reads text only")
    return text


def _payload(args: WriteArgs) -> bytes:
    data = args.content.encode()
    if len(data) > limits.WRITE_MAX_BYTES:
        raise Limit(
            f"fs.write of {len(data)} bytes to {args.path}; one write may carry at most {limits.WRITE_MAX_BYTES} bytes"
        )
    return data


async def write(kernel: Kernel, proc: Process, args: WriteArgs) -> dict[str, Any]:
    """Replace the file; return its path, size and digest."""
    data = _payload(args)
    kernel.files.write(args.path, data)
    return {"path": args.path, "bytes": len(data), "digest": codec.digest(data)}


async def list_dir(kernel: Kernel, proc: Process, args: ListArgs) -> dict[str, Any]:
    """Return the directory's entries and whether the listing was cut."""
    entries, cut = kernel.files.list(args.path)
    return {"path": args.path, "entries": entries, "truncated": cut}


async def mkdir(kernel: Kernel, proc: Process, plan: MkdirPlan) -> dict[str, Any]:
    """Make exactly the planned directories; return whether the target was created (false: it existed).

    Raises NotFound when parents are missing and ``parents`` is false.
    """
    if len(plan.creates) > 1 and not plan.parents:
        raise NotFound(f"directory {os.path.dirname(plan.path)} does not exist; pass parents=true to make it too")
    return {"path": plan.path, "created": kernel.files.mkdir(plan.path, plan.creates)}


async def delete(kernel: Kernel, proc: Process, args: DeleteArgs) -> dict[str, Any]:
    """Delete the file or empty directory; return which it was."""
    return {"path": args.path, "deleted": kernel.files.delete(args.path)}


def describe_write(kernel: Kernel, proc: Process, args: WriteArgs) -> dict[str, Any]:
    """Return what a human approving this write sees (written.shown: path, size, digest,
    preview, and the whole diff against the current file)."""
    return written.shown(kernel.files, args.path, args.content.encode())


def describe_path(kernel: Kernel, proc: Process, args: MkdirPlan | DeleteArgs | ReadArgs | ListArgs) -> dict[str, Any]:
    """Return what a human approving a read, list, mkdir or delete sees."""
    now = kernel.files.peek(args.path)
    shown: dict[str, Any] = {
        "path": args.path,
        "exists": now.exists or kernel.files.is_dir(args.path),
    }
    if now.exists:
        shown["current_digest"] = now.digest
        shown["current_bytes"] = now.size
    return shown


def target_state(kernel: Kernel, proc: Process, args: WriteArgs | DeleteArgs | MkdirPlan) -> str:
    """Return what the target is now (its digest, 'dir' or 'absent'): an approval holds only while it stays so."""
    now = kernel.files.peek(args.path)
    if now.exists:
        return now.digest or "unreadable"
    return "dir" if kernel.files.is_dir(args.path) else "absent"
