"""Delete what the deploy commands created, in the order AWS needs, tolerating what is already gone.

Order: scaling policy and scalable target (AWS asks for these to go before the endpoint),
endpoint, endpoint config, model, then — only when asked — the archives. The config and
model are found from the endpoint itself (``deploy endpoint`` keeps no other), so a
teardown needs only the endpoint name. Running it twice is harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .archives import delete_archives
from .autoscaling import remove_autoscaling
from .calls import AwsCalls, could_not_find
from .endpoint import DEFAULT_VARIANT, delete_config_and_models, describe_endpoint
from .validation import S3Uri, check_name


@dataclass
class TeardownResult:
    endpoint_found: bool
    config_name: str | None = None
    deleted_archives: list[str] = field(default_factory=list)


def teardown(calls: AwsCalls, endpoint_name: str, *, archive_prefixes: Sequence[S3Uri] = (),
             variant_name: str = DEFAULT_VARIANT) -> TeardownResult:
    """Delete the endpoint ``endpoint_name`` and everything it uses; archives only under ``archive_prefixes``."""
    check_name("endpoint name", endpoint_name)
    described = describe_endpoint(calls, endpoint_name)
    variants = [v["VariantName"] for v in described.get("ProductionVariants", [])] if described else [variant_name]
    for variant in variants or [variant_name]:
        remove_autoscaling(calls, endpoint_name, variant)
    result = TeardownResult(endpoint_found=described is not None)
    calls.write("sagemaker", "delete_endpoint", missing=could_not_find, EndpointName=endpoint_name)
    if described is not None:
        result.config_name = described["EndpointConfigName"]
        delete_config_and_models(calls, result.config_name)
    else:
        calls.note("then delete_endpoint_config and delete_model for the config that describe_endpoint names")
    for prefix in archive_prefixes:
        result.deleted_archives += delete_archives(calls, prefix)
    return result
