"""Capacity from a step-ramp history: SLO and error filters, step summaries, the SageMaker target."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tritonmm.loadtest.capacity import capacity, invocations_per_instance, read_history, steps, write_capacity

COLUMNS = ("Timestamp", "User Count", "Name", "50%", "90%", "99%", "Total Request Count", "Total Failure Count")


def write_history(path: Path, rows: list[tuple]) -> Path:
    """A locust-shaped stats history: each row is (t, users, p90, total requests, total failures), Aggregated."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for t, users, p90, total, failures in rows:
            writer.writerow((t, users, "Aggregated", p90 / 2 if p90 != "N/A" else "N/A", p90,
                             p90 * 2 if p90 != "N/A" else "N/A", total, failures))
            writer.writerow((t, users, "invoke", 1, 1, 1, 0, 0))  # per-name rows are ignored
    return path


@pytest.fixture
def ramp(tmp_path: Path) -> list:
    # users 1: 100 req/s, p90 10; users 2: 180 req/s, p90 20; users 4: 250 req/s, p90 60 (over a 50 ms SLO).
    return steps(read_history(write_history(tmp_path / "h.csv", [
        (0, 1, "N/A", 0, 0), (1, 1, 10, 100, 0), (2, 1, 10, 200, 0),
        (3, 2, 20, 300, 0), (5, 2, 20, 660, 0),
        (6, 4, 60, 900, 0), (8, 4, 60, 1400, 0),
    ])))


def test_steps_summarise_throughput_latency_and_errors(ramp: list) -> None:
    assert [(s.users, s.requests_per_s, s.p90_ms, s.error_rate) for s in ramp] == [
        (1, 100.0, 10.0, 0.0), (2, 180.0, 20.0, 0.0), (4, 250.0, 60.0, 0.0)]
    assert ramp[0].p50_ms == 5.0 and ramp[0].p99_ms == 20.0


def test_capacity_is_the_fastest_step_within_the_slo(ramp: list) -> None:
    result = capacity(ramp, slo_p90_ms=50)
    assert (result.users, result.max_requests_per_s, result.p90_ms) == (2, 180.0, 20.0)
    assert result.invocations_per_instance_target == 180 * 60 // 2
    assert capacity(ramp, slo_p90_ms=100).users == 4


def test_errors_at_or_over_the_limit_disqualify_a_step(tmp_path: Path) -> None:
    ramp = steps(read_history(write_history(tmp_path / "h.csv", [
        (0, 1, 10, 0, 0), (1, 1, 10, 1000, 0),
        (2, 2, 10, 1000, 0), (3, 2, 10, 3000, 2),  # 2 / 2000 = 0.1 %: not < 0.1 %
    ])))
    assert ramp[1].error_rate == pytest.approx(0.001)
    assert capacity(ramp, slo_p90_ms=50).users == 1


def test_nothing_within_the_slo_gives_a_zero_target(ramp: list) -> None:
    result = capacity(ramp, slo_p90_ms=5)
    assert result.users is None and result.max_requests_per_s == 0 and result.invocations_per_instance_target == 0


def test_target_is_per_minute_at_the_safety_factor(ramp: list, tmp_path: Path) -> None:
    assert invocations_per_instance(10.0) == 300
    assert invocations_per_instance(10.0, safety_factor=0.8) == 480
    written = json.loads(write_capacity(capacity(ramp, slo_p90_ms=50, safety_factor=0.25), tmp_path / "c.json").read_text())
    assert written["invocations_per_instance_target"] == 2700 and written["safety_factor"] == 0.25
