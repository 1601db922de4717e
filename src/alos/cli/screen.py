"""The one way the CLI writes to a terminal or a pipe: every string goes through ``safe()``.

Anything a model or a process chose (names, paths, tool names, text, results, reasons, error
messages that quote them) may hold terminal control sequences: ESC (an OSC 52 clipboard write,
a cursor move that erases earlier lines), C1 controls, or bidi overrides that reorder what a
person reads. ``safe()`` turns each into a visible ``\\xNN`` / ``\\uNNNN``. ``Screen`` is the
only thing in ``alos.cli`` that prints: ``say`` (text), ``show`` (a table or panel built from
``text()`` pieces) and ``json`` (one JSON line, with the characters JSON leaves raw escaped).
A contract test fails on any other print in the CLI. ``command()`` is how every hint names alos.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from typing import Any

from rich.console import Console, RenderableType
from rich.text import Text

from alos import codec


def safe(value: object, keep_newlines: bool = False) -> str:
    """Return ``str(value)`` with every control, escape and bidi character made visible."""
    return codec.escape(str(value), keep_newlines=keep_newlines)


Part = str | tuple[str, str]


def text(*parts: Part, keep_newlines: bool = False) -> Text:
    """Return a Text of plain strings and (string, style) pairs, each made ``safe``."""
    out = Text()
    for part in parts:
        if isinstance(part, tuple):
            out.append(safe(part[0], keep_newlines), part[1])
        else:
            out.append(safe(part, keep_newlines))
    return out


def row(*parts: Part, keep_newlines: bool = False) -> Text:
    """Return ``text(*parts)`` ending the line: the one newline a row's own pieces cannot carry."""
    out = text(*parts, keep_newlines=keep_newlines)
    out.append("\n")
    return out


def clip(value: object, width: int = 100) -> str:
    """Return ``value`` made safe and cut to ``width`` characters."""
    raw = str(value)
    s = safe(raw[:width])  # made safe, a character only grows: what lies past ``width`` never shows
    return s if len(s) <= width and len(raw) <= width else s[: width - 1] + "…"


def clip_left(value: object, width: int = 60) -> str:
    """Return ``value`` made safe and cut to ``width`` from the left: a file's name is what matters."""
    raw = str(value)
    s = safe(raw[-width:])
    return s if len(s) <= width and len(raw) <= width else "…" + s[-(width - 1) :]


# JSON encoders escape C0 controls; these they leave raw, and a terminal may still act on them
_JSON_RAW = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def json_text(value: Any) -> str:
    """Return ``value`` as one line of JSON in which no character can drive a terminal."""
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", codec.dumps(value))


def command() -> str:
    """Return how the person who ran this can run alos again: ``alos`` when that name on their
    PATH is this installation, else the path of this installation's script (``.venv/bin/alos``)."""
    here = os.path.realpath(os.path.dirname(sys.executable))  # the venv's bin, not where python links to
    found = shutil.which("alos")
    if found and os.path.dirname(os.path.realpath(found)) == here:
        return "alos"
    script = os.path.join(os.path.dirname(sys.executable), "alos")
    if os.path.exists(script):
        rel = os.path.relpath(script)
        return shlex.quote(rel if not rel.startswith("..") else script)
    return f"{shlex.quote(sys.executable)} -m alos.cli"


class Screen:
    """A console for people: no markup parsing, no colour guessing (NO_COLOR honoured by rich)."""

    def __init__(self, stderr: bool = False, soft_wrap: bool = True) -> None:
        self.console = Console(stderr=stderr, highlight=False, markup=False, soft_wrap=soft_wrap)

    @property
    def width(self) -> int:
        return self.console.width

    def say(self, *parts: Part, style: str = "", end: str = "\n", keep_newlines: bool = False) -> None:
        """Print ``parts`` (made safe), in ``style``."""
        if self.console.color_system is None:  # no style can be drawn: the same characters, without rich's layout
            out = self.console.file
            out.write("".join(safe(p[0] if isinstance(p, tuple) else p, keep_newlines) for p in parts) + end)
            out.flush()
            return
        line = text(*parts, keep_newlines=keep_newlines)
        if style:
            line.stylize(style)
        self.console.print(line, end=end)

    def show(self, renderable: RenderableType, soft_wrap: bool | None = None) -> None:
        """Print a Text, table, panel or rule built from ``text()``/``safe()`` pieces."""
        self.console.print(renderable, soft_wrap=soft_wrap)

    def json(self, value: Any) -> None:
        """Print ``value`` as one JSON line (to this screen's stream)."""
        self.console.file.write(json_text(value) + "\n")
        self.console.file.flush()


def is_terminal(screen: Screen) -> bool:
    """Return whether ``screen``'s stream is itself a terminal (one that acts on control characters,
    and a person reads), asked of the file, not of what FORCE_COLOR claims."""
    try:
        return bool(screen.console.file.isatty())
    except (AttributeError, ValueError, OSError):
        return False
