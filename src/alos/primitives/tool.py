"""tool.*: JIT tools, TypeScript a process writes, checks and registers (docs/jit.md).

A tool is proposed as object ``tools/NAME`` in the caller's namespace (its source, description
and the JSON Schema of its arguments), validated (the static policy, ``deno info`` and ``deno
check``: providers/jitcheck.py), and registered in a table: ``proc/<pid>``, the caller's own,
or a shared table's name. Resources are ``tool:<table>/<name>``: registering and unregistering
need ``register``, running needs ``execute``, listing a table ``list``. A new process holds
execute and list on its own table; ``register`` is granted, never assumed. Registration checks
the source again, whatever tool.validate said, and keeps exactly the source it checked.

``tool.open`` is what the runtime calls when a model calls a JIT tool (the decision to run it);
``tool.permit`` is how Deno's permission broker asks about a host API the static check missed:
only reading a file can be allowed (as fs.read would be), the rest is refused and audited.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from typing import Any

from alos import codec, limits
from alos.errors import AlosError, Conflict, Denied, Invalid, Limit, NotFound
from alos.kernel import Kernel, Tx
from alos.kernel import objects as om
from alos.rights import Need, Right
from alos.store import objrows, toolrows
from alos.types import Process

_NAME = re.compile(r"[a-z][a-z0-9_]*")
_SHARED = re.compile(r"[a-z][a-z0-9_-]*")
# the syscall families: an image's tools are named <family>_<name>, and a JIT tool is named otherwise
_FAMILIES = frozenset({"fs", "human", "proc", "msg", "clock", "obj", "ns", "ckpt", "tool", "shell", "net", "image",
                       "model", "cap"})  # fmt: skip
KIND = "json"  # the object type of a proposal


@dataclass(frozen=True, slots=True)
class ProposeArgs:
    """Propose a JIT tool ``name``: TypeScript ``source`` that exports
    ``async function run(args, libos)`` (one self-contained file, no imports; it reaches files,
    objects and people only through ``libos``), a ``description`` for the model, and
    ``parameters``, the JSON Schema of its arguments. Stored as object tools/NAME in your
    namespace; check it with tool_validate, then tool_register it."""

    name: str
    source: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object"})


@dataclass(frozen=True, slots=True)
class ValidateArgs:
    """Check proposed tool ``name`` (object tools/NAME): the static policy, its imports and its
    types. Returns the problems found; none means tool_register will take it."""

    name: str


@dataclass(frozen=True, slots=True)
class RegisterArgs:
    """Register proposed tool ``name`` in your own tool table, or in shared table ``table``
    (it is checked again first). Once registered, it is one of the tools you can call."""

    name: str
    table: str = ""
    source: str = ""  # set by the runtime: the digest of the proposal now, what an approval is bound to


@dataclass(frozen=True, slots=True)
class UnregisterArgs:
    """Remove tool ``name`` from your own tool table, or from shared table ``table``."""

    name: str
    table: str = ""


@dataclass(frozen=True, slots=True)
class ListArgs:
    """List the JIT tools of your own table, or of shared table ``table``."""

    table: str = ""


@dataclass(frozen=True, slots=True)
class OpenArgs:
    """Open registered tool ``name`` of your table (or ``table``) to run it: its source and schema.
    The runtime makes this call when you call a JIT tool; you need not."""

    name: str
    table: str = ""


@dataclass(frozen=True, slots=True)
class PermitArgs:
    """Deno's permission broker asking whether a running JIT tool may use a host API directly."""

    permission: str
    value: str | None = None


# -- names and resources -------------------------------------------------------------------


def _check_name(name: str) -> None:
    if not (0 < len(name) <= limits.JIT_NAME_MAX_CHARS and _NAME.fullmatch(name)):
        raise Invalid(
            f"tool name {codec.escape(name[:80])!r}: a lowercase letter, then lowercase letters, digits and '_' "
            f"(at most {limits.JIT_NAME_MAX_CHARS} characters)"
        )
    family = name.partition("_")[0]
    if family in _FAMILIES:
        raise Invalid(f"tool name {name!r} starts with {family}_, as the image's own tools do (fs_read ...); "
                      "a JIT tool never shadows one: choose another name")  # fmt: skip


