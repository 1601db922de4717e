"""Enumerate mutants of one Python source file with ``ast``, and apply one to the file's text.

A mutant is one small change at one source span that could weaken an authority check: a
comparison or boolean operator swapped, a ``not`` dropped, an ``if`` negated, an ``elif`` or a
guard's ``raise``/early ``return``/call statement removed, a bool or int constant shifted,
``continue``/``break`` swapped. Never mutated: docstrings, annotations, strings and f-strings,
``assert`` statements, the arguments of a raised exception (its message) and logging calls:
a changed message is not a changed authority. Pure: reads text, returns text; writes nothing.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass

SWAPS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
NEGATIONS = (ast.Eq, ast.NotEq, ast.Is, ast.IsNot, ast.In, ast.NotIn)  # swaps that negate the comparison
QUIET = frozenset({"log", "logger", "logging", "print", "warnings"})  # calls whose removal changes only output
Spot = ast.expr | ast.stmt  # a node a mutant replaces: it has a source span
SHOWN = 70  # characters of code shown per side of a mutant in reports


@dataclass(frozen=True, slots=True)
class Mutant:
    """One change: replace bytes ``start:end`` of ``path`` by ``text``, on lines ``line`` to ``last``."""

    path: str  # relative to the repository root, e.g. src/alos/rights.py
    line: int
    last: int  # the last line of the span
    start: int
    end: int
    text: str
    kind: str  # the operator: compare, boolop, not, negate-if, drop-elif, raise, return, call, constant, loop
    before: str  # the original code, one line, for reports
    after: str  # the mutated code, one line, for reports


def apply(source: bytes, mutant: Mutant) -> bytes:
    """Return ``source`` with ``mutant`` applied."""
    return source[: mutant.start] + mutant.text.encode() + source[mutant.end :]


def mutants(path: str, source: bytes) -> list[Mutant]:
    """Return every mutant of ``source`` (the text of ``path``) that compiles and changes its AST.

    Raises SyntaxError when ``source`` itself does not parse.
    """
    tree = ast.parse(source)
    original = ast.dump(tree)
    starts = _line_starts(source)
    out: list[Mutant] = []
    seen: set[tuple[int, int, str]] = set()
    for node, kind, text in _candidates(tree):
        start, end = _span(starts, node)
        key = (start, end, text)
        if key in seen:
            continue
        seen.add(key)
        before = _one_line(source[start:end].decode())
        mutant = Mutant(
            path, node.lineno, node.end_lineno or node.lineno, start, end, text, kind, before, _one_line(text)
        )
        if _changes(apply(source, mutant), original):
            out.append(mutant)
    return out


def _changes(mutated: bytes, original: str) -> bool:
    try:
        return ast.dump(ast.parse(mutated)) != original
    except SyntaxError:
        return False


def _line_starts(source: bytes) -> list[int]:
    starts = [0, 0]  # ast lines count from 1
    for i, byte in enumerate(source):
        if byte == ord("\n"):
            starts.append(i + 1)
    return starts


def _span(starts: list[int], node: Spot) -> tuple[int, int]:
    """Return the byte offsets of ``node`` in the source (ast columns are UTF-8 byte offsets)."""
    start = starts[node.lineno] + node.col_offset
    end = starts[node.end_lineno or node.lineno] + (node.end_col_offset or 0)
    return start, end


def _one_line(code: str) -> str:
    text = " ".join(code.split())
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."


def _candidates(tree: ast.Module) -> Iterator[tuple[Spot, str, str]]:
    """Yield (node to replace, operator, replacement text) for every mutable spot of ``tree``."""
    for node in _walk(tree):
        yield from _expression_mutants(node)
        yield from _statement_mutants(node)


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    """Yield ``node`` and its descendants, skipping what a mutant must not touch."""
    yield node
    for field, value in ast.iter_fields(node):
        if field in ("annotation", "returns", "type_comment", "decorator_list"):
            continue
        if isinstance(node, ast.Raise) and field in ("exc", "cause"):
            continue
        children = value if isinstance(value, list) else [value]
        for child in children:
            if isinstance(child, ast.AST) and not _skipped(child):
                yield from _walk(child)


def _skipped(node: ast.AST) -> bool:
    if isinstance(node, ast.Assert | ast.JoinedStr | ast.Import | ast.ImportFrom):
        return True
    if _docstring(node):
        return True
    if isinstance(node, ast.If) and _names(node.test) & {"TYPE_CHECKING"}:
        return True
    return isinstance(node, ast.Call) and _callee(node) in QUIET


def _docstring(node: ast.AST) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)
    }


def _callee(call: ast.Call) -> str:
    """Return the first name of a call's target: ``log`` of ``log.info(...)``, ``print`` of ``print()``."""
    func = call.func
    while isinstance(func, ast.Attribute):
        func = func.value
    return func.id if isinstance(func, ast.Name) else ""


