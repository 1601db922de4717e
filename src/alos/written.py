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
        # lines end at "\n" only: splitlines() would also end them at "\r" or "\x0c" and show a
        # change of one into "\n" as no change at all
        lines = difflib.unified_diff(current.split("\n"), text.split("\n"), "current", "proposed", lineterm="", n=1)
        out["diff"] = [codec.escape(line) for line in lines]
    return out
