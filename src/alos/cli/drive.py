"""Drive a store's processes from a terminal: run until idle, then get human answers or stop.

A run watches its own processes: the roots it was given and every process made under them
(the maker line). Other processes in the store run too, but neither their requests nor their
exits decide the exit code: 0 the roots exited ok; 1 one failed (or nothing can make
progress); 3 a watched process waits on a person and no one can answer in this terminal.
The host stays while a person can answer here (a TTY with --approve prompt); while a prompt
waits, answers given in another terminal ('alos approve') are noticed too. Ctrl-C stops at once.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from alos.cli.screen import Screen, command
from alos.cli.show import request_panel
from alos.errors import Conflict
from alos.types import HumanRequest, Pid, Process, ProcState, RequestKind, RequestState, Wait

if TYPE_CHECKING:
    from alos.runtime import Runtime

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


def family(procs: Iterable[Process], roots: Iterable[Pid]) -> set[Pid]:
    """Return ``roots`` and every process made under them (by the maker line, which adoption
    never changes), of ``procs``."""
    mine = set(roots)
    for p in sorted(procs, key=lambda p: p.pid):  # a maker's pid is always smaller than its child's
        if p.creator in mine:
            mine.add(p.pid)
    return mine


@dataclass
class Driver:
    rt: Runtime
    ui: Screen  # where prompts and notes go (stderr when stdout carries JSON)
    approve: str  # prompt | never | always
    by: str = ""
    hinted: bool = False

    def can_prompt(self) -> bool:
        return self.approve == "prompt" and sys.stdin.isatty()

    async def drive(self, roots: list[Pid]) -> int:
        """Run until the roots exit and none of their processes waits on a human, or a human is
        needed and cannot be asked here; return the exit code."""
        try:
            return await self._drive(roots)
        finally:
            await self.rt.close_models()  # in the loop that opened them

    async def _drive(self, roots: list[Pid]) -> int:
        while True:
            await self.rt.run()
            procs = {p.pid: p for p in self.rt.processes()}
            mine = family(procs.values(), roots)
            watched = [procs[r] for r in roots if r in procs]
            if not watched:
                self.ui.say("no processes in this store to run")
                return EXIT_OK
            if any(p.state is ProcState.RUNNABLE for p in procs.values()):
                continue  # answered elsewhere meanwhile
            if await self.rt.settle():
                continue  # an answers file answered some: run again
            pending = [r for r in self.rt.requests(RequestState.PENDING) if r.pid in mine]
            if all(p.state is ProcState.EXITED for p in watched) and not pending:
                return EXIT_OK if all(p.exit and p.exit.value == "ok" for p in watched) else EXIT_FAILED
            if not pending:
                held = [procs[p] for p in sorted(mine) if _held(procs[p])]
                if not held:
                    self.ui.say(("alos: no process can make progress and none waits on a human", "red"))
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
                how = (
                    f"'{command()} resume {p.pid}'"
                    if p.state is ProcState.PAUSED
                    else f"'{command()} send {p.pid} TEXT'"
                )
                what = "is paused" if p.state is ProcState.PAUSED else "waits for a message"
                self.ui.say((f"process {p.pid} ({p.name}) {what}; {how} from another terminal", "yellow"))
            self.hinted = True
        if not self.can_prompt():
            self.ui.say(f"then continue with '{command()} resume' (pass the same --store).")
            return False
        while not await self.rt.changed():
            pass
        return True

    async def answer(self, pending: list[HumanRequest]) -> bool:
        """Get answers to ``pending`` by the --approve mode; return False if no one can answer."""
        if self.approve == "always":
            approvals = [r for r in pending if r.kind is RequestKind.APPROVAL]
            for req in approvals:
                self.ui.show(request_panel(req), soft_wrap=False)
                self.ui.say((f"      (--approve always: approving request {req.id} once)", "dim"))
                await self._answer(req.id, "once", None, self.by or "auto (--approve always)")
            return bool(approvals)
        if not self.can_prompt():
            return False
        req = pending[0]
        self.ui.show(request_panel(req), soft_wrap=False)
        got = await self._read_answer(req)
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
            self.ui.say((f"      {err}", "yellow"))

    async def _read_answer(self, req: HumanRequest) -> tuple[str, str | None] | None:
        question = req.kind is RequestKind.QUESTION
        prompt = (
            "answer (empty line: leave it for later) > "
            if question
            else "approve [o]nce, [a]lways, [d]eny, [f]ull view, [s]kip > "
        )
        while True:
            self.ui.say(prompt, end="")
            line = await self._line(req)
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
                self.ui.say("reason the agent will see (optional) > ", end="")
                reason = await self._line(req)
                return ("deny", (reason or "").strip() or None)
            if choice == "f":
                self.ui.show(request_panel(req, full=True), soft_wrap=False)
                continue
            if choice == "s":
                return None
            self.ui.say(("please type o, a, d, f or s", "yellow"))

    async def _line(self, req: HumanRequest) -> str | None:
        """Return a line typed here, or None on end of input or when the request was answered
        elsewhere. Waits on the event loop (on stdin and the store's bell: no polling), so Ctrl-C
        stops it at once."""
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        fd = sys.stdin.fileno()
        loop.add_reader(fd, ready.set)
        try:
            while True:
                await self.rt.changed(also=ready)  # typed here, or answered elsewhere?
                if ready.is_set():
                    line = sys.stdin.readline()
                    return line if line else None
                now = self.rt.request(req.id)
                if now is not None and now.state is not RequestState.PENDING:
                    self.ui.say("")
                    self.ui.say(f"request {req.id} was {now.state.value} by {now.answered_by} in another terminal")
                    return None
        finally:
            loop.remove_reader(fd)

    def stopped(self, pending: list[HumanRequest]) -> None:
        """Tell the person how to carry on after stopping for a human."""
        self.ui.say("")
        self.ui.say(
            (f"{len(pending)} request(s) wait for a human; the processes are saved in {self.rt.store.path}.", "yellow")
        )
        for req in pending:
            self.ui.show(request_panel(req), soft_wrap=False)
        name = command()
        self.ui.say(
            f"Answer with '{name} approve ID [--always]', '{name} deny ID [--reason TEXT]' or '{name} answer ID TEXT',"
        )
        self.ui.say(f"then continue with '{name} resume' (pass the same --store).")


def _held(p: Process) -> bool:
    """Return whether ``p`` waits for what only a person can give: a resume or a message."""
    return p.state is ProcState.PAUSED or (p.state is ProcState.WAITING and p.wait is Wait.MESSAGE)
