"""The real model, offline: Qwen2.5-Coder-0.5B on a llama.cpp server on loopback (alos.realmodel).

Slow, and skipped until the model is installed: run 'make real-model' (CI does). The server starts
once per test session (per pytest worker): it takes 1-2 s and 675 MB. At temperature 0 the model
answers the canonical task "Read notes.txt and exit with its contents." the same way every time,
so these tests assert its exact calls; harder tasks would assert only the mechanics.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alos import realcheck, realmodel
from tests.support import cli_process

NOT_INSTALLED = realmodel.installed()
# one pytest worker runs them all: one server (1 GB, a busy core) for the whole session, not one a worker
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(NOT_INSTALLED is not None, reason=NOT_INSTALLED or ""),
    pytest.mark.xdist_group("real_model"),
]

TASK = "Read notes.txt and exit with its contents."
NOTES = "The meeting moved to Thursday at 10.\n"
FS_READ = {
    "type": "function",
    "function": {
        "name": "fs_read",
        "description": "Read a text file (UTF-8).",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    },
}
PROC_EXIT = {
    "type": "function",
    "function": {
        "name": "proc_exit",
        "description": "End this process with status ok or failed and a result for whoever waits on it.",
        "parameters": {
            "type": "object",
            "properties": {"status": {"type": "string", "enum": ["ok", "failed"]}, "result": {"type": "string"}},
            "required": ["result"],
        },
    },
}


@pytest.fixture(scope="session")
def server() -> Iterator[str]:
    """The base URL of the real model's server, started once for the session. One thread: the other
    pytest worker keeps a core busy, and two spinning llama.cpp threads then run 7-10 times slower."""
    with realmodel.serve(threads=1) as url:
        yield url


def chat(url: str, **body: Any) -> dict[str, Any]:
    """POST a Chat Completions request with the stdlib; return the reply's first message."""
    request = urllib.request.Request(
        f"{url}/chat/completions",
        data=json.dumps({"model": "qwen", "temperature": 0, **body}).encode(),
        headers={"content-type": "application/json"},
    )
    loopback = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with loopback.open(request, timeout=60) as answer:
        message: dict[str, Any] = json.load(answer)["choices"][0]["message"]
    return message


def one_of(*tools: dict[str, Any]) -> dict[str, Any]:
    """The response_format that makes every reply exactly one call of one of ``tools`` (by grammar)."""
    calls = [
        {
            "type": "object",
            "properties": {"name": {"const": t["function"]["name"]}, "arguments": t["function"]["parameters"]},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for t in tools
    ]
    return {"type": "json_object", "schema": {"oneOf": calls}}


def test_the_server_answers_the_canonical_request_with_one_call_in_its_content(server: str) -> None:
    """Constrained, as a client for small models must ask: unconstrained, this model answered with the
    call in a ```json fence and the path /home/user/notes.txt."""
    messages = [{"role": "user", "content": TASK}]
    message = chat(server, messages=messages, tools=[FS_READ], response_format=one_of(FS_READ))
    assert not message.get("tool_calls"), "this model writes its call in content, not in tool_calls"
    assert message["content"] == '{"name": "fs_read", "arguments": {"path": "notes.txt"}}'


def test_a_tool_result_goes_back_with_empty_content_and_the_next_reply_is_one_call_again(server: str) -> None:
    """The loop a client for small models runs. Only the mechanics are asserted for the second step:
    what this model writes as a result varies with the prompt and the tools ("ok", the contents less
    their first word, or proc_exit with file=)."""
    tools, constrain = [FS_READ, PROC_EXIT], one_of(FS_READ, PROC_EXIT)
    messages: list[dict[str, Any]] = [{"role": "user", "content": TASK}]
    first = json.loads(chat(server, messages=messages, tools=tools, response_format=constrain)["content"])
    assert first == {"name": "fs_read", "arguments": {"path": "notes.txt"}}
    call = {"id": "call_1", "type": "function", "function": {"name": "fs_read", "arguments": '{"path": "notes.txt"}'}}
    messages += [
        {"role": "assistant", "content": "", "tool_calls": [call]},  # None here is an HTTP 500
        {"role": "tool", "tool_call_id": "call_1", "content": NOTES},
    ]
    second = json.loads(chat(server, messages=messages, tools=tools, response_format=constrain)["content"])
    assert second["name"] == "proc_exit" and isinstance(second["arguments"]["result"], str)


# The whole run through the alos CLI, as a user types it, with the image file that make real-model's
# check uses (alos/realcheck.py): the model reads notes.txt (with fs_read, or proc_exit's file) and
# the process exits ok with its contents.
def test_an_alos_agent_on_the_real_model_reads_a_file_and_exits_with_its_contents(server: str, tmp_path: Path) -> None:
    ws, image = realcheck.workspace(str(tmp_path))
    r = cli_process(
        "run", image, realcheck.TASK, "--model", realcheck.MODEL, "--base-url", server, "--allow", "fs:*=read",
        "--approve", "never", "--budget", "model_calls=6", cwd=Path(ws), timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "exited ok" in r.stdout
    assert realcheck.NOTES.strip() in r.stdout
