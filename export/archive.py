"""Package a pipeline as one ``.tar.gz`` for a SageMaker-style multi-model endpoint.

A multi-model endpoint loads every archive it is asked for into the *same*
Triton, whose model names are global. Two archives that both contain a model
called ``fraud_xgboost`` (two versions of one pipeline, or two pipelines that
share a step name) would collide, so every model inside an archive is renamed
to ``<name>__<version>__<model>`` and the ensemble steps are rewired to those
names. The ``__`` separator is not allowed inside ``name`` or ``version``, so
the three parts can always be read back.

The archive is byte-reproducible (sorted entries, zeroed times and owners,
fixed modes, a gzip header without time or file name): packaging the same
models twice gives the same bytes, so the same archive has the same hash and
the same S3 ETag, and an upload of an unchanged pipeline is visibly a no-op.

``manifest.json`` at the root lists the models, the one to call
(``default_model``) and the SHA-256 of every other file, which the endpoint
checks before it lets Triton load anything.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
import stat
import tarfile
import tempfile
from pathlib import Path

from .model_config import CONFIG_FILE, read_config, to_text

FORMAT = 1
"""Version of the archive layout, checked by the endpoint."""
MANIFEST = "manifest.json"
VERSION_FILE = "model_version.txt"
SEPARATOR = "__"
_COMPONENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc")
"""Bytecode depends on the Python that ran the model, so it would break reproducibility."""


def _check_component(kind: str, value: str, *, separator_allowed: bool) -> None:
    if not _COMPONENT.fullmatch(value):
        raise ValueError(f"{kind} {value!r} must match {_COMPONENT.pattern}")
    if not separator_allowed and SEPARATOR in value:
        raise ValueError(f"{kind} {value!r} must not contain {SEPARATOR!r} (it separates name, version and model)")


def namespaced(name: str, version: str, model: str) -> str:
    """``<name>__<version>__<model>``: the model's Triton name, unique across archives."""
    _check_component("name", name, separator_allowed=False)
    _check_component("version", version, separator_allowed=False)
    _check_component("model", model, separator_allowed=True)
    return SEPARATOR.join((name, version, model))


def pipeline_models(repository: Path, pipeline: str) -> list[str]:
    """``pipeline`` and every model its ensemble steps use, through nested ensembles, sorted."""
    found: set[str] = set()
    pending: list[tuple[str, str | None]] = [(pipeline, None)]  # (model, the ensemble that uses it)
    while pending:
        model, used_by = pending.pop()
        if model in found:
            continue
        if not (repository / model / CONFIG_FILE).is_file():
            where = f"used by ensemble {used_by!r} " if used_by else ""
            raise ValueError(f"model {model!r} {where}has no {CONFIG_FILE} in {repository}")
        found.add(model)
        config = read_config(repository / model)
        if config.platform == "ensemble":
            pending.extend((step.model_name, model) for step in config.ensemble_scheduling.step)
    return sorted(found)


def _stage_model(source: Path, target: Path, names: dict[str, str]) -> None:
    """Copy a model folder to ``target`` and rewrite its config to the namespaced names."""
    shutil.copytree(source, target, ignore=_SKIPPED)
    config = read_config(target)
    config.name = names[source.name]
    for step in config.ensemble_scheduling.step:
        step.model_name = names[step.model_name]
    (target / CONFIG_FILE).write_text(to_text(config), encoding="utf-8")


def _entries(root: Path) -> list[Path]:
    """Everything under ``root``, directories included, in a stable order (parents before children)."""
    return sorted(root.rglob("*"), key=lambda p: p.relative_to(root).parts)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _manifest(staging: Path, *, name: str, version: str, default_model: str, models: list[str]) -> str:
    """``manifest.json`` text, hashing every file already in ``staging``."""
    files = {p.relative_to(staging).as_posix(): _sha256(p) for p in _entries(staging) if p.is_file()}
    manifest = {
        "format": FORMAT,
        "name": name,
        "version": version,
        "default_model": default_model,
        "models": models,
        "files": files,
    }
    return json.dumps(manifest, sort_keys=True, indent=1) + "\n"


def _tar_info(path: Path, arcname: str) -> tarfile.TarInfo:
    """A header that depends only on the entry's name, kind, size and executability."""
    info = tarfile.TarInfo(arcname)
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    if path.is_dir():
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    else:
        st = path.stat()
        info.size = st.st_size
        info.mode = 0o755 if st.st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH) else 0o644
    return info


def _write_tar_gz(staging: Path, archive: Path) -> None:
    """Write ``staging`` as a reproducible ``.tar.gz``; a partial file never sits under the final name."""
    partial = archive.with_name(archive.name + ".partial")
    try:
        with (
            partial.open("wb") as raw,
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as compressed,
            tarfile.open(fileobj=compressed, mode="w", format=tarfile.GNU_FORMAT) as tar,
        ):
            for path in _entries(staging):
                info = _tar_info(path, path.relative_to(staging).as_posix())
                if info.isdir():
                    tar.addfile(info)
                    continue
                with path.open("rb") as data:
                    tar.addfile(info, data)
        partial.replace(archive)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def package_pipeline(repository: Path, pipeline: str, *, version: str, out_dir: Path, name: str | None = None) -> Path:
    """Package ``pipeline`` (an ensemble or a single model) and what it uses; return ``<out_dir>/<name>_<version>.tar.gz``.

    ``name`` defaults to ``pipeline``; it and ``version`` become the prefix of every model's Triton name.
    """
    name = pipeline if name is None else name
    names = {model: namespaced(name, version, model) for model in pipeline_models(repository, pipeline)}
    out_dir.mkdir(parents=True, exist_ok=True)
    archive = out_dir / f"{name}_{version}.tar.gz"
    with tempfile.TemporaryDirectory(prefix="tritonmm-archive-") as tmp:
        staging = Path(tmp)
        for model, target in names.items():
            _stage_model(repository / model, staging / target, names)
        (staging / VERSION_FILE).write_text(version + "\n", encoding="utf-8")
        manifest = _manifest(
            staging, name=name, version=version, default_model=names[pipeline], models=sorted(names.values())
        )
        (staging / MANIFEST).write_text(manifest, encoding="utf-8")
        _write_tar_gz(staging, archive)
    return archive
