"""The SageMaker model, endpoint config and endpoint of a Triton multi-model endpoint.

Models and endpoint configs cannot be changed once created, and an endpoint is moved to
new settings by pointing it at a new config. So the model and config names carry a hash
of their own settings (``<endpoint>-<8 hex>``): running the command again with the same
settings finds them and creates nothing; changed settings give new names, and the
endpoint is updated to them. After a successful update the previous config and model are
deleted, so the account holds only what the endpoint uses and teardown can find it all
from the endpoint.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .calls import AwsCalls, could_not_find
from .errors import DeployError
from .validation import (
    S3Uri,
    check_instance_type,
    check_kms_key,
    check_name,
    check_positive,
    check_role_arn,
)

DEFAULT_VARIANT = "AllTraffic"
CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"
_HASH_CHARS = 8
_BUSY = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting", "UpdateRollbackFailed")


@dataclass(frozen=True)
class ContainerSettings:
    """Environment of NVIDIA's SageMaker ``serve`` script (``docker/sagemaker/serve`` in triton-inference-server).

    Only settings given are passed, so the image's defaults apply otherwise — except the
    log level: the script defaults to ``--log-verbose=true``, which logs every request to
    CloudWatch (a cost and a flood), so 0 is sent unless asked otherwise.
    ``SAGEMAKER_TRITON_DEFAULT_MODEL_NAME`` is not set: the script reads it only for
    single-model endpoints; in multi-model mode the TargetModel picks the archive.
    """

    log_verbose: int = 0
    thread_count: int | None = None
    shm_default_bytes: int | None = None
    shm_growth_bytes: int | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        optional = {
            "SAGEMAKER_TRITON_THREAD_COUNT": self.thread_count,
            "SAGEMAKER_TRITON_SHM_DEFAULT_BYTE_SIZE": self.shm_default_bytes,
            "SAGEMAKER_TRITON_SHM_GROWTH_BYTE_SIZE": self.shm_growth_bytes,
        }
        env = {"SAGEMAKER_TRITON_LOG_VERBOSE": str(self.log_verbose)}
        env.update({name: str(value) for name, value in optional.items() if value is not None})
        return {**env, **self.extra}


@dataclass(frozen=True)
class DataCapture:
    """Request/response capture to S3, off unless given (it stores payloads: card data here)."""

    destination: S3Uri
    sampling_percentage: int = 100
    kms_key_id: str | None = None

    def config(self) -> dict[str, Any]:
        if not 0 < self.sampling_percentage <= 100:
            raise DeployError(f"data capture sampling must be 1-100 %, got {self.sampling_percentage}")
        config: dict[str, Any] = {
            "EnableCapture": True,
            "InitialSamplingPercentage": self.sampling_percentage,
            "DestinationS3Uri": str(self.destination),
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        }
        if self.kms_key_id:
            config["KmsKeyId"] = check_kms_key(self.kms_key_id)
        return config


@dataclass(frozen=True)
class EndpointSpec:
    """Everything ``deploy endpoint`` creates, validated by :meth:`check`."""

    endpoint_name: str
    model_data_url: S3Uri
    role_arn: str
    image_uri: str
    instance_type: str
    instance_count: int = 1
    variant_name: str = DEFAULT_VARIANT
    subnets: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    kms_key_id: str | None = None
    data_capture: DataCapture | None = None
    container: ContainerSettings = field(default_factory=ContainerSettings)

    def check(self) -> None:
        check_name("endpoint name", self.endpoint_name)
        check_name("variant name", self.variant_name)
        check_role_arn(self.role_arn)
        check_instance_type(self.instance_type)
        check_positive("instance count", self.instance_count)
        check_kms_key(self.kms_key_id)
        if bool(self.subnets) != bool(self.security_groups):
            raise DeployError("a VPC needs both --subnet and --security-group (or neither)")


@dataclass(frozen=True)
class Wait:
    """How long to wait for ``InService`` and how often to ask; clock and sleep are injectable for tests."""

    timeout_s: float = 1800.0
    poll_s: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


@dataclass(frozen=True)
class EndpointResult:
    model_name: str
    config_name: str
    action: str
    status: str | None


def derived_name(base: str, settings: Mapping[str, Any]) -> str:
    """``<base>-<hash of settings>``, cut to SageMaker's 63 characters (still a valid name: see the pattern)."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:_HASH_CHARS]
    return f"{base[:63 - _HASH_CHARS - 1]}-{digest}"


def model_request(spec: EndpointSpec) -> dict[str, Any]:
    """``create_model`` parameters: the Triton image in multi-model mode over the archive prefix."""
    request: dict[str, Any] = {
        "ExecutionRoleArn": spec.role_arn,
        "PrimaryContainer": {
            "Image": spec.image_uri,
            "Mode": "MultiModel",
            "ModelDataUrl": str(spec.model_data_url),
            "Environment": spec.container.environment(),
        },
    }
    if spec.subnets:
        request["VpcConfig"] = {"Subnets": list(spec.subnets), "SecurityGroupIds": list(spec.security_groups)}
    return {"ModelName": derived_name(spec.endpoint_name, request), **request}


