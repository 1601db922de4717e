"""What a Deno worker says on its JSON-lines protocol, parsed and checked (providers/jit.py).

Every line from a worker is hostile: these functions return what is wrong with it, and make
its words into one line of printable text before they reach an error the model or a person reads.
"""

from __future__ import annotations

import json
from typing import Any


def parse(line: bytes) -> dict[str, Any] | str:
    """Return a worker's line as a JSON object, or what is wrong with it."""
    try:
        msg = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return f"not JSON: '{text(line[:120].decode(errors='replace').rstrip(chr(10)))}'"
    if not isinstance(msg, dict):
        return "not a JSON object"
    return msg


def bad_syscall(msg: dict[str, Any], pid: int) -> str:
    """Return what is wrong with a syscall message of the call for ``pid`` ("" when nothing is)."""
    if msg.get("pid") != pid:
        return f"it names pid {text(msg.get('pid'))}, but the call is process {pid}'s (a forged pid)"
    if not isinstance(msg.get("id"), int):
        return "a syscall without an integer id"
    if not isinstance(msg.get("name"), str) or not 0 < len(msg["name"]) <= 64:
        return "a syscall without a name"
    if not isinstance(msg.get("args"), dict):
        return f"the arguments of '{text(msg['name'])}' are not a JSON object"
    return ""


def text(value: object) -> str:
    """Return ``value`` as one line of printable text (a worker's words are hostile)."""
    said = value if isinstance(value, str) else json.dumps(value, default=str)
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" if ord(c) < 256 else "?" for c in said[:2000])


def lines(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str))
