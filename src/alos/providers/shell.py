"""Commands on the host (placeholder until the shell provider lands)."""

from __future__ import annotations

from alos.errors import Unavailable
from alos.providers.base import ShellRequest, ShellResult


class HostShell:
    def locate(self, cwd: str, program: str, path: str) -> str | None:
        """Not yet."""
        return None

    def isolation(self) -> str | None:
        """Not yet."""
        return None

    async def run(self, request: ShellRequest) -> ShellResult:
        """Not yet."""
        raise Unavailable("shell.run is not built yet")

    def kill(self, pid: int) -> int:
        """Not yet."""
        return 0

    def close(self) -> None:
        """Not yet."""
