"""``alos obj`` and ``alos store``: the objects of a process or namespace, and the store's payloads.

Every read and every change is a syscall dispatched as the host, so it is decided and audited
(reading a process's objects is the host's authority, and the audit log shows it); this module
never reaches the store, capabilities or primitives. A value is hostile: on a terminal text is
shown escaped and bytes are refused; to a pipe a value goes as its exact bytes.
Size: the two command groups share the host-call helpers that ckpts.py imports too; split
``store`` out if either grows.
"""

from __future__ import annotations

import base64
import json
import shlex
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from alos import codec, limits
from alos.cli.look import reader
from alos.cli.options import json_option, store_option
from alos.cli.screen import Screen, clip, command, is_terminal, text
from alos.errors import AlosError, Invalid, Limit, NotFound, Unavailable
from alos.types import HOST

if TYPE_CHECKING:
    from alos.runtime import Runtime

WHERE = "PID|NS"
PAGE = limits.OBJ_LIST_MAX  # names asked for in one obj.list call; ls goes on from each page's next
# what the syscalls tell a model to do, said as a person at this command line does it
_HINTS = (
    ("ckpt_list lists them", "'{cmd} ckpt ls' lists them"),
    ("obj_create makes one", "'{cmd} obj put' makes one"),
    ("ns_create makes one", "a process makes one with ns_create"),
)


@contextmanager
def opened(store: str) -> Iterator[Runtime]:
    """Yield a Runtime on the existing store ``store`` that runs nothing; close it after."""
    rt = reader(store)
    try:
        yield rt
    finally:
        rt.close()


def host_call(rt: Runtime, name: str, args: dict[str, Any]) -> Any:
    """Return the result of syscall ``name`` dispatched as the host (decided and audited); raises
    its AlosError, with a hint meant for a model said as a person at the command line does it."""
    try:
        import asyncio  # on first use: --help and the other commands do not pay for it

        return asyncio.run(rt.dispatch(HOST, name, args))
    except AlosError as err:
        told = err.message
        for tool, person in _HINTS:
            told = told.replace(tool, person.format(cmd=command()))
        if told == err.message:
            raise
        raise type(err)(told) from None


def namespace(rt: Runtime, where: str) -> str:
    """Return the namespace ``where`` names: ``proc/PID`` for a pid or ``proc/PID`` (raises NotFound
    when there is no such process), else ``where`` itself (the syscall checks it)."""
    head, _, tail = where.partition("/")
    pid = where if where.isdigit() else tail if head == "proc" and tail.isdigit() else None
    if pid is None:
        return where
    if int(pid) == HOST:
        raise click.BadParameter("the host (pid 0) has no namespace; name a process or a namespace", param_hint=WHERE)
    rt.process(int(pid))
    return f"proc/{int(pid)}"


def short(digest: str | None) -> str:
    """Return the first 16 hex digits of a ``sha256:`` digest, or ``-`` for a deletion."""
    return digest.removeprefix("sha256:")[:16] if digest else "-"


def when(t: float) -> str:
    """Return an epoch time as local ``YYYY-MM-DD HH:MM:SS``."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def who(pid: int) -> str:
    """Return who wrote or took something: ``host`` or the pid."""
    return "host" if pid == HOST else str(pid)


def raw(screen: Screen, data: bytes) -> None:
    """Write ``data`` as it is to ``screen``'s stream, which the caller found is no terminal: a
    pipe or a file gets the object's exact bytes, which nothing on the way reads as commands."""
    stream = screen.console.file
    stream.flush()
    binary = getattr(stream, "buffer", None)
    if binary is None:
        raise Unavailable("this output stream takes no bytes; redirect it to a file")
    binary.write(data)
    binary.flush()


@click.group()
def obj() -> None:
    """List, read, log and write the objects of a process (PID) or a namespace (NS), as the host.

    Every call is a syscall by the host: decided and audited ('alos audit' shows the host's reads).
    """


@obj.command("ls")
@click.argument("where", metavar=WHERE)
@click.option("--prefix", default="", help="Only the names that start with this.")
@store_option
@json_option
def ls(where: str, prefix: str, store: str, as_json: bool) -> None:
    """List the objects of process PID (namespace proc/PID) or namespace NS: name, type, latest
    version, size and digest, in name order (JSON: one line each).

    \b
    Example:  alos obj ls 4 --prefix drafts/
    """
    found: list[dict[str, Any]] = []
    with opened(store) as rt:
        ns = namespace(rt, where)
        after = ""
        while True:
            page = host_call(rt, "obj.list", {"ns": ns, "prefix": prefix, "after": after, "limit": PAGE})
            found += page["objects"]
            if page["next"] is None:
                break
            after = page["next"]
    out = Screen(soft_wrap=False)
    if as_json:
        for o in found:
            out.json({"ns": ns, **o})
        return
    if not found:
        starting = f" whose names start with {prefix!r}" if prefix else ""
        missing = (
            "" if ns.startswith("proc/") else " (a namespace no process made lists as empty too: is the name right?)"
        )
        out.say(f"no objects in {ns}{starting}{missing}")
        return
    from rich.table import Table  # on first use, as look.py does

    table = Table(box=None, header_style="bold")
    for col in ("NAME", "TYPE", "VERSION", "BYTES", "DIGEST"):
        table.add_column(col, no_wrap=col != "NAME")
    for o in found:
        table.add_row(*(text(clip(o[k], 120)) for k in ("name", "type", "version", "bytes")), text(short(o["digest"])))
    out.show(table)


