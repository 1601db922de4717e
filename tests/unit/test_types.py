"""The records: a Process changed with ``but`` is the record ``dataclasses.replace`` makes."""

import dataclasses

import pytest

from alos.types import Exit, Process, ProcState, Wait


def _proc() -> Process:
    return Process(
        pid=3, parent=1, name="kid", image="base", model="script:/s", state=ProcState.RUNNING, wait=None,
        exit=None, cwd="/ws", goal="g", result=None, turns=4, created=1.0, updated=2.0, term=2,
    )  # fmt: skip


def test_but_changes_exactly_the_named_fields() -> None:
    p = _proc()
    changed = p.changed(state=ProcState.WAITING, wait=Wait.HUMAN, turns=5)
    assert changed == dataclasses.replace(p, state=ProcState.WAITING, wait=Wait.HUMAN, turns=5)
    assert (changed.term, changed.cwd, p.turns) == (2, "/ws", 4)  # the rest kept; the original unchanged
    assert p.changed() == p and p.changed() is not p


def test_but_refuses_a_field_a_process_does_not_have() -> None:
    with pytest.raises(TypeError, match=r"no field \['exit_code'\]"):
        _proc().changed(exit_code=Exit.OK)
