"""Images: named tool tables. This release has the built-in images ``base`` and ``reader``.

An image says which syscalls a process's model sees as tools. Seeing a tool grants nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from alos.errors import NotFound


@dataclass(frozen=True, slots=True)
class Image:
    """An AgentImage: what a process's model is told and shown. It grants nothing: ``requests``
    are declarations a person may grant at ``alos run`` (or grant less)."""

    name: str
    description: str
    syscalls: tuple[str, ...]
    prompt: str = ""  # the image's system prompt, before what alos says about the process
    version: str = "1"  # the author's label; the store numbers registered versions itself
    requests: tuple[tuple[str, str], ...] = ()  # (allow | ask | deny, "RESOURCE=RIGHTS") it asks to be granted
    budget: tuple[tuple[str, int], ...] = ()  # default budget limits (name, amount)
    temperature: float | None = None
    max_tokens: int | None = None  # per model call; reserved from the tokens budget before it
    constrain: bool = False  # send a response_format allowing exactly one call of a declared tool
    context_tokens: int | None = None  # the context's token budget; past it old tool results are elided
    source: str = "built-in"  # the file it was loaded from, or "built-in", or "store:NAME@VERSION"


BASE = Image(
    name="base",
    description="files, a human to ask and tell, child processes, messages, the clock, and exit",
    syscalls=(
        "fs.read",
        "fs.write",
        "fs.list",
        "fs.mkdir",
        "fs.delete",
        "human.ask",
        "human.tell",
        "proc.spawn",
        "proc.fork",
        "proc.exec",
        "proc.wait",
        "proc.merge",
        "proc.signal",
        "proc.list",
        "proc.chdir",
        "msg.send",
        "msg.recv",
        "clock.now",
        "clock.sleep",
        "proc.exit",
    ),
)

READER = Image(
    name="reader",
    description="read files, talk through messages and the human console, and exit: nothing that changes files",
    syscalls=("fs.read", "fs.list", "human.tell", "msg.send", "msg.recv", "clock.now", "proc.exit"),
)

IMAGES: dict[str, Image] = {i.name: i for i in (BASE, READER)}


def image(name: str) -> Image:
    """Return the image called ``name``; raises NotFound listing the known images."""
    found = IMAGES.get(name)
    if found is None:
        raise NotFound(f"no image {name!r}; known images: {', '.join(sorted(IMAGES))}")
    return found
