"""Black-box: `alos serve` (a host that stays) and `alos run --detach`, driven as a user would.

Everything here comes from docs/serve.md, docs/cli.md and the README: a detached process is run at
once by the running host, answers, signals and messages from other terminals are acted on
promptly, one host per store, SIGTERM / Ctrl-C / kill -9 lose nothing, timers fire on time and an
idle host costs nothing. Every wait has a deadline: it watches the trace `alos serve` prints (what
a user tailing its log sees) or polls `alos ps --json`, never a blind long sleep.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.scenarios.bb_support import ALOS, Env, alos, call, json_lines, make_env, turn, write_script

DEADLINE = 15.0  # "at once" / "promptly", on a busy 2-core machine


class Host:
    """One `alos serve` subprocess, its output (the trace) in a log file."""

    def __init__(self, e: Env, *extra: str, log_name: str = "serve.log") -> None:
        self.log = e.root / log_name
        self.out = self.log.open("w")
        self.proc = subprocess.Popen(
            [ALOS, "serve", "--store", str(e.store), *extra],
            stdout=self.out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = DEADLINE) -> re.Match[str]:
        """Wait until the trace matches ``pattern`` (a regex); fail with the trace."""
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.text())
            if m:
                return m
            if time.monotonic() > deadline:
                raise AssertionError(f"the host's trace never showed {pattern!r} within {timeout}s:\n{self.text()}")
            if self.proc.poll() is not None:
                raise AssertionError(f"alos serve exited {self.proc.returncode}:\n{self.text()}")
            time.sleep(0.05)

    def request_of(self, pid: int) -> int:
        """The id of the human request process ``pid`` parked on, from the trace."""
        m = self.wait_for(rf"process {pid}\b[^\n]* waits for a human \(request (\d+)\)")
        return int(m.group(1))

    def exited(self, pid: int, timeout: float = DEADLINE) -> str:
        """Wait for process ``pid`` to exit; return its trace line's status and result."""
        return self.wait_for(rf"● process {pid}(?: main)? exited ([^\n]*)", timeout).group(1)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = DEADLINE) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"alos serve did not stop within {timeout}s of signal {sig}") from None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.out.close()


def start_host(e: Env, *extra: str, log_name: str = "serve.log") -> Host:
    h = Host(e, *extra, log_name=log_name)
    try:
        h.wait_for(r"alos serve: hosting", timeout=30)
    except BaseException:
        h.close()
        raise
    return h


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return make_env(tmp_path)


@pytest.fixture
def hosts() -> Iterator[list[Host]]:
    """Hosts a test starts itself (with `serve`); all killed at teardown."""
    started: list[Host] = []
    try:
        yield started
    finally:
        for h in started:
            h.close()


def serve(hosts: list[Host], e: Env, *extra: str, log_name: str = "serve.log") -> Host:
    h = start_host(e, *extra, log_name=log_name)
    hosts.append(h)
    return h


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Env, Host]]:
    """One store and one `alos serve` for the tests that each start processes of their own in it."""
    e = make_env(tmp_path_factory.mktemp("shared"))
    h = start_host(e)
    try:
        yield e, h
    finally:
        h.close()


_scripts = iter(range(1_000_000))


def detach(
    e: Env,
    turns: list[dict[str, Any]],
    *grants: str,
    goal: str = "a detached goal",
    json_out: bool = True,
) -> subprocess.CompletedProcess[str]:
    path = write_script(e.root / f"d{next(_scripts)}.jsonl", turns)
    args = ["run", "--detach", "base", goal, "--workspace", str(e.ws), "--store", str(e.store)]
    args += ["--model", f"script:{path}", *grants]
    if json_out:
        args.append("--json")
    return alos(*args)


def detached_pid(cp: subprocess.CompletedProcess[str], hosted: bool = True) -> int:
    assert cp.returncode == 0, cp.stdout + cp.stderr
    lines = json_lines(cp.stdout)
    assert len(lines) == 1, cp.stdout
    assert lines[0]["hosted"] is hosted, lines[0]
    assert isinstance(lines[0]["pid"], int)
    return int(lines[0]["pid"])


