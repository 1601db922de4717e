"""The OpenAI-compatible client against a fake server over real HTTP: what it sends, what it makes of
every answer, and every wire fault (statuses, Retry-After, bad JSON, slow answers, dropped
connections, cancellation)."""

import asyncio
import email.utils
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from alos import limits
from alos.errors import Invalid, ProviderDown
from alos.providers.base import ModelRequest
from alos.providers.calls import INVALID
from alos.providers.http import backoff, retry_after
from alos.providers.openai import OpenAIModel
from alos.types import ToolCall
from tests.fakes import openai_server as wire
from tests.fakes.fixtures import openai_server
from tests.fakes.server import FakeServer, Step, malformed, status

__all__ = ["openai_server"]

KEY = "sk-test-0123456789abcdefghij"
USER = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Read notes.txt"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "fs_read",
            "description": "Read a file",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
        },
    },
    {"type": "function", "function": {"name": "fs_list", "parameters": {"type": "object", "properties": {}}}},
]


class Waits:
    """The sleep between retries: records what the client asked to wait, and returns at once."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)


def model(fake: FakeServer, waits: Waits | None = None, **options: Any) -> OpenAIModel:
    return OpenAIModel("qwen", base_url=wire.base_url(fake), api_key=KEY, sleep=waits or Waits(), **options)


def ask(m: OpenAIModel, request: ModelRequest | None = None, **fields: Any) -> Any:
    async def go() -> Any:
        try:
            return await m.complete(request or ModelRequest("main", 3, USER, TOOLS, **fields))
        finally:
            await m.aclose()

    return asyncio.run(go())


def test_several_calls_come_back_in_order_with_usage_finish_reason_and_model(openai_server: FakeServer) -> None:
    usage = {
        "prompt_tokens": 50,
        "completion_tokens": 7,
        "total_tokens": 57,
        "prompt_tokens_details": {"cached_tokens": 32},
    }
    calls = [
        wire.call("fs_read", {"path": "a"}, "c1"),
        wire.call("fs_list", {}, "c2"),
        wire.call("fs_read", {"path": "b"}, "c3"),
    ]
    openai_server.push(wire.reply(None, calls, usage=usage))
    turn = ask(model(openai_server))
    assert turn.tool_calls == (
        ToolCall("c1", "fs_read", {"path": "a"}),
        ToolCall("c2", "fs_list", {}),
        ToolCall("c3", "fs_read", {"path": "b"}),
    )
    assert turn.content == ""
    assert turn.usage == {"prompt_tokens": 50, "completion_tokens": 7, "total_tokens": 57, "cached_tokens": 32}
    assert (turn.finish_reason, turn.model) == ("tool_calls", "fake-gpt")


def test_the_request_is_sent_as_given_with_the_key_as_a_bearer_and_no_tool_choice(openai_server: FakeServer) -> None:
    openai_server.push(wire.reply("hello"))
    ask(model(openai_server), max_tokens=200, temperature=0.0)
    seen = openai_server.requests[0]
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    assert seen.body == {"model": "qwen", "messages": USER, "tools": TOOLS, "max_tokens": 200, "temperature": 0.0}


def test_without_a_key_no_authorization_is_sent_and_without_tools_none_are(openai_server: FakeServer) -> None:
    openai_server.push(wire.reply("hello"))
    m = OpenAIModel("qwen", base_url=wire.base_url(openai_server))
    assert ask(m, ModelRequest("main", 0, USER, [])).content == "hello"
    seen = openai_server.requests[0]
    assert "authorization" not in seen.headers
    assert "tools" not in seen.body and "max_tokens" not in seen.body and "temperature" not in seen.body


def test_an_assistant_turn_with_calls_goes_out_with_content_empty_never_null(openai_server: FakeServer) -> None:
    history = [
        *USER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "fs_read", "arguments": {"path": "a"}}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "hello"},
        {
            "role": "assistant",
            "tool_calls": [{"id": "c2", "type": "function", "function": {"name": "fs_list", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c2", "content": "[]"},
    ]
    openai_server.push(wire.reply("done"))
    ask(model(openai_server), ModelRequest("main", 2, history, TOOLS))
    sent = openai_server.requests[0].body["messages"]
    assert sent[2]["content"] == "" and sent[4]["content"] == ""
    assert sent[2]["tool_calls"][0]["function"]["arguments"] == '{"path":"a"}'
    assert sent[4]["tool_calls"][0]["function"]["arguments"] == "{}"
    assert history[2]["content"] is None  # the caller's messages are not changed


def test_arguments_that_are_not_an_object_come_back_as_an_invalid_call(openai_server: FakeServer) -> None:
    openai_server.push(wire.reply(None, [wire.call("fs_read", '{"path": "a"'), wire.call("fs_list", "[]")]))
    turn = ask(model(openai_server))
    assert [c.arguments for c in turn.tool_calls] == [{INVALID: '{"path": "a"'}, {INVALID: "[]"}]


@pytest.mark.parametrize(
    "content",
    [
        '{"name": "fs_read", "arguments": {"path": "notes.txt"}}',
        '```json\n{"name": "fs_read", "arguments": {"path": "notes.txt"}}\n```',
        '<tool_call>\n{"name": "fs_read", "arguments": {"path": "notes.txt"}}\n</tool_call>',
    ],
)
def test_a_small_model_writing_one_call_as_text_makes_that_call(openai_server: FakeServer, content: str) -> None:
    openai_server.push(wire.reply(content))
    turn = ask(model(openai_server))
    assert turn.tool_calls == (ToolCall("call_3_0", "fs_read", {"path": "notes.txt"}),)
    assert turn.content == ""


def test_text_that_is_not_exactly_one_declared_call_stays_text(openai_server: FakeServer) -> None:
    two = '{"name": "fs_read", "arguments": {"path": "a"}}\n{"name": "fs_read", "arguments": {"path": "b"}}'
    undeclared = '{"name": "shell_run", "arguments": {"cmd": "ls"}}'
    openai_server.push(wire.reply(two), wire.reply(undeclared))
    assert ask(model(openai_server)).tool_calls == ()
    turn = ask(model(openai_server))
    assert (turn.content, turn.tool_calls) == (undeclared, ())


def test_an_empty_reply_is_an_empty_turn(openai_server: FakeServer) -> None:
    openai_server.push(wire.reply(None, usage={}))
    turn = ask(model(openai_server))
    assert (turn.content, turn.tool_calls, turn.usage) == ("", (), {})


def test_a_constrained_request_sends_the_one_call_schema(openai_server: FakeServer) -> None:
    openai_server.push(wire.reply('{"name": "fs_list", "arguments": {}}'), wire.reply("x"))
    turn = ask(model(openai_server), constrain=True)
    assert turn.tool_calls == (ToolCall("call_3_0", "fs_list", {}),)
    fmt = openai_server.requests[0].body["response_format"]
    assert fmt["type"] == "json_object"
    assert [c["properties"]["name"]["const"] for c in fmt["schema"]["oneOf"]] == ["fs_read", "fs_list"]
    assert fmt["schema"]["oneOf"][0]["properties"]["arguments"] == TOOLS[0]["function"]["parameters"]
    ask(model(openai_server, constrain=True))  # constrained by its settings, whatever the request says
    assert "response_format" in openai_server.requests[1].body


def test_a_stream_passes_each_piece_on_and_assembles_calls_by_index(openai_server: FakeServer) -> None:
    calls = [wire.call("fs_read", {"path": "notes.txt"}, "c1"), wire.call("fs_list", {"deep": True}, "c2")]
    openai_server.push(wire.stream(["I will ", "read ", "it."], calls))
    pieces: list[str] = []
    turn = ask(model(openai_server), stream=pieces.append)
    assert pieces == ["I will ", "read ", "it."]
    assert turn.content == "I will read it."
    assert turn.tool_calls == (
        ToolCall("c1", "fs_read", {"path": "notes.txt"}),
        ToolCall("c2", "fs_list", {"deep": True}),
    )
    assert turn.usage == wire.USAGE and turn.finish_reason == "tool_calls" and turn.model == "fake-gpt"
    body = openai_server.requests[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_a_429_waits_as_long_as_retry_after_asks(openai_server: FakeServer) -> None:
    waits = Waits()
    openai_server.push(status(429, "slow down", {"retry-after": "7"}), wire.reply("ok"))
    assert ask(model(openai_server, waits)).content == "ok"
    assert waits.asked == [7.0]
    assert len(openai_server.requests) == 2


def test_retry_after_as_a_date_in_milliseconds_or_too_long_is_honoured_up_to_the_cap() -> None:
    now = 1_700_000_000.0
    assert retry_after({"retry-after": email.utils.formatdate(now + 12, usegmt=True)}, now) == 12.0
    assert retry_after({"retry-after": email.utils.formatdate(now - 60, usegmt=True)}, now) == 0.0
    assert retry_after({"retry-after-ms": "1500", "retry-after": "9"}, now) == 1.5
    assert retry_after({"retry-after": "86400"}, now) == limits.MODEL_BACKOFF_MAX_SECONDS
    assert retry_after({"retry-after": "soon"}, now) is None
    assert retry_after({"retry-after": "nan"}, now) is None
    assert retry_after({}, now) is None


def test_backoff_is_full_jitter_under_a_doubling_cap() -> None:
    for attempt in range(8):
        cap = min(limits.MODEL_BACKOFF_MAX_SECONDS, limits.MODEL_BACKOFF_SECONDS * 2**attempt)
        assert all(0 <= backoff(attempt) <= cap for _ in range(50))


def test_a_500_then_success_retries_once_after_a_backoff(openai_server: FakeServer) -> None:
    waits = Waits()
    openai_server.push(status(500, "boom"), wire.reply("ok"))
    assert ask(model(openai_server, waits)).content == "ok"
    assert len(waits.asked) == 1 and 0 <= waits.asked[0] <= limits.MODEL_BACKOFF_SECONDS


def test_malformed_json_then_success_is_retried(openai_server: FakeServer) -> None:
    waits = Waits()
    openai_server.push(malformed(), Step(body=b'{"choices": []}'), wire.reply("ok"))
    assert ask(model(openai_server, waits)).content == "ok"
    assert len(waits.asked) == 2


def test_spent_retries_raise_provider_down_naming_the_server_and_status_never_the_key(
    openai_server: FakeServer,
) -> None:
    waits = Waits()
    openai_server.push(*[status(503, "the model is loading")] * (limits.MODEL_RETRIES + 1))
    with pytest.raises(ProviderDown) as err:
        ask(model(openai_server, waits))
    text = str(err.value)
    assert wire.base_url(openai_server) in text and "HTTP 503" in text and "the model is loading" in text
    assert f"{limits.MODEL_RETRIES + 1} times" in text and KEY not in text
    assert len(openai_server.requests) == limits.MODEL_RETRIES + 1 and len(waits.asked) == limits.MODEL_RETRIES
    for attempt, asked in enumerate(waits.asked):
        assert 0 <= asked <= limits.MODEL_BACKOFF_SECONDS * 2**attempt


@pytest.mark.parametrize(
    ("code", "words"),
    [(401, "OPENAI_API_KEY"), (403, "API key was refused"), (404, "model name"), (400, "refused the request")],
)
def test_a_refused_key_model_or_request_raises_at_once(openai_server: FakeServer, code: int, words: str) -> None:
    waits = Waits()
    openai_server.push(status(code, "Incorrect API key provided: sk-...ghij"), wire.reply("never"))
    with pytest.raises(ProviderDown) as err:
        ask(model(openai_server, waits))
    assert words in str(err.value) and f"HTTP {code}" in str(err.value) and "Incorrect API key" in str(err.value)
    assert len(openai_server.requests) == 1 and waits.asked == []


def test_a_key_the_server_echoes_is_never_shown_and_a_missing_key_is_named(openai_server: FakeServer) -> None:
    openai_server.push(status(401, f"bad key {KEY}!"), status(503, f"{KEY}"), status(401, "key required"))
    with pytest.raises(ProviderDown) as err:
        ask(model(openai_server))
    assert KEY not in str(err.value) and "bad key [redacted]!" in str(err.value)
    with pytest.raises(ProviderDown) as err:
        ask(model(openai_server, retries=0))
    assert KEY not in str(err.value) and "HTTP 503: [redacted]" in str(err.value)
    with pytest.raises(ProviderDown, match="wants an API key and none is set: set it with --api-key, OPENAI_API_KEY"):
        ask(OpenAIModel("qwen", base_url=wire.base_url(openai_server)))


def test_a_hostile_error_message_is_escaped_and_cut(openai_server: FakeServer) -> None:
    openai_server.push(status(400, "\x1b[2J\x1b[31mpwned\u202e" + "A" * 5000))
    with pytest.raises(ProviderDown) as err:
        ask(model(openai_server))
    text = str(err.value)
    assert "\x1b" not in text and "\u202e" not in text and "\\x1b[31mpwned" in text
    assert len(text) < limits.PREVIEW_CHARS + 400


def test_a_slow_answer_past_the_timeout_is_retried(openai_server: FakeServer) -> None:
    waits = Waits()
    openai_server.push(Step(body=wire.reply("late").body, delay=2.0), wire.reply("on time"))
    assert ask(model(openai_server, waits, timeout=0.3)).content == "on time"
    assert len(waits.asked) == 1 and len(openai_server.requests) == 2
    openai_server.push(*[Step(body=b"{}", delay=2.0)] * 2)
    with pytest.raises(ProviderDown, match="no complete answer within 0.2 s"):
        ask(model(openai_server, waits, timeout=0.2, retries=1))


def test_a_connection_dropped_mid_stream_is_retried(openai_server: FakeServer) -> None:
    openai_server.push(wire.stream(["one ", "two ", "three"], drop_after=3), wire.stream(["again"]))
    pieces: list[str] = []
    turn = ask(model(openai_server), stream=pieces.append)
    assert turn.content == "again"
    assert pieces == ["one ", "two ", "again"]  # a retried stream starts over: the callback sees both
    assert len(openai_server.requests) == 2


def test_a_connection_dropped_mid_body_or_a_stream_cut_short_is_retried(openai_server: FakeServer) -> None:
    cut = wire.stream(["cut"], done=False)
    cut.chunks = cut.chunks[:2]  # no finish reason, no [DONE], but a clean end
    openai_server.push(Step(body=wire.reply("lost").body, drop_after=0), cut, wire.reply("ok"))
    waits = Waits()
    assert ask(model(openai_server, waits)).content == "ok"
    assert len(waits.asked) == 2


def test_an_error_inside_a_stream_is_retried(openai_server: FakeServer) -> None:
    broken = Step(
        headers={"content-type": "text/event-stream"}, chunks=[b'data: {"error": {"message": "overloaded"}}\n\n']
    )
    openai_server.push(broken, wire.stream(["fine"]))
    assert ask(model(openai_server), stream=lambda _: None).content == "fine"


def test_a_server_nobody_listens_on_is_provider_down_naming_it() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    m = OpenAIModel("qwen", base_url=f"http://127.0.0.1:{port}/v1", sleep=Waits(), retries=1)
    with pytest.raises(ProviderDown, match=f"127.0.0.1:{port}/v1 failed 2 times.*connection failed"):
        ask(m)


@pytest.mark.parametrize("url", ["localhost:8080/v1", "ftp://127.0.0.1/v1", "http://[::1/v1"])
def test_a_base_url_that_is_not_http_is_provider_down_at_once(url: str) -> None:
    waits = Waits()
    with pytest.raises(ProviderDown, match="fix base_url"):
        ask(OpenAIModel("qwen", base_url=url, sleep=waits))
    assert waits.asked == []


def test_a_reply_over_the_size_limit_is_invalid_not_retried(openai_server: FakeServer) -> None:
    openai_server.push(Step(body=b" " * (limits.MODEL_REPLY_MAX_BYTES + 1)))
    with pytest.raises(Invalid, match="more than"):
        ask(model(openai_server))
    assert len(openai_server.requests) == 1


def test_cancelling_mid_stream_closes_the_request(openai_server: FakeServer) -> None:
    openai_server.push(wire.stream(["first ", "second ", "third"], gap=0.3))
    pieces: list[str] = []
    m = model(openai_server)

    async def go() -> None:
        task = asyncio.create_task(m.complete(ModelRequest("main", 0, USER, TOOLS, stream=pieces.append)))
        while not pieces:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await m.aclose()

    asyncio.run(go())
    assert openai_server.wait_disconnect(5), "the server never saw the client hang up"
    assert pieces[0] == "first " and "third" not in pieces


def test_one_model_serves_calls_from_more_than_one_event_loop(openai_server: FakeServer) -> None:
    m = model(openai_server)
    openai_server.push(wire.reply("one"), wire.reply("two"))
    assert asyncio.run(m.complete(ModelRequest("main", 0, USER, []))).content == "one"
    assert asyncio.run(m.complete(ModelRequest("main", 1, USER, []))).content == "two"


def test_httpx_is_imported_only_when_an_http_model_is_opened() -> None:
    code = (
        "import sys, contextlib, io; import alos.providers.model as m; from alos.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n    main(['--help'])\n"
        "before = 'httpx' in sys.modules; m.open_model('openai:x', None)\n"
        "print(before, 'httpx' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split()[-2:] == ["False", "True"], out.stderr


def test_a_cli_in_another_process_reaches_the_fake_through_openai_base_url(
    openai_server: FakeServer, tmp_path: Path
) -> None:
    openai_server.push(wire.reply("ok"))
    env = {
        **os.environ,
        "OPENAI_BASE_URL": wire.base_url(openai_server),
        "OPENAI_API_KEY": KEY,
        "XDG_CONFIG_HOME": str(tmp_path),
    }
    out = subprocess.run(
        [sys.executable, "-m", "alos.cli", "models", "check", "openai:qwen"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert openai_server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert openai_server.requests[0].body["model"] == "qwen"
