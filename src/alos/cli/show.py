"""How the CLI shows things to a person: the live trace, the process table and approval panels.

Built only from ``screen.text``/``safe`` pieces: whatever came from a process or a model is made
safe before it is printed. An approval panel shows everything an answer would authorize.
"""

from __future__ import annotations

from typing import Any

from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from alos import codec, limits
from alos.cli.screen import Screen, clip, clip_left, command, row, text
from alos.requestform import form
from alos.types import Event, HumanRequest, Process, state_words


class Trace:
    """Prints events as a readable, coloured trace of what the processes do."""

    def __init__(self, screen: Screen) -> None:
        self.screen = screen
        self.names: dict[int, str] = {}
        self.streaming: int | None = None  # the process whose model's words are being printed as they come
        self.streamed: set[int] = set()  # processes whose reply was printed as it came; its turn is not again

    def token(self, pid: int, piece: str) -> None:
        """Print a piece of a model's reply as it arrives (made safe; newlines kept)."""
        if self.streaming != pid:
            self.end_stream()
            self.screen.say((f"[{self.who(pid)}] ", "cyan"), ("model: ", "dim"), end="")
            self.streaming = pid
            self.streamed.add(pid)
        self.screen.say(piece, end="", keep_newlines=True)

    def end_stream(self) -> None:
        """End the line of a reply being streamed, if any."""
        if self.streaming is not None:
            self.streaming = None
            self.screen.say("")

    def who(self, pid: int) -> str:
        return f"{pid} {self.names.get(pid, '')}".strip()

    def __call__(self, ev: Event) -> None:
        show = getattr(self, "_" + ev.kind, None)
        if show is not None:
            streamed = ev.kind == "turn" and ev.pid in self.streamed
            if streamed:
                self.streamed.discard(ev.pid)
            self.end_stream()
            show(ev.pid, {**ev.detail, "content": ""} if streamed else ev.detail)

    def _spawn(self, pid: int, d: dict[str, Any]) -> None:
        self.names[pid] = str(d.get("name", ""))
        self.screen.say(
            ("● ", "bold cyan"),
            (f"process {self.who(pid)}", "bold"),
            f" started, image {d.get('image')}: ",
            (clip(d.get("goal", "")), "italic"),
        )

    def _turn(self, pid: int, d: dict[str, Any]) -> None:
        if d.get("content"):
            self.screen.say((f"[{self.who(pid)}] ", "cyan"), ("model: ", "dim"), clip(d["content"], 120))
        for c in d.get("calls", []):
            args = c.get("arguments", {})
            shown = " ".join(f"{clip(k, 20)}={clip(codec.dumps(v), 40)}" for k, v in args.items())
            self.screen.say("    → ", (clip(c.get("name"), 60), "bold"), " ", (shown, "dim"))

    def _syscall(self, pid: int, d: dict[str, Any]) -> None:
        if pid == 0 or (d["syscall"] in ("model.call", "proc.exit") and d["outcome"] == "ok"):
            return
        if d["outcome"] == "parked":
            return  # the request event says it, with the request id
        decision, outcome = d["decision"], d["outcome"]
        if outcome == "ok":
            mark: tuple[str, str] = (f"✓ {decision}", "green")
        elif decision in ("deny", "rejected"):
            mark = (f"✗ {decision}", "bold red")
        else:  # refused before any decision (bad arguments, no such tool, a budget) or failed
            mark = (f"✗ {outcome}", "red")
        err = d.get("detail", {}).get("error")
        self.screen.say(
            "      ",
            mark,
            f" {d['syscall']} ",
            (clip_left(d["resource"], 70), "dim"),
            (" — " + clip(err, 140), "red") if err else "",
        )

    def _request(self, pid: int, d: dict[str, Any]) -> None:
        what = f"{d['syscall']} {clip_left(d['resource'], 70)}" if d["kind"] != "question" else "a question"
        self.screen.say(
            ("      ? ", "yellow"),
            (what, "yellow"),
            f" — process {self.who(pid)} waits for a human (request {d['id']})",
        )

    def _answer(self, pid: int, d: dict[str, Any]) -> None:
        verdict = VERDICT_WORDS.get(d["verdict"], d["verdict"])
        self.screen.say(
            ("      ✔ ", "red" if d["verdict"] == "deny" else "green"),
            f"request {d['id']} {verdict} by {clip(d['by'], 40)}",
            (f": {clip(d['text'], 80)}" if d.get("text") else "", "dim"),
        )

    def _result(self, pid: int, d: dict[str, Any]) -> None:
        if d.get("ok"):
            self.screen.say(("      ← " + clip(d.get("text", ""), 90), "dim"))

    def _state(self, pid: int, d: dict[str, Any]) -> None:
        if d["state"] == "exited":
            style = "bold green" if d.get("exit") == "ok" else "bold red"
            self.screen.say(
                (f"● process {self.who(pid)} exited {d.get('exit')}", style),
                # a failure's reason is read whole (a replay's first difference is at its end)
                f": {clip(d['result'], 100 if d.get('exit') == 'ok' else 1_000)}" if d.get("result") else "",
            )

    def _crash(self, pid: int, d: dict[str, Any]) -> None:
        self.screen.say((f"      ! process {self.who(pid)} failed: {clip(d.get('error'), 200)}", "bold red"))

    def _signal(self, pid: int, d: dict[str, Any]) -> None:
        sender = "the host" if not d.get("from") else f"process {self.who(int(d['from']))}"
        self.screen.say((f"      ⚡ {d.get('signal')} → process {self.who(pid)} from {sender}", "magenta"))

    def _adopt(self, pid: int, d: dict[str, Any]) -> None:
        heir = "the host" if d.get("parent") is None else f"process {d['parent']}"
        self.screen.say((f"      process {self.who(pid)} is adopted by {heir}", "dim"))

    def _exec(self, pid: int, d: dict[str, Any]) -> None:
        self.screen.say((f"● process {self.who(pid)} exec'd image {d.get('image')}", "cyan"))

    def _recovered(self, pid: int, d: dict[str, Any]) -> None:
        self.screen.say((f"● process {self.who(pid)} resumes after a host stop", "yellow"))


