"""The JIT provider: runs agent-written TypeScript tools in Deno workers (docs/jit.md).
Size: a worker's life (start, call, broker, kill) and the pool that keeps workers act on the one
Worker record; the protocol's checks (jitwire.py) and the Deno process's limits (denoproc.py)
are apart already.

A worker is one ``deno run`` of jit_runner.ts with no ``--allow-*`` flag, ``--no-remote
--no-npm --cached-only --no-config``, V8 flags that cap the heap and refuse code made from
strings, RLIMIT_CPU set afresh before each call, in a directory of its own that holds the runner
and the tools it was handed, under bubblewrap when it is installed (the host's files out of
sight: no /proc, no home, only /usr read-only), in a session of its own so that its whole
process group is killed. It speaks JSON lines on stdin and stdout; every line from it is hostile
and checked here: a malformed one, a pid other than the call's, a line past the output cap or
more syscalls than allowed ends the call and the worker.

Deno's permission broker (``DENO_PERMISSION_BROKER_PATH``): each worker gets a Unix socket of
its own whose requests go to the ``decide`` callback of the call in progress; with no call in
progress, or for run, ffi, sys or a /proc path, the answer is deny whatever the callback says.
A broker that Deno did not use (no probe request before the runner said it was ready) is
reported by ``broker`` and workers run without it (no permissions at all).

A worker serves one process at a time: it is kept for the process that used it last, handed to
no other, and killed after a call that failed, parked or hit a limit. This module knows nothing
of capabilities: ``syscall`` and ``decide`` are the caller's (tooljit.py goes to dispatch()).
The run/ffi/sys and /proc refusal here repeats tool.permit's on purpose: the broker fails closed
even if a caller's ``decide`` allowed them.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

from alos import limits
from alos.errors import Unavailable
from alos.providers import denoproc, jitwire

if TYPE_CHECKING:
    from alos.providers import jitcheck

PARK = object()  # what ``syscall`` or ``decide`` returns when the process now waits on a person
Syscall = Callable[[str, dict[str, Any]], Awaitable[Any]]  # -> {"ok": v} | {"error": text} | PARK
Decide = Callable[[str, str | None], Awaitable[Any]]  # -> "" (allow) | a reason to deny | PARK
_NEVER = frozenset({"run", "ffi", "sys"})  # never allowed through the broker, whatever is held
_PROBE = "ALOS_BROKER_PROBE"  # the env name the runner asks for first: proof that Deno asks the broker


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a tool call ended: ``value`` when ok, else ``error``; ``limit`` names a limit it hit
    (wall, cpu, memory, output, syscalls); ``parked``: a syscall now waits on a person."""

    ok: bool
    value: Any = None
    error: str = ""
    output: tuple[str, ...] = ()
    limit: str | None = None
    parked: bool = False
    syscalls: int = 0


@dataclass(slots=True)
class Worker:
    proc: asyncio.subprocess.Process
    home: str
    loop: asyncio.AbstractEventLoop
    server: asyncio.AbstractServer | None
    deno_pid: int = 0
    owner: int | None = None  # the process it has served (it serves no other)
    modules: set[str] = field(default_factory=set)
    wrappers: str = ""
    decide: Decide | None = None  # the broker's callback while a call runs
    parked: bool = False
    probed: bool = False
    asked: int = 0  # broker requests in the call in progress
    brokered: bool = False  # Deno has connected to its broker socket (once: no other connection is served)
    flooded: bool = False  # past JIT_SYSCALLS_MAX of them: the worker was killed
    err: bytearray = field(default_factory=bytearray)
    calls: int = 0
    inside: str = ""  # the worker's directory as Deno sees it (/w under bubblewrap)
    drainer: asyncio.Task[None] | None = None
    cpu_began: float = 0.0  # CPU seconds Deno had used when the call began
    cpu: float = 0.0  # when the last call ended: a worker that used CPU since, idle, is not reused

    def alive(self) -> bool:
        return self.proc.returncode is None and not self.loop.is_closed()


