"""The bell beside a store: how the programs that share one store wake each other without polling.

A program that commits rings the bell; a program that waits for others' changes (a host that
stays, a console) listens on it and sleeps in the event loop until it rings. A ring carries no
data: it only says "look at the store" (Store.changed_elsewhere then tells what changed), so a
stray ring costs one look and a lost one is impossible while the listener's socket exists. A
listener also wakes when the store file itself is deleted, renamed or replaced (inotify on its
link count), so that a sleeping program notices it lost its store, and when its own socket is
removed. A listener binds a removed socket again MEND_SECONDS later, only while the store file is
still the one it was opened as, and never makes the bell's directory again: a person deleting the
store's directory (``rm -rf .alos``) must not find a socket made behind them. While it cannot bind
(its directory is gone until the next program that listens makes it) it looks every LOOK_SECONDS,
as it does where inotify is missing.

Each listener is a Unix datagram socket in a directory beside the store (named, like the host
lock, by the store file's device and inode; mode 0700, inside the directory no process may
reach). A long path is reached through /proc/self/fd, so any store path works. A socket whose
listener died (kill -9) is removed by the next ring that finds it dead. Never raises to a
committer: a bell that cannot ring is a missed wake-up, which the listeners' own timeouts cover.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import errno
import functools
import os
import secrets
import socket

_SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes with its NUL; keep a margin
LOOK_SECONDS = 2.0  # without inotify: how often a sleeping listener looks for a lost store file
MEND_SECONDS = 0.5  # how long a listener whose socket was removed waits before it binds it again
_IN_ATTRIB, _IN_MOVE_SELF, _IN_DELETE_SELF = 0x4, 0x800, 0x400  # <sys/inotify.h>
_IN_NONBLOCK, _IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC


def _watch(*paths: str) -> int | None:
    """Return an inotify descriptor that becomes readable when a file at one of ``paths`` is
    unlinked, renamed or replaced (its link count changes), or None where inotify is not to be had."""
    try:
        fd = int(_libc().inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC))
    except (OSError, AttributeError):
        return None
    if fd < 0:
        return None
    if not all(_add_watch(fd, path) for path in paths):
        os.close(fd)
        return None
    return fd


def _add_watch(fd: int, path: str) -> bool:
    return int(_libc().inotify_add_watch(fd, os.fsencode(path), _IN_ATTRIB | _IN_MOVE_SELF | _IN_DELETE_SELF)) >= 0


def _identity(path: str) -> tuple[int, int] | None:
    """Return the (device, inode) of the file at ``path`` now, or None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _same_file(fd: int, path: str) -> bool:
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == _identity(path)


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


