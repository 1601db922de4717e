"""The store's bell: a commit in one program wakes the others that listen, with no polling."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import time
from pathlib import Path

import pytest

from alos.store import bell as bell_module
from alos.store.bell import Bell, Listener
from alos.store.db import open_store


def test_a_ring_wakes_a_listener_at_once_and_each_ring_is_taken_once(tmp_path: Path) -> None:
    ringer, ear = Bell(str(tmp_path / "bell")), Bell(str(tmp_path / "bell")).listen()

    async def go() -> tuple[float, bool, bool]:
        started = time.monotonic()
        waiting = asyncio.ensure_future(ear.wait(5))
        await asyncio.sleep(0.01)
        ringer.ring()
        ringer.ring()  # two rings before the listener looks: one wake-up, both taken
        rang = await waiting
        took = time.monotonic() - started
        return took, rang, await ear.wait(0.05)

    try:
        took, rang, again = asyncio.run(go())
    finally:
        ear.close()
        ringer.close()
    assert rang and took < 1.0
    assert again is False  # nothing left over: the second ring was taken with the first


def test_a_program_does_not_wake_itself_and_a_timeout_is_a_timeout(tmp_path: Path) -> None:
    bell = Bell(str(tmp_path / "bell"))
    ear = bell.listen()
    try:
        bell.ring()  # its own listener is skipped: what it does itself it knows
        assert asyncio.run(ear.wait(0.05)) is False
    finally:
        ear.close()
        bell.close()


def test_a_store_path_longer_than_a_socket_address_still_works(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 90) / ("e" * 60)
    deep.mkdir(parents=True)
    ringer, listening = Bell(str(deep / "bell")), Bell(str(deep / "bell"))
    ear = listening.listen()
    try:
        assert len(str(deep / "bell" / ear.name)) > 108
        ringer.ring()
        assert asyncio.run(ear.wait(2)) is True
    finally:
        ear.close()
        ringer.close()
        listening.close()
    assert os.listdir(deep / "bell") == []  # a closed listener removes its socket


def test_a_listener_that_died_is_removed_by_the_next_ring(tmp_path: Path) -> None:
    directory = tmp_path / "bell"
    directory.mkdir()
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(directory / "999-dead"))
    dead.close()  # as after kill -9: the socket file stays, no one reads it
    ringer = Bell(str(directory))
    ringer.ring()  # never raises to the committer
    ringer.close()
    assert os.listdir(directory) == []


def test_ringing_with_no_one_listening_costs_nothing_and_never_fails(tmp_path: Path) -> None:
    bell = Bell(str(tmp_path / "never-made"))
    bell.ring()
    assert not (tmp_path / "never-made").exists()
    (tmp_path / "not-a-dir").write_text("x")
    Bell(str(tmp_path / "not-a-dir")).ring()


def test_every_commit_of_another_connection_rings_the_store_bell(tmp_path: Path) -> None:
    path = str(tmp_path / "s" / "store.db")
    host, other = open_store(path), open_store(path)
    ear = host.bell.listen()
    try:
        assert oct(os.stat(host.bell.directory).st_mode & 0o777) == "0o700"

        async def go() -> tuple[bool, bool]:
            waiting = asyncio.ensure_future(ear.wait(5))
            await asyncio.sleep(0.01)
            with other.transaction() as conn:
                conn.execute("INSERT INTO meta (key, value) VALUES ('bell-test', 'x')")
            return await waiting, host.changed_elsewhere()

        rang, changed = asyncio.run(go())
    finally:
        ear.close()
        host.close()
        other.close()
    assert rang and changed


def test_a_closed_listener_says_so(tmp_path: Path) -> None:
    bell = Bell(str(tmp_path / "bell"))
    ear = bell.listen()
    ear.close()
    ear.close()  # twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(ear.wait(0))
    bell.close()


@pytest.mark.parametrize("how", ["delete", "replace", "rename"])
def test_a_listener_wakes_when_the_store_file_is_deleted_or_replaced(tmp_path: Path, how: str) -> None:
    store = tmp_path / "store.db"
    store.write_text("x")
    bell = Bell(str(tmp_path / "bell"), str(store))
    ear = bell.listen()

    async def go() -> tuple[bool, float]:
        started = time.monotonic()
        waiting = asyncio.ensure_future(ear.wait(5))
        await asyncio.sleep(0.05)
        if how == "delete":
            store.unlink()
        elif how == "replace":
            (tmp_path / "other.db").write_text("y")
            os.replace(tmp_path / "other.db", store)
        else:
            store.rename(tmp_path / "moved.db")
        return await waiting, time.monotonic() - started

    try:
        woke, took = asyncio.run(go())
    finally:
        ear.close()
        bell.close()
    assert woke and took < 2.0


def _beside_a_store(tmp_path: Path, where: str) -> tuple[Path, Bell, Bell, Listener]:
    """A store file, a bell that watches it (a path over 100 bytes when ``where`` is "long": then
    reached through /proc/self/fd), a ringer, and a listener; returns the bell's directory too."""
    home = tmp_path / ("d" * 100 if where == "long" else "d")
    home.mkdir()
    store = home / "store.db"
    store.write_text("x")
    bell_dir = home / "bell"
    listening, ringer = Bell(str(bell_dir), str(store)), Bell(str(bell_dir))
    return bell_dir, listening, ringer, listening.listen()


