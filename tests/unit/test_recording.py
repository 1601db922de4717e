"""providers/recording.py: every call logged with its outcome and time, payloads never, and
nothing else changed: the same values, the same exceptions, the same attributes."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from alos.errors import Invalid, NotFound, Unavailable
from alos.providers.base import ModelRequest, Providers
from alos.providers.clock import ManualClock, SystemClock
from alos.providers.human import RecordedHuman
from alos.providers.memfs import MemoryFiles
from alos.providers.model import ScriptedModel
from alos.providers.recording import CallLog, ProviderCall, Recording, record, summarize


def recorded(**given: Any) -> tuple[Providers, list[ProviderCall]]:
    calls: list[ProviderCall] = []
    return record(Providers(**given), calls.append), calls


def test_a_sync_call_returns_and_raises_exactly_as_unwrapped() -> None:
    fs = MemoryFiles({"/w/a.txt": b"secret payload"})
    providers, calls = recorded(files=fs)
    files = providers.files
    assert files is not None
    assert files.read("/w/a.txt", 0, 6) == fs.read("/w/a.txt", 0, 6) == (b"secret", 14)
    with pytest.raises(NotFound) as wrapped:
        files.read("/w/missing", 0, 1)
    with pytest.raises(NotFound) as bare:
        fs.read("/w/missing", 0, 1)
    assert wrapped.value.message == bare.value.message
    assert [(c.provider, c.method, c.outcome) for c in calls] == [
        ("files", "read", "ok"),
        ("files", "read", "NotFound"),
    ]
    ok, failed = calls
    assert ok.args == "path='/w/a.txt', offset=0, length=6"
    assert ok.result.startswith("(<6 bytes sha256:") and ok.result.endswith(", 14)")
    assert "secret" not in ok.result and failed.result == ""
    assert all(isinstance(c.micros, int) and c.micros >= 0 for c in calls)


def test_an_async_call_is_timed_and_its_cancellation_logged() -> None:
    providers, calls = recorded(clock=SystemClock())
    clock = providers.clock
    assert clock is not None

    async def main() -> None:
        await clock.sleep(0.02)
        task = asyncio.create_task(clock.sleep(10))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    [slept, cancelled] = calls
    assert (slept.method, slept.outcome, slept.args) == ("sleep", "ok", "seconds=0.02")
    assert 15_000 <= slept.micros < 5_000_000  # 20 ms, as the event loop measures it
    assert cancelled.outcome == "CancelledError" and cancelled.micros >= 5_000


def test_attributes_pass_through_and_the_wrapped_object_keeps_working() -> None:
    manual = ManualClock(100.0)
    providers, calls = recorded(clock=manual, human=RecordedHuman())
    clock, human = providers.clock, providers.human
    assert clock is not None and human is not None and clock.real is False
    manual.advance(5)
    assert clock.now() == 105.0
    human.tell(3, "the whole message")
    assert isinstance(human, Recording) and human.inner.told == [(3, "the whole message")]
    assert calls[-1].args == "pid=3, text=<17 chars sha256:" + calls[-1].args.split("sha256:")[1]
    assert providers.files is None and providers.shell is None and providers.models is None


def test_a_model_factory_is_wrapped_and_each_opening_logged(tmp_path: Path) -> None:
    script = tmp_path / "s.jsonl"
    script.write_text(json.dumps({"content": "hi there"}) + "\n")
    providers, calls = recorded(models=lambda spec: ScriptedModel(spec.partition(":")[2]))
    assert providers.models is not None
    model = providers.models(f"script:{script}")
    assert model.remote is False
    request = ModelRequest("main", 0, [{"role": "user", "content": "the goal"}], [])
    turn = asyncio.run(model.complete(request))
    assert turn == asyncio.run(ScriptedModel(str(script)).complete(request)) and turn.content == "hi there"
    opened, completed = calls
    assert (opened.provider, opened.method, opened.result) == ("model", "open", "ScriptedModel")
    assert completed.args.startswith(f"spec='script:{script}', request=ModelRequest(process='main', turn=0")
    assert "messages=<1 items>" in completed.args and "the goal" not in completed.args
    assert "content=<8 chars sha256:" in completed.result and "hi there" not in completed.result
    with pytest.raises(NotFound):
        providers.models(f"script:{tmp_path}/missing")
    assert calls[-1].outcome == "NotFound"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (b"\x00\x01", "<2 bytes sha256:b413f47d13ee>"),
        ("a\x1b[31mred", "'a\\x1b[31mred'"),
        ("x" * 200, "'" + "x" * 120 + "'...(200 chars)"),
        ("https://h.example/p?token=abc#f", "'https://h.example/p?...'"),
        ("key sk-abcdefghijklmnopqrstuvwxyz", "'key [redacted]'"),
        (("git", "status", 3, None), "('git', 'status', 3, None)"),
        (list(range(40)), "[40 items]"),
        ({"PATH": "/bin", "SECRET": "s"}, "{2 keys}"),
        (frozenset({1}), "frozenset"),
    ],
)
def test_a_summary_is_short_escaped_and_holds_no_payload(value: Any, shown: str) -> None:
    assert summarize(value) == shown


def test_values_named_as_payloads_are_shown_by_size_only() -> None:
    assert summarize("short", name="text").startswith("<5 chars sha256:")
    assert summarize({"A": "1"}, name="env") == "<1 keys>"
    assert summarize(None, name="text") == "None"


def test_a_json_lines_log_is_private_and_never_follows_a_symlink(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    path.write_text('{"earlier": true}\n')
    os.chmod(path, 0o600)
    log = CallLog(path)
    providers = record(Providers(files=MemoryFiles({"/a": b"x"})), log)
    assert providers.files is not None
    providers.files.is_dir("/a")
    log.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0] == {"earlier": True}
    assert set(lines[1]) == {"provider", "method", "args", "outcome", "micros", "result"}
    assert (lines[1]["provider"], lines[1]["method"], lines[1]["result"]) == ("files", "is_dir", "False")
    fresh = tmp_path / "fresh.jsonl"
    record(Providers(), str(fresh))
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    (tmp_path / "link.jsonl").symlink_to(path)
    with pytest.raises(Unavailable, match="link.jsonl"):
        CallLog(tmp_path / "link.jsonl")
    with pytest.raises(Unavailable):
        CallLog(tmp_path)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises((Invalid, Unavailable)):
        CallLog(tmp_path / "fifo")  # no reader: refused at once, never waited on


def test_a_line_the_log_cannot_write_is_counted_not_raised(tmp_path: Path) -> None:
    log = CallLog(tmp_path / "calls.jsonl")
    log.close()
    providers = record(Providers(files=MemoryFiles({"/a": b"x"})), log)
    assert providers.files is not None
    assert providers.files.read("/a", 0, 1) == (b"x", 1)
    assert log.dropped == 1 and log.error == "the log is closed"
