"""The clients' request policy over a fake transport: retries with jittered backoff, chunking in order."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from tritonmm.client import AsyncClient, Client, InvalidInput, ModelConfig, Timeout, Unavailable
from tritonmm.client._retry import BACKOFF_BASE_S, BACKOFF_CAP_S, RetryPolicy

CONFIG: ModelConfig = {
    "max_batch_size": 8,
    "inputs": [{"name": "x", "datatype": "FP32", "dims": [2]}, {"name": "tag", "datatype": "BYTES", "dims": [1]}],
    "outputs": [{"name": "y", "datatype": "FP32", "dims": [2]}, {"name": "tag", "datatype": "BYTES", "dims": [1]}],
}


def busy() -> InferenceServerException:
    return InferenceServerException("Server is busy", "503")


class FakeTransport:
    """Answers with ``x * 2`` and the tags; raises ``failures`` first, one per call; records every call."""

    def __init__(self, config: ModelConfig = CONFIG, failures: Sequence[Exception] = ()) -> None:
        self.config = config
        self.failures = list(failures)
        self.chunk_sizes: list[int] = []
        self.config_calls = 0

    def model_config(self, model: str) -> ModelConfig:
        self.config_calls += 1
        return self.config

    def infer(self, model: str, inputs: dict[str, np.ndarray], outputs: Sequence[str] | None) -> dict[str, np.ndarray]:
        self.chunk_sizes.append(len(inputs["x"]))
        if self.failures:
            raise self.failures.pop(0)
        return {"y": inputs["x"] * 2, "tag": inputs["tag"]}

    def close(self) -> None:
        pass


class AsyncFakeTransport:
    """The async face of a FakeTransport; chunk answers finish in random order to test ordering."""

    def __init__(self, fake: FakeTransport) -> None:
        self.fake = fake
        self.in_flight = self.most_in_flight = 0

    async def model_config(self, model: str) -> ModelConfig:
        return self.fake.model_config(model)

    async def infer(self, model: str, inputs: dict[str, np.ndarray],
                    outputs: Sequence[str] | None) -> dict[str, np.ndarray]:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(random.uniform(0, 0.01))
            return self.fake.infer(model, inputs, outputs)
        finally:
            self.in_flight -= 1

    async def close(self) -> None:
        pass


def batch(rows: int) -> dict[str, np.ndarray]:
    return {"x": np.arange(rows * 2, dtype=np.float32).reshape(rows, 2),
            "tag": np.array([[f"row {i}".encode()] for i in range(rows)], dtype=object)}


def assert_bounded_backoff(sleeps: list[float]) -> None:
    for attempt, seconds in enumerate(sleeps):
        assert 0 <= seconds <= min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt), (attempt, seconds)


# --- retries ---------------------------------------------------------------------------------------


def test_503_twice_then_ok_succeeds_on_the_third_attempt() -> None:
    fake, sleeps = FakeTransport(failures=[busy(), busy()]), []
    outputs = Client(fake, sleep=sleeps.append).infer("m", batch(3))
    assert fake.chunk_sizes == [3, 3, 3]
    assert len(sleeps) == 2
    assert_bounded_backoff(sleeps)
    np.testing.assert_array_equal(outputs["y"], batch(3)["x"] * 2)


@pytest.mark.parametrize("failure", [
    InferenceServerException("Amount: 'abc' is not an amount", "400"),
    InferenceServerException("Request for unknown model: 'm' is not found", "404"),
    InferenceServerException("forbidden", "403"),
    TimeoutError("timed out"),
    InferenceServerException("boom", "500"),
])
def test_no_retry_unless_the_server_says_try_later(failure: Exception) -> None:
    fake, sleeps = FakeTransport(failures=[failure, busy()]), []
    with pytest.raises(Exception) as raised:
        Client(fake, sleep=sleeps.append).infer("m", batch(3))
    assert not isinstance(raised.value, Unavailable)
    assert raised.value.__cause__ is failure
    assert fake.chunk_sizes == [3] and sleeps == []


def test_gives_up_after_the_retries_with_the_last_error() -> None:
    fake, sleeps = FakeTransport(failures=[busy()] * 10), []
    with pytest.raises(Unavailable, match="busy") as raised:
        Client(fake, retries=3, sleep=sleeps.append).infer("m", batch(3))
    assert raised.value.status == 503
    assert len(fake.chunk_sizes) == 4 and len(sleeps) == 3
    assert_bounded_backoff(sleeps)


def test_connection_errors_are_retried_and_retries_zero_means_one_attempt() -> None:
    fake, sleeps = FakeTransport(failures=[ConnectionRefusedError(111, "refused")]), []
    Client(fake, sleep=sleeps.append).infer("m", batch(1))
    assert len(fake.chunk_sizes) == 2 and len(sleeps) == 1
    fake = FakeTransport(failures=[ConnectionRefusedError(111, "refused")])
    with pytest.raises(Unavailable):
        Client(fake, retries=0, sleep=sleeps.append).infer("m", batch(1))
    assert len(fake.chunk_sizes) == 1


def test_bugs_propagate_unchanged() -> None:
    fake = FakeTransport(failures=[ValueError("a bug")])
    with pytest.raises(ValueError, match="a bug"):
        Client(fake, sleep=pytest.fail).infer("m", batch(1))


def test_backoff_is_full_jitter_exponential_and_capped() -> None:
    policy, error = RetryPolicy(retries=10), Unavailable("busy")
    for attempt in range(10):
        ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt)
        samples = [policy.backoff(attempt, error) for _ in range(200)]
        assert all(0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling / 2 and min(samples) < ceiling / 2  # spread over the range: jittered
    assert policy.backoff(10, error) is None
    assert policy.backoff(0, Timeout("slow")) is None
    with pytest.raises(ValueError):
        RetryPolicy(retries=-1)


def test_async_retries_the_same_way() -> None:
    fake, sleeps = FakeTransport(failures=[busy(), busy()]), []

    async def record(seconds: float) -> None:
        sleeps.append(seconds)

    async def main() -> dict[str, np.ndarray]:
        async with AsyncClient(AsyncFakeTransport(fake), sleep=record) as client:
            return await client.infer("m", batch(3))

    outputs = asyncio.run(main())
    assert fake.chunk_sizes == [3, 3, 3] and len(sleeps) == 2
    assert_bounded_backoff(sleeps)
    np.testing.assert_array_equal(outputs["y"], batch(3)["x"] * 2)
    fake = FakeTransport(failures=[InferenceServerException("bad", "400")])
    with pytest.raises(InvalidInput):
        asyncio.run(AsyncClient(AsyncFakeTransport(fake), sleep=record).infer("m", batch(3)))
    assert fake.chunk_sizes == [3] and len(sleeps) == 2


# --- chunking --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("rows", "sizes"), [(20, [8, 8, 4]), (8, [8]), (16, [8, 8]), (1, [1])])
def test_large_batches_are_split_and_joined_in_order(rows: int, sizes: list[int]) -> None:
    fake = FakeTransport()
    client = Client(fake)
    outputs = client.infer("m", batch(rows))
    assert fake.chunk_sizes == sizes
    np.testing.assert_array_equal(outputs["y"], batch(rows)["x"] * 2)
    np.testing.assert_array_equal(outputs["tag"], batch(rows)["tag"])
    client.infer("m", batch(rows))
    assert fake.config_calls == 1  # the schema is read once per model


def test_a_model_without_batching_is_sent_whole() -> None:
    config: ModelConfig = {**CONFIG, "max_batch_size": 0,
                           "inputs": [{"name": "x", "datatype": "FP32", "dims": [-1, 2]},
                                      {"name": "tag", "datatype": "BYTES", "dims": [-1, 1]}]}
    fake = FakeTransport(config)
    Client(fake).infer("m", batch(20))
    assert fake.chunk_sizes == [20]


def test_async_chunks_run_concurrently_and_come_back_in_order() -> None:
    fake = FakeTransport()
    transport = AsyncFakeTransport(fake)
    outputs = asyncio.run(AsyncClient(transport, max_concurrency=3).infer("m", batch(60)))
    assert sorted(fake.chunk_sizes) == [4] + [8] * 7
    assert 1 < transport.most_in_flight <= 3
    with pytest.raises(ValueError, match="max_concurrency"):
        AsyncClient(transport, max_concurrency=0)
    np.testing.assert_array_equal(outputs["y"], batch(60)["x"] * 2)
    np.testing.assert_array_equal(outputs["tag"], batch(60)["tag"])


def test_a_failing_chunk_fails_the_call() -> None:
    fake = FakeTransport(failures=[InferenceServerException("bad row", "400")])
    with pytest.raises(InvalidInput, match="bad row"):
        asyncio.run(AsyncClient(AsyncFakeTransport(fake), max_concurrency=1).infer("m", batch(20)))
    with pytest.raises(InvalidInput, match="bad row"):
        Client(FakeTransport(failures=[busy(), InferenceServerException("bad row", "400")]),
               sleep=lambda s: None).infer("m", batch(20))
