"""Black-box: real model clients (docs/models.md), driven as a user drives them.

`alos run ... --model openai:fake-gpt` runs in a subprocess against the fake OpenAI-compatible
server (tests/fakes) over real HTTP; the tests look only at what a user can see: exit codes,
`alos ps/audit/approvals --json`, the trace, the record file, and what the server received.
"""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path
from typing import Any

import pytest

import alos
from tests.fakes import anthropic_server as aw
from tests.fakes import openai_server as ow
from tests.fakes.fixtures import anthropic_server, openai_server  # noqa: F401  (fixtures)
from tests.fakes.server import FakeServer, Step, malformed, sse, status
from tests.scenarios.bb_models_support import (
    KEY,
    ModelEnv,
    Output,
    bodies,
    events,
    exit_turn,
    final,
    finish,
    held_stream,
    kill9,
    make_model_env,
    messages_text,
    no_crash,
    null_content_stream,
    read_turn,
    restore,
    results,
    syscalls,
    timestamps,
    wait_for,
)

GOAL = "read README.md and exit"


@pytest.fixture
def e(tmp_path: Path, openai_server: FakeServer) -> ModelEnv:  # noqa: F811
    return make_model_env(tmp_path, openai_server)


def assistant_turns(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body["messages"] if m.get("role") == "assistant"]


# -- a plain run: tool calls, the request body, budget and audit ---------------------------------


def test_two_tool_calls_in_one_turn_run_in_order_and_are_budgeted_and_audited(e: ModelEnv) -> None:
    e.fake.push(
        ow.stream(
            ["Let me ", "look."],
            [ow.call("fs_read", {"path": "README.md"}, id="c1"), ow.call("fs_list", {}, id="c2")],
        ),
        exit_turn("read and listed"),
    )
    cp = e.run("--allow", "fs:*=read,list")
    no_crash(cp)
    assert cp.returncode == 0, cp.stderr[-2000:]
    # both calls ran, in the order the model gave them
    res = results(cp.stdout)
    assert [r["name"] for r in res] == ["fs_read", "fs_list"], res
    assert res[0]["ok"] and res[0]["text"] == "hello readme\n"
    p = e.proc()
    assert (p["state"], p["exit"], p["result"]) == ("exited", "ok", "read and listed")
    # each call spends one model call and the tokens the server reported (12 + 3 a call)
    assert p["budget"]["model_calls"]["spent"] == 2
    assert p["budget"]["tokens"]["spent"] == 2 * ow.USAGE["total_tokens"]
    audit = e.audit()
    order = [r["syscall"] for r in audit if r["pid"] == 1]
    assert order[:4] == ["model.call", "fs.read", "fs.list", "model.call"], order
    calls = [r for r in audit if r["syscall"] == "model.call"]
    assert len(calls) == 2
    for rec in calls:
        d = rec["detail"]
        assert rec["resource"] == "model:openai" and rec["outcome"] == "ok"
        assert d["model"] == ow.MODEL
        assert d["prompt_tokens"] == 12 and d["completion_tokens"] == 3
        assert "cached_tokens" in d and isinstance(d["latency_ms"], (int, float))
        assert d["finish_reason"] == "tool_calls"
        assert str(d["request"]).startswith("sha256:"), d
    # a digest of the request, never its text: neither the goal nor a file's content
    text = json.dumps(calls)
    assert GOAL not in text and "hello readme" not in text and "You are" not in text


def test_the_request_body_is_what_small_servers_accept(e: ModelEnv) -> None:
    """content "" never null on an assistant tool-call message, and no tool_choice."""
    e.fake.push(null_content_stream([ow.call("fs_read", {"path": "README.md"}, id="c1")]), exit_turn())
    cp = e.run("--allow", "fs:*=read")
    no_crash(cp)
    assert cp.returncode == 0, cp.stderr[-2000:]
    sent = bodies(e.fake)
    assert len(sent) == 2
    for body in sent:
        assert "tool_choice" not in body, body.keys()
        assert body["model"] == "fake-gpt"
        assert "response_format" not in body  # only with --constrain
    (turn,) = assistant_turns(sent[1])
    assert turn["content"] == "" and turn["content"] is not None, turn
    assert turn["tool_calls"], turn


