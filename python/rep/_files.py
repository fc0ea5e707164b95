"""Reading one stored file: a read-only, seekable binary file object over its chunks.

Only the chunks a read needs are fetched (neighbouring chunks of one pack merged into ranged reads
of up to 8 MiB, a few in flight), with read-ahead once reads are sequential. Every chunk is checked
against its sha256 whenever it is used. Memory stays bounded whatever the file size: chunks live in
a small in-memory window and, for remote repositories, in a local cache file per content id
(``<cache>/python/files/``), so opening the same file again fetches nothing.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Tuple

from . import _format as fmt
from ._storage import Store
from .errors import CorruptObjectError, NotFoundError

#: Largest ranged read.
MAX_RANGE = 8 * 1024 * 1024
#: Read-ahead limit once reads are sequential.
MAX_AHEAD = 16 * 1024 * 1024
#: Verified chunks kept in memory per open file.
MEMORY = 32 * 1024 * 1024
#: Sequential bytes after which read-ahead starts.
AHEAD_AFTER = 1024 * 1024

_pool_lock = threading.Lock()
_pool: Optional[ThreadPoolExecutor] = None


def _fetch_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="rep-fetch")
        return _pool


def _reset_pool_after_fork() -> None:
    global _pool
    _pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_pool_after_fork)


#: Cached files unused for this long are deleted (as the CLI's caches are).
UNUSED_SECONDS = 30 * 86400
_swept: set = set()


def sweep(root: str, now: Optional[float] = None) -> None:
    """Delete cached files not opened for UNUSED_SECONDS (once per process and cache root)."""
    if root in _swept:
        return
    _swept.add(root)
    import time

    now = time.time() if now is None else now
    try:
        subdirs = list(os.scandir(root))
    except OSError:
        return
    for d in subdirs:
        if not d.is_dir(follow_symlinks=False):
            continue
        try:
            for e in os.scandir(d.path):
                if e.name.endswith(".have") and now - e.stat().st_mtime > UNUSED_SECONDS:
                    base = e.path[: -len(".have")]
                    for p in (base + ".data", e.path):
                        try:
                            os.unlink(p)
                        except OSError:
                            pass
        except OSError:
            continue


class FileCache:
    """A sparse local copy of one file (by content id) plus a byte per chunk saying it is there.

    Safe to share between processes: chunks are written at their own offsets before their byte is
    set, and a chunk read from here is checked against its hash like any other (a bad one is
    fetched again).
    """

    def __init__(self, root: str, entry: fmt.FileEntry):
        d = os.path.join(root, entry.hash[:2])
        os.makedirs(d, exist_ok=True)
        base = os.path.join(d, entry.hash)
        self._fd = os.open(base + ".data", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(self._fd).st_size != entry.size:
                os.ftruncate(self._fd, entry.size)
            self._have_fd = os.open(base + ".have", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            os.close(self._fd)
            raise
        try:
            os.utime(base + ".have")  # in use (see sweep)
        except OSError:
            pass
        n = len(entry.chunks)
        have = os.pread(self._have_fd, n, 0)
        self._have = bytearray(have.ljust(n, b"\0"))

    def has(self, k: int) -> bool:
        if self._have[k]:
            return True
        # Maybe another process fetched it meanwhile.
        b = os.pread(self._have_fd, 1, k)
        if b == b"\1":
            self._have[k] = 1
            return True
        return False

    def read(self, offset: int, length: int) -> bytes:
        return os.pread(self._fd, length, offset)

    def write(self, k: int, offset: int, data: bytes) -> None:
        os.pwrite(self._fd, data, offset)
        os.pwrite(self._have_fd, b"\1", k)
        self._have[k] = 1

    def forget(self, k: int) -> None:
        os.pwrite(self._have_fd, b"\0", k)
        self._have[k] = 0

    def close(self) -> None:
        for fd in (self._fd, self._have_fd):
            try:
                os.close(fd)
            except OSError:
                pass


class ChunkSource:
    """Verified chunks of one file, from memory, the local cache or the store."""

    def __init__(self, store: Store, entry: fmt.FileEntry, cache_root: Optional[str]):
        self.store = store
        self.entry = entry
        self.offsets: List[int] = []
        o = 0
        for c in entry.chunks:
            self.offsets.append(o)
            o += c[2]
        self._mem: "OrderedDict[int, bytes]" = OrderedDict()
        self._mem_bytes = 0
        self.fetched = 0
        self.cache: Optional[FileCache] = None
        if cache_root and not store.is_local and entry.chunks:
            try:
                sweep(cache_root)
                self.cache = FileCache(cache_root, entry)
            except OSError:
                self.cache = None  # a read-only disk: memory only

    def close(self) -> None:
        if self.cache:
            self.cache.close()
            self.cache = None
        self._mem.clear()
        self._mem_bytes = 0

    def _remember(self, k: int, data: bytes) -> None:
        if k in self._mem:
            self._mem.move_to_end(k)
            return
        self._mem[k] = data
        self._mem_bytes += len(data)
        while self._mem_bytes > MEMORY and len(self._mem) > 1:
            _, old = self._mem.popitem(last=False)
            self._mem_bytes -= len(old)

    def _corrupt(self, pack: str) -> CorruptObjectError:
        return CorruptObjectError(
            f"Corrupt data in {fmt.pack_key(pack)}: a chunk of {self.entry.path} does not match its hash",
            "Run `rep verify` to list what is damaged",
        )

    def _fetch(self, group: List[int]) -> List[Tuple[int, bytes]]:
        chunks = self.entry.chunks
        pack, start = chunks[group[0]][0], chunks[group[0]][1]
        length = sum(chunks[k][2] for k in group)
        try:
            data = self.store.get(fmt.pack_key(pack), start, length)
        except NotFoundError:
            raise CorruptObjectError(
                f"Missing object {fmt.pack_key(pack)}: it holds data of {self.entry.path}",
                "Run `rep verify` to list what is damaged",
            ) from None
        if len(data) != length:
            raise CorruptObjectError(
                f"Corrupt object {fmt.pack_key(pack)}: it is shorter than {self.entry.path} needs",
                "Run `rep verify` to list what is damaged",
            )
        out = []
        view = memoryview(data)
        o = 0
        for k in group:
            n = chunks[k][2]
            piece = view[o : o + n]
            if hashlib.sha256(piece).hexdigest() != chunks[k][3]:
                raise self._corrupt(pack)
            out.append((k, bytes(piece) if len(group) > 1 else data))
            o += n
        return out

    def _groups(self, ks: List[int]) -> List[List[int]]:
        chunks = self.entry.chunks
        groups: List[List[int]] = []
        size = 0
        for k in ks:
            pack, off, n, _ = chunks[k]
            if groups:
                last = chunks[groups[-1][-1]]
                if last[0] == pack and last[1] + last[2] == off and size + n <= MAX_RANGE and groups[-1][-1] == k - 1:
                    groups[-1].append(k)
                    size += n
                    continue
            groups.append([k])
            size = n
        return groups

    def _runs(self, ks: List[int]) -> List[List[int]]:
        """Consecutive chunk indexes, at most MAX_RANGE bytes each."""
        runs: List[List[int]] = []
        size = 0
        for k in ks:
            n = self.entry.chunks[k][2]
            if runs and runs[-1][-1] == k - 1 and size + n <= MAX_RANGE:
                runs[-1].append(k)
                size += n
            else:
                runs.append([k])
                size = n
        return runs

    def _load_cached(self, run: List[int]) -> Tuple[List[Tuple[int, bytes]], List[int]]:
        """Read a run of cached chunks in one go; (verified chunks, chunks that failed their hash)."""
        assert self.cache is not None
        chunks = self.entry.chunks
        start = self.offsets[run[0]]
        length = sum(chunks[k][2] for k in run)
        data = memoryview(self.cache.read(start, length))
        good, bad = [], []
        o = 0
        for k in run:
            n = chunks[k][2]
            piece = data[o : o + n]
            o += n
            if len(piece) == n and hashlib.sha256(piece).hexdigest() == chunks[k][3]:
                good.append((k, bytes(piece)))
            else:
                bad.append(k)
        return good, bad

    def prefetch(self, i: int, j: int) -> None:
        """Make chunks i..j available in memory: from the local cache when it has them (checked),
        else fetched from the store (in parallel), and kept in the cache."""
        need = [k for k in range(i, j + 1) if k not in self._mem]
        if not need:
            return
        missing = need
        if self.cache is not None:
            cached = [k for k in need if self.cache.has(k)]
            if cached:
                runs = self._runs(cached)
                results = [self._load_cached(runs[0])] if len(runs) == 1 else list(_fetch_pool().map(self._load_cached, runs))
                have = set()
                for good, bad in results:
                    for k, data in good:
                        self._remember(k, data)
                        have.add(k)
                    for k in bad:
                        self.cache.forget(k)
                missing = [k for k in need if k not in have]
        if not missing:
            return
        groups = self._groups(missing)
        if len(groups) == 1:
            results2 = [self._fetch(groups[0])]
        else:
            results2 = list(_fetch_pool().map(self._fetch, groups))
        for res in results2:
            self.fetched += sum(len(d) for _, d in res)
            for k, data in res:
                if self.cache is not None:
                    try:
                        self.cache.write(k, self.offsets[k], data)
                    except OSError:
                        pass  # disk full: memory only
                self._remember(k, data)

    def get(self, k: int) -> bytes:
        data = self._mem.get(k)
        if data is None:
            self.prefetch(k, k)
            data = self._mem[k]
        else:
            self._mem.move_to_end(k)
        return data


class CheckpointFile(io.RawIOBase):
    """A read-only, seekable binary file over one stored file (what ``checkpoint.open()`` returns).

    Works with ``torch.load``, ``numpy.load``, ``zipfile``, ``safetensors``-style ranged reads and
    ``shutil.copyfileobj``. ``fetched`` counts the bytes this file fetched from the repository.
    """

    def __init__(self, store: Store, entry: fmt.FileEntry, cache_root: Optional[str] = None):
        super().__init__()
        self.name = entry.path
        self.mode = "rb"
        self.size = entry.size
        self._entry = entry
        self._src = ChunkSource(store, entry, cache_root)
        self._pos = 0
        self._last_end = -1
        self._streak = 0
        self._lock = threading.Lock()

    # ---- io.RawIOBase ------------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def tell(self) -> int:
        self._check_open()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_open()
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self.size + offset
        else:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def readinto(self, b) -> int:  # type: ignore[override]
        self._check_open()
        with self._lock:
            view = memoryview(b).cast("B")
            n = min(len(view), self.size - self._pos)
            if n <= 0:
                return 0
            pos = self._pos
            offsets = self._src.offsets
            i = bisect.bisect_right(offsets, pos) - 1
            j = bisect.bisect_right(offsets, pos + n - 1) - 1
            sequential = pos == self._last_end
            self._streak = self._streak + n if sequential else n
            last = j
            # Read ahead only for a run of reads that continue each other (not after a seek).
            if sequential and self._streak >= AHEAD_AFTER:
                ahead = min(self._streak, MAX_AHEAD)
                last = max(j, bisect.bisect_right(offsets, min(self.size - 1, pos + n - 1 + ahead)) - 1)
            # Fetch in windows that fit in memory; copy out what this read needs from each.
            k = i
            while k <= last:
                end = k
                total = self._entry.chunks[k][2]
                while end < last and total + self._entry.chunks[end + 1][2] <= MAX_AHEAD:
                    end += 1
                    total += self._entry.chunks[end][2]
                self._src.prefetch(k, end)
                a, b = max(k, i), min(end, j)
                if a <= b:
                    self._copy(view, pos, n, a, b)
                k = end + 1
            self._pos = pos + n
            self._last_end = self._pos
            return n

    def _copy(self, view: memoryview, pos: int, n: int, a: int, b: int) -> None:
        offsets = self._src.offsets
        for k in range(a, b + 1):
            data = self._src.get(k)
            start = offsets[k]
            lo = max(pos, start)
            hi = min(pos + n, start + len(data))
            if lo < hi:
                view[lo - pos : hi - pos] = data[lo - start : hi - start]

    def readall(self) -> bytes:
        self._check_open()
        left = max(0, self.size - self._pos)
        buf = bytearray(left)
        view = memoryview(buf)
        got = 0
        while got < left:
            n = self.readinto(view[got : got + min(left - got, MAX_AHEAD)])
            if not n:
                break
            got += n
        return bytes(buf) if got == left else bytes(buf[:got])

    def close(self) -> None:
        if not self.closed:
            self._src.close()
        super().close()

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")

    def __repr__(self) -> str:
        return f"<rep.CheckpointFile {self.name!r} size={self.size}>"

    @property
    def fetched(self) -> int:
        """Bytes this file object fetched from the repository (not counting the local cache)."""
        return self._src.fetched


def cache_root_for(store: Store) -> Optional[str]:
    if store.is_local or os.environ.get("REP_NO_FILE_CACHE"):
        return None
    from ._catalog import cache_dir

    return os.path.join(cache_dir(), "python", "files")
