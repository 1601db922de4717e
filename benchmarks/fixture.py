"""A throwaway alos store, workspace and process for one benchmark; removed afterwards."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import alos
from alos.rights import Effect, Grant, parse_grant

KIB = "x" * 1024  # the 1 KiB payload of the read and write benchmarks
SECRET = ".env"  # a file the benchmark process holds a deny capability on
ASKED = "ask.txt"  # a file whose writes need a human's approval


@dataclass(slots=True)
class Env:
    """A runtime hosting one store, a workspace directory and the root of the temp tree."""

    root: str
    workspace: str
    rt: alos.Runtime

    def script(self, turns: Sequence[dict[str, Any]]) -> str:
        """Write ``turns`` as a scripted-model JSON Lines file; return its model spec."""
        path = os.path.join(self.root, f"script-{len(os.listdir(self.root))}.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(t) + "\n" for t in turns)
        return f"script:{path}"

    async def spawn(self, turns: Sequence[dict[str, Any]] = ()) -> int:
        """Start a process running ``turns`` with the benchmark grants; return its pid."""
        model = self.script(turns)
        rt, ws = self.rt, self.workspace
        return await rt.spawn("base", "benchmark", workspace=ws, model=model, grants=grants(ws))


def grants(workspace: str) -> list[Grant]:
    """Return the grants of a benchmark process: read/write the workspace, deny the secret,
    ask before writing ASKED."""
    return [
        parse_grant("fs:*=read,write,list", Effect.ALLOW, workspace),
        parse_grant(f"fs:{SECRET}=read", Effect.DENY, workspace),
        parse_grant(f"fs:{ASKED}=write", Effect.ASK, workspace),
    ]


@asynccontextmanager
async def environment() -> AsyncIterator[Env]:
    """Yield a fresh Env; close its runtime and delete its directory tree on the way out."""
    root = tempfile.mkdtemp(prefix="alos-bench-")
    try:
        workspace = os.path.join(root, "ws")
        os.mkdir(workspace)
        rt = alos.open(os.path.join(root, ".alos", "store.db"), host=True)
        try:
            yield Env(root, workspace, rt)
        finally:
            rt.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def replace_file(directory: str, name: str, data: bytes) -> None:
    """Replace ``directory/name`` with ``data`` the way an atomic writer does, without alos:
    write a new temporary file, then rename it over the old one."""
    tmp = os.path.join(directory, f".{name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, os.path.join(directory, name))


def filesystem(path: str) -> str:
    """Return the type of the filesystem holding ``path`` (from /proc/mounts), or '?'."""
    real = os.path.realpath(path)
    best, kind = "", "?"
    try:
        with open("/proc/mounts", encoding="utf-8") as f:
            mounts = [line.split()[1:3] for line in f]
    except OSError:
        return kind
    for point, fstype in mounts:
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fstype
    return kind
