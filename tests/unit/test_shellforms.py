"""The argv rules of shell: grants: patterns, forms, wrappers and git config (alos.shellforms)."""

from __future__ import annotations

import shutil

import pytest

from alos import git, shellforms
from alos.errors import Invalid
from alos.rights import Capability, Effect, Grant, Right, covers, derive, normalize_pattern, specificity

GIT = shellforms.locate("/", "git", shellforms.search_path()) or "/usr/bin/git"
ENV = shellforms.locate("/", "env", shellforms.search_path()) or "/usr/bin/env"
RM = shellforms.locate("/", "rm", shellforms.search_path()) or "/bin/rm"


def grant(text: str) -> str:
    return normalize_pattern(text, "/tmp", text)


def call(program: str, *args: str) -> str:
    return shellforms.resource(program, list(args))


@pytest.mark.parametrize(
    ("pattern", "args", "covered"),
    [
        ("shell:git", ("status",), True),
        ("shell:git", (), True),
        ("shell:git status", ("status",), True),
        ("shell:git status", ("status", "--short"), False),
        ("shell:git diff *", ("diff",), True),
        ("shell:git diff *", ("diff", "HEAD~1", "--stat"), True),
        ("shell:git diff *", ("difftool",), False),
        ("shell:git diff *", ("log",), False),
        ("shell:*", ("status",), True),
        # forms: a program grant never covers code it is handed
        ("shell:git", ("-c", "core.pager=sh -c x", "log"), False),
        ("shell:git", ("st",), False),  # an alias (not one of git's commands)
        ("shell:git", ("diff", "--ext-diff"), False),
        ("shell:git diff *", ("diff", "--ext-diff"), False),
        ("shell:git diff --ext-diff *", ("diff", "--ext-diff"), True),
        ("shell:*", ("-c", "x=y", "status"), False),
        ("shell:git -c *", ("-c", "x=y", "status"), True),
    ],
)
def test_git_patterns_cover_exactly_what_they_name(pattern: str, args: tuple[str, ...], covered: bool) -> None:
    assert covers(grant(pattern), call(GIT, *args)) is covered


@pytest.mark.parametrize(
    ("program", "args", "at"),
    [
        ("/bin/sh", ["-c", "rm -rf /"], 0),
        ("/bin/bash", ["-lc", "id"], 0),
        ("/bin/bash", ["script.sh"], 0),
        ("/bin/bash", ["--version"], None),
        ("/usr/bin/dash", ["-e", "-c", "x"], 1),
        ("/usr/bin/python3.11", ["-c", "print(1)"], 0),
        ("/usr/bin/python3", ["-m", "http.server"], 0),
        ("/usr/bin/python3", ["-Bc", "x"], 0),
        ("/usr/bin/python3", ["-W", "ignore", "-c", "x"], 2),
        ("/usr/bin/python3", ["tool.py"], 0),
        ("/usr/bin/python3", ["--version"], None),
        ("/usr/bin/node", ["-e", "x"], 0),
        ("/usr/bin/node", ["--eval=x"], 0),
        ("/usr/bin/perl", ["-ne", "print"], 0),
        ("/usr/bin/ruby", ["-e", "x"], 0),
        ("/usr/bin/env", ["X=1", "rm", "f"], 1),
        ("/usr/bin/env", ["-S", "rm f"], 0),
        ("/usr/bin/env", [], None),
        ("/usr/bin/timeout", ["-s", "KILL", "10", "make"], 3),
        ("/usr/bin/nice", ["-n", "5", "ls"], 2),
        ("/usr/bin/nohup", ["ls"], 0),
        ("/usr/bin/sudo", ["-u", "root", "ls"], 2),
        ("/usr/bin/doas", ["ls"], 0),
        ("/usr/bin/xargs", ["-n", "1", "rm"], 2),
        ("/usr/bin/find", [".", "-name", "x", "-exec", "rm", "{}", ";"], 3),
        ("/usr/bin/find", [".", "-execdir", "x", "+"], 1),
        ("/usr/bin/find", [".", "-name", "*.py"], None),
        ("/usr/bin/git", ["--exec-path=/tmp", "status"], 0),
        ("/usr/bin/git", ["-C", "sub", "status"], 0),
        ("/usr/bin/sed", ["-n", "1p", "f"], 1),
        ("/usr/bin/sed", ["--sandbox", "-n", "1p", "f"], None),
        ("/usr/bin/tar", ["-czf", "a.tgz", "--to-command=sh", "src"], 2),
        ("/usr/bin/tar", ["-czf", "a.tgz", "src"], None),
        ("/usr/bin/mawk", ["{print}", "f"], 0),
        ("/usr/bin/git", ["rebase", "-x", "make"], 1),
        ("/usr/bin/git", ["rebase", "-xmake"], 1),
        ("/usr/bin/git", ["submodule", "foreach", "x"], 0),
        ("/usr/bin/git", ["status"], None),
        ("/usr/bin/ls", ["-c"], None),
    ],
)
def test_forms_name_the_word_that_runs_code(program: str, args: list[str], at: int | None) -> None:
    assert shellforms.form(program, args) == at


