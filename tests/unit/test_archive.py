"""Endpoint archives: packaging the fraud pipeline, reproducible bytes, and extraction that refuses hostile tarballs."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import shutil
import tarfile
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from tritonmm.export.archive import MANIFEST, namespaced, package_pipeline
from tritonmm.export.fraud import PIPELINE, POSTPROCESS, PREPROCESS, XGBOOST, export_fraud
from tritonmm.export.model_config import CONFIG_FILE, ModelConfig, read_config, write_config
from tritonmm.server.mme.archive_extract import ArchiveError, Manifest, safe_extract

MODELS = (PIPELINE, PREPROCESS, XGBOOST, POSTPROCESS)
VERSION = "v1"
XGBOOST_FILE = f"fraud__v1__{XGBOOST}/1/xgboost.json"
ABSOLUTE_TARGET = Path(tempfile.gettempdir()) / f"tritonmm-evil-{uuid.uuid4().hex}.txt"


def ns(model: str, version: str = VERSION) -> str:
    return namespaced(PIPELINE, version, model)


def members(archive: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive) as tar:
        return {m.name: m for m in tar}


def contents(archive: Path) -> dict[str, bytes]:
    """Every regular file's bytes, by member name."""
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isreg()}


def parse_config(text: bytes) -> ModelConfig:
    return text_format.Parse(text.decode(), model_config_pb2.ModelConfig())


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fraud")
    export_fraud(root / "repo", rows=20_000, seed=0, work_dir=root / "work")
    return root / "repo"


