"""model.call's request digest: kept up to date as a context grows, and a digest of what was sent."""

from __future__ import annotations

from typing import Any

from alos.primitives.model import CallArgs, _digest


class _Kernel:
    def __init__(self) -> None:
        self.requests: dict[int, Any] = {}


def test_the_digest_follows_the_request_not_the_cache() -> None:
    kernel: Any = _Kernel()
    tools = [{"type": "function", "function": {"name": "fs_read"}}]
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "goal"}]
    first = _digest(kernel, 1, CallArgs(list(msgs), tools))
    msgs.append({"role": "assistant", "content": "x"})
    grown = _digest(kernel, 1, CallArgs(list(msgs), tools))
    fresh = _digest(_Kernel(), 1, CallArgs(list(msgs), tools))  # no cache: the same digest
    assert grown == fresh and grown != first and grown[1] > first[1]
    changed = [dict(m) for m in msgs]
    changed[0]["content"] = "other"  # a new list whose first message differs: hashed anew
    assert _digest(kernel, 1, CallArgs(changed, tools))[0] != grown[0]
    assert _digest(kernel, 1, CallArgs(list(msgs), [*tools, {"x": 1}]))[0] != grown[0]
