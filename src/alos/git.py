"""What a git call runs: its forms, and its repository's config read as git itself reads it.

The forms (``form``): options and subcommands that make git run a command it is handed (see
shellforms for what a form is). The config (``parse``, ``code_key``): for the shell decision
(primitives/shell.py).

A repository's config can name commands git runs (an alias, core.fsmonitor, a filter ...); a git
call is decided as if those were given with ``-c`` and a person approving it sees their values, so
the keys and the values here must be exactly git's. This follows git's own parser (config.c):
a variable may follow a section header on its line; a value's unquoted whitespace runs become
spaces and its ends are trimmed; ``"`` toggles quoting; ``#`` and ``;`` outside quotes begin a
comment; ``\\`` escapes ``n t b " \\`` and, before a newline, continues the value on the next line.
A file git would refuse is reported as such (``UNREADABLE``): the caller treats it as naming a
command. Pure: text in, pairs out.
"""

from __future__ import annotations

import re

# git global options that take a value as the next word
_GIT_VALUED = frozenset({"--namespace", "--super-prefix", "--list-cmds"})
# -C, --git-dir and --work-tree point git at another repository, whose config the decision did not
# read (it reads the working directory's): forms too
_GIT_RUNS = frozenset({"-c", "--config-env", "--exec-path", "-p", "--paginate", "-C", "--git-dir", "--work-tree"})
# git subcommand options that run a command they are given
_GIT_SUB_RUNS = {
    "rebase": ("-x", "--exec"),
    "difftool": ("-x", "--extcmd", "-t", "--tool"),
    "mergetool": ("-t", "--tool"),
    "diff": ("--ext-diff", "--textconv"),
    "log": ("--ext-diff", "--textconv"),
    "show": ("--ext-diff", "--textconv"),
    "grep": ("-O", "--open-files-in-pager"),
    "fetch": ("--upload-pack",),
    "pull": ("--upload-pack",),
    "clone": ("-u", "--upload-pack", "--template", "-c", "--config"),
    "push": ("--receive-pack", "--exec"),
    "ls-remote": ("--upload-pack",),
    "archive": ("--exec",),
    "commit": ("--template",),
    "init": ("--template",),
}
_GIT_ALWAYS_RUNS = frozenset({"bisect", "submodule", "filter-branch", "filter-repo", "instaweb", "web--browse"})
# git's own commands: any other is an alias or a git-NAME program found on PATH, which runs code
_GIT_NAMES = (
    "add am annotate apply archive bisect blame branch bundle cat-file check-attr check-ignore "
    "check-mailmap check-ref-format checkout checkout-index cherry cherry-pick clean clone column commit "
    "commit-graph commit-tree config count-objects describe diff diff-files diff-index diff-tree "
    "difftool fetch fetch-pack for-each-ref format-patch fsck gc get-tar-commit-id grep hash-object help "
    "init log ls-files ls-remote ls-tree merge merge-base merge-file merge-tree mergetool mktag mktree "
    "mv name-rev notes pull push range-diff read-tree rebase reflog remote repack replace request-pull "
    "reset restore rev-list rev-parse revert rm shortlog show show-branch show-ref sparse-checkout stash "
    "status stripspace switch symbolic-ref tag update-index update-ref var verify-commit verify-pack "
    "verify-tag version whatchanged worktree write-tree maintenance bugreport prune prune-packed "
    "pack-objects unpack-objects index-pack pack-refs"
)
BUILTINS = frozenset(_GIT_NAMES.split())
# git config keys that name a command git may run: a repository that sets one makes every git
# call in it a form, as if the key were given with -c (primitives/shell.py reads the config)
_GIT_CODE_KEY = re.compile(
    r"^(alias\..*|filter\..*|include\..*|includeif\..*|pager\..*|core\.(pager|editor|sshcommand|fsmonitor|"
    r"hookspath|askpass|gitproxy|alternaterefscommand)|diff\.external|sequence\.editor|gpg\..*program|"
    r"credential\..*helper|credential\.helper|uploadpack\.packobjectshook|interactive\.difffilter|"
    r"web\.browser|submodule\..*\.update|protocol\..*|url\..*|remote\..*\.(url|pushurl|vcs|proxy)|http\..*|"
    r".*(command|cmd)|.*\.(textconv|driver|uploadpack|receivepack|program|tool|path|helper))$",
    re.IGNORECASE,
)


