"""Google Cloud Storage through its JSON API, with the standard library's HTTP client.

Credentials: none with an emulator (``STORAGE_EMULATOR_HOST``, as ``http://host:port`` or bare
``host:port``); otherwise, in order, google-auth's Application Default Credentials when google-auth
is installed (``pip install 'rep[gcs]'``; it reads service-account keys too), an access token in
``GOOGLE_OAUTH_ACCESS_TOKEN``, the user credentials of ``gcloud auth application-default login``,
and the metadata server on Google Cloud.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
import urllib.parse
from typing import Any, Dict, Iterator, Optional, Tuple

from ..errors import NotFoundError, StorageError
from . import Store, check_key

_ATTEMPTS = 5
_SCOPE = "https://www.googleapis.com/auth/devstorage.read_only"
_RETRY_STATUS = {408, 429, 500, 502, 503, 504}


class GcsStore(Store):
    def __init__(self, bucket: str, prefix: str):
        super().__init__()
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"gs://{bucket}" + (f"/{self.prefix}" if self.prefix else "")
        ep = os.environ.get("STORAGE_EMULATOR_HOST")
        if ep:
            self.endpoint: Optional[str] = (ep if ep.startswith(("http://", "https://")) else f"http://{ep}").rstrip("/")
        else:
            self.endpoint = None
        self._base = urllib.parse.urlsplit(self.endpoint or "https://storage.googleapis.com")
        self._local = threading.local()
        self._token: Optional[Tuple[str, float]] = None
        self._token_lock = threading.Lock()

    def _full(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _rel(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    # ---- credentials -------------------------------------------------------------------------

    def _auth_header(self) -> Dict[str, str]:
        if self.endpoint:
            return {}
        with self._token_lock:
            if self._token is None or self._token[1] < time.time() + 60:
                self._token = _access_token()
            return {"Authorization": f"Bearer {self._token[0]}"}

    # ---- HTTP ----------------------------------------------------------------------------------

    def _conn(self) -> http.client.HTTPConnection:
        c = getattr(self._local, "conn", None)
        if c is None:
            cls = http.client.HTTPSConnection if self._base.scheme == "https" else http.client.HTTPConnection
            c = cls(self._base.hostname, self._base.port, timeout=60)
            self._local.conn = c
        return c

    def _request(self, path: str, headers: Dict[str, str], what: str, key: str) -> Tuple[int, bytes]:
        last: Optional[Exception] = None
        status = 0
        body = b""
        for attempt in range(_ATTEMPTS):
            if attempt:
                time.sleep(min(8.0, 0.5 * 2**attempt))
            try:
                conn = self._conn()
                conn.request("GET", path, headers={**headers, **self._auth_header()})
                res = conn.getresponse()
                body = res.read()
                status = res.status
            except StorageError:
                raise
            except (OSError, http.client.HTTPException) as e:
                last = e
                self._local.conn = None
                continue
            if status in _RETRY_STATUS:
                last = StorageError(f"HTTP {status}")
                continue
            return status, body
        where = f" at {self.endpoint}" if self.endpoint else ""
        raise StorageError(
            f"Cannot reach Cloud Storage{where} to {what} {key}: {last}",
            "Check the network connection" + (" and STORAGE_EMULATOR_HOST" if self.endpoint else ""),
        )

    def _check(self, status: int, body: bytes, what: str, key: str) -> None:
        if status < 300:
            return
        text = body[:300].decode("utf-8", "replace")
        if status == 404:
            if "bucket" in text.lower() and "not exist" in text.lower():
                raise StorageError(
                    f"Cannot {what} {key}: the bucket {self.bucket} does not exist",
                    "Check the repository URL (rep.yaml, REP_REPOSITORY or repository=)",
                )
            raise NotFoundError(f"Cannot {what} {key} in {self.url}: no such object")
        if status in (401, 403):
            raise StorageError(
                f"Cannot {what} {key} in {self.url}: access denied (HTTP {status})",
                'Run "gcloud auth application-default login", or grant the account read access to the bucket',
            )
        raise StorageError(f"Cannot {what} {key} in {self.url}: HTTP {status}: {text}")

    def get(self, key: str, offset: int = 0, length: Optional[int] = None) -> bytes:
        check_key(key)
        if length == 0:
            return b""
        obj = urllib.parse.quote(self._full(key), safe="")
        path = f"{self._base.path}/download/storage/v1/b/{self.bucket}/o/{obj}?alt=media"
        headers = {}
        if length is not None:
            headers["Range"] = f"bytes={offset}-{offset + length - 1}"
        elif offset:
            headers["Range"] = f"bytes={offset}-"
        status, body = self._request(path, headers, "read", key)
        if status == 416:
            body = b""
        else:
            self._check(status, body, "read", key)
            if status == 200 and (offset or length is not None):
                # A server that ignored the range: cut it here.
                body = body[offset : None if length is None else offset + length]
        self._count(len(body))
        return body

    def _pages(self, prefix: str, delimiter: bool) -> Iterator[Dict[str, Any]]:
        full = self._full(prefix) if prefix else (self.prefix + "/" if self.prefix else "")
        token = None
        while True:
            q = {"prefix": full, "maxResults": "1000"}
            if delimiter:
                q["delimiter"] = "/"
            if token:
                q["pageToken"] = token
            path = f"{self._base.path}/storage/v1/b/{self.bucket}/o?{urllib.parse.urlencode(q)}"
            status, body = self._request(path, {}, "list", prefix or "/")
            self._check(status, body, "list", prefix or "/")
            self._count(0)
            page = json.loads(body or b"{}")
            yield page
            token = page.get("nextPageToken")
            if not token:
                return

    def list(self, prefix: str) -> Iterator[Tuple[str, int]]:
        for page in self._pages(prefix, False):
            for item in page.get("items", []) or []:
                yield self._rel(item["name"]), int(item.get("size", 0))

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        out = []
        for page in self._pages(prefix, True):
            out.extend(self._rel(p) for p in page.get("prefixes", []) or [])
        return iter(sorted(out))


# ---- access tokens ------------------------------------------------------------------------------


def _post_form(url: str, form: Dict[str, str]) -> Dict[str, Any]:
    import urllib.request

    req = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _access_token() -> Tuple[str, float]:
    """An OAuth access token and its expiry time."""
    try:
        import google.auth  # type: ignore
        import google.auth.transport.requests  # type: ignore
    except ImportError:
        pass
    else:
        try:
            creds, _ = google.auth.default(scopes=[_SCOPE])
            creds.refresh(google.auth.transport.requests.Request())
            exp = creds.expiry.timestamp() if getattr(creds, "expiry", None) else time.time() + 300
            return creds.token, exp
        except Exception as e:  # noqa: BLE001
            raise StorageError(
                f"Cannot get Google Cloud credentials: {e}",
                'Run "gcloud auth application-default login", or set GOOGLE_APPLICATION_CREDENTIALS',
            ) from None
    env = os.environ.get("GOOGLE_OAUTH_ACCESS_TOKEN")
    if env:
        return env, time.time() + 3000
    path = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS") or os.path.join(
        os.path.expanduser("~"), ".config", "gcloud", "application_default_credentials.json"
    )
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
        if info.get("type") == "authorized_user":
            r = _post_form(
                "https://oauth2.googleapis.com/token",
                {
                    "grant_type": "refresh_token",
                    "client_id": info["client_id"],
                    "client_secret": info["client_secret"],
                    "refresh_token": info["refresh_token"],
                },
            )
            return r["access_token"], time.time() + float(r.get("expires_in", 300))
        raise StorageError(
            f"Cannot use the {info.get('type')} credentials in {path} without google-auth",
            "pip install 'rep[gcs]' (google-cloud-storage brings google-auth)",
        )
    import urllib.request

    try:
        req = urllib.request.Request(
            "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token",
            headers={"Metadata-Flavor": "Google"},
        )
        with urllib.request.urlopen(req, timeout=3) as r:
            tok = json.loads(r.read())
        return tok["access_token"], time.time() + float(tok.get("expires_in", 300))
    except OSError:
        raise StorageError(
            "Cannot find Google Cloud credentials",
            'Run "gcloud auth application-default login", set GOOGLE_APPLICATION_CREDENTIALS, '
            "or install google-auth (pip install 'rep[gcs]')",
        ) from None
