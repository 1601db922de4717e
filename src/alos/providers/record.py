"""Recording a model's calls to a JSON Lines file (``--record FILE``), and answering from one
(``replay:FILE``).

One line per answered call: {"pid", "process", "turn", "spec", "request": {messages, tools,
max_tokens, temperature, constrain}, "response": {content, tool_calls, usage, finish_reason,
model}}. Anything that looks like a key is redacted before it is written (fields named api_key,
authorization, x-api-key; strings like sk-...). Each line is one O_APPEND write: a host killed
meanwhile loses at most that line, which replay then skips. Replay answers (process, turn) with
the last line recorded for it, after checking the request is the recorded one; the first
difference raises Invalid naming the file, line, process, turn and field.
"""

from __future__ import annotations

import os
import re
import stat
from typing import Any

import msgspec

from alos import codec, limits
from alos.errors import Invalid, Unavailable
from alos.providers.base import Model, ModelRequest
from alos.providers.model import read_regular
from alos.types import ModelTurn, ToolCall

REDACTED = "[redacted]"
_KEY_FIELDS = frozenset({"api_key", "apikey", "authorization", "x_api_key"})
_KEY_TEXT = re.compile(r"sk-[A-Za-z0-9_\-]{16,}")  # OpenAI (sk-, sk-proj-) and Anthropic (sk-ant-) keys
_MISSING = "(none)"
_HINT = "pass --model replay:PATH to a file that --record wrote"


