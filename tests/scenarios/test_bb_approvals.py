"""Black-box: human approval (ask/approve/deny/answer/resume) driven through the CLI."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
from pathlib import Path

import pytest

import alos as alos_api
from tests.scenarios.bb_support import ALOS, Env, alos, call, copy_env, make_env, result_texts, turn

ESC = "\x1b"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def ok_writes(e, path: Path | None = None) -> list[dict]:
    recs = [r for r in e.audit() if r["syscall"] == "fs.write" and r["outcome"] == "ok"]
    if path is not None:
        recs = [r for r in recs if r["resource"].endswith(str(path))]
    return recs


def model_calls(e) -> int:
    return sum(1 for r in e.audit() if r["syscall"] == "model.call")


def test_ask_parks_shows_exact_request_and_performs_nothing(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    content = "line1\nline2 ünïcödé\n"
    cp = e.run([turn(call("fs_write", path="out.txt", content=content))], "--ask", "fs:*=write")
    assert cp.returncode == 3, cp.stdout + cp.stderr
    assert not (e.ws / "out.txt").exists()
    [req] = e.approvals()
    assert req["kind"] == "approval" and req["state"] == "pending"
    assert req["syscall"] == "fs.write" and req["right"] == "write" and req["pid"] == 1
    assert req["resource"] == f"fs:{e.ws.resolve()}/out.txt"
    assert req["detail"]["bytes"] == len(content.encode())
    assert req["detail"]["digest"] == sha(content.encode())
    [p] = e.ps()
    assert p["state"] == "waiting" and p["wait"] == "human"
    parked = [r for r in e.audit() if r["decision"] == "ask"]
    assert parked and parked[-1]["outcome"] == "parked"


def test_overwrite_request_shows_the_current_digest(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    (e.ws / "cfg.txt").write_bytes(b"old contents")
    e.run([turn(call("fs_write", path="cfg.txt", content="new contents"))], "--ask", "fs:*=write")
    [req] = e.approvals()
    text = repr(req["detail"])
    assert sha(b"old contents") in text, req
    assert (e.ws / "cfg.txt").read_bytes() == b"old contents"
    human = e.cmd("approvals").stdout
    assert sha(b"old contents")[:20] in human.replace("\n", "").replace("│", "").replace(" ", "")


def test_approve_once_then_resume_does_not_call_the_model_again_and_writes_once(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    e.run(
        [turn(call("fs_write", path="out.txt", content="v1")), turn(call("human_tell", text="done"))],
        "--ask",
        "fs:*=write",
    )
    before = model_calls(e)
    assert e.cmd("approve", "1").returncode == 0
    assert not (e.ws / "out.txt").exists(), "approve alone must not perform the write"
    r = e.resume()
    assert r.returncode == 0, r.stdout + r.stderr
    assert (e.ws / "out.txt").read_text() == "v1"
    # run: 1 model call (turn 1). resume: turn 2 + the end of the script = 2 more; turn 1 is never asked again
    assert before == 1
    assert model_calls(e) == before + 2
    assert len(ok_writes(e)) == 1
    approved = [x for x in e.audit() if x["decision"] == "approved"]
    assert len(approved) == 1 and approved[0]["outcome"] == "ok"


def test_approve_once_does_not_cover_a_second_write_with_other_content(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    e.run(
        [
            turn(call("fs_write", path="out.txt", content="first")),
            turn(call("fs_write", path="out.txt", content="SECOND")),
        ],
        "--ask",
        "fs:*=write",
    )
    e.cmd("approve", "1")
    r = e.resume()
    assert r.returncode == 3, r.stdout + r.stderr
    assert (e.ws / "out.txt").read_text() == "first"
    [req] = e.approvals()
    assert req["id"] != 1 and req["detail"]["digest"] == sha(b"SECOND")


def test_approve_once_is_one_shot_even_for_identical_arguments(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    w = call("fs_write", path="out.txt", content="same")
    e.run([turn(w), turn(call("fs_delete", path="out.txt")), turn(w)], "--ask", "fs:*=write", "--allow", "fs:*=delete")
    e.cmd("approve", "1")
    r = e.resume()
    assert r.returncode == 3, "the identical second write must ask again: " + r.stdout
    assert not (e.ws / "out.txt").exists()
    assert len(e.approvals()) == 1


def test_two_calls_in_one_turn_approving_the_first_does_not_authorize_the_second(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    e.run(
        [turn(call("fs_write", path="a.txt", content="A"), call("fs_write", path="b.txt", content="B"))],
        "--ask",
        "fs:*=write",
    )
    reqs = e.approvals()
    assert len(reqs) == 1 and reqs[0]["resource"].endswith("/a.txt")
    e.cmd("approve", str(reqs[0]["id"]))
    r = e.resume()
    assert r.returncode == 3, r.stdout
    assert (e.ws / "a.txt").read_text() == "A"
    assert not (e.ws / "b.txt").exists()
    [req2] = e.approvals()
    assert req2["resource"].endswith("/b.txt")


def test_approve_always_allows_that_file_again_but_not_another_file(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    e.run(
        [
            turn(call("fs_write", path="log.txt", content="one")),
            turn(call("fs_write", path="log.txt", content="two")),
            turn(call("fs_write", path="other.txt", content="three")),
        ],
        "--ask",
        "fs:*=write",
    )
    assert e.cmd("approve", "1", "--always").returncode == 0
    r = e.resume()
    assert r.returncode == 3, r.stdout + r.stderr
    assert (e.ws / "log.txt").read_text() == "two"
    assert not (e.ws / "other.txt").exists()
    [req] = e.approvals()
    assert req["resource"].endswith("/other.txt")


def test_approve_always_does_not_widen_the_right(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    (e.ws / "log.txt").write_text("keep")
    e.run(
        [turn(call("fs_write", path="log.txt", content="one")), turn(call("fs_delete", path="log.txt"))],
        "--ask",
        "fs:*=write,delete",
    )
    e.cmd("approve", "1", "--always")
    r = e.resume()
    assert r.returncode == 3
    assert (e.ws / "log.txt").exists()
    [req] = e.approvals()
    assert req["right"] == "delete"


def test_deny_with_reason_reaches_the_model_and_nothing_is_written(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    e.run(
        [turn(call("fs_write", path="out.txt", content="x")), turn(call("human_tell", text="ok"))],
        "--ask",
        "fs:*=write",
    )
    d = e.cmd("deny", "1", "--reason", "not on a friday")
    assert d.returncode == 0, d.stderr
    r = e.resume()
    assert r.returncode == 0, r.stdout + r.stderr
    assert not (e.ws / "out.txt").exists()
    texts = result_texts(r.stdout)
    assert texts and texts[0].startswith("denied") and "not on a friday" in texts[0]
    rej = [x for x in e.audit() if x["decision"] == "rejected"]
    assert rej and "not on a friday" in str(rej[-1]["detail"])


def test_a_denied_request_cannot_then_be_approved(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    e.run([turn(call("fs_write", path="out.txt", content="x"))], "--ask", "fs:*=write")
    assert e.cmd("deny", "1").returncode == 0
    a = e.cmd("approve", "1")
    assert a.returncode != 0 and a.stderr.strip()
    e.resume()
    assert not (e.ws / "out.txt").exists()


def test_answer_twice_and_unknown_ids_fail_clearly(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    e.run([turn(call("human_ask", question="colour?"))])
    assert e.cmd("answer", "1", "blue").returncode == 0
    again = e.cmd("answer", "1", "red")
    assert again.returncode != 0 and "1" in again.stderr and "Traceback" not in again.stderr
    for args in (("answer", "4242", "x"), ("approve", "4242"), ("deny", "4242")):
        r = e.cmd(*args)
        assert r.returncode != 0 and "4242" in r.stderr and "Traceback" not in r.stderr
    [req] = e.approvals(all_=True)
    assert req["answer"] == "blue"
    r = e.resume()
    assert "blue" in result_texts(r.stdout)
    assert "red" not in result_texts(r.stdout)


def test_the_answer_is_audited_with_who_answered(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    e.run([turn(call("human_ask", question="proceed?"))])
    e.cmd("answer", "1", "yes go")
    [req] = e.approvals(all_=True)
    assert req["answered_by"]
    recs = [r for r in e.audit() if "yes go" in str(r["detail"])]
    assert recs and req["answered_by"] in str(recs[0]["detail"])


def test_approve_on_a_question_or_answer_on_an_approval_does_not_authorize(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    e.run([turn(call("fs_write", path="out.txt", content="x"))], "--ask", "fs:*=write")
    r = e.cmd("answer", "1", "yes")
    e.resume()
    assert r.returncode != 0, "answering an approval request with text must be refused"
    assert not (e.ws / "out.txt").exists(), "answering an approval must not write"
    assert e.approvals()[0]["state"] == "pending"


def test_approvals_output_escapes_terminal_control_sequences(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    evil = f"{ESC}]0;pwned{chr(7)}{ESC}[2J{ESC}[31mRED\r\noverwrite\u202eevil\x00\x08"
    e.run([turn(call("fs_write", path=f"x{ESC}[1m.txt", content=evil))], "--ask", "fs:*=write")
    out = e.cmd("approvals")
    assert out.returncode == 0
    for bad in (ESC, "\x07", "\r", "\x00", "\x08", "\u202e"):
        assert bad not in out.stdout, repr(bad)
    # the json form is valid JSON, and its preview is escaped too
    [req] = e.approvals()
    assert ESC not in req["detail"].get("preview", "")
    assert req["detail"]["bytes"] == len(evil.encode())


def test_human_question_with_escapes_is_escaped_in_approvals(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    e.run([turn(call("human_ask", question=f"ok?{ESC}[2J{ESC}]52;c;ZXZpbA=={chr(7)}"))])
    out = e.cmd("approvals").stdout
    assert ESC not in out and "\x07" not in out


def test_run_and_audit_human_output_do_not_emit_raw_escapes_from_the_agent(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    cp = e.run(
        [
            turn(
                call("fs_write", path="o.txt", content=f"{ESC}[2J"),
                call("human_tell", text=f"hi{ESC}]0;title{chr(7)}"),
                content=f"model says {ESC}[31m",
            )
        ],
        "--allow",
        "fs:*=write",
        json_out=False,
    )
    assert cp.returncode == 0, cp.stderr
    assert ESC not in cp.stdout and "\x07" not in cp.stdout
    assert ESC not in e.cmd("audit").stdout


def test_long_content_preview_is_short_but_byte_count_and_digest_exact(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    content = "A" * 200_000 + "TAILMARK"
    e.run([turn(call("fs_write", path="big.txt", content=content))], "--ask", "fs:*=write")
    [req] = e.approvals()
    assert req["detail"]["bytes"] == len(content)
    assert req["detail"]["digest"] == sha(content.encode())
    assert len(e.cmd("approvals").stdout) < 5000
    assert "TAILMARK" not in req["detail"].get("preview", "")


def test_concurrent_approves_of_the_same_request_exactly_one_wins(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    e.run([turn(call("fs_write", path="out.txt", content="x"))], "--ask", "fs:*=write")
    n = 6
    procs: list[subprocess.Popen] = []
    barrier = threading.Barrier(n)
    results: list[int] = []

    def go(always: bool) -> None:
        barrier.wait()
        args = [ALOS, "approve", "1", "--store", str(e.store)] + (["--always"] if always else [])
        p = subprocess.run(args, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        results.append(p.returncode)

    threads = [threading.Thread(target=go, args=(i % 2 == 0,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results).count(0) == 1, results
    [req] = e.approvals(all_=True)
    assert req["state"] != "pending"
    assert e.cmd("audit", "verify").returncode == 0


def test_concurrent_approve_and_deny_exactly_one_wins_and_outcome_matches(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    e.run([turn(call("fs_write", path="out.txt", content="x"))], "--ask", "fs:*=write")
    barrier = threading.Barrier(2)
    rc: dict[str, int] = {}

    def go(verb: str) -> None:
        barrier.wait()
        p = subprocess.run(
            [ALOS, verb, "1", "--store", str(e.store)],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        rc[verb] = p.returncode

    ts = [threading.Thread(target=go, args=(v,)) for v in ("approve", "deny")]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert list(rc.values()).count(0) == 1, rc
    e.resume()
    written = (e.ws / "out.txt").exists()
    assert written == (rc["approve"] == 0)


def test_resume_twice_after_approval_writes_exactly_once(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    e.run(
        [turn(call("fs_write", path="out.txt", content="x")), turn(call("fs_write", path="count.txt", content="1"))],
        "--ask",
        "fs:out.txt=write",
        "--allow",
        "fs:count.txt=write",
    )
    e.cmd("approve", "1")
    r1 = e.resume()
    assert r1.returncode == 0, r1.stdout + r1.stderr
    r2 = e.resume()
    assert r2.returncode == 0, r2.stdout + r2.stderr
    assert len(ok_writes(e)) == 2
    assert e.ps()[0]["state"] == "exited"


def test_concurrent_resumes_write_exactly_once(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    e.run([turn(call("fs_write", path="out.txt", content="x"))], "--ask", "fs:*=write")
    e.cmd("approve", "1")
    procs = [
        subprocess.Popen(
            [ALOS, "resume", "--store", str(e.store), "--approve", "never", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(3)
    ]
    rcs = [p.wait(timeout=60) for p in procs]
    assert 0 in rcs, rcs
    assert len(ok_writes(e)) == 1
    assert e.cmd("audit", "verify").returncode == 0


def test_symlink_swapped_in_after_approval_does_not_redirect_the_write(tmp_path: Path) -> None:
    """TOCTOU: the human approved writing ws/out.txt; before resume the path becomes a symlink out of the workspace."""
    e = make_env(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    e.run([turn(call("fs_write", path="out.txt", content="PWNED"))], "--ask", "fs:*=write")
    e.cmd("approve", "1")
    os.symlink(victim, e.ws / "out.txt")
    e.resume()
    assert victim.read_text() == "precious"


def test_file_changed_after_overwrite_approval_is_not_blindly_clobbered(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    (e.ws / "cfg.txt").write_text("v0")
    e.run([turn(call("fs_write", path="cfg.txt", content="v-agent"))], "--ask", "fs:*=write")
    e.cmd("approve", "1")
    (e.ws / "cfg.txt").write_text("v-human-edit")
    e.resume()
    assert (e.ws / "cfg.txt").read_text() == "v-human-edit"
    pending = e.approvals()
    assert len(pending) == 1 and "changed after request 1" in pending[0]["detail"]["note"]


def test_approve_with_wrong_store_does_not_touch_the_real_one(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    e.run([turn(call("fs_write", path="out.txt", content="x"))], "--ask", "fs:*=write")
    other = tmp_path / "other" / "store.db"
    r = alos("approve", "1", "--store", str(other))
    assert r.returncode != 0
    assert not other.exists()
    assert e.approvals()[0]["state"] == "pending"


@pytest.fixture(scope="module")
def asking(tmp_path_factory: pytest.TempPathFactory) -> Env:
    """A store with one write waiting for approval, built once: the tests below work on copies."""
    e = make_env(tmp_path_factory.mktemp("asking"))
    assert e.run([turn(call("fs_write", path="out.txt", content="x"))], "--ask", "fs:*=write").returncode == 3
    return e


# Each verb declares its own REQUEST_ID (click.IntRange(1, 2**63 - 1)) and meets one id of each way
# to fail it: not an integer ("abc"; "1.0" fails the same int()), below the range ("0"; "-1" is the
# same check), above it. The request's state is read in-process (what `alos approvals` shows).
@pytest.mark.parametrize("verb", ["approve", "deny", "answer"])
def test_non_integer_or_negative_request_id_fails_cleanly(tmp_path: Path, asking: Env, verb: str) -> None:
    e = copy_env(asking, tmp_path)
    for bad in ("abc", "0", "99999999999999999999999"):
        extra = ["some text"] if verb == "answer" else []
        r = alos(verb, "--store", str(e.store), "--", bad, *extra)
        assert r.returncode != 0, bad
        assert "Traceback" not in r.stderr, r.stderr
    rt = alos_api.open(str(e.store), create=False)
    try:
        assert [q.state.value for q in rt.requests(None)] == ["pending"]
    finally:
        rt.close()


def test_approving_one_process_request_does_not_authorize_an_identical_call_of_another(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    same = [turn(call("fs_write", path="out.txt", content="IDENTICAL"))]
    assert e.run(same, "--ask", "fs:*=write", script_name="a.jsonl").returncode == 3
    assert e.run(same, "--ask", "fs:*=write", script_name="b.jsonl").returncode == 3
    reqs = e.approvals()
    assert len(reqs) == 2 and {r["pid"] for r in reqs} == {1, 2}
    first = [r for r in reqs if r["pid"] == 1][0]
    assert e.cmd("approve", str(first["id"])).returncode == 0
    r = e.resume()
    assert r.returncode == 3, r.stdout + r.stderr
    assert len(ok_writes(e)) == 1
    [left] = e.approvals()
    assert left["pid"] == 2 and left["state"] == "pending"
    states = {p["pid"]: p["state"] for p in e.ps()}
    assert states == {1: "exited", 2: "waiting"}


def test_agent_text_in_run_output_is_escaped(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    cp = e.run(
        [turn(call("human_ask", question=f"q{ESC}[2J?"))],
        json_out=False,
    )
    assert cp.returncode == 3
    assert ESC not in cp.stdout and ESC not in cp.stderr
    e2 = make_env(tmp_path / "two")
    cp = e2.run([turn(call("proc_exit", status="ok", result=f"done{ESC}]0;owned{chr(7)}"))], json_out=False)
    assert cp.returncode == 0
    assert ESC not in cp.stdout and "\x07" not in cp.stdout
    assert ESC not in e2.cmd("ps").stdout
