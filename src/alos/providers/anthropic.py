"""A model client for the Anthropic Messages API (``POST {base_url}/v1/messages``).

It translates the OpenAI-shaped request: leading system messages become the top-level ``system``
(a later one, which Messages has no place for, becomes user text), tools become
``{name, description, input_schema}``, assistant tool calls ``tool_use`` blocks and tool messages
``tool_result`` blocks; consecutive messages of one role are merged into one. The stable prefix
(system prompt, tools) is marked for prompt caching. Constrained decoding is not offered by this
API: ModelRequest.constrain is ignored. Retries and errors are http.Transport's (529 included);
a call's arguments that are not an object come back as ``{"__invalid__": ...}`` (calls.INVALID).
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
from alos.providers.calls import arguments, tool_calls
from alos.providers.http import Malformed, Reply, Sleep, Transport
from alos.types import ModelTurn

VERSION = "2023-06-01"  # the anthropic-version header: the wire format this module speaks
KEY_HINT = "set it with --api-key, ANTHROPIC_API_KEY, or api_key / api_key_env in the [anthropic] table of config.toml"
CACHED = {"type": "ephemeral"}  # cache_control on the last block of the stable prefix


class AnthropicModel:
    """Calls one Claude model through the Messages API."""

    remote = True  # a server may spend tokens a host killed during the call never learns of

    def __init__(
        self,
        model: str,
        *,
        base_url: str = config.ANTHROPIC_BASE_URL,
        api_key: str | None = None,
        timeout: float = limits.MODEL_TIMEOUT_SECONDS,
        retries: int = limits.MODEL_RETRIES,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.model = model
        headers = {"content-type": "application/json", "anthropic-version": VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        self.transport = Transport(
            base_url, headers, key=api_key or None, key_hint=KEY_HINT, timeout=timeout, retries=retries, sleep=sleep
        )

    def __repr__(self) -> str:
        return f"AnthropicModel({self.model!r}, base_url={self.transport.base_url!r})"

    async def complete(self, request: ModelRequest) -> ModelTurn:
        """Return the model's next turn. Raises ProviderDown when the server cannot answer (retries
        spent, a refused key or request) and Invalid for a reply over a limit."""
        body = request_body(self.model, request)
        on_text = request.stream
        if on_text is None:
            return await self.transport.post("/v1/messages", body, lambda reply: _plain(reply, request))
        return await self.transport.post("/v1/messages", body, lambda reply: _streamed(reply, request, on_text))

    async def aclose(self) -> None:
        """Close the connections to the server."""
        await self.transport.aclose()


def request_body(model: str, request: ModelRequest) -> dict[str, Any]:
    """Return the Messages API body for ``request``."""
    system, messages = translate(request.messages)
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": request.max_tokens or limits.MODEL_MAX_TOKENS,
        "messages": messages,
    }
    if system:
        system[-1]["cache_control"] = CACHED
        body["system"] = system
    if request.tools:
        tools = [_tool(t) for t in request.tools]
        tools[-1]["cache_control"] = CACHED
        body["tools"] = tools
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.stream is not None:
        body["stream"] = True
    return body


def translate(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Return (system blocks, messages) in the Messages shape for OpenAI-shaped ``messages``."""
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        content = message.get("content")
        if role == "system" and not out:
            system.extend(_texts(content))
            continue
        if role == "tool":
            role, blocks = "user", [_result(message)]
        elif role == "assistant":
            blocks = _texts(content) + [_use(c) for c in message.get("tool_calls") or [] if isinstance(c, dict)]
        else:
            role, blocks = "user", _texts(content)
        if not blocks:  # Messages refuses empty text; a turn with nothing in it says nothing
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return system, out


def _texts(content: Any) -> list[dict[str, Any]]:
    """Return text blocks for OpenAI message content (a string or a list of parts)."""
    parts = content if isinstance(content, list) else [{"type": "text", "text": content}]
    texts = [p.get("text") for p in parts if isinstance(p, dict) and p.get("type") == "text"]
    return [{"type": "text", "text": t} for t in texts if isinstance(t, str) and t.strip()]


def _use(call: dict[str, Any]) -> dict[str, Any]:
    function = _object(call.get("function"))
    return {
        "type": "tool_use",
        "id": str(call.get("id", "")),
        "name": str(function.get("name", "")),
        "input": arguments(function.get("arguments")),
    }


