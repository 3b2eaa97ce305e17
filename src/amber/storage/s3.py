"""A repository in an S3 bucket (AWS or any S3-compatible store), with boto3's botocore.

Credentials come from boto3's standard chain: ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``,
``~/.aws/credentials`` and ``~/.aws/config``, instance roles.

Object Lock: when ``-o s3.lock-mode=governance|compliance`` and
``-o s3.lock-days=N`` are given, every object except lock files is written with a
retention date N days ahead, and :meth:`S3Backend.extend_retention` pushes the
date further for objects still in use. On a bucket with Object Lock (hence
versioning) ``remove`` deletes every version of the key, so it either really
frees the object or fails with PermissionDenied while retention holds.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import botocore.config
import botocore.exceptions
import botocore.session

from amber.errors import (
    AmberError,
    ObjectNotFound,
    PermissionDenied,
    StorageError,
    TransientStorageError,
    UsageError,
)
from amber.storage.base import FileInfo, FileType, Handle
from amber.storage.layout import TMP_PREFIX, describe, list_config, object_path, too_large

logging.getLogger("botocore").addHandler(logging.NullHandler())

_NOT_FOUND = {"NoSuchKey", "404", "NotFound", "NoSuchVersion"}
_DENIED = {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"}
_TRANSIENT = {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable", "503", "500",
              "RequestTimeTooSkewed", "OperationAborted", "Throttling", "ThrottlingException"}  # fmt: skip
_TRANSIENT_EXC = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.IncompleteReadError,
    botocore.exceptions.ResponseStreamingError,
    botocore.exceptions.HTTPClientError,
    ConnectionError,
    TimeoutError,
)
LOCK_MODES = {"governance": "GOVERNANCE", "compliance": "COMPLIANCE"}


@dataclass(frozen=True, slots=True)
class S3Settings:
    region: str | None = None
    lock_mode: str | None = None  # GOVERNANCE or COMPLIANCE
    lock_days: int = 0
    bucket_lookup: str = "auto"  # auto, path, dns
    storage_class: str | None = None  # for packs only
    access_key: str | None = None  # None: boto3's credential chain (tests pass explicit ones)
    secret_key: str | None = None

    @classmethod
    def from_options(cls, extra: Mapping[str, str]) -> S3Settings:
        mode = extra.get("s3.lock-mode", "").lower()
        if mode and mode not in LOCK_MODES:
            raise UsageError("-o s3.lock-mode must be governance or compliance")
        try:
            days = int(extra.get("s3.lock-days", "0") or 0)
        except ValueError as exc:
            raise UsageError("-o s3.lock-days must be a whole number of days") from exc
        if bool(mode) != bool(days > 0):
            raise UsageError("Object Lock needs both -o s3.lock-mode and -o s3.lock-days")
        lookup = extra.get("s3.bucket-lookup", "auto")
        if lookup not in ("auto", "path", "dns"):
            raise UsageError("-o s3.bucket-lookup must be auto, path or dns")
        return cls(
            region=extra.get("s3.region") or None, lock_mode=LOCK_MODES.get(mode), lock_days=days,
            bucket_lookup=lookup, storage_class=extra.get("s3.storage-class") or None,
        )  # fmt: skip


def _convert(exc: Exception, what: str) -> AmberError:
    """A boto/botocore exception -> the amber error it means."""
    if isinstance(exc, botocore.exceptions.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        message = err.get("Message") or code
        if code in _NOT_FOUND or status == 404:
            return ObjectNotFound(f"{what} does not exist")
        if code in _DENIED or status == 403:
            return PermissionDenied(f"s3: {what}: access denied ({message})")
        if code in _TRANSIENT or status >= 500 or status in (408, 429):
            return TransientStorageError(f"s3: {what}: {message}")
        return StorageError(f"s3: {what}: {code}: {message}")
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return PermissionDenied(
            "s3: no credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
        )
    if isinstance(exc, _TRANSIENT_EXC):
        return TransientStorageError(f"s3: {what}: {exc}")
    return StorageError(f"s3: {what}: {exc}")


class S3Backend:
    def __init__(
        self, endpoint: str, bucket: str, prefix: str, settings: S3Settings | None = None,
        *, connections: int = 5, location: str = "",
    ) -> None:  # fmt: skip
        self.settings = settings or S3Settings()
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.location = location or f"s3:{endpoint or 's3.amazonaws.com'}/{bucket}/{self.prefix}".rstrip("/")
        region = self.settings.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        lookup = self.settings.bucket_lookup
        config = botocore.config.Config(
            max_pool_connections=max(1, connections),
            retries={"max_attempts": 1, "mode": "standard"},  # RetryingBackend retries, with a deadline
            connect_timeout=30, read_timeout=120,
            s3={"addressing_style": "virtual" if lookup == "dns" else lookup},
            request_checksum_calculation="when_required", response_checksum_validation="when_required",
        )  # fmt: skip
        try:
            with _session_lock:  # creating clients from one session is not thread-safe
                self._s3: Any = _shared_session().create_client(
                    "s3",
                    region_name=region or "us-east-1",
                    endpoint_url=endpoint or None,
                    aws_access_key_id=self.settings.access_key,
                    aws_secret_access_key=self.settings.secret_key,
                    config=config,
                )
        except botocore.exceptions.BotoCoreError as exc:
            raise StorageError(f"s3: cannot set up a client: {exc}") from exc
        self._locking: bool | None = None  # does the bucket have Object Lock? asked once

    def _key(self, handle: Handle) -> str:
        path = object_path(handle)
        return f"{self.prefix}/{path}" if self.prefix else path

    def _call(self, what: str, fn: Any, /, **kwargs: Any) -> Any:
        try:
            return fn(Bucket=self.bucket, **kwargs)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise _convert(exc, what) from exc

    def bucket_has_object_lock(self) -> bool:
        if self._locking is None:
            try:
                conf = self._call("object lock configuration", self._s3.get_object_lock_configuration)
                state = conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
                self._locking = state == "Enabled"
            except (ObjectNotFound, StorageError):
                self._locking = False
        return self._locking

    # -- Backend ----------------------------------------------------------------------
    def create(self) -> None:
        try:
            self._call("bucket", self._s3.head_bucket)
            return
        except ObjectNotFound:
            pass
        kwargs: dict[str, Any] = {}
        region = self._s3.meta.region_name
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        if self.settings.lock_mode:
            kwargs["ObjectLockEnabledForBucket"] = True
        self._call(f"create bucket {self.bucket}", self._s3.create_bucket, **kwargs)

    def exists(self) -> bool:
        try:
            self._call("config", self._s3.head_object, Key=self._key(Handle(FileType.CONFIG)))
        except ObjectNotFound:
            return False
        return True

    def save(self, handle: Handle, data: bytes | bytearray | memoryview) -> None:
        body = bytes(data)
        kwargs: dict[str, Any] = {
            "Key": self._key(handle),
            "Body": body,
            "ContentMD5": base64.b64encode(hashlib.md5(body).digest()).decode(),  # checked by the server
        }
        if self.settings.lock_mode and handle.type is not FileType.LOCK:
            kwargs["ObjectLockMode"] = self.settings.lock_mode
            kwargs["ObjectLockRetainUntilDate"] = _now() + dt.timedelta(days=self.settings.lock_days)
        if self.settings.storage_class and handle.type is FileType.PACK:
            kwargs["StorageClass"] = self.settings.storage_class
        self._call(describe(handle), self._s3.put_object, **kwargs)

    def load(
        self, handle: Handle, offset: int = 0, length: int | None = None, *, limit: int | None = None
    ) -> bytes:
        what = describe(handle)
        key = self._key(handle)
        if limit is not None:  # one byte more than allowed tells an object over the limit
            length = limit + 1 if length is None else min(length, limit + 1)
        if length == 0:
            self._call(what, self._s3.head_object, Key=key)
            return b""
        kwargs: dict[str, Any] = {"Key": key}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            kwargs["Range"] = f"bytes={offset}-{end}"
        try:
            resp = self._call(what, self._s3.get_object, **kwargs)
        except StorageError as exc:
            if "InvalidRange" not in exc.message:
                raise
            self._call(what, self._s3.head_object, Key=key)  # past the end of an existing object
            return b""
        try:
            body: bytes = resp["Body"].read()  # botocore raises IncompleteReadError on a short body
        except (botocore.exceptions.BotoCoreError, OSError) as exc:
            raise _convert(exc, what) from exc
        if len(body) != resp.get("ContentLength", len(body)):
            raise TransientStorageError(f"s3: {what}: truncated read")
        if limit is not None and len(body) > limit:
            raise too_large(handle, limit, _total_size(resp.get("ContentRange")))
        return body

    def stat(self, handle: Handle) -> FileInfo:
        resp = self._call(describe(handle), self._s3.head_object, Key=self._key(handle))
        return FileInfo(handle.name, int(resp["ContentLength"]))

    def list(self, type: FileType) -> Iterator[FileInfo]:
        if type is FileType.CONFIG:
            yield from list_config(self)
            return
        base = f"{self.prefix}/{type.value}/" if self.prefix else f"{type.value}/"
        kwargs: dict[str, Any] = {"Prefix": base}
        if type is not FileType.PACK:
            kwargs["Delimiter"] = "/"
        paginator = self._s3.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, **kwargs):
                for obj in page.get("Contents", []):
                    rel = obj["Key"][len(base) :]
                    name = rel.rpartition("/")[2]
                    if type is FileType.PACK and rel != f"{name[:2]}/{name}":
                        continue
                    if name and not name.startswith((".", TMP_PREFIX)):
                        yield FileInfo(name, int(obj["Size"]))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            err = _convert(exc, f"list {type.value}")
            if isinstance(err, ObjectNotFound):  # no bucket yet
                return
            raise err from exc

    def remove(self, handle: Handle) -> None:
        what = describe(handle)
        key = self._key(handle)
        self._call(what, self._s3.head_object, Key=key)  # S3 deletes silently; we report a missing object
        if handle.type is FileType.LOCK or not self.bucket_has_object_lock():
            self._call(what, self._s3.delete_object, Key=key)
            return
        versions = self._call(what, self._s3.list_object_versions, Prefix=key)
        for v in [*versions.get("Versions", []), *versions.get("DeleteMarkers", [])]:
            if v["Key"] != key:
                continue
            try:
                self._call(what, self._s3.delete_object, Key=key, VersionId=v["VersionId"])
            except PermissionDenied as exc:
                raise PermissionDenied(
                    f"s3: {what} is under Object Lock retention and cannot be deleted yet"
                ) from exc

    def close(self) -> None:
        self._s3.close()

    # -- Object Lock ------------------------------------------------------------------------
    def retention_days(self) -> int:
        """Days of retention new objects get (0: Object Lock not in use)."""
        return self.settings.lock_days if self.settings.lock_mode else 0

    def retention_until(self, handle: Handle) -> dt.datetime | None:
        resp = self._call(describe(handle), self._s3.head_object, Key=self._key(handle))
        until = resp.get("ObjectLockRetainUntilDate")
        return until if isinstance(until, dt.datetime) else None

    def extend_retention(self, handle: Handle, until: dt.datetime) -> bool:
        """Keep ``handle`` immutable at least until ``until``; False if it already was."""
        if not self.settings.lock_mode:
            raise UsageError("extending retention needs -o s3.lock-mode and -o s3.lock-days")
        current = self.retention_until(handle)
        if current is not None and current >= until:
            return False
        self._call(
            describe(handle), self._s3.put_object_retention, Key=self._key(handle),
            Retention={"Mode": self.settings.lock_mode, "RetainUntilDate": until},
        )  # fmt: skip
        return True


_session_lock = threading.Lock()
_session: Any = None


def _shared_session() -> Any:
    """One botocore session per process: it caches the service model (~0.3 s to load)."""
    global _session
    if _session is None:
        _session = botocore.session.get_session()
    return _session


def _total_size(content_range: object) -> int | None:
    """The object size from a ``Content-Range: bytes 0-99/12345`` answer."""
    total = str(content_range or "").rpartition("/")[2]
    return int(total) if total.isdigit() else None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
