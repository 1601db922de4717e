"""Every shell and Python example in README.md and docs/ runs as written, so none can rot.

The blocks of one page run in order in one fresh directory (files one block makes, the next
uses), with this installation's `alos` on the PATH as `. .venv/bin/activate` puts it there
(a `.venv` link in that directory makes the README's own activate line work), no terminal on
stdin, and `make demo` / `make test` standing for what they run (`alos demo`; the suite itself).
A shell command that is meant to fail says so on its line: `# exits 3` (or any of its
continuation lines); every other command must succeed, and an annotated one must exit so.
Commands stand one a line (no `&&`, `||`: bash would not report a failure before them).
JSON, TOML and YAML blocks must parse (JSON: one value, or JSON lines); a TypeScript block (a
JIT tool) must pass the static policy; every fenced block names its language.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)
SHELL, PYTHON, DATA = {"sh", "bash"}, {"python"}, {"json", "jsonl"}
TYPESCRIPT = {"ts"}  # a JIT tool: it must pass the static policy a tool is registered under
KNOWN = SHELL | PYTHON | DATA | TYPESCRIPT | {"text", "toml", "yaml"}
EXITS = re.compile(r"#.*\bexits (\d+)")

PREAMBLE = """set -o pipefail
trap 'echo "$LINENO $?" >> "$DOC_ERRS"' ERR
make() { case "$1" in demo) alos demo ;; test) ;; *) echo "make $1 is not run by the doc test" >&2; return 1 ;; esac; }
"""


def blocks(page: Path) -> list[tuple[str, str, int]]:
    """Return (language, code, line number) of every fenced block of ``page``."""
    text = page.read_text()
    return [(m.group(1).strip(), m.group(2), text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)]


def commands(code: str) -> list[tuple[int, int, int | None]]:
    """Return (first line, last line, expected exit or None) of each logical line of shell ``code``."""
    out: list[tuple[int, int, int | None]] = []
    lines = code.splitlines()
    start = 0
    for i, line in enumerate(lines):
        if line.rstrip().endswith("\\"):
            continue
        span = lines[start : i + 1]
        marks = [int(m.group(1)) for m in (EXITS.search(s) for s in span) if m]
        out.append((start + 1, i + 1, marks[0] if marks else None))
        start = i + 1
    return out


def run_shell(code: str, where: Path, env: dict[str, str], origin: str) -> None:
    for number, line in enumerate(code.splitlines(), start=1):
        command = line.split(" #", 1)[0]
        # bash runs no ERR trap for a command that fails before '&&' or '||': it would go unseen
        assert "&&" not in command and "||" not in command, f"{origin}, line {number}: one command a line, please"
    errs = where / ".doc-errs"
    errs.write_text("")
    script = where / ".doc-block.sh"
    script.write_text(PREAMBLE + code)
    offset = PREAMBLE.count("\n")
    cp = subprocess.run(
        ["bash", str(script)],
        cwd=where,
        env={**env, "DOC_ERRS": str(errs)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
    )
    failed = {int(a) - offset: int(b) for a, b in (line.split() for line in errs.read_text().splitlines())}
    for first, last, expected in commands(code):
        got = next((rc for line, rc in failed.items() if first <= line <= last), 0)
        assert got == (expected or 0), (
            f"{origin}, line {first} of the block: exited {got}, the doc says {expected or 0}\n"
            f"stdout:\n{cp.stdout[-3000:]}\nstderr:\n{cp.stderr[-3000:]}"
        )


def run_python(code: str, where: Path, env: dict[str, str], origin: str) -> None:
    cp = subprocess.run(
        [sys.executable, "-c", code],
        cwd=where,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert cp.returncode == 0, f"{origin} exited {cp.returncode}:\n{cp.stdout[-3000:]}\n{cp.stderr[-3000:]}"


def check_json(code: str, origin: str) -> None:
    try:
        json.loads(code)
    except json.JSONDecodeError:
        for number, line in enumerate(code.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                json.loads(line)  # a JSON Lines block: each line one value
            except json.JSONDecodeError as err:
                raise AssertionError(f"{origin}, line {number} of the block is not JSON: {err}") from None


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_example_of_the_page_runs(page: Path, tmp_path: Path) -> None:
    found = blocks(page)
    for lang, _, line in found:
        assert lang in KNOWN, f"{page.name}:{line}: a fenced block must name its language, one of {sorted(KNOWN)}"
    venv = Path(sys.executable).parent.parent
    (tmp_path / ".venv").symlink_to(venv)
    (tmp_path / "tmp").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALOS_", "OPENAI_", "ANTHROPIC_"))}
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        NO_COLOR="1",
        COLUMNS="120",
        TMPDIR=str(tmp_path / "tmp"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),  # the user's own config files stay out of it
        PYTHONPATH=str(REPO),
    )
    for lang, code, line in found:
        origin = f"{page.name}:{line}"
        if lang in SHELL:
            run_shell(code, tmp_path, env, origin)
        elif lang in PYTHON:
            run_python(code, tmp_path, env, origin)
        elif lang in DATA:
            check_json(code, origin)
        elif lang in TYPESCRIPT:
            from alos.providers.jitcheck import static_problems

            assert not static_problems(code), f"{origin}: {static_problems(code)}"
        elif lang == "toml":
            tomllib.loads(code)  # a config example that does not parse fails here
        elif lang == "yaml":
            assert yaml.safe_load(code) is not None, f"{origin}: an empty YAML block"
    assert not list((tmp_path / "tmp").glob("alos-demo-*")), "the demo left its temporary directory behind"


def test_the_runner_catches_a_failing_example(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    with pytest.raises(AssertionError, match="exited 1, the doc says 0"):
        run_shell("true\nfalse\n", tmp_path, env, "here")
    with pytest.raises(AssertionError, match="exited 0, the doc says 3"):
        run_shell("true   # exits 3\n", tmp_path, env, "here")
    run_shell("(exit 3) \\\n  # exits 3\n", tmp_path, env, "here")
    with pytest.raises(AssertionError, match="one command a line"):
        run_shell("false && true\n", tmp_path, env, "here")