def test_assistant_tool_calls_are_sent_back_in_the_openai_wire_shape(e: ModelEnv) -> None:
    """The next request carries the model's own tool calls as Chat Completions defines them:
    {"id", "type": "function", "function": {"name", "arguments": "<JSON text>"}}, answered by
    tool messages with the same tool_call_id. A real OpenAI server refuses any other shape."""
    e.fake.push(ow.stream(["reading"], [ow.call("fs_read", {"path": "README.md"}, id="call_abc")]), exit_turn())
    cp = e.run("--allow", "fs:*=read")
    no_crash(cp)
    assert cp.returncode == 0, cp.stderr[-2000:]
    second = bodies(e.fake)[1]
    (turn,) = assistant_turns(second)
    (tc,) = turn["tool_calls"]
    assert tc.get("type") == "function", tc
    assert tc.get("id") == "call_abc", tc
    assert isinstance(tc.get("function"), dict) and tc["function"].get("name") == "fs_read", tc
    assert isinstance(tc["function"].get("arguments"), str), tc
    assert json.loads(tc["function"]["arguments"]) == {"path": "README.md"}
    tool_msgs = [m for m in second["messages"] if m.get("role") == "tool"]
    assert [m["tool_call_id"] for m in tool_msgs] == ["call_abc"]


def test_streamed_text_is_shown_live_in_the_trace(e: ModelEnv) -> None:
    """The reply's text shows while the stream is still open (the fake holds it open after the
    text), and killing the process cancels the request."""
    e.fake.push(held_stream(["Thinking ", "about ", "livestream"]))
    p = e.popen("--allow", "fs:*=read", json_out=False, merge=True)
    out = Output(p)
    try:
        wait_for(lambda: "livestream" in out.text, timeout=40, what="the streamed text in the trace")
        assert e.fake.disconnects == 0  # the answer is still streaming
    finally:
        kill = e.cmd("kill", "1")
    assert kill.returncode == 0, kill.stderr
    assert e.fake.wait_disconnect(20), "killing the process did not close the model request"
    code = p.wait(timeout=60)
    out.join()
    assert code == 1
    proc = e.proc()
    assert (proc["state"], proc["exit"]) == ("exited", "killed")
    assert len(e.fake.requests) == 1


# -- where models are served --------------------------------------------------------------------


def test_alos_model_env_names_the_model_when_no_flag_does(e: ModelEnv) -> None:
    e.fake.push(exit_turn())
    cp = e.run(model=None, env=e.env(ALOS_MODEL="openai:from-env"))
    assert cp.returncode == 0, cp.stderr[-2000:]
    assert bodies(e.fake)[0]["model"] == "from-env"
    assert e.fake.requests[0].headers.get("authorization") == f"Bearer {KEY}"


def test_base_url_flag_beats_the_environment(e: ModelEnv) -> None:
    e.fake.push(exit_turn())
    cp = e.run("--base-url", e.base_url, env=e.env(OPENAI_BASE_URL="http://127.0.0.1:9/v1"))
    assert cp.returncode == 0, cp.stderr[-2000:]
    assert len(e.fake.requests) == 1


def test_environment_beats_the_workspace_config(e: ModelEnv) -> None:
    # .alos/config.toml in the current directory: its base_url is dead, the environment's wins
    e.write_config('[openai]\nbase_url = "http://127.0.0.1:9/v1"\nconstrain = true\n')
    e.fake.push(exit_turn())
    cp = e.run()
    assert cp.returncode == 0, cp.stderr[-2000:]
    assert len(e.fake.requests) == 1
    assert "response_format" in bodies(e.fake)[0]  # constrain = true from the file still applies


