"""Deploy inputs refused before any AWS call, and the SageMaker Triton image of each region."""

from __future__ import annotations

import pytest

from tritonmm.deploy.endpoint import EndpointSpec, derived_name
from tritonmm.deploy.errors import DeployError
from tritonmm.deploy.images import REGISTRY_ACCOUNTS, triton_image_uri
from tritonmm.deploy.validation import (
    SAGEMAKER_NAME,
    S3Uri,
    check_capacity,
    check_instance_type,
    check_name,
    check_positive,
    check_role_arn,
)

ROLE = "arn:aws:iam::123456789012:role/service-role/SageMakerExecution"


def spec(**overrides) -> EndpointSpec:
    values = dict(endpoint_name="fraud-prod", model_data_url=S3Uri("models", "prod/"), role_arn=ROLE,
                  image_uri="img", instance_type="ml.g4dn.xlarge")
    return EndpointSpec(**{**values, **overrides})


@pytest.mark.parametrize(("region", "uri"), [
    ("us-east-1", "763104351884.dkr.ecr.us-east-1.amazonaws.com/sagemaker-tritonserver:24.10-py3"),
    ("eu-west-1", "763104351884.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-tritonserver:24.10-py3"),
    ("af-south-1", "626614931356.dkr.ecr.af-south-1.amazonaws.com/sagemaker-tritonserver:24.10-py3"),
    ("ap-east-1", "871362719292.dkr.ecr.ap-east-1.amazonaws.com/sagemaker-tritonserver:24.10-py3"),
    ("cn-north-1", "727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/sagemaker-tritonserver:24.10-py3"),
])
def test_image_uri_per_region(region: str, uri: str) -> None:
    assert triton_image_uri(region) == uri


def test_image_tag_and_unknown_region() -> None:
    assert triton_image_uri("us-west-2", "24.09-py3").endswith("/sagemaker-tritonserver:24.09-py3")
    with pytest.raises(DeployError, match=r"region 'mars-north-1'.*--image-uri"):
        triton_image_uri("mars-north-1")
    assert all(len(account) == 12 and account.isdigit() for account in REGISTRY_ACCOUNTS.values())


@pytest.mark.parametrize("name", ["a", "fraud-prod", "Fraud--Prod2", "x" * 63])
def test_valid_names(name: str) -> None:
    assert check_name("endpoint name", name) == name


@pytest.mark.parametrize("name", ["", "-fraud", "fraud-", "fraud_prod", "fraud.prod", "x" * 64])
def test_invalid_names_are_named_in_the_error(name: str) -> None:
    with pytest.raises(DeployError, match=f"endpoint name {name!r} is not a valid SageMaker name"):
        check_name("endpoint name", name)


def test_derived_names_stay_valid_and_depend_on_settings() -> None:
    long = "x" * 63
    name = derived_name(long, {"a": 1})
    assert len(name) == 63 and SAGEMAKER_NAME.match(name)
    assert derived_name("ep", {"a": 1}) == derived_name("ep", {"a": 1}) != derived_name("ep", {"a": 2})


def test_role_arn() -> None:
    assert check_role_arn(ROLE) == ROLE
    for bad in ("SageMakerExecution", "arn:aws:iam::123:role/x", "arn:aws:iam::123456789012:user/x"):
        with pytest.raises(DeployError, match="is not an IAM role ARN"):
            check_role_arn(bad)


def test_counts_capacities_and_instance_types() -> None:
    with pytest.raises(DeployError, match="instance count must be at least 1, got 0"):
        check_positive("instance count", 0)
    with pytest.raises(DeployError, match="minimum capacity 3 is above maximum capacity 2"):
        check_capacity(3, 2)
    with pytest.raises(DeployError, match="minimum capacity must be at least 1"):
        check_capacity(0, 2)
    check_capacity(2, 2)
    with pytest.raises(DeployError, match="'g4dn.xlarge' is not a SageMaker instance type"):
        check_instance_type("g4dn.xlarge")


def test_s3_uris() -> None:
    assert S3Uri.parse("s3://models/prod", prefix=True) == S3Uri("models", "prod/")
    assert str(S3Uri.parse("s3://models", prefix=True)) == "s3://models/"
    assert S3Uri.parse("s3://models/prod/", prefix=True).join("a/fraud_1.tar.gz") == S3Uri("models", "prod/a/fraud_1.tar.gz")
    for bad, message in [("models/prod", "not an S3 URI"), ("s3://Models/x", "not a valid S3 bucket"),
                         ("s3://models//x", "empty path segments")]:
        with pytest.raises(DeployError, match=message):
            S3Uri.parse(bad, prefix=True)
    with pytest.raises(DeployError, match="names a prefix, not an object"):
        S3Uri.parse("s3://models/prod/", prefix=False)


def test_endpoint_spec_checks_everything_up_front() -> None:
    spec().check()
    for overrides, message in [
        ({"endpoint_name": "fraud_prod"}, "endpoint name"),
        ({"variant_name": "all traffic"}, "variant name"),
        ({"role_arn": "role"}, "IAM role ARN"),
        ({"instance_count": 0}, "instance count"),
        ({"instance_type": "large"}, "instance type"),
        ({"subnets": ("subnet-1",)}, "both --subnet and --security-group"),
        ({"kms_key_id": "my key"}, "KMS key"),
    ]:
        with pytest.raises(DeployError, match=message):
            spec(**overrides).check()
