"""The load test's recommendation drives target tracking on SageMakerVariantInvocationsPerInstance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from deploy_fakes import ScriptedCalls

from tritonmm.deploy.autoscaling import ScalingSpec, apply_autoscaling, read_recommendation, remove_autoscaling
from tritonmm.deploy.errors import DeployError
from tritonmm.loadtest.capacity import Step, capacity, write_capacity


def test_reads_the_target_capacity_py_writes(tmp_path: Path) -> None:
    ramp = [Step(1, 100.0, 5, 10, 20, 0.0, 1000), Step(2, 180.0, 8, 40, 80, 0.0, 1800)]
    path = write_capacity(capacity(ramp, slo_p90_ms=50), tmp_path / "capacity.json")
    assert read_recommendation(path) == 180 * 60 * 0.5


@pytest.mark.parametrize(("content", "message"), [
    ({"invocations_per_instance_target": 0}, "no load step met the latency SLO"),
    ({"max_requests_per_s": 10}, "no numeric 'invocations_per_instance_target'"),
    ({"invocations_per_instance_target": True}, "no numeric"),
    ([1, 2], "no numeric"),
])
def test_unusable_recommendations(tmp_path: Path, content: object, message: str) -> None:
    path = tmp_path / "capacity.json"
    path.write_text(json.dumps(content))
    with pytest.raises(DeployError, match=message):
        read_recommendation(path)


def test_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(DeployError, match="cannot read the load-test recommendation"):
        read_recommendation(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DeployError, match="cannot read"):
        read_recommendation(tmp_path / "bad.json")


def test_policy_calls() -> None:
    calls = ScriptedCalls()
    apply_autoscaling(calls, ScalingSpec("fraud", "AllTraffic", 1, 4, 1200.0))
    register, policy = calls.made
    target = {"ServiceNamespace": "sagemaker", "ResourceId": "endpoint/fraud/variant/AllTraffic",
              "ScalableDimension": "sagemaker:variant:DesiredInstanceCount"}
    assert register.params == {**target, "MinCapacity": 1, "MaxCapacity": 4}
    assert policy.params == {**target, "PolicyName": "fraud-AllTraffic-invocations-per-instance",
                             "PolicyType": "TargetTrackingScaling",
                             "TargetTrackingScalingPolicyConfiguration": {
                                 "TargetValue": 1200.0,
                                 "PredefinedMetricSpecification": {
                                     "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
                                 "ScaleInCooldown": 300, "ScaleOutCooldown": 60}}


@pytest.mark.parametrize(("spec", "message"), [
    (ScalingSpec("fraud", "AllTraffic", 3, 2, 10.0), "above maximum"),
    (ScalingSpec("fraud", "AllTraffic", 1, 2, 0.0), "target value must be positive"),
    (ScalingSpec("fraud_x", "AllTraffic", 1, 2, 1.0), "endpoint name"),
    (ScalingSpec("fraud", "AllTraffic", 1, 2, 1.0, scale_in_cooldown_s=-1), "cooldowns"),
])
def test_bad_scaling_specs_make_no_call(spec: ScalingSpec, message: str) -> None:
    calls = ScriptedCalls()
    with pytest.raises(DeployError, match=message):
        apply_autoscaling(calls, spec)
    assert calls.made == []


def test_removal_deletes_the_policies_then_the_target() -> None:
    policies = {"ScalingPolicies": [{"PolicyName": "p1", "ResourceId": "endpoint/fraud/variant/AllTraffic"},
                                    {"PolicyName": "other", "ResourceId": "endpoint/fraud2/variant/AllTraffic"}]}
    calls = ScriptedCalls(script={("application-autoscaling", "describe_scaling_policies"): policies})
    remove_autoscaling(calls, "fraud", "AllTraffic")
    assert calls.operations(writes_only=True) == ["delete_scaling_policy", "deregister_scalable_target"]
    assert calls.made[1].params["PolicyName"] == "p1"
