"""Triton's KServe v2 gRPC endpoint through ``tritonclient.grpc`` (sync) and ``tritonclient.grpc.aio``.

Tensors travel as protobuf raw contents (gRPC's own binary form); errors arrive
as ``InferenceServerException`` with a gRPC status name (``StatusCode.NOT_FOUND``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aiogrpcclient

from .._types import ModelConfig, Tensors
from ._shm import SharedMemoryCall, unregister, unregister_async
from ._triton import config_from_triton, infer_inputs, requested_outputs, result_arrays


def _output_names(result: grpcclient.InferResult) -> list[str]:
    return [output.name for output in result.get_response().outputs]


class GrpcTransport:
    """Blocking gRPC transport (``url`` is ``host:port``, no scheme).

    ``timeout`` is each call's deadline, in seconds. ``use_shared_memory``: see
    :class:`~tritonmm.client._transports.http.HttpTransport`.
    """

    def __init__(self, url: str, *, timeout: float, use_shared_memory: bool = False) -> None:
        self._client = grpcclient.InferenceServerClient(url)
        self._timeout = timeout
        self._use_shared_memory = use_shared_memory
        self._configs: dict[str, ModelConfig] = {}

    def model_config(self, model: str) -> ModelConfig:
        answer = self._client.get_model_config(model, as_json=True, client_timeout=self._timeout)
        return config_from_triton(answer["config"])

    def infer(self, model: str, inputs: Tensors, outputs: Sequence[str] | None) -> dict[str, np.ndarray]:
        if self._use_shared_memory:
            return self._infer_shared(model, inputs, outputs)
        result = self._client.infer(model, infer_inputs(grpcclient, inputs),
                                    outputs=requested_outputs(grpcclient, outputs), client_timeout=self._timeout)
        return result_arrays(result, _output_names(result))

    def _infer_shared(self, model: str, inputs: Tensors, outputs: Sequence[str] | None) -> dict[str, np.ndarray]:
        if model not in self._configs:
            self._configs[model] = self.model_config(model)
        with SharedMemoryCall(grpcclient, self._configs[model], inputs, outputs) as call:
            self._client.register_system_shared_memory(call.name, call.key, call.byte_size,
                                                       client_timeout=self._timeout)
            try:
                result = self._client.infer(model, call.inputs(), outputs=call.outputs(), client_timeout=self._timeout)
            finally:
                unregister(lambda: self._client.unregister_system_shared_memory(
                    call.name, client_timeout=self._timeout))
            return call.read(result)

    def close(self) -> None:
        self._client.close()


class AsyncGrpcTransport:
    """asyncio gRPC transport; ``timeout`` is each call's deadline, in seconds."""

    def __init__(self, url: str, *, timeout: float, use_shared_memory: bool = False) -> None:
        self._client = aiogrpcclient.InferenceServerClient(url)
        self._timeout = timeout
        self._use_shared_memory = use_shared_memory
        self._configs: dict[str, ModelConfig] = {}

    async def model_config(self, model: str) -> ModelConfig:
        answer = await self._client.get_model_config(model, as_json=True, client_timeout=self._timeout)
        return config_from_triton(answer["config"])

    async def infer(self, model: str, inputs: Tensors, outputs: Sequence[str] | None) -> dict[str, np.ndarray]:
        if self._use_shared_memory:
            return await self._infer_shared(model, inputs, outputs)
        result = await self._client.infer(model, infer_inputs(grpcclient, inputs),
                                          outputs=requested_outputs(grpcclient, outputs), client_timeout=self._timeout)
        return result_arrays(result, _output_names(result))

    async def _infer_shared(self, model: str, inputs: Tensors, outputs: Sequence[str] | None) -> dict[str, np.ndarray]:
        if model not in self._configs:
            self._configs[model] = await self.model_config(model)
        with SharedMemoryCall(grpcclient, self._configs[model], inputs, outputs) as call:
            await self._client.register_system_shared_memory(call.name, call.key, call.byte_size,
                                                             client_timeout=self._timeout)
            try:
                result = await self._client.infer(model, call.inputs(), outputs=call.outputs(),
                                                  client_timeout=self._timeout)
            finally:
                await unregister_async(lambda: self._client.unregister_system_shared_memory(
                    call.name, client_timeout=self._timeout))
            return call.read(result)

    async def close(self) -> None:
        await self._client.close()
