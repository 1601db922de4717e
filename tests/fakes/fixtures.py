"""pytest fixtures for the fake model servers: ``openai_server`` and ``anthropic_server``.

Each gives the process's one running server of its kind (started on first use, so a pytest-xdist
worker starts at most one of each), with no steps queued and no requests recorded.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes import anthropic_server as anthropic_wire
from tests.fakes import openai_server as openai_wire
from tests.fakes.server import FakeServer


@pytest.fixture
def openai_server() -> Iterator[FakeServer]:
    """The fake OpenAI-compatible server; clients use base_url ``openai_server.url + "/v1"``."""
    fake = openai_wire.server()
    fake.reset()
    yield fake
    fake.reset()


@pytest.fixture
def anthropic_server() -> Iterator[FakeServer]:
    """The fake Anthropic server; clients use base_url ``anthropic_server.url``."""
    fake = anthropic_wire.server()
    fake.reset()
    yield fake
    fake.reset()
