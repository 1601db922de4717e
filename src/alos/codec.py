"""JSON encoding and content digests, the one place alos turns values into bytes.

Canonical JSON (sorted keys, no spaces) makes digests independent of argument order.
Pure functions; no I/O.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from typing import Any

import msgspec

from alos import limits

_encoder = msgspec.json.Encoder(order="sorted")
_decoder = msgspec.json.Decoder()


def dumps(value: Any) -> str:
    """Return canonical JSON text for ``value`` (sorted keys)."""
    return _encoder.encode(value).decode()


def loads(text: str | bytes) -> Any:
    """Return the value of JSON ``text``; raises msgspec.DecodeError on bad JSON."""
    return _decoder.decode(text)


def parse(text: str | bytes) -> Any:
    """Return the value of untrusted JSON ``text`` (from a model or a script).

    Raises msgspec.DecodeError for bad JSON and for nesting deeper than limits.JSON_MAX_DEPTH,
    which nothing downstream then has to recurse into.
    """
    try:
        value = _decoder.decode(text)
    except RecursionError:
        value = None
    else:
        opens = text.count("[") + text.count("{") if isinstance(text, str) else text.count(b"[") + text.count(b"{")
        if opens <= limits.JSON_MAX_DEPTH or depth_within(value, limits.JSON_MAX_DEPTH):
            return value
    raise msgspec.DecodeError(f"JSON nested deeper than {limits.JSON_MAX_DEPTH} levels is refused")


def depth_within(value: Any, most: int) -> bool:
    """Return whether ``value`` nests at most ``most`` lists and objects deep (no recursion)."""
    todo: list[tuple[Any, int]] = [(value, 1)]
    while todo:
        item, depth = todo.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > most:
            return False
        todo.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return True


def utf8(text: str) -> str:
    """Return ``text`` as it can be stored: a name the OS gave that is not UTF-8 (Python holds its
    bytes as lone surrogates, which no encoder takes) gets each such byte as a visible \\udcXX."""
    if text.isascii():
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()
    return text


def unencodable(value: Any, depth: int = 0) -> str | None:
    """Return the first string in ``value`` (dicts, lists, strings) that is not valid Unicode text
    (a lone surrogate, which JSON never carries but a Python caller may), or None."""
    if isinstance(value, str):
        if value.isascii():
            return None
        try:
            value.encode()
        except UnicodeEncodeError:
            return value
        return None
    if depth > 64:
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            bad = unencodable(k, depth + 1) or unencodable(v, depth + 1)
            if bad is not None:
                return bad
    elif isinstance(value, list | tuple):
        for v in value:
            bad = unencodable(v, depth + 1)
            if bad is not None:
                return bad
    return None


def text_of(data: bytes, *, cut_before: bool = False, to_end: bool = True) -> str | None:
    """Return ``data`` as UTF-8 text, or None when it is not text (NUL bytes, invalid UTF-8).

    ``data`` may be a range of a file: with ``cut_before`` the tail of a character that began
    before it is dropped, and unless ``to_end`` so is a character it cuts at its end."""
    if b"\x00" in data:
        return None
    if cut_before:  # skip the tail of a character that began before the range
        skip = 0
        while skip < min(3, len(data)) and 0x80 <= data[skip] <= 0xBF:
            skip += 1
        data = data[skip:]
    try:
        return codecs.getincrementaldecoder("utf-8")().decode(data, final=to_end)
    except UnicodeDecodeError:
        return None


def digest(data: bytes) -> str:
    """Return ``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_value(value: Any) -> str:
    """Return the digest of ``value``'s canonical JSON."""
    return digest(_encoder.encode(value))


# bidi controls reorder what a person reads; the line and paragraph separators may end a line;
# every other format character (Unicode category Cf: zero-width spaces and joiners, the word
# joiner, the byte order mark, soft hyphen, tag characters) and the blank fillers are invisible,
# so text a model reads could hide in them from the person approving it
_BIDI = {0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069, 0x200E, 0x200F, 0x061C, 0x2028, 0x2029}
_INVISIBLE = (
    (0x00AD, 0x00AD), (0x0600, 0x0605), (0x06DD, 0x06DD), (0x070F, 0x070F), (0x0890, 0x0891), (0x08E2, 0x08E2),
    (0x115F, 0x1160), (0x180E, 0x180E), (0x200B, 0x200F), (0x2060, 0x2064), (0x2066, 0x206F), (0x2800, 0x2800),
    (0x3164, 0x3164), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF9, 0xFFFB), (0x110BD, 0x110BD), (0x110CD, 0x110CD),
    (0x13430, 0x13438), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0001, 0xE0001), (0xE0020, 0xE007F),
)  # fmt: skip
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f"
    + "".join(chr(o) for o in sorted(_BIDI))
    + "".join(f"{chr(a)}-{chr(b)}" for a, b in _INVISIBLE)
    + "]"
)


def _shown(ch: str) -> str:
    o = ord(ch)
    if ch == "\n":
        return "\\n"
    if ch == "\t":
        return "\\t"
    if o < 0x20 or 0x7F <= o < 0xA0:
        return f"\\x{o:02x}"
    if o > 0xFFFF:
        return f"\\U{o:08x}"
    return f"\\u{o:04x}"


def escape(text: str, keep_newlines: bool = False) -> str:
    """Return ``text`` safe to show on a terminal or a page: control, escape, bidi and invisible
    format characters as \\x/\\u/\\U escapes."""
    if keep_newlines:
        return "\n".join(_UNSAFE.sub(lambda m: _shown(m.group()), line) for line in text.split("\n"))
    return _UNSAFE.sub(lambda m: _shown(m.group()), text)
