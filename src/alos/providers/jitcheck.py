"""Decide whether an agent-written TypeScript tool (a JIT tool) may be registered.

A tool is one self-contained file that exports ``run(args, libos)``. static_problems() reads its
tokens and refuses what reaches past libos (imports, eval, Worker, Deno, the global object);
check() then asks Deno: ``deno info`` must see one module and no dependency, and ``deno check``
must type-check it against the libos declarations. A gate before registration, not the sandbox:
the tool still runs in a ``deno run`` with no permissions. Never runs the tool; holds no policy.
Size: the TypeScript tokenizer (strings, templates, comments, regular expressions: ~200 lines)
is the static policy's ground; split from the policy it would be a module no one else uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from alos import codec, limits
from alos.errors import Unavailable

_OUTPUT_KEPT = 1 << 20  # bytes kept of what one deno command prints (the graph of one module is ~1 KiB)
_PROBLEM_LINES = 20  # lines of compiler output a verdict keeps
_PROBLEM_CHARS = 4_000  # characters of compiler output a verdict keeps

_VIA_LIBOS = (
    "a tool is one self-contained file; reach files and the network through libos (libos.fs.read, libos.net.fetch)"
)
_GLOBAL = "the global object is not open to a tool; reach the world through libos"
_REFUSED = {
    "import": _VIA_LIBOS,
    "require": _VIA_LIBOS,
    "Worker": "a tool runs in one thread; it starts no workers",
    "SharedWorker": "a tool runs in one thread; it starts no workers",
    "eval": "code made from strings is not allowed; write the code itself",
    "Function": "the Function constructor makes code from strings; write a function (a type: (...a: any[]) => unknown)",
    "WebAssembly": "a tool is TypeScript only; WebAssembly is not allowed",
    "Deno": "a tool reaches the world only through libos, not the Deno namespace",
    "process": "a tool reaches the world only through libos, not Node's process",
    "globalThis": _GLOBAL,
    "global": _GLOBAL,  # Deno 2 names the global object so too
    "self": _GLOBAL,
    "window": _GLOBAL,
    # storage Deno keeps on disk beside its cache, decided by no permission: a channel between processes
    "localStorage": "a tool keeps nothing between calls outside libos: use objects (libos.obj.write)",
    "sessionStorage": "a tool keeps nothing between calls outside libos: use objects (libos.obj.write)",
    "caches": "a tool keeps nothing between calls outside libos: use objects (libos.obj.write)",
    "indexedDB": "a tool keeps nothing between calls outside libos: use objects (libos.obj.write)",
    "BroadcastChannel": "a tool talks to nothing but libos",
}
# After these words a '/' begins a regular expression; after any other name it divides.
_OPERAND_NEXT = {"return", "typeof", "instanceof", "in", "new", "delete", "void", "throw", "case", "do", "else"}
_OPERAND_NEXT |= {"yield", "await", "extends", "default"}
_RUN_HEADS = {("async", "function", "run"), ("function", "run", "("), ("function", "run", "<")}
_RUN_HEADS |= {("const", "run", "="), ("const", "run", ":")}  # what may follow 'export' to export run
_HEADS = {"if", "while", "for", "with"}  # a '/' after the ')' closing their head begins a regular expression
_PUNCTS = sorted(
    {*"{}()[];,<>+-*/%&|^!~?:=@.", "...", "=>", "==", "!=", "===", "!==", "<=", ">=", "&&", "||", "??", "?.", "++"}
    | {"--", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "**=", "**", "<<", ">>", ">>>", "<<=", ">>=", ">>>="}
    | {"&&=", "||=", "??="},
    key=len,
    reverse=True,
)  # longest first
_BREAKS = "\n\r\u2028\u2029"  # what ends a line comment, a string or a regular expression in JavaScript
_PRAGMA = re.compile(r"@(ts-types|deno-types|ts-self-types|jsxImportSource\w*)\b")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_CHECK_TS = (
    'import "./libos.ts";\n'
    'import { run } from "./tool.ts";\n'
    "const _run: (args: any, libos: Libos) => unknown = run;\n"
    "export {};\n"
)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a tool may be registered: ``problems`` is empty when it may (one line each, to be
    joined with newlines); ``checked`` says whether deno check ran (not when an earlier step refused)."""

    problems: tuple[str, ...]
    checked: bool


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "name", "punct" or "literal" (a string, number, template or regular expression)
    text: str
    line: int
    ends: bool | None  # whether a '/' after it divides (True), begins a regex (False), or may do either (None)


