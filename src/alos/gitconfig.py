"""Read a git config file as git itself reads it, for the shell decision (primitives/shell.py).

A repository's config can name commands git runs (an alias, core.fsmonitor, a filter ...); a git
call is decided as if those were given with ``-c`` and a person approving it sees their values, so
the keys and the values here must be exactly git's. This follows git's own parser (config.c):
a variable may follow a section header on its line; a value's unquoted whitespace runs become
spaces and its ends are trimmed; ``"`` toggles quoting; ``#`` and ``;`` outside quotes begin a
comment; ``\\`` escapes ``n t b " \\`` and, before a newline, continues the value on the next line.
A file git would refuse is reported as such (``UNREADABLE``): the caller treats it as naming a
command. Pure: text in, pairs out.
"""

from __future__ import annotations

UNREADABLE = ("include.path", "(a config file alos cannot read as git does)")
_ESCAPES = {"n": "\n", "t": "\t", "b": "\b", "\\": "\\", '"': '"'}


class _Bad(Exception):
    """The text is not a config file git would read."""


def parse(text: str) -> list[tuple[str, str]]:
    """Return the (key, value) pairs of a git config file's ``text`` in order, keys as git compares
    them (``section.subsection.name``, section and name lowercased); a variable without ``=`` is
    "true". A file git would refuse ends the list with UNREADABLE."""
    pairs: list[tuple[str, str]] = []
    try:
        _parse(text, pairs)
    except _Bad:
        pairs.append(UNREADABLE)
    return pairs


def _parse(text: str, pairs: list[tuple[str, str]]) -> None:
    i, n = 0, len(text)
    section: str | None = None
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
        elif c in "#;":
            i = _line_end(text, i)
        elif c == "[":
            section, i = _header(text, i + 1)
        elif c.isascii() and c.isalpha():
            start = i
            while i < n and text[i].isascii() and (text[i].isalnum() or text[i] == "-"):
                i += 1
            name = text[start:i].lower()
            while i < n and text[i] in " \t":
                i += 1
            if section is None:
                raise _Bad
            if i < n and text[i] == "=":
                value, i = _value(text, i + 1)
            elif i >= n or text[i] in "\r\n#;":
                value = "true"
            else:
                raise _Bad
            pairs.append((f"{section}.{name}", value))
        else:
            raise _Bad


def _line_end(text: str, i: int) -> int:
    end = text.find("\n", i)
    return len(text) if end < 0 else end + 1


def _header(text: str, i: int) -> tuple[str, int]:
    """Return (the section key, the index after ``]``) of a header whose ``[`` ends before ``i``."""
    n = len(text)
    start = i
    while i < n and (text[i].isascii() and (text[i].isalnum() or text[i] in "-.")):
        i += 1
    name = text[start:i].lower()
    if not name:
        raise _Bad
    if i < n and text[i] == "]":
        return name, i + 1  # [section] or the old [section.subsection], lowercased whole
    if i >= n or text[i] not in " \t":
        raise _Bad
    while i < n and text[i] in " \t":
        i += 1
    if i >= n or text[i] != '"':
        raise _Bad
    i += 1
    sub: list[str] = []
    while True:
        if i >= n or text[i] == "\n":
            raise _Bad
        c = text[i]
        if c == '"':
            break
        if c == "\\":
            i += 1
            if i >= n or text[i] == "\n":
                raise _Bad
            c = text[i]
        sub.append(c)
        i += 1
    i += 1
    if i >= n or text[i] != "]":
        raise _Bad
    return f"{name}.{''.join(sub)}", i + 1


def _value(text: str, i: int) -> tuple[str, int]:
    """Return (the value after ``=``, the index after its line) as git reads it."""
    n = len(text)
    out: list[str] = []
    quote = comment = False
    space = 0
    while i < n:
        c = text[i]
        i += 1
        if c == "\n":
            if quote:
                raise _Bad
            return "".join(out), i
        if comment:
            continue
        if c in " \t\r\f\v" and not quote:
            if out:
                space += 1
            continue
        if not quote and c in "#;":
            comment = True
            continue
        out.extend(" " * space)
        space = 0
        if c == "\\":
            if i >= n:
                raise _Bad
            c = text[i]
            i += 1
            if c == "\n":
                continue  # the value goes on on the next line
            if c not in _ESCAPES:
                raise _Bad
            out.append(_ESCAPES[c])
            continue
        if c == '"':
            quote = not quote
            continue
        out.append(c)
    if quote:
        raise _Bad
    return "".join(out), i
