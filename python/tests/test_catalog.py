"""The catalog as a reader sees it: format 1 and 2 records, removals (tombstones and changes), tags
and notes, status from status records and heartbeats, attempts, index segments, the local cache,
listing with filters, history, notebook tables and checkout."""

from __future__ import annotations

import gzip
import json
import os
from datetime import datetime, timedelta, timezone

import pytest

import rep
from craft import Craft


def iso(d: datetime) -> str:
    return d.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_format_1_rep_run_paths_read_under_the_output_folder(tmp_path):
    c = Craft(str(tmp_path / "r"), format=1)
    eid = c.experiment(format=1, provenance={"output": "output", "metrics": "output/metrics.jsonl"})
    c.checkpoint(eid, 0, {"loss": 1.0}, {"model.pth": b"weights", "sub/x.bin": b"x"}, format=1)
    lib = c.experiment(format=1, created="2026-01-01T00:00:01.000Z")
    c.checkpoint(lib, 0, {}, {"model.bin": b"lib"}, format=1)
    c.status(eid)
    c.status(lib)
    repo = rep.Repository(str(tmp_path / "r"))
    ck = repo.experiments.get(eid).latest()
    assert [f.path for f in ck.files()] == ["output/model.pth", "output/sub/x.bin"]
    assert ck.open("output/model.pth").read() == b"weights"
    assert ck.open("model.pth").read() == b"weights"  # as stored
    out = ck.checkout(str(tmp_path / "co"))
    assert out.written == ["output/model.pth", "output/sub/x.bin"]
    assert [f.path for f in repo.experiments.get(lib).latest().files()] == ["model.bin"]


def test_removals_tags_and_notes(tmp_path):
    c = Craft(str(tmp_path / "r"))
    a = c.experiment(created="2026-01-01T00:00:00.000Z", params={"lr": 0.1})
    b = c.experiment(created="2026-01-01T00:01:00.000Z", params={"lr": 0.2})
    gone = c.experiment(created="2026-01-01T00:02:00.000Z")
    old = c.experiment(created="2026-01-01T00:03:00.000Z")
    ck0 = c.checkpoint(a, 0, {"loss": 0.5})
    ck1 = c.checkpoint(a, 1, {"loss": 0.1})
    for e in (a, b, gone, old):
        c.status(e)
    c.put_json(
        "tombstones/20260102T000000000Z-aaaa.json",
        {"format": 1, "type": "tombstone", "created": "2026-01-02T00:00:00.000Z", "experiments": [old], "checkpoints": []},
    )
    t = "2026-01-03T00:00:00.000Z"
    c.changes(
        [
            {"id": "e1", "created": t, "op": "remove", "experiments": [gone], "checkpoints": [[a, ck1]], "reason": "x"},
            {"id": "bad entry!", "created": t, "op": "remove", "experiments": [a], "checkpoints": []},
            {"id": "e6", "created": t, "op": "tag", "experiment": a, "add": ["has space"], "remove": []},
            {"id": "e2", "created": t, "op": "tag", "experiment": a, "add": ["best", "keep"], "remove": []},
            {"id": "e3", "created": "2026-01-04T00:00:00.000Z", "op": "tag", "experiment": a, "add": [], "remove": ["keep"]},
            {"id": "e4", "created": t, "op": "note", "experiment": b, "text": "baseline"},
            {"id": "e5", "created": t, "op": "some-future-op", "experiment": b},
        ]
    )
    c.put("changes/20260105T000000000Z-notjson.json", b"{not json")
    repo = rep.Repository(str(tmp_path / "r"))
    listed = repo.experiments.list()
    assert [e.id for e in listed] == [b, a]
    exp_a = repo.experiments.get(a)
    assert [c_.id for c_ in exp_a.checkpoints] == [ck0]
    assert exp_a.tags == ["best"] and repo.experiments.get(b).note == "baseline"
    with pytest.raises(rep.NotFoundError):
        repo.experiments.get(gone)
    with pytest.raises(rep.NotFoundError):
        repo.checkpoints.get(ck1)
    assert [e.id for e in repo.experiments.list(filter=lambda e: e.params["lr"] > 0.15)] == [b]
    html = listed._repr_html_()
    assert "<table" in html and "lr" in html and a[:7] in html and "&lt;" not in html


