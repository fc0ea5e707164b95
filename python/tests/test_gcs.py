"""A gs:// repository on the Cloud Storage emulator (rep's test server): recorded through rep, read
by the package's JSON API client (google-cloud-storage is not needed)."""

from __future__ import annotations

import json
import os
import urllib.request
import uuid

import pytest

from conftest import DenoServer, run_py


@pytest.fixture
def gcs(env, monkeypatch):
    srv = DenoServer("gcs.ts", [])
    try:
        host = srv.env["STORAGE_EMULATOR_HOST"]
        bucket = f"rep-{uuid.uuid4().hex[:10]}"
        req = urllib.request.Request(
            f"{host}/storage/v1/b?project={srv.env.get('GOOGLE_CLOUD_PROJECT', 'rep-test')}",
            data=json.dumps({"name": bucket}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(req, timeout=30).read()
        url = f"gs://{bucket}/team/repo"
        for k, v in {**srv.env, "REP_REPOSITORY": url}.items():
            monkeypatch.setenv(k, v)
            env[k] = v
        yield env
    finally:
        srv.stop()


def test_record_and_read_on_gcs(tmp_path, gcs):
    project = tmp_path / "p"
    project.mkdir()
    data = os.urandom(700_000)
    (project / "model.pth").write_bytes(data)
    code = """
    import rep
    e = rep.init(path=".", params={"lr": 0.1}, primary_metric=("loss", "minimize"))
    e.checkpoint(path="model.pth", metrics={"loss": 0.5})
    e.checkpoint(path="model.pth", metrics={"loss": 0.7})
    e.stop()
    print(e.id)
    """
    eid = run_py(code, project, gcs).stdout.strip()
    import rep

    os.environ["REP_CACHE_DIR"] = str(tmp_path / "reader-cache")
    repo = rep.Repository()
    assert repo.url == os.environ["REP_REPOSITORY"]
    exp = repo.experiments.get(eid[:8])
    assert (exp.status, exp.params, exp.best().step) == ("succeeded", {"lr": 0.1}, 0)
    f = exp.best().open("model.pth")
    f.seek(500_000)
    assert f.read(1000) == data[500_000:501_000]
    f.seek(0)
    assert f.read() == data
    assert repo.checkpoints.get(exp.latest().id[:10]).open("model.pth").read() == data
    with pytest.raises(rep.StorageError, match="does not exist"):
        rep.Repository("gs://no-such-bucket-here/x").experiments.list()
