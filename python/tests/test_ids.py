"""Ids: checkpoint id prefixes work everywhere, ambiguous prefixes are refused with the candidates,
and errors say what failed and the fix."""

from __future__ import annotations

import pytest

from conftest import run_py

import rep

RECORD = """
import rep
e = rep.init(path=".", code=False, primary_metric=("acc", "maximize"))
for i in range(20):
    e.checkpoint(metrics={"acc": i / 100})
e.stop()
print(e.id)
"""


@pytest.fixture
def recorded(tmp_path, env):
    run_py(RECORD, tmp_path, env)
    return rep.Repository(str(tmp_path / ".rep"))


def test_checkpoint_id_prefixes(recorded):
    exp = recorded.experiments.list()[0]
    ids = [exp.id] + [c.id for c in exp.checkpoints]
    for c in exp.checkpoints:
        n = next(k for k in range(1, 33) if sum(i.startswith(c.id[:k]) for i in ids) == 1)
        got = recorded.checkpoints.get(c.id[:n])
        assert (got.id, got.step, got.metrics, got.experiment.id) == (c.id, c.step, c.metrics, exp.id)
        assert recorded.checkpoints.get(c.id.upper()).id == c.id
    assert exp.best().metrics == {"acc": 0.19}


def test_an_ambiguous_prefix_lists_the_candidates(recorded):
    exp = recorded.experiments.list()[0]
    ids = [exp.id] + [c.id for c in exp.checkpoints]
    # 21 ids, 16 hex digits: some first digit is shared.
    prefix = next(d for d in "0123456789abcdef" if sum(i.startswith(d) for i in ids) > 1)
    want = sorted(i for i in ids if i.startswith(prefix))
    with pytest.raises(rep.AmbiguousIdError) as e:
        recorded.checkpoints.get(prefix)
    assert sorted(e.value.candidates) == want
    assert f'Ambiguous id "{prefix}": it matches {len(want)} ids' in str(e.value)
    assert e.value.hint == "Type more characters of the id"
    with pytest.raises(rep.AmbiguousIdError):
        recorded.experiments.get(prefix)


def test_wrong_kinds_and_unknown_ids(recorded):
    exp = recorded.experiments.list()[0]
    ck = exp.checkpoints[3]
    with pytest.raises(rep.NotFoundError, match="is a checkpoint id, not an experiment id"):
        recorded.experiments.get(ck.id)
    with pytest.raises(rep.NotFoundError, match="is an experiment id, not a checkpoint id"):
        recorded.checkpoints.get(exp.id)
    missing = "f" * 32 if not any(i.startswith("ff") for i in [exp.id] + [c.id for c in exp.checkpoints]) else "0" * 32
    with pytest.raises(rep.NotFoundError) as e:
        recorded.checkpoints.get(missing)
    assert "No experiment or checkpoint matches" in e.value.message and "rep ls" in e.value.hint
    with pytest.raises(rep.UsageError, match="Invalid id"):
        recorded.experiments.get("not an id!")
    with pytest.raises(rep.NotFoundError, match="No experiment named"):
        recorded.experiments.get("my-run")


def test_a_missing_repository_says_so(tmp_path, env, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(rep.NotFoundError) as e:
        rep.Repository().experiments.get("abc1234")
    assert "No rep repository at" in e.value.message and "REP_REPOSITORY" in e.value.hint
    assert rep.Repository().experiments.list() == []


def test_missing_rep_executable(tmp_path, env, monkeypatch):
    monkeypatch.delenv("REP_BIN")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(rep.ExecutableNotFoundError) as e:
        rep.init(path=str(tmp_path))
    assert "the rep executable is not installed" in e.value.message
    assert "deno task compile" in e.value.hint and "REP_BIN" in e.value.hint
    monkeypatch.setenv("REP_BIN", str(tmp_path / "no-such-rep"))
    with pytest.raises(rep.ExecutableNotFoundError, match="does not exist"):
        rep.init(path=str(tmp_path))
    # Reading still works without it.
    assert rep.Repository(str(tmp_path / "nothing")).experiments.list() == []


def test_bad_arguments_are_usage_errors(tmp_path, env):
    code = """
    import rep, json
    e = rep.init(path=".", code=False)
    out = []
    for kw in ({"metrics": {"loss": object()}}, {"primary_metric": ("loss", "down")}, {"step": -1},
               {"path": "missing.bin"}, {"path": "/etc/passwd"}):
        try:
            e.checkpoint(**kw)
            out.append("no error")
        except rep.RepError as x:
            out.append(type(x).__name__ + ": " + x.message)
    ck = e.checkpoint(metrics={"loss": float("nan"), "n": 3})
    out.append(ck.metrics)
    e.stop()
    try:
        e.checkpoint(metrics={})
    except rep.UsageError as x:
        out.append(x.message)
    print(json.dumps(out))
    """
    import json

    got = json.loads(run_py(code, tmp_path, env).stdout)
    assert got[0].startswith("UsageError: metrics['loss'] is a object")
    assert got[1].startswith("UsageError: Invalid primary_metric")
    assert got[2].startswith("UsageError: step must be a non-negative integer")
    assert got[3].startswith('NotFoundError: Cannot checkpoint "') and "does not exist" in got[3]
    assert got[4].startswith('UsageError: Cannot checkpoint "/etc/passwd": it is outside the project folder')
    assert got[5] == {"loss": None, "n": 3}
    assert got[6].endswith("is not being recorded by this process")
