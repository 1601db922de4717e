"""The agent loop's own cost per quantum with an ``openai:`` model over real HTTP, at ~200 messages.

A process runs ``--model openai:fake-gpt`` (alos.open(..., models=config.load(ws, {"base_url": URL})))
against the fake OpenAI server of tests/fakes, run in a child interpreter on 127.0.0.1 so that it
never holds this interpreter's GIL. The server answers every call with one clock_now call, then
proc_exit. The first SEED_TURNS quanta grow the context to ~200 messages untimed; the next
``plan.loops[0]`` are measured, in ``plan.loops[1]`` runs, each on a fresh store.

What is subtracted. A quantum is timed as in cases.py, from its start to the next quantum's start
(model.call, the tool call's dispatch, audit records, commits, the scheduler). From each we take:
1. the time its HTTP exchange spent inside httpx's transport (httpcore sending the request,
   loopback TCP, the whole fake server, reading and closing the reply), timed in that quantum by
   wrapping httpx.AsyncHTTPTransport.handle_async_request (``_wire_time``; alos is not touched);
2. httpx's own client-side cost for the same request: afterwards the exact bytes the server
   received for that quantum are POSTed again by a bare httpx.AsyncClient (``stream`` then
   ``aiter_bytes``, as alos's transport does) and its round trip less (1) for it is taken.
What is left is alos's: fitting the context, encoding the request as JSON, parsing the reply,
dispatch, audit and the store. Pairing each quantum with its own exchange keeps a busy machine's
noise in the server and the network out of the figure.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import IO, Any

import httpx

import alos
from alos.kernel.sched import Scheduler
from alos.types import Pid
from benchmarks.cases import Bench, Plan, Result, Target, stamped
from benchmarks.compare import ROOT
from benchmarks.stats import summarize

SEED_TURNS = 100  # untimed quanta first: each adds a call and its result, ~200 messages in all
LOOP_TARGET_US = 1_000  # the loop's own cost per quantum, at most
MODEL = "fake-gpt"
HEADERS = {"content-type": "application/json"}  # what alos's OpenAI client sends without a key
DEADLINE = 120.0  # seconds a run may take before it counts as hung (the counts bound the work)

# The server's process: tests/fakes' FakeServer, fed a line at a time on stdin ("push TOOL N":
# answer the next N requests with one call of TOOL; "dump - PATH": write the request bodies not
# yet dumped to PATH, one a line), each line answered "ok" on stdout after the URL. EOF stops it.
_SERVER = textwrap.dedent(
    """
    import socket, sys
    from tests.fakes import openai_server as wire
    from tests.fakes.server import FakeServer

    ARGS = {"clock_now": {}, "proc_exit": {"status": "ok", "result": "done"}}
    fake = FakeServer([wire.PATH])
    # FakeServer's socket is made with proto 0, so asyncio does not set TCP_NODELAY on the
    # connections it accepts: on a kept-alive connection the body, sent after the headers, then
    # waits for the client's delayed ACK (~40 ms a reply). Accepted sockets inherit the option.
    fake._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    fake.start()
    print(fake.url, flush=True)
    made = dumped = 0
    for line in sys.stdin:
        verb, what, arg = line.split()
        if verb == "push":
            for _ in range(int(arg)):
                made += 1
                fake.push(wire.reply(tool_calls=[wire.call(what, ARGS[what], id=f"call_{made:06d}")]))
        else:
            seen = fake.requests[dumped:]
            dumped += len(seen)
            with open(arg, "wb") as f:
                f.writelines(s.raw + b"\\n" for s in seen)
        print("ok", flush=True)
    fake.stop()
    """
)


class Server:
    """The fake OpenAI server's child process; ``url`` is its root."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.url = self._line()
        if not self.url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the fake server said {self.url!r}, not its URL")

    def push(self, tool: str, count: int) -> None:
        """Answer the next ``count`` requests with one call of ``tool`` each."""
        self._say(f"push {tool} {count}")

    def bodies(self, directory: str) -> list[bytes]:
        """Return the request bodies received since the last call, in order."""
        path = os.path.join(directory, "requests.jsonl")
        self._say(f"dump - {path}")
        with open(path, "rb") as f:
            return f.read().splitlines()

    def stop(self) -> None:
        """Stop the server and wait for its process."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def _say(self, line: str) -> None:
        stdin: IO[str] | None = self.proc.stdin
        assert stdin is not None
        stdin.write(line + "\n")
        stdin.flush()
        if self._line() != "ok":
            raise RuntimeError(f"the fake server did not take {line!r}")

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line:
            raise RuntimeError(f"the fake server exited ({self.proc.poll()}); its error is on stderr above")
        return line


@contextmanager
def _models(url: str, root: str, workspace: str) -> Iterator[dict[str, Any]]:
    """Yield the keyword arguments of alos.open that serve openai: models at ``url``, with no
    config file or key of this machine: ``models`` from config.load (the workspace as cwd, an empty
    environment). An alos whose open() takes no ``models`` (before it did) reads the environment
    instead: OPENAI_BASE_URL is set meanwhile and the key, ALOS_MODEL and config files kept out."""
    if "models" in inspect.signature(alos.open).parameters:
        from alos.config import load  # here: an alos from before it has no alos.config

        yield {"models": load(workspace, {"base_url": url}, env={"HOME": root})}
        return
    saved = dict(os.environ)
    for name in ("OPENAI_API_KEY", "ALOS_MODEL"):
        os.environ.pop(name, None)
    os.environ.update({"OPENAI_BASE_URL": url, "XDG_CONFIG_HOME": root, "HOME": root})
    try:
        yield {}
    finally:
        os.environ.clear()
        os.environ.update(saved)


@asynccontextmanager
async def _runtime(url: str) -> AsyncIterator[tuple[alos.Runtime, str]]:
    """Yield a host runtime on a fresh store whose openai: models are served at ``url``, and its
    workspace; release its connections, close it and delete its directory on the way out."""
    root = tempfile.mkdtemp(prefix="alos-bench-")
    try:
        workspace = os.path.join(root, "ws")
        os.mkdir(workspace)
        with _models(url, root, workspace) as models:
            rt = alos.open(os.path.join(root, ".alos", "store.db"), host=True, **models)
            try:
                yield rt, workspace
            finally:
                close_models = getattr(rt, "close_models", None)  # an earlier alos had none
                if close_models is not None:
                    await close_models()
                rt.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


class _TimedStream(httpx.AsyncByteStream):
    """A response body that adds the time spent reading it (and closing it) to ``spent[index]``."""

    def __init__(self, inner: httpx.AsyncByteStream, spent: list[int], index: int) -> None:
        self.inner = inner
        self.spent = spent
        self.index = index

    async def __aiter__(self) -> AsyncIterator[bytes]:
        pieces = aiter(self.inner)
        while True:
            start = time.perf_counter_ns()
            try:
                piece = await anext(pieces)
            except StopAsyncIteration:
                return
            finally:
                self.spent[self.index] += time.perf_counter_ns() - start
            yield piece

    async def aclose(self) -> None:
        start = time.perf_counter_ns()
        try:
            await self.inner.aclose()
        finally:
            self.spent[self.index] += time.perf_counter_ns() - start


@contextmanager
def _wire_time(spent: list[int]) -> Iterator[None]:
    """A measuring instrument: meanwhile, append to ``spent`` the time each HTTP exchange made by
    any httpx.AsyncClient spends inside httpx's transport (httpcore: sending the request, waiting
    for the server, reading and closing the body). alos's code is not touched."""
    real = httpx.AsyncHTTPTransport.handle_async_request

    async def timed(transport: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        start = time.perf_counter_ns()
        response = await real(transport, request)
        spent.append(time.perf_counter_ns() - start)
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_TimedStream(stream, spent, len(spent) - 1),
            extensions=response.extensions,
        )

    setattr(httpx.AsyncHTTPTransport, "handle_async_request", timed)  # noqa: B010
    try:
        yield
    finally:
        setattr(httpx.AsyncHTTPTransport, "handle_async_request", real)  # noqa: B010


