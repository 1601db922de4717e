"""Answers from a policy file: a HumanIO that stands in for a person in unattended runs.

The file is TOML holding ordered ``[[rule]]`` tables (docs/providers.md); the first rule that
matches a pending request gives its answer, and a request no rule matches gets None: it stays a
question for a person. It decides nothing itself: the host carries each answer out through
dispatch() (human.answer), checked and audited like a person's, with ``by`` naming the file.
A recovery request (an effect a crash may have cut) is matched only by a rule that names
``kind = "recovery"``: a rule written for approvals never retries an effect that may have happened.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, cast

from alos import codec
from alos.errors import Invalid, NotFound
from alos.providers.base import HumanAnswer, HumanIO
from alos.rights import covers, normalize_pattern
from alos.types import HumanRequest, RequestKind, RequestState

KEYS = ("answer", "kind", "reason", "resource", "syscall", "text")  # what a rule may hold
VERDICTS = ("once", "always", "deny", "answer")
# the answers each kind of request takes (kernel/approval.py refuses any other)
FITS = {
    RequestKind.APPROVAL: frozenset({"once", "always", "deny"}),
    RequestKind.QUESTION: frozenset({"answer", "deny"}),
    RequestKind.RECOVERY: frozenset({"once", "deny"}),
}
# the kinds a rule that names none applies to: never recovery
UNNAMED = {
    "once": frozenset({RequestKind.APPROVAL}),
    "always": frozenset({RequestKind.APPROVAL}),
    "deny": frozenset({RequestKind.APPROVAL, RequestKind.QUESTION}),
    "answer": frozenset({RequestKind.QUESTION}),
}
_SYSCALL = re.compile(r"[a-z]+\.[a-z_]+")


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule of an answers file, checked: what it matches and the answer it gives."""

    number: int  # its place in the file, from 1
    syscall: str  # a syscall's name, or "*" for every one
    resource: str | None  # a normalized grant pattern the request's resource must match; None: any
    kinds: frozenset[RequestKind]
    verdict: str  # once | always | deny | answer
    text: str | None  # the reason (once, always, deny) or the answer to a question

    def matches(self, request: HumanRequest) -> bool:
        """Return whether this rule answers ``request``."""
        return (
            request.kind in self.kinds
            and self.syscall in ("*", request.syscall)
            and (self.resource is None or covers(self.resource, request.resource, deny=self.verdict == "deny"))
        )