@pytest.mark.parametrize(
    ("program", "args", "inner"),
    [
        ("/usr/bin/env", ["X=1", "rm", "f"], ("rm", ("f",))),
        ("/usr/bin/env", ["-u", "HOME", "--", "ls"], ("ls", ())),
        ("/usr/bin/timeout", ["10", "make", "test"], ("make", ("test",))),
        ("/usr/bin/xargs", ["rm"], ("rm", ())),
        ("/usr/bin/find", [".", "-exec", "rm", "{}", ";", "-print"], ("rm", ("{}",))),
        ("/usr/bin/find", [".", "-exec"], None),
        ("/usr/bin/git", ["status"], None),
        ("/usr/bin/env", [], None),
    ],
)
def test_wrappers_name_the_command_they_run(
    program: str, args: list[str], inner: tuple[str, tuple[str, ...]] | None
) -> None:
    assert shellforms.wrapped(program, args) == inner


def test_a_form_is_covered_only_by_a_grant_that_names_it() -> None:
    python = shellforms.locate("/", "python3", shellforms.search_path())
    assert python is not None
    code = call(python, "-c", "import os")
    assert not covers(grant("shell:python3"), code)
    assert not covers(grant("shell:*"), code)
    assert covers(grant("shell:python3 -c *"), code)
    assert covers(grant("shell:python3 -c 'import os'"), code)
    assert not covers(grant("shell:python3 -c 'import sys'"), code)
    assert covers(grant("shell:python3"), call(python, "--version"))
    assert not covers(grant("shell:python3 -m unittest *"), call(python, "-m", "http.server"))


def test_the_program_is_the_real_file_not_a_name() -> None:
    # a grant on git covers the real git, never a workspace file called git, nor rm reached by a link
    assert not covers(grant("shell:git"), call("/tmp/ws/git", "status"))
    assert not covers(grant("shell:rm"), call("/tmp/ws/rm", "x"))
    assert covers(grant(f"shell:{RM}"), call(RM, "x"))
    assert grant("shell:git") == f"shell:{GIT}"


def test_a_directory_of_programs_and_every_program() -> None:
    folder = GIT.rsplit("/", 1)[0]
    assert covers(grant(f"shell:{folder}/*"), call(GIT, "status"))
    assert not covers(grant(f"shell:{folder}/*"), call("/opt/x/git", "status"))
    assert not covers(grant(f"shell:{folder}/*"), call(GIT, "-c", "a=b", "log"))
    assert covers(grant("shell:*"), call("/opt/x/tool", "--flag"))


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("shell:no-such-program-anywhere", "no program"),
        ("shell:git 'unbalanced", "does not parse"),
        ("shell:git * diff", "may only end the argv"),
        ("shell:/usr/* git", "arguments follow only one program"),
        ("shell:", "empty resource"),
    ],
)
def test_bad_shell_grants_say_what_is_wrong(spec: str, words: str) -> None:
    with pytest.raises(Invalid) as err:
        normalize_pattern(spec, "/tmp", spec)
    assert words in str(err.value)


