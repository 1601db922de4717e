"""The public surface: the exact names ``import alos`` gives, each real and each shown to users.

Changing the list is a decision about the API: change this test, docs/python.md and
alos/__init__.py together.
"""

from pathlib import Path

import alos

SURFACE = [
    "AlosError",
    "Conflict",
    "Corrupt",
    "Denied",
    "Effect",
    "Exists",
    "Exit",
    "Invalid",
    "Limit",
    "NotFound",
    "Parked",
    "ProcState",
    "Process",
    "Runtime",
    "Unavailable",
    "Wait",
    "open",
    "parse_grant",
]

PYTHON_DOC = Path(__file__).resolve().parents[2] / "docs" / "python.md"


def test_the_public_surface_is_exactly_these_names_sorted() -> None:
    assert alos.__all__ == SURFACE
    assert sorted(SURFACE) == SURFACE


def test_every_public_name_exists() -> None:
    for name in alos.__all__:
        assert getattr(alos, name, None) is not None, f"alos.__all__ names {name}, which alos does not define"


def test_every_error_in_the_surface_is_an_alos_error() -> None:
    for name in ("Conflict", "Corrupt", "Denied", "Exists", "Invalid", "Limit", "NotFound", "Unavailable"):
        assert issubclass(getattr(alos, name), alos.AlosError), name


def test_the_python_page_shows_every_public_name() -> None:
    page = PYTHON_DOC.read_text()
    for name in alos.__all__:
        assert f"alos.{name}" in page, f"docs/python.md never shows alos.{name}"


def test_test_doubles_stay_out_of_the_surface_but_importable() -> None:
    from alos.providers.clock import ManualClock

    assert "ManualClock" not in alos.__all__ and not hasattr(alos, "ManualClock")
    assert ManualClock().now() >= 0
