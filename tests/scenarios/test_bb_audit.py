"""Black-box: the audit log as a user reads and checks it; tampering with the SQLite file."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from tests.scenarios.bb_support import Env, call, copy_env, make_env, turn


def populated(tmp_path: Path) -> Env:
    e = make_env(tmp_path)
    (e.ws / ".env").write_text("SECRET")
    cp = e.run(
        [
            turn(call("fs_read", path="README.md"), call("fs_read", path=".env")),
            turn(call("fs_write", path="a.txt", content="a"), call("fs_list")),
            turn(call("fs_read", path="missing.txt"), call("fs_write", path="b.txt", content="b")),
        ],
        "--allow",
        "fs:*=read,write",
        "--deny",
        "fs:.env=read",
        "--ask",
        "fs:b.txt=write",
    )
    assert cp.returncode == 3, cp.stdout + cp.stderr
    assert e.cmd("approve", "1").returncode == 0
    r = e.resume()
    assert r.returncode == 0, r.stdout + r.stderr
    return e


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Env:
    """The populated store, built once a module (three CLI starts); each test gets a copy."""
    return populated(tmp_path_factory.mktemp("populated"))


@pytest.fixture(scope="module")
def records(template: Env) -> list[dict]:
    """The template's audit records, as `alos audit --json` shows them: the tests pick what to tamper with here."""
    return template.audit()


@pytest.fixture
def e(template: Env, tmp_path: Path) -> Env:
    return copy_env(template, tmp_path)


def verify(e: Env):
    return e.cmd("audit", "verify")


def first_bad_named(out: str, seq: int) -> bool:
    return re.search(rf"\b{seq}\b", out) is not None


def test_audit_json_has_required_fields_and_records_every_decision_kind(e: Env) -> None:
    recs = e.audit()
    for r in recs:
        for k in ("seq", "pid", "syscall", "resource", "decision", "outcome"):
            assert k in r, (k, r)
    seqs = [r["seq"] for r in recs]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    decisions = {r["decision"] for r in recs}
    assert {"allow", "deny", "ask", "approved"} <= decisions, decisions
    outcomes = {r["outcome"] for r in recs}
    assert {"ok", "parked", "denied", "not_found"} <= outcomes, outcomes
    env_read = [r for r in recs if r["resource"].endswith("/.env")]
    assert env_read and env_read[0]["decision"] == "deny" and env_read[0]["outcome"] == "denied"
    assert "SECRET" not in repr(recs)
    assert verify(e).returncode == 0


def test_audit_pid_filter_only_shows_that_process(e: Env) -> None:
    e.run([turn(call("fs_read", path="README.md"))], "--allow", "fs:*=read", script_name="second.jsonl")
    pids = {p["pid"] for p in e.ps()}
    assert len(pids) == 2
    for pid in pids:
        recs = e.audit(pid=pid)
        assert recs and all(r["pid"] == pid for r in recs)


def test_audit_json_is_pure_json(e: Env) -> None:
    out = e.cmd("audit", "--json")
    assert out.returncode == 0
    for line in out.stdout.splitlines():
        assert line.strip()
        __import__("json").loads(line)


def test_verify_ok_on_an_untouched_store(e: Env) -> None:
    v = verify(e)
    assert v.returncode == 0, v.stdout + v.stderr


def tamper(e: Env, *sql: str, params: tuple = ()) -> None:
    con = sqlite3.connect(e.store)
    for s in sql:
        con.execute(s, params) if params and "?" in s else con.execute(s)
    con.commit()
    con.close()


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("decision", "'allow'"),
        ("outcome", "'ok'"),
        ("resource", "'fs:/nothing'"),
        ("pid", "99"),
        ("detail", "'{}'"),
        ("time", "time + 1"),
        ("right", "'admin'"),
        ("syscall", "'fs.list'"),
    ],
)
def test_verify_detects_an_edited_field_and_names_the_record(
    e: Env, records: list[dict], column: str, value: str
) -> None:
    target = [r for r in records if r["decision"] == "deny"][0]["seq"]
    tamper(e, f'UPDATE audit SET "{column}" = {value} WHERE seq = {target}')
    v = verify(e)
    assert v.returncode != 0, v.stdout
    assert first_bad_named(v.stdout + v.stderr, target), v.stdout + v.stderr


