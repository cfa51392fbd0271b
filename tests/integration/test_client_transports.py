"""The client SDK against real servers: Triton over HTTP and gRPC, the multi-model endpoint over SageMaker's API.

Same answers on every transport (and from the async client), batches over the
model's limit back in order, the servers' errors as typed exceptions, shared
memory, and the retry policy against a scripted KServe v2 server on loopback.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from tritonmm.client import FRAUD_SCHEMA, AsyncClient, Client, InvalidInput, ModelNotFound, Timeout, Unavailable
from tritonmm.export.archive import package_pipeline
from tritonmm.export.fraud import PIPELINE, XGBOOST
from tritonmm.export.transactions import generate_transactions
from tritonmm.loadtest.local_endpoint import RunningEndpoint, start_endpoint
from tritonmm.server.triton_process import free_port

from .mme_fixtures import expected_probability

TARGET = "fraud_1.tar.gz"
LOCAL = {"endpoint_name": "local", "region_name": "us-east-1", "anonymous": True}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return generate_transactions(5_000, seed=9)


@pytest.fixture(scope="module")
def big_frame() -> pd.DataFrame:
    """More rows than the fraud ensemble's max_batch_size (8192), on a shuffled, non-default index."""
    frame = generate_transactions(9_000, seed=11).head(9_000)
    return frame.sample(frac=1.0, random_state=0).set_index(np.arange(9_000) * 3 + 7)


@pytest.fixture(scope="module")
def endpoint(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEndpoint]:
    store = tmp_path_factory.mktemp("client-store")
    package_pipeline(repository, PIPELINE, version="1", out_dir=store)
    running = start_endpoint(tmp_path_factory.mktemp("client-endpoint"), str(store))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def clients(served, endpoint: RunningEndpoint) -> Iterator[dict[str, Client]]:
    made = {
        "http": Client.http(served.settings.http_url),
        "grpc": Client.grpc(served.settings.grpc_url),
        "sagemaker": Client.sagemaker(target_model=TARGET, endpoint_url=endpoint.url, **LOCAL),
    }
    yield made
    for client in made.values():
        client.close()


def assert_same_scores(actual: pd.DataFrame, reference: pd.DataFrame) -> None:
    assert list(actual.columns) == ["probability", "label"]
    assert actual.index.equals(reference.index)
    np.testing.assert_allclose(actual["probability"], reference["probability"], atol=1e-6)
    assert actual["label"].tolist() == reference["label"].tolist()


def test_three_transports_give_the_same_scores(clients, frame, repository) -> None:
    scores = {name: client.score_transactions(frame) for name, client in clients.items()}
    assert scores["http"].index.equals(frame.index)
    np.testing.assert_allclose(scores["http"]["probability"], expected_probability(repository, frame), atol=1e-5)
    assert set(scores["http"]["label"]) == {"FRAUD", "NOT FRAUD"}
    for name in ("grpc", "sagemaker"):
        assert_same_scores(scores[name], scores["http"])


def test_records_in_give_the_same_scores(clients, frame) -> None:
    head = frame.head(50)
    scores = clients["grpc"].score_transactions(head.drop(columns=["Is Fraud?"]).to_dict("records"))
    assert_same_scores(scores.set_index(head.index), clients["http"].score_transactions(head))


def test_the_built_in_schema_is_the_served_one(clients) -> None:
    assert clients["http"].model_config(PIPELINE) == FRAUD_SCHEMA
    assert clients["grpc"].model_config(PIPELINE) == FRAUD_SCHEMA


def test_batches_over_the_model_limit_come_back_in_order(clients, big_frame, repository) -> None:
    expected = expected_probability(repository, big_frame)
    for name, client in clients.items():
        scores = client.score_transactions(big_frame)
        assert scores.index.equals(big_frame.index), name
        np.testing.assert_allclose(scores["probability"], expected, atol=1e-5, err_msg=name)


