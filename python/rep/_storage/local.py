"""A repository in a local folder: each key is a file under the root."""

from __future__ import annotations

import errno
import os
from typing import Iterator, List, Optional, Tuple

from ..errors import NotFoundError, StorageError
from . import Store, check_key


class LocalStore(Store):
    def __init__(self, root: str):
        super().__init__()
        self.root = root
        self.url = "file://" + root

    @property
    def is_local(self) -> bool:
        return True

    def path(self, key: str) -> str:
        return os.path.join(self.root, *check_key(key).split("/"))

    def get(self, key: str, offset: int = 0, length: Optional[int] = None) -> bytes:
        try:
            with open(self.path(key), "rb", buffering=0) as f:
                if length is None:
                    if offset:
                        f.seek(offset)
                    data = f.read()
                else:
                    data = os.pread(f.fileno(), length, offset)
                    # pread may return less than asked at once only at the end of the file.
                    while len(data) < length:
                        more = os.pread(f.fileno(), length - len(data), offset + len(data))
                        if not more:
                            break
                        data += more
        except OSError as e:
            raise _wrap(e, f"read {key}") from None
        self._count(len(data))
        return data

    def list(self, prefix: str) -> Iterator[Tuple[str, int]]:
        cut = prefix.rfind("/")
        dir_key = prefix[:cut] if cut >= 0 else ""
        out: List[Tuple[str, int]] = []
        self._walk(dir_key, prefix, out)
        out.sort()
        return iter(out)

    def _walk(self, dir_key: str, prefix: str, out: List[Tuple[str, int]]) -> None:
        d = os.path.join(self.root, *dir_key.split("/")) if dir_key else self.root
        try:
            entries = list(os.scandir(d))
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as e:
            raise _wrap(e, f"list {dir_key or '/'}") from None
        for ent in entries:
            key = f"{dir_key}/{ent.name}" if dir_key else ent.name
            if ent.name.endswith(".tmp"):
                continue
            try:
                if ent.is_dir(follow_symlinks=False):
                    if (key + "/").startswith(prefix) or prefix.startswith(key + "/"):
                        self._walk(key, prefix, out)
                elif ent.is_file() and key.startswith(prefix):
                    out.append((key, ent.stat().st_size))
            except FileNotFoundError:
                continue

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        d = os.path.join(self.root, *[p for p in prefix.split("/") if p])
        try:
            names = sorted(e.name for e in os.scandir(d) if e.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            return iter(())
        except OSError as e:
            raise _wrap(e, f"list {prefix}") from None
        return iter(f"{prefix}{n}/" for n in names)


def _wrap(e: OSError, what: str) -> Exception:
    if isinstance(e, (FileNotFoundError, NotADirectoryError)):
        return NotFoundError(f"Cannot {what}: no such object")
    if isinstance(e, PermissionError):
        return StorageError(f"Cannot {what}: permission denied", "Check the permissions of the repository folder")
    if e.errno == errno.EISDIR:
        return NotFoundError(f"Cannot {what}: no such object")
    return StorageError(f"Cannot {what}: {e.strerror or e}")
