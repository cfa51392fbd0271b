"""``make bench-fraud``: in-process pipeline vs the served fraud ensemble, with an identity model as the floor.

Measured in one run on one server (ratios, not absolute numbers, are what
carry across machines):

* in-process: featurise + XGBoost predict, one thread (the server also gives
  each model instance one thread);
* served over HTTP and gRPC: the ``fraud`` ensemble, the ``fraud_xgboost``
  (``fil``) model alone, ``identity`` (a Python-backend no-op on the same
  payload as the FIL model: the serving floor) and ``identity_chain3`` (an
  ensemble of three no-op Python models: the floor of any three-step Python
  pipeline, which is what ``fraud`` is on the embedded server), at batch
  1 / 64 / 1024 and concurrency 1 / 8.

Writes ``bench/results/fraud.json`` and ``bench/results/fraud.png``.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import typer
import xgboost as xgb
from rich.console import Console
from rich.table import Table

from tritonmm.export.fraud import PIPELINE, PREPROCESS, SPEC_FILE, XGBOOST, raw_columns
from tritonmm.export.ensemble import Step, build_ensemble
from tritonmm.export.model_config import VERSION, model_config, tensor, write_config
from tritonmm.export.python_model import export_python_model
from tritonmm.export.transactions import generate_transactions
from tritonmm.server.models.fraud_preprocess.features import FEATURE_NAMES, RAW_COLUMNS, FeatureSpec, featurize
from tritonmm.server.triton_process import TritonServer, TritonSettings, free_port

from .load import run_load

RESULTS = Path("bench/results")
CHAIN = "identity_chain3"
MODELS = ("identity", CHAIN, XGBOOST, PIPELINE)
BATCHES = (1, 64, 1024)
CONCURRENCY = (1, 8)
console = Console(width=120)


def bench_repository(source: Path, target: Path) -> Path:
    """The exported fraud pipeline plus the ``identity`` floor model and a chain of three of them."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for name in ("fraud", "fraud_preprocess", "fraud_xgboost", "fraud_postprocess"):
        shutil.copytree(source / name, target / name)
    width = [len(FEATURE_NAMES)]
    steps = []
    for name in ("identity", "identity_b", "identity_c"):
        identity = model_config(
            name=name, backend="python", max_batch_size=65536,
            inputs=[tensor("input__0", "TYPE_FP32", width)], outputs=[tensor("output__0", "TYPE_FP32", width)],
        )
        export_python_model(identity, target, "identity")
        steps.append(Step(identity, {"input__0": steps[-1].output_map["output__0"] if steps else "input__0"},
                          {"output__0": f"after_{name}"}))
    steps[-1] = Step(steps[-1].model, steps[-1].input_map, {"output__0": "output__0"})
    chain = build_ensemble(CHAIN, steps, inputs=[tensor("input__0", "TYPE_FP32", width)],
                           outputs=[tensor("output__0", "TYPE_FP32", width)], max_batch_size=65536)
    write_config(chain, target)
    return target


def in_process(repository: Path, frame, seconds: float = 2.0) -> dict[int, float]:
    """Rows/s of featurise + predict in this process, per batch size."""
    spec = FeatureSpec.load(repository / PREPROCESS / VERSION / SPEC_FILE)
    booster = xgb.Booster(model_file=str(repository / XGBOOST / VERSION / "xgboost.json"))
    booster.set_param({"nthread": 1})
    rates = {}
    for batch in BATCHES:
        columns = raw_columns(frame.head(batch))
        calls, began = 0, time.perf_counter()
        while time.perf_counter() - began < seconds:
            booster.inplace_predict(featurize(columns, spec))
            calls += 1
        rates[batch] = calls * batch / (time.perf_counter() - began)
    return rates


def payloads(repository: Path, frame, batch: int) -> dict[str, dict[str, np.ndarray]]:
    rows = frame.head(batch)
    columns = raw_columns(rows)
    raw = {c: (np.array([str(v).encode() for v in columns[c]], dtype=object) if columns[c].dtype == object else columns[c]).reshape(-1, 1)
           for c in RAW_COLUMNS}
    spec = FeatureSpec.load(repository / PREPROCESS / VERSION / SPEC_FILE)
    features = {"input__0": featurize(columns, spec)}
    return {PIPELINE: raw, XGBOOST: features, "identity": features, CHAIN: features}


OUTPUTS = {PIPELINE: ("probability", "label"), XGBOOST: ("output__0",), "identity": ("output__0",), CHAIN: ("output__0",)}


