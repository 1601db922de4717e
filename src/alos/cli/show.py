"""How the CLI shows things to a person: the live trace, tables and approval panels.

Everything that came from a process or a model is escaped (no terminal control sequences,
no rich markup) before it is printed.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from alos import codec
from alos.types import Event, HumanRequest, Process, ProcState


def console(stderr: bool = False, soft_wrap: bool = True) -> Console:
    """Return a console for the CLI: no markup parsing (file names may hold '[...]'), no guessing
    of colours; colour comes only from Text styles. NO_COLOR is honoured by rich."""
    return Console(stderr=stderr, highlight=False, markup=False, soft_wrap=soft_wrap)


def line(*parts: str | tuple[str, str]) -> Text:
    """Return a Text of plain strings and (text, style) pairs."""
    return Text.assemble(*parts)


def clip(text: str, width: int = 100) -> str:
    """Return ``text`` escaped and cut to ``width`` characters."""
    text = codec.escape(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def clip_resource(resource: str, width: int = 60) -> str:
    """Return ``resource`` escaped and cut to ``width`` from the left: the file name is what matters."""
    text = codec.escape(resource)
    return text if len(text) <= width else "…" + text[-(width - 1) :]


class Trace:
    """Prints events as a readable, coloured trace of what the processes do."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.names: dict[int, str] = {}

    def who(self, pid: int) -> str:
        return f"{pid} {self.names.get(pid, '')}".strip()

    def __call__(self, ev: Event) -> None:
        d = ev.detail
        show = getattr(self, "_" + ev.kind, None)
        if show is not None:
            show(ev.pid, d)

    def _spawn(self, pid: int, d: dict[str, Any]) -> None:
        self.names[pid] = str(d.get("name", ""))
        self.console.print(
            Text.assemble(
                ("● ", "bold cyan"),
                (f"process {self.who(pid)}", "bold"),
                f" started, image {d.get('image')}: ",
                (clip(str(d.get("goal", ""))), "italic"),
            )
        )

    def _turn(self, pid: int, d: dict[str, Any]) -> None:
        if d.get("content"):
            self.console.print(
                Text.assemble(
                    (f"[{self.who(pid)}] ", "cyan"),
                    ("model: ", "dim"),
                    clip(str(d["content"]), 120),
                )
            )
        for c in d.get("calls", []):
            args = " ".join(f"{k}={clip(codec.dumps(v), 40)}" for k, v in c.get("arguments", {}).items())
            self.console.print(Text.assemble("    → ", (str(c.get("name")), "bold"), " ", (args, "dim")))

    def _syscall(self, pid: int, d: dict[str, Any]) -> None:
        if pid == 0 or (d["syscall"] in ("model.call", "proc.exit") and d["outcome"] == "ok"):
            return
        if d["outcome"] == "parked":
            return  # the request event says it, with the request id
        decision, outcome = d["decision"], d["outcome"]
        line = Text("      ")
        if outcome == "ok":
            line.append("✓ ", "green").append(decision, "green")
        elif outcome == "parked":
            line.append("? ", "yellow").append("asks a human" if decision == "ask" else "waits", "yellow")
        elif decision in ("deny", "rejected"):
            line.append("✗ ", "red").append(decision, "bold red")
        else:
            line.append("✗ ", "red").append(outcome, "red")
        line.append(f" {d['syscall']} ").append(clip_resource(d["resource"], 70), "dim")
        err = d.get("detail", {}).get("error")
        if err:
            line.append(" — " + clip(str(err), 140), "red")
        self.console.print(line)

    def _request(self, pid: int, d: dict[str, Any]) -> None:
        what = f"{d['syscall']} {clip_resource(str(d['resource']), 70)}" if d["kind"] != "question" else "a question"
        self.console.print(
            Text.assemble(
                ("      ? ", "yellow"),
                (what, "yellow"),
                f" — process {self.who(pid)} waits for a human (request {d['id']})",
            )
        )

    def _answer(self, pid: int, d: dict[str, Any]) -> None:
        verdict = {
            "once": "approved once",
            "always": "approved always",
            "deny": "denied",
            "answer": "answered",
        }.get(d["verdict"], d["verdict"])
        style = "red" if d["verdict"] == "deny" else "green"
        self.console.print(
            Text.assemble(
                ("      ✔ ", style),
                f"request {d['id']} {verdict} by {clip(str(d['by']), 40)}",
                (f": {clip(str(d['text']), 80)}" if d.get("text") else "", "dim"),
            )
        )

    def _result(self, pid: int, d: dict[str, Any]) -> None:
        if d.get("ok"):
            self.console.print(Text("      ← " + clip(str(d.get("text", "")), 90), "dim"))

    def _state(self, pid: int, d: dict[str, Any]) -> None:
        if d["state"] == "exited":
            style = "bold green" if d.get("exit") == "ok" else "bold red"
            self.console.print(
                Text.assemble(
                    ("● ", style),
                    (f"process {self.who(pid)} exited {d.get('exit')}", style),
                    (f": {clip(str(d.get('result') or ''), 100)}" if d.get("result") else "", ""),
                )
            )

    def _crash(self, pid: int, d: dict[str, Any]) -> None:
        self.console.print(
            Text(
                f"      ! process {self.who(pid)} failed: {clip(str(d.get('error')), 200)}",
                "bold red",
            )
        )

    def _signal(self, pid: int, d: dict[str, Any]) -> None:
        sender = "the host" if not d.get("from") else f"process {self.who(int(d['from']))}"
        self.console.print(Text(f"      ⚡ {d.get('signal')} → process {self.who(pid)} from {sender}", "magenta"))

    def _adopt(self, pid: int, d: dict[str, Any]) -> None:
        heir = "the host" if d.get("parent") is None else f"process {d['parent']}"
        self.console.print(Text(f"      process {self.who(pid)} is adopted by {heir}", "dim"))

    def _exec(self, pid: int, d: dict[str, Any]) -> None:
        self.console.print(Text(f"● process {self.who(pid)} exec'd image {d.get('image')}", "cyan"))

    def _recovered(self, pid: int, d: dict[str, Any]) -> None:
        self.console.print(Text(f"● process {self.who(pid)} resumes after a host stop", "yellow"))


