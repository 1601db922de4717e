"""The JSON form of an image, checked field by field: what a store row, a built-in file and an
``image.register`` call carry, and what ``load()`` makes of an image file.

``problems()`` returns every problem with its field path (``alos.images.from_json`` turns a
form without problems into an Image). Cheap: jsonschema only for an image that declares object
types, to check their schemas (schema.json says the rest for files, and load() adds line
numbers; a test keeps the two in step). It never raises on hostile input: it only describes it.
Size: one small check per field of the form, read together as schema.json is; the object types'
checks (types, objects, context.objects) are the candidates to move if it grows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

from alos import codec, limits
from alos.errors import Invalid
from alos.rights import Effect, parse_grant
from alos.types import BUDGETS

Field = tuple[str | int, ...]  # a path into the form: ("model", "temperature"), ("grants", 2, "allow")
Problem = tuple[Field, str]  # (where, what is wrong and what would be valid)

NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")
NAME_WORDS = "a name is a lowercase letter, then up to 63 lowercase letters, digits, _ or -"
VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
VERSION_WORDS = "a version is an integer, or a letter or digit then up to 63 letters, digits, '.', '_', '+' or '-'"
VERSION_MAX = 2**31 - 1  # an integer version label
DESCRIPTION_MAX_CHARS = 500
PROMPT_MAX_CHARS = limits.IMAGE_MAX_BYTES
TOOLS_MAX = 64
GRANTS_MAX = 64
GRANT_MAX_CHARS = 1_024
TEMPERATURE = (0.0, 2.0)
MODEL_TOKENS = (1, 1_000_000)
CONTEXT_TOKENS = (256, 10_000_000)

FIELDS = (
    "name", "version", "description", "prompt", "tools", "grants", "budget", "model", "context", "env", "types",
    "objects", "tool_tables",
)  # fmt: skip
TOOL_TABLE = re.compile(r"[a-z][a-z0-9_-]{0,63}")  # a shared JIT tool table's name (docs/jit.md)
TOOL_TABLES_MAX = 16
ENV_MAX = 64  # variables an image may set for its shell commands
ENV_VALUE_MAX_CHARS = 4_096
ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
# names that change what a program runs or where it looks for code: an image may not set them (a
# shell grant on a program would then run code no one granted)
ENV_REFUSED = re.compile(
    r"(LD_.*|.*PATH.*|.*OPTIONS?|.*OPTS?|.*_COMMAND|.*_CMD|.*STARTUP|.*RC|.*HOOKS?|.*PROGRAM|.*_EXEC|.*SHELL.*|"
    r"BASH_.*|ENV|ZDOTDIR|HOME|TMPDIR|IFS|PS[0-9]|PROMPT.*|PAGER|EDITOR|VISUAL|BROWSER|LESS.*|MANPAGER|"
    r"GIT_.*|ALOS_.*|PYTHON.*|PERL.*|RUBY.*|GEM_.*|BUNDLE_.*|LUA_.*|NODE_.*|NPM_.*|YARN_.*|DENO_.*|PIP_.*|"
    r"CONDA.*|VIRTUAL_ENV|UV_.*|CARGO_.*|RUST.*|GO[A-Z]*|JAVA.*|_JAVA_.*|JDK_.*|MAVEN_.*|GRADLE_.*|DOTNET_.*|"
    r"PHP.*|TCL.*|R_.*|CC|CXX|CPP|LD|AR|AS|FC|NM|RANLIB|STRIP|OBJ.*|MAKE.*|CMAKE_.*|PKG_CONFIG.*|CFLAGS|"
    r"CXXFLAGS|CPPFLAGS|LDFLAGS|LIBS|GCONV_.*|MALLOC_.*|GLIBC_.*|SSH_.*|GNUPGHOME|GPG_.*|LOCPATH|NLSPATH|"
    r"TERMINFO.*|HOSTALIASES|RES_OPTIONS|LOCALDOMAIN|XDG_.*|DBUS_.*|DISPLAY|WAYLAND_.*|SUDO_.*|TZDIR|"
    r"HTTPS?_PROXY|ALL_PROXY|NO_PROXY|FTP_PROXY|CURL_.*|WGETRC|SSL_.*|REQUESTS_.*|NETRC)"
)
REQUIRED = ("name", "description", "tools")
SECTIONS: dict[str, tuple[str, ...]] = {
    "budget": BUDGETS,
    "model": ("temperature", "max_tokens", "constrain"),
    "context": ("max_tokens", "objects", "compact"),
}
EFFECTS = tuple(e.value for e in Effect)
# Object Memory (docs/objects.md). kernel/objects.py's BUILTIN_TYPES and its name rule say the same: an image
# is checked without importing the kernel (``import alos.images`` stays cheap).
OBJECT_TYPES = ("text", "json", "bytes", "file_ref", "plan", "result", "context")  # the built-in object types
OBJECT_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
OBJECT_NAME_WORDS = (
    f"an object name is 1 to {limits.OBJ_NAME_MAX_CHARS} characters: segments of letters, digits, '.', '_' or '-' "
    "joined by '/', no segment '.' or '..', e.g. 'notes' or 'drafts/intro.md'"
)
DIGEST = re.compile(r"[0-9a-f]{64}")
DIGEST_WORDS = "a digest is the sha256 of the payload: 64 lowercase hex digits, without a 'sha256:' prefix"
SEED_FIELDS = ("name", "type", "digest", "bytes")
_SEED_WORDS = ", ".join(SEED_FIELDS)
CONTEXT_OBJECTS_MAX = 16  # objects an image shows the model (within 1/limits.CONTEXT_OBJECTS_SHARE of the context)
_JSON_WORDS = "its keys are strings; its values strings, finite numbers, true, false, null, lists or mappings"
_DATA_KEYWORDS = frozenset(("const", "enum", "default", "examples"))  # their values are data, not schemas
_GRANT_WORKSPACE = "/"  # relative fs patterns are made absolute at `alos run`; here only the syntax counts


def field_name(where: Field) -> str:
    """Return ``where`` as a person writes it: ``grants[2].allow``; the top level is ``(image)``.
    A key is escaped and cut to 64 characters (a hostile file's keys are shown too)."""
    out = ""
    for part in where:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        key = codec.escape(part if len(part) <= 64 else part[:61] + "...")
        out += f".{key}" if out else key
    return out or "(image)"


def shown(value: Any) -> str:
    """Return ``value`` for a message: repr, cut to 60 characters (the file may be hostile)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def kind_of(value: Any) -> str:
    """Return what ``value`` is, in the words of an image file (a mapping, a list, a string ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    for types, word in ((int, "an integer"), (float, "a number"), (str, "a string"), (list, "a list")):
        if isinstance(value, types):
            return word
    return "a mapping" if isinstance(value, dict) else type(value).__name__


def _text(
    value: Any, where: Field, most: int, out: list[Problem], pattern: tuple[re.Pattern[str], str] | None = None
) -> bool:
    """Check a string field; return whether it is one (so that callers may look further)."""
    if not isinstance(value, str):
        out.append((where, f"is {kind_of(value)}; it must be a string"))
        return False
    if len(value) > most:
        out.append((where, f"has {len(value)} characters; at most {most}"))
        return False
    try:
        value.encode()
    except UnicodeEncodeError:
        out.append((where, "holds a lone surrogate; it must be UTF-8 text"))
        return False
    if pattern is not None and not pattern[0].fullmatch(value):
        out.append((where, f"{shown(value)} is not valid; {pattern[1]}"))
        return False
    return True


def _whole(value: Any, where: Field, low: int, high: int, out: list[Problem]) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        out.append((where, f"is {kind_of(value)}; it must be an integer from {low} to {high}"))
    elif not low <= value <= high:
        out.append((where, f"{value} is out of range; an integer from {low} to {high}"))


def _section(data: dict[str, Any], key: str, out: list[Problem]) -> dict[str, Any] | None:
    """Return section ``key`` (budget, model, context) when it is a mapping of known keys."""
    value = data.get(key, {})
    if not isinstance(value, dict):
        out.append(((key,), f"is {kind_of(value)}; it must be a mapping of {', '.join(SECTIONS[key])}"))
        return None
    for k in value:
        if k not in SECTIONS[key]:
            out.append(((key, str(k)), f"is not a field of {key}; its fields are {', '.join(SECTIONS[key])}"))
    return value


def _tools(value: Any, out: list[Problem]) -> None:
    if not isinstance(value, list):
        out.append((("tools",), f"is {kind_of(value)}; it must be a list of syscall names"))
        return
    if len(value) > TOOLS_MAX:
        out.append((("tools",), f"lists {len(value)} tools; at most {TOOLS_MAX}"))
        return
    from alos.syscall import TABLE  # the table is loaded by the time an image is used

    seen: set[str] = set()
    for i, name in enumerate(value):
        if not _text(name, ("tools", i), 64, out):
            continue
        entry = TABLE.get(name)
        if entry is None:
            out.append((("tools", i), unknown_syscall(name, TABLE)))
        elif entry.host_only:
            out.append((("tools", i), f"{name} is host-only: no process may call it; see docs/syscalls.md"))
        elif name in seen:
            out.append((("tools", i), f"{name} is listed twice; list each tool once"))
        seen.add(name)


def unknown_syscall(name: str, known: Iterable[str]) -> str:
    """Return the message for a tool that is no syscall, with the close matches there are."""
    import difflib

    close = difflib.get_close_matches(name, sorted(known), n=3)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return f"{shown(name)} is not a syscall; {hint}the syscalls are listed in docs/syscalls.md"


def _grants(value: Any, out: list[Problem]) -> None:
    if not isinstance(value, list):
        out.append((("grants",), f"is {kind_of(value)}; it must be a list of {{allow|ask|deny: RESOURCE=RIGHTS}}"))
        return
    if len(value) > GRANTS_MAX:
        out.append((("grants",), f"lists {len(value)} grants; at most {GRANTS_MAX}"))
        return
    for i, grant in enumerate(value):
        where: Field = ("grants", i)
        if not isinstance(grant, dict) or len(grant) != 1 or next(iter(grant)) not in EFFECTS:
            got = kind_of(grant) if not isinstance(grant, dict) else f"a mapping of {', '.join(map(str, grant))}"
            out.append((where, f"is {got}; a grant is exactly one of allow, ask, deny: 'RESOURCE=RIGHTS'"))
            continue
        effect, spec = next(iter(grant.items()))
        if _text(spec, (*where, effect), GRANT_MAX_CHARS, out):
            try:
                parse_grant(spec, Effect(effect), _GRANT_WORKSPACE)
            except Invalid as err:
                out.append(((*where, effect), err.message))


def problems(data: Any) -> list[Problem]:
    """Return every problem of the JSON form ``data`` (empty: it is a valid image), in field order."""
    out: list[Problem] = []
    if not isinstance(data, dict):
        return [((), f"is {kind_of(data)}; an image is a mapping of {', '.join(FIELDS)}")]
    for key in data:
        if key not in FIELDS:
            out.append(((str(key),), f"is not a field of an image; the fields are {', '.join(FIELDS)}"))
    for key in REQUIRED:
        if key not in data:
            out.append(((key,), f"is missing; an image needs {', '.join(REQUIRED)}"))
    if "name" in data:
        _text(data["name"], ("name",), 64, out, (NAME, NAME_WORDS))
    version = data.get("version", "1")
    if isinstance(version, int) and not isinstance(version, bool):
        _whole(version, ("version",), 0, VERSION_MAX, out)
    elif not isinstance(version, str):
        out.append((("version",), f"is {kind_of(version)}; it must be a string or an integer label"))
    else:
        _text(version, ("version",), 64, out, (VERSION, VERSION_WORDS))
    description: Any = data.get("description")
    if (
        "description" in data
        and _text(description, ("description",), DESCRIPTION_MAX_CHARS, out)
        and not description.strip()
    ):
        out.append((("description",), "is empty; say in a line what the image is for"))
    _text(data.get("prompt", ""), ("prompt",), PROMPT_MAX_CHARS, out)
    if "tools" in data:
        _tools(data["tools"], out)
    _grants(data.get("grants", []), out)
    budget = _section(data, "budget", out)
    for name, amount in (budget or {}).items():
        if name in BUDGETS:
            _whole(amount, ("budget", name), 0, limits.BUDGET_MAX, out)
    _model(_section(data, "model", out) or {}, out)
    context = _section(data, "context", out) or {}
    if "max_tokens" in context:
        _whole(context["max_tokens"], ("context", "max_tokens"), *CONTEXT_TOKENS, out)
    if "objects" in context:
        _shown_objects(context["objects"], out)
    if "compact" in context and not isinstance(context["compact"], bool):
        out.append((("context", "compact"), f"is {kind_of(context['compact'])}; it must be true or false"))
    _env(data.get("env", {}), out)
    types = data.get("types", {})
    if "types" in data:
        _types(types, out)
    if "objects" in data:
        _seeds(data["objects"], types if isinstance(types, dict) else {}, out)
    if "tool_tables" in data:
        _tool_tables(data["tool_tables"], out)
    return out


def _tool_tables(value: Any, out: list[Problem]) -> None:
    if not isinstance(value, list) or len(value) > TOOL_TABLES_MAX:
        out.append((("tool_tables",), f"must be a list of at most {TOOL_TABLES_MAX} shared tool table names"))
        return
    for i, name in enumerate(value):
        if not isinstance(name, str) or not TOOL_TABLE.fullmatch(name) or value.index(name) != i:
            out.append((("tool_tables", str(i)), "must be a table name (a lowercase letter, then lowercase letters, "
                        "digits, '_' and '-'), each once"))  # fmt: skip


def _env(env: Any, out: list[Problem]) -> None:
    """Check the variables an image sets for its shell commands (docs/shell.md)."""
    if not isinstance(env, dict):
        out.append((("env",), f"is {kind_of(env)}; it must be a mapping of NAME: value"))
        return
    if len(env) > ENV_MAX:
        out.append((("env",), f"sets {len(env)} variables; at most {ENV_MAX}"))
        return
    for name, value in env.items():
        where: Field = ("env", str(name))
        if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
            out.append((where, "is not a variable name: an upper-case letter, then up to 63 of A-Z, 0-9, _"))
        elif ENV_REFUSED.fullmatch(name):
            out.append((where, "changes what programs run or where they find code; an image may not set it"))
        elif _text(value, where, ENV_VALUE_MAX_CHARS, out) and "\x00" in value:
            out.append((where, "holds a NUL byte"))


def _model(model: dict[str, Any], out: list[Problem]) -> None:
    if "temperature" in model:
        t = model["temperature"]
        low, high = TEMPERATURE
        if isinstance(t, bool) or not isinstance(t, (int, float)):
            out.append((("model", "temperature"), f"is {kind_of(t)}; it must be a number from 0 to 2"))
        elif not (math.isfinite(t) and low <= t <= high):
            out.append((("model", "temperature"), f"{shown(t)} is out of range; a number from 0 to 2"))
    if "max_tokens" in model:
        _whole(model["max_tokens"], ("model", "max_tokens"), *MODEL_TOKENS, out)
    if "constrain" in model and not isinstance(model["constrain"], bool):
        out.append((("model", "constrain"), f"is {kind_of(model['constrain'])}; it must be true or false"))


def object_name(value: Any, where: Field, out: list[Problem]) -> bool:
    """Check an object name (see OBJECT_NAME_WORDS); return whether it is one."""
    if not _text(value, where, limits.OBJ_NAME_MAX_CHARS, out):
        return False
    if not all(seg not in (".", "..") and OBJECT_SEGMENT.fullmatch(seg) for seg in value.split("/")):
        out.append((where, f"{shown(value)} is not valid; {OBJECT_NAME_WORDS}"))
        return False
    return True


def _types(types: Any, out: list[Problem]) -> None:
    """Check the object types an image declares: NAME -> a JSON Schema (draft 2020-12)."""
    if not isinstance(types, dict):
        out.append((("types",), f"is {kind_of(types)}; it must be a mapping of type name: JSON Schema"))
        return
    if len(types) > limits.OBJ_TYPES_MAX:
        out.append((("types",), f"declares {len(types)} types; at most {limits.OBJ_TYPES_MAX}"))
        return
    if not types:
        return
    import jsonschema  # only an image declaring types pays for it (about 130 ms)

    for name, schema in types.items():
        where: Field = ("types", str(name))
        if not isinstance(name, str) or not NAME.fullmatch(name):
            out.append((where, f"is not a type name; {NAME_WORDS.replace('a name', 'a type name', 1)}"))
        elif name in OBJECT_TYPES:
            out.append((where, f"is a built-in object type ({', '.join(OBJECT_TYPES)}); name yours otherwise"))
        elif not isinstance(schema, dict):
            out.append((where, f"is {kind_of(schema)}; it must be a JSON Schema: a mapping such as {{type: object}}"))
        else:
            wrong = _schema_problem(schema)
            if wrong is None:
                try:
                    jsonschema.Draft202012Validator.check_schema(schema)
                except jsonschema.SchemaError as err:
                    at = "/".join(str(p) for p in err.absolute_path)
                    at = at if len(at) <= 80 else "..." + at[-77:]
                    wrong = f"is not a valid JSON Schema (draft 2020-12){f' at {at}' if at else ''}: {err.message}"
            if wrong is not None:
                out.append((where, wrong[:500]))


def _schema_problem(schema: dict[str, Any]) -> str | None:
    """Return what makes ``schema`` unfit for a type (too deep, too big, not JSON, a $ref that
    leaves it, an embedded $id), or None. Walks it without recursion: it may be hostile."""
    todo: list[tuple[Any, int, bool]] = [(schema, 1, False)]  # (node, depth, whether it is data, not a schema)
    refs: list[str] = []
    while todo:
        node, depth, data = todo.pop()
        if depth > limits.JSON_MAX_DEPTH:
            return f"is nested more than {limits.JSON_MAX_DEPTH} levels deep"
        pairs = node.items() if isinstance(node, dict) else ((None, item) for item in node)
        for key, value in pairs:
            if (isinstance(node, dict) and not isinstance(key, str)) or not _plain_json(value):
                return f"is not JSON: {_JSON_WORDS}"
            if isinstance(value, (dict, list)):
                todo.append((value, depth + 1, data or key in _DATA_KEYWORDS))
            elif data or not isinstance(value, str):
                continue
            elif key in ("$ref", "$dynamicRef"):
                if value != "#" and not value.startswith("#/"):
                    return f"{key} {shown(value)} leaves the schema; only a local '#/...' pointer is allowed"
                refs.append(value)
            elif key == "$id" and node is not schema:
                return "has a $id inside it, which changes what '#/...' points at; give $id only at the top"
    try:
        size = len(codec.dumps(schema).encode())
    except (TypeError, ValueError):  # a lone surrogate
        return "is not JSON: its strings must be UTF-8 text"
    if size > limits.OBJ_SCHEMA_MAX_BYTES:
        return f"is {size} bytes as JSON; a type's schema is at most {limits.OBJ_SCHEMA_MAX_BYTES}"
    for ref in refs:
        if not _points(schema, ref):
            return f"$ref {shown(ref)} points at nothing in the schema"
    return None


def _plain_json(value: Any) -> bool:
    """Return whether ``value`` is a JSON value (a float only when finite: JSON has no NaN)."""
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, (str, int, bool, dict, list))


def _points(schema: dict[str, Any], ref: str) -> bool:
    """Return whether JSON pointer ``ref`` ('#/$defs/point') names a value inside ``schema``."""
    node: Any = schema
    for part in ref[2:].split("/") if ref != "#" else []:
        key = unquote(part).replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return False
    return True


def _seeds(seeds: Any, types: dict[str, Any], out: list[Problem]) -> None:
    """Check the seed objects: each {name, type, digest, bytes}, names unique, types known."""
    if not isinstance(seeds, list):
        out.append((("objects",), f"is {kind_of(seeds)}; it must be a list of {{{', '.join(SEED_FIELDS)}}}"))
        return
    if len(seeds) > limits.OBJ_SEED_MAX:
        out.append((("objects",), f"lists {len(seeds)} objects; at most {limits.OBJ_SEED_MAX}"))
        return
    seen: set[str] = set()
    for i, seed in enumerate(seeds):
        where: Field = ("objects", i)
        if not isinstance(seed, dict):
            out.append((where, f"is {kind_of(seed)}; a seed object is a mapping of {', '.join(SEED_FIELDS)}"))
            continue
        for key in seed:
            if key not in SEED_FIELDS:
                out.append(((*where, str(key)), f"is not a field of a seed object; its fields are {_SEED_WORDS}"))
        for key in SEED_FIELDS:
            if key not in seed:
                out.append(((*where, key), f"is missing; a seed object needs {_SEED_WORDS}"))
        name: Any = seed.get("name")
        if "name" in seed and object_name(name, (*where, "name"), out):
            if name in seen:
                out.append(((*where, "name"), f"{shown(name)} is listed twice; give each object once"))
            seen.add(name)
        if "type" in seed:
            _seed_type(seed["type"], (*where, "type"), types, out)
        if "digest" in seed:
            _text(seed["digest"], (*where, "digest"), 80, out, (DIGEST, DIGEST_WORDS))
        if "bytes" in seed:
            _whole(seed["bytes"], (*where, "bytes"), 0, limits.OBJ_MAX_BYTES, out)


def _seed_type(kind: Any, where: Field, types: dict[str, Any], out: list[Problem]) -> None:
    """Check a seed object's type: a built-in one or one the image declares under ``types``."""
    if _text(kind, where, limits.OBJ_TYPE_MAX_CHARS, out) and kind not in OBJECT_TYPES and kind not in types:
        declared = f"; the image declares {', '.join(map(str, types))}" if types else ""
        out.append(
            (where, f"{shown(kind)} is not an object type; the built-in ones are {', '.join(OBJECT_TYPES)}{declared}")
        )


def _shown_objects(names: Any, out: list[Problem]) -> None:
    """Check context.objects: the names of the objects the model is shown, each once."""
    where: Field = ("context", "objects")
    if not isinstance(names, list):
        out.append((where, f"is {kind_of(names)}; it must be a list of object names"))
        return
    if len(names) > CONTEXT_OBJECTS_MAX:
        out.append((where, f"lists {len(names)} objects; at most {CONTEXT_OBJECTS_MAX}"))
        return
    seen: set[str] = set()
    for i, name in enumerate(names):
        if object_name(name, (*where, i), out):
            if name in seen:
                out.append(((*where, i), f"{shown(name)} is listed twice; list each object once"))
            seen.add(name)
