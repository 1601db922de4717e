"""A Deno worker's process as the host sees it: its pid under bubblewrap, its CPU time, its rlimits.

Linux only (/proc and prlimit), as the rest of the shell and JIT providers.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource

from alos import limits


def deno_pid(top: int, exe_name: str) -> int:
    """Return the pid of the Deno process: ``top`` itself, or (under bubblewrap) its descendant."""
    seen, todo = 0, [top]
    while todo and seen < 16:
        pid = todo.pop()
        seen += 1
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == "deno":
                    return pid
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                todo += [int(p) for p in f.read().split()]
        except (OSError, ValueError):
            continue
    return 0


def cpu_used(pid: int) -> float:
    """Return the CPU seconds process ``pid`` has used (0 when it cannot be read)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def limit_cpu(pid: int) -> float:
    """Let Deno use JIT_CPU_SECONDS more CPU time from now (the soft limit: SIGXCPU past it; a
    tool that catches the signal is stopped by the wall time and found out after the call);
    return the CPU seconds it has used."""
    if not pid:
        return 0.0
    used = cpu_used(pid)
    soft = math.ceil(used) + limits.JIT_CPU_SECONDS
    with contextlib.suppress(OSError):
        hard = resource.prlimit(pid, resource.RLIMIT_CPU)[1]
        resource.prlimit(pid, resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
    return used


def set_data_limit(pid: int) -> None:
    if not pid:
        return
    with contextlib.suppress(OSError):
        resource.prlimit(pid, resource.RLIMIT_DATA, (limits.JIT_DATA_BYTES, limits.JIT_DATA_BYTES))
        resource.prlimit(pid, resource.RLIMIT_CORE, (0, 0))
