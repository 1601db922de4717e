"""Object Memory: names, types, payloads and versions (ARCHITECTURE.md section 7, docs/objects.md).

An object is a name in a namespace with immutable versions, each addressed by the sha256 of
its payload. A namespace is ``proc/<pid>`` (a process's own) or a name made by ns.create; an
object's resource is ``obj:<namespace>/<name>``, a namespace's ``ns:<namespace>``. Payloads up
to limits.OBJ_INLINE_MAX_BYTES live in the version row; larger ones in the store's blob
directory, written whole before the row that names them commits. A payload is served only if
it still hashes to its digest. No authority here: dispatch() decided before any of this runs.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Iterator
from typing import Any

import msgspec

from alos import codec, limits
from alos.errors import Corrupt, Invalid, Limit
from alos.kernel import images
from alos.kernel.kernel import Kernel, Tx
from alos.store import objrows, rows
from alos.store.objrows import Version
from alos.types import HOST, Pid

BUILTIN_TYPES = ("text", "json", "bytes", "file_ref", "plan", "result", "context")
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
_NS = re.compile(rf"[a-z][a-z0-9_-]{{0,{limits.NS_NAME_MAX_CHARS - 1}}}")
NAME_WORDS = (
    f"an object name is 1 to {limits.OBJ_NAME_MAX_CHARS} characters: segments of letters, digits, '.', '_' or '-' "
    "joined by '/', no segment '.' or '..', e.g. 'notes' or 'drafts/intro.md'"
)
# the built-in types with a shape: their values are JSON checked against these schemas
_SHAPES: dict[str, dict[str, Any]] = {
    "file_ref": {
        "type": "object",
        "required": ["path"],
        "properties": {"path": {"type": "string"}, "digest": {"type": "string"}, "bytes": {"type": "integer"}},
    },
    "plan": {"type": "object", "required": ["steps"], "properties": {"steps": {"type": "array"}}},
    "context": {"type": "object", "required": ["summary"], "properties": {"summary": {"type": "string"}}},
}


def own(pid: Pid) -> str:
    """Return the namespace of process ``pid``."""
    return f"proc/{pid}"


def namespace(pid: Pid, ns: str | None) -> str:
    """Return the namespace ``ns`` names, checked: the caller's own when None."""
    if ns is None:
        if pid == HOST:
            raise Invalid("the host has no namespace of its own; name one (ns), e.g. proc/4")
        ns = own(pid)
    check_ns(ns)
    return ns


def resource(ns: str, name: str) -> str:
    """Return the resource an object is decided on."""
    return f"obj:{ns}/{name}"


def check_name(name: str) -> None:
    """Raise Invalid unless ``name`` is a valid object name."""
    if not name or len(name) > limits.OBJ_NAME_MAX_CHARS:
        raise Invalid(f"object name of {len(name)} characters; {NAME_WORDS}")
    for seg in name.split("/"):
        if seg in (".", "..") or not _SEGMENT.fullmatch(seg):
            raise Invalid(f"bad object name {codec.escape(name[:80])!r}: {NAME_WORDS}")


def check_ns(ns: str) -> None:
    """Raise Invalid unless ``ns`` names a namespace: ``proc/<pid>`` or a made one."""
    head, sep, tail = ns.partition("/")
    if head == "proc" and sep and tail.isdigit() and tail == str(int(tail)) and int(tail) > 0:
        return
    if not _NS.fullmatch(ns) or ns == "proc":
        raise Invalid(
            f"bad namespace {codec.escape(ns[:80])!r}: a namespace is proc/<pid> or a lowercase letter, then up to "
            f"{limits.NS_NAME_MAX_CHARS - 1} lowercase letters, digits, _ or - (not 'proc')"
        )


def check_type(kernel: Kernel, image: str, ns: str, type_: str) -> None:
    """Raise Invalid unless ``type_`` is a built-in type or one declared by the image of the
    namespace's owner or by the caller's ``image``."""
    if type_ in BUILTIN_TYPES:
        return
    declared = _declared(kernel, image, ns)
    if type_ not in declared:
        extra = f"; the image declares {', '.join(sorted(declared))}" if declared else ""
        raise Invalid(
            f"unknown object type {codec.escape(type_[:80])!r}: the types are {', '.join(BUILTIN_TYPES)}{extra}"
        )


def _declared(kernel: Kernel, image: str, ns: str) -> dict[str, Any]:
    """Return the object types the namespace's owner's image declares, with those of the caller's
    ``image`` it does not (an object lives by its namespace's declarations)."""
    out: dict[str, Any] = {}
    owner = objrows.namespace_owner(kernel.store.conn, ns)
    proc = rows.load_process(kernel.store.conn, owner) if owner else None
    for ref in (image, proc.image if proc is not None else "-"):
        if ref != "-":  # the host's
            types = images.body(kernel, ref).get("types")
            out.update(types if isinstance(types, dict) else {})
    return out