class Recorder:
    """Wraps ``model`` and appends each answered call to ``path`` (opened at the first call)."""

    def __init__(self, model: Model, path: str, spec: str) -> None:
        self.model = model
        self.remote = model.remote
        self.path = path
        self.spec = spec
        self._fd: int | None = None

    async def complete(self, request: ModelRequest) -> ModelTurn:
        """Return the wrapped model's turn, once it is written down. Raises what the model raises,
        and Unavailable when the line cannot be written."""
        turn = await self.model.complete(request)
        line = {
            "pid": request.pid,
            "process": request.process,
            "turn": request.turn,
            "spec": self.spec,
            "request": recorded_request(request),
            "response": redact(_response(turn)),
        }
        self._append((codec.dumps(line) + "\n").encode())
        return turn

    async def aclose(self) -> None:
        """Close the file and the wrapped model."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        await self.model.aclose()

    def _append(self, data: bytes) -> None:
        try:
            if self._fd is None:
                self._fd = self._open()
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:])
        except OSError as err:
            raise Unavailable(
                f"cannot append to record file {self.path} ({err.strerror}); free space or fix it"
            ) from None

    def _open(self) -> int:
        # no symlink is followed: one planted where the record goes never points the host elsewhere
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(self.path, flags, 0o600)  # it holds prompts: readable by its owner only
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise Invalid(f"record file {self.path} is not a regular file; name a file for --record")
        return fd


class ReplayModel:
    """Answers from a record file, deterministically, while the requests match the recorded ones."""

    remote = False  # answers in this process, at once: nothing is spent that a crash could hide

    def __init__(self, path: str) -> None:
        """Raises NotFound, Unavailable or Invalid (naming the line) for a file that cannot be used."""
        self.path = path
        self._entries = _load(path)

    async def complete(self, request: ModelRequest) -> ModelTurn:
        """Return the recorded turn for ``request``'s (process, turn). Raises Invalid when none was
        recorded or the request differs from the recorded one."""
        where = f"process {codec.escape(request.process)!r} turn {request.turn}"
        entry = self._entries.get((request.process, request.turn))
        if entry is None:
            raise Invalid(f"replay file {self.path} holds no answer for {where}: the run has left the recording")
        number, recorded, turn = entry
        difference = first_difference(recorded, recorded_request(request))
        if difference is not None:
            field, was, now = difference
            raise Invalid(
                f"{self.path}:{number}: {where} asks differently than recorded, first at {field}: "
                f"recorded {_cut(was)}, now {_cut(now)}"
            )
        if request.stream is not None and turn.content:
            request.stream(turn.content)
        return turn

    async def aclose(self) -> None:
        """Nothing to release: the file was read whole when opened."""


def recorded_request(request: ModelRequest) -> dict[str, Any]:
    """Return what a record file keeps of ``request``, redacted and as JSON reads it back."""
    value = {
        "messages": request.messages,
        "tools": request.tools,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "constrain": request.constrain,
    }
    plain: dict[str, Any] = codec.loads(codec.dumps(redact(value)))
    return plain


def redact(value: Any) -> Any:
    """Return ``value`` with key fields and key-like strings replaced by REDACTED."""
    if isinstance(value, dict):
        return {k: REDACTED if str(k).lower().replace("-", "_") in _KEY_FIELDS else redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _KEY_TEXT.sub(REDACTED, value)
    return value


def first_difference(recorded: Any, now: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """Return (field path like ``messages[3].content``, recorded value, value now) of the first
    place the two differ, or None when they are the same (1 and 1.0 and true all differ)."""
    if isinstance(recorded, dict) and isinstance(now, dict):
        for key in sorted(set(recorded) | set(now), key=str):
            inner = f"{path}.{key}" if path else str(key)
            if key not in recorded or key not in now:
                return inner, recorded.get(key, _MISSING), now.get(key, _MISSING)
            found = first_difference(recorded[key], now[key], inner)
            if found is not None:
                return found
        return None
    if isinstance(recorded, list) and isinstance(now, list):
        for i, (a, b) in enumerate(zip(recorded, now, strict=False)):
            found = first_difference(a, b, f"{path}[{i}]")
            if found is not None:
                return found
        if len(recorded) != len(now):
            i = min(len(recorded), len(now))
            return f"{path}[{i}]", recorded[i] if i < len(recorded) else _MISSING, now[i] if i < len(now) else _MISSING
        return None
    if type(recorded) is not type(now) or recorded != now:
        return path or "(the request)", recorded, now
    return None


def _cut(value: Any) -> str:
    text = value if value == _MISSING else codec.dumps(value)
    if len(text) > limits.PREVIEW_CHARS:
        text = text[: limits.PREVIEW_CHARS] + "..."
    return codec.escape(text)


def _response(turn: ModelTurn) -> dict[str, Any]:
    response: dict[str, Any] = {
        "content": turn.content,
        "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in turn.tool_calls],
        "usage": turn.usage,
        "finish_reason": turn.finish_reason,
        "model": turn.model,
    }
    if turn.exhausted:
        response["exhausted"] = True
    return response


def _load(path: str) -> dict[tuple[str, int], tuple[int, dict[str, Any], ModelTurn]]:
    """Return (process, turn) -> (line number, recorded request, turn) for record file ``path``."""
    try:
        text = read_regular(path, "replay file", _HINT).decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid(f"replay file {path} is not UTF-8 text") from None
    entries = {}
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = codec.parse(line)
        except msgspec.DecodeError as err:
            if number == len(lines):  # the last line, cut short by a host killed while writing it
                continue
            raise Invalid(f"{path}:{number}: not JSON ({err})") from None
        entry = _entry(raw, f"{path}:{number}")
        entries[(entry[0], entry[1])] = (number, entry[2], entry[3])
    return entries


def _entry(raw: Any, where: str) -> tuple[str, int, dict[str, Any], ModelTurn]:
    if not isinstance(raw, dict):
        raise Invalid(f"{where}: a line must be a JSON object that --record wrote")
    process, turn, request, response = (raw.get(k) for k in ("process", "turn", "request", "response"))
    if not isinstance(process, str) or not isinstance(turn, int) or isinstance(turn, bool):
        raise Invalid(f"{where}: 'process' must be a name and 'turn' a number")
    if not isinstance(request, dict) or not isinstance(response, dict):
        raise Invalid(f"{where}: 'request' and 'response' must be objects")
    content, calls, usage = response.get("content", ""), response.get("tool_calls", []), response.get("usage", {})
    if not isinstance(content, str) or not isinstance(calls, list) or not isinstance(usage, dict):
        raise Invalid(f"{where}: the response needs a string 'content', a list 'tool_calls' and an object 'usage'")
    parsed = []
    for call in calls:
        if not (
            isinstance(call, dict) and isinstance(call.get("name"), str) and isinstance(call.get("arguments"), dict)
        ):
            raise Invalid(f"{where}: each recorded tool call needs a 'name' and an object 'arguments'")
        parsed.append(ToolCall(str(call.get("id", "")), call["name"], call["arguments"]))
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in usage.values()):
        raise Invalid(f"{where}: 'usage' must map names to whole numbers")
    finish, model = response.get("finish_reason", ""), response.get("model", "")
    return (
        process,
        turn,
        request,
        ModelTurn(
            content=content,
            tool_calls=tuple(parsed),
            exhausted=response.get("exhausted") is True,
            usage=usage,
            finish_reason=finish if isinstance(finish, str) else "",
            model=model if isinstance(model, str) else "",
        ),
    )
