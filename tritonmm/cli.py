"""The ``tritonmm`` command line: ``export`` model repositories and ``serve`` them on the embedded Triton."""

from __future__ import annotations

import signal
import sys
from enum import Enum
from pathlib import Path
from types import FrameType
from typing import Annotated, Optional

import typer

from tritonmm.server.backend_dir import TritonNotInstalled
from tritonmm.server.triton_process import TritonServer, TritonSettings, TritonStartError

app = typer.Typer(help=__doc__, no_args_is_help=True, pretty_exceptions_enable=False)
export_app = typer.Typer(help="Train/convert models and write them into a Triton model repository.", no_args_is_help=True)
app.add_typer(export_app, name="export")


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
) -> None:
    """Start the real tritonserver on MODEL_REPOSITORY, stream its log, stop cleanly on Ctrl-C/SIGTERM."""
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


if __name__ == "__main__":
    app()
