"""The spawner: a small helper process that starts the shell provider's commands with their limits.

Why a process of its own. A command's rlimits must hold from its first instruction (a program
that forks at once would otherwise hand its children no limit at all). Setting them from outside
after the start races the command; setting them in the child before exec takes a preexec
function, which makes Python fork the whole host (not vfork) and run Python in the child: ~2.5 ms
a command here. The spawner is a bare interpreter (``python -S``, no alos) started once per host
and set of limits, that holds those rlimits itself: every command it starts with posix_spawn
(vfork-fast) inherits them, in a session of its own, in its working directory, with the pipes it
was handed. The spawner dies with the host (PR_SET_PDEATHSIG); a command a dead host left running
is found by its marker and killed by the next host (providers/shell.py). It is also the subreaper
of its commands: a process a command left behind, whose parent died (a daemon that cleared its
environment and started a session of its own), becomes its child, where the host finds it.

The protocol, over a SOCK_SEQPACKET socket pair, one JSON object a message:
  host -> spawner  "spawn", with three descriptors passed alongside (SCM_RIGHTS): a memfd that
                   holds {"id", "argv", "env", "cwd"} (of any size), and the write ends of the
                   command's stdout and stderr
  spawner -> host  {"id", "pid"} once it has exec'd, or {"id", "error"} (an errno's text)
  spawner -> host  {"pid", "status"} when that command exits (os.waitpid's status)
"""

from __future__ import annotations

import array
import asyncio
import itertools
import json
import os
import socket
import subprocess
import sys
from typing import Any

from alos.errors import Unavailable

_MESSAGE_MAX = 4 << 20  # bytes of one request: an argv and an environment, both bounded by the caller

_SPAWNER = r"""
import array, ctypes, json, os, resource, selectors, signal, socket, sys
sock = socket.socket(fileno=int(sys.argv[1]))
host = int(sys.argv[2])
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: the spawner dies with its host
if os.getppid() != host:
    sys.exit(0)
libc.prctl(36, 1)  # PR_SET_CHILD_SUBREAPER: a command's orphans become its children (the host kills them)
started = set()
wake_r, wake_w = os.pipe()
os.set_blocking(wake_w, False)
signal.set_wakeup_fd(wake_w)
signal.signal(signal.SIGCHLD, lambda *a: None)
sel = selectors.DefaultSelector()
sel.register(sock, selectors.EVENT_READ, "sock")
sel.register(wake_r, selectors.EVENT_READ, "wake")

def send(msg):
    try:
        sock.send(json.dumps(msg).encode())
    except OSError:
        os._exit(0)

for which, soft, hard in json.loads(sys.argv[3]):  # every command inherits them, from its first instruction
    resource.setrlimit(which, (soft, hard))
null = os.open("/dev/null", os.O_RDONLY)

def start(req, fds):
    try:
        os.chdir(req["cwd"])  # the spawner starts one command at a time: its directory is the command's
        pid = os.posix_spawn(
            req["argv"][0], req["argv"], req["env"], setsid=True,
            file_actions=[(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, fds[0], 1),
                          (os.POSIX_SPAWN_DUP2, fds[1], 2)],
        )
    except OSError as e:
        send({"id": req["id"], "error": e.strerror or str(e)})
    else:
        started.add(pid)
        send({"id": req["id"], "pid": pid})
    finally:
        for fd in fds:
            os.close(fd)
        os.chdir("/")

while True:
    for key, _ in sel.select():
        if key.data == "sock":
            try:
                data, anc, _, _ = sock.recvmsg(64, socket.CMSG_SPACE(3 * 4))
            except OSError:
                os._exit(0)
            if not data:
                os._exit(0)
            fds = []
            for level, kind, raw in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    a = array.array("i")
                    a.frombytes(raw[: len(raw) - len(raw) % a.itemsize])
                    fds.extend(a)
            if len(fds) != 3:
                for fd in fds:
                    os.close(fd)
                continue
            with os.fdopen(fds[0], "rb") as body:  # the request, in a memfd: no socket message limit
                req = json.loads(body.read())
            start(req, fds[1:])
        else:
            try:
                os.read(wake_r, 4096)
            except BlockingIOError:
                pass
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid in started:  # an adopted orphan's end is no one's business
                started.discard(pid)
                send({"pid": pid, "status": status})
"""


