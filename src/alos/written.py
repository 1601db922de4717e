"""What a person approving a file write sees: the new content and the whole diff.

Shared by every syscall that writes a file (fs.write, obj.to_file), so an approval looks the
same whichever wrote it. The preview and the diff are stored escaped (codec.escape): a program
reading the request as JSON gets no control characters from them either.
"""

from __future__ import annotations

import difflib
from typing import Any

from alos import codec, limits
from alos.providers.base import FileSystem


def shown(files: FileSystem, path: str, data: bytes) -> dict[str, Any]:
    """Return path, size, digest, preview, and the whole diff of ``data`` against the current
    file at ``path`` (against nothing for a new one), or why there is none."""
    try:
        text: str | None = data.decode()
    except UnicodeDecodeError:
        text = None
    out: dict[str, Any] = {"path": path, "bytes": len(data), "digest": codec.digest(data)}
    if text is None:
        out["preview_omitted"] = "the new content is not UTF-8 text"
    else:
        out["preview"] = codec.escape(text[: limits.PREVIEW_CHARS])
        out["truncated"] = len(text) > limits.PREVIEW_CHARS
    now = files.peek(path)
    out["overwrite"] = now.exists
    if now.exists:
        out["current_digest"] = now.digest
        out["current_bytes"] = now.size
    current = now.text if now.exists else ""
    if current is None:
        out["diff_omitted"] = f"the current file is not UTF-8 text or is over {limits.DIFF_MAX_BYTES} bytes"
    elif len(data) > limits.DIFF_MAX_BYTES:
        out["diff_omitted"] = f"the new content is over {limits.DIFF_MAX_BYTES} bytes; its digest names it"
    elif text is None:
        out["diff_omitted"] = "the new content is not UTF-8 text"
    else:
        lines = difflib.unified_diff(_lines(current), _lines(text), "current", "proposed", lineterm="", n=1)
        out["diff"] = [codec.escape(shown) for i, line in enumerate(lines) for shown in _shown(line, i < 2)]
    return out


def _lines(text: str) -> list[str]:
    """Return ``text``'s lines, each with its "\n" (the last without one when the text does not end
    in one; an empty text has none). Lines end at "\n" only: splitlines() would also end them at
    "\r" or "\x0c" and show a change of one into "\n" as no change at all."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _shown(line: str, header: bool) -> list[str]:
    """Return a diff line as shown: without its "\n", and followed by git's note when it has none
    (``header``: one of the two lines naming the files, which never have one)."""
    if line.endswith("\n"):
        return [line[:-1]]
    if header or line.startswith("@@"):
        return [line]
    return [line, "\\ No newline at end of file"]
