"""Human output: where human.tell messages go. A recorder for tests and a callback for front ends."""

from __future__ import annotations

from collections.abc import Callable

from alos.providers.base import HumanAnswer
from alos.types import HumanRequest


class RecordedHuman:
    """Keeps every message told, in order: the test double and the default when none is given."""

    def __init__(self) -> None:
        self.told: list[tuple[int, str]] = []

    def tell(self, pid: int, text: str) -> None:
        """Record ``text`` from ``pid``."""
        self.told.append((pid, text))

    def answer(self, request: HumanRequest) -> HumanAnswer | None:
        """Answer nothing: a person answers (alos approve, or the front end's prompt)."""
        return None


class CallbackHuman:
    """Hands every message to a front end's function (the CLI prints it)."""

    def __init__(self, show: Callable[[int, str], None]) -> None:
        self._show = show

    def tell(self, pid: int, text: str) -> None:
        """Pass ``text`` from ``pid`` to the front end."""
        self._show(pid, text)

    def answer(self, request: HumanRequest) -> HumanAnswer | None:
        """Answer nothing: the front end asks a person itself."""
        return None