def test_a_quoted_star_is_a_literal_argument() -> None:
    ls = shellforms.locate("/", "ls", shellforms.search_path())
    assert ls is not None
    literal = grant("shell:ls '*'")
    assert covers(literal, call(ls, "*"))
    assert not covers(literal, call(ls, "x"))


def test_specificity_orders_argv_rules() -> None:
    order = [grant(p) for p in ("shell:*", f"shell:{GIT.rsplit('/', 1)[0]}/*", "shell:git", "shell:git diff *")]
    order.append(grant("shell:git diff --stat"))
    ranks = [specificity(p) for p in order]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)


def _cap(pattern: str, effect: Effect = Effect.ALLOW) -> Capability:
    return Capability(
        1, 1, pattern, frozenset({Right.EXECUTE}), effect, "host", None, None, True, None, False, None, None
    )


@pytest.mark.parametrize(
    ("held", "passed", "ok"),
    [
        ("shell:git", "shell:git status", True),
        ("shell:git", "shell:git diff *", True),
        ("shell:git", "shell:git -c *", False),  # a form the holder was never given
        ("shell:git diff *", "shell:git diff --stat", True),
        ("shell:git diff *", "shell:git", False),
        ("shell:git status", "shell:git status --short", False),
        ("shell:*", "shell:git", True),
        ("shell:git", "shell:*", False),
    ],
)
def test_a_shell_grant_passes_only_what_it_covers(held: str, passed: str, ok: bool) -> None:
    child = Grant(grant(passed), frozenset({Right.EXECUTE}), Effect.ALLOW)
    if ok:
        derive(_cap(grant(held)), child, 0.0)
    else:
        with pytest.raises(Exception, match="cannot derive"):
            derive(_cap(grant(held)), child, 0.0)


def test_git_config_keys_that_run_commands() -> None:
    text = """
[core]
\trepositoryformatversion = 0
\tfsmonitor = ./watch.sh
[alias]
\tst = !rm -rf /
[diff "img"]
\ttextconv = exiftool
[user]
\tname = someone
"""
    pairs = git.parse(text)
    code = [k for k, _ in pairs if git.code_key(k)]
    assert code == ["core.fsmonitor", "alias.st", "diff.img.textconv"]
    assert ("alias.st", "!rm -rf /") in pairs


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_every_git_builtin_named_is_one_of_gits_own() -> None:
    import subprocess

    listed = subprocess.run(["git", "--list-cmds=main"], capture_output=True, text=True, check=True).stdout.split()
    assert git.BUILTINS - set(listed) <= {"filter-repo"}


def test_a_deny_is_never_narrowed_by_forms() -> None:
    python = shellforms.locate("/", "python3", shellforms.search_path())
    assert python is not None
    code = call(python, "-c", "import os")
    assert covers(grant("shell:python3"), code, deny=True)
    assert covers(grant("shell:*"), code, deny=True)
    assert not covers(grant("shell:python3"), code)


def test_a_denied_program_is_refused_in_every_form() -> None:
    from alos.caps import decide
    from alos.rights import Need

    python = shellforms.locate("/", "python3", shellforms.search_path())
    assert python is not None
    allow = _cap(grant("shell:python3 -c *"))
    deny = Capability(2, 1, grant("shell:python3"), frozenset({Right.EXECUTE}), Effect.DENY, "host", None, None,
                      False, None, False, None, None)  # fmt: skip
    decision = decide([allow, deny], [Need(call(python, "-c", "1"), Right.EXECUTE)], lambda: "", 0.0)
    assert decision.effect is Effect.DENY