def measure_grid(settings: TritonSettings, repo: Path, frame, *, seconds: float, repeats: int) -> list[dict]:
    """Start the server and drive every (batch, protocol, concurrency, model) cell."""
    cells: list[dict] = []
    with TritonServer(settings, log_sink=Path("build/bench/tritonserver.log").open("w")) as server:
        server.wait_ready()
        for batch in BATCHES:
            bodies = payloads(repo, frame, batch)
            for protocol, url in (("http", f"{settings.host}:{settings.http_port}"), ("grpc", settings.grpc_url)):
                for concurrency in CONCURRENCY:
                    # The cells the target ratios use are measured in interleaved rounds
                    # (model order rotating) and the median kept: this machine is noisy.
                    rounds = repeats if (batch, concurrency) == (1, 8) else 1
                    runs: dict[str, list] = {model: [] for model in MODELS}
                    for round_ in range(rounds):
                        for model in MODELS[round_:] + MODELS[:round_]:
                            runs[model].append(run_load(url, protocol, model, bodies[model], OUTPUTS[model],
                                                        concurrency=concurrency, seconds=seconds))
                    for model in MODELS:
                        result = sorted(runs[model], key=lambda r: r.requests_per_s)[len(runs[model]) // 2]
                        cells.append({
                            "model": model, "protocol": protocol, "batch": batch, "concurrency": concurrency,
                            "requests_per_s": result.requests_per_s, "rows_per_s": result.requests_per_s * batch,
                            "p50_ms": result.p50_ms, "p99_ms": result.p99_ms, "rounds": rounds,
                        })
                        console.print(f"  {model:16s} {protocol:4s} batch {batch:5d} c{concurrency}: "
                                      f"{result.requests_per_s:8.0f} req/s  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms")

    return cells


def plot(cells: list[dict], path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(1, len(BATCHES), figsize=(15, 4.5))
    for ax, batch in zip(axes, BATCHES):
        labels, values = [], []
        for cell in cells:
            if cell["batch"] == batch:
                labels.append(f"{cell['model']}\n{cell['protocol']} c{cell['concurrency']}")
                values.append(cell["rows_per_s"])
        ax.bar(range(len(values)), values)
        ax.set_xticks(range(len(values)), labels, rotation=90, fontsize=7)
        ax.set_title(f"batch {batch}: rows/s")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(
    repository: Path = typer.Option(Path("model_repository"), help="Exported repository (make export)."),
    seconds: float = typer.Option(3.0, help="Measured seconds per cell."),
    repeats: int = typer.Option(3, help="Interleaved rounds for the batch-1, concurrency-8 cells (median kept)."),
) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    frame = generate_transactions(5_000, seed=42)
    repo = bench_repository(repository, Path("build/bench/fraud_repository"))
    console.print("in-process pipeline (featurise + xgboost, 1 thread)…")
    local = in_process(repo, frame)
    settings = TritonSettings(
        model_repository=repo, backend_directory=Path("build/bench/backends"),
        http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
    )
    cells = measure_grid(settings, repo, frame, seconds=seconds, repeats=repeats)

    def cell(model: str, protocol: str, batch: int, concurrency: int) -> dict:
        return next(c for c in cells if (c["model"], c["protocol"], c["batch"], c["concurrency"]) == (model, protocol, batch, concurrency))

    ratios = {}
    for protocol in ("http", "grpc"):
        floor = cell("identity", protocol, 1, 8)["requests_per_s"]
        ratios[f"fil_vs_identity_b1_c8_{protocol}"] = cell(XGBOOST, protocol, 1, 8)["requests_per_s"] / floor
        ratios[f"ensemble_vs_identity_b1_c8_{protocol}"] = cell(PIPELINE, protocol, 1, 8)["requests_per_s"] / floor
        ratios[f"chain3_vs_identity_b1_c8_{protocol}"] = cell(CHAIN, protocol, 1, 8)["requests_per_s"] / floor
        best_1024 = max(cell(PIPELINE, protocol, 1024, c)["rows_per_s"] for c in CONCURRENCY)
        ratios[f"ensemble_vs_inprocess_b1024_{protocol}"] = best_1024 / local[1024]

    table = Table(title="fraud pipeline: served vs in-process (rows/s, p50/p99 ms)")
    for column in ("model", "protocol", "batch", "conc", "req/s", "rows/s", "p50 ms", "p99 ms"):
        table.add_column(column, justify="right")
    for batch in BATCHES:
        table.add_row("in-process", "-", str(batch), "1", f"{local[batch] / batch:,.0f}", f"{local[batch]:,.0f}", "", "")
    for c in cells:
        table.add_row(c["model"], c["protocol"], str(c["batch"]), str(c["concurrency"]), f"{c['requests_per_s']:,.0f}",
                      f"{c['rows_per_s']:,.0f}", f"{c['p50_ms']:.2f}", f"{c['p99_ms']:.2f}")
    console.print(table)
    targets = Table(title="targets")
    for column in ("ratio", "measured", "target"):
        targets.add_column(column)
    goal = {"fil_vs_identity": 0.85, "ensemble_vs_identity": 0.5, "ensemble_vs_inprocess": 0.5}
    for key, value in ratios.items():
        target = next((v for k, v in goal.items() if key.startswith(k)), None)
        if target is None:
            targets.add_row(key, f"{value:.2f}", "(reference)")
        else:
            targets.add_row(key, f"{value:.2f}", f"≥ {target}", style="green" if value >= target else "red")
    console.print(targets)
    (RESULTS / "fraud.json").write_text(json.dumps({"in_process_rows_per_s": local, "cells": cells, "ratios": ratios}, indent=1))
    plot(cells, RESULTS / "fraud.png")
    console.print(f"wrote {RESULTS / 'fraud.json'} and {RESULTS / 'fraud.png'}")


if __name__ == "__main__":
    typer.run(main)
