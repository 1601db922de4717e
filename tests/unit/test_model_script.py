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
        ('{"contents": "x"}', "unknown key 'contents'"),
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
