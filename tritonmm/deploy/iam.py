"""Per-tenant IAM policies: ``sagemaker:InvokeEndpoint`` on one endpoint, limited by ``sagemaker:TargetModel``.

The tenants come from the local endpoint's ``--auth`` file (``tenants[].name`` and
``tenants[].allow``), so one file describes who may call which archives both on the local
endpoint and on SageMaker. Only those two fields are read: keys and secrets in the file
belong to the local endpoint, and IAM has no anonymous callers.

The local endpoint matches patterns with ``fnmatch`` (``*`` also crosses ``/``), as IAM's
``StringLike`` does for ``*`` and ``?``; bracket classes (``[ab]``) exist only in fnmatch,
so a pattern with them is refused rather than granting something else on AWS.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .calls import AwsCalls, error_code_in
from .errors import DeployError
from .validation import check_name

_POLICY_NAME = re.compile(r"^[\w+=,.@-]{1,128}$")
_ACCOUNT = re.compile(r"^\d{12}$")
CREATED, UNCHANGED = "created", "unchanged"


def read_tenants(path: Path) -> dict[str, tuple[str, ...]]:
    """Tenant name -> allowed TargetModel patterns, from an ``--auth`` file of the local endpoint."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        tenants = document["tenants"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DeployError(f"{path}: cannot read tenants (an --auth file with a 'tenants' list): {exc}") from None
    result: dict[str, tuple[str, ...]] = {}
    for index, tenant in enumerate(tenants if isinstance(tenants, list) else [None]):
        name = tenant.get("name") if isinstance(tenant, dict) else None
        allow = tenant.get("allow") if isinstance(tenant, dict) else None
        if not isinstance(name, str) or not isinstance(allow, list) or not all(isinstance(p, str) and p for p in allow):
            raise DeployError(f"{path}: tenants[{index}] needs a 'name' and an 'allow' list of patterns")
        if name in result:
            raise DeployError(f"{path}: tenant {name!r} appears twice")
        result[name] = tuple(_iam_pattern(name, pattern) for pattern in allow)
    return result


def _iam_pattern(tenant: str, pattern: str) -> str:
    if "[" in pattern or "]" in pattern:
        raise DeployError(f"tenant {tenant!r}: pattern {pattern!r} uses [...], which IAM's StringLike does not support")
    return pattern


def partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    return "aws-us-gov" if region.startswith("us-gov-") else "aws"


def endpoint_arn(region: str, account_id: str, endpoint_name: str) -> str:
    """The endpoint's ARN; SageMaker writes resource names in ARNs in lower case, and IAM compares ARNs exactly."""
    check_name("endpoint name", endpoint_name)
    return f"arn:{partition(region)}:sagemaker:{region}:{account_id}:endpoint/{endpoint_name.lower()}"


def tenant_policy(arn: str, patterns: tuple[str, ...]) -> dict[str, Any]:
    """Allow InvokeEndpoint on ``arn`` only for TargetModels matching ``patterns``."""
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "InvokeOwnModels",
            "Effect": "Allow",
            "Action": "sagemaker:InvokeEndpoint",
            "Resource": arn,
            "Condition": {"StringLike": {"sagemaker:TargetModel": list(patterns)}},
        }],
    }


def policy_name(prefix: str, endpoint_name: str, tenant: str) -> str:
    name = f"{prefix}-{endpoint_name}-{tenant}"
    if not _POLICY_NAME.match(name):
        raise DeployError(f"IAM policy name {name!r} must be 1-128 of letters, digits and +=,.@_-")
    return name


def account_id(calls: AwsCalls, given: str | None) -> str:
    """``given``, or the caller's account from STS (a placeholder in a dry run, which asks nothing)."""
    if given is not None:
        if not _ACCOUNT.match(given):
            raise DeployError(f"account id {given!r} must be 12 digits")
        return given
    identity = calls.read("sts", "get_caller_identity")
    return "<account-id>" if identity is None else identity["Account"]


def tenant_policies(tenants: dict[str, tuple[str, ...]], *, region: str, account: str, endpoint_name: str,
                    prefix: str) -> dict[str, dict[str, Any]]:
    """Policy name -> policy document, one per tenant."""
    arn = endpoint_arn(region, account, endpoint_name)
    return {policy_name(prefix, endpoint_name, tenant): tenant_policy(arn, patterns)
            for tenant, patterns in tenants.items()}


def create_policies(calls: AwsCalls, policies: dict[str, dict[str, Any]], account: str) -> dict[str, str]:
    """Create each managed policy; an existing one with the same document is kept, a different one is an error."""
    outcomes = {}
    for name, document in policies.items():
        arn = f"arn:{partition(calls.region)}:iam::{account}:policy/{name}"
        existing = calls.read("iam", "get_policy", missing=error_code_in("NoSuchEntity"), PolicyArn=arn)
        if existing is None:
            calls.write("iam", "create_policy", PolicyName=name, PolicyDocument=json.dumps(document),
                        Description="InvokeEndpoint limited to the tenant's TargetModels (tritonmm deploy)")
            outcomes[name] = CREATED
            continue
        version = calls.read("iam", "get_policy_version", PolicyArn=arn,
                             VersionId=existing["Policy"]["DefaultVersionId"])
        current = version["PolicyVersion"]["Document"]
        if isinstance(current, str):
            current = json.loads(current)
        if current != document:
            raise DeployError(f"IAM policy {arn} exists with another document; delete it or use another --policy-prefix")
        outcomes[name] = UNCHANGED
    return outcomes
