"""The provider Protocols the kernel is built against. Implementations live beside this file.

Protocols only; no behaviour.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from alos.types import ModelTurn


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """What a model provider gets for one call.

    ``messages`` are in the OpenAI Chat Completions shape (system first; an assistant turn
    with ``tool_calls`` is followed by one ``tool`` message per call) and ``tools`` in the
    OpenAI function-tool shape; a provider for another wire format translates both.
    """

    process: str  # the process's name (a scripted model picks its turns by it)
    turn: int  # how many model calls this process made before this one
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    pid: int = 0
    max_tokens: int | None = None  # the most tokens the reply may have (reserved from the budget)
    temperature: float | None = None
    constrain: bool = False  # ask the server to allow exactly one call of a declared tool
    stream: Callable[[str], None] | None = None  # called with each piece of text as it arrives


class Model(Protocol):
    # whether a call leaves this process (a server may spend tokens that a host killed during the
    # call never learns of): model.call then commits its reservation before the request leaves
    remote: bool

    async def complete(self, request: ModelRequest) -> ModelTurn:
        """Return the model's next turn.

        Retries transient faults itself (429, 5xx, dropped connections, timeouts). Raises
        ProviderDown when the model cannot answer now (retries spent, a refused key: a person
        must put it right) and Invalid for a reply no retry would mend. Cancelling the task
        that awaits it (the process was paused or killed) ends the request at once.
        """
        ...

    async def aclose(self) -> None:
        """Release connections; the model is not used again."""
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


class ImageCatalog(Protocol):
    """What the kernel knows of AgentImages: the built-ins and how to check an image's JSON form.

    The kernel stores and versions images; what an image *is* lives in alos.images, above it.
    """

    def builtin(self, name: str) -> dict[str, Any] | None:
        """Return built-in image ``name`` in its JSON form, or None."""
        ...

    def names(self) -> list[str]:
        """Return the names of the built-in images."""
        ...

    def check(self, body: Any) -> dict[str, Any]:
        """Return ``body`` as a valid image's canonical JSON form; raise Invalid naming what is wrong."""
        ...
