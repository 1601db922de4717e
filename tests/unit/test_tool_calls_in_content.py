"""calls.py: a tool call written as text by a small local model, and arguments from the wire."""

import json

import pytest

from alos import limits
from alos.errors import Invalid
from alos.providers.calls import INVALID, arguments, call_in_text, constrained_format, tool_calls, tool_names

DECLARED = ["fs_read", "fs_list"]
CALL = '{"name": "fs_read", "arguments": {"path": "notes.txt"}}'


@pytest.mark.parametrize(
    "text",
    [
        CALL,
        f"  {CALL}\n",
        f"```json\n{CALL}\n```",
        f"```JSON\n{CALL}\n```\n",
        f"```\n{CALL}\n```",
        f"<tool_call>\n{CALL}\n</tool_call>",
        f"<tool_call>{CALL}</tool_call>",
        f"<tool_call>\n```json\n{CALL}\n```\n</tool_call>",
        f"```json\n<tool_call>\n{CALL}\n</tool_call>\n```",
        '{"name": "fs_read", "parameters": {"path": "notes.txt"}}',  # Llama's word
        '{"name": "fs_read", "arguments": "{\\"path\\": \\"notes.txt\\"}"}',  # arguments as a JSON string
    ],
)
def test_one_call_of_a_declared_tool_is_taken_however_it_is_wrapped(text: str) -> None:
    assert call_in_text(text, DECLARED) == ("fs_read", {"path": "notes.txt"})


def test_a_call_of_no_arguments_may_omit_them() -> None:
    assert call_in_text('{"name": "fs_list"}', DECLARED) == ("fs_list", {})


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("Here you go: " + CALL, "prose before the JSON"),
        (CALL + "\nDone.", "prose after the JSON"),
        (CALL + "\n" + CALL, "two calls"),
        (f"[{CALL}, {CALL}]", "a list of calls"),
        (f"```json\n{CALL}\n```\n```json\n{CALL}\n```", "two fenced calls"),
        (f"```json\n```json\n{CALL}\n```\n```", "a fence inside a fence"),
        (f"<tool_call>{CALL}</tool_call><tool_call>{CALL}</tool_call>", "two tagged calls"),
        (f"<tool_call>{CALL}", "a tag never closed"),
        (f"```json\n{CALL}", "a fence never closed"),
        (f"```python\n{CALL}\n```", "a fence of another language"),
        ('{"name": "shell_run", "arguments": {"cmd": "rm -rf /"}}', "an undeclared tool"),
        ('{"name": "fs_read", "arguments": ["notes.txt"]}', "arguments that are a list"),
        ('{"name": "fs_read", "arguments": "notes.txt"}', "arguments that are a string, not JSON"),
        ('{"name": "fs_read", "arguments": "[1]"}', "arguments that are JSON, not an object"),
        ('{"name": "fs_read", "arguments": {}, "id": "x"}', "a key a call does not have"),
        ('{"name": ["fs_read"], "arguments": {}}', "a name that is not a string"),
        ('{"tool": "fs_read", "arguments": {}}', "no name"),
        ('{"name": "fs_read", "arguments": {"path": "a"', "JSON cut short"),
        ("I read the file; it says hello.", "plain text"),
        ("", "nothing"),
        ("<tool_call></tool_call>", "an empty tag"),
        ("```\n```", "an empty fence"),
    ],
)
def test_anything_but_exactly_one_declared_call_stays_text(text: str, why: str) -> None:
    assert call_in_text(text, DECLARED) is None, why


def test_deep_nesting_is_refused_without_recursing() -> None:
    deep = '{"name": "fs_read", "arguments": {"path": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    assert call_in_text(deep, DECLARED) is None
    within = {"a": 1}
    for _ in range(limits.JSON_MAX_DEPTH - 3):
        within = {"a": within}
    assert call_in_text(json.dumps({"name": "fs_read", "arguments": within}), DECLARED) == ("fs_read", within)


def test_huge_input_is_answered_without_backtracking() -> None:
    huge_text = "```" * 300_000 + "<tool_call>" * 100_000 + "x" * 1_000_000
    assert call_in_text(huge_text, DECLARED) is None
    big_call = json.dumps({"name": "fs_read", "arguments": {"path": "p" * 4_000_000}})
    assert call_in_text(f"```json\n{big_call}\n```", DECLARED) == ("fs_read", {"path": "p" * 4_000_000})


def test_wire_arguments_that_are_not_an_object_are_kept_as_invalid_cut_short() -> None:
    assert arguments('{"path": "a"}') == {"path": "a"}
    assert arguments({"path": "a"}) == {"path": "a"}
    assert arguments("") == {}
    assert arguments(None) == {}
    assert arguments('{"path": ') == {INVALID: '{"path": '}
    assert arguments("[1, 2]") == {INVALID: "[1, 2]"}
    assert arguments(42) == {INVALID: "42"}
    long = "x" * 10_000
    assert arguments(long) == {INVALID: "x" * limits.PREVIEW_CHARS}
    assert arguments("[" * 10_000 + "]" * 10_000)[INVALID].startswith("[[[")


def test_calls_keep_their_order_and_get_ids_when_the_server_gave_none() -> None:
    calls = tool_calls([("a", "fs_read", '{"path": "1"}'), (None, "fs_list", "{}"), ("", "x", "nope")], turn=7)
    assert [(c.id, c.name) for c in calls] == [("a", "fs_read"), ("call_7_1", "fs_list"), ("call_7_2", "x")]
    assert calls[2].arguments == {INVALID: "nope"}


def test_more_calls_than_a_turn_may_have_are_refused() -> None:
    with pytest.raises(Invalid, match=f"at most {limits.MODEL_TURN_MAX_CALLS}"):
        tool_calls([(None, "x", "{}")] * (limits.MODEL_TURN_MAX_CALLS + 1), turn=0)


def test_the_constrained_format_allows_exactly_one_call_of_each_declared_tool() -> None:
    params = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
    tools = [
        {"type": "function", "function": {"name": "fs_read", "parameters": params}},
        {"type": "function", "function": {"name": "proc_list"}},
        {"type": "function", "function": {"description": "no name"}},
    ]
    assert tool_names(tools) == ["fs_read", "proc_list"]
    assert constrained_format(tools) == {
        "type": "json_object",
        "schema": {
            "oneOf": [
                {
                    "type": "object",
                    "properties": {"name": {"const": "fs_read"}, "arguments": params},
                    "required": ["name", "arguments"],
                    "additionalProperties": False,
                },
                {
                    "type": "object",
                    "properties": {"name": {"const": "proc_list"}, "arguments": {"type": "object"}},
                    "required": ["name", "arguments"],
                    "additionalProperties": False,
                },
            ]
        },
    }
