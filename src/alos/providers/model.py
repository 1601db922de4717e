"""Opening a model by its spec, and the scripted model.

``open_model`` takes ``openai:MODEL``, ``anthropic:MODEL`` (HTTP clients, imported only then:
httpx costs start-up time), ``script:PATH`` and ``replay:PATH`` (a file ``--record`` wrote).

A scripted model reads a JSON Lines file, one model turn per line:
    {"content": "...", "tool_calls": [{"name": "fs_read", "arguments": {"path": "README.md"}}]}
A turn may carry "proc": NAME; a process consumes, in order, the turns for its name (turns
without "proc" belong to "main", the root). When its turns run out, the process exits.
The whole file is checked when loaded; an error names the line and what is wrong, never the
file's content. Only a regular file is read, and at most limits.SCRIPT_MAX_BYTES of it: a
device, a FIFO or a directory is refused at once and never blocks the host.
"""

from __future__ import annotations

import errno
import math
import os
import stat
from typing import TYPE_CHECKING, Any

import msgspec

from alos import codec, limits
from alos.errors import Invalid, NotFound, Unavailable
from alos.providers.base import Model, ModelRequest
from alos.types import ModelTurn, ToolCall

if TYPE_CHECKING:
    from alos.config import ModelConfig

_TURN_KEYS = frozenset({"content", "tool_calls", "proc", "usage"})
_CALL_KEYS = frozenset({"name", "arguments", "id"})


class ScriptedModel:
    """Replays a JSON Lines script: deterministic, offline, no network."""

    remote = False  # answers in this process, at once: nothing is spent that a crash could hide

    def __init__(self, path: str) -> None:
        self.path = path
        self._turns = load_script(self.path)

    async def complete(self, request: ModelRequest) -> ModelTurn:
        """Return turn number ``request.turn`` of ``request.process``, or an exhausted turn."""
        turns = self._turns.get(request.process, [])
        if request.turn >= len(turns):
            return ModelTurn(content="", exhausted=True, usage={"total_tokens": 0})
        return turns[request.turn]

    async def aclose(self) -> None:
        """Nothing to release: the script was read whole when opened."""


