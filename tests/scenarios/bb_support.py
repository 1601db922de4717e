"""Black-box helpers: drive the `alos` command line as a subprocess, like a user would."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import alos_here

REPO = Path(__file__).resolve().parents[2]
ALOS = str(REPO / ".venv" / "bin" / "alos")
if not Path(ALOS).exists():  # fall back to the interpreter running the tests
    ALOS = str(Path(sys.executable).parent / "alos")


def wait_until(pred: Callable[[], bool], timeout: float = 20, what: str = "condition") -> None:
    """Return once ``pred()`` holds; raise AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def alos(
    *args: str, cwd: Path | None = None, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ALOS, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        cwd=str(cwd) if cwd else None,
        env=env,
    )


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


def turn(*calls: dict[str, Any], content: str = "", proc: str | None = None) -> dict[str, Any]:
    t: dict[str, Any] = {"content": content, "tool_calls": list(calls)}
    if proc:
        t["proc"] = proc
    return t


def write_script(path: Path, turns: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(t) + "\n" for t in turns), encoding="utf-8")
    return path


def json_lines(text: str) -> list[dict[str, Any]]:
    """Parse stdout that must be only JSON lines; raise if any non-empty line is not JSON."""
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        out.append(json.loads(line))
    return out


@dataclass
class Env:
    root: Path
    ws: Path
    store: Path

    def run(
        self,
        turns: list[dict[str, Any]],
        *grants: str,
        approve: str = "never",
        json_out: bool = True,
        goal: str = "test goal",
        script_name: str = "script.jsonl",
    ) -> subprocess.CompletedProcess[str]:
        script = write_script(self.root / script_name, turns)
        args = [
            "run",
            "base",
            goal,
            "--workspace",
            str(self.ws),
            "--store",
            str(self.store),
            "--model",
            f"script:{script}",
            "--approve",
            approve,
            *grants,
        ]
        if json_out:
            args.append("--json")
        return alos_here(*args)

    def cmd(self, *args: str) -> subprocess.CompletedProcess[str]:
        return alos_here(*args, "--store", str(self.store))

    def resume(self, approve: str = "never", json_out: bool = True) -> subprocess.CompletedProcess[str]:
        args = ["resume", "--store", str(self.store), "--approve", approve]
        if json_out:
            args.append("--json")
        return alos_here(*args)

    def audit(self, pid: int | None = None) -> list[dict[str, Any]]:
        args = ["audit", "--json", "--store", str(self.store)]
        if pid is not None:
            args += ["--pid", str(pid)]
        cp = alos_here(*args)
        assert cp.returncode == 0, cp.stderr
        return json_lines(cp.stdout)

    def approvals(self, all_: bool = False) -> list[dict[str, Any]]:
        args = ["approvals", "--json", "--store", str(self.store)]
        if all_:
            args.append("--all")
        cp = alos_here(*args)
        assert cp.returncode == 0, cp.stderr
        return json_lines(cp.stdout)

    def ps(self) -> list[dict[str, Any]]:
        cp = alos_here("ps", "--all", "--json", "--store", str(self.store))
        assert cp.returncode == 0, cp.stderr
        return json_lines(cp.stdout)


def results(stdout: str) -> list[dict[str, Any]]:
    """The tool results the model saw, from `alos run --json` event lines (kind == result)."""
    return [e["detail"] for e in json_lines(stdout) if e.get("kind") == "result"]


def result_texts(stdout: str) -> list[str]:
    return [r.get("text", "") for r in results(stdout)]


def make_env(tmp_path: Path) -> Env:
    ws = tmp_path / "ws"
    ws.mkdir(parents=True)
    (ws / "README.md").write_text("hello readme\n")
    return Env(root=tmp_path, ws=ws, store=tmp_path / "state" / "store.db")


def copy_env(template: Env, tmp_path: Path) -> Env:
    """Return a copy of ``template`` (workspace, store, scripts) under ``tmp_path``.

    For tests that each start from the same store (a module-scoped template) and tamper with it or
    show that a command leaves it alone: an `alos run` to build a store costs a CLI start, a copy
    costs nothing. The store still names the template's paths (a process's workspace, its script),
    so resume a copy only where every process of the template has exited.
    """
    shutil.copytree(template.root, tmp_path, dirs_exist_ok=True)
    return Env(
        root=tmp_path, ws=tmp_path / template.ws.name, store=tmp_path / template.store.relative_to(template.root)
    )