class Bell:
    """Ring and listen beside one store; see the module docstring."""

    def __init__(self, directory: str, watched: str | None = None, identity: tuple[int, int] | None = None) -> None:
        self.directory = directory
        self.watched = watched  # the store file: a listener wakes when it is deleted or replaced
        if identity is None and watched is not None:
            identity = _identity(watched)
        self.identity = identity  # the store file's (device, inode) as opened: a listener mends only for it
        self._dirfd: int | None = None  # held while this program rings or listens through /proc/self/fd
        self._own: set[str] = set()  # this program's listeners: a ring never wakes its ringer
        self._sender: socket.socket | None = None

    def ring(self) -> None:
        """Wake every other program listening beside this store (at most one datagram each)."""
        names = self._listeners()
        if not names:
            return
        if self._sender is None:
            self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        for name in names:
            if name in self._own:
                continue
            try:
                self._sender.sendto(b"!", self._address(name))
            except BlockingIOError:
                continue  # its queue is full: it is woken already
            except OSError as err:
                if err.errno in (errno.ECONNREFUSED, errno.ENOENT, errno.ENOTSOCK):
                    self._forget(name)  # its listener died without removing it
                # any other failure is a missed wake-up, never the committer's error

    def listen(self) -> Listener:
        """Return a new listener beside this store (close it when done). Raises OSError when the
        store's directory does not let this program make one."""
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        name = f"{os.getpid()}-{secrets.token_hex(4)}"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        try:
            sock.bind(self._address(name))
        except OSError:
            sock.close()
            raise
        self._own.add(name)
        address = self._address(name)  # its own socket too: removed (a clean-up of dot files), it is made again
        return Listener(self, name, sock, _watch(self.watched, address) if self.watched else None)

    def same_store(self) -> bool:
        """Return whether the watched store file is still the one this bell was made for."""
        return self.watched is not None and self.identity is not None and _identity(self.watched) == self.identity

    def address(self, name: str) -> str:
        """Return the address of listener ``name``'s socket."""
        return self._address(name)

    def close(self) -> None:
        """Release what ringing held (listeners are closed by their owners)."""
        if self._sender is not None:
            self._sender.close()
            self._sender = None
        if self._dirfd is not None:
            os.close(self._dirfd)
            self._dirfd = None

    def _listeners(self) -> list[str]:
        # read afresh each time (a few microseconds): a directory's mtime is too coarse to cache by
        try:
            return os.listdir(self.directory)
        except OSError:
            return []  # no one has listened here yet

    def _address(self, name: str) -> str:
        path = os.path.join(self.directory, name)
        if len(path.encode()) <= _SOCKET_PATH_MAX:
            return path
        if self._dirfd is not None and not _same_file(self._dirfd, self.directory):
            os.close(self._dirfd)  # the directory was removed (and perhaps made again): not that one
            self._dirfd = None
        if self._dirfd is None:
            self._dirfd = os.open(self.directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        return f"/proc/self/fd/{self._dirfd}/{name}"

    def forget(self, name: str) -> None:
        """Stop counting ``name`` as this program's listener and remove its socket."""
        self._own.discard(name)
        self._forget(name)

    def _forget(self, name: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self._address(name))


class Listener:
    """One program's ear on the bell: ``wait`` sleeps in the event loop until a ring or a timeout."""

    def __init__(self, bell: Bell, name: str, sock: socket.socket, watch: int | None) -> None:
        self._bell = bell
        self.name = name
        self._sock: socket.socket | None = sock
        self._watch = watch  # inotify on the store file and on this socket, or None
        self._mend_at: float | None = None  # when to try binding this listener's removed socket again

    async def wait(self, timeout: float | None = None, also: asyncio.Event | None = None) -> bool:
        """Sleep until the bell rings, the store file is deleted or replaced, ``also`` is set (this
        program's own news), or ``timeout`` seconds pass; return whether the bell rang or the file
        changed. Every ring that came meanwhile is taken, so a look at the store made after this
        returns sees them all."""
        if self._sock is None:
            raise RuntimeError("this listener is closed")
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            mend_in = self._mend(loop.time())
            if mend_in == 0:
                return True  # a try to bind again was made: look at the store, rings may have been missed
            left = None if deadline is None else max(0.0, deadline - loop.time())
            if mend_in is None or (left is not None and left <= mend_in):
                return await self._wait_once(left, also)
            rang = await self._wait_once(mend_in, also)
            if rang or (also is not None and also.is_set()):
                return rang

    async def _wait_once(self, timeout: float | None, also: asyncio.Event | None) -> bool:
        sock = self._sock
        assert sock is not None
        if self._drain(sock):
            return True
        if self._watch is None and self._bell.watched is not None:
            timeout = LOOK_SECONDS if timeout is None else min(timeout, LOOK_SECONDS)
        loop = asyncio.get_running_loop()
        woken = loop.create_future()

        def wake(*_: object) -> None:
            if not woken.done():
                woken.set_result(None)

        fds = [sock.fileno()] + ([self._watch] if self._watch is not None else [])
        for fd in fds:
            loop.add_reader(fd, wake)
        told = asyncio.ensure_future(also.wait()) if also is not None else None
        if told is not None:
            told.add_done_callback(wake)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken, timeout)
        finally:
            for fd in fds:
                loop.remove_reader(fd)
            if told is not None:
                told.cancel()
        rang = self._drain(sock)
        if self._watch is not None:
            with contextlib.suppress(BlockingIOError, InterruptedError):
                rang = bool(os.read(self._watch, 4096)) or rang  # the look at the store says what happened
            if self._mend_at is None and not self._bound():
                self._mend_at = loop.time() + MEND_SECONDS  # see the module docstring
        return rang

    def _mend(self, now: float) -> float | None:
        """Return None while this listener's socket is in place, else the seconds until the next try
        to bind it again; 0 when a try was just made (bound, not possible yet, or the store is no
        longer the one opened: then there is nothing to listen for)."""
        if self._mend_at is None:
            return None
        if now < self._mend_at:
            return self._mend_at - now
        if not self._bell.same_store() or self._bind_again():
            self._mend_at = None
        else:
            self._mend_at = now + LOOK_SECONDS  # its directory is gone: look until a new listener makes it
        return 0.0

    def _bound(self) -> bool:
        try:
            return os.path.exists(self._bell.address(self.name))
        except OSError:
            return False  # the bell's directory is gone

    def _bind_again(self) -> bool:
        if self._sock is None:
            return False
        if self._bound():
            return True
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        try:
            path = self._bell.address(self.name)
            sock.bind(path)  # never makes the directory: one that was removed was meant to go
        except OSError:
            sock.close()
            return False
        self._sock.close()
        self._sock = sock
        if self._watch is not None:
            _add_watch(self._watch, path)
        return True

    @staticmethod
    def _drain(sock: socket.socket) -> bool:
        got = False
        while True:
            try:
                sock.recv(16)
            except (BlockingIOError, InterruptedError):
                return got
            got = True

    def close(self) -> None:
        """Stop listening and remove this listener's socket."""
        if self._sock is None:
            return
        self._sock.close()
        self._sock = None
        if self._watch is not None:
            os.close(self._watch)
            self._watch = None
        self._bell.forget(self.name)


__all__ = ["Bell", "Listener"]
