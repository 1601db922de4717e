"""codec: untrusted JSON is parsed without recursion limits being the only guard."""

from __future__ import annotations

import msgspec
import pytest

from alos import codec, limits


@pytest.mark.parametrize("depth", [limits.JSON_MAX_DEPTH + 1, 5_000, 200_000])
def test_json_nested_deeper_than_the_limit_is_refused_cleanly(depth: int) -> None:
    for text in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
        with pytest.raises(msgspec.DecodeError, match="nested deeper"):
            codec.parse(text)
        with pytest.raises(msgspec.DecodeError, match="nested deeper"):
            codec.parse(text.encode())


def test_json_at_the_limit_and_wide_json_are_taken() -> None:
    d = limits.JSON_MAX_DEPTH
    assert codec.parse("[" * d + "]" * d) is not None
    wide = "[" + ",".join("[1]" for _ in range(10_000)) + "]"  # many brackets, shallow
    assert len(codec.parse(wide)) == 10_000


def test_escape_covers_line_separators_and_bidi_marks() -> None:
    for ch in ("\u2028", "\u2029", "\u061c", "\u202e", "\x9b", "\x7f", "\x1b"):
        assert ch not in codec.escape(f"a{ch}b")