def proc(e: Env, pid: int) -> dict[str, Any]:
    return next(p for p in e.ps() if p["pid"] == pid)


def label(p: dict[str, Any]) -> str:
    return " ".join(str(x) for x in (p["state"], p.get("exit") or p.get("wait")) if x)


def wait_proc(e: Env, pid: int, want: str, timeout: float = DEADLINE) -> dict[str, Any]:
    """Poll `alos ps --all --json` until process ``pid`` is ``want`` ('exited ok', 'waiting message',
    'paused'); fail naming the last state seen."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = proc(e, pid)
        if want in (label(last), last["state"]):
            return last
        time.sleep(0.1)
    raise AssertionError(f"process {pid} never was {want!r} within {timeout}s; last seen {last}")


def records(e: Env, syscall: str, outcome: str | None = None, pid: int | None = None) -> list[dict[str, Any]]:
    return [a for a in e.audit(pid) if a["syscall"] == syscall and (outcome is None or a["outcome"] == outcome)]


def writer(tag: str, path: str = "note.txt", content: str = "hello") -> list[dict[str, Any]]:
    return [
        turn(call("fs_write", path=path, content=content), content=f"Writing {tag}."),
        turn(call("proc_exit", result=f"wrote {tag}"), content="Done."),
    ]


ASK_WRITE = ("--allow", "fs:*=read,list", "--ask", "fs:*=write")


def listener(tag: str) -> list[dict[str, Any]]:
    return [turn(call("msg_recv"), content=f"Waiting {tag}."), turn(call("proc_exit", result=f"heard {tag}"))]


# --- run --detach -------------------------------------------------------------------------------


def test_detach_without_a_host_says_so_stores_it_and_a_later_serve_runs_it(env: Env, hosts: list[Host]) -> None:
    text = detach(env, [turn(call("proc_exit", result="ran"))], json_out=False)
    assert text.returncode == 0, text.stderr
    assert "process 1 started" in text.stdout
    assert "no host runs" in text.stdout + text.stderr, text.stdout + text.stderr
    assert "alos serve" in text.stdout + text.stderr  # and says what would run it
    js = detach(env, [turn(call("proc_exit", result="ran"))])
    assert json.loads(js.stdout) == {"pid": 2, "hosted": False}
    assert [label(p) for p in env.ps()] == ["runnable", "runnable"]  # stored, not run
    host = serve(hosts, env)
    assert host.exited(1) == "ok: ran"
    assert host.exited(2) == "ok: ran"


def test_detach_to_a_running_host_returns_at_once_and_the_host_runs_it(shared: tuple[Env, Host]) -> None:
    e, host = shared
    t0 = time.monotonic()
    cp = detach(e, [turn(call("clock_now"), content="What time is it?"), turn(call("proc_exit", result="on time"))])
    took = time.monotonic() - t0
    pid = detached_pid(cp, hosted=True)
    assert took < 10, f"run --detach took {took:.1f}s: it should only store the process"
    assert host.exited(pid) == "ok: on time"
    assert proc(e, pid)["result"] == "on time"
    assert host.proc.poll() is None, "the host stays after its processes are done"


def test_detach_json_stdout_is_exactly_one_json_object(shared: tuple[Env, Host]) -> None:
    e, host = shared
    cp = detach(e, writer("json"), *ASK_WRITE)
    assert cp.returncode == 0, cp.stderr
    pid = json.loads(cp.stdout)["pid"]  # a single JSON document: nothing else on stdout
    assert json.loads(cp.stdout) == {"pid": pid, "hosted": True}
    assert "image base requests" in cp.stderr  # the prose went to stderr
    host.request_of(pid)


def test_detach_usage_errors_exit_2_and_store_nothing(shared: tuple[Env, Host]) -> None:
    e, _ = shared
    before = len(e.ps())
    script = write_script(e.root / "usage.jsonl", [turn(call("proc_exit"))])
    bad_image = alos(
        "run", "--detach", "nosuchimage", "g", "--store", str(e.store), "--model", f"script:{script}", "--json"
    )
    assert bad_image.returncode == 2, bad_image.stdout + bad_image.stderr
    assert "nosuchimage" in bad_image.stderr
    assert bad_image.stdout == ""
    no_script = alos("run", "--detach", "base", "g", "--store", str(e.store), "--model", "script:/nonexistent.jsonl")
    assert no_script.returncode == 2
    assert "/nonexistent.jsonl" in no_script.stderr
    assert len(e.ps()) == before


def test_serve_trace_names_a_detached_process_as_run_does(shared: tuple[Env, Host]) -> None:
    e, host = shared
    pid = detached_pid(detach(e, writer("named"), *ASK_WRITE))
    host.request_of(pid)
    assert f"[{pid} main] model: Writing named." in host.text(), host.text()


# --- one host per store -------------------------------------------------------------------------


def test_a_second_serve_and_a_run_are_refused_naming_the_holder(shared: tuple[Env, Host]) -> None:
    e, host = shared
    before = e.ps()
    second = alos("serve", "--store", str(e.store), timeout=30)
    assert second.returncode == 1, second.stdout + second.stderr
    assert second.stderr.startswith("alos: unavailable:"), second.stderr
    assert f"os pid {host.proc.pid}" in second.stderr, second.stderr  # names the host holding it
    script = write_script(e.root / "refused.jsonl", [turn(call("proc_exit"))])
    run = alos("run", "base", "g", "--store", str(e.store), "--model", f"script:{script}", "--approve", "never")
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"os pid {host.proc.pid}" in run.stderr
    resume = alos("resume", "--store", str(e.store), "--approve", "never")
    assert resume.returncode == 1 and f"os pid {host.proc.pid}" in resume.stderr
    assert e.ps() == before  # the refused run stored nothing
    assert e.cmd("audit", "verify").returncode == 0  # other commands work beside the host
    assert host.proc.poll() is None


# --- answers, signals, messages from another terminal --------------------------------------------


def test_approve_from_another_terminal_is_acted_on_promptly_and_written_once(shared: tuple[Env, Host]) -> None:
    e, host = shared
    pid = detached_pid(detach(e, writer("approve", path="approved.txt"), *ASK_WRITE))
    rid = host.request_of(pid)
    req = next(r for r in e.approvals() if r["id"] == rid)
    assert req["pid"] == pid and req["syscall"] == "fs.write" and req["detail"]["preview"] == "hello"
    assert not (e.ws / "approved.txt").exists()
    a = e.cmd("approve", str(rid))
    assert a.returncode == 0, a.stderr
    t0 = time.monotonic()
    assert host.exited(pid) == "ok: wrote approve"
    assert time.monotonic() - t0 < DEADLINE
    assert (e.ws / "approved.txt").read_text() == "hello"
    assert len(records(e, "fs.write", "ok", pid)) == 1
    assert rid not in [r["id"] for r in e.approvals()]


def test_deny_with_a_reason_reaches_the_model_and_nothing_is_written(shared: tuple[Env, Host]) -> None:
    e, host = shared
    pid = detached_pid(detach(e, writer("deny", path="denied.txt"), *ASK_WRITE))
    rid = host.request_of(pid)
    d = e.cmd("deny", str(rid), "--reason", "use notes/")
    assert d.returncode == 0, d.stderr
    assert host.exited(pid) == "ok: wrote deny"  # the script goes on after the denial
    assert not (e.ws / "denied.txt").exists()
    assert not records(e, "fs.write", "ok", pid)
    # The model read the reason: it is in the tool result the trace shows.
    assert re.search(rf"rejected this write on \S*denied\.txt \(request {rid}\): use notes/", host.text()), host.text()
    again = e.cmd("approve", str(rid))  # answering twice fails and names who answered first
    assert again.returncode == 1
    assert "already rejected" in again.stderr, again.stderr


def test_send_wakes_a_process_waiting_for_a_message(shared: tuple[Env, Host]) -> None:
    e, host = shared
    pid = detached_pid(detach(e, listener("send")))
    host.wait_for(r"model: Waiting send\.\n\s+→ msg_recv")
    wait_proc(e, pid, "waiting message")
    s = e.cmd("send", str(pid), "the word is pelican")
    assert s.returncode == 0, s.stderr
    assert host.exited(pid) == "ok: heard send"
    assert '"body":"the word is pelican"' in host.text()  # the msg_recv result its model read


def test_pause_holds_an_approved_process_until_resume_pid(shared: tuple[Env, Host]) -> None:
    e, host = shared
    pid = detached_pid(detach(e, writer("paused", path="paused.txt"), *ASK_WRITE))
    rid = host.request_of(pid)
    assert e.cmd("pause", str(pid)).returncode == 0
    assert e.cmd("approve", str(rid)).returncode == 0
    time.sleep(1.0)  # a paused process gets no quantum, however long the host holds it
    assert label(proc(e, pid)) == "paused"
    assert not (e.ws / "paused.txt").exists()
    assert f"process {pid} exited" not in host.text()
    r = e.cmd("resume", str(pid))
    assert r.returncode == 0, r.stdout + r.stderr
    assert host.exited(pid) == "ok: wrote paused"
    assert (e.ws / "paused.txt").read_text() == "hello"


def test_kill_from_another_terminal_ends_it_and_the_host_stays(shared: tuple[Env, Host]) -> None:
    e, host = shared
    pid = detached_pid(detach(e, listener("kill")))
    host.wait_for(r"model: Waiting kill\.\n\s+→ msg_recv")
    k = e.cmd("kill", str(pid))
    assert k.returncode == 0, k.stderr
    assert label(wait_proc(e, pid, "exited killed")) == "exited killed"
    assert host.proc.poll() is None
    nxt = detached_pid(detach(e, [turn(call("proc_exit", result="next"))]))  # it still runs what comes next
    assert host.exited(nxt) == "ok: next"
    assert e.cmd("send", str(pid), "too late").returncode == 1  # a dead process takes no message


def test_an_idle_host_wakes_a_sleeping_process_on_time(shared: tuple[Env, Host]) -> None:
    e, host = shared
    pid = detached_pid(detach(e, [turn(call("clock_sleep", seconds=2.5)), turn(call("proc_exit", result="rested"))]))
    assert host.exited(pid, timeout=DEADLINE + 2.5) == "ok: rested"
    trail = e.audit(pid)
    slept = next(a for a in trail if a["syscall"] == "clock.sleep")
    woke = next(a for a in trail if a["seq"] > slept["seq"])  # the first thing it did once the timer fired
    late = woke["time"] - slept["time"] - 2.5
    assert late >= -0.05, f"woken {-late:.2f}s early"
    assert late < 1.5, f"woken {late:.2f}s late by an idle host"


# --- stopping the host: SIGTERM, Ctrl-C, kill -9 -------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_exits_0_leaves_processes_runnable_and_a_new_serve_carries_on(
    env: Env, hosts: list[Host], sig: int
) -> None:
    host = serve(hosts, env)
    w = detached_pid(detach(env, writer("w"), *ASK_WRITE))
    m = detached_pid(detach(env, listener("m")))
    rid = host.request_of(w)
    host.wait_for(r"model: Waiting m\.\n\s+→ msg_recv")
    assert host.stop(sig) == 0, host.text()
    assert "live process(es) wait in the store for the next host" in host.text()
    states = {p["pid"]: label(p) for p in env.ps()}
    assert states == {w: "waiting human", m: "waiting message"}, states  # live, not failed or killed
    assert env.cmd("approve", str(rid)).returncode == 0  # answered while no host runs
    assert env.cmd("send", str(m), "go on").returncode == 0
    again = serve(hosts, env, log_name="serve2.log")
    assert again.exited(w) == "ok: wrote w"
    assert again.exited(m) == "ok: heard m"
    assert (env.ws / "note.txt").read_text() == "hello"
    assert len(records(env, "fs.write", "ok")) == 1
    assert env.cmd("audit", "verify").returncode == 0


def _sleepers(marker: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            cmd = p.info["cmdline"] or []
            if cmd and cmd[-1] == marker and any("sleep" in part for part in cmd):
                found.append(p)
        except psutil.Error:
            continue
    return found


def test_sigterm_stops_the_quantum_in_flight_and_kills_its_shell_command(env: Env, hosts: list[Host]) -> None:
    host = serve(hosts, env, "--isolate", "off")
    marker = f"4{os.getpid() % 1000}.25"
    script = write_script(
        env.root / "sh.jsonl",
        [turn(call("shell_run", argv=["sleep", marker], timeout=120)), turn(call("proc_exit", result="slept"))],
    )
    cp = alos(
        "run", "--detach", "coder", "nap", "--workspace", str(env.ws), "--store", str(env.store),
        "--model", f"script:{script}", "--allow", "shell:sleep *=execute", "--json",
    )  # fmt: skip
    pid = detached_pid(cp)
    deadline = time.monotonic() + DEADLINE
    while not _sleepers(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _sleepers(marker), f"the shell command never started:\n{host.text()}"
    t0 = time.monotonic()
    try:
        assert host.stop(signal.SIGTERM) == 0, host.text()
        assert time.monotonic() - t0 < 10, "SIGTERM must stop the quantum in flight, not wait out the command"
        deadline = time.monotonic() + 5
        while _sleepers(marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _sleepers(marker), "the shell command outlived the host that started it"
    finally:
        for p in _sleepers(marker):
            p.kill()
    assert label(proc(env, pid)) != "exited ok"  # left live for the next host, not finished


def test_kill_9_right_after_an_approval_then_a_new_serve_does_each_write_once(env: Env, hosts: list[Host]) -> None:
    host = serve(hosts, env)
    turns = [
        turn(call("fs_write", path="a.txt", content="A")),
        turn(call("clock_sleep", seconds=1)),  # so the kill most likely lands mid-run, between the writes
        turn(call("fs_write", path="b.txt", content="B")),
        turn(call("proc_exit", result="both")),
    ]
    pid = detached_pid(detach(env, turns, "--allow", "fs:*=read,write", "--ask", "fs:a.txt=write"))
    rid = host.request_of(pid)
    assert env.cmd("approve", str(rid)).returncode == 0
    host.proc.kill()  # kill -9 while the host acts on the answer (before, during or after the write)
    assert host.proc.wait() == -signal.SIGKILL
    again = serve(hosts, env, log_name="serve2.log")
    assert again.exited(pid) == "ok: both"
    assert (env.ws / "a.txt").read_text() == "A"
    assert (env.ws / "b.txt").read_text() == "B"
    writes = sorted(a["resource"].rsplit("/", 1)[-1] for a in records(env, "fs.write", "ok"))
    assert writes == ["a.txt", "b.txt"], writes  # nothing lost, nothing repeated
    assert len(records(env, "proc.exit")) == 1
    assert env.cmd("audit", "verify").returncode == 0


def test_kill_9_while_a_process_sleeps_then_a_new_serve_wakes_it(env: Env, hosts: list[Host]) -> None:
    host = serve(hosts, env)
    turns = [
        turn(call("fs_write", path="a.txt", content="A")),
        turn(call("clock_sleep", seconds=2)),
        turn(call("proc_exit", result="woke")),
    ]
    pid = detached_pid(detach(env, turns, "--allow", "fs:*=read,write"))
    host.wait_for(r"→ clock_sleep")
    host.proc.kill()
    host.proc.wait()
    again = serve(hosts, env, log_name="serve2.log")
    assert again.exited(pid) == "ok: woke"
    assert len(records(env, "fs.write", "ok")) == 1
    assert (env.ws / "a.txt").read_text() == "A"


# --- idling -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_an_idle_host_uses_almost_no_cpu_and_still_acts_at_once(env: Env, hosts: list[Host]) -> None:
    host = serve(hosts, env)
    w = detached_pid(detach(env, writer("idle"), *ASK_WRITE))
    detached_pid(detach(env, [turn(call("clock_sleep", seconds=600), content="Sleeping long.")]))
    m = detached_pid(detach(env, listener("idle")))
    host.request_of(w)
    host.wait_for(r"model: Waiting idle\.\n\s+→ msg_recv")
    host.wait_for(r"→ clock_sleep seconds=600")
    time.sleep(0.5)  # let the last quantum settle
    ps = psutil.Process(host.proc.pid)
    before = ps.cpu_times()
    time.sleep(5)
    after = ps.cpu_times()
    used = (after.user - before.user) + (after.system - before.system)
    assert used < 0.1, f"an idle alos serve used {used:.3f}s of CPU in 5s"
    assert env.cmd("send", str(m), "now").returncode == 0  # asleep, yet awake to the store's bell
    assert host.exited(m) == "ok: heard idle"


# --- serve --console ----------------------------------------------------------------------------


def test_serve_console_answer_in_the_browser_and_the_host_carries_on(env: Env, hosts: list[Host]) -> None:
    """Its output is a log file: the log says where the URL is kept, never the token; the browser
    works under /TOKEN/; the file goes with the host."""
    host = serve(hosts, env, "--console", "--port", "0")
    m = host.wait_for(r"console: (http://127\.0\.0\.1:(\d+)/) \(the URL with its token is in (.+)\)\n")
    address, port, kept = m.group(1), m.group(2), Path(m.group(3))
    assert kept == Path(os.path.realpath(env.store)).parent / f"console-{port}.url"
    assert kept.stat().st_mode & 0o777 == 0o600, oct(kept.stat().st_mode)
    url = kept.read_text().removesuffix("\n")
    assert url.startswith(address + "?token="), url
    token = url.split("?token=", 1)[1]
    assert token and token not in host.text()
    base = address.rstrip("/")
    pid = detached_pid(detach(env, writer("console"), *ASK_WRITE))
    rid = host.request_of(pid)
    with httpx.Client(base_url=f"{base}/{token}", headers={"Origin": base}, timeout=10) as web:
        first = web.get(url)
        assert first.status_code == 303 and first.headers["location"] == f"/{token}/processes"
        assert "set-cookie" not in first.headers
        approvals = web.get("/approvals").text
        assert f'id="req-{rid}"' in approvals
        assert f'action="/{token}/requests/{rid}/answer"' in approvals
        csrf = re.search(r'name="csrf" value="([^"]+)"', approvals)
        assert csrf
        answer = {"verdict": "once", "csrf": csrf.group(1)}
        refused = httpx.post(
            f"{base}/requests/{rid}/answer", data=answer, headers={"Origin": base, "HX-Request": "true"}
        )
        assert refused.status_code == 403  # the CSRF token alone, without the path's token, is not enough
        done = web.post(f"/requests/{rid}/answer", data=answer, headers={"HX-Request": "true"})
        assert done.status_code == 200, done.text
        assert f"request {rid}" in done.text
    assert host.exited(pid) == "ok: wrote console"
    assert (env.ws / "note.txt").read_text() == "hello"
    answer_rec = records(env, "human.answer", "ok")[-1]
    assert answer_rec["detail"]["by"] == "console" and answer_rec["detail"]["via"] == "console"
    assert host.stop(signal.SIGTERM) == 0, host.text()
    assert not kept.exists(), "the URL file outlived alos serve"
    assert token not in host.text()
