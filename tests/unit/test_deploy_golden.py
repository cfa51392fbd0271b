"""Golden checks: comparisons that name the target, the output and the difference; promotion gated on them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from deploy_fakes import ScriptedCalls, client_error

from tritonmm.deploy.errors import DeployError
from tritonmm.deploy.golden import ExpectedOutput, GoldenCheck, compare, load_golden, run_checks, write_golden
from tritonmm.deploy.promote import promote
from tritonmm.deploy.validation import S3Uri

CHECK = GoldenCheck("fraud_1.tar.gz", {"inputs": []}, (
    ExpectedOutput("probability", (0.1, 0.9), 1e-4),
    ExpectedOutput("label", ("NOT FRAUD", "FRAUD")),
))
STAGING, PRODUCTION = S3Uri("models", "staging/"), S3Uri("models", "prod/")


def answer(probability: list[float], label: list[str]) -> bytes:
    return json.dumps({"outputs": [{"name": "probability", "data": probability},
                                   {"name": "label", "data": label}]}).encode()


def invoke_answering(body: bytes):
    return {("sagemaker-runtime", "invoke_endpoint"): lambda params: {"Body": io.BytesIO(body)},
            ("s3", "head_object"): lambda params: {"Metadata": {"sha256": "ab" * 32}}
            if params["Key"].startswith("staging/") else client_error("404", "", 404)}


def test_matching_answers_pass() -> None:
    assert compare(CHECK, answer([0.10004, 0.9], ["NOT FRAUD", "FRAUD"])) == []


def test_failures_name_target_output_and_difference() -> None:
    [failure] = compare(CHECK, answer([0.1, 0.95], ["NOT FRAUD", "FRAUD"]))
    assert failure.startswith("fraud_1.tar.gz: output 'probability'[1]: got 0.95, expected 0.9 (difference 0.05")
    [failure] = compare(CHECK, answer([0.1, 0.9], ["NOT FRAUD", "NOT FRAUD"]))
    assert failure == "fraud_1.tar.gz: output 'label'[1]: got 'NOT FRAUD', expected 'FRAUD'"
    assert compare(CHECK, answer([0.1], ["NOT FRAUD", "FRAUD"])) == [
        "fraud_1.tar.gz: output 'probability': 1 values, expected 2"]
    missing = json.dumps({"outputs": [{"name": "label", "data": ["NOT FRAUD", "FRAUD"]}]}).encode()
    assert compare(CHECK, missing) == ["fraud_1.tar.gz: output 'probability' missing (got ['label'])"]
    assert "not a KServe v2 JSON answer" in compare(CHECK, b'{"error": "boom"}')[0]
    assert "nan" in compare(CHECK, answer([0.1, float("nan")], ["NOT FRAUD", "FRAUD"]))[0]


def test_golden_files_round_trip_and_refuse_bad_shapes(tmp_path: Path) -> None:
    assert load_golden(write_golden([CHECK], tmp_path / "g.json")) == [CHECK]
    for content, message in [([], "non-empty JSON list"), ([{"target_model": "x"}], "needs 'target_model'"),
                             ([{"target_model": "x", "body": {}, "expected": []}], "non-empty list of outputs"),
                             ([{"target_model": "x", "body": {}, "expected": [{"data": []}]}], "needs 'name'")]:
        (tmp_path / "bad.json").write_text(json.dumps(content))
        with pytest.raises(DeployError, match=message):
            load_golden(tmp_path / "bad.json")


def test_invocation_errors_are_failures_not_crashes() -> None:
    calls = ScriptedCalls(script={("sagemaker-runtime", "invoke_endpoint"):
                                  client_error("ModelError", "Received server error (500)")})
    assert run_checks(calls, "staging", [CHECK]) == [
        "fraud_1.tar.gz: invocation failed: ModelError: Received server error (500)"]
    invoke = calls.made[0]
    assert invoke.params["TargetModel"] == "fraud_1.tar.gz" and invoke.params["EndpointName"] == "staging"


def test_a_failing_check_promotes_nothing() -> None:
    calls = ScriptedCalls(script=invoke_answering(answer([0.3, 0.9], ["NOT FRAUD", "FRAUD"])))
    with pytest.raises(DeployError, match=r"nothing was promoted:\n  fraud_1.tar.gz: output 'probability'\[0\]"):
        promote(calls, endpoint_name="staging", staging=STAGING, production=PRODUCTION, checks=[CHECK])
    assert calls.operations(writes_only=True) == []


def test_passing_checks_copy_the_checked_archives() -> None:
    calls = ScriptedCalls(script=invoke_answering(answer([0.1, 0.9], ["NOT FRAUD", "FRAUD"])))
    assert promote(calls, endpoint_name="staging", staging=STAGING, production=PRODUCTION,
                   checks=[CHECK]) == {"fraud_1.tar.gz": "uploaded"}
    [copy] = [call for call in calls.made if call.writes]
    assert copy.operation == "copy_object" and copy.params["Key"] == "prod/fraud_1.tar.gz"


def test_unchecked_archives_and_same_prefixes_are_refused() -> None:
    calls = ScriptedCalls()
    with pytest.raises(DeployError, match="no golden check covers fraud_2.tar.gz"):
        promote(calls, endpoint_name="staging", staging=STAGING, production=PRODUCTION, checks=[CHECK],
                archives=["fraud_1.tar.gz", "fraud_2.tar.gz"])
    with pytest.raises(DeployError, match="same prefix"):
        promote(calls, endpoint_name="staging", staging=STAGING, production=STAGING, checks=[CHECK])
    assert calls.made == []
