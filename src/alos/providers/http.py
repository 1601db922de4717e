"""The HTTP transport the model clients share: one POST, retried, size-capped, maybe streamed.

It speaks HTTP and Server-Sent Events, not any model's wire format: a client hands it a path, a
JSON body and a reader that turns a 2xx response into a result (raising Malformed for a reply it
cannot use). Transient faults (408, 429, 5xx, dropped connections, timeouts, malformed replies)
are retried with exponential backoff and full jitter, honouring Retry-After; then, or at once for
a refused key or request, it raises ProviderDown naming the server by its base URL. It never
shows the API key. Imported only when an HTTP model is opened: httpx costs start-up time.
"""

from __future__ import annotations

import asyncio
import codecs
import email.utils
import math
import random
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import msgspec

from alos import codec, limits
from alos.errors import Invalid, ProviderDown

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

_EOL = re.compile(r"\r\n|\r|\n")


class Malformed(Exception):
    """A reply its reader cannot use (not JSON, the wrong shape, cut short): retried like a 5xx."""


@dataclass(frozen=True, slots=True)
class Event:
    """One Server-Sent Event: its ``event:`` name ("message" when none) and its data lines joined."""

    event: str
    data: str


class EventParser:
    """Turns a Server-Sent Events text stream, fed in pieces of any size, into Events."""

    def __init__(self) -> None:
        self._line = ""  # the unfinished last line
        self._after_cr = False  # the last piece ended in \r: a \n starting the next belongs to it
        self._event = ""
        self._data: list[str] = []

    def feed(self, text: str) -> list[Event]:
        """Return the events ``text`` completes."""
        if not text:
            return []
        if self._after_cr and text[0] == "\n":
            text = text[1:]
        self._after_cr = text.endswith("\r")
        lines = _EOL.split(self._line + text)
        self._line = lines.pop()
        events = []
        for line in lines:
            event = self._take(line)
            if event is not None:
                events.append(event)
        return events

    def finish(self) -> list[Event]:
        """Return an event the stream ended inside (no blank line after it), if any."""
        events = self.feed("\n") if self._line else []
        last = self._take("")
        return [*events, last] if last is not None else events

    def _take(self, line: str) -> Event | None:
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = Event(self._event or "message", "\n".join(self._data))
            self._event, self._data = "", []
            return event
        if line.startswith(":"):  # a comment: servers send them to keep the connection alive
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None


class Reply:
    """The body of a 2xx answer, read at most ``limit`` bytes of it."""

    def __init__(self, response: httpx.Response, server: str, limit: int) -> None:
        self.response = response
        self.server = server
        self.limit = limit
        self._read = 0

    async def json(self) -> Any:
        """Return the body as JSON. Raises Malformed for bad JSON, Invalid past the size limit."""
        body = b"".join([piece async for piece in self._pieces()])
        try:
            return codec.parse(body)
        except msgspec.DecodeError as err:
            raise Malformed(f"the body is not JSON ({err})") from None

    async def events(self) -> AsyncGenerator[Event, None]:
        """Yield the body's Server-Sent Events as they arrive. Raises Invalid past the size limit."""
        parser = EventParser()
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        async for piece in self._pieces():
            for event in parser.feed(decoder.decode(piece)):
                yield event
        for event in parser.feed(decoder.decode(b"", final=True)) + parser.finish():
            yield event

    async def _pieces(self) -> AsyncIterator[bytes]:
        declared = self.response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            raise self._too_large()
        async for piece in self.response.aiter_bytes():
            self._read += len(piece)
            if self._read > self.limit:
                raise self._too_large()
            yield piece

    def _too_large(self) -> Invalid:
        return Invalid(
            f"model server {self.server} sent a reply of more than {self.limit} bytes "
            "(limits.MODEL_REPLY_MAX_BYTES); ask for fewer max_tokens or check the server"
        )