@pytest.mark.parametrize("where", ["short", "long"])
def test_a_listener_whose_socket_was_removed_binds_it_again(tmp_path: Path, where: str) -> None:
    """A clean-up of dot files removed the socket: bound again a moment later, rings reach it. A
    long path (reached through /proc/self/fd) too, where the directory is made anew."""
    bell_dir, listening, ringer, ear = _beside_a_store(tmp_path, where)
    assert listening.address(ear.name).startswith("/proc/self/fd/") == (where == "long")

    async def go() -> tuple[bool, bool, bool]:
        waiting = asyncio.ensure_future(ear.wait(5))
        await asyncio.sleep(0.05)
        ringer.ring()  # the ringer holds the directory too, when the path is long
        for name in os.listdir(bell_dir):  # someone cleans up dot files
            os.unlink(bell_dir / name)
        woke = await waiting
        looked = await ear.wait(5)  # bound again after a moment: "look", rings may have been missed
        assert os.listdir(bell_dir) == [ear.name]
        ringer.ring()  # reaches the listener again
        return woke, looked, await ear.wait(2)

    try:
        woke, looked, rang = asyncio.run(go())
    finally:
        ear.close()
        listening.close()
        ringer.close()
    assert woke and looked and rang


@pytest.mark.parametrize("where", ["short", "long"])
def test_a_listener_whose_directory_went_looks_until_another_program_makes_it_again(
    tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bell's whole directory removed: the listener never makes it again (see the rm -rf test
    below); it looks every LOOK_SECONDS, and binds again once a new program's listener made it."""
    monkeypatch.setattr(bell_module, "LOOK_SECONDS", 0.2)
    bell_dir, listening, ringer, ear = _beside_a_store(tmp_path, where)

    async def go() -> tuple[list[bool], bool]:
        waiting = asyncio.ensure_future(ear.wait(5))
        await asyncio.sleep(0.05)
        ringer.ring()
        shutil.rmtree(bell_dir)
        looks = [await waiting]
        started = time.monotonic()
        while time.monotonic() - started < 1.5:  # looks, and makes nothing
            looks.append(await ear.wait(5))
        assert not bell_dir.exists()
        newcomer = Bell(str(bell_dir)).listen()  # another program starts listening: the directory is back
        try:
            await ear.wait(5)
            await ear.wait(5)
            assert sorted(os.listdir(bell_dir)) == sorted([ear.name, newcomer.name])
            ringer.ring()
            return looks, await ear.wait(2)
        finally:
            newcomer.close()

    try:
        looks, rang = asyncio.run(go())
    finally:
        ear.close()
        listening.close()
        ringer.close()
    assert all(looks) and 4 <= len(looks) <= 12, looks  # about every LOOK_SECONDS, not a busy loop
    assert rang


def test_a_deleted_store_directory_stays_deleted_while_a_listener_waits(tmp_path: Path) -> None:
    """rm -rf of the store's directory under a sleeping host: nothing is made again behind it
    (the listener's socket was once bound again at once, so rmtree found a socket in a directory it
    had just emptied and failed with 'Directory not empty')."""
    home = tmp_path / ".alos"
    home.mkdir()
    store = home / "store.db"
    store.write_text("x")
    bell = Bell(str(home / ".alos-bell"), str(store))
    ear = bell.listen()

    async def go() -> list[bool]:
        woken = []
        waiting = asyncio.ensure_future(ear.wait(5))
        await asyncio.sleep(0.05)
        os.unlink(home / ".alos-bell" / ear.name)  # rmtree's order: the bell's directory first
        os.rmdir(home / ".alos-bell")
        woken.append(await waiting)
        await asyncio.sleep(0.01)
        store.unlink()
        home.rmdir()
        woken.append(await ear.wait(5))
        woken.append(await ear.wait(bell_module.MEND_SECONDS * 2))
        return woken

    try:
        woken = asyncio.run(go())
    finally:
        ear.close()
        bell.close()
    assert woken[:2] == [True, True]
    assert not home.exists(), "the listener made the deleted store directory again"
