"""The repository format (docs/format.md): object keys and strict parsers of the records.

A repository written by someone else may be hostile, so every field read from the store is checked
before use, as src/format/records.ts does. Formats 1 and 2 are read.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, List, Optional, Tuple

from .errors import CorruptObjectError

#: The newest repository format this package reads.
FORMAT_VERSION = 2
#: Largest chunk the format allows (src/format/chunker.ts).
MAX_CHUNK = 256 * 1024
SHORT_ID = 7

REPOSITORY_KEY = "repository.json"
EXPERIMENTS = "experiments/"
TOMBSTONES = "tombstones/"
CHANGES = "changes/"
INDEX = "index/"

_ID = re.compile(r"^[0-9a-f]{32}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
_END_STATES = ("succeeded", "failed", "stopped", "crashed")


def is_id(v: Any) -> bool:
    return isinstance(v, str) and bool(_ID.match(v))


def pack_key(pack: str) -> str:
    return f"packs/{pack}"


def tree_key(sha: str) -> str:
    return f"trees/{sha}.json"


def experiment_prefix(eid: str) -> str:
    return f"{EXPERIMENTS}{eid}/"


def experiment_key(eid: str) -> str:
    return f"{experiment_prefix(eid)}experiment.json"


def experiment_of_prefix(prefix: str) -> Optional[str]:
    if not prefix.startswith(EXPERIMENTS) or not prefix.endswith("/"):
        return None
    eid = prefix[len(EXPERIMENTS) : -1]
    return eid if is_id(eid) else None


_CK = re.compile(r"^checkpoints/([0-9a-f]{32})\.json$")
_ATTEMPT = re.compile(r"^attempts/([1-9][0-9]{0,5})/(attempt|status)\.json$")


def experiment_object(name: str) -> Tuple[str, Any]:
    """Classify a key below ``experiments/<id>/``: (kind, detail)."""
    if name in ("experiment.json", "status.json", "heartbeat.json"):
        return name[:-5], None
    m = _CK.match(name)
    if m:
        return "checkpoint", m.group(1)
    m = _ATTEMPT.match(name)
    if m:
        return "attempt_" + m.group(2), int(m.group(1))
    return "other", name


def fail(what: str, why: str) -> "CorruptObjectError":
    return CorruptObjectError(
        f"Corrupt {what}: {why}",
        "Run `rep verify` to find damaged objects; the repository may have been written by a "
        "broken or hostile client",
    )


def parse_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise fail(what, str(e)) from None


def _obj(v: Any, what: str) -> Dict[str, Any]:
    if not isinstance(v, dict):
        raise fail(what, "not a JSON object")
    return v


def _str(o: Dict[str, Any], k: str, what: str) -> str:
    v = o.get(k)
    if not isinstance(v, str):
        raise fail(what, f'field "{k}" is not a string')
    return v


def _opt_str(o: Dict[str, Any], k: str, what: str) -> Optional[str]:
    v = o.get(k)
    if v is None:
        return None
    if not isinstance(v, str):
        raise fail(what, f'field "{k}" is not a string')
    return v


def _int(v: Any, k: str, what: str, minimum: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v < minimum:
        raise fail(what, f'field "{k}" is not an integer of at least {minimum}')
    if isinstance(v, float):
        if not v.is_integer() or abs(v) > 2**53:
            raise fail(what, f'field "{k}" is not an integer')
        v = int(v)
    if v > 2**53:
        raise fail(what, f'field "{k}" is too large')
    return v


def parse_time(v: str) -> Optional[datetime]:
    """An ISO 8601 time as an aware datetime, or None when it is not one."""
    s = v.strip()
    if s.endswith("Z") or s.endswith("z"):
        s = s[:-1] + "+00:00"
    # Python before 3.11 takes at most 6 fractional digits.
    s = re.sub(r"(\.\d{6})\d+", r"\1", s)
    try:
        d = datetime.fromisoformat(s)
    except ValueError:
        return None
    if d.tzinfo is None:
        from datetime import timezone

        d = d.replace(tzinfo=timezone.utc)
    return d


def _date(o: Dict[str, Any], k: str, what: str) -> str:
    v = _str(o, k, what)
    if parse_time(v) is None:
        raise fail(what, f'field "{k}" is not a date')
    return v


def _id(o: Dict[str, Any], k: str, what: str) -> str:
    v = o.get(k)
    if not is_id(v):
        raise fail(what, f'field "{k}" is not an id')
    return v


def _format(o: Dict[str, Any], what: str) -> int:
    v = _int(o.get("format"), "format", what)
    if v > FORMAT_VERSION:
        raise fail(
            what,
            f"written by a newer format ({v}) than this package understands ({FORMAT_VERSION}); "
            "upgrade the rep Python package",
        )
    return v


def _scalars(v: Any, k: str, what: str) -> Dict[str, Any]:
    if v is None:
        return {}
    o = _obj(v, f"{what} {k}")
    for name, val in o.items():
        if val is not None and not isinstance(val, (str, int, float, bool)):
            raise fail(what, f"{k}.{name} is not a scalar")
    return dict(o)


def _primary(v: Any, what: str) -> Optional[Dict[str, str]]:
    if v is None:
        return None
    o = _obj(v, what)
    name = _str(o, "name", what)
    if o.get("goal") not in ("minimize", "maximize"):
        raise fail(what, "primary_metric.goal is invalid")
    return {"name": name, "goal": o["goal"]}


def _tree_ref(v: Any, what: str) -> Optional[Dict[str, Any]]:
    if v is None:
        return None
    o = _obj(v, what)
    tree = _str(o, "tree", what)
    if not _SHA.match(tree):
        raise fail(what, "tree reference is not a sha256")
    return {"tree": tree, "files": _int(o.get("files"), "files", what), "size": _int(o.get("size"), "size", what)}


def _strings(v: Any, k: str, what: str) -> List[str]:
    if v is None:
        return []
    if not isinstance(v, list) or any(not isinstance(x, str) for x in v):
        raise fail(what, f'field "{k}" is not a list of strings')
    return list(v)


def parse_experiment(v: Any, what: str = "experiment record") -> Dict[str, Any]:
    o = _obj(v, what)
    if o.get("type") != "experiment":
        raise fail(what, f'type is {json.dumps(o.get("type"))}, not "experiment"')
    git = None
    if o.get("git") is not None:
        g = _obj(o["git"], what)
        git = {
            "commit": _opt_str(g, "commit", what),
            "branch": _opt_str(g, "branch", what),
            "dirty": g.get("dirty") is True,
            "remote": _opt_str(g, "remote", what),
        }
    prov = o.get("provenance")
    return {
        "format": _format(o, what),
        "type": "experiment",
        "id": _id(o, "id", what),
        "created": _date(o, "created", what),
        "name": _opt_str(o, "name", what),
        "params": _scalars(o.get("params"), "params", what),
        "command": _strings(o.get("command"), "command", what),
        "cwd": _opt_str(o, "cwd", what) or "",
        "output": _opt_str(o, "output", what),
        "host": _opt_str(o, "host", what) or "",
        "user": _opt_str(o, "user", what) or "",
        "platform": _opt_str(o, "platform", what) or "",
        "rep_version": _opt_str(o, "rep_version", what) or "",
        "git": git,
        "code": _tree_ref(o.get("code"), what),
        "tags": _strings(o.get("tags"), "tags", what),
        "note": _opt_str(o, "note", what),
        "primary_metric": _primary(o.get("primary_metric"), what),
        "provenance": prov if isinstance(prov, dict) else {},
    }


def parse_checkpoint(v: Any, what: str = "checkpoint record") -> Dict[str, Any]:
    o = _obj(v, what)
    if o.get("type") != "checkpoint":
        raise fail(what, f'type is {json.dumps(o.get("type"))}, not "checkpoint"')
    step = None if o.get("step") is None else _int(o["step"], "step", what)
    attempt = 1 if o.get("attempt") is None else _int(o["attempt"], "attempt", what, 1)
    return {
        "format": _format(o, what),
        "type": "checkpoint",
        "id": _id(o, "id", what),
        "experiment": _id(o, "experiment", what),
        "attempt": attempt,
        "created": _date(o, "created", what),
        "step": step,
        "metrics": _scalars(o.get("metrics"), "metrics", what),
        "primary_metric": _primary(o.get("primary_metric"), what),
        "files": _tree_ref(o.get("files"), what),
        "torn": _strings(o.get("torn"), "torn", what),
        "warnings": _strings(o.get("warnings"), "warnings", what),
    }


def parse_status(v: Any, what: str = "status record") -> Dict[str, Any]:
    o = _obj(v, what)
    if o.get("type") != "status":
        raise fail(what, f'type is {json.dumps(o.get("type"))}, not "status"')
    if o.get("status") not in _END_STATES:
        raise fail(what, "bad status")
    code = o.get("exit_code")
    if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
        raise fail(what, "bad exit_code")
    return {
        "format": _format(o, what),
        "type": "status",
        "status": o["status"],
        "exit_code": code,
        "signal": _opt_str(o, "signal", what),
        "finished": _date(o, "finished", what),
    }


def parse_heartbeat(v: Any, what: str = "heartbeat") -> Dict[str, Any]:
    o = _obj(v, what)
    interval = o.get("interval")
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not interval > 0:
        raise fail(what, "bad interval")
    attempt = o.get("attempt")
    return {
        "pid": _int(o.get("pid"), "pid", what),
        "host": _opt_str(o, "host", what) or "",
        "updated": _date(o, "updated", what),
        "interval": interval,
        "attempt": attempt if isinstance(attempt, int) and not isinstance(attempt, bool) and attempt >= 1 else None,
    }


def parse_attempt(v: Any, what: str = "attempt record") -> Dict[str, Any]:
    o = _obj(v, what)
    return {
        "attempt": _int(o.get("attempt"), "attempt", what, 1),
        "created": _date(o, "created", what),
        "host": _opt_str(o, "host", what) or "",
        "resumed_from": _opt_str(o, "resumed_from", what),
    }


def _ids(o: Dict[str, Any], k: str, what: str) -> List[str]:
    lst = _strings(o.get(k), k, what)
    if not all(is_id(x) for x in lst):
        raise fail(what, f"{k} holds something that is not an id")
    return lst


def parse_tombstone(v: Any, what: str = "tombstone") -> Dict[str, Any]:
    o = _obj(v, what)
    if o.get("type") != "tombstone":
        raise fail(what, "type is not tombstone")
    return {
        "created": _date(o, "created", what),
        "experiments": _ids(o, "experiments", what),
        "checkpoints": _ids(o, "checkpoints", what),
    }


_ENTRY_ID = re.compile(r"^[0-9A-Za-z_:.-]{1,100}$")
MAX_TAG = 100
MAX_NOTE = 10_000


def _is_date(v: Any) -> bool:
    return isinstance(v, str) and parse_time(v) is not None


def _is_tag(v: Any) -> bool:
    return isinstance(v, str) and 0 < len(v) <= MAX_TAG and not re.search(r"[\s,]", v)


def parse_change_entry(v: Any) -> Optional[Dict[str, Any]]:
    """One entry of a change object, or None when it is malformed (then it is ignored).

    An entry of an op this version does not know keeps only ``id``, ``created`` and ``op``."""
    if not isinstance(v, dict):
        return None
    eid, created, op = v.get("id"), v.get("created"), v.get("op")
    if not isinstance(eid, str) or not _ENTRY_ID.match(eid) or not _is_date(created) or not isinstance(op, str):
        return None
    out: Dict[str, Any] = {"id": eid, "created": created, "op": op}
    if op == "remove":
        exps = v.get("experiments") if v.get("experiments") is not None else []
        cks = v.get("checkpoints") if v.get("checkpoints") is not None else []
        if not isinstance(exps, list) or not all(is_id(x) for x in exps) or not isinstance(cks, list):
            return None
        pairs = []
        for c in cks:
            if is_id(c):
                pairs.append([None, c])  # format 1: the experiment is not named
            elif isinstance(c, list) and len(c) == 2 and is_id(c[0]) and is_id(c[1]):
                pairs.append([c[0], c[1]])
            else:
                return None
        out.update(experiments=list(exps), checkpoints=pairs)
    elif op == "tag":
        add = v.get("add") if v.get("add") is not None else []
        rem = v.get("remove") if v.get("remove") is not None else []
        if not is_id(v.get("experiment")) or not isinstance(add, list) or not isinstance(rem, list):
            return None
        if not all(_is_tag(t) for t in add + rem):
            return None
        out.update(experiment=v["experiment"], add=list(add), remove=list(rem))
    elif op == "note":
        text = v.get("text")
        if not is_id(v.get("experiment")) or (text is not None and (not isinstance(text, str) or len(text) > MAX_NOTE)):
            return None
        out.update(experiment=v["experiment"], text=text)
    elif op == "resume":
        att = v.get("attempt")
        if not is_id(v.get("experiment")) or isinstance(att, bool) or not isinstance(att, int) or att < 2:
            return None
        out.update(experiment=v["experiment"], attempt=att)
    return out


def parse_change_object(v: Any, key: str) -> Dict[str, Any]:
    """A ``changes/`` object (or a format 1 ``tombstones/`` one, read as one removal):
    ``{"created", "entries", "dropped"}``. Malformed entries are left out; a malformed object
    raises CorruptObjectError (and is skipped by readers)."""
    if key.startswith(TOMBSTONES):
        t = parse_tombstone(v, key)
        raw = {
            "id": key[len(TOMBSTONES) : -len(".json")],
            "created": t["created"],
            "op": "remove",
            "experiments": t["experiments"],
            "checkpoints": t["checkpoints"],
        }
        entry = parse_change_entry(raw)
        return {"created": t["created"], "entries": [entry] if entry else [], "dropped": None}
    if not isinstance(v, dict) or v.get("type") != "changes" or not _is_date(v.get("created")):
        raise fail(key, "not a changes object")
    if not isinstance(v.get("entries"), list):
        raise fail(key, "entries is not a list")
    f = v.get("format")
    if isinstance(f, bool) or not isinstance(f, int) or f > FORMAT_VERSION:
        raise fail(key, "unknown format")
    entries = [e for e in (parse_change_entry(x) for x in v["entries"]) if e is not None]
    d = v.get("dropped")
    dropped = (
        {"at": d["at"], "before": d["before"]}
        if isinstance(d, dict) and _is_date(d.get("at")) and _is_date(d.get("before"))
        else None
    )
    return {"created": v["created"], "entries": entries, "dropped": dropped}


def parse_attempt_state(v: Any, key: str) -> Dict[str, Any]:
    """An attempt n >= 2 as a segment gives it: ``{"attempt", "record", "status"}``."""
    if not isinstance(v, dict):
        raise fail(key, "bad attempt")
    rec = None if v.get("record") is None else parse_attempt(v["record"], key)
    n = rec["attempt"] if rec else v.get("attempt")
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise fail(key, "bad attempt")
    st = None if v.get("status") is None else parse_status(v["status"], key)
    return {"attempt": n, "record": rec, "status": st}


@dataclass
class FileEntry:
    """One file of a tree; chunks are (pack id, offset, length, sha256)."""

    path: str
    size: int
    hash: str
    mode: int
    chunks: List[Tuple[str, int, int, str]] = field(repr=False, default_factory=list)


def check_rel_path(path: str, what: str) -> None:
    if (
        not path
        or len(path) > 4096
        or path.startswith("/")
        or "\\" in path
        or "\0" in path
        or re.match(r"^[a-zA-Z]:", path)
        or any(s in ("", ".", "..") for s in path.split("/"))
    ):
        raise fail(what, f"path {json.dumps(path)} is not a clean relative path")


def parse_tree(v: Any, what: str = "tree") -> List[FileEntry]:
    o = _obj(v, what)
    _format(o, what)
    files = o.get("files")
    if not isinstance(files, list):
        raise fail(what, "files is not a list")
    seen = set()
    out = []
    for i, raw in enumerate(files):
        e = _obj(raw, f"{what} file {i}")
        path = _str(e, "path", what)
        check_rel_path(path, what)
        if path in seen:
            raise fail(what, f"path {json.dumps(path)} appears twice")
        seen.add(path)
        size = _int(e.get("size"), "size", what)
        sha = _str(e, "hash", what)
        if not _SHA.match(sha):
            raise fail(what, f"hash of {path} is not a sha256")
        mode = _int(e.get("mode"), "mode", what) & 0o777
        chunks_raw = e.get("chunks")
        if not isinstance(chunks_raw, list):
            raise fail(what, f"chunks of {path} is not a list")
        chunks = []
        total = 0
        for c in chunks_raw:
            if not isinstance(c, list) or len(c) != 4:
                raise fail(what, f"a chunk of {path} is malformed")
            pack, off, length, h = c
            if not is_id(pack):
                raise fail(what, "bad pack id")
            if not isinstance(h, str) or not _SHA.match(h):
                raise fail(what, "bad chunk hash")
            length = _int(length, "length", what)
            if length > MAX_CHUNK:
                raise fail(what, f"a chunk of {path} is too long")
            total += length
            chunks.append((pack, _int(off, "offset", what), length, h))
        if total != size:
            raise fail(what, f"size of {path} ({size}) is not the sum of its chunks ({total})")
        out.append(FileEntry(path, size, sha, mode, chunks))
    return out


def best_checkpoint(checkpoints: List[Dict[str, Any]], fallback: Optional[Dict[str, str]]) -> Optional[Dict[str, Any]]:
    """The best checkpoint by the primary metric; missing, NaN and non-numbers are ignored."""
    best = None
    best_val = 0.0
    for ck in checkpoints:
        pm = ck.get("primary_metric") or fallback
        if not pm:
            continue
        v = ck["metrics"].get(pm["name"])
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and math.isnan(v)):
            continue
        if best is None or (v < best_val if pm["goal"] == "minimize" else v > best_val):
            best, best_val = ck, v
    return best