def static_problems(source: str) -> list[str]:
    """Return what the static policy refuses in ``source`` (empty: go on to Deno's checks): its size,
    a NUL, and the names, directives and re-exports a tool may not use, each with its line.
    Pure and fast; runs nothing."""
    try:
        size = len(source.encode())
    except UnicodeEncodeError:
        return ["the source is not UTF-8 text (it holds a lone surrogate)"]
    lines = source.count("\n") + (0 if source.endswith("\n") else 1)
    problems = []
    if size > limits.JIT_SOURCE_MAX_BYTES:
        problems.append(f"the source is {size} bytes; a tool may have at most {limits.JIT_SOURCE_MAX_BYTES}")
    if lines > limits.JIT_SOURCE_MAX_LINES:
        problems.append(f"the source is {lines} lines; a tool may have at most {limits.JIT_SOURCE_MAX_LINES}")
    if "\0" in source:
        problems.append(f"line {source[: source.index(chr(0))].count(chr(10)) + 1}: a NUL character; a tool is text")
    if problems:
        return problems
    lexer = _Lexer(source)
    lexer.scan()
    return [*lexer.problems, *_token_problems(lexer.tokens)]


def _token_problems(tokens: list[_Token]) -> list[str]:
    """Return the refused names and re-exports in ``tokens``, and a missing ``run`` export."""
    problems: list[str] = []
    exports_run = False
    for i, token in enumerate(tokens):
        if token.kind != "name" or (i and tokens[i - 1].text in (".", "?.")):
            continue  # a member's name (x.self) is no reference
        before = tokens[i - 1].text if i else ""
        after = tokens[i + 1].text if i + 1 < len(tokens) else ""
        if token.text in _REFUSED and not (before in ("{", ",") and after == ":"):  # a key, label or typed binding
            problem = f"line {token.line}: '{token.text}' is not allowed: {_REFUSED[token.text]}"
            if problem not in problems:
                problems.append(problem)
        elif token.text == "export":
            exports_run |= tuple(t.text for t in tokens[i + 1 : i + 4]) in _RUN_HEADS
            problems += _reexport(tokens, i)
    if not exports_run:
        problems.append("the tool does not export run: write `export async function run(args: any, libos: Libos) {`")
    return problems


def _reexport(tokens: list[_Token], at: int) -> list[str]:
    """Return a problem when the ``export`` at ``at`` re-exports another module (export * / export {} from)."""
    i = at + 1 + (at + 1 < len(tokens) and tokens[at + 1].text == "type")
    line = tokens[at].line
    if i < len(tokens) and tokens[i].text == "*":
        return [f"line {line}: 'export *' is not allowed: {_VIA_LIBOS}"]
    if i >= len(tokens) or tokens[i].text != "{":
        return []
    depth = 0
    for j in range(i, len(tokens)):
        depth += {"{": 1, "}": -1}.get(tokens[j].text, 0) if tokens[j].kind == "punct" else 0
        if depth == 0:
            if j + 1 < len(tokens) and tokens[j + 1].text == "from":
                return [f"line {line}: 'export {{...}} from' is not allowed: {_VIA_LIBOS}"]
            return []
    return []


