"""Target-tracking autoscaling of an endpoint variant on ``SageMakerVariantInvocationsPerInstance``.

The target comes from the load test: ``tritonmm.loadtest.capacity`` writes ``capacity.json``
whose ``invocations_per_instance_target`` is already in the metric's unit (invocations per
instance per minute, at a safety factor of the measured capacity). ``--target-value``
overrides it, e.g. for an instance type other than the one measured.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import ClientError

from tritonmm.loadtest.capacity import Capacity

from .calls import AwsCalls
from .errors import DeployError
from .validation import check_capacity, check_name

NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
METRIC = "SageMakerVariantInvocationsPerInstance"
TARGET_KEY = "invocations_per_instance_target"
assert TARGET_KEY in Capacity.__dataclass_fields__, "capacity.json no longer has the target-tracking key"


def read_recommendation(path: Path) -> float:
    """The target-tracking value recommended by a load test's ``capacity.json``."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DeployError(f"{path}: cannot read the load-test recommendation: {exc}") from None
    value = document.get(TARGET_KEY) if isinstance(document, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DeployError(f"{path}: no numeric {TARGET_KEY!r} (write it with `python -m tritonmm.loadtest.capacity`)")
    if value <= 0:
        raise DeployError(f"{path}: {TARGET_KEY} is {value}: no load step met the latency SLO, so there is no "
                          "safe target; rerun the load test or pass --target-value")
    return float(value)


@dataclass(frozen=True)
class ScalingSpec:
    """One variant's scaling range and policy.

    Scale-out reacts after 60 s and scale-in waits 300 s by default: a new instance
    of a multi-model endpoint starts cold (every archive loads on first call), so
    removing capacity eagerly costs more latency than keeping it a few minutes.
    """

    endpoint_name: str
    variant_name: str
    min_capacity: int
    max_capacity: int
    target_value: float
    scale_in_cooldown_s: int = 300
    scale_out_cooldown_s: int = 60

    @property
    def resource_id(self) -> str:
        return resource_id(self.endpoint_name, self.variant_name)

    @property
    def policy_name(self) -> str:
        return f"{self.endpoint_name}-{self.variant_name}-invocations-per-instance"

    def check(self) -> None:
        check_name("endpoint name", self.endpoint_name)
        check_name("variant name", self.variant_name)
        check_capacity(self.min_capacity, self.max_capacity)
        if self.target_value <= 0:
            raise DeployError(f"target value must be positive, got {self.target_value:g}")
        if min(self.scale_in_cooldown_s, self.scale_out_cooldown_s) < 0:
            raise DeployError("cooldowns must not be negative")


def resource_id(endpoint_name: str, variant_name: str) -> str:
    return f"endpoint/{endpoint_name}/variant/{variant_name}"


def apply_autoscaling(calls: AwsCalls, spec: ScalingSpec) -> None:
    """Register the variant as a scalable target and put (create or replace) its target-tracking policy."""
    spec.check()
    target = {"ServiceNamespace": NAMESPACE, "ResourceId": spec.resource_id, "ScalableDimension": DIMENSION}
    calls.write("application-autoscaling", "register_scalable_target", **target,
                MinCapacity=spec.min_capacity, MaxCapacity=spec.max_capacity)
    calls.write("application-autoscaling", "put_scaling_policy", **target, PolicyName=spec.policy_name,
                PolicyType="TargetTrackingScaling", TargetTrackingScalingPolicyConfiguration={
                    "TargetValue": spec.target_value,
                    "PredefinedMetricSpecification": {"PredefinedMetricType": METRIC},
                    "ScaleInCooldown": spec.scale_in_cooldown_s,
                    "ScaleOutCooldown": spec.scale_out_cooldown_s,
                })


def _no_target(error: ClientError) -> bool:
    """Already deregistered: ``ObjectNotFoundException`` on AWS (moto says ``ValidationException``)."""
    details = error.response.get("Error", {})
    return details.get("Code") == "ObjectNotFoundException" or "No scalable target" in details.get("Message", "")


def remove_autoscaling(calls: AwsCalls, endpoint_name: str, variant_name: str) -> None:
    """Delete the variant's scaling policies and deregister it; AWS asks for this before deleting the endpoint."""
    target = {"ServiceNamespace": NAMESPACE, "ResourceId": resource_id(endpoint_name, variant_name),
              "ScalableDimension": DIMENSION}
    described = calls.read("application-autoscaling", "describe_scaling_policies", **target)
    for policy in (described or {}).get("ScalingPolicies", []):
        if policy["ResourceId"] == target["ResourceId"]:
            calls.write("application-autoscaling", "delete_scaling_policy", missing=_no_target, **target,
                        PolicyName=policy["PolicyName"])
    calls.write("application-autoscaling", "deregister_scalable_target", missing=_no_target, **target)