def test_workspace_config_names_model_and_server_but_never_gets_the_users_key(e: ModelEnv) -> None:
    """A cloned repository's .alos/config.toml may point at a server; OPENAI_API_KEY is not sent
    there. A key written in that same file is."""
    proj = e.root / "proj"
    proj.mkdir()
    e.write_config(f'model = "openai:from-config"\n[openai]\nbase_url = "{e.base_url}"\n', where=proj)
    e.fake.push(exit_turn())
    cp = e.run(model=None, cwd=proj, env=e.env(OPENAI_BASE_URL=None))
    assert cp.returncode == 0, cp.stderr[-2000:]
    (seen,) = e.fake.requests
    assert seen.body["model"] == "from-config"
    assert KEY not in json.dumps(seen.headers), seen.headers
    e.write_config(
        f'model = "openai:from-config"\n[openai]\nbase_url = "{e.base_url}"\napi_key = "sk-ws-own-key-000000"\n',
        where=proj,
    )
    e.fake.reset()
    e.fake.push(exit_turn())
    cp = e.run(model=None, cwd=proj, env=e.env(OPENAI_BASE_URL=None), store=e.root / "s2" / "store.db")
    assert cp.returncode == 0, cp.stderr[-2000:]
    assert e.fake.requests[0].headers.get("authorization") == "Bearer sk-ws-own-key-000000"


def test_user_config_with_api_key_env_and_alos_models_never_shows_the_key(e: ModelEnv) -> None:
    conf = e.home / ".config" / "alos"
    conf.mkdir(parents=True)
    (conf / "config.toml").write_text(
        f'model = "openai:from-user"\n[openai]\nbase_url = "{e.base_url}"\napi_key_env = "MY_MODEL_KEY"\n'
    )
    env = e.env(OPENAI_BASE_URL=None, OPENAI_API_KEY=None, MY_MODEL_KEY=KEY)
    e.fake.push(exit_turn())
    cp = e.run(model=None, env=env)
    assert cp.returncode == 0, cp.stderr[-2000:]
    assert bodies(e.fake)[0]["model"] == "from-user"
    assert e.fake.requests[0].headers.get("authorization") == f"Bearer {KEY}"
    models = e.alos("models", env=env)
    assert models.returncode == 0, models.stderr
    assert "openai:from-user" in models.stdout and "MY_MODEL_KEY" in models.stdout
    assert KEY not in models.stdout + models.stderr


def test_unknown_config_key_is_an_error_naming_file_and_key(e: ModelEnv) -> None:
    path = e.write_config('[openai]\nbase_ur = "http://127.0.0.1:9/v1"\n')
    cp = e.run()
    assert cp.returncode in (1, 2), cp.returncode
    assert str(path) in cp.stderr and "base_ur" in cp.stderr, cp.stderr
    assert not e.fake.requests and not e.store.exists()


def test_models_check_makes_one_tiny_call(e: ModelEnv) -> None:
    e.fake.push(ow.reply("ok"))
    cp = e.alos("models", "check", "openai:fake-gpt")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "ok" in cp.stdout and "ms" in cp.stdout and "15" in cp.stdout, cp.stdout
    (body,) = bodies(e.fake)
    assert body["max_tokens"] <= 16
    assert "Reply with the single word: ok" in messages_text(body)


# -- faults and retries -------------------------------------------------------------------------

TRANSIENT = {
    "429 Retry-After 0": [status(429, "slow down", {"Retry-After": "0"})],
    "500": [status(500, "boom", {"Retry-After": "0"})],
    "malformed JSON": [malformed()],
    "error event in the stream": [
        Step(
            headers={"content-type": "text/event-stream"},
            chunks=sse(
                ow.chunk({"role": "assistant", "content": ""}),
                {"error": {"message": "overloaded", "type": "server_error"}},
            ),
        )
    ],
    "dropped stream": [ow.stream(["half"], [ow.call("fs_read", {"path": "README.md"})], drop_after=3)],
    "503 then dropped body": [
        status(503, "overloaded", {"Retry-After": "0"}),
        Step(
            headers={"content-type": "text/event-stream"},
            body=b'data: {"choices": [{"index": 0, "delta": {"con',
            drop_after=1,
        ),
    ],
}


@pytest.mark.parametrize("fault", list(TRANSIENT))
def test_transient_wire_faults_are_retried_and_the_run_succeeds(e: ModelEnv, fault: str) -> None:
    faults = TRANSIENT[fault]
    e.fake.push(*faults, read_turn(), exit_turn("survived"))
    cp = e.run("--allow", "fs:*=read")
    no_crash(cp)
    assert cp.returncode == 0, (fault, cp.stderr[-2000:])
    assert len(e.fake.requests) == len(faults) + 2
    # the retried request is the same request
    assert bodies(e.fake)[len(faults)]["messages"] == bodies(e.fake)[0]["messages"]
    assert [r["name"] for r in results(cp.stdout)] == ["fs_read"]
    exits = [ev["detail"] for ev in events(cp.stdout) if ev["kind"] == "state" and ev["detail"].get("exit")]
    assert [x["result"] for x in exits] == ["survived"], exits


