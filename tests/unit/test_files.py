"""providers/files.py: real files; what a replacement keeps, what resolution may not tell."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from alos.errors import Denied, Invalid
from alos.providers.files import Files


@pytest.mark.parametrize("mode", [0o4755, 0o2755, 0o6755, 0o1755])
def test_a_replacement_never_carries_setuid_setgid_or_sticky(tmp_path: Path, mode: int) -> None:
    f = tmp_path / "tool"
    f.write_text("old")
    os.chmod(f, mode)
    Files().write(str(f), b"new content")
    now = stat.S_IMODE(f.stat().st_mode)
    assert now == mode & 0o777 and f.read_bytes() == b"new content"


def test_a_replacement_keeps_owner_and_permission_bits(tmp_path: Path) -> None:
    f = tmp_path / "conf"
    f.write_text("old")
    os.chmod(f, 0o640)
    if os.geteuid() == 0:
        os.chown(f, 4321, 4322)
    Files().write(str(f), b"new")
    st = f.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (4321, 4322)


def test_resolution_never_fails_on_what_exists(tmp_path: Path) -> None:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    files = Files()
    for path in ("loop/x", "missing/deeper/x", "loop", "a" * 5000):
        assert files.resolve(str(tmp_path), path).startswith("/")  # no error: the decision comes first
    with pytest.raises(Invalid):
        files.resolve(str(tmp_path), "")
    with pytest.raises(Invalid):
        files.resolve(str(tmp_path), "a\x00b")


def test_the_store_directory_is_refused_without_naming_it(tmp_path: Path) -> None:
    store = tmp_path / "hidden"
    store.mkdir()
    (store / "s.db").write_text("x")
    files = Files([str(store)])  # the directory that holds the store
    assert files.resolve(str(tmp_path), "hidden/s.db") == str(store / "s.db")  # resolving is no effect
    for op in (lambda: files.read(str(store / "s.db"), 0, 10), lambda: files.write(str(store / "n"), b"")):
        with pytest.raises(Denied) as err:
            op()
        assert str(tmp_path) not in str(err.value)


def test_read_returns_the_size_with_the_bytes(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"0123456789")
    assert Files().read(str(tmp_path / "f"), 2, 3) == (b"234", 10)
