"""The Anthropic Messages client against a fake server over real HTTP: the translation of an
OpenAI-shaped request, prompt-cache marks, plain and streamed answers, and wire faults."""

import asyncio
from typing import Any

import pytest

from alos import limits
from alos.errors import ProviderDown
from alos.providers.anthropic import AnthropicModel
from alos.providers.base import ModelRequest
from alos.providers.calls import INVALID
from alos.types import ToolCall
from tests.fakes import anthropic_server as wire
from tests.fakes.fixtures import anthropic_server
from tests.fakes.server import FakeServer, status

__all__ = ["anthropic_server"]

KEY = "sk-ant-api03-abcdefghijklmnopqrstuvwxyz"
READ = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
TOOLS = [
    {"type": "function", "function": {"name": "fs_read", "description": "Read a file", "parameters": READ}},
    {"type": "function", "function": {"name": "proc_list"}},
]
HISTORY = [
    {"role": "system", "content": "You are an agent."},
    {"role": "system", "content": "Work in /ws."},
    {"role": "user", "content": "Read a and b."},
    {
        "role": "assistant",
        "content": "Reading both.",
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "fs_read", "arguments": '{"path": "a"}'}},
            {"id": "c2", "type": "function", "function": {"name": "fs_read", "arguments": {"path": "b"}}},
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "alpha"},
    {"role": "tool", "tool_call_id": "c2", "content": ""},
    {"role": "user", "content": "[interrupt] hurry"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c3", "type": "function", "function": {"name": "proc_list", "arguments": "oops"}}],
    },
    {"role": "tool", "tool_call_id": "c3", "content": "[]"},
    {"role": "system", "content": "Budget low."},
]


class Waits:
    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)


def ask(fake: FakeServer, waits: Waits | None = None, messages: list[dict[str, Any]] = HISTORY, **fields: Any) -> Any:
    m = AnthropicModel("claude-x", base_url=fake.url, api_key=KEY, sleep=waits or Waits())

    async def go() -> Any:
        try:
            return await m.complete(ModelRequest("main", 5, messages, TOOLS, **fields))
        finally:
            await m.aclose()

    return asyncio.run(go())


def test_the_request_is_translated_with_the_stable_prefix_marked_for_caching(anthropic_server: FakeServer) -> None:
    anthropic_server.push(wire.reply("ok"))
    ask(anthropic_server, temperature=0.0)
    seen = anthropic_server.requests[0]
    assert seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == KEY and seen.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in seen.headers
    body = seen.body
    assert body["model"] == "claude-x" and body["max_tokens"] == limits.MODEL_MAX_TOKENS and body["temperature"] == 0.0
    assert "stream" not in body and "tool_choice" not in body
    assert body["system"] == [
        {"type": "text", "text": "You are an agent."},
        {"type": "text", "text": "Work in /ws.", "cache_control": {"type": "ephemeral"}},
    ]
    assert body["tools"] == [
        {"name": "fs_read", "description": "Read a file", "input_schema": READ},
        {
            "name": "proc_list",
            "input_schema": {"type": "object", "properties": {}},
            "cache_control": {"type": "ephemeral"},
        },
    ]
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Read a and b."}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Reading both."},
                {"type": "tool_use", "id": "c1", "name": "fs_read", "input": {"path": "a"}},
                {"type": "tool_use", "id": "c2", "name": "fs_read", "input": {"path": "b"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "c1", "content": "alpha"},
                {"type": "tool_result", "tool_use_id": "c2"},
                {"type": "text", "text": "[interrupt] hurry"},
            ],
        },
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "c3", "name": "proc_list", "input": {INVALID: "oops"}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "c3", "content": "[]"},
                {"type": "text", "text": "Budget low."},  # a late system message has no place but user text
            ],
        },
    ]


def test_max_tokens_given_is_sent(anthropic_server: FakeServer) -> None:
    anthropic_server.push(wire.reply("ok"))
    ask(anthropic_server, messages=[{"role": "user", "content": "hi"}], max_tokens=77)
    body = anthropic_server.requests[0].body
    assert body["max_tokens"] == 77 and "system" not in body