def test_infer_on_a_single_model(clients) -> None:
    """``fraud_xgboost`` alone: its config says 21 FP32 features in, two class probabilities out."""
    config = clients["grpc"].model_config(XGBOOST)
    assert config["inputs"] == [{"name": "input__0", "datatype": "FP32", "dims": [21]}]
    features = np.random.default_rng(0).normal(size=(300, 21)).astype(np.float32)
    outputs = {name: clients[name].infer(XGBOOST, {"input__0": features}) for name in ("http", "grpc")}
    assert outputs["http"]["output__0"].shape == (300, 2)
    np.testing.assert_allclose(outputs["http"]["output__0"], outputs["grpc"]["output__0"], atol=1e-6)
    with pytest.raises(InvalidInput, match=r"^input__0: expected shape \[-1, 21\]"):
        clients["http"].infer(XGBOOST, {"input__0": features[:, :20]})


def test_servers_errors_are_typed(clients, frame, endpoint) -> None:
    bad = frame.head(8).copy()
    bad.loc[bad.index[3], "Amount"] = "abc"
    for name, client in clients.items():
        with pytest.raises(InvalidInput, match=r"Amount: 'abc' is not an amount") as raised:
            client.score_transactions(bad)
        assert raised.value.status == 400, name
    for name in ("http", "grpc"):
        with pytest.raises(ModelNotFound, match="unknown model") as raised:
            clients[name].score_transactions(frame.head(2), model="no_such_model")
        assert raised.value.status == 404
    unknown = Client.sagemaker(target_model="no_such_1.tar.gz", endpoint_url=endpoint.url, **LOCAL)
    with unknown, pytest.raises(ModelNotFound, match="Could not find model data") as raised:
        unknown.score_transactions(frame.head(2))
    assert raised.value.code == "ValidationError"


def test_async_client_gives_the_same_answers(served, endpoint, frame, big_frame, clients) -> None:
    reference = {"small": clients["http"].score_transactions(frame),
                 "big": clients["http"].score_transactions(big_frame)}

    async def score_everywhere() -> list[tuple[str, pd.DataFrame, pd.DataFrame]]:
        async with AsyncClient.http(served.settings.http_url) as http, \
                AsyncClient.grpc(served.settings.grpc_url) as grpc, \
                AsyncClient.sagemaker(target_model=TARGET, endpoint_url=endpoint.url, **LOCAL) as sagemaker:
            results = []
            for name, client in (("http", http), ("grpc", grpc), ("sagemaker", sagemaker)):
                small, big = await asyncio.gather(client.score_transactions(frame),
                                                  client.score_transactions(big_frame))
                results.append((name, small, big))
            bad = frame.head(2).copy()
            bad.loc[bad.index[0], "Amount"] = "abc"
            with pytest.raises(InvalidInput, match="Amount"):
                await grpc.score_transactions(bad)
            return results

    results = asyncio.run(score_everywhere())
    assert [name for name, _, _ in results] == ["http", "grpc", "sagemaker"]
    for _name, small, big in results:
        assert_same_scores(small, reference["small"])
        assert_same_scores(big, reference["big"])


def shared_regions() -> set[str]:
    return {p.name for p in Path("/dev/shm").glob("tritonmm_*")}


def test_shared_memory_gives_the_same_answers_and_cleans_up(served, clients, big_frame) -> None:
    before = shared_regions()
    reference = clients["http"].score_transactions(big_frame)
    features = np.random.default_rng(1).normal(size=(500, 21)).astype(np.float32)
    expected = clients["http"].infer(XGBOOST, {"input__0": features})["output__0"]
    with Client.http(served.settings.http_url, use_shared_memory=True) as http, \
            Client.grpc(served.settings.grpc_url, use_shared_memory=True) as grpc:
        for client in (http, grpc):
            assert_same_scores(client.score_transactions(big_frame), reference)
            np.testing.assert_array_equal(client.infer(XGBOOST, {"input__0": features})["output__0"], expected)

    async def score_async() -> pd.DataFrame:
        async with AsyncClient.grpc(served.settings.grpc_url, use_shared_memory=True) as client:
            return await client.score_transactions(big_frame)

    assert_same_scores(asyncio.run(score_async()), reference)
    assert shared_regions() == before
    status = httpx.get(f"{served.settings.http_url}/v2/systemsharedmemory/status", timeout=10)
    assert status.status_code == 200 and status.json() == []


