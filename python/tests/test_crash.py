"""A Python process that dies without stop(): an exception (failed), SIGKILL (crashed) — every
checkpoint it made is uploaded, nothing left in a local queue; and exit never hangs while the
storage is down (the rep child finishes the uploads once it is back)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from conftest import PYTHON_DIR, free_port, run_py, start_s3rver

SCRIPT = """
import os, signal, rep
e = rep.init(path=".", params={{"run": "crash"}})
print(e.id, flush=True)
for step in range(2):
    with open("weights.bin", "wb") as f:
        f.write(bytes([step]) * 300_000 + os.urandom(50_000))
    with open(f"../copy{{step}}.bin", "wb") as f, open("weights.bin", "rb") as g:
        f.write(g.read())
    e.checkpoint(path="weights.bin", metrics={{"loss": 1.0 / (step + 1)}})
{end}
"""


def wait_status(repo_url, eid, want, timeout=90):
    import rep

    end = time.time() + timeout
    status = None
    while time.time() < end:
        try:
            exp = rep.Repository(repo_url, cache=False).experiments.get(eid)
        except rep.NotFoundError:  # its record is not uploaded yet
            time.sleep(0.5)
            continue
        status = exp.status
        if status == want:
            return exp
        time.sleep(0.5)
    raise AssertionError(f"status stayed {status}, expected {want}")


def check_checkpoints(tmp_path, exp):
    assert [c.step for c in exp.checkpoints] == [0, 1]
    for c in exp.checkpoints:
        want = (tmp_path / f"copy{c.step}.bin").read_bytes()
        assert c.open("weights.bin").read() == want


def outboxes(cache):
    root = os.path.join(cache, "outbox")
    found = []
    for d, _, files in os.walk(root):
        found += [os.path.join(d, f) for f in files]
    return found


def test_an_exception_leaves_a_failed_experiment_with_its_checkpoints(tmp_path, env):
    project = tmp_path / "p"
    project.mkdir()
    p = run_py(SCRIPT.format(end='raise RuntimeError("boom")'), project, env, check=False)
    assert p.returncode == 1 and "RuntimeError: boom" in p.stderr
    eid = p.stdout.split()[0]
    exp = wait_status(str(project / ".rep"), eid, "failed")
    check_checkpoints(tmp_path, exp)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_sigkill_leaves_a_crashed_experiment_with_every_checkpoint_uploaded(tmp_path, env, where, request):
    if where == "s3":
        env = request.getfixturevalue("s3")
    project = tmp_path / "p"
    project.mkdir()
    p = run_py(SCRIPT.format(end="os.kill(os.getpid(), signal.SIGKILL)"), project, env, check=False)
    assert p.returncode == -9
    eid = p.stdout.split()[0]
    url = env.get("REP_REPOSITORY") or str(project / ".rep")
    # The rep child saw its stdin close: it ends the experiment as crashed after the uploads.
    wait_status(url, eid, "crashed")
    # Nothing stays queued on this (ephemeral) machine.
    assert outboxes(env["REP_CACHE_DIR"]) == []
    # Read from elsewhere, with a cold cache.
    os.environ["REP_CACHE_DIR"] = str(tmp_path / "other-cache")
    import rep

    exp = rep.Repository(url).experiments.get(eid)
    assert exp.status == "crashed"
    check_checkpoints(tmp_path, exp)


def test_exit_does_not_hang_while_storage_is_down_and_nothing_is_lost(tmp_path, env):
    port = free_port()
    data = tmp_path / "s3data"
    srv = start_s3rver(port, str(data))
    try:
        import boto3

        env = {**env, **srv.env, "AWS_REGION": "us-east-1", "REP_STOP_TIMEOUT": "3"}
        boto3.client(
            "s3",
            endpoint_url=srv.env["AWS_ENDPOINT_URL_S3"],
            aws_access_key_id=srv.env.get("AWS_ACCESS_KEY_ID", "S3RVER"),
            aws_secret_access_key=srv.env.get("AWS_SECRET_ACCESS_KEY", "S3RVER"),
            region_name="us-east-1",
        ).create_bucket(Bucket="outage")
        url = "s3://outage/r"
        env["REP_REPOSITORY"] = url
        project = tmp_path / "p"
        project.mkdir()
        script = project / "train.py"
        script.write_text(
            "import os, sys, rep\n"
            "e = rep.init(path='.', code=False)\n"
            "print(e.id, flush=True)\n"
            "open('w.bin', 'wb').write(b'one' * 1000)\n"
            "e.checkpoint(path='w.bin', metrics={'loss': 1})\n"
            "sys.stdin.readline()\n"  # the test stops the storage here
            "open('w.bin', 'wb').write(b'two' * 1000)\n"
            "e.checkpoint(path='w.bin', metrics={'loss': 0.5})\n"
            # no stop(): interpreter exit stops it
        )
        proc = subprocess.Popen(
            [sys.executable, str(script)], cwd=project, env=env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        eid = proc.stdout.readline().strip()
        srv.stop()
        t0 = time.time()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=120)
        took = time.time() - t0
        assert proc.returncode == 0, err
        assert took < 60, f"exit took {took:.1f} s"
        assert "stopped waiting for uploads" in err and "rep push" in err
        # Storage comes back: the rep child, still running, finishes the uploads.
        srv = start_s3rver(port, str(data))
        os.environ.update({k: v for k, v in env.items() if k.startswith(("AWS_", "REP_REPOSITORY"))})
        exp = wait_status(url, eid, "succeeded", timeout=120)
        assert [c.metrics for c in exp.checkpoints] == [{"loss": 1}, {"loss": 0.5}]
        assert exp.latest().open("w.bin").read() == b"two" * 1000
    finally:
        srv.stop()
        for k in list(os.environ):
            if k.startswith("AWS_") or k == "REP_REPOSITORY":
                os.environ.pop(k, None)
