"""The real model's own check: an alos agent on it reads a file and exits with its contents.

``make real-model`` runs it after installing (``python -m alos.realcheck``), and the slow test of
the local model runs the same task through the CLI. The agent runs a two-tool image (IMAGE): the
model's whole prompt stays small (about 700 tokens against 3,200 with ``base``'s twenty tools),
which is what a 0.5B model on two shared cores can answer in seconds. Requests are constrained
to one call of a declared tool, as REAL-MODEL.md found this model needs.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time

from alos import realmodel

TASK = "Read notes.txt and exit with its contents."
NOTES = "The meeting moved to Thursday at 10.\n"
MODEL = "openai:qwen2.5-coder-0.5b"  # llama.cpp's server answers to any model name
IMAGE = """\
name: filereader
description: reads files and exits with what it found
prompt: |
  You read files and report them. Call one tool per reply.
  When you have what the goal asks for, call proc_exit with it as the result.
tools: [fs.read, proc.exit]
model:
  temperature: 0
  max_tokens: 256
  constrain: true
context:
  max_tokens: 3000
"""


def workspace(where: str) -> tuple[str, str]:
    """Write the task's workspace (notes.txt) and image file under ``where``; return their paths."""
    ws = os.path.join(where, "ws")
    os.makedirs(ws, exist_ok=True)
    with open(os.path.join(ws, "notes.txt"), "w", encoding="utf-8") as f:
        f.write(NOTES)
    image = os.path.join(where, "filereader.yaml")
    with open(image, "w", encoding="utf-8") as f:
        f.write(IMAGE)
    return ws, image


async def _run(base_url: str, where: str) -> tuple[str, str | None, int]:
    import alos
    from alos.config import load

    ws, image = workspace(where)
    models = load(ws, {"model": MODEL, "base_url": base_url}, env={})
    rt = alos.open(os.path.join(where, "store", "store.db"), host=True, models=models)
    try:
        grants = [alos.parse_grant("fs:*=read", alos.Effect.ALLOW, ws)]
        pid = await rt.spawn(image, TASK, workspace=ws, model=MODEL, grants=grants, budget={"model_calls": 6})
        await rt.run()
        await rt.close_models()
        p = rt.process(pid)
        return str(p.exit), p.result, p.turns
    finally:
        rt.close()


def check(progress: object = print) -> bool:
    """Serve the model, run the task; print what happened; return whether the agent exited ok
    with the file's contents."""
    say = progress if callable(progress) else print
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="alos-realcheck-") as where, realmodel.serve() as url:
        say(f"real model up at {url}; running the agent: {TASK}")
        status, result, turns = asyncio.run(_run(url, where))
    ok = status == "ok" and (result or "").strip() == NOTES.strip()
    took = time.monotonic() - started
    say(f"agent exited {status} after {turns} model turns in {took:.1f} s: {result!r}")
    say("real model check: " + ("ok" if ok else f"FAILED: expected {NOTES.strip()!r}"))
    return ok


def main() -> int:
    """``python -m alos.realcheck``: exit 0 when the check passes, 1 when not or not installed."""
    reason = realmodel.installed()
    if reason is not None:
        print(f"alos.realcheck: the real model is not installed: {reason}", file=sys.stderr)
        return 1
    return 0 if check(lambda line: print(line, flush=True)) else 1


if __name__ == "__main__":
    sys.exit(main())
