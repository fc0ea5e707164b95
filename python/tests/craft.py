"""Write repository objects by hand (docs/format.md), for reader tests of shapes the writer does not
produce today: format 1 records, removals, changes, heartbeats, damaged objects."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from typing import Any, Dict, List, Optional


def new_id() -> str:
    return uuid.uuid4().hex


class Craft:
    def __init__(self, root: str, format: int = 2):
        self.root = root
        os.makedirs(root, exist_ok=True)
        self.put("repository.json", json.dumps({"format": format}).encode())

    def put(self, key: str, data: bytes) -> None:
        path = os.path.join(self.root, *key.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)

    def put_json(self, key: str, v: Any) -> None:
        self.put(key, json.dumps(v).encode())

    def tree(self, files: Dict[str, bytes], chunk: int = 100_000) -> Dict[str, Any]:
        """Store files in one pack (fixed-size chunks, valid for readers) and their tree."""
        pack = new_id()
        blob = bytearray()
        entries = []
        for path, data in files.items():
            chunks = []
            for o in range(0, len(data), chunk):
                piece = data[o : o + chunk]
                chunks.append([pack, len(blob), len(piece), hashlib.sha256(piece).hexdigest()])
                blob += piece
            cid = hashlib.sha256(b"".join(bytes.fromhex(c[3]) for c in chunks)).hexdigest()
            entries.append({"path": path, "size": len(data), "hash": cid, "mode": 0o644, "chunks": chunks})
        self.put(f"packs/{pack}", bytes(blob))
        body = json.dumps({"format": 1, "files": entries}).encode()
        sha = hashlib.sha256(body).hexdigest()
        self.put(f"trees/{sha}.json", body)
        self.last_pack = pack
        return {"tree": sha, "files": len(entries), "size": sum(len(d) for d in files.values())}

    def experiment(
        self,
        format: int = 2,
        created: str = "2026-01-01T00:00:00.000Z",
        params: Optional[Dict[str, Any]] = None,
        provenance: Optional[Dict[str, Any]] = None,
        primary: Optional[Dict[str, str]] = None,
        **extra: Any,
    ) -> str:
        eid = new_id()
        rec = {
            "format": format,
            "type": "experiment",
            "id": eid,
            "created": created,
            "params": params or {},
            "command": ["python", "train.py"],
            "cwd": "/work",
            "host": "h",
            "user": "u",
            "platform": "linux-x86_64",
            "rep_version": "0.0.1",
            "git": None,
            "code": None,
            "tags": [],
            "note": None,
            "primary_metric": primary,
            "provenance": provenance or {},
            **extra,
        }
        if format >= 2:
            rec.setdefault("name", None)
            rec.setdefault("output", None)
        self.put_json(f"experiments/{eid}/experiment.json", rec)
        return eid

    def checkpoint(
        self,
        eid: str,
        step: int,
        metrics: Dict[str, Any],
        files: Optional[Dict[str, bytes]] = None,
        created: Optional[str] = None,
        format: int = 2,
    ) -> str:
        cid = new_id()
        rec = {
            "format": format,
            "type": "checkpoint",
            "id": cid,
            "experiment": eid,
            "created": created or f"2026-01-01T00:00:{step:02d}.000Z",
            "step": step,
            "metrics": metrics,
            "primary_metric": None,
            "files": self.tree(files) if files else None,
            "torn": [],
        }
        self.put_json(f"experiments/{eid}/checkpoints/{cid}.json", rec)
        return cid

    def status(self, eid: str, status: str = "succeeded", exit_code: Optional[int] = 0) -> None:
        self.put_json(
            f"experiments/{eid}/status.json",
            {
                "format": 2,
                "type": "status",
                "status": status,
                "exit_code": exit_code,
                "signal": None,
                "finished": "2026-01-01T01:00:00.000Z",
            },
        )

    def changes(self, entries: List[Dict[str, Any]], name: Optional[str] = None) -> None:
        self.put_json(
            f"changes/{name or '20260102T000000000Z-' + new_id()[:12]}.json",
            {"format": 2, "type": "changes", "created": "2026-01-02T00:00:00.000Z", "entries": entries},
        )