class _Lexer:
    """A small TypeScript tokenizer: strings, templates with nested ``${}``, comments, numbers,
    names, punctuation and regular expressions. Where it cannot tell a regular expression from a
    division (after '}', '>' or 'of') it refuses instead of guessing: a wrong guess would hide code."""

    def __init__(self, source: str) -> None:
        self.src = source
        self.pos = 0
        self.line = 1
        self.tokens: list[_Token] = []
        self.problems: list[str] = []
        self.braces: list[str] = []  # "{" for a brace, "${" for a template's substitution
        self.parens: list[bool] = []  # whether each open '(' holds the head of if, while, for or with

    def scan(self) -> None:
        """Read the whole source into ``tokens``, noting what it refuses in ``problems``."""
        src = self.src
        if src.startswith("#!"):
            self._to_line_end()
        while self.pos < len(src):
            c = src[self.pos]
            if c == "\n":
                self.line += 1
                self.pos += 1
            elif c.isspace() or c == "\ufeff":
                self.pos += 1
            elif src.startswith("//", self.pos):
                self._line_comment()
            elif src.startswith("/*", self.pos):
                self._block_comment()
            elif c in "'\"":
                self._string(c)
            elif c == "`":
                self.pos += 1
                self._template()
            elif c == "/":
                self._slash()
            elif c.isdigit() or (c == "." and src[self.pos + 1 : self.pos + 2].isdigit()):
                self._number()
            elif c in "$_#" or c.isidentifier():
                self._name()
            elif c == "\\":
                self._refuse("a '\\' outside a string: names written with escapes (\\u0044eno) are not allowed")
            elif c == "}" and self.braces and self.braces[-1] == "${":
                self.braces.pop()
                self.pos += 1
                self._template()
            else:
                self._punct()

    def _push(self, kind: str, text: str, ends: bool | None) -> None:
        self.tokens.append(_Token(kind, text, self.line, ends))

    def _refuse(self, why: str) -> None:
        """Note a problem at the current line and stop: what follows cannot be read with confidence."""
        self.problems.append(f"line {self.line}: {why}")
        self.pos = len(self.src)

    def _to_line_end(self) -> str:
        start = self.pos
        while self.pos < len(self.src) and self.src[self.pos] not in _BREAKS:
            self.pos += 1
        return self.src[start : self.pos]

    def _line_comment(self) -> None:
        text = self._to_line_end()
        if re.match(r"///\s*<", text):
            self._refuse("a '/// <...>' directive is not allowed: it makes Deno read another file")
        else:
            self._pragma(text)

    def _block_comment(self) -> None:
        end = self.src.find("*/", self.pos + 2)
        if end < 0:
            self._refuse("a '/*' comment is never closed")
            return
        text = self.src[self.pos : end]
        if not self._pragma(text):
            self.line += text.count("\n")
            self.pos = end + 2

    def _pragma(self, comment: str) -> bool:
        """Refuse a comment that names a file for Deno to read (@deno-types and the like); return
        whether it did."""
        found = _PRAGMA.search(comment)
        if found:
            self._refuse(f"the '{found.group()}' pragma is not allowed: it makes Deno read another file")
        return found is not None

    def _string(self, quote: str) -> None:
        src, i = self.src, self.pos + 1
        while i < len(src) and src[i] != quote:
            if src[i] in "\n\r":
                self._refuse("a string is not closed on its line")
                return
            if src[i] == "\\":
                i += 1 + src.startswith("\r\n", i + 1)  # a line continuation
                self.line += src[i : i + 1] == "\n"
            i += 1
        if i >= len(src):
            self._refuse("a string is never closed")
            return
        self._push("literal", src[self.pos : i + 1], True)
        self.pos = i + 1

    def _template(self) -> None:
        """Read a template literal from just after its '`' or its substitution's '}' up to its
        closing '`' or its next '${' (then its substitution is code, up to the matching '}')."""
        src, i = self.src, self.pos
        while i < len(src):
            if src[i] == "\\":
                i += 1
            elif src[i] == "`":
                self._push("literal", "`", True)
                self.pos = i + 1
                return
            elif src.startswith("${", i):
                self._push("punct", "${", False)
                self.braces.append("${")
                self.pos = i + 2
                return
            self.line += src[i : i + 1] == "\n"
            i += 1
        self._refuse("a template literal is never closed")

    def _slash(self) -> None:
        last = self.tokens[-1] if self.tokens else None
        ends = False if last is None else last.ends
        if ends is None:
            assert last is not None
            self._refuse(f"a '/' after '{last.text}' may divide or begin a regular expression: add parentheses")
        elif ends:
            self._punct()
        else:
            self._regex()

    def _regex(self) -> None:
        src, i, in_class = self.src, self.pos + 1, False  # in a class ([...]) a '/' does not end it
        while i < len(src) and (in_class or src[i] != "/"):
            if src[i] in _BREAKS or (src[i] == "\\" and src[i + 1 : i + 2] in ("", *_BREAKS)):
                self._refuse("a regular expression is not closed on its line")
                return
            if src[i] == "\\":
                i += 1
            elif src[i] in "[]":
                in_class = src[i] == "["
            i += 1
        if i >= len(src):
            self._refuse("a regular expression is never closed")
            return
        i += 1
        while i < len(src) and ("a" + src[i]).isidentifier():
            i += 1  # its flags
        self._push("literal", src[self.pos : i], True)
        self.pos = i

    def _number(self) -> None:
        # anything glued to a number (1.5.x aside) is a syntax error, so reading greedily hides nothing
        match = re.compile(r"[\w.]+").match(self.src, self.pos)
        assert match is not None
        self._push("literal", match.group(), True)
        self.pos = match.end()

    def _name(self) -> None:
        src, i = self.src, self.pos + 1
        while i < len(src) and (src[i] in "$\u200c\u200d" or ("a" + src[i]).isidentifier()):
            i += 1
        text = src[self.pos : i]
        member = bool(self.tokens) and self.tokens[-1].text in (".", "?.")
        ends: bool | None = True
        if not member and text in _OPERAND_NEXT:
            ends = False
        elif not member and text == "of":
            ends = None  # for (x of /re/) or a variable named of
        self._push("name", text, ends)
        self.pos = i

    def _punct(self) -> None:
        src = self.src
        text = next((p for p in _PUNCTS if src.startswith(p, self.pos)), src[self.pos])
        if text == "?." and src[self.pos + 2 : self.pos + 3].isdigit():
            text = "?"  # a ? .5 : 1
        last = self.tokens[-1] if self.tokens else None
        ends: bool | None = False
        if text == "(":
            self.parens.append(self._heads())
        elif text == ")":
            ends = not (self.parens and self.parens.pop())
        elif text == "]":
            ends = True
        elif text == "{":
            self.braces.append("{")
        elif text == "}":
            ends = None  # a block's end (a regex may follow) or an object's (a division may)
            if self.braces:
                self.braces.pop()
        elif text in (">", ">>", ">>>"):
            ends = None  # a comparison, or the end of type arguments (x as A<B> / 2)
        elif text in ("!", "++", "--"):
            ends = last.ends if last is not None else False  # postfix (x! / 2, i++ / 2) after an operand
        self._push("punct", text, ends)
        self.pos += len(text)

    def _heads(self) -> bool:
        """Return whether a '(' here opens the head of if, while, for (await) or with."""
        if not self.tokens or self.tokens[-1].kind != "name":
            return False
        before2, before, last = ["", "", *(t.text for t in self.tokens[-3:])][-3:]
        if last == "await":
            return before == "for" and before2 not in (".", "?.")
        return last in _HEADS and before not in (".", "?.")


