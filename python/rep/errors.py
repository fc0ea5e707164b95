"""Errors `rep` raises on purpose, mirroring the TypeScript ones (src/errors.ts).

Each message says what failed; ``hint`` says how to fix it. ``str(error)`` shows both.
"""

from __future__ import annotations

from typing import List, Optional

__all__ = [
    "RepError",
    "UsageError",
    "ConfigError",
    "NotFoundError",
    "AmbiguousIdError",
    "CorruptObjectError",
    "FormatVersionError",
    "StorageError",
    "ConflictError",
    "ExecutableNotFoundError",
    "RecorderError",
]


class RepError(Exception):
    """Base class of every error `rep` raises on purpose. ``hint`` says how to fix it."""

    def __init__(self, message: str, hint: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\nhint: {self.hint}" if self.hint else self.message


class UsageError(RepError, ValueError):
    """Bad arguments to a call (the CLI's exit code 2)."""


class ConfigError(RepError):
    """The configuration file or the repository URL is invalid."""


class NotFoundError(RepError, LookupError):
    """An experiment, checkpoint, file or object does not exist."""


class AmbiguousIdError(RepError, LookupError):
    """An id prefix matches more than one experiment or checkpoint; ``candidates`` are the full ids."""

    def __init__(self, message: str, candidates: List[str], hint: Optional[str] = None):
        super().__init__(message, hint)
        self.candidates = list(candidates)


class CorruptObjectError(RepError):
    """An object in the repository does not match its hash or size, or cannot be parsed."""


class FormatVersionError(RepError):
    """The repository was written by a newer format than this package reads."""


class StorageError(RepError, OSError):
    """The storage could not be reached, or refused access."""


class ConflictError(RepError):
    """A checkout would overwrite different files or write outside its folder."""


class ExecutableNotFoundError(RepError):
    """Recording needs the `rep` executable, and there is none (REP_BIN, PATH)."""


class RecorderError(RepError):
    """The `rep` process recording this experiment failed or went away."""


class BusyError(RepError):
    """Another process owns the experiment: it runs elsewhere, or won the race to resume it."""


_BY_NAME = {
    cls.__name__: cls
    for cls in (
        UsageError,
        ConfigError,
        NotFoundError,
        CorruptObjectError,
        FormatVersionError,
        StorageError,
        ConflictError,
        BusyError,
    )
}
_BY_NAME["NameTakenError"] = ConflictError


def from_wire(error: dict) -> RepError:
    """The Python exception for an error sent by `rep` over the line protocol."""
    cls = _BY_NAME.get(str(error.get("type")), RepError)
    message = str(error.get("message") or "rep failed")
    hint = error.get("hint")
    if error.get("type") == "AmbiguousIdError":
        return AmbiguousIdError(message, list(error.get("candidates") or []), hint)
    return cls(message, hint if isinstance(hint, str) else None)