class Jit:
    """The host's Deno workers. ``deno``: the binary (default: the one the ``deno`` package
    installed); ``isolate``: auto (bubblewrap when installed), off, or required."""

    def __init__(self, deno: str | None = None, isolate: str = "auto", warm: int = limits.JIT_WORKERS_WARM) -> None:
        self._deno = deno
        self._isolate = isolate
        self._warm = warm
        self._idle: list[Worker] = []
        self._kept: dict[int, Worker] = {}  # owner pid -> its worker, oldest first
        self._starting: set[asyncio.Task[None]] = set()
        self._reaping: set[asyncio.Task[None]] = set()  # killed workers being waited for
        self._root: str | None = None
        self.broker: str = "unknown"  # "used", or why not: set once a worker has started
        self._broker_on = True
        self._bwrap = shutil.which("bwrap") if isolate != "off" else None
        self._verdicts: dict[str, jitcheck.Verdict] = {}  # source digest -> its check (Deno's answer does not change)

    # -- what runs where ------------------------------------------------------------------

    def binary(self) -> str:
        """Return the deno binary; raise Unavailable when there is none."""
        if self._deno is None:
            try:
                import deno  # type: ignore[import-untyped]  # the PyPI package: its binary is in the venv's bin/

                self._deno = str(deno.find_deno_bin())
            except (ImportError, FileNotFoundError, OSError) as err:
                raise Unavailable(f"no deno binary for JIT tools ({err}); reinstall alos ('make install')") from None
        if not os.access(self._deno, os.X_OK):
            raise Unavailable(f"the deno binary {self._deno} is not executable; reinstall alos")
        return self._deno

    def isolation(self) -> str | None:
        """Return "bwrap" when workers run under bubblewrap, else None."""
        if self._isolate == "required" and not self._bwrap:
            raise Unavailable("isolation is required but bubblewrap (bwrap) is not installed here")
        return "bwrap" if self._bwrap else None

    def _dir(self) -> str:
        if self._root is None or not os.path.isdir(self._root):
            self._root = tempfile.mkdtemp(prefix="alos-jit-")
            os.mkdir(os.path.join(self._root, "cache"), 0o700)
            atexit.register(shutil.rmtree, self._root, True)  # a host that never closed its Jit leaves none
        return self._root

    async def check(self, source: str) -> jitcheck.Verdict:
        """Return whether ``source`` may be registered (the static policy, then deno info and
        ``deno check`` against the Libos declarations of jit_libos.ts); verdicts are kept by digest."""
        from alos.providers import jitcheck

        key = hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()
        found = self._verdicts.get(key)
        if found is None:
            declarations = resources.files("alos.providers").joinpath("jit_libos.ts").read_text()
            found = await jitcheck.check(self.binary(), source, declarations, os.path.join(self._dir(), "cache"))
            if len(self._verdicts) >= 256:
                del self._verdicts[next(iter(self._verdicts))]
            self._verdicts[key] = found
        return found

    # -- running a call ---------------------------------------------------------------------

    async def run(
        self,
        owner: int,
        module: str,
        source: str,
        args: Any,
        syscall: Syscall,
        decide: Decide,
        wrappers: dict[str, str | None],
    ) -> Outcome:
        """Run tool ``module`` (its source ``source``) with ``args`` for process ``owner``."""
        worker = await self._take(owner)
        worker.owner = owner
        worker.decide = decide
        worker.asked = 0
        try:
            outcome = await self._call(worker, owner, module, source, args, syscall, wrappers)
        except BaseException:
            self._kill(worker)
            raise
        finally:
            worker.decide = None
        worker.cpu = denoproc.cpu_used(worker.deno_pid)
        if outcome.ok and worker.cpu - worker.cpu_began > limits.JIT_CPU_SECONDS:  # the signal was caught
            outcome = Outcome(False, error=f"the tool used its CPU time ({limits.JIT_CPU_SECONDS} s)", limit="cpu",
                              syscalls=outcome.syscalls)  # fmt: skip
        if outcome.ok and worker.alive():
            self._keep(owner, worker)
        else:  # a failed call may have left anything behind in the worker's globals
            self._kill(worker)
        return outcome

    async def _call(
        self,
        w: Worker,
        pid: int,
        module: str,
        source: str,
        args: Any,
        syscall: Syscall,
        wrappers: dict[str, str | None],
    ) -> Outcome:
        if module not in w.modules:
            with open(os.path.join(w.home, "t", module), "w", encoding="utf-8") as f:
                f.write(source)
            w.modules.add(module)
        table = json.dumps(wrappers, sort_keys=True)
        if w.wrappers != table:
            self._send(w, {"op": "init", "wrappers": wrappers})
            w.wrappers = table
        w.cpu_began = denoproc.limit_cpu(w.deno_pid)
        w.calls += 1
        nonce = secrets.token_hex(16)  # on every line of this call; no tool can read it
        self._send(w, {"op": "run", "id": w.calls, "nonce": nonce, "pid": pid, "module": module, "args": args})
        budget, made = limits.JIT_WALL_SECONDS, 0
        assert w.proc.stdout is not None
        while True:
            began = time.monotonic()
            try:
                line = await asyncio.wait_for(w.proc.stdout.readline(), max(budget, 0.001))
            except TimeoutError:
                return Outcome(False, error=f"the tool ran past its wall time ({limits.JIT_WALL_SECONDS:g} s)",
                               limit="wall", syscalls=made)  # fmt: skip
            except ValueError:  # a line past the stream's limit
                return Outcome(False, error=f"the tool wrote a message past the output cap "
                               f"({limits.JIT_OUTPUT_MAX_BYTES} bytes)", limit="output", syscalls=made)  # fmt: skip
            budget -= time.monotonic() - began
            if not line:
                return await self._ended(w, made)
            msg = jitwire.parse(line)
            if isinstance(msg, str):
                return Outcome(False, error=f"malformed message from the tool: {msg}", syscalls=made)
            op = msg.get("op")
            problem = _misplaced(msg, pid, w.calls, nonce)
            if problem:
                return Outcome(False, error=f"malformed message from the tool: {problem}", syscalls=made)
            if op == "done":
                output = jitwire.lines(msg.get("output"))
                if msg.get("limit") == "output":
                    return Outcome(False, error=f"the tool's console output passed the output cap "
                                   f"({limits.JIT_OUTPUT_MAX_BYTES} bytes)", limit="output", syscalls=made)  # fmt: skip
                if "error" in msg:
                    return Outcome(False, error=f"the tool failed: {jitwire.text(msg['error'])}", output=output,
                                   syscalls=made)  # fmt: skip
                if len(json.dumps(msg.get("ok"))) > limits.JIT_OUTPUT_MAX_BYTES:
                    return Outcome(False, error=f"the tool's result is past the output cap "
                                   f"({limits.JIT_OUTPUT_MAX_BYTES} bytes)", limit="output", syscalls=made)  # fmt: skip
                return Outcome(True, value=msg.get("ok"), output=output, syscalls=made)
            made += 1
            if made > limits.JIT_SYSCALLS_MAX:
                return Outcome(False, error=f"the tool made more than {limits.JIT_SYSCALLS_MAX} syscalls in one call",
                               limit="syscalls", syscalls=made - 1)  # fmt: skip
            answer = await syscall(msg["name"], msg["args"])
            if answer is PARK:
                return Outcome(False, parked=True, syscalls=made)
            self._send(w, {"op": "result", "id": msg["id"], **answer})

    async def _ended(self, w: Worker, made: int) -> Outcome:
        """Return why a worker's stdout closed in the middle of a call (it died)."""
        if w.parked:
            return Outcome(False, parked=True, syscalls=made)
        if w.flooded:
            return Outcome(False, error=f"the tool asked Deno's permission broker more than {limits.JIT_SYSCALLS_MAX} "
                           "times in one call", limit="syscalls", syscalls=made)  # fmt: skip
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(w.proc.wait(), 2.0)
        code = w.proc.returncode
        if code is not None and code > 128 and self.isolation():
            code = 128 - code  # bubblewrap reports a signal N as 128+N
        said = bytes(w.err).decode(errors="replace")
        if code == -signal.SIGXCPU:
            return Outcome(False, error=f"the tool used its CPU time ({limits.JIT_CPU_SECONDS} s)", limit="cpu",
                           syscalls=made)  # fmt: skip
        if "out of memory" in said or "heap limit" in said:
            return Outcome(False, error=f"the tool ran out of its memory ({limits.JIT_HEAP_MB} MiB of heap)",
                           limit="memory", syscalls=made)  # fmt: skip
        last = " ".join(said.split())[-300:]
        return Outcome(False, error=f"the Deno worker ended (exit {code}): {jitwire.text(last)}", syscalls=made)

    def _send(self, w: Worker, message: dict[str, Any]) -> None:
        assert w.proc.stdin is not None
        w.proc.stdin.write(json.dumps(message).encode() + b"\n")

    # -- the pool -----------------------------------------------------------------------------

    async def _take(self, owner: int) -> Worker:
        """Return the worker ``owner`` used last, or a fresh one (starting another in its place)."""
        loop = asyncio.get_running_loop()
        mine = self._kept.pop(owner, None)
        if (
            mine is not None
            and mine.alive()
            and mine.loop is loop
            and denoproc.cpu_used(mine.deno_pid) - mine.cpu < 0.5
        ):
            return mine
        if mine is not None:
            self._kill(mine)
        while self._idle:
            w = self._idle.pop()
            if w.alive() and w.loop is loop:
                self._refill()
                return w
            self._kill(w)
        w = await self._start()
        self._refill()
        return w

    def _keep(self, owner: int, w: Worker) -> None:
        self._kept[owner] = w
        while len(self._kept) > limits.JIT_WORKERS_KEPT:
            self._kill(self._kept.pop(next(iter(self._kept))))

    def _refill(self) -> None:
        """Start workers in the background until ``warm`` wait idle."""
        while len(self._idle) + len(self._starting) < self._warm:
            task = asyncio.get_running_loop().create_task(self._warm_one())
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    async def _warm_one(self) -> None:
        with contextlib.suppress(Unavailable):
            self._idle.append(await self._start())

    async def warm(self) -> None:
        """Start the warm workers now (a host that expects JIT calls pays Deno's start-up early)."""
        self._refill()
        if self._starting:
            await asyncio.gather(*self._starting, return_exceptions=True)

    async def _start(self) -> Worker:
        """Start a worker and wait for its runner to say it is ready; raise Unavailable if it cannot."""
        deno = self.binary()
        home = tempfile.mkdtemp(prefix="w-", dir=self._dir())
        os.mkdir(os.path.join(home, "t"))
        os.mkdir(os.path.join(home, "cache"))
        runner = resources.files("alos.providers").joinpath("jit_runner.ts").read_text()
        with open(os.path.join(home, "runner.ts"), "w", encoding="utf-8") as f:
            f.write(runner)
        loop = asyncio.get_running_loop()
        holder: list[Worker] = []
        server = None
        sock = os.path.join(home, "broker.sock")
        if self._broker_on:
            server = await asyncio.start_unix_server(lambda r, w: _serve_broker(holder, r, w), path=sock)
        inside = home if not self._bwrap else "/w"
        argv, env = self._command(deno, home, inside, broker=server is not None)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=home,
                env=env,
                start_new_session=True,
                limit=2 * limits.JIT_OUTPUT_MAX_BYTES + 4096,
            )
        except OSError as err:
            if server is not None:
                server.close()
            shutil.rmtree(home, ignore_errors=True)
            raise Unavailable(f"could not start deno ({deno}): {err.strerror or err}") from None
        w = Worker(proc, home, loop, server, inside=inside)
        holder.append(w)
        w.drainer = loop.create_task(_drain(w))
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), limits.JIT_START_SECONDS)
        except (TimeoutError, ValueError):
            line = b""
        except BaseException:  # cancelled (the host is closing): the worker goes with it
            self._kill(w)
            raise
        if jitwire.parse(line) != {"op": "ready"}:
            self._kill(w)
            said = " ".join(bytes(w.err).decode(errors="replace").split())[-300:]
            if server is not None and self.broker == "unknown":  # try once more without the broker
                self._broker_on = False
                self.broker = f"not used: a worker with it did not start ({jitwire.text(said)})"
                return await self._start()
            raise Unavailable(f"a Deno worker did not start: {jitwire.text(said) or 'no message'}")
        w.deno_pid = denoproc.deno_pid(proc.pid, deno if not self._bwrap else "/alos/deno")
        denoproc.set_data_limit(w.deno_pid)
        if server is not None:
            if w.probed:
                self.broker = "used"
            elif self.broker == "unknown":
                self._broker_on = False
                self.broker = "not used: Deno sent the broker no request for the runner's probe"
        return w

    def _command(self, deno: str, home: str, inside: str, broker: bool) -> tuple[list[str], dict[str, str]]:
        """Return the command line and environment of a worker in ``home`` (``inside`` as Deno sees it)."""
        cache = os.path.join(inside, "cache")  # its own: Deno keeps localStorage and caches there too
        env = {"HOME": inside, "DENO_DIR": cache, "NO_COLOR": "1", "DENO_NO_UPDATE_CHECK": "1",
               "PATH": "/usr/bin:/bin"}  # fmt: skip
        if broker:
            env["DENO_PERMISSION_BROKER_PATH"] = os.path.join(inside, "broker.sock")
        flags = f"--v8-flags=--max-old-space-size={limits.JIT_HEAP_MB},--disallow-code-generation-from-strings"
        argv = [deno, "run", "--no-prompt", "--no-config", "--no-remote", "--no-npm", "--cached-only",
                "--no-lock", flags, "runner.ts", str(limits.JIT_OUTPUT_MAX_BYTES)]  # fmt: skip
        return (self._wrap(home, argv) if self._bwrap else argv), env

    def _wrap(self, home: str, argv: list[str]) -> list[str]:
        """Return ``argv`` run under bubblewrap: /usr read-only, the worker's directory at /w,
        its Deno cache in it, a fresh /dev and /tmp; no /proc, no home, no network."""
        assert self._bwrap is not None
        args = [self._bwrap, "--die-with-parent", "--new-session", "--unshare-all", "--ro-bind", "/usr", "/usr"]
        for name in ("lib", "lib64", "bin"):
            path = f"/{name}"
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        args += ["--ro-bind", argv[0], "/alos/deno", "--bind", home, "/w",
                 "--dev", "/dev", "--tmpfs", "/tmp",
                 "--chdir", "/w", "--", "/alos/deno", *argv[1:]]  # fmt: skip
        return args

    def _kill(self, w: Worker) -> None:
        """Kill a worker's whole process group (and Deno inside bubblewrap), and remove its directory."""
        for target in (w.proc.pid, w.deno_pid):
            if target:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(target, signal.SIGKILL)
        if w.deno_pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(w.deno_pid, signal.SIGKILL)
        if w.server is not None:
            w.server.close()
        if not w.loop.is_closed():
            if w.proc.stdin is not None:
                w.proc.stdin.close()
            self._reaping.add(w.loop.create_task(_reap(w)))
            for task in [t for t in self._reaping if t.done()]:
                self._reaping.discard(task)
        shutil.rmtree(w.home, ignore_errors=True)

    def close(self) -> None:
        """Kill every worker and remove their directories (from outside their event loop)."""
        for w in self._drop():
            self._kill(w)
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    async def aclose(self) -> None:
        """Kill every worker and wait for each to be gone, in the event loop that started them."""
        for task in self._starting:
            task.cancel()
        await asyncio.gather(*self._starting, return_exceptions=True)
        dropped = self._drop()
        loop = asyncio.get_running_loop()
        for w in dropped:
            self._kill(w)
        waiting = [t for t in self._reaping if t.get_loop() is loop]
        self._reaping.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 5.0)
        self.close()

    def _drop(self) -> list[Worker]:
        dropped = [*self._idle, *self._kept.values()]
        self._idle.clear()
        self._kept.clear()
        return dropped


