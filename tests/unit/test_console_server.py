"""The console's server in this process: it answers, and a client that trickles its request or
sends nothing is cut off (each would hold one of the host's descriptors)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

import alos
from alos.console import app as console_app
from alos.console.app import Server, bind


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