def test_retry_after_is_honoured(e: ModelEnv) -> None:
    """Retry-After: 1 waits (at least) a second; the random backoff alone would wait at most 0.5 s."""
    times = timestamps(e.fake)
    try:
        e.fake.push(status(429, "rate limited", {"Retry-After": "1"}), exit_turn())
        cp = e.run()
    finally:
        restore(e.fake)
    assert cp.returncode == 0, cp.stderr[-2000:]
    assert len(times) == 2
    assert times[1] - times[0] >= 0.9, times


def test_a_slow_answer_past_the_timeout_is_cut_and_retried(e: ModelEnv) -> None:
    e.write_config("[openai]\ntimeout = 1\n")
    e.fake.push(Step(delay=5, body=b"{}"), read_turn(), exit_turn())
    cp = e.run("--allow", "fs:*=read")
    no_crash(cp)
    assert cp.returncode == 0, cp.stderr[-2000:]
    assert len(e.fake.requests) == 3
    assert final(cp.stdout)["exit"] == "ok"


def test_persistent_5xx_parks_after_four_retries_and_approve_tries_again(e: ModelEnv) -> None:
    e.fake.push(*[status(500, "always broken", {"Retry-After": "0"}) for _ in range(5)])
    cp = e.run("--allow", "fs:*=read")
    no_crash(cp)
    assert cp.returncode == 3, cp.stderr[-2000:]
    assert len(e.fake.requests) == 5  # the first try and four retries
    assert final(cp.stdout) == {"from": "running", "state": "waiting", "wait": "human"}
    (req,) = e.approvals()
    assert req["syscall"] == "model.call" and req["pid"] == 1
    shown = json.dumps(req["detail"])
    assert "500" in shown and "always broken" in shown, shown
    assert KEY not in shown
    e.fake.push(read_turn(), exit_turn("second wind"))
    assert e.cmd("approve", str(req["id"])).returncode == 0
    cp = e.resume()
    no_crash(cp)
    assert cp.returncode == 0, cp.stderr[-2000:]
    assert len(e.fake.requests) == 7
    assert final(cp.stdout)["result"] == "second wind"


def test_a_client_error_parks_at_once_showing_the_error_never_the_key(e: ModelEnv) -> None:
    code = 401
    noisy = f"refused \x1b[31m{KEY} " + "x" * 5000
    e.fake.push(status(code, noisy))
    cp = e.run("--allow", "fs:*=read")
    no_crash(cp)
    assert cp.returncode == 3, cp.stderr[-2000:]
    assert len(e.fake.requests) == 1  # never retried
    (req,) = e.approvals()
    note = json.dumps(req["detail"])
    assert str(code) in note and "refused" in note
    assert KEY not in note and KEY not in cp.stdout + cp.stderr
    assert "\x1b" not in cp.stderr  # the server's text is escaped where a terminal shows it
    shown = e.cmd("approvals")
    assert "\x1b" not in shown.stdout and KEY not in shown.stdout
    assert len(note) < 4000, len(note)  # cut short


def test_deny_on_a_model_error_ends_the_call_and_the_process_fails_with_the_reason(e: ModelEnv) -> None:
    """docs/models.md: `alos deny N` ends the call, and the process fails with the reason. The
    model is not asked again."""
    e.fake.push(status(400, "unknown parameter"))
    cp = e.run("--allow", "fs:*=read")
    assert cp.returncode == 3, cp.stderr[-2000:]
    (req,) = e.approvals()
    assert e.cmd("deny", str(req["id"]), "--reason", "wrong model name").returncode == 0
    e.fake.push(read_turn(), exit_turn("went on anyway"))  # would be used only if it asked again
    cp = e.resume()
    no_crash(cp)
    assert cp.returncode == 1, (cp.returncode, cp.stderr[-2000:])
    assert len(e.fake.requests) == 1, f"the model was asked again after deny ({len(e.fake.requests)} requests)"
    p = final(cp.stdout)
    assert (p["state"], p["exit"]) == ("exited", "failed"), p
    assert "wrong model name" in (p["result"] or ""), p["result"]


