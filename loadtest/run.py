"""``make loadtest``: package a local store, start the endpoint (and Triton), run the locust scenarios, report.

Locust runs as a subprocess (``locust -f loadtest/locustfile.py --headless``): it monkey-patches the
whole interpreter with gevent on import, which must not reach this process, its endpoint handling or
pytest. Everything binds to 127.0.0.1 on free ports, each run is bounded by ``--run-time`` and a
subprocess timeout, and the endpoint started here is stopped on the way out.

Results in ``loadtest/results/<timestamp>/``: per scenario locust's CSVs, HTML report and log; the
ramp's ``capacity.json`` and ``ramp.png``; the churn's ``churn_metrics.csv`` and ``churn.png``.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.table import Table

from tritonmm.export.archive import namespaced, package_pipeline
from tritonmm.export.fraud import PIPELINE
from tritonmm.loadtest.capacity import (DEFAULT_SAFETY_FACTOR, Capacity, capacity, read_history, steps,
                                        write_capacity)
from tritonmm.loadtest.local_endpoint import RunningEndpoint, start_endpoint
from tritonmm.loadtest.plots import plot_churn, plot_ramp

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
ALL_USERS = ("FraudHttpUser", "FraudGrpcUser", "FraudEndpointUser")
RAMP_STEPS = 5  # 1, 2, 4, 8, 16 users
console = Console(width=140)


@dataclass(frozen=True)
class Target:
    """Where the locust users send requests: the endpoint, Triton HTTP/gRPC and the warm archive's model."""

    endpoint_url: str
    triton_url: str
    triton_grpc: str
    triton_model: str

    def env(self) -> dict[str, str]:
        return {"LOADTEST_ENDPOINT_URL": self.endpoint_url, "LOADTEST_TRITON_URL": self.triton_url,
                "LOADTEST_TRITON_GRPC": self.triton_grpc, "LOADTEST_TRITON_MODEL": self.triton_model}


def package_store(repository: Path, store: Path, count: int) -> list[str]:
    """``fraud_0`` … ``fraud_<count-1>``: the same exported pipeline under distinct versions (distinct Triton models)."""
    return [package_pipeline(repository, PIPELINE, version=str(v), out_dir=store).name for v in range(count)]


def grpc_address(endpoint: RunningEndpoint) -> str:
    """Triton's gRPC address, read from the launcher's argv (``RunningEndpoint`` records only HTTP)."""
    port = next(arg.split("=", 1)[1] for arg in endpoint.process.args if arg.startswith("--grpc-port="))
    return f"127.0.0.1:{port}"


def warm_target(endpoint: RunningEndpoint, version: int = 0) -> Target:
    """Load ``fraud_<version>`` so Triton users can call its ensemble directly, and describe all addresses."""
    httpx.post(f"{endpoint.url}/models/{PIPELINE}_{version}.tar.gz/load", timeout=180).raise_for_status()
    return Target(endpoint.url, endpoint.triton_url, grpc_address(endpoint), namespaced(PIPELINE, str(version), PIPELINE))


