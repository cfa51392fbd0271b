"""Immutable archive keys: upload once, same bytes again is a no-op, other bytes are refused, copies alike."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from deploy_fakes import ScriptedCalls, client_error, tiny_archive

from tritonmm.deploy.archives import (
    UNCHANGED,
    UPLOADED,
    Encryption,
    copy_archive,
    find_archives,
    sha256_of,
    upload_archives,
    verify_archive,
)
from tritonmm.deploy.calls import LocalFile
from tritonmm.deploy.errors import DeployError
from tritonmm.deploy.validation import S3Uri

PREFIX = S3Uri("models", "staging/")
NOT_FOUND = client_error("404", "Not Found", 404)


def test_folders_give_keys_relative_to_the_folder(tmp_path: Path) -> None:
    archive = tiny_archive(tmp_path)
    nested = tmp_path / "store" / "company_a"
    nested.mkdir()
    shutil.copy(archive, nested / "tiny_2.tar.gz")
    found = find_archives([tmp_path / "store"])
    assert [a.key for a in found] == ["company_a/tiny_2.tar.gz", "tiny_1.tar.gz"]
    assert found[1].sha256 == sha256_of(archive)
    with pytest.raises(DeployError, match="two archives would be uploaded as 'tiny_1.tar.gz'"):
        find_archives([archive, tmp_path / "store"])
    with pytest.raises(DeployError, match="not a .tar.gz archive"):
        find_archives([tmp_path / "repo" / "tiny" / "config.pbtxt"])


def test_broken_archives_are_refused_before_any_upload(tmp_path: Path) -> None:
    good = tiny_archive(tmp_path)
    bad = tmp_path / "store" / "broken_1.tar.gz"
    bad.write_bytes(b"not gzip")
    calls = ScriptedCalls(script={("s3", "head_object"): NOT_FOUND})
    with pytest.raises(DeployError, match="broken_1.tar.gz"):
        upload_archives(calls, [good, bad], PREFIX, Encryption())
    assert calls.made == []
    verify_archive(good)


def test_upload_parameters_carry_hash_checksum_and_sse_kms(tmp_path: Path) -> None:
    archive = tiny_archive(tmp_path)
    calls = ScriptedCalls(script={("s3", "head_object"): NOT_FOUND})
    assert upload_archives(calls, [archive], PREFIX, Encryption("alias/models")) == {"tiny_1.tar.gz": UPLOADED}
    put = calls.made[-1]
    assert put.operation == "put_object"
    assert put.params["Key"] == "staging/tiny_1.tar.gz" and put.params["IfNoneMatch"] == "*"
    assert put.params["Metadata"] == {"sha256": sha256_of(archive)}
    assert put.params["ServerSideEncryption"] == "aws:kms" and put.params["SSEKMSKeyId"] == "alias/models"
    assert put.params["Body"] == LocalFile(archive)


def test_same_bytes_again_is_a_no_op_other_bytes_an_error(tmp_path: Path) -> None:
    archive = tiny_archive(tmp_path)
    stored = {("s3", "head_object"): {"Metadata": {"sha256": sha256_of(archive)}}}
    calls = ScriptedCalls(script=stored)
    assert upload_archives(calls, [archive], PREFIX, Encryption()) == {"tiny_1.tar.gz": UNCHANGED}
    assert calls.operations(writes_only=True) == []
    other = tiny_archive(tmp_path / "other", text="changed")
    with pytest.raises(DeployError, match="s3://models/staging/tiny_1.tar.gz already exists with different content"):
        upload_archives(ScriptedCalls(script=stored), [other], PREFIX, Encryption())
    unknown = {("s3", "head_object"): {"Metadata": {}}}
    with pytest.raises(DeployError, match="no sha256 metadata"):
        upload_archives(ScriptedCalls(script=unknown), [archive], PREFIX, Encryption())


def test_a_concurrent_writer_is_reported(tmp_path: Path) -> None:
    calls = ScriptedCalls(script={("s3", "head_object"): NOT_FOUND,
                                  ("s3", "put_object"): client_error("PreconditionFailed", "", 412)})
    with pytest.raises(DeployError, match="created by someone else"):
        upload_archives(calls, [tiny_archive(tmp_path)], PREFIX, Encryption())


def test_copy_keeps_the_hash_and_the_rule() -> None:
    source, target = S3Uri("models", "staging/a_1.tar.gz"), S3Uri("models", "prod/a_1.tar.gz")
    heads = {"staging/a_1.tar.gz": {"Metadata": {"sha256": "ab" * 32}}}
    calls = ScriptedCalls(script={("s3", "head_object"): lambda p: heads.get(p["Key"], NOT_FOUND)})
    assert copy_archive(calls, source, target, Encryption()) == UPLOADED
    copy = calls.made[-1]
    assert copy.params == {"Bucket": "models", "Key": "prod/a_1.tar.gz", "IfNoneMatch": "*",
                           "CopySource": {"Bucket": "models", "Key": "staging/a_1.tar.gz"}, "MetadataDirective": "COPY"}
    heads["prod/a_1.tar.gz"] = heads["staging/a_1.tar.gz"]
    assert copy_archive(calls, source, target, Encryption()) == UNCHANGED
    heads["prod/a_1.tar.gz"] = {"Metadata": {"sha256": "cd" * 32}}
    with pytest.raises(DeployError, match="s3://models/prod/a_1.tar.gz already exists with different content"):
        copy_archive(calls, source, target, Encryption())
    with pytest.raises(DeployError, match="s3://models/staging/b_1.tar.gz does not exist"):
        copy_archive(calls, S3Uri("models", "staging/b_1.tar.gz"), target, Encryption())
