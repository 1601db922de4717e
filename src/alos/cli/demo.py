"""``alos demo``: the authority path in one minute, offline, in a fresh workspace.

It never writes into a directory it did not create (or that is not empty), and removes its
temporary workspace afterwards. An agent (a scripted model) lists and reads the workspace, is
denied a secret, is refused the store directory, asks a human before writing, resumes the same
action after approval (no new model call), starts a checker process that may read only src/
within a budget, waits for its result, tells the human, and exits; then the process tree, the
audit summary and a verified chain.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import sys
import tempfile
from collections import Counter

import click
from rich.rule import Rule

from alos import codec, realmodel
from alos.cli import show
from alos.cli.drive import Driver
from alos.cli.screen import Screen, command
from alos.config import load as load_config
from alos.kernel.reads import ChainCheck
from alos.providers.human import CallbackHuman
from alos.rights import Effect, parse_grant
from alos.runtime import Runtime
from alos.runtime import open as open_runtime
from alos.types import AuditRecord, Event, Process

README = """# Inventory service

A small service that tracks stock levels. Configuration lives in `.env`
(database password, API keys). The code is in `src/`.
"""

SCRIPT = [
    {
        "content": "Let me see what is in this workspace.",
        "tool_calls": [
            {"name": "fs_list", "arguments": {"path": "."}},
            {"name": "fs_read", "arguments": {"path": "README.md"}},
        ],
    },
    {
        "content": "The README says configuration lives in .env; let me read it too.",
        "tool_calls": [{"name": "fs_read", "arguments": {"path": ".env"}}],
    },
    {
        "content": "Denied. Maybe the runtime's own store has what I need.",
        "tool_calls": [{"name": "fs_read", "arguments": {"path": ".alos/store.db"}}],
    },
    {
        "content": "Fine: I will write the summary from what I may read.",
        "tool_calls": [
            {
                "name": "fs_write",
                "arguments": {
                    "path": "SUMMARY.md",
                    "content": "# Summary\n\nAn inventory service that tracks stock levels; code in src/.\n"
                    "Its configuration (.env) was not readable to me, as intended.\n",
                },
            }
        ],
    },
    {
        "content": "A checker should look at src/; it gets read on src/ and three model calls, nothing more.",
        "tool_calls": [
            {
                "name": "proc_spawn",
                "arguments": {
                    "name": "checker",
                    "goal": "Check the code in src/ and report",
                    "grants": [
                        {"pattern": "fs:src/*", "rights": ["read"]},
                        {"pattern": "model:script", "rights": ["execute"]},
                    ],
                    "budget": {"model_calls": 3},
                },
            },
            {"name": "proc_wait", "arguments": {}},
        ],
    },
    {
        "content": "Done.",
        "tool_calls": [{"name": "human_tell", "arguments": {"text": "SUMMARY.md is written; the checker reported."}}],
    },
    {
        "proc": "checker",
        "content": "Reading the code I was given.",
        "tool_calls": [{"name": "fs_read", "arguments": {"path": "src/app.py"}}],
    },
    {
        "proc": "checker",
        "content": "And the configuration?",
        "tool_calls": [{"name": "fs_read", "arguments": {"path": ".env"}}],
    },
    {
        "proc": "checker",
        "content": "Reporting.",
        "tool_calls": [
            {"name": "proc_exit", "arguments": {"result": "src/app.py: stock() always returns 0; .env is not mine"}}
        ],
    },
]


_HINT = "--workspace"


def make_workspace(where: str | None) -> tuple[str, bool]:
    """Create the demo files (README, a secret .env, src/) and the script; return (the workspace,
    whether it is a temporary directory to remove afterwards).

    Raises click.BadParameter (a usage error, exit 2) when ``where`` exists and is not an empty
    directory: the demo never writes into a directory that holds anything of the user's.
    """
    if where is None:
        ws, temporary = tempfile.mkdtemp(prefix="alos-demo-"), True
    else:
        ws, temporary = os.path.realpath(where), False
        if os.path.lexists(ws) and not os.path.isdir(ws):
            raise click.BadParameter(f"{where} exists and is not a directory; name a new directory", param_hint=_HINT)
        if os.path.isdir(ws) and os.listdir(ws):
            raise click.BadParameter(
                f"{where} is not empty; the demo writes only into a directory it creates (or an empty "
                "one), so that nothing of yours is overwritten. Name a new directory",
                param_hint=_HINT,
            )
        os.makedirs(ws, exist_ok=True)
    os.makedirs(os.path.join(ws, "src"))
    files = {
        "README.md": README,
        ".env": "DATABASE_PASSWORD=hunter2\nAPI_KEY=sk-demo-not-a-real-key\n",
        "src/app.py": "def stock(item: str) -> int:\n    return 0\n",
    }
    for name, content in files.items():
        with open(os.path.join(ws, name), "x", encoding="utf-8") as f:
            f.write(content)
    os.makedirs(os.path.join(ws, ".alos"))
    with open(os.path.join(ws, ".alos", "demo-script.jsonl"), "x", encoding="utf-8") as f:
        f.write("\n".join(codec.dumps(turn) for turn in SCRIPT) + "\n")
    return ws, temporary


def run_demo(where: str | None, interactive: bool, real: bool = False, console: int | None = None) -> int:
    """Run the demo; return the exit code (0 when the story ran and the audit chain verifies).

    With ``real`` the local model (alos.realmodel, 'make real-model') plays the agent instead of
    the script: what it does is its own choice, under the same grants and a budget. With
    ``console`` (a port; 0: any free one) the web console serves the demo's store and the person
    answers the approval there; the demo then stays until Ctrl-C or SIGTERM.
    A temporary workspace is removed afterwards, whatever happens; one the user named is kept.
    """
    out = Screen()
    if real:
        missing = realmodel.installed()
        if missing is not None:
            raise click.UsageError(f"alos demo --real needs the local model: {missing}")
    ws, temporary = make_workspace(where)
    try:
        if real:
            out.say("starting the local model (Qwen2.5-Coder-0.5B on llama.cpp, loopback only)…")
            with realmodel.serve() as base_url:
                code = _play(out, ws, interactive, base_url, console)
        else:
            code = _play(out, ws, interactive, console=console)
    finally:
        if temporary:
            shutil.rmtree(ws, ignore_errors=True)
    name = command()
    if temporary:
        out.say("The demo's temporary workspace was removed. To keep one and look around afterwards:")
        out.say(f"  {name} demo --workspace alos-demo && {name} ps --all --store alos-demo/.alos/store.db")
    else:
        store = shlex.quote(os.path.relpath(os.path.join(ws, ".alos", "store.db")))
        out.say(f"Look around: {name} ps --all --store {store}")
        out.say(f"             {name} audit --store {store}")
    return code


REAL_GOAL = "Read README.md, then write a one-line summary of it to SUMMARY.md, then exit with that line."
REAL_MODEL = "openai:qwen2.5-coder-0.5b"  # llama.cpp's server answers to any model name
# a small image: a 0.5B model on two cores answers a short prompt in seconds (base's twenty tools
# make a 3,200-token prompt); constrained to one call of a declared tool a reply, as it needs
REAL_IMAGE = """\
name: demo
description: reads, lists and writes files, then exits
prompt: |
  You work on the files of this workspace. Call one tool per reply.
  When the goal is done, call proc_exit with a one-line result.