def run_locust(scenario: str, users: tuple[str, ...], target: Target, out_dir: Path, seconds: float,
               settings: dict[str, str]) -> Path:
    """Run one scenario headless for at most ``seconds`` (+ start-up slack); return its ``*_stats.csv``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = out_dir / scenario
    argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", target.endpoint_url,
            "--run-time", f"{int(seconds) + 5}s", "--stop-timeout", "5", "--csv", str(prefix),
            "--html", f"{prefix}.html", "--exit-code-on-error", "0", "--only-summary", *users]
    env = {**os.environ, **target.env(), **settings, "LOADTEST_SCENARIO": scenario}
    with (out_dir / f"{scenario}.log").open("w") as log:
        subprocess.run(argv, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=seconds + 60, check=True)
    return prefix.with_name(f"{scenario}_stats.csv")


class MetricsSampler(threading.Thread):
    """Samples the endpoint's ``LoadedModelCount`` and ``ModelCacheHit`` every ``interval_s`` into a CSV.

    The hit ratio per row is Δ``ModelCacheHit_sum`` / Δ``ModelCacheHit_count`` since the previous
    sample (SageMaker's average over the interval); empty when no call arrived in between.
    """

    FIELDS = ("elapsed_s", "loaded_model_count", "cache_hit_sum", "cache_hit_count", "hit_ratio")

    def __init__(self, endpoint: RunningEndpoint, path: Path, interval_s: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.endpoint, self.path, self.interval_s = endpoint, path, interval_s
        self.stopping = threading.Event()

    def sample(self) -> tuple[float, float, float]:
        """(hits, calls, loaded) from ONE scrape: separate scrapes race with calls (a ratio above 1)."""
        samples: dict[str, float] = {}
        for line in httpx.get(f"{self.endpoint.url}/metrics", timeout=10).text.splitlines():
            if not line.startswith("#"):
                name, value = line.split("{", 1)[0].split(" ", 1)[0], float(line.rsplit(" ", 1)[1])
                samples[name] = samples.get(name, 0.0) + value
        return samples["ModelCacheHit_sum"], samples["ModelCacheHit_count"], samples["LoadedModelCount"]

    def run(self) -> None:
        # Baseline first: earlier scenarios' calls must not count in the first interval.
        started, previous = time.monotonic(), self.sample()
        with self.path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.FIELDS)
            writer.writeheader()
            while not self.stopping.wait(self.interval_s):
                hits, calls, loaded = self.sample()
                delta_calls = calls - previous[1]
                writer.writerow({"elapsed_s": round(time.monotonic() - started, 2), "loaded_model_count": loaded,
                                 "cache_hit_sum": hits, "cache_hit_count": calls,
                                 "hit_ratio": round((hits - previous[0]) / delta_calls, 4) if delta_calls else ""})
                handle.flush()
                previous = (hits, calls, loaded)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)


def stats_rows(stats_csv: Path) -> list[dict[str, str]]:
    """Per request type rows of a ``*_stats.csv`` (``Aggregated`` last)."""
    with stats_csv.open(newline="") as handle:
        return list(csv.DictReader(handle))


def summary_table(results: dict[str, Path], result: Capacity | None) -> Table:
    table = Table(title="Load test")
    for column in ("scenario", "type", "name", "requests", "failures", "req/s", "p50 ms", "p90 ms", "p99 ms"):
        table.add_column(column, justify="left" if column in ("scenario", "type", "name") else "right")
    for scenario, stats_csv in results.items():
        for row in stats_rows(stats_csv):
            table.add_row(scenario, row["Type"], row["Name"], row["Request Count"], row["Failure Count"],
                          f"{float(row['Requests/s']):.1f}", row["50%"], row["90%"], row["99%"])
    if result is not None:
        table.caption = (f"capacity: {result.max_requests_per_s:.1f} req/s at {result.users} users "
                         f"(p90 {result.p90_ms} ms ≤ SLO {result.slo_p90_ms} ms) → "
                         f"SageMakerVariantInvocationsPerInstance target {result.invocations_per_instance_target}")
    return table


def run_all(repository: Path, out_dir: Path, *, duration: float, archives: int, slo_ms: float,
            safety_factor: float) -> dict[str, Path]:
    """Steady (all three protocols), step ramp (endpoint, one warm archive), then churn; plots and capacity."""
    steady_s, ramp_s, churn_s = 0.25 * duration, 0.45 * duration, 0.30 * duration
    with tempfile.TemporaryDirectory(prefix="tritonmm-loadtest-") as work:
        store = Path(work) / "store"
        package_store(repository, store, 2 * archives)
        endpoint = start_endpoint(Path(work) / "endpoint", str(store), extra=(f"--max-loaded={archives}",))
        try:
            target = warm_target(endpoint)
            results = {"steady": run_locust("steady", ALL_USERS, target, out_dir, steady_s,
                                            {"LOADTEST_STEADY_S": str(steady_s), "LOADTEST_USERS": "3"})}
            results["ramp"] = run_locust("ramp", ("FraudEndpointUser",), target, out_dir, ramp_s,
                                         {"LOADTEST_STEP_S": str(ramp_s / RAMP_STEPS),
                                          "LOADTEST_MAX_USERS": str(2 ** (RAMP_STEPS - 1))})
            sampler = MetricsSampler(endpoint, out_dir / "churn_metrics.csv")
            sampler.start()
            try:
                results["churn"] = run_locust("churn", ("FraudEndpointUser",), target, out_dir, churn_s,
                                              {"LOADTEST_PHASE_S": str(churn_s / 3), "LOADTEST_ARCHIVES": str(archives),
                                               "LOADTEST_USERS": "2"})
            finally:
                sampler.stop()
        finally:
            endpoint.stop()
    ramp = steps(read_history(out_dir / "ramp_stats_history.csv"))
    result = capacity(ramp, slo_p90_ms=slo_ms, safety_factor=safety_factor)
    write_capacity(result, out_dir / "capacity.json")
    plot_ramp(ramp, result, out_dir / "ramp.png")
    plot_churn(out_dir / "churn_metrics.csv", out_dir / "churn.png")
    console.print(summary_table(results, result))
    return results


def main(
    duration: Annotated[float, typer.Option(help="Total locust time in seconds, split 25/45/30 over steady, ramp, churn.")] = 90.0,
    archives: Annotated[int, typer.Option(help="N: churn loads N archives, then 2N with --max-loaded=N.")] = 3,
    slo_ms: Annotated[float, typer.Option(help="p90 latency SLO for capacity (ms).")] = 100.0,
    safety_factor: Annotated[float, typer.Option(help="Fraction of capacity used as the autoscaling target.")] = DEFAULT_SAFETY_FACTOR,
    repository: Annotated[Path, typer.Option(help="Exported model repository (make export).")] = Path("model_repository"),
    results: Annotated[Path, typer.Option(help="Parent folder of the timestamped results.")] = Path("loadtest/results"),
) -> None:
    """Run the load-test scenarios against a freshly started local endpoint and write the results."""
    out_dir = results / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run_all(repository, out_dir, duration=duration, archives=archives, slo_ms=slo_ms, safety_factor=safety_factor)
    console.print(f"results: {out_dir}")


if __name__ == "__main__":
    typer.run(main)
