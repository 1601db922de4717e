"""The filesystem provider: resolve paths, then read, write, list, make and delete for real.

It receives paths that dispatch() already authorized and performs exactly that operation.
It holds no policy, with one fixed exception: it refuses every path inside the store
directory whatever the grants say (nothing a process can reach names the store).
Every operation opens the parent directory, checks through /proc/self/fd that it is still
the directory that was authorized, and works relative to that descriptor with O_NOFOLLOW,
so a symlink swapped in after authorization cannot redirect the effect.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import os
import stat
from collections.abc import Iterator, Sequence
from typing import Any

from alos import codec, limits
from alos.errors import AlosError, Conflict, Denied, Exists, Invalid, NotFound, Unavailable
from alos.providers.base import Peek

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO never blocks the host
_tmp_names = itertools.count()
_PRIVILEGE_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX  # never carried over to new content


class Files:
    """The real host filesystem, minus the store directory."""

    def __init__(self, forbidden: Sequence[str] = ()) -> None:
        self._forbidden = tuple(os.path.realpath(f) for f in forbidden)

    # -- resolution ------------------------------------------------------------------

    def resolve(self, cwd: str, path: str) -> str:
        """Return the absolute real path ``path`` names from ``cwd`` (symlinks followed, as far as
        the host lets it see: a loop or a directory it may not search is resolved by name).

        Raises Invalid for an empty or NUL-bearing path, and nothing that depends on what exists:
        resolution comes before the decision, and a refusal must not tell what is there.
        """
        if not path:
            raise Invalid("empty path; name a file relative to the working directory, e.g. 'notes.md'")
        if "\x00" in path:
            raise Invalid("a path contains a NUL byte; name the file without it")
        # '..' is taken by name before symlinks are followed: a path that climbs back out of a
        # symlink would otherwise tell, by working, where that symlink leads
        full = os.path.normpath(os.path.join(cwd, path))
        try:
            real = _real(full)
        except OSError:  # the operation itself fails later, after the decision, with the OS's reason
            real = os.path.realpath(full)
        return codec.utf8(real)  # a name that is not UTF-8 cannot be named: it is not reached

    def _guard(self, real: str) -> None:
        """Raise Denied when ``real`` is inside the store directory (dispatch() refuses it first)."""
        for root in self._forbidden:
            if real == root or real.startswith(root + "/"):
                raise Denied("that path is inside alos's store directory; no process may reach it")

    def hidden(self, real: str) -> bool:
        """Return whether ``real`` is inside the store directory (listings leave it out)."""
        try:
            self._guard(real)
        except Denied:
            return True
        return False

    # -- operations ------------------------------------------------------------------

    def read(self, path: str, offset: int, length: int) -> tuple[bytes, int]:
        """Return (up to ``length`` bytes of file ``path`` from ``offset``, the file's size)."""
        self._guard(path)
        with _errors("read", path), _parent(path) as (dfd, name):
            fd = os.open(name, _READ_FLAGS, dir_fd=dfd)
            try:
                size = _regular(fd, path)
                return os.pread(fd, length, offset), size
            finally:
                os.close(fd)

    def write(self, path: str, data: bytes) -> None:
        """Replace (or create) file ``path`` with ``data`` atomically: readers see old or new.

        A new file gets mode 0644 less the umask. A replaced file keeps its permission bits but
        never setuid, setgid or sticky (the content is new: no privilege goes with it); its owner
        and group stay when the host may set them (it runs as root), else they are the host's.
        """
        self._guard(path)
        with _errors("write", path), _parent(path) as (dfd, name):
            old: os.stat_result | None = None
            with contextlib.suppress(FileNotFoundError):
                old = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                if stat.S_ISDIR(old.st_mode):
                    raise Invalid(f"{path} is a directory; a file cannot replace it")
            tmp = f".{name[:200]}.alos-{os.getpid()}-{next(_tmp_names)}"
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(tmp, flags, 0o644 if old is None or not stat.S_ISREG(old.st_mode) else 0o600, dir_fd=dfd)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if old is not None and stat.S_ISREG(old.st_mode):
                    if os.geteuid() == 0:
                        os.fchown(fd, old.st_uid, old.st_gid)
                    os.fchmod(fd, stat.S_IMODE(old.st_mode) & ~_PRIVILEGE_BITS)
            except BaseException:
                os.close(fd)
                os.unlink(tmp, dir_fd=dfd)
                raise
            os.close(fd)
            os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)

    def list(self, path: str) -> tuple[list[dict[str, Any]], bool]:
        """Return (entries sorted by name, whether the list was cut at the limit)."""
        self._guard(path)
        with _errors("list", path), _directory(path) as dfd:
            entries = []
            with os.scandir(dfd) as it:
                for entry in it:
                    if self.hidden(os.path.join(path, entry.name)):
                        continue
                    st = entry.stat(follow_symlinks=False)
                    kind = (
                        "dir"
                        if stat.S_ISDIR(st.st_mode)
                        else "link"
                        if stat.S_ISLNK(st.st_mode)
                        else "file"
                        if stat.S_ISREG(st.st_mode)
                        else "other"
                    )
                    entries.append({"name": codec.utf8(entry.name), "type": kind, "size": st.st_size})
        entries.sort(key=lambda e: str(e["name"]))
        cut = len(entries) > limits.LIST_MAX_ENTRIES
        return entries[: limits.LIST_MAX_ENTRIES], cut

    def missing(self, path: str) -> tuple[str, ...]:
        """Return the directories that making ``path`` would create, top down (empty: it exists)."""
        missing: list[str] = []
        base = path
        while not os.path.lexists(base):
            missing.append(base)
            base = os.path.dirname(base)
        return tuple(reversed(missing))

    def mkdir(self, path: str, creates: Sequence[str]) -> bool:
        """Make exactly the directories ``creates`` (top down, ending with ``path``); return whether
        ``path`` was made. Raises Exists when ``path`` is a file, Conflict when the plan is stale."""
        self._guard(path)
        with _errors("mkdir", path):
            if not creates:
                if os.path.isdir(path):
                    return False
                raise Exists(f"{path} exists and is not a directory")
            for directory in creates:
                if not os.path.isdir(os.path.dirname(directory)):
                    raise Conflict(f"{os.path.dirname(directory)} vanished while the call ran; try again")
                with _parent(directory) as (dfd, name):
                    os.mkdir(name, 0o755, dir_fd=dfd)
            return True

    def delete(self, path: str) -> str:
        """Delete file or empty directory ``path``; return which it was ("file" or "dir")."""
        self._guard(path)
        with _errors("delete", path), _parent(path) as (dfd, name):
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                os.rmdir(name, dir_fd=dfd)
                return "dir"
            os.unlink(name, dir_fd=dfd)
            return "file"

    def is_dir(self, path: str) -> bool:
        """Return whether ``path`` is a directory now."""
        return os.path.isdir(path)

    def peek(self, path: str) -> Peek:
        """Return what an approval shows about regular file ``path`` now (absent for anything else).

        Reads through the checked directory with O_NOFOLLOW and never blocks; a file bigger than
        limits.PEEK_MAX_BYTES is named by its size and modification time instead of a digest.
        """
        try:
            with _parent(path) as (dfd, name):
                fd = os.open(name, _READ_FLAGS, dir_fd=dfd)
                try:
                    st = os.fstat(fd)
                    if not stat.S_ISREG(st.st_mode):
                        return Peek(False, 0, None, None)
                    if st.st_size > limits.PEEK_MAX_BYTES:
                        return Peek(True, st.st_size, f"size:{st.st_size}:mtime:{st.st_mtime_ns}", None)
                    h = hashlib.sha256()
                    head = b""
                    offset = 0
                    while chunk := os.pread(fd, 1 << 16, offset):
                        if offset < limits.DIFF_MAX_BYTES:
                            head += chunk
                        offset += len(chunk)
                        h.update(chunk)
                finally:
                    os.close(fd)
        except (AlosError, OSError):
            return Peek(False, 0, None, None)
        text: str | None = None
        if offset <= limits.DIFF_MAX_BYTES:
            try:
                text = head.decode()
            except UnicodeDecodeError:
                text = None
        return Peek(True, offset, "sha256:" + h.hexdigest(), text)


