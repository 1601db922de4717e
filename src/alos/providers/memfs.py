"""An in-memory filesystem with the observable behaviour of providers/files.py, for tests and demos.

It holds directories and regular files only: no symlinks, no permissions, no FIFOs. Everything
a process can do (resolve, read, write, list, mkdir, delete, peek) gives the same results and
the same AlosErrors, with the same messages, as the real filesystem; the differences that stay
are listed in docs/providers.md. Like every provider it holds no policy, with the one fixed
exception files.py has: it refuses every path inside a forbidden root.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import posixpath
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from alos import codec, limits
from alos.errors import AlosError, Conflict, Denied, Exists, Invalid, NotFound, Unavailable
from alos.providers.base import Peek

NAME_MAX = 255  # bytes of one name, as Linux filesystems allow
PATH_MAX = 4096  # bytes of a path the host opens in one call, its terminating NUL included


@dataclass(slots=True)
class _File:
    data: bytes
    mtime_ns: int  # named in a peek of a file too big to hash, as files.py names it


@dataclass(slots=True)
class _Dir:
    names: set[str] = field(default_factory=set)


_Node = _File | _Dir


class MemoryFiles:
    """A filesystem held in a dict: the directory ``/`` and what the constructor or calls put there.

    ``files`` maps absolute paths to their bytes (their parent directories are made too);
    ``directories`` names directories to make, e.g. the workspace a process will run in (the
    runtime also checks that the workspace is a directory on the host: pass a real empty one);
    ``forbidden`` names roots no process may reach, as files.py's store directory.
    Safe to call from several threads: each operation holds one lock.
    """

    def __init__(
        self,
        files: Mapping[str, bytes] | None = None,
        *,
        directories: Iterable[str] = (),
        forbidden: Sequence[str] = (),
    ) -> None:
        self._forbidden = tuple(_absolute(f, "a forbidden root") for f in forbidden)
        self._nodes: dict[str, _Node] = {"/": _Dir()}
        self._lock = threading.Lock()
        for directory in directories:
            self._make_tree(_absolute(directory, "a directory"))
        for path, data in (files or {}).items():
            where = _absolute(path, "a file")
            if where == "/":
                raise Invalid("MemoryFiles: '/' is a directory, not a file")
            self._make_tree(posixpath.dirname(where))
            if isinstance(self._nodes.get(where), _Dir):
                raise Invalid(f"MemoryFiles: {where} is named both as a file and as a directory")
            self._attach(where, _File(bytes(data), time.time_ns()))

    def _make_tree(self, path: str) -> None:
        """Make ``path`` and its missing parents (construction only: no checks a call makes)."""
        if path == "/":
            return
        self._make_tree(posixpath.dirname(path))
        node = self._nodes.get(path)
        if isinstance(node, _File):
            raise Invalid(f"MemoryFiles: {path} is named both as a file and as a directory")
        if node is None:
            self._attach(path, _Dir())

    def _attach(self, path: str, node: _Node) -> None:
        parent = self._nodes[posixpath.dirname(path)]
        assert isinstance(parent, _Dir)
        parent.names.add(posixpath.basename(path))
        self._nodes[path] = node

    def _detach(self, path: str) -> None:
        parent = self._nodes[posixpath.dirname(path)]
        assert isinstance(parent, _Dir)
        parent.names.discard(posixpath.basename(path))
        del self._nodes[path]

    # -- resolution ------------------------------------------------------------------

    def resolve(self, cwd: str, path: str) -> str:
        """Return the absolute path ``path`` names from ``cwd``, '..' taken by name (there are no
        symlinks to follow). Raises Invalid for an empty or NUL-bearing path, and nothing that
        depends on what exists: resolution comes before the decision."""
        if not path:
            raise Invalid("empty path; name a file relative to the working directory, e.g. 'notes.md'")
        if "\x00" in path:
            raise Invalid("a path contains a NUL byte; name the file without it")
        return codec.utf8(_normal(posixpath.join(cwd, path)))

    def _guard(self, real: str) -> None:
        """Raise Denied when ``real`` is inside a forbidden root (dispatch() refuses it first)."""
        for root in self._forbidden:
            if real == root or real.startswith(root.rstrip("/") + "/"):
                raise Denied("that path is inside alos's store directory; no process may reach it")

    def hidden(self, real: str) -> bool:
        """Return whether ``real`` is inside a forbidden root (listings leave it out)."""
        try:
            self._guard(real)
        except Denied:
            return True
        return False

    # -- operations ------------------------------------------------------------------

    def read(self, path: str, offset: int, length: int) -> tuple[bytes, int]:
        """Return (up to ``length`` bytes of file ``path`` from ``offset``, the file's size).

        Raises NotFound for a missing file or parent, Invalid for a directory, Denied for a
        forbidden path."""
        self._guard(path)
        with self._lock, _errors("read", path):
            node = self._child(*self._parent(path))
            if node is None:
                raise FileNotFoundError(errno.ENOENT, path)
            if isinstance(node, _Dir):
                raise Invalid(f"{path} is a directory; use fs_list to see what it holds")
            return node.data[offset : offset + length], len(node.data)

    def write(self, path: str, data: bytes) -> None:
        """Replace (or create) file ``path`` with ``data`` at once: readers see old or new.

        Raises NotFound for a missing parent, Invalid for a directory in the way or a name too
        long, Denied for a forbidden path."""
        self._guard(path)
        with self._lock, _errors("write", path):
            parent, name = self._parent(path)
            if isinstance(self._child(parent, name), _Dir):
                raise Invalid(f"{path} is a directory; a file cannot replace it")
            if path in self._nodes:
                self._nodes[path] = _File(bytes(data), time.time_ns())
            else:
                self._attach(path, _File(bytes(data), time.time_ns()))

    def list(self, path: str) -> tuple[list[dict[str, Any]], bool]:
        """Return (entries sorted by name, whether the list was cut at limits.LIST_MAX_ENTRIES).

        A directory's size is 0 (a host filesystem reports its own block size there)."""
        self._guard(path)
        with self._lock, _errors("list", path):
            directory = self._directory(path)
            entries: list[dict[str, Any]] = []
            for name in directory.names:
                full = posixpath.join(path, name)
                if self.hidden(full):
                    continue
                node = self._nodes[full]
                if isinstance(node, _File):
                    entries.append({"name": codec.utf8(name), "type": "file", "size": len(node.data)})
                else:
                    entries.append({"name": codec.utf8(name), "type": "dir", "size": 0})
        entries.sort(key=lambda e: str(e["name"]))
        cut = len(entries) > limits.LIST_MAX_ENTRIES
        return entries[: limits.LIST_MAX_ENTRIES], cut

    def missing(self, path: str) -> tuple[str, ...]:
        """Return the directories that making ``path`` would create, top down (empty: it exists)."""
        with self._lock:
            missing: list[str] = []
            base = path
            while not self._exists(base):
                missing.append(base)
                base = posixpath.dirname(base)
            return tuple(reversed(missing))

    def mkdir(self, path: str, creates: Sequence[str]) -> bool:
        """Make exactly the directories ``creates`` (top down, ending with ``path``); return whether
        ``path`` was made. Raises Exists when ``path`` is a file, Conflict when the plan is stale."""
        self._guard(path)
        with self._lock, _errors("mkdir", path):
            if not creates:
                if self._is_dir(path):
                    return False
                raise Exists(f"{path} exists and is not a directory")
            for directory in creates:
                if not self._is_dir(posixpath.dirname(directory)):
                    raise Conflict(f"{posixpath.dirname(directory)} vanished while the call ran; try again")
                parent, name = self._parent(directory)
                if self._child(parent, name) is not None:
                    raise FileExistsError(errno.EEXIST, directory)
                self._attach(directory, _Dir())
            return True

    def delete(self, path: str) -> str:
        """Delete file or empty directory ``path``; return which it was ("file" or "dir").

        Raises NotFound when it is missing and Invalid for a directory that is not empty."""
        self._guard(path)
        with self._lock, _errors("delete", path):
            node = self._child(*self._parent(path))
            if node is None:
                raise FileNotFoundError(errno.ENOENT, path)
            if isinstance(node, _Dir) and node.names:
                raise OSError(errno.ENOTEMPTY, path)
            self._detach(path)
            return "dir" if isinstance(node, _Dir) else "file"

    def is_dir(self, path: str) -> bool:
        """Return whether ``path`` is a directory now."""
        with self._lock:
            return self._is_dir(path)

    def peek(self, path: str) -> Peek:
        """Return what an approval shows about regular file ``path`` now (absent for anything else).

        A file bigger than limits.PEEK_MAX_BYTES is named by its size and modification time
        instead of a digest; its text is given when it is UTF-8 of at most limits.DIFF_MAX_BYTES."""
        try:
            with self._lock:
                node = self._child(*self._parent(path))
        except (AlosError, OSError):
            return Peek(False, 0, None, None)
        if not isinstance(node, _File):
            return Peek(False, 0, None, None)
        size = len(node.data)
        if size > limits.PEEK_MAX_BYTES:
            return Peek(True, size, f"size:{size}:mtime:{node.mtime_ns}", None)
        text: str | None = None
        if size <= limits.DIFF_MAX_BYTES:
            try:
                text = node.data.decode()
            except UnicodeDecodeError:
                text = None
        return Peek(True, size, "sha256:" + hashlib.sha256(node.data).hexdigest(), text)

    # -- lookups (the lock is held) ----------------------------------------------------

    def _node(self, path: str) -> _Node:
        """Return the node at ``path``, walking it as the host does: raises FileNotFoundError,
        NotADirectoryError or ENAMETOOLONG at the first component that stops the walk."""
        if _size(path) >= PATH_MAX:
            raise OSError(errno.ENAMETOOLONG, path)
        node = self._nodes["/"]
        current = "/"
        for part in path.split("/"):
            if not part:
                continue
            if not isinstance(node, _Dir):
                raise NotADirectoryError(errno.ENOTDIR, path)
            if _size(part) > NAME_MAX:
                raise OSError(errno.ENAMETOOLONG, path)
            current = posixpath.join(current, part)
            found = self._nodes.get(current)
            if found is None:
                raise FileNotFoundError(errno.ENOENT, path)
            node = found
        return node

    def _directory(self, path: str) -> _Dir:
        node = self._node(path)
        if not isinstance(node, _Dir):
            raise NotADirectoryError(errno.ENOTDIR, path)
        return node

    def _parent(self, path: str) -> tuple[str, str]:
        """Return (``path``'s directory, its last name) once that directory is there."""
        parent, name = posixpath.split(path)
        if not name:
            raise Invalid(f"{path} names no file")
        self._directory(parent)
        return parent, name

    def _child(self, parent: str, name: str) -> _Node | None:
        if _size(name) > NAME_MAX:
            raise OSError(errno.ENAMETOOLONG, name)
        return self._nodes.get(posixpath.join(parent, name))

    def _exists(self, path: str) -> bool:
        try:
            self._node(path)
        except OSError:
            return False
        return True

    def _is_dir(self, path: str) -> bool:
        try:
            return isinstance(self._node(path), _Dir)
        except OSError:
            return False


def _size(name: str) -> int:
    return len(name.encode("utf-8", "surrogatepass"))


def _normal(path: str) -> str:
    """Return absolute ``path`` normalized by name; '//' at the start is '/' (the host's realpath
    makes it so)."""
    full = posixpath.normpath(path)
    return "/" + full.lstrip("/")


def _absolute(path: str, what: str) -> str:
    if not posixpath.isabs(path) or "\x00" in path:
        raise Invalid(f"MemoryFiles: {what} must be an absolute path without NUL, not {path!r}")
    return _normal(path)


@contextlib.contextmanager
def _errors(op: str, path: str) -> Iterator[None]:
    """Turn the OS errors this filesystem imitates into the AlosErrors files.py raises for them."""
    try:
        yield
    except AlosError:
        raise
    except FileNotFoundError:
        raise NotFound(f"{op}: no such file or directory {path}; check the name with fs_list") from None
    except NotADirectoryError:
        raise NotFound(f"{op}: a component of {path} is not a directory; check the path with fs_list") from None
    except FileExistsError:
        raise Exists(f"{op}: {path} already exists; choose another name, or delete it first") from None
    except OSError as err:
        if err.errno == errno.ENOTEMPTY:
            raise Invalid(f"{op}: directory {path} is not empty; delete what it holds first") from None
        if err.errno == errno.ENAMETOOLONG:
            too_long = f"{op}: {path}: a name in it is too long for the host's filesystem; use a shorter one"
            raise Invalid(too_long) from None
        raise Unavailable(f"{op}: {path}: {err.strerror}; the filesystem refused it, try again later") from None