# -- repair turns -------------------------------------------------------------------------------


def test_a_call_of_a_tool_the_image_lacks_gets_a_repair_turn_naming_the_tools(e: ModelEnv) -> None:
    e.fake.push(ow.stream([], [ow.call("shell_run", {"cmd": "ls"})]), exit_turn("repaired"))
    cp = e.run("--allow", "fs:*=read")
    no_crash(cp)
    assert cp.returncode == 0, cp.stderr[-2000:]
    second = bodies(e.fake)[1]
    repair = second["messages"][-1]
    assert "[repair 1 of 3]" in repair["content"], repair
    assert "shell_run" in repair["content"]
    for tool in ("fs_read", "fs_write", "proc_exit"):
        assert tool in repair["content"], repair["content"]
    p = e.proc()
    assert p["result"] == "repaired"
    assert p["budget"]["tool_calls"]["spent"] >= 1  # a call to a tool the image lacks counts


def test_arguments_failing_the_schema_get_the_error_and_the_schema(e: ModelEnv) -> None:
    e.fake.push(ow.stream([], [ow.call("fs_read", {"path": 5})]), exit_turn())
    cp = e.run("--allow", "fs:*=read")
    no_crash(cp)
    assert cp.returncode == 0, cp.stderr[-2000:]
    repair = bodies(e.fake)[1]["messages"][-1]["content"]
    assert "[repair 1 of 3]" in repair
    assert "path" in repair and '"required"' in repair, repair  # the error and the schema
    assert not any(a["outcome"] == "ok" for a in syscalls(cp.stdout, "fs.read"))


def test_an_empty_reply_gets_a_reminder_to_call_a_tool(e: ModelEnv) -> None:
    e.fake.push(ow.stream([], []), exit_turn("reminded"))
    cp = e.run()
    assert cp.returncode == 0, cp.stderr[-2000:]
    repair = messages_text(bodies(e.fake)[1])
    assert "[repair 1 of 3]" in repair and "proc_exit" in repair, repair
    assert final(cp.stdout)["result"] == "reminded"


def test_three_malformed_replies_in_a_row_park_the_process_then_approve_allows_three_more(e: ModelEnv) -> None:
    e.fake.push(
        ow.stream([], []),
        ow.stream([], [ow.call("nope_one", {})]),
        ow.stream([], [ow.call("fs_read", {"path": ["not", "a", "string"]})]),
    )
    cp = e.run("--allow", "fs:*=read")
    no_crash(cp)
    assert cp.returncode == 3, cp.stderr[-2000:]
    assert len(e.fake.requests) == 3  # the fourth call parks before it is made
    assert final(cp.stdout)["wait"] == "human"
    (req,) = e.approvals()
    assert "[repair 3 of 3]" in json.dumps(req["detail"]), req
    e.fake.push(ow.stream([], [ow.call("nope_two", {})]), exit_turn("recovered"))
    assert e.cmd("approve", str(req["id"])).returncode == 0
    cp = e.resume()
    assert cp.returncode == 0, cp.stderr[-2000:]
    assert len(e.fake.requests) == 5
    assert "[repair 1 of 3]" in bodies(e.fake)[4]["messages"][-1]["content"]  # three more allowed
    assert final(cp.stdout)["result"] == "recovered"


def test_deny_after_three_malformed_replies_ends_the_process(e: ModelEnv) -> None:
    e.fake.push(*[ow.stream([], [ow.call(f"nope_{i}", {})]) for i in range(3)])
    cp = e.run()
    assert cp.returncode == 3, cp.stderr[-2000:]
    (req,) = e.approvals()
    e.fake.push(exit_turn("should not run"))
    assert e.cmd("deny", str(req["id"]), "--reason", "give up").returncode == 0
    cp = e.resume()
    no_crash(cp)
    assert cp.returncode == 1, cp.stderr[-2000:]
    assert len(e.fake.requests) == 3
    p = final(cp.stdout)
    assert (p["state"], p["exit"]) == ("exited", "failed"), p


# -- tool calls written as text (small local models) -------------------------------------------


