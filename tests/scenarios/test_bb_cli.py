"""Black-box: exit codes, --json purity, scripts, ps, help, demo, and hostile store files."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from alos.cli import main
from tests.scenarios.bb_support import Env, alos, call, json_lines, make_env, result_texts, turn, write_script

COMMANDS = ["run", "approvals", "approve", "deny", "answer", "resume", "ps", "audit", "demo"]


# -- help -------------------------------------------------------------------------------------


# In-process, through the entry point `alos` runs (alos.cli.main): the help is click's, and a CLI
# start a command (half a second of CPU under coverage) would test only that Python starts.
@pytest.mark.parametrize("cmd", [[], *[[c] for c in COMMANDS], ["audit", "verify"]])
def test_every_command_has_help(cmd: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([*cmd, "--help"])
    out, err = capsys.readouterr()
    assert done.value.code == 0, err
    assert "Usage:" in out


# -- exit codes -------------------------------------------------------------------------------


def test_exit_0_on_ok_exit_and_1_on_failed_exit(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    ok = e.run([turn(call("proc_exit", status="ok", result="fine"))])
    assert ok.returncode == 0, ok.stdout + ok.stderr
    e2 = make_env(tmp_path / "b")
    bad = e2.run([turn(call("proc_exit", status="failed", result="broke"))])
    assert bad.returncode == 1, bad.stdout + bad.stderr
    [p] = e2.ps()
    assert p["state"] == "exited" and p["exit"] == "failed" and p["result"] == "broke"


def test_script_that_runs_out_exits_ok(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    r = e.run([turn(content="just thinking"), turn(content="still thinking")])
    assert r.returncode == 0, r.stdout + r.stderr
    [p] = e.ps()
    assert p["state"] == "exited" and p["exit"] == "ok"


def test_exit_3_without_tty_even_with_default_prompt(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    r = e.run([turn(call("human_ask", question="hi?"))], approve="prompt")
    assert r.returncode == 3, r.stdout + r.stderr
    [p] = e.ps()
    assert p["state"] == "waiting" and p["wait"] == "human"


def test_approve_always_mode_performs_the_asked_write(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    r = e.run([turn(call("fs_write", path="o.txt", content="auto"))], "--ask", "fs:*=write", approve="always")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (e.ws / "o.txt").read_text() == "auto"
    assert any(x["decision"] == "approved" for x in e.audit())


def test_approve_always_mode_does_not_answer_questions_with_made_up_text(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    r = e.run([turn(call("human_ask", question="What is the password?"))], approve="always")
    # either it stops and waits (3) or the answer it gives is visibly not a human's
    if r.returncode == 0:
        assert e.approvals(all_=True)[0]["answered_by"] != "root"
    else:
        assert r.returncode == 3


def test_invalid_tool_arguments_do_not_crash_the_run(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    r = e.run(
        [
            turn(
                call("fs_read", path=123),
                call("fs_read"),
                call("fs_write", path="x.txt", content={"not": "a string"}),
                call("fs_read", path="README.md", offset=-5, length="ten"),
                call("proc_exit", status="maybe"),
                call("no_such_tool", x=1),
                call("fs_mkdir", path="d", parents="yes"),
            ),
            turn(call("fs_read", path="README.md")),
        ],
        "--allow",
        "fs:*=read,write",
    )
    assert r.returncode == 0, r.stdout + r.stderr
    texts = result_texts(r.stdout)
    assert len(texts) == 8, texts
    assert all(t.startswith("[repair 1 of 3] invalid") for t in texts[:7]), texts  # one turn: one repair
    assert texts[7] == "hello readme\n"
    assert not (e.ws / "x.txt").exists() and not (e.ws / "d").exists()


@pytest.mark.parametrize("offset", [2**63, 10**30])
def test_huge_read_offset_is_a_tool_result_not_a_crash(tmp_path: Path, offset: int) -> None:
    e = make_env(tmp_path)
    r = e.run(
        [turn(call("fs_read", path="README.md", offset=offset)), turn(call("human_tell", text="still alive"))],
        "--allow",
        "fs:*=read",
    )
    texts = result_texts(r.stdout)
    assert len(texts) == 2, (texts, e.ps())
    assert r.returncode == 0
    assert e.ps()[0]["exit"] == "ok"


def test_unknown_tool_call_is_audited(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    e.run([turn(call("rm_rf", path="/"))])
    assert any("rm_rf" in json.dumps(r) for r in e.audit())


def test_huge_write_argument_is_handled(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    big = "x" * 5_000_000
    r = e.run(
        [turn(call("fs_write", path="big.txt", content=big)), turn(call("fs_read", path="big.txt", length=10))],
        "--allow",
        "fs:*=read,write",
    )
    assert r.returncode == 0, r.stderr[-500:]
    written, read = result_texts(r.stdout)
    assert json.loads(written)["bytes"] == 5_000_000 and read == "x" * 10
    assert (e.ws / "big.txt").read_text() == big
    assert e.cmd("audit", "verify").returncode == 0


def test_fs_read_offset_and_length(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    (e.ws / "n.txt").write_text("0123456789")
    r = e.run([turn(call("fs_read", path="n.txt", offset=3, length=4))], "--allow", "fs:*=read")
    assert result_texts(r.stdout) == ["3456"]


# -- --json purity ----------------------------------------------------------------------------


def test_run_json_stdout_is_only_json_even_with_human_prompts_and_tells(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    r = e.run(
        [
            turn(
                call("human_tell", text="not json {"),
                call("fs_write", path="a.txt", content="x\ny"),
                content="model prose }",
            )
        ],
        "--ask",
        "fs:*=write",
    )
    assert r.returncode == 3
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert lines
    for ln in lines:
        assert isinstance(json.loads(ln), dict), ln
    assert "alos approve" not in r.stdout


def test_resume_json_stdout_is_only_json(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    e.run([turn(call("human_ask", question="q?")), turn(call("human_tell", text="told you"))])
    e.cmd("answer", "1", "an answer")
    r = e.resume(json_out=True)
    assert r.returncode == 0, r.stderr
    for ln in r.stdout.splitlines():
        if ln.strip():
            json.loads(ln)


@pytest.fixture(scope="module")
def hostile_request(tmp_path_factory: pytest.TempPathFactory) -> Env:
    """A store whose root asks to write an escape and a brace, built once: the listings only read it."""
    e = make_env(tmp_path_factory.mktemp("hostile"))
    e.run([turn(call("fs_write", path="a.txt", content="\x1b[31m{not json"))], "--ask", "fs:*=write")
    return e


@pytest.mark.parametrize("cmd", [["ps"], ["approvals"], ["approvals", "--all"], ["audit"]])
def test_listing_commands_json_is_pure(hostile_request: Env, cmd: list[str]) -> None:
    r = hostile_request.cmd(*cmd, "--json")
    assert r.returncode == 0, r.stderr
    rows = json_lines(r.stdout)
    assert rows and all(isinstance(x, dict) for x in rows)


def test_error_with_json_goes_to_stderr_not_stdout(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    r = e.run([], "--allow", "fs:*=bogus")
    assert r.returncode != 0
    for ln in r.stdout.splitlines():
        if ln.strip():
            json.loads(ln)


# -- ps ---------------------------------------------------------------------------------------


def test_ps_json_fields(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    e.run([turn(content="a"), turn(call("human_ask", question="?"))])
    [p] = e.ps()
    for k in ("pid", "parent", "name", "image", "state", "wait", "exit", "turns"):
        assert k in p, k
    assert p["name"] == "main" and p["image"] == "base" and p["parent"] is None
    assert p["state"] == "waiting" and p["wait"] == "human" and p["exit"] is None
    assert p["turns"] == 2


# -- scripts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "bad_line"),
    [
        (['{"content": "a"}', '{"content": "b", "tool_calls": ['], 2),
        (['{"content": "a"}', '{"content": "b"}', "[1, 2]"], 3),
        (['{"content": "a"}', '{"content": 5}'], 2),
        (['{"content": "a", "tool_calls": [{"name": "fs_read", "arguments": "nope"}]}'], 1),
        (['{"content": "a", "tool_calls": "fs_read"}'], 1),
    ],
)
def test_malformed_script_is_refused_naming_the_line(tmp_path: Path, lines: list[str], bad_line: int) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    script = tmp_path / "bad.jsonl"
    script.write_text("\n".join(lines) + "\n")
    store = tmp_path / "st" / "store.db"
    r = alos(
        "run",
        "base",
        "g",
        "--workspace",
        str(ws),
        "--store",
        str(store),
        "--model",
        f"script:{script}",
        "--approve",
        "never",
        "--allow",
        "fs:*=read,write",
    )
    assert r.returncode == 2  # a bad --model is a usage error
    assert f"Error: {script}:{bad_line}: " in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert list(ws.iterdir()) == []
    assert not store.exists()  # nothing is stored on a usage error


def test_missing_script_and_unknown_model_and_image_fail(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    store = str(tmp_path / "st" / "store.db")
    for model, image in ((f"script:{tmp_path}/nope.jsonl", "base"), ("gpt:whatever", "base"), ("script:", "base")):
        r = alos("run", image, "g", "--workspace", str(ws), "--store", store, "--model", model)
        assert r.returncode != 0 and r.stderr.strip() and "Traceback" not in r.stderr
    script = write_script(tmp_path / "s.jsonl", [turn(content="x")])
    r = alos("run", "ubuntu", "g", "--workspace", str(ws), "--store", store, "--model", f"script:{script}")
    assert r.returncode != 0 and "ubuntu" in r.stderr


def test_turn_for_a_named_proc_does_not_go_to_main(tmp_path: Path) -> None:
    e = make_env(tmp_path)
    r = e.run(
        [{"content": "x", "tool_calls": [call("fs_write", path="ghost.txt", content="g")], "proc": "ghost"}],
        "--allow",
        "fs:*=write",
    )
    assert not (e.ws / "ghost.txt").exists(), r.stdout


# -- stores -----------------------------------------------------------------------------------


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def real_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real store, made once a module; the tests below damage copies of it."""
    e = make_env(tmp_path_factory.mktemp("real"))
    e.run([turn(call("fs_read", path="README.md"))], "--allow", "fs:*=read")
    return e.store