@pytest.fixture(scope="module")
def archive(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return package_pipeline(repository, PIPELINE, version=VERSION, out_dir=tmp_path_factory.mktemp("out"))


# --- packaging ---------------------------------------------------------------------------------------------


def test_archive_name_and_members(repository: Path, archive: Path) -> None:
    assert archive.name == "fraud_v1.tar.gz"
    expected = {MANIFEST, "model_version.txt"}
    for model in MODELS:
        expected |= {f"{ns(model)}/{p.relative_to(repository / model).as_posix()}" for p in (repository / model).rglob("*")}
        expected.add(ns(model))
    infos = members(archive)
    assert set(infos) == expected
    assert {XGBOOST_FILE, f"{ns(PIPELINE)}/1", f"{ns(PREPROCESS)}/1/features.py"} <= set(infos)
    assert list(infos) == sorted(infos, key=lambda n: n.split("/"))
    for info in infos.values():
        assert (info.mtime, info.uid, info.gid, info.uname, info.gname) == (0, 0, 0, "", "")
        assert info.mode == (0o755 if info.isdir() else 0o644)


def test_manifest(archive: Path) -> None:
    files = contents(archive)
    manifest = json.loads(files.pop(MANIFEST))
    assert manifest == {
        "format": 1,
        "name": PIPELINE,
        "version": VERSION,
        "default_model": ns(PIPELINE),
        "models": sorted(ns(m) for m in MODELS),
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
    }
    assert files["model_version.txt"] == b"v1\n"


def test_configs_use_namespaced_names(repository: Path, archive: Path) -> None:
    files = contents(archive)
    ensemble = parse_config(files[f"{ns(PIPELINE)}/{CONFIG_FILE}"])
    assert [s.model_name for s in ensemble.ensemble_scheduling.step] == [ns(PREPROCESS), ns(XGBOOST), ns(POSTPROCESS)]
    for model in MODELS:
        inside = parse_config(files[f"{ns(model)}/{CONFIG_FILE}"])
        assert inside.name == ns(model)
        source = read_config(repository / model)
        source.name = ns(model)
        for step in source.ensemble_scheduling.step:
            step.model_name = ns(step.model_name)
        assert inside == source, f"{model}: only the names may change"


def test_same_models_give_identical_bytes(repository: Path, archive: Path, tmp_path: Path) -> None:
    again = package_pipeline(repository, PIPELINE, version=VERSION, out_dir=tmp_path / "again")
    assert again.read_bytes() == archive.read_bytes()
    touched = tmp_path / "touched"
    shutil.copytree(repository, touched)
    for path in touched.rglob("*"):
        os.utime(path, (1_000_000_000, 1_000_000_000))
    copy = package_pipeline(touched, PIPELINE, version=VERSION, out_dir=tmp_path / "copy")
    assert copy.read_bytes() == archive.read_bytes()
    assert archive.read_bytes()[4:8] == b"\0\0\0\0", "gzip header mtime"


def test_two_versions_have_disjoint_model_names(repository: Path, archive: Path, tmp_path: Path) -> None:
    v2 = package_pipeline(repository, PIPELINE, version="v2", out_dir=tmp_path)
    assert v2.name == "fraud_v2.tar.gz"
    first = json.loads(contents(archive)[MANIFEST])["models"]
    second = json.loads(contents(v2)[MANIFEST])["models"]
    assert not set(first) & set(second)
    assert second == sorted(ns(m, "v2") for m in MODELS)


def test_executable_bit_kept_and_bytecode_left_out(repository: Path, tmp_path: Path) -> None:
    source = tmp_path / "repo"
    shutil.copytree(repository, source)
    version_dir = source / PREPROCESS / "1"
    (version_dir / "model.py").chmod(0o755)
    (version_dir / "__pycache__").mkdir()
    (version_dir / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"\0")
    (version_dir / "stray.pyc").write_bytes(b"\0")
    infos = members(package_pipeline(source, PIPELINE, version=VERSION, out_dir=tmp_path / "out"))
    assert infos[f"{ns(PREPROCESS)}/1/model.py"].mode == 0o755
    assert not [n for n in infos if "__pycache__" in n or n.endswith(".pyc")]


def test_single_model_is_packaged_alone_under_its_own_name(repository: Path, tmp_path: Path) -> None:
    archive = package_pipeline(repository, XGBOOST, version="3", out_dir=tmp_path, name="scorer")
    assert archive.name == "scorer_3.tar.gz"
    manifest = json.loads(contents(archive)[MANIFEST])
    assert manifest["models"] == ["scorer__3__fraud_xgboost"] and manifest["default_model"] == "scorer__3__fraud_xgboost"


def test_nested_ensembles_are_followed(repository: Path, tmp_path: Path) -> None:
    source = tmp_path / "repo"
    shutil.copytree(repository, source)
    outer = ModelConfig(name="outer", platform="ensemble")
    outer.ensemble_scheduling.step.add(model_name=PIPELINE)
    write_config(outer, source)
    archive = package_pipeline(source, "outer", version=VERSION, out_dir=tmp_path)
    files = contents(archive)
    assert json.loads(files[MANIFEST])["models"] == sorted(namespaced("outer", VERSION, m) for m in ("outer", *MODELS))
    step = parse_config(files[f"outer__v1__outer/{CONFIG_FILE}"]).ensemble_scheduling.step[0]
    assert step.model_name == "outer__v1__fraud"


def test_missing_model_is_named(repository: Path, tmp_path: Path) -> None:
    source = tmp_path / "repo"
    shutil.copytree(repository, source)
    shutil.rmtree(source / XGBOOST)
    with pytest.raises(ValueError, match=f"'{XGBOOST}' used by ensemble '{PIPELINE}'"):
        package_pipeline(source, PIPELINE, version=VERSION, out_dir=tmp_path / "out")
    assert not (tmp_path / "out" / "fraud_v1.tar.gz").exists()


@pytest.mark.parametrize(
    ("name", "version", "model", "match"),
    [
        ("fraud", "v1", "m", None),
        ("a__b", "v1", "m", "must not contain '__'"),
        ("fraud", "1__2", "m", "must not contain '__'"),
        ("../x", "v1", "m", "must match"),
        ("fraud", "", "m", "must match"),
        ("fraud", "v1", "a/b", "must match"),
        ("fraud", "v1", ".hidden", "must match"),
    ],
)
def test_namespaced_names(name: str, version: str, model: str, match: str | None) -> None:
    if match is None:
        assert namespaced(name, version, model) == f"{name}__{version}__{model}"
        return
    with pytest.raises(ValueError, match=match):
        namespaced(name, version, model)


# --- extraction --------------------------------------------------------------------------------------------


def test_extract_round_trip(archive: Path, tmp_path: Path) -> None:
    dest = tmp_path / "models" / "fraud-v1"
    manifest = safe_extract(archive, dest)
    assert manifest.default_model == ns(PIPELINE) and manifest.models == tuple(sorted(ns(m) for m in MODELS))
    assert manifest == Manifest.parse(contents(archive)[MANIFEST], "x")
    extracted = {p.relative_to(dest).as_posix(): p for p in dest.rglob("*")}
    assert set(extracted) == set(members(archive))
    for name, data in contents(archive).items():
        assert extracted[name].read_bytes() == data
        assert extracted[name].stat().st_mode & 0o777 == 0o644
    assert (dest / ns(PIPELINE) / "1").is_dir() and dest.stat().st_mode & 0o777 == 0o755
    assert [p.name for p in dest.parent.iterdir()] == ["fraud-v1"], "no temporary folder left"


def test_extract_refuses_an_existing_destination(archive: Path, tmp_path: Path) -> None:
    (tmp_path / "dest").mkdir()
    with pytest.raises(FileExistsError):
        safe_extract(archive, tmp_path / "dest")


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", linkname: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, linkname, len(data)
    info.devmajor, info.devminor = (1, 3) if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE) else (0, 0)
    return info, data


