"""S3 landing through prefect-aws: list and fetch landing objects with an ``S3Bucket`` block.

When the landing root is ``s3://bucket/prefix``, the ingest flow hands bronze a :class:`S3BucketStorage`: a
:class:`lakehouse.storage.Storage` whose landing operations (list folders, list files, read a file) go through an
``S3Bucket`` block built from settings (``AwsCredentials`` with the endpoint in ``AwsClientParameters``). Everything
outside the landing root (staging, truth) keeps the base class's pyarrow filesystem. File fingerprints are the same
``size:mtime_ns`` the base class computes, so the bronze file ledger recognises a file whichever way it was listed.
"""

from __future__ import annotations

import calendar
import datetime as dt
from functools import cached_property

from lakehouse.settings import Settings
from lakehouse.storage import FileInfo, Storage


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> (``bucket``, ``a/b``)."""
    rest = uri[len("s3://"):] if uri.startswith("s3://") else uri
    bucket, _, key = rest.partition("/")
    return bucket, key.strip("/")


def _mtime_ns(value: dt.datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    value = value.astimezone(dt.timezone.utc)
    return calendar.timegm(value.timetuple()) * 1_000_000_000 + value.microsecond * 1_000


def landing_bucket_block(settings: Settings):
    """An ``S3Bucket`` block for the landing bucket, credentials and endpoint from settings."""
    from prefect_aws import AwsClientParameters, AwsCredentials
    from prefect_aws.s3 import S3Bucket

    bucket, _ = split_s3_uri(str(settings.landing_root))
    params = AwsClientParameters(endpoint_url=settings.s3_endpoint_url) if settings.s3_endpoint_url else AwsClientParameters()
    credentials = AwsCredentials(
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=settings.s3_secret_access_key.get_secret_value() if settings.s3_secret_access_key else None,
        region_name=settings.s3_region,
        aws_client_parameters=params,
    )
    return S3Bucket(bucket_name=bucket, credentials=credentials)


class S3BucketStorage(Storage):
    """Storage whose landing reads go through a prefect-aws ``S3Bucket`` block."""

    def __init__(self, settings: Settings, block=None) -> None:
        super().__init__(settings)
        self._block = block
        self.root = str(settings.landing_root).rstrip("/")
        self.bucket_name, self.root_key = split_s3_uri(self.root)

    @cached_property
    def block(self):
        """The ``S3Bucket`` block (built from settings unless one was given)."""
        return self._block if self._block is not None else landing_bucket_block(self.settings)

    @cached_property
    def _client(self):
        return self.block.credentials.get_s3_client()

    def _landing_key(self, uri: str) -> str | None:
        """The object key of a URI under the landing root, None for anything else."""
        if uri.rstrip("/") == self.root or uri.startswith(self.root + "/"):
            return split_s3_uri(uri)[1]
        return None

    def list_dirs(self, uri: str) -> list[str]:
        key = self._landing_key(uri)
        if key is None:
            return super().list_dirs(uri)
        prefix = f"{key}/" if key else ""
        names: set[str] = set()
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket_name, Prefix=prefix, Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                names.add(common["Prefix"][len(prefix):].strip("/"))
        return sorted(n for n in names if n)

    def list_files(self, uri: str, recursive: bool = False) -> list[FileInfo]:
        key = self._landing_key(uri)
        if key is None:
            return super().list_files(uri, recursive)
        prefix = f"{key}/" if key else ""
        out = []
        for obj in self.block.list_objects(folder=prefix):
            rel = obj["Key"][len(prefix):]
            if not rel or rel.endswith("/") or (not recursive and "/" in rel):
                continue
            if rel.rsplit("/", 1)[-1].startswith((".", "_")):
                continue
            out.append(FileInfo(f"s3://{self.bucket_name}/{obj['Key']}", int(obj.get("Size", 0)), _mtime_ns(obj["LastModified"])))
        return sorted(out, key=lambda f: f.uri)

    def is_dir(self, uri: str) -> bool:
        key = self._landing_key(uri)
        if key is None:
            return super().is_dir(uri)
        page = self._client.list_objects_v2(Bucket=self.bucket_name, Prefix=f"{key}/" if key else "", MaxKeys=1)
        return bool(page.get("KeyCount", len(page.get("Contents", []))))

    def exists(self, uri: str) -> bool:
        key = self._landing_key(uri)
        if key is None:
            return super().exists(uri)
        if self.is_dir(uri):
            return True
        try:
            self._client.head_object(Bucket=self.bucket_name, Key=key)
            return True
        except Exception as exc:  # noqa: BLE001 - botocore ClientError 404
            if getattr(exc, "response", {}).get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def read_bytes(self, uri: str) -> bytes:
        key = self._landing_key(uri)
        if key is None:
            return super().read_bytes(uri)
        return self.block.read_path(key)

    def open_input(self, uri: str):
        key = self._landing_key(uri)
        if key is None:
            return super().open_input(uri)
        import pyarrow as pa

        return pa.BufferReader(self.read_bytes(uri))


def landing_storage(settings: Settings) -> Storage:
    """The storage the ingest flow lists and fetches landing files with: the S3Bucket adapter on S3, else local."""
    if str(settings.landing_root).startswith("s3://"):
        return S3BucketStorage(settings)
    return Storage(settings)
