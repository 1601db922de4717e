"""How a human request reads, field by field: one form for every place a person answers one.

The terminal's approval panel (cli/show.py) and the console's approval card (console/) are both
drawn from ``form(req)``, so a person sees the same syscall, resource, bytes, digest, preview and
diff wherever they answer. Pure: no escaping here (each front end makes text safe for its own
medium), no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alos import codec
from alos.types import HumanRequest

_SPECIAL = frozenset({"syscall", "note", "preview", "truncated", "diff", "diff_omitted", "state", "question"})


@dataclass(frozen=True, slots=True)
class Form:
    """A request as a person reads it. ``fields`` are (key, lines): one line, or one per list item."""

    title: str
    question: str | None  # a question's text; None for an approval
    headline: tuple[str, str, str]  # (syscall, right, resource)
    note: str | None
    fields: list[tuple[str, list[str]]]
    diff: list[str] | None
    preview: str | None  # shown when there is no diff; ends with "…" when cut
    diff_omitted: str | None
    always: bool  # whether "approve always" may answer it (can_always)


def can_always(req: HumanRequest) -> bool:
    """Return whether ``req`` may be approved always: an approval whose resource, granted as a
    pattern, covers that resource alone (a name ending in '*' would be a subtree or every
    resource of its kind: a file named '*' must not become a grant on the whole directory)."""
    return req.kind.value == "approval" and not req.resource.endswith("*")


def form(req: HumanRequest) -> Form:
    """Return ``req`` as a person reads it (see the module docstring)."""
    d = req.detail
    title = f"request {req.id} · process {req.pid} · {req.kind.value} · {req.state.value}"
    if req.kind.value == "question":
        question = str(d.get("question", ""))
        return Form(title, question, (req.syscall, req.right, req.resource), None, [], None, None, None, False)
    fields = [(key, _lines(key, value)) for key, value in d.items() if key not in _SPECIAL]
    diff = d.get("diff")
    preview = None
    if diff is None and "preview" in d:
        preview = str(d["preview"]) + ("…" if d.get("truncated") else "")
    return Form(
        title,
        None,
        (req.syscall, req.right, req.resource),
        str(d["note"]) if d.get("note") else None,
        fields,
        [str(line) for line in diff] if isinstance(diff, list) else None,
        preview,
        str(d["diff_omitted"]) if d.get("diff_omitted") else None,
        can_always(req),
    )


def _lines(key: str, value: Any) -> list[str]:
    if isinstance(value, list):
        return [grant(item) if key == "grants" else _value(item) for item in value] or ["none"]
    return [_value(value)]


def grant(g: Any) -> str:
    """Return a grant as the CLI option that would give it: --allow 'PATTERN=RIGHTS'."""
    if not isinstance(g, dict):
        return _value(g)
    rights = ",".join(str(r) for r in g.get("rights", []))
    passed = " (delegable)" if g.get("delegable") else ""
    return f"--{g.get('effect', 'allow')} '{g.get('pattern')}={rights}'{passed}"


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and value and all(not isinstance(v, (dict, list)) for v in value.values()):
        return " ".join(f"{k}={v}" for k, v in value.items())
    if value is None or value == {}:
        return "none"
    return codec.dumps(value)


__all__ = ["Form", "can_always", "form", "grant"]