class Spawner:
    """The host's end of the spawner (see the module docstring); started at its first use."""

    def __init__(self, limits: list[list[int]]) -> None:
        self._limits = limits  # [[resource, soft, hard], ...]: the spawner's own, so its commands'
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ids = itertools.count(1)
        self._started: dict[int, asyncio.Future[int]] = {}
        self._exits: dict[int, asyncio.Future[int]] = {}
        self._early: dict[int, int] = {}  # exit statuses that came before anyone waited

    def _given(self) -> str:
        return json.dumps(self._limits)

    def _ensure(self) -> socket.socket:
        """Start the spawner if it is not running; attach its socket to the running event loop."""
        if self._sock is None or (self._proc is not None and self._proc.poll() is not None):
            self.close()
            mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                self._proc = subprocess.Popen(
                    [sys.executable, "-S", "-c", _SPAWNER, str(theirs.fileno()), str(os.getpid()), self._given()],
                    pass_fds=[theirs.fileno()],
                    stdin=subprocess.DEVNULL,
                    close_fds=True,
                )
            except OSError as err:
                mine.close()
                raise Unavailable(f"could not start the command spawner: {err}") from None
            finally:
                theirs.close()
            mine.setblocking(False)
            self._sock = mine
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._sock.fileno())
            loop.add_reader(self._sock.fileno(), self._read)
            self._loop = loop
        return self._sock

    async def start(self, argv: list[str], env: dict[str, str], cwd: str) -> tuple[int, int, int]:
        """Start ``argv`` (argv[0] an absolute path) with stdin closed; return (its pid, the read
        end of its stdout, of its stderr). Raises Unavailable when it cannot be started."""
        sock = self._ensure()
        ident = next(self._ids)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        message = json.dumps({"id": ident, "argv": argv, "env": env, "cwd": cwd}).encode()
        if len(message) > _MESSAGE_MAX:
            for fd in (out_r, out_w, err_r, err_w):
                os.close(fd)
            raise Unavailable(f"the command and its environment are {len(message)} bytes; at most {_MESSAGE_MAX}")
        body = os.memfd_create("alos-spawn", os.MFD_CLOEXEC)  # any size: a socket message is bounded
        started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._started[ident] = started
        try:
            with os.fdopen(body, "wb", closefd=False) as f:
                f.write(message)
            os.lseek(body, 0, os.SEEK_SET)
            fds = array.array("i", [body, out_w, err_w])
            sock.sendmsg([b"spawn"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
            os.close(body)
            body = -1
            pid = await started
        except OSError as err:
            os.close(out_r)
            os.close(err_r)
            raise Unavailable(f"could not hand the command to the spawner: {err.strerror or err}") from None
        except BaseException:
            os.close(out_r)
            os.close(err_r)
            raise
        finally:
            self._started.pop(ident, None)
            os.close(out_w)
            os.close(err_w)
            if body >= 0:
                os.close(body)
        return pid, out_r, err_r

    async def wait(self, pid: int) -> int:
        """Return the exit status of command ``pid`` (as os.waitpid gives it) once it has exited."""
        if pid in self._early:
            return self._early.pop(pid)
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._exits[pid] = done
        try:
            return await done
        finally:
            self._exits.pop(pid, None)

    def children(self) -> list[int]:
        """Return the spawner's children: the commands it started, and the processes they left
        behind when their parent died (the spawner is their subreaper)."""
        if self._proc is None or self._proc.poll() is not None:
            return []
        pid = self._proc.pid
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                return [int(p) for p in f.read().split()]
        except (OSError, ValueError):
            return []

    def _read(self) -> None:
        """Take every message the spawner sent."""
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(1 << 16)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self._lost()
                return
            self._take(json.loads(data))

    def _take(self, msg: dict[str, Any]) -> None:
        if "id" in msg:
            started = self._started.get(int(msg["id"]))
            if started is not None and not started.done():
                if "pid" in msg:
                    started.set_result(int(msg["pid"]))
                else:
                    started.set_exception(Unavailable(f"could not start the command: {msg.get('error', '?')}"))
            return
        pid, status = int(msg["pid"]), int(msg["status"])
        waiting = self._exits.get(pid)
        if waiting is not None and not waiting.done():
            waiting.set_result(status)
        else:
            self._early[pid] = status

    def _lost(self) -> None:
        """The spawner is gone: fail every waiter (its commands died with it)."""
        err = Unavailable("the command spawner stopped")
        for fut in [*self._started.values(), *self._exits.values()]:
            if not fut.done():
                fut.set_exception(err)
        self.close()

    def close(self) -> None:
        """Stop the spawner (its commands die with it)."""
        if self._sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        self._loop = None
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            self._proc = None
