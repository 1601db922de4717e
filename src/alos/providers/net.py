"""HTTP egress (placeholder until the network provider lands)."""

from __future__ import annotations

from alos.errors import Unavailable
from alos.providers.base import NetRequest, NetResponse


class HostNetwork:
    def lookup(self, host: str, port: int) -> list[str]:
        """Not yet."""
        raise Unavailable("net.fetch is not built yet")

    async def fetch(self, request: NetRequest) -> NetResponse:
        """Not yet."""
        raise Unavailable("net.fetch is not built yet")

    async def aclose(self) -> None:
        """Nothing to release."""
