"""Recording provider calls: a wrapper that logs every call a provider serves, with its timing.

``record(providers, log)`` returns the same Providers with each one given wrapped: every method
call (sync or async) is logged as a ProviderCall (provider, method, a short escaped summary of
the arguments and of the result, outcome, microseconds) to a callback or a JSON Lines file. It
changes nothing else: the same values are returned and the same exceptions raised, and attribute
reads (``remote``, ``real``) pass through. Payloads are never logged: bytes, and values named as
payloads (file data, text, messages, bodies, environments), appear as their size and digest.
"""

from __future__ import annotations

import inspect
import os
import re
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any, cast

from alos import codec
from alos.errors import Invalid, Unavailable
from alos.providers.base import Model, Providers

# values under these names are content, shown by size and digest only
PAYLOADS = frozenset(
    {"body", "content", "data", "detail", "env", "headers", "messages", "stderr", "stdout", "text", "tools", "usage"}
)
SHOWN_CHARS = 120  # characters of a string shown before it is cut
SHOWN_ITEMS = 16  # items of a short list or tuple shown one by one
SUMMARY_CHARS = 600  # characters of one summary, all arguments together
_KEY_TEXT = re.compile(r"sk-[A-Za-z0-9_\-]{16,}")  # API keys (OpenAI, Anthropic) never reach a log


@dataclass(frozen=True, slots=True)
class ProviderCall:
    """One call a provider served."""

    provider: str  # files | shell | net | clock | human | model
    method: str  # e.g. "read", "complete"
    args: str  # a short escaped summary of the arguments, named
    outcome: str  # "ok", or the class name of what the call raised ("NotFound", "CancelledError")
    micros: int  # wall time the call took, in microseconds (time.perf_counter_ns)
    result: str  # a summary of what it returned, as ``args`` ("" when it raised)


Log = Callable[[ProviderCall], None]