def tell(console: Console, names: dict[int, str]) -> Any:
    """Return a human.tell sink that prints what a process says."""

    def show(pid: int, text: str) -> None:
        console.print(
            Text.assemble(
                ("  📣 ", "magenta"),
                (f"process {pid} {names.get(pid, '')}".strip() + " says: ", "magenta"),
                codec.escape(text, keep_newlines=True),
            )
        )

    return show


def request_panel(req: HumanRequest) -> Panel:
    """Return a panel showing exactly what answering ``req`` would let happen."""
    d = req.detail
    body = Text(overflow="fold")
    if req.kind.value == "question":
        body.append("question: ", "bold").append(str(d.get("question", "")) + "\n")
        body.append("answer with: ", "dim").append(f"alos answer {req.id} TEXT", "bold")
    else:
        body.append(f"{req.syscall} ", "bold").append(f"needs {req.right} on ").append(
            codec.escape(req.resource) + "\n", "bold"
        )
        if d.get("note"):
            body.append(codec.escape(str(d["note"])) + "\n", "yellow")
        for key in ("bytes", "digest", "overwrite", "current_digest", "current_bytes", "exists"):
            if key in d:
                body.append(f"  {key}: ", "dim").append(f"{d[key]}\n")
        if "preview" in d:
            body.append("  preview: ", "dim").append(str(d["preview"]) + ("…" if d.get("truncated") else "") + "\n")
        for line in d.get("diff", []):
            style = "green" if line.startswith("+") else "red" if line.startswith("-") else "dim"
            body.append("  " + line + "\n", style)
        body.append("answer with: ", "dim").append(
            f"alos approve {req.id} [--always]  |  alos deny {req.id} [--reason TEXT]", "bold"
        )
    title = f"request {req.id} · process {req.pid} · {req.kind.value} · {req.state.value}"
    return Panel(
        body,
        title=title,
        title_align="left",
        border_style="yellow" if req.state.value == "pending" else "dim",
    )


def state_of(p: Process) -> str:
    """Return a process's state as one word or two (``waiting human``, ``exited ok``)."""
    if p.state is ProcState.WAITING:
        return f"waiting {p.wait}"
    if p.state is ProcState.EXITED:
        return f"exited {p.exit}"
    return p.state.value


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
            parts.append(
                f"{short}={used}" + (f"/{lim}" if lim is not None else "")
            )  # a narrow terminal wraps between budgets
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
        cells: list[str | Text] = [
            str(p.pid),
            str(p.parent or "-"),
            "  " * depth + clip(p.name, 20) + mode,
            p.image,
            Text(state_of(p), colour),
            str(p.priority),
            str(p.turns),
            spent(budgets.get(p.pid, {})),
        ]
        if goal:
            cells.append(clip(p.goal, 40))
        t.add_row(*cells)
    return t
