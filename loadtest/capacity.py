"""Capacity from a step ramp: the highest throughput within the latency SLO, and the autoscaling target it implies.

SageMaker's target-tracking policy on ``SageMakerVariantInvocationsPerInstance`` counts invocations
per instance *per minute*. AWS's load-testing guidance computes it as
``max_rps × safety_factor × 60``, with a safety factor below 1 so scaling starts before the knee;
the default 0.5 is the value AWS uses in that guidance and leaves room for a slower instance,
a cold model load or a burst while new instances start.

Input: locust's ``*_stats_history.csv`` (one ``Aggregated`` row per second). Per user count (a step):
throughput = Δ total requests / Δ time over the step's rows; p90 = the step's last row (locust's
percentiles cover a trailing window, so the last row is the one least mixed with the step before);
error rate = Δ failures / Δ requests.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import typer

DEFAULT_SAFETY_FACTOR = 0.5
DEFAULT_MAX_ERROR_RATE = 0.001


@dataclass(frozen=True)
class Step:
    """One user count of the ramp, summarised."""

    users: int
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    error_rate: float
    requests: int


@dataclass(frozen=True)
class Capacity:
    """What a deploy step needs: the sustainable throughput and the scaling target."""

    slo_p90_ms: float
    max_error_rate: float
    safety_factor: float
    users: int | None
    max_requests_per_s: float
    p90_ms: float | None
    invocations_per_instance_target: int


def read_history(path: Path) -> list[dict[str, str]]:
    """The ``Aggregated`` rows of a locust stats-history CSV, in time order."""
    with path.open(newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["Name"] == "Aggregated"]


def steps(rows: list[dict[str, str]]) -> list[Step]:
    """Summarise rows per user count; steps with fewer than two rows or no p90 yet are skipped."""
    grouped: dict[int, list[dict[str, str]]] = {}
    for row in rows:
        grouped.setdefault(int(row["User Count"]), []).append(row)
    result = []
    for users, group in sorted(grouped.items()):
        first, last = group[0], group[-1]
        seconds = float(last["Timestamp"]) - float(first["Timestamp"])
        requests = int(last["Total Request Count"]) - int(first["Total Request Count"])
        failures = int(last["Total Failure Count"]) - int(first["Total Failure Count"])
        if seconds <= 0 or requests <= 0 or "N/A" in (last["50%"], last["90%"], last["99%"]):
            continue
        result.append(Step(users, requests / seconds, float(last["50%"]), float(last["90%"]), float(last["99%"]),
                           failures / requests, requests))
    return result


def capacity(ramp: list[Step], *, slo_p90_ms: float, max_error_rate: float = DEFAULT_MAX_ERROR_RATE,
             safety_factor: float = DEFAULT_SAFETY_FACTOR) -> Capacity:
    """The highest-throughput step with p90 ≤ SLO and error rate < ``max_error_rate``; target 0 if none qualifies."""
    within = [step for step in ramp if step.p90_ms <= slo_p90_ms and step.error_rate < max_error_rate]
    best = max(within, key=lambda step: step.requests_per_s, default=None)
    rps = best.requests_per_s if best else 0.0
    return Capacity(slo_p90_ms, max_error_rate, safety_factor, best.users if best else None, rps,
                    best.p90_ms if best else None, invocations_per_instance(rps, safety_factor))


def invocations_per_instance(requests_per_s: float, safety_factor: float = DEFAULT_SAFETY_FACTOR) -> int:
    """``SageMakerVariantInvocationsPerInstance`` target: per-minute invocations at ``safety_factor`` of capacity."""
    return int(requests_per_s * 60 * safety_factor)


def write_capacity(result: Capacity, path: Path) -> Path:
    path.write_text(json.dumps(asdict(result), indent=2) + "\n")
    return path


def main(
    history: Annotated[Path, typer.Argument(help="locust *_stats_history.csv of a step ramp.")],
    slo_ms: Annotated[float, typer.Option(help="p90 latency SLO in ms.")] = 100.0,
    max_error_rate: Annotated[float, typer.Option(help="Highest acceptable error rate.")] = DEFAULT_MAX_ERROR_RATE,
    safety_factor: Annotated[float, typer.Option(help="Fraction of measured capacity to target.")] = DEFAULT_SAFETY_FACTOR,
    out: Annotated[Path, typer.Option(help="Where to write the JSON.")] = Path("capacity.json"),
) -> None:
    """Print and write capacity.json for a step-ramp history."""
    result = capacity(steps(read_history(history)), slo_p90_ms=slo_ms, max_error_rate=max_error_rate,
                      safety_factor=safety_factor)
    typer.echo(json.dumps(asdict(result), indent=2))
    write_capacity(result, out)


if __name__ == "__main__":
    typer.run(main)