def test_status_from_status_records_heartbeats_and_attempts(tmp_path):
    c = Craft(str(tmp_path / "r"))
    now = datetime.now(timezone.utc)
    fresh = c.experiment(created=iso(now - timedelta(hours=1)))
    c.put_json(f"experiments/{fresh}/heartbeat.json", {"pid": 1, "host": "h", "updated": iso(now), "interval": 10})
    stale = c.experiment(created=iso(now - timedelta(hours=1)))
    c.put_json(
        f"experiments/{stale}/heartbeat.json",
        {"pid": 1, "host": "h", "updated": iso(now - timedelta(seconds=61)), "interval": 10},
    )
    young = c.experiment(created=iso(now - timedelta(seconds=30)))
    silent = c.experiment(created=iso(now - timedelta(minutes=5)))
    failed = c.experiment()
    c.status(failed, "failed", 3)
    resumed = c.experiment()
    c.status(resumed, "crashed", None)
    c.put_json(
        f"experiments/{resumed}/attempts/2/attempt.json",
        {"attempt": 2, "created": iso(now - timedelta(minutes=1)), "host": "h", "user": "u", "pid": 2},
    )
    c.put_json(
        f"experiments/{resumed}/attempts/2/status.json",
        {"format": 2, "type": "status", "status": "succeeded", "exit_code": 0, "signal": None, "finished": iso(now)},
    )
    repo = rep.Repository(str(tmp_path / "r"))
    got = {e.id: e.status for e in repo.experiments.list()}
    assert got == {
        fresh: "running",
        stale: "crashed",
        young: "running",
        silent: "crashed",
        failed: "failed",
        resumed: "succeeded",
    }
    assert repo.experiments.get(failed).exit_code == 3


def test_warm_listings_read_only_what_is_new_and_segments_serve_cold_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("REP_CACHE_DIR", str(tmp_path / "cache"))
    c = Craft(str(tmp_path / "r"))
    ids = []
    for i in range(120):
        e = c.experiment(created=f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}.000Z", params={"i": i})
        c.checkpoint(e, 0, {"loss": i})
        c.status(e)
        ids.append(e)
    repo = rep.Repository(str(tmp_path / "r"))
    assert len(repo.experiments.list()) == 120
    cold = repo.stats["requests"]
    assert len(rep.Repository(str(tmp_path / "r")).experiments.list()) == 120
    warm = rep.Repository(str(tmp_path / "r"))
    warm.experiments.list()
    assert warm.stats["requests"] <= 4 < cold  # repository.json and three listings
    # A shared segment (as `rep ls` writes them) lets a cold reader skip the records.
    read = lambda *p: json.loads((tmp_path / "r" / "experiments").joinpath(*p).read_text())  # noqa: E731
    cks = {e: [read(e, "checkpoints", n) for n in os.listdir(tmp_path / "r" / "experiments" / e / "checkpoints")] for e in ids}
    summary = {
        "format": 2,
        "type": "segment",
        "created": "2026-01-02T00:00:00.000Z",
        "basis": "2026-01-02T00:00:00.000Z",
        "dropped_at": None,
        "experiments": [
            {
                "record": {**read(e, "experiment.json"), "provenance": {}},
                "status": read(e, "status.json"),
                "attempts": [],
                "count": 1,
                "best": None,
                "latest": cks[e][0],
                "metrics": {"loss": 1},
            }
            for e in ids
        ],
    }
    name = "ab" * 16
    c.put(f"index/{name}.checkpoints.json.gz", gzip.compress(json.dumps(
        {"format": 2, "type": "segment-checkpoints", "experiments": cks}).encode()))
    c.put(f"index/{name}.json.gz", gzip.compress(json.dumps(summary).encode()))
    monkeypatch.setenv("REP_CACHE_DIR", str(tmp_path / "cache2"))
    seg_repo = rep.Repository(str(tmp_path / "r"))
    exps = seg_repo.experiments.list()
    assert len(exps) == 120 and seg_repo.stats["requests"] < 12
    assert {e.id: e.latest().metrics["loss"] for e in exps} == {e: i for i, e in enumerate(ids)}
    assert exps[0].provenance == {}  # read from the record when asked for
    # A removal gc dropped after this segment was made: the segment is not trusted any more.
    # (gc deleted a removed checkpoint's record, then dropped its removal from changes/.)
    import shutil

    now = iso(datetime.now(timezone.utc))
    shutil.rmtree(tmp_path / "r" / "experiments" / ids[1] / "checkpoints")
    c.put_json("changes/20260104T000000000Z-compacted.json", {
        "format": 2, "type": "changes", "created": now, "dropped": {"at": now, "before": now}, "entries": []})
    monkeypatch.setenv("REP_CACHE_DIR", str(tmp_path / "cache3"))
    untrusted = rep.Repository(str(tmp_path / "r")).experiments.list()
    assert len(untrusted) == 120 and untrusted[-1 - 1].id == ids[1] and untrusted[-2].checkpoints == []
    # The warm cache of before is not trusted either: rebuilt from the records.
    monkeypatch.setenv("REP_CACHE_DIR", str(tmp_path / "cache"))
    assert {e.id: len(e.checkpoints) for e in rep.Repository(str(tmp_path / "r")).experiments.list()}[ids[1]] == 0


