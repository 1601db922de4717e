"""Registered images: versions in the store, a process keeps the version it started with, an
image grants nothing, and registering needs write on image:NAME (docs/images.md)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import alos
from alos.errors import Conflict, Denied, Invalid, NotFound
from alos.types import HOST
from tests.support import call, grants, write_script

IMAGE = {
    "name": "notes",
    "description": "reads notes",
    "prompt": "You read notes.",
    "tools": ["fs.read", "proc.exit"],
    "grants": [{"allow": "fs:*=read"}],
}


def register(rt: alos.Runtime, image: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = asyncio.run(rt.dispatch(HOST, "image.register", {"image": image}))
    return result


def test_registering_a_name_again_makes_a_new_version_and_show_finds_the_newest(runtime: alos.Runtime) -> None:
    first = register(runtime, IMAGE)
    second = register(runtime, {**IMAGE, "description": "reads notes, better"})
    assert (first["ref"], second["ref"]) == ("notes@1", "notes@2")
    assert runtime.image("notes").description == "reads notes, better"
    assert runtime.image("notes@1").description == "reads notes"
    listed = asyncio.run(runtime.dispatch(HOST, "image.list", {}))["images"]
    assert [(i["name"], i["version"]) for i in listed if i["name"] == "notes"] == [("notes", 2)]
    assert {"base", "reader", "coder", "reviewer"} <= {i["name"] for i in listed}


def test_a_running_process_keeps_the_version_it_started_with(runtime: alos.Runtime, ws: Path) -> None:
    register(runtime, IMAGE)
    model = write_script(ws.parent / "s.jsonl", [{"content": "", "tool_calls": [call("clock_now")]}])
    pid = asyncio.run(runtime.spawn("notes", "read", workspace=str(ws), model=model))
    register(runtime, {**IMAGE, "tools": ["fs.read", "clock.now", "proc.exit"]})
    asyncio.run(runtime.run())
    assert runtime.process(pid).image == "notes@1"
    [result] = [m for m in runtime.context(pid) if m["role"] == "tool"]
    assert "no tool named 'clock_now'" in result["content"]  # version 1 has no clock: the new one is not its
    assert runtime.context(pid)[0]["content"].startswith("You read notes.")  # the image's prompt comes first


def test_registering_needs_write_on_the_image_and_a_refusal_registers_nothing(runtime: alos.Runtime, ws: Path) -> None:
    turns = [{"content": "", "tool_calls": [call("image_register", image=IMAGE)]}]
    base = {**IMAGE, "name": "withreg", "tools": ["image.register", "proc.exit"]}
    register(runtime, base)
    model = write_script(ws.parent / "s.jsonl", turns)
    pid = asyncio.run(runtime.spawn("withreg", "register", workspace=str(ws), model=model))
    asyncio.run(runtime.run())
    [result] = [m for m in runtime.context(pid) if m["role"] == "tool"]
    assert result["content"].startswith("denied:") and "image:notes" in result["content"]
    with pytest.raises(NotFound):
        runtime.image("notes")


def test_a_process_with_the_right_registers_and_a_built_in_name_is_refused(runtime: alos.Runtime, ws: Path) -> None:
    turns = [
        {"content": "", "tool_calls": [call("image_register", image=IMAGE)]},
        {"content": "", "tool_calls": [call("image_register", image={**IMAGE, "name": "coder"})]},
    ]
    register(runtime, {**IMAGE, "name": "withreg", "tools": ["image.register", "proc.exit"]})
    model = write_script(ws.parent / "s.jsonl", turns)
    pid = asyncio.run(
        runtime.spawn(
            "withreg", "register", workspace=str(ws), model=model, grants=grants(ws, allow=("image:*=write",))
        )
    )
    asyncio.run(runtime.run())
    results = [m["content"] for m in runtime.context(pid) if m["role"] == "tool"]
    assert '"ref":"notes@1"' in results[0].replace(" ", "")
    assert results[1].startswith("conflict:") and "built in" in results[1]


def test_exec_into_a_registered_image_keeps_authority_and_grants_nothing_it_requests(
    runtime: alos.Runtime, ws: Path
) -> None:
    wide = {**IMAGE, "name": "wide", "tools": ["fs.read", "fs.write", "proc.exit"], "grants": [{"allow": "fs:*=write"}]}
    register(runtime, wide)
    turns = [
        {"content": "", "tool_calls": [call("proc_exec", image="wide", goal="write", keep=["model:script", "fs:*"])]},
        {"content": "", "tool_calls": [call("fs_write", path="out.txt", content="x")]},
    ]
    model = write_script(ws.parent / "s.jsonl", turns)
    pid = asyncio.run(
        runtime.spawn(
            "base", "go", workspace=str(ws), model=model, grants=grants(ws, allow=("image:wide=execute", "fs:*=read"))
        )
    )
    asyncio.run(runtime.run())
    assert runtime.process(pid).image == "wide@1"
    results = [m["content"] for m in runtime.context(pid) if m["role"] == "tool"]
    assert results[-1].startswith("denied:")  # the image requests fs:*=write; exec granted none of it
    assert not (ws / "out.txt").exists()


def test_a_run_from_a_file_keeps_the_image_it_read(runtime: alos.Runtime, ws: Path, tmp_path: Path) -> None:
    path = tmp_path / "img.yaml"
    path.write_text("name: filed\ndescription: from a file\ntools: [clock.now, proc.exit]\n")
    model = write_script(ws.parent / "s.jsonl", [{"content": "", "tool_calls": [call("clock_now")]}])
    pid = asyncio.run(runtime.spawn(str(path), "go", workspace=str(ws), model=model))
    path.write_text("name: filed\ndescription: changed\ntools: [proc.exit]\n")
    asyncio.run(runtime.run())
    ref = runtime.process(pid).image
    assert ref.startswith("filed@sha256:")
    assert runtime.image(ref).description == "from a file"
    listed = asyncio.run(runtime.dispatch(HOST, "image.list", {}))["images"]
    assert "filed" not in {i["name"] for i in listed}  # a run from a file registers nothing
    [result] = [m for m in runtime.context(pid) if m["role"] == "tool"]
    assert '"now"' in result["content"]


@pytest.mark.parametrize(
    ("image", "error"),
    [
        ({**IMAGE, "name": "Bad Name"}, Invalid),
        ({**IMAGE, "surprise": 1}, Invalid),
        ({**IMAGE, "tools": ["fs.reed"]}, Invalid),
        ({"description": "no name", "tools": []}, Invalid),
    ],
)
def test_a_bad_image_is_refused_naming_what_is_wrong(runtime: alos.Runtime, image: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        register(runtime, image)
    assert not [r for r in runtime.audit() if r.syscall == "image.register" and r.outcome == "ok"]


def test_the_registry_survives_a_reopen(store: str) -> None:
    rt = alos.open(store, host=True)
    try:
        register(rt, IMAGE)
    finally:
        rt.close()
    again = alos.open(store)
    try:
        assert again.image("notes@1").prompt == "You read notes."
        with pytest.raises((Conflict, Denied, Invalid)):
            register(again, {**IMAGE, "name": "base"})
    finally:
        again.close()
