"""Shared fixtures: a workspace, a store path, a host Runtime and the CLI runner (see support.py)."""

from tests.support import cli, runtime, store, ws

__all__ = ["cli", "runtime", "store", "ws"]
