"""A model client for OpenAI-compatible Chat Completions (OpenAI, llama.cpp, Ollama, vLLM, LM Studio).

``POST {base_url}/chat/completions`` with the request's messages and tools as given (they are
already in OpenAI's shape), streamed when the request has a stream callback. Tool calls come back
in order; a call whose arguments are not a JSON object comes back with arguments
``{"__invalid__": "<raw text, cut short>"}`` for the agent loop to repair (calls.INVALID). A reply
with no tool calls whose text is exactly one call of a declared tool is taken as that call
(calls.call_in_text: small local models answer so). Retries and errors are http.Transport's: a
retried stream calls the callback again from its start. Holds no policy; never logs the key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import aclosing
from typing import Any

import msgspec

from alos import codec, config, limits
from alos.errors import Invalid
from alos.providers.base import ModelRequest
from alos.providers.calls import call_in_text, constrained_format, tool_calls, tool_names
from alos.providers.http import Malformed, Reply, Sleep, Transport
from alos.types import ModelTurn, ToolCall

KEY_HINT = "set it with --api-key, OPENAI_API_KEY, or api_key / api_key_env in the [openai] table of config.toml"

_USAGE = ("prompt_tokens", "completion_tokens", "total_tokens")


class OpenAIModel:
    """Calls one model on one OpenAI-compatible server."""

    remote = True  # a server may spend tokens a host killed during the call never learns of

    def __init__(
        self,
        model: str,
        *,
        base_url: str = config.OPENAI_BASE_URL,
        api_key: str | None = None,
        constrain: bool = False,
        timeout: float = limits.MODEL_TIMEOUT_SECONDS,
        retries: int = limits.MODEL_RETRIES,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        """``constrain`` constrains every request, as if each asked to (ModelRequest.constrain)."""
        self.model = model
        self.constrain = constrain
        headers = {"content-type": "application/json"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        self.transport = Transport(
            base_url, headers, key=api_key or None, key_hint=KEY_HINT, timeout=timeout, retries=retries, sleep=sleep
        )

    def __repr__(self) -> str:
        return f"OpenAIModel({self.model!r}, base_url={self.transport.base_url!r})"

    async def complete(self, request: ModelRequest) -> ModelTurn:
        """Return the model's next turn. Raises ProviderDown when the server cannot answer (retries
        spent, a refused key or request) and Invalid for a reply over a limit."""
        body = request_body(self.model, request, constrain=self.constrain or request.constrain)
        on_text = request.stream
        if on_text is None:
            return await self.transport.post("/chat/completions", body, lambda reply: _plain(reply, request))
        return await self.transport.post("/chat/completions", body, lambda reply: _streamed(reply, request, on_text))

    async def aclose(self) -> None:
        """Close the connections to the server."""
        await self.transport.aclose()


def request_body(model: str, request: ModelRequest, *, constrain: bool) -> dict[str, Any]:
    """Return the Chat Completions body for ``request`` (no tool_choice: small models misuse it)."""
    body: dict[str, Any] = {"model": model, "messages": [_outgoing(m) for m in request.messages]}
    if request.tools:
        body["tools"] = request.tools
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if constrain and request.tools:
        body["response_format"] = constrained_format(request.tools)
    if request.stream is not None:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _outgoing(message: dict[str, Any]) -> dict[str, Any]:
    """Return ``message`` as servers take it: an assistant turn with calls has content "" (llama.cpp
    answers 500 to null) and each call's arguments as a JSON string."""
    calls = message.get("tool_calls")
    if message.get("role") != "assistant" or not calls:
        return message
    if isinstance(message.get("content"), str) and all(_sendable(c) for c in calls):
        return message  # already as servers take it (the agent loop sends it so)
    wire = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and not isinstance(function.get("arguments"), str):
            function = {**function, "arguments": codec.dumps(function.get("arguments") or {})}
            wire.append({**call, "function": function})
        else:
            wire.append(call)
    return {**message, "content": message.get("content") or "", "tool_calls": wire}


def _sendable(call: Any) -> bool:
    function = call.get("function") if isinstance(call, dict) else None
    return isinstance(function, dict) and isinstance(function.get("arguments"), str)


