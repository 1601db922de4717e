"""Generate docs/syscalls.md from the syscall table: ``python -m alos.docs > docs/syscalls.md``.

The page is never edited by hand; a contract test checks it matches this output.
"""

from __future__ import annotations

from alos import codec
from alos.syscall import TABLE
from alos.tools import schema

_KINDS = {"Read": "read", "Outside": "outside effect", "Change": "store", "Question": "store"}


def syscalls_markdown() -> str:
    """Return the syscall reference page."""
    out = [
        "# Syscalls",
        "",
        "Generated from `alos.syscall.TABLE` by `python -m alos.docs`; do not edit by hand.",
        "Tools of an image are these syscalls with `_` for `.`. Host-only syscalls issue authority",
        "and cannot be called by a process. Outside effects are journaled (docs/durability.md).",
        "",
        "| syscall | tool | kind | description |",
        "|---|---|---|---|",
    ]
    for name, e in sorted(TABLE.items()):
        kind = "host only" if e.host_only else _KINDS[type(e.effect).__name__]
        doc = " ".join((e.args.__doc__ or "").split()).replace("|", "\\|")
        out.append(f"| `{name}` | `{name.replace('.', '_')}` | {kind} | {doc} |")
    out.append("")
    for name, e in sorted(TABLE.items()):
        out += [f"## {name}", "", "```json", codec.dumps(schema(e.args)), "```", ""]
    return "\n".join(out)


if __name__ == "__main__":
    print(syscalls_markdown(), end="")
