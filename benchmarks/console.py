"""The console and ``alos serve`` at scale: first paint of the console's pages on a store of 10,000
processes and 100,000 audit records, how soon an open page hears of a commit (SSE), what a host
that stays costs while idle, and how soon it acts on a message or an approval.

The big store is built once per run (module-level, in a temp directory removed at exit): a tree
of 1,000 roots with 3 children each and 2 grandchildren under each child, made through the
runtime (proc.spawn by the host and by the processes, then proc.exit, fs.write that asks,
msg.recv, clock.sleep and pause signals for a mix of states), then audit records appended with
alos's own audit.append up to 100,000, so the chain verifies. Every console and host runs as a
real subprocess (``python -m alos.cli``, the ``alos`` command) and is stopped in a ``finally``.
Each timed page is checked to show what the store holds (the rows, the count, the verdict).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import glob
import json
import os
import queue
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import psutil

import alos
from alos import audit
from alos.rights import Effect, Grant, Right, parse_grant
from alos.types import Pid, ProcState
from benchmarks.cases import FULL, Bench, Plan, Result, Target
from benchmarks.fixture import ASKED
from benchmarks.stats import summarize

if TYPE_CHECKING:  # imported where used: an alos from before the console (--before) has no pages
    from alos.kernel import pages

ROOTS = 1_000  # root processes; each has CHILDREN children, each of those GRANDCHILDREN children
CHILDREN = 3
GRANDCHILDREN = 2
PROCESSES = ROOTS * (1 + CHILDREN + CHILDREN * GRANDCHILDREN)  # 10,000
RECORDS = 100_000  # audit records in the big store
BUSY_RECORDS = 5_000  # of them, the records of one busy process (its page is timed)
HUMAN_WAITS = 100  # roots parked on an approval (fs.write of ASKED)
MESSAGE_WAITS = 200  # children blocked in msg.recv
TIMER_WAITS = 100  # children asleep in clock.sleep
PAUSED = 100  # children paused by the host
EXITED_FAILED = 500  # grandchildren that exit failed; EXITED_OK exit ok; the rest stay runnable
EXITED_OK = 4_500
PAINT_TARGET_MS = 100  # first paint of a list page, median
SSE_TARGET_MS = 100  # commit to the 'event:' line on an open page, median (the feed merges 50 ms)
IDLE_TARGET_S_PER_MIN = 0.05  # CPU of an idle host, seconds per minute: no polling
WAKE_TARGET_MS = 100  # a host acting on another program's commit, median
START_TIMEOUT_S = 30.0  # a console or host that prints no address by then has failed
STARTUP_S = 2.0  # an idle host's start-up, let pass before its CPU is measured
SLEEP_FOREVER = 3_600.0  # a timer that does not end while the benchmark runs


def _quick(plan: Plan) -> bool:
    return plan.calls < FULL.calls


def _cli() -> list[str]:
    """Return how to run the ``alos`` command (the interpreter running the suite: the venv's, or
    the one ``--before`` gives an earlier src)."""
    return [sys.executable, "-m", "alos.cli"]


# -- the big store, built once per run ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Big:
    """The built store and the processes the pages are timed on."""

    path: str
    root: str
    busy: Pid  # a root with BUSY_RECORDS audit records spread over the log
    rare: Pid  # the first root: a handful of records, all among the oldest (the worst filter)
    quiet: Pid  # a runnable root messages are sent to (the SSE benchmark)
    rare_records: int
    pending: int
    seconds: float  # how long the build took
    through_runtime: int  # audit records made by real syscalls (the rest by audit.append)


_BIG: dict[str, Big] = {}  # the one big store of this run, once built


def _child_grants(spawns: bool) -> list[dict[str, Any]]:
    wanted: list[dict[str, Any]] = [{"pattern": "model:script", "rights": ["execute"], "delegable": spawns}]
    wanted.append({"pattern": "clock", "rights": ["read"], "delegable": spawns})
    if spawns:
        wanted.append({"pattern": "proc:spawn", "rights": ["spawn"]})
    return wanted


async def _spawn(rt: alos.Runtime, parent: Pid, name: str, spawns: bool) -> Pid:
    got = await rt.dispatch(
        parent, "proc.spawn", {"name": name, "goal": f"{name} of {parent}", "grants": _child_grants(spawns)}
    )
    return int(got["pid"])


async def _expect_parked(rt: alos.Runtime, pid: Pid, name: str, args: dict[str, Any]) -> None:
    got = await rt.dispatch(pid, name, args)
    if not isinstance(got, alos.Parked):
        raise RuntimeError(f"{name} of process {pid} did not park; it returned {got!r:.200}")


_SYSCALLS: tuple[tuple[str, str, str, str, str, dict[str, Any]], ...] = (  # of the appended records
    ("fs.read", "fs:{ws}/src/mod{n}.py", "read", "allow", "ok", {"path": "src/mod{n}.py", "bytes": 2048}),
    ("fs.write", "fs:{ws}/out/r{n}.txt", "write", "allow", "ok", {"path": "out/r{n}.txt", "bytes": 512}),
    ("model.call", "model:script", "execute", "allow", "ok", {"prompt_tokens": 900, "completion_tokens": 60}),
    ("clock.now", "clock", "read", "allow", "ok", {}),
    ("fs.read", "fs:{ws}/.env", "read", "deny", "denied", {"path": ".env"}),
    ("net.fetch", "net:example.org", "read", "deny", "denied", {"url": "https://example.org/{n}"}),
)


def _fill(rt: alos.Runtime, count: int, pids: list[Pid], busy: Pid, ws: str) -> None:
    """Append ``count`` audit records of ``pids`` (one in 20 of ``busy``) with audit.append, in
    one transaction: the chain stays whole."""
    rng = random.Random(7)
    every = max(1, count // BUSY_RECORDS)
    when = time.time()
    rt.flush()
    with rt.store.transaction() as conn:
        head: tuple[int, str] | None = None
        for i in range(count):
            pid = busy if i % every == 0 else rng.choice(pids)
            syscall, resource, right, decision, outcome, detail = _SYSCALLS[rng.randrange(len(_SYSCALLS))]
            n = rng.randrange(1000)
            shown = {k: v.format(n=n) if isinstance(v, str) else v for k, v in detail.items()}
            rec = audit.append(
                conn, when + i * 0.001, pid, syscall, resource.format(ws=ws, n=n), right, decision, outcome, shown, head
            )
            head = (rec.seq, rec.digest)


async def _build_big(root: str) -> Big:
    start = time.perf_counter()
    ws = os.path.join(root, "ws")
    os.mkdir(ws)
    script = os.path.join(root, "never.jsonl")  # no host runs the store: the model is never called
    with open(script, "w", encoding="utf-8") as f:
        f.write(json.dumps({"content": "never called"}) + "\n")
    path = os.path.join(root, ".alos", "store.db")
    rt = alos.open(path, host=True)
    try:
        grants = [
            Grant("proc:spawn", frozenset({Right.SPAWN}), Effect.ALLOW),
            parse_grant(f"fs:{ASKED}=write", Effect.ASK, ws),
        ]
        roots = [
            await rt.spawn("base", f"tree {i}", workspace=ws, model=f"script:{script}", grants=grants, name=f"root-{i}")
            for i in range(ROOTS)
        ]
        children: list[Pid] = []
        grandchildren: list[Pid] = []
        for r in roots:
            for j in range(CHILDREN):
                child = await _spawn(rt, r, f"worker-{j}", spawns=True)
                children.append(child)
                for k in range(GRANDCHILDREN):
                    grandchildren.append(await _spawn(rt, child, f"task-{k}", spawns=False))
        for i, g in enumerate(grandchildren[: EXITED_OK + EXITED_FAILED]):
            status = "failed" if i % 10 == 9 else "ok"
            await rt.dispatch(g, "proc.exit", {"status": status, "result": f"{status}: result of {g}"})
        for r in roots[1 : 1 + HUMAN_WAITS]:  # not the first: its records stay the oldest
            await _expect_parked(rt, r, "fs.write", {"path": ASKED, "content": f"approve me, {r}"})
        waiting = iter(children)
        for c in [next(waiting) for _ in range(MESSAGE_WAITS)]:
            await _expect_parked(rt, c, "msg.recv", {})
        for c in [next(waiting) for _ in range(TIMER_WAITS)]:
            await _expect_parked(rt, c, "clock.sleep", {"seconds": SLEEP_FOREVER})
        for c in [next(waiting) for _ in range(PAUSED)]:
            await rt.signal(c, "pause")
        rt.flush()
        made = rt.store.conn.execute("SELECT count(*) FROM audit").fetchone()[0]
        busy, rare, quiet = roots[ROOTS // 2], roots[0], roots[ROOTS - 1]
        others = [p for p in (*roots, *children, *grandchildren) if p not in (rare, busy)]
        _fill(rt, RECORDS - made, others, busy, ws)
        conn = rt.store.conn
        total = conn.execute("SELECT count(*) FROM processes").fetchone()[0]
        records = conn.execute("SELECT count(*) FROM audit").fetchone()[0]
        if total != PROCESSES or records != RECORDS:
            raise RuntimeError(f"the store holds {total} processes and {records} records")
        rare_records = conn.execute("SELECT count(*) FROM audit WHERE pid = ?", (rare,)).fetchone()[0]
        pending = len(rt.requests())
    finally:
        rt.close()
    return Big(path, root, busy, rare, quiet, rare_records, pending, time.perf_counter() - start, made)


async def big_store() -> Big:
    """Return the big store, building it on first use; it is removed when the run ends."""
    if "big" not in _BIG:
        root = tempfile.mkdtemp(prefix="alos-bench-console-")
        atexit.register(shutil.rmtree, root, True)
        _BIG["big"] = await _build_big(root)
    return _BIG["big"]


def _about(big: Big) -> str:
    return (
        f"{PROCESSES:,} processes, {RECORDS:,} records ({big.through_runtime:,} by real syscalls, the rest "
        f"audit.append), {big.pending} pending approvals; built in {big.seconds:.0f} s"
    )


# -- subprocesses: a console or a host, always stopped ---------------------------------


class Child:
    """A console or host subprocess whose stdout a thread reads into a queue (it never blocks on
    a full pipe: a host prints a trace line per event)."""

    def __init__(self, argv: list[str], log: str) -> None:
        self.log = log
        self.what = argv[3]  # console or serve
        self._err = open(log, "w", encoding="utf-8")  # noqa: SIM115 (closed in stop)
        env = {**os.environ, "COLUMNS": "500", "NO_COLOR": "1"}
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._err, text=True, env=env)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def expect(self, pattern: str, timeout: float = START_TIMEOUT_S) -> re.Match[str]:
        """Return the first match of ``pattern`` in a line printed from now on; raise if the
        program exits or prints none within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                line = None
                if time.monotonic() < deadline:
                    continue
            if line is None:
                with open(self.log, encoding="utf-8") as f:
                    err = f.read()[-800:]
                raise RuntimeError(f"alos {self.what} printed no {pattern!r} (exit {self.proc.poll()}): {err}")
            found = re.search(pattern, line)
            if found:
                return found

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; reap it."""
        try:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
        finally:
            self._err.close()


@contextlib.contextmanager
def running(argv: list[str], log: str) -> Iterator[Child]:
    """Run ``argv`` for the ``with`` block; stop it on the way out, whatever happened."""
    child = Child(argv, log)
    try:
        yield child
    finally:
        child.stop()


# Off a terminal (a pipe, here) the console prints its address and the file that holds its URL
# (console-PORT.url in the store's directory); an alos from before that file (--before) printed
# the URL itself.
URL = r"console: (http://127\.0\.0\.1:\d+/)(?:\?token=(\S+)| \(the URL with its token is in (\S+)\))"


def _url(found: re.Match[str]) -> str:
    """Return the console's URL with its token, from a line matching URL: printed, or read from
    the file it names."""
    if found.group(2) is not None:
        return f"{found.group(1)}?token={found.group(2)}"
    with open(found.group(3), encoding="utf-8") as f:
        return f.read().strip()


def _client(url: str) -> httpx.Client:
    """Return a client logged in to the console whose URL is ``url``: its base URL is the root
    the URL's redirect leads to (``/TOKEN``: every page lives under it; for an alos from before,
    ``/`` and the token in a cookie, which the client keeps)."""
    client = httpx.Client(follow_redirects=True, timeout=60.0, trust_env=False)
    got = client.get(url)
    if got.status_code != 200 or not got.url.path.endswith("/processes"):
        client.close()
        raise RuntimeError(f"the console's URL led to {got.url} ({got.status_code}): {got.text[:300]}")
    client.base_url = got.url.copy_with(path=got.url.path.removesuffix("/processes"), query=None)
    return client


# -- first paint ----------------------------------------------------------------------


def _rows(marker: str, want: int) -> Callable[[str], None]:
    def check(html: str) -> None:
        got = html.count(marker)
        if got != want:
            raise RuntimeError(f"the page shows {got} of {marker!r}, not {want}")

    return check


def _has(*texts: str) -> Callable[[str], None]:
    def check(html: str) -> None:
        for text in texts:
            if text not in html:
                raise RuntimeError(f"the page does not show {text!r}: {html[:300]}")

    return check


async def _paint(
    plan: Plan,
    name: str,
    path: Callable[[Big], str],
    check: Callable[[Big], Callable[[str], None]],
    target: bool = True,
    count: int | None = None,
) -> Result:
    """Time GET ``path`` on a fresh console of the big store, on one kept-alive connection as a
    browser does: 2 untimed, then ``count``. For the note, the same GET on a new connection each
    time, and the first GET after start-up. A page that does not answer 200 is a FAIL row
    naming the status; a page that answers 200 without showing what the store holds raises."""
    big = await big_store()
    url = path(big)
    checked = check(big)
    n = count if count is not None else (8 if _quick(plan) else 20)
    samples: list[int] = []
    fresh: list[int] = []
    with running([*_cli(), "console", "--store", big.path, "--port", "0"], os.path.join(big.root, "console.log")) as c:
        printed = _url(c.expect(URL))  # the line, then the file it names (written before the line)
        with contextlib.closing(_client(printed)) as client:
            for _ in range(2 + n):
                start = time.perf_counter_ns()
                got = client.get(url)
                took = time.perf_counter_ns() - start
                if got.status_code != 200:
                    return _broken(name, url, got, took, big)
                checked(got.text)
                samples.append(took)
            for _ in range(max(3, n // 2) if target else 0):
                with httpx.Client(base_url=client.base_url, cookies=client.cookies, trust_env=False) as once:
                    start = time.perf_counter_ns()
                    got = once.get(url)
                    fresh.append(time.perf_counter_ns() - start)
                checked(got.text)
    cold, samples = samples[0], samples[2:]
    summary = summarize(samples)
    note = f"p95 {summary.p95_ns / 1e6:,.0f} ms; first GET after start-up {cold / 1e6:,.0f} ms"
    if fresh:
        note += f"; on a new connection each time {statistics.median(fresh) / 1e6:,.0f} ms"
    goal = Target("median", PAINT_TARGET_MS * 1_000) if target else None
    return Result(name, summary, None, "", goal, note=f"{note}; {_about(big)}")


def _broken(name: str, url: str, got: httpx.Response, took: int, big: Big) -> Result:
    """Return a FAIL row for a page that answered ``got``, not 200 (the target is on a wall time
    that is never set: a broken page never passes)."""
    note = f"GET {url} answered {got.status_code} {got.text[:80]!r}; see the console's log; {_about(big)}"
    return Result(
        f"{name}: HTTP {got.status_code}",
        summarize([took]),
        None,
        "",
        Target("wall", PAINT_TARGET_MS / 1_000),
        note=note,
    )


async def paint_tree(plan: Plan) -> Result:
    """/processes: the first page of the tree (100 rows), the newest root first."""
    return await _paint(
        plan,
        "console first paint: /processes (page 1 of the tree)",
        lambda b: "/processes",
        lambda b: _has(f"page 1 of {PROCESSES // 100} ({PROCESSES} processes)"),
    )


async def paint_tree_deep(plan: Plan) -> Result:
    """/processes?page=50: a page in the middle of the tree."""
    return await _paint(
        plan,
        "console first paint: /processes?page=50",
        lambda b: "/processes?page=50",
        lambda b: _rows('<tr id="proc-', 100),
    )


async def paint_approvals(plan: Plan) -> Result:
    """/approvals: the oldest 50 pending requests, each with its form, and how many more wait."""

    def shown(b: Any) -> Callable[[str], None]:
        def check(html: str) -> None:
            got, first = html.count('<section class="request"'), min(b.pending, 50)
            if got == b.pending:  # an alos before the page was bounded (--before) shows them all
                return
            if got != first or (b.pending > first and f"and {b.pending - first} more waiting" not in html):
                raise RuntimeError(f"the page shows {got} of {b.pending} requests, not {first} and the rest counted")

        return check

    return await _paint(plan, "console first paint: /approvals", lambda b: "/approvals", shown)


async def paint_audit(plan: Plan) -> Result:
    """/audit: the newest 50 records."""
    return await _paint(
        plan,
        "console first paint: /audit (newest 50 records)",
        lambda b: "/audit",
        lambda b: _rows('<tr class="decision-', 50),
    )


async def paint_audit_rare(plan: Plan) -> Result:
    """/audit?pid=N for a process whose few records are all among the oldest: the worst filter."""
    return await _paint(
        plan,
        "console first paint: /audit?pid=N (N's few records all old)",
        lambda b: f"/audit?pid={b.rare}",
        lambda b: _rows('<tr class="decision-', b.rare_records),
    )


async def paint_process(plan: Plan) -> Result:
    """/process/PID of a process with BUSY_RECORDS audit records."""
    return await _paint(
        plan,
        f"console first paint: /process/PID ({BUSY_RECORDS:,} records)",
        lambda b: f"/process/{b.busy}",
        lambda b: _has(f"root-{ROOTS // 2}"),
    )


async def audit_verify(plan: Plan) -> Result:
    """/audit/verify: the whole chain recomputed (for scale: it reads every record)."""
    return await _paint(
        plan,
        f"console /audit/verify ({RECORDS:,} records, for scale)",
        lambda b: "/audit/verify",
        lambda b: _has(f"the chain holds: {RECORDS} records"),
        target=False,
        count=2 if _quick(plan) else 5,
    )


# -- SSE: a commit elsewhere to the open page's event line -------------------------------


class Stream:
    """A thread reading the console's /events: each line, stamped when it arrived."""

    def __init__(self, logged_in: httpx.Client) -> None:
        self.lines: queue.Queue[tuple[int, str]] = queue.Queue()
        self._client = httpx.Client(
            base_url=logged_in.base_url, cookies=logged_in.cookies, timeout=None, trust_env=False
        )
        self._response: httpx.Response | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            with self._client.stream("GET", "/events") as response:
                self._response = response
                for line in response.iter_lines():
                    self.lines.put((time.perf_counter_ns(), line))
        except (httpx.HTTPError, RuntimeError):
            pass  # closed by close(), or the console stopped
        self.lines.put((time.perf_counter_ns(), "<closed>"))

    def next(self, timeout: float) -> tuple[int, str]:
        """Return the next line (when it arrived, its text); raise after ``timeout`` seconds."""
        try:
            got = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"no line on /events within {timeout} s") from None
        if got[1] == "<closed>":
            raise RuntimeError("the console closed /events")
        return got

    def drain(self) -> list[str]:
        out = []
        with contextlib.suppress(queue.Empty):
            while True:
                out.append(self.lines.get_nowait()[1])
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._response is not None:
                self._response.close()
        self._client.close()
        self._thread.join(5)


