"""Archives in S3 under immutable keys: upload once, never overwrite, copy on promotion.

A multi-model endpoint caches an archive by its TargetModel key: once an instance has
loaded ``fraud_1.tar.gz`` it keeps serving those bytes, whatever is written to the key
later, while a newly started instance would load the new bytes. Overwriting a key
therefore makes one endpoint answer with two models depending on which instance a
request hits. So keys are immutable: writing the same bytes again is a no-op, writing
different bytes is an error naming the key (package a new version instead).

"The same bytes" is decided by the SHA-256 stored with the object as metadata
(``x-amz-meta-sha256``) — not by the ETag, which is not an MD5 under SSE-KMS or for
multipart uploads. ``tritonmm package`` writes byte-reproducible archives, so
re-packaging an unchanged pipeline gives the same hash and re-uploading it is a no-op.
The existence check and the write are not atomic, so the write also carries
``If-None-Match: *``: S3 refuses it if another writer created the key in between.
"""

from __future__ import annotations

import base64
import hashlib
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import ClientError

from tritonmm.server.mme.archive_extract import ArchiveError, Manifest, safe_extract

from .calls import AwsCalls, LocalFile, error_code_in
from .errors import DeployError
from .validation import S3Uri

SHA256_METADATA = "sha256"
ARCHIVE_SUFFIX = ".tar.gz"
UPLOADED, UNCHANGED = "uploaded", "unchanged"
_MISSING = error_code_in("404", "NoSuchKey", "NotFound")


@dataclass(frozen=True)
class Archive:
    """A local archive and its TargetModel key (its path relative to the store folder it was found in)."""

    path: Path
    key: str
    sha256: str


@dataclass(frozen=True)
class Encryption:
    """Server-side encryption of written objects: SSE-KMS with ``kms_key_id``, or the bucket's default."""

    kms_key_id: str | None = None

    def params(self) -> dict[str, str]:
        if self.kms_key_id is None:
            return {}
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id}


def sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@contextmanager
def extracted(path: Path) -> Iterator[tuple[Path, Manifest]]:
    """Unpack ``path`` into a temporary folder the way the endpoint does, checking every file against
    ``manifest.json``; yield the folder and the manifest. :class:`DeployError` if it is not a valid archive."""
    with tempfile.TemporaryDirectory(prefix="tritonmm-archive-") as tmp:
        root = Path(tmp) / "archive"
        try:
            manifest = safe_extract(path, root)
        except (ArchiveError, OSError) as exc:
            raise DeployError(f"not a valid archive: {exc}") from None
        yield root, manifest


def verify_archive(path: Path) -> None:
    """Check ``path`` as the endpoint will before it is uploaded.

    A broken archive would otherwise only show up at its first invocation on the endpoint,
    as a model load error, after the upload and the endpoint creation had succeeded.
    """
    with extracted(path):
        pass


def find_archives(paths: Sequence[Path]) -> list[Archive]:
    """Archives named by ``paths``: a file is one archive (key: its name); a folder gives every ``*.tar.gz``
    below it (keys: paths relative to the folder, as the local model store names TargetModels)."""
    found: dict[str, Archive] = {}
    for path in paths:
        if path.is_dir():
            pairs = [(p, p.relative_to(path).as_posix()) for p in sorted(path.rglob(f"*{ARCHIVE_SUFFIX}"))]
        elif path.is_file() and path.name.endswith(ARCHIVE_SUFFIX):
            pairs = [(path, path.name)]
        else:
            raise DeployError(f"{path}: not a {ARCHIVE_SUFFIX} archive or a folder of them")
        for file, key in pairs:
            if key in found:
                raise DeployError(f"two archives would be uploaded as {key!r}: {found[key].path} and {file}")
            found[key] = Archive(file, key, sha256_of(file))
    if not found:
        raise DeployError(f"no {ARCHIVE_SUFFIX} archive found in {', '.join(map(str, paths))}")
    return list(found.values())


