"""``tritonmm deploy`` against moto's real server, with the golden checks run on the real local endpoint.

moto plays S3, SageMaker, Application Auto Scaling and IAM; its SageMaker Runtime only
returns canned data, so ``sagemaker-runtime`` is pointed at the project's multi-model
endpoint serving the staging prefix from moto's S3: the archives the deploy code uploaded
are the ones loaded, scored and checked.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from tritonmm.cli import app
from tritonmm.deploy.archives import UNCHANGED, UPLOADED, Encryption, sha256_of, upload_archives
from tritonmm.deploy.autoscaling import ScalingSpec, apply_autoscaling, read_recommendation
from tritonmm.deploy.calls import ALL_SERVICES, AwsCalls
from tritonmm.deploy.endpoint import CREATED, UNCHANGED as ENDPOINT_UNCHANGED, EndpointSpec, Wait, deploy_endpoint
from tritonmm.deploy.errors import DeployError
from tritonmm.deploy.fraud_golden import fraud_golden
from tritonmm.deploy.golden import ExpectedOutput, GoldenCheck, run_checks
from tritonmm.deploy.iam import CREATED as POLICY_CREATED, create_policies, read_tenants, tenant_policies
from tritonmm.deploy.images import triton_image_uri
from tritonmm.deploy.promote import promote
from tritonmm.deploy.teardown import teardown
from tritonmm.deploy.validation import S3Uri
from tritonmm.loadtest.capacity import Capacity, write_capacity
from tritonmm.loadtest.local_endpoint import RunningEndpoint, start_endpoint

from .mme_fixtures import build_store, expected_probability, write_auth
from .moto_fixtures import CREDENTIALS, REGION, aws_client, s3_url  # noqa: F401 - s3_url is a fixture

pytestmark = pytest.mark.integration

BUCKET, KMS_KEY = "deploy", "alias/tritonmm-models"
STAGING, PRODUCTION = S3Uri(BUCKET, "staging/"), S3Uri(BUCKET, "production/")
ROLE = "arn:aws:iam::123456789012:role/sagemaker-execution"
FAST = Wait(timeout_s=10, poll_s=0.05)


@pytest.fixture(scope="module", autouse=True)
def aws_environment() -> Iterator[None]:
    """moto's dummy credentials for boto3's default chain, as a user's environment would provide real ones."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in CREDENTIALS.items():
            patch.setenv(name, value)
        yield


def deploy_calls(url: str, runtime_url: str | None = None) -> AwsCalls:
    urls = {ALL_SERVICES: url, **({"sagemaker-runtime": runtime_url} if runtime_url else {})}
    return AwsCalls(region=REGION, endpoint_urls=urls, log=lambda line: None)


