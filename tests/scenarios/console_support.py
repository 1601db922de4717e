"""Helpers the console's tests share: a host that stays with its console ('alos serve --console'),
scripted agents started for it ('alos run --detach'), the browser (Playwright driving Debian's
chromium) and the waits that watch what the browser cannot (the workspace, the store).

CLI commands run as real processes (cli_process): Playwright's sync API keeps an event loop
running in the test's thread, where the CLI in-process (run_cli) cannot start its own.
Import the fixtures into a test module by name (``from tests.scenarios.console_support import
browser_app, console, contexts``). Every wait is bounded (WAIT_MS for the browser); nothing here
sleeps blindly: a poll looks again every POLL_SECONDS until its deadline.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support import ALOS, cli_process, jsonl, write_script

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-output" / "console"  # gitignored; the report names the files
CHROMIUM = Path("/usr/bin/chromium")  # Debian's; Playwright's own download cannot work here
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 15_000  # the longest any browser wait (expect, click, navigation) may take
START_SECONDS = 45.0  # the longest a host may take to print its console URL (CLI start under coverage)
POLL_SECONDS = 0.05  # how often a wait on the workspace or the store looks again
# Off a terminal the host prints its address only; the URL with its token goes to a file of the
# store's directory (console-PORT.url, 0600), where no process reaches.
URL_LINE = re.compile(r"^console: http://127\.0\.0\.1:(\d+)/ \(the URL with its token is in (/\S+)\)\s*$")
URL_TEXT = re.compile(r"^(http://127\.0\.0\.1:(\d+)/\?token=([A-Za-z0-9_-]+))\n$")

# The turn that parks on an approval when the process holds --ask 'fs:*=write'.
ASK_GRANTS = ("--allow", "fs:*=read,list", "--ask", "fs:*=write")


def turn(content: str, *calls: dict[str, Any]) -> dict[str, Any]:
    """Return one scripted model reply: ``content`` and the tool ``calls`` (tests.support.call)."""
    return {"content": content, "tool_calls": list(calls)}


@dataclass
class Console:
    """A running 'alos serve --console --port 0' on its own store: its URL (read from the file
    it named), token and output."""

    proc: subprocess.Popen[str]
    store: str
    ws: Path
    scripts: Path
    lines: list[str] = field(default_factory=list)
    url: str = ""
    port: int = 0
    token: str = ""
    url_file: Path | None = None  # console-PORT.url in the store's directory
    started: int = 0  # scripts written so far (each agent gets its own file)

    @property
    def base(self) -> str:
        """Return the console's origin, without the token: what a stranger's request would use."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def home(self) -> str:
        """Return the root every page of the console lives under: the origin and the token."""
        return f"{self.base}/{self.token}"

    def output(self) -> str:
        """Return what the host printed so far (for failure messages)."""
        return "".join(self.lines[-200:])

    def detach(self, turns: list[dict[str, Any]], *grants: str, goal: str = "a goal for the console") -> int:
        """Start a scripted agent with ``turns`` and ``grants`` for this host ('alos run --detach
        --json'); return its pid. Fails the test when the CLI fails or sees no host."""
        self.started += 1
        model = write_script(self.scripts / f"agent-{self.started}.jsonl", turns)
        r = cli_process(
            "run",
            "base",
            goal,
            "--detach",
            "--workspace",
            str(self.ws),
            "--store",
            self.store,
            "--model",
            model,
            "--json",
            *grants,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        (said,) = jsonl(r.stdout)
        assert said["hosted"] is True, f"the host was not seen running: {said}\n{self.output()}"
        return int(said["pid"])

    def audit(self) -> list[dict[str, Any]]:
        """Return the store's audit records, as 'alos audit --json' prints them."""
        r = cli_process("audit", "--json", "--store", self.store)
        assert r.returncode == 0, r.stdout + r.stderr
        return jsonl(r.stdout)

    def pending(self) -> list[dict[str, Any]]:
        """Return the requests that wait, as 'alos approvals --json' prints them."""
        r = cli_process("approvals", "--json", "--store", self.store)
        assert r.returncode == 0, r.stdout + r.stderr
        return jsonl(r.stdout)

    def stop(self) -> None:
        """Stop the host as a supervisor would (SIGTERM), then kill it if it does not go."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start_console(root: Path, ws: Path) -> Console:
    """Start 'alos serve --store ROOT/st/store.db --console --port 0' in ``root``; return it once it
    printed its console's address and the file holding its URL (its stdout is a pipe, not a
    terminal), that file read. Raises AssertionError with the host's output when it does not, or
    when the token shows in its output or the file is not the user's alone."""
    scripts = root / "scripts"
    scripts.mkdir(exist_ok=True)
    store = str(root / "st" / "store.db")
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [*ALOS, "serve", "--store", store, "--console", "--port", "0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=root,
        env=env,
    )
    c = Console(proc, store, ws, scripts)
    seen = threading.Event()

    def drain() -> None:  # read all along, so that a chatty host never blocks on a full pipe
        assert proc.stdout is not None
        for line in proc.stdout:
            c.lines.append(line)
            found = URL_LINE.match(line)
            if found and not seen.is_set():
                c.port, c.url_file = int(found.group(1)), Path(found.group(2))
                seen.set()
        seen.set()

    threading.Thread(target=drain, daemon=True).start()
    if not seen.wait(START_SECONDS) or c.url_file is None:
        c.stop()
        raise AssertionError(f"'alos serve --console' printed no 'console: ADDRESS (... in FILE)' line:\n{c.output()}")
    try:
        read_url(c)
    except BaseException:
        c.stop()
        raise
    return c


