"""How a shell call reads to authority: its resource, the grant patterns that cover it, and the
forms that run code or wrap another command (docs/shell.md).

A call's resource is ``shell:`` and its argv joined as a POSIX shell would quote it, the program
an absolute real path: ``shell:/usr/bin/git diff --stat``. A pattern is one of

- ``shell:PROG``          PROG with any arguments, except a form (below);
- ``shell:PROG ARG...``   exactly that argv;
- ``shell:PROG ARG... *`` an argv that starts so (an unquoted ``*`` last: a prefix);
- ``shell:/DIR/*``        any program under DIR, any arguments except a form; ``shell:*`` any program.

A *form* is a call whose program runs code it is handed, or runs another command: ``sh -c``,
``python -m``, ``node -e``, a script file given to an interpreter, ``env PROG``, ``timeout``,
``xargs``, ``find -exec``, ``git -c`` or a git alias. ``form()`` returns the index of the argument
that makes it one; a pattern covers a form only when its own arguments reach past that index,
that is, when it names the form explicitly (``shell:python3 -m pytest *``). A wrapper's inner
command (``wrapped()``) must also be allowed on its own. Pure functions; the one touch of the
host is ``normalize``, which finds a grant's program on the search path.
Size: most of it is the tables of forms, which read best in one place beside the rules they feed.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from dataclasses import dataclass

from alos import git
from alos.errors import Invalid

PREFIX = " *"  # an unquoted '*' word ending a pattern (shlex.join quotes a literal '*' argument)
_VERSIONED = re.compile(r"^(python|pypy|perl|ruby|node|nodejs|bash|zsh|lua|php|tclsh|wish)[0-9.]*m?$")
SHELLS = frozenset(
    {"sh", "bash", "dash", "zsh", "ksh", "ksh93", "mksh", "pdksh", "fish", "ash", "busybox", "csh", "tcsh", "rbash"}
)
# interpreter -> (options that take the code or a module next or attached, options that take a
# plain value next): any other operand is a script file, which is code too
_PY = (frozenset({"-c", "-m"}), frozenset({"-W", "-X", "--check-hash-based-pycs"}))
_NODE = (
    frozenset({"-e", "--eval", "-p", "--print", "-r", "--require", "--import", "--loader", "--experimental-loader"})
    | frozenset({"--test", "--run", "--watch"}),
    frozenset({"--title", "--max-old-space-size"}),
)
_AWK = (frozenset({"-f", "--file", "-e", "--source"}), frozenset({"-F", "-v"}))
INTERPRETERS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "python": _PY,
    "pypy": _PY,
    "node": _NODE,
    "nodejs": _NODE,
    "perl": (frozenset({"-e", "-E", "-M", "-m", "-x"}), frozenset({"-I", "-l", "-0", "-i"})),
    "ruby": (frozenset({"-e", "-r", "-x"}), frozenset({"-I", "-C", "-E"})),
    "lua": (frozenset({"-e", "-l"}), frozenset()),
    "php": (frozenset({"-r", "-B", "-R", "-E", "-F", "-S"}), frozenset({"-d", "-c"})),
    "deno": (frozenset({"eval", "run", "repl", "task", "test", "serve", "x", "install", "compile"}), frozenset()),
    "bun": (frozenset({"-e", "--eval", "run", "x", "test"}), frozenset()),
    "tclsh": (frozenset(), frozenset()),
    "awk": _AWK,
    "gawk": _AWK,
    "mawk": _AWK,
}
# programs that run a command named by one of their options (the option's index is the form)
OPTION_RUNS: dict[str, tuple[str, ...]] = {
    "tar": ("--checkpoint-action", "--to-command", "-I", "--use-compress-program", "--rsh-command", "-F",
            "--info-script", "--new-volume-script", "--index-file"),
    "rsync": ("-e", "--rsh", "--rsync-path"),
    "zip": ("-TT", "--unzip-command"),
    "ssh": ("-o", "-F"),
    "scp": ("-o", "-F", "-S"),
    "man": ("-P", "--pager", "-H", "--html"),
}  # fmt: skip
# wrapper -> options that take a value next; the first other word (after any NAME=VALUE for env,
# and a duration for timeout) is the command it runs
WRAPPERS: dict[str, frozenset[str]] = {
    "env": frozenset({"-u", "--unset", "-C", "--chdir"}),
    "timeout": frozenset({"-s", "--signal", "-k", "--kill-after"}),
    "nice": frozenset({"-n", "--adjustment"}),
    "nohup": frozenset(),
    "sudo": frozenset({"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "-T", "--user", "--group"}),
    "doas": frozenset({"-u", "-C"}),
    "xargs": frozenset({"-a", "-d", "-E", "-e", "-I", "-i", "-L", "-l", "-n", "-P", "-s", "--delimiter"}),
    "stdbuf": frozenset({"-i", "-o", "-e"}),
    "setsid": frozenset(),
    "chroot": frozenset(),
    "flock": frozenset({"-w", "-E", "--timeout", "--conflict-exit-code"}),
    "ionice": frozenset({"-c", "-n", "-p", "-P", "-u"}),
    "taskset": frozenset(),
    "unshare": frozenset(),
    "strace": frozenset({"-o", "-e", "-p", "-s", "-u"}),
    "watch": frozenset({"-n", "--interval", "-d"}),
    "time": frozenset({"-f", "--format", "-o", "--output"}),
    "chrt": frozenset(),
    "prlimit": frozenset(),
    "setpriv": frozenset(),
    "bwrap": frozenset(),
    "firejail": frozenset(),
    "runuser": frozenset({"-u", "-g", "-G"}),
    "su": frozenset(),
    "systemd-run": frozenset(),
    "nsenter": frozenset(),
    "capsh": frozenset(),
    "script": frozenset(),
    "expect": frozenset(),
    "parallel": frozenset(),
}
FIND_RUNS = frozenset({"-exec", "-execdir", "-ok", "-okdir"})


def name(program: str) -> str:
    """Return what a program is known as: its file name, a version suffix dropped (python3.11 -> python)."""
    base = os.path.basename(program)
    found = _VERSIONED.match(base)
    return found.group(1) if found else base


def resource(program: str, args: tuple[str, ...] | list[str]) -> str:
    """Return the resource of running absolute ``program`` with ``args`` (argv after argv[0])."""
    return "shell:" + shlex.join([program, *args])


def split(resource_: str) -> tuple[str, tuple[str, ...]]:
    """Return (program, args) of a shell resource."""
    words = shlex.split(resource_.removeprefix("shell:"))
    return words[0], tuple(words[1:])


# -- forms ------------------------------------------------------------------------------------


def form(program: str, args: tuple[str, ...] | list[str], called: str | None = None) -> int | None:
    """Return the index in ``args`` of the word that makes this call run code it is handed or
    another command (docs/shell.md lists the forms), or None for a plain call. ``called`` is the
    name the program was called by (argv[0]): a multi-call binary acts by it, so both are read."""
    if called is not None and name(called) != name(program):
        found = [f for f in (form(program, args), form(called, args)) if f is not None]
        return min(found) if found else None
    known = name(program)
    if known.startswith("ld-linux") or known.startswith("ld.so") or known.startswith("ld64.so"):
        return 0  # the dynamic loader runs the program it is given
    if known in ("su", "script", "expect", "parallel") and args:
        return 0
    if known in SHELLS:
        return _interpreted(args, frozenset({"-c", "--rcfile", "--init-file", "-o"}), frozenset(), shell=True)
    if known in INTERPRETERS:
        code, valued = INTERPRETERS[known]
        return _interpreted(args, code, valued, shell=False)
    if known in WRAPPERS:
        return _wrapped_at(known, args)
    if known == "find":
        return next((i for i, a in enumerate(args) if a in FIND_RUNS), None)
    if known == "git":
        return git.form(args)
    if known == "sed":
        return _sed(args)
    if known in OPTION_RUNS:
        return _option_at(args, OPTION_RUNS[known], tar=known == "tar")
    return None


def _option_at(args: tuple[str, ...] | list[str], runs: tuple[str, ...], tar: bool = False) -> int | None:
    """Return the index of the first of ``runs`` in ``args``: as a word, as ``--opt=value``, or a
    short option with its value attached (``-Ixz``)."""
    letters = {opt[1] for opt in runs if len(opt) == 2}
    for i, a in enumerate(args):
        if a == "--":
            return None
        if any(a == opt or a.startswith(opt + "=") for opt in runs):
            return i
        if a.startswith("-") and not a.startswith("--") and set(a[1:]) & letters:
            return i  # a cluster holding one (-xIcmd, -avze, -vo): conservative, a value may hold the letter
        if tar and i == 0 and not a.startswith("-") and set(a) & letters:
            return i  # tar's old style: its first word is options without a dash (xIf)
    return None


def _sed(args: tuple[str, ...] | list[str]) -> int | None:
    """sed runs commands with its ``e`` command and ``s///e`` flag, and writes files with ``w``: a
    plain sed call is one with ``--sandbox`` (which refuses those); any other runs its first
    script word as a form."""
    options = args[: list(args).index("--")] if "--" in args else args
    if "--sandbox" in options:
        return None
    return next(
        (i for i, a in enumerate(args) if not a.startswith("-") or a in ("-e", "--expression", "-f", "--file")), None
    )


def wrapped(program: str, args: tuple[str, ...] | list[str]) -> tuple[str, tuple[str, ...]] | None:
    """Return (the command word, its args) that a wrapper (env, timeout, xargs, find -exec ...)
    runs, or None when ``program`` wraps nothing here."""
    known = name(program)
    if known in WRAPPERS:
        at = _wrapped_at(known, args)
        return None if at is None else (args[at], tuple(args[at + 1 :]))
    if known == "find":
        at = next((i for i, a in enumerate(args) if a in FIND_RUNS), None)
        if at is None or at + 1 >= len(args):
            return None
        rest = list(args[at + 1 :])
        end = next((i for i, a in enumerate(rest) if a in (";", "+")), len(rest))
        return rest[0], tuple(rest[1:end])
    return None


def _interpreted(
    args: tuple[str, ...] | list[str], code: frozenset[str], valued: frozenset[str], *, shell: bool
) -> int | None:
    skip = False
    for i, word in enumerate(args):
        if skip:
            skip = False
            continue
        if word in code or any(word.startswith(c + "=") for c in code if c.startswith("--")):
            return i
        if word in ("--version", "-V", "--help", "-h"):
            continue
        if word == "--" or not word.startswith("-") or word == "-":
            return i  # a script file (or stdin): code
        if word in valued:
            skip = True
            continue
        if not word.startswith("--"):
            letters = word[1:]
            if shell and "c" in letters:
                return i  # -lc, -ec: a cluster holding -c
            if any(("-" + ch) in code for ch in letters):
                return i  # -Bc, -ne: a cluster holding a code option (attached code included)
            if any(word.startswith(c) and len(c) == 2 for c in code):
                return i
    return None


def _wrapped_at(known: str, args: tuple[str, ...] | list[str]) -> int | None:
    valued = WRAPPERS[known]
    skip = False
    duration = known == "timeout"
    for i, word in enumerate(args):
        if skip:
            skip = False
            continue
        if word == "--":
            continue
        if word in valued:
            skip = True
            continue
        if word.startswith("-") and word != "-":
            short = word[1:] if not word.startswith("--") else ""
            if known == "env" and ("S" in short or word.startswith("--split-string")):
                return i  # a string split into a command line (-S, -Sstring, -iS ...)
            if known in ("sudo", "doas") and (set(short) & {"s", "i"} or word in ("--shell", "--login")):
                return i  # a shell (-s, -Es, -i)
            continue
        if known == "env" and "=" in word:
            continue
        if duration:
            duration = False
            continue
        return i
    return None


# -- patterns ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pattern:
    program: str  # an absolute path, "/DIR/*" or "*"
    args: tuple[str, ...] | None  # None: any arguments (no form)
    prefix: bool


def parse(pattern: str) -> Pattern:
    """Return the parts of a normalized shell pattern."""
    body = pattern.removeprefix("shell:")
    prefix = body.endswith(PREFIX)
    words = shlex.split(body[: -len(PREFIX)] if prefix else body)
    if len(words) == 1 and not prefix:
        return Pattern(words[0], None, False)
    return Pattern(words[0], tuple(words[1:]), prefix)


def _program_in(held: str, program: str) -> bool:
    if held == "*":
        return True
    if held.endswith("/*"):
        base = held[:-2].rstrip("/")
        return program.startswith(base + "/") and program != base + "/*"
    return held == program


def covers(pattern: str, resource_: str, *, deny: bool = False) -> bool:
    """Return whether shell ``pattern`` covers the call ``resource_`` (see the module docstring);
    a ``deny`` pattern covers forms too (denying a program denies every way of running it)."""
    try:
        held = parse(pattern)
        program, args = split(resource_)
    except ValueError:
        return False
    if not _program_in(held.program, program):
        return False
    at = None if deny else form(program, args)
    if held.args is None:
        return at is None
    n = len(held.args)
    readings = [args]
    if deny and name(program) == "git":  # a deny on `git push *` covers `git -P push` too
        readings.append(git.canonical(args))
    matched = any(a[:n] == held.args if held.prefix else a == held.args for a in readings)
    return matched and (at is None or at < n)


def within(parent: str, child: str) -> bool:
    """Return whether every call ``child`` covers is covered by ``parent`` (a grant passed on)."""
    try:
        p, c = parse(parent), parse(child)
    except ValueError:
        return False
    if c.program in ("*",) or c.program.endswith("/*"):
        inside = p.program in ("*", c.program) or (p.program.endswith("/*") and _program_in(p.program, c.program[:-2]))
        return inside and p.args is None and c.args is None
    if not _program_in(p.program, c.program):
        return False
    if p.args is None:
        if c.args is None:
            return True
        at = form(c.program, c.args)
        return at is None or at >= len(c.args)
    if c.args is None:
        return False
    if p.prefix:
        return c.args[: len(p.args)] == p.args and (c.prefix is False or len(c.args) >= len(p.args))
    return not c.prefix and c.args == p.args


def specificity(pattern: str) -> int:
    """Return how narrowly a shell pattern matches: an exact argv, then longer prefixes, then a
    program, then a directory of programs, then any program."""
    try:
        p = parse(pattern)
    except ValueError:
        return 0
    if p.program == "*":
        return 1
    if p.program.endswith("/*"):
        return 2 + len(p.program)
    if p.args is None:
        return 1 << 16
    if p.prefix:
        return (1 << 17) + len(p.args)
    return 1 << 20


def normalize(rest: str, workspace: str, spec: str, search: str | None = None) -> str:
    """Return the shell pattern ``shell:REST`` of grant ``spec`` in its canonical form: the program
    found on the search path (or from ``workspace`` when it holds a '/') and made real, the argv
    quoted canonically. Raises Invalid naming what is wrong."""
    prefix = rest.endswith(PREFIX) or rest == "*"
    fixed = rest[: -len(PREFIX)] if rest.endswith(PREFIX) else rest
    if re.search(r"(^|\s)\*(\s|$)", fixed) and fixed != "*":
        raise Invalid(
            f"grant {spec!r}: an unquoted '*' may only end the argv (a prefix: 'shell:git diff *'); "
            "quote a literal '*' argument as '\\*' or \"'*'\""
        )
    try:
        words = shlex.split(fixed)
    except ValueError as err:
        raise Invalid(f"grant {spec!r}: the argv does not parse ({err}); quote words as a POSIX shell would") from None
    if not words:
        raise Invalid(f"grant {spec!r}: name a program, e.g. 'shell:git=execute' or 'shell:git diff *=execute'")
    head, args = words[0], words[1:]
    if head == "*" or head.endswith("/*"):
        if args:
            raise Invalid(f"grant {spec!r}: arguments follow only one program, e.g. 'shell:git diff *=execute'")
        if head == "*":
            return "shell:*"
        if head == "/*":
            return "shell:/*"
        folder = os.path.realpath(os.path.join(workspace, head[:-2]) if not os.path.isabs(head) else head[:-2])
        return f"shell:{folder.rstrip('/')}/*"
    program = locate(workspace, head, search_path() if search is None else search)
    if program is None:
        where = "from the workspace" if "/" in head else f"on the search path {search_path()}"
        raise Invalid(f"grant {spec!r}: no program {head!r} {where}; name it by its absolute path")
    if not args and prefix:
        return "shell:" + shlex.quote(program)
    joined = shlex.join([program, *args])
    return "shell:" + (joined + PREFIX if prefix else joined)


def locate(cwd: str, word: str, search: str) -> str | None:
    """Return the real absolute path of the executable ``word`` names (with a '/': from ``cwd``;
    otherwise on ``search``), or None."""
    if "/" in word:
        full = os.path.realpath(os.path.join(cwd, word))
        return full if os.path.isfile(full) and os.access(full, os.X_OK) else None
    if not word or word in (".", ".."):
        return None
    found = shutil.which(word, path=search)
    return os.path.realpath(found) if found else None


def search_path() -> str:
    """Return the search path commands run with: ``ALOS_SHELL_PATH``, else the host's PATH, each
    without relative or empty entries (a relative entry would search the process's workspace)."""
    raw = os.environ.get("ALOS_SHELL_PATH") or os.environ.get("PATH") or "/usr/local/bin:/usr/bin:/bin"
    return ":".join(d for d in raw.split(":") if d.startswith("/"))