@pytest.mark.parametrize(
    ("text", "pairs"),
    [
        ("[core] fsmonitor = ./x\n", [("core.fsmonitor", "./x")]),
        (
            '[core]\n\tfsmonitor = "/usr/bin/true\\\n; touch pwned"\n',
            [("core.fsmonitor", "/usr/bin/true; touch pwned")],
        ),
        ("[core]\n\tpager = less  -R   ; a comment\n", [("core.pager", "less  -R")]),
        ('[alias]\n\tst = "!sh -c \\"x\\" # kept"\n', [("alias.st", '!sh -c "x" # kept')]),
        ('[diff "Img"]\n\ttextconv = exif\n', [("diff.Img.textconv", "exif")]),
        ("[Core.Sub]\nA = 1\n", [("core.sub.a", "1")]),
        ("[core]\n\tbare\n", [("core.bare", "true")]),
        ("[core]\n\tx = a\\tb\n", [("core.x", "a\tb")]),
        ("[core\n", [git.UNREADABLE]),
        ('[core]\n\tx = "open\n', [git.UNREADABLE]),
        ("[core]\n\tx = a\\q\n", [git.UNREADABLE]),
        ("x = 1\n", [git.UNREADABLE]),
    ],
)
def test_git_config_is_read_as_git_reads_it(text: str, pairs: list[tuple[str, str]]) -> None:
    assert git.parse(text) == pairs


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_config_values_match_git_config_list(tmp_path) -> None:
    import subprocess

    text = (
        '[core] fsmonitor = "/usr/bin/true\\\n; touch pwned"\n'
        '[alias]\n\tst = !echo  hi\t there ; c\n\tq = "a\\\\b\\"c"\n'
        '[diff "Img"]\n\ttextconv = exif\n'
    )
    (tmp_path / "config").write_text(text)
    got = subprocess.run(
        ["git", "config", "--file", str(tmp_path / "config"), "--list", "-z"], capture_output=True, check=True
    ).stdout.decode()
    listed = [tuple(item.split("\n", 1)) for item in got.split("\0") if item]
    assert git.parse(text) == listed


def test_a_directory_pattern_ends_on_a_component_boundary() -> None:
    assert covers("shell:/usr/bin/*", call("/usr/bin/git", "status"))
    assert not covers("shell:/usr/bin/*", call("/usr/binx/git", "status"))
    assert not covers("shell:/usr/bin/*", call("/usr/bin", "status"))
    assert covers("shell:/*", call("/opt/tool", "x"))


@pytest.mark.parametrize("args", [("push",), ("-P", "push", "origin"), ("--no-pager", "push"), ("-c", "a=b", "push")])
def test_a_deny_on_a_git_subcommand_covers_it_after_global_options(args: tuple[str, ...]) -> None:
    assert covers(grant("shell:git push *"), call(GIT, *args), deny=True)
    assert not covers(grant("shell:git push *"), call(GIT, "status"), deny=True)


def test_ways_around_a_form_found_by_review_are_forms() -> None:
    env = ENV
    assert shellforms.form(env, ["-Ssh -c id"]) == 0
    assert shellforms.form(env, ["-iS", "sh -c id"]) == 0
    assert shellforms.form("/usr/bin/sudo", ["-Es"]) == 0
    assert shellforms.form("/usr/bin/sed", ["-e", "1e id", "--", "--sandbox"]) is not None
    assert shellforms.form("/usr/bin/tar", ["-xIsh", "-f", "a.tar"]) == 0
    assert shellforms.form("/usr/bin/tar", ["xIf", "./x.sh", "a.tar"]) == 0
    assert shellforms.form("/usr/bin/rsync", ["-ae", "sh x", "a", "b"]) == 0
    assert shellforms.form("/usr/bin/ssh", ["-vo", "ProxyCommand=x", "h"]) == 0
    assert shellforms.form("/usr/bin/ssh", ["user@host", "ls"]) is None
    assert shellforms.form("/usr/bin/node", ["--test"]) == 0
    assert shellforms.form("/lib64/ld-linux-x86-64.so.2", ["/bin/sh"]) == 0
    assert shellforms.form("/usr/bin/coreutils", ["X=1", "rm", "f"], called="env") == 1
    assert shellforms.form("/usr/bin/time", ["rm", "f"]) == 0
    assert grant("shell:/*") == "shell:/*"
    assert shellforms.within("shell:/usr/bin/*", "shell:/usr/bin/*")
