"""The provider Protocols the kernel is built against. Implementations live beside this file.

Protocols only; no behaviour.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from alos.types import ModelTurn


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """What a model provider gets for one call."""

    process: str  # the process's name (a scripted model picks its turns by it)
    turn: int  # how many model calls this process made before this one
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]


class Model(Protocol):
    async def complete(self, request: ModelRequest) -> ModelTurn:
        """Return the model's next turn; raises AlosError on a bad response."""
        ...


@dataclass(frozen=True, slots=True)
class Peek:
    """What an approval shows about a file that an effect would change."""

    exists: bool
    size: int
    digest: str | None
    text: str | None  # the current text when small enough to diff


class FileSystem(Protocol):
    """Paths it receives are absolute, real and already authorized (except in ``resolve``)."""

    def resolve(self, cwd: str, path: str) -> str:
        """Return the real absolute path ``path`` names from ``cwd``; raise Denied for the store."""
        ...

    def hidden(self, real: str) -> bool:
        """Return whether ``real`` is where no process may reach (the store's directory)."""
        ...

    def read(self, path: str, offset: int, length: int) -> tuple[bytes, int]: ...
    def write(self, path: str, data: bytes) -> None: ...
    def list(self, path: str) -> tuple[list[dict[str, Any]], bool]: ...
    def missing(self, path: str) -> tuple[str, ...]: ...
    def mkdir(self, path: str, creates: Sequence[str]) -> bool: ...
    def delete(self, path: str) -> str: ...
    def is_dir(self, path: str) -> bool: ...
    def peek(self, path: str) -> Peek: ...


class HumanIO(Protocol):
    def tell(self, pid: int, text: str) -> None:
        """Show ``text`` from process ``pid`` to the human."""
        ...


class Clock(Protocol):
    real: bool  # False for a test clock that jumps ahead instead of sleeping

    def now(self) -> float:
        """Return seconds since the epoch."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return after ``seconds`` have passed on this clock."""
        ...
