"""The blob directory: large object payloads as files named by their sha256, beside the store.

A blob is written whole (a temporary file, fsync, rename, fsync of the directory) before the
version row that names it commits, so a row never names a torn or absent file unless the
disk lost it afterwards. A blob is read back only if its size and digest still match: a
missing or corrupt one raises Corrupt naming it, and is never served. ``sweep`` removes only
blobs no version names and that are older than a grace period (a writer's row may not have
committed yet), and temporary files left by a writer that died.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Iterator

from alos.errors import Corrupt


class Blobs:
    """The blob directory of one store: ``<store file>.blobs/ab/abcdef...``."""

    def __init__(self, store_path: str) -> None:
        self.root = store_path + ".blobs"

    def path(self, digest: str) -> str:
        """Return where blob ``digest`` (``sha256:<hex>``) lives: named by its hex."""
        hex_ = digest.removeprefix("sha256:")
        return os.path.join(self.root, hex_[:2], hex_)

    def put(self, data: bytes, digest: str) -> None:
        """Write ``data`` as blob ``digest`` and make it durable; an intact blob is kept as it is."""
        path = self.path(digest)
        if self.problem(digest, len(data)) is None:
            os.utime(path)  # in use again: a sweep's grace period starts over
            return
        folder = os.path.dirname(path)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        tmp = os.path.join(folder, f".tmp-{os.getpid()}-{os.path.basename(path)[:16]}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _sync_dir(folder)

    def get(self, digest: str, size: int, named: str) -> bytes:
        """Return blob ``digest`` of ``size`` bytes; raise Corrupt naming ``named`` (the object
        and version) when it is missing, of another size, or does not hash to its digest."""
        try:
            with open(self.path(digest), "rb") as f:
                data = f.read(size + 1)
        except FileNotFoundError:
            raise Corrupt(
                f"{named}: its payload (blob {digest[7:23]}...) is missing from the store's blob directory"
            ) from None
        except OSError as err:
            raise Corrupt(f"{named}: its payload (blob {digest[7:23]}...) cannot be read: {err.strerror}") from None
        if len(data) != size or "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise Corrupt(f"{named}: its payload (blob {digest[7:23]}...) is corrupt on disk; it is not served")
        return data

    def problem(self, digest: str, size: int) -> str | None:
        """Return what is wrong with blob ``digest`` (missing, size, digest), or None when it is whole."""
        path = self.path(digest)
        try:
            if os.path.getsize(path) != size:
                return f"has {os.path.getsize(path)} bytes, not {size}"
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        except FileNotFoundError:
            return "is missing"
        except OSError as err:
            return f"cannot be read ({err.strerror})"
        return None if "sha256:" + h.hexdigest() == digest else "does not match its digest"

    def files(self) -> Iterator[tuple[str, str, float]]:
        """Yield (name, path, mtime) of every file in the blob directory."""
        if not os.path.isdir(self.root):
            return
        for folder in sorted(os.listdir(self.root)):
            sub = os.path.join(self.root, folder)
            if not os.path.isdir(sub):
                continue
            for name in sorted(os.listdir(sub)):
                path = os.path.join(sub, name)
                with contextlib.suppress(FileNotFoundError):
                    yield name, path, os.stat(path).st_mtime

    def sweep(self, in_use: Callable[[str], bool], grace: float) -> tuple[int, int]:
        """Remove blobs ``in_use`` (given ``sha256:<hex>``) says no version or image names, and
        temporary files, each older than ``grace`` seconds; return (files removed, bytes freed)."""
        removed = freed = 0
        cutoff = time.time() - grace
        for name, path, mtime in self.files():
            if mtime > cutoff or (not name.startswith(".tmp-") and in_use("sha256:" + name)):
                continue
            with contextlib.suppress(FileNotFoundError):
                size = os.path.getsize(path)
                os.unlink(path)
                removed += 1
                freed += size
        return removed, freed


def _sync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
