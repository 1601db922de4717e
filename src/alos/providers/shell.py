"""Commands on the host: run an authorized argv with limits, in its own session, and kill all of it.

It receives a ShellRequest that dispatch() already decided and runs exactly that: the program
decided on (argv[0] replaced by its real path), in the given directory, with exactly the given
environment, stdin closed. Limits: wall time (the provider kills), CPU seconds, data size, file
size and processes (rlimits, set in the child before exec), and output (bytes kept per stream;
a flood far beyond it is stopped). Each command gets a session and process group of its own and
a marker in its environment; when it ends, times out, is cancelled or killed (``kill(pid)``,
``close()``), its group is killed and so is every process still carrying its marker (a child that
daemonised into a session of its own). With bubblewrap (``bwrap``) installed, and isolation asked
for, the command also runs in namespaces of its own: the file system read-only except the paths
given as writable, a private /tmp, the store's directory masked, no network unless asked, and a
pid namespace that dies with it. No policy here: dispatch() decided what may run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from alos import limits, shellforms
from alos.errors import Unavailable
from alos.providers.base import ShellLimits, ShellRequest, ShellResult
from alos.providers.leftovers import MARKER, group_and_session, marked
from alos.providers.spawn import Spawner


@dataclass(slots=True)
class _Running:
    pid: int  # the alos process
    marker: str
    group: int | None = None  # the command's pid, which leads its session and group; None while it starts
    killed: bool = False


@dataclass(slots=True)
class _Stream:
    """A stream's first ``head`` bytes and its last ``keep - head``, and its whole size."""

    keep: int
    head: int
    kept: bytearray = field(default_factory=bytearray)
    tail: bytearray = field(default_factory=bytearray)
    total: int = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head - len(self.kept)
        if room > 0:
            self.kept += chunk[:room]
            chunk = chunk[room:]
        self.tail += chunk
        most = self.keep - self.head
        if len(self.tail) > most:
            del self.tail[: len(self.tail) - most]

    def whole(self) -> bytes:
        """Return what is kept: the head, then the tail."""
        return bytes(self.kept + self.tail)