def table_of(proc: Process, table: str) -> str:
    """Return the table ``table`` names for ``proc``: its own (``proc/<pid>``) when empty."""
    if not table or table == f"proc/{proc.pid}":
        return f"proc/{proc.pid}"
    if table.startswith("proc/"):
        raise Denied(f"table {codec.escape(table[:80])!r} is another process's own: a process reaches only its own "
                     "tool table and shared ones")  # fmt: skip
    if not (len(table) <= limits.NS_NAME_MAX_CHARS and _SHARED.fullmatch(table)):
        raise Invalid(f"shared table name {codec.escape(table[:80])!r}: a lowercase letter, then lowercase letters, "
                      "digits, '_' and '-'")  # fmt: skip
    return table


def proposal(pid: int, name: str) -> str:
    """Return the object resource of ``pid``'s proposal of tool ``name``."""
    return om.resource(om.own(pid), f"tools/{name}")


def resolve_named(kernel: Kernel, proc: Process, args: Any) -> Any:
    """Check the tool name and make ``table`` the table it names."""
    _check_name(args.name)
    return replace(args, table=table_of(proc, getattr(args, "table", ""))) if hasattr(args, "table") else args


def resolve_register(kernel: Kernel, proc: Process, args: RegisterArgs) -> Any:
    """Check the names and bind the call to the source proposed now (an approval is of that source)."""
    named = resolve_named(kernel, proc, args)
    v = objrows.head(kernel.store.conn, om.own(proc.pid), f"tools/{args.name}")
    return replace(named, source=v.digest if v is not None and v.digest is not None else "")


def describe_register(kernel: Kernel, proc: Process, args: RegisterArgs) -> dict[str, Any]:
    """What a person approving a registration sees: the source itself (its digest, size, a preview)."""
    shown: dict[str, Any] = {"name": args.name, "table": args.table}
    try:
        body = _proposed(kernel, proc.pid, args.name)
    except AlosError as err:
        return {**shown, "problem": err.message}
    source = str(body["source"])
    most = limits.PREVIEW_CHARS * 4
    return {**shown, "description": str(body.get("description", ""))[: limits.PREVIEW_CHARS],
            "digest": codec.digest(source.encode()), "bytes": len(source.encode()),
            "preview": source[:most], "truncated": len(source) > most}  # fmt: skip


def resolve_list(kernel: Kernel, proc: Process, args: ListArgs) -> ListArgs:
    return replace(args, table=table_of(proc, args.table))


def propose_needs(proc: Process, args: ProposeArgs) -> tuple[Need, ...]:
    return (Need(proposal(proc.pid, args.name), Right.WRITE),)


def validate_needs(proc: Process, args: ValidateArgs) -> tuple[Need, ...]:
    return (Need(proposal(proc.pid, args.name), Right.READ),)


def register_needs(proc: Process, args: RegisterArgs) -> tuple[Need, ...]:
    return (Need(f"tool:{args.table}/{args.name}", Right.REGISTER), Need(proposal(proc.pid, args.name), Right.READ))


def unregister_needs(proc: Process, args: UnregisterArgs) -> tuple[Need, ...]:
    return (Need(f"tool:{args.table}/{args.name}", Right.REGISTER),)


def list_needs(proc: Process, args: ListArgs) -> tuple[Need, ...]:
    return (Need(f"tool:{args.table}", Right.LIST),)


def open_needs(proc: Process, args: OpenArgs) -> tuple[Need, ...]:
    return (Need(f"tool:{args.table}/{args.name}", Right.EXECUTE),)


# -- proposing and checking --------------------------------------------------------------


