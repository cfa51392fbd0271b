"""LRU unloading under a cap, the reference CloudWatch experiment's shape; and recovery when Triton dies."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tritonmm.export.archive import package_pipeline
from tritonmm.export.fraud import PIPELINE
from tritonmm.export.transactions import generate_transactions

from tritonmm.loadtest.payloads import fraud_kserve_json as kserve_json
from tritonmm.loadtest.local_endpoint import start_endpoint

N = 2


@pytest.fixture(scope="module")
def body() -> bytes:
    return kserve_json(generate_transactions(5_000, seed=3).head(4))


@pytest.fixture(scope="module")
def small_endpoint(repository: Path, tmp_path_factory: pytest.TempPathFactory):
    """Room for N archives; 2N archives in the store."""
    store = tmp_path_factory.mktemp("store")
    for version in range(2 * N):
        package_pipeline(repository, PIPELINE, version=str(version), out_dir=store)
    running = start_endpoint(tmp_path_factory.mktemp("small"), str(store), extra=(f"--max-loaded={N}",))
    yield running
    running.stop()


def hit_ratio_of(endpoint, targets: list[str], body: bytes) -> float:
    """ModelCacheHit average over these calls (SageMaker's statistic), from the endpoint's metrics."""
    hits, count = endpoint.metric("ModelCacheHit_sum"), endpoint.metric("ModelCacheHit_count")
    for target in targets:
        assert endpoint.invoke(target, body).status_code == 200, target
    return (endpoint.metric("ModelCacheHit_sum") - hits) / (endpoint.metric("ModelCacheHit_count") - count)


def test_cold_warm_then_twice_as_many_archives(small_endpoint, body) -> None:
    first = [f"fraud_{v}.tar.gz" for v in range(N)]
    every = [f"fraud_{v}.tar.gz" for v in range(2 * N)]
    assert hit_ratio_of(small_endpoint, first, body) == 0.0          # cold pass
    assert small_endpoint.metric("LoadedModelCount") == N
    assert hit_ratio_of(small_endpoint, first, body) == 1.0          # warm repeat
    assert hit_ratio_of(small_endpoint, every, body) == 0.5          # first N hit, new N evict the LRU ones
    assert small_endpoint.metric("LoadedModelCount") == N             # levels off at the cap
    loaded = [m["target"] for m in httpx.get(f"{small_endpoint.url}/models/loaded").json()["models"]]
    assert loaded == every[N:]                                        # least recently used went first
    assert small_endpoint.metric("ModelEvictions_total") == N
    assert small_endpoint.metric("ModelUnloadingTime_count") == N


def test_triton_gone_gives_503_then_recovers(small_endpoint, body) -> None:
    target = "fraud_0.tar.gz"
    assert small_endpoint.invoke(target, body).status_code == 200
    os.kill(small_endpoint.triton_pid(), signal.SIGKILL)
    statuses = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        answer = small_endpoint.invoke(target, body)
        statuses.append(answer.status_code)
        if answer.status_code == 200:
            break
        assert answer.status_code == 503 and answer.json()["__type"] == "ServiceUnavailable", answer.text
        time.sleep(0.2)
    assert statuses[-1] == 200, statuses
    assert httpx.get(f"{small_endpoint.url}/ping").status_code == 200


def test_memory_budget_unloads_least_recently_used(repository: Path, tmp_path: Path, body) -> None:
    """A 1 MB budget is always exceeded (Triton alone is bigger): each new load must first unload the others."""
    store = tmp_path / "store"
    for version in range(3):
        package_pipeline(repository, PIPELINE, version=str(version), out_dir=store)
    endpoint = start_endpoint(tmp_path / "ep", str(store), extra=("--memory-budget-mb=1", "--max-loaded=50"))
    try:
        for version in range(3):
            assert endpoint.invoke(f"fraud_{version}.tar.gz", body).status_code == 200
            assert endpoint.metric("LoadedModelCount") == 1
        assert endpoint.metric("ModelEvictions_total") == 2
        assert endpoint.metric("MemoryUtilization") > 100
        assert endpoint.metric("TritonResidentBytes") > 50 << 20
        assert len(endpoint.children()) >= 3  # tritonserver and the loaded archive's stubs
    finally:
        endpoint.stop()
    assert endpoint.process.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
    assert endpoint.children() == {}, "stopping the endpoint must stop Triton and its stubs"
