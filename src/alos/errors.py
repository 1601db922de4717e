"""The AlosError tree: every error a caller can cause, each with a stable code.

    AlosError
     +-- Denied        code "denied"       authority refused (missing right, deny grant, human said no)
     +-- NotFound      code "not_found"    no such process, request, file, image, syscall
     +-- Invalid       code "invalid"      malformed argument, spec, script or store
     +-- Exists        code "exists"       the thing to create is already there
     +-- Conflict      code "conflict"     the world changed under the call (answered twice, lost race)
     +-- Limit         code "limit"        a size, count or budget limit would be exceeded
     +-- Unavailable   code "unavailable"  a resource cannot be used now (store locked, host busy)
     |    +-- StoreLost                    the store file was deleted or replaced under a running host
     |    +-- ProviderDown                 a provider cannot serve calls now: a person may fix it, then retry

Pure data: imports nothing from alos. Messages name the bad input and what to do about it.
Caller errors become tool results the model can read; bugs are not AlosErrors and propagate.
"""

from __future__ import annotations

from typing import ClassVar


class AlosError(Exception):
    """Base of every error a caller can cause; ``code`` is stable across releases."""

    code: ClassVar[str] = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class Denied(AlosError):
    code = "denied"


class NotFound(AlosError):
    code = "not_found"


class Invalid(AlosError):
    code = "invalid"


class BadArguments(Invalid):
    """Arguments that do not match the syscall's schema (the model gets a repair turn)."""


class Exists(AlosError):
    code = "exists"


class Conflict(AlosError):
    code = "conflict"


class Diverged(Conflict):
    """A re-dispatched action made another call than the journal holds at that step (a tool
    that is not deterministic): what it would do next could land on another call's step, so
    the tool call ends here."""


class Limit(AlosError):
    code = "limit"


class Corrupt(AlosError):
    """Stored data (an object's payload on disk) is missing or does not match its digest."""

    code = "corrupt"


class Unavailable(AlosError):
    code = "unavailable"


class StoreLost(Unavailable):
    """The store file this program opened is gone or is another file now: stop, write nothing more."""


class ProviderDown(Unavailable):
    """A provider cannot serve the call now (a model script moved or broke): dispatch() parks the
    process on a recovery request that says why, instead of failing it."""


__all__ = [
    "AlosError",
    "BadArguments",
    "Conflict",
    "Denied",
    "Exists",
    "Invalid",
    "Limit",
    "NotFound",
    "ProviderDown",
    "StoreLost",
    "Unavailable",
]
