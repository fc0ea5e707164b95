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
from typing import Any, Dict, List, Optional, Set, Tuple

from . import _format as fmt
from ._storage import Store
from .errors import AmbiguousIdError, CorruptObjectError, FormatVersionError, NotFoundError, UsageError

CACHE_VERSION = 2
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
    #: Change objects (and format 1 tombstones) already read: key -> parsed object.
    changes: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    segments: List[str] = field(default_factory=list)
    #: When the listing this index holds was made (just before ``changes/`` was listed) and the
    #: ``dropped.at`` it knew: see Visibility.trusts.
    basis: Optional[str] = None
    drop_at: Optional[str] = None


#: How long a change object may take to be seen after its ``created`` time (docs/format.md).
VISIBILITY_MARGIN = 3600.0


class Visibility:
    """What the change objects say: removals, tags, notes, resumes, and gc's drops."""

    def __init__(self, objects: List[Dict[str, Any]]):
        by_id: Dict[str, Dict[str, Any]] = {}
        dropped: Optional[Dict[str, str]] = None
        for o in objects:
            for e in o["entries"]:
                by_id.setdefault(e["id"], e)
            d = o.get("dropped")
            if d:
                dropped = (
                    {"at": max(dropped["at"], d["at"]), "before": max(dropped["before"], d["before"])}
                    if dropped
                    else dict(d)
                )
        self.dropped = dropped
        self.removed_experiments: Set[str] = set()
        self.removed_checkpoints: Set[str] = set()
        self.removed_checkpoints_of: Dict[str, Set[str]] = {}
        self.unattributed = False
        self.resumed: Dict[str, int] = {}
        self._tags: Dict[str, List[Tuple[List[str], List[str]]]] = {}
        self._notes: Dict[str, Optional[str]] = {}
        for e in sorted(by_id.values(), key=lambda e: (e["created"], e["id"])):
            op = e["op"]
            if op == "remove":
                self.removed_experiments.update(e["experiments"])
                for exp, ck in e["checkpoints"]:
                    self.removed_checkpoints.add(ck)
                    if exp is None:
                        self.unattributed = True
                    else:
                        self.removed_checkpoints_of.setdefault(exp, set()).add(ck)
            elif op == "tag":
                self._tags.setdefault(e["experiment"], []).append((e["add"], e["remove"]))
            elif op == "note":
                self._notes[e["experiment"]] = e["text"]
            elif op == "resume":
                if self.resumed.get(e["experiment"], 1) < e["attempt"]:
                    self.resumed[e["experiment"]] = e["attempt"]

    def tags(self, eid: str, recorded: List[str]) -> List[str]:
        out = list(dict.fromkeys(recorded))
        for add, remove in self._tags.get(eid, []):
            for t in add:
                if t not in out:
                    out.append(t)
            out = [t for t in out if t not in remove]
        return out

    def note(self, eid: str, recorded: Optional[str]) -> Optional[str]:
        return self._notes[eid] if eid in self._notes else recorded

    def trusts(self, basis: Optional[str], known_drop_at: Optional[str]) -> bool:
        """Whether a listing made at ``basis``, knowing gc's drops up to ``known_drop_at``, can
        still be trusted: no drop since, or made long enough after every dropped removal."""
        d = self.dropped
        if not d:
            return True
        if known_drop_at is not None and known_drop_at >= d["at"]:
            return True
        return basis is not None and _ts(basis) >= _ts(d["before"]) + VISIBILITY_MARGIN


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


def _compare_key(ck: Dict[str, Any]) -> Tuple[str, int, str]:
    """Checkpoint order: creation time, then step, then id (src/catalog/order.ts)."""
    return (ck["created"], -1 if ck["step"] is None else ck["step"], ck["id"])


_SEGMENT = re.compile(r"^index/([0-9a-f]{32})(\.checkpoints)?\.json\.gz$")


