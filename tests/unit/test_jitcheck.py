"""The JIT tool gate: the static policy refuses every way out of libos it can see (and nothing a
string or comment merely mentions), and Deno's own checks refuse dependencies and type errors.

Few tests start Deno (a check is ~1 s): they share one DENO_DIR.
"""

import asyncio
import json
import os
import subprocess
from pathlib import Path

import deno
import pytest

from alos import limits
from alos.errors import Unavailable
from alos.providers.jitcheck import Verdict, _cleaned, _module_problems, check, static_problems

DECLARATIONS = (
    "declare global { interface Libos { syscall(name: string, args: Record<string, unknown>): Promise<unknown>; } }"
)
HEAD = "export async function run(args: any, libos: Libos) {\n"
GOOD = HEAD + '  return await libos.syscall("fs.read", { path: String(args.path) });\n}\n'
DENO = deno.find_deno_bin()


def tool(body: str) -> str:
    """Return a tool whose run holds ``body`` from line 2 on."""
    return HEAD + body + "\n}\n"


def refused(source: str) -> list[str]:
    return [p for p in static_problems(source) if "does not export run" not in p]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("deno-dir"))


def test_strings_comments_regexes_and_templates_that_mention_the_words_are_fine() -> None:
    source = tool(
        '  const s = "import me"; // eval here\n'
        "  const t = 'Deno and globalThis'; /* require(\"x\"), Worker, self */\n"
        "  const re = /[\"'`]import/g; // a regex holding every quote\n"
        "  const u = `window ${s + `nested ${t} self`} Function`;\n"
        "  const q = (s.length) / 2 / 1; // a division after ')'\n"
        "  return [s, t, re, u, q, args.eval, libos.syscall, { window: 1, self: 2 }];"
    )
    assert static_problems(source) == []


NAMES = ["import", "require", "Worker", "SharedWorker", "eval", "Function", "WebAssembly", "Deno", "process"]
GLOBALS = ["globalThis", "global", "self", "window"]


@pytest.mark.parametrize("name", [*NAMES, *GLOBALS])
def test_each_name_that_reaches_past_libos_is_refused_with_its_line(name: str) -> None:
    source = tool(f"  const a = 1;\n  const b = {name};\n  return b;")
    problems = refused(source)
    assert len(problems) == 1 and problems[0].startswith(f"line 3: '{name}' is not allowed: ")


@pytest.mark.parametrize(
    "line",
    [
        'import x from "./a.ts";',
        'import { y } from "npm:left-pad";',
        'import z from "jsr:@std/path";',
        'import w from "https://deno.land/x/mod.ts";',
        'import type { T } from "./types.ts";',
        'import "./side.ts";',
        'const m = await import("./x");',
        "const u = import.meta.url;",
        'const r = require("node:fs");',
    ],
)
def test_every_form_of_import_is_refused(line: str) -> None:
    problems = refused(line + "\n" + GOOD)
    assert problems and all(p.startswith("line 1: ") for p in problems), problems
    assert "through libos (libos.fs.read, libos.net.fetch)" in problems[0]


@pytest.mark.parametrize(
    ("line", "form"),
    [
        ('export * from "./a.ts";', "export *"),
        ('export * as ns from "./a.ts";', "export *"),
        ('export type * from "./a.ts";', "export *"),
        ('export { a, b as c } from "./a.ts";', "export {...} from"),
        ('export type { T } from "./a.ts";', "export {...} from"),
    ],
)
def test_reexports_are_refused(line: str, form: str) -> None:
    problems = refused(GOOD + line)
    assert len(problems) == 1 and problems[0].startswith(
        f"line 4: '{form}' is not allowed: a tool is one self-contained"
    )


def test_an_export_list_of_its_own_names_is_no_reexport() -> None:
    assert refused(GOOD + "const a = 1;\nexport { a };\n") == []


def test_code_inside_a_template_substitution_is_code() -> None:
    assert refused(tool('  return `a ${eval("1")} b`;'))[0].startswith("line 2: 'eval'")
    assert refused(tool("  return `a ${`b ${ {k: globalThis}.k } c`} d`;"))[0].startswith("line 2: 'globalThis'")


def test_quotes_in_a_regex_do_not_hide_the_code_after_it() -> None:
    for regex in ('/"/', "/'/", "/`/", '/[/"]/', '/\\/"/'):
        assert refused(tool(f"  const r = {regex}.test(args); return Deno;")) != [], regex
        assert refused(tool(f"  const r = {regex}.test(args);\n  return r;")) == [], regex


def test_a_regex_after_a_control_head_and_a_division_after_a_call_are_told_apart() -> None:
    assert refused(tool('  if (args) /"/.test(args); Deno.exit();'))[0].startswith("line 2: 'Deno'")
    assert refused(tool('  for await (const x of args) /"/.test(x); Deno.exit();'))[0].startswith("line 2: 'Deno'")
    assert refused(tool("  const x = f(args) / 2 / Deno;"))[0].startswith("line 2: 'Deno'")
    assert refused(tool("  const x = args.return / 2 / Deno;"))[0].startswith("line 2: 'Deno'")
    assert refused(tool("  const x = args.y! / 2 / Deno;"))[0].startswith("line 2: 'Deno'")


