"""Read-only access to the objects of a repository: a local folder, ``s3://`` or ``gs://``.

Each store counts the requests it sent and the bytes it received (``stats``), so callers can
see what a read cost. Keys are POSIX strings relative to the repository root.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Dict, Iterator, Optional, Tuple

from ..errors import ConfigError, UsageError


class Store:
    """The byte store interface the reader needs."""

    url: str = ""
    #: ``requests`` sent and ``bytes`` received so far.
    stats: Dict[str, int]

    def __init__(self) -> None:
        self.stats = {"requests": 0, "bytes": 0}
        self._lock = threading.Lock()

    def _count(self, nbytes: int) -> None:
        with self._lock:
            self.stats["requests"] += 1
            self.stats["bytes"] += nbytes

    def get(self, key: str, offset: int = 0, length: Optional[int] = None) -> bytes:
        """An object, or ``length`` bytes of it from ``offset``; NotFoundError when missing."""
        raise NotImplementedError

    def list(self, prefix: str) -> Iterator[Tuple[str, int]]:
        """(key, size) of every object under ``prefix``, in key order."""
        raise NotImplementedError

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        """The "folders" directly under ``prefix`` (ending in ``/``), in order."""
        raise NotImplementedError

    @property
    def is_local(self) -> bool:
        return False


def check_key(key: str) -> str:
    if not key or key.startswith("/") or "\\" in key or "\0" in key or any(
        s in ("", ".", "..") for s in key.split("/")
    ):
        raise UsageError(f"Invalid storage key {key!r}: keys are relative POSIX paths")
    return key


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]$")


def _bad_url(url: str, why: str) -> ConfigError:
    return ConfigError(
        f'Invalid repository URL "{url}": {why}',
        "Use a local path, file:///absolute/path, s3://bucket/prefix or gs://bucket/prefix",
    )


def split_bucket(url: str, rest: str) -> Tuple[str, str]:
    bucket, _, prefix = rest.partition("/")
    if not _BUCKET.match(bucket):
        raise _bad_url(url, f'"{bucket}" is not a valid bucket name')
    return bucket, prefix.strip("/")


def open_store(url: str, base: Optional[str] = None) -> Store:
    """The store a repository URL names (relative paths are relative to ``base``)."""
    base = base or os.getcwd()
    m = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://(.*)$", url)
    if not m:
        from .local import LocalStore

        return LocalStore(os.path.abspath(os.path.join(base, url)))
    scheme, rest = m.group(1).lower(), m.group(2)
    if scheme == "file":
        if not rest:
            raise _bad_url(url, "the path is empty")
        from .local import LocalStore

        return LocalStore(os.path.abspath(rest if os.path.isabs(rest) else os.path.join(base, rest)))
    if scheme == "s3":
        from .s3 import S3Store

        return S3Store(*split_bucket(url, rest))
    if scheme == "gs":
        from .gcs import GcsStore

        return GcsStore(*split_bucket(url, rest))
    raise _bad_url(url, f'the scheme "{scheme}" is not supported')