def load_script(path: str) -> dict[str, list[ModelTurn]]:
    """Return the turns of script ``path`` grouped by process name.

    Raises NotFound when the file is missing, Unavailable when the host may not read it, and
    Invalid naming the line for a bad turn (or for anything but a regular file of UTF-8 text).
    """
    try:
        text = read_regular(path, "model script", "pass --model script:PATH to a JSON Lines file").decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid(f"script {path} is not UTF-8 text") from None
    turns: dict[str, list[ModelTurn]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            raw = codec.parse(line)
        except msgspec.DecodeError as err:
            raise Invalid(f"{where}: not JSON ({err})") from None
        proc, turn = _turn(raw, where, sum(len(t) for t in turns.values()))
        turns.setdefault(proc, []).append(turn)
    return turns


def read_regular(path: str, what: str, hint: str) -> bytes:
    """Return the bytes of regular file ``path`` (a ``what``, e.g. "model script"; ``hint`` says how
    to name one), refusing anything else before reading it. Raises NotFound, Unavailable when the
    host may not read it, Invalid for a symlink, a non-regular file or one over
    limits.SCRIPT_MAX_BYTES."""
    try:
        # a FIFO never blocks the host; the path is real (resolved when named): a symlink put
        # there since is not followed
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(f"no {what} at {path}; {hint}") from None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise Invalid(f"{what} {path} is a symlink now; name the file itself") from None
        if err.errno in (errno.EACCES, errno.EPERM):
            raise Unavailable(f"the host may not read {what} {path} ({err.strerror})") from None
        raise Invalid(f"{what} {path} cannot be opened ({err.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Invalid(f"{what} {path} is not a regular file; {hint}")
        if st.st_size > limits.SCRIPT_MAX_BYTES:
            raise Invalid(f"{what} {path} is {st.st_size} bytes; the limit is {limits.SCRIPT_MAX_BYTES}")
        data = os.read(fd, limits.SCRIPT_MAX_BYTES + 1)  # a file that grows meanwhile is still capped
        if len(data) > limits.SCRIPT_MAX_BYTES:
            raise Invalid(f"{what} {path} is over {limits.SCRIPT_MAX_BYTES} bytes")
        return data
    finally:
        os.close(fd)


def _turn(raw: Any, where: str, index: int) -> tuple[str, ModelTurn]:
    if not isinstance(raw, dict):
        raise Invalid(f'{where}: a turn must be a JSON object like {{"content": "..."}}')
    if set(raw) - _TURN_KEYS:
        raise Invalid(f"{where}: a turn holds only the keys {', '.join(sorted(_TURN_KEYS))}; this one holds others")
    content = raw.get("content", "")
    proc = raw.get("proc", "main")
    calls = raw.get("tool_calls", [])
    usage = raw.get("usage", {"total_tokens": 0})  # a script's turn costs nothing unless it says so
    if not isinstance(content, str):
        raise Invalid(f"{where}: 'content' must be a string")
    if not isinstance(proc, str) or not proc:
        raise Invalid(f"{where}: 'proc' must be a non-empty process name")
    if not isinstance(calls, list):
        raise Invalid(f"{where}: 'tool_calls' must be a list")
    if len(calls) > limits.MODEL_TURN_MAX_CALLS:
        raise Invalid(f"{where}: {len(calls)} tool calls; at most {limits.MODEL_TURN_MAX_CALLS}")
    if not isinstance(usage, dict) or not all(_count(v) for v in usage.values()):
        raise Invalid(f"{where}: 'usage' must map names to whole numbers of tokens, 0 or more")
    parsed = tuple(_call(c, f"{where}: tool call {i + 1}", f"call_{index}_{i}") for i, c in enumerate(calls))
    return proc, ModelTurn(content=content, tool_calls=parsed, usage={str(k): int(v) for k, v in usage.items()})


def _count(value: Any) -> bool:
    """Return whether ``value`` is a whole number of tokens (1e23 is one; -1, 1.5 and true are not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return value >= 0 and (isinstance(value, int) or (math.isfinite(value) and value.is_integer()))


def _call(raw: Any, where: str, default_id: str) -> ToolCall:
    if not isinstance(raw, dict):
        raise Invalid(f"{where} must be an object with 'name' and 'arguments'")
    if set(raw) - _CALL_KEYS:
        keys = ", ".join(sorted(_CALL_KEYS))
        raise Invalid(f"{where}: a tool call holds only the keys {keys}; this one holds others")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise Invalid(f"{where}: 'name' must name a tool, e.g. \"fs_read\"")
    args = raw.get("arguments", {})
    if isinstance(args, str):  # the OpenAI wire format sends arguments as a JSON string
        try:
            args = codec.parse(args)
        except msgspec.DecodeError as err:
            raise Invalid(f"{where}: 'arguments' is a string but not JSON that alos takes ({err})") from None
    if not isinstance(args, dict):
        raise Invalid(f"{where}: 'arguments' must be an object")
    call_id = raw.get("id", default_id)
    if not isinstance(call_id, str):
        raise Invalid(f"{where}: 'id' must be a string")
    return ToolCall(id=call_id, name=name, arguments=args)


def open_model(spec: str, config: ModelConfig | None = None, *, record: str | None = None) -> Model:
    """Return the model a ``--model`` spec names, recording every call to file ``record`` when given.

    ``config`` gives servers and keys for openai: and anthropic: (None: as ``alos.config.load``
    finds them from the current directory, with no flags). Nothing is connected to yet. Raises
    Invalid for an unknown kind or a bad config, NotFound/Invalid for a bad script or replay file.
    """
    kind, sep, rest = spec.partition(":")
    model: Model
    if kind == "script" and sep and rest:
        model = ScriptedModel(rest)
    elif kind == "replay" and sep and rest:
        from alos.providers.record import ReplayModel

        model = ReplayModel(rest)
    elif kind in ("openai", "anthropic") and sep and rest:
        model = _http_model(kind, rest, config)
    else:
        raise Invalid(
            f"model spec {codec.escape(spec)!r} is not known; use openai:MODEL, anthropic:MODEL, "
            "script:PATH (a JSON Lines script) or replay:PATH (a file --record wrote); see docs/models.md"
        )
    if record:
        from alos.providers.record import Recorder

        model = Recorder(model, record, spec)
    return model


def _http_model(kind: str, name: str, config: ModelConfig | None) -> Model:
    from alos import config as settings

    provider = (config or settings.load(os.getcwd(), {})).provider(kind)
    if kind == "openai":
        from alos.providers.openai import OpenAIModel

        return OpenAIModel(
            name,
            base_url=provider.base_url,
            api_key=provider.api_key,
            constrain=provider.constrain,
            timeout=provider.timeout,
        )
    from alos.providers.anthropic import AnthropicModel

    return AnthropicModel(name, base_url=provider.base_url, api_key=provider.api_key, timeout=provider.timeout)
