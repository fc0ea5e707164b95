"""Amazon S3 and S3-compatible servers, through boto3 (``pip install 'rep[s3]'``).

Configuration is boto3's: the standard credential chain and region (``AWS_REGION``,
``AWS_DEFAULT_REGION``, the profile; ``us-east-1`` when none is set); the endpoint from
``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL`` or the profile's ``endpoint_url``. Path-style
addressing is used with ``REP_S3_FORCE_PATH_STYLE=1`` and whenever a custom endpoint is set (as the
CLI does); ``REP_S3_FORCE_PATH_STYLE=0`` keeps virtual-hosted style.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Iterator, Optional, Tuple

from ..errors import NotFoundError, StorageError
from . import Store, check_key

_ATTEMPTS = 5


def _truthy(v: str) -> bool:
    return v.strip().lower() not in ("0", "false", "no", "off", "")


class S3Store(Store):
    def __init__(self, bucket: str, prefix: str):
        super().__init__()
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}" + (f"/{self.prefix}" if self.prefix else "")
        self._client: Any = None
        self._client_lock = threading.Lock()
        self.endpoint: Optional[str] = None

    def _full(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _rel(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    def client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self) -> Any:
        try:
            import boto3  # type: ignore
            from botocore.config import Config  # type: ignore
        except ImportError:
            raise StorageError(
                f"Cannot read {self.url}: reading S3 repositories needs boto3, which is not installed",
                "pip install 'rep[s3]' (or pip install boto3)",
            ) from None
        session = boto3.session.Session()
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or session.region_name
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None

        def make(path_style: bool) -> Any:
            cfg = Config(
                retries={"max_attempts": _ATTEMPTS, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
                max_pool_connections=24,
                s3={"addressing_style": "path"} if path_style else None,
            )
            kw = {"region_name": region or "us-east-1", "config": cfg}
            if endpoint:
                kw["endpoint_url"] = endpoint
            return session.client("s3", **kw)

        env_style = os.environ.get("REP_S3_FORCE_PATH_STYLE")
        explicit = env_style is not None and env_style != ""
        client = make(_truthy(env_style) if explicit else bool(endpoint))
        resolved = getattr(client.meta, "endpoint_url", "") or ""
        self.endpoint = endpoint or (resolved if "amazonaws.com" not in resolved else None)
        if not explicit and not endpoint and self.endpoint:
            # A custom endpoint from the profile (endpoint_url): servers on host:port need paths.
            client = make(True)
        return client

    def _error(self, e: Exception, what: str, key: str) -> Exception:
        try:
            from botocore.exceptions import ClientError, NoCredentialsError  # type: ignore
        except ImportError:  # pragma: no cover
            ClientError = NoCredentialsError = ()  # type: ignore
        where = f" at {self.endpoint}" if self.endpoint else ""
        if isinstance(e, ClientError):
            code = str(e.response.get("Error", {}).get("Code", ""))
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchKey", "404", "NotFound") and code != "NoSuchBucket":
                return NotFoundError(f"Cannot {what} {key} in {self.url}: no such object")
            if code == "NoSuchBucket":
                return StorageError(
                    f"Cannot {what} {key}: the bucket {self.bucket} does not exist{where}",
                    "Check the repository URL (rep.yaml, REP_REPOSITORY or repository=)",
                )
            if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403") or status == 403:
                return StorageError(
                    f"Cannot {what} {key} in {self.url}: access denied ({code})",
                    "Check the AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID) and the bucket policy",
                )
            return StorageError(f"Cannot {what} {key} in {self.url}: {code or e}")
        if isinstance(e, NoCredentialsError):
            return StorageError(
                f"Cannot {what} {key} in {self.url}: no AWS credentials found",
                "Set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or run `aws configure`",
            )
        return StorageError(
            f"Cannot reach S3{where} to {what} {key}: {e}",
            "Check the network connection" + (" and AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL" if self.endpoint else ""),
        )

    def get(self, key: str, offset: int = 0, length: Optional[int] = None) -> bytes:
        check_key(key)
        if length == 0:
            return b""
        client = self.client()
        parts = []
        got = 0
        etag = None
        last: Optional[Exception] = None
        for _ in range(_ATTEMPTS):
            kw = {"Bucket": self.bucket, "Key": self._full(key)}
            start = offset + got
            if length is not None:
                kw["Range"] = f"bytes={start}-{offset + length - 1}"
            elif start:
                kw["Range"] = f"bytes={start}-"
            if etag:
                kw["IfMatch"] = etag
            try:
                res = client.get_object(**kw)
            except Exception as e:  # noqa: BLE001 - mapped to our errors
                err = self._error(e, "read", key)
                if isinstance(err, NotFoundError) or "access denied" in err.message:
                    raise err from None
                if _is_range_error(e) and length is None:
                    break  # reading from the very end of the object
                raise err from None
            etag = etag or res.get("ETag")
            body = res["Body"]
            try:
                while True:
                    b = body.read(1 << 20)
                    if not b:
                        break
                    parts.append(b)
                    got += len(b)
                last = None
                break
            except Exception as e:  # noqa: BLE001 - a body cut mid-way: resume from `got`
                last = e
            finally:
                body.close()
            if length is not None and got >= length:
                last = None
                break
        if last is not None:
            raise self._error(last, "read", key) from None
        data = b"".join(parts)
        self._count(len(data))
        return data

    def list(self, prefix: str) -> Iterator[Tuple[str, int]]:
        client = self.client()
        full = self._full(prefix) if prefix else (self.prefix + "/" if self.prefix else "")
        token = None
        while True:
            kw = {"Bucket": self.bucket, "Prefix": full}
            if token:
                kw["ContinuationToken"] = token
            try:
                res = client.list_objects_v2(**kw)
            except Exception as e:  # noqa: BLE001
                raise self._error(e, "list", prefix or "/") from None
            self._count(0)
            for o in res.get("Contents", []) or []:
                yield self._rel(o["Key"]), int(o.get("Size", 0))
            if not res.get("IsTruncated"):
                return
            token = res.get("NextContinuationToken")

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        client = self.client()
        full = self._full(prefix) if prefix else (self.prefix + "/" if self.prefix else "")
        token = None
        while True:
            kw = {"Bucket": self.bucket, "Prefix": full, "Delimiter": "/"}
            if token:
                kw["ContinuationToken"] = token
            try:
                res = client.list_objects_v2(**kw)
            except Exception as e:  # noqa: BLE001
                raise self._error(e, "list", prefix or "/") from None
            self._count(0)
            for p in res.get("CommonPrefixes", []) or []:
                yield self._rel(p["Prefix"])
            if not res.get("IsTruncated"):
                return
            token = res.get("NextContinuationToken")


def _is_range_error(e: Exception) -> bool:
    resp = getattr(e, "response", None) or {}
    return str(resp.get("Error", {}).get("Code", "")) == "InvalidRange"
