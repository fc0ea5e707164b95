"""Benchmark: `rep.experiments.get()` + `best().open()` of a large file read fully, against
`rep checkout` of the same file, in one run (same machine, same load), on a local repository and
on an S3 test server (moto).

    REP_BIN=/path/to/rep python3 python/bench/open_vs_checkout.py [--size-mib 1024] [--s3]

Each measurement is a fresh process. Reported: seconds and MiB/s, and each time as a ratio to
`rep checkout` measured in the same run. Baselines: reading the original file (page cache) and
`cp` of it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(PYTHON_DIR, "tests"))

READ = r"""
import sys, time, rep
t0 = time.perf_counter()
exp = rep.experiments.get(sys.argv[1])
f = exp.best().open("model.bin")
buf = bytearray(8 << 20)
n = 0
while True:
    k = f.readinto(buf)
    if not k:
        break
    n += k
t = time.perf_counter() - t0
print(n, t, f.fetched)
"""

RECORD = r"""
import sys, time, rep
t0 = time.perf_counter()
e = rep.init(path=".", code=False, primary_metric=("loss", "minimize"))
t1 = time.perf_counter()
e.checkpoint(path="model.bin", metrics={"loss": 0.1})
t2 = time.perf_counter()
e.stop()
t3 = time.perf_counter()
print(e.id, t1 - t0, t2 - t1, t3 - t2)
"""


def timed(cmd, **kw):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    t = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{cmd} failed:\n{p.stdout}\n{p.stderr}")
    return t, p.stdout


def run(label, project, env, size, rep_bin, rounds):
    py = [sys.executable, "-c"]
    t, out = timed([*py, RECORD], cwd=project, env=env)
    eid, t_init, t_ck, t_stop = out.split()
    print(f"[{label}] record: init {float(t_init):.2f} s, checkpoint {float(t_ck):.2f} s, stop {float(t_stop):.2f} s")
    rows = []
    for r in range(rounds):
        out_dir = tempfile.mkdtemp(dir=project)
        t_co, _ = timed([rep_bin, "checkout", eid[:7], "--path", "model.bin", "-o", out_dir], cwd=project, env=env)
        assert os.path.getsize(os.path.join(out_dir, "model.bin")) == size
        shutil.rmtree(out_dir)
        cold_cache = tempfile.mkdtemp(dir=project)
        e2 = {**env, "REP_CACHE_DIR": cold_cache}
        t_proc, out = timed([*py, READ, eid[:7]], cwd=project, env=e2)
        n, t_open, fetched = out.split()
        assert int(n) == size
        row = {"checkout": t_co, "open_cold_process": t_proc, "open_cold": float(t_open), "fetched": int(fetched)}
        if label != "local":
            t_proc2, out2 = timed([*py, READ, eid[:7]], cwd=project, env=e2)
            row["open_warm_process"] = t_proc2
            row["open_warm"] = float(out2.split()[1])
            row["fetched_warm"] = int(out2.split()[2])
        shutil.rmtree(cold_cache)
        rows.append(row)
    mib = size / 2**20
    for k in rows[0]:
        if k.startswith("fetched"):
            continue
        best = min(r[k] for r in rows)
        ratio = best / min(r["checkout"] for r in rows)
        print(f"[{label}] {k:18s} {best:7.2f} s  {mib / best:7.0f} MiB/s  ({ratio:.2f}x rep checkout)")
    print(f"[{label}] fetched cold {rows[0]['fetched'] / 2**20:.0f} MiB, warm {rows[0].get('fetched_warm', 0) / 2**20:.0f} MiB")
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--s3", action="store_true")
    a = ap.parse_args()
    rep_bin = os.environ.get("REP_BIN") or shutil.which("rep")
    if not rep_bin:
        raise SystemExit("set REP_BIN")
    size = a.size_mib << 20
    root = tempfile.mkdtemp(prefix="rep-bench-")
    try:
        project = os.path.join(root, "p")
        os.makedirs(project)
        path = os.path.join(project, "model.bin")
        with open(path, "wb") as f:
            for _ in range(a.size_mib):
                f.write(os.urandom(1 << 20))
        t0 = time.perf_counter()
        with open(path, "rb") as f:
            while f.readinto(bytearray(8 << 20)):
                pass
        t_read = time.perf_counter() - t0
        t_cp, _ = timed(["cp", path, path + ".copy"])
        os.unlink(path + ".copy")
        print(f"load: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; size {a.size_mib} MiB")
        print(f"baseline: read original {t_read:.2f} s, cp {t_cp:.2f} s")
        env = {k: v for k, v in os.environ.items() if k not in ("REP_REPOSITORY",)}
        env.update({"PYTHONPATH": PYTHON_DIR, "REP_BIN": rep_bin, "REP_CACHE_DIR": os.path.join(root, "cache"), "NO_COLOR": "1"})
        results = {"local": run("local", project, env, size, rep_bin, a.rounds)}
        if a.s3:
            from conftest import S3Server

            srv = S3Server()
            try:
                bucket = srv.bucket()
                e3 = {**env, **srv.env, "REP_REPOSITORY": f"s3://{bucket}/bench"}
                results["s3"] = run("s3", project, e3, size, rep_bin, a.rounds)
            finally:
                srv.stop()
        print(json.dumps({"baseline": {"read": t_read, "cp": t_cp}, **results}))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