def canonical(args: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Return a git call's ``args`` from its subcommand on (global options and their values
    dropped): ``-P push``, ``--no-pager push`` and ``-c a=b push`` all read ``push`` here, so that
    a deny on ``git push *`` covers them (shellforms.covers)."""
    i = 0
    while i < len(args) and args[i].startswith("-"):
        takes = args[i] in _GIT_VALUED or args[i] in ("-C", "-c", "--config-env", "--git-dir", "--work-tree")
        i += 2 if takes else 1
    return tuple(args[i:])


def code_key(key: str) -> bool:
    """Return whether git config ``key`` names a command git may run (an alias, a pager, a filter...)."""
    return bool(_GIT_CODE_KEY.match(key))


def form(args: tuple[str, ...] | list[str]) -> int | None:
    """Return the index in a git call's ``args`` of the word that makes it run a command, or None."""
    skip = False
    for i, word in enumerate(args):
        if skip:
            skip = False
            continue
        if word in _GIT_RUNS or any(
            word.startswith(o + "=") for o in ("--exec-path", "--config-env", "--git-dir", "--work-tree")
        ):
            return i
        if word in _GIT_VALUED:
            skip = True
            continue
        if word.startswith("-"):
            continue
        if word not in BUILTINS or word in _GIT_ALWAYS_RUNS:
            return i  # an alias or a git-NAME program: code
        runs = _GIT_SUB_RUNS.get(word, ())
        for j, sub in enumerate(args[i + 1 :], start=i + 1):
            if sub in runs or any(sub.startswith(r + "=") for r in runs if r.startswith("--")):
                return j
            if sub.startswith("-") and not sub.startswith("--") and len(sub) > 2 and sub[:2] in runs:
                return j  # -xCMD
        return None
    return None


UNREADABLE = ("include.path", "(a config file alos cannot read as git does)")
_ESCAPES = {"n": "\n", "t": "\t", "b": "\b", "\\": "\\", '"': '"'}


class _Bad(Exception):
    """The text is not a config file git would read."""


def parse(text: str) -> list[tuple[str, str]]:
    """Return the (key, value) pairs of a git config file's ``text`` in order, keys as git compares
    them (``section.subsection.name``, section and name lowercased); a variable without ``=`` is
    "true". A file git would refuse ends the list with UNREADABLE."""
    pairs: list[tuple[str, str]] = []
    try:
        _parse(text, pairs)
    except _Bad:
        pairs.append(UNREADABLE)
    return pairs


def _parse(text: str, pairs: list[tuple[str, str]]) -> None:
    i, n = 0, len(text)
    section: str | None = None
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
        elif c in "#;":
            i = _line_end(text, i)
        elif c == "[":
            section, i = _header(text, i + 1)
        elif c.isascii() and c.isalpha():
            start = i
            while i < n and text[i].isascii() and (text[i].isalnum() or text[i] == "-"):
                i += 1
            name = text[start:i].lower()
            while i < n and text[i] in " \t":
                i += 1
            if section is None:
                raise _Bad
            if i < n and text[i] == "=":
                value, i = _value(text, i + 1)
            elif i >= n or text[i] in "\r\n#;":
                value = "true"
            else:
                raise _Bad
            pairs.append((f"{section}.{name}", value))
        else:
            raise _Bad


def _line_end(text: str, i: int) -> int:
    end = text.find("\n", i)
    return len(text) if end < 0 else end + 1


def _header(text: str, i: int) -> tuple[str, int]:
    """Return (the section key, the index after ``]``) of a header whose ``[`` ends before ``i``."""
    n = len(text)
    start = i
    while i < n and (text[i].isascii() and (text[i].isalnum() or text[i] in "-.")):
        i += 1
    name = text[start:i].lower()
    if not name:
        raise _Bad
    if i < n and text[i] == "]":
        return name, i + 1  # [section] or the old [section.subsection], lowercased whole
    if i >= n or text[i] not in " \t":
        raise _Bad
    while i < n and text[i] in " \t":
        i += 1
    if i >= n or text[i] != '"':
        raise _Bad
    i += 1
    sub: list[str] = []
    while True:
        if i >= n or text[i] == "\n":
            raise _Bad
        c = text[i]
        if c == '"':
            break
        if c == "\\":
            i += 1
            if i >= n or text[i] == "\n":
                raise _Bad
            c = text[i]
        sub.append(c)
        i += 1
    i += 1
    if i >= n or text[i] != "]":
        raise _Bad
    return f"{name}.{''.join(sub)}", i + 1


def _value(text: str, i: int) -> tuple[str, int]:
    """Return (the value after ``=``, the index after its line) as git reads it."""
    n = len(text)
    out: list[str] = []
    quote = comment = False
    space = 0
    while i < n:
        c = text[i]
        i += 1
        if c == "\n":
            if quote:
                raise _Bad
            return "".join(out), i
        if comment:
            continue
        if c in " \t\r\f\v" and not quote:
            if out:
                space += 1
            continue
        if not quote and c in "#;":
            comment = True
            continue
        out.extend(" " * space)
        space = 0
        if c == "\\":
            if i >= n:
                raise _Bad
            c = text[i]
            i += 1
            if c == "\n":
                continue  # the value goes on on the next line
            if c not in _ESCAPES:
                raise _Bad
            out.append(_ESCAPES[c])
            continue
        if c == '"':
            quote = not quote
            continue
        out.append(c)
    if quote:
        raise _Bad
    return "".join(out), i