def _existing_sha256(calls: AwsCalls, target: S3Uri) -> str | None:
    """``None`` if ``target`` does not exist; its stored SHA-256 otherwise ("" when it has none)."""
    head = calls.read("s3", "head_object", missing=_MISSING, Bucket=target.bucket, Key=target.key)
    return None if head is None else head.get("Metadata", {}).get(SHA256_METADATA, "")


def _is_unchanged(calls: AwsCalls, target: S3Uri, sha256: str | None) -> bool:
    """Whether ``target`` already holds ``sha256``; :class:`DeployError` if it holds anything else."""
    existing = _existing_sha256(calls, target)
    if existing is None:
        return False
    if sha256 is not None and existing == sha256:
        return True
    found = f"sha256 {existing}" if existing else "no sha256 metadata"
    raise DeployError(f"{target} already exists with different content ({found}, expected {sha256}); "
                      "keys are immutable: package a new version instead of overwriting")


def _create_once(calls: AwsCalls, target: S3Uri, operation: str, **params: object) -> None:
    """Write a new key; ``If-None-Match: *`` makes S3 refuse it if another writer created it meanwhile."""
    try:
        calls.write("s3", operation, Bucket=target.bucket, Key=target.key, IfNoneMatch="*", **params)
    except ClientError as error:
        if error_code_in("PreconditionFailed", "412")(error):
            raise DeployError(f"{target} was created by someone else during this upload; keys are immutable") from None
        raise


def upload_archive(calls: AwsCalls, archive: Archive, prefix: S3Uri, encryption: Encryption) -> str:
    """Put ``archive`` at ``prefix`` + its key unless it is already there; :data:`UPLOADED` or :data:`UNCHANGED`."""
    target = prefix.join(archive.key)
    if _is_unchanged(calls, target, archive.sha256):
        return UNCHANGED
    digest = base64.b64encode(bytes.fromhex(archive.sha256)).decode()
    _create_once(calls, target, "put_object", Body=LocalFile(archive.path), ContentType="application/gzip",
                 Metadata={SHA256_METADATA: archive.sha256}, ChecksumSHA256=digest, **encryption.params())
    return UPLOADED


def upload_archives(calls: AwsCalls, paths: Sequence[Path], prefix: S3Uri, encryption: Encryption) -> dict[str, str]:
    """Verify every archive first (nothing is uploaded if one is broken), then upload each; key -> outcome."""
    archives = find_archives(paths)
    for archive in archives:
        verify_archive(archive.path)
    return {archive.key: upload_archive(calls, archive, prefix, encryption) for archive in archives}


def copy_archive(calls: AwsCalls, source: S3Uri, target: S3Uri, encryption: Encryption) -> str:
    """Server-side copy ``source`` to ``target`` under the same immutable-key rule; metadata (the hash) goes along."""
    sha256 = _existing_sha256(calls, source)
    if sha256 is None and not calls.dry_run:
        raise DeployError(f"{source} does not exist")
    if _is_unchanged(calls, target, sha256 or None):
        return UNCHANGED
    _create_once(calls, target, "copy_object", CopySource={"Bucket": source.bucket, "Key": source.key},
                 MetadataDirective="COPY", **encryption.params())
    return UPLOADED


def archive_keys(calls: AwsCalls, prefix: S3Uri) -> list[str]:
    """Keys of the archives under ``prefix`` (empty in a dry run, which lists nothing)."""
    keys: list[str] = []
    params = {"Bucket": prefix.bucket, "Prefix": prefix.key}
    while True:
        page = calls.read("s3", "list_objects_v2", **params)
        if page is None:
            return keys
        keys += [item["Key"] for item in page.get("Contents", []) if item["Key"].endswith(ARCHIVE_SUFFIX)]
        if not page.get("IsTruncated"):
            return keys
        params["ContinuationToken"] = page["NextContinuationToken"]


def delete_archives(calls: AwsCalls, prefix: S3Uri) -> list[str]:
    """Delete every archive under ``prefix``; the keys deleted."""
    keys = archive_keys(calls, prefix)
    calls.note(f"then delete_object for each {ARCHIVE_SUFFIX} key that list_objects_v2 returns")
    for key in keys:
        calls.write("s3", "delete_object", Bucket=prefix.bucket, Key=key)
    return keys