class HostShell:
    """Runs commands on this host (see the module docstring)."""

    def __init__(self, bwrap: str | None = None, tag: str = "") -> None:
        """``bwrap``: the bubblewrap to isolate with ("" for none; default: found on PATH). ``tag``
        names the store: commands are marked with it and their process's pid, so that a later host
        of the same store finds and kills what a host that died left running."""
        self._bwrap = bwrap if bwrap is not None else shutil.which("bwrap")
        self._tag = "".join(c for c in tag if c.isalnum())[:32] or "alos"
        self._version: str | None = None
        self._running: list[_Running] = []
        self._spawners: dict[str, Spawner] = {}  # one for each set of limits (one in practice)

    def locate(self, cwd: str, program: str, path: str) -> str | None:
        """Return the real absolute path of the executable ``program`` names, or None."""
        return shellforms.locate(cwd, program, path)

    def isolation(self) -> str | None:
        """Return "bwrap VERSION" when bubblewrap can isolate commands here, else None."""
        if not self._bwrap:
            return None
        if self._version is None:
            try:
                out = subprocess.run(
                    [self._bwrap, "--version"], capture_output=True, timeout=5, check=False, stdin=subprocess.DEVNULL
                )
                self._version = out.stdout.decode(errors="replace").strip() or "bwrap"
            except (OSError, subprocess.TimeoutExpired):
                self._bwrap = None
                return None
        return self._version

    def read(self, path: str, limit: int) -> bytes | None:
        """Return up to ``limit`` bytes of the regular file ``path`` on this host, or None."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            return os.read(fd, limit)
        except OSError:
            return None
        finally:
            os.close(fd)

    async def run(self, request: ShellRequest) -> ShellResult:
        """Run the command and wait for it; see the module docstring."""
        isolated = request.isolate != "off" and self.isolation() is not None
        if request.isolate == "required" and not isolated:
            raise Unavailable("isolation is required (--isolate required) but bubblewrap (bwrap) is not installed here")
        marker = f"{self._tag}/{request.pid}/{secrets.token_hex(8)}"
        home = tempfile.mkdtemp(prefix="alos-home-")  # empty, its own: no dotfile of anyone's runs in it
        env = {**request.env, "HOME": home, MARKER: marker}
        argv = [request.program, *request.argv[1:]]
        if isolated:
            argv = [*self._wrap(request, home), *argv]
        started = time.monotonic()
        running = _Running(request.pid, marker)
        self._running.append(running)  # before it starts: a kill meanwhile finds it
        try:
            pid, out_fd, err_fd = await self._spawner(request.limits).start(argv, env, request.cwd)
        except BaseException:
            self._running.remove(running)
            raise
        running.group = pid
        if running.killed:
            _kill(running)
        head = min(limits.SHELL_HEAD_BYTES, request.limits.output_bytes)
        out, err = _Stream(request.limits.output_bytes, head), _Stream(request.limits.output_bytes, head)
        flood = max(request.limits.output_bytes * limits.SHELL_FLOOD_FACTOR, limits.SHELL_FLOOD_MIN_BYTES)
        stop: list[str] = []
        pipes: list[asyncio.BaseTransport] = []

        def flooded() -> bool:
            return out.total + err.total > flood and _stop(stop, "output", running)

        readers = asyncio.gather(_drain(out_fd, out, flooded, pipes), _drain(err_fd, err, flooded, pipes))
        exited: asyncio.Future[int] = asyncio.ensure_future(self._spawner(request.limits).wait(pid))
        try:
            try:
                status = await asyncio.wait_for(asyncio.shield(exited), request.limits.wall_seconds)
            except TimeoutError:
                _stop(stop, "wall", running)
                status = await exited
            _kill(running)  # the command is over: nothing it started outlives it
            self._sweep()
            await _settle(readers)
        except BaseException:
            _kill(running)  # cancelled (the host is stopping): nothing of it outlives the call
            for task in (readers, exited):
                task.cancel()
            raise
        finally:
            self._running.remove(running)
            for pipe in pipes:
                pipe.close()
            shutil.rmtree(home, ignore_errors=True)
        if running.killed and not stop:
            stop.append("killed")
        code = os.waitstatus_to_exitcode(status)
        return _result(code, out, err, time.monotonic() - started, stop[0] if stop else None, isolated)

    def kill(self, pid: int) -> int:
        """Kill every command running for process ``pid`` (and whatever a host of the same store
        that died left of its commands); return how many commands of this host it killed."""
        mine = [r for r in self._running if r.pid == pid]
        for running in mine:
            running.killed = True
            _kill(running)
        for left in marked(f"{self._tag}/{pid}/"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(left, signal.SIGKILL)
        self._sweep()
        return len(mine)

    def _sweep(self) -> None:
        """Kill what commands left behind outside their groups: a spawner's children that are not
        a running command, nor in a running command's group or session (a daemon that left both,
        and its own group with it)."""
        if any(r.group is None for r in self._running):
            return  # a command is starting (its pid not known yet): sweep after the next one
        running = {r.group for r in self._running if r.group is not None}
        for spawner in self._spawners.values():
            for pid in spawner.children():
                where = group_and_session(pid)
                if pid in running or where & running:
                    continue
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    if where == {pid}:  # it leads a session of its own: its group goes with it
                        os.killpg(pid, signal.SIGKILL)
                    os.kill(pid, signal.SIGKILL)

    def close(self) -> None:
        """Kill every command still running, and stop the spawner."""
        for running in list(self._running):
            running.killed = True
            _kill(running)
        for spawner in self._spawners.values():
            spawner.close()
        self._spawners.clear()

    def _spawner(self, chosen: ShellLimits) -> Spawner:
        """Return the spawner whose commands get ``chosen``'s rlimits."""
        rlimits = _rlimits(chosen)
        key = repr(rlimits)
        found = self._spawners.get(key)
        if found is None:
            found = self._spawners[key] = Spawner(rlimits)
        return found

    def _wrap(self, request: ShellRequest, home: str) -> list[str]:
        """Return the bwrap command line that isolates ``request``: the host read-only but for its
        home directory, /run and /tmp (empty: no one's keys, sockets or files), ``home`` made
        empty in it, the paths it may write bound writable, and the store's directory hidden."""
        assert self._bwrap is not None
        args = [self._bwrap, "--die-with-parent", "--new-session", "--unshare-all"]
        if request.network:
            args.append("--share-net")
        args += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
        for private in (os.path.expanduser("~"), "/run", "/var/run", "/root"):
            if os.path.isdir(private) and not os.path.islink(private) and private != "/":
                args += ["--tmpfs", private]
        args += ["--dir", home]
        hidden = (os.path.expanduser("~"), "/run", "/var/run", "/root", "/tmp")
        # the empty ones must not hide the workspace, nor the toolchains on the search path (pyenv,
        # ~/.local/bin, cargo ...): each is bound back read-only, whole (the top directory under home)
        tools = [_top_under(d, hidden) for d in request.env.get("PATH", "").split(":") if d.startswith("/")]
        for path in (*tools, request.cwd, *request.writable):
            if path and any(path.startswith(h.rstrip("/") + "/") for h in hidden) and os.path.exists(path):
                args += ["--ro-bind", path, path]
        for path in request.writable:
            if os.path.exists(path):
                args += ["--bind", path, path]
        for path in request.readonly:
            if os.path.exists(path) and any(
                path == w or path.startswith(w.rstrip("/") + "/") for w in request.writable
            ):
                args += ["--ro-bind", path, path]
        for path in request.hidden:
            if os.path.isdir(path):
                args += ["--tmpfs", path]
        args += ["--chdir", request.cwd, "--"]
        return args


