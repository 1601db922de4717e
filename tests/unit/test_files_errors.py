"""providers/files.py under faults: a symlink swapped in after resolution never redirects an
effect, and every host OS error becomes an AlosError that names the path and says what to do.

Every fault is produced for real (real files, real symlinks, a real full disk) except where the
host cannot make it: those tests skip and say why.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import alos
from alos.errors import AlosError, Conflict, Denied, Exists, Invalid, NotFound
from alos.providers.files import Files
from tests.support import spawn


class Swapping:
    """The host's filesystem, with an attacker who wins the race once: right after the first
    path is resolved (the decision is then made on that path), ``victim`` is moved aside and a
    symlink to ``target`` takes its place."""

    def __init__(self, real: Any, victim: Path, target: Path) -> None:
        self._real = real
        self.victim = victim
        self.target = target
        self.swapped = False

    def resolve(self, cwd: str, path: str) -> str:
        resolved: str = self._real.resolve(cwd, path)
        if not self.swapped:
            self.victim.rename(self.victim.with_name(self.victim.name + ".moved"))
            self.victim.symlink_to(self.target, target_is_directory=self.target.is_dir())
            self.swapped = True
        return resolved

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory no grant reaches, holding b/secret.txt."""
    root = tmp_path / "outside"
    (root / "b").mkdir(parents=True)
    (root / "b" / "secret.txt").write_text("not yours\n")
    return root


def _write(path: str) -> dict[str, Any]:
    return {"path": path, "content": "planted"}


@pytest.mark.parametrize(
    ("syscall", "args"),
    [
        ("fs.write", _write("a/b/new.txt")),
        ("fs.read", {"path": "a/b/secret.txt"}),
        ("fs.list", {"path": "a/b"}),
        ("fs.delete", {"path": "a/b/secret.txt"}),
    ],
)
def test_a_directory_swapped_for_a_symlink_after_resolution_is_not_followed(
    runtime: alos.Runtime, ws: Path, outside: Path, syscall: str, args: dict[str, Any]
) -> None:
    (ws / "a" / "b").mkdir(parents=True)
    (ws / "a" / "b" / "secret.txt").write_text("mine\n")
    pid = spawn(runtime, ws, allow=("fs:*=read,write,list,delete",))
    runtime.kernel.files = Swapping(runtime.kernel.files, ws / "a", outside)

    with pytest.raises(Conflict, match=r"a/b changed while the call ran \(it now is .*outside/b\); try again"):
        asyncio.run(runtime.dispatch(pid, syscall, args))

    assert sorted(p.name for p in (outside / "b").iterdir()) == ["secret.txt"]  # nothing planted, nothing deleted
    assert (outside / "b" / "secret.txt").read_text() == "not yours\n"
    [rec] = [r for r in runtime.audit(pid) if r.syscall == syscall]
    real_ws = os.path.realpath(ws)
    assert rec.decision == "allow" and rec.outcome == "conflict"
    assert rec.resource.startswith(f"fs:{real_ws}/a/b")  # decided on the workspace path, refused at the effect


def test_a_file_swapped_for_a_symlink_after_resolution_is_not_read(
    runtime: alos.Runtime, ws: Path, outside: Path
) -> None:
    pid = spawn(runtime, ws, allow=("fs:*=read",))
    runtime.kernel.files = Swapping(runtime.kernel.files, ws / "README.md", outside / "b" / "secret.txt")
    with pytest.raises(Conflict, match=r"README.md became a symlink while the call ran; try again"):
        asyncio.run(runtime.dispatch(pid, "fs.read", {"path": "README.md"}))
    [rec] = [r for r in runtime.audit(pid) if r.syscall == "fs.read"]
    assert rec.outcome == "conflict" and "not yours" not in str(rec.detail)


# -- host OS errors ----------------------------------------------------------------------


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[Path]:
    """A directory the host may not create files in: mode 0555 for an ordinary user; for root,
    whom modes do not stop, the immutable attribute (chattr +i, refused with EPERM)."""
    d = tmp_path / "locked"
    d.mkdir()
    if os.geteuid() != 0:
        d.chmod(0o555)
        yield d
        d.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    made = chattr is not None and subprocess.run([chattr, "+i", str(d)], capture_output=True).returncode == 0
    if not made:
        pytest.skip("running as root, whom file modes do not refuse, and chattr +i is not available here")
    try:
        yield d
    finally:
        subprocess.run([str(chattr), "-i", str(d)], check=True)


Fault = Callable[[Path], tuple[Callable[[], object], Path]]


def _absent_file(tmp: Path) -> tuple[Callable[[], object], Path]:
    path = tmp / "absent.txt"
    return lambda: Files().read(str(path), 0, 10), path


def _absent_directory(tmp: Path) -> tuple[Callable[[], object], Path]:
    path = tmp / "absent" / "out.txt"
    return lambda: Files().write(str(path), b"x"), path


def _file_as_directory(tmp: Path) -> tuple[Callable[[], object], Path]:
    (tmp / "plain.txt").write_text("x")
    path = tmp / "plain.txt" / "out.txt"  # ENOTDIR
    return lambda: Files().write(str(path), b"x"), path


def _read_a_directory(tmp: Path) -> tuple[Callable[[], object], Path]:
    (tmp / "dir").mkdir()
    return lambda: Files().read(str(tmp / "dir"), 0, 10), tmp / "dir"