async def check(deno: str, source: str, declarations: str, cache_dir: str | None = None) -> Verdict:
    """Return whether the tool ``source`` may be registered: the static policy first (Deno does not
    start when it refuses), then ``deno info`` (one module, no dependency) and ``deno check`` against
    ``declarations`` (a module declaring the global type ``Libos``), each bounded by
    limits.JIT_CHECK_SECONDS, in a fresh temporary directory. ``cache_dir`` is Deno's DENO_DIR (default:
    one in the temporary directory, so a cold check). Raises Unavailable when ``deno`` cannot run."""
    problems = static_problems(source)
    if problems:
        return Verdict(tuple(problems), checked=False)
    root = os.path.realpath(tempfile.mkdtemp(prefix="alos-jitcheck-"))
    try:
        work = os.path.join(root, "src")
        os.mkdir(work)
        for name, text in (("tool.ts", source), ("libos.ts", declarations), ("check.ts", _CHECK_TS)):
            Path(work, name).write_text(text, encoding="utf-8")
        env = {
            "PATH": os.defpath,
            "HOME": root,
            "NO_COLOR": "1",
            "DENO_DIR": cache_dir or os.path.join(root, "deno"),
            "DENO_NO_UPDATE_CHECK": "1",
        }
        flags = ["--no-config", "--no-lock", "--no-remote", "--no-npm", "--quiet"]
        info = await _deno([deno, "info", "--json", *flags, "tool.ts"], work, env)
        problems = _graph_problems(info, work)
        if problems:
            return Verdict(tuple(problems), checked=False)
        heap = f"--v8-flags=--max-old-space-size={limits.JIT_CHECK_HEAP_MB}"  # a type-level bomb ends there
        ran = await _deno([deno, "check", *flags, heap, "--cached-only", "check.ts"], work, env)
        if ran.timed_out:
            return Verdict((f"deno check took longer than {limits.JIT_CHECK_SECONDS:g} s: simplify the types",), True)
        if ran.code == 0:
            return Verdict((), checked=True)
        said = _cleaned((ran.out + ran.err).decode(errors="replace"), work)
        return Verdict(tuple(said or [f"deno check failed (exit status {ran.code}) and said nothing"]), True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True, slots=True)
