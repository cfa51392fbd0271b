"""``make bench-mme``: cold loads and warm overhead of the multi-model endpoint, in one run.

* cold: the first call of each of ``--archives`` archives, split into download,
  verify + extract and Triton load (from the endpoint's own histograms);
* warm: the same batch-1 request through the endpoint and straight to
  Triton's HTTP port (same client, same body), at concurrency 1 and 8:
  p50/p99, throughput, and the endpoint's share of direct throughput.

Writes ``bench/results/mme.json`` and ``bench/results/mme.png``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from tritonmm.export.archive import package_pipeline
from tritonmm.export.fraud import PIPELINE
from tritonmm.export.transactions import generate_transactions
from tritonmm.loadtest.local_endpoint import RunningEndpoint, start_endpoint
from tritonmm.loadtest.payloads import fraud_kserve_json

RESULTS = Path("bench/results")
STAGES = {"download": "ModelDownloadingTime", "verify_extract": "ModelVerifyExtractTime", "triton_load": "ModelLoadingTime"}
console = Console(width=120)


async def _closed_loop(url: str, body: bytes, headers: dict[str, str], concurrency: int, seconds: float) -> dict:
    latencies: list[float] = []
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def worker(until: float, keep: bool) -> None:
            while time.perf_counter() < until:
                started = time.perf_counter()
                answer = await client.post(url, content=body, headers=headers)
                answer.raise_for_status()
                if keep:
                    latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker(time.perf_counter() + 0.5, False) for _ in range(concurrency)))
        began = time.perf_counter()
        await asyncio.gather(*(worker(began + seconds, True) for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    ms = np.asarray(latencies) * 1e3
    return {"requests_per_s": len(ms) / elapsed, "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def cold_loads(endpoint: RunningEndpoint, targets: list[str], body: bytes) -> dict:
    first_call_s = []
    for target in targets:
        started = time.perf_counter()
        endpoint.invoke(target, body).raise_for_status()
        first_call_s.append(time.perf_counter() - started)
    stages = {stage: endpoint.metric(f"{metric}_sum") / endpoint.metric(f"{metric}_count") for stage, metric in STAGES.items()}
    return {"first_call_s": first_call_s, "first_call_p50_s": float(np.median(first_call_s)), "stages_mean_s": stages}


def warm(endpoint: RunningEndpoint, target: str, model: str, body: bytes, seconds: float) -> list[dict]:
    routes = {
        "endpoint": (f"{endpoint.url}/endpoints/bench/invocations",
                     {"X-Amzn-SageMaker-Target-Model": target, "Content-Type": "application/json"}),
        "direct": (f"{endpoint.triton_url}/v2/models/{model}/infer", {"Content-Type": "application/json"}),
    }
    cells = []
    for concurrency in (1, 8):
        for rounds in range(3):  # interleaved rounds, median kept: the machine is noisy
            for route, (url, headers) in routes.items():
                result = asyncio.run(_closed_loop(url, body, headers, concurrency, seconds))
                cells.append({"route": route, "concurrency": concurrency, "round": rounds, **result})
    return cells


def median_cell(cells: list[dict], route: str, concurrency: int) -> dict:
    runs = sorted((c for c in cells if c["route"] == route and c["concurrency"] == concurrency), key=lambda c: c["requests_per_s"])
    return runs[len(runs) // 2]


def plot(report: dict, path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (cold, latency) = plt.subplots(1, 2, figsize=(11, 4))
    stages = report["cold"]["stages_mean_s"]
    cold.bar(list(stages), list(stages.values()))
    cold.set_title(f"cold load stages (s), first call p50 {report['cold']['first_call_p50_s']:.2f} s")
    labels, p50, p99 = [], [], []
    for route in ("direct", "endpoint"):
        for concurrency in (1, 8):
            cell = median_cell(report["warm"], route, concurrency)
            labels.append(f"{route}\nc{concurrency}")
            p50.append(cell["p50_ms"])
            p99.append(cell["p99_ms"])
    x = np.arange(len(labels))
    latency.bar(x - 0.2, p50, 0.4, label="p50")
    latency.bar(x + 0.2, p99, 0.4, label="p99")
    latency.set_xticks(x, labels)
    latency.set_title("warm latency (ms)")
    latency.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(
    repository: Path = typer.Option(Path("model_repository"), help="Exported repository (make export)."),
    archives: int = typer.Option(5, help="Distinct archives to cold-load."),
    seconds: float = typer.Option(3.0, help="Measured seconds per warm cell."),
) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-mme-", dir="build"))
    store = work / "store"
    targets = [package_pipeline(repository, PIPELINE, version=str(v), out_dir=store).name for v in range(archives)]
    body = fraud_kserve_json(generate_transactions(5_000, seed=42).head(1))
    endpoint = start_endpoint(work / "endpoint", str(store))
    try:
        report = {"cold": cold_loads(endpoint, targets, body)}
        report["warm"] = warm(endpoint, targets[0], f"{PIPELINE}__0__{PIPELINE}", body, seconds)
    finally:
        endpoint.stop()
        shutil.rmtree(work, ignore_errors=True)
    direct1, via1 = median_cell(report["warm"], "direct", 1), median_cell(report["warm"], "endpoint", 1)
    direct8, via8 = median_cell(report["warm"], "direct", 8), median_cell(report["warm"], "endpoint", 8)
    report["summary"] = {
        "cold_first_call_p50_s": report["cold"]["first_call_p50_s"],
        "warm_overhead_p50_ms_c1": via1["p50_ms"] - direct1["p50_ms"],
        "warm_overhead_p50_ms_c8": via8["p50_ms"] - direct8["p50_ms"],
        "throughput_share_c8": via8["requests_per_s"] / direct8["requests_per_s"],
        "throughput_share_c1": via1["requests_per_s"] / direct1["requests_per_s"],
    }
    table = Table(title="multi-model endpoint vs direct Triton (fraud ensemble, batch 1)")
    for column in ("route", "conc", "req/s", "p50 ms", "p99 ms"):
        table.add_column(column, justify="right")
    for cell in (direct1, via1, direct8, via8):
        table.add_row(cell["route"], str(cell["concurrency"]), f"{cell['requests_per_s']:,.0f}", f"{cell['p50_ms']:.2f}", f"{cell['p99_ms']:.2f}")
    console.print(table)
    stages = Table(title=f"cold load of {archives} archives (mean per archive)")
    for column in ("stage", "seconds"):
        stages.add_column(column)
    for stage, value in report["cold"]["stages_mean_s"].items():
        stages.add_row(stage, f"{value:.3f}")
    stages.add_row("first call (p50, end to end)", f"{report['cold']['first_call_p50_s']:.3f}")
    console.print(stages)
    console.print({k: round(v, 3) for k, v in report["summary"].items()})
    (RESULTS / "mme.json").write_text(json.dumps(report, indent=1))
    plot(report, RESULTS / "mme.png")
    console.print(f"wrote {RESULTS / 'mme.json'} and {RESULTS / 'mme.png'}")


if __name__ == "__main__":
    typer.run(main)
