"""Images: named tool tables. This release has the built-in image ``base``.

An image says which syscalls a process's model sees as tools. Seeing a tool grants nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from alos.errors import NotFound


@dataclass(frozen=True, slots=True)
class Image:
    name: str
    description: str
    syscalls: tuple[str, ...]


BASE = Image(
    name="base",
    description="files in the working directory, a human to ask and tell, and exit",
    syscalls=(
        "fs.read",
        "fs.write",
        "fs.list",
        "fs.mkdir",
        "fs.delete",
        "human.ask",
        "human.tell",
        "proc.exit",
    ),
)

IMAGES: dict[str, Image] = {BASE.name: BASE}


def image(name: str) -> Image:
    """Return the image called ``name``; raises NotFound listing the known images."""
    found = IMAGES.get(name)
    if found is None:
        raise NotFound(f"no image {name!r}; known images: {', '.join(sorted(IMAGES))}")
    return found
