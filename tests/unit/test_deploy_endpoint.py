"""Model, endpoint config and endpoint: create, leave alone, update, and wait with clear errors."""

from __future__ import annotations

import pytest
from deploy_fakes import ScriptedCalls, in_turn, sagemaker_missing

from tritonmm.deploy.endpoint import (
    CREATED,
    UNCHANGED,
    UPDATED,
    ContainerSettings,
    DataCapture,
    EndpointSpec,
    Wait,
    config_request,
    deploy_endpoint,
    model_request,
    wait_in_service,
)
from tritonmm.deploy.errors import DeployError
from tritonmm.deploy.validation import S3Uri

IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/sagemaker-tritonserver:24.10-py3"
SPEC = EndpointSpec(endpoint_name="fraud", model_data_url=S3Uri("models", "prod/"),
                    role_arn="arn:aws:iam::123456789012:role/sm", image_uri=IMAGE, instance_type="ml.g4dn.xlarge")


class FakeClock:
    """Time moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def wait(self, timeout_s: float = 60.0) -> Wait:
        return Wait(timeout_s=timeout_s, poll_s=10.0, sleep=self.sleep, clock=lambda: self.now)


def endpoint_state(status: str, config: str = "fraud-old", reason: str | None = None) -> dict:
    state = {"EndpointStatus": status, "EndpointConfigName": config}
    return state if reason is None else {**state, "FailureReason": reason}


def test_model_request_is_a_triton_multi_model_container() -> None:
    spec = EndpointSpec(**{**SPEC.__dict__, "subnets": ("subnet-1",), "security_groups": ("sg-1",),
                           "container": ContainerSettings(thread_count=8, shm_default_bytes=1 << 24,
                                                          extra={"OMP_NUM_THREADS": "1"})})
    request = model_request(spec)
    assert request["ModelName"].startswith("fraud-")
    assert request["PrimaryContainer"] == {
        "Image": IMAGE, "Mode": "MultiModel", "ModelDataUrl": "s3://models/prod/",
        "Environment": {"SAGEMAKER_TRITON_LOG_VERBOSE": "0", "SAGEMAKER_TRITON_THREAD_COUNT": "8",
                        "SAGEMAKER_TRITON_SHM_DEFAULT_BYTE_SIZE": str(1 << 24), "OMP_NUM_THREADS": "1"}}
    assert request["VpcConfig"] == {"Subnets": ["subnet-1"], "SecurityGroupIds": ["sg-1"]}
    assert "SAGEMAKER_TRITON_DEFAULT_MODEL_NAME" not in request["PrimaryContainer"]["Environment"]


def test_config_request_kms_and_data_capture() -> None:
    plain = config_request(SPEC, "m")
    assert "KmsKeyId" not in plain and "DataCaptureConfig" not in plain
    spec = EndpointSpec(**{**SPEC.__dict__, "kms_key_id": "alias/k", "instance_count": 2,
                           "data_capture": DataCapture(S3Uri("cap", "fraud/"), 20)})
    request = config_request(spec, "m")
    assert request["KmsKeyId"] == "alias/k"
    assert request["ProductionVariants"][0] == {"VariantName": "AllTraffic", "ModelName": "m",
                                                "InstanceType": "ml.g4dn.xlarge", "InitialInstanceCount": 2,
                                                "InitialVariantWeight": 1.0}
    assert request["DataCaptureConfig"]["DestinationS3Uri"] == "s3://cap/fraud/"
    assert request["DataCaptureConfig"]["InitialSamplingPercentage"] == 20
    assert request["EndpointConfigName"] != plain["EndpointConfigName"]
    with pytest.raises(DeployError, match="1-100"):
        DataCapture(S3Uri("cap", ""), 0).config()


def test_first_deployment_creates_and_waits() -> None:
    clock = FakeClock()
    calls = ScriptedCalls(script={
        ("sagemaker", "describe_model"): sagemaker_missing("model"),
        ("sagemaker", "describe_endpoint_config"): sagemaker_missing("endpoint configuration"),
        ("sagemaker", "describe_endpoint"): in_turn([sagemaker_missing(), endpoint_state("Creating"),
                                                     endpoint_state("InService")]),
    })
    result = deploy_endpoint(calls, SPEC, clock.wait())
    assert result.action == CREATED and result.status == "InService"
    assert calls.operations(writes_only=True) == ["create_model", "create_endpoint_config", "create_endpoint"]
    assert clock.now == 10.0


def test_same_settings_again_change_nothing() -> None:
    config = config_request(SPEC, model_request(SPEC)["ModelName"])["EndpointConfigName"]
    calls = ScriptedCalls(script={("sagemaker", "describe_endpoint"): endpoint_state("InService", config)})
    assert deploy_endpoint(calls, SPEC, FakeClock().wait()).action == UNCHANGED
    assert calls.operations(writes_only=True) == []


def test_new_settings_update_the_endpoint_then_retire_the_old_config_and_model() -> None:
    calls = ScriptedCalls(script={
        ("sagemaker", "describe_model"): sagemaker_missing("model"),
        ("sagemaker", "describe_endpoint_config"): lambda params: (
            {"ProductionVariants": [{"ModelName": "fraud-oldmodel"}]} if params["EndpointConfigName"] == "fraud-old"
            else sagemaker_missing("endpoint configuration")),
        ("sagemaker", "describe_endpoint"): in_turn([endpoint_state("InService"), endpoint_state("Updating"),
                                                     endpoint_state("InService")]),
    })
    assert deploy_endpoint(calls, SPEC, FakeClock().wait()).action == UPDATED
    writes = [(c.operation, c.params.get("EndpointConfigName") or c.params.get("ModelName"))
              for c in calls.made if c.writes]
    assert [op for op, _ in writes] == ["create_model", "create_endpoint_config", "update_endpoint",
                                        "delete_endpoint_config", "delete_model"]
    assert writes[3:] == [("delete_endpoint_config", "fraud-old"), ("delete_model", "fraud-oldmodel")]


@pytest.mark.parametrize("status", ["Creating", "Updating", "Failed"])
def test_busy_or_failed_endpoints_are_left_alone(status: str) -> None:
    calls = ScriptedCalls(script={("sagemaker", "describe_endpoint"): endpoint_state(status)})
    with pytest.raises(DeployError, match=f"endpoint 'fraud' is {status}"):
        deploy_endpoint(calls, SPEC, FakeClock().wait())
    assert calls.operations(writes_only=True) == []


def test_failed_creation_reports_the_failure_reason() -> None:
    calls = ScriptedCalls(script={("sagemaker", "describe_endpoint"): in_turn([
        endpoint_state("Creating"), endpoint_state("Failed", reason="Image not found")])})
    with pytest.raises(DeployError, match="endpoint 'fraud' failed: Image not found"):
        wait_in_service(calls, "fraud", FakeClock().wait())


def test_timeout_is_a_clear_error() -> None:
    clock = FakeClock()
    calls = ScriptedCalls(script={("sagemaker", "describe_endpoint"): endpoint_state("Creating")})
    with pytest.raises(DeployError, match="endpoint 'fraud' still Creating after 30 s"):
        wait_in_service(calls, "fraud", clock.wait(timeout_s=30))
    assert clock.now == 30.0