@pytest.mark.parametrize("code", ["x = {} / Deno.x / 1", "x = a as Array<A> / Deno / 1", "for (const m of /x/g) {}"])
def test_a_slash_that_may_divide_or_begin_a_regex_is_refused_not_guessed(code: str) -> None:
    problems = refused(tool("  " + code))
    assert len(problems) == 1 and "may divide or begin a regular expression" in problems[0], problems


def test_names_written_with_escapes_are_refused() -> None:
    assert "names written with escapes" in refused(tool("  return \\u0044eno;"))[0]


@pytest.mark.parametrize(
    "comment",
    [
        '/// <reference path="/etc/passwd" />',
        '/// <reference types="npm:@types/node" />',
        '// @ts-types="./x.d.ts"',
        '/* @deno-types="./x.d.ts" */',
        "/** @jsxImportSource npm:preact */",
    ],
)
def test_directives_that_make_deno_read_a_file_are_refused(comment: str) -> None:
    problems = refused(comment + "\n" + GOOD)
    assert len(problems) == 1 and problems[0].startswith("line 1: ") and "read another file" in problems[0]


def test_a_line_comment_ends_where_javascript_ends_it() -> None:
    assert refused(tool("  // a comment\u2028return Deno;"))[0].startswith("line 2: 'Deno'")


def test_a_hashbang_line_is_a_comment() -> None:
    assert static_problems('#!/usr/bin/env -S deno run "\n' + GOOD) == []


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ('  return "open;', "string is not closed"),
        ("  /* open", "never closed"),
        ("  return `open ${1}", "never closed"),
        ("  return /open;", "regular expression is not closed"),
    ],
)
def test_what_is_never_closed_is_refused(body: str, why: str) -> None:
    assert why in refused(tool(body))[0]


def test_the_run_export_is_required_in_one_of_its_forms() -> None:
    assert static_problems("export async function go(args: any) { return 1; }") == [
        "the tool does not export run: write `export async function run(args: any, libos: Libos) {`"
    ]
    for head in (
        "export function run(",
        "export const run = (",
        "export const run: Run = (",
        "export function run<T>(",
    ):
        assert static_problems(f"{head}args: any) => 1;") == [], head


def test_the_size_and_line_limits_and_text() -> None:
    line = "// " + "x" * 60 + "\n"
    too_big = GOOD + line * (limits.JIT_SOURCE_MAX_BYTES // len(line))
    assert static_problems(too_big)[0].startswith(f"the source is {len(too_big)} bytes; a tool may have at most")
    too_long = GOOD + "\n" * limits.JIT_SOURCE_MAX_LINES
    assert static_problems(too_long) == [
        f"the source is {too_long.count(chr(10))} lines; a tool may have at most {limits.JIT_SOURCE_MAX_LINES}"
    ]
    assert static_problems(GOOD + "\n" * (limits.JIT_SOURCE_MAX_LINES - 4)) == []
    assert static_problems(GOOD + "\0") == ["line 4: a NUL character; a tool is text"]
    assert "not UTF-8" in static_problems(GOOD + "\udcff")[0]


def test_a_statically_refused_tool_never_starts_deno() -> None:
    verdict = asyncio.run(check("/nonexistent/deno", 'import "./x.ts";\n' + GOOD, DECLARATIONS))
    assert verdict.checked is False and verdict.problems[0].startswith("line 1: 'import'")


def test_a_missing_deno_is_unavailable_and_named() -> None:
    with pytest.raises(Unavailable, match="/nonexistent/deno"):
        asyncio.run(check("/nonexistent/deno", GOOD, DECLARATIONS))


def fake_deno(tmp_path: Path, script: str) -> str:
    path = tmp_path / "deno"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return str(path)


def test_a_deno_that_takes_too_long_is_killed_with_its_process_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "JIT_CHECK_SECONDS", 0.5)
    pidfile = tmp_path / "child.pid"
    slow = fake_deno(tmp_path, f"sleep 600 &\necho $! > {pidfile}\nwait\n")
    verdict = asyncio.run(check(slow, GOOD, DECLARATIONS))
    assert verdict == Verdict(problems=("deno info took longer than 0.5 s",), checked=False)
    child = int(pidfile.read_text())
    stat = Path(f"/proc/{child}/stat")
    assert not stat.exists() or stat.read_text().split(") ")[1].startswith("Z"), "the child outlived the check"