def ghost_model(manifest: bytes) -> bytes:
    """The manifest with one more model that the archive does not contain."""
    raw = json.loads(manifest)
    raw["models"].append("ghost")
    return json.dumps(raw).encode()


@dataclass(frozen=True)
class Tamper:
    """How to turn the good archive into a bad one: members put first, files rewritten or dropped, limits lowered."""

    first: tuple[tuple[tarfile.TarInfo, bytes], ...] = ()
    rewrite: dict[str, Callable[[bytes], bytes]] = field(default_factory=dict)
    drop: tuple[str, ...] = ()
    limits: dict[str, int] = field(default_factory=dict)


def rebuild(source: Path, target: Path, tamper: Tamper) -> Path:
    with tarfile.open(source) as src, tarfile.open(target, "w:gz", format=tarfile.GNU_FORMAT) as out:
        for info, data in tamper.first:
            out.addfile(info, io.BytesIO(data))
        for info in src:
            if info.name in tamper.drop:
                continue
            data = src.extractfile(info).read() if info.isreg() else b""
            if info.name in tamper.rewrite:
                data = tamper.rewrite[info.name](data)
                info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return target


def assert_refused(archive: Path, tmp_path: Path, match: str, **limits: int) -> None:
    """Extraction raises ``ArchiveError`` naming the archive, and leaves nothing anywhere."""
    parent = tmp_path / "models"
    parent.mkdir()
    with pytest.raises(ArchiveError, match=match) as caught:
        safe_extract(archive, parent / "dest", **limits)
    assert str(archive) in str(caught.value)
    assert list(parent.iterdir()) == []
    assert not (tmp_path / "evil.txt").exists() and not ABSOLUTE_TARGET.exists()


HOSTILE = {
    "traversal": (Tamper(first=(entry("../evil.txt", data=b"x"),)), r"'\.\./evil\.txt': '\.\.' in path"),
    "traversal_deeper": (Tamper(first=(entry("a/../../../evil.txt", data=b"x"),)), r"'\.\.' in path"),
    "absolute": (Tamper(first=(entry(str(ABSOLUTE_TARGET), data=b"x"),)), "absolute path"),
    "backslash": (Tamper(first=(entry("..\\..\\evil.txt", data=b"x"),)), "backslash"),
    "symlink_absolute": (
        Tamper(first=(entry("passwd", tarfile.SYMTYPE, linkname="/etc/passwd"),)),
        "'passwd': symbolic link -> /etc/passwd not allowed",
    ),
    "symlink_escape": (
        Tamper(first=(entry("link", tarfile.SYMTYPE, linkname="../.."), entry("link/evil.txt", data=b"x"))),
        r"'link': symbolic link -> \.\./\.\. not allowed",
    ),
    "hardlink": (Tamper(first=(entry("hard", tarfile.LNKTYPE, linkname="/etc/passwd"),)), "hard link -> /etc/passwd"),
    "character_device": (Tamper(first=(entry("null", tarfile.CHRTYPE),)), "'null': character device not allowed"),
    "block_device": (Tamper(first=(entry("disk", tarfile.BLKTYPE),)), "'disk': block device not allowed"),
    "fifo": (Tamper(first=(entry("pipe", tarfile.FIFOTYPE),)), "'pipe': fifo not allowed"),
    "duplicate": (Tamper(first=(entry("model_version.txt", data=b"v2\n"),)), "'model_version.txt': duplicate member"),
    "file_as_folder": (Tamper(first=(entry("model_version.txt/x", data=b"x"),)), "inside file 'model_version.txt'"),
    "too_many_files": (Tamper(limits={"max_files": 3}), "more than 3 members"),
    "oversized": (Tamper(limits={"max_bytes": 1000}), "declared sizes exceed 1000 bytes"),
    "checksum_mismatch": (
        Tamper(rewrite={XGBOOST_FILE: lambda data: data.replace(b"0", b"1", 1)}),
        f"'{XGBOOST_FILE}': checksum mismatch",
    ),
    "missing_manifest": (Tamper(drop=(MANIFEST,)), "missing manifest.json"),
    "unlisted_file": (
        Tamper(first=(entry("fraud__v1__fraud/1/extra.py", data=b"import os"),)),
        "'fraud__v1__fraud/1/extra.py': not listed in manifest.json",
    ),
    "listed_file_missing": (Tamper(drop=(XGBOOST_FILE,)), f"'{XGBOOST_FILE}': listed in but missing from manifest.json"),
    "model_without_folder": (Tamper(rewrite={MANIFEST: ghost_model}), "model 'ghost' has no top-level folder"),
}


