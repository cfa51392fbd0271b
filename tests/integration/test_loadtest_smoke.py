"""A short locust run (all three user types) against a real local endpoint: zero failures, every user sends.

Locust runs as a subprocess (``loadtest.run.run_locust``), so its gevent monkey-patching stays out of pytest.
"""

from __future__ import annotations

from pathlib import Path

from tritonmm.loadtest.local_endpoint import start_endpoint
from tritonmm.loadtest.run import ALL_USERS, package_store, run_locust, stats_rows, warm_target

SECONDS = 8


def test_steady_smoke_run_has_no_failures(repository: Path, tmp_path: Path) -> None:
    package_store(repository, tmp_path / "store", 1)
    endpoint = start_endpoint(tmp_path / "endpoint", str(tmp_path / "store"))
    try:
        stats_csv = run_locust("steady", ALL_USERS, warm_target(endpoint), tmp_path / "results", SECONDS,
                               {"LOADTEST_STEADY_S": str(SECONDS), "LOADTEST_USERS": str(len(ALL_USERS))})
    finally:
        endpoint.stop()
    rows = {row["Type"]: row for row in stats_rows(stats_csv) if row["Name"] != "Aggregated"}
    assert set(rows) == {"triton-http", "triton-grpc", "mme"}
    for row in rows.values():
        assert int(row["Request Count"]) > 0 and int(row["Failure Count"]) == 0, row
    assert (tmp_path / "results" / "steady.html").stat().st_size > 0
    assert (tmp_path / "results" / "steady_stats_history.csv").exists()