class Answers:
    """A HumanIO answering pending requests by the rules of one file; ``tell`` goes to ``tell``
    (another HumanIO, or a function of (pid, text)), or is kept in ``told`` when there is none."""

    def __init__(
        self,
        rules: tuple[Rule, ...],
        by: str,
        tell: HumanIO | Callable[[int, str], None] | None = None,
    ) -> None:
        self.rules = rules
        self.by = by
        self.told: list[tuple[int, str]] = []
        method = getattr(tell, "tell", None)  # a HumanIO's, or the function given
        self._tell: Callable[[int, str], None] | None = method if callable(method) else cast(Any, tell)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        workspace: str,
        tell: HumanIO | Callable[[int, str], None] | None = None,
        syscalls: Collection[str] | None = None,
    ) -> Answers:
        """Return the Answers of the file at ``path``, its relative ``fs:`` patterns taken in
        ``workspace``. With ``syscalls`` (the table's names) a rule naming another syscall is
        refused. Raises NotFound for a missing file and Invalid naming FILE:rule N and the problem."""
        name = os.fspath(path)
        try:
            with open(name, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise NotFound(f"answers file {name} does not exist; name a TOML file of [[rule]] tables") from None
        except OSError as err:
            raise Invalid(f"answers file {name} cannot be read ({err.strerror}); name a readable file") from None
        try:
            text = data.decode()
        except UnicodeDecodeError:
            raise Invalid(f"{name}: not UTF-8 text; an answers file is TOML") from None
        return cls.parse(text, name, workspace, tell=tell, syscalls=syscalls)

    @classmethod
    def parse(
        cls,
        text: str,
        name: str,
        workspace: str,
        tell: HumanIO | Callable[[int, str], None] | None = None,
        syscalls: Collection[str] | None = None,
    ) -> Answers:
        """Return the Answers of TOML ``text`` read from file ``name`` (see ``load``)."""
        where = codec.escape(name)
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise Invalid(f"{where}: not valid TOML ({err})") from None
        extra = sorted(set(doc) - {"rule"})
        if extra:
            raise Invalid(f"{where}: unknown key {codec.escape(extra[0])!r}; the file holds [[rule]] tables only")
        tables = doc.get("rule", [])
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            raise Invalid(f"{where}: 'rule' must be an array of tables: write each rule under [[rule]]")
        rules = tuple(_rule(t, n, where, workspace, syscalls) for n, t in enumerate(tables, start=1))
        return cls(rules, "answers:" + codec.escape(os.path.basename(name)), tell)

    def tell(self, pid: int, text: str) -> None:
        """Pass ``text`` from ``pid`` to the inner HumanIO or function, or keep it in ``told``."""
        if self._tell is None:
            self.told.append((pid, text))
        else:
            self._tell(pid, text)

    def answer(self, request: HumanRequest) -> HumanAnswer | None:
        """Return the answer of the first rule that matches pending ``request``, or None (a person
        answers it)."""
        if request.state is not RequestState.PENDING:
            return None
        for rule in self.rules:
            if rule.matches(request):
                return HumanAnswer(rule.verdict, rule.text, self.by)
        return None


def _rule(table: dict[str, Any], number: int, file: str, workspace: str, syscalls: Collection[str] | None) -> Rule:
    """Return rule ``number`` of ``file`` checked; raises Invalid naming FILE:rule N and the problem."""
    where = f"{file}:rule {number}"
    for key in sorted(table):
        if key not in KEYS:
            raise Invalid(f"{where}: unknown key {codec.escape(key)!r}; a rule holds {', '.join(KEYS)}")
        if not isinstance(table[key], str):
            raise Invalid(f'{where}: {key} must be a string, e.g. {key} = "..."')
    values: dict[str, str] = table
    syscall = _syscall(values.get("syscall"), where, syscalls)
    verdict = values.get("answer")
    if verdict not in VERDICTS:
        shown = "none" if verdict is None else repr(codec.escape(verdict))
        raise Invalid(f"{where}: answer is {shown}; give one of {', '.join(VERDICTS)}")
    kinds = _kinds(values.get("kind"), verdict, where)
    if verdict == "answer":
        if "reason" in values:
            raise Invalid(f'{where}: answer = "answer" gives text, not a reason; write text = "..."')
        if "text" not in values:
            raise Invalid(f'{where}: answer = "answer" needs the text to answer with: text = "..."')
        text: str | None = values["text"]
    else:
        if "text" in values:
            raise Invalid(f'{where}: text is the answer to a question (answer = "answer"); a {verdict} takes reason')
        text = values.get("reason")
        if verdict == "deny" and not text:
            text = f"denied by rule {number} of {file}"
    resource = values.get("resource")
    if resource is not None:
        try:
            resource = normalize_pattern(resource, workspace, resource)
        except Invalid as err:
            raise Invalid(f"{where}: bad resource pattern: {err.message}") from None
    return Rule(number, syscall, resource, kinds, verdict, text)


def _syscall(value: str | None, where: str, syscalls: Collection[str] | None) -> str:
    if value is None:
        raise Invalid(f'{where}: name the syscall it answers, e.g. syscall = "fs.write" (or "*" for all)')
    if value != "*" and (not _SYSCALL.fullmatch(value) or (syscalls is not None and value not in syscalls)):
        raise Invalid(f'{where}: no syscall is named {codec.escape(value)!r}; write a name like "fs.write", or "*"')
    return value


def _kinds(value: str | None, verdict: str, where: str) -> frozenset[RequestKind]:
    if value is None:
        return UNNAMED[verdict]
    try:
        kind = RequestKind(value)
    except ValueError:
        known = ", ".join(k.value for k in RequestKind)
        raise Invalid(f"{where}: kind {codec.escape(value)!r} is not one of {known}") from None
    if verdict not in FITS[kind]:
        fits = ", ".join(repr(v) for v in VERDICTS if v in FITS[kind])
        raise Invalid(f"{where}: a request of kind {kind.value!r} is answered {fits}, never {verdict!r}")
    return frozenset({kind})