class CallLog:
    """Appends each ProviderCall to a JSON Lines file, one write a line.

    The file is opened at once (created 0600, never through a symlink, a regular file only):
    raises Invalid or Unavailable naming it. A line that cannot be written later is counted in
    ``dropped`` (the first reason in ``error``), never raised: logging changes no call's outcome.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.dropped = 0
        self.error: str | None = None
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            fd = os.open(self.path, flags, 0o600)
        except OSError as err:
            raise Unavailable(
                f"cannot open provider log {self.path} ({err.strerror}); name a regular file you may write"
            ) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise Invalid(f"provider log {self.path} is not a regular file; name a file")
        self._fd: int | None = fd

    def __call__(self, call: ProviderCall) -> None:
        """Append ``call`` as one JSON line (or count it dropped)."""
        line = {
            "provider": call.provider,
            "method": call.method,
            "args": call.args,
            "outcome": call.outcome,
            "micros": call.micros,
            "result": call.result,
        }
        data = (codec.dumps(line) + "\n").encode()
        try:
            if self._fd is None:
                raise OSError(0, "the log is closed")
            written = 0
            while written < len(data):
                written += os.write(self._fd, data[written:])
        except OSError as err:
            self.dropped += 1
            self.error = self.error or err.strerror

    def close(self) -> None:
        """Close the file; later calls are counted dropped."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class Recording:
    """Stands in for one provider: each method call is made on ``inner`` and logged; every other
    attribute is ``inner``'s. ``prefix`` starts each argument summary (a model's spec)."""

    def __init__(self, inner: Any, provider: str, log: Log, prefix: str = "") -> None:
        self.inner = inner
        self._provider = provider  # private names: the inner provider's own attributes stay reachable
        self._log = log
        self._prefix = prefix

    def __getattr__(self, name: str) -> Any:
        if name in ("inner", "_provider", "_log", "_prefix"):  # not set yet (a copy being made)
            raise AttributeError(name)
        value = getattr(self.inner, name)
        if name.startswith("_") or not callable(value) or inspect.isclass(value):
            return value  # data (``remote``, ``real``) is read afresh each time
        wrapper = self._wrap(name, value)
        self.__dict__[name] = wrapper  # found directly from now on
        return wrapper

    def _wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        try:
            names = tuple(inspect.signature(method).parameters)
        except (TypeError, ValueError):
            names = ()
        if inspect.iscoroutinefunction(method):

            async def call_async(*args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter_ns()
                try:
                    value = await method(*args, **kwargs)
                except BaseException as err:  # logged, then raised as it was
                    self._note(name, names, args, kwargs, start, err, None)
                    raise
                self._note(name, names, args, kwargs, start, None, value)
                return value

            return call_async

        def call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter_ns()
            try:
                value = method(*args, **kwargs)
            except BaseException as err:  # logged, then raised as it was
                self._note(name, names, args, kwargs, start, err, None)
                raise
            self._note(name, names, args, kwargs, start, None, value)
            return value

        return call

    def _note(
        self,
        method: str,
        names: tuple[str, ...],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        start: int,
        error: BaseException | None,
        value: Any,
    ) -> None:
        micros = (time.perf_counter_ns() - start) // 1000
        named = [*zip(names, args, strict=False), *kwargs.items()]
        named += [(f"arg{i}", a) for i, a in enumerate(args[len(names) :], start=len(names))]
        shown = ", ".join(f"{key}={summarize(v, 1, key)}" for key, v in named)
        outcome = "ok" if error is None else type(error).__name__
        result = "" if error is not None else summarize(value)
        self._log(ProviderCall(self._provider, method, _cut(self._prefix + shown), outcome, micros, _cut(result)))


def record(providers: Providers, log: Log | str | os.PathLike[str]) -> Providers:
    """Return ``providers`` with each one it gives wrapped so that its calls are logged to ``log``
    (a callback, or the path of a JSON Lines file: see CallLog, which raises Invalid or Unavailable).

    Only the providers given are wrapped: one left None is the real default that alos.open builds,
    which needs the store's path, so pass the ones to record (``Files([store dir])``, ...). The
    model factory is wrapped too: each model it opens is logged as provider "model", opening as
    method "open", and ``spec`` leads each of its summaries.
    """
    sink: Log = CallLog(log) if isinstance(log, (str, os.PathLike)) else log

    def wrap(inner: Any, provider: str) -> Any:
        return None if inner is None else Recording(inner, provider, sink)

    models = None if providers.models is None else _opening(providers.models, sink)
    return replace(
        providers,
        files=wrap(providers.files, "files"),
        shell=wrap(providers.shell, "shell"),
        net=wrap(providers.net, "net"),
        clock=wrap(providers.clock, "clock"),
        human=wrap(providers.human, "human"),
        models=models,
    )


def _opening(models: Callable[[str], Model], log: Log) -> Callable[[str], Model]:
    """Return a model factory that logs each opening as model.open and wraps what it opens."""

    def open_model(spec: str) -> Model:
        shown = f"spec={summarize(spec, 1)}"
        start = time.perf_counter_ns()
        try:
            model = models(spec)
        except BaseException as err:  # logged, then raised as it was
            log(ProviderCall("model", "open", shown, type(err).__name__, (time.perf_counter_ns() - start) // 1000, ""))
            raise
        log(ProviderCall("model", "open", shown, "ok", (time.perf_counter_ns() - start) // 1000, type(model).__name__))
        return cast(Model, Recording(model, "model", log, prefix=shown + ", "))

    return open_model


def summarize(value: Any, depth: int = 0, name: str = "") -> str:
    """Return a short escaped summary of ``value``: scalars and short strings as they are, bytes and
    payloads (``name`` in PAYLOADS) by size and digest, records field by field, collections by length."""
    if name in PAYLOADS and value is not None:
        return _sized(value)
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _sized(value)
    if is_dataclass(value) and not isinstance(value, type):
        if depth >= 2:
            return f"{type(value).__name__}(...)"
        shown = ", ".join(f"{f.name}={summarize(getattr(value, f.name), depth + 1, f.name)}" for f in fields(value))
        return f"{type(value).__name__}({shown})"
    if isinstance(value, (list, tuple)):
        if depth >= 3 or len(value) > SHOWN_ITEMS:
            return f"[{len(value)} items]"
        shown = ", ".join(summarize(v, depth + 1) for v in value)
        return f"({shown})" if isinstance(value, tuple) else f"[{shown}]"
    if isinstance(value, dict):
        return f"{{{len(value)} keys}}"
    return type(value).__name__


def _text(value: str) -> str:
    if "://" in value:  # a URL's query may carry a token: shown as '?...'
        base, query, _ = value.partition("?")
        value = base + ("?..." if query else "")
    value = _KEY_TEXT.sub("[redacted]", value)
    if len(value) > SHOWN_CHARS:
        return f"'{codec.escape(value[:SHOWN_CHARS])}'...({len(value)} chars)"
    return f"'{codec.escape(value)}'"


def _sized(value: Any) -> str:
    if isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
        return f"<{len(value)} chars {codec.digest(data)[:19]}>"
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return f"<{len(data)} bytes {codec.digest(data)[:19]}>"
    if isinstance(value, (list, tuple)):
        return f"<{len(value)} items>"
    if isinstance(value, dict):
        return f"<{len(value)} keys>"
    return f"<{type(value).__name__}>"


def _cut(text: str) -> str:
    return text if len(text) <= SUMMARY_CHARS else text[:SUMMARY_CHARS] + f"...({len(text)} chars)"