def _write_over_a_directory(tmp: Path) -> tuple[Callable[[], object], Path]:
    (tmp / "dir").mkdir()
    return lambda: Files().write(str(tmp / "dir"), b"x"), tmp / "dir"


def _name_too_long(tmp: Path) -> tuple[Callable[[], object], Path]:
    path = tmp / ("n" * 300)  # ENAMETOOLONG: a component over 255 bytes
    return lambda: Files().write(str(path), b"x"), path


def _made_meanwhile(tmp: Path) -> tuple[Callable[[], object], Path]:
    path = tmp / "made"
    plan = (str(path),)  # planned while it was missing; another program made it since (EEXIST)
    path.mkdir()
    return lambda: Files().mkdir(str(path), plan), path


def _not_empty(tmp: Path) -> tuple[Callable[[], object], Path]:
    (tmp / "full").mkdir()
    (tmp / "full" / "kept.txt").write_text("x")
    return lambda: Files().delete(str(tmp / "full")), tmp / "full"


def _symlink_at_the_end(tmp: Path) -> tuple[Callable[[], object], Path]:
    (tmp / "real.txt").write_text("x")
    (tmp / "link.txt").symlink_to(tmp / "real.txt")  # ELOOP: resolution would have followed it
    return lambda: Files().read(str(tmp / "link.txt"), 0, 10), tmp / "link.txt"


FAULTS: list[Any] = [
    pytest.param(_absent_file, NotFound, "no such file or directory", id="ENOENT-file"),
    pytest.param(_absent_directory, NotFound, "no such file or directory", id="ENOENT-directory"),
    pytest.param(_file_as_directory, NotFound, "is not a directory", id="ENOTDIR"),
    pytest.param(_read_a_directory, Invalid, "is a directory; use fs_list", id="EISDIR-read"),
    pytest.param(_write_over_a_directory, Invalid, "is a directory", id="EISDIR-write"),
    pytest.param(_name_too_long, Invalid, "a name in it is too long", id="ENAMETOOLONG"),
    pytest.param(_made_meanwhile, Exists, "already exists", id="EEXIST"),
    pytest.param(_not_empty, Invalid, "is not empty; delete what it holds first", id="ENOTEMPTY"),
    pytest.param(_symlink_at_the_end, Conflict, "became a symlink while the call ran; try again", id="ELOOP"),
]


def _raised(fault: Fault, tmp: Path) -> tuple[AlosError, Path]:
    act, path = fault(tmp)
    with pytest.raises(AlosError) as info:
        act()
    return info.value, path


@pytest.mark.parametrize(("fault", "kind", "says"), [pytest.param(*p.values, id=p.id) for p in FAULTS])
def test_a_host_os_error_becomes_an_alos_error_naming_the_path(
    tmp_path: Path, fault: Fault, kind: type[AlosError], says: str
) -> None:
    err, path = _raised(fault, tmp_path)
    assert type(err) is kind, err
    assert str(path) in err.message and says in err.message


@pytest.mark.parametrize(("fault", "kind", "says"), FAULTS)
def test_a_host_os_error_says_what_to_do(tmp_path: Path, fault: Fault, kind: type[AlosError], says: str) -> None:
    err, _ = _raised(fault, tmp_path)
    # alos messages name the bad input, then the fix after a semicolon (STYLE.md rule 8)
    assert "; " in err.message, err.message


def test_a_directory_the_host_may_not_write_is_denied_naming_it(locked: Path) -> None:
    path = locked / "out.txt"
    with pytest.raises(Denied) as info:
        Files().write(str(path), b"x")
    assert f"the host OS refused {path}" in info.value.message
    assert list(locked.iterdir()) == []  # no temp file left behind


def test_a_directory_the_host_may_not_write_says_what_to_do(locked: Path) -> None:
    with pytest.raises(Denied) as info:
        Files().write(str(locked / "out.txt"), b"x")
    assert "; " in info.value.message, info.value.message


_FULL_DISK = """
import os, sys
from alos.errors import AlosError
from alos.providers.files import Files
try:
    Files().write(sys.argv[1], b"x" * (1 << 20))
except AlosError as err:
    print(type(err).__name__)
    print(err.message)
print(sorted(os.listdir(os.path.dirname(sys.argv[1]))))
"""


def test_a_full_disk_is_unavailable_naming_the_path_and_leaves_nothing(tmp_path: Path) -> None:
    """ENOSPC for real: a 64 KiB tmpfs mounted in a private mount namespace (needs root)."""
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("a real full disk needs root and unshare(1) to mount a small tmpfs privately")
    disk = tmp_path / "disk"
    disk.mkdir()
    target = disk / "big.bin"
    script = 'mount -t tmpfs -o size=64k tmpfs "$1" || exit 42; exec "$2" -c "$3" "$4"'
    r = subprocess.run(
        [unshare, "--mount", "sh", "-c", script, "sh", str(disk), sys.executable, _FULL_DISK, str(target)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if r.returncode == 42 or (r.returncode != 0 and "unshare" in r.stderr):
        pytest.skip(f"this host may not mount a private tmpfs: {r.stderr.strip()}")
    assert r.returncode == 0, r.stderr
    kind, message, left = r.stdout.splitlines()
    assert kind == "Unavailable"
    assert message == f"write: {target}: No space left on device; the host must free space first"
    assert left == "[]"  # the partial temp file is removed