@pytest.mark.parametrize(
    "wrap",
    [
        lambda j: j,
        lambda j: "```json\n" + j + "\n```",
        lambda j: "<tool_call>" + j + "</tool_call>",
    ],
    ids=["bare", "fenced", "tagged"],
)
def test_a_reply_whose_text_is_exactly_one_declared_call_is_that_call(e: ModelEnv, wrap: Any) -> None:
    text = wrap(json.dumps({"name": "fs_read", "arguments": {"path": "README.md"}}))
    e.fake.push(ow.stream([text[:7], text[7:]], []), exit_turn())
    cp = e.run("--allow", "fs:*=read")
    assert cp.returncode == 0, cp.stderr[-2000:]
    res = results(cp.stdout)
    assert [(r["name"], r["ok"], r["text"]) for r in res] == [("fs_read", True, "hello readme\n")], res
    # what goes back to the server is a tool call with content "", answered by a tool message
    second = bodies(e.fake)[1]
    (turn,) = assistant_turns(second)
    assert turn["content"] == "" and turn.get("tool_calls"), turn
    assert any(m.get("role") == "tool" and m.get("content") == "hello readme\n" for m in second["messages"])


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"name": "shell_run", "arguments": {"cmd": "rm -rf /"}}),
        "I will call " + json.dumps({"name": "fs_read", "arguments": {"path": "README.md"}}),
    ],
    ids=["undeclared tool", "prose around it"],
)
def test_any_other_text_stays_text(e: ModelEnv, text: str) -> None:
    e.fake.push(ow.stream([text], []), exit_turn())
    cp = e.run("--allow", "fs:*=read")
    no_crash(cp)
    assert cp.returncode == 0, cp.stderr[-2000:]
    assert results(cp.stdout) == []
    assert not syscalls(cp.stdout, "fs.read")
    (turn,) = assistant_turns(bodies(e.fake)[1])
    assert turn["content"] == text and not turn.get("tool_calls"), turn


def test_constrain_sends_a_json_schema_allowing_one_declared_call(e: ModelEnv) -> None:
    e.fake.push(ow.stream([json.dumps({"name": "proc_exit", "arguments": {"result": "constrained"}})], []))
    cp = e.run("--constrain")
    assert cp.returncode == 0, cp.stderr[-2000:]
    body = bodies(e.fake)[0]
    rf = body.get("response_format")
    assert isinstance(rf, dict), body.keys()
    schema = json.dumps(rf)
    for tool in ("fs_read", "proc_exit", "proc_spawn"):
        assert tool in schema
    assert "tool_choice" not in body
    assert final(cp.stdout)["result"] == "constrained"
    # the audit record of the call says it was constrained
    assert [c["detail"]["constrain"] for c in syscalls(cp.stdout, "model.call")] == [True]


# -- budgets ------------------------------------------------------------------------------------


def test_a_token_budget_the_reservation_would_overdraw_refuses_before_the_call(e: ModelEnv) -> None:
    cp = e.run("--allow", "fs:*=read", "--budget", "tokens=500")
    no_crash(cp)
    assert cp.returncode == 1, cp.stderr[-2000:]
    assert e.fake.requests == []  # never sent
    p = e.proc()
    assert (p["state"], p["exit"]) == ("exited", "failed")
    assert "tokens" in p["result"] and "1024" in p["result"], p["result"]
    assert p["budget"]["tokens"]["spent"] == 0
    (call,) = syscalls(cp.stdout, "model.call")
    assert call["outcome"] == "limit"


def test_the_reservation_is_settled_to_the_reported_usage(e: ModelEnv) -> None:
    """tokens=1030: the first call reserves 1024 and settles to 15; the second would need
    15 + 1024 > 1030 and is refused before it is made."""
    e.fake.push(read_turn(), exit_turn())
    cp = e.run("--allow", "fs:*=read", "--budget", "tokens=1030")
    assert cp.returncode == 1, cp.stderr[-2000:]
    assert len(e.fake.requests) == 1
    p = e.proc()
    assert p["budget"]["tokens"] == {"limit": 1030, "spent": 15}, p["budget"]
    assert "15 spent" in p["result"] or "tokens" in p["result"], p["result"]