async def _plain(reply: Reply, request: ModelRequest) -> ModelTurn:
    value = await reply.json()
    choices = value.get("choices") if isinstance(value, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise Malformed("no choices in the reply")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise Malformed("no message in the reply's first choice")
    content = message.get("content")
    raw_calls = message.get("tool_calls") or []
    if not isinstance(raw_calls, list) or not all(isinstance(c, dict) for c in raw_calls):
        raise Malformed("tool_calls is not a list of objects")
    calls = []
    for raw in raw_calls:
        function = _object(raw.get("function"))
        calls.append((raw.get("id"), function.get("name"), function.get("arguments")))
    return _turn(request, content, calls, choices[0].get("finish_reason"), value.get("model"), value.get("usage"))


async def _streamed(reply: Reply, request: ModelRequest, on_text: Callable[[str], None]) -> ModelTurn:
    if "text/event-stream" not in reply.response.headers.get("content-type", ""):
        turn = await _plain(reply, request)  # a server that does not stream answers whole
        if turn.content:
            on_text(turn.content)
        return turn
    stream, done = _Stream(on_text), False
    async with aclosing(reply.events()) as events:
        async for event in events:
            if event.data.strip() == "[DONE]":
                done = True
                break
            stream.take(_chunk(event.data))
    if not done and not stream.finish:
        raise Malformed("the stream ended before the reply did")
    ordered = [tuple(stream.calls[i]) for i in sorted(stream.calls)]
    return _turn(request, "".join(stream.text), ordered, stream.finish, stream.model, stream.usage)


class _Stream:
    """What a streamed reply has said so far."""

    def __init__(self, on_text: Callable[[str], None]) -> None:
        self.on_text = on_text
        self.text: list[str] = []
        self.calls: dict[int, list[Any]] = {}  # index -> [id, name, arguments text]
        self.finish: Any = None
        self.model: Any = None
        self.usage: Any = None

    def take(self, chunk: dict[str, Any]) -> None:
        """Add one chunk: its text (passed on at once), call pieces, finish reason, model, usage."""
        self.model = chunk.get("model") or self.model
        self.usage = chunk.get("usage") or self.usage
        choices = chunk.get("choices") or []
        choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
        delta = _object(choice.get("delta"))
        piece = delta.get("content")
        if isinstance(piece, str) and piece:
            self.text.append(piece)
            self.on_text(piece)
        deltas = delta.get("tool_calls") or []
        for position, part in enumerate(deltas if isinstance(deltas, list) else []):
            if isinstance(part, dict):
                self._merge(position, part)
        self.finish = choice.get("finish_reason") or self.finish

    def _merge(self, position: int, part: dict[str, Any]) -> None:
        """Add a tool-call delta to the call at its index (names and arguments come in pieces)."""
        index = part.get("index", position)
        if not isinstance(index, int) or isinstance(index, bool):
            raise Malformed("a streamed tool call has an index that is not a number")
        if index not in self.calls and len(self.calls) >= limits.MODEL_TURN_MAX_CALLS:
            raise Invalid(f"the model made more than {limits.MODEL_TURN_MAX_CALLS} tool calls in one turn")
        call = self.calls.setdefault(index, [None, "", ""])
        if isinstance(part.get("id"), str) and not call[0]:
            call[0] = part["id"]
        function = _object(part.get("function"))
        for slot, key in ((1, "name"), (2, "arguments")):
            if isinstance(function.get(key), str):
                call[slot] += function[key]


def _chunk(data: str) -> dict[str, Any]:
    try:
        chunk = codec.parse(data)
    except msgspec.DecodeError as err:
        raise Malformed(f"a stream event is not JSON ({err})") from None
    if not isinstance(chunk, dict):
        raise Malformed("a stream event is not a JSON object")
    error = chunk.get("error")
    if error is not None:
        message = error.get("message") if isinstance(error, dict) else error
        raise Malformed(f"the server sent an error in the stream: {message}")
    return chunk


def _turn(
    request: ModelRequest, content: Any, raw_calls: list[tuple[Any, ...]], finish: Any, model: Any, usage: Any
) -> ModelTurn:
    """Return the ModelTurn of a reply's parts; a text that is one declared call becomes that call."""
    text = content if isinstance(content, str) else ""
    calls = tool_calls(raw_calls, request.turn)
    if not calls and text:
        found = call_in_text(text, tool_names(request.tools))
        if found is not None:
            calls, text = (ToolCall(f"call_{request.turn}_0", found[0], found[1]),), ""
    return ModelTurn(
        content=text,
        tool_calls=calls,
        usage=token_usage(usage),
        finish_reason=finish if isinstance(finish, str) else "",
        model=model if isinstance(model, str) else "",
    )


def token_usage(raw: Any) -> dict[str, int]:
    """Return the token counts of an OpenAI ``usage`` object, cached prompt tokens as cached_tokens."""
    if not isinstance(raw, dict):
        return {}
    usage = {key: raw[key] for key in _USAGE if _count(raw.get(key))}
    details = raw.get("prompt_tokens_details")
    if isinstance(details, dict) and _count(details.get("cached_tokens")):
        usage["cached_tokens"] = details["cached_tokens"]
    return usage


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _object(value: Any) -> dict[str, Any]:
    """Return ``value`` when it is a JSON object, else an empty one (a hostile server sends anything)."""
    return value if isinstance(value, dict) else {}
