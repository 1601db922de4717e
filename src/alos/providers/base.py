"""The provider Protocols the kernel is built against. Implementations live beside this file.

Protocols only; no behaviour.
"""

from __future__ import annotations

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
    name: str  # the resource name: the call needs execute on "model:<name>"

    async def complete(self, request: ModelRequest) -> ModelTurn:
        """Return the model's next turn; raises AlosError on a bad response."""
        ...


class HumanIO(Protocol):
    def tell(self, pid: int, text: str) -> None:
        """Show ``text`` from process ``pid`` to the human."""
        ...


class Clock(Protocol):
    def now(self) -> float:
        """Return seconds since the epoch."""
        ...