VERDICT_WORDS = {"once": "approved once", "always": "approved always", "deny": "denied", "answer": "answered"}


def tell(screen: Screen, names: dict[int, str]) -> Any:
    """Return a human.tell sink that prints what a process says."""

    def show(pid: int, message: str) -> None:
        who = f"process {pid} {names.get(pid, '')}".strip()
        screen.say(("  📣 ", "magenta"), (who + " says: ", "magenta"), indented(message, "   ┆ "), keep_newlines=True)

    return show


def request_panel(req: HumanRequest, full: bool = False) -> Panel:
    """Return a panel showing everything that answering ``req`` would let happen (requestform.form,
    as the console shows it too).

    A diff longer than limits.DIFF_SHOWN_LINES is cut, saying how much is not shown and how to
    see all of it, unless ``full``.
    """
    f = form(req)
    body = Text(overflow="fold")
    if f.question is not None:
        question = indented(f.question, "┆ ")
        body.append_text(row(("question: ", "bold"), question, keep_newlines=True))
        body.append_text(text(("answer with: ", "dim"), (f"{command()} answer {req.id} TEXT", "bold")))
        return _panel(req, f.title, body)
    syscall, right, resource = f.headline
    body.append_text(row((f"{syscall} ", "bold"), f"needs {right} on ", (resource, "bold")))
    if f.note:
        body.append_text(row((f.note, "yellow")))
    for key, lines in f.fields:
        listed = req.detail.get(key)
        if not isinstance(listed, list) or not listed:
            body.append_text(row(("  " + key + ": ", "dim"), lines[0]))
        else:
            body.append_text(row(("  " + key + ":", "dim")))
            for line in lines:
                body.append_text(row("    " + line))
    if f.diff is not None:
        _diff(body, req.id, f.diff, full)
    elif f.preview is not None:
        body.append_text(row(("  preview: ", "dim"), f.preview))
    if f.diff_omitted:
        body.append_text(row(("  no diff: ", "dim"), f.diff_omitted))
    body.append_text(
        text(
            ("answer with: ", "dim"),
            (
                f"{command()} approve {req.id}{' [--always]' if f.always else ''}  |  "
                f"{command()} deny {req.id} [--reason TEXT]",
                "bold",
            ),
        )
    )
    return _panel(req, f.title, body)