def _result(message: dict[str, Any]) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": str(message.get("tool_call_id", ""))}
    text = "".join(b["text"] for b in _texts(message.get("content")))
    if text:
        block["content"] = text
    return block


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    function = _object(tool.get("function"))
    out: dict[str, Any] = {"name": function.get("name", "")}
    if function.get("description"):
        out["description"] = function["description"]
    out["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
    return out


async def _plain(reply: Reply, request: ModelRequest) -> ModelTurn:
    value = await reply.json()
    if not isinstance(value, dict) or not isinstance(value.get("content"), list):
        raise Malformed("no content list in the reply")
    texts, calls = [], []
    for raw in value["content"]:
        block = _object(raw)
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif block.get("type") == "tool_use":
            calls.append((block.get("id"), block.get("name"), block.get("input")))
    return _turn(request, "".join(texts), calls, value.get("stop_reason"), value.get("model"), value.get("usage"))


async def _streamed(reply: Reply, request: ModelRequest, on_text: Callable[[str], None]) -> ModelTurn:
    stream = _Stream(on_text)
    async with aclosing(reply.events()) as events:
        async for event in events:
            if stream.take(_event(event.data)):
                break
    if not stream.stopped and not stream.stop_reason:
        raise Malformed("the stream ended before message_stop")
    texts = ["".join(b["text"]) for _, b in sorted(stream.blocks.items()) if b["type"] == "text"]
    calls = [
        (b["id"], b["name"], "".join(b["json"]) or b["input"])
        for _, b in sorted(stream.blocks.items())
        if b["type"] == "tool_use"
    ]
    return _turn(request, "".join(texts), calls, stream.stop_reason, stream.model, stream.usage)


def _event(data: str) -> dict[str, Any]:
    try:
        event = codec.parse(data)
    except msgspec.DecodeError as err:
        raise Malformed(f"a stream event is not JSON ({err})") from None
    if not isinstance(event, dict):
        raise Malformed("a stream event is not a JSON object")
    if event.get("type") == "error":  # e.g. overloaded_error after the stream began
        error = _object(event.get("error"))
        raise Malformed(f"the server sent an error in the stream: {error.get('type')}: {error.get('message')}")
    return event


class _Stream:
    """What a streamed reply has said so far: content blocks by index, usage, stop reason."""

    def __init__(self, on_text: Callable[[str], None]) -> None:
        self.on_text = on_text
        self.blocks: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] = {}
        self.model: Any = None
        self.stop_reason: Any = None
        self.stopped = False
        self.uses = 0  # tool_use blocks started

    def take(self, event: dict[str, Any]) -> bool:
        """Add one event; return whether it ends the message."""
        kind = event.get("type")
        if kind == "message_start":
            message = _object(event.get("message"))
            self.model = message.get("model")
            self.usage.update(_object(message.get("usage")))
        elif kind == "content_block_start":
            self._start(event.get("index"), _object(event.get("content_block")))
        elif kind == "content_block_delta":
            self._delta(self._block(event.get("index")), _object(event.get("delta")))
        elif kind == "message_delta":
            self.stop_reason = _object(event.get("delta")).get("stop_reason") or self.stop_reason
            self.usage.update(_object(event.get("usage")))
        elif kind == "message_stop":
            self.stopped = True
        return self.stopped

    def _start(self, index: Any, block: dict[str, Any]) -> None:
        if not isinstance(index, int) or index in self.blocks:
            raise Malformed("a content block starts with an index that is not new")
        kind = block.get("type")
        if kind == "tool_use":
            self.uses += 1
            if self.uses > limits.MODEL_TURN_MAX_CALLS:
                raise Invalid(f"the model made more than {limits.MODEL_TURN_MAX_CALLS} tool calls in one turn")
        text = block.get("text") if isinstance(block.get("text"), str) else ""
        self.blocks[index] = {
            "type": kind,
            "text": [],
            "json": [],
            "id": block.get("id"),
            "name": block.get("name"),
            "input": block.get("input"),
        }
        if text:
            self._delta(self.blocks[index], {"type": "text_delta", "text": text})

    def _block(self, index: Any) -> dict[str, Any]:
        block = self.blocks.get(index) if isinstance(index, int) else None
        if block is None:
            raise Malformed("a content block delta names no started block")
        return block

    def _delta(self, block: dict[str, Any], delta: dict[str, Any]) -> None:
        kind = delta.get("type")
        if kind == "text_delta" and isinstance(delta.get("text"), str) and block["type"] == "text":
            block["text"].append(delta["text"])
            self.on_text(delta["text"])
        elif kind == "input_json_delta" and isinstance(delta.get("partial_json"), str):
            block["json"].append(delta["partial_json"])


def _turn(
    request: ModelRequest, text: str, raw_calls: list[tuple[Any, Any, Any]], stop: Any, model: Any, usage: Any
) -> ModelTurn:
    return ModelTurn(
        content=text,
        tool_calls=tool_calls(raw_calls, request.turn),
        usage=token_usage(usage),
        finish_reason=stop if isinstance(stop, str) else "",
        model=model if isinstance(model, str) else "",
    )


def token_usage(raw: Any) -> dict[str, int]:
    """Return alos's token counts for an Anthropic ``usage``: every prompt token, cached or not, in
    prompt_tokens; those read from the cache also in cached_tokens."""
    raw = _object(raw)
    counts = {k: v for k, v in raw.items() if isinstance(v, int) and not isinstance(v, bool) and v >= 0}
    if not counts:
        return {}
    read = counts.get("cache_read_input_tokens", 0)
    prompt = counts.get("input_tokens", 0) + read + counts.get("cache_creation_input_tokens", 0)
    completion = counts.get("output_tokens", 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cached_tokens": read,
    }


def _object(value: Any) -> dict[str, Any]:
    """Return ``value`` when it is a JSON object, else an empty one (a hostile server sends anything)."""
    return value if isinstance(value, dict) else {}
