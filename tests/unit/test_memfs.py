"""providers/memfs.py: what only the in-memory filesystem has (its seeding, its names counted in
bytes, its lock); what it shares with files.py is checked in tests/contracts/test_filesystems.py."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path

import pytest

import alos
from alos import limits
from alos.errors import Invalid
from alos.providers.base import Providers
from alos.providers.memfs import MemoryFiles
from alos.rights import Effect, parse_grant


def test_seeding_makes_the_parents_of_every_file() -> None:
    fs = MemoryFiles({"/a/b/c.txt": b"c", "/a/d.txt": b"d"}, directories=["/e/f"])
    assert fs.is_dir("/a") and fs.is_dir("/a/b") and fs.is_dir("/e/f")
    assert [(e["name"], e["type"]) for e in fs.list("/")[0]] == [("a", "dir"), ("e", "dir")]
    assert fs.read("/a/b/c.txt", 0, 9) == (b"c", 1)


def test_seeding_takes_normal_absolute_paths_only() -> None:
    fs = MemoryFiles({"//x/../y//z.txt": b"z"}, forbidden=["/s/"])
    assert fs.read("/y/z.txt", 0, 9) == (b"z", 1)
    assert fs.hidden("/s/db") and not fs.hidden("/sx")
    for bad in ({"rel.txt": b""}, {"/a\x00b": b""}, {"/": b""}):
        with pytest.raises(Invalid, match="MemoryFiles"):
            MemoryFiles(bad)
    with pytest.raises(Invalid, match="both as a file and as a directory"):
        MemoryFiles({"/a": b"", "/a/b": b""})
    with pytest.raises(Invalid, match="both as a file and as a directory"):
        MemoryFiles({"/a": b""}, directories=["/a"])


def test_a_name_is_counted_in_bytes_as_the_host_counts_it() -> None:
    fs = MemoryFiles(directories=["/w"])
    fs.write("/w/" + "é" * 127, b"254 bytes of name")  # 2 bytes a character
    with pytest.raises(Invalid, match="too long"):
        fs.write("/w/" + "é" * 128, b"256 bytes of name")
    deep = "/w/" + "d/" * 2100 + "x"
    assert fs.missing(deep)[0] == "/w/d"  # what the host cannot open counts as missing
    with pytest.raises(Invalid, match="too long"):
        fs.read(deep, 0, 1)


def test_a_write_hands_over_a_copy_and_readers_see_old_or_new_whole() -> None:
    data = bytearray(b"a" * 1000)
    fs = MemoryFiles({"/f": bytes(data)})
    data[0:1] = b"b"  # the caller's buffer is not the file
    assert fs.read("/f", 0, 1) == (b"a", 1000)
    seen: set[bytes] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            seen.add(fs.read("/f", 0, 2000)[0])

    thread = threading.Thread(target=reader)
    thread.start()
    for n in range(300):
        fs.write("/f", bytes([97 + n % 2]) * 1000)
    stop.set()
    thread.join()
    assert seen <= {b"a" * 1000, b"b" * 1000}


def test_a_rewrite_of_a_file_too_big_to_hash_changes_what_an_approval_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "PEEK_MAX_BYTES", 2)
    fs = MemoryFiles({"/big": b"0123"})
    before = fs.peek("/big").digest
    fs.write("/big", b"3210")  # the same size: only the modification time tells
    after = fs.peek("/big").digest
    assert before is not None and after is not None and before != after
    assert after.startswith("size:4:mtime:")


def test_a_listing_names_a_directory_size_0() -> None:
    fs = MemoryFiles({"/w/d/x": b"12345"})
    assert fs.list("/w")[0] == [{"name": "d", "type": "dir", "size": 0}]


def test_a_process_works_in_memory_and_leaves_the_host_workspace_untouched(tmp_path: Path) -> None:
    ws = os.path.realpath(tmp_path / "ws")
    os.mkdir(ws)  # the runtime checks the workspace on the host: an empty directory stands for it
    script = tmp_path / "turns.jsonl"
    turns = [
        {"tool_calls": [{"name": "fs_write", "arguments": {"path": "notes/a.md", "content": "in memory\n"}}]},
        {"tool_calls": [{"name": "fs_mkdir", "arguments": {"path": "notes"}}]},
        {"tool_calls": [{"name": "fs_write", "arguments": {"path": "notes/a.md", "content": "in memory\n"}}]},
    ]
    script.write_text("".join(json.dumps(t) + "\n" for t in turns))
    fs = MemoryFiles({ws + "/README.md": b"hello\n"}, directories=[ws])
    rt = alos.open(str(tmp_path / "store" / "s.db"), host=True, providers=Providers(files=fs))
    try:
        grant = parse_grant("fs:*=read,write", Effect.ALLOW, ws)
        pid = asyncio.run(rt.spawn("base", "g", workspace=ws, model=f"script:{script}", grants=[grant]))
        asyncio.run(rt.run())
        results = [m["content"] for m in rt.context(pid) if m["role"] == "tool"]
    finally:
        rt.close()
    assert results[0].startswith("not_found: write: no such file or directory")
    assert fs.read(ws + "/notes/a.md", 0, 100) == (b"in memory\n", 10)
    assert os.listdir(ws) == []


def test_a_working_directory_only_the_host_has_is_refused(tmp_path: Path) -> None:
    ws = os.path.realpath(tmp_path)
    script = tmp_path / "turns.jsonl"
    script.write_text("")
    rt = alos.open(str(tmp_path / "store" / "s.db"), host=True, providers=Providers(files=MemoryFiles()))
    try:
        with pytest.raises(Invalid, match="is not an absolute path to a directory"):
            asyncio.run(rt.spawn("base", "g", workspace=ws, model=f"script:{script}"))
    finally:
        rt.close()