def _panel(req: HumanRequest, title: str, body: Text) -> Panel:
    return Panel(
        body, title=text(title), title_align="left", border_style="yellow" if req.state.value == "pending" else "dim"
    )


def _diff(body: Text, rid: int, diff: list[str], full: bool) -> None:
    shown = diff if full else diff[: limits.DIFF_SHOWN_LINES]
    body.append_text(row(("  diff:", "dim")))
    for line in shown:
        style = "green" if line.startswith("+") else "red" if line.startswith("-") else "dim"
        body.append_text(row(("  " + line, style)))
    hidden = len(diff) - len(shown)
    if hidden:
        body.append_text(
            row((f"  … {hidden} more diff line(s) not shown: '{command()} approvals --full {rid}' shows all", "yellow"))
        )


_SHORT = {
    "model_calls": "calls",
    "tokens": "tok",
    "tool_calls": "tools",
    "wall_seconds": "wall",
    "children": "kids",
    "bytes_written": "bytes",
}


def spent(amounts: dict[str, tuple[int | None, int]]) -> str:
    """Return a process's budget line: what it (with its descendants) spent, over its limits."""
    parts = []
    for name, short in _SHORT.items():
        lim, used = amounts.get(name, (None, 0))
        if used or lim is not None:
            parts.append(f"{short}={used}" + (f"/{lim}" if lim is not None else ""))  # wraps between budgets
    return " ".join(parts) or "-"


def tree_order(procs: list[Process]) -> list[tuple[int, Process]]:
    """Return ``procs`` depth first from the roots, each with its depth."""
    kids: dict[int | None, list[Process]] = {}
    pids = {p.pid for p in procs}
    for p in procs:
        kids.setdefault(p.parent if p.parent in pids else None, []).append(p)
    out: list[tuple[int, Process]] = []
    stack = [(0, p) for p in reversed(kids.get(None, []))]
    while stack:
        depth, p = stack.pop()
        out.append((depth, p))
        stack.extend((depth + 1, c) for c in reversed(kids.get(p.pid, [])))
    return out


def process_table(
    procs: list[Process], budgets: dict[int, dict[str, tuple[int | None, int]]], width: int = 200
) -> Table:
    """Return the table ``alos ps`` prints: the process tree with states and spending; the goal
    only when the terminal (``width`` columns) has room for it."""
    t = Table(box=None, header_style="bold")
    for col in ("PID", "PARENT", "NAME", "IMAGE", "STATE", "PRI", "TURNS"):
        t.add_column(col, no_wrap=True, min_width=len(col))
    t.add_column("SPENT", min_width=12)  # wraps between budgets on a narrow terminal
    goal = width >= 110
    if goal:
        t.add_column("GOAL", overflow="ellipsis", no_wrap=True, max_width=40)
    for depth, p in tree_order(procs):
        colour = "green" if p.exit and p.exit.value == "ok" else "red" if p.exit else "yellow" if p.wait else ""
        mode = f" ({p.mode})" if p.mode != "spawn" else ""
        cells: list[Text] = [
            text(str(p.pid)),
            text(str(p.parent or "-")),
            text("  " * depth + clip(p.name, 20) + mode),
            text(clip(p.image, 20)),
            text((state_words(p), colour)),
            text(str(p.priority)),
            text(str(p.turns)),
            text(spent(budgets.get(p.pid, {}))),
        ]
        if goal:
            cells.append(text(clip(p.goal, 40)))
        t.add_row(*cells)
    return t


def indented(message: str, indent: str) -> str:
    """Return a process's multi-line ``message`` with every line after the first marked by
    ``indent`` (which starts no line of alos's own), so that no line of it can pass for one."""
    return message.replace("\n", "\n" + indent)
