"""The seed's two snippets, as written, with real PyTorch, against a local and an S3 repository:
a training script records a small model per epoch, another process loads best and latest with
torch.load(checkpoint.open(...)) and compares the tensors with what was saved."""

from __future__ import annotations

import json
import os
import sys

import pytest

from conftest import rep_cli, run_py

torch = pytest.importorskip("torch")

# The seed's training snippet, with a model and a loss around it. Each epoch's weights are also
# saved outside the project, to compare with what comes back.
TRAIN = """
import torch, rep
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
num_epochs = 4
losses = [0.9, 0.2, 0.5, 0.4]
experiment = rep.init(path=".", params={"lr": 0.01})
for epoch in range(num_epochs):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    loss = losses[epoch]
    torch.save(model.state_dict(), "model.pth")
    torch.save(model.state_dict(), f"../expected/{epoch}.pt")
    experiment.checkpoint(path="model.pth", metrics={"loss": loss}, primary_metric=("loss", "minimize"))
experiment.stop()
print(experiment.id)
"""

# The seed's loading snippet, in another process.
LOAD = """
import json, torch, rep
experiment = rep.experiments.get("{prefix}")
checkpoint = experiment.best()
best = torch.load(checkpoint.open("model.pth"))
latest = torch.load(experiment.latest().open("model.pth"))
out = {{"best_step": checkpoint.step, "latest_step": experiment.latest().step, "status": experiment.status,
       "params": experiment.params, "steps": [c.step for c in experiment.checkpoints],
       "files": [f.path for f in checkpoint.files()], "path": experiment.path}}
for name, sd, epoch in (("best", best, checkpoint.step), ("latest", latest, experiment.latest().step)):
    want = torch.load(f"{expected}/{{epoch}}.pt")
    out[name] = sorted(want) == sorted(sd) and all(torch.equal(want[k], sd[k]) for k in want)
print(json.dumps(out))
"""


def roundtrip(tmp_path, env, reader_dir, reader_env):
    project = tmp_path / "project"
    project.mkdir()
    (tmp_path / "expected").mkdir()
    p = run_py(TRAIN, project, env)
    eid = p.stdout.strip().splitlines()[-1]
    assert len(eid) == 32
    assert p.stdout.strip() == eid  # nothing else on stdout
    out = run_py(LOAD.format(prefix=eid[:7], expected=tmp_path / "expected"), reader_dir, reader_env).stdout
    got = json.loads(out)
    assert got == {
        "best_step": 1,
        "latest_step": 3,
        "status": "succeeded",
        "params": {"lr": 0.01},
        "steps": [0, 1, 2, 3],
        "files": ["model.pth"],
        "path": str(project),
        "best": True,
        "latest": True,
    }
    return eid


def test_seed_snippets_on_a_local_repository(tmp_path, env):
    roundtrip(tmp_path, env, tmp_path / "project", env)


def test_seed_snippets_on_s3(tmp_path, s3):
    # The reader is another machine: another folder, a cold cache, no rep executable.
    reader = tmp_path / "inference"
    reader.mkdir()
    reader_env = {**s3, "REP_CACHE_DIR": str(tmp_path / "inference-cache"), "REP_BIN": "/nonexistent"}
    roundtrip(tmp_path, s3, reader, reader_env)


def test_files_keep_their_project_relative_paths(tmp_path, env):
    project = tmp_path / "project"
    (project / "checkpoints" / "sub").mkdir(parents=True)
    code = """
    import os, rep
    e = rep.init(path=".", params={"x": 1})
    with open("checkpoints/model.pth", "wb") as f: f.write(b"weights-1")
    with open("checkpoints/sub/opt.bin", "wb") as f: f.write(b"opt-1")
    e.checkpoint(path="checkpoints", metrics={"loss": 1.0})
    os.chdir("/")  # paths stay relative to init()'s folder
    e.checkpoint(path="checkpoints/model.pth", step=7)
    e.stop()
    print(e.id)
    """
    eid = run_py(code, project, env).stdout.strip()
    import rep

    exp = rep.Repository(str(project / ".rep")).experiments.get(eid)
    first, second = exp.checkpoints
    assert [f.path for f in first.files()] == ["checkpoints/model.pth", "checkpoints/sub/opt.bin"]
    assert first.open("checkpoints/sub/opt.bin").read() == b"opt-1"
    assert (second.step, [f.path for f in second.files()]) == (7, ["checkpoints/model.pth"])
    assert second.metrics == {}
    out = tmp_path / "restored"
    res = first.checkout(str(out))
    assert res.written == ["checkpoints/model.pth", "checkpoints/sub/opt.bin"]
    assert (out / "checkpoints" / "model.pth").read_bytes() == b"weights-1"
    assert os.path.isfile(tmp_path / "project" / ".rep" / "repository.json")


def test_seed_snippets_under_rep_run(tmp_path, env, rep_bin):
    # The same training script, started by `rep run`: init() joins rep run's experiment (one
    # experiment, rep run's params) and each checkpoint() is exactly model.pth with its loss.
    project = tmp_path / "project"
    project.mkdir()
    (tmp_path / "expected").mkdir()
    (project / "train.py").write_text(TRAIN)
    repo = str(tmp_path / "repo")
    p = rep_cli(rep_bin, ["run", "-R", repo, "-p", "lr=0.01", "--", sys.executable, "train.py"], project, env)
    eid = p.stdout.strip().splitlines()[-1]
    assert len(eid) == 32
    import rep

    assert [e.id for e in rep.Repository(repo, cache=False).experiments.list()] == [eid]
    reader_env = {**env, "REP_REPOSITORY": repo}
    got = json.loads(run_py(LOAD.format(prefix=eid[:7], expected=tmp_path / "expected"), tmp_path, reader_env).stdout)
    assert got == {
        "best_step": 1,
        "latest_step": 3,
        "status": "succeeded",
        "params": {"lr": 0.01},
        "steps": [0, 1, 2, 3],
        "files": ["model.pth"],
        "path": str(project),
        "best": True,
        "latest": True,
    }