def test_a_deno_info_that_fails_on_its_own_is_unavailable_not_the_tools_fault(tmp_path: Path) -> None:
    broken = fake_deno(tmp_path, "echo 'error: \033[31mno cache\033[0m' >&2\nexit 2\n")
    with pytest.raises(Unavailable, match=r"deno info failed \(exit status 2\): error: no cache;"):
        asyncio.run(check(broken, GOOD, DECLARATIONS))


def test_a_good_tool_passes(cache: str) -> None:
    assert asyncio.run(check(DENO, GOOD, DECLARATIONS, cache)) == Verdict(problems=(), checked=True)


def test_a_type_error_is_named_by_its_line_in_tool_ts_without_the_temporary_path(cache: str) -> None:
    source = tool('  const n: number = "x\x1b[2J";\n  return libos.nope(n);')
    verdict = asyncio.run(check(DENO, source, DECLARATIONS, cache))
    said = "\n".join(verdict.problems)
    assert verdict.checked and "at tool.ts:2:9" in said and "at tool.ts:3:16" in said, said
    assert "Property 'nope' does not exist on type 'Libos'" in said
    assert "file:" not in said and "/tmp" not in said and "alos-jitcheck" not in said
    assert not any(c < " " for c in said.replace("\n", "")), said  # the source line it shows is escaped
    assert all("\n" not in p for p in verdict.problems)


def test_a_run_that_is_not_a_function_and_a_syntax_error_are_refused(cache: str) -> None:
    verdict = asyncio.run(check(DENO, "export const run = 5;\n", DECLARATIONS, cache))
    assert verdict.checked and "check.ts:3" in "\n".join(verdict.problems), verdict
    verdict = asyncio.run(check(DENO, tool("  return (;"), DECLARATIONS, cache))
    assert not verdict.checked and "at tool.ts:2:11" in "\n".join(verdict.problems), verdict  # deno info saw it


def test_deno_info_shows_every_dependency_and_each_is_refused_and_escaped(tmp_path: Path, cache: str) -> None:
    """The static policy refuses all of these first; this is the net under it, fed Deno's real graph."""
    work = str(tmp_path.resolve())
    source = (
        '/// <reference path="./types.d.ts" />\n'
        'import a from "./a.ts";\n'
        'const b = await import("./b.ts");\n'
        'const c = await import("npm:left-pad");\n'
        'const d = await import("jsr:@std/path");\n'
        'const e = await import("https://example.com/e.ts");\n'
        'const f = await import("./f\x1b[2J\u202e\x07.ts");\n'
        "const g = await import(String(a));\n"  # not a literal: not in the graph (deno run asks for read access)
    )
    Path(work, "tool.ts").write_text(source)
    Path(work, "a.ts").write_text("export default 1;\n")
    env = {"PATH": os.defpath, "HOME": work, "NO_COLOR": "1", "DENO_DIR": cache, "DENO_NO_UPDATE_CHECK": "1"}
    flags = ["--no-config", "--no-lock", "--no-remote", "--no-npm", "--quiet"]
    out = subprocess.run([DENO, "info", "--json", *flags, "tool.ts"], cwd=work, env=env, capture_output=True)
    assert out.returncode == 0, out.stderr
    problems = _module_problems(json.loads(out.stdout), work)
    said = "\n".join(problems)
    assert "line 1: the tool depends on './types.d.ts'" in said
    assert "line 2: the tool depends on './a.ts': a tool is one self-contained file" in said
    for n, specifier in enumerate(("./b.ts", "npm:left-pad", "jsr:@std/path", "https://example.com/e.ts"), start=3):
        assert f"line {n}: the tool depends on '{specifier}' (a dynamic import)" in said, said
    assert "line 7: the tool depends on './f\\x1b[2J\\u202e\\x07.ts' (a dynamic import)" in said
    assert not any(c < " " or c == "\u202e" for c in said.replace("\n", ""))


def test_a_module_besides_tool_ts_is_refused_even_without_a_dependency_entry() -> None:
    root = Path("/w/tool.ts").as_uri()
    graph = {"modules": [{"specifier": root}, {"specifier": "file:///etc/\x1b]0;x\x07"}], "redirects": {}}
    (problem,) = _module_problems(graph, "/w")
    assert problem.startswith("the module graph holds 'file:///etc/\\x1b]0;x\\x07' besides tool.ts: a tool is one")
    assert _module_problems({"modules": []}, "/w") == ["deno info did not list tool.ts itself"]


def test_compiler_output_is_cut_and_cleaned() -> None:
    text = "\n".join(f"\x1b[31mTS{i} [ERROR]\x1b[0m: at file:///w/tool.ts:{i}:1\x07" for i in range(50))
    lines = _cleaned(text, "/w")
    assert len(lines) == 20 and lines[-1] == "... (31 more lines)"
    assert lines[0] == "TS0 [ERROR]: at tool.ts:0:1\\x07"
    assert sum(map(len, _cleaned("y" * 250 + "\n" * 2 + ("x" * 290 + "\n") * 19, "/w"))) <= 4_000