def _spec_problems(args: ProposeArgs) -> list[str]:
    """Return what is wrong with a proposal's description and schema (the source is checked later)."""
    found = []
    if len(args.source.encode("utf-8", "surrogatepass")) > limits.JIT_SOURCE_MAX_BYTES:
        found.append(f"the source is over {limits.JIT_SOURCE_MAX_BYTES} bytes")
    if len(args.description) > limits.JIT_DESCRIPTION_MAX_CHARS:
        found.append(f"the description is over {limits.JIT_DESCRIPTION_MAX_CHARS} characters")
    if not codec.depth_within(args.parameters, limits.JIT_SCHEMA_MAX_DEPTH):
        found.append(f"the parameters schema nests deeper than {limits.JIT_SCHEMA_MAX_DEPTH} levels")
    elif len(codec.dumps(args.parameters)) > limits.JIT_SCHEMA_MAX_BYTES:
        found.append(f"the parameters schema is over {limits.JIT_SCHEMA_MAX_BYTES} bytes")
    elif _keys(args.parameters) & _UNCHECKED:
        found.append(f"the parameters schema uses {', '.join(sorted(_keys(args.parameters) & _UNCHECKED))}: a regular "
                     "expression could hold the host while it checks arguments, and a reference could reach "
                     "outside the schema; check such forms in the tool itself")  # fmt: skip
    elif args.parameters.get("type") != "object":
        found.append('the parameters schema must be a JSON Schema with "type": "object"')
    else:
        import jsonschema

        try:
            jsonschema.Draft202012Validator.check_schema(args.parameters)
        except jsonschema.SchemaError as err:
            found.append(f"the parameters schema is not a JSON Schema: {codec.escape(str(err.message)[:200])}")
    return found


_UNCHECKED = frozenset({"pattern", "patternProperties", "$ref", "$dynamicRef", "$id", "$anchor", "$dynamicAnchor"})


_NAMED = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")  # name -> schema
_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames",
        "unevaluatedItems", "unevaluatedProperties", "additionalItems")  # fmt: skip
_MANY = ("allOf", "anyOf", "oneOf", "prefixItems")


def _keys(schema: Any) -> set[str]:
    """Return the keywords used anywhere in JSON Schema ``schema`` (property names are not keywords)."""
    found: set[str] = set()
    todo = [schema]
    while todo:
        item = todo.pop()
        if not isinstance(item, dict):
            continue
        found.update(str(k) for k in item)
        for key in _NAMED:
            if isinstance(item.get(key), dict):
                todo.extend(item[key].values())
        todo.extend(item[key] for key in _ONE if key in item)
        for key in _MANY:
            if isinstance(item.get(key), list):
                todo.extend(item[key])
        if isinstance(item.get("items"), list):
            todo.extend(item["items"])
    return found


def propose(kernel: Kernel, tx: Tx, proc: Process, args: ProposeArgs) -> dict[str, Any]:
    """Store the proposal as a new version of object tools/NAME."""
    problems = _spec_problems(args)
    if problems:
        raise Invalid(f"tool {args.name}: " + "; ".join(problems))
    body = {"source": args.source, "description": args.description, "parameters": args.parameters}
    data = codec.dumps(body).encode()
    v = om.put(kernel, tx, om.own(proc.pid), f"tools/{args.name}", KIND, data, proc.pid)
    return {"name": args.name, "object": f"tools/{args.name}", "version": v.version,
            "digest": codec.digest(args.source.encode()), "next": "tool_validate, then tool_register"}  # fmt: skip


def _proposed(kernel: Kernel, pid: int, name: str) -> dict[str, Any]:
    """Return the newest proposal of tool ``name`` by ``pid``."""
    v = objrows.head(kernel.store.conn, om.own(pid), f"tools/{name}")
    if v is None or v.digest is None:
        raise NotFound(f"no proposed tool {name}: tool_propose stores one")
    body = om.decode(v.type, om.payload(kernel, v))
    if not isinstance(body, dict) or not isinstance(body.get("source"), str):
        raise Invalid(f"object tools/{name} is not a tool proposal; tool_propose writes one")
    return body


async def _problems(kernel: Kernel, source: str) -> tuple[str, ...]:
    verdict = await kernel.jit.check(source)
    return tuple(verdict.problems)


async def validate(kernel: Kernel, proc: Process, args: ValidateArgs) -> dict[str, Any]:
    body = _proposed(kernel, proc.pid, args.name)
    problems = await _problems(kernel, body["source"])
    return {"name": args.name, "ok": not problems, "problems": list(problems)}


