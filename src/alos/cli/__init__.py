"""The ``alos`` command line (layer 9): click commands over Runtime. Checks no authority."""

from alos.cli.main import main

__all__ = ["main"]
