"""alos: run LLM agents as processes whose every effect passes one authority path.

import alos
rt = alos.open(".alos/store.db", host=True)
pid = await rt.spawn("base", "summarize README.md", workspace=".", model="script:turns.jsonl",
                     grants=[alos.parse_grant("fs:*=read", alos.Effect.ALLOW, ".")])
await rt.run()

The public surface is what such a program names: open() and Runtime; parse_grant() and Effect to
make grants; Parked, which dispatch() returns when a process must wait for a human; Process and
the states it carries (ProcState, Wait, Exit); and the errors a caller catches. Everything else
(records, rights, test doubles such as alos.providers.clock.ManualClock) is imported from its module.
"""

from typing import TYPE_CHECKING, Any

from alos.errors import AlosError, Conflict, Corrupt, Denied, Exists, Invalid, Limit, NotFound, Unavailable
from alos.rights import Effect, parse_grant
from alos.types import Exit, Parked, Process, ProcState, Wait

if TYPE_CHECKING:
    from alos.runtime import Runtime, open


def __getattr__(name: str) -> Any:
    """Return Runtime or open, importing the runtime on first use: a program that only names
    errors or records (the CLI's --help) does not pay for the kernel, the store and asyncio."""
    if name in ("Runtime", "open"):
        from alos import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module 'alos' has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "AlosError",
    "Conflict",
    "Corrupt",
    "Denied",
    "Effect",
    "Exists",
    "Exit",
    "Invalid",
    "Limit",
    "NotFound",
    "Parked",
    "ProcState",
    "Process",
    "Runtime",
    "Unavailable",
    "Wait",
    "open",
    "parse_grant",
]