def read_url(c: Console) -> None:
    """Set ``c``'s URL and token from the file its host named; assert the file sits in the store's
    directory, is readable by this user only, and that the host printed no token."""
    assert c.url_file is not None
    assert c.url_file == Path(os.path.realpath(c.store)).parent / f"console-{c.port}.url", c.url_file
    assert c.url_file.stat().st_mode & 0o777 == 0o600, oct(c.url_file.stat().st_mode)
    found = URL_TEXT.match(c.url_file.read_text())
    assert found is not None and int(found.group(2)) == c.port, c.url_file.read_text()
    c.url, c.token = found.group(1), found.group(3)
    assert c.token not in c.output(), f"the host printed its token:\n{c.output()}"


def wait_until(holds: Callable[[], bool], what: str, seconds: float = WAIT_MS / 1000) -> None:
    """Return once ``holds()`` is true; raise AssertionError naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not holds():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(POLL_SECONDS)


def wait_in(page: Page, holds: Callable[[], bool], what: str, seconds: float = WAIT_MS / 1000) -> None:
    """As wait_until, but waiting in ``page`` (page.wait_for_timeout) so that Playwright's events,
    dialogs included, are delivered meanwhile; for a fact no single locator shows."""
    deadline = time.monotonic() + seconds
    while not holds():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")
        page.wait_for_timeout(POLL_SECONDS * 1000)


def answers(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the audit records of answers to human requests."""
    return [r for r in records if r["syscall"] == "human.answer"]


# -- the browser ----------------------------------------------------------------------------


def launch(playwright: Playwright) -> Browser:
    """Return Debian's chromium, headless, driven by ``playwright`` (sync_playwright())."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def open_console(ctx: BrowserContext, c: Console, path: str = "/processes") -> Page:
    """Return a new page of ``ctx`` showing ``path``, having opened the URL the host wrote (its
    token then leads the path of every page: ``c.home``)."""
    from playwright.sync_api import expect

    page = ctx.new_page()
    page.goto(c.url)
    expect(page).to_have_url(f"{c.home}/processes")
    if path != "/processes":
        page.goto(c.home + path)
    return page


def watch_for_reloads(page: Page) -> None:
    """Mark ``page``'s document; still_same_document() is then false after a reload or navigation."""
    page.evaluate("() => { window.__alosTestMark = 'kept'; }")


def still_same_document(page: Page) -> bool:
    """Return whether ``page`` shows the document watch_for_reloads marked (no reload since)."""
    return bool(page.evaluate("() => window.__alosTestMark === 'kept'"))


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot of ``page`` as test-output/console/NAME.png; return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000, path
    return path


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser_app() -> Iterator[Browser]:
    """One headless chromium for the module (each test opens its own contexts); skips the module's
    tests when Debian's chromium or Playwright is missing."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: 'make system-packages' installs chromium (docs/console.md)")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.skip("Playwright for Python is not installed in this venv (pip install -e '.[dev]')")
    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as p:
        b = launch(p)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def console(tmp_path: Path, ws: Path) -> Iterator[Console]:
    """A host that stays, with its console, on a store of its own in tmp_path; stopped after."""
    c = start_console(tmp_path, ws)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def contexts(browser_app: Browser, console: Console) -> Iterator[Callable[[], BrowserContext]]:
    """Return a maker of browser contexts (a fresh 'browser' each: no history, no token); each is
    closed before the host stops (the fixture depends on ``console`` for that order)."""
    made: list[BrowserContext] = []

    def new() -> BrowserContext:
        ctx = browser_app.new_context(viewport={"width": 1280, "height": 800})
        ctx.set_default_timeout(WAIT_MS)
        made.append(ctx)
        return ctx

    yield new
    for ctx in made:
        with contextlib.suppress(Exception):  # a context the browser already lost
            ctx.close()


__all__ = [
    "ASK_GRANTS",
    "CHROMIUM",
    "SCREENSHOTS",
    "WAIT_MS",
    "Console",
    "answers",
    "browser_app",
    "console",
    "contexts",
    "launch",
    "open_console",
    "screenshot",
    "start_console",
    "still_same_document",
    "turn",
    "wait_in",
    "wait_until",
    "watch_for_reloads",
]