@pytest.mark.parametrize(("tamper", "match"), HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_archive_is_refused_and_leaves_nothing(archive: Path, tmp_path: Path, tamper: Tamper, match: str) -> None:
    assert_refused(rebuild(archive, tmp_path / "bad.tar.gz", tamper), tmp_path, match, **tamper.limits)


def test_header_claiming_more_than_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    info, _ = entry("huge.bin")
    info.size = 2 << 30  # no data follows: only the header's word is needed to refuse it
    bad = tmp_path / "huge.tar.gz"
    bad.write_bytes(gzip.compress(info.tobuf(tarfile.GNU_FORMAT)))
    assert_refused(bad, tmp_path, "'huge.bin': declared sizes exceed")


def test_data_beyond_the_headers_sizes_is_cut_off(archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    declared = sum(m.size for m in members(archive).values())
    monkeypatch.setattr(tarfile.TarFile, "extractfile", lambda self, member: io.BytesIO(b"x" * (declared + 1)))
    assert_refused(archive, tmp_path, "data exceeds the byte limit", max_bytes=declared)


@pytest.mark.parametrize(
    "damage",
    [lambda data: b"this is not a tarball", lambda data: b"", lambda data: data[: len(data) // 2], gzip.decompress],
    ids=["garbage", "empty", "truncated", "uncompressed_tar"],
)
def test_unreadable_file_is_an_archive_error(archive: Path, tmp_path: Path, damage: Callable[[bytes], bytes]) -> None:
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(damage(archive.read_bytes()))
    assert_refused(bad, tmp_path, r"not a readable \.tar\.gz")


GOOD_MANIFEST = {"format": 1, "name": "p", "version": "1", "default_model": "p__1__m", "models": ["p__1__m"], "files": {}}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"format": 2}, "format 2 is not supported"),
        ({"format": True}, "'format' must be a int"),
        ({"name": None}, "'name' must be a str"),
        ({"version": "../1"}, "version '../1' is not a safe name"),
        ({"models": ["../etc"], "default_model": "../etc"}, "model name '../etc' is not a safe name"),
        ({"default_model": "other"}, "default_model 'other' is not one of the models"),
        ({"files": {"a": "ABC"}}, "'a' has no lowercase hex SHA-256"),
        ({"files": []}, "'files' must be a dict"),
    ],
)
def test_manifest_validation(change: dict, match: str) -> None:
    assert Manifest.parse(json.dumps(GOOD_MANIFEST).encode(), "a.tar.gz").default_model == "p__1__m"
    with pytest.raises(ArchiveError, match=match):
        Manifest.parse(json.dumps(GOOD_MANIFEST | change).encode(), "a.tar.gz")


@pytest.mark.parametrize(("data", "match"), [(b"{", "not valid JSON"), (b"\xff", "not valid JSON"), (b"[]", "JSON object")])
def test_manifest_must_be_a_json_object(data: bytes, match: str) -> None:
    with pytest.raises(ArchiveError, match=f"^a.tar.gz: manifest.json .*{match}"):
        Manifest.parse(data, "a.tar.gz")


def test_archive_error_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(ArchiveError("a.tar.gz", "bad")))
    assert (str(error), error.archive, error.reason) == ("a.tar.gz: bad", "a.tar.gz", "bad")
