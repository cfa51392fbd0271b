"""The ``tritonmm`` command line: ``export`` model repositories and ``serve`` them on the embedded Triton."""

from __future__ import annotations

import signal
import sys
from enum import Enum
from pathlib import Path
from types import FrameType
from typing import Annotated, Optional

import typer

from tritonmm.deploy.cli import deploy_app
from tritonmm.server.backend_dir import TritonNotInstalled
from tritonmm.server.mme.app import EndpointSettings
from tritonmm.server.mme.manager import ManagerSettings
from tritonmm.server.triton_process import TritonServer, TritonSettings, TritonStartError

app = typer.Typer(help=__doc__, no_args_is_help=True, pretty_exceptions_enable=False)
export_app = typer.Typer(help="Train/convert models and write them into a Triton model repository.", no_args_is_help=True)
app.add_typer(export_app, name="export")
app.add_typer(deploy_app, name="deploy")


class ControlMode(str, Enum):
    none = "none"
    explicit = "explicit"


@app.command()
def serve(
    model_repository: Annotated[Path, typer.Option(help="Model repository to serve.")] = Path("model_repository"),
    host: Annotated[str, typer.Option(help="Address for HTTP, gRPC and metrics (loopback by default).")] = "127.0.0.1",
    http_port: Annotated[int, typer.Option(help="KServe v2 HTTP port.")] = 8000,
    grpc_port: Annotated[int, typer.Option(help="KServe v2 gRPC port.")] = 8001,
    metrics_port: Annotated[int, typer.Option(help="Prometheus metrics port.")] = 8002,
    model_control_mode: Annotated[ControlMode, typer.Option(help="none: load everything at start; explicit: load via the repository API.")] = ControlMode.none,
    load_model: Annotated[Optional[list[str]], typer.Option(help="In explicit mode, models to load at start (repeatable).")] = None,
    log_verbose: Annotated[int, typer.Option(help="tritonserver --log-verbose level.")] = 0,
    backend_directory: Annotated[Path, typer.Option(help="Where to assemble the backend directory.")] = Path("build/backends"),
    triton_arg: Annotated[Optional[list[str]], typer.Option(help="Extra tritonserver argument, e.g. --triton-arg=--log-info=false (repeatable).")] = None,
    store: Annotated[Optional[str], typer.Option(help="Also run the SageMaker-compatible multi-model endpoint over this archive store (folder or s3://bucket/prefix/).")] = None,
    s3_endpoint_url: Annotated[Optional[str], typer.Option(help="S3 API URL for an S3-compatible store (MinIO, moto…).")] = None,
    endpoint_port: Annotated[int, typer.Option(help="Multi-model endpoint port.")] = 8080,
    endpoint_host: Annotated[Optional[str], typer.Option(help="Multi-model endpoint address (default: --host). In a container: 0.0.0.0 here, Triton stays on loopback.")] = None,
    cache_dir: Annotated[Path, typer.Option(help="Endpoint cache: downloaded archives, extracted models.")] = Path("build/mme-cache"),
    auth: Annotated[Optional[Path], typer.Option(help="Tenants and their allowed TargetModel patterns (JSON). Default: anonymous, loopback only.")] = None,
    max_loaded: Annotated[int, typer.Option(help="Most archives loaded at once.")] = 50,
    memory_budget_mb: Annotated[Optional[int], typer.Option(help="Resident memory budget of Triton + stubs; LRU archives are unloaded to stay under it.")] = None,
    archive_cache_mb: Annotated[int, typer.Option(help="Disk budget of downloaded archives (LRU).")] = 2048,
    invocation_timeout_s: Annotated[float, typer.Option(help="Longest an invocation may take in Triton.")] = 60.0,
) -> None:
    """Start the real tritonserver on MODEL_REPOSITORY, stream its log, stop cleanly on Ctrl-C/SIGTERM.

    With --store, Triton runs in explicit mode next to a SageMaker-compatible
    multi-model endpoint on --endpoint-port that loads archives on first call.
    """
    settings = TritonSettings(
        model_repository=model_repository,
        backend_directory=backend_directory,
        host=host,
        http_port=http_port,
        grpc_port=grpc_port,
        metrics_port=metrics_port,
        model_control_mode=model_control_mode.value,
        load_models=tuple(load_model or ()),
        log_verbose=log_verbose,
        extra_args=tuple(triton_arg or ()),
    )
    if store is not None:
        manager_settings = ManagerSettings(
            cache_dir=cache_dir, max_loaded=max_loaded, archive_cache_bytes=archive_cache_mb << 20,
            memory_budget_bytes=memory_budget_mb << 20 if memory_budget_mb else None,
        )
        _serve_endpoint(settings, store, s3_endpoint_url, endpoint_host or host, endpoint_port, auth, manager_settings,
                        EndpointSettings(invocation_timeout_s=invocation_timeout_s))
        return
    server = TritonServer(settings, log_sink=sys.stderr)

    def _terminate(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, _terminate)
    try:
        server.start()
        server.wait_ready()
        typer.secho(
            f"Triton ready: HTTP {settings.http_url}  gRPC {settings.grpc_url}  metrics {settings.metrics_url}",
            fg=typer.colors.GREEN,
            err=True,
        )
        code = server.wait()
        raise typer.Exit(code)
    except (TritonStartError, TritonNotInstalled) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.secho("stopping tritonserver…", err=True)
    finally:
        server.stop()


