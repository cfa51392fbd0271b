"""The SageMaker Triton image for a region.

SageMaker pulls ``<account>.dkr.ecr.<region>.<domain>/sagemaker-tritonserver:<tag>``
from an AWS-owned registry account that differs by region. The table below is the
``registries`` map of the SageMaker Python SDK's ``image_uri_config/sagemaker-tritonserver.json``
(identical for every release it lists, 23.12 to 24.09); a region missing here is an
error rather than a guess, because a wrong account only fails when the endpoint starts
(minutes later, as "image not found"). ``--image-uri`` overrides the lookup.
"""

from __future__ import annotations

from .errors import DeployError

REPOSITORY = "sagemaker-tritonserver"
DEFAULT_TAG = "24.10-py3"
"""Triton 2.51.0: the release of the embedded server and of ``nvcr.io/nvidia/tritonserver:24.10-py3``."""

_DLC = "763104351884"
REGISTRY_ACCOUNTS: dict[str, str] = {
    "af-south-1": "626614931356",
    "ap-east-1": "871362719292",
    "ap-northeast-1": _DLC,
    "ap-northeast-2": _DLC,
    "ap-northeast-3": "364406365360",
    "ap-south-1": _DLC,
    "ap-southeast-1": _DLC,
    "ap-southeast-2": _DLC,
    "ap-southeast-3": "907027046896",
    "ca-central-1": _DLC,
    "ca-west-1": "204538143572",
    "cn-north-1": "727897471807",
    "cn-northwest-1": "727897471807",
    "eu-central-1": _DLC,
    "eu-north-1": _DLC,
    "eu-south-1": "692866216735",
    "eu-west-1": _DLC,
    "eu-west-2": _DLC,
    "eu-west-3": _DLC,
    "il-central-1": "780543022126",
    "me-south-1": "217643126080",
    "sa-east-1": _DLC,
    "us-east-1": _DLC,
    "us-east-2": _DLC,
    "us-west-1": _DLC,
    "us-west-2": _DLC,
}


def triton_image_uri(region: str, tag: str = DEFAULT_TAG) -> str:
    """The SageMaker Triton image URI in ``region``; :class:`DeployError` for a region not in the table."""
    account = REGISTRY_ACCOUNTS.get(region)
    if account is None:
        raise DeployError(f"no SageMaker Triton image account is known for region {region!r} "
                          f"(known: {', '.join(sorted(REGISTRY_ACCOUNTS))}); pass --image-uri")
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{account}.dkr.ecr.{region}.{domain}/{REPOSITORY}:{tag}"