def test_image_max_tokens_is_what_is_reserved_and_sent(e: ModelEnv) -> None:
    image = e.root / "small.yaml"
    image.write_text(
        "name: small\ndescription: small replies\ntools: [fs.read, proc.exit]\nmodel:\n  max_tokens: 64\n  temperature: 0.3\n"
    )
    e.fake.push(exit_turn())
    cp = e.run("--budget", "tokens=100", image=str(image))
    assert cp.returncode == 0, cp.stderr[-2000:]
    (body,) = bodies(e.fake)
    assert body["max_tokens"] == 64 and body["temperature"] == 0.3
    assert [c["detail"]["max_tokens"] for c in syscalls(cp.stdout, "model.call")] == [64]


# -- cancellation and crashes -------------------------------------------------------------------


def test_kill_9_mid_stream_then_resume_asks_again_and_the_lost_call_stays_charged(e: ModelEnv) -> None:
    e.fake.push(held_stream(["thinking"]))
    p = e.popen("--allow", "fs:*=read", "--budget", "tokens=100000")
    try:
        wait_for(lambda: len(e.fake.requests) >= 1, timeout=40, what="the model request")
    finally:  # the reservation was committed before the request left
        kill9(p)
    assert e.fake.wait_disconnect(10)
    e.fake.push(read_turn(), exit_turn("after the crash"))
    cp = e.resume()
    no_crash(cp)
    assert cp.returncode == 0, cp.stderr[-2000:]
    assert len(e.fake.requests) == 3
    assert bodies(e.fake)[1]["messages"] == bodies(e.fake)[0]["messages"]  # the same question again
    proc = e.proc()
    assert proc["result"] == "after the crash"
    # the lost call keeps its whole reservation; the two that answered cost what they reported
    assert proc["budget"]["tokens"]["spent"] == 1024 + 2 * ow.USAGE["total_tokens"], proc["budget"]
    assert proc["budget"]["model_calls"]["spent"] == 3


def test_pause_during_a_call_cancels_it_and_resume_asks_again(e: ModelEnv) -> None:
    e.fake.push(held_stream(["pondering"]))
    p = e.popen("--allow", "fs:*=read")
    try:
        wait_for(lambda: len(e.fake.requests) >= 1, timeout=40, what="the model request")
        pause = e.cmd("pause", "1")
        assert pause.returncode == 0, pause.stderr
        assert e.fake.wait_disconnect(20), "pause did not close the model request"
        code, _, err = finish(p)
    finally:
        if p.poll() is None:
            kill9(p)
    assert code == 3, err[-2000:]
    assert e.proc()["state"] == "paused"
    e.fake.push(read_turn(), exit_turn("after the pause"))
    assert e.cmd("resume", "1").returncode == 0
    cp = e.resume()
    assert cp.returncode == 0, cp.stderr[-2000:]
    assert len(e.fake.requests) == 3
    assert bodies(e.fake)[1]["messages"] == bodies(e.fake)[0]["messages"]
    assert final(cp.stdout)["result"] == "after the pause"


# -- recorded runs ------------------------------------------------------------------------------


def test_record_then_replay_and_a_diverging_replay_names_the_first_difference(e: ModelEnv) -> None:
    secret = "sk-proj-" + "Zq9Xw8Vu7T" * 4
    (e.ws / "README.md").write_text(f"token: {secret}\n")
    rec = e.root / "run.jsonl"
    e.fake.push(read_turn(content=["reading"]), exit_turn("read it"))
    cp = e.run("--allow", "fs:*=read", "--record", str(rec))
    assert cp.returncode == 0, cp.stderr[-2000:]
    assert stat.S_IMODE(rec.stat().st_mode) == 0o600
    lines = rec.read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line) for line in lines)
    raw = rec.read_text()
    assert KEY not in raw and secret not in raw  # the wire key and a key-like string are redacted
    sent = len(e.fake.requests)
    # the same run again, answered from the file: no HTTP, same result
    same = e.root / "same" / "store.db"
    cp = e.run("--allow", "fs:*=read", model=f"replay:{rec}", store=same)
    assert cp.returncode == 0, cp.stderr[-2000:]
    assert len(e.fake.requests) == sent
    assert final(cp.stdout)["result"] == "read it"
    # a different goal: the first request differs at messages[1].content
    other = e.root / "other" / "store.db"
    cp = e.run("--allow", "fs:*=read", model=f"replay:{rec}", store=other, goal="read it twice", json_out=False)
    no_crash(cp)
    assert cp.returncode == 1
    assert len(e.fake.requests) == sent
    p = e.proc(store=other)
    assert (p["state"], p["exit"]) == ("exited", "failed")
    for part in (f"{rec}:1", "'main'", "turn 0", "messages[1].content"):
        assert part in p["result"], p["result"]
    # ... and the run itself says so, where the user is looking (not cut before the field)
    shown = cp.stdout + cp.stderr
    assert f"{rec}:1" in shown, shown[-2000:]
    assert "messages[1].content" in shown, shown[-2000:]