class Transport:
    """POSTs JSON to one model server. One per model client; ``aclose`` releases its connections."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        *,
        key: str | None,
        key_hint: str,
        timeout: float = limits.MODEL_TIMEOUT_SECONDS,
        connect: float = limits.MODEL_CONNECT_SECONDS,
        retries: int = limits.MODEL_RETRIES,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        """``key`` is the API key ``headers`` carry (None: none), scrubbed from every message shown;
        ``key_hint`` says where a key is set; ``sleep`` waits between retries (a test passes one
        that records the waits and returns at once)."""
        self.base_url = base_url.rstrip("/")
        self.server = codec.escape(self.base_url)
        self.headers = dict(headers)
        self.key = key
        self.key_hint = key_hint
        self.timeout = timeout
        self.connect = min(connect, timeout)
        self.retries = retries
        self.sleep = sleep
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def post(self, path: str, body: dict[str, Any], read: Callable[[Reply], Awaitable[T]]) -> T:
        """Return what ``read`` makes of the server's 2xx answer to ``body`` POSTed to ``path``.

        Raises ProviderDown once retries are spent, or at once for a 4xx other than 408 and 429;
        Invalid for a reply over limits.MODEL_REPLY_MAX_BYTES. Cancelling the caller closes the
        request's connection and propagates CancelledError.
        """
        payload = codec.dumps(body).encode()
        last = ""
        for attempt in range(self.retries + 1):
            wait: float | None = None
            try:
                async with asyncio.timeout(self.timeout):
                    async with self._connection().stream(
                        "POST", self.base_url + path, content=payload, headers=self.headers
                    ) as response:
                        if 200 <= response.status_code < 300:
                            return await read(Reply(response, self.server, limits.MODEL_REPLY_MAX_BYTES))
                        status, message = response.status_code, await _error_message(response, self.key)
                        wait = retry_after(response.headers, time.time())
            except Malformed as err:
                last = f"a reply alos cannot read: {_shown(str(err), self.key)}"
            except httpx.DecodingError:
                last = "a reply whose content encoding does not decode"
            except (TimeoutError, httpx.TimeoutException):
                last = f"no complete answer within {self.timeout:g} s"
            except (httpx.UnsupportedProtocol, httpx.InvalidURL):
                raise ProviderDown(
                    f"model server {self.server} is not an http:// or https:// URL; fix base_url"
                ) from None
            except httpx.TransportError as err:
                last = f"the connection failed ({type(err).__name__}: {_shown(str(err), self.key) or 'no detail'})"
            else:
                if not _transient(status):
                    raise ProviderDown(self._refusal(status, message))
                last = f"HTTP {status}: {message}"
            if attempt == self.retries:
                break
            await self.sleep(wait if wait is not None else backoff(attempt))
        raise ProviderDown(
            f"model server {self.server} failed {self.retries + 1} times; the last: {last}. "
            "Check that the server is up and reachable (base_url), then retry"
        )

    async def aclose(self) -> None:
        """Close the connections this transport holds."""
        client, self._client = self._client, None
        if client is not None and self._loop is asyncio.get_running_loop():
            await client.aclose()

    def _connection(self) -> httpx.AsyncClient:
        # a client is bound to the event loop it was made on; a runtime may run several loops
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            timeout = httpx.Timeout(self.timeout, connect=self.connect)
            self._client, self._loop = httpx.AsyncClient(timeout=timeout, follow_redirects=False), loop
        return self._client

    def _refusal(self, status: int, message: str) -> str:
        said = f"model server {self.server} answered HTTP {status}: {message}"
        if status in (401, 403):
            if self.key is None:
                return f"{said}. The server wants an API key and none is set: {self.key_hint}, then retry"
            return f"{said}. The API key was refused: {self.key_hint}, then retry"
        if status == 404:
            return f"{said}. Check the model name and base_url (OpenAI-compatible ones usually end in /v1), then retry"
        return f"{said}. The server refused the request: check that this model and server take it, then retry"


def _transient(status: int) -> bool:
    """Return whether an HTTP status may go away by itself (529 is Anthropic's "overloaded")."""
    return status in (408, 429) or status >= 500


def backoff(attempt: int) -> float:
    """Return the wait before retry number ``attempt + 1``: full jitter over an exponential cap."""
    cap = min(limits.MODEL_BACKOFF_MAX_SECONDS, limits.MODEL_BACKOFF_SECONDS * 2**attempt)
    return random.uniform(0, cap)


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Return the seconds a server asked to wait (``retry-after-ms``, or ``Retry-After`` in seconds
    or as an HTTP date), capped at limits.MODEL_BACKOFF_MAX_SECONDS; None when it asked nothing."""
    cap = limits.MODEL_BACKOFF_MAX_SECONDS
    millis = headers.get("retry-after-ms", "").strip()
    try:
        seconds = float(millis) / 1000
    except ValueError:
        seconds = None
    value = headers.get("retry-after", "").strip()
    if seconds is None and value:
        try:
            seconds = float(value)
        except ValueError:
            try:
                seconds = email.utils.parsedate_to_datetime(value).timestamp() - now
            except (TypeError, ValueError, IndexError, OverflowError):
                return None
    if seconds is None or math.isnan(seconds):
        return None
    return min(cap, max(0.0, seconds))


async def _error_message(response: httpx.Response, key: str | None) -> str:
    """Return the provider's error message from an error answer, escaped and cut short."""
    body = bytearray()
    async for piece in response.aiter_bytes():
        body += piece
        if len(body) > limits.MODEL_REPLY_MAX_BYTES:
            break
    try:
        value = codec.parse(bytes(body))
    except msgspec.DecodeError:
        value = None
    error = value.get("error", value) if isinstance(value, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    text = message if isinstance(message, str) else bytes(body).decode("utf-8", "replace")
    return _shown(text, key) or "no message"


def _shown(text: str, key: str | None) -> str:
    """Return untrusted ``text`` safe to show a person: without ``key`` (a server may echo it),
    escaped and cut to limits.PREVIEW_CHARS."""
    if key:
        text = text.replace(key, "[redacted]")
    text = " ".join(text.split())
    if len(text) > limits.PREVIEW_CHARS:
        text = text[: limits.PREVIEW_CHARS] + "..."
    return codec.escape(text)
