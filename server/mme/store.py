"""Where model archives live: a local folder (the default) or S3 / any S3-compatible server.

A *target* is an archive's key relative to the store's root or prefix, e.g.
``fraud_2.tar.gz`` or ``tenant_a/fraud_2.tar.gz`` — exactly what SageMaker's
``TargetModel`` is relative to the endpoint's ``ModelDataUrl`` prefix. Targets
cross a trust boundary (a request header), so they are validated before any
path or key is built from them.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

TARGET_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.=-]*(/[A-Za-z0-9][A-Za-z0-9_.=-]*)*\.tar\.gz")
MAX_TARGET_LENGTH = 1024


class InvalidTarget(ValueError):
    """The target name is malformed or tries to leave the store."""


class TargetNotFound(LookupError):
    """No archive with that key in the store."""


def validate_target(target: str) -> str:
    """Return ``target`` if it is a safe relative archive key, else raise :class:`InvalidTarget`."""
    if len(target) > MAX_TARGET_LENGTH:
        raise InvalidTarget(f"TargetModel is longer than {MAX_TARGET_LENGTH} characters")
    if not TARGET_PATTERN.fullmatch(target) or any(part in (".", "..") or ".." in part for part in target.split("/")):
        raise InvalidTarget(
            f"TargetModel {target[:100]!r} is not a relative archive key like 'fraud_2.tar.gz' or 'tenant/fraud_2.tar.gz'"
        )
    return target


class ModelStore(Protocol):
    """The operations the endpoint needs from a store."""

    def list_targets(self) -> list[str]:
        """Every archive key, sorted."""

    def fetch(self, target: str, destination: Path) -> int:
        """Copy the archive to ``destination``; return its size. Raises :class:`TargetNotFound`."""

    def describe(self) -> str:
        """Where the store is, for logs."""


class LocalStore:
    """Archives in a folder tree; new files are visible at once (no restart)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def list_targets(self) -> list[str]:
        if not self.root.is_dir():
            return []
        keys = (p.relative_to(self.root).as_posix() for p in self.root.rglob("*.tar.gz") if p.is_file())
        return sorted(k for k in keys if TARGET_PATTERN.fullmatch(k))

    def fetch(self, target: str, destination: Path) -> int:
        source = self.root / validate_target(target)
        if not source.is_file():
            raise TargetNotFound(target)
        partial = destination.with_suffix(".part")
        shutil.copyfile(source, partial)
        partial.replace(destination)
        return destination.stat().st_size

    def describe(self) -> str:
        return str(self.root)


class S3Store:
    """Archives under ``s3://bucket/prefix/``; ``endpoint_url`` for MinIO, moto or other S3 APIs."""

    def __init__(self, bucket: str, prefix: str, *, endpoint_url: str | None = None, client: object | None = None) -> None:
        import boto3  # noqa: PLC0415 - only S3 stores need it

        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._client = client or boto3.client("s3", endpoint_url=endpoint_url)

    def list_targets(self) -> list[str]:
        keys = []
        for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            keys += [item["Key"][len(self.prefix):] for item in page.get("Contents", [])]
        return sorted(k for k in keys if TARGET_PATTERN.fullmatch(k))

    def fetch(self, target: str, destination: Path) -> int:
        from botocore.exceptions import ClientError  # noqa: PLC0415

        partial = destination.with_suffix(".part")
        try:
            self._client.download_file(self.bucket, self.prefix + validate_target(target), str(partial))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise TargetNotFound(target) from None
            raise
        partial.replace(destination)
        return destination.stat().st_size

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def open_store(location: str, *, endpoint_url: str | None = None) -> ModelStore:
    """``s3://bucket/prefix/`` or a local folder path."""
    if location.startswith("s3://"):
        parsed = urlparse(location)
        return S3Store(parsed.netloc, parsed.path, endpoint_url=endpoint_url)
    return LocalStore(Path(location))
