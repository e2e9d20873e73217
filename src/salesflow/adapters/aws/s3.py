"""The bucket on S3: the ``ObjectStore`` port with the local store's key layout.

``inbox/``, ``processed/year=YYYY/month=MM/``, ``failed/``, ``lake/`` and ``reports/`` are plain
key prefixes. Every key is checked with ``check_key`` before any request, so a key from an
event or a CLI argument can never address something the local store would refuse. S3 has no
rename: ``move`` is a server-side copy then a delete, and is idempotent so a retried archive
step finishes the job instead of failing.
"""

from __future__ import annotations

import contextlib
import posixpath
import tempfile
import urllib.parse
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from salesflow.adapters.aws.errors import error_code, translate
from salesflow.layout import check_key
from salesflow.models import ObjectInfo

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MISSING = frozenset({"404", "NoSuchKey", "NotFound"})


def decode_event_key(key: str) -> str:
    """The object key of an S3 event record, which S3 sends URL-encoded (spaces as ``+``).

    >>> decode_event_key("inbox/orders_json/my+file%281%29.json")
    'inbox/orders_json/my file(1).json'
    """
    return urllib.parse.unquote_plus(key)


class S3ObjectStore:
    """An ``ObjectStore`` over one S3 bucket; ``client`` is a boto3 S3 client."""

    def __init__(self, client: S3Client, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def _fail(self, exc: ClientError | BotoCoreError, action: str, key: str) -> Exception:
        return translate(exc, f"s3 {action} s3://{self.bucket}/{key}")

    def put_bytes(self, key: str, data: bytes) -> None:
        check_key(key)
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "put", key) from exc

    def put_file(self, key: str, path: Path, *, move: bool = False) -> None:
        """Upload ``path``; big files go up in parts and appear only when complete. With
        ``move``, the local file is removed once the upload succeeded."""
        check_key(key)
        try:
            self.client.upload_file(str(path), self.bucket, key)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "upload", key) from exc
        if move:
            Path(path).unlink(missing_ok=True)

    def get_bytes(self, key: str) -> bytes:
        check_key(key)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            return response["Body"].read()
        except ClientError as exc:
            if error_code(exc) in MISSING:
                raise FileNotFoundError(f"no object at s3://{self.bucket}/{key}") from exc
            raise self._fail(exc, "get", key) from exc
        except BotoCoreError as exc:
            raise self._fail(exc, "get", key) from exc

    @contextlib.contextmanager
    def fetch(self, key: str) -> Iterator[Path]:
        """Download to a temporary file (same suffix as the key) that is removed afterwards."""
        check_key(key)
        suffix = posixpath.splitext(key)[1]
        with tempfile.TemporaryDirectory(prefix="salesflow-s3-") as folder:
            path = Path(folder) / f"object{suffix}"
            try:
                self.client.download_file(self.bucket, key, str(path))
            except ClientError as exc:
                if error_code(exc) in MISSING:
                    raise FileNotFoundError(f"no object at s3://{self.bucket}/{key}") from exc
                raise self._fail(exc, "download", key) from exc
            except BotoCoreError as exc:
                raise self._fail(exc, "download", key) from exc
            yield path

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    def stat(self, key: str) -> ObjectInfo | None:
        """HeadObject: size, time and version token (``ETag@LastModified``, as ``list``)."""
        check_key(key)
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in MISSING:
                return None
            raise self._fail(exc, "head", key) from exc
        except BotoCoreError as exc:
            raise self._fail(exc, "head", key) from exc
        return _info(key, head["ContentLength"], head["LastModified"], head.get("ETag", ""))

    def list(self, prefix: str) -> list[ObjectInfo]:
        """Every object under ``prefix`` (paginated), sorted by key."""
        if prefix:
            check_key(prefix)
        found: list[ObjectInfo] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    found.append(
                        _info(obj["Key"], obj["Size"], obj["LastModified"], obj.get("ETag", ""))
                    )
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "list", prefix) from exc
        found.sort(key=lambda info: info.key)
        return found

    def move(self, src: str, dst: str) -> None:
        """Server-side copy (multipart above 8 MB) then delete. Idempotent: when ``src`` is gone
        and ``dst`` exists, a previous move finished and there is nothing to do."""
        check_key(src)
        check_key(dst)
        if not self.exists(src):
            if self.exists(dst):
                return
            raise FileNotFoundError(
                f"cannot move s3://{self.bucket}/{src}: no such object, and {dst!r} is absent"
            )
        try:
            self.client.copy({"Bucket": self.bucket, "Key": src}, self.bucket, dst)
            self.client.delete_object(Bucket=self.bucket, Key=src)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "move", f"{src} -> {dst}") from exc

    def delete(self, key: str) -> None:
        """Delete ``key`` (S3 answers success for a missing key too)."""
        check_key(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "delete", key) from exc


def _info(key: str, size: int, modified: datetime, etag: str) -> ObjectInfo:
    """An object's facts; the version token is ``<ETag>@<LastModified>``: an upload of other
    bytes changes the ETag, a re-upload of the same bytes changes the time."""
    tag = etag.strip('"')
    return ObjectInfo(
        key=key, size=size, modified=modified, version=f"{tag}@{modified.isoformat()}"
    )
