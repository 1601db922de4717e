import os
from pathlib import Path

import pytest

from alos.errors import Invalid, NotFound
from alos.providers.model import load_script, open_model


def test_turns_are_grouped_by_process_in_order(tmp_path: Path) -> None:
    p = tmp_path / "s.jsonl"
    p.write_text(
        '{"content": "a"}\n\n{"content": "b", "proc": "worker"}\n'
        '{"content": "c", "tool_calls": [{"name": "fs_read", "arguments": "{\\"path\\": \\"x\\"}"}]}\n'
    )
    turns = load_script(str(p))
    assert [t.content for t in turns["main"]] == ["a", "c"]
    assert [t.content for t in turns["worker"]] == ["b"]
    assert turns["main"][1].tool_calls[0].arguments == {"path": "x"}


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("not json", ":2: not JSON"),
        ("[1, 2]", ":2: a turn must be a JSON object"),
        ('{"content": 3}', "'content' must be a string"),
        ('{"contents": "x"}', ":2: a turn holds only the keys content, proc, tool_calls, usage"),
        ('{"tool_calls": [{"arguments": {}}]}', "tool call 1: 'name' must name a tool"),
        ('{"tool_calls": [{"name": "fs_read", "arguments": [1]}]}', "'arguments' must be an object"),
    ],
)
def test_a_bad_turn_is_refused_naming_its_line(tmp_path: Path, line: str, words: str) -> None:
    p = tmp_path / "s.jsonl"
    p.write_text('{"content": "fine"}\n' + line + "\n")
    with pytest.raises(Invalid) as err:
        load_script(str(p))
    assert words in str(err.value)


def test_unknown_model_kinds_and_missing_scripts_are_clear(tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="script:PATH"):
        open_model("gpt-9")
    with pytest.raises(NotFound, match="no model script"):
        open_model(f"script:{tmp_path}/none.jsonl")


@pytest.mark.parametrize("what", ["dir", "fifo", "device"])
def test_only_a_regular_file_is_read_and_nothing_blocks(tmp_path: Path, what: str) -> None:
    path = {"dir": str(tmp_path), "device": "/dev/zero"}.get(what, str(tmp_path / "fifo"))
    if what == "fifo":
        os.mkfifo(path)
    with pytest.raises(Invalid, match="not a regular file"):
        load_script(path)  # a FIFO with no writer would block an open without O_NONBLOCK


def test_no_error_quotes_the_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    for content in ('{"MARKER_KEY": 1}\n', "MARKER_TEXT not json\n", '{"tool_calls": [{"MARKER_CALL": 1}]}\n'):
        secret.write_text(content)
        with pytest.raises(Invalid) as err:
            load_script(str(secret))
        assert "MARKER" not in str(err.value)


def test_usage_of_any_size_is_taken_as_reported(tmp_path: Path) -> None:
    """The script says what the model reported; the budget ledger saturates it (test_budget.py)."""
    from alos.primitives.model import CallArgs, used

    p = tmp_path / "s.jsonl"
    p.write_text('{"usage": {"prompt_tokens": 100000000000000000000000, "completion_tokens": 1e23}}\n')
    [turn] = load_script(str(p))["main"]
    assert turn.usage == {"prompt_tokens": 10**23, "completion_tokens": int(1e23)}
    assert used(CallArgs([], []), turn) == {"tokens": 10**23 + int(1e23)}
    # with max_tokens reserved before the call, the settlement is what was used less the reservation
    assert used(CallArgs([], [], max_tokens=500), turn) == {"tokens": 10**23 + int(1e23) - 500}
    for bad in ("-1", "1.5", "true", '"9"'):
        p.write_text('{"usage": {"prompt_tokens": ' + bad + "}}\n")
        with pytest.raises(Invalid, match="whole numbers"):
            load_script(str(p))
