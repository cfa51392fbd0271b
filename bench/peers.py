"""``make bench-peers``: the same XGBoost model on MLServer's XGBoost runtime and on our Triton path, in one run.

Both servers speak the KServe v2 protocol, so one load generator
(:func:`bench.load.run_load`, tritonclient's asyncio clients, closed loop)
drives both with the same feature rows:

* MLServer 1.7.1 (``mlserver-xgboost``) with ``fraud_xgboost``'s own
  ``xgboost.json``: HTTP with JSON tensors (it rejects Triton's binary-tensor
  extension) and gRPC. Tuned first: ``parallel_workers`` 0 / 1 / 2 with
  ``OMP_NUM_THREADS=1`` and ``debug: false``; the best at batch 1,
  concurrency 8 is then measured everywhere.
* Triton: ``fraud_xgboost`` on the ``fil`` backend alone, and the whole
  ``fraud`` ensemble (raw columns in: featurising is extra work the peer
  does not do), over HTTP with binary tensors, HTTP with JSON and gRPC.

Batch 1 and 64, concurrency 1 and 8; each cell is measured in interleaved
rounds (server order rotating) and the median kept, because the machine is
noisy. The outputs of both servers are compared before any timing: they
must be the same model.

Writes ``bench/results/peers.json`` and ``bench/results/peers.png``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from tritonmm.export.fraud import PIPELINE, XGBOOST
from tritonmm.export.model_config import VERSION
from tritonmm.export.transactions import generate_transactions
from tritonmm.server.triton_process import TritonServer, TritonSettings, free_port

from .fraud import bench_repository, payloads
from .load import LoadResult, run_load
from .mlserver_process import INPUT, MODEL_NAME, OUTPUT, MLServer, MLServerConfig

RESULTS = Path("bench/results")
WORK = Path("build/bench/peers")
BATCHES = (1, 64)
CONCURRENCY = (1, 8)
TUNING = (MLServerConfig(0), MLServerConfig(1), MLServerConfig(2))
console = Console(width=130)


@dataclass(frozen=True)
class Target:
    """One way of calling one model on one server."""

    server: str
    model: str
    protocol: str  # http or grpc
    binary: bool
    url: str
    inputs: str  # which prepared payload: "features" or "raw"
    input_name: str
    output: str

    @property
    def label(self) -> str:
        encoding = "" if self.protocol == "grpc" else ("+bin" if self.binary else "+json")
        return f"{self.server}:{self.model} {self.protocol}{encoding}"

    def run(self, bodies: dict[str, dict], concurrency: int, seconds: float) -> LoadResult:
        arrays = bodies[self.inputs]
        if self.inputs == "features":
            arrays = {self.input_name: arrays["input__0"]}
        return run_load(self.url, self.protocol, self.model, arrays, (self.output,),
                        concurrency=concurrency, seconds=seconds, binary=self.binary)


def mlserver_targets(server: MLServer) -> list[Target]:
    return [Target("mlserver", MODEL_NAME, "http", False, server.http_url, "features", INPUT, OUTPUT),
            Target("mlserver", MODEL_NAME, "grpc", False, server.grpc_url, "features", INPUT, OUTPUT)]


def triton_targets(settings: TritonSettings) -> list[Target]:
    http, grpc = f"{settings.host}:{settings.http_port}", settings.grpc_url
    targets = []
    for model, inputs, output in ((XGBOOST, "features", "output__0"), (PIPELINE, "raw", "probability")):
        targets += [Target("triton", model, "http", True, http, inputs, "input__0", output),
                    Target("triton", model, "http", False, http, inputs, "input__0", output),
                    Target("triton", model, "grpc", False, grpc, inputs, "input__0", output)]
    return targets


def prepared(repository: Path, frame) -> dict[int, dict[str, dict]]:
    """Per batch size: the engineered features (for the XGBoost model alone) and the raw columns (for the ensemble).

    Only rows whose features are all finite: JSON has no NaN, and MLServer only takes JSON over HTTP.
    """
    features = payloads(repository, frame, len(frame))[XGBOOST]["input__0"]
    frame = frame[np.isfinite(features).all(axis=1)]
    out = {}
    for batch in BATCHES:
        bodies = payloads(repository, frame, batch)
        out[batch] = {"features": bodies[XGBOOST], "raw": bodies[PIPELINE]}
    return out


def check_same_model(mlserver: MLServer, settings: TritonSettings, features: np.ndarray) -> float:
    """Largest difference between MLServer's and Triton's fraud probability on the same rows."""
    import tritonclient.http as http  # noqa: PLC0415

    def call(url: str, name: str, output: str, binary: bool) -> np.ndarray:
        client = http.InferenceServerClient(url)
        tensor = http.InferInput(name, list(features.shape), "FP32")
        tensor.set_data_from_numpy(features, binary_data=binary)
        result = client.infer(MODEL_NAME, [tensor], outputs=[http.InferRequestedOutput(output, binary_data=binary)])
        client.close()
        return result.as_numpy(output)

    theirs = call(mlserver.http_url, INPUT, OUTPUT, False).reshape(-1)
    ours = call(f"{settings.host}:{settings.http_port}", "input__0", "output__0", True)[:, 1]
    return float(np.max(np.abs(theirs - ours)))


def tune_mlserver(model_file: Path, bodies: dict[int, dict[str, dict]], seconds: float) -> tuple[MLServerConfig, list[dict]]:
    """Batch 1, concurrency 8, both protocols for each candidate configuration; the best (by req/s) wins."""
    trials = []
    for config in TUNING:
        with MLServer(config, model_file, WORK / "mlserver") as server:
            for target in mlserver_targets(server):
                result = target.run(bodies[1], 8, seconds)
                trials.append({"config": config.label, "protocol": target.protocol, "requests_per_s": result.requests_per_s,
                               "p99_ms": result.p99_ms})
                console.print(f"  tuning {config.label:28s} {target.protocol}: {result.requests_per_s:7.0f} req/s  p99 {result.p99_ms:.2f} ms")
    best = max(trials, key=lambda t: t["requests_per_s"])
    return next(c for c in TUNING if c.label == best["config"]), trials


def measure(targets: list[Target], bodies: dict[int, dict[str, dict]], seconds: float, repeats: int) -> list[dict]:
    cells = []
    for batch in BATCHES:
        for concurrency in CONCURRENCY:
            runs: dict[str, list[LoadResult]] = {t.label: [] for t in targets}
            for round_ in range(repeats):
                for target in targets[round_:] + targets[:round_]:
                    runs[target.label].append(target.run(bodies[batch], concurrency, seconds))
            for target in targets:
                result = sorted(runs[target.label], key=lambda r: r.requests_per_s)[repeats // 2]
                cells.append({"server": target.server, "model": target.model, "call": target.label, "batch": batch,
                              "concurrency": concurrency, "requests_per_s": result.requests_per_s,
                              "rows_per_s": result.requests_per_s * batch, "p50_ms": result.p50_ms, "p99_ms": result.p99_ms})
                console.print(f"  {target.label:42s} batch {batch:3d} c{concurrency}: {result.requests_per_s:7.0f} req/s  "
                              f"p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms")
    return cells


def comparisons(cells: list[dict]) -> list[dict]:
    """Per (batch, concurrency): each Triton model's best call against MLServer's best call.

    Best throughput and best p99 are taken separately on each side (a user picks
    the protocol that suits their goal); the ``fraud`` ensemble also featurises
    raw columns, work the peer's XGBoost runtime does not do.
    """
    rows = []
    for batch in BATCHES:
        for concurrency in CONCURRENCY:
            here = [c for c in cells if (c["batch"], c["concurrency"]) == (batch, concurrency)]
            theirs = [c for c in here if c["server"] == "mlserver"]
            peer = max(theirs, key=lambda c: c["requests_per_s"])
            peer_p99 = min(c["p99_ms"] for c in theirs)
            for model in (XGBOOST, PIPELINE):
                mine = [c for c in here if c["server"] == "triton" and c["model"] == model]
                ours = max(mine, key=lambda c: c["requests_per_s"])
                our_p99 = min(c["p99_ms"] for c in mine)
                rows.append({"batch": batch, "concurrency": concurrency, "triton": ours["call"], "mlserver": peer["call"],
                             "speedup": ours["requests_per_s"] / peer["requests_per_s"],
                             "triton_p99_ms": our_p99, "mlserver_p99_ms": peer_p99, "lower_p99": our_p99 < peer_p99})
    return rows


def print_tables(cells: list[dict], rows: list[dict]) -> None:
    table = Table(title="same XGBoost model: MLServer vs Triton (median of rounds)")
    for column in ("call", "batch", "conc", "req/s", "rows/s", "p50 ms", "p99 ms"):
        table.add_column(column, justify="right")
    for c in cells:
        table.add_row(c["call"], str(c["batch"]), str(c["concurrency"]), f"{c['requests_per_s']:,.0f}",
                      f"{c['rows_per_s']:,.0f}", f"{c['p50_ms']:.2f}", f"{c['p99_ms']:.2f}")
    console.print(table)
    summary = Table(title="Triton's best call / MLServer's best call (target: > 1 everywhere, ≥ 3 at concurrency 8, lower p99)")
    for column in ("batch", "conc", "triton", "mlserver", "× req/s = × rows/s", "best p99 ms triton / mlserver"):
        summary.add_column(column, justify="right")
    for r in rows:
        goal = 3.0 if r["concurrency"] == 8 else 1.0
        summary.add_row(str(r["batch"]), str(r["concurrency"]), r["triton"], r["mlserver"], f"{r['speedup']:.2f}",
                        f"{r['triton_p99_ms']:.2f} / {r['mlserver_p99_ms']:.2f}",
                        style="green" if r["speedup"] >= goal and r["lower_p99"] else "red")
    console.print(summary)


def plot(cells: list[dict], path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    keys = [(b, c) for b in BATCHES for c in CONCURRENCY]
    fig, axes = plt.subplots(1, len(keys), figsize=(18, 5))
    for ax, (batch, concurrency) in zip(axes, keys):
        here = [c for c in cells if (c["batch"], c["concurrency"]) == (batch, concurrency)]
        colors = ["tab:orange" if c["server"] == "mlserver" else "tab:blue" for c in here]
        ax.bar(range(len(here)), [c["rows_per_s"] for c in here], color=colors)
        ax.set_xticks(range(len(here)), [c["call"].replace(" ", "\n") for c in here], rotation=90, fontsize=7)
        ax.set_title(f"batch {batch}, concurrency {concurrency}: rows/s")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(
    repository: Path = typer.Option(Path("model_repository"), help="Exported repository (make export)."),
    seconds: float = typer.Option(2.5, help="Measured seconds per cell and round."),
    repeats: int = typer.Option(3, help="Interleaved rounds per cell (median kept)."),
) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    repo = bench_repository(repository, WORK / "repository")
    bodies = prepared(repo, generate_transactions(5_000, seed=42))
    model_file = repo / XGBOOST / VERSION / "xgboost.json"
    console.print("tuning MLServer (batch 1, concurrency 8)…")
    best, trials = tune_mlserver(model_file, bodies, seconds)
    console.print(f"best MLServer configuration: {best.label}")
    settings = TritonSettings(model_repository=repo, backend_directory=WORK / "backends",
                              http_port=free_port(), grpc_port=free_port(), metrics_port=free_port())
    with TritonServer(settings, log_sink=(WORK / "tritonserver.log").open("w")) as triton, \
            MLServer(best, model_file, WORK / "mlserver") as mlserver:
        triton.wait_ready()
        difference = check_same_model(mlserver, settings, bodies[64]["features"]["input__0"])
        if difference > 1e-5:
            raise SystemExit(f"MLServer and Triton disagree on the same rows (max |Δp| = {difference:.2e}): not the same model")
        console.print(f"same model on both servers: max |Δp| = {difference:.1e} over 64 rows")
        cells = measure(mlserver_targets(mlserver) + triton_targets(settings), bodies, seconds, repeats)
    rows = comparisons(cells)
    print_tables(cells, rows)
    (RESULTS / "peers.json").write_text(json.dumps(
        {"mlserver_tuning": trials, "mlserver_best": best.label, "max_probability_difference": difference,
         "cells": cells, "comparisons": rows}, indent=1))
    plot(cells, RESULTS / "peers.png")
    console.print(f"wrote {RESULTS / 'peers.json'} and {RESULTS / 'peers.png'}")


if __name__ == "__main__":
    typer.run(main)
