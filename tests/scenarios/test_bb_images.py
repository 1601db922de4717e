"""Black-box: images (docs/images.md) from the command line: files and directories, validation,
the built-ins, registering versions, what `alos run` grants (nothing, unless asked), the
image.register syscall and exec into a registered image."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.fakes import openai_server as ow
from tests.fakes.fixtures import openai_server  # noqa: F401  (fixture)
from tests.fakes.server import FakeServer
from tests.scenarios.bb_models_support import (
    ModelEnv,
    bodies,
    exit_turn,
    final,
    make_model_env,
    messages_text,
    no_crash,
    results,
    syscalls,
    tool_names,
)
from tests.scenarios.bb_support import call, json_lines, turn, write_script


@pytest.fixture
def e(tmp_path: Path, openai_server: FakeServer) -> ModelEnv:  # noqa: F811
    return make_model_env(tmp_path, openai_server)


def script(e: ModelEnv, *turns: dict[str, object], name: str = "turns.jsonl") -> str:
    return f"script:{write_script(e.root / name, list(turns))}"


def image_file(e: ModelEnv, name: str, text: str) -> Path:
    path = e.root / f"{name}.yaml"
    path.write_text(text)
    return path


BAD = """\
name: demo
description: shows every error at once
tools: [fs.read, fs.raed]
grants:
  - allow: fs:src/*=read,lst
model:
  temperature: 3
contxt: {max_tokens: 1000}
"""


# -- files, directories, validation -------------------------------------------------------------


def test_builtins_are_listed_and_shown_whole(e: ModelEnv) -> None:
    cp = e.cmd("image", "list", "--json")
    assert cp.returncode == 0, cp.stderr
    names = {i["name"] for i in json_lines(cp.stdout)}
    assert {"base", "reader", "coder", "reviewer"} <= names
    cp = e.cmd("image", "show", "coder", "--json")
    assert cp.returncode == 0, cp.stderr
    (coder,) = json_lines(cp.stdout)
    assert {"deny": "fs:.git/*=write,delete"} in coder["grants"]
    assert {"ask": "fs:*=write,delete"} in coder["grants"]
    assert coder["model"]["max_tokens"] == 4096 and coder["context"]["max_tokens"] == 64000
    assert "fs.write" in coder["tools"] and "proc.spawn" in coder["tools"]


def test_validate_reports_every_error_at_once_with_file_line_and_field(e: ModelEnv) -> None:
    bad = image_file(e, "bad", BAD)
    cp = e.alos("image", "validate", bad.name, cwd=e.root)
    assert cp.returncode == 1, cp.stdout + cp.stderr
    lines = [ln for ln in cp.stderr.splitlines() if "bad.yaml:" in ln]
    assert [ln.split("bad.yaml:")[1].split(":")[0] for ln in lines] == ["3", "5", "7", "8"], cp.stderr
    assert "tools[1]" in lines[0] and "fs.raed" in lines[0] and "fs.read" in lines[0]
    assert "lst" in lines[1]
    assert "model.temperature" in lines[2]
    assert "contxt" in lines[3] and "'context'" in lines[3]  # an unknown key is an error, with a hint


def test_register_refuses_an_invalid_file_one_error_a_line_and_registers_nothing(e: ModelEnv) -> None:
    bad = image_file(e, "bad", BAD)
    cp = e.cmd("image", "register", str(bad))
    assert cp.returncode == 1, cp.stdout + cp.stderr
    assert "\\n" not in cp.stderr, f"the errors are joined with a literal \\n: {cp.stderr!r}"
    assert len([ln for ln in cp.stderr.splitlines() if "bad.yaml:" in ln]) == 4, cp.stderr
    listed = e.cmd("image", "list", "--json")
    assert "demo" not in {i["name"] for i in json_lines(listed.stdout)}


@pytest.mark.parametrize(
    "text, says",
    [
        ("name: t\ndescription: &d hi\nprompt: *d\ntools: [proc.exit]\n", "alias"),
        ("name: t\ndescription: x\ntools: [proc.exit]\nprompt: !!python/object:os.system ls\n", "tag"),
        ("name: t\ndescription: x\ntools: [proc.exit]\nname: u\n", "twice"),
    ],
    ids=["alias", "tag", "duplicate key"],
)
def test_hostile_or_sloppy_files_are_refused(e: ModelEnv, text: str, says: str) -> None:
    path = image_file(e, "t", text)
    cp = e.alos("image", "validate", str(path))
    assert cp.returncode == 1, cp.stdout + cp.stderr
    assert says in cp.stderr and "t.yaml:" in cp.stderr, cp.stderr
    assert "Traceback" not in cp.stderr


def test_a_fifo_is_refused_at_once_and_never_blocks(e: ModelEnv) -> None:
    fifo = e.root / "image.yaml"
    os.mkfifo(fifo)
    try:
        cp = e.alos("image", "validate", str(fifo), timeout=30)
    except subprocess.TimeoutExpired:  # pragma: no cover - the failure this test is for
        pytest.fail("validating a FIFO blocked")
    assert cp.returncode == 1 and "regular file" in cp.stderr, cp.stderr


def test_the_directory_form_runs_with_its_prompt_tools_and_model_settings(e: ModelEnv) -> None:
    d = e.root / "lookup"
    d.mkdir()
    (d / "image.yaml").write_text(
        "name: lookup\ndescription: looks things up\ntools: [fs.read, proc.exit]\n"
        "model:\n  temperature: 0.5\n  max_tokens: 300\n  constrain: true\n"
    )
    (d / "prompt.md").write_text("You are LOOKUP-7, a careful reader.\n")
    cp = e.alos("image", "validate", str(d))
    assert cp.returncode == 0, cp.stderr
    # the model asks for a tool the image lacks: the repair lists this image's tools only
    e.fake.push(ow.stream([], [ow.call("fs_write", {"path": "x", "content": "y"})]), exit_turn("looked"))
    cp = e.run("--allow", "fs:*=read", image=str(d))
    no_crash(cp)
    assert cp.returncode == 0, cp.stderr[-2000:]
    first, second = bodies(e.fake)
    assert first["messages"][0]["role"] == "system"
    assert "LOOKUP-7" in first["messages"][0]["content"]
    assert sorted(tool_names(first)) == ["fs_read", "proc_exit"]
    assert first["temperature"] == 0.5 and first["max_tokens"] == 300
    assert "response_format" in first  # model: {constrain: true}
    repair = second["messages"][-1]["content"]
    assert "[repair 1 of 3]" in repair and "fs_read" in repair and "proc_exit" in repair
    assert "fs_delete" not in repair
    assert not (e.ws / "x").exists()
    # a prompt in both image.yaml and prompt.md is an error
    (d / "image.yaml").write_text("name: lookup\ndescription: d\nprompt: here too\ntools: [proc.exit]\n")
    cp = e.alos("image", "validate", str(d))
    assert cp.returncode == 1 and "prompt" in cp.stderr, cp.stderr


def test_an_unknown_image_is_a_usage_error_and_nothing_is_stored(e: ModelEnv) -> None:
    cp = e.run(image="no-such-image", model=script(e, turn(content="hi")))
    assert "no-such-image" in cp.stderr
    assert cp.returncode == 2, (cp.returncode, cp.stderr[-500:])
    assert not e.store.exists(), "an unknown image still made a store"


# -- registering --------------------------------------------------------------------------------


def test_register_makes_versions_and_a_builtin_name_cannot_be_registered(e: ModelEnv) -> None:
    path = image_file(e, "notes", "name: notes\ndescription: first\ntools: [fs.read, proc.exit]\n")
    one = e.cmd("image", "register", str(path))
    assert one.returncode == 0 and "notes@1" in one.stdout, one.stdout + one.stderr
    path.write_text("name: notes\ndescription: second\ntools: [fs.read, fs.list, proc.exit]\n")
    two = e.cmd("image", "register", str(path))
    assert two.returncode == 0 and "notes@2" in two.stdout, two.stdout + two.stderr
    listed = {i["name"]: i for i in json_lines(e.cmd("image", "list", "--json").stdout)}
    assert listed["notes"]["version"] == 2 and listed["notes"]["description"] == "second"
    (old,) = json_lines(e.cmd("image", "show", "notes@1", "--json").stdout)
    assert old["description"] == "first" and old["tools"] == ["fs.read", "proc.exit"]
    builtin = image_file(e, "base", "name: base\ndescription: mine\ntools: [proc.exit]\n")
    cp = e.cmd("image", "register", str(builtin))
    assert cp.returncode == 1 and "built" in cp.stderr, cp.stderr


def test_a_running_process_keeps_its_version(e: ModelEnv) -> None:
    path = image_file(e, "ver", "name: ver\ndescription: v1\nprompt: PROMPT-ONE\ntools: [fs.write, proc.exit]\n")
    assert e.cmd("image", "register", str(path)).returncode == 0
    e.fake.push(ow.stream([], [ow.call("fs_write", {"path": "a.txt", "content": "x"})]))
    cp = e.run("--ask", "fs:*=write", image="ver")
    assert cp.returncode == 3, cp.stderr[-2000:]  # parked on the write
    path.write_text("name: ver\ndescription: v2\nprompt: PROMPT-TWO\ntools: [fs.write, fs.read, proc.exit]\n")
    assert e.cmd("image", "register", str(path)).returncode == 0
    assert e.cmd("approve", "1").returncode == 0
    e.fake.push(exit_turn("still v1"))
    cp = e.resume()
    assert cp.returncode == 0, cp.stderr[-2000:]
    after = bodies(e.fake)[1]
    assert "PROMPT-ONE" in messages_text(after) and "PROMPT-TWO" not in messages_text(after)
    assert "fs_read" not in tool_names(after)
    assert e.proc(1)["image"] in ("ver@1", "ver")
    # a new run of the name runs the newest
    e.fake.reset()
    e.fake.push(exit_turn())
    cp = e.run(image="ver")
    assert cp.returncode == 0, cp.stderr[-2000:]
    assert "PROMPT-TWO" in messages_text(bodies(e.fake)[0])


# -- an image never grants anything ------------------------------------------------------------

READS = "name: peek\ndescription: reads\ntools: [fs.read, fs.write, proc.exit]\ngrants:\n  - allow: fs:*=read\n"


def test_run_shows_the_requested_grants_and_grants_them_only_with_grant_requested(e: ModelEnv) -> None:
    path = image_file(e, "peek", READS)
    assert e.cmd("image", "register", str(path)).returncode == 0
    model = script(e, turn(call("fs_read", path="README.md")), turn(call("fs_write", path="w.txt", content="x")))
    cp = e.run(image="peek", model=model)
    assert cp.returncode == 0, cp.stderr[-2000:]
    assert "fs:*=read" in cp.stderr, cp.stderr  # what it requests is shown
    (read, write) = results(cp.stdout)
    assert not read["ok"] and read["text"].startswith("denied"), read
    assert not write["ok"] and write["text"].startswith("denied"), write
    granted = e.run("--grant-requested", image="peek", model=model)
    assert granted.returncode == 0, granted.stderr[-2000:]
    (read, write) = results(granted.stdout)
    assert read["ok"] and read["text"] == "hello readme\n", read
    assert not write["ok"] and write["text"].startswith("denied"), write  # seeing a tool grants nothing
    assert not (e.ws / "w.txt").exists()


def test_grant_requested_with_base_asks_before_a_write(e: ModelEnv) -> None:
    model = script(e, turn(call("fs_write", path="w.txt", content="x")))
    cp = e.run("--grant-requested", model=model)
    assert cp.returncode == 3, cp.stderr[-2000:]
    (req,) = e.approvals()
    assert req["resource"].endswith("/w.txt") and req["right"] == "write"
    assert not (e.ws / "w.txt").exists()


def test_image_register_needs_write_on_the_image_and_grants_nothing(e: ModelEnv) -> None:
    registrar = image_file(
        e, "registrar", "name: registrar\ndescription: registers\ntools: [image.register, fs.write, proc.exit]\n"
    )
    wanted = {
        "name": "greedy",
        "description": "asks for everything",
        "tools": ["fs.write", "proc.exit"],
        "grants": [{"allow": "fs:*=write"}],
    }
    model = script(e, turn(call("image_register", image=wanted)), turn(call("fs_write", path="w.txt", content="x")))
    cp = e.run(image=str(registrar), model=model)
    assert cp.returncode == 0, cp.stderr[-2000:]
    (reg, write) = results(cp.stdout)
    assert not reg["ok"] and "image:greedy" in reg["text"] and reg["text"].startswith("denied"), reg
    assert not write["ok"]
    assert "greedy" not in {i["name"] for i in json_lines(e.cmd("image", "list", "--json").stdout)}
    audit = [r for r in syscalls(cp.stdout, "image.register") if r["pid"] == 1]
    assert [(r["resource"], r["decision"]) for r in audit] == [("image:greedy", "deny")], audit
    # with write on image:greedy it registers; registering still grants the registrar nothing
    other = e.root / "o" / "store.db"
    cp = e.run("--allow", "image:greedy=write", image=str(registrar), model=model, store=other)
    assert cp.returncode == 0, cp.stderr[-2000:]
    (reg, write) = results(cp.stdout)
    assert reg["ok"] and "greedy@1" in reg["text"], reg
    assert not write["ok"] and write["text"].startswith("denied"), write
    assert not (e.ws / "w.txt").exists()
    listed = {i["name"]: i for i in json_lines(e.cmd("image", "list", "--json", store=other).stdout)}
    assert listed["greedy"]["version"] == 1


def test_exec_into_a_registered_image_never_widens_authority(e: ModelEnv) -> None:
    writer = image_file(
        e,
        "writer",
        "name: writer\ndescription: writes\ntools: [fs.write, fs.read, proc.exit]\ngrants:\n  - allow: fs:*=write,read\n",
    )
    assert e.cmd("image", "register", str(writer)).returncode == 0
    model = script(
        e,
        turn(call("proc_exec", image="writer", keep=["fs:*", "model:script"], goal="write it")),
        turn(call("fs_write", path="out.txt", content="x")),
        turn(call("fs_read", path="README.md")),
        turn(call("proc_exit", result="exec'd")),
    )
    cp = e.run("--allow", "fs:*=read", "--allow", "image:writer=execute", model=model)
    no_crash(cp)
    assert cp.returncode == 0, cp.stderr[-2000:]
    texts = {r["name"]: r for r in results(cp.stdout)}
    assert not texts["fs_write"]["ok"] and texts["fs_write"]["text"].startswith("denied"), texts
    assert texts["fs_read"]["ok"], texts  # the kept read still works
    assert not (e.ws / "out.txt").exists()
    p = e.proc()
    assert p["image"].startswith("writer") and p["result"] == "exec'd", p
    # without execute on image:writer the exec itself is refused
    cp = e.run("--allow", "fs:*=read", model=model, store=e.root / "n" / "store.db")
    assert cp.returncode == 0, cp.stderr[-2000:]
    first = results(cp.stdout)[0]
    assert first["name"] == "proc_exec" and first["text"].startswith("denied") and "image:writer" in first["text"]


def test_an_images_default_budget_applies_unless_run_names_one(e: ModelEnv) -> None:
    path = image_file(
        e, "brief", "name: brief\ndescription: one call\ntools: [fs.read, proc.exit]\nbudget:\n  model_calls: 1\n"
    )
    model = script(e, turn(call("fs_read", path="README.md")), turn(call("proc_exit", result="two calls")))
    cp = e.run("--allow", "fs:*=read", image=str(path), model=model)
    assert cp.returncode == 1, cp.stderr[-2000:]
    p = final(cp.stdout)
    assert p["exit"] == "failed" and "model_calls" in p["result"], p
    assert [c["outcome"] for c in syscalls(cp.stdout, "model.call")] == ["ok", "limit"]
    other = e.root / "b" / "store.db"
    cp = e.run("--allow", "fs:*=read", "--budget", "model_calls=5", image=str(path), model=model, store=other)
    assert cp.returncode == 0, cp.stderr[-2000:]
    assert final(cp.stdout)["result"] == "two calls"