def _expression_mutants(node: ast.AST) -> Iterator[tuple[Spot, str, str]]:
    if isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            ops = list(node.ops)
            ops[i] = SWAPS[type(op)]()
            yield node, "compare", ast.unparse(ast.Compare(node.left, ops, node.comparators))
    elif isinstance(node, ast.BoolOp):
        other = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        yield node, "boolop", ast.unparse(ast.BoolOp(other, node.values))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield node, "not", f"({ast.unparse(node.operand)})"
    elif isinstance(node, ast.Constant) and isinstance(node.value, bool):
        yield node, "constant", str(not node.value)
    elif isinstance(node, ast.Constant) and type(node.value) is int:
        yield node, "constant", str(node.value + 1 if node.value == 0 else node.value - 1)


def _statement_mutants(node: ast.AST) -> Iterator[tuple[Spot, str, str]]:
    if isinstance(node, ast.If | ast.IfExp) and not _negated_elsewhere(node.test):
        yield node.test, "negate-if", f"not ({ast.unparse(node.test)})"
    if isinstance(node, ast.If):
        for child in node.orelse[:1]:
            if isinstance(child, ast.If) and len(node.orelse) == 1 and child.col_offset == node.col_offset:
                yield child.test, "drop-elif", "False"  # an elif sits at its if's column; a nested if does not
    for body in _bodies(node):
        for i, stmt in enumerate(body):
            kind = _droppable(
                stmt, last=i == len(body) - 1 and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            )
            if kind:
                yield stmt, kind, "pass"
    if isinstance(node, ast.Continue):
        yield node, "loop", "break"
    elif isinstance(node, ast.Break):
        yield node, "loop", "continue"


def _negated_elsewhere(test: ast.expr) -> bool:
    """Return whether another operator already yields ``not test`` (dropping its ``not``, or a swap)."""
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return True
    return isinstance(test, ast.Compare) and len(test.ops) == 1 and type(test.ops[0]) in NEGATIONS


def _bodies(node: ast.AST) -> list[list[ast.stmt]]:
    return [
        value for field, value in ast.iter_fields(node) if field in ("body", "orelse", "finalbody") and _stmts(value)
    ]


def _stmts(value: object) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], ast.stmt)


def _droppable(stmt: ast.stmt, last: bool) -> str:
    """Return the operator that deletes ``stmt``, or "" when deleting it is not of interest.

    A function's final ``return`` is kept: deleting it breaks the function rather than a check.
    """
    if isinstance(stmt, ast.Raise):
        return "raise"
    if isinstance(stmt, ast.Return) and not last:
        return "return"
    if isinstance(stmt, ast.Expr) and not _docstring(stmt):
        call = stmt.value.value if isinstance(stmt.value, ast.Await) else stmt.value
        if isinstance(call, ast.Call) and _callee(call) not in QUIET:
            return "call"
    return ""
