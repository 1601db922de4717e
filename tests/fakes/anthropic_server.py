"""Answers in the Anthropic Messages wire format, for the fake server (server.py).

``reply`` builds a plain answer, ``stream`` a streamed one (message_start, content blocks with
text_delta and input_json_delta, message_delta with usage and stop_reason, message_stop), with
``event:`` lines as Anthropic sends them. The server serves ``POST /v1/messages``: point a client
at ``server().url``.
"""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.server import FakeServer, Step, shared, sse

PATH = "/v1/messages"
MODEL = "fake-claude"
USAGE = {"input_tokens": 10, "output_tokens": 4, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 5}


def server() -> FakeServer:
    """Return this process's running fake Anthropic server."""
    return shared("anthropic", [PATH])


def use(name: str, arguments: dict[str, Any], id: str | None = None) -> dict[str, Any]:
    """A tool_use content block."""
    return {"type": "tool_use", "id": id or f"toolu_{name}", "name": name, "input": arguments}


def reply(
    text: str | None = None,
    uses: list[dict[str, Any]] | None = None,
    usage: dict[str, Any] | None = None,
    stop_reason: str | None = None,
) -> Step:
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text is not None else []
    content += uses or []
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": content,
        "stop_reason": stop_reason or ("tool_use" if uses else "end_turn"),
        "stop_sequence": None,
        "usage": USAGE if usage is None else usage,
    }
    return Step(body=json.dumps(body).encode())


def stream(
    pieces: list[str] = (),  # type: ignore[assignment]
    uses: list[dict[str, Any]] | None = None,
    stop_reason: str | None = None,
    gap: float = 0.0,
    drop_after: int | None = None,
    error: dict[str, Any] | None = None,
) -> Step:
    """A streamed answer: one text block of ``pieces``, then one tool_use block per use with its
    input in two input_json_delta halves. With ``error``, an error event follows message_start."""
    start_usage = {k: v for k, v in USAGE.items() if k != "output_tokens"} | {"output_tokens": 1}
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [],
        "usage": start_usage,
    }
    events: list[Any] = [{"type": "message_start", "message": message}, {"type": "ping"}]
    if error is not None:
        events.append({"type": "error", "error": error})
    index = 0
    if pieces:
        events.append({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
        events += [
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}} for p in pieces
        ]
        events.append({"type": "content_block_stop", "index": 0})
        index = 1
    for u in uses or []:
        block = {"type": "tool_use", "id": u["id"], "name": u["name"], "input": {}}
        events.append({"type": "content_block_start", "index": index, "content_block": block})
        text = json.dumps(u["input"])
        for part in (text[: len(text) // 2], text[len(text) // 2 :]):
            delta = {"type": "input_json_delta", "partial_json": part}
            events.append({"type": "content_block_delta", "index": index, "delta": delta})
        events.append({"type": "content_block_stop", "index": index})
        index += 1
    stop = stop_reason or ("tool_use" if uses else "end_turn")
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": USAGE["output_tokens"]},
        }
    )
    events.append({"type": "message_stop"})
    headers = {"content-type": "text/event-stream"}
    return Step(headers=headers, chunks=sse(*events, event_names=True), gap=gap, drop_after=drop_after)