# --- retries against a scripted KServe v2 server ---------------------------------------------------

CONFIG = {"name": "m", "max_batch_size": 4,
          "input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [2]}],
          "output": [{"name": "y", "data_type": "TYPE_FP32", "dims": [2]}]}
ANSWER = {"model_name": "m", "outputs": [{"name": "y", "datatype": "FP32", "shape": [1, 2], "data": [1.0, 2.0]}]}


@dataclass
class Script:
    """What the server answers to successive infer calls (the last one repeats), and what it saw."""

    answers: list[tuple[int, dict]]
    delay_s: float = 0.0
    infer_calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_answer(self) -> tuple[int, dict]:
        with self.lock:
            self.infer_calls += 1
            return self.answers[min(self.infer_calls, len(self.answers)) - 1]


def scripted_server(script: Script) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, status: int, body: dict) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path == "/v2/models/m/config":
                self._send(200, CONFIG)
            else:
                self._send(404, {"error": "Request for unknown model: 'x' is not found"})

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status, body = script.next_answer()
            time.sleep(script.delay_s)
            self._send(status, body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def serve_script() -> Iterator:
    servers: list[ThreadingHTTPServer] = []

    def start(script: Script) -> str:
        servers.append(scripted_server(script))
        return f"http://127.0.0.1:{servers[-1].server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


X = {"x": np.ones((1, 2), np.float32)}
BUSY = (503, {"error": "Server is busy"})


def test_503_twice_then_an_answer(serve_script) -> None:
    script, sleeps = Script([BUSY, BUSY, (200, ANSWER)]), []
    with Client.http(serve_script(script), sleep=sleeps.append) as client:
        assert client.infer("m", X)["y"].tolist() == [[1.0, 2.0]]
    assert script.infer_calls == 3
    assert len(sleeps) == 2 and 0 <= sleeps[0] <= 0.1 and 0 <= sleeps[1] <= 0.2


def test_async_client_retries_too(serve_script) -> None:
    script, sleeps = Script([BUSY, BUSY, (200, ANSWER)]), []

    async def record(seconds: float) -> None:
        sleeps.append(seconds)

    async def call() -> dict[str, np.ndarray]:
        async with AsyncClient.http(serve_script(script), sleep=record) as client:
            return await client.infer("m", X)

    assert asyncio.run(call())["y"].tolist() == [[1.0, 2.0]]
    assert script.infer_calls == 3 and len(sleeps) == 2


def test_400_is_not_retried(serve_script) -> None:
    script = Script([(400, {"error": "x: value out of range"})])
    with Client.http(serve_script(script), sleep=pytest.fail) as client, \
            pytest.raises(InvalidInput, match="x: value out of range"):
        client.infer("m", X)
    assert script.infer_calls == 1


def test_busy_for_good_gives_unavailable_after_the_retries(serve_script) -> None:
    script, sleeps = Script([BUSY]), []
    with Client.http(serve_script(script), retries=2, sleep=sleeps.append) as client, \
            pytest.raises(Unavailable, match="Server is busy"):
        client.infer("m", X)
    assert script.infer_calls == 3 and len(sleeps) == 2


def test_a_timeout_is_not_retried(serve_script) -> None:
    script = Script([(200, ANSWER)], delay_s=1.0)
    with Client.http(serve_script(script), timeout=0.3, sleep=pytest.fail) as client:
        client.model_config("m")
        with pytest.raises(Timeout):
            client.infer("m", X)
    assert script.infer_calls == 1


def test_no_server_at_all_is_unavailable_after_retries() -> None:
    sleeps: list[float] = []
    for client in (Client.http(f"127.0.0.1:{free_port()}", sleep=sleeps.append),
                   Client.grpc(f"127.0.0.1:{free_port()}", sleep=sleeps.append, timeout=5)):
        with client, pytest.raises(Unavailable):
            client.infer("m", X)
    assert len(sleeps) == 6
