"""Black-box helpers for the model and image scenarios: run the `alos` CLI against the fake
OpenAI-compatible server (tests/fakes) over real HTTP, as a user would, and read back what the
user can see (exit code, `alos ps/audit/approvals --json`) and what the server received."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes import openai_server as ow
from tests.fakes.server import FakeServer, Seen, Step, sse
from tests.scenarios.bb_support import ALOS, alos_here, json_lines, wait_until

KEY = "sk-bbtest-9f8e7d6c5b4a39281706"  # a key that must never show up anywhere but the wire


def timestamps(fake: FakeServer) -> list[float]:
    """Record the monotonic arrival time of every request the fake receives from now on (for
    checking a lower bound on a wait: never a speed)."""
    times: list[float] = []
    original = fake._next

    def _next(seen: Seen) -> Any:
        times.append(time.monotonic())
        return original(seen)

    fake._next = _next  # type: ignore[method-assign]
    return times


def restore(fake: FakeServer) -> None:
    if "_next" in vars(fake):
        del fake._next


def bodies(fake: FakeServer) -> list[dict[str, Any]]:
    return [s.body for s in fake.requests]


def wait_for(pred: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    wait_until(pred, timeout, what)


def messages_text(body: dict[str, Any]) -> str:
    """Every message content of a request, joined (for looking for a repair note)."""
    out = []
    for m in body.get("messages", []):
        c = m.get("content")
        if isinstance(c, str):
            out.append(c)
        elif isinstance(c, list):
            out += [p.get("text", "") for p in c if isinstance(p, dict)]
    return "\n".join(out)


def tool_names(body: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in body.get("tools", [])]


@dataclass
class ModelEnv:
    """A workspace, a store and the fake OpenAI server, driven through the CLI."""

    root: Path
    ws: Path
    store: Path
    fake: FakeServer
    home: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return ow.base_url(self.fake)

    def env(self, **overrides: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "ALOS_"))}
        env.update(
            {
                "NO_COLOR": "1",
                "COLUMNS": "200",
                "HOME": str(self.home),
                "XDG_CONFIG_HOME": str(self.home / ".config"),
                "OPENAI_BASE_URL": self.base_url,
                "OPENAI_API_KEY": KEY,
            }
        )
        env.update(self.extra_env)
        for k, v in overrides.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        return env

    def alos(
        self, *args: str, cwd: Path | None = None, timeout: float = 60, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run alos in-process (bb_support.alos_here: ``timeout`` is then pytest's); popen() starts a real host."""
        return alos_here(*args, cwd=cwd or self.root, env=env or self.env())

    def run_args(
        self,
        *extra: str,
        image: str = "base",
        goal: str = "read README.md and exit",
        model: str | None = "openai:fake-gpt",
        json_out: bool = True,
        store: Path | None = None,
    ) -> list[str]:
        args = ["run", image, goal, "--workspace", str(self.ws), "--store", str(store or self.store)]
        args += ["--approve", "never"]
        if model is not None:
            args += ["--model", model]
        if json_out:
            args.append("--json")
        return [*args, *extra]

    def run(
        self, *extra: str, env: dict[str, str] | None = None, cwd: Path | None = None, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        return self.alos(*self.run_args(*extra, **kw), env=env, cwd=cwd)

    def popen(self, *extra: str, merge: bool = False, **kw: Any) -> subprocess.Popen[str]:
        """Start `alos run` in the background (its own process group, for kill -9)."""
        return subprocess.Popen(
            [ALOS, *self.run_args(*extra, **kw)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge else subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=str(self.root),
            env=self.env(),
            start_new_session=True,
        )

    def cmd(self, *args: str, store: Path | None = None) -> subprocess.CompletedProcess[str]:
        return self.alos(*args, "--store", str(store or self.store))

    def resume(self, *extra: str, json_out: bool = True) -> subprocess.CompletedProcess[str]:
        args = ["resume", "--store", str(self.store), "--approve", "never", *extra]
        if json_out:
            args.append("--json")
        return self.alos(*args)

    def ps(self, store: Path | None = None) -> list[dict[str, Any]]:
        cp = self.cmd("ps", "--all", "--json", store=store)
        assert cp.returncode == 0, cp.stderr
        return json_lines(cp.stdout)

    def proc(self, pid: int = 1, store: Path | None = None) -> dict[str, Any]:
        return next(p for p in self.ps(store) if p["pid"] == pid)

    def audit(self, store: Path | None = None) -> list[dict[str, Any]]:
        cp = self.cmd("audit", "--json", store=store)
        assert cp.returncode == 0, cp.stderr
        return json_lines(cp.stdout)

    def model_calls(self, store: Path | None = None) -> list[dict[str, Any]]:
        return [r for r in self.audit(store) if r["syscall"] == "model.call"]

    def approvals(self, all_: bool = False) -> list[dict[str, Any]]:
        args = ["approvals", "--json"] + (["--all"] if all_ else [])
        cp = self.cmd(*args)
        assert cp.returncode == 0, cp.stderr
        return json_lines(cp.stdout)

    def spent(self, budget: str, pid: int = 1) -> int:
        return int(self.proc(pid)["budget"].get(budget, {}).get("spent", 0))

    def write_config(self, text: str, where: Path | None = None) -> Path:
        path = (where or self.root) / ".alos" / "config.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path


def make_model_env(tmp_path: Path, fake: FakeServer) -> ModelEnv:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "README.md").write_text("hello readme\n")
    home = tmp_path / "home"
    home.mkdir()
    return ModelEnv(root=tmp_path, ws=ws, store=tmp_path / "state" / "store.db", fake=fake, home=home)


def events(stdout: str) -> list[dict[str, Any]]:
    return json_lines(stdout)


def results(stdout: str) -> list[dict[str, Any]]:
    return [e["detail"] for e in json_lines(stdout) if e.get("kind") == "result"]


def held_stream(pieces: list[str], hold: int = 600, gap: float = 0.1) -> Step:
    """A streamed answer that sends ``pieces`` of text and then holds the stream open with SSE
    comment lines (which a client ignores) for ``hold`` x ``gap`` seconds before finishing with a
    call of fs_read: while it holds, the call is certainly still in flight."""
    head = sse(ow.chunk({"role": "assistant", "content": ""}), *[ow.chunk({"content": p}) for p in pieces])
    tail = ow.stream([], [ow.call("fs_read", {"path": "README.md"})]).chunks or []
    return Step(headers={"content-type": "text/event-stream"}, chunks=head + [b": hold\n\n"] * hold + tail[1:], gap=gap)


def null_content_stream(tool_calls: list[dict[str, Any]]) -> Step:
    """A streamed tool-call answer whose deltas never carry any content (content null throughout)."""
    events: list[Any] = [ow.chunk({"role": "assistant", "content": None})]
    for index, c in enumerate(tool_calls):
        head = {
            "index": index,
            "id": c["id"],
            "type": "function",
            "function": {"name": c["function"]["name"], "arguments": c["function"]["arguments"]},
        }
        events.append(ow.chunk({"tool_calls": [head]}))
    events.append(ow.chunk({}, "tool_calls"))
    events.append(
        {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": ow.MODEL, "choices": [], "usage": ow.USAGE}
    )
    events.append("[DONE]")
    return Step(headers={"content-type": "text/event-stream"}, chunks=sse(*events))


class Output:
    """Collect a background process's stdout as it comes (to see what it shows live)."""

    def __init__(self, p: subprocess.Popen[str]) -> None:
        assert p.stdout is not None
        self._fd = p.stdout.fileno()
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self._fd, 4096)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self._buf += data

    @property
    def text(self) -> str:
        with self._lock:
            return self._buf.decode("utf-8", "replace")

    def join(self, timeout: float = 30) -> str:
        self._t.join(timeout)
        return self.text


def no_crash(cp: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in cp.stderr and "internal error" not in cp.stderr.lower(), cp.stderr[-3000:]


def kill9(p: subprocess.Popen[str]) -> None:
    os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout=30)


def finish(p: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str, str]:
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out, err


def exit_turn(result: str = "done") -> Any:
    return ow.stream([], [ow.call("proc_exit", {"result": result})])


def read_turn(path: str = "README.md", content: list[str] = ()) -> Any:  # type: ignore[assignment]
    return ow.stream(list(content), [ow.call("fs_read", {"path": path})])


def final(stdout: str, pid: int = 1) -> dict[str, Any]:
    """The last state event of process ``pid`` in `alos run/resume --json` output
    (``state``, and ``exit``/``result`` once it exited, ``wait`` when it waits)."""
    states: list[dict[str, Any]] = [
        ev["detail"] for ev in json_lines(stdout) if ev.get("kind") == "state" and ev.get("pid") == pid
    ]
    assert states, stdout[-2000:]
    return states[-1]


def syscalls(stdout: str, name: str | None = None) -> list[dict[str, Any]]:
    """The audited syscalls a `--json` run printed: syscall, resource, decision, outcome, detail."""
    out = [dict(ev["detail"], pid=ev["pid"]) for ev in json_lines(stdout) if ev.get("kind") == "syscall"]
    return [s for s in out if name is None or s["syscall"] == name]
