"""The console's server in this process: it answers, and a client that trickles its request or
sends nothing is cut off (each would hold one of the host's descriptors)."""

from __future__ import annotations

import asyncio
import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path

import pytest

import alos
from alos.console import app as console_app
from alos.console.app import Server, bind
from alos.errors import Unavailable
from tests.support import ALOS


def test_a_request_trickled_byte_by_byte_is_cut_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console_app, "WHOLE_REQUEST_SECONDS", 0.5)
    rt = alos.open(str(tmp_path / "s" / "store.db"))

    async def go() -> tuple[bytes, float, bytes]:
        server = Server(rt, bind("127.0.0.1", 0))
        serving = asyncio.ensure_future(server.run())
        await asyncio.sleep(0.2)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            started = time.monotonic()
            got = b""
            for ch in b"GET /processes HTTP/1.1\r\nHost: 127.0.0.1\r\n":  # never ends its head
                writer.write(bytes([ch]))
                await writer.drain()
                await asyncio.sleep(0.05)
                if reader.at_eof():
                    break
            got = await asyncio.wait_for(reader.read(), 5)
            took = time.monotonic() - started
            writer.close()
            ok_reader, ok_writer = await asyncio.open_connection("127.0.0.1", server.port)
            ok_writer.write(f"GET /processes HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
            answer = await asyncio.wait_for(ok_reader.read(200), 5)
            ok_writer.close()
            return got, took, answer
        finally:
            server.stop()
            await serving

    try:
        got, took, answer = asyncio.run(go())
    finally:
        rt.close()
    assert got == b"" and took < 3.0  # closed, with no answer, well before the head would end
    assert answer.startswith(b"HTTP/1.1 403")  # a whole request is answered (here: no token)


def test_on_a_terminal_the_url_with_its_token_is_printed_and_no_file_is_kept(tmp_path: Path) -> None:
    """A person at a terminal gets the URL to open; only output that is not a terminal (a log a
    process might read) gets the URL without its token (tests/scenarios/test_bb_console.py)."""
    store = tmp_path / "s" / "store.db"
    alos.open(str(store)).close()
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [*ALOS, "console", "--store", str(store), "--port", "0"],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )
    os.close(follower)
    said = b""
    try:
        deadline = time.monotonic() + 30
        while b"token=" not in said and time.monotonic() < deadline and proc.poll() is None:
            if select.select([leader], [], [], 0.5)[0]:
                said += os.read(leader, 4096)
        kept = list(store.parent.glob("console-*.url"))
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        os.close(leader)
    assert re.search(rb"console: (\x1b\[0m)?http://127\.0\.0\.1:\d+/\?token=[A-Za-z0-9_-]{40,}", said), said
    assert kept == []


def test_the_url_file_is_made_new_never_written_through_what_was_at_its_path(tmp_path: Path) -> None:
    """console-PORT.url is a new file (0600) renamed into place: a hard link or another file put at
    that name is replaced, not written through; a console stopping removes only its own file; a
    path it cannot use is a clear error naming it."""
    rt = alos.open(str(tmp_path / "s" / "store.db"))
    server = Server(rt, bind("127.0.0.1", 0))
    other = Server(rt, bind("127.0.0.1", 0))
    try:
        where = tmp_path / "s"
        victim = tmp_path / "victim.txt"
        victim.write_text("keep me\n")
        os.link(victim, where / f"console-{server.port}.url")
        kept = Path(server.keep_url(str(where)))
        assert kept == where / f"console-{server.port}.url"
        assert kept.read_text() == server.url + "\n" and kept.stat().st_mode & 0o777 == 0o600
        assert victim.read_text() == "keep me\n"
        assert [p.name for p in where.glob("console-*")] == [kept.name]  # no temporary file left
        os.replace(tmp_path / "victim.txt", kept)  # a file that is not this console's took its place
        server.stop()
        assert kept.exists()  # ... and is left alone
        (where / f"console-{other.port}.url").mkdir()
        with pytest.raises(Unavailable, match=rf"console-{other.port}\.url \(Is a directory\)"):
            other.keep_url(str(where))
        assert sorted(p.name for p in where.glob("console-*")) == sorted([kept.name, f"console-{other.port}.url"])
    finally:
        server.sock.close()
        other.sock.close()
        rt.close()
