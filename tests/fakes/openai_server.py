"""Answers in the OpenAI Chat Completions wire format, for the fake server (server.py).

``reply`` builds a plain answer, ``stream`` a streamed one (content pieces, tool-call deltas by
index, a usage chunk, ``data: [DONE]``). The server serves ``POST /v1/chat/completions``:
point a client at ``base_url(server)``.
"""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.server import FakeServer, Step, shared, sse

PATH = "/v1/chat/completions"
MODEL = "fake-gpt"
USAGE = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}


def server() -> FakeServer:
    """Return this process's running fake OpenAI-compatible server."""
    return shared("openai", [PATH])


def base_url(fake: FakeServer) -> str:
    return fake.url + "/v1"


def call(name: str, arguments: dict[str, Any] | str, id: str | None = None) -> dict[str, Any]:
    """A tool call as the wire carries it (arguments a JSON string)."""
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": id or f"call_{name}", "type": "function", "function": {"name": name, "arguments": text}}


def reply(
    content: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    usage: dict[str, Any] | None = None,
    finish_reason: str | None = None,
    model: str = MODEL,
) -> Step:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    finish = finish_reason or ("tool_calls" if tool_calls else "stop")
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": USAGE if usage is None else usage,
    }
    return Step(body=json.dumps(body).encode())


def chunk(delta: dict[str, Any], finish_reason: str | None = None, model: str = MODEL) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def stream(
    pieces: list[str] = (),  # type: ignore[assignment]
    tool_calls: list[dict[str, Any]] | None = None,
    usage: dict[str, Any] | None = None,
    finish_reason: str | None = None,
    gap: float = 0.0,
    drop_after: int | None = None,
    done: bool = True,
) -> Step:
    """A streamed answer: a role chunk, one chunk per text piece, each call in two deltas (id and
    name, then its arguments in two halves), a finish chunk, a usage chunk, then [DONE]."""
    events: list[Any] = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": p}) for p in pieces]
    for index, c in enumerate(tool_calls or []):
        args = c["function"]["arguments"]
        half = len(args) // 2
        head = {"index": index, "id": c["id"], "type": "function", "function": {"name": c["function"]["name"]}}
        events.append(chunk({"tool_calls": [head]}))
        for part in (args[:half], args[half:]):
            events.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]}))
    events.append(chunk({}, finish_reason or ("tool_calls" if tool_calls else "stop")))
    events.append(
        {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": MODEL, "choices": [], "usage": usage or USAGE}
    )
    if done:
        events.append("[DONE]")
    headers = {"content-type": "text/event-stream"}
    return Step(headers=headers, chunks=sse(*events), gap=gap, drop_after=drop_after)