# Every command but run and resume opens the store through one reader (cli/look.py reader():
# alos.open(create=False)), which refuses a bad store before the command does anything: ps stands
# for the read-only ones (approvals, audit, audit verify) and approve for those that would write
# (deny, answer). resume opens it as its host; run (below) as its host, creating it if new.
STORE_CMDS = [["ps"], ["resume", "--approve", "never"], ["approve", "1"]]


def _check_refused(tmp_path: Path, store: Path, expect_word: str | None = None) -> None:
    before = digest(store)
    ws = tmp_path.parent / f"{tmp_path.name}-ws"  # outside the store's directory (tmp_path)
    ws.mkdir(exist_ok=True)
    script = write_script(tmp_path / "refuse.jsonl", [turn(call("fs_write", path="x.txt", content="x"))])
    runs = [[*c, "--store", str(store)] for c in STORE_CMDS]
    runs.append(
        [
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
            "--approve",
            "never",
        ]
    )
    for args in runs:
        r = alos(*args)
        assert r.returncode != 0, (args, r.stdout)
        assert r.stderr.strip(), args
        assert "Traceback" not in r.stderr and "internal error" not in r.stderr, (args, r.stderr[-400:])
        if expect_word:
            assert expect_word in r.stderr.lower(), (args, r.stderr)
    assert digest(store) == before
    assert not (ws / "x.txt").exists()


