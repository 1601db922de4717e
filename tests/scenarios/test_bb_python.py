"""Black-box: the public Python API as docs/python.md shows it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import alos
from tests.scenarios.bb_support import write_script


def _setup(tmp_path: Path, grants: list[tuple[str, str]]):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "README.md").write_text("readme")
    (tmp_path / "secret.txt").write_text("SECRET")
    script = write_script(tmp_path / "t.jsonl", [])
    rt = alos.open(str(tmp_path / "st" / "store.db"), host=True)
    eff = {"allow": alos.Effect.ALLOW, "ask": alos.Effect.ASK, "deny": alos.Effect.DENY}
    gs = [alos.parse_grant(spec, eff[e], str(ws)) for spec, e in grants]
    return rt, ws, script, gs


def test_dispatch_traversal_raises_denied_and_is_audited(tmp_path: Path) -> None:
    async def main() -> None:
        rt, ws, script, gs = _setup(tmp_path, [("fs:*=read", "allow")])
        try:
            pid = await rt.spawn("base", "g", workspace=str(ws), model=f"script:{script}", grants=gs)
            assert await rt.dispatch(pid, "fs.read", {"path": "README.md"}) == "readme"
            secret = f"fs:{tmp_path / 'secret.txt'}"
            for p in ("../secret.txt", str(tmp_path / "secret.txt")):
                with pytest.raises(alos.Denied) as denied:
                    await rt.dispatch(pid, "fs.read", {"path": p})
                assert str(denied.value) == f"denied: process {pid} lacks read on {secret}"
            reads = [(a.resource, a.decision, a.outcome) for a in rt.audit(pid) if a.syscall == "fs.read"]
            assert reads == [
                (f"fs:{ws / 'README.md'}", "allow", "ok"),
                (secret, "deny", "denied"),
                (secret, "deny", "denied"),
            ]
            assert rt.verify().ok
        finally:
            rt.close()

    asyncio.run(main())


def test_python_approve_once_does_not_authorize_a_different_call(tmp_path: Path) -> None:
    async def main() -> None:
        rt, ws, script, gs = _setup(tmp_path, [("fs:*=write", "ask")])
        try:
            pid = await rt.spawn("base", "g", workspace=str(ws), model=f"script:{script}", grants=gs)
            parked = await rt.dispatch(pid, "fs.write", {"path": "a.txt", "content": "A"})
            assert isinstance(parked, alos.Parked)
            assert not (ws / "a.txt").exists()
            [req] = list(rt.requests())
            await rt.answer(req.id, "once", by="tester")
            other = await rt.dispatch(pid, "fs.write", {"path": "a.txt", "content": "EVIL"})
            # the changed call is asked about anew, showing its own content, and performs nothing
            assert isinstance(other, alos.Parked) and other.request != req.id, other
            assert not (ws / "a.txt").exists()
            [new] = list(rt.requests())
            assert (new.id, new.detail["preview"]) == (other.request, "EVIL")
            # the approved call itself still holds its one-shot grant
            done = await rt.dispatch(pid, "fs.write", {"path": "a.txt", "content": "A"})
            assert done["bytes"] == 1 and (ws / "a.txt").read_text() == "A"
        finally:
            rt.close()

    asyncio.run(main())
