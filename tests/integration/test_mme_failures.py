"""Failures stay contained: an archive Triton cannot load, slow calls (timeout, in flight during eviction),
the bounded archive cache. Room for one archive, so every new target evicts the previous one."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tritonmm.export.archive import package_pipeline
from tritonmm.export.fraud import PIPELINE
from tritonmm.export.model_config import VERSION, model_config, tensor, write_config
from tritonmm.export.transactions import generate_transactions
from tritonmm.loadtest.local_endpoint import start_endpoint
from tritonmm.loadtest.payloads import fraud_kserve_json

TIMEOUT_S = 2.0
SLEEP_MODEL = '''
import time
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            seconds = pb_utils.get_input_tensor_by_name(request, "seconds").as_numpy()
            time.sleep(float(seconds.max()))
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("slept", seconds)]))
        return responses
'''


def write_sleep_model(repository: Path) -> None:
    """A model that takes as long as it is told to: deterministic slow calls for timeout and drain tests."""
    config = model_config(name="sleep", backend="python", max_batch_size=8,
                          inputs=[tensor("seconds", "TYPE_FP32", [1])], outputs=[tensor("slept", "TYPE_FP32", [1])])
    model_dir = write_config(config, repository)
    (model_dir / VERSION / "model.py").write_text(SLEEP_MODEL)


def sleep_body(seconds: float) -> bytes:
    return json.dumps({"inputs": [{"name": "seconds", "shape": [1, 1], "datatype": "FP32", "data": [seconds]}]}).encode()


@pytest.fixture(scope="module")
def endpoint(repository: Path, tmp_path_factory: pytest.TempPathFactory):
    store = tmp_path_factory.mktemp("store")
    for version in ("1", "2"):
        package_pipeline(repository, PIPELINE, version=version, out_dir=store)
    package_pipeline(repository, "broken_file", version="1", name="broken", out_dir=store)
    extra = tmp_path_factory.mktemp("sleep_repo")
    write_sleep_model(extra)
    package_pipeline(extra, "sleep", version="1", out_dir=store)
    running = start_endpoint(tmp_path_factory.mktemp("failures"), str(store),
                             extra=("--archive-cache-mb=0", f"--invocation-timeout-s={TIMEOUT_S}", "--max-loaded=1"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def small() -> bytes:
    return fraud_kserve_json(generate_transactions(2_000, seed=1).head(2))


def test_archive_triton_cannot_load_names_archive_and_reason(endpoint, small) -> None:
    for _ in range(2):  # a failed load is not cached as loaded, and fails the same way again
        answer = endpoint.invoke("broken_1.tar.gz", small)
        assert answer.status_code == 424, answer.text
        error = answer.json()
        assert error["__type"] == "ModelError" and "'broken_1.tar.gz'" in error["message"]
        assert "cannot be read as model_type 'xgboost_json'" in error["OriginalMessage"]
    assert endpoint.invoke("fraud_1.tar.gz", small).status_code == 200
    assert httpx.get(f"{endpoint.url}/ping").status_code == 200


def test_invocation_timeout_is_an_error_and_the_endpoint_carries_on(endpoint) -> None:
    finished = triton_successes(endpoint, "sleep")
    answer = endpoint.invoke("sleep_1.tar.gz", sleep_body(2 * TIMEOUT_S))
    assert answer.status_code == 424 and f"within {TIMEOUT_S:g} s" in answer.json()["message"], answer.text
    # Triton's HTTP API cannot cancel a running call: the abandoned one keeps the single instance busy until done.
    deadline = time.monotonic() + 30
    while triton_successes(endpoint, "sleep") == finished:
        assert time.monotonic() < deadline, "the abandoned call never finished in Triton"
        time.sleep(0.05)
    assert endpoint.invoke("sleep_1.tar.gz", sleep_body(0.0)).status_code == 200


def triton_successes(endpoint, model_part: str) -> int:
    """Completed inferences Triton counts for the models whose name contains ``model_part``."""
    stats = httpx.get(f"{endpoint.triton_url}/v2/models/stats", timeout=10).json()["model_stats"]
    return sum(m["inference_stats"]["success"]["count"] for m in stats if model_part in m["name"])


def test_call_in_flight_completes_while_its_archive_is_evicted(endpoint, small) -> None:
    assert endpoint.invoke("sleep_1.tar.gz", sleep_body(0.0)).status_code == 200
    unloads = endpoint.metric("ModelUnloadingTime_sum")
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(endpoint.invoke, "sleep_1.tar.gz", sleep_body(0.4 * TIMEOUT_S))
        deadline = time.monotonic() + 30
        while in_flight_calls(endpoint, "sleep_1.tar.gz") == 0:
            assert time.monotonic() < deadline and not in_flight.done()
            time.sleep(0.01)
        assert endpoint.invoke("fraud_2.tar.gz", small).status_code == 200  # room for one: evicts sleep_1
        assert in_flight.result().status_code == 200
    assert endpoint.metric("ModelUnloadingTime_sum") - unloads >= 0.2  # the unload waited for the call


def in_flight_calls(endpoint, target: str) -> int:
    loaded = httpx.get(f"{endpoint.url}/models/loaded", timeout=10).json()["models"]
    return next((m["in_flight"] for m in loaded if m["target"] == target), 0)


def test_downloaded_archive_cache_is_bounded(endpoint, small) -> None:
    for target in ("fraud_1.tar.gz", "fraud_2.tar.gz"):
        assert endpoint.invoke(target, small).status_code == 200
    assert len(list((endpoint.cache_dir / "archives").glob("*.tar.gz"))) == 1