@obj.command()
@click.argument("where", metavar=WHERE)
@click.argument("name")
@click.option("--version", type=click.IntRange(1, 2**62), default=None, help="This version, not the latest.")
@store_option
@json_option
def cat(where: str, name: str, version: int | None, store: str, as_json: bool) -> None:
    """Print the value of object NAME of process PID or namespace NS (its latest version, or --version).

    To a pipe or a file the value goes as its exact bytes; on a terminal text is shown with its
    control characters made visible and bytes are refused (redirect them). JSON values are printed
    indented. --json prints the read's result (bytes as base64).

    \b
    Example:  alos obj cat 4 notes
              alos obj cat 4 logo.png > logo.png
    """
    with opened(store) as rt:
        args: dict[str, Any] = {"ns": namespace(rt, where), "name": name}
        if version is not None:
            args["version"] = version
        got = host_call(rt, "obj.read", args)
    out = Screen()
    if as_json:
        out.json(got)
        return
    kind, value = got["type"], got["value"]
    terminal = is_terminal(out)
    if kind == "bytes":
        if terminal:
            again = shlex.join(["obj", "cat", where, name])
            raise Invalid(
                f"object {got['ns']}/{got['name']} holds {got['bytes']} bytes, which are not shown on a terminal; "
                f"redirect them, e.g. '{command()} {again} > FILE'"
            )
        raw(out, base64.b64decode(value))
        return
    shown = value if kind == "text" else json.dumps(value, indent=2, ensure_ascii=False) + "\n"
    if not terminal:
        raw(out, shown.encode())
    else:
        out.say(shown, keep_newlines=True, end="" if shown.endswith("\n") else "\n")


@obj.command()
@click.argument("where", metavar=WHERE)
@click.argument("name")
@store_option
@json_option
def log(where: str, name: str, store: str, as_json: bool) -> None:
    """List the versions of object NAME, newest first: version, type, bytes, digest, the pid that
    wrote it (host for the host) and when (JSON: one line each).

    \b
    Example:  alos obj log 4 notes
    """
    with opened(store) as rt:
        got = host_call(rt, "obj.log", {"ns": namespace(rt, where), "name": name})
    versions: list[dict[str, Any]] = got["versions"]
    out = Screen(soft_wrap=False)
    if as_json:
        for v in versions:
            out.json({"object": got["object"], **v})
        return
    from rich.table import Table  # on first use, as look.py does

    table = Table(box=None, header_style="bold")
    for col in ("VERSION", "TYPE", "BYTES", "DIGEST", "BY", "TIME"):
        table.add_column(col, no_wrap=True)
    for v in versions:
        digest = short(v["digest"]) if not v.get("deleted") else "(deleted)"
        cells = (str(v["version"]), clip(v["type"], 64), str(v["bytes"]), digest, who(v["pid"]), when(v["time"]))
        table.add_row(*(text(c) for c in cells))
    out.show(table)
    if len(versions) >= limits.OBJ_LOG_MAX:
        out.say((f"(the newest {len(versions)} versions; older ones are not listed)", "dim"))


@obj.command()
@click.argument("where", metavar=WHERE)
@click.argument("name")
@click.option(
    "--type",
    "type_",
    default=None,
    help="The type of a new object: text, json, bytes, file_ref, plan, result, context or one the "
    "process's image declares. Default: text, or bytes when the value is not UTF-8.",
)
@click.option(
    "--file", "path", type=click.Path(exists=True, dir_okay=False), default=None, help="Take the value from this file."
)
@click.option("--value", default=None, help="The value itself. Without --file or --value it is read from stdin.")
@click.option(
    "--expect",
    type=click.IntRange(1, 2**62),
    default=None,
    help="The version you read: the write fails with a conflict if it is no longer the latest.",
)
@store_option
@json_option
def put(
    where: str,
    name: str,
    type_: str | None,
    path: str | None,
    value: str | None,
    expect: int | None,
    store: str,
    as_json: bool,
) -> None:
    """Write object NAME of process PID or namespace NS: create it when it does not exist,
    else write its next version (the object keeps its type). The value is text, JSON for the
    JSON types, or any bytes for a bytes object.

    \b
    Example:  alos obj put 4 notes --value "check the totals"
              alos obj put 4 config --type json --value '{"retries": 3}' --expect 2
              alos obj put 4 logo.png < logo.png
    """
    if path is not None and value is not None:
        raise click.UsageError("give the value with --file or with --value, not both")
    data = _input(path, value)
    with opened(store) as rt:
        ns = namespace(rt, where)
        head = _head(rt, ns, name)  # a new version is encoded as the object's own type says
        if head is None and expect is None:
            kind = type_ or ("text" if codec.text_of(data) is not None else "bytes")
            got = host_call(rt, "obj.create", {"ns": ns, "name": name, "type": kind, "value": _value(kind, data)})
        else:
            if head is None:
                raise NotFound(f"no object {ns}/{name} to write a version of; without --expect this makes one")
            if type_ is not None and type_ != head["type"]:
                raise Invalid(f"object {ns}/{name} is a {clip(head['type'], 64)} object; a new version keeps its type")
            args: dict[str, Any] = {"ns": ns, "name": name, "value": _value(head["type"], data)}
            if expect is not None:
                args["expect"] = expect
            got = host_call(rt, "obj.write", args)
    out = Screen()
    if as_json:
        out.json(got)
        return
    made = "created" if head is None else "wrote"
    out.say(
        f"{made} {got['ns']}/{got['name']} version {got['version']} "
        f"({got['type']}, {got['bytes']} bytes, sha256 {short(got['digest'])}…)"
    )


