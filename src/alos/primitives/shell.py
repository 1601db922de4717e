"""shell.run: run a program on the host, decided on what it would really run (docs/shell.md).

An argv only, never a string for a shell to parse. Resolution, before the decision: the program
is found on the search path (or from the working directory when it holds a '/') and made real;
a git call in a repository whose config names commands (aliases, a pager, filters ...) is
decided as if that config were given with ``-c``; a wrapper (env, timeout, xargs, find -exec ...)
needs execute on the command it wraps too. The command runs through the shell provider with a
scrubbed environment, stdin closed, rlimits and a wall time, in its own process group.
"""

from __future__ import annotations

import asyncio
import os
import shlex
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from alos import caps, codec, git, limits, shellforms
from alos.errors import Invalid, NotFound
from alos.kernel import Kernel, images
from alos.providers.base import ShellLimits, ShellRequest, ShellResult
from alos.rights import Need, Right
from alos.types import Process, ProcState

ISOLATE_MODES = ("auto", "off", "required")
# the host's variables a command may see; everything else (keys, tokens, proxies) stays behind
_KEPT = ("LANG", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TZ")


@dataclass(frozen=True, slots=True)
class RunArgs:
    """Run a program: ``argv`` is the program and its arguments as a list (never a string for a
    shell to parse). It runs in your working directory with stdin closed and a scrubbed
    environment; the result holds the exit code, stdout and stderr (cut, with their full sizes),
    the duration and whether a limit stopped it. ``timeout`` is in seconds."""

    argv: Annotated[list[str], msgspec.Meta(min_length=1, max_length=limits.SHELL_ARGV_MAX)]
    timeout: Annotated[float, msgspec.Meta(gt=0, le=limits.SHELL_WALL_MAX_SECONDS)] = limits.SHELL_WALL_SECONDS


@dataclass(frozen=True, slots=True)
class Command:
    """One command as it is decided: the real program and the arguments decided on (for git, with
    the repository's code-running config shown as ``-c``)."""

    program: str
    args: tuple[str, ...]
    form: int | None  # index in args of the word that makes it run code or another command

    @property
    def resource(self) -> str:
        """``shell:`` and the argv quoted as a POSIX shell would (shellforms.resource's spelling)."""
        return "shell:" + shlex.join([self.program, *self.args])


@dataclass(frozen=True, slots=True)
class RunPlan:
    """A resolved shell.run: what is decided on and exactly what runs."""

    argv: tuple[str, ...]
    cwd: str
    timeout: float
    commands: tuple[Command, ...]  # the command itself, then each command a wrapper runs

    @property
    def program(self) -> str:
        return self.commands[0].program


def resolve(kernel: Kernel, proc: Process, args: RunArgs) -> RunPlan:
    """Return the plan of ``args``: every command it would run, each program found and made real.
    Raises Invalid for an argv the host cannot pass (NUL bytes, sizes)."""
    _check_argv(args.argv)
    search = shellforms.search_path()
    commands: list[Command] = []
    word, rest = args.argv[0], tuple(args.argv[1:])
    for _ in range(limits.SHELL_WRAPS_MAX + 1):
        program = kernel.shell.locate(proc.cwd, word, search) or _unfound(proc.cwd, word)
        decided = _with_git_config(kernel, proc.cwd, program, rest)
        commands.append(Command(program, decided, shellforms.form(program, decided, called=word)))
        inner = shellforms.wrapped(program, rest)
        if inner is None:
            break
        word, rest = inner
    else:
        raise Invalid(f"the command nests more than {limits.SHELL_WRAPS_MAX} wrappers; run the inner command itself")
    return RunPlan(tuple(args.argv), proc.cwd, args.timeout, tuple(commands))


def _check_argv(argv: list[str]) -> None:
    total = 0
    for i, word in enumerate(argv):
        if "\x00" in word:
            raise Invalid(f"argv[{i}] holds a NUL byte; the host cannot pass it to a program")
        size = len(word.encode())
        if size > limits.SHELL_ARG_MAX_BYTES:
            raise Invalid(f"argv[{i}] is {size} bytes; one argument may be at most {limits.SHELL_ARG_MAX_BYTES}")
        total += size + 1
    if total > limits.SHELL_ARGV_MAX_BYTES:
        raise Invalid(f"the argv is {total} bytes; at most {limits.SHELL_ARGV_MAX_BYTES}: pass data in a file")
    if not argv[0]:
        raise Invalid("argv[0] is empty; name a program, e.g. ['git', 'status']")


def _unfound(cwd: str, word: str) -> str:
    """Return what an unfound program is decided as: its path from ``cwd`` when it names one, else
    its bare name (which no grant but ``shell:*`` covers; running it then says it is not found)."""
    return os.path.normpath(os.path.join(cwd, word)) if "/" in word else word


def _with_git_config(kernel: Kernel, cwd: str, program: str, args: tuple[str, ...]) -> tuple[str, ...]:
    """Return ``args`` of a git call with the repository config that names commands put first as
    ``-c KEY=sha256:...`` (what the call would really run: the value by its digest, so that a
    refusal tells the process nothing of a config it may not read; describe() shows the values);
    other calls unchanged."""
    if shellforms.name(program) != "git":
        return args
    found = [f"{k}={_short(v)}" for k, v in _repo_config(kernel, cwd) if git.code_key(k)]
    return tuple(w for kv in found for w in ("-c", kv)) + args


def _short(value: str) -> str:
    return codec.digest(value.encode())[:19]


def _repo_config(kernel: Kernel, cwd: str) -> list[tuple[str, str]]:
    """Return the config of the git repository ``cwd`` is in (its config and config.worktree), read
    through the shell provider: as the git that would run sees it."""
    here = cwd
    while True:
        dot = os.path.join(here, ".git")
        has_config = kernel.shell.read(os.path.join(dot, "config"), 1) is not None
        gitdir = dot if has_config else _gitdir_of(kernel, dot, here)
        if gitdir is not None:
            pairs: list[tuple[str, str]] = []
            common = kernel.shell.read(os.path.join(gitdir, "commondir"), 4096)  # a linked worktree's main config
            dirs = [gitdir]
            if common:
                dirs.append(os.path.normpath(os.path.join(gitdir, common.decode(errors="replace").strip())))
            for folder in dirs:
                for name in ("config", "config.worktree"):
                    data = kernel.shell.read(os.path.join(folder, name), limits.GIT_CONFIG_MAX_BYTES + 1)
                    if data is None:
                        continue
                    if len(data) > limits.GIT_CONFIG_MAX_BYTES:  # more than is read: decided as unreadable
                        pairs.append(git.UNREADABLE)
                        continue
                    pairs += git.parse(data.decode(errors="replace"))
            return pairs
        parent = os.path.dirname(here)
        if parent == here:
            return []
        here = parent


def _gitdir_of(kernel: Kernel, dot: str, here: str) -> str | None:
    """Return the directory a ``.git`` file points at (a worktree or submodule), or None."""
    data = kernel.shell.read(dot, 4096)
    text = (data or b"").decode(errors="replace").strip()
    if not text.startswith("gitdir:"):
        return None
    return os.path.normpath(os.path.join(here, text.removeprefix("gitdir:").strip()))


def needs(proc: Process, plan: RunPlan) -> tuple[Need, ...]:
    """Execute on the command and on every command a wrapper in it runs."""
    return tuple(Need(c.resource, Right.EXECUTE) for c in plan.commands)


def _limits(plan: RunPlan) -> ShellLimits:
    return ShellLimits(
        wall_seconds=plan.timeout,
        cpu_seconds=limits.SHELL_CPU_SECONDS,
        memory_bytes=limits.SHELL_MEMORY_BYTES,
        file_bytes=limits.SHELL_FILE_BYTES,
        output_bytes=limits.SHELL_OUTPUT_BYTES,
        processes=limits.SHELL_PROCESSES,
    )


def environment(kernel: Kernel, proc: Process, cwd: str) -> dict[str, str]:
    """Return the environment a command of ``proc`` gets: an allowlist of the host's (nothing
    secret), the variables its image sets (checked when the image was: none that changes what a
    program runs), then alos's own."""
    env = {k: os.environ[k] for k in _KEPT if k in os.environ}
    env.setdefault("LANG", "C.UTF-8")
    given = images.body(kernel, proc.image).get("env", {})
    env.update({str(k): str(v) for k, v in given.items()} if isinstance(given, dict) else {})
    who = f"alos process {proc.pid}"
    mail = f"process-{proc.pid}@alos.invalid"
    env.update(
        PATH=shellforms.search_path(),
        PYTHONNOUSERSITE="1",  # a workspace's .local/lib/pythonX/site-packages runs in no python program
        TMPDIR="/tmp",
        TERM="dumb",
        NO_COLOR="1",
        PAGER="cat",
        GIT_PAGER="cat",
        GIT_EDITOR="false",
        GIT_TERMINAL_PROMPT="0",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL="/dev/null",
        GIT_CONFIG_COUNT="3",  # command-line scope, over any repository's own config:
        GIT_CONFIG_KEY_0="core.hooksPath",  # its hooks never run,
        GIT_CONFIG_VALUE_0="/dev/null",
        GIT_CONFIG_KEY_1="safe.bareRepository",  # and a directory that looks like a bare repository
        GIT_CONFIG_VALUE_1="explicit",  # (files a process may write) is not taken for one,
        GIT_CONFIG_KEY_2="protocol.ext.allow",  # and no ext:: URL runs a command
        GIT_CONFIG_VALUE_2="never",
        GIT_AUTHOR_NAME=who,
        GIT_AUTHOR_EMAIL=mail,
        GIT_COMMITTER_NAME=who,
        GIT_COMMITTER_EMAIL=mail,
        ALOS_PID=str(proc.pid),
    )
    return env


def isolation(kernel: Kernel) -> tuple[str, str | None]:
    """Return (the host's isolation mode, what isolates here or None)."""
    return kernel.isolate, kernel.shell.isolation()


async def run(kernel: Kernel, proc: Process, plan: RunPlan) -> dict[str, Any]:
    """Run the command; return its exit code, signal, output, sizes, duration, limit and isolation."""
    if "/" not in plan.program:
        raise NotFound(f"no program named {plan.program!r} on the search path {shellforms.search_path()}")
    mode, _ = isolation(kernel)
    held, now = kernel.caps(proc.pid), kernel.clock.now()
    writable, readonly = caps.sandbox_writes(held, now) if mode != "off" else ((), ())
    request = ShellRequest(
        pid=proc.pid,
        program=plan.program,
        argv=plan.argv,
        cwd=plan.cwd,
        env=environment(kernel, proc, plan.cwd),
        limits=_limits(plan),
        isolate=mode,
        writable=writable,
        readonly=readonly,
        network=caps.sandbox_network(held, now),
        hidden=(os.path.dirname(os.path.realpath(kernel.store.path)),),
    )
    task = asyncio.ensure_future(kernel.shell.run(request))
    try:
        while True:  # a kill from another terminal reaches the store, not this host: look for it
            done, _ = await asyncio.wait((task,), timeout=limits.POLL_SECONDS)
            if done:
                killed = kernel.state_now(proc.pid) is ProcState.EXITED  # e.g. alos kill in another terminal
                return _result(plan, task.result(), killed)
            if kernel.state_now(proc.pid) is ProcState.EXITED:
                kernel.shell.kill(proc.pid)
    except BaseException:
        task.cancel()  # the host is stopping: the command goes with it
        await asyncio.gather(task, return_exceptions=True)
        raise


def _result(plan: RunPlan, done: ShellResult, killed: bool) -> dict[str, Any]:
    """Return what the model reads: each stream as the provider kept it (its head and its tail: the
    end of a test run says most), both fitting the context's cut of one tool result."""
    stdout, cut_out = _shown(done.stdout, done.stdout_bytes)
    stderr, cut_err = _shown(done.stderr, done.stderr_bytes)
    limit = done.limit or ("killed" if killed and done.signal is not None else None)
    return {
        "argv": list(plan.argv),
        "program": plan.program,
        "exit_code": done.exit_code,
        "signal": done.signal,
        "stdout": stdout,
        "stderr": stderr,
        "stdout_bytes": done.stdout_bytes,
        "stderr_bytes": done.stderr_bytes,
        "truncated": cut_out or cut_err,
        "duration": round(done.duration, 3),
        "limit": limit,
        "isolated": done.isolated,
    }


def _shown(kept: bytes, total: int) -> tuple[str, bool]:
    """Return a stream as text and whether any of it is left out: the provider keeps its first
    SHELL_HEAD_BYTES and its last bytes, and what lies between is named by its size."""
    if total <= len(kept):
        return kept.decode(errors="replace"), False
    head, tail = kept[: limits.SHELL_HEAD_BYTES], kept[limits.SHELL_HEAD_BYTES :]
    gap = f"\n[... {total - len(kept)} bytes not kept ...]\n"
    return head.decode(errors="replace") + gap + tail.decode(errors="replace"), True


def describe(kernel: Kernel, proc: Process, plan: RunPlan) -> dict[str, Any]:
    """Return what a person approving this command sees: the whole argv, the program, the cwd,
    what runs code, the limits and the isolation."""
    mode, tool = isolation(kernel)
    limit = _limits(plan)
    shown: dict[str, Any] = {
        "argv": _words(plan.argv),
        "program": codec.escape(plan.program),
        "cwd": codec.escape(plan.cwd),
        "limits": (
            f"{limit.wall_seconds:g} s wall, {limit.cpu_seconds} s CPU, {limit.memory_bytes >> 20} MiB data, "
            f"{limit.file_bytes >> 20} MiB per file, {limit.output_bytes >> 10} KiB of output kept"
        ),
        "isolation": _isolation_text(mode, tool),
    }
    decided = plan.commands[0]
    if decided.args != plan.argv[1:]:
        shown["decided_as"] = _words((decided.program, *decided.args))
        config = [f"{k}={v}" for k, v in _repo_config(kernel, plan.cwd) if git.code_key(k)]
        shown["git_config"] = _words(tuple(config))  # what the digests in decided_as stand for
    runs = [c for c in plan.commands if c.form is not None]
    if runs:
        shown["runs_code"] = [
            codec.escape(f"{shellforms.name(c.program)} {shlex.join(c.args[c.form : c.form + 2])}")
            for c in runs
            if c.form is not None
        ]
    if len(plan.commands) > 1:
        shown["wraps"] = [_words((c.program, *c.args)) for c in plan.commands[1:]]
    return shown


def _words(argv: tuple[str, ...]) -> str:
    """Return an argv as a JSON list, escaped for a terminal: unambiguous (JSON doubles a backslash,
    so a control character and its written name never read the same)."""
    return codec.escape(codec.dumps(list(argv)))


def state(kernel: Kernel, proc: Process, plan: RunPlan) -> str:
    """Return how the command would run here: the isolation ("bwrap VERSION" or "unisolated") and
    the digest of each file in the working directory it would run as code (a program there, the
    script an interpreter is given). A one-shot approval holds only while this stays as it was
    approved: a host started with another --isolate, or a script changed since, asks again."""
    mode, tool = isolation(kernel)
    parts = [tool if tool is not None and mode != "off" else "unisolated"]
    inside = plan.cwd.rstrip("/") + "/"
    for command in plan.commands:
        code = [command.program]
        if command.form is not None and command.form < len(command.args):
            code.append(os.path.normpath(os.path.join(plan.cwd, command.args[command.form])))
        for path in code:
            if path.startswith(inside):
                data = kernel.shell.read(path, limits.READ_MAX_BYTES)
                parts.append(f"{path}={codec.digest(data)[:19] if data is not None else 'absent'}")
    return " ".join(parts)


def _isolation_text(mode: str, tool: str | None) -> str:
    if mode == "off":
        return "none (--isolate off): it can reach whatever this host user can"
    if tool is None:
        if mode == "required":
            return "required, but bubblewrap is not installed: it will not run"
        return "none (bubblewrap is not installed): it can reach whatever this host user can"
    return f"{tool}: read-only except the paths this process may write, private /tmp, no network unless granted"
