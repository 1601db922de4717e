"""``python -m alos.cli``: the same as the ``alos`` command."""

from alos.cli.main import main

main()