def _check(rt: alos.Runtime, pid: Pid, ticks: int) -> None:
    """Raise unless process ``pid`` exited ok after ``ticks`` audited clock.now calls and the
    audit chain verifies. A failed model call shows here: the process exited failed saying why,
    or waits on a request that does."""
    p = rt.process(pid)
    if p.state is not alos.ProcState.EXITED or p.exit is not alos.Exit.OK:
        asked = [f"{r.syscall}: {r.detail}" for r in rt.requests()]
        raise RuntimeError(
            f"the openai: process is {p.state} ({p.exit}) after {p.turns} turns: {p.result}; requests: {asked}"
        )
    done = sum(1 for r in rt.audit(pid) if r.syscall == "clock.now" and r.outcome == "ok")
    if done != ticks:
        raise RuntimeError(f"{done} audited clock.now calls for {ticks} quanta")
    verdict = rt.verify()
    if not verdict.ok:
        raise RuntimeError(f"verify: {verdict.reason}")


def _messages(body: bytes) -> int:
    """Return how many messages a request carries; raise unless its last is a clock_now result."""
    msgs = json.loads(body)["messages"]
    if msgs[-1].get("role") != "tool":
        raise RuntimeError(f"the request's last message is not a tool result: {msgs[-1]!r}"[:300])
    return len(msgs)


