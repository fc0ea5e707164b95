"""rep.init(name=..., resume=True): a job killed after its third checkpoint and run again with the
same line continues from exactly step 3's files, as attempt 2 of the same experiment, with its
earlier checkpoints; an experiment that succeeded is not recorded again; keep_best / keep_last
remove what falls out while it runs."""

from __future__ import annotations

import re

import pytest

from conftest import run_py
from test_crash import wait_status

SCRIPT = """
import os, signal, rep
e = rep.init(path=".", name="py-run", resume=True, code=False,
             primary_metric=("loss", "minimize"){extra})
print(e.id, e.attempt, e.status, flush=True)
if e.status == "succeeded":
    raise SystemExit(0)
start = e.resumed_from.step if e.resumed_from else 0
if start:
    with open("../seen.bin", "wb") as f, open("weights.bin", "rb") as g:
        f.write(g.read())
print("earlier", [c.step for c in e.checkpoints], flush=True)
for step in range(start + 1, 7):
    with open("weights.bin", "wb") as f:
        f.write(bytes([step]) * 200_000 + os.urandom(20_000))
    with open(f"../copy{{step}}.bin", "wb") as f, open("weights.bin", "rb") as g:
        f.write(g.read())
    e.checkpoint(path="weights.bin", step=step, metrics={{"loss": {loss}}})
    if step == {kill_at}:
        os.kill(os.getpid(), signal.SIGKILL)
e.stop()
"""


def test_resume_continues_a_killed_job_from_its_last_checkpoint(tmp_path, env):
    import rep

    project = tmp_path / "p"
    project.mkdir()
    first = run_py(SCRIPT.format(extra="", loss="1.0 / step", kill_at=3), project, env, check=False)
    assert first.returncode == -9, first.stderr
    eid = first.stdout.split()[0]
    url = str(project / ".rep")
    wait_status(url, eid, "crashed")
    # The weights on disk are not step 3's any more (a later save), and a stray file is there.
    (project / "weights.bin").write_bytes(b"not step 3")
    second = run_py(SCRIPT.format(extra="", loss="1.0 / step", kill_at=0), project, env)
    out = second.stdout.split("\n")
    assert out[0].split() == [eid, "2", "running"]
    assert out[1] == "earlier [1, 2, 3]"
    assert (tmp_path / "seen.bin").read_bytes() == (tmp_path / "copy3.bin").read_bytes()
    # It says what it did: which experiment, attempt and checkpoint, and where the rewritten
    # weights.bin went (it had other content, so it was moved aside, not overwritten).
    said = [l for l in second.stderr.splitlines() if l.startswith("rep: resuming")]
    assert len(said) == 1, second.stderr
    assert re.fullmatch(
        rf"rep: resuming experiment {eid[:7]} \(py-run\) as attempt 2 from checkpoint [0-9a-f]{{7}}"
        r" \(step 3\): 1 file\(s\) put back; 1 file\(s\) with other content moved to \S+",
        said[0],
    ), said[0]
    exp = rep.Repository(url, cache=False).experiments.get("py-run")
    assert exp.id == eid and exp.name == "py-run" and exp.status == "succeeded"
    assert [c.step for c in exp.checkpoints] == [1, 2, 3, 4, 5, 6]
    for c in exp.checkpoints:
        assert c.open("weights.bin").read() == (tmp_path / f"copy{c.step}.bin").read_bytes()
    # The same line again: it succeeded, nothing is recorded.
    third = run_py(SCRIPT.format(extra="", loss="1.0 / step", kill_at=0), project, env)
    assert third.stdout.split()[1:3] == ["2", "succeeded"]
    assert "already succeeded" in third.stderr
    assert len(rep.Repository(url, cache=False).experiments.get(eid).checkpoints) == 6


def test_keep_best_and_keep_last_while_recording(tmp_path, env):
    import rep

    project = tmp_path / "p"
    project.mkdir()
    losses = "[0.9, 0.5, 0.7, 0.4, 0.8, 0.95][step - 1]"
    run_py(SCRIPT.format(extra=", keep_best=2, keep_last=1", loss=losses, kill_at=0), project, env)
    exp = rep.Repository(str(project / ".rep"), cache=False).experiments.get("py-run")
    assert [c.step for c in exp.checkpoints] == [2, 4, 6]
    for c in exp.checkpoints:
        assert c.open("weights.bin").read() == (tmp_path / f"copy{c.step}.bin").read_bytes()
    with pytest.raises(rep.UsageError):
        rep.init(path=str(project), keep_best=-1)
