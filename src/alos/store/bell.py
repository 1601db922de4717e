"""The bell beside a store: how the programs that share one store wake each other without polling.

A program that commits rings the bell; a program that waits for others' changes (a host that
stays, a console) listens on it and sleeps in the event loop until it rings. A ring carries no
data: it only says "look at the store" (Store.changed_elsewhere then tells what changed), so a
stray ring costs one look and a lost one is impossible while the listener's socket exists. A
listener also wakes when the store file itself is deleted, renamed or replaced (inotify on its
link count), so that a sleeping program notices it lost its store, and when its own socket is
removed. A removed socket is bound again MEND_SECONDS later (REMAKE_SECONDS if its directory went
too), and only if the store file is still the one the listener was made for: a person deleting
the store's directory (``rm -rf .alos``) must not find a socket made again behind them, and a
program whose store is gone has nothing to listen for. Where inotify is missing a listener looks
every LOOK_SECONDS instead.

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
REMAKE_SECONDS = 5.0  # ... and before it makes the bell's directory again, if that was removed too
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


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


class Bell:
    """Ring and listen beside one store; see the module docstring."""

    def __init__(self, directory: str, watched: str | None = None) -> None:
        self.directory = directory
        self.watched = watched  # the store file: a listener wakes when it is deleted or replaced
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
        return Listener(self, name, sock, _watch(self.watched, address) if self.watched else None, self.identity())

    def identity(self) -> tuple[int, int] | None:
        """The watched store file's device and inode now, or None (none watched, or it is gone)."""
        if self.watched is None:
            return None
        try:
            st = os.stat(self.watched)
        except OSError:
            return None
        return st.st_dev, st.st_ino

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

    def __init__(
        self, bell: Bell, name: str, sock: socket.socket, watch: int | None, identity: tuple[int, int] | None
    ) -> None:
        self._bell = bell
        self.name = name
        self._sock: socket.socket | None = sock
        self._watch = watch  # inotify on the store file and on this socket, or None
        self._identity = identity  # the store file's (device, inode) when listening began
        self._lost_at: float | None = None  # when this listener's socket was found removed

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
                return True  # bound again (or the store is gone): look at the store, rings were missed
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
            if self._lost_at is None and not os.path.exists(self._bell.address(self.name)):
                self._lost_at = loop.time()  # bound again MEND_SECONDS from now (see the module docstring)
        return rang

    def _mend(self, now: float) -> float | None:
        """Return None if this listener's socket was not found removed, else the seconds until it
        is bound again; at 0 it has just been bound again, or the store file is no longer the one
        this listener was made for (see the module docstring)."""
        if self._lost_at is None:
            return None
        lost_for = now - self._lost_at
        if lost_for < MEND_SECONDS:
            return MEND_SECONDS - lost_for
        if self._identity is None or self._bell.identity() != self._identity:
            self._lost_at = None
            return 0.0
        directory_there = os.path.isdir(self._bell.directory)
        if not directory_there and lost_for < REMAKE_SECONDS:
            return REMAKE_SECONDS - lost_for  # an rm -rf of the store's directory may still be under way
        self._lost_at = None
        self._bind_again(make_directory=not directory_there)
        return 0.0

    def _bind_again(self, make_directory: bool) -> None:
        path = self._bell.address(self.name)
        if os.path.exists(path) or self._sock is None:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        try:
            if make_directory:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(self._bell.directory, 0o700)  # never its parents
            sock.bind(path)
        except OSError:
            sock.close()
            return  # the next look at the store still happens; only wake-ups are missed
        self._sock.close()
        self._sock = sock
        if self._watch is not None:
            _add_watch(self._watch, path)

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
