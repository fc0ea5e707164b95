"""Shared fixtures: the rep executable (main.ts run by deno, as a REP_BIN wrapper), isolated
environments, subprocess helpers and real storage servers (moto's S3 server, rep's s3rver and GCS
emulator test servers)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from typing import Dict, Iterator, List, Optional

import pytest

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(PYTHON_DIR)
sys.path.insert(0, PYTHON_DIR)

#: The permission flags of the compiled binary (tests/helpers.ts).
PERMISSIONS = [
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-net",
    "--allow-run",
    "--allow-sys",
]


def deno() -> str:
    local = os.path.join(ROOT, "tools", "node_modules", ".bin", "deno")
    found = local if os.path.exists(local) else shutil.which("deno")
    if not found:
        raise RuntimeError("The Python tests need deno (tools/node_modules/.bin/deno or on PATH): run .ci/run")
    return found


@pytest.fixture(scope="session")
def rep_bin(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A wrapper script running rep from source with the compiled binary's permissions."""
    d = tmp_path_factory.mktemp("bin")
    path = d / "rep"
    flags = " ".join(PERMISSIONS)
    path.write_text(f'#!/bin/sh\nexec "{deno()}" run --quiet {flags} "{ROOT}/main.ts" "$@"\n')
    path.chmod(0o755)
    # Compile main.ts once, so the first test does not pay for it.
    subprocess.run([str(path), "--version"], check=True, capture_output=True, timeout=300)
    return str(path)


CLEARED = (
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "REP_REPOSITORY",
    "REP_EXPERIMENT_ID",
    "REP_CONTROL",
    "REP_OUTPUT_DIR",
    "REP_METRICS_FILE",
    "REP_BIN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "STORAGE_EMULATOR_HOST",
)


@pytest.fixture
def env(tmp_path, rep_bin, monkeypatch) -> Dict[str, str]:
    """An isolated environment for this process and the ones it starts: own cache, REP_BIN."""
    for k in CLEARED:
        monkeypatch.delenv(k, raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv("REP_CACHE_DIR", str(cache))
    monkeypatch.setenv("REP_BIN", rep_bin)
    monkeypatch.setenv("NO_COLOR", "1")
    e = {k: v for k, v in os.environ.items() if k not in CLEARED}
    e.update(
        {
            "REP_CACHE_DIR": str(cache),
            "REP_BIN": rep_bin,
            "PYTHONPATH": PYTHON_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "NO_COLOR": "1",
        }
    )
    return e


def run_py(code: str, cwd, env: Dict[str, str], timeout: float = 300, check: bool = True, **kw) -> subprocess.CompletedProcess:
    """Run Python code in a new interpreter (as a script file in cwd)."""
    script = os.path.join(str(cwd), f"script_{uuid.uuid4().hex[:8]}.py")
    with open(script, "w") as f:
        f.write(textwrap.dedent(code))
    try:
        p = subprocess.run(
            [sys.executable, script], cwd=str(cwd), env=env, capture_output=True, text=True, timeout=timeout, **kw
        )
    finally:
        os.unlink(script)
    if check and p.returncode != 0:
        raise AssertionError(f"script failed ({p.returncode}):\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


def rep_cli(rep_bin: str, args: List[str], cwd, env: Dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([rep_bin, *args], cwd=str(cwd), env=env, capture_output=True, text=True, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"rep {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


sys.path.insert(0, os.path.join(ROOT, "tests", "servers"))


class S3Server:
    """moto's S3 server (the shared helper tests/servers/moto_s3.py): clients find it the way AWS
    users configure an S3-compatible service, through a profile with ``endpoint_url``."""

    def __init__(self) -> None:
        from moto_s3 import MotoS3

        self._moto = MotoS3()
        self.endpoint = self._moto.endpoint
        self.env = dict(self._moto.env)

    def bucket(self) -> str:
        return self._moto.bucket()

    def stop(self) -> None:
        self._moto.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    srv = S3Server()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def s3(s3_server, env, monkeypatch) -> Dict[str, str]:
    """A fresh bucket; env (and this process) point at it as REP_REPOSITORY."""
    bucket = s3_server.bucket()
    url = f"s3://{bucket}/repo"
    for k, v in {**s3_server.env, "REP_REPOSITORY": url}.items():
        monkeypatch.setenv(k, v)
        env[k] = v
    return env


class DenoServer:
    """One of rep's test servers (tests/servers/*.ts) run standalone: prints its env as JSON."""

    def __init__(self, script: str, args: List[str]):
        self.proc = subprocess.Popen(
            [deno(), "run", "--quiet", "-A", os.path.join(ROOT, "tests", "servers", script), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"{script} did not start")
        self.env: Dict[str, str] = json.loads(line)

    def stop(self) -> None:
        stop(self.proc)


def start_s3rver(port: Optional[int] = None, directory: Optional[str] = None) -> DenoServer:
    args = [str(port)] if port else []
    if directory:
        args = [str(port or free_port()), directory]
    return DenoServer("s3.ts", args)
