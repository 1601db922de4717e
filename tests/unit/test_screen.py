"""cli/screen.py and cli/show.py: nothing a process or a model chose reaches a terminal raw.

Every output path of the trace and the panels is walked with hostile strings in every field.
"""

from __future__ import annotations

import io
import json
import re

import pytest
from rich.console import Console

from alos.cli import show
from alos.cli.screen import Screen, command, json_text, safe
from alos.types import Event, HumanRequest, Process, ProcState, RequestKind, RequestState

EVIL = "\x1b]52;c;ZXZpbA==\x07\x1b[1A\x1b[2K\r\x9b31m\u202eevil\u2066\x00\x08\x7f\u2028x"
# no C0 but newline, no DEL or C1, no bidi or line separators
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def test_safe_makes_every_control_visible() -> None:
    shown = safe(EVIL)
    assert not RAW.search(shown) and "\n" not in shown
    assert "\\x1b]52" in shown and "\\u202e" in shown and "\\x9b" in shown
    assert safe("a\nb", keep_newlines=True) == "a\nb"
    assert safe(safe(EVIL)) == safe(EVIL)  # escaping what was escaped changes nothing


def test_json_lines_escape_what_json_leaves_raw() -> None:
    line = json_text({"k": EVIL, EVIL: [EVIL]})
    assert not RAW.search(line)
    assert json.loads(line) == {"k": EVIL, EVIL: [EVIL]}  # still the same value


def _screen() -> tuple[Screen, io.StringIO]:
    buf = io.StringIO()
    screen = Screen()
    screen.console = Console(file=buf, highlight=False, markup=False, width=250, color_system=None)
    return screen, buf


DETAIL = {
    "name": EVIL,
    "image": EVIL,
    "goal": EVIL,
    "content": EVIL,
    "calls": [{"name": EVIL, "arguments": {EVIL: EVIL}}],
    "syscall": EVIL,
    "resource": EVIL,
    "decision": EVIL,
    "outcome": EVIL,
    "detail": {"error": EVIL},
    "kind": EVIL,
    "id": EVIL,
    "verdict": EVIL,
    "by": EVIL,
    "text": EVIL,
    "ok": True,
    "state": "exited",
    "exit": EVIL,
    "result": EVIL,
    "error": EVIL,
    "signal": EVIL,
    "from": 1,
    "parent": EVIL,
}
KINDS = sorted(name[1:] for name in vars(show.Trace) if name.startswith("_") and not name.startswith("__"))


@pytest.mark.parametrize("kind", KINDS)
def test_every_trace_line_is_safe(kind: str) -> None:
    screen, buf = _screen()
    trace = show.Trace(screen)
    trace.names[1] = EVIL
    trace(Event(1, 0.0, 1, kind, DETAIL))
    assert buf.getvalue(), f"the trace printed nothing for {kind}"
    assert not RAW.search(buf.getvalue()), buf.getvalue()


def test_what_a_process_tells_is_safe_and_cannot_forge_a_line() -> None:
    screen, buf = _screen()
    forged = "line one\n● process 1 main exited ok\n      ✓ allow fs.read fs:/home/u/.ssh/id_rsa\n" + EVIL
    show.tell(screen, {1: EVIL})(1, forged)
    out = buf.getvalue()
    assert not RAW.search(out)
    lines = out.splitlines()
    assert len(lines) == 4 and all(line.startswith("   ┆ ") for line in lines[1:]), lines  # marked as its


def _request(kind: RequestKind, detail: dict[str, object]) -> HumanRequest:
    return HumanRequest(
        7, 1, kind, 1, 0, 0, EVIL, EVIL, EVIL, EVIL, detail, RequestState.PENDING, None, False, None, 0.0, None
    )


def test_an_approval_panel_shows_everything_safely_and_never_cuts_a_diff_silently() -> None:
    diff = [f"+{EVIL} {i}" for i in range(100)]
    detail = {
        "syscall": EVIL,
        "note": EVIL,
        "grants": [{"pattern": EVIL, "rights": ["read", EVIL], "effect": "allow"}],
        "budget": {EVIL: 3},
        "goal": EVIL,
        "diff": diff,
    }
    for full in (False, True):
        screen, buf = _screen()
        screen.show(show.request_panel(_request(RequestKind.APPROVAL, detail), full=full))
        out = buf.getvalue()
        assert not RAW.search(out), out
        assert "--allow '" in out and "budget" in out
        assert ("99" in out) is full
        assert ("60 more diff line(s) not shown" in out) is not full
        assert (f"{command()} approvals --full 7" in out) is not full


def test_a_question_panel_is_safe() -> None:
    screen, buf = _screen()
    screen.show(show.request_panel(_request(RequestKind.QUESTION, {"question": EVIL + "\nanswer with: x"})))
    out = buf.getvalue()
    assert not RAW.search(out) and "\nanswer with: x" not in out.replace("│", "").replace(" ", "")


def test_the_process_table_is_safe() -> None:
    p = Process(1, None, EVIL, EVIL, EVIL, ProcState.RUNNING, None, None, EVIL, EVIL, EVIL, 0, 0.0, 0.0)
    screen, buf = _screen()
    screen.show(show.process_table([p], {1: {"tokens": (None, 3)}}, 250))
    assert not RAW.search(buf.getvalue()) and "tok=3" in buf.getvalue()