async def _run(server: Server, seed: int, measured: int, tmp: str) -> tuple[list[int], list[int], list[bytes]]:
    """Run one process through ``seed + measured`` clock_now quanta and proc_exit; return the
    last ``measured`` quanta's times (ns), the time each spent in HTTP, and the request bodies."""
    calls = seed + measured
    server.push("clock_now", calls)
    server.push("proc_exit", 1)
    stamps: list[int] = []
    wire: list[int] = []
    async with _runtime(server.url + "/v1") as (rt, workspace):
        pid = await rt.spawn("base", "benchmark", workspace=workspace, model=f"openai:{MODEL}")
        rt.kernel.listeners.remove(rt.scheduler._heard)  # the replaced scheduler would queue the pid
        rt.scheduler = Scheduler(rt.kernel, stamped(rt.agent.quantum, stamps))
        with _wire_time(wire):
            async with asyncio.timeout(DEADLINE):
                await rt.run()
        _check(rt, pid, calls)
    bodies = server.bodies(tmp)
    if not len(stamps) == len(wire) == len(bodies) == calls + 1:
        raise RuntimeError(
            f"{len(stamps)} quanta, {len(wire)} HTTP exchanges and {len(bodies)} requests; expected {calls + 1} of each"
        )
    # quantum k (one model call, request k) ends when quantum k+1 starts
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    return gaps[seed:calls], wire[seed:calls], bodies[seed:calls]


async def _post(client: httpx.AsyncClient, url: str, body: bytes) -> None:
    """POST ``body`` as alos's transport does and read the whole reply; raise unless it is a call."""
    async with client.stream("POST", url, content=body, headers=HEADERS) as response:
        reply = b"".join([piece async for piece in response.aiter_bytes()])
    if response.status_code != 200 or b"clock_now" not in reply:
        raise RuntimeError(f"the bare POST got HTTP {response.status_code}: {reply[:200]!r}")


async def _client_side(server: Server, bodies: list[bytes], tmp: str) -> list[int]:
    """Return httpx's own cost (ns) of each of ``bodies`` POSTed again by a bare client: the round
    trip less its time inside httpx's transport. A connection is opened (untimed) first."""
    server.push("clock_now", len(bodies) + 1)
    url = server.url + "/v1/chat/completions"
    totals: list[int] = []
    wire: list[int] = []
    with _wire_time(wire):
        async with httpx.AsyncClient(timeout=30) as client:
            await _post(client, url, bodies[0])
            for body in bodies:
                start = time.perf_counter_ns()
                await _post(client, url, body)
                totals.append(time.perf_counter_ns() - start)
    if len(server.bodies(tmp)) != len(bodies) + 1 or len(wire) != len(bodies) + 1:
        raise RuntimeError(f"{len(wire)} HTTP exchanges for {len(bodies) + 1} bare POSTs")
    return [total - inside for total, inside in zip(totals, wire[1:], strict=True)]


async def model_loop(plan: Plan) -> Result:
    """The loop's own cost per quantum of an openai: process at ~200 messages (module docstring)."""
    measured, runs = plan.loops
    server = Server()
    tmp = tempfile.mkdtemp(prefix="alos-bench-")
    gaps: list[int] = []
    wire: list[int] = []
    client: list[int] = []
    sizes: list[int] = []
    try:
        await _run(server, 5, 1, tmp)  # warm-up: imports, the first connection
        for _ in range(runs):
            quanta, inside, bodies = await _run(server, SEED_TURNS, measured, tmp)
            gaps += quanta
            wire += inside
            client += await _client_side(server, bodies, tmp)
            sizes += [_messages(b) for b in bodies]
            size = len(bodies[-1])
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    loop = [g - w - c for g, w, c in zip(gaps, wire, client, strict=True)]
    note = (
        f"context {min(sizes)}-{max(sizes)} messages ({size / 1024:,.0f} KiB a request); a quantum "
        f"{_us(gaps)}, less HTTP in httpx's transport {_us(wire)} and httpx's client side {_us(client)}"
    )
    name = f"agent loop's own cost per quantum, openai: over HTTP (~{2 * SEED_TURNS} messages)"
    return Result(name, summarize(loop), None, "", Target("median", LOOP_TARGET_US), note=note)


def _us(samples: list[int]) -> str:
    return f"{statistics.median(samples) / 1e3:,.0f} us"


BENCHES: dict[str, Bench] = {
    "loop": model_loop,
}
