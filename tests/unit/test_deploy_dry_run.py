"""``--dry-run``: every command prints each AWS call with its arguments and makes none (no client, no credentials)."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from deploy_fakes import tiny_archive
from typer.testing import CliRunner

from tritonmm.cli import app
from tritonmm.deploy.calls import AwsCalls, Call, LocalFile
from tritonmm.deploy.golden import ExpectedOutput, GoldenCheck, write_golden

SECRET = "wJalrXUtnFEMI-not-a-real-secret"
ROLE = "arn:aws:iam::123456789012:role/sm"


@pytest.fixture(autouse=True)
def no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any boto3 session (so any client, any call) fails the test; credentials exist only to prove they never print."""
    def refuse(*args, **kwargs):
        raise AssertionError("a dry run created a boto3 session")

    monkeypatch.setattr(boto3, "Session", refuse)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIADRYRUNEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")


def dry_run(*args: str) -> list[dict]:
    result = CliRunner().invoke(app, ["deploy", *args, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output and "AKIADRYRUNEXAMPLE" not in result.output
    assert "none made" in result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if not line.startswith("#")]


def operations(printed: list[dict]) -> list[tuple[str, str]]:
    return [(call["service"], call["operation"]) for call in printed]


def test_upload(tmp_path: Path) -> None:
    archive = tiny_archive(tmp_path)
    printed = dry_run("upload", str(archive), "--to", "s3://models/staging", "--kms-key-id", "alias/models")
    assert operations(printed) == [("s3", "head_object"), ("s3", "put_object")]
    put = printed[1]["params"]
    assert put["Key"] == "staging/tiny_1.tar.gz" and put["SSEKMSKeyId"] == "alias/models"
    assert put["Body"] == f"<file {archive} ({archive.stat().st_size} bytes)>"


def test_endpoint() -> None:
    printed = dry_run("endpoint", "--endpoint", "fraud-staging", "--model-data-url", "s3://models/staging/",
                      "--role-arn", ROLE, "--instance-type", "ml.g4dn.xlarge", "--instance-count", "2",
                      "--subnet", "subnet-1", "--security-group", "sg-1", "--kms-key-id", "alias/vol")
    assert operations(printed) == [("sagemaker", op) for op in (
        "describe_endpoint", "describe_model", "create_model", "describe_endpoint_config", "create_endpoint_config",
        "create_endpoint", "describe_endpoint")]
    model, config = printed[2]["params"], printed[4]["params"]
    assert model["PrimaryContainer"]["Image"] == \
        "763104351884.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-tritonserver:24.10-py3"
    assert model["PrimaryContainer"]["Mode"] == "MultiModel"
    assert model["VpcConfig"] == {"Subnets": ["subnet-1"], "SecurityGroupIds": ["sg-1"]}
    assert config["KmsKeyId"] == "alias/vol" and config["ProductionVariants"][0]["InitialInstanceCount"] == 2
    assert printed[5]["params"] == {"EndpointName": "fraud-staging", "EndpointConfigName": config["EndpointConfigName"]}


def test_endpoint_image_override_for_an_unknown_region() -> None:
    printed = dry_run("endpoint", "--endpoint", "e", "--model-data-url", "s3://models/p/", "--role-arn", ROLE,
                      "--instance-type", "ml.c5.xlarge", "--region", "xx-test-1", "--image-uri", "my/image:1")
    assert printed[2]["params"]["PrimaryContainer"]["Image"] == "my/image:1"


def test_autoscale(tmp_path: Path) -> None:
    capacity = tmp_path / "capacity.json"
    capacity.write_text(json.dumps({"invocations_per_instance_target": 900}))
    printed = dry_run("autoscale", "--endpoint", "fraud", "--min", "1", "--max", "3", "--recommendation", str(capacity))
    assert operations(printed) == [("application-autoscaling", "register_scalable_target"),
                                   ("application-autoscaling", "put_scaling_policy")]
    config = printed[1]["params"]["TargetTrackingScalingPolicyConfiguration"]
    assert config["TargetValue"] == 900.0
    overridden = dry_run("autoscale", "--endpoint", "fraud", "--min", "1", "--max", "3", "--recommendation",
                         str(capacity), "--target-value", "50")
    assert overridden[1]["params"]["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 50.0


def test_promote(tmp_path: Path) -> None:
    golden = write_golden([GoldenCheck("fraud_1.tar.gz", {"inputs": []}, (ExpectedOutput("label", ("FRAUD",)),))],
                          tmp_path / "golden.json")
    printed = dry_run("promote", "--endpoint", "staging", "--staging", "s3://models/staging/",
                      "--production", "s3://models/prod/", "--golden", str(golden))
    assert operations(printed) == [("sagemaker-runtime", "invoke_endpoint"), ("s3", "head_object"),
                                   ("s3", "head_object"), ("s3", "copy_object")]
    assert printed[0]["params"]["TargetModel"] == "fraud_1.tar.gz" and printed[0]["params"]["Body"] == "<14 bytes>"
    assert printed[3]["params"]["CopySource"] == {"Bucket": "models", "Key": "staging/fraud_1.tar.gz"}


def test_iam_policy(tmp_path: Path) -> None:
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({"tenants": [{"name": "a", "allow": ["company_a/*"], "api_keys_sha256": []}]}))
    printed = dry_run("iam-policy", "--endpoint", "fraud", "--auth", str(auth), "--account-id", "123456789012",
                      "--create")
    assert operations(printed) == [("iam", "get_policy"), ("iam", "create_policy")]
    document = json.loads(printed[1]["params"]["PolicyDocument"])
    assert document["Statement"][0]["Resource"] == "arn:aws:sagemaker:eu-west-1:123456789012:endpoint/fraud"


def test_teardown() -> None:
    printed = dry_run("teardown", "--endpoint", "fraud", "--delete-archives", "s3://models/staging/")
    assert operations(printed) == [
        ("sagemaker", "describe_endpoint"), ("application-autoscaling", "describe_scaling_policies"),
        ("application-autoscaling", "deregister_scalable_target"), ("sagemaker", "delete_endpoint"),
        ("s3", "list_objects_v2")]


def test_validation_errors_exit_2_before_any_call() -> None:
    result = CliRunner().invoke(app, ["deploy", "endpoint", "--endpoint", "bad_name", "--model-data-url",
                                      "s3://models/p/", "--role-arn", ROLE, "--instance-type", "ml.c5.xlarge",
                                      "--dry-run"])
    assert result.exit_code == 2 and "endpoint name 'bad_name' is not a valid SageMaker name" in result.stderr
    assert result.stdout == ""


def test_calls_render_bodies_without_content(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"secret-bytes")
    line = Call("s3", "put_object", {"Body": LocalFile(path), "Data": b"12345"}, writes=True).to_json()
    assert "secret-bytes" not in line and "<5 bytes>" in line and "(12 bytes)" in line
    lines: list[str] = []
    calls = AwsCalls(region="us-east-1", dry_run=True, log=lines.append)
    assert calls.write("sagemaker", "delete_model", ModelName="m") is None
    assert calls.read("sagemaker", "describe_model", ModelName="m") is None
    assert [json.loads(line)["operation"] for line in lines] == ["delete_model", "describe_model"]
