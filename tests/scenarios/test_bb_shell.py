"""Black-box: `shell.run` under authority, as a hostile model would use it.

Driven through the `alos` command line (the `coder` image, which has `shell_run`, with a scripted
model) and, where the whole result is needed, through the Python API. Written from docs/shell.md,
docs/cli.md and issue 15 only. Every hostile scenario ends with a clear result, an audit record and
the host unaffected (a later call in the same run still works); every test cleans up the processes
it may have started (each command carries a unique marker argument, found in /proc with psutil).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest

import alos as alos_api
from tests.scenarios.bb_support import ALOS, alos, alos_here, json_lines, wait_until, write_script

T = TypeVar("T")
HAS_BWRAP = shutil.which("bwrap") is not None
needs_bwrap = pytest.mark.skipif(not HAS_BWRAP, reason="bubblewrap (bwrap) is not installed here")
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed here")
needs_python3 = pytest.mark.skipif(shutil.which("python3") is None, reason="no python3 on the search path")

RAW = ("\x1b", "\x07", "\u202e")  # never printed raw to a terminal
ALIVE = ["echo", "alive"]  # the last call of a run: the host still works after the hostile one
ALLOW_ECHO = ("--allow", "shell:echo=execute")


def real(program: str) -> str:
    found = shutil.which(program)
    assert found, program
    return os.path.realpath(found)


# ---------------------------------------------------------------------------------------------
# helpers: a workspace and a store, runs of the coder image, the results the model saw, processes


class Shell:
    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path
        self.ws = tmp_path / "ws"
        self.ws.mkdir()
        self.store = tmp_path / "state" / "store.db"
        self.n = 0

    def args(self, calls: list[Any], *grants: str, isolate: str | None, approve: str, json_out: bool) -> list[str]:
        turns = []
        for c in calls:
            arguments = c if isinstance(c, dict) else {"argv": c}
            turns.append({"content": "run", "tool_calls": [{"name": "shell_run", "arguments": arguments}]})
        self.n += 1
        script = write_script(self.root / f"script{self.n}.jsonl", turns)
        args = ["run", "coder", "shell test", "--workspace", str(self.ws), "--store", str(self.store)]
        args += ["--model", f"script:{script}", "--approve", approve, *grants]
        if isolate:
            args += ["--isolate", isolate]
        if json_out:
            args.append("--json")
        return args

    def run(
        self,
        calls: list[Any],
        *grants: str,
        isolate: str | None = None,
        approve: str = "never",
        json_out: bool = True,
        env: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """Run a host to its end in-process (bb_support.alos_here: ``timeout`` is then pytest's);
        popen() starts a real one."""
        return alos_here(*self.args(calls, *grants, isolate=isolate, approve=approve, json_out=json_out), env=env)

    def popen(self, calls: list[Any], *grants: str, isolate: str | None = None) -> subprocess.Popen[bytes]:
        """A host in the background; its stdout (JSON lines) goes to self.host_out, its stderr apart."""
        args = self.args(calls, *grants, isolate=isolate, approve="never", json_out=True)
        self.host_out = self.root / f"host{self.n}.out"
        with open(self.host_out, "wb") as out, open(self.root / f"host{self.n}.err", "wb") as err:
            return subprocess.Popen([ALOS, *args], stdout=out, stderr=err, stdin=subprocess.DEVNULL)

    def cmd(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return alos_here(*args, "--store", str(self.store))

    def resume(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return self.cmd("resume", "--approve", "never", "--json", *extra)

    def audit(self) -> list[dict[str, Any]]:
        cp = self.cmd("audit", "--json")
        assert cp.returncode == 0, cp.stderr
        return json_lines(cp.stdout)

    def shell_audit(self) -> list[dict[str, Any]]:
        return [r for r in self.audit() if r["syscall"] == "shell.run"]

    def approvals(self) -> list[dict[str, Any]]:
        cp = self.cmd("approvals", "--json")
        assert cp.returncode == 0, cp.stderr
        return json_lines(cp.stdout)

    def ps(self) -> list[dict[str, Any]]:
        cp = self.cmd("ps", "--all", "--json")
        assert cp.returncode == 0, cp.stderr
        return json_lines(cp.stdout)


def results(stdout: str) -> list[dict[str, Any]]:
    """The shell_run results the model saw: the parsed JSON result, or {"error": text}."""
    out = []
    for e in json_lines(stdout):
        if e.get("kind") != "result" or e["detail"].get("name") != "shell_run":
            continue
        d = e["detail"]
        if not d["ok"]:
            out.append({"error": d["text"]})
            continue
        try:
            out.append(json.loads(d["text"]))
        except json.JSONDecodeError:  # a result cut for the model
            out.append({"cut": d["text"]})
    return out


def assert_alive(cp: subprocess.CompletedProcess[str], res: list[dict[str, Any]]) -> None:
    """The run ended normally and its last call (echo alive) ran: the host is unaffected."""
    assert cp.returncode == 0, cp.stdout[-3000:] + cp.stderr[-3000:]
    assert res and res[-1].get("stdout") == "alive\n", res[-1:]
    assert res[-1]["exit_code"] == 0 and res[-1]["limit"] is None


def denied(r: dict[str, Any]) -> bool:
    return "error" in r and r["error"].startswith("denied:") and " execute on shell:" in r["error"]


def shown_argv(detail: dict[str, Any]) -> list[str]:
    """The argv an approval request shows: a JSON list (docs/shell.md), here held as JSON text."""
    argv = detail["argv"]
    return argv if isinstance(argv, list) else json.loads(argv)


def survivors(marker: str) -> list[psutil.Process]:
    me = os.getpid()
    found = []
    for p in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if p.info["pid"] == me or p.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if any(marker in a for a in (p.info["cmdline"] or [])):
                found.append(p)
        except psutil.Error:
            continue
    return found


def reap(marker: str) -> None:
    for p in survivors(marker):
        with contextlib.suppress(psutil.Error):
            p.kill()


def in_process(body: Callable[[], Awaitable[T]]) -> T:
    """Run a Python-API scenario; then collect the garbage at once, so that finalizers of subprocess
    transports the runtime left behind run here and not during a later test (CPython 3.11.7 raises
    'AST constructor recursion depth mismatch' when one runs inside pytest's ast.parse)."""
    try:
        return asyncio.run(body())
    finally:
        gc.collect()


@pytest.fixture
def sh(tmp_path: Path) -> Shell:
    return Shell(tmp_path)


@pytest.fixture
def marker() -> Iterator[str]:
    """A unique sleep duration (e.g. 1000.482913): any process carrying it is this test's."""
    m = f"1000.{uuid.uuid4().int % 10**9:09d}"
    try:
        yield m
    finally:
        reap(m)


def stop(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        p.kill()
        p.wait(timeout=10)


# ---------------------------------------------------------------------------------------------
# interpreter forms: denied under a plain program grant, allowed only under a grant naming the form

FORMS = [
    # (argv, plain grant, form grant, expected stdout)
    (["bash", "-lc", "echo $((6*7))"], "shell:bash=execute", "shell:bash -lc *=execute", "42\n"),
    (["sh", "-c", "echo $((6*7))"], "shell:sh=execute", "shell:sh -c *=execute", "42\n"),
    (["python3", "-c", "print(6*7)"], "shell:python3=execute", "shell:python3 -c *=execute", "42\n"),
    (
        ["python3", "-m", "http.server", "--help"],
        "shell:python3=execute",
        "shell:python3 -m http.server *=execute",
        None,
    ),
]


def test_interpreter_forms_are_denied_under_plain_grants_and_run_under_form_grants(sh: Shell) -> None:
    # All four forms in one run per grant set (one host start, not one a form): each call is
    # decided on its own, and the last call (echo alive) shows the host unaffected by any of them.
    forms = [f for f in FORMS if shutil.which(f[0][0]) is not None]
    assert forms, "no bash, sh or python3 here"
    plain = [a for f in forms for a in ("--allow", f[1])]
    bare = [["python3", "--version"]] if any(f[0][0] == "python3" for f in forms) else []
    cp = sh.run([*(f[0] for f in forms), *bare, ALIVE], *plain, *ALLOW_ECHO)
    res = results(cp.stdout)
    assert_alive(cp, res)
    for (argv, *_), r in zip(forms, res):
        assert denied(r), (argv, r)
    first = sh.shell_audit()
    denials = [r for r in first if r["decision"] == "deny"]
    assert len(denials) == len(forms), denials
    for (argv, *_), rec in zip(forms, denials):
        assert rec["outcome"] == "denied" and rec["resource"].startswith(f"shell:{real(argv[0])} {argv[1]}"), rec
    # the bare program still runs under the plain grant (python3 --version; sh/bash with no code)
    if bare:
        assert res[len(forms)]["exit_code"] == 0, res[len(forms)]

    cp = sh.run([*(f[0] for f in forms), ALIVE], *(a for f in forms for a in ("--allow", f[2])), *ALLOW_ECHO)
    res = results(cp.stdout)
    assert_alive(cp, res)
    for (argv, _, _, stdout), r in zip(forms, res):
        assert r.get("exit_code") == 0, (argv, r)
        assert r["program"] == real(argv[0])
        if stdout is not None:
            assert r["stdout"] == stdout, (argv, r)
        else:
            assert "usage" in r["stdout"].lower(), (argv, r)
    runs = sh.shell_audit()[len(first) :]
    assert [(r["decision"], r["outcome"]) for r in runs] == [("allow", "ok")] * (len(forms) + 1), runs


def test_a_deny_naming_the_form_dominates_the_form_grant(sh: Shell) -> None:
    cp = sh.run(
        [["sh", "-c", "echo hi"], ["sh", "-c", "echo ok"], ALIVE],
        "--allow",
        "shell:sh -c *=execute",
        "--deny",
        "shell:sh -c 'echo hi'=execute",
        *ALLOW_ECHO,
    )
    res = results(cp.stdout)
    assert denied(res[0]), res[0]
    assert res[1].get("stdout") == "ok\n", res[1]
    assert_alive(cp, res)
    # and a deny on the whole form beats an allow of one exact command
    cp = sh.run(
        [["sh", "-c", "echo hi"], ALIVE],
        "--allow",
        "shell:sh -c 'echo hi'=execute",
        "--deny",
        "shell:sh -c *=execute",
        *ALLOW_ECHO,
    )
    res = results(cp.stdout)
    assert denied(res[0]), res[0]
    assert_alive(cp, res)


@pytest.mark.parametrize("deny", ["shell:sh=execute", "shell:*=execute"])
def test_a_deny_on_the_program_is_never_narrowed_and_refuses_its_forms(sh: Shell, deny: str) -> None:
    cp = sh.run(
        [["sh", "-c", "echo hi"], ALIVE],
        "--allow",
        "shell:sh -c *=execute",
        "--deny",
        deny,
        "--allow",
        "shell:echo=execute",
    )
    res = results(cp.stdout)
    assert denied(res[0]), res[0]
    if deny == "shell:*=execute":  # deny dominates the echo grant too
        assert denied(res[1]) and cp.returncode == 0, res
        return
    assert_alive(cp, res)


def test_ask_on_every_program_does_not_cover_a_form(sh: Shell) -> None:
    """`shell:*` is every program except forms: `sh -c` under --ask 'shell:*' is refused, not asked."""
    cp = sh.run([["sh", "-c", "echo hi"], ALIVE], "--ask", "shell:*=execute", *ALLOW_ECHO)
    res = results(cp.stdout)
    assert denied(res[0]), res[0]
    assert_alive(cp, res)
    assert sh.approvals() == []


# ---------------------------------------------------------------------------------------------
# wrappers: decided on what they run


WRAPPED = [
    ["env", "X=1", "rm", "f"],
    ["/usr/bin/env", "rm", "f"],
    ["timeout", "5", "rm", "f"],
    ["nice", "rm", "f"],
    ["find", ".", "-name", "f", "-exec", "rm", "{}", ";"],
    ["xargs", "rm"],
]


def test_wrappers_running_rm_are_denied_under_plain_program_grants_and_the_file_survives(sh: Shell) -> None:
    # Every wrapper in one run (one host start, not one a wrapper), each under its plain grant; each
    # call is decided on its own, and the file would be gone after the first that ran rm.
    wrapped = [w for w in WRAPPED if Path(w[0]).is_absolute() or shutil.which(w[0]) is not None]
    (sh.ws / "f").write_text("keep\n")
    wrappers = [Path(w[0]).name for w in wrapped]
    cp = sh.run(
        [*wrapped, ALIVE],
        "--allow",
        "shell:rm=execute",
        *(a for w in wrappers for a in ("--allow", f"shell:{w}=execute")),
        "--allow",
        "fs:*=read,list,write,delete",
        *ALLOW_ECHO,
        isolate="off",  # nothing but the decision stands between the wrapper and the file
    )
    res = results(cp.stdout)
    for argv, r in zip(wrapped, res):
        assert denied(r), (argv, r)
    assert (sh.ws / "f").read_text() == "keep\n"
    assert_alive(cp, res)
    recs = [r for r in sh.shell_audit() if r["decision"] == "deny"]
    assert len(recs) == len(wrapped), recs
    for wrapper, rec in zip(wrappers, recs):
        assert rec["resource"].startswith(f"shell:{real(wrapper)}") and rec["outcome"] == "denied", rec


def test_env_rm_runs_only_with_execute_on_both_the_wrapper_form_and_the_inner_command(sh: Shell) -> None:
    (sh.ws / "f").write_text("keep\n")
    fs = ("--allow", "fs:*=read,list,write,delete")
    # the wrapper form alone is not enough: rm itself is not granted
    cp = sh.run([["env", "X=1", "rm", "f"], ALIVE], "--allow", "shell:env X=1 rm *=execute", *fs, *ALLOW_ECHO)
    res = results(cp.stdout)
    assert denied(res[0]) and "rm f" in res[0]["error"], res[0]
    assert (sh.ws / "f").exists()
    assert_alive(cp, res)
    # both: it runs, and rm removes the file
    cp = sh.run(
        [["env", "X=1", "rm", "f"], ALIVE],
        "--allow",
        "shell:env X=1 rm *=execute",
        "--allow",
        "shell:rm=execute",
        *fs,
        *ALLOW_ECHO,
    )
    res = results(cp.stdout)
    assert res[0].get("exit_code") == 0, res[0]
    assert not (sh.ws / "f").exists()
    assert_alive(cp, res)


def test_more_than_four_nested_wrappers_are_refused(sh: Shell) -> None:
    (sh.ws / "f").write_text("keep\n")
    argv = ["env"] * 5 + ["rm", "f"]
    cp = sh.run(
        [argv, ALIVE], "--allow", "shell:*=execute", "--allow", "shell:env env *=execute", "--allow", "fs:*=write"
    )
    res = results(cp.stdout)
    assert "error" in res[0] and "wrappers" in res[0]["error"], res[0]
    assert (sh.ws / "f").exists()
    assert_alive(cp, res)


# ---------------------------------------------------------------------------------------------
# path-qualified programs and symlinks: decided as the real file


def test_path_qualified_programs_are_decided_as_the_real_file(sh: Shell) -> None:
    (sh.ws / "f").write_text("keep\n")
    shutil.copy(real("rm"), sh.ws / "rm")  # a workspace program that happens to be called rm
    sneaky = f"/usr/bin/../..{sh.ws.resolve()}/rm"
    calls = [["./rm", "f"], [sneaky, "f"], [str(sh.ws / "rm"), "f"], ALIVE]
    grants = ("--allow", "shell:rm=execute", "--allow", "shell:/usr/bin/*=execute", "--allow", "shell:/bin/*=execute")
    cp = sh.run(calls, *grants, "--allow", "fs:*=write,delete", isolate="off")
    res = results(cp.stdout)
    ws_rm = f"shell:{(sh.ws / 'rm').resolve()} f"
    for r in res[:3]:
        assert denied(r) and ws_rm in r["error"], r  # the workspace file, never /usr/bin/rm
    assert (sh.ws / "f").read_text() == "keep\n"
    assert_alive(cp, res)
    assert [r["resource"] for r in sh.shell_audit() if r["decision"] == "deny"] == [ws_rm] * 3


def test_a_symlink_named_git_is_decided_as_what_it_points_to(sh: Shell) -> None:
    (sh.ws / "f").write_text("keep\n")
    (sh.ws / "git").symlink_to(real("rm"))
    cp = sh.run([["./git", "f"], ALIVE], "--allow", "shell:rm=execute", "--allow", "fs:*=write,delete", *ALLOW_ECHO)
    res = results(cp.stdout)
    assert res[0].get("program") == real("rm") and res[0]["exit_code"] == 0, res[0]  # rm, under the rm grant
    assert not (sh.ws / "f").exists()
    assert_alive(cp, res)
    assert sh.shell_audit()[0]["resource"] == f"shell:{real('rm')} f"


def test_a_symlink_named_git_is_not_covered_by_a_git_grant(sh: Shell) -> None:
    (sh.ws / "f").write_text("keep\n")
    (sh.ws / "git").symlink_to(real("rm"))
    cp = sh.run([["./git", "f"], ALIVE], "--allow", "shell:git=execute", "--allow", "fs:*=write,delete", *ALLOW_ECHO)
    res = results(cp.stdout)
    assert denied(res[0]) and f"shell:{real('rm')} f" in res[0]["error"], res[0]
    assert (sh.ws / "f").exists()
    assert_alive(cp, res)


def test_relative_and_empty_search_path_entries_are_ignored(sh: Shell, tmp_path: Path) -> None:
    """A host PATH starting with '.' or '' must not let a workspace `ls` stand in for /usr/bin/ls."""
    pwned = tmp_path / "pwned-by-path"
    (sh.ws / "ls").write_text(f"#!/bin/sh\ntouch {pwned}\n")
    (sh.ws / "ls").chmod(0o755)
    env = {**os.environ, "PATH": ".::bin:" + os.environ.get("PATH", "/usr/bin:/bin")}
    cp = alos(
        *sh.args(
            [["ls"], ["printenv", "PATH"], ALIVE],
            "--allow",
            "shell:ls=execute",
            "--allow",
            "shell:printenv=execute",
            *ALLOW_ECHO,
            isolate="off",
            approve="never",
            json_out=True,
        ),
        cwd=sh.ws,
        env=env,
    )
    res = results(cp.stdout)
    assert res[0].get("program") == real("ls") and res[0]["exit_code"] == 0, res[0]
    assert not pwned.exists()
    entries = res[1]["stdout"].strip().split(":")
    assert entries and all(e.startswith("/") for e in entries), entries
    assert_alive(cp, res)


# ---------------------------------------------------------------------------------------------
# git: -c, aliases and a repository's config


def git(*args: str) -> None:
    subprocess.run(["git", *args], check=True, capture_output=True, timeout=30)


def hook(path: Path, hit: Path) -> str:
    path.write_text(f"#!/bin/sh\ntouch {hit}\nexit 1\n")
    path.chmod(0o755)
    return str(path)


@needs_git
def test_git_dash_c_pager_and_alias_are_forms_not_covered_by_a_git_grant(sh: Shell, tmp_path: Path) -> None:
    git("init", "-q", str(sh.ws))
    hit = tmp_path / "pwned-by-dash-c"
    calls = [
        ["git", "-c", f"core.pager=touch {hit}", "log"],
        ["git", "-c", f"alias.x=!touch {hit}", "x"],
        ["git", "-c", f"core.fsmonitor=touch {hit}", "status"],
        ["git", "status", "--short"],
        ALIVE,
    ]
    cp = sh.run(calls, "--allow", "shell:git=execute", "--allow", "fs:*=read,list,write", *ALLOW_ECHO, isolate="off")
    res = results(cp.stdout)
    for r in res[:3]:
        assert denied(r) and " -c " in r["error"], r
    assert res[3].get("exit_code") == 0, res[3]  # plain git status is covered
    assert not hit.exists()
    assert_alive(cp, res)
    assert [r["decision"] for r in sh.shell_audit()] == ["deny", "deny", "deny", "allow", "allow"]


@needs_git
def test_a_repository_config_with_fsmonitor_or_an_alias_makes_git_status_a_form(sh: Shell, tmp_path: Path) -> None:
    git("init", "-q", str(sh.ws))
    hit = tmp_path / "pwned-by-config"
    git("-C", str(sh.ws), "config", "core.fsmonitor", hook(tmp_path / "fsmonitor.sh", hit))
    git("-C", str(sh.ws), "config", "alias.st", f"!touch {hit}")
    calls = [["git", "status"], ["git", "st"], ALIVE]
    for grants in (
        ("--allow", "shell:git status=execute", "--allow", "shell:git st=execute"),
        ("--allow", "shell:git=execute"),
    ):
        cp = sh.run(calls, *grants, "--allow", "fs:*=read,list,write", *ALLOW_ECHO, isolate="off")
        res = results(cp.stdout)
        for r in res[:2]:
            assert denied(r) and "core.fsmonitor=" in r["error"], r  # decided as if given with -c
        assert not hit.exists()
        assert_alive(cp, res)
    recs = [r for r in sh.shell_audit() if r["decision"] == "deny"]
    assert len(recs) == 4 and all("-c core.fsmonitor=" in r["resource"] for r in recs)


@needs_git
def test_a_config_variable_on_the_section_header_line_is_seen(sh: Shell, tmp_path: Path) -> None:
    git("init", "-q", str(sh.ws))
    hit = tmp_path / "pwned-by-header-line"
    cmd = hook(tmp_path / "fsmonitor.sh", hit)
    with open(sh.ws / ".git" / "config", "a") as f:
        f.write(f"[core] fsmonitor = {cmd}\n")
    seen = subprocess.run(
        ["git", "-C", str(sh.ws), "config", "--get", "core.fsmonitor"], capture_output=True, text=True
    )
    assert seen.stdout.strip() == cmd  # git reads it
    cp = sh.run([["git", "status", "--short"], ALIVE], "--allow", "shell:git=execute", *ALLOW_ECHO, isolate="off")
    res = results(cp.stdout)
    assert_alive(cp, res)
    assert not hit.exists(), "core.fsmonitor on the header line ran under a plain shell:git grant"
    assert denied(res[0]), res[0]


@needs_git
def test_an_approval_shows_the_config_value_git_will_run(sh: Shell, tmp_path: Path) -> None:
    git("init", "-q", str(sh.ws))
    hit = tmp_path / "pwned-by-continuation"
    with open(sh.ws / ".git" / "config", "a") as f:
        f.write(f'[core]\n\tfsmonitor = "/usr/bin/true\\\n; touch {hit}"\n')
    value = subprocess.run(
        ["git", "-C", str(sh.ws), "config", "--get", "core.fsmonitor"], capture_output=True, text=True
    ).stdout.rstrip("\n")
    assert value == f"/usr/bin/true; touch {hit}"  # what git will run
    cp = sh.run([["git", "status", "--short"]], "--ask", "shell:git -c *=execute", isolate="off")
    assert cp.returncode == 3, cp.stdout + cp.stderr
    [req] = sh.approvals()
    decided = shown_argv({"argv": req["detail"]["decided_as"]})
    assert any(w.startswith("core.fsmonitor=sha256:") for w in decided), decided  # the value by its digest
    config = shown_argv({"argv": req["detail"]["git_config"]})  # and, for the person, the value itself
    assert f"core.fsmonitor={value}" in config, config


@needs_git
def test_a_repository_hook_never_runs(sh: Shell, tmp_path: Path) -> None:
    git("init", "-q", str(sh.ws))
    hit = tmp_path / "pwned-by-hook"
    for name in ("pre-commit", "post-commit", "commit-msg"):
        hook(sh.ws / ".git" / "hooks" / name, hit)
    (sh.ws / "a.txt").write_text("a\n")
    calls = [["git", "add", "a.txt"], ["git", "commit", "-qm", "one"], ["git", "log", "--format=%an"], ALIVE]
    cp = sh.run(calls, "--allow", "shell:git=execute", "--allow", "fs:*=read,list,write", *ALLOW_ECHO, isolate="off")
    res = results(cp.stdout)
    assert [r.get("exit_code") for r in res[:3]] == [0, 0, 0], res
    assert res[2]["stdout"] == "alos process 1\n"
    assert not hit.exists()
    assert_alive(cp, res)


@needs_git
@pytest.mark.parametrize(
    "argv",
    [["git", "-C", "sub", "status", "--short"], ["git", "--git-dir=sub/.git", "--work-tree=sub", "status"]],
    ids=["-C", "--git-dir"],
)
def test_git_pointed_at_another_repository_is_decided_with_that_repositorys_config(
    sh: Shell, tmp_path: Path, argv: list[str]
) -> None:
    git("init", "-q", str(sh.ws / "sub"))
    hit = tmp_path / "pwned-by-other-repo"
    git("-C", str(sh.ws / "sub"), "config", "core.fsmonitor", hook(tmp_path / "fsmonitor.sh", hit))
    cp = sh.run([argv, ALIVE], "--allow", "shell:git=execute", *ALLOW_ECHO, isolate="off")
    res = results(cp.stdout)
    assert_alive(cp, res)
    assert not hit.exists(), "the repository's core.fsmonitor ran under a plain shell:git grant"
    assert denied(res[0]), res[0]


@needs_git
def test_files_that_look_like_a_bare_repository_are_not_taken_for_one(sh: Shell, tmp_path: Path) -> None:
    """./config, ./HEAD, ./objects, ./refs are plain files a process may write; their diff.external
    must not run under a plain shell:git grant (docs/shell.md: safe.bareRepository=explicit)."""
    hit = tmp_path / "pwned-by-bare-config"
    ext = hook(tmp_path / "ext.sh", hit)
    (sh.ws / "objects").mkdir()
    (sh.ws / "refs").mkdir()
    (sh.ws / "HEAD").write_text("ref: refs/heads/main\n")
    (sh.ws / "config").write_text(f"[core]\n\trepositoryformatversion = 0\n\tbare = true\n[diff]\n\texternal = {ext}\n")
    (sh.ws / "x").write_text("1\n")
    (sh.ws / "y").write_text("2\n")
    cp = sh.run(
        [["git", "diff", "--no-index", "x", "y"], ALIVE], "--allow", "shell:git=execute", *ALLOW_ECHO, isolate="off"
    )
    res = results(cp.stdout)
    assert_alive(cp, res)
    assert not hit.exists(), "diff.external from ./config ran under a plain shell:git grant"
    assert res[0].get("exit_code") == 1 and "+2" in res[0]["stdout"], res[0]  # git's own diff ran


@pytest.mark.parametrize(
    "argv",
    [
        ["awk", 'BEGIN{system("touch pwned")}'],
        ["sed", "-n", "1e touch pwned", "a"],
        ["tar", "-cf", "/dev/null", "a", "--checkpoint=1", "--checkpoint-action=exec=touch pwned"],
    ],
    ids=["awk", "sed-e", "tar-checkpoint"],
)
def test_other_programs_that_run_code_they_are_handed_are_forms(sh: Shell, argv: list[str]) -> None:
    """awk's program, sed's e command and tar's --checkpoint-action run code: a plain grant on the
    program does not cover them."""
    if shutil.which(argv[0]) is None:
        pytest.skip(f"no {argv[0]} here")
    (sh.ws / "a").write_text("a\n")
    cp = sh.run(
        [argv, ALIVE], "--allow", f"shell:{argv[0]}=execute", "--allow", "fs:*=write", *ALLOW_ECHO, isolate="off"
    )
    res = results(cp.stdout)
    assert_alive(cp, res)
    assert not (sh.ws / "pwned").exists(), f"{argv[0]} ran code under shell:{argv[0]}=execute"
    assert denied(res[0]), res[0]


def test_sed_with_sandbox_runs_under_a_plain_grant_and_cannot_run_code(sh: Shell) -> None:
    (sh.ws / "a").write_text("a\n")
    calls = [["sed", "--sandbox", "-n", "p", "a"], ["sed", "--sandbox", "-n", "1e touch pwned", "a"], ALIVE]
    cp = sh.run(calls, "--allow", "shell:sed=execute", "--allow", "fs:*=write", *ALLOW_ECHO, isolate="off")
    res = results(cp.stdout)
    assert res[0].get("stdout") == "a\n", res[0]
    assert res[1].get("exit_code") != 0 and not (sh.ws / "pwned").exists(), res[1]
    assert_alive(cp, res)


# ---------------------------------------------------------------------------------------------
# runaway commands: fork bomb, SIGTERM ignored, output flood, daemons, kill, host exit


@pytest.mark.parametrize("isolate", ["auto", "off"])
def test_a_fork_bomb_under_an_explicit_sh_c_grant_is_stopped_whole_at_the_wall_time(
    sh: Shell, marker: str, isolate: str
) -> None:
    # bounded (2^9 shells at most, each ending in a sleep) so a failure cannot take the machine down
    bomb = f"f(){{ if [ $1 -gt 0 ]; then f $(($1-1)) & f $(($1-1)) & fi; exec sleep {marker}; }}; f 8"
    cp = sh.run(
        [{"argv": ["sh", "-c", bomb], "timeout": 2}, ALIVE],
        "--allow",
        "shell:sh -c *=execute",
        *ALLOW_ECHO,
        isolate=isolate,
    )
    res = results(cp.stdout)
    r = res[0]
    assert r.get("limit") == "wall" and r["exit_code"] is None and r["signal"] == "SIGKILL", r
    assert 2 <= r["duration"] < 15, r
    wait_until(lambda: not survivors(marker), timeout=10, what="every process of the fork bomb to be gone")
    assert_alive(cp, res)
    [rec, _] = sh.shell_audit()
    assert rec["decision"] == "allow" and rec["outcome"] == "ok" and marker in rec["resource"]


def test_a_command_that_ignores_sigterm_is_killed_at_the_wall_time(sh: Shell, marker: str) -> None:
    script = f"trap '' TERM; echo armed; sleep {marker}"
    cp = sh.run([{"argv": ["sh", "-c", script], "timeout": 1}, ALIVE], "--allow", "shell:sh -c *=execute", *ALLOW_ECHO)
    res = results(cp.stdout)
    r = res[0]
    assert r.get("limit") == "wall" and r["signal"] == "SIGKILL" and r["exit_code"] is None, r
    assert r["stdout"] == "armed\n" and 1 <= r["duration"] < 10
    wait_until(lambda: not survivors(marker), timeout=5, what="the sleep to be gone")
    assert_alive(cp, res)
    assert len(sh.shell_audit()) == 2


def test_runaway_output_is_stopped_and_cut_with_full_byte_counts(sh: Shell) -> None:
    cp = sh.run(
        [{"argv": ["yes"], "timeout": 5}, {"argv": ["sh", "-c", "yes >&2"], "timeout": 5}, ALIVE],
        "--allow",
        "shell:yes=execute",
        "--allow",
        "shell:sh -c *=execute",
        *ALLOW_ECHO,
    )
    texts = [e["detail"]["text"] for e in json_lines(cp.stdout) if e.get("kind") == "result"]
    assert '"limit":"output"' in texts[0] and '"limit":"output"' in texts[1], [t[:300] for t in texts]
    assert_alive(cp, results(cp.stdout))
    assert len(sh.shell_audit()) == 3

    # the whole result, through the Python API
    async def body() -> list[dict[str, Any]]:
        rt = alos_api.open(str(sh.root / "py" / "store.db"), host=True)
        try:
            script = sh.root / "empty.jsonl"
            script.write_text("")
            grants = [
                alos_api.parse_grant(g, alos_api.Effect.ALLOW, str(sh.ws))
                for g in ("shell:yes=execute", "shell:sh -c *=execute", "shell:echo=execute")
            ]
            pid = await rt.spawn("coder", "g", workspace=str(sh.ws), model=f"script:{script}", grants=grants)
            out = [await rt.dispatch(pid, "shell.run", {"argv": ["yes"], "timeout": 5})]
            out.append(await rt.dispatch(pid, "shell.run", {"argv": ["sh", "-c", "yes >&2"], "timeout": 5}))
            out.append(await rt.dispatch(pid, "shell.run", {"argv": ALIVE}))
            assert [a.outcome for a in rt.audit() if a.syscall == "shell.run"] == ["ok", "ok", "ok"]
            return out
        finally:
            rt.close()

    out, err, alive = in_process(body)
    for r, stream in ((out, "stdout"), (err, "stderr")):
        assert r["limit"] == "output" and r["truncated"] is True and r["signal"] == "SIGKILL", {
            k: v for k, v in r.items() if k not in ("stdout", "stderr")
        }
        assert r[f"{stream}_bytes"] >= 16 * 1024 * 1024
        # 4 KiB kept (the first 1 KiB and the last 3 KiB), the middle named with its size
        m = re.search(r"\[\.\.\. (\d+) bytes not kept \.\.\.\]", r[stream])
        assert m and int(m.group(1)) + 4096 == r[f"{stream}_bytes"], r[stream][:1100]
        assert len(r[stream].encode()) - len(m.group(0)) <= 4096 + 2
        assert r["duration"] < 15
    assert alive["stdout"] == "alive\n"


@needs_bwrap
def test_an_isolated_flood_is_stopped_at_once_not_at_the_wall_time(sh: Shell) -> None:
    floods = [{"argv": ["yes"], "timeout": 2}, {"argv": ["sh", "-c", "yes >&2"], "timeout": 2}] * 3
    cp = sh.run([*floods, ALIVE], "--allow", "shell:yes=execute", "--allow", "shell:sh -c *=execute", *ALLOW_ECHO)
    texts = [e["detail"]["text"] for e in json_lines(cp.stdout) if e.get("kind") == "result"]
    durations = [float(m.group(1)) for t in texts[:-1] if (m := re.search(r'"duration":([0-9.]+)', t))]
    assert len(durations) == len(floods), texts
    assert all('"limit":"output"' in t for t in texts[:-1])
    assert max(durations) < 1.5, durations


def test_the_model_reads_stdout_and_the_byte_counts_even_after_a_long_stderr(sh: Shell) -> None:
    record = sh.root / "record.jsonl"
    noisy = 'head -c 30000 /dev/zero | tr "\\0" e >&2; echo RESULT-$((6*7))'
    script = write_script(
        sh.root / "noisy.jsonl",
        [
            {"content": "x", "tool_calls": [{"name": "shell_run", "arguments": {"argv": ["sh", "-c", noisy]}}]},
            {"content": "done"},
        ],
    )
    cp = alos(
        "run", "coder", "g", "--workspace", str(sh.ws), "--store", str(sh.store), "--model", f"script:{script}",
        "--allow", "shell:sh -c *=execute", "--approve", "never", "--record", str(record), "--json",
    )  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    seen = [
        m["content"]
        for m in json.loads(record.read_text().splitlines()[-1])["request"]["messages"]
        if m.get("role") == "tool"
    ]
    assert len(seen) == 1
    assert "RESULT-42" in seen[0], seen[0][-300:]
    assert '"stdout_bytes"' in seen[0]


@pytest.mark.parametrize("isolate", ["auto", "off"])
def test_a_child_that_daemonises_does_not_outlive_its_command(sh: Shell, marker: str, isolate: str) -> None:
    script = (
        f"setsid sleep {marker}1 >/dev/null 2>&1 & "
        f"(setsid sh -c 'sleep {marker}2 & echo' >/dev/null 2>&1 &); "
        f"(cd / && setsid nohup sleep {marker}3 >/dev/null 2>&1 &); "
        # a daemon that also drops the marker in its environment: found as the spawner's orphan
        f"(setsid env -i sleep {marker}4 >/dev/null 2>&1 &); "
        f"(setsid env -u ALOS_RUN sleep {marker}5 >/dev/null 2>&1 &); "
        "echo started"
    )
    cp = sh.run(
        [{"argv": ["sh", "-c", script], "timeout": 10}, ALIVE],
        "--allow",
        "shell:sh -c *=execute",
        *ALLOW_ECHO,
        isolate=isolate,
    )
    res = results(cp.stdout)
    assert res[0].get("exit_code") == 0 and res[0]["stdout"] == "started\n", res[0]
    wait_until(lambda: not survivors(marker), timeout=5, what="the daemonised sleeps to be gone")
    assert_alive(cp, res)
    assert sh.shell_audit()[0]["outcome"] == "ok"


def kill_from_another_terminal(sh: Shell, marker: str, isolate: str) -> dict[str, Any]:
    """Run `sleep MARKER` in a background host, `alos kill 1` it; return the result the model got."""
    host = sh.popen([{"argv": ["sleep", marker], "timeout": 120}], "--allow", "shell:sleep=execute", isolate=isolate)
    try:
        wait_until(lambda: bool(survivors(marker)), timeout=20, what="the sleep to start")
        k = sh.cmd("kill", "1")
        assert k.returncode == 0, k.stdout + k.stderr
        assert host.wait(timeout=20) == 1  # the root was killed
        wait_until(lambda: not survivors(marker), timeout=5, what="the sleep to be gone")
    finally:
        stop(host)
    [r] = results(sh.host_out.read_text())
    return r


@pytest.mark.parametrize("isolate", ["auto", "off"])
def test_alos_kill_from_another_terminal_ends_the_process_and_its_command(sh: Shell, marker: str, isolate: str) -> None:
    r = kill_from_another_terminal(sh, marker, isolate)
    assert r["signal"] == "SIGKILL" and r["exit_code"] is None and r["duration"] < 30, r
    assert r["limit"] == "killed", r  # a command stopped by alos kill says so
    [p] = sh.ps()
    assert p["state"] == "exited" and p["exit"] == "killed"
    recs = sh.audit()
    assert any(a["syscall"] == "proc.signal" and a["pid"] == 0 for a in recs)
    assert [a["resource"] for a in recs if a["syscall"] == "shell.run"] == [f"shell:{real('sleep')} {marker}"]
    # the host is unaffected: a new run in the same store works
    cp = sh.run([ALIVE], *ALLOW_ECHO)
    assert_alive(cp, results(cp.stdout))


@pytest.mark.parametrize(
    ("sig", "isolate", "gone_with_host"),
    [
        (signal.SIGINT, "off", True),
        (signal.SIGTERM, "off", True),
        (signal.SIGKILL, "auto", True),
        # a host killed -9 cannot kill an unisolated command; the next host finds it by its marker
        (signal.SIGKILL, "off", False),
    ],
    ids=["SIGINT-off", "SIGTERM-off", "SIGKILL-auto", "SIGKILL-off"],
)
def test_a_command_dies_with_its_host_and_is_not_rerun_silently(
    sh: Shell, marker: str, sig: signal.Signals, isolate: str, gone_with_host: bool
) -> None:
    if isolate == "auto" and not HAS_BWRAP:
        pytest.skip("a host killed -9 takes its command along only with bubblewrap")
    host = sh.popen(
        [{"argv": ["sleep", marker], "timeout": 120}, ALIVE],
        "--allow",
        "shell:sleep=execute",
        *ALLOW_ECHO,
        isolate=isolate,
    )
    try:
        wait_until(lambda: bool(survivors(marker)), timeout=20, what="the sleep to start")
        host.send_signal(sig)
        host.wait(timeout=20)
        if gone_with_host:
            wait_until(lambda: not survivors(marker), timeout=5, what="the sleep to be gone with its host")
    finally:
        stop(host)
    # the next host does not run it again on its own: a person decides (a recovery request)
    r = sh.resume()
    assert r.returncode == 3, r.stdout + r.stderr
    wait_until(lambda: not survivors(marker), timeout=5, what="the sleep to be gone once a host runs again")
    [req] = sh.approvals()
    assert req["kind"] == "recovery" and req["syscall"] == "shell.run" and marker in req["resource"]
    assert sh.cmd("deny", str(req["id"]), "--reason", "do not rerun").returncode == 0
    r = sh.resume()
    assert r.returncode == 0, r.stdout + r.stderr
    assert not survivors(marker)
    assert results(r.stdout)[-1]["stdout"] == "alive\n"
    recs = [a for a in sh.shell_audit() if marker in a["resource"]]
    assert (recs[0]["decision"], recs[0]["outcome"]) == ("ask", "parked") and recs[0]["detail"].get("recovery"), recs
    assert not any(a["outcome"] == "ok" for a in recs), recs  # never run a second time


# ---------------------------------------------------------------------------------------------
# the environment, stdin, the result fields


SECRETS = {
    "OPENAI_API_KEY": "sk-secret-openai-7f3a",
    "ANTHROPIC_API_KEY": "sk-ant-secret-9c1d",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-4e8b",
    "GITHUB_TOKEN": "ghp_secrettoken51",
    "HTTPS_PROXY": "http://proxy-secret.invalid:3128",
    "GIT_DIR": "/nonexistent-secret-gitdir",
    "PYTHONPATH": "/nonexistent-secret-pythonpath",
}


@pytest.mark.parametrize("isolate", ["auto", "off"])
def test_secret_variables_never_reach_a_command(sh: Shell, tmp_path: Path, isolate: str) -> None:
    sourced = tmp_path / "bash-env-sourced"
    bash_env = tmp_path / "bash_env.sh"
    bash_env.write_text(f"touch {sourced}\n")
    env = {**os.environ, **SECRETS, "BASH_ENV": str(bash_env), "ENV": str(bash_env)}
    cp = sh.run(
        [["env"], ["bash", "-c", "echo $((6*7))"], ALIVE],
        "--allow",
        "shell:env=execute",
        "--allow",
        "shell:bash -c *=execute",
        *ALLOW_ECHO,
        isolate=isolate,
        env=env,
    )
    res = results(cp.stdout)
    out = res[0]["stdout"]
    for name, value in SECRETS.items():
        assert value not in out and f"{name}=" not in out, name
    assert "BASH_ENV=" not in out and "\nENV=" not in "\n" + out
    seen = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    # HOME: an empty directory of its own (docs/shell.md), never the workspace nor the host's
    assert seen["HOME"] != str(sh.ws.resolve()) and "alos-home-" in seen["HOME"], seen["HOME"]
    assert seen["TERM"] == "dumb" and seen["NO_COLOR"] == "1" and seen["PYTHONNOUSERSITE"] == "1"
    assert seen["ALOS_PID"] == "1" and seen["GIT_PAGER"] == "cat"
    assert res[1]["stdout"] == "42\n" and not sourced.exists()
    assert_alive(cp, res)
    # and no secret in anything the store shows
    for view in ("audit", "ps"):
        shown = sh.cmd(view, "--json").stdout
        assert not any(v in shown for v in SECRETS.values()), view


def image_with_env(path: Path, env: dict[str, str]) -> Path:
    lines = ["name: envtest", "description: runs shell commands", "tools:", "  - shell.run", "  - proc.exit", "env:"]
    lines += [f"  {k}: {json.dumps(v)}" for k, v in env.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_an_image_env_reaches_its_commands_and_the_host_secrets_do_not(sh: Shell) -> None:
    img = image_with_env(sh.root / "envtest.yaml", {"TEST_MODE": "fast"})
    assert alos("image", "validate", str(img)).returncode == 0
    script = write_script(
        sh.root / "env.jsonl",
        [{"content": "x", "tool_calls": [{"name": "shell_run", "arguments": {"argv": ["env"]}}]}],
    )
    cp = alos(
        "run", str(img), "g", "--workspace", str(sh.ws), "--store", str(sh.store), "--model", f"script:{script}",
        "--allow", "shell:env=execute", "--approve", "never", "--json",
        env={**os.environ, **SECRETS},
    )  # fmt: skip
    assert cp.returncode == 0, cp.stdout[-2000:] + cp.stderr[-2000:]
    out = results(cp.stdout)[0]["stdout"]
    assert "TEST_MODE=fast\n" in out
    assert not any(v in out for v in SECRETS.values()), out


# One image file with all the variables, one `alos image validate`: it reports every error at once,
# each on its own line (file:line: env.NAME: ...), so each name is refused on its own.
def test_an_image_may_not_set_a_variable_that_changes_what_runs(sh: Shell) -> None:
    names = ["LD_PRELOAD", "BASH_ENV", "PYTHONPATH", "GIT_DIR", "PERL5OPT", "ALOS_PID", "HOME"]
    img = image_with_env(sh.root / "envtest.yaml", dict.fromkeys(names, "/tmp/x"))
    cp = alos("image", "validate", str(img))
    out = cp.stdout + cp.stderr
    assert cp.returncode == 1, out
    for n, name in enumerate(names):
        assert f"envtest.yaml:{7 + n}: env.{name}:" in out, (name, out)


def test_an_image_may_not_set_a_variable_that_loads_code_by_another_name(sh: Shell) -> None:
    values = {"PYTHONUSERBASE": "ub", "LESSOPEN": "|touch pwned; cat %s"}
    img = image_with_env(sh.root / "envtest.yaml", values)
    cp = alos("image", "validate", str(img))
    out = cp.stdout + cp.stderr
    assert cp.returncode == 1, out
    for n, name in enumerate(values):
        assert f"envtest.yaml:{7 + n}: env.{name}:" in out, (name, out)


def test_stdin_is_closed_and_the_result_has_every_field(sh: Shell) -> None:
    async def body() -> tuple[list[dict[str, Any]], list[Any]]:
        rt = alos_api.open(str(sh.store), host=True)
        try:
            script = sh.root / "empty.jsonl"
            script.write_text("")
            grants = [
                alos_api.parse_grant(g, alos_api.Effect.ALLOW, str(sh.ws))
                for g in ("shell:cat=execute", "shell:sh -c *=execute", "shell:echo=execute")
            ]
            pid = await rt.spawn("coder", "g", workspace=str(sh.ws), model=f"script:{script}", grants=grants)
            out = [
                await rt.dispatch(pid, "shell.run", {"argv": ["cat"], "timeout": 10}),
                await rt.dispatch(pid, "shell.run", {"argv": ["sh", "-c", "read x; echo read=$?"], "timeout": 10}),
                await rt.dispatch(pid, "shell.run", {"argv": ["sh", "-c", "echo out; echo err >&2; exit 3"]}),
            ]
            with pytest.raises(alos_api.Denied):
                await rt.dispatch(pid, "shell.run", {"argv": ["rm", "-rf", "."]})
            out.append(await rt.dispatch(pid, "shell.run", {"argv": ALIVE}))
            return out, list(rt.audit())
        finally:
            rt.close()

    (cat, read, fields, alive), audit = in_process(body)
    assert cat["exit_code"] == 0 and cat["stdout"] == "" and cat["limit"] is None and cat["duration"] < 5, cat
    assert read["stdout"].startswith("read=") and read["stdout"] != "read=0\n" and read["limit"] is None, read
    assert set(fields) >= {
        "argv", "program", "exit_code", "signal", "stdout", "stderr", "stdout_bytes", "stderr_bytes",
        "truncated", "duration", "limit", "isolated",
    }  # fmt: skip
    assert fields["argv"] == ["sh", "-c", "echo out; echo err >&2; exit 3"]
    assert fields["program"] == real("sh")
    assert (fields["exit_code"], fields["signal"], fields["limit"], fields["truncated"]) == (3, None, None, False)
    assert (fields["stdout"], fields["stderr"], fields["stdout_bytes"], fields["stderr_bytes"]) == (
        "out\n",
        "err\n",
        4,
        4,
    )
    assert isinstance(fields["duration"], float) and 0 <= fields["duration"] < 10
    assert isinstance(fields["isolated"], bool)
    assert alive["stdout"] == "alive\n"
    shell = [a for a in audit if a.syscall == "shell.run"]
    assert [(a.decision, a.outcome) for a in shell] == [("allow", "ok")] * 3 + [("deny", "denied"), ("allow", "ok")]


def test_a_signal_kill_is_reported_as_a_signal_without_isolation(sh: Shell) -> None:
    cp = sh.run([["sh", "-c", "kill -SEGV $$"], ALIVE], "--allow", "shell:sh -c *=execute", *ALLOW_ECHO, isolate="off")
    res = results(cp.stdout)
    assert res[0]["signal"] == "SIGSEGV" and res[0]["exit_code"] is None and res[0]["isolated"] is False, res[0]
    assert_alive(cp, res)


@needs_bwrap
def test_a_signal_kill_is_reported_as_a_signal_when_isolated(sh: Shell) -> None:
    cp = sh.run([["sh", "-c", "kill -SEGV $$"], ALIVE], "--allow", "shell:sh -c *=execute", *ALLOW_ECHO)
    res = results(cp.stdout)
    assert_alive(cp, res)
    assert res[0]["isolated"] is True
    assert res[0]["signal"] == "SIGSEGV" and res[0]["exit_code"] is None, res[0]


def limits_of(text: str) -> dict[str, str]:
    """/proc/self/limits as {name: soft limit}."""
    out = {}
    for line in text.splitlines()[1:]:
        m = re.match(r"(Max [a-z ]+?)\s{2,}(\S+)\s+(\S+)", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


DOCUMENTED_LIMITS = {
    "Max cpu time": "600",
    "Max data size": str(4 * 1024**3),
    "Max file size": str(1024**3),
    "Max core file size": "0",
}


def test_rlimits_reach_an_unisolated_command_that_waits_a_moment(sh: Shell) -> None:
    cp = sh.run(
        [["sh", "-c", "sleep 1; cat /proc/self/limits"], ALIVE],
        "--allow",
        "shell:sh -c *=execute",
        *ALLOW_ECHO,
        isolate="off",
    )
    res = results(cp.stdout)
    got = limits_of(res[0]["stdout"])
    assert {k: got.get(k) for k in DOCUMENTED_LIMITS} == DOCUMENTED_LIMITS, got
    assert got.get("Max processes") == "4096"
    assert_alive(cp, res)


@pytest.mark.parametrize("isolate", [pytest.param("auto", marks=needs_bwrap), "off"])
def test_rlimits_are_in_force_from_the_first_instruction(sh: Shell, isolate: str) -> None:
    cp = sh.run(
        [["cat", "/proc/self/limits"]] * 60 + [ALIVE], "--allow", "shell:cat=execute", *ALLOW_ECHO, isolate=isolate
    )
    res = results(cp.stdout)
    assert_alive(cp, res)
    unlimited = [
        r for r in res[:-1] if {k: limits_of(r["stdout"]).get(k) for k in DOCUMENTED_LIMITS} != DOCUMENTED_LIMITS
    ]
    assert not unlimited, f"{len(unlimited)} of 60 ran without the limits: {limits_of(unlimited[0]['stdout'])}"


# ---------------------------------------------------------------------------------------------
# isolation


@pytest.mark.skipif(HAS_BWRAP, reason="bubblewrap is installed here; docs/shell.md gives no way to hide it")
def test_isolate_required_refuses_to_run_without_bubblewrap(sh: Shell) -> None:
    (sh.ws / "f").write_text("keep\n")
    cp = sh.run(
        [["rm", "f"], ALIVE],
        "--allow",
        "shell:rm=execute",
        "--allow",
        "fs:*=write,delete",
        *ALLOW_ECHO,
        isolate="required",
    )
    res = results(cp.stdout)
    assert "error" in res[0] and "bwrap" in res[0]["error"], res[0]
    assert (sh.ws / "f").exists()
    assert "error" in res[1]  # echo is refused as well: nothing runs unisolated
    assert [r["outcome"] for r in sh.shell_audit()][:1] == ["unavailable"]


@needs_bwrap
def test_isolate_required_runs_isolated_when_bubblewrap_is_installed(sh: Shell) -> None:
    cp = sh.run([ALIVE], *ALLOW_ECHO, isolate="required")
    res = results(cp.stdout)
    assert res[0]["isolated"] is True
    assert_alive(cp, res)


@needs_bwrap
def test_an_isolated_command_writes_only_where_the_process_may_write(sh: Shell, tmp_path: Path) -> None:
    (sh.ws / "out").mkdir()
    outside = tmp_path / "outside.txt"
    var_tmp = Path("/var/tmp") / f"alos-bb-{uuid.uuid4().hex}"
    script = (
        "echo a > out/ok.txt; echo rc=$?; echo b > root.txt; echo rc=$?; "
        f"echo c > {outside}; echo rc=$?; echo d > {var_tmp}; echo rc=$?"
    )
    try:
        cp = sh.run(
            [["sh", "-c", script], ALIVE], "--allow", "shell:sh -c *=execute", "--allow", "fs:out/*=write", *ALLOW_ECHO
        )
        res = results(cp.stdout)
        assert res[0]["isolated"] is True, res[0]
        rcs = res[0]["stdout"].splitlines()
        assert (rcs[0], rcs[1], rcs[3]) == ("rc=0", "rc=2", "rc=2"), res[0]  # out/ ok; ./ and /var/tmp read-only
        assert (sh.ws / "out" / "ok.txt").read_text() == "a\n"
        # nothing reached the host outside out/ (a write under the private /tmp stays in the sandbox)
        assert not (sh.ws / "root.txt").exists() and not outside.exists() and not var_tmp.exists()
        assert_alive(cp, res)
    finally:
        var_tmp.unlink(missing_ok=True)


@needs_bwrap
def test_an_isolated_command_cannot_write_a_path_the_process_is_denied(sh: Shell) -> None:
    (sh.ws / ".env").write_text("SECRET=1\n")
    (sh.ws / ".git").mkdir()
    (sh.ws / ".git" / "config").write_text("[core]\n")
    script = "echo x >> .env; echo y >> .git/config; echo z > free.txt"
    cp = sh.run(
        [["sh", "-c", script], ALIVE],
        "--allow",
        "shell:sh -c *=execute",
        "--allow",
        "fs:*=write",
        "--deny",
        "fs:.env=write",
        "--deny",
        "fs:.git/*=write",
        *ALLOW_ECHO,
    )
    res = results(cp.stdout)
    assert_alive(cp, res)
    assert (sh.ws / "free.txt").read_text() == "z\n"
    assert (sh.ws / ".env").read_text() == "SECRET=1\n"
    assert (sh.ws / ".git" / "config").read_text() == "[core]\n"


@needs_bwrap
def test_an_isolated_command_has_a_private_tmp(sh: Shell) -> None:
    tag = uuid.uuid4().hex
    host_file = Path("/tmp") / f"alos-bb-host-{tag}"
    inside_file = Path("/tmp") / f"alos-bb-inside-{tag}"
    host_file.write_text("host only\n")
    try:
        script = f"cat {host_file}; echo rc=$?; echo in > {inside_file}; cat {inside_file}; echo TMPDIR=$TMPDIR"
        cp = sh.run([["sh", "-c", script], ALIVE], "--allow", "shell:sh -c *=execute", *ALLOW_ECHO)
        res = results(cp.stdout)
        assert res[0]["isolated"] is True
        assert res[0]["stdout"] == "rc=1\nin\nTMPDIR=/tmp\n", res[0]
        assert not inside_file.exists()
        assert_alive(cp, res)
    finally:
        host_file.unlink(missing_ok=True)
        inside_file.unlink(missing_ok=True)


@needs_bwrap
def test_an_isolated_command_cannot_see_the_store(tmp_path: Path) -> None:
    store_dir = Path(tempfile.mkdtemp(prefix="alos-bb-store-", dir="/var/tmp"))  # outside the private /tmp
    try:
        sh = Shell(tmp_path)
        sh.store = store_dir / "store.db"
        script = f"ls -A {store_dir}; cat {sh.store} | head -c 16 | od -c | head -1; echo done"
        cp = sh.run([["sh", "-c", script], ALIVE], "--allow", "shell:sh -c *=execute", *ALLOW_ECHO)
        res = results(cp.stdout)
        assert res[0]["isolated"] is True
        assert "store.db" not in res[0]["stdout"] and "SQLite" not in res[0]["stdout"].replace(" ", ""), res[0]
        assert res[0]["stdout"].endswith("done\n")
        assert_alive(cp, res)
    finally:
        shutil.rmtree(store_dir, ignore_errors=True)


@needs_python3
@pytest.mark.parametrize("isolate", [pytest.param("auto", marks=needs_bwrap), "off"])
def test_network_is_cut_when_isolated_and_not_granted(sh: Shell, isolate: str) -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    srv.settimeout(0.2)
    port = srv.getsockname()[1]
    code = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3); print('connected')"
    try:
        cp = sh.run(
            [{"argv": ["python3", "-c", code], "timeout": 15}, ALIVE],
            "--allow",
            "shell:python3 -c *=execute",
            *ALLOW_ECHO,
            isolate=isolate,
        )
        res = results(cp.stdout)
        try:
            conn, _ = srv.accept()
            conn.close()
            accepted = True
        except OSError:
            accepted = False
    finally:
        srv.close()
    if isolate == "off":  # the control: without isolation the command reaches the host's loopback
        assert res[0]["stdout"] == "connected\n" and accepted, res[0]
    else:
        assert res[0]["isolated"] is True and res[0]["exit_code"] != 0 and "connected" not in res[0]["stdout"], res[0]
        assert not accepted
    assert_alive(cp, res)


# ---------------------------------------------------------------------------------------------
# approvals


def test_an_asked_command_shows_everything_and_runs_once_after_approval(sh: Shell) -> None:
    argv = ["printf", "%s|", "a b", "it's", "*"]
    cp = sh.run([{"argv": argv, "timeout": 7}, ALIVE], "--ask", "shell:*=execute")
    assert cp.returncode == 3, cp.stdout + cp.stderr
    assert results(cp.stdout) == []
    [req] = sh.approvals()
    assert req["kind"] == "approval" and req["syscall"] == "shell.run" and req["right"] == "execute"
    assert req["resource"] == "shell:" + " ".join(shlex.quote(a) for a in [real("printf"), *argv[1:]])
    d = req["detail"]
    assert shown_argv(d) == argv, d  # the full argv
    assert d["program"] == real("printf")  # the resolved program
    assert d["cwd"] == str(sh.ws.resolve())
    assert "7 s wall" in d["limits"] and "CPU" in d["limits"] and "output" in d["limits"], d
    assert ("bubblewrap" in d["isolation"]) == HAS_BWRAP, d
    assert [(r["decision"], r["outcome"]) for r in sh.shell_audit()] == [("ask", "parked")]

    assert sh.cmd("approve", str(req["id"])).returncode == 0
    r = sh.resume()
    assert r.returncode == 3, r.stdout + r.stderr  # echo alive asks too (approve once is one call)
    res = results(r.stdout)
    assert res[0]["stdout"] == "a b|it's|*|" and res[0]["exit_code"] == 0
    [req2] = sh.approvals()
    assert req2["resource"] == f"shell:{real('echo')} alive"
    assert sh.cmd("approve", str(req2["id"])).returncode == 0
    r = sh.resume()
    assert r.returncode == 0, r.stdout + r.stderr
    printf_runs = [x for x in sh.shell_audit() if "printf" in x["resource"]]
    assert [(x["decision"], x["outcome"]) for x in printf_runs] == [("ask", "parked"), ("approved", "ok")]


def test_an_approved_command_runs_exactly_once(sh: Shell) -> None:
    run_it = ["sh", "-c", "echo run >> log.txt"]
    cp = sh.run(
        [run_it, ALIVE],
        "--ask",
        "shell:*=execute",
        "--ask",
        "shell:sh -c *=execute",
        "--allow",
        "fs:*=write",
        *ALLOW_ECHO,
    )
    assert cp.returncode == 3, cp.stdout + cp.stderr
    assert not (sh.ws / "log.txt").exists()
    [req] = sh.approvals()
    assert shown_argv(req["detail"]) == run_it
    assert sh.cmd("approve", str(req["id"])).returncode == 0
    assert not (sh.ws / "log.txt").exists(), "approve alone must not run it"
    r = sh.resume()
    assert r.returncode == 0, r.stdout + r.stderr
    assert (sh.ws / "log.txt").read_text() == "run\n"
    r = sh.resume()  # nothing left: no second run
    assert r.returncode == 0 and (sh.ws / "log.txt").read_text() == "run\n"
    assert [(x["decision"], x["outcome"]) for x in sh.shell_audit()][:2] == [("ask", "parked"), ("approved", "ok")]


def test_an_approval_does_not_follow_a_symlink_repointed_after_it_was_asked(sh: Shell) -> None:
    (sh.ws / "f").write_text("keep\n")
    (sh.ws / "tool").symlink_to(real("echo"))
    cp = sh.run([["./tool", "f"]], "--ask", "shell:*=execute", "--allow", "fs:*=write,delete", isolate="off")
    assert cp.returncode == 3
    [req] = sh.approvals()
    assert req["detail"]["program"] == real("echo")
    (sh.ws / "tool").unlink()
    (sh.ws / "tool").symlink_to(real("rm"))  # swapped while the request waits
    assert sh.cmd("approve", str(req["id"])).returncode == 0
    r = sh.resume("--isolate", "off")
    assert (sh.ws / "f").read_text() == "keep\n", "the approval of echo ran rm"
    assert r.returncode == 3, r.stdout + r.stderr
    [req2] = sh.approvals()
    assert req2["detail"]["program"] == real("rm") and req2["resource"] == f"shell:{real('rm')} f"


@needs_bwrap
def test_an_approval_shown_isolated_does_not_run_unisolated(sh: Shell) -> None:
    target = Path("/var/tmp") / f"alos-bb-escape-{uuid.uuid4().hex}"
    try:
        cp = sh.run([["touch", str(target)]], "--ask", "shell:*=execute")
        assert cp.returncode == 3
        [req] = sh.approvals()
        assert "bubblewrap" in req["detail"]["isolation"]
        assert sh.cmd("approve", str(req["id"])).returncode == 0
        r = sh.resume("--isolate", "off")
        assert not target.exists(), "approved as isolated (read-only file system), ran unisolated"
        assert r.returncode == 3, r.stdout + r.stderr  # asked again, showing the isolation it would get
        [again] = sh.approvals()
        assert again["id"] != req["id"] and "bubblewrap" not in again["detail"]["isolation"], again
    finally:
        target.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# hostile names: terminal escapes in the argv and in the output


def test_terminal_escapes_in_argv_and_output_never_reach_the_terminal_raw(sh: Shell) -> None:
    argv = ["printf", "\\033]0;pwned-title\\007\\033[2J%s\\n", "\x1b[2J\x1b]0;title\x07", "\u202eevil"]
    cp = sh.run([argv, ALIVE], "--ask", "shell:*=execute", *ALLOW_ECHO, json_out=False)
    assert cp.returncode == 3, cp.stdout + cp.stderr
    shown = {"run": cp.stdout + cp.stderr}
    ap = sh.cmd("approvals")
    shown["approvals"] = ap.stdout + ap.stderr
    [req] = sh.approvals()
    assert "\x1b[2J" in req["resource"]  # the JSON carries the real argv (as a JSON escape)
    sh.cmd("approve", str(req["id"]))
    r = alos("resume", "--store", str(sh.store), "--approve", "never")
    assert r.returncode == 0, r.stdout + r.stderr
    shown["resume"] = r.stdout + r.stderr
    a = sh.cmd("audit")
    shown["audit"] = a.stdout + a.stderr
    shown["ps"] = sh.cmd("ps", "--all").stdout
    for view, text in shown.items():
        for ch in RAW:
            assert ch not in text, (view, ch, text[-2000:])
    assert "\\x1b" in shown["approvals"] and "\\x1b" in shown["audit"]
    # the JSON output escapes them too: no raw control character on stdout
    for args in (("audit", "--json"), ("approvals", "--all", "--json")):
        out = sh.cmd(*args).stdout
        assert not any(ch in out for ch in RAW), args


def test_approvals_json_argv_distinguishes_an_escape_from_its_visible_spelling(sh: Shell) -> None:
    real_esc = ["printf", "\x1b[2J"]
    spelled = ["printf", "\\x1b[2J"]
    cp = sh.run([real_esc, spelled], "--ask", "shell:*=execute")
    assert cp.returncode == 3
    [first] = sh.approvals()
    sh.cmd("deny", str(first["id"]))
    sh.resume()
    [second] = sh.approvals()
    assert first["resource"] != second["resource"]
    assert first["detail"]["argv"] != second["detail"]["argv"], first["detail"]["argv"]
    assert shown_argv(first["detail"]) == real_esc and shown_argv(second["detail"]) == spelled