def test_random_bytes_store_is_refused_and_untouched(tmp_path: Path) -> None:
    store = tmp_path / "corrupt.db"
    store.write_bytes(os.urandom(8192))
    _check_refused(tmp_path, store)


def test_truncated_sqlite_header_store_is_refused_and_untouched(tmp_path: Path, real_store: Path) -> None:
    store = tmp_path / "trunc.db"
    store.write_bytes(real_store.read_bytes()[:1500])
    _check_refused(tmp_path, store)


def test_non_alos_sqlite_store_is_refused_and_untouched(tmp_path: Path) -> None:
    store = tmp_path / "other.db"
    con = sqlite3.connect(store)
    con.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
    con.execute("INSERT INTO customers VALUES (1, 'alice')")
    con.commit()
    con.close()
    _check_refused(tmp_path, store)
    con = sqlite3.connect(store)
    assert [r[0] for r in con.execute("SELECT name FROM sqlite_master")] == ["customers"]


def test_newer_schema_store_is_refused_and_untouched(tmp_path: Path, real_store: Path) -> None:
    store = tmp_path / "newer.db"
    shutil.copy(real_store, store)
    con = sqlite3.connect(store)
    con.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    _check_refused(tmp_path, store, expect_word="999")


# store/db.py refuses a version that is not all digits ("-1", "1.5", "" take the same test as
# "abc") or that is below 1 ("0").
@pytest.mark.parametrize("version", ["abc", "0"])
def test_garbage_schema_version_is_refused_clearly(tmp_path: Path, real_store: Path, version: str) -> None:
    store = tmp_path / "weird.db"
    shutil.copy(real_store, store)
    con = sqlite3.connect(store)
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (version,))
    con.commit()
    con.close()
    _check_refused(tmp_path, store)


