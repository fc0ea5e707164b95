"""Moto's S3 server on 127.0.0.1 for tests, configured the way AWS users configure an
S3-compatible service: a named profile with ``endpoint_url`` in a shared config file.

Run it as a script (what ``tests/servers/moto.ts`` does)::

    python3 tests/servers/moto_s3.py [--port N] [--dir DIR]

It starts the server (moto's own WSGI app, as ``python3 -m moto.server`` runs it), writes
``DIR/config`` and ``DIR/credentials`` (a temporary folder, removed at exit, when ``--dir`` is not
given), prints the environment a client needs as one JSON line on stdout once the server listens,
logs every request on stderr (werkzeug's access log), and serves until SIGTERM, SIGINT or the end
of stdin. The environment names no endpoint and no keys: only ``AWS_CONFIG_FILE``,
``AWS_SHARED_CREDENTIALS_FILE`` and ``AWS_PROFILE`` (variables such as ``AWS_ENDPOINT_URL`` or
``AWS_ACCESS_KEY_ID``, when set, still take precedence over the profile, as with any AWS client).

From Python tests::

    from moto_s3 import MotoS3
    with MotoS3() as moto:
        bucket = moto.bucket()
        env = {**os.environ, **moto.env}   # for a child process (rep, or boto3 in a subprocess)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.request
import uuid

PROFILE = "rep-moto"
ACCESS_KEY = "rep-moto-key"
SECRET_KEY = "rep-moto-secret"
REGION = "us-east-1"

def write_profile(directory: str, endpoint: str) -> dict[str, str]:
    """Write the shared config and credentials files; return the environment that selects them."""
    config = os.path.join(directory, "config")
    credentials = os.path.join(directory, "credentials")
    with open(config, "w") as f:
        f.write(
            f"[profile {PROFILE}]\n"
            f"region = {REGION}\n"
            f"endpoint_url = {endpoint}\n"
            "s3 =\n"
            "  addressing_style = path\n"
        )
    with open(credentials, "w") as f:
        f.write(
            f"[{PROFILE}]\n"
            f"aws_access_key_id = {ACCESS_KEY}\n"
            f"aws_secret_access_key = {SECRET_KEY}\n"
        )
    return {
        "AWS_CONFIG_FILE": config,
        "AWS_SHARED_CREDENTIALS_FILE": credentials,
        "AWS_PROFILE": PROFILE,
    }


def serve(port: int, directory: str | None) -> None:
    """Run the server in this process until SIGTERM, SIGINT or the end of stdin."""
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    own_dir = directory is None
    directory = directory or tempfile.mkdtemp(prefix="rep-moto-")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, bound = server.get_host_and_port()
    endpoint = f"http://localhost:{bound}"
    env = write_profile(directory, endpoint)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())

    def watch_stdin() -> None:
        try:
            while sys.stdin.read(65536):
                pass
        except (OSError, ValueError):
            pass
        done.set()

    if sys.stdin is not None and not sys.stdin.isatty():
        threading.Thread(target=watch_stdin, daemon=True).start()
    print(json.dumps(env), flush=True)
    done.wait()
    if own_dir:
        shutil.rmtree(directory, ignore_errors=True)
    # The server thread is a daemon: leaving now drops every connection, as a crash would.
    os._exit(0)


class MotoS3:
    """A moto S3 server in a child process, for Python tests (a context manager)."""

    def __init__(self, port: int = 0) -> None:
        self._dir = tempfile.mkdtemp(prefix="rep-moto-")
        self._proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--port", str(port), "--dir", self._dir],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = self._proc.stdout.readline() if self._proc.stdout else ""
        if not line:
            self.stop()
            raise RuntimeError("moto's S3 server did not start")
        #: What a client needs in its environment (profile files and the profile name).
        self.env: dict[str, str] = json.loads(line)
        with open(self.env["AWS_CONFIG_FILE"]) as f:
            #: The server's base URL, e.g. ``http://127.0.0.1:41234``.
            self.endpoint = next(
                ln.split("=", 1)[1].strip() for ln in f if ln.startswith("endpoint_url")
            )

    def bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh random name when omitted) and return its name."""
        name = name or f"rep-test-{uuid.uuid4().hex[:8]}"
        req = urllib.request.Request(f"{self.endpoint}/{name}", method="PUT")
        with urllib.request.urlopen(req) as res:
            res.read()
        return name

    def stop(self) -> None:
        """Stop the server and remove its profile files."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream:
                stream.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> "MotoS3":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--dir", default=None, help="where to write the profile files")
    args = parser.parse_args()
    serve(args.port, args.dir)