def encode(kernel: Kernel, image: str, ns: str, type_: str, value: Any) -> bytes:
    """Return the payload of ``value`` as an object of ``type_`` in namespace ``ns``: text as UTF-8,
    bytes from base64, everything else canonical JSON (no NaN or infinity: JSON has none) checked
    against its type's schema. Raises Invalid naming what is wrong, Limit when it is too big."""
    check_type(kernel, image, ns, type_)
    if type_ == "text":
        if not isinstance(value, str):
            raise Invalid(f"a text object's value is a string, not {type(value).__name__}")
        data = value.encode()
    elif type_ == "bytes":
        if not isinstance(value, str):
            raise Invalid("a bytes object's value is a base64 string")
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise Invalid("a bytes object's value is a base64 string; this one is not valid base64") from None
    else:
        _json_only(value)
        schema = _SHAPES.get(type_) or _declared(kernel, image, ns).get(type_)
        if schema is not None:
            _validate(type_, value, schema)
        try:
            data = codec.dumps(value).encode()
        except (TypeError, msgspec.EncodeError) as err:
            raise Invalid(f"a {type_} object's value must be JSON: {err}") from None
    if len(data) > limits.OBJ_MAX_BYTES:
        raise Limit(f"an object version holds at most {limits.OBJ_MAX_BYTES} bytes; this one has {len(data)}")
    return data


def _json_only(value: Any) -> None:
    """Raise Invalid for a float JSON cannot hold (NaN, infinity), at any depth (no recursion)."""
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise Invalid(f"a JSON value holds no {item}: JSON has no NaN or infinity")
        if isinstance(item, dict):
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)


def _validate(type_: str, value: Any, schema: dict[str, Any]) -> None:
    """Raise Invalid naming where ``value`` fails ``schema`` and which rule of the schema it fails,
    never the value itself (it may hold what a file held: obj.from_file)."""
    import jsonschema  # only a typed write pays for importing it

    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        where = codec.escape("/".join(str(p) for p in first.path)[:200]) or "(the value)"
        rule = codec.escape(codec.dumps(first.validator_value)[:200])
        raise Invalid(f"the value is not a valid {type_}: at {where} it fails the schema's {first.validator} {rule}")


def decode(type_: str, data: bytes) -> Any:
    """Return the value of a payload as obj.read gives it (bytes as base64)."""
    if type_ == "text":
        return data.decode()
    if type_ == "bytes":
        return base64.b64encode(data).decode()
    return codec.loads(data)


def combine(type_: str, old: bytes, more: bytes) -> bytes:
    """Return ``old`` with ``more`` appended (obj.append): text and bytes are joined, a JSON
    array gains ``more``'s value as its last item. Raises Invalid for other types."""
    if type_ in ("text", "bytes"):
        return old + more
    current = codec.loads(old)
    if not isinstance(current, list):
        raise Invalid(f"obj.append adds to text, bytes or a JSON array; this {type_} object holds a {_kind(current)}")
    return codec.dumps([*current, codec.loads(more)]).encode()


def _kind(value: Any) -> str:
    kinds: dict[type, str] = {dict: "JSON object", list: "JSON array", str: "string"}
    return kinds.get(type(value), "JSON value")


def put(
    kernel: Kernel,
    tx: Tx,
    ns: str,
    name: str,
    type_: str,
    data: bytes | None,
    pid: Pid,
    base: int | None = None,
) -> Version:
    """Write a version of ``ns``/``name`` holding ``data`` (None: a deletion) inside ``tx``; a
    large payload goes to the blob directory first, durable before the row that names it."""
    if data is None:
        return objrows.insert_version(tx.conn, ns, name, type_, None, 0, None, pid, tx.now, base)
    digest = codec.digest(data)
    inline = len(data) <= limits.OBJ_INLINE_MAX_BYTES
    if not inline:
        kernel.blobs.put(data, digest)
    return objrows.insert_version(tx.conn, ns, name, type_, digest, len(data), data if inline else None, pid, tx.now,
                                  base)  # fmt: skip


def copy(kernel: Kernel, tx: Tx, v: Version, ns: str, name: str, pid: Pid, base: int | None = None) -> Version:
    """Write a version of ``ns``/``name`` with ``v``'s payload (no payload is read or written)."""
    return objrows.insert_version(tx.conn, ns, name, v.type, v.digest, v.size, v.body, pid, tx.now, base)


def payload(kernel: Kernel, v: Version) -> bytes:
    """Return the payload of version ``v``; raises Corrupt (never serving it) when it does not
    match its digest."""
    named = f"object {v.ns}/{v.name} version {v.version}"
    if v.digest is None:
        raise Corrupt(f"{named} is a deletion; it has no payload")
    if v.body is None:
        return kernel.blobs.get(v.digest, v.size, named)
    if len(v.body) != v.size or codec.digest(v.body) != v.digest:
        raise Corrupt(f"{named}: its payload in the store does not match its digest; it is not served")
    return v.body


