"""A closed-loop load generator over tritonclient's asyncio clients (HTTP and gRPC).

``concurrency`` tasks each send the same prepared request back to back for a
fixed time; one event loop keeps the client's own CPU use low, which matters
when client and server share two cores.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tritonclient.grpc.aio as grpc_aio
import tritonclient.http.aio as http_aio


@dataclass(frozen=True)
class LoadResult:
    """Throughput and latency of one load cell."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds


def _inputs(module, arrays: dict[str, np.ndarray], binary: bool) -> list:
    inputs = []
    for name, array in arrays.items():
        tensor = module.InferInput(name, list(array.shape), "BYTES" if array.dtype == object else "FP32")
        if module is http_aio:
            tensor.set_data_from_numpy(array, binary_data=binary)
        else:
            tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs


async def _run(url: str, protocol: str, model: str, arrays: dict[str, np.ndarray], outputs: Sequence[str],
               concurrency: int, seconds: float, warmup: float, binary: bool) -> LoadResult:
    module = http_aio if protocol == "http" else grpc_aio
    client = module.InferenceServerClient(url, conn_limit=concurrency) if module is http_aio else module.InferenceServerClient(url)
    inputs = _inputs(module, arrays, binary)
    requested = [module.InferRequestedOutput(n, binary_data=binary) if module is http_aio else module.InferRequestedOutput(n) for n in outputs]
    # For servers other than Triton (MLServer): a JSON body must say so, and tritonclient's
    # asyncio client cannot read the gzip bodies MLServer sends unless told not to.
    headers = None
    if module is http_aio and not binary:
        headers = {"Content-Type": "application/json", "Accept-Encoding": "identity"}
    latencies: list[float] = []
    measuring = False

    async def worker(stop_at: float) -> None:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            await client.infer(model, inputs, outputs=requested, headers=headers)
            if measuring:
                latencies.append(time.perf_counter() - started)

    try:
        await asyncio.gather(*(worker(time.perf_counter() + warmup) for _ in range(concurrency)))
        measuring = True
        began = time.perf_counter()
        await asyncio.gather(*(worker(began + seconds) for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    finally:
        await client.close()
    ms = np.asarray(latencies) * 1e3
    return LoadResult(len(latencies), elapsed, float(np.percentile(ms, 50)), float(np.percentile(ms, 99)))


def run_load(url: str, protocol: str, model: str, arrays: dict[str, np.ndarray], outputs: Sequence[str], *,
             concurrency: int, seconds: float = 3.0, warmup: float = 0.5, binary: bool = True) -> LoadResult:
    """Drive ``model`` with ``concurrency`` closed-loop callers for ``seconds``; ``url`` is host:port.

    ``binary=False`` sends HTTP tensors as JSON lists (for servers without
    Triton's binary-tensor extension, such as MLServer).
    """
    return asyncio.run(_run(url, protocol, model, arrays, outputs, concurrency, seconds, warmup, binary))