def config_request(spec: EndpointSpec, model_name: str) -> dict[str, Any]:
    """``create_endpoint_config`` parameters: one variant on ``model_name``, optional KMS key and data capture."""
    request: dict[str, Any] = {
        "ProductionVariants": [{
            "VariantName": spec.variant_name,
            "ModelName": model_name,
            "InstanceType": spec.instance_type,
            "InitialInstanceCount": spec.instance_count,
            "InitialVariantWeight": 1.0,
        }],
    }
    if spec.kms_key_id:
        request["KmsKeyId"] = spec.kms_key_id
    if spec.data_capture is not None:
        request["DataCaptureConfig"] = spec.data_capture.config()
    return {"EndpointConfigName": derived_name(spec.endpoint_name, request), **request}


def describe_endpoint(calls: AwsCalls, name: str) -> dict | None:
    return calls.read("sagemaker", "describe_endpoint", missing=could_not_find, EndpointName=name)


def _create_if_missing(calls: AwsCalls, describe: str, create: str, request: dict[str, Any], name_key: str) -> None:
    if calls.read("sagemaker", describe, missing=could_not_find, **{name_key: request[name_key]}) is None:
        calls.write("sagemaker", create, **request)


def config_models(calls: AwsCalls, config_name: str) -> list[str]:
    """The models an endpoint config's variants use ([] if the config is gone, or in a dry run)."""
    config = calls.read("sagemaker", "describe_endpoint_config", missing=could_not_find,
                        EndpointConfigName=config_name)
    return [] if config is None else [variant["ModelName"] for variant in config["ProductionVariants"]]


def delete_config_and_models(calls: AwsCalls, config_name: str, *, keep: tuple[str, ...] = ()) -> None:
    """Delete an endpoint config and the models it uses (but ``keep``); either may already be gone."""
    models = config_models(calls, config_name)
    calls.write("sagemaker", "delete_endpoint_config", missing=could_not_find, EndpointConfigName=config_name)
    for model in models:
        if model not in keep:
            calls.write("sagemaker", "delete_model", missing=could_not_find, ModelName=model)


def wait_in_service(calls: AwsCalls, name: str, wait: Wait) -> str | None:
    """Poll ``describe_endpoint`` until ``InService``; :class:`DeployError` on ``Failed`` or after ``timeout_s``."""
    deadline = wait.clock() + wait.timeout_s
    while True:
        described = describe_endpoint(calls, name)
        if described is None:
            if calls.dry_run:
                return None
            raise DeployError(f"endpoint {name!r} disappeared while waiting for it")
        status = described["EndpointStatus"]
        if status == "InService":
            return status
        if status == "Failed":
            raise DeployError(f"endpoint {name!r} failed: {described.get('FailureReason', 'no reason given')}")
        if wait.clock() >= deadline:
            raise DeployError(f"endpoint {name!r} still {status} after {wait.timeout_s:g} s; it may still become "
                              "InService: check with `aws sagemaker describe-endpoint`, or tear it down")
        wait.sleep(wait.poll_s)


def deploy_endpoint(calls: AwsCalls, spec: EndpointSpec, wait: Wait) -> EndpointResult:
    """Create or update the endpoint to ``spec`` and wait until it is ``InService``."""
    spec.check()
    model = model_request(spec)
    config = config_request(spec, model["ModelName"])
    name, config_name = spec.endpoint_name, config["EndpointConfigName"]
    existing = describe_endpoint(calls, name)
    if existing is not None and existing["EndpointStatus"] in _BUSY + ("Failed",):
        raise DeployError(f"endpoint {name!r} is {existing['EndpointStatus']}; wait for it to settle "
                          "(a Failed endpoint must be torn down first)")
    _create_if_missing(calls, "describe_model", "create_model", model, "ModelName")
    _create_if_missing(calls, "describe_endpoint_config", "create_endpoint_config", config, "EndpointConfigName")
    if existing is None:
        calls.write("sagemaker", "create_endpoint", EndpointName=name, EndpointConfigName=config_name)
        action = CREATED
    elif existing["EndpointConfigName"] == config_name:
        action = UNCHANGED
    else:
        calls.write("sagemaker", "update_endpoint", EndpointName=name, EndpointConfigName=config_name)
        action = UPDATED
    status = wait_in_service(calls, name, wait)
    if action == UPDATED:
        delete_config_and_models(calls, existing["EndpointConfigName"], keep=(model["ModelName"],))
    return EndpointResult(model["ModelName"], config_name, action, status)