def _result(code: int, out: _Stream, err: _Stream, duration: float, stop: str | None, isolated: bool) -> ShellResult:
    """Return what ran: a negative ``code`` is the signal that ended it; isolated, bubblewrap says
    128+N for a command signal N ended (as a shell does), and it is read so."""
    if isolated and 128 < code < 128 + signal.NSIG:
        code = 128 - code
    sig = -code if code < 0 else None
    return ShellResult(
        exit_code=None if sig else code,
        signal=signal.Signals(sig).name if sig and sig in signal.Signals._value2member_map_ else None,
        stdout=out.whole(),
        stderr=err.whole(),
        stdout_bytes=out.total,
        stderr_bytes=err.total,
        duration=duration,
        limit=stop or _limit_of(sig),
        isolated=isolated,
    )


def _top_under(path: str, roots: tuple[str, ...]) -> str:
    """Return the directory right under the one of ``roots`` that holds ``path`` (~/.pyenv for
    ~/.pyenv/shims), or "" when none holds it."""
    for root in roots:
        base = root.rstrip("/") + "/"
        if path.startswith(base):
            return base + path[len(base) :].split("/", 1)[0]
    return ""


def _rlimits(chosen: ShellLimits) -> list[list[int]]:
    """Return the rlimits the spawner sets in the command before it execs (no core files either)."""
    cpu = max(1, int(chosen.cpu_seconds))
    return [
        [resource.RLIMIT_CPU, cpu, cpu + 1],
        [resource.RLIMIT_DATA, chosen.memory_bytes, chosen.memory_bytes],
        [resource.RLIMIT_FSIZE, chosen.file_bytes, chosen.file_bytes],
        [resource.RLIMIT_NPROC, chosen.processes, chosen.processes],
        [resource.RLIMIT_CORE, 0, 0],
    ]


async def _drain(fd: int, into: _Stream, flooded: Callable[[], object], pipes: list[asyncio.BaseTransport]) -> None:
    """Read the pipe ``fd`` to its end, keeping what fits and counting the rest."""
    loop = asyncio.get_running_loop()
    pipe = asyncio.StreamReader(limit=1 << 16, loop=loop)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(pipe, loop=loop), os.fdopen(fd, "rb", buffering=0)
    )
    pipes.append(transport)
    while True:
        chunk = await pipe.read(1 << 16)
        if not chunk:
            return
        into.add(chunk)
        if flooded():
            return


async def _settle(readers: asyncio.Future[Any]) -> None:
    """Let the readers see the end of their pipes once the command was killed (a grandchild that
    kept a pipe open may hold it: stop waiting after a moment)."""
    done, _ = await asyncio.wait((readers,), timeout=limits.SHELL_KILL_GRACE_SECONDS)
    if not done:
        readers.cancel()
        await asyncio.wait((readers,))  # its cancellation, not the caller's: that one propagates


def _stop(stop: list[str], why: str, running: _Running) -> bool:
    """Record why the command is being stopped and kill it; return True."""
    if not stop:
        stop.append(why)
    _kill(running)
    return True


def _kill(running: _Running) -> None:
    """Kill the command's process group until it is empty, then every process still marked as its own."""
    if running.group is None:
        return  # not started yet: run() kills it once it has
    pgid = running.group  # the spawner made it lead a session and group of its own
    for _ in range(limits.SHELL_KILL_ROUNDS):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            break
    for pid in marked(running.marker + "\0", since=pgid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _limit_of(sig: int | None) -> str | None:
    """Return the limit a signal means: SIGXCPU the CPU time, SIGXFSZ the file size."""
    if sig == signal.SIGXCPU:
        return "cpu"
    if sig == signal.SIGXFSZ:
        return "file"
    return None