@pytest.fixture(scope="module")
def store(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_store(repository, tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def staged(s3_url: str, store: dict[str, Path]) -> dict[str, str]:
    """The whole store uploaded by the deploy code to the staging prefix, SSE-KMS."""
    aws_client(s3_url, "s3").create_bucket(Bucket=BUCKET)
    return upload_archives(deploy_calls(s3_url), [store["fraud_1.tar.gz"].parent], STAGING, Encryption(KMS_KEY))


@pytest.fixture(scope="module")
def local_endpoint(s3_url: str, staged: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEndpoint]:
    endpoint = start_endpoint(tmp_path_factory.mktemp("endpoint"), str(STAGING),
                              extra=(f"--s3-endpoint-url={s3_url}",), env=CREDENTIALS)
    try:
        yield endpoint
    finally:
        endpoint.stop()


def test_upload_is_encrypted_and_immutable(s3_url: str, staged: dict[str, str], store: dict[str, Path],
                                           tmp_path: Path) -> None:
    assert staged == {key: UPLOADED for key in store}
    s3 = aws_client(s3_url, "s3")
    head = s3.head_object(Bucket=BUCKET, Key="staging/company_a/fraud-a_1.tar.gz")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"].endswith(KMS_KEY.split("/")[-1])
    assert head["Metadata"]["sha256"] == sha256_of(store["company_a/fraud-a_1.tar.gz"])

    calls = deploy_calls(s3_url)
    assert upload_archives(calls, [store["fraud_1.tar.gz"]], STAGING, Encryption(KMS_KEY)) == {"fraud_1.tar.gz": UNCHANGED}
    assert [c.operation for c in calls.made] == ["head_object"]

    impostor = tmp_path / "fraud_1.tar.gz"
    impostor.write_bytes(store["fraud_2.tar.gz"].read_bytes())
    with pytest.raises(DeployError, match="s3://deploy/staging/fraud_1.tar.gz already exists with different content"):
        upload_archives(deploy_calls(s3_url), [impostor], STAGING, Encryption(KMS_KEY))
    assert s3.head_object(Bucket=BUCKET, Key="staging/fraud_1.tar.gz")["Metadata"]["sha256"] == \
        sha256_of(store["fraud_1.tar.gz"])


def test_uploaded_archives_are_what_the_local_endpoint_scores(local_endpoint: RunningEndpoint, repository: Path,
                                                              store: dict[str, Path]) -> None:
    """The default golden check (recomputed from the archive with Treelite) passes through boto3's runtime
    client, and agrees with XGBoost's own prediction from the exported repository."""
    check = fraud_golden(store["fraud_2.tar.gz"], "fraud_2.tar.gz")
    assert set(check.expected[1].data) == {"FRAUD", "NOT FRAUD"}
    frame = pd.DataFrame({tensor["name"]: tensor["data"] for tensor in check.body["inputs"]})
    np.testing.assert_allclose(check.expected[0].data, expected_probability(repository, frame), atol=1e-5)
    before = local_endpoint.metric("Invocations_total")
    assert run_checks(deploy_calls("http://unused.invalid", local_endpoint.url), "staging", [check]) == []
    assert local_endpoint.metric("Invocations_total") == before + 1


def test_iam_policies_are_created_once(s3_url: str, tmp_path: Path) -> None:
    tenants = read_tenants(write_auth(tmp_path / "auth.json"))
    policies = tenant_policies(tenants, region=REGION, account="123456789012", endpoint_name="fraud-prod",
                               prefix="tritonmm")
    calls = deploy_calls(s3_url)
    assert create_policies(calls, policies, "123456789012") == {name: POLICY_CREATED for name in policies}
    assert set(create_policies(deploy_calls(s3_url), policies, "123456789012").values()) == {"unchanged"}
    iam = aws_client(s3_url, "iam")
    arn = "arn:aws:iam::123456789012:policy/tritonmm-fraud-prod-tenant_a"
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
    statement = document["Statement"][0]
    assert statement["Action"] == "sagemaker:InvokeEndpoint"
    assert statement["Resource"] == "arn:aws:sagemaker:us-east-1:123456789012:endpoint/fraud-prod"
    assert statement["Condition"] == {"StringLike": {"sagemaker:TargetModel": ["company_a/*", "common/*"]}}


def test_dry_run_changes_nothing_in_the_account(s3_url: str, store: dict[str, Path]) -> None:
    result = CliRunner().invoke(app, [
        "deploy", "upload", str(store["fraud_1.tar.gz"]), "--to", "s3://dry-run-bucket/x/",
        "--endpoint-url", s3_url, "--dry-run"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, [
        "deploy", "endpoint", "--endpoint", "dry-run", "--model-data-url", "s3://dry-run-bucket/x/",
        "--role-arn", ROLE, "--instance-type", "ml.c5.xlarge", "--endpoint-url", s3_url, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "create_endpoint" in result.stdout
    buckets = [b["Name"] for b in aws_client(s3_url, "s3").list_buckets()["Buckets"]]
    assert "dry-run-bucket" not in buckets
    sagemaker = aws_client(s3_url, "sagemaker")
    assert sagemaker.list_endpoints(NameContains="dry-run")["Endpoints"] == []
    assert not [m for m in sagemaker.list_models()["Models"] if m["ModelName"].startswith("dry-run")]


def gone(call, **params) -> bool:
    try:
        call(**params)
    except ClientError:
        return True
    return False


def test_deploy_autoscale_promote_teardown(s3_url: str, staged: dict[str, str], local_endpoint: RunningEndpoint,
                                           store: dict[str, Path], tmp_path: Path) -> None:
    calls = deploy_calls(s3_url, local_endpoint.url)
    sagemaker = aws_client(s3_url, "sagemaker")
    spec = EndpointSpec(endpoint_name="fraud-staging", model_data_url=STAGING, role_arn=ROLE,
                        image_uri=triton_image_uri(REGION), instance_type="ml.g4dn.xlarge",
                        subnets=("subnet-0abc",), security_groups=("sg-0abc",), kms_key_id=KMS_KEY)

    result = deploy_endpoint(calls, spec, FAST)
    assert (result.action, result.status) == (CREATED, "InService")
    model = sagemaker.describe_model(ModelName=result.model_name)
    assert model["PrimaryContainer"]["Mode"] == "MultiModel"
    assert model["PrimaryContainer"]["ModelDataUrl"] == "s3://deploy/staging/"
    assert model["PrimaryContainer"]["Image"].endswith("/sagemaker-tritonserver:24.10-py3")
    assert model["VpcConfig"] == {"Subnets": ["subnet-0abc"], "SecurityGroupIds": ["sg-0abc"]}
    config = sagemaker.describe_endpoint_config(EndpointConfigName=result.config_name)
    assert config["KmsKeyId"] == KMS_KEY and config["ProductionVariants"][0]["ModelName"] == result.model_name
    assert deploy_endpoint(deploy_calls(s3_url), spec, FAST).action == ENDPOINT_UNCHANGED

    capacity = write_capacity(Capacity(100.0, 0.001, 0.5, 4, 30.0, 80.0, 900), tmp_path / "capacity.json")
    apply_autoscaling(calls, ScalingSpec("fraud-staging", "AllTraffic", 1, 3, read_recommendation(capacity)))
    autoscaling = aws_client(s3_url, "application-autoscaling")
    [policy] = autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert policy["ResourceId"] == "endpoint/fraud-staging/variant/AllTraffic"
    assert tracking["TargetValue"] == 900.0
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"

    good = fraud_golden(store["fraud_1.tar.gz"], "fraud_1.tar.gz")
    probability, label = good.expected
    wrong = GoldenCheck(good.target_model, good.body,
                        (ExpectedOutput("probability", (probability.data[0] + 0.25,) + probability.data[1:],
                                        probability.atol), label))
    with pytest.raises(DeployError, match=r"fraud_1.tar.gz: output 'probability'\[0\].*difference 0.25"):
        promote(calls, endpoint_name="fraud-staging", staging=STAGING, production=PRODUCTION, checks=[wrong],
                encryption=Encryption(KMS_KEY))
    s3 = aws_client(s3_url, "s3")
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix=PRODUCTION.key)["KeyCount"] == 0

    assert promote(calls, endpoint_name="fraud-staging", staging=STAGING, production=PRODUCTION, checks=[good],
                   encryption=Encryption(KMS_KEY)) == {"fraud_1.tar.gz": UPLOADED}
    promoted = s3.head_object(Bucket=BUCKET, Key="production/fraud_1.tar.gz")
    assert promoted["Metadata"]["sha256"] == sha256_of(store["fraud_1.tar.gz"])
    assert promoted["ServerSideEncryption"] == "aws:kms"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=PRODUCTION.key)["Contents"]] == \
        ["production/fraud_1.tar.gz"]
    assert promote(calls, endpoint_name="fraud-staging", staging=STAGING, production=PRODUCTION,
                   checks=[good]) == {"fraud_1.tar.gz": UNCHANGED}

    removed = teardown(calls, "fraud-staging", archive_prefixes=[STAGING, PRODUCTION])
    assert removed.config_name == result.config_name and len(removed.deleted_archives) == len(store) + 1
    assert gone(sagemaker.describe_endpoint, EndpointName="fraud-staging")
    assert gone(sagemaker.describe_endpoint_config, EndpointConfigName=result.config_name)
    assert gone(sagemaker.describe_model, ModelName=result.model_name)
    assert autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"] == []
    assert autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"] == []
    assert s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0
    assert teardown(deploy_calls(s3_url), "fraud-staging").endpoint_found is False