_PROC_FD = os.path.isdir("/proc/self/fd")


def _real(path: str) -> str:
    """Return the real path of absolute ``path`` as the OS resolves it (symlinks and '..' followed);
    a tail that does not exist yet is kept as named. One O_PATH open instead of an lstat per component."""
    if not _PROC_FD:
        return os.path.realpath(path)
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        head, name = os.path.split(path)
        if head == path:
            return path
        base = _real(head)
        if name == "..":
            return os.path.dirname(base)
        return base if name in ("", ".") else os.path.join(base, name)
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def _regular(fd: int, path: str) -> int:
    """Return the size of ``fd``; raise Invalid unless it is a regular file (not a directory,
    FIFO, socket or device)."""
    st = os.fstat(fd)
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        raise Invalid(f"{path} is a directory; use fs_list to see what it holds")
    if not stat.S_ISREG(mode):
        raise Invalid(f"{path} is not a regular file (a FIFO, socket or device); only files can be read")
    return st.st_size


@contextlib.contextmanager
def _directory(path: str) -> Iterator[int]:
    """Yield a descriptor of directory ``path``, checked to be that very directory."""
    fd = os.open(path, _DIR_FLAGS | os.O_NOFOLLOW)
    try:
        actual = os.readlink(f"/proc/self/fd/{fd}")
        if actual != path:
            raise Conflict(f"{path} changed while the call ran (it now is {actual}); try again")
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def _parent(path: str) -> Iterator[tuple[int, str]]:
    """Yield (descriptor of ``path``'s directory, last component)."""
    parent, name = os.path.split(path)
    if not name:
        raise Invalid(f"{path} names no file")
    with _directory(parent) as dfd:
        yield dfd, name


@contextlib.contextmanager
def _errors(op: str, path: str) -> Iterator[None]:
    """Turn host OS errors into AlosErrors that name the operation, the path and a fix."""
    try:
        yield
    except AlosError:
        raise
    except FileNotFoundError:
        raise NotFound(f"{op}: no such file or directory {path}; check the name with fs_list") from None
    except NotADirectoryError:
        raise NotFound(f"{op}: a component of {path} is not a directory; check the path with fs_list") from None
    except PermissionError as err:
        raise Denied(
            f"{op}: the host OS refused {path} ({err.strerror}); its file permissions forbid this, "
            "and no grant changes that"
        ) from None
    except FileExistsError:
        raise Exists(f"{op}: {path} already exists; choose another name, or delete it first") from None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise Conflict(f"{op}: {path} became a symlink while the call ran; try again") from None
        if err.errno == errno.ENOTEMPTY:
            raise Invalid(f"{op}: directory {path} is not empty; delete what it holds first") from None
        if err.errno == errno.ENAMETOOLONG:
            too_long = f"{op}: {path}: a name in it is too long for the host's filesystem; use a shorter one"
            raise Invalid(too_long) from None
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise Unavailable(f"{op}: {path}: {err.strerror}; the host must free space first") from None
        raise Unavailable(f"{op}: {path}: {err.strerror}; the host's filesystem refused it, try again later") from None