def _now_iso() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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

    def refresh(self) -> Tuple[Index, Visibility]:
        """Bring the index up to date: change objects first (so nothing removed shows), then the
        experiment folders, reading only what is new."""
        if not self._format_checked:
            self.check_format()
        index = self._load()
        basis = _now_iso()
        changed = self._refresh_changes(index)
        vis = Visibility(list(index.changes.values()))
        if (index.experiments or index.segments) and not vis.trusts(index.basis, index.drop_at):
            # gc dropped removals this index may never have seen: rebuild it from the records.
            index.experiments, index.segments = {}, []
            changed = True
        ids = [i for i in (fmt.experiment_of_prefix(p) for p in self.store.list_prefixes(fmt.EXPERIMENTS)) if i]
        present = set(ids)
        for eid in list(index.experiments):
            if eid not in present or eid in vis.removed_experiments:
                del index.experiments[eid]
                changed = True
        # Removed checkpoints leave the index for good (their records may be deleted later).
        for entry in index.experiments.values():
            kept = [c for c in entry.checkpoints if c["id"] not in vis.removed_checkpoints]
            if len(kept) != len(entry.checkpoints):
                entry.checkpoints = kept
                changed = True

        def stale(eid: str) -> bool:
            e = index.experiments.get(eid)
            return e is None or vis.resumed.get(eid, 1) > e.newest_attempt()

        todo = [i for i in ids if i not in vis.removed_experiments and stale(i)]
        if len(todo) >= SEGMENT_MIN:
            if self._load_segments(index, set(todo), vis):
                changed = True
            todo = [i for i in todo if stale(i)]
        if todo:
            for eid, entry in zip(todo, self._read_experiments(todo)):
                entry.checkpoints = [c for c in entry.checkpoints if c["id"] not in vis.removed_checkpoints]
                index.experiments[eid] = entry
                changed = True
        drop_at = vis.dropped["at"] if vis.dropped else None
        if index.basis is None or changed or drop_at != index.drop_at:
            index.basis, index.drop_at = basis, drop_at
            changed = True
        self._save(index, changed)
        return index, vis

    def _read_experiments(self, ids: List[str]) -> List[Entry]:
        """Read experiments from their records: list each folder, then read every record in one
        pool (so a few large experiments and many small ones both keep the pool busy)."""
        bases = [fmt.experiment_prefix(eid) for eid in ids]
        with ThreadPoolExecutor(16) as pool:
            listings = list(pool.map(lambda b: [k for k, _ in self.store.list(b)], bases))
        items: List[Tuple[int, str, str, Any]] = []
        for n, (base, keys) in enumerate(zip(bases, listings)):
            for key in keys:
                kind, detail = fmt.experiment_object(key[len(base) :])
                if kind in ("experiment", "status", "heartbeat", "checkpoint", "attempt_attempt", "attempt_status"):
                    items.append((n, key, kind, detail))

        def read(item: Tuple[int, str, str, Any]) -> Tuple[Any, Optional[str]]:
            n, key, kind, _ = item
            eid = ids[n]
            try:
                v = self._read(key)
                if kind == "experiment":
                    rec = fmt.parse_experiment(v, key)
                    if rec["id"] != eid:
                        raise fmt.fail(key, f"id {rec['id']} does not match its folder")
                elif kind in ("status", "attempt_status"):
                    rec = fmt.parse_status(v, key)
                elif kind == "checkpoint":
                    rec = fmt.parse_checkpoint(v, key)
                    if rec["experiment"] != eid:
                        raise fmt.fail(key, f"experiment {rec['experiment']} is not its folder")
                elif kind == "heartbeat":
                    rec = fmt.parse_heartbeat(v, key)
                else:
                    rec = fmt.parse_attempt(v, key)
                return rec, None
            except NotFoundError:
                return None, None  # deleted meanwhile
            except CorruptObjectError as e:
                # A bad heartbeat only means no liveness; a bad record is reported.
                return None, None if kind == "heartbeat" else e.message

        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(read, items))
        entries = [Entry() for _ in ids]
        for (n, key, kind, detail), (rec, err) in zip(items, results):
            entry = entries[n]
            if err:
                entry.corrupt[key] = err
            elif rec is None:
                continue
            elif kind == "experiment":
                entry.record = rec
            elif kind == "status":
                entry.status = rec
            elif kind == "heartbeat":
                entry.heartbeat = rec
            elif kind == "checkpoint":
                entry.checkpoints.append(rec)
            else:
                slot = entry.attempts.setdefault(detail, {"attempt": None, "status": None})
                slot["attempt" if kind == "attempt_attempt" else "status"] = rec
        for entry in entries:
            entry.checkpoints.sort(key=_compare_key)
            if entry.final_status() is not None:
                entry.heartbeat = None
        return entries

    def _refresh_changes(self, index: Index) -> bool:
        keys = [
            k for prefix in (fmt.CHANGES, fmt.TOMBSTONES) for k, _ in self.store.list(prefix) if k.endswith(".json")
        ]
        keep = set(keys)
        changed = False
        for k in list(index.changes):
            if k not in keep:
                del index.changes[k]  # compacted by gc into another object
                changed = True
        new = [k for k in keys if k not in index.changes]

        def read(k: str) -> Tuple[str, Optional[Dict[str, Any]]]:
            try:
                return k, fmt.parse_change_object(self._read(k), k)
            except (NotFoundError, CorruptObjectError):
                return k, None  # gone meanwhile, or not parseable: skipped (rep verify reports it)

        if new:
            with ThreadPoolExecutor(16) as pool:
                for k, v in pool.map(read, new):
                    if v is not None:
                        index.changes[k] = v
                        changed = True
        return changed

    def _load_segments(self, index: Index, wanted: Set[str], vis: Visibility) -> bool:
        """Take experiments in ``wanted`` from the trusted segments not merged before."""
        loaded = set(index.segments)
        names = [
            m.group(1)
            for k, _ in self.store.list(fmt.INDEX)
            for m in [_SEGMENT.match(k)]
            if m and not m.group(2) and k not in loaded
        ]
        if not names:
            return False

        def read(name: str) -> Tuple[str, Optional[Dict[str, Any]]]:
            key = f"{fmt.INDEX}{name}.json.gz"
            try:
                seg = fmt.parse_json(gzip.decompress(self.store.get(key)), key)
                if not isinstance(seg, dict) or seg.get("type") != "segment" or seg.get("format") != fmt.FORMAT_VERSION:
                    return name, None
                if not isinstance(seg.get("experiments"), list) or not fmt._is_date(seg.get("basis")):
                    return name, None
                dropped_at = seg.get("dropped_at") if isinstance(seg.get("dropped_at"), str) else None
                if not vis.trusts(seg["basis"], dropped_at):
                    return name, None
                entries = []
                for raw in seg["experiments"]:
                    rec = fmt.parse_experiment(raw.get("record"), key)
                    st = None if raw.get("status") is None else fmt.parse_status(raw["status"], key)
                    atts = [fmt.parse_attempt_state(a, key) for a in (raw.get("attempts") or [])]
                    entries.append(
                        Entry(
                            record=rec,
                            status=st,
                            attempts={a["attempt"]: {"attempt": a["record"], "status": a["status"]} for a in atts},
                            partial=True,
                        )
                    )
                return name, {"key": key, "entries": entries}
            except (NotFoundError, CorruptObjectError, OSError, EOFError, AttributeError, TypeError):
                return name, None  # a cache of the records: the records are read instead

        with ThreadPoolExecutor(4) as pool:
            segs = list(pool.map(read, names))
        taken: Dict[str, List[Entry]] = {}
        for name, seg in segs:
            if seg is None:
                continue
            for e in seg["entries"]:
                eid = e.record["id"]  # type: ignore[index]
                if eid not in wanted or eid in vis.removed_checkpoints_of:
                    continue
                if vis.resumed.get(eid, 1) > e.newest_attempt() or e.final_status() is None:
                    continue
                taken.setdefault(name, []).append(e)
                wanted.discard(eid)
            index.segments.append(seg["key"])

        def checkpoints(name: str) -> Tuple[str, Optional[Dict[str, Any]]]:
            key = f"{fmt.INDEX}{name}.checkpoints.json.gz"
            try:
                v = fmt.parse_json(gzip.decompress(self.store.get(key)), key)
                if not isinstance(v, dict) or v.get("type") != "segment-checkpoints":
                    return name, None
                exps = v.get("experiments")
                return name, exps if isinstance(exps, dict) else None
            except (NotFoundError, CorruptObjectError, OSError, EOFError):
                return name, None

        with ThreadPoolExecutor(4) as pool:
            lists = dict(pool.map(checkpoints, list(taken)))
        for name, entries in taken.items():
            by_exp = lists.get(name)
            for e in entries:
                eid = e.record["id"]  # type: ignore[index]
                raw = by_exp.get(eid) if by_exp else None
                try:
                    if not isinstance(raw, list):
                        raise fmt.fail(name, "no checkpoints")
                    cks = [fmt.parse_checkpoint(c, name) for c in raw]
                    if any(c["experiment"] != eid for c in cks):
                        raise fmt.fail(name, "a checkpoint of another experiment")
                except CorruptObjectError:
                    continue  # read from its records instead
                e.checkpoints = sorted(
                    (c for c in cks if c["id"] not in vis.removed_checkpoints), key=_compare_key
                )
                index.experiments[eid] = e
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
            index.changes = d.get("changes") or {}
            index.segments = d.get("segments") or []
            index.basis = d.get("basis")
            index.drop_at = d.get("drop_at")
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
            "changes": index.changes,
            "segments": index.segments,
            "basis": index.basis,
            "drop_at": index.drop_at,
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
        index, vis = self.refresh()
        now = time.time() if now is None else now
        out = []
        for eid, e in index.experiments.items():
            if e.record is None or eid in vis.removed_experiments:
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
                    checkpoints=[c for c in e.checkpoints if c["id"] not in vis.removed_checkpoints],
                    status=status,
                    status_record=st,
                    heartbeat=hb,
                    tags=vis.tags(eid, e.record["tags"]),
                    note=vis.note(eid, e.record["note"]),
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
