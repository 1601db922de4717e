"""providers/answers.py: rules by syscall, resource and kind, first match wins, anything unmatched
stays a question for a person, a recovery is retried only by a rule that says so, and a bad file
is refused naming FILE:rule N."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest

import alos
from alos.errors import Invalid, NotFound
from alos.providers.answers import Answers
from alos.providers.base import HumanAnswer, Providers
from alos.providers.human import RecordedHuman
from alos.providers.memfs import MemoryFiles
from alos.rights import Effect, parse_grant
from alos.types import HumanRequest, RequestKind, RequestState

WS = "/work/ws"

POLICY = """
[[rule]]
syscall = "fs.write"
resource = "fs:.env"
answer = "deny"
reason = "secrets stay as they are"

[[rule]]
syscall = "fs.write"
resource = "fs:src/*"
answer = "once"

[[rule]]
syscall = "fs.delete"
answer = "deny"

[[rule]]
syscall = "human.ask"
answer = "answer"
text = "use the defaults"

[[rule]]
syscall = "*"
resource = "fs:docs/*"
answer = "always"
"""


def request(syscall: str, resource: str, kind: RequestKind = RequestKind.APPROVAL, **changes: Any) -> HumanRequest:
    made = HumanRequest(
        id=1,
        pid=2,
        kind=kind,
        action=1,
        call=0,
        step=0,
        syscall=syscall,
        resource=resource,
        right="write",
        digest="sha256:x",
        detail={},
        state=RequestState.PENDING,
        answer=None,
        always=False,
        answered_by=None,
        created=0.0,
        answered=None,
    )
    return dataclasses.replace(made, **changes)


def answers(text: str = POLICY, name: str = "/etc/alos/policy.toml") -> Answers:
    return Answers.parse(text, name, WS)


def test_the_first_rule_that_matches_answers() -> None:
    a = answers()
    by = "answers:policy.toml"
    assert a.answer(request("fs.write", f"fs:{WS}/.env")) == HumanAnswer("deny", "secrets stay as they are", by)
    assert a.answer(request("fs.write", f"fs:{WS}/src/deep/app.py")) == HumanAnswer("once", None, by)
    assert a.answer(request("fs.delete", f"fs:{WS}/src/app.py")) == HumanAnswer(
        "deny", "denied by rule 3 of /etc/alos/policy.toml", by
    )
    assert a.answer(request("human.ask", "human:console", RequestKind.QUESTION)) == HumanAnswer(
        "answer", "use the defaults", by
    )
    assert a.answer(request("fs.read", f"fs:{WS}/docs/a.md")) == HumanAnswer("always", None, by)


@pytest.mark.parametrize(
    "unmatched",
    [
        request("fs.write", f"fs:{WS}/README.md"),  # no rule names it
        request("fs.write", f"fs:{WS}/srcx/a.py"),  # a subtree ends on a component boundary
        request("fs.write", "fs:/elsewhere/src/a.py"),  # relative patterns are in the workspace
        request("shell.run", "shell:/usr/bin/git status"),
        request("fs.write", f"fs:{WS}/src/a.py", state=RequestState.APPROVED),  # answered already
    ],
)
def test_anything_unmatched_stays_for_a_person(unmatched: HumanRequest) -> None:
    assert answers().answer(unmatched) is None


def test_a_rule_fits_only_the_kinds_its_answer_fits() -> None:
    a = answers('[[rule]]\nsyscall = "*"\nanswer = "once"\n')
    assert a.answer(request("fs.write", f"fs:{WS}/a")) is not None
    assert a.answer(request("human.ask", "human:console", RequestKind.QUESTION)) is None  # no text to give
    d = answers('[[rule]]\nsyscall = "*"\nanswer = "deny"\n')
    assert d.answer(request("human.ask", "human:console", RequestKind.QUESTION)) is not None  # declined
    q = answers('[[rule]]\nsyscall = "*"\nanswer = "answer"\ntext = "yes"\n')
    assert q.answer(request("fs.write", f"fs:{WS}/a")) is None


@pytest.mark.parametrize("verdict", ["once", "deny"])
def test_a_recovery_is_answered_only_by_a_rule_that_names_it(verdict: str) -> None:
    crashed = request("fs.write", f"fs:{WS}/a", RequestKind.RECOVERY)
    broad = answers(f'[[rule]]\nsyscall = "*"\nanswer = "{verdict}"\n')
    assert broad.answer(crashed) is None  # a rule for approvals never decides a retry
    named = answers(f'[[rule]]\nsyscall = "fs.write"\nkind = "recovery"\nanswer = "{verdict}"\n')
    got = named.answer(crashed)
    assert got is not None and got.verdict == verdict
    assert named.answer(request("fs.write", f"fs:{WS}/a")) is None  # and nothing but recoveries


BAD = [
    ('[[rule]]\nsyscall = "fs.write"\nanswer = "once"\nresorce = "fs:a"\n', "rule 1: unknown key 'resorce'"),
    ('[[rule]]\nsyscall = "fs.write"\nanswer = "yes"\n', "rule 1: answer is 'yes'; give one of once, always"),
    ('[[rule]]\nsyscall = "fs.write"\n', "rule 1: answer is none"),
    ('[[rule]]\nanswer = "once"\n', "rule 1: name the syscall it answers"),
    ('[[rule]]\nsyscall = "fs write"\nanswer = "once"\n', "rule 1: no syscall is named 'fs write'"),
    ('[[rule]]\nsyscall = "fs.read"\nanswer = "once"\nresource = "fs:a*b"\n', "rule 1: bad resource pattern"),
    ('[[rule]]\nsyscall = "fs.read"\nanswer = "once"\nresource = "disk:/a"\n', "rule 1: bad resource pattern"),
    ('[[rule]]\nsyscall = "fs.read"\nanswer = "once"\nkind = "maybe"\n', "rule 1: kind 'maybe' is not one of"),
    (
        '[[rule]]\nsyscall = "human.ask"\nanswer = "once"\nkind = "question"\n',
        "kind 'question' is answered 'deny', 'answer', never 'once'",
    ),
    (
        '[[rule]]\nsyscall = "*"\nanswer = "always"\nkind = "recovery"\n',
        "kind 'recovery' is answered 'once', 'deny', never 'always'",
    ),
    ('[[rule]]\nsyscall = "*"\nanswer = "answer"\nkind = "approval"\ntext = "x"\n', "never 'answer'"),
    ('[[rule]]\nsyscall = "human.ask"\nanswer = "answer"\n', 'rule 1: answer = "answer" needs the text'),
    ('[[rule]]\nsyscall = "human.ask"\nanswer = "answer"\nreason = "r"\ntext = "t"\n', "gives text, not a reason"),
    ('[[rule]]\nsyscall = "fs.read"\nanswer = "once"\ntext = "t"\n', "rule 1: text is the answer to a question"),
    ('[[rule]]\nsyscall = "fs.read"\nanswer = "once"\n[[rule]]\nsyscall = 3\nanswer = "once"\n', "rule 2: syscall"),
    ("rules = []\n", "unknown key 'rules'; the file holds [[rule]] tables only"),
    ('[rule]\nsyscall = "*"\nanswer = "once"\n', "'rule' must be an array of tables"),
    ("[[rule]\n", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "says"), BAD, ids=[b[1][:30] for b in BAD])
def test_a_bad_file_is_refused_naming_the_file_and_the_rule(text: str, says: str) -> None:
    with pytest.raises(Invalid) as err:
        answers(text, "policy.toml")
    assert err.value.message.startswith("policy.toml:") and says in err.value.message


def test_load_reads_a_file_and_can_check_syscall_names(tmp_path: Path) -> None:
    path = tmp_path / "unattended.toml"
    path.write_text('[[rule]]\nsyscall = "fs.wirte"\nanswer = "once"\n')
    assert Answers.load(path, WS).by == "answers:unattended.toml"
    with pytest.raises(Invalid, match="unattended.toml:rule 1: no syscall is named 'fs.wirte'"):
        Answers.load(path, WS, syscalls={"fs.write", "fs.read"})
    with pytest.raises(NotFound, match="missing.toml does not exist"):
        Answers.load(tmp_path / "missing.toml", WS)
    with pytest.raises(Invalid, match="cannot be read"):
        Answers.load(tmp_path, WS)
    (tmp_path / "latin1.toml").write_bytes(b"# caf\xe9\n")
    with pytest.raises(Invalid, match="not UTF-8"):
        Answers.load(tmp_path / "latin1.toml", WS)


def test_tell_goes_to_the_inner_human_a_function_or_is_kept() -> None:
    inner = RecordedHuman()
    Answers((), "answers:x", tell=inner).tell(1, "to the inner human")
    assert inner.told == [(1, "to the inner human")]
    shown: list[tuple[int, str]] = []
    Answers((), "answers:x", tell=lambda pid, text: shown.append((pid, text))).tell(2, "to a function")
    assert shown == [(2, "to a function")]
    kept = Answers((), "answers:x")
    kept.tell(3, "kept")
    assert kept.told == [(3, "kept")]


def test_the_runtime_carries_out_each_answer_and_audits_who_gave_it(tmp_path: Path) -> None:
    ws = os.path.realpath(tmp_path / "ws")
    os.mkdir(ws)
    turns = [
        {"tool_calls": [{"name": "fs_write", "arguments": {"path": "src/a.py", "content": "a = 1\n"}}]},
        {"tool_calls": [{"name": "fs_write", "arguments": {"path": ".env", "content": "X=1\n"}}]},
        {"tool_calls": [{"name": "human_ask", "arguments": {"question": "which port?"}}]},
        {"tool_calls": [{"name": "fs_write", "arguments": {"path": "README.md", "content": "unmatched\n"}}]},
    ]
    script = tmp_path / "turns.jsonl"
    script.write_text("".join(json.dumps(t) + "\n" for t in turns))
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    human = Answers.load(policy, ws)
    fs = MemoryFiles(directories=[ws + "/src"])
    rt = alos.open(str(tmp_path / "store" / "s.db"), host=True, providers=Providers(files=fs, human=human))
    try:
        grants = [parse_grant("fs:*=write", Effect.ASK, ws)]
        pid = asyncio.run(rt.spawn("base", "g", workspace=ws, model=f"script:{script}", grants=grants))
        asyncio.run(rt.run())
        while asyncio.run(rt.settle()):  # the host answers what the rules answer, through dispatch()
            asyncio.run(rt.run())
        [left] = rt.requests()
        results = [m["content"] for m in rt.context(pid) if m["role"] == "tool"]
        answered = [(q.syscall, q.state.value, q.answered_by) for q in rt.requests(None) if q.answered_by]
    finally:
        rt.close()
    assert left.resource == f"fs:{ws}/README.md"  # no rule: waits for a person
    assert fs.read(ws + "/src/a.py", 0, 100) == (b"a = 1\n", 6)
    assert results[1].startswith("denied:") and "secrets stay as they are" in results[1]
    assert results[2] == "use the defaults"
    assert answered == [
        ("fs.write", "approved", "answers:policy.toml"),
        ("fs.write", "rejected", "answers:policy.toml"),
        ("human.ask", "answered", "answers:policy.toml"),
    ]


def test_who_answered_is_the_file_name_escaped() -> None:
    assert Answers.parse("", "/etc/alos/a\x1b[2Jb.toml", WS).by == "answers:a\\x1b[2Jb.toml"
    assert Answers.parse("", "policy.toml", WS).rules == ()  # no rule: every request waits for a person


class HostDies(BaseException):
    """The host stops in the middle of an effect (as SIGKILL would)."""


class DyingFiles(MemoryFiles):
    """Memory files whose next write stops the host after dispatch() journaled its intent."""

    dying = True

    def write(self, path: str, data: bytes) -> None:
        if self.dying:
            raise HostDies
        super().write(path, data)


@pytest.mark.parametrize("retry", [False, True])
def test_a_recovery_after_a_crash_waits_for_a_person_unless_a_rule_names_recoveries(
    tmp_path: Path, retry: bool
) -> None:
    ws = os.path.realpath(tmp_path / "ws")
    os.mkdir(ws)
    script = tmp_path / "turns.jsonl"
    script.write_text(
        json.dumps({"tool_calls": [{"name": "fs_write", "arguments": {"path": "out.txt", "content": "x"}}]})
    )
    store = str(tmp_path / "store" / "s.db")
    fs = DyingFiles(directories=[ws])
    rt = alos.open(store, host=True, providers=Providers(files=fs))
    grants = [parse_grant("fs:*=write", Effect.ALLOW, ws)]
    asyncio.run(rt.spawn("base", "g", workspace=ws, model=f"script:{script}", grants=grants))
    with pytest.raises(BaseExceptionGroup):
        asyncio.run(rt.run())
    rt.close()
    fs.dying = False
    policy = '[[rule]]\nsyscall = "*"\nanswer = "once"\n'  # approves every approval, never a retry
    if retry:
        policy += '[[rule]]\nsyscall = "fs.write"\nkind = "recovery"\nanswer = "once"\n'
    rt = alos.open(store, host=True, providers=Providers(files=fs, human=Answers.parse(policy, "p.toml", ws)))
    try:
        rt.recover()
        asyncio.run(rt.run())
        settled = asyncio.run(rt.settle())
        asyncio.run(rt.run())
        left = rt.requests()
    finally:
        rt.close()
    assert settled == (1 if retry else 0)
    assert [r.kind for r in left] == ([] if retry else [RequestKind.RECOVERY])
    assert fs.peek(ws + "/out.txt").exists is retry
