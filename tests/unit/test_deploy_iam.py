"""Per-tenant IAM policies from the local endpoint's tenant file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from deploy_fakes import ScriptedCalls, client_error

from tritonmm.deploy.errors import DeployError
from tritonmm.deploy.iam import (
    CREATED,
    UNCHANGED,
    account_id,
    create_policies,
    endpoint_arn,
    read_tenants,
    tenant_policies,
    tenant_policy,
)
from tritonmm.server.mme.auth import AuthConfig, hash_api_key

AUTH = {
    "tenants": [
        {"name": "tenant_a", "allow": ["company_a/*", "common/*"],
         "aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": "env:UNSET_FOR_THIS_TEST"},
        {"name": "ops", "allow": ["*"], "api_keys_sha256": [hash_api_key("k")]},
    ],
    "anonymous": {"allow": ["common/*"]},
}


@pytest.fixture
def auth_file(tmp_path: Path) -> Path:
    path = tmp_path / "auth.json"
    path.write_text(json.dumps(AUTH))
    return path


def test_the_local_endpoint_tenant_file_drives_the_policies(auth_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert read_tenants(auth_file) == {"tenant_a": ("company_a/*", "common/*"), "ops": ("*",)}
    monkeypatch.setenv("UNSET_FOR_THIS_TEST", "secret")
    assert AuthConfig.load(auth_file).tenants[0].allow == ("company_a/*", "common/*")  # the same file serves both


def test_policy_document() -> None:
    arn = endpoint_arn("eu-west-1", "123456789012", "Fraud-Prod")
    assert arn == "arn:aws:sagemaker:eu-west-1:123456789012:endpoint/fraud-prod"
    assert tenant_policy(arn, ("company_a/*",)) == {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "InvokeOwnModels", "Effect": "Allow", "Action": "sagemaker:InvokeEndpoint", "Resource": arn,
            "Condition": {"StringLike": {"sagemaker:TargetModel": ["company_a/*"]}},
        }],
    }
    assert endpoint_arn("cn-north-1", "123456789012", "e").startswith("arn:aws-cn:sagemaker:cn-north-1:")


def test_policies_are_named_per_tenant(auth_file: Path) -> None:
    policies = tenant_policies(read_tenants(auth_file), region="us-east-1", account="123456789012",
                               endpoint_name="fraud", prefix="tritonmm")
    assert sorted(policies) == ["tritonmm-fraud-ops", "tritonmm-fraud-tenant_a"]
    statement = policies["tritonmm-fraud-ops"]["Statement"][0]
    assert statement["Condition"]["StringLike"]["sagemaker:TargetModel"] == ["*"]


@pytest.mark.parametrize(("document", "message"), [
    ({"tenants": [{"name": "a", "allow": ["company_[ab]/*"]}]}, "does not support"),
    ({"tenants": [{"name": "a"}]}, r"tenants\[0\] needs a 'name' and an 'allow'"),
    ({"tenants": [{"name": "a", "allow": ["x"]}, {"name": "a", "allow": ["y"]}]}, "appears twice"),
    ({"anonymous": {"allow": ["*"]}}, "cannot read tenants"),
])
def test_bad_tenant_files(tmp_path: Path, document: dict, message: str) -> None:
    path = tmp_path / "auth.json"
    path.write_text(json.dumps(document))
    with pytest.raises(DeployError, match=message):
        read_tenants(path)


def test_account_comes_from_the_option_or_sts() -> None:
    calls = ScriptedCalls(script={("sts", "get_caller_identity"): {"Account": "210987654321"}})
    assert account_id(calls, None) == "210987654321"
    assert account_id(calls, "123456789012") == "123456789012"
    with pytest.raises(DeployError, match="12 digits"):
        account_id(calls, "12")
    assert account_id(ScriptedCalls(dry_run=True), None) == "<account-id>"


def test_create_policies_is_idempotent_and_refuses_a_different_document() -> None:
    document = tenant_policy("arn", ("a/*",))
    missing = client_error("NoSuchEntity", "not found", 404)
    calls = ScriptedCalls(script={("iam", "get_policy"): missing})
    assert create_policies(calls, {"p": document}, "123456789012") == {"p": CREATED}
    created = calls.made[-1]
    assert created.operation == "create_policy" and json.loads(created.params["PolicyDocument"]) == document

    existing = {("iam", "get_policy"): {"Policy": {"DefaultVersionId": "v1"}},
                ("iam", "get_policy_version"): {"PolicyVersion": {"Document": document}}}
    assert create_policies(ScriptedCalls(script=existing), {"p": document}, "123456789012") == {"p": UNCHANGED}
    with pytest.raises(DeployError, match="arn:aws:iam::123456789012:policy/p exists with another document"):
        create_policies(ScriptedCalls(script=existing), {"p": tenant_policy("arn", ("b/*",))}, "123456789012")
