"""JSON encoding and content digests, the one place alos turns values into bytes.

Canonical JSON (sorted keys, no spaces) makes digests independent of argument order.
Pure functions; no I/O.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

_encoder = msgspec.json.Encoder(order="sorted")
_decoder = msgspec.json.Decoder()


def dumps(value: Any) -> str:
    """Return canonical JSON text for ``value`` (sorted keys)."""
    return _encoder.encode(value).decode()


def loads(text: str | bytes) -> Any:
    """Return the value of JSON ``text``; raises msgspec.DecodeError on bad JSON."""
    return _decoder.decode(text)


def digest(data: bytes) -> str:
    """Return ``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_value(value: Any) -> str:
    """Return the digest of ``value``'s canonical JSON."""
    return digest(_encoder.encode(value))


_BIDI = {0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069, 0x200E, 0x200F}


def escape(text: str, keep_newlines: bool = False) -> str:
    """Return ``text`` safe to show on a terminal: control, escape and bidi characters as \\x/\\u."""
    out = []
    for ch in text:
        o = ord(ch)
        if ch == "\n" and keep_newlines:
            out.append(ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x20 or 0x7F <= o < 0xA0:
            out.append(f"\\x{o:02x}")
        elif o in _BIDI:
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    return "".join(out)
