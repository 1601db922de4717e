"""The JSON form of an image, checked field by field: what a store row, a built-in file and an
``image.register`` call carry, and what ``load()`` makes of an image file.

``problems()`` returns every problem with its field path (``alos.images.from_json`` turns a
form without problems into an Image). Cheap: no jsonschema (schema.json says the same for
files, and load() adds line numbers; a test keeps the two in step). It never raises on
hostile input: it only describes it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

from alos import limits
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

FIELDS = ("name", "version", "description", "prompt", "tools", "grants", "budget", "model", "context", "env")
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
    "context": ("max_tokens",),
}
EFFECTS = tuple(e.value for e in Effect)
_GRANT_WORKSPACE = "/"  # relative fs patterns are made absolute at `alos run`; here only the syntax counts


def field_name(where: Field) -> str:
    """Return ``where`` as a person writes it: ``grants[2].allow``; the top level is ``(image)``."""
    out = ""
    for part in where:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
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
    _env(data.get("env", {}), out)
    return out


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
