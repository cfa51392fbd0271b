"""``tritonmm deploy``: archives to S3, a SageMaker Triton multi-model endpoint, autoscaling, promotion, IAM, teardown.

Every command takes ``--dry-run``: it prints each AWS call (service, operation, parameters
as JSON, one a line) and makes none — no credentials needed. A real run logs each change
it makes to stderr and prints a JSON summary on stdout. Deploy modules are imported inside
the commands, so ``tritonmm --help`` and the other commands never load them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

if TYPE_CHECKING:
    from .calls import AwsCalls

deploy_app = typer.Typer(help="Deploy archives to a SageMaker Triton multi-model endpoint; every command takes --dry-run.",
                        no_args_is_help=True)

Region = Annotated[Optional[str], typer.Option(help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION or the profile's).")]
Profile = Annotated[Optional[str], typer.Option(help="AWS profile to take credentials from.")]
EndpointUrl = Annotated[Optional[str], typer.Option(help="API URL for every AWS service (moto, LocalStack); default: AWS.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Print every AWS call with its arguments; make none.")]
EndpointName = Annotated[str, typer.Option("--endpoint", help="SageMaker endpoint name.")]
Variant = Annotated[str, typer.Option(help="Production variant name.")]
KmsKey = Annotated[Optional[str], typer.Option(help="KMS key (id, ARN or alias) for SSE-KMS of written archives.")]


def _region(region: str | None, profile: str | None) -> str:
    found = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not found:
        import boto3  # noqa: PLC0415

        found = boto3.Session(profile_name=profile).region_name
    if not found:
        raise typer.BadParameter("no AWS region: pass --region or set AWS_DEFAULT_REGION", param_hint="--region")
    return found


def _calls(region: str | None, profile: str | None, endpoint_url: str | None, dry_run: bool,
           runtime_endpoint_url: str | None = None) -> AwsCalls:
    from .calls import ALL_SERVICES, AwsCalls  # noqa: PLC0415

    urls = {ALL_SERVICES: endpoint_url} if endpoint_url else {}
    if runtime_endpoint_url:
        urls["sagemaker-runtime"] = runtime_endpoint_url
    log = typer.echo if dry_run else (lambda line: typer.echo(line, err=True))
    return AwsCalls(region=_region(region, profile), dry_run=dry_run, endpoint_urls=urls, profile=profile, log=log)


@contextmanager
def _reporting(calls: AwsCalls | None = None) -> Iterator[None]:
    """Our errors exit 2 with our message; AWS errors exit 1 with AWS's code and message (never credentials)."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    from .errors import DeployError  # noqa: PLC0415

    try:
        yield
    except DeployError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    except ClientError as exc:
        details = exc.response.get("Error", {})
        typer.secho(f"error: AWS refused {exc.operation_name}: {details.get('Code')}: {details.get('Message')}",
                    fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    except BotoCoreError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    if calls is not None and calls.dry_run:
        typer.secho(f"dry run: {len(calls.made)} AWS calls printed, none made", err=True)


def _summary(calls: AwsCalls, result: Any) -> None:
    if not calls.dry_run:
        typer.echo(json.dumps(result, indent=1, default=str))


@deploy_app.command()
def upload(
    paths: Annotated[list[Path], typer.Argument(help="Archives, or model-store folders (every *.tar.gz below, keyed by relative path).")],
    to: Annotated[str, typer.Option(help="S3 prefix, e.g. s3://bucket/models/staging/.")],
    kms_key_id: KmsKey = None,
    region: Region = None, profile: Profile = None, endpoint_url: EndpointUrl = None, dry_run: DryRun = False,
) -> None:
    """Verify and upload archives under immutable keys: same bytes again is a no-op, other bytes an error."""
    from .archives import Encryption, upload_archives  # noqa: PLC0415
    from .validation import S3Uri, check_kms_key  # noqa: PLC0415

    calls = _calls(region, profile, endpoint_url, dry_run)
    with _reporting(calls):
        result = upload_archives(calls, paths, S3Uri.parse(to, prefix=True), Encryption(check_kms_key(kms_key_id)))
    _summary(calls, result)


def _env_pairs(values: list[str] | None) -> dict[str, str]:
    pairs = {}
    for value in values or ():
        name, sep, setting = value.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{value!r} is not KEY=VALUE", param_hint="--env")
        pairs[name] = setting
    return pairs


@deploy_app.command()
def endpoint(
    endpoint_name: EndpointName,
    model_data_url: Annotated[str, typer.Option(help="S3 prefix holding the archives (the endpoint's ModelDataUrl).")],
    role_arn: Annotated[str, typer.Option(help="Execution role SageMaker assumes (reads the prefix, pulls the image).")],
    instance_type: Annotated[str, typer.Option(help="e.g. ml.g4dn.xlarge (GPU) or ml.c5.2xlarge (CPU); billed per hour.")],
    instance_count: Annotated[int, typer.Option(help="Initial instances.")] = 1,
    variant: Variant = "AllTraffic",
    image_uri: Annotated[Optional[str], typer.Option(help="Container image; default: SageMaker's Triton image for the region.")] = None,
    image_tag: Annotated[str, typer.Option(help="Tag of SageMaker's Triton image.")] = "24.10-py3",
    subnet: Annotated[Optional[list[str]], typer.Option(help="VPC subnet id (repeatable; with --security-group).")] = None,
    security_group: Annotated[Optional[list[str]], typer.Option(help="VPC security group id (repeatable).")] = None,
    kms_key_id: Annotated[Optional[str], typer.Option(help="KMS key for the instances' ML storage volume "
                                                            "(not accepted for instance types with local NVMe storage).")] = None,
    data_capture: Annotated[Optional[str], typer.Option(help="Capture requests and responses to this S3 prefix (off by default).")] = None,
    data_capture_percent: Annotated[int, typer.Option(help="Share of requests captured.")] = 100,
    log_verbose: Annotated[int, typer.Option(help="SAGEMAKER_TRITON_LOG_VERBOSE.")] = 0,
    thread_count: Annotated[Optional[int], typer.Option(help="SAGEMAKER_TRITON_THREAD_COUNT (HTTP threads).")] = None,
    shm_default_bytes: Annotated[Optional[int], typer.Option(help="SAGEMAKER_TRITON_SHM_DEFAULT_BYTE_SIZE (Python backend).")] = None,
    shm_growth_bytes: Annotated[Optional[int], typer.Option(help="SAGEMAKER_TRITON_SHM_GROWTH_BYTE_SIZE (Python backend).")] = None,
    env: Annotated[Optional[list[str]], typer.Option(help="Extra container environment KEY=VALUE (repeatable).")] = None,
    wait_timeout: Annotated[float, typer.Option(help="Seconds to wait for InService.")] = 1800.0,
    poll_interval: Annotated[float, typer.Option(help="Seconds between describe_endpoint calls.")] = 30.0,
    region: Region = None, profile: Profile = None, endpoint_url: EndpointUrl = None, dry_run: DryRun = False,
) -> None:
    """Create (or update) the Triton multi-model endpoint over MODEL_DATA_URL and wait until InService."""
    from .endpoint import ContainerSettings, DataCapture, EndpointSpec, Wait, deploy_endpoint  # noqa: PLC0415
    from .images import triton_image_uri  # noqa: PLC0415
    from .validation import S3Uri  # noqa: PLC0415

    calls = _calls(region, profile, endpoint_url, dry_run)
    with _reporting(calls):
        spec = EndpointSpec(
            endpoint_name=endpoint_name, model_data_url=S3Uri.parse(model_data_url, prefix=True), role_arn=role_arn,
            image_uri=image_uri or triton_image_uri(calls.region, image_tag), instance_type=instance_type,
            instance_count=instance_count, variant_name=variant, subnets=tuple(subnet or ()),
            security_groups=tuple(security_group or ()), kms_key_id=kms_key_id,
            data_capture=DataCapture(S3Uri.parse(data_capture, prefix=True), data_capture_percent) if data_capture else None,
            container=ContainerSettings(log_verbose, thread_count, shm_default_bytes, shm_growth_bytes, _env_pairs(env)),
        )
        result = deploy_endpoint(calls, spec, Wait(timeout_s=wait_timeout, poll_s=poll_interval))
    _summary(calls, result.__dict__)


@deploy_app.command()
def autoscale(
    endpoint_name: EndpointName,
    min_capacity: Annotated[int, typer.Option("--min", help="Fewest instances.")],
    max_capacity: Annotated[int, typer.Option("--max", help="Most instances.")],
    recommendation: Annotated[Optional[Path], typer.Option(help="capacity.json from `python -m tritonmm.loadtest.capacity`.")] = None,
    target_value: Annotated[Optional[float], typer.Option(help="Invocations per instance per minute (overrides the recommendation).")] = None,
    variant: Variant = "AllTraffic",
    scale_in_cooldown: Annotated[int, typer.Option(help="Seconds between scale-in steps.")] = 300,
    scale_out_cooldown: Annotated[int, typer.Option(help="Seconds between scale-out steps.")] = 60,
    region: Region = None, profile: Profile = None, endpoint_url: EndpointUrl = None, dry_run: DryRun = False,
) -> None:
    """Target tracking on SageMakerVariantInvocationsPerInstance, with the load test's recommended target."""
    from .autoscaling import ScalingSpec, apply_autoscaling, read_recommendation  # noqa: PLC0415
    from .errors import DeployError  # noqa: PLC0415

    calls = _calls(region, profile, endpoint_url, dry_run)
    with _reporting(calls):
        if target_value is None and recommendation is None:
            raise DeployError("pass --recommendation capacity.json or --target-value")
        target = target_value if target_value is not None else read_recommendation(recommendation)
        spec = ScalingSpec(endpoint_name, variant, min_capacity, max_capacity, target, scale_in_cooldown, scale_out_cooldown)
        apply_autoscaling(calls, spec)
    _summary(calls, {"resource_id": spec.resource_id, "policy": spec.policy_name, "target_value": target})


@deploy_app.command()
def golden(
    archive: Annotated[Path, typer.Argument(help="A fraud pipeline archive (from `tritonmm package --pipeline fraud`).")],
    out: Annotated[Path, typer.Option(help="Golden file to write.")] = Path("golden.json"),
    target_model: Annotated[Optional[str], typer.Option(help="TargetModel key (default: the archive's file name).")] = None,
) -> None:
    """Write the default golden checks of a fraud archive: fixed rows, outputs recomputed from the archive."""
    from .fraud_golden import fraud_golden  # noqa: PLC0415
    from .golden import write_golden  # noqa: PLC0415

    with _reporting():
        typer.echo(str(write_golden([fraud_golden(archive, target_model or archive.name)], out)))


@deploy_app.command()
def promote(
    endpoint_name: Annotated[str, typer.Option("--endpoint", help="The staging endpoint the checks run on.")],
    staging: Annotated[str, typer.Option(help="Staging S3 prefix (the staging endpoint's ModelDataUrl).")],
    production: Annotated[str, typer.Option(help="Production S3 prefix.")],
    golden_file: Annotated[Path, typer.Option("--golden", help="Golden checks (JSON); see `tritonmm deploy golden`.")],
    archive: Annotated[Optional[list[str]], typer.Option(help="TargetModel key to promote (repeatable; default: every checked one).")] = None,
    kms_key_id: KmsKey = None,
    runtime_endpoint_url: Annotated[Optional[str], typer.Option(help="SageMaker Runtime URL (e.g. a local endpoint).")] = None,
    region: Region = None, profile: Profile = None, endpoint_url: EndpointUrl = None, dry_run: DryRun = False,
) -> None:
    """Run the golden checks on the staging endpoint; copy the archives to production only if all pass."""
    from .archives import Encryption  # noqa: PLC0415
    from .golden import load_golden  # noqa: PLC0415
    from .promote import promote as run_promotion  # noqa: PLC0415
    from .validation import S3Uri, check_kms_key  # noqa: PLC0415

    calls = _calls(region, profile, endpoint_url, dry_run, runtime_endpoint_url)
    with _reporting(calls):
        result = run_promotion(calls, endpoint_name=endpoint_name, staging=S3Uri.parse(staging, prefix=True),
                               production=S3Uri.parse(production, prefix=True), checks=load_golden(golden_file),
                               archives=tuple(archive or ()), encryption=Encryption(check_kms_key(kms_key_id)))
    _summary(calls, result)


@deploy_app.command("iam-policy")
def iam_policy(
    endpoint_name: EndpointName,
    auth: Annotated[Path, typer.Option(help="Tenant file of the local endpoint (`tritonmm serve --auth`).")],
    account_id: Annotated[Optional[str], typer.Option(help="AWS account of the endpoint (default: the caller's, from STS).")] = None,
    policy_prefix: Annotated[str, typer.Option(help="Policy names are <prefix>-<endpoint>-<tenant>.")] = "tritonmm",
    create: Annotated[bool, typer.Option("--create", help="Create the policies in IAM (default: print them).")] = False,
    region: Region = None, profile: Profile = None, endpoint_url: EndpointUrl = None, dry_run: DryRun = False,
) -> None:
    """One IAM policy per tenant: InvokeEndpoint on this endpoint for the tenant's TargetModel patterns only."""
    from .iam import account_id as resolve_account, create_policies, read_tenants, tenant_policies  # noqa: PLC0415

    calls = _calls(region, profile, endpoint_url, dry_run)
    with _reporting(calls):
        account = resolve_account(calls, account_id)
        policies = tenant_policies(read_tenants(auth), region=calls.region, account=account,
                                   endpoint_name=endpoint_name, prefix=policy_prefix)
        result = create_policies(calls, policies, account) if create else policies
    _summary(calls, result)


@deploy_app.command()
def teardown(
    endpoint_name: EndpointName,
    delete_archives: Annotated[Optional[list[str]], typer.Option(help="Also delete every archive under this S3 prefix (repeatable).")] = None,
    variant: Variant = "AllTraffic",
    region: Region = None, profile: Profile = None, endpoint_url: EndpointUrl = None, dry_run: DryRun = False,
) -> None:
    """Delete the scaling policy and target, endpoint, endpoint config, model (and archives only if asked)."""
    from .teardown import teardown as run_teardown  # noqa: PLC0415
    from .validation import S3Uri  # noqa: PLC0415

    calls = _calls(region, profile, endpoint_url, dry_run)
    with _reporting(calls):
        prefixes = [S3Uri.parse(uri, prefix=True) for uri in delete_archives or ()]
        result = run_teardown(calls, endpoint_name, archive_prefixes=prefixes, variant_name=variant)
    _summary(calls, result.__dict__)
