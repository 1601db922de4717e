"""make real-model's check, run against the fake OpenAI server: the agent it runs, and what it
says when the model is not installed (the real run is tests/scenarios/test_real_model.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from alos import realcheck
from tests.fakes import openai_server as wire
from tests.fakes.fixtures import openai_server  # noqa: F401 - the fixture
from tests.fakes.server import FakeServer


def test_the_checks_agent_reads_the_file_and_exits_with_it(openai_server: FakeServer, tmp_path: Path) -> None:  # noqa: F811
    openai_server.push(
        wire.reply(None, [wire.call("fs_read", {"path": "notes.txt"})]),
        wire.reply(None, [wire.call("proc_exit", {"result": realcheck.NOTES})]),
    )
    status, result, turns = asyncio.run(realcheck._run(wire.base_url(openai_server), str(tmp_path)))
    assert (status, result, turns) == ("ok", realcheck.NOTES, 2)
    first = openai_server.requests[0].body
    assert [t["function"]["name"] for t in first["tools"]] == ["fs_read", "proc_exit"]  # the small image
    assert first["temperature"] == 0 and "response_format" in first  # constrained, as the model needs


def test_the_check_says_how_to_install_when_the_model_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ALOS_REAL_MODEL_DIR", str(tmp_path / "nothing"))
    assert realcheck.main() == 1
    assert "make real-model" in capsys.readouterr().err