class _Ran:
    code: int | None  # None when it was killed for taking too long
    out: bytes
    err: bytes
    cut: bool  # whether it printed more than _OUTPUT_KEPT bytes on a stream

    @property
    def timed_out(self) -> bool:
        return self.code is None


async def _deno(argv: list[str], cwd: str, env: dict[str, str]) -> _Ran:
    """Run ``argv`` in a session of its own, stdin closed, for at most limits.JIT_CHECK_SECONDS
    (then kill its process group); return what it printed. Raises Unavailable if it cannot start."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as err:
        raise Unavailable(
            f"cannot start deno ({codec.escape(repr(argv[0]))}): {err.strerror or err}; "
            "install it into the environment (pip install deno) or name the deno binary to use"
        ) from err
    assert proc.stdout is not None and proc.stderr is not None
    reads = asyncio.gather(_read(proc.stdout), _read(proc.stderr))
    try:
        async with asyncio.timeout(limits.JIT_CHECK_SECONDS):
            (out, out_cut), (said, err_cut) = await reads
            code: int | None = await proc.wait()
    except TimeoutError:
        out, said, out_cut, err_cut, code = b"", b"", False, False, None
    finally:
        if proc.returncode is None:  # still unreaped: its pid is still its group's
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    return _Ran(code, out, said, out_cut or err_cut)


async def _read(stream: asyncio.StreamReader) -> tuple[bytes, bool]:
    """Return the first _OUTPUT_KEPT bytes of ``stream`` read to its end, and whether more came."""
    kept = bytearray()
    cut = False
    while chunk := await stream.read(1 << 16):
        room = _OUTPUT_KEPT - len(kept)
        kept += chunk[:room]
        cut |= len(chunk) > room
    return bytes(kept), cut


def _graph_problems(info: _Ran, work: str) -> list[str]:
    """Return what ``deno info --json tool.ts`` (run in ``work``) shows that a tool may not hold:
    any dependency (static, dynamic or a type's), any module besides tool.ts, or a syntax error.
    Raises Unavailable when deno info failed in a way no tool causes."""
    if info.timed_out:
        return [f"deno info took longer than {limits.JIT_CHECK_SECONDS:g} s"]
    if info.cut:
        return [f"deno info printed more than {_OUTPUT_KEPT} bytes: {_VIA_LIBOS}"]
    try:
        graph = codec.parse(info.out) if info.code == 0 else None
    except msgspec.DecodeError:
        graph = None
    if not isinstance(graph, dict) or not isinstance(graph.get("modules"), list):
        said = " / ".join(_cleaned(info.err.decode(errors="replace"), work)[:3])
        raise Unavailable(f"deno info failed (exit status {info.code}): {said or 'no message'}; check the deno install")
    return _module_problems(graph, work)


def _module_problems(graph: dict[str, Any], work: str) -> list[str]:
    """Return what the module graph ``graph`` (deno info --json of tool.ts in ``work``) holds besides
    the one module tool.ts, each specifier quoted and escaped (it is the tool's own text)."""
    root = Path(work, "tool.ts").as_uri()
    problems: list[str] = []
    reached: set[str] = set()
    modules = [m for m in graph.get("modules", []) if isinstance(m, dict)]
    for module in modules:
        if module.get("specifier") != root:
            continue
        if isinstance(module.get("error"), str):
            problems += _cleaned(module["error"], work)
        for dep in [d for d in module.get("dependencies") or [] if isinstance(d, dict)]:
            where: dict[str, Any] = next((dep[k] for k in ("code", "type") if isinstance(dep.get(k), dict)), {})
            reached.add(str(where.get("specifier")))
            line = where.get("span", {}).get("start", {}).get("line")
            how = " (a dynamic import)" if dep.get("isDynamic") else ""
            at = f"line {line + 1}: " if isinstance(line, int) else ""
            problems.append(f"{at}the tool depends on {_quoted(dep.get('specifier'))}{how}: {_VIA_LIBOS}")
        if isinstance(module.get("typesDependency"), dict):
            problems.append(f"the tool names types from {_quoted(module['typesDependency'].get('specifier'))}")
    for module in modules:
        specifier = module.get("specifier")
        if specifier != root and str(specifier) not in reached:
            problems.append(f"the module graph holds {_quoted(specifier)} besides tool.ts: {_VIA_LIBOS}")
    if not any(m.get("specifier") == root for m in modules):
        problems.append("deno info did not list tool.ts itself")
    for key in ("npmPackages", "redirects"):
        if graph.get(key):
            problems.append(f"the module graph holds {key}: {_VIA_LIBOS}")
    return problems


def _quoted(text: object) -> str:
    """Return hostile ``text`` quoted, cut and escaped: no control or bidi character comes through."""
    return codec.escape(repr(str(text)[:200]))


def _cleaned(text: str, work: str) -> list[str]:
    """Return Deno's message ``text`` as problem lines: no colour, no temporary path (``tool.ts:3:5``),
    no blank lines, each escaped, at most _PROBLEM_LINES lines and _PROBLEM_CHARS characters."""
    text = _ANSI.sub("", text).replace(Path(work).as_uri() + "/", "").replace(work + "/", "")
    lines = [codec.escape(line.rstrip()[:300]) for line in text.splitlines() if line.strip()]
    kept: list[str] = []
    used = 0
    for i, line in enumerate(lines):
        if (len(kept) == _PROBLEM_LINES - 1 and i < len(lines) - 1) or used + len(line) > _PROBLEM_CHARS:
            kept.append(f"... ({len(lines) - i} more lines)")
            break
        kept.append(line)
        used += len(line)
    return kept