def problems(kernel: Kernel) -> Iterator[tuple[Version, str]]:
    """Yield (version, what is wrong) for every version whose payload is missing or corrupt."""
    for v in objrows.blob_versions(kernel.store.conn):
        assert v.digest is not None
        wrong = kernel.blobs.problem(v.digest, v.size)
        if wrong is not None:
            yield v, f"its payload (blob {v.digest[7:23]}...) {wrong}"


def shown(v: Version, **extra: Any) -> dict[str, Any]:
    """Return a version as a result shows it (no payload)."""
    out: dict[str, Any] = {"ns": v.ns, "name": v.name, "type": v.type, "version": v.version, "bytes": v.size,
                           "digest": v.digest}  # fmt: skip
    if v.digest is None:
        out["deleted"] = True
    out.update(extra)
    return out


Merge = tuple[tuple[str, str], ...]  # (name, "write" | "delete" | "create") of what a merge would change


def merge_plan(conn: Any, child: Pid, parent: Pid) -> tuple[Merge, list[dict[str, Any]]]:
    """Return what merging ``child``'s objects into ``parent``'s namespace would change, and the
    conflicts it would leave. An object a fork copied is merged when the child wrote it and the
    parent's has not moved since the copy; one the child made is merged when the parent has no
    live object of that name; one merged before is not merged again."""
    src, dst = own(child), own(parent)
    plan: list[tuple[str, str]] = []
    conflicts: list[dict[str, Any]] = []
    for name in objrows.changed_since(conn, src, 0):
        mine = objrows.head(conn, src, name)
        assert mine is not None
        base = objrows.base_of(conn, src, name)
        theirs = objrows.head(conn, dst, name)
        if (
            (base is not None and mine.version == 1 and mine.digest is not None)
            or (theirs is not None and theirs.digest == mine.digest)
            or (base is None and mine.digest is None)
            or objrows.derived_in(conn, dst, mine.seq)
        ):
            continue  # the copy as the fork made it, what the parent has, made and deleted, or merged before
        if base is not None and (theirs is None or theirs.seq != base):
            conflicts.append({"name": name, "why": f"process {parent}'s object changed since the fork"})
        elif base is None and theirs is not None and theirs.digest is not None:
            conflicts.append({"name": name, "why": f"process {parent} has an object of that name"})
        else:
            live = theirs is not None and theirs.digest is not None
            plan.append((name, "delete" if mine.digest is None else "write" if live else "create"))
    return tuple(plan), conflicts


def merge(kernel: Kernel, tx: Tx, child: Pid, parent: Pid, plan: Merge) -> list[dict[str, Any]]:
    """Carry out ``plan`` (merge_plan's, decided by dispatch()): each merged version links
    ``derived_from`` the child's; return the versions written."""
    merged = []
    for name, _ in plan:
        mine = objrows.head(tx.conn, own(child), name)
        assert mine is not None
        v = copy(kernel, tx, mine, own(parent), name, child)
        objrows.insert_link(tx.conn, v.seq, "derived_from", mine.seq)
        merged.append(shown(v))
    return merged


def seed(kernel: Kernel, tx: Tx, pid: Pid, seeds: Any) -> int:
    """Give process ``pid`` an image's seed objects in its namespace (payloads from the blob
    directory, checked against their digests); return how many."""
    ns = own(pid)
    for item in seeds:
        digest = "sha256:" + str(item["digest"])
        data = kernel.blobs.get(digest, int(item["bytes"]), f"seed object {item['name']}")
        put(kernel, tx, ns, str(item["name"]), str(item["type"]), data, pid)
    return len(seeds)


def sweep(kernel: Kernel, grace: float = limits.BLOB_GC_GRACE_SECONDS) -> tuple[int, int]:
    """Remove the blobs no version and no image names (and writers' leftovers), older than
    ``grace`` seconds; return (files removed, bytes freed). Checkpoints name versions, which are
    never removed, so a blob a checkpoint holds is never collected. It holds the store's write lock
    throughout: a writer puts its blob and commits the row that names it inside that lock, so no
    blob is swept between the two (writers wait for the sweep)."""
    with kernel.transaction() as tx:
        seeds = objrows.image_seeds(tx.conn)
        return kernel.blobs.sweep(lambda digest: digest in seeds or objrows.blob_in_use(tx.conn, digest), grace)


def seed_problems(kernel: Kernel) -> Iterator[tuple[str, str, str]]:
    """Yield (image ref, seed object name, what is wrong) for every seed payload missing or corrupt."""
    for ref, name, digest, size in objrows.image_seed_list(kernel.store.conn):
        wrong = kernel.blobs.problem(digest, size)
        if wrong is not None:
            yield ref, name, f"its payload (blob {digest[7:23]}...) {wrong}"
