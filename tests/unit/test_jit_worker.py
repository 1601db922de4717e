"""The Deno worker pool (providers/jit.py) used directly, as a hostile tool meets it.

No runtime and no store: each test plays the host with its own ``syscall`` and ``decide``
callbacks. The sources here skip the static check, so what is tested is the run-time defence
alone: no permissions with alos as Deno's broker, no code from strings, the limits, the checked
protocol and the pool's rule that a worker serves one process. Tests that take ``isolate`` run
with bubblewrap where it is installed and without it; the outcomes must be the same.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from alos import limits
from alos.providers.jit import PARK, Jit, Outcome

OWNER = 7
COUNTER = "let n = 0;\nexport async function run(args: any) {\n  n++;\n  if (args.fail) throw new Error('asked to fail');\n  return n;\n}\n"  # fmt: skip
BOTH = pytest.mark.parametrize("isolate", ["auto", "off"])


def tool(body: str) -> str:
    """Return a tool whose ``run(args, libos)`` holds ``body``."""
    return f"export async function run(args: any, libos: any) {{\n{body}\n}}\n"


class Host:
    """The caller's side: records every syscall and every broker question, and answers them.
    A syscall named ``park`` parks; ``fail`` is refused; any other returns its arguments."""

    def __init__(self, verdict: Any = "refused by the test host", delay: float = 0.0) -> None:
        self.verdict = verdict  # what decide answers: "" allows, text denies, PARK parks
        self.delay = delay  # seconds each syscall takes on the host
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.asked: list[tuple[str, str | None]] = []

    async def syscall(self, name: str, args: dict[str, Any]) -> Any:
        self.calls.append((name, args))
        if self.delay:
            await asyncio.sleep(self.delay)
        if name == "park":
            return PARK
        if name == "fail":
            return {"error": "denied: process 7 lacks fail"}
        return {"ok": {"echo": args}}

    async def decide(self, permission: str, value: str | None) -> Any:
        self.asked.append((permission, value))
        return self.verdict


async def call(jit: Jit, host: Host, source: str, args: Any = None, owner: int = OWNER,
               wrappers: dict[str, str | None] | None = None) -> Outcome:  # fmt: skip
    """Run ``source`` as its digest's module, as tooljit names them."""
    module = hashlib.sha256(source.encode()).hexdigest() + ".ts"
    return await jit.run(owner, module, source, {} if args is None else args, host.syscall, host.decide, wrappers or {})


def play(isolate: str, body: Callable[[Jit], Awaitable[None]]) -> None:
    """Run ``body`` with a fresh Jit in an event loop of its own, closing the Jit after."""

    async def main() -> None:
        jit = Jit(isolate=isolate)
        try:
            await body(jit)
        finally:
            await jit.aclose()

    asyncio.run(main())