def test_history_and_checkout_of_an_experiment(tmp_path):
    c = Craft(str(tmp_path / "r"))
    code = c.tree({"train.py": b"print('v1')\n", "model.pth": b"stale"})
    e = c.experiment(code=code, primary=None)
    c.checkpoint(e, 0, {"loss": 0.5, "acc": 0.1}, {"model.pth": b"w0"})
    c.checkpoint(e, 1, {"loss": 0.2}, {"model.pth": b"w1"})
    c.checkpoint(e, 2, {"loss": 0.3}, {"model.pth": b"w2"})
    c.status(e)
    exp = rep.Repository(str(tmp_path / "r")).experiments.get(e)
    assert exp.best() is None and exp.latest().step == 2  # no primary metric
    h = exp.history()
    assert [(r["step"], r["loss"]) for r in h] == [(0, 0.5), (1, 0.2), (2, 0.3)]
    assert h.series("acc") == [(0, 0.1)] and h.metrics() == ["loss", "acc"]
    assert "<table" in h._repr_html_()
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(rep.UsageError, match="pandas"):
            h.to_pandas()
    else:
        assert list(h.to_pandas()["loss"]) == [0.5, 0.2, 0.3]
    out = tmp_path / "out"
    res = exp.checkout(str(out))
    assert res.written == ["model.pth", "train.py"]
    assert (out / "model.pth").read_bytes() == b"w2" and (out / "train.py").read_bytes() == b"print('v1')\n"
    assert exp.checkout(str(out)).unchanged == ["model.pth", "train.py"]
    (out / "model.pth").write_bytes(b"mine")
    with pytest.raises(rep.ConflictError) as err:
        exp.checkout(str(out))
    assert "model.pth" in err.value.message and "force=True" in err.value.hint
    assert exp.checkout(str(out), force=True).written == ["model.pth"]
    assert (out / "model.pth").read_bytes() == b"w2"
    # No writing through a symlinked folder.
    os.makedirs(tmp_path / "target")
    (out / "link").symlink_to(tmp_path / "target")
    c2 = Craft(str(tmp_path / "r2"))
    e2 = c2.experiment()
    c2.checkpoint(e2, 0, {}, {"link/x.txt": b"x"})
    with pytest.raises(rep.ConflictError, match="is a symlink"):
        rep.Repository(str(tmp_path / "r2")).experiments.get(e2).latest().checkout(str(out))
    assert os.listdir(tmp_path / "target") == []