tools: [fs.list, fs.read, fs.write, proc.exit]
model:
  temperature: 0
  max_tokens: 256
  constrain: true
"""
REAL_BUDGET = {"model_calls": 12, "tokens": 60_000}  # a small model that loses its way stops here


def _play(out: Screen, ws: str, interactive: bool, base_url: str | None = None, console: int | None = None) -> int:
    store = os.path.join(ws, ".alos", "store.db")
    grants = [
        parse_grant("fs:*=read,list", Effect.ALLOW, ws),
        parse_grant("fs:.env=read", Effect.DENY, ws),
        parse_grant("fs:*=write", Effect.ASK, ws),
        parse_grant("proc:spawn=spawn", Effect.ALLOW, ws),
    ]
    out.show(Rule("alos demo"))
    out.say(f"workspace  {ws}")
    out.say(f"store      {store}")
    out.say("grants     --allow 'fs:*=read,list'  --deny 'fs:.env=read'  --ask 'fs:*=write'")
    out.say("           --allow 'proc:spawn=spawn'")
    out.say("")
    trace = show.Trace(out)
    models = None
    model = "script:" + os.path.join(ws, ".alos", "demo-script.jsonl")
    goal, budget, image = "Summarize this project into SUMMARY.md", None, "base"
    if base_url is not None:
        model, goal, budget = REAL_MODEL, REAL_GOAL, REAL_BUDGET
        image = os.path.join(ws, ".alos", "demo-image.yaml")
        with open(image, "x", encoding="utf-8") as f:
            f.write(REAL_IMAGE)
        models = load_config(ws, {"model": model, "base_url": base_url, "constrain": "true"}, env={})
        out.say(f"model      {model} at {base_url} (constrained to one tool call a reply)")
    rt = open_runtime(store, host=True, human=CallbackHuman(show.tell(out, trace.names)), models=models)
    try:
        rt.listen(trace)
        rt.listen_tokens(trace.token)
        pid = asyncio.run(rt.spawn(image, goal, workspace=ws, model=model, grants=grants, budget=budget))
        if console is not None:
            code = asyncio.run(_in_console(rt, out, pid, console))
        else:
            mode = "prompt" if interactive and sys.stdin.isatty() else "always"
            driver = Driver(rt, out, mode, by="" if mode == "prompt" else "demo (playing the human)")
            code = asyncio.run(driver.drive([pid]))
        records = list(rt.audit())
        verdict = rt.verify()
        procs, budgets = rt.processes(), rt.budgets()
    finally:
        rt.close()
    out.show(Rule("processes"))
    out.show(show.process_table(procs, budgets, out.width))
    ok = _report(out, ws, pid, procs, records, verdict, real=base_url is not None)
    return 0 if code == 0 and ok else 1


async def _in_console(rt: Runtime, out: Screen, pid: int, port: int) -> int:
    """Host the demo with the console open until Ctrl-C or SIGTERM; return 0 when ``pid`` exited ok."""
    from alos.cli.serve import console_server, until_stopped

    server = console_server(rt, "127.0.0.1", port, out, "this demo runs these processes")
    out.say(("Open the console: the agent will ask to write SUMMARY.md; approve it there ", "bold"), "(or deny it).")

    def ended(ev: Event) -> None:
        if ev.pid == pid and ev.kind == "state" and ev.detail.get("state") == "exited":
            out.say(("The story is done: ", "bold"), "look around the console (audit, verify), then Ctrl-C.")

    rt.listen(ended)
    await until_stopped(asyncio.ensure_future(rt.serve()), server)
    await rt.close_models()
    got = rt.process(pid)
    return 0 if got.exit is not None and got.exit.value == "ok" else 1


def _report(
    out: Screen, ws: str, pid: int, procs: list[Process], records: list[AuditRecord], verdict: ChainCheck, real: bool
) -> bool:
    """Print the audit summary, the chain's verdict and SUMMARY.md; return whether the chain verifies."""
    out.show(Rule("audit"))
    counts = Counter(r.decision for r in records if r.pid != 0)
    out.say(f"{len(records)} audit records; decisions: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    calls = sum(1 for r in records if r.pid == pid and r.syscall == "model.call")
    turns = next((p.turns for p in procs if p.pid == pid), 0)
    if real:
        out.say(f"model calls by process {pid}: {calls}, for {turns} turns (a real model: its choices, our grants)")
    else:
        out.say(
            f"model calls by process {pid}: {calls}, for {turns} turns and the last call that found nothing more "
            "to do: the approved write resumed the same action, with no new model call"
        )
    if not real:
        out.say("its spending above counts the checker's: a child's spending counts against every ancestor")
    if verdict.ok:
        out.say(("✓ alos audit verify: chain intact", "green"), f" ({verdict.count} records)")
    else:
        out.say((f"✗ alos audit verify: {verdict.reason}", "red"))
    summary = os.path.join(ws, "SUMMARY.md")
    if os.path.exists(summary):
        out.show(Rule("SUMMARY.md"))
        with open(summary, encoding="utf-8") as f:
            out.say(f.read().rstrip(), keep_newlines=True)
    out.show(Rule())
    return verdict.ok
