"""--record and replay: every answered call is one JSON line, keys never written; replay answers the
same run identically and names the first field where a run leaves the recording."""

import asyncio
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from alos.errors import Invalid, NotFound
from alos.providers.base import Model, ModelRequest
from alos.providers.model import open_model
from alos.providers.record import REDACTED, first_difference
from alos.types import ModelTurn
from tests.fakes import openai_server as wire
from tests.fakes.fixtures import openai_server
from tests.fakes.server import FakeServer

__all__ = ["openai_server"]

TOOLS = [{"type": "function", "function": {"name": "fs_read", "parameters": {"type": "object"}}}]


def script(tmp_path: Path) -> str:
    turns = [
        {"content": "", "tool_calls": [{"name": "fs_read", "arguments": {"path": "a"}}], "usage": {"total_tokens": 9}},
        {"content": "done"},
        {"proc": "worker", "content": "working"},
    ]
    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps(t) + "\n" for t in turns))
    return f"script:{path}"


def request(turn: int, text: str = "Read a", process: str = "main", **fields: Any) -> ModelRequest:
    messages = [{"role": "system", "content": "sys"}, {"role": "user", "content": text}]
    return ModelRequest(process, turn, messages, TOOLS, pid=4, max_tokens=100, temperature=0.0, **fields)


def run(model: Model, *requests: ModelRequest) -> list[ModelTurn]:
    async def go() -> list[ModelTurn]:
        try:
            return [await model.complete(r) for r in requests]
        finally:
            await model.aclose()

    return asyncio.run(go())


def test_a_recorded_run_replays_identically(tmp_path: Path) -> None:
    record = tmp_path / "run.jsonl"
    asked = [request(0), request(1), request(0, "Work", "worker")]
    recorded = run(open_model(script(tmp_path), record=str(record)), *asked)
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert [(e["pid"], e["process"], e["turn"]) for e in lines] == [(4, "main", 0), (4, "main", 1), (4, "worker", 0)]
    assert lines[0]["request"] == {
        "messages": asked[0].messages,
        "tools": TOOLS,
        "max_tokens": 100,
        "temperature": 0.0,
        "constrain": False,
    }
    assert lines[0]["response"]["tool_calls"] == [{"id": "call_0_0", "name": "fs_read", "arguments": {"path": "a"}}]
    assert stat.S_IMODE(os.stat(record).st_mode) == 0o600
    assert run(open_model(f"replay:{record}"), *reversed(asked)) == list(reversed(recorded))


def test_replay_streams_the_recorded_text(tmp_path: Path) -> None:
    record = tmp_path / "run.jsonl"
    run(open_model(script(tmp_path), record=str(record)), request(0), request(1))
    pieces: list[str] = []
    assert run(open_model(f"replay:{record}"), request(1, stream=pieces.append))[0].content == "done"
    assert pieces == ["done"]


def test_a_request_that_differs_names_the_file_line_process_turn_and_field(tmp_path: Path) -> None:
    record = tmp_path / "run.jsonl"
    run(open_model(script(tmp_path), record=str(record)), request(0), request(1))
    with pytest.raises(Invalid) as err:
        run(open_model(f"replay:{record}"), request(1, "Read b"))
    text = str(err.value)
    assert f"{record}:2:" in text and "process 'main' turn 1" in text
    assert 'messages[1].content: recorded "Read a", now "Read b"' in text
    with pytest.raises(Invalid, match=r"first at temperature: recorded 0.0, now 0.5"):
        run(
            open_model(f"replay:{record}"),
            ModelRequest("main", 0, request(0).messages, TOOLS, pid=4, max_tokens=100, temperature=0.5),
        )
    with pytest.raises(Invalid, match="holds no answer for process 'main' turn 2"):
        run(open_model(f"replay:{record}"), request(2))


def test_first_difference_walks_to_the_first_changed_field() -> None:
    assert first_difference({"a": [1, {"b": 2}]}, {"a": [1, {"b": 2}]}) is None
    assert first_difference({"a": [1, {"b": 2}]}, {"a": [1, {"b": 3}]}) == ("a[1].b", 2, 3)
    assert first_difference({"m": [1]}, {"m": [1, 2]}) == ("m[1]", "(none)", 2)
    assert first_difference({"x": 1}, {"x": 1, "y": 2}) == ("y", "(none)", 2)
    assert first_difference({"x": 1}, {"x": True}) == ("x", 1, True)
    assert first_difference({"x": 1}, {"x": 1.0}) == ("x", 1, 1.0)


def test_keys_are_never_written(tmp_path: Path, openai_server: FakeServer) -> None:
    key = "sk-proj-SECRETSECRETSECRET1234"
    record = tmp_path / "run.jsonl"
    openai_server.push(wire.reply(f"your key is {key}"))
    leaky = ModelRequest(
        "main", 0, [{"role": "user", "content": f"use {key}", "api_key": "hunter2", "Authorization": "Bearer x"}], []
    )
    model = open_model("openai:qwen", _config(openai_server, key), record=str(record))
    assert run(model, leaky)[0].content == f"your key is {key}"  # the run itself sees what the model said
    written = record.read_text()
    assert key not in written and "hunter2" not in written and "Bearer x" not in written
    entry = json.loads(written)
    assert entry["request"]["messages"][0] == {
        "role": "user",
        "content": f"use {REDACTED}",
        "api_key": REDACTED,
        "Authorization": REDACTED,
    }
    assert entry["spec"] == "openai:qwen" and entry["response"]["model"] == "fake-gpt"
    assert run(open_model(f"replay:{record}"), leaky)[0].content == f"your key is {REDACTED}"


def _config(fake: FakeServer, key: str) -> Any:
    from alos.config import load

    return load("/nonexistent", {"base_url": wire.base_url(fake), "api_key": key, "model": "openai:qwen"}, env={})


def test_a_line_cut_short_by_a_killed_host_is_skipped_a_bad_line_elsewhere_is_not(tmp_path: Path) -> None:
    record = tmp_path / "run.jsonl"
    run(open_model(script(tmp_path), record=str(record)), request(0), request(1))
    whole = record.read_text()
    record.write_text(whole + whole.splitlines()[0][:40])
    assert run(open_model(f"replay:{record}"), request(1))[0].content == "done"
    record.write_text("not json\n" + whole)
    with pytest.raises(Invalid, match=r"run.jsonl:1: not JSON"):
        open_model(f"replay:{record}")
    record.write_text('{"process": "main", "turn": "0", "request": {}, "response": {}}\n')
    with pytest.raises(Invalid, match=r":1: 'process' must be a name and 'turn' a number"):
        open_model(f"replay:{record}")


@pytest.mark.parametrize("what", ["missing", "fifo", "dir"])
def test_a_replay_file_must_be_a_regular_file_and_nothing_blocks(tmp_path: Path, what: str) -> None:
    path = tmp_path / "r"
    if what == "fifo":
        os.mkfifo(path)
    elif what == "dir":
        path.mkdir()
    with pytest.raises(NotFound if what == "missing" else Invalid, match="replay"):
        open_model(f"replay:{path}")


def test_recording_to_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # with a reader, opening for writing succeeds
    try:
        with pytest.raises(Invalid, match="not a regular file"):
            run(open_model(script(tmp_path), record=str(fifo)), request(0))
    finally:
        os.close(reader)


def test_unknown_specs_list_the_four_kinds() -> None:
    for spec in ("gpt-4", "openai:", "ollama:qwen", ""):
        with pytest.raises(Invalid, match="openai:MODEL, anthropic:MODEL, script:PATH .* replay:PATH"):
            open_model(spec)
