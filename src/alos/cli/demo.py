"""``alos demo``: the authority path in one minute, offline, in a fresh workspace.

An agent (a scripted model) lists and reads the workspace, is denied a secret, is refused the
store directory, asks a human before writing, resumes the same action after approval (no new
model call), starts a checker process that may read only src/ within a budget, waits for its
result, tells the human, and exits; then the process tree, the audit summary and a verified chain.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections import Counter

from rich.rule import Rule

from alos import codec
from alos.cli import show
from alos.cli.drive import Driver
from alos.providers.human import CallbackHuman
from alos.rights import Effect, parse_grant
from alos.runtime import open as open_runtime

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


def make_workspace(where: str | None) -> str:
    """Create the demo files (README, a secret .env, src/) and the script; return the workspace."""
    ws = os.path.realpath(where) if where else tempfile.mkdtemp(prefix="alos-demo-")
    os.makedirs(os.path.join(ws, "src"), exist_ok=True)
    files = {
        "README.md": README,
        ".env": "DATABASE_PASSWORD=hunter2\nAPI_KEY=sk-demo-not-a-real-key\n",
        "src/app.py": "def stock(item: str) -> int:\n    return 0\n",
    }
    for name, text in files.items():
        with open(os.path.join(ws, name), "w", encoding="utf-8") as f:
            f.write(text)
    os.makedirs(os.path.join(ws, ".alos"), exist_ok=True)
    with open(os.path.join(ws, ".alos", "demo-script.jsonl"), "w", encoding="utf-8") as f:
        f.write("\n".join(codec.dumps(turn) for turn in SCRIPT) + "\n")
    return ws


def run_demo(where: str | None, interactive: bool) -> int:
    """Run the demo; return the exit code (0 when the story ran and the audit chain verifies)."""
    out = show.console()
    ws = make_workspace(where)
    store = os.path.join(ws, ".alos", "store.db")
    grants = [
        parse_grant("fs:*=read,list", Effect.ALLOW, ws),
        parse_grant("fs:.env=read", Effect.DENY, ws),
        parse_grant("fs:*=write", Effect.ASK, ws),
        parse_grant("proc:spawn=spawn", Effect.ALLOW, ws),
    ]
    out.print(Rule("alos demo"))
    out.print(f"workspace  {ws}\nstore      {store}")
    out.print(
        "grants     --allow 'fs:*=read,list'  --deny 'fs:.env=read'  --ask 'fs:*=write'  --allow 'proc:spawn=spawn'\n"
    )
    trace = show.Trace(out)
    rt = open_runtime(store, host=True, human=CallbackHuman(show.tell(out, trace.names)))
    try:
        rt.listen(trace)
        pid = asyncio.run(
            rt.spawn(
                "base",
                "Summarize this project into SUMMARY.md",
                workspace=ws,
                model="script:" + os.path.join(ws, ".alos", "demo-script.jsonl"),
                grants=grants,
            )
        )
        mode = "prompt" if interactive and sys.stdin.isatty() else "always"
        driver = Driver(rt, out, mode, by="" if mode == "prompt" else "demo (playing the human)")
        code = asyncio.run(driver.drive([pid]))
        records = list(rt.audit())
        verdict = rt.verify()
        procs, budgets = rt.processes(), rt.budgets()
    finally:
        rt.close()
    out.print(Rule("processes"))
    out.print(show.process_table(procs, budgets, out.width))
    out.print(Rule("audit"))
    counts = Counter(r.decision for r in records if r.pid != 0)
    out.print(f"{len(records)} audit records; decisions: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    calls = sum(1 for r in records if r.pid == pid and r.syscall == "model.call")
    turns = next((p.turns for p in procs if p.pid == pid), 0)
    out.print(
        f"model calls by process {pid}: {calls}, for {turns} turns and the last call that found nothing more to do: "
        "the approved write resumed the same action, with no new model call"
    )
    out.print("its spending above counts the checker's: a child's spending counts against every ancestor")
    if verdict.ok:
        out.print(show.line(("✓ alos audit verify: chain intact", "green"), f" ({verdict.count} records)"))
    else:
        out.print(show.line((f"✗ alos audit verify: {verdict.reason}", "red")))
    summary = os.path.join(ws, "SUMMARY.md")
    if os.path.exists(summary):
        out.print(Rule("SUMMARY.md"))
        with open(summary, encoding="utf-8") as f:
            out.print(f.read().rstrip())
    out.print(Rule())
    out.print(f"Look around: alos ps --store {store}\n             alos audit --store {store}")
    return 0 if code == 0 and verdict.ok else 1
