"""Checkout: write stored files into a folder, as `rep checkout` does (src/restore/checkout.ts).

Every destination is checked before anything is written: nothing outside the target, no symlinked
parent followed, files that exist with different content refused unless ``force``. Each file is
written to a temporary name and renamed into place.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

from . import _format as fmt
from ._files import CheckpointFile
from ._storage import Store
from .errors import ConflictError, NotFoundError

_COPY = 8 * 1024 * 1024


@dataclass
class CheckoutResult:
    """What a checkout wrote (paths relative to the folder)."""

    written: List[str] = field(default_factory=list)
    unchanged: List[str] = field(default_factory=list)
    bytes: int = 0


def safe_destination(root: str, rel: str) -> str:
    """The absolute destination of ``rel`` inside ``root``; refuses paths that would leave it."""
    parts = rel.split("/")
    if rel.startswith("/") or "\\" in rel or "\0" in rel or any(p in ("", ".", "..") for p in parts):
        raise ConflictError(
            f"Refusing to write {rel!r}: the path leaves the target folder",
            "The repository holds a hostile or damaged file list; run `rep verify`",
        )
    dest = os.path.join(root, *parts)
    if not dest.startswith(root.rstrip(os.sep) + os.sep):
        raise ConflictError(f"Refusing to write {rel!r}: the path leaves {root}")
    cur = root
    for p in parts[:-1]:
        cur = os.path.join(cur, p)
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            break
        if stat.S_ISLNK(st.st_mode):
            raise ConflictError(
                f"Refusing to write {rel}: {cur} is a symlink, which could lead outside {root}",
                "Remove the symlink or check out into an empty folder",
            )
        if not stat.S_ISDIR(st.st_mode):
            raise ConflictError(f"Cannot write {rel}: {cur} exists and is not a folder")
    return dest


def same_content(path: str, entry: fmt.FileEntry) -> bool:
    """Whether the file at ``path`` holds exactly ``entry``'s bytes (chunk by chunk, by sha256)."""
    with open(path, "rb") as f:
        for _, _, n, sha in entry.chunks:
            if hashlib.sha256(f.read(n)).hexdigest() != sha:
                return False
        return f.read(1) == b""


def select(files: Sequence[fmt.FileEntry], paths: Optional[Sequence[str]]) -> List[fmt.FileEntry]:
    if not paths:
        return list(files)
    wanted = [re.sub(r"^\./+", "", p).rstrip("/") for p in paths]
    hit = lambda f, w: f.path == w or f.path.startswith(w + "/")  # noqa: E731
    missing = [w for w in wanted if not any(hit(f, w) for f in files)]
    if missing:
        raise NotFoundError(
            "No file " + ", ".join(repr(m) for m in missing) + " in this checkpoint",
            "List its files with checkpoint.files() or `rep show ID`",
        )
    return [f for f in files if any(hit(f, w) for w in wanted)]


def checkout(
    store: Store,
    files: Sequence[fmt.FileEntry],
    directory: str,
    force: bool = False,
    paths: Optional[Sequence[str]] = None,
    cache_root: Optional[str] = None,
) -> CheckoutResult:
    root = os.path.realpath(os.path.abspath(directory))
    selected = select(files, paths)
    os.makedirs(root, exist_ok=True)
    conflicts: List[str] = []
    unchanged: List[str] = []
    for f in selected:
        dest = safe_destination(root, f.path)
        try:
            st = os.lstat(dest)
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(st.st_mode):
            conflicts.append(f"{f.path} (exists and is not a regular file)")
        elif st.st_size == f.size and same_content(dest, f):
            unchanged.append(f.path)
        else:
            conflicts.append(f.path)
    if conflicts and not force:
        conflicts.sort()
        shown = "\n".join(f"  {c}" for c in conflicts[:20])
        more = f"\n  … and {len(conflicts) - 20} more" if len(conflicts) > 20 else ""
        raise ConflictError(
            f"Cannot check out into {root}: {len(conflicts)} file(s) exist with different content:\n{shown}{more}",
            "Pass force=True to overwrite them, or check out into another folder",
        )
    skip = set(unchanged)
    todo = [f for f in selected if f.path not in skip]

    def write(f: fmt.FileEntry) -> int:
        dest = safe_destination(root, f.path)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        safe_destination(root, f.path)  # the parent must not have become a symlink
        tmp = f"{dest}.rep-{os.urandom(4).hex()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, (f.mode & 0o777 & ~0o022) | 0o600)
        try:
            with os.fdopen(fd, "wb") as out, CheckpointFile(store, f, cache_root) as src:
                buf = bytearray(min(_COPY, max(f.size, 1)))
                view = memoryview(buf)
                while True:
                    n = src.readinto(view)
                    if not n:
                        break
                    out.write(view[:n])
            try:
                st = os.lstat(dest)
                if stat.S_ISDIR(st.st_mode):
                    raise ConflictError(
                        f"Cannot write {f.path}: a folder is in the way",
                        "Remove it, or check out into another folder",
                    )
            except FileNotFoundError:
                pass
            os.replace(tmp, dest)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return f.size

    with ThreadPoolExecutor(4, thread_name_prefix="rep-checkout") as pool:
        sizes = list(pool.map(write, todo))
    return CheckoutResult(sorted(f.path for f in todo), sorted(unchanged), sum(sizes))