def test_text_and_several_calls_come_back_in_order_with_cache_aware_usage(anthropic_server: FakeServer) -> None:
    uses = [
        wire.use("fs_read", {"path": "a"}, "t1"),
        wire.use("proc_list", {}, "t2"),
        wire.use("fs_read", {"path": "b"}, "t3"),
    ]
    anthropic_server.push(wire.reply("Let me look.", uses))
    turn = ask(anthropic_server)
    assert turn.content == "Let me look."
    assert turn.tool_calls == (
        ToolCall("t1", "fs_read", {"path": "a"}),
        ToolCall("t2", "proc_list", {}),
        ToolCall("t3", "fs_read", {"path": "b"}),
    )
    # 10 new + 100 read from the cache + 5 written to it
    assert turn.usage == {"prompt_tokens": 115, "completion_tokens": 4, "total_tokens": 119, "cached_tokens": 100}
    assert (turn.finish_reason, turn.model) == ("tool_use", "fake-claude")


def test_a_stream_passes_text_on_and_assembles_tool_input_from_json_pieces(anthropic_server: FakeServer) -> None:
    anthropic_server.push(
        wire.stream(
            ["Reading ", "now."], [wire.use("fs_read", {"path": "notes.txt"}, "t1"), wire.use("proc_list", {}, "t2")]
        )
    )
    pieces: list[str] = []
    turn = ask(anthropic_server, stream=pieces.append)
    assert pieces == ["Reading ", "now."] and turn.content == "Reading now."
    assert turn.tool_calls == (ToolCall("t1", "fs_read", {"path": "notes.txt"}), ToolCall("t2", "proc_list", {}))
    assert turn.usage == {"prompt_tokens": 115, "completion_tokens": 4, "total_tokens": 119, "cached_tokens": 100}
    assert turn.finish_reason == "tool_use" and turn.model == "fake-claude"
    assert anthropic_server.requests[0].body["stream"] is True


def test_529_overloaded_then_success_is_retried(anthropic_server: FakeServer) -> None:
    waits = Waits()
    anthropic_server.push(status(529, "Overloaded", {"retry-after": "2"}), wire.reply("ok"))
    assert ask(anthropic_server, waits).content == "ok"
    assert waits.asked == [2.0]


def test_an_overloaded_error_inside_a_stream_is_retried(anthropic_server: FakeServer) -> None:
    anthropic_server.push(
        wire.stream(["lost"], error={"type": "overloaded_error", "message": "Overloaded"}), wire.stream(["fine"])
    )
    waits = Waits()
    assert ask(anthropic_server, waits, stream=lambda _: None).content == "fine"
    assert len(waits.asked) == 1


def test_a_stream_dropped_midway_then_success(anthropic_server: FakeServer) -> None:
    anthropic_server.push(wire.stream(["a", "b", "c"], drop_after=4), wire.stream(["whole"]))
    assert ask(anthropic_server, stream=lambda _: None).content == "whole"


def test_retries_spent_name_the_server_and_the_overload(anthropic_server: FakeServer) -> None:
    anthropic_server.push(*[status(529, "Overloaded")] * (limits.MODEL_RETRIES + 1))
    with pytest.raises(ProviderDown) as err:
        ask(anthropic_server)
    assert anthropic_server.url in str(err.value) and "HTTP 529: Overloaded" in str(err.value)
    assert KEY not in str(err.value)


def test_a_refused_key_is_provider_down_at_once_saying_where_keys_are_set(anthropic_server: FakeServer) -> None:
    anthropic_server.push(status(401, "invalid x-api-key"))
    with pytest.raises(ProviderDown, match="ANTHROPIC_API_KEY") as err:
        ask(anthropic_server)
    assert "invalid x-api-key" in str(err.value) and len(anthropic_server.requests) == 1