def test_hostile_paths_are_refused(tmp_path):
    c = Craft(str(tmp_path / "r"))
    e = c.experiment()
    cid = c.checkpoint(e, 0, {}, {"ok.txt": b"x"})
    rec_path = tmp_path / "r" / "experiments" / e / "checkpoints" / f"{cid}.json"
    rec = json.loads(rec_path.read_text())
    body = json.dumps(
        {"format": 1, "files": [{"path": "../evil", "size": 0, "hash": "0" * 64, "mode": 420, "chunks": []}]}
    ).encode()
    import hashlib

    sha = hashlib.sha256(body).hexdigest()
    c.put(f"trees/{sha}.json", body)
    rec["files"]["tree"] = sha
    rec_path.write_text(json.dumps(rec))
    ck = rep.Repository(str(tmp_path / "r"), cache=False).checkpoints.get(cid)
    with pytest.raises(rep.CorruptObjectError, match="not a clean relative path"):
        ck.files()
    assert not (tmp_path / "evil").exists()


def test_a_newer_format_is_refused(tmp_path):
    Craft(str(tmp_path / "r"), format=99)
    with pytest.raises(rep.FormatVersionError) as e:
        rep.Repository(str(tmp_path / "r")).experiments.list()
    assert "format 99" in e.value.message and "Upgrade" in e.value.hint


def test_configuration_like_the_cli(tmp_path, monkeypatch):
    c = Craft(str(tmp_path / "elsewhere"))
    e = c.experiment()
    c.status(e)
    proj = tmp_path / "proj" / "sub"
    proj.mkdir(parents=True)
    (tmp_path / "proj" / "rep.yaml").write_text("# config\nrepository: ../elsewhere  # relative to rep.yaml\n")
    monkeypatch.chdir(proj)
    monkeypatch.delenv("REP_REPOSITORY", raising=False)
    assert rep.Repository().url == "file://" + str(tmp_path / "elsewhere")
    assert [x.id for x in rep.experiments.list()] == [e]
    monkeypatch.setenv("REP_REPOSITORY", str(tmp_path / "none"))
    assert rep.Repository().url == "file://" + str(tmp_path / "none")
    assert rep.Repository(str(tmp_path / "elsewhere")).experiments.get(e[:6]).id == e
    (tmp_path / "proj" / "rep.yaml").write_text("repository: [1, 2\n")
    monkeypatch.delenv("REP_REPOSITORY")
    with pytest.raises(rep.ConfigError, match="Cannot parse"):
        rep.Repository()
    (tmp_path / "proj" / "rep.yaml").unlink()
    with pytest.raises(rep.ConfigError, match="not supported"):
        rep.Repository("ftp://x/y")
    with pytest.raises(rep.ConfigError, match="not a valid bucket name"):
        rep.Repository("s3://A_B/x")
    from rep._config import _parse_simple_yaml

    assert _parse_simple_yaml("repository: 's3://b/p'\nrun:\n  output: out # c\n", "x") == {
        "repository": "s3://b/p",
        "run": {"output": "out"},
    }


def test_segments_and_changes_written_by_the_cli_are_read(tmp_path, env, rep_bin, monkeypatch):
    from conftest import rep_cli

    c = Craft(str(tmp_path / "r"))
    ids, cks = [], []
    for i in range(110):
        e = c.experiment(created=f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}.000Z", params={"i": i})
        cks.append([c.checkpoint(e, s, {"loss": i + s}) for s in range(2)])
        c.status(e)
        ids.append(e)
    url = str(tmp_path / "r")
    rep_cli(rep_bin, ["-R", url, "rm", cks[5][1]], tmp_path, {**env, "REP_CACHE_DIR": str(tmp_path / "cli1")})
    rep_cli(rep_bin, ["-R", url, "ls"], tmp_path, {**env, "REP_CACHE_DIR": str(tmp_path / "cli2")})
    assert any(n.endswith(".checkpoints.json.gz") for n in os.listdir(tmp_path / "r" / "index"))
    monkeypatch.setenv("REP_CACHE_DIR", str(tmp_path / "py"))
    repo = rep.Repository(url)
    exps = {e.id: e for e in repo.experiments.list()}
    assert len(exps) == 110 and repo.stats["requests"] < 15, repo.stats
    assert [c_.id for c_ in exps[ids[5]].checkpoints] == [cks[5][0]]
    assert [c_.id for c_ in exps[ids[6]].checkpoints] == cks[6]
    with pytest.raises(rep.NotFoundError):
        repo.checkpoints.get(cks[5][1])
