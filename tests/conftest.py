"""Shared fixtures: a workspace, a store path, a host Runtime and the CLI runner (see support.py)."""

import signal

import pytest

from tests.support import cli, runtime, store, ws


def pytest_configure(config: pytest.Config) -> None:
    """Give Ctrl-C back to the hosts the tests start: a shell starts a background job (`make test &`)
    with SIGINT ignored, every child inherits that, and the tests that stop a host with SIGINT
    would see it ignored. Handled here, it is reset to the default in each child it starts."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


__all__ = ["cli", "runtime", "store", "ws"]
