"""obj.from_file and obj.to_file: the bridge between files and objects (docs/objects.md).

Content moves between a file and an object inside the runtime: the model names both and sees
only the size and digest, never the content. Each call needs the file right and the object
right; to_file is an outside effect (journaled, approved against the file as it is).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from alos import codec, limits, written
from alos.errors import Conflict, Exists, Invalid, Limit, NotFound
from alos.kernel import Kernel, Tx
from alos.kernel import objects as om
from alos.rights import Need, Right
from alos.store import objrows
from alos.types import Process

Version = Annotated[int, msgspec.Meta(ge=1, le=2**62)]


@dataclass(frozen=True, slots=True)
class FromFileArgs:
    """Store file ``path`` as object ``name`` (in your namespace unless ``ns``) without reading it
    into your context: a new version of an existing object, or with ``new`` a new object of
    ``type`` (text or bytes; text by default). ``expect`` as for obj_write."""

    path: str
    name: str
    ns: str | None = None
    new: bool = False
    type: str = "text"
    expect: Version | None = None


@dataclass(frozen=True, slots=True)
class ToFileArgs:
    """Write object ``name`` (its latest version, or ``version``) to file ``path`` without reading
    it into your context."""

    name: str
    path: str
    ns: str | None = None
    version: Version | None = None


def resolve(kernel: Kernel, proc: Process, args: Any) -> Any:
    """Return ``args`` with the path made real and the namespace filled in."""
    ns = om.namespace(proc.pid, args.ns)
    om.check_name(args.name)
    return dataclasses.replace(args, ns=ns, path=kernel.files.resolve(proc.cwd, args.path))


def from_needs(proc: Process, args: FromFileArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    needs = [Need(f"fs:{args.path}", Right.READ), Need(om.resource(args.ns or "", args.name), Right.WRITE)]
    if args.new:
        needs.append(Need(f"ns:{args.ns}", Right.WRITE))
    return tuple(needs)


def to_needs(proc: Process, args: ToFileArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need(om.resource(args.ns or "", args.name), Right.READ), Need(f"fs:{args.path}", Right.WRITE))


def cost(args: FromFileArgs | ToFileArgs) -> dict[str, int]:
    """Charge a call, and one byte: a call is refused once no bytes_written budget is left."""
    return {"tool_calls": 1, "bytes_written": 1}


def moved(args: FromFileArgs | ToFileArgs, result: dict[str, Any]) -> dict[str, int]:
    """Charge the bytes a call moved, once it has moved them (less the byte ``cost`` charged): its
    size is not known before, so a call may pass the budget by one file, as a model call may pass
    a tokens budget by one reply."""
    return {"bytes_written": int(result.get("bytes", 0)) - 1}


def from_file(kernel: Kernel, tx: Tx, proc: Process, args: FromFileArgs) -> dict[str, Any]:
    """Read the file and write it as a version of the object; return the version (no content)."""
    assert args.ns is not None
    data, size = kernel.files.read(args.path, 0, limits.OBJ_MAX_BYTES + 1)
    if size > limits.OBJ_MAX_BYTES:
        raise Limit(f"{args.path} has {size} bytes; an object version holds at most {limits.OBJ_MAX_BYTES}")
    head = objrows.head(tx.conn, args.ns, args.name)
    live = head is not None and head.digest is not None
    if args.new:
        if live:
            raise Exists(f"object {args.ns}/{args.name} exists; leave out new to write a version of it")
        if objrows.namespace_owner(tx.conn, args.ns) is None:
            raise NotFound(f"no namespace {args.ns}")
        type_ = args.type
        if type_ not in ("text", "bytes"):
            raise Invalid(f"obj_from_file makes text or bytes objects, not {type_[:64]!r}")
    else:
        if head is None or not live:
            raise NotFound(f"no object {args.ns}/{args.name}; pass new=true to make one")
        if args.expect is not None and head.version != args.expect:
            raise Conflict(f"object {args.ns}/{args.name} is at version {head.version}, not {args.expect}")
        type_ = head.type
    if type_ == "text" and codec.text_of(data) is None:
        raise Invalid(f"{args.path} is not UTF-8 text; store it as a bytes object")
    if type_ not in ("text", "bytes"):  # a JSON object: its value is checked as obj_write checks it
        try:
            value = codec.parse(data)
        except (msgspec.DecodeError, ValueError):
            raise Invalid(
                f"{args.path} is not JSON; {args.ns}/{args.name} is a {type_} object, which holds JSON"
            ) from None
        data = om.encode(kernel, proc.image, args.ns, type_, value)
    v = om.put(kernel, tx, args.ns, args.name, type_, data, proc.pid)
    return om.shown(v, path=args.path)


def _version(kernel: Kernel, args: ToFileArgs) -> objrows.Version:
    conn = kernel.store.conn
    assert args.ns is not None
    v = (
        objrows.head(conn, args.ns, args.name)
        if args.version is None
        else objrows.version_of(conn, args.ns, args.name, args.version)
    )
    if v is None or v.digest is None:
        raise NotFound(f"no object {args.ns}/{args.name}" + (f" version {args.version}" if args.version else ""))
    return v


def describe_to(kernel: Kernel, proc: Process, args: ToFileArgs) -> dict[str, Any]:
    """Return what a person approving the write sees: the object and the file as fs_write shows it."""
    try:
        v = _version(kernel, args)
        data = om.payload(kernel, v)
    except (NotFound, Invalid) as err:
        return {"object": f"{args.ns}/{args.name}", "path": args.path, "problem": err.message}
    return {"object": f"{args.ns}/{args.name}", "version": v.version, **written.shown(kernel.files, args.path, data)}


def target(kernel: Kernel, proc: Process, args: ToFileArgs) -> str:
    """Return what the file is now and which version would be written: an approval holds only while both stay."""
    now = kernel.files.peek(args.path)
    state = (now.digest or "unreadable") if now.exists else ("dir" if kernel.files.is_dir(args.path) else "absent")
    head = objrows.head(kernel.store.conn, args.ns or "", args.name) if args.version is None else None
    return f"{state} <- {head.digest if head is not None else args.version}"


async def to_file(kernel: Kernel, proc: Process, args: ToFileArgs) -> dict[str, Any]:
    """Write the version's payload to the file; return the path, size and digest."""
    v = _version(kernel, args)
    data = om.payload(kernel, v)
    kernel.files.write(args.path, data)
    return {"object": f"{args.ns}/{args.name}", "version": v.version, "path": args.path, "bytes": len(data),
            "digest": v.digest}  # fmt: skip