def test_verify_names_the_first_of_two_edited_records(e: Env) -> None:
    tamper(e, "UPDATE audit SET outcome='x' WHERE seq=7", "UPDATE audit SET outcome='x' WHERE seq=4")
    v = verify(e)
    assert v.returncode != 0
    text = v.stdout + v.stderr
    assert first_bad_named(text, 4), text


def test_verify_detects_a_deleted_middle_record(e: Env, records: list[dict]) -> None:
    n = len(records)
    mid = n // 2
    tamper(e, f"DELETE FROM audit WHERE seq={mid}")
    v = verify(e)
    assert v.returncode != 0 and first_bad_named(v.stdout + v.stderr, mid), v.stdout + v.stderr


def test_verify_detects_a_deleted_last_record(e: Env, records: list[dict]) -> None:
    n = max(r["seq"] for r in records)
    tamper(e, f"DELETE FROM audit WHERE seq={n}")
    v = verify(e)
    assert v.returncode != 0, v.stdout
    assert first_bad_named(v.stdout + v.stderr, n), v.stdout + v.stderr


def test_verify_detects_deleting_the_first_record(e: Env) -> None:
    tamper(e, "DELETE FROM audit WHERE seq=1")
    v = verify(e)
    assert v.returncode != 0 and first_bad_named(v.stdout + v.stderr, 1)


def test_verify_detects_wiping_the_whole_log(e: Env) -> None:
    tamper(e, "DELETE FROM audit")
    v = verify(e)
    assert v.returncode != 0, v.stdout


def test_verify_detects_two_records_swapped(e: Env) -> None:
    tamper(
        e,
        "UPDATE audit SET seq=-3 WHERE seq=3",
        "UPDATE audit SET seq=3 WHERE seq=4",
        "UPDATE audit SET seq=4 WHERE seq=-3",
    )
    v = verify(e)
    assert v.returncode != 0 and first_bad_named(v.stdout + v.stderr, 3), v.stdout + v.stderr


def test_verify_detects_an_inserted_forged_record(e: Env) -> None:
    con = sqlite3.connect(e.store)
    last = con.execute("SELECT seq, digest FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    con.execute(
        'INSERT INTO audit (seq, time, pid, syscall, resource, "right", decision, outcome, detail, prev, digest) '
        "VALUES (?, 0, 1, 'fs.write', 'fs:/etc/shadow', 'write', 'allow', 'ok', '{}', ?, 'sha256:' || hex(randomblob(32)))",
        (last[0] + 1, last[1]),
    )
    con.commit()
    con.close()
    v = verify(e)
    assert v.returncode != 0 and first_bad_named(v.stdout + v.stderr, last[0] + 1), v.stdout + v.stderr


def test_a_tampered_log_is_not_silently_extended_by_resume(e: Env, records: list[dict]) -> None:
    """After tampering, further runs must not 'heal' the chain: verify still fails."""
    target = [r for r in records if r["decision"] == "deny"][0]["seq"]
    tamper(e, f"UPDATE audit SET outcome='ok', decision='allow' WHERE seq={target}")
    e.run([turn(call("fs_read", path="README.md"))], "--allow", "fs:*=read", script_name="more.jsonl")
    v = verify(e)
    assert v.returncode != 0 and first_bad_named(v.stdout + v.stderr, target), v.stdout + v.stderr


def test_verify_on_a_store_without_the_audit_table_fails_clearly(e: Env) -> None:
    tamper(e, "DROP TABLE audit")
    v = verify(e)
    assert v.returncode != 0
    assert "Traceback" not in v.stderr and "internal error" not in v.stderr, v.stderr[:500]


def test_audit_pid_with_huge_number_fails_cleanly(e: Env) -> None:
    r = e.cmd("audit", "--pid", "99999999999999999999999")
    assert "Traceback" not in r.stderr, r.stderr[-300:]
