"""The package installs offline with pip (with and without build isolation) and reads a repository
from the installed copy, in a folder with no rep sources and no rep executable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import PYTHON_DIR
from craft import Craft


@pytest.mark.parametrize("isolation", [True, False])
def test_pip_installs_offline_and_the_installed_package_reads(tmp_path, isolation):
    target = tmp_path / "site"
    cmd = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--quiet", "--target", str(target)]
    if not isolation:
        cmd.append("--no-build-isolation")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_FIND_LINKS")}
    p = subprocess.run([*cmd, PYTHON_DIR], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    assert (target / "rep" / "_files.py").is_file()
    assert not (target / "tests").exists()
    c = Craft(str(tmp_path / "repo"))
    e = c.experiment(params={"lr": 0.5})
    c.checkpoint(e, 0, {"loss": 1.0}, {"model.pth": b"hello"})
    c.status(e)
    code = (
        "import rep, sys\n"
        "assert rep.__file__.startswith(sys.argv[1]), rep.__file__\n"
        "ck = rep.experiments.get(sys.argv[2][:7]).latest()\n"
        "print(ck.open('model.pth').read().decode(), rep.experiments.get(sys.argv[2]).params)\n"
    )
    env = {**env, "PYTHONPATH": str(target), "REP_REPOSITORY": str(tmp_path / "repo"), "REP_CACHE_DIR": str(tmp_path / "c")}
    env.pop("REP_BIN", None)
    p = subprocess.run(
        [sys.executable, "-c", code, str(target), e], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "hello {'lr': 0.5}"
    assert list((target).glob("rep-0.1.0.dist-info/METADATA"))
    meta = next(target.glob("rep-0.1.0.dist-info/METADATA")).read_text()
    assert "Provides-Extra: s3" in meta and 'Requires-Dist: boto3; extra == "s3"' in meta
