"""The console's live feed: which parts of the open pages to redraw, pushed as Server-Sent Events.

The feed sleeps until something changes: another program's commit rings the store's bell; a
change this program made itself (a console in 'alos serve --console' shares the host's kernel)
comes as a kernel event. It then reads what changed (kernel/pages.news) and tells every open
page the topics to redraw: ``procs``, ``requests``, ``audit`` and ``proc-PID``, at once. Bursts
are merged: after a push the feed waits FEED_GAP_SECONDS, and what came meanwhile is one push.
Nothing polls; a page left open costs one comment line every PING_SECONDS so that proxies and
browsers keep the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from alos.kernel import pages
from alos.runtime import Runtime
from alos.types import Event

FEED_GAP_SECONDS = 0.05  # the least time between two pushes: a burst of commits is one redraw
PING_SECONDS = 15.0  # a comment line on a quiet stream, so that it is not taken for dead
_QUEUE = 64  # topics sets waiting for a slow page; past this it is sent 'everything' once
_REQUEST_KINDS = frozenset({"request", "answer", "state", "crash", "recovered"})


class Feed:
    """One console's subscribers and the task that wakes them; see the module docstring."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._pages: set[asyncio.Queue[frozenset[str] | None]] = set()
        self._poke = asyncio.Event()
        self._closed = False
        rt.listen(self._heard)

    def _heard(self, ev: Event) -> None:
        self._poke.set()

    async def run(self) -> None:
        """Push topics to the open pages until cancelled."""
        try:
            ear: pages.Listener | None = pages.listen(self.rt.kernel)
        except OSError:
            ear = None  # a store directory we may not write: look every second instead
        seen = pages.news(self.rt.kernel, None)
        try:
            while True:
                await self._wait(ear)
                self._poke.clear()
                now = pages.news(self.rt.kernel, seen)
                if now.event == seen.event and now.audit == seen.audit:
                    continue
                seen = now
                self.push(topics(now))  # at once; what comes during the gap goes in the next push
                await asyncio.sleep(FEED_GAP_SECONDS)
        finally:
            if ear is not None:
                ear.close()

    async def _wait(self, ear: pages.Listener | None) -> None:
        if ear is not None:
            await ear.wait(None, also=self._poke)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), 1.0)

    def push(self, names: frozenset[str]) -> None:
        """Send ``names`` to every open page."""
        for q in list(self._pages):
            if q.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    while True:
                        q.get_nowait()
                q.put_nowait(frozenset({"procs", "requests", "audit", "all"}))
            else:
                q.put_nowait(names)

    def close(self) -> None:
        """End every open stream (the console is stopping)."""
        self._closed = True
        for q in list(self._pages):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(None)

    async def stream(self) -> AsyncIterator[str]:
        """Yield one page's Server-Sent Events until it goes away or the console stops."""
        q: asyncio.Queue[frozenset[str] | None] = asyncio.Queue(_QUEUE)
        self._pages.add(q)
        try:
            yield "retry: 1000\n: connected\n\n"
            while not self._closed:
                try:
                    names = await asyncio.wait_for(q.get(), PING_SECONDS)
                except TimeoutError:
                    yield ": ping\n\n"
                    continue
                if names is None:
                    return
                yield "".join(f"event: {name}\ndata: {name}\n\n" for name in sorted(names))
        finally:
            self._pages.discard(q)

    @property
    def watchers(self) -> int:
        """Return how many pages are open on the feed."""
        return len(self._pages)


def topics(news: pages.News) -> frozenset[str]:
    """Return the parts of the pages to redraw after ``news``."""
    out = {f"proc-{pid}" for pid in news.pids if pid}
    if news.kinds - {"audit"}:
        out.add("procs")
    if news.kinds & _REQUEST_KINDS:
        out.add("requests")
    if "audit" in news.kinds:
        out |= {"audit", "procs"}  # budgets are spent with audited calls
    return frozenset(out)


__all__ = ["Feed", "topics"]