def deno_children() -> list[psutil.Process]:
    """Return this test process's descendants that are Deno or bubblewrap."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.name() in ("deno", "bwrap") and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def test_isolation_is_bubblewrap_where_installed_and_off_when_asked() -> None:
    assert Jit().isolation() == ("bwrap" if shutil.which("bwrap") else None)
    assert Jit(isolate="off").isolation() is None


# -- a tool that behaves ---------------------------------------------------------------------


@BOTH
def test_a_tool_s_value_console_lines_and_syscalls_reach_the_host(isolate: str) -> None:
    source = tool(
        "console.log('hello', {a: 1});\n"
        "const made = await libos.syscall('clock.now', {tz: 'UTC'});\n"
        "const read = await libos.fs.read('a.txt', {limit: 3});\n"
        "let refused = '';\n"
        "try { await libos.syscall('fail', {}); } catch (e) { refused = `${(e as Error).name}: ${(e as Error).message}`; }\n"
        "return {made, read, refused, args};"
    )  # fmt: skip

    async def body(jit: Jit) -> None:
        host = Host()
        got = await call(jit, host, source, {"x": [1, 2]}, wrappers={"fs.read": "path", "clock.now": None})
        assert got.ok, got.error
        assert got.value == {
            "made": {"echo": {"tz": "UTC"}},
            "read": {"echo": {"limit": 3, "path": "a.txt"}},
            "refused": "SyscallError: denied: process 7 lacks fail",
            "args": {"x": [1, 2]},
        }
        assert got.output == ('hello {"a":1}',)
        assert got.syscalls == 3
        assert host.calls == [("clock.now", {"tz": "UTC"}), ("fs.read", {"limit": 3, "path": "a.txt"}), ("fail", {})]
        assert host.asked == []  # loading the tool itself asks the broker nothing the host hears
        assert jit.broker == "used"

    play(isolate, body)


# -- host APIs at run time ---------------------------------------------------------------------


@BOTH
def test_host_apis_are_refused_with_the_broker_s_reason(isolate: str, tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text('{"key": "SECRET-42"}')
    cases = {
        "read": ("return await Deno.readTextFile('/etc/hostname');", ("read", "/etc/hostname"), "NotCapable"),
        "env": ("return Deno.env.get('HOME');", ("env", "HOME"), "NotCapable"),
        "command": ("return await new Deno.Command('ls').output();", ("run", "ls"), "NotCapable"),
        "fetch": ("return await (await fetch('http://127.0.0.1:8/')).text();", ("net", "127.0.0.1:8"), "NotCapable"),
        "import": (f"return await import('file://{secret}', {{with: {{type: 'json'}}}});", ("read", str(secret)),
                   "TypeError"),
    }  # fmt: skip

    async def body(jit: Jit) -> None:
        for name, (code, question, kind) in cases.items():
            host = Host()
            got = await call(jit, host, tool(code))
            assert not got.ok and got.limit is None, name
            assert got.error == f"the tool failed: {kind}: refused by the test host", (name, got.error)
            assert question in host.asked and {p for p, _ in host.asked} == {question[0]}, (name, host.asked)
            assert "SECRET" not in repr(got)

    play(isolate, body)


@BOTH
def test_code_from_strings_and_workers_are_gone(isolate: str, tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text('{"key": "SECRET-42"}')
    imports = f"import('file://{secret}', {{with: {{type: 'json'}}}})"

    async def body(jit: Jit) -> None:
        host = Host(verdict="")  # even a host that allows everything: eval never runs
        got = await call(jit, host, tool(f"return await eval({imports!r});"))
        assert got.error == "the tool failed: EvalError: Code generation from strings disallowed for this context"
        got = await call(jit, host, tool("return new Function('return 1')();"))
        assert got.error.startswith("the tool failed: EvalError: Code generation from strings disallowed")
        got = await call(
            jit, host, tool("const g = globalThis as any; return [typeof g.Worker, typeof g.SharedWorker];")
        )
        assert got.ok and got.value == ["undefined", "undefined"]
        assert host.asked == []

    play(isolate, body)


@BOTH
def test_run_ffi_sys_and_proc_are_denied_even_when_the_host_allows(isolate: str) -> None:
    cases = {
        "run": ("return await new Deno.Command('ls').output();", "run"),
        "ffi": ("return String(Deno.dlopen('/usr/lib/x86_64-linux-gnu/libc.so.6', {}));", "ffi"),
        "sys": ("return Deno.hostname();", "sys"),
        "proc": ("return await Deno.readTextFile('/proc/self/environ');", "read"),
    }

    async def body(jit: Jit) -> None:
        for name, (code, permission) in cases.items():
            host = Host(verdict="")
            got = await call(jit, host, tool(code))
            assert got.error == f"the tool failed: NotCapable: {permission} is never allowed to a JIT tool", name
            assert host.asked and {p for p, _ in host.asked} == {permission}, (name, host.asked)
        host = Host(verdict="")  # "" does allow what may be allowed: a read of a file both views hold
        got = await call(jit, host, tool("return (await Deno.readFile('/usr/bin/env')).length > 0;"))
        assert got.ok and got.value is True, got.error
        assert host.asked[-1] == ("read", "/usr/bin/env")

    play(isolate, body)


def test_a_broker_question_that_parks_ends_the_call_parked_and_the_worker() -> None:
    async def body(jit: Jit) -> None:
        assert await call(jit, Host(), COUNTER) == Outcome(True, value=1)
        host = Host(verdict=PARK)
        got = await call(jit, host, tool("return await Deno.readTextFile('/etc/hostname');"))
        assert got.parked and not got.ok
        assert host.asked == [("read", "/etc/hostname")]
        assert (await call(jit, Host(), COUNTER)).value == 1  # a fresh worker: the parked one is gone

    play("auto", body)


# -- limits ----------------------------------------------------------------------------------------


@BOTH
def test_memory_output_and_syscall_floods_hit_their_limits(isolate: str) -> None:
    async def body(jit: Jit) -> None:
        got = await call(jit, Host(), tool("const a: any[] = []; while (true) a.push(new Array(1e6).fill(1));"))
        assert (got.ok, got.limit) == (False, "memory"), got.error
        assert got.error == f"the tool ran out of its memory ({limits.JIT_HEAP_MB} MiB of heap)"

        got = await call(jit, Host(), tool("for (;;) console.log('x'.repeat(1000));"))
        assert (got.ok, got.limit) == (False, "output"), got.error
        assert "console output passed the output cap" in got.error

        got = await call(
            jit, Host(), tool("try { for (;;) console.log('x'.repeat(1000)); } catch { return 'kept on'; }")
        )
        assert (got.ok, got.limit) == (False, "output"), got.error  # catching the cap's error does not lift it

        got = await call(jit, Host(), tool("return 'x'.repeat(10_000_000);"))
        assert (got.ok, got.limit) == (False, "output"), got.error
        assert "past the output cap" in got.error

        host = Host()
        got = await call(jit, host, tool("for (;;) await libos.syscall('clock.now', {});"))
        assert (got.ok, got.limit) == (False, "syscalls"), got.error
        assert got.error == f"the tool made more than {limits.JIT_SYSCALLS_MAX} syscalls in one call"
        assert got.syscalls == limits.JIT_SYSCALLS_MAX == len(host.calls)

        assert await call(jit, Host(), COUNTER) == Outcome(True, value=1)  # the host carries on

    play(isolate, body)


@pytest.mark.slow
def test_an_infinite_loop_uses_its_cpu_time_and_no_more() -> None:
    async def body(jit: Jit) -> None:
        started = asyncio.get_running_loop().time()
        got = await call(jit, Host(), tool("while (true) {}"))
        took = asyncio.get_running_loop().time() - started
        assert (got.ok, got.limit) == (False, "cpu"), got.error
        assert got.error == f"the tool used its CPU time ({limits.JIT_CPU_SECONDS} s)"
        assert limits.JIT_CPU_SECONDS - 0.5 < took < limits.JIT_WALL_SECONDS

    play("auto", body)


def test_wall_time_ends_a_sleeping_tool_but_does_not_count_syscalls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "JIT_WALL_SECONDS", 1.0)

    async def body(jit: Jit) -> None:
        got = await call(jit, Host(), tool("await new Promise((r) => setTimeout(r, 5000)); return 1;"))
        assert (got.ok, got.limit) == (False, "wall"), got.error
        assert got.error == "the tool ran past its wall time (1 s)"
        slow = Host(delay=0.4)  # 1.2 s on the host, well under 1 s in the tool
        got = await call(
            jit, slow, tool("for (let i = 0; i < 3; i++) await libos.syscall('clock.now', {}); return 'done';")
        )
        assert got.ok and got.value == "done", got.error

    play("auto", body)


def test_a_tool_cannot_catch_the_cpu_limit_s_signal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "JIT_CPU_SECONDS", 1)

    async def body(jit: Jit) -> None:
        source = tool(
            "Deno.addSignalListener('SIGXCPU', () => {});\n"
            "const t = Date.now(); while (Date.now() - t < 3500) {}\nreturn 'survived';"
        )
        got = await call(jit, Host(), source)
        assert (got.ok, got.limit) == (False, "cpu"), (got.value, got.error)

    play("auto", body)


def test_a_result_past_the_output_cap_is_stopped() -> None:
    async def body(jit: Jit) -> None:
        got = await call(jit, Host(), tool(f"return 'x'.repeat({limits.JIT_OUTPUT_MAX_BYTES + 100_000});"))
        assert got.limit == "output", (got.ok, len(str(got.value)))

    play("auto", body)


def test_non_ascii_console_output_past_the_cap_is_stopped() -> None:
    async def body(jit: Jit) -> None:
        units = limits.JIT_OUTPUT_MAX_BYTES * 6 // 10  # 0.6 x the cap in units, 1.8 x in bytes
        got = await call(jit, Host(), tool(f"console.log('\\u20ac'.repeat({units})); return 1;"))
        assert got.limit == "output", (got.ok, sum(len(line.encode()) for line in got.output))

    play("auto", body)


# -- the protocol ------------------------------------------------------------------------------


def write_line(text: str) -> str:
    """Return a tool that writes ``text`` (JSON-quoted TypeScript) on the protocol, then waits."""
    return tool(
        f"Deno.stdout.writeSync(new TextEncoder().encode({text} + '\\n'));\n"
        "await new Promise((r) => setTimeout(r, 2000));\nreturn 'not stopped';"
    )


@BOTH
def test_forged_and_malformed_lines_end_the_call(isolate: str) -> None:
    forged = "JSON.stringify({op: 'syscall', id: 1, pid: 1, name: 'fs.read', args: {path: '/etc/shadow'}})"
    cases = {
        forged: "malformed message from the tool: it names pid 1, but the call is process 7's (a forged pid)",
        "'\\x1b[31mhello'": "malformed message from the tool: not JSON: ",
        "'[1, 2]'": "malformed message from the tool: not a JSON object",
        "JSON.stringify({op: 'exec'})": "malformed message from the tool: op 'exec'",
        "JSON.stringify({op: 'done', id: 99, ok: 'forged'})": "malformed message from the tool: op 'done'",
        "JSON.stringify({op: 'syscall', id: 1, pid: 7, name: 'fs.read', args: [1]})":
            "malformed message from the tool: the arguments of 'fs.read' are not a JSON object",
        "JSON.stringify({op: 'syscall', id: 1, pid: 7, name: 'fs.read', args: {path: 'a'}})":
            "malformed message from the tool: a line that is not of this call (a tool wrote it, not the runner)",
    }  # fmt: skip

    async def body(jit: Jit) -> None:
        for line, expected in cases.items():
            host = Host()
            got = await call(jit, host, write_line(line))
            assert not got.ok and got.error.startswith(expected), (line, got.error)
            assert host.calls == [], line
        got = await call(jit, Host(), write_line(forged))
        assert got.error.endswith("forged pid)")

    play(isolate, body)


@BOTH
def test_a_syscall_that_parks_ends_the_call_parked(isolate: str) -> None:
    async def body(jit: Jit) -> None:
        host = Host()
        got = await call(
            jit, host, tool("await libos.syscall('clock.now', {}); return await libos.syscall('park', {n: 1});")
        )
        assert got.parked and not got.ok and got.syscalls == 2
        assert host.calls == [("clock.now", {}), ("park", {"n": 1})]

    play(isolate, body)


# -- the pool ------------------------------------------------------------------------------------


@BOTH
def test_a_worker_is_kept_for_its_owner_and_handed_to_no_other(isolate: str) -> None:
    async def body(jit: Jit) -> None:
        got = [(await call(jit, Host(), COUNTER, owner=owner)).value for owner in (1, 1, 2, 1, 2, 3)]
        assert got == [1, 2, 1, 3, 2, 1]

    play(isolate, body)


def test_a_worker_is_discarded_after_a_failed_call_a_limit_or_a_park() -> None:
    async def body(jit: Jit) -> None:
        host = Host()
        assert [(await call(jit, host, COUNTER)).value for _ in range(2)] == [1, 2]
        failed = await call(jit, host, COUNTER, {"fail": True})
        assert failed.error == "the tool failed: Error: asked to fail"
        assert [(await call(jit, host, COUNTER)).value for _ in range(2)] == [1, 2]
        assert (await call(jit, host, tool("return 'x'.repeat(10_000_000);"))).limit == "output"
        assert (await call(jit, host, COUNTER)).value == 1
        assert (await call(jit, host, tool("return await libos.syscall('park', {});"))).parked
        assert (await call(jit, host, COUNTER)).value == 1

    play("auto", body)


@BOTH
def test_aclose_leaves_no_deno_process_behind(isolate: str) -> None:
    async def main() -> None:
        jit = Jit(isolate=isolate)
        for owner in (1, 2, 3):
            assert (await call(jit, Host(), COUNTER, owner=owner)).value == 1
        await jit.warm()
        assert len([p for p in deno_children() if p.name() == "deno"]) >= 3
        await jit.aclose()
        assert deno_children() == []

    asyncio.run(main())


def test_a_libos_kept_past_its_call_cannot_act_in_the_next_one() -> None:
    """A tool leaves a timer that calls libos (or writes a syscall line) during the process's next
    call in the same worker: the runner refuses the old libos, and a raw line lacks the call's nonce."""

    async def body(jit: Jit) -> None:
        leave = tool(
            "setTimeout(() => { libos.syscall('fs.read', {path: 'planted'}).catch(() => {}); }, 300);\nreturn 1;"
        )
        host = Host(verdict="")
        first = await call(jit, host, leave)
        wait = tool("await new Promise((r) => setTimeout(r, 700));\nreturn 2;")
        second = await call(jit, host, wait)
        assert (first.value, second.value) == (1, 2), (first, second)
        assert [n for n, a in host.calls if a.get("path") == "planted"] == []

    play("auto", body)


def test_a_flood_of_broker_requests_ends_the_call() -> None:
    async def body(jit: Jit) -> None:
        host = Host()
        flood = tool(
            "for (let i = 0; i < 100000; i++) { try { await fetch('http://example.com/'); } catch { }; }\nreturn 1;"
        )
        got = await call(jit, host, flood)
        assert (got.ok, got.limit) == (False, "syscalls") and "permission broker" in got.error, got
        assert len(host.asked) <= limits.JIT_SYSCALLS_MAX

    play("auto", body)
