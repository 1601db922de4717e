"""Budgets: hierarchical limits on what a process and its descendants may spend.

A process's row per budget holds its own limit (or none) and what it and every descendant
spent. A call is checked against the caller and every ancestor before it runs and refused
with Limit naming the budget; its cost is then added to each of them. Spending is held in
memory and written with the host's next transaction (group commit), like the audit records
of calls that changed nothing. Never performs an effect; knows nothing of syscalls.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from alos import limits
from alos.errors import Invalid, Limit
from alos.store import rows
from alos.types import BUDGETS, Pid, Process

Amounts = dict[str, tuple[int | None, int]]  # name -> (limit or None, spent)


def check_names(budget: dict[str, int]) -> None:
    """Raise Invalid naming a budget that does not exist or a negative limit."""
    for name, amount in budget.items():
        if name not in BUDGETS:
            raise Invalid(f"no budget {name!r}; budgets are {', '.join(BUDGETS)}")
        if not 0 <= amount <= limits.BUDGET_MAX:
            raise Invalid(
                f"budget {name}={amount} is out of range; a limit is a whole number from 0 to {limits.BUDGET_MAX}"
            )


class Ledger:
    """What each process spent and may spend: the store's figures plus what is not yet written."""

    def __init__(self) -> None:
        self._stored: dict[Pid, Amounts] = {}  # as of the last commit
        self._writing: dict[Pid, dict[str, int]] = {}  # written by the open transaction
        self._unwritten: dict[Pid, dict[str, int]] = {}

    def amounts(self, conn: sqlite3.Connection, pid: Pid) -> Amounts:
        """Return ``pid``'s budgets: name -> (limit, spent including what is not yet committed)."""
        writing = self._writing.get(pid, {})
        stored = self._stored.get(pid)
        if stored is None:
            stored = rows.budget_of(conn, pid)
            if writing:  # read inside the open transaction: it already shows what is being written
                stored = {n: (lim, spent - writing.get(n, 0)) for n, (lim, spent) in stored.items()}
            self._stored[pid] = stored
        extra = self._unwritten.get(pid, {})
        if not writing and not extra:
            return stored
        out = dict(stored)
        for more in (writing, extra):
            for name, amount in more.items():
                lim, spent = out.get(name, (None, 0))
                out[name] = (lim, spent + amount)
        return out

    def left(self, conn: sqlite3.Connection, chain: Sequence[Process], name: str, now: float) -> int | None:
        """Return how much of ``name`` the processes of ``chain`` may still spend (None: no limit)."""
        least: int | None = None
        for p in chain:
            lim, spent = self.amounts(conn, p.pid).get(name, (None, 0))
            if lim is None:
                continue
            if name == "wall_seconds":
                spent = int(now - p.created)
            least = lim - spent if least is None else min(least, lim - spent)
        return least

    def check(self, conn: sqlite3.Connection, chain: Sequence[Process], cost: dict[str, int], now: float) -> None:
        """Raise Limit naming the budget and its owner when ``cost`` would exceed a limit in ``chain``.

        A cost of 0 asks only that something is left (a model call before its tokens are known).
        """
        for p in chain:
            mine = self.amounts(conn, p.pid)
            for name, lim_spent in mine.items():
                lim, spent = lim_spent
                if lim is None:
                    continue
                if name == "wall_seconds":
                    if now - p.created > lim:
                        raise Limit(_exhausted(chain[0], p, name, lim, f"{now - p.created:.0f} s elapsed"))
                    continue
                if name not in cost:
                    continue
                amount = cost[name]
                if (amount == 0 and spent >= lim) or (amount > 0 and spent + amount > lim):
                    raise Limit(_exhausted(chain[0], p, name, lim, f"{spent} spent, this call needs {amount}"))

    def charge(self, chain: Sequence[Process], cost: dict[str, int]) -> None:
        """Add ``cost`` to every process of ``chain`` (written by ``write`` with the next transaction)."""
        for p in chain:
            mine = self._unwritten.setdefault(p.pid, {})
            for name, amount in cost.items():
                if amount:
                    mine[name] = _bounded(mine.get(name, 0) + amount)

    def pending(self) -> bool:
        """Return whether spending waits to be written."""
        return bool(self._unwritten)

    def write(self, conn: sqlite3.Connection) -> dict[Pid, dict[str, int]]:
        """Write what is not yet written inside the caller's transaction; return it for ``written``."""
        taken, self._unwritten = self._unwritten, {}
        self._writing = taken
        if taken:
            spent = [(pid, name, amount) for pid, amounts in taken.items() for name, amount in amounts.items()]
            rows.add_spent(conn, spent, limits.BUDGET_MAX)
        return taken

    def written(self, taken: dict[Pid, dict[str, int]], committed: bool) -> None:
        """Account for ``taken`` after its transaction: stored when committed, still unwritten if not."""
        self._writing = {}
        for pid, amounts in taken.items():
            if committed:
                stored = self._stored.get(pid)
                if stored is not None:  # keep the cache: add what was just written
                    for name, amount in amounts.items():
                        lim, spent = stored.get(name, (None, 0))
                        stored[name] = (lim, _bounded(spent + amount))
            else:
                mine = self._unwritten.setdefault(pid, {})
                for name, amount in amounts.items():
                    mine[name] = _bounded(mine.get(name, 0) + amount)

    def set_limits(self, conn: sqlite3.Connection, pid: Pid, budget: dict[str, int]) -> None:
        """Give new process ``pid`` its own limits, inside the caller's transaction."""
        for name, amount in budget.items():
            rows.set_limit(conn, pid, name, amount)
        self._stored.pop(pid, None)

    def forget(self) -> None:
        """Drop the stored figures (another connection committed); unwritten spending stays."""
        self._stored.clear()


def _bounded(amount: int) -> int:
    """Return ``amount`` saturated at the largest figure a budget holds (a model may report any usage)."""
    return min(amount, limits.BUDGET_MAX)


def _exhausted(caller: Process, owner: Process, name: str, lim: int, how: str) -> str:
    whose = "its" if owner.pid == caller.pid else f"ancestor {owner.pid}'s"
    return (
        f"budget {name} exhausted: process {caller.pid} would exceed {whose} limit of {lim} ({how}); "
        "the call was not made. The host can raise it only for new processes"
    )