def test_the_key_is_never_stored_printed_or_audited(e: ModelEnv) -> None:
    e.fake.push(status(500, "oops", {"Retry-After": "0"}), read_turn(), exit_turn())
    cp = e.run("--allow", "fs:*=read", "--api-key", KEY)
    assert cp.returncode == 0, cp.stderr[-2000:]
    assert all(s.headers.get("authorization") == f"Bearer {KEY}" for s in e.fake.requests)
    assert KEY not in cp.stdout + cp.stderr
    for f in e.store.parent.rglob("*"):  # the store, its side files, the bell's directory
        if f.is_file():
            assert KEY.encode() not in f.read_bytes(), f
    ps = e.cmd("ps", "--all", "--json")
    audit = e.cmd("audit", "--json")
    assert KEY not in ps.stdout + audit.stdout


# -- the Python API -----------------------------------------------------------------------------


def test_python_api_runs_an_openai_model(e: ModelEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", e.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    e.fake.push(
        ow.reply(None, [ow.call("fs_read", {"path": "README.md"}, id="c1")]),  # content null on the wire
        ow.reply(None, [ow.call("proc_exit", {"result": "from python"})]),
    )

    async def main() -> tuple[Any, dict[str, Any]]:
        rt = alos.open(str(e.store), host=True)
        try:
            grants = [alos.parse_grant("fs:*=read", alos.Effect.ALLOW, str(e.ws))]
            pid = await rt.spawn(
                "base", GOAL, workspace=str(e.ws), model="openai:fake-gpt", grants=grants, budget={"tokens": 5000}
            )
            await rt.run()
            return rt.process(pid), rt.budgets()[pid]
        finally:
            rt.close()

    proc, budget = asyncio.run(main())
    assert proc.state is alos.ProcState.EXITED and proc.result == "from python", proc
    assert budget["tokens"] == (5000, 2 * ow.USAGE["total_tokens"])
    (turn,) = assistant_turns(bodies(e.fake)[1])
    assert turn["content"] == "", turn


# -- Anthropic ----------------------------------------------------------------------------------


def test_anthropic_run_streams_caches_and_sends_its_tool_use_back_whole(
    e: ModelEnv,
    anthropic_server: FakeServer,  # noqa: F811
) -> None:
    anthropic_server.push(
        aw.stream(["Reading"], [aw.use("fs_read", {"path": "README.md"}, id="toolu_1")]),
        aw.stream([], [aw.use("proc_exit", {"result": "claude done"}, id="toolu_2")]),
    )
    env = e.env(ANTHROPIC_BASE_URL=anthropic_server.url, ANTHROPIC_API_KEY=KEY)
    cp = e.run("--allow", "fs:*=read", model="anthropic:fake-claude", env=env)
    no_crash(cp)
    assert cp.returncode == 0, cp.stderr[-2000:]
    assert final(cp.stdout)["result"] == "claude done"
    first, second = (s.body for s in anthropic_server.requests)
    assert anthropic_server.requests[0].headers.get("x-api-key") == KEY
    assert "cache_control" in json.dumps(first["system"])
    assert "cache_control" in first["tools"][-1]
    call = syscalls(cp.stdout, "model.call")[0]
    assert call["detail"]["cached_tokens"] == aw.USAGE["cache_read_input_tokens"]
    assert call["detail"]["finish_reason"] == "tool_use"
    uses = [
        block
        for m in second["messages"]
        if m["role"] == "assistant" and isinstance(m["content"], list)
        for block in m["content"]
        if block.get("type") == "tool_use"
    ]
    assert uses == [{"type": "tool_use", "id": "toolu_1", "name": "fs_read", "input": {"path": "README.md"}}], uses
