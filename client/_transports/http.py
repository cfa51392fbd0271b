"""Triton's KServe v2 HTTP endpoint through ``tritonclient.http`` (sync) and ``tritonclient.http.aio``.

Tensors travel with the binary tensor extension both ways (``binary_data=True``):
a BYTES or FP32 column costs its raw size instead of a JSON list, several times
less to encode, send and parse for a batch of thousands of rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tritonclient.http as httpclient
import tritonclient.http.aio as aiohttpclient

from .._types import ModelConfig, Tensors
from ._shm import SharedMemoryCall, unregister, unregister_async
from ._triton import config_from_triton, infer_inputs, requested_outputs, result_arrays


def split_url(url: str) -> tuple[str, bool]:
    """``"http://host:port/base"`` -> (``"host:port/base"``, ssl): tritonclient takes no scheme.

    Examples
    --------
    >>> split_url("http://127.0.0.1:8000"), split_url("triton.example:443")
    (('127.0.0.1:8000', False), ('triton.example:443', False))
    """
    for scheme, ssl in (("http://", False), ("https://", True)):
        if url.startswith(scheme):
            return url.removeprefix(scheme).rstrip("/"), ssl
    return url.rstrip("/"), False


def _output_names(result: httpclient.InferResult) -> list[str]:
    return [output["name"] for output in result.get_response()["outputs"]]


class HttpTransport:
    """Blocking HTTP transport; one connection, so one thread at a time (as ``tritonclient.http``).

    ``timeout`` bounds connecting and each network read, in seconds.
    ``use_shared_memory`` passes fixed-size tensors through system shared memory
    (the server must run on this host); BYTES tensors stay inline.
    """

    def __init__(self, url: str, *, timeout: float, use_shared_memory: bool = False) -> None:
        address, ssl = split_url(url)
        self._client = httpclient.InferenceServerClient(
            address, connection_timeout=timeout, network_timeout=timeout, ssl=ssl)
        self._use_shared_memory = use_shared_memory
        self._configs: dict[str, ModelConfig] = {}

    def model_config(self, model: str) -> ModelConfig:
        return config_from_triton(self._client.get_model_config(model))

    def infer(self, model: str, inputs: Tensors, outputs: Sequence[str] | None) -> dict[str, np.ndarray]:
        if self._use_shared_memory:
            return self._infer_shared(model, inputs, outputs)
        result = self._client.infer(model, infer_inputs(httpclient, inputs, binary_data=True),
                                    outputs=requested_outputs(httpclient, outputs, binary_data=True))
        return result_arrays(result, _output_names(result))

    def _infer_shared(self, model: str, inputs: Tensors, outputs: Sequence[str] | None) -> dict[str, np.ndarray]:
        if model not in self._configs:
            self._configs[model] = self.model_config(model)
        with SharedMemoryCall(httpclient, self._configs[model], inputs, outputs) as call:
            self._client.register_system_shared_memory(call.name, call.key, call.byte_size)
            try:
                result = self._client.infer(model, call.inputs(binary_data=True),
                                            outputs=call.outputs(binary_data=True))
            finally:
                unregister(lambda: self._client.unregister_system_shared_memory(call.name))
            return call.read(result)

    def close(self) -> None:
        self._client.close()


class AsyncHttpTransport:
    """asyncio HTTP transport (aiohttp); concurrent calls share a connection pool.

    ``timeout`` bounds each whole request, in seconds.
    """

    def __init__(self, url: str, *, timeout: float, use_shared_memory: bool = False) -> None:
        address, ssl = split_url(url)
        self._client = aiohttpclient.InferenceServerClient(address, conn_timeout=timeout, ssl=ssl)
        self._use_shared_memory = use_shared_memory
        self._configs: dict[str, ModelConfig] = {}

    async def model_config(self, model: str) -> ModelConfig:
        return config_from_triton(await self._client.get_model_config(model))

    async def infer(self, model: str, inputs: Tensors, outputs: Sequence[str] | None) -> dict[str, np.ndarray]:
        if self._use_shared_memory:
            return await self._infer_shared(model, inputs, outputs)
        result = await self._client.infer(model, infer_inputs(httpclient, inputs, binary_data=True),
                                          outputs=requested_outputs(httpclient, outputs, binary_data=True))
        return result_arrays(result, _output_names(result))

    async def _infer_shared(self, model: str, inputs: Tensors, outputs: Sequence[str] | None) -> dict[str, np.ndarray]:
        if model not in self._configs:
            self._configs[model] = await self.model_config(model)
        with SharedMemoryCall(httpclient, self._configs[model], inputs, outputs) as call:
            await self._client.register_system_shared_memory(call.name, call.key, call.byte_size)
            try:
                result = await self._client.infer(model, call.inputs(binary_data=True),
                                                  outputs=call.outputs(binary_data=True))
            finally:
                await unregister_async(lambda: self._client.unregister_system_shared_memory(call.name))
            return call.read(result)

    async def close(self) -> None:
        await self._client.close()