@dataclass(frozen=True, slots=True)
class Checked:
    """A registration, once its source has passed the checks: what will be registered."""

    name: str
    table: str
    spec: dict[str, Any]


async def check_registration(kernel: Kernel, proc: Process, args: RegisterArgs) -> Checked:
    """Check the proposal again; raise Invalid naming its problems, Conflict if it changed since
    the call was decided (an approval was of the source proposed then)."""
    v = objrows.head(kernel.store.conn, om.own(proc.pid), f"tools/{args.name}")
    if v is not None and v.digest != args.source:
        raise Conflict(f"tool {args.name} was proposed again while its registration was decided; register it again")
    body = _proposed(kernel, proc.pid, args.name)
    problems = await _problems(kernel, body["source"])
    if problems:
        raise Invalid(f"tool {args.name} does not pass its checks: " + "; ".join(problems[:20]))
    spec = {k: body.get(k) for k in ("source", "description", "parameters")}
    return Checked(args.name, args.table, spec)


def register(kernel: Kernel, tx: Tx, proc: Process, args: Checked) -> dict[str, Any]:
    if toolrows.get(tx.conn, args.table, args.name) is None and toolrows.count(tx.conn, args.table) >= (
        limits.JIT_TOOLS_MAX
    ):
        raise Limit(f"table {args.table} holds {limits.JIT_TOOLS_MAX} tools, its most; unregister one first")
    digest = codec.digest(str(args.spec["source"]).encode())
    tool = toolrows.Tool(args.table, args.name, digest, args.spec, proc.pid, tx.now)
    replaced = toolrows.put(tx.conn, tool)
    tx.event(proc.pid, "tool", {"registered": args.name, "table": args.table, "digest": digest})
    return {"registered": args.name, "table": args.table, "digest": digest, "replaced": replaced}


def unregister(kernel: Kernel, tx: Tx, proc: Process, args: UnregisterArgs) -> dict[str, Any]:
    if not toolrows.remove(tx.conn, args.table, args.name):
        raise NotFound(f"no tool {args.name} in table {args.table}")
    tx.event(proc.pid, "tool", {"unregistered": args.name, "table": args.table})
    return {"unregistered": args.name, "table": args.table}


async def list_tools(kernel: Kernel, proc: Process, args: ListArgs) -> dict[str, Any]:
    found = toolrows.of_table(kernel.store.conn, args.table)
    return {"table": args.table, "tools": [
        {"name": t.name, "description": t.spec.get("description", ""), "digest": t.digest, "registered_by": t.pid}
        for t in found
    ]}  # fmt: skip


async def open_tool(kernel: Kernel, proc: Process, args: OpenArgs) -> dict[str, Any]:
    t = toolrows.get(kernel.store.conn, args.table, args.name)
    if t is None:
        raise NotFound(f"no tool {args.name} in table {args.table}")
    return {"name": t.name, "table": t.table, "digest": t.digest, **t.spec}


def opened(args: OpenArgs, result: dict[str, Any]) -> dict[str, Any]:
    """What tool.open's audit record keeps: the digest of the source run, never the source."""
    return {"digest": result.get("digest")}


# -- the permission broker -----------------------------------------------------------------


def resolve_permit(kernel: Kernel, proc: Process, args: PermitArgs) -> PermitArgs:
    """Refuse every host API but reading a file by its absolute path."""
    if args.permission != "read":
        raise Denied(
            f"a JIT tool may not use {codec.escape(args.permission[:40])} directly; it reaches the world only "
            "through libos syscalls"
        )
    value = args.value or ""
    if not value.startswith("/") or "\0" in value:
        raise Denied(f"a JIT tool may read only a file named by its absolute path, not {codec.escape(value[:200])!r}")
    path = os.path.realpath(value)  # as fs.* decides: a symlink is decided where it leads
    if path == "/proc" or path.startswith("/proc/"):
        raise Denied("a JIT tool never reads /proc")
    return replace(args, value=path)


def permit_needs(proc: Process, args: PermitArgs) -> tuple[Need, ...]:
    return (Need(f"fs:{args.value}", Right.READ),)


async def permit(kernel: Kernel, proc: Process, args: PermitArgs) -> str:
    return "allow"