async def sse_update(plan: Plan) -> Result:
    """A message sent from another program (a runtime on the same store, not its host): from the
    commit returning to the first ``event:`` line on the console's open /events stream."""
    big = await big_store()
    n = 10 if _quick(plan) else 30
    samples: list[int] = []
    with running([*_cli(), "console", "--store", big.path, "--port", "0"], os.path.join(big.root, "sse.log")) as c:
        printed = _url(c.expect(URL))  # the line, then the file it names (written before the line)
        with contextlib.closing(_client(printed)) as client:
            stream = Stream(client)
            try:
                while ": connected" not in stream.next(10)[1]:
                    pass
                rt = alos.open(big.path)  # another program on the store, not its host
                try:
                    for i in range(n):
                        await rt.send(big.quiet, f"hello {i}")
                        sent = time.perf_counter_ns()
                        while True:
                            at, line = await asyncio.to_thread(stream.next, 5.0)
                            if line.startswith("event:"):
                                break
                        samples.append(at - sent)
                        await asyncio.sleep(0.2)  # the rest of the push, and any second one, come meanwhile
                        stream.drain()
                finally:
                    rt.close()
            finally:
                stream.close()
    summary = summarize(samples)
    note = f"p95 {summary.p95_ns / 1e6:,.0f} ms; msg.send to a runnable root, {n} times; {_about(big)}"
    return Result(
        "console SSE: commit elsewhere -> event line on /events",
        summary,
        None,
        "",
        Target("median", SSE_TARGET_MS * 1_000),
        note=note,
    )


