"""The provider Protocols the kernel is built against. Implementations live beside this file.

Protocols only; no behaviour.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from alos.types import HumanRequest, ModelTurn


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

    def answer(self, request: HumanRequest) -> HumanAnswer | None:
        """Return this human's answer to a pending ``request`` now, or None to leave it waiting
        for a person (a terminal, another terminal's ``alos approve``). The host carries the
        answer out through dispatch() (human.answer), so it is checked and audited like any other."""
        ...


@dataclass(frozen=True, slots=True)
class HumanAnswer:
    """An answer a HumanIO gives: verdict once | always | deny | answer, the text (a reason or an
    answer to a question), and who gave it (kept in the audit record)."""

    verdict: str
    text: str | None
    by: str


@dataclass(frozen=True, slots=True)
class ShellLimits:
    """What one shell.run may use (docs/shell.md)."""

    wall_seconds: float
    cpu_seconds: int
    memory_bytes: int  # RLIMIT_DATA (RLIMIT_AS breaks runtimes that reserve address space)
    file_bytes: int  # RLIMIT_FSIZE: the largest file it may write
    output_bytes: int  # bytes of stdout and of stderr kept; the rest is counted, not kept
    processes: int  # RLIMIT_NPROC: processes its user may have (a fork bomb stops here)


@dataclass(frozen=True, slots=True)
class ShellRequest:
    """One authorized command: ``program`` is the absolute real path that was decided on and is run
    (argv[0] is replaced by it), in ``cwd``, with exactly ``env``, stdin closed."""

    pid: int  # the process it runs for (alos kill of that process kills it)
    program: str
    argv: tuple[str, ...]  # argv[0] as the caller wrote it, then the arguments
    cwd: str
    env: dict[str, str]
    limits: ShellLimits
    isolate: str  # "off" | "auto" (bwrap when installed) | "required"
    writable: tuple[str, ...] = ()  # with isolation: the only paths it may write (and a private /tmp)
    readonly: tuple[str, ...] = ()  # with isolation: paths under those it may still not write
    network: bool = False  # with isolation: whether it keeps the host's network
    hidden: tuple[str, ...] = ()  # with isolation: directories masked by an empty one (the store's)


@dataclass(frozen=True, slots=True)
class ShellResult:
    exit_code: int | None  # None when a signal ended it
    signal: str | None  # e.g. "SIGKILL"
    stdout: bytes  # at most limits.output_bytes: its first SHELL_HEAD_BYTES, then its last bytes
    stderr: bytes
    stdout_bytes: int  # how many bytes it wrote in all
    stderr_bytes: int
    duration: float  # seconds of wall time
    limit: str | None  # which limit stopped it: "wall", "cpu", "memory", "file", "output", "killed", or None
    isolated: bool


class Shell(Protocol):
    def locate(self, cwd: str, program: str, path: str) -> str | None:
        """Return the absolute real path of the executable file ``program`` names: with a '/', from
        ``cwd``; otherwise the first match on the search path ``path``. None when there is none."""
        ...

    def isolation(self) -> str | None:
        """Return what isolates commands here (e.g. "bwrap 0.8.0"), or None when nothing can."""
        ...

    def read(self, path: str, limit: int) -> bytes | None:
        """Return up to ``limit`` bytes of the regular file ``path`` as the commands this shell runs
        see it (a git config the decision must read), or None when there is none."""
        ...

    async def run(self, request: ShellRequest) -> ShellResult:
        """Run the command in its own session and process group and wait for it; the whole group
        is killed on a limit, on ``kill(pid)``, and when the awaiting task is cancelled."""
        ...

    def kill(self, pid: int) -> int:
        """Kill the process groups of every command running for process ``pid``; return how many."""
        ...

    def close(self) -> None:
        """Kill every command still running (the host is exiting)."""
        ...


@dataclass(frozen=True, slots=True)
class NetRequest:
    """One authorized HTTP request. ``address`` is the IP the host name was resolved to when it was
    decided: the connection goes there (a second lookup could name another host), with the URL's
    host name kept for the Host header and TLS."""

    method: str
    url: str
    address: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    timeout: float  # seconds for the whole request
    max_bytes: int  # bytes of the body kept; more is counted and cut


@dataclass(frozen=True, slots=True)
class NetResponse:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    body_bytes: int  # the body's whole size (body holds at most max_bytes); -1 when it is not known
    truncated: bool
    elapsed: float


class Network(Protocol):
    def lookup(self, host: str, port: int) -> list[str]:
        """Return the addresses ``host`` resolves to (an IP literal resolves to itself); raise
        NotFound when it does not resolve."""
        ...

    async def fetch(self, request: NetRequest) -> NetResponse:
        """Make the request once (no redirect followed: dispatch() decides each hop); raise
        Unavailable for a refused connection, a TLS failure or a timeout."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
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


@dataclass(frozen=True, slots=True)
class Providers:
    """The provider of every effect. ``alos.open(..., providers=Providers(files=...))`` swaps any of
    them; None keeps the real one (docs/providers.md). Swapping a provider changes no tool schema
    and no authority decision: dispatch() decides before any provider is called."""

    files: FileSystem | None = None
    shell: Shell | None = None
    net: Network | None = None
    clock: Clock | None = None
    human: HumanIO | None = None
    models: Callable[[str], Model] | None = None  # opens the model a spec names (e.g. "openai:gpt-4o")
