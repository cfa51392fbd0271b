"""Unpack a pipeline archive that an endpoint client uploaded, without trusting it.

The archive comes from whoever can write to the model bucket, and Triton will
run the Python code inside it, so nothing may land on disk before the whole
listing is checked: no links or devices (a symlink or hard link would let a
later member, or Triton itself, read or write outside the model folder), no
absolute or ``..`` names, bounded file count and size (a small ``.tar.gz`` can
expand to fill the disk). Data is copied by this module with a byte budget
rather than by ``tarfile.extractall``, so neither the sizes in the headers nor
the tar library's own link and permission handling are relied on.

Extraction is atomic: files go to a temporary folder beside the destination,
which is renamed into place only when every file matches ``manifest.json``
(written by ``tritonmm.export.archive``). A failed or interrupted extraction
leaves nothing behind, so a folder under its final name is always complete.

Standard library only: the endpoint must not depend on the export extras.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

FORMAT = 1
MANIFEST = "manifest.json"
CONFIG_FILE = "config.pbtxt"
_SAFE_COMPONENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20
_ALLOWED_TYPES = {tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE}
_REFUSED_TYPES = {
    tarfile.SYMTYPE: "symbolic link",
    tarfile.LNKTYPE: "hard link",
    tarfile.CHRTYPE: "character device",
    tarfile.BLKTYPE: "block device",
    tarfile.FIFOTYPE: "fifo",
}
_CORRUPT = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)
"""What a damaged or non-gzip file raises while it is read (never raised by writing to disk)."""


class ArchiveError(ValueError):
    """An archive that is malformed, unsafe or does not match its manifest; says which archive and why."""

    def __init__(self, archive: str, reason: str) -> None:
        super().__init__(f"{archive}: {reason}")
        self.archive = archive
        self.reason = reason

    def __reduce__(self) -> tuple[type[ArchiveError], tuple[str, str]]:
        """Rebuild from both parts, so the error survives being sent between processes."""
        return type(self), (self.archive, self.reason)


def _is_safe_component(value: object) -> bool:
    """A name usable as one folder name: no separators, no ``.``/``..``, no leading dot or dash."""
    return isinstance(value, str) and _SAFE_COMPONENT.fullmatch(value) is not None


def _require(raw: dict[str, Any], key: str, kind: type, archive: str) -> Any:
    value = raw.get(key)
    if type(value) is not kind:  # noqa: E721 - exact type: a JSON true must not pass as the integer 1
        raise ArchiveError(archive, f"{MANIFEST}: {key!r} must be a {kind.__name__}, got {value!r}")
    return value


def _require_name(raw: dict[str, Any], key: str, archive: str) -> str:
    value = _require(raw, key, str, archive)
    if not _is_safe_component(value):
        raise ArchiveError(archive, f"{MANIFEST}: {key} {value!r} is not a safe name")
    return value


@dataclass(frozen=True)
class Manifest:
    """``manifest.json``: the models in the archive, the one to call, and every file's SHA-256."""

    name: str
    version: str
    default_model: str
    models: tuple[str, ...]
    files: dict[str, str]

    @classmethod
    def parse(cls, data: bytes, archive: str) -> Manifest:
        """Validate and read ``manifest.json``; ``archive`` names the archive in errors."""
        try:
            raw = json.loads(data)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            raise ArchiveError(archive, f"{MANIFEST} is not valid JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise ArchiveError(archive, f"{MANIFEST} must hold a JSON object")
        if _require(raw, "format", int, archive) != FORMAT:
            raise ArchiveError(archive, f"{MANIFEST}: format {raw['format']} is not supported (expected {FORMAT})")
        models = _require(raw, "models", list, archive)
        unsafe = [m for m in models if not _is_safe_component(m)]
        if unsafe:
            raise ArchiveError(archive, f"{MANIFEST}: model name {unsafe[0]!r} is not a safe name")
        default_model = _require_name(raw, "default_model", archive)
        if default_model not in models:
            raise ArchiveError(archive, f"{MANIFEST}: default_model {default_model!r} is not one of the models")
        files = _require(raw, "files", dict, archive)
        bad = [k for k, v in files.items() if not (isinstance(v, str) and _SHA256.fullmatch(v))]
        if bad:
            raise ArchiveError(archive, f"{MANIFEST}: {bad[0]!r} has no lowercase hex SHA-256")
        return cls(
            name=_require_name(raw, "name", archive),
            version=_require_name(raw, "version", archive),
            default_model=default_model,
            models=tuple(models),
            files=dict(files),
        )


@dataclass(frozen=True)
class _Limits:
    max_bytes: int
    max_files: int


@contextmanager
def _reading(archive: str) -> Iterator[None]:
    """Report a damaged or non-gzip file as an ``ArchiveError`` instead of the tar/gzip library's error."""
    try:
        yield
    except _CORRUPT as exc:
        raise ArchiveError(archive, f"not a readable .tar.gz ({type(exc).__name__}: {exc})") from exc


def _member_path(member: tarfile.TarInfo, archive: str) -> PurePosixPath:
    """The member's path relative to the destination; refuses every kind and name that could leave it.

    With absolute names and every ``..`` component refused, no name can normalise to a place
    outside the destination, and since no links are ever created nothing inside can point out.
    """
    name = member.name
    if member.type not in _ALLOWED_TYPES:
        kind = _REFUSED_TYPES.get(member.type, f"member of type {member.type!r}")
        target = f" -> {member.linkname}" if member.issym() or member.islnk() else ""
        raise ArchiveError(archive, f"{name!r}: {kind}{target} not allowed (only regular files and directories)")
    if "\x00" in name or "\\" in name:
        raise ArchiveError(archive, f"{name!r}: NUL or backslash in name")
    if name.startswith("/"):
        raise ArchiveError(archive, f"{name!r}: absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(archive, f"{name!r}: '..' in path")
    if not parts and not member.isdir():
        raise ArchiveError(archive, f"{name!r}: empty file name")
    return PurePosixPath(*parts)


def _checked_members(tar: tarfile.TarFile, archive: str, limits: _Limits) -> list[tuple[PurePosixPath, tarfile.TarInfo]]:
    """Every member with its safe path, after checking the whole listing; nothing is written yet."""
    members: dict[PurePosixPath, tarfile.TarInfo] = {}
    declared = 0
    for member in tar:
        if len(members) >= limits.max_files:
            raise ArchiveError(archive, f"more than {limits.max_files} members")
        path = _member_path(member, archive)
        if path in members:
            raise ArchiveError(archive, f"{member.name!r}: duplicate member")
        declared += member.size if member.isreg() else 0
        if declared > limits.max_bytes:
            raise ArchiveError(archive, f"{member.name!r}: declared sizes exceed {limits.max_bytes} bytes")
        members[path] = member
    files = {path for path, member in members.items() if member.isreg()}
    for path in members:
        inside_file = next((p for p in path.parents if p in files), None)
        if inside_file is not None:
            raise ArchiveError(archive, f"{path.as_posix()!r}: inside file {inside_file.as_posix()!r}")
    if PurePosixPath(MANIFEST) not in files:
        raise ArchiveError(archive, f"missing {MANIFEST}")
    return list(members.items())  # archive order: reading data never seeks back through the gzip stream


def _make_dir(root: Path, path: PurePosixPath) -> None:
    """Create ``root/path`` and its missing parents, each with mode 0o755 whatever the umask."""
    for part in (*reversed(path.parents), path):
        folder = root / part
        if not folder.is_dir():
            folder.mkdir()
            folder.chmod(0o755)


def _copy_file(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path, budget: int, archive: str) -> tuple[str, int]:
    """Copy one member's data, stopping once more than ``budget`` bytes arrive; return (sha256, size)."""
    digest, size = hashlib.sha256(), 0
    source = tar.extractfile(member)
    assert source is not None  # a regular file always has data
    with source, target.open("xb") as out:
        while chunk := source.read(min(_CHUNK, budget - size + 1)):
            size += len(chunk)
            if size > budget:
                raise ArchiveError(archive, f"{member.name!r}: data exceeds the byte limit")
            digest.update(chunk)
            out.write(chunk)
    target.chmod(0o755 if member.mode & 0o111 else 0o644)
    return digest.hexdigest(), size


def _write_members(
    tar: tarfile.TarFile, members: list[tuple[PurePosixPath, tarfile.TarInfo]], root: Path, archive: str, limits: _Limits
) -> dict[str, str]:
    """Write the checked members under ``root``; return the SHA-256 of every file written."""
    digests: dict[str, str] = {}
    written = 0
    for path, member in members:
        if member.isdir():
            _make_dir(root, path)
            continue
        _make_dir(root, path.parent)
        digests[path.as_posix()], size = _copy_file(tar, member, root / path, limits.max_bytes - written, archive)
        written += size
    return digests


def _verify(manifest: Manifest, digests: dict[str, str], root: Path, archive: str) -> None:
    """The files are exactly those the manifest lists, with its checksums, and every model has a config."""
    listed = set(manifest.files)
    for name in sorted(listed ^ set(digests)):
        problem = "not listed in" if name in digests else "listed in but missing from"
        raise ArchiveError(archive, f"{name!r}: {problem} {MANIFEST}")
    for name in sorted(listed):
        if digests[name] != manifest.files[name]:
            raise ArchiveError(archive, f"{name!r}: checksum mismatch with {MANIFEST}")
    for model in manifest.models:
        if not (root / model / CONFIG_FILE).is_file():
            raise ArchiveError(archive, f"model {model!r} has no top-level folder with {CONFIG_FILE}")


def _extract_into(archive: Path, root: Path, limits: _Limits) -> Manifest:
    label = str(archive)
    with _reading(label), tarfile.open(archive, mode="r:gz") as tar:
        members = _checked_members(tar, label, limits)
        digests = _write_members(tar, members, root, label, limits)
    manifest = Manifest.parse((root / MANIFEST).read_bytes(), label)
    del digests[MANIFEST]
    _verify(manifest, digests, root, label)
    return manifest


def safe_extract(archive: Path, dest: Path, *, max_bytes: int = 1 << 30, max_files: int = 10_000) -> Manifest:
    """Extract ``archive`` (a ``.tar.gz`` from ``package_pipeline``) to ``dest``, all or nothing; return its manifest.

    ``dest`` must not exist. ``max_files`` bounds the members (files and folders), ``max_bytes``
    the data, both as declared in the headers and as actually read.
    Raises ``ArchiveError`` for anything wrong with the archive, ``FileExistsError`` if ``dest`` exists.
    """
    if dest.exists():
        raise FileExistsError(f"extraction target {dest} already exists")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        manifest = _extract_into(archive, staging, _Limits(max_bytes=max_bytes, max_files=max_files))
        staging.chmod(0o755)
        os.rename(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest
