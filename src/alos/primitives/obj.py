"""obj.*: typed objects in namespaces, with immutable versions (docs/objects.md).

A bare name is in the caller's own namespace (``proc/<pid>``); ``ns`` names another. Every
call is decided on ``obj:<ns>/<name>`` (reading, writing, deleting an object) or ``ns:<ns>``
(listing names, making one), so a process without the right is refused before anything
looks at the store: a refusal never tells whether a name exists, and knowing a name or a
digest grants nothing. ``expect`` makes a write fail with ``conflict`` when another writer got
there first. The payload never enters an audit record, only its size and digest.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from alos import codec, limits
from alos.errors import Conflict, Exists, Limit, NotFound
from alos.kernel import Kernel, Tx
from alos.kernel import objects as om
from alos.rights import Need, Right
from alos.store import objrows
from alos.types import Process

Version = Annotated[int, msgspec.Meta(ge=1, le=2**62)]
Most = Annotated[int, msgspec.Meta(ge=1, le=limits.OBJ_LIST_MAX)]


@dataclass(frozen=True, slots=True)
class CreateArgs:
    """Create object ``name`` of ``type`` (text, json, bytes as base64, file_ref, plan, result,
    context, or a type your image declares) holding ``value``; in your namespace unless ``ns``."""

    name: str
    type: str
    value: Any
    ns: str | None = None


@dataclass(frozen=True, slots=True)
class ReadArgs:
    """Read object ``name``: its latest version, or ``version``. Bytes come back as base64."""

    name: str
    ns: str | None = None
    version: Version | None = None


@dataclass(frozen=True, slots=True)
class WriteArgs:
    """Write a new version of object ``name`` holding ``value``. With ``expect`` (the version you
    read) it fails with a conflict if someone wrote it since."""

    name: str
    value: Any
    ns: str | None = None
    expect: Version | None = None


@dataclass(frozen=True, slots=True)
class AppendArgs:
    """Append ``value`` to object ``name`` as a new version: text to text, base64 bytes to bytes,
    an item to a JSON array. ``expect`` as for obj_write."""

    name: str
    value: Any
    ns: str | None = None
    expect: Version | None = None


@dataclass(frozen=True, slots=True)
class ListArgs:
    """List the objects of your namespace (or ``ns``) whose names start with ``prefix``, in name
    order after ``after``, at most ``limit``."""

    ns: str | None = None
    prefix: str = ""
    after: str = ""
    limit: Most = limits.OBJ_LIST_MAX


@dataclass(frozen=True, slots=True)
class LogArgs:
    """List the versions of object ``name``, newest first."""

    name: str
    ns: str | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=limits.OBJ_LOG_MAX)] = limits.OBJ_LOG_MAX


@dataclass(frozen=True, slots=True)
class LinkArgs:
    """Record that the latest version of object ``name`` ``kind`` (derived_from, cites,
    result_of) the latest version of object ``to`` (in ``to_ns`` if given)."""

    name: str
    kind: Literal["derived_from", "cites", "result_of"]
    to: str
    ns: str | None = None
    to_ns: str | None = None


@dataclass(frozen=True, slots=True)
class DeleteArgs:
    """Delete object ``name`` (its versions stay readable by number)."""

    name: str
    ns: str | None = None


def resolve(kernel: Kernel, proc: Process, args: Any) -> Any:
    """Return ``args`` with its namespace(s) filled in and its names checked (raises Invalid)."""
    ns = om.namespace(proc.pid, args.ns)
    if isinstance(args, ListArgs):
        return dataclasses.replace(args, ns=ns)
    om.check_name(args.name)
    if isinstance(args, LinkArgs):
        om.check_name(args.to)
        to_ns = om.namespace(proc.pid, args.to_ns) if args.to_ns is not None else ns
        return dataclasses.replace(args, ns=ns, to_ns=to_ns)
    return dataclasses.replace(args, ns=ns)


def _res(args: Any) -> str:
    return om.resource(args.ns, args.name)


def create_needs(proc: Process, args: CreateArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need(_res(args), Right.WRITE), Need(f"ns:{args.ns}", Right.WRITE))


def read_needs(proc: Process, args: ReadArgs | LogArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need(_res(args), Right.READ),)


def write_needs(proc: Process, args: WriteArgs | AppendArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need(_res(args), Right.WRITE),)


def list_needs(proc: Process, args: ListArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need(f"ns:{args.ns}", Right.LIST),)


def link_needs(proc: Process, args: LinkArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    assert args.to_ns is not None
    return (Need(_res(args), Right.WRITE), Need(om.resource(args.to_ns, args.to), Right.READ))


def delete_needs(proc: Process, args: DeleteArgs) -> tuple[Need, ...]:
    """Return the (resource, right) pairs this call needs; dispatch() decides them."""
    return (Need(_res(args), Right.DELETE),)


def cost(args: CreateArgs | WriteArgs | AppendArgs) -> dict[str, int]:
    """Charge a call and the bytes its value carries (as an fs.write's)."""
    return {"tool_calls": 1, "bytes_written": len(codec.dumps(args.value))}


def describe(kernel: Kernel, proc: Process, args: CreateArgs | WriteArgs | AppendArgs) -> dict[str, Any]:
    """Return what a person approving a write sees: the object, the value's size, digest and an
    escaped preview, and the version it would follow."""
    text = args.value if isinstance(args.value, str) else codec.dumps(args.value)
    shown: dict[str, Any] = {
        "object": f"{args.ns}/{args.name}",
        "bytes": len(text.encode()),
        "digest": codec.digest(text.encode()),
        "preview": codec.escape(text[: limits.PREVIEW_CHARS]),
        "truncated": len(text) > limits.PREVIEW_CHARS,
    }
    if isinstance(args, CreateArgs):
        shown["type"] = args.type
    else:
        head = objrows.head(kernel.store.conn, args.ns or "", args.name)
        shown["current_version"] = head.version if head is not None and head.digest is not None else None
        shown["expect"] = args.expect
        shown["append"] = isinstance(args, AppendArgs)
    return shown


def _live(tx: Tx, ns: str, name: str) -> objrows.Version:
    head = objrows.head(tx.conn, ns, name)
    if head is None or head.digest is None:
        raise NotFound(f"no object {ns}/{name}; obj_create makes one")
    return head


def create(kernel: Kernel, tx: Tx, proc: Process, args: CreateArgs) -> dict[str, Any]:
    """Create the object at version 1 (or a new version of one that was deleted)."""
    assert args.ns is not None
    if objrows.namespace_owner(tx.conn, args.ns) is None:
        raise NotFound(f"no namespace {args.ns}; ns_create makes one")
    head = objrows.head(tx.conn, args.ns, args.name)
    if head is not None and head.digest is not None:
        raise Exists(f"object {args.ns}/{args.name} exists (version {head.version}); obj_write writes a new version")
    data = om.encode(kernel, proc.image, args.ns, args.type, args.value)
    v = om.put(kernel, tx, args.ns, args.name, args.type, data, proc.pid)
    return om.shown(v)


async def read(kernel: Kernel, proc: Process, args: ReadArgs) -> dict[str, Any]:
    """Return the version asked for with its value and its links."""
    conn = kernel.store.conn
    assert args.ns is not None
    if args.version is None:
        v = objrows.head(conn, args.ns, args.name)
        if v is None or v.digest is None:
            raise NotFound(f"no object {args.ns}/{args.name}")
    else:
        found = objrows.version_of(conn, args.ns, args.name, args.version)
        if found is None:
            raise NotFound(f"object {args.ns}/{args.name} has no version {args.version}")
        v = found
        if v.digest is None:
            raise NotFound(f"version {args.version} of {args.ns}/{args.name} is its deletion")
    value = om.decode(v.type, om.payload(kernel, v))
    edges = objrows.links_from(conn, v.seq)
    links = [{"kind": k, "object": f"{t.ns}/{t.name}", "version": t.version} for k, t in edges]
    return om.shown(v, value=value, links=links)


def write(kernel: Kernel, tx: Tx, proc: Process, args: WriteArgs | AppendArgs) -> dict[str, Any]:
    """Write (or append to) the object as a new version; Conflict if ``expect`` is not its version."""
    assert args.ns is not None
    head = _live(tx, args.ns, args.name)
    if args.expect is not None and head.version != args.expect:
        raise Conflict(
            f"object {args.ns}/{args.name} is at version {head.version}, not {args.expect}: someone wrote it since "
            "you read it. Read it again and write from that"
        )
    data = om.encode(kernel, proc.image, args.ns, head.type, args.value)
    if isinstance(args, AppendArgs):
        data = om.combine(head.type, om.payload(kernel, head), data)
        if len(data) > limits.OBJ_MAX_BYTES:
            raise Limit(f"an object version holds at most {limits.OBJ_MAX_BYTES} bytes; appending makes {len(data)}")
    v = om.put(kernel, tx, args.ns, args.name, head.type, data, proc.pid)
    return om.shown(v)


def delete(kernel: Kernel, tx: Tx, proc: Process, args: DeleteArgs) -> dict[str, Any]:
    """Delete the object: a new version that holds nothing; earlier versions stay readable."""
    assert args.ns is not None
    head = _live(tx, args.ns, args.name)
    v = om.put(kernel, tx, args.ns, args.name, head.type, None, proc.pid)
    return om.shown(v)


async def list_objects(kernel: Kernel, proc: Process, args: ListArgs) -> dict[str, Any]:
    """Return the live objects of the namespace (name order) and where a next call goes on."""
    assert args.ns is not None
    if objrows.namespace_owner(kernel.store.conn, args.ns) is None:
        raise NotFound(f"no namespace {args.ns}")
    found = objrows.listing(kernel.store.conn, args.ns, args.prefix, args.after, args.limit + 1)
    more = len(found) > args.limit
    found = found[: args.limit]
    return {
        "ns": args.ns,
        "objects": [{k: v for k, v in om.shown(o).items() if k != "ns"} for o in found],
        "next": found[-1].name if more else None,
    }


async def log(kernel: Kernel, proc: Process, args: LogArgs) -> dict[str, Any]:
    """Return the versions of the object, newest first (who wrote each, when, its digest)."""
    assert args.ns is not None
    found = objrows.history(kernel.store.conn, args.ns, args.name, args.limit)
    if not found:
        raise NotFound(f"no object {args.ns}/{args.name}")
    return {
        "object": f"{args.ns}/{args.name}",
        "versions": [
            {"version": v.version, "type": v.type, "bytes": v.size, "digest": v.digest, "pid": v.pid,
             "time": v.created, **({"deleted": True} if v.digest is None else {})}
            for v in found
        ],
    }  # fmt: skip


def link(kernel: Kernel, tx: Tx, proc: Process, args: LinkArgs) -> dict[str, Any]:
    """Record the typed edge between the two objects' latest versions."""
    assert args.ns is not None and args.to_ns is not None
    src = _live(tx, args.ns, args.name)
    dst = _live(tx, args.to_ns, args.to)
    if objrows.count_links(tx.conn, src.seq) >= limits.OBJ_LINKS_MAX:
        raise Limit(f"version {src.version} of {args.ns}/{args.name} has {limits.OBJ_LINKS_MAX} links; no more")
    added = objrows.insert_link(tx.conn, src.seq, args.kind, dst.seq)
    return {
        "object": f"{args.ns}/{args.name}",
        "version": src.version,
        "kind": args.kind,
        "to": f"{args.to_ns}/{args.to}",
        "to_version": dst.version,
        "added": added,
    }
