"""Black-box: grant syntax, rights per tool, deny-dominates, default deny, denial text."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.scenarios.bb_support import alos, call, make_env, result_texts, turn, write_script

MALFORMED = [
    ("fs:*=reed", "reed"),
    ("fs:*", "fs:*"),
    ("fs:*=", "fs:*="),
    ("=read", "=read"),
    ("bogus:*=read", "bogus"),
    ("fs:*=READ", "READ"),
    ("fs:*=read;write", "read;write"),
    ("fs:=read", "fs:=read"),
]


# Every malformed spec under --deny (a deny dropped silently would leave what it meant to take),
# --allow and --ask once each: the three flags go through one parser (cli/grants.py parse_grants,
# rights.parse_grant) in which the flag only names the effect, so the rest of the matrix repeated it.
@pytest.mark.parametrize(
    ("flag", "spec", "bad_part"),
    [("--deny", spec, bad) for spec, bad in MALFORMED] + [("--allow", *MALFORMED[0]), ("--ask", *MALFORMED[5])],
)
def test_malformed_grant_is_rejected_before_anything_runs(tmp_path: Path, flag: str, spec: str, bad_part: str) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    script = write_script(tmp_path / "s.jsonl", [turn(call("fs_write", path="made.txt", content="x"))])
    store = tmp_path / "st" / "store.db"
    cp = alos(
        "run",
        "base",
        "g",
        "--workspace",
        str(ws),
        "--store",
        str(store),
        "--model",
        f"script:{script}",
        "--allow",
        "fs:*=write",
        flag,
        spec,
        "--approve",
        "never",
    )
    assert cp.returncode != 0
    assert bad_part in cp.stderr, cp.stderr
    assert "Traceback" not in cp.stderr
    assert not store.exists() and not (tmp_path / "st").exists()
    assert not (ws / "made.txt").exists()
    assert list(ws.iterdir()) == []


def test_empty_right_between_commas_is_rejected(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    cp = e.run([], "--allow", "fs:*=read,,write")
    assert cp.returncode != 0
    assert not e.store.exists()


def test_deny_dominates_allow_even_when_allow_is_more_specific(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    (e.ws / ".env").write_text("API_KEY=hunter2")
    (e.ws / "src").mkdir()
    (e.ws / "src" / "a.py").write_text("print(1)")
    cp = e.run(
        [
            turn(
                call("fs_read", path=".env"),
                call("fs_read", path="src/a.py"),
                call("fs_write", path="src/a.py", content="x"),
            )
        ],
        "--deny",
        "fs:*=write",
        "--allow",
        "fs:.env=read",
        "--allow",
        "fs:src/a.py=read,write",
        "--deny",
        "fs:.env=read",
    )
    texts = result_texts(cp.stdout)
    assert texts[0].startswith("denied") and "hunter2" not in cp.stdout
    assert texts[1] == "print(1)"
    assert texts[2].startswith("denied")
    assert (e.ws / "src" / "a.py").read_text() == "print(1)"


def test_deny_dominates_ask(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    cp = e.run([turn(call("fs_write", path="x.txt", content="x"))], "--ask", "fs:*=write", "--deny", "fs:x.txt=write")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert result_texts(cp.stdout)[0].startswith("denied")
    assert e.approvals() == []
    assert not (e.ws / "x.txt").exists()


def test_nothing_matching_means_deny(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    cp = e.run(
        [
            turn(
                call("fs_read", path="README.md"),
                call("fs_list"),
                call("fs_write", path="new.txt", content="x"),
                call("fs_mkdir", path="d"),
                call("fs_delete", path="README.md"),
            )
        ]
    )
    assert cp.returncode == 0, cp.stderr
    texts = result_texts(cp.stdout)
    assert len(texts) == 5 and all(t.startswith("denied") for t in texts), texts
    assert (e.ws / "README.md").exists() and not (e.ws / "new.txt").exists() and not (e.ws / "d").exists()


@pytest.mark.parametrize(
    ("tool", "args", "needed", "others"),
    [
        ("fs_list", {"path": "."}, "list", "read,write,delete"),
        ("fs_read", {"path": "README.md"}, "read", "list,write,delete"),
        ("fs_write", {"path": "w.txt", "content": "x"}, "write", "read,list,delete"),
        ("fs_mkdir", {"path": "dd"}, "write", "read,list,delete"),
        ("fs_delete", {"path": "README.md"}, "delete", "read,list,write"),
    ],
)
def test_each_fs_tool_needs_exactly_its_right(tmp_path: Path, tool: str, args: dict, needed: str, others: str) -> None:
    e = make_env(tmp_path)
    cp = e.run([turn(call(tool, **args))], "--allow", f"fs:*={others}")
    t = result_texts(cp.stdout)[0]
    assert t.startswith("denied"), t
    assert needed in t and "fs:" in t
    e2 = make_env(tmp_path / "b")
    cp = e2.run([turn(call(tool, **args))], "--allow", f"fs:*={needed}")
    t = result_texts(cp.stdout)[0]
    assert not t.startswith("denied"), t


def test_denial_names_the_missing_right_and_the_absolute_resource(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    cp = e.run([turn(call("fs_write", path="sub/../x.txt", content="x"))], "--allow", "fs:*=read")
    t = result_texts(cp.stdout)[0]
    assert t.startswith("denied:")
    assert "write" in t
    assert f"fs:{e.ws.resolve()}/x.txt" in t
    rec = [r for r in e.audit() if r["syscall"] == "fs.write"]
    assert rec and rec[0]["decision"] == "deny" and rec[0]["outcome"] == "denied"


def test_subtree_grant_covers_nested_but_not_siblings_or_prefix_lookalikes(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    for d in ("src/a/b", "srcx", "other"):
        (e.ws / d).mkdir(parents=True)
    (e.ws / "src/a/b/deep.txt").write_text("deep")
    (e.ws / "srcx/f.txt").write_text("lookalike")
    (e.ws / "other/f.txt").write_text("other")
    cp = e.run(
        [
            turn(
                call("fs_read", path="src/a/b/deep.txt"),
                call("fs_read", path="srcx/f.txt"),
                call("fs_read", path="other/f.txt"),
            )
        ],
        "--allow",
        "fs:src/*=read",
    )
    texts = result_texts(cp.stdout)
    assert texts[0] == "deep"
    assert texts[1].startswith("denied") and texts[2].startswith("denied")


def test_root_can_call_the_model_and_tell_the_human_without_grants(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    cp = e.run([turn(call("human_tell", text="hello human")), turn(call("proc_exit", status="ok", result="r"))])
    assert cp.returncode == 0, cp.stdout + cp.stderr
    texts = result_texts(cp.stdout)
    assert not texts[0].startswith("denied")
    assert e.ps()[0]["exit"] == "ok"


def test_a_deny_on_model_execute_cannot_starve_or_escalate(tmp_path: Path) -> None:
    """--deny 'fs:*=admin' style oddities are accepted as grants but never give more than asked."""
    e = make_env(tmp_path)
    cp = e.run([turn(call("fs_read", path="README.md"))], "--allow", "fs:README.md=admin")
    t = result_texts(cp.stdout)[0]
    assert t.startswith("denied") and "read" in t
