"""Finding what a command left running: processes carrying its marker, and where a process lives.

Every process a command starts inherits its environment, and in it a marker naming the store,
the alos process and the command (providers/shell.py). These read /proc: the shell provider
kills what they find.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

MARKER = "ALOS_RUN"  # the environment variable that marks every process of one command


def marked(marker: str, since: int | None = None) -> Sequence[int]:
    """Return the pids of processes whose environment holds a marker that starts with ``marker``;
    with ``since``, only of processes made since the one with that pid (pids are handed out in
    order until they wrap: only those from it up to the last one made are read)."""
    needle = f"\0{MARKER}={marker}".encode()
    found = []
    me = os.getpid()
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    young = _since(since)
    for name in names:
        if not name.isdigit() or int(name) == me or not young(int(name)):
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if needle in b"\0" + f.read():
                    found.append(int(name))
        except OSError:
            continue
    return found


def group_and_session(pid: int) -> set[int]:
    """Return {the process group, the session} of process ``pid`` (empty when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return {int(fields[2]), int(fields[3])}
    except (OSError, ValueError, IndexError):
        return set()


def _since(first: int | None) -> Callable[[int], bool]:
    """Return a test of whether a pid may belong to a process made since pid ``first`` was."""
    if first is None:
        return lambda pid: True
    try:
        with open("/proc/sys/kernel/ns_last_pid", "rb") as f:
            last = int(f.read())
    except (OSError, ValueError):
        return lambda pid: True
    if last >= first:
        return lambda pid: first <= pid <= last
    return lambda pid: pid >= first or pid <= last  # the pids wrapped meanwhile
