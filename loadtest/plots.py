"""PNG plots of a load-test run: the step ramp (latency and throughput against users) and the MME churn."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from tritonmm.loadtest.capacity import Capacity, Step  # noqa: E402


def plot_ramp(ramp: list[Step], result: Capacity, path: Path) -> Path:
    """Latency percentiles and throughput per user count; the SLO and the chosen step marked."""
    users = [step.users for step in ramp]
    fig, (latency, throughput) = plt.subplots(1, 2, figsize=(11, 4))
    for label, values in (("p50", [s.p50_ms for s in ramp]), ("p90", [s.p90_ms for s in ramp]), ("p99", [s.p99_ms for s in ramp])):
        latency.plot(users, values, marker="o", label=label)
    latency.axhline(result.slo_p90_ms, color="red", linestyle="--", label="p90 SLO")
    latency.set(xscale="log", xlabel="users", ylabel="latency (ms)", title="Latency against users")
    throughput.plot(users, [s.requests_per_s for s in ramp], marker="o")
    if result.users is not None:
        throughput.axvline(result.users, color="green", linestyle="--", label=f"capacity {result.max_requests_per_s:.0f} req/s")
        throughput.legend()
    throughput.set(xscale="log", xlabel="users", ylabel="requests/s", title="Throughput against users")
    latency.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_churn(samples_csv: Path, path: Path) -> Path:
    """Loaded archives and the interval cache-hit ratio over time, from the sampler's CSV."""
    with samples_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    seconds = [float(row["elapsed_s"]) for row in rows]
    fig, loaded = plt.subplots(figsize=(9, 4))
    loaded.step(seconds, [float(row["loaded_model_count"]) for row in rows], where="post", color="tab:blue")
    loaded.set(xlabel="seconds", ylabel="LoadedModelCount", title="MME churn: loaded archives and cache hits")
    ratio = loaded.twinx()
    points = [(s, float(row["hit_ratio"])) for s, row in zip(seconds, rows) if row["hit_ratio"]]
    ratio.plot([p[0] for p in points], [p[1] for p in points], color="tab:orange", marker=".")
    ratio.set(ylabel="ModelCacheHit ratio (per interval)", ylim=(-0.05, 1.05))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
