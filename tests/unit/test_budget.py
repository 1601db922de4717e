"""The budget ledger: limits up the ancestry, spending written with the next transaction."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from alos.errors import Invalid, Limit
from alos.kernel.budget import Ledger, check_names
from alos.store.db import open_store
from alos.types import Process, ProcState


def proc(pid: int, parent: int | None, created: float = 0.0) -> Process:
    return Process(pid, parent, "p", "base", "m", ProcState.RUNNABLE, None, None, "/", "g", None, 0, created, created)


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    return open_store(str(tmp_path / "s.db")).conn


def test_a_limit_anywhere_up_the_chain_refuses_and_names_its_owner(conn: sqlite3.Connection) -> None:
    ledger = Ledger()
    ledger.set_limits(conn, 1, {"tool_calls": 3})
    chain = [proc(2, 1), proc(1, None)]
    for _ in range(3):
        ledger.check(conn, chain, {"tool_calls": 1}, 0.0)
        ledger.charge(chain, {"tool_calls": 1})
    with pytest.raises(Limit, match="ancestor 1's limit of 3"):
        ledger.check(conn, chain, {"tool_calls": 1}, 0.0)
    assert ledger.left(conn, chain, "tool_calls", 0.0) == 0
    assert ledger.amounts(conn, 2)["tool_calls"] == (None, 3)


def test_a_zero_cost_asks_only_that_something_is_left(conn: sqlite3.Connection) -> None:
    ledger = Ledger()
    ledger.set_limits(conn, 1, {"tokens": 10})
    chain = [proc(1, None)]
    ledger.check(conn, chain, {"tokens": 0}, 0.0)
    ledger.charge(chain, {"tokens": 12})  # a model reports its tokens after the call: it may overshoot
    with pytest.raises(Limit, match="budget tokens exhausted"):
        ledger.check(conn, chain, {"tokens": 0}, 0.0)


def test_spending_survives_a_write_and_a_rolled_back_one_is_kept_for_the_next(conn: sqlite3.Connection) -> None:
    ledger = Ledger()
    chain = [proc(1, None)]
    ledger.charge(chain, {"bytes_written": 5})
    conn.execute("BEGIN")
    taken = ledger.write(conn)
    conn.execute("ROLLBACK")
    ledger.written(taken, committed=False)
    assert ledger.pending()
    conn.execute("BEGIN")
    taken = ledger.write(conn)
    conn.execute("COMMIT")
    ledger.written(taken, committed=True)
    ledger.forget()
    assert ledger.amounts(conn, 1)["bytes_written"] == (None, 5)


def test_wall_time_is_measured_from_each_owners_creation(conn: sqlite3.Connection) -> None:
    ledger = Ledger()
    ledger.set_limits(conn, 1, {"wall_seconds": 60})
    chain = [proc(2, 1, created=50.0), proc(1, None, created=0.0)]
    ledger.check(conn, chain, {"tool_calls": 1}, 60.0)
    with pytest.raises(Limit, match="wall_seconds"):
        ledger.check(conn, chain, {"tool_calls": 1}, 61.0)


def test_budget_names_and_amounts_are_checked() -> None:
    with pytest.raises(Invalid, match="no budget 'gold'"):
        check_names({"gold": 1})
    with pytest.raises(Invalid, match="out of range"):
        check_names({"tokens": -5})


def test_spending_saturates_instead_of_overflowing_the_store(tmp_path) -> None:
    """A model may report any usage: two calls that each report more than a budget can hold leave
    the figure at the largest a budget holds, and the store keeps a whole number."""
    from alos import limits
    from alos.kernel.budget import Ledger
    from alos.store import rows
    from alos.store.db import open_store
    from alos.types import Process, ProcState

    store = open_store(str(tmp_path / "s.db"))
    ledger = Ledger()
    p = Process(1, None, "m", "base", "script:x", ProcState.RUNNING, None, None, "/", "g", None, 0, 0.0, 0.0)
    for _ in range(3):
        ledger.charge([p], {"tokens": limits.BUDGET_MAX})
        with store.transaction() as conn:
            taken = ledger.write(conn)
        ledger.written(taken, committed=True)
    ledger.charge([p], {"tokens": -5})  # a refund after saturation still applies
    with store.transaction() as conn:
        ledger.written(ledger.write(conn), committed=True)
    lim, spent = rows.budget_of(store.conn, 1)["tokens"]
    assert lim is None and isinstance(spent, int) and spent == limits.BUDGET_MAX - 5
    store.close()