def _serve_endpoint(settings: TritonSettings, store_location: str, s3_endpoint_url: str | None, host: str, port: int,
                    auth_file: Path | None, manager_settings: ManagerSettings, endpoint_settings: EndpointSettings) -> None:
    from tritonmm.server.mme.auth import AuthConfig  # noqa: PLC0415 - only the endpoint mode needs these
    from tritonmm.server.mme.runtime import run_endpoint  # noqa: PLC0415
    from tritonmm.server.mme.store import open_store  # noqa: PLC0415

    if auth_file is None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            typer.secho("error: anonymous access is only allowed on loopback; pass --auth", fg=typer.colors.RED, err=True)
            raise typer.Exit(2)
        typer.secho("warning: no --auth given: anonymous callers may invoke every archive (loopback only)",
                    fg=typer.colors.YELLOW, err=True)
        auth_config = AuthConfig.local_default()
    else:
        auth_config = AuthConfig.load(auth_file)
    static = tuple(sorted(p.name for p in settings.model_repository.iterdir() if (p / "config.pbtxt").is_file())) \
        if settings.model_repository.is_dir() else ()
    try:
        run_endpoint(settings, open_store(store_location, endpoint_url=s3_endpoint_url), auth_config, manager_settings,
                     endpoint_settings, host=host, port=port, static_models=static)
    except (TritonStartError, TritonNotInstalled) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None


@app.command()
def package(
    pipeline: Annotated[str, typer.Option(help="Model (usually an ensemble) to package with every model it uses.")],
    version: Annotated[str, typer.Option(help="Archive version (part of the file name and of the namespaced model names).")],
    repository: Annotated[Path, typer.Option(help="Model repository to package from.")] = Path("model_repository"),
    out: Annotated[Path, typer.Option(help="Folder (model store) to write <name>_<version>.tar.gz into.")] = Path("build/model_store"),
    name: Annotated[Optional[str], typer.Option(help="Archive name (default: the pipeline's).")] = None,
) -> None:
    """Package a pipeline into a byte-reproducible SageMaker-MME archive with a checksum manifest."""
    from tritonmm.export.archive import package_pipeline  # noqa: PLC0415

    try:
        path = package_pipeline(repository, pipeline, version=version, out_dir=out, name=name)
    except (ValueError, FileNotFoundError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    typer.echo(str(path))


@export_app.command("fraud")
def export_fraud_command(
    out: Annotated[Path, typer.Option(help="Model repository to write into.")] = Path("model_repository"),
    rows: Annotated[int, typer.Option(help="Synthetic transactions to generate for training.")] = 250_000,
    seed: Annotated[int, typer.Option(help="Seed of the data generator and the training.")] = 0,
    model: Annotated[Optional[Path], typer.Option(help="Your own trained XGBoost/LightGBM file instead of training.")] = None,
    feature_spec: Annotated[Optional[Path], typer.Option(help="Fitted feature spec (JSON) to go with --model.")] = None,
    threshold: Annotated[float, typer.Option(help="Label threshold when --model is given (training picks its own).")] = 0.5,
) -> None:
    """Write the fraud pipeline: preprocessing (Python) -> XGBoost (fil) -> postprocess, as the `fraud` ensemble."""
    from tritonmm.export.fraud import export_fraud  # noqa: PLC0415 - keeps `serve` free of export dependencies

    try:
        export_fraud(out, rows=rows, seed=seed, model_file=model, spec_file=feature_spec, threshold=threshold)
    except (ValueError, FileNotFoundError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


@export_app.command("performer")
def export_performer_command(
    out: Annotated[Path, typer.Option(help="Model repository to write into.")] = Path("model_repository"),
    rows: Annotated[int, typer.Option(help="Synthetic transactions to generate.")] = 250_000,
    seed: Annotated[int, typer.Option(help="Seed of the data generator and the training.")] = 0,
    work_dir: Annotated[Path, typer.Option(help="Checkpoint, ONNX file and summary go here.")] = Path("build/export/performer"),
    from_checkpoint: Annotated[Optional[Path], typer.Option(help="Work folder of an earlier export (e.g. trained with --attention softmax) to start from.")] = None,
    attention: Annotated[str, typer.Option(help="favor (Performer) or softmax (exact attention baseline).")] = "favor",
    quick: Annotated[bool, typer.Option(help="Seconds-long training for tests.")] = False,
) -> None:
    """Train the Performer (FAVOR+) over card histories, export ONNX, write the performer_fraud ensemble."""
    from tritonmm.export.performer.pipeline import export_performer  # noqa: PLC0415 - torch only for this command

    if attention not in ("favor", "softmax"):
        typer.secho("error: --attention must be favor or softmax", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    export_performer(out, rows=rows, seed=seed, work_dir=work_dir, from_checkpoint=from_checkpoint,
                     quick=quick, attention=attention)


if __name__ == "__main__":
    app()
