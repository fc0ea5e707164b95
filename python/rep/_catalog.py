"""What a repository holds and what a reader sees of it: experiments with their checkpoints,
status derived from status records and heartbeats, removals (format 1 tombstones and format 2
``changes/``), tags and notes applied, ids and names resolved.

Finished experiments never change (until resumed), so they are kept in a per-user cache file and a
warm listing reads only what is new. Deleting the cache loses nothing. A cold reader with many
experiments to read takes them from the shared index segments under ``index/`` first.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from . import _format as fmt
from ._storage import Store
from .errors import AmbiguousIdError, CorruptObjectError, FormatVersionError, NotFoundError, UsageError

CACHE_VERSION = 1
#: Fewest experiments to read worth reading the shared index segments for (as the CLI does).
SEGMENT_MIN = 100
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def cache_dir() -> str:
    """``REP_CACHE_DIR``, else ``$XDG_CACHE_HOME/rep``, else ``~/.cache/rep`` (as the CLI)."""
    env = os.environ.get("REP_CACHE_DIR")
    if env:
        return env
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return os.path.join(xdg, "rep")
    return os.path.join(os.path.expanduser("~"), ".cache", "rep")


@dataclass
class Entry:
    """Everything read about one experiment."""

    record: Optional[Dict[str, Any]] = None
    checkpoints: List[Dict[str, Any]] = field(default_factory=list)
    #: Status of attempt 1.
    status: Optional[Dict[str, Any]] = None
    heartbeat: Optional[Dict[str, Any]] = None
    #: Attempts n >= 2: n -> {"attempt": record or None, "status": record or None}.
    attempts: Dict[int, Dict[str, Any]] = field(default_factory=dict)
    corrupt: Dict[str, str] = field(default_factory=dict)
    #: The record came from an index segment, without its provenance.
    partial: bool = False

    def newest_attempt(self) -> int:
        return max([1, *self.attempts.keys()])

    def final_status(self) -> Optional[Dict[str, Any]]:
        n = self.newest_attempt()
        return self.status if n == 1 else self.attempts[n].get("status")

    def finished(self) -> bool:
        return self.record is not None and self.final_status() is not None and not self.corrupt

    def to_json(self) -> Dict[str, Any]:
        # Provenance (environment, packages, git diff) can be large: read from the record when
        # asked for. The output folder stays: format 1 paths depend on it.
        record = self.record
        partial = self.partial
        if record is not None and record.get("provenance"):
            prov = record["provenance"]
            record = {**record, "provenance": {"output": prov["output"]} if "output" in prov else {}}
            partial = True
        return {
            "record": record,
            "checkpoints": self.checkpoints,
            "status": self.status,
            "attempts": {str(k): v for k, v in self.attempts.items()},
            "partial": partial,
        }

    @staticmethod
    def from_json(d: Dict[str, Any]) -> "Entry":
        return Entry(
            record=d["record"],
            checkpoints=d["checkpoints"],
            status=d["status"],
            attempts={int(k): v for k, v in (d.get("attempts") or {}).items()},
            partial=bool(d.get("partial")),
        )


@dataclass
class Index:
    url: str
    experiments: Dict[str, Entry] = field(default_factory=dict)
    #: Removal and change objects already read: key -> parsed entries.
    tombstones: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    changes: Dict[str, List[Dict[str, Any]]] = field(default_factory=dict)
    segments: List[str] = field(default_factory=list)


@dataclass
class View:
    """An experiment as a reader sees it."""

    id: str
    record: Dict[str, Any]
    checkpoints: List[Dict[str, Any]]
    status: str
    status_record: Optional[Dict[str, Any]]
    heartbeat: Optional[Dict[str, Any]]
    tags: List[str]
    note: Optional[str]
    attempts: int
    partial: bool
    corrupt: Dict[str, str]


def _compare_key(ck: Dict[str, Any]) -> Tuple[str, int]:
    return (ck["created"], -1 if ck["step"] is None else ck["step"])


def _ts(v: str) -> float:
    d = fmt.parse_time(v)
    return d.timestamp() if d else 0.0


class Catalog:
    """The catalog of one store."""

    def __init__(self, store: Store, cache: bool = True):
        self.store = store
        self._cache_file = (
            os.path.join(cache_dir(), "python", "index", hashlib.sha256(store.url.encode()).hexdigest()[:24] + ".json")
            if cache
            else None
        )
        self._format_checked = False
        self._views: Optional[List[View]] = None

    # ---- the format --------------------------------------------------------------------------

    def check_format(self) -> Optional[int]:
        """The repository's format, None when nothing was written yet; newer formats are refused."""
        try:
            data = self.store.get(fmt.REPOSITORY_KEY)
        except NotFoundError:
            return None
        v = fmt.parse_json(data, fmt.REPOSITORY_KEY)
        f = v.get("format") if isinstance(v, dict) else None
        if isinstance(f, bool) or not isinstance(f, int) or f < 1:
            raise CorruptObjectError(
                "Corrupt repository.json: it has no valid format number",
                f"Check that {self.store.url} is a rep repository",
            )
        if f > fmt.FORMAT_VERSION:
            raise FormatVersionError(
                f"Cannot read repository {self.store.url}: it has format {f}, and this package reads up to "
                f"{fmt.FORMAT_VERSION}",
                "Upgrade the rep Python package",
            )
        self._format_checked = True
        return f

    # ---- reading -----------------------------------------------------------------------------

    def _read(self, key: str) -> Any:
        return fmt.parse_json(self.store.get(key), key)

    def refresh(self) -> Index:
        if not self._format_checked:
            self.check_format()
        index = self._load()
        changed = False
        ids = [i for i in (fmt.experiment_of_prefix(p) for p in self.store.list_prefixes(fmt.EXPERIMENTS)) if i]
        present = set(ids)
        for eid in list(index.experiments):
            if eid not in present:
                del index.experiments[eid]
                changed = True
        changed |= self._refresh_changes(index)
        resumed = self._resumed(index)
        todo = [i for i in ids if i not in index.experiments or i in resumed]
        if len(todo) >= SEGMENT_MIN:
            if self._load_segments(index, set(todo)):
                changed = True
            todo = [i for i in todo if i not in index.experiments or i in resumed]
        if todo:
            with ThreadPoolExecutor(16) as pool:
                entries = list(pool.map(self._read_experiment, todo))
            for eid, entry in zip(todo, entries):
                index.experiments[eid] = entry
                changed = True
        self._save(index, changed)
        return index

    def _resumed(self, index: Index) -> Set[str]:
        """Cached finished experiments that a ``resume`` change says have a newer attempt."""
        out = set()
        for entries in index.changes.values():
            for e in entries:
                if e["op"] == "resume":
                    known = index.experiments.get(e["experiment"])
                    if known is not None and known.newest_attempt() < int(e.get("attempt") or 2):
                        out.add(e["experiment"])
        return out

    def _read_experiment(self, eid: str) -> Entry:
        entry = Entry()
        base = fmt.experiment_prefix(eid)
        keys = [k for k, _ in self.store.list(base)]
        wanted = []
        has_heartbeat = False
        for key in keys:
            kind, detail = fmt.experiment_object(key[len(base) :])
            if kind == "heartbeat":
                has_heartbeat = True
            elif kind in ("experiment", "status", "checkpoint", "attempt_attempt", "attempt_status"):
                wanted.append((key, kind, detail))

        def read(item: Tuple[str, str, Any]) -> Tuple[str, str, Any, Any, Optional[str]]:
            key, kind, detail = item
            try:
                v = self._read(key)
                if kind == "experiment":
                    rec = fmt.parse_experiment(v, key)
                    if rec["id"] != eid:
                        raise fmt.fail(key, f"id {rec['id']} does not match its folder")
                elif kind == "status" or kind == "attempt_status":
                    rec = fmt.parse_status(v, key)
                elif kind == "checkpoint":
                    rec = fmt.parse_checkpoint(v, key)
                    if rec["experiment"] != eid:
                        raise fmt.fail(key, f"experiment {rec['experiment']} is not its folder")
                else:
                    rec = fmt.parse_attempt(v, key)
                return key, kind, detail, rec, None
            except NotFoundError:
                return key, kind, detail, None, None  # deleted meanwhile
            except CorruptObjectError as e:
                return key, kind, detail, None, e.message

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(read, wanted))
        for key, kind, detail, rec, err in results:
            if err:
                entry.corrupt[key] = err
                continue
            if rec is None:
                continue
            if kind == "experiment":
                entry.record = rec
            elif kind == "status":
                entry.status = rec
            elif kind == "checkpoint":
                entry.checkpoints.append(rec)
            else:
                slot = entry.attempts.setdefault(detail, {"attempt": None, "status": None})
                slot["attempt" if kind == "attempt_attempt" else "status"] = rec
        entry.checkpoints.sort(key=_compare_key)
        if entry.final_status() is None and has_heartbeat:
            try:
                entry.heartbeat = fmt.parse_heartbeat(self._read(base + "heartbeat.json"))
            except (NotFoundError, CorruptObjectError):
                entry.heartbeat = None
        return entry

    def _refresh_changes(self, index: Index) -> bool:
        changed = False
        for prefix, table, parse in (
            (fmt.TOMBSTONES, index.tombstones, fmt.parse_tombstone),
            (fmt.CHANGES, index.changes, fmt.parse_changes),
        ):
            keys = [k for k, _ in self.store.list(prefix) if k.endswith(".json")]
            keep = set(keys)
            for k in list(table):
                if k not in keep:
                    del table[k]
                    changed = True
            new = [k for k in keys if k not in table]

            def read(k: str, parse: Callable[..., Any] = parse) -> Tuple[str, Any]:
                try:
                    return k, parse(self._read(k), k)
                except NotFoundError:
                    return k, None

            if new:
                with ThreadPoolExecutor(16) as pool:
                    for k, v in pool.map(read, new):
                        if v is not None:
                            table[k] = v
                            changed = True
        return changed

    def _load_segments(self, index: Index, wanted: Set[str]) -> bool:
        loaded = set(index.segments)
        keys = [k for k, _ in self.store.list(fmt.INDEX) if k not in loaded]
        if not keys:
            return False

        def read(key: str) -> Tuple[str, Optional[Dict[str, Any]]]:
            try:
                seg = fmt.parse_json(gzip.decompress(self.store.get(key)), key)
                if not isinstance(seg, dict) or seg.get("type") != "index" or not isinstance(seg.get("experiments"), list):
                    return key, None
                return key, seg
            except (NotFoundError, CorruptObjectError, OSError, EOFError):
                return key, None

        with ThreadPoolExecutor(4) as pool:
            segs = list(pool.map(read, keys))
        for key, seg in segs:
            if seg is None:
                continue
            for raw in seg["experiments"]:
                try:
                    rec = fmt.parse_experiment(raw.get("record"), key)
                    if rec["id"] not in wanted or rec["id"] in index.experiments:
                        continue
                    status = fmt.parse_status(raw.get("status"), key)
                    cks = [fmt.parse_checkpoint(c, key) for c in (raw.get("checkpoints") or [])]
                    cks = sorted((c for c in cks if c["experiment"] == rec["id"]), key=_compare_key)
                except (CorruptObjectError, AttributeError, TypeError):
                    continue  # that experiment is read from its records instead
                index.experiments[rec["id"]] = Entry(record=rec, checkpoints=cks, status=status, partial=True)
            index.segments.append(key)
        return True

    # ---- the cache file ----------------------------------------------------------------------

    def _load(self) -> Index:
        index = Index(self.store.url)
        if not self._cache_file:
            return index
        try:
            with open(self._cache_file, encoding="utf-8") as f:
                d = json.load(f)
            if d.get("version") != CACHE_VERSION or d.get("url") != self.store.url:
                return index
            index.experiments = {k: Entry.from_json(v) for k, v in d["experiments"].items()}
            index.tombstones = d.get("tombstones") or {}
            index.changes = d.get("changes") or {}
            index.segments = d.get("segments") or []
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return Index(self.store.url)
        return index

    def _save(self, index: Index, changed: bool) -> None:
        if not self._cache_file or not changed:
            return
        finished = {k: e.to_json() for k, e in index.experiments.items() if e.finished()}
        data = {
            "version": CACHE_VERSION,
            "url": index.url,
            "experiments": finished,
            "tombstones": index.tombstones,
            "changes": index.changes,
            "segments": index.segments,
        }
        try:
            d = os.path.dirname(self._cache_file)
            os.makedirs(d, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f)
            os.replace(tmp, self._cache_file)
        except OSError:
            pass  # only a cache
        # Unfinished experiments are read again next time; keep them in memory only.

    # ---- views -------------------------------------------------------------------------------

    def views(self, now: Optional[float] = None) -> List[View]:
        index = self.refresh()
        now = time.time() if now is None else now
        gone_exp: Set[str] = set()
        gone_ck: Set[str] = set()
        for t in index.tombstones.values():
            gone_exp.update(t["experiments"])
            gone_ck.update(t["checkpoints"])
        tags: Dict[str, List[str]] = {}
        notes: Dict[str, Optional[str]] = {}
        ordered = sorted(
            (e for entries in index.changes.values() for e in entries), key=lambda e: (e["created"], e["id"])
        )
        seen: Set[str] = set()
        for e in ordered:
            if e["id"] in seen:
                continue
            seen.add(e["id"])
            op = e["op"]
            if op == "remove":
                gone_exp.update(e["experiments"])
                gone_ck.update(e["checkpoints"])
            elif op == "tag":
                ent = index.experiments.get(e["experiment"])
                if ent is None or ent.record is None:
                    continue
                cur = tags.setdefault(e["experiment"], list(ent.record["tags"]))
                for t in e["add"]:
                    if t not in cur:
                        cur.append(t)
                for t in e["remove"]:
                    if t in cur:
                        cur.remove(t)
            elif op == "note":
                notes[e["experiment"]] = e["text"]
        out = []
        for eid, e in index.experiments.items():
            if e.record is None or eid in gone_exp:
                continue
            n = e.newest_attempt()
            st = e.final_status()
            created = e.record["created"]
            if n > 1 and e.attempts[n].get("attempt"):
                created = e.attempts[n]["attempt"]["created"]
            hb = e.heartbeat
            if st:
                status = st["status"]
            elif hb and (hb.get("attempt") or 1) == n:
                deadline = _ts(hb["updated"]) + hb["interval"] * 3 + 30
                status = "running" if deadline >= now else "crashed"
            else:
                status = "running" if _ts(created) + 120 >= now else "crashed"
            out.append(
                View(
                    id=eid,
                    record=e.record,
                    checkpoints=[c for c in e.checkpoints if c["id"] not in gone_ck],
                    status=status,
                    status_record=st,
                    heartbeat=hb,
                    tags=tags.get(eid, list(e.record["tags"])),
                    note=notes[eid] if eid in notes else e.record["note"],
                    attempts=n,
                    partial=e.partial,
                    corrupt=dict(e.corrupt),
                )
            )
        out.sort(key=lambda v: v.record["created"], reverse=True)
        return out

    def full_record(self, eid: str) -> Dict[str, Any]:
        key = fmt.experiment_key(eid)
        return fmt.parse_experiment(self._read(key), key)

    def resolve(self, text: str, views: Optional[List[View]] = None) -> Tuple[str, View, Optional[Dict[str, Any]]]:
        """("experiment", view, None) or ("checkpoint", view, checkpoint) for an id prefix or a name."""
        p = str(text).strip()
        if views is None:
            views = self.views()
        if not re.match(r"^[0-9a-fA-F]{1,32}$", p):
            if not _NAME.match(p):
                raise UsageError(
                    f'Invalid id "{text}": ids are hexadecimal and names are letters, digits, ".", "_" and "-"',
                    "Use an id or prefix shown by `rep ls` or `rep show`, or an experiment's name",
                )
            named = [v for v in views if v.record.get("name") == p]
            if not named:
                raise NotFoundError(
                    f'No experiment named "{p}" in {self.store.url}',
                    "Run `rep ls` to see experiments and their names",
                )
            return "experiment", named[0], None
        p = p.lower()
        hits: List[Tuple[str, View, Optional[Dict[str, Any]]]] = []
        for v in views:
            if v.id.startswith(p):
                hits.append(("experiment", v, None))
            for c in v.checkpoints:
                if c["id"].startswith(p):
                    hits.append(("checkpoint", v, c))
        if not hits:
            raise NotFoundError(
                f'No experiment or checkpoint matches "{text}" in {self.store.url}',
                "Run `rep ls` to see experiment ids, `rep show ID` for checkpoint ids",
            )
        if len(hits) > 1:
            ids = [h[1].id if h[0] == "experiment" else h[2]["id"] for h in hits]  # type: ignore[index]
            lines = [
                f"  experiment {h[1].id}"
                if h[0] == "experiment"
                else f"  checkpoint {h[2]['id']} (experiment {h[1].id[:fmt.SHORT_ID]})"  # type: ignore[index]
                for h in hits
            ]
            raise AmbiguousIdError(
                f'Ambiguous id "{text}": it matches {len(hits)} ids:\n' + "\n".join(lines),
                ids,
                "Type more characters of the id",
            )
        return hits[0]