# -- alos serve: idle CPU and wake-ups -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Small:
    """A fresh store for a host: a process asleep on a long timer, one waiting on a person's
    approval to write (again each turn), one blocked in msg.recv (again each turn)."""

    root: str
    path: str
    sleeper: Pid
    asker: Pid
    listener: Pid


async def _small(root: str, turns: int) -> Small:
    ws = os.path.join(root, "ws")
    os.mkdir(ws)

    def script(name: str, calls: list[dict[str, Any]]) -> str:
        path = os.path.join(root, f"{name}.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            for i, call in enumerate(calls):  # turns for the process of that name
                f.write(json.dumps({"proc": name, "content": f"turn {i}", "tool_calls": [call]}) + "\n")
        return f"script:{path}"

    sleep = script("sleeper", [{"name": "clock_sleep", "arguments": {"seconds": SLEEP_FOREVER}}])
    writes = [{"name": "fs_write", "arguments": {"path": ASKED, "content": f"w{i}"}} for i in range(turns)]
    ask = script("asker", writes)
    recv = script("listener", [{"name": "msg_recv", "arguments": {}}] * turns)
    path = os.path.join(root, ".alos", "store.db")
    rt = alos.open(path, host=True)
    try:
        sleeper = await rt.spawn("base", "sleep", workspace=ws, model=sleep, name="sleeper")
        asker = await rt.spawn(
            "base",
            "write, asking",
            workspace=ws,
            model=ask,
            name="asker",
            grants=[parse_grant(f"fs:{ASKED}=write", Effect.ASK, ws)],
        )
        listener = await rt.spawn("base", "receive", workspace=ws, model=recv, name="listener")
    finally:
        rt.close()
    return Small(root, path, sleeper, asker, listener)


def _parked(path: str, small: Small, timeout: float = START_TIMEOUT_S) -> None:
    """Wait until the three processes wait (the host ran their first turns); raise after ``timeout``."""
    deadline = time.monotonic() + timeout
    want = {small.sleeper: "timer", small.asker: "human", small.listener: "message"}
    got: dict[Pid, str] = {}
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        while time.monotonic() < deadline:
            got = dict(conn.execute("SELECT pid, wait FROM processes WHERE state = 'waiting'").fetchall())
            if all(got.get(pid) == wait for pid, wait in want.items()):
                return
            time.sleep(0.05)
    raise RuntimeError(f"the host did not park its processes within {timeout} s: {got}")


def _tree_cpu(proc: psutil.Process) -> int:
    """Return the CPU time (ns) of every thread of ``proc`` and of its descendants alive now, from
    /proc/PID/task/TID/schedstat: nanoseconds, where cpu_times() counts 10 ms ticks (too coarse
    to tell 0.05 s a minute from none over a few seconds)."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        for stat in glob.glob(f"/proc/{p.pid}/task/*/schedstat"):
            with contextlib.suppress(OSError, ValueError), open(stat, encoding="ascii") as f:
                total += int(f.read().split()[0])
    return total


def _switches(pid: int) -> int:
    """Return the context switches (voluntary and not) of every thread of ``pid``: its wake-ups."""
    total = 0
    for status in glob.glob(f"/proc/{pid}/task/*/status"):
        with contextlib.suppress(OSError), open(status, encoding="ascii") as f:
            for line in f:
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
    return total


def _idle(proc: psutil.Process, windows: int, seconds: float) -> tuple[list[float], int]:
    """Measure ``windows`` windows of ``seconds``; return each one's CPU per minute (ns) and
    the wake-ups (context switches) in all of them."""
    samples: list[float] = []
    first = _switches(proc.pid)
    for _ in range(windows):
        before = _tree_cpu(proc)
        time.sleep(seconds)
        samples.append((_tree_cpu(proc) - before) * 60 / seconds)
    return samples, _switches(proc.pid) - first


async def _serve_idle(plan: Plan, console: bool) -> Result:
    windows, seconds = (5, 1.0) if _quick(plan) else (5, 2.0)
    root = tempfile.mkdtemp(prefix="alos-bench-serve-")
    try:
        small = await _small(root, 3)
        argv = [*_cli(), "serve", "--store", small.path] + (["--console", "--port", "0"] if console else [])
        with running(argv, os.path.join(root, "serve.log")) as host:
            host.expect(r"alos serve: hosting")
            stream = None
            client = None
            try:
                if console:
                    client = _client(_url(host.expect(URL)))
                    stream = Stream(client)
                    while ": connected" not in stream.next(10)[1]:
                        pass
                _parked(small.path, small)
                time.sleep(STARTUP_S)
                if stream is not None:
                    stream.drain()
                samples, wakes = _idle(psutil.Process(host.proc.pid), windows, seconds)
                heard = len([line for line in stream.drain() if line]) if stream is not None else 0
            finally:
                if stream is not None:
                    stream.close()
                if client is not None:
                    client.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    summary = summarize(samples)
    span = windows * seconds
    note = (
        f"{summary.median_ns / 1e9:.4f} s CPU a minute (target {IDLE_TARGET_S_PER_MIN} s), the host and its children, "
        f"{windows} windows of {seconds:g} s; {wakes} context switches in {span:g} s "
        f"({wakes * 60 / span:,.0f}/min); processes asleep on a timer, an approval and msg.recv"
    )
    if console:
        note += f"; one SSE client, {heard} lines to it while idle"
    name = "alos serve" + (" --console, one SSE client," if console else "") + " idle: CPU per minute"
    return Result(name, summary, None, "", Target("median", IDLE_TARGET_S_PER_MIN * 1e6), note=note)


async def serve_idle(plan: Plan) -> Result:
    """``alos serve`` on a store whose processes all wait: its CPU while nothing happens."""
    return await _serve_idle(plan, console=False)


async def serve_console_idle(plan: Plan) -> Result:
    """``alos serve --console`` with one page's /events open: its CPU while nothing happens."""
    return await _serve_idle(plan, console=True)


async def _wake(plan: Plan, approve: bool) -> Result:
    """From another program's commit (an approval or a message) to the host's audit record of
    the call it let go on (fs.write or msg.recv, outcome ok), heard on the store's bell."""
    n = 5 if _quick(plan) else 10
    root = tempfile.mkdtemp(prefix="alos-bench-serve-")
    samples: list[int] = []
    try:
        small = await _small(root, n + 1)
        pid, syscall = (small.asker, "fs.write") if approve else (small.listener, "msg.recv")
        with running([*_cli(), "serve", "--store", small.path], os.path.join(root, "serve.log")) as host:
            host.expect(r"alos serve: hosting")
            _parked(small.path, small)
            rt = alos.open(small.path)
            from alos.kernel import pages

            ear = pages.listen(rt.kernel)
            sql = "SELECT count(*) FROM audit WHERE pid = ? AND syscall = ? AND outcome = 'ok'"
            try:
                conn = rt.store.conn
                for i in range(n):
                    done = conn.execute(sql, (pid, syscall)).fetchone()[0]
                    if approve:
                        [req] = await _pending(rt, ear)
                        await rt.answer(req, "once")
                    else:
                        await rt.send(pid, f"wake {i}", kind="message")
                    sent = time.perf_counter_ns()
                    while conn.execute(sql, (pid, syscall)).fetchone()[0] == done:
                        if not await ear.wait(10.0):
                            raise RuntimeError(f"the host did not carry out {syscall} of process {pid} in 10 s")
                    samples.append(time.perf_counter_ns() - sent)
                    await _waiting(rt, ear, pid)
            finally:
                ear.close()
                rt.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    summary = summarize(samples)
    what = "approval -> approved fs.write done" if approve else "msg.send -> blocked msg.recv returns"
    note = f"p95 {summary.p95_ns / 1e6:,.1f} ms; committed by a runtime on the same store (as 'alos send'/'approve' do)"
    return Result(f"alos serve wake-up: {what}", summary, None, "", Target("median", WAKE_TARGET_MS * 1_000), note=note)


async def _pending(rt: alos.Runtime, ear: pages.Listener) -> list[int]:
    """Return the ids of the pending requests once there is one (heard on the bell)."""
    for _ in range(100):
        rt.refresh()
        got = [r.id for r in rt.requests()]
        if got:
            return got
        await ear.wait(1.0)
    raise RuntimeError("no request was filed")


async def _waiting(rt: alos.Runtime, ear: pages.Listener, pid: Pid) -> None:
    """Return once process ``pid`` waits again (its next turn parked), heard on the bell."""
    for _ in range(100):
        rt.refresh()
        if rt.process(pid).state is ProcState.WAITING:
            return
        await ear.wait(1.0)
    raise RuntimeError(f"process {pid} did not wait again")


async def serve_wake_message(plan: Plan) -> Result:
    """``alos serve``: a message sent from another program to the blocked msg.recv's result."""
    return await _wake(plan, approve=False)


async def serve_wake_approval(plan: Plan) -> Result:
    """``alos serve``: an approval given from another program to the approved write done."""
    return await _wake(plan, approve=True)


BENCHES: dict[str, Bench] = {
    "console_tree": paint_tree,
    "console_tree_deep": paint_tree_deep,
    "console_approvals": paint_approvals,
    "console_audit": paint_audit,
    "console_audit_pid": paint_audit_rare,
    "console_process": paint_process,
    "console_verify": audit_verify,
    "console_sse": sse_update,
    "serve_idle": serve_idle,
    "serve_console_idle": serve_console_idle,
    "serve_wake_message": serve_wake_message,
    "serve_wake_approval": serve_wake_approval,
}