def test_store_missing_a_table_is_refused_clearly(tmp_path: Path, real_store: Path) -> None:
    store = tmp_path / "partial.db"
    shutil.copy(real_store, store)
    con = sqlite3.connect(store)
    con.execute("DROP TABLE processes")
    con.commit()
    con.close()
    _check_refused(tmp_path, store)


@pytest.mark.parametrize(
    "cmd",
    [
        ["ps"],
        ["approvals"],
        ["audit"],
        ["audit", "verify"],
        ["resume"],
        ["approve", "1"],
        ["deny", "1"],
        ["answer", "1", "x"],
    ],
)
def test_commands_on_a_missing_store_fail_and_create_nothing(tmp_path: Path, cmd: list[str]) -> None:
    store = tmp_path / "nostore" / "store.db"
    r = alos(*cmd, "--store", str(store))
    assert r.returncode == 1 and "no alos store" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert not store.exists() and not store.parent.exists()


def test_default_store_is_dot_alos_in_cwd_and_alos_store_env_is_honoured(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    script = write_script(tmp_path / "s.jsonl", [turn(content="hi")])
    env_store = tmp_path / "envstore" / "s.db"
    r = alos(
        "run",
        "base",
        "g",
        "--workspace",
        str(ws),
        "--model",
        f"script:{script}",
        env={**os.environ, "ALOS_STORE": str(env_store)},
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert env_store.exists()
    assert not (tmp_path / ".alos").exists()


# -- demo -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_demo_runs_offline_in_a_given_workspace_and_shows_a_verified_chain(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if "PROXY" not in k.upper()}
    env.update({"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "NO_COLOR": "1"})
    ws = tmp_path / "demo"
    r = alos("demo", "--workspace", str(ws), env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    env = f"{ws.resolve()}/.env"  # the display may shorten the resource column, never the reason
    assert f"/.env — process 1 is denied read on fs:{env} (capability 2: " in out, out
    assert f"/.env — process 2 lacks read on fs:{env}\n" in out, out
    assert "hunter2" not in out and "sk-demo" not in out
    assert "decisions: allow 19, approved 1, ask 1, deny 3" in out, out
    assert "alos audit verify: chain intact (26 records)" in out, out
    # what test_cli_run's demo test and test_bb_first_contact's demo in a new directory checked
    assert "store directory" in out and "process 2 checker exited ok" in out, out
    assert "calls=3/3" in out  # the checker's budget, shown in the process tree
    assert (ws / "SUMMARY.md").exists() and "Traceback" not in r.stdout + r.stderr


def test_demo_default_does_not_litter_the_current_directory_or_leave_a_temporary_one(tmp_path: Path) -> None:
    cwd, tmpdir = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmpdir.mkdir()
    r = alos("demo", cwd=cwd, env={**os.environ, "TMPDIR": str(tmpdir), "NO_COLOR": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert list(cwd.iterdir()) == []
    assert list(tmpdir.iterdir()) == [], "the demo left its temporary directory behind"