def _misplaced(msg: dict[str, Any], pid: int, call: int, nonce: str) -> str:
    """Return what is wrong with a line in the middle of call ``call`` ("" when nothing is)."""
    op = msg.get("op")
    if (op == "done" and msg.get("id") != call) or op not in ("done", "syscall"):
        return f"op '{jitwire.text(op)}'"
    problem = jitwire.bad_syscall(msg, pid) if op == "syscall" else ""
    if not problem and msg.get("call") != nonce:  # the runner writes the nonce; a tool cannot read it
        return "a line that is not of this call (a tool wrote it, not the runner)"
    return problem


async def _reap(w: Worker) -> None:
    with contextlib.suppress(ProcessLookupError, TimeoutError):
        await asyncio.wait_for(w.proc.wait(), 5.0)
    if w.drainer is not None:
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(w.drainer, 1.0)


async def _drain(w: Worker) -> None:
    """Read a worker's stderr, keeping its last bytes (Deno's own messages: out of memory ...)."""
    assert w.proc.stderr is not None
    with contextlib.suppress(OSError, ValueError):
        while chunk := await w.proc.stderr.read(4096):
            w.err += chunk
            del w.err[:-8192]


async def _serve_broker(holder: list[Worker], reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer Deno's permission requests for the worker in ``holder`` (JSON lines; fail closed).
    Deno connects once, at its start: a second connection to the socket is not Deno's, and is closed."""
    for _ in range(int(limits.JIT_START_SECONDS * 100)):  # Deno may connect before its start has returned
        if holder:
            break
        await asyncio.sleep(0.01)
    if not holder or holder[0].brokered:
        writer.close()
        return
    holder[0].brokered = True
    try:
        while line := await reader.readline():
            req = jitwire.parse(line)
            if isinstance(req, str) or not isinstance(req.get("id"), int):
                break  # Deno ends the process when it gets no answer: fail closed
            permission, value = str(req.get("permission")), req.get("value")
            value = value if isinstance(value, str) else None
            w = holder[0] if holder else None
            reason = "no tool call is running"
            if w is not None and permission == "env" and value == _PROBE and w.decide is None:
                w.probed = True
            elif w is not None and w.decide is not None and permission == "read" and _within(value, w.inside + "/t/"):
                reason = ""  # the runner loading the process's own tools
            elif w is not None and w.decide is not None:
                w.asked += 1
                if w.asked > limits.JIT_SYSCALLS_MAX:  # each is an audited decision: a flood ends the call
                    w.flooded = True
                    _kill_quietly(w)
                    break
                reason = await w.decide(permission, value)
                if reason is PARK:
                    w.parked = True
                    _kill_quietly(w)
                    break
                if not reason and (permission in _NEVER or (value or "").startswith("/proc")):
                    reason = f"{permission} is never allowed to a JIT tool"
            answer = {"id": req["id"], "result": "deny" if reason else "allow"}
            if reason:
                answer["reason"] = str(reason)[:500]
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
    except (OSError, ValueError, asyncio.CancelledError):
        pass  # the worker or the loop went away: Deno gets no answer and ends (fail closed)
    finally:
        writer.close()


def _within(path: str | None, top: str) -> bool:
    """Return whether ``path`` names a file under directory ``top`` (no '..' steps out of it)."""
    return path is not None and path.startswith(top) and "/.." not in path and "\0" not in path


def _kill_quietly(w: Worker) -> None:
    for target in (w.proc.pid, w.deno_pid):
        if target:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(target, signal.SIGKILL)