def _input(path: str | None, value: str | None) -> bytes:
    """Return the value's bytes from --value, --file or stdin, at most an object version's size."""
    if value is not None:
        return value.encode("utf-8", "surrogateescape")
    if path is None and sys.stdin.isatty():
        Screen(stderr=True).say("reading the value from the terminal; end it with Ctrl-D")
    if path is None:
        data = sys.stdin.buffer.read(limits.OBJ_MAX_BYTES + 1)
    else:
        with open(path, "rb") as f:
            data = f.read(limits.OBJ_MAX_BYTES + 1)
    if len(data) > limits.OBJ_MAX_BYTES:
        raise Limit(f"an object version holds at most {limits.OBJ_MAX_BYTES} bytes; this value has more")
    return data


def _head(rt: Runtime, ns: str, name: str) -> dict[str, Any] | None:
    """Return the latest version of the object (obj.log), or None when there is none to write."""
    try:
        newest = host_call(rt, "obj.log", {"ns": ns, "name": name, "limit": 1})["versions"][0]
    except NotFound:
        return None
    return None if newest.get("deleted") else dict(newest)


def _value(kind: str, data: bytes) -> Any:
    """Return ``data`` as obj.create and obj.write take a value of type ``kind``."""
    if kind == "bytes":
        return base64.b64encode(data).decode()
    as_text = codec.text_of(data)
    if as_text is None:
        raise Invalid(f"the value is not UTF-8 text; a {clip(kind, 64)} object holds text (put it in a bytes object)")
    if kind == "text":
        return as_text
    try:
        return json.loads(as_text)
    except json.JSONDecodeError as err:
        raise Invalid(f"a {clip(kind, 64)} object holds JSON; the value is not JSON: {err}") from None


@click.group()
def store() -> None:
    """Check the store's payloads and audit chain, and remove blobs nothing names."""


@store.command()
@store_option
@json_option
def check(store: str, as_json: bool) -> None:
    """Check the store: the audit chain, and that every object version's and image seed's payload
    is on disk and hashes to its digest (the database itself is checked when it is opened).
    Prints each problem by object and version; exits 1 when anything is wrong, 0 when all is well.

    \b
    Example:  alos store check
    """
    with opened(store) as rt:
        chain = rt.verify()
        problems = rt.store_problems()
    ok = chain.ok and not problems
    out = Screen()
    if as_json:
        audit = {"ok": chain.ok, "count": chain.count, "bad_seq": chain.bad_seq, "reason": chain.reason,
                 "head": chain.head}  # fmt: skip
        out.json({"ok": ok, "audit": audit, "problems": problems})
    elif ok:
        out.say(("✓ store intact", "green"), f": audit chain of {chain.count} records, every payload whole")
    else:
        if not chain.ok:
            out.say(("✗ ", "red"), f"audit chain broken at record {chain.bad_seq}: {chain.reason}")
        for p in problems:
            named = (
                f"object {p['object']} version {p['version']}"
                if "object" in p
                else f"image {p['image']} seed {p['seed']}"
            )
            out.say(("✗ ", "red"), f"{named}: {p['problem']}")
        out.say(f"{len(problems) + (not chain.ok)} problem(s) in {store}")
    sys.exit(0 if ok else 1)


@store.command()
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=limits.BLOB_GC_GRACE_SECONDS,
    show_default=True,
    metavar="SECONDS",
    help="Keep unnamed blobs younger than this (a writer's version may not have committed yet).",
)
@store_option
@json_option
def gc(grace: float, store: str, as_json: bool) -> None:
    """Remove the payload files (blobs) no object version and no image names, and leftovers of
    writers that died, older than --grace seconds. Checkpoints name versions, which are never
    removed, so nothing a checkpoint holds is collected.

    \b
    Example:  alos store gc --grace 600
    """
    with opened(store) as rt:
        files, freed = rt.sweep(grace)
    out = Screen()
    if as_json:
        out.json({"files": files, "bytes": freed, "grace": grace})
    else:
        out.say(f"removed {files} file(s), {freed} bytes, that nothing names and older than {grace:g} s")
