"""Drive a store's processes from a terminal: run until idle, then get human answers or stop.

Exit codes: 0 the root process(es) exited ok; 1 one failed (or nothing can make progress);
3 processes wait on a human and no one can answer in this terminal.
While a prompt waits, answers given in another terminal ('alos approve') are noticed too.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import select
import sys
from dataclasses import dataclass

from rich.console import Console

from alos import limits
from alos.cli.show import request_panel
from alos.errors import Conflict
from alos.runtime import Runtime
from alos.types import HumanRequest, Process, ProcState, RequestKind, RequestState, Wait

EXIT_OK, EXIT_FAILED, EXIT_WAITING = 0, 1, 3


def who() -> str:
    """Return who is answering: the OS user and, when there is one, the terminal."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid {os.getuid()}"
    try:
        return f"{user} ({os.ttyname(0)})"
    except OSError:
        return user


@dataclass
class Driver:
    rt: Runtime
    ui: Console  # where prompts and notes go (stderr when stdout carries JSON)
    approve: str  # prompt | never | always
    by: str = ""
    hinted: bool = False

    def can_prompt(self) -> bool:
        return self.approve == "prompt" and sys.stdin.isatty()

    async def drive(self, roots: list[int]) -> int:
        """Run until the roots exit and no process waits on a human, or a human is needed and
        cannot be asked here; return the exit code."""
        while True:
            await self.rt.run()
            procs = {p.pid: p for p in self.rt.processes()}
            watched = [procs[r] for r in roots if r in procs]
            if not watched:
                self.ui.print("no processes in this store to run")
                return EXIT_OK
            if any(p.state is ProcState.RUNNABLE for p in procs.values()):
                continue  # answered elsewhere meanwhile
            pending = self.rt.requests(RequestState.PENDING)
            if all(p.state is ProcState.EXITED for p in watched) and not pending:
                return EXIT_OK if all(p.exit and p.exit.value == "ok" for p in watched) else EXIT_FAILED
            if not pending:
                held = [p for p in procs.values() if p.state is ProcState.PAUSED or p.wait is Wait.MESSAGE]
                if not held:
                    self.ui.print("alos: no process can make progress and none waits on a human", style="red")
                    return EXIT_FAILED
                if not await self.wait_for_person(held):
                    return EXIT_WAITING
                continue  # another terminal sent, resumed or answered: run again
            if not await self.answer(pending):
                self.stopped(pending)
                return EXIT_WAITING

    async def wait_for_person(self, held: list[Process]) -> bool:
        """Processes wait for a message or a resume that only a person can give: say how, and in a
        terminal watch the store until one comes; return False when no one here can give it."""
        if not self.hinted:
            for p in held:
                how = f"'alos resume {p.pid}'" if p.state is ProcState.PAUSED else f"'alos send {p.pid} TEXT'"
                what = "is paused" if p.state is ProcState.PAUSED else "waits for a message"
                self.ui.print(f"process {p.pid} ({p.name}) {what}; {how} from another terminal", style="yellow")
            self.hinted = True
        if not self.can_prompt():
            self.ui.print("then continue with 'alos resume' (pass the same --store).")
            return False
        while not self.rt.refresh():
            await asyncio.sleep(limits.POLL_SECONDS)
        return True

    async def answer(self, pending: list[HumanRequest]) -> bool:
        """Get answers to ``pending`` by the --approve mode; return False if no one can answer."""
        if self.approve == "always":
            approvals = [r for r in pending if r.kind is RequestKind.APPROVAL]
            for req in approvals:
                self.ui.print(request_panel(req), soft_wrap=False)
                self.ui.print(f"      (--approve always: approving request {req.id} once)", style="dim")
                await self._answer(req.id, "once", None, self.by or "auto (--approve always)")
            return bool(approvals)
        if not self.can_prompt():
            return False
        req = pending[0]
        self.ui.print(request_panel(req), soft_wrap=False)
        got = self._read_answer(req)
        if got is None:  # skipped, end of input, or answered in another terminal
            now = self.rt.request(req.id)
            return now is not None and now.state is not RequestState.PENDING
        verdict, text = got
        await self._answer(req.id, verdict, text, self.by or who())
        return True

    async def _answer(self, rid: int, verdict: str, text: str | None, by: str) -> None:
        try:
            await self.rt.answer(rid, verdict, text, by)
        except Conflict as err:
            self.ui.print(f"      {err}", style="yellow")

    def _read_answer(self, req: HumanRequest) -> tuple[str, str | None] | None:
        question = req.kind is RequestKind.QUESTION
        prompt = (
            "answer (empty line: leave it for later) > " if question else "approve [o]nce, [a]lways, [d]eny, [s]kip > "
        )
        while True:
            self.ui.print(prompt, end="")
            line = self._line(req)
            if line is None:
                return None
            line = line.strip()
            if question:
                return ("answer", line) if line else None
            choice = line.lower()[:1]
            if choice == "o":
                return ("once", None)
            if choice == "a":
                return ("always", None)
            if choice == "d":
                self.ui.print("reason the agent will see (optional) > ", end="")
                reason = self._line(req)
                return ("deny", (reason or "").strip() or None)
            if choice == "s":
                return None
            self.ui.print("please type o, a, d or s", style="yellow")

    def _line(self, req: HumanRequest) -> str | None:
        """Return a line typed here, or None on end of input or when the request was answered elsewhere."""
        while True:
            ready, _, _ = select.select([sys.stdin], [], [], limits.POLL_SECONDS)
            if ready:
                line = sys.stdin.readline()
                return line if line else None
            self.rt.refresh()
            now = self.rt.request(req.id)
            if now is not None and now.state is not RequestState.PENDING:
                self.ui.print(f"\nrequest {req.id} was {now.state.value} by {now.answered_by} in another terminal")
                return None

    def stopped(self, pending: list[HumanRequest]) -> None:
        """Tell the person how to carry on after stopping for a human."""
        self.ui.print(
            f"\n{len(pending)} request(s) wait for a human; the processes are saved in {self.rt.store.path}.",
            style="yellow",
        )
        for req in pending:
            self.ui.print(request_panel(req), soft_wrap=False)
        self.ui.print(
            "Answer with 'alos approve ID [--always]', 'alos deny ID [--reason TEXT]' or 'alos answer ID TEXT',\n"
            "then continue with 'alos resume' (pass the same --store)."
        )
