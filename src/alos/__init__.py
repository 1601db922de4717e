"""alos: run LLM agents as processes whose every effect passes one authority path.

import alos
rt = alos.open(".alos/store.db", host=True)
pid = await rt.spawn("base", "summarize README.md", workspace=".", model="script:turns.jsonl",
                     grants=[alos.parse_grant("fs:*=read", alos.Effect.ALLOW, ".")])
await rt.run()
"""

from alos.errors import (
    AlosError,
    Cancelled,
    Conflict,
    Denied,
    Exists,
    Invalid,
    Limit,
    NotFound,
    Unavailable,
)
from alos.providers.clock import ManualClock
from alos.rights import Effect, Grant, Right, parse_grant
from alos.runtime import Runtime, open
from alos.types import AuditRecord, Event, Exit, Fork, HumanRequest, Parked, Process, ProcState, Wait

__version__ = "0.1.0"

__all__ = [
    "AlosError",
    "AuditRecord",
    "Cancelled",
    "Conflict",
    "Denied",
    "Effect",
    "Event",
    "Exists",
    "Exit",
    "Fork",
    "Grant",
    "HumanRequest",
    "Invalid",
    "Limit",
    "ManualClock",
    "NotFound",
    "Parked",
    "ProcState",
    "Process",
    "Right",
    "Runtime",
    "Unavailable",
    "Wait",
    "open",
    "parse_grant",
]
