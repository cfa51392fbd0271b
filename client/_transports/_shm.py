"""System shared memory for one request, when Triton runs on the same host.

Fixed-size tensors (every datatype but BYTES, with no ``-1`` in an output's
dims) are laid out back to back in one POSIX shared-memory region created for
the call: Triton reads the inputs from it and writes the outputs into it, so
they never cross the socket. BYTES tensors have no size known in advance for
outputs and a length-prefixed encoding for inputs: they stay inline. The
transport registers the region with the server before the call and unregisters
it after (:func:`unregister`: Triton lets go of a region a moment after the
answer has left); leaving the ``with`` block destroys it.

The region is made with the standard library's ``multiprocessing.shared_memory``
(a POSIX ``shm_open`` object, the key Triton maps): tritonclient 2.51's
``tritonclient.utils.shared_memory`` needs ``pkg_resources``, which setuptools
no longer ships.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from multiprocessing.shared_memory import SharedMemory
from types import ModuleType, TracebackType
from typing import Any

import numpy as np
from tritonclient.utils import InferenceServerException

from .._codec import BYTES, datatype_of, fixed_itemsize, numpy_dtype
from .._types import ModelConfig, TensorConfig, Tensors
from ._triton import infer_inputs, result_arrays

UNREGISTER_WAITS_S = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
"""Pauses between attempts to unregister a region Triton still holds ("currently in use")."""


def _in_use(exc: InferenceServerException) -> bool:
    return "currently in use" in (exc.message() or "")


def unregister(release: Callable[[], object]) -> None:
    """Call ``release`` (the client's unregister) until Triton no longer reports the region in use.

    Triton drops its reference to a region when it frees the response, which
    can happen just after the client has read the answer.
    """
    for wait in UNREGISTER_WAITS_S:
        try:
            release()
            return
        except InferenceServerException as exc:
            if not _in_use(exc):
                raise
        time.sleep(wait)
    release()


async def unregister_async(release: Callable[[], Awaitable[object]]) -> None:
    """:func:`unregister` for the asyncio clients."""
    for wait in UNREGISTER_WAITS_S:
        try:
            await release()
            return
        except InferenceServerException as exc:
            if not _in_use(exc):
                raise
        await asyncio.sleep(wait)
    await release()


def _fixed_byte_size(spec: TensorConfig | None, batch: list[int]) -> int | None:
    """Bytes of an output of known shape and fixed-size type, or ``None`` if it must come back inline."""
    itemsize = None if spec is None else fixed_itemsize(spec["datatype"])
    if spec is None or itemsize is None or any(int(d) < 0 for d in spec["dims"]):
        return None
    return math.prod(batch + [int(d) for d in spec["dims"]]) * itemsize


def _shape_and_datatype(output: Any) -> tuple[list[int], str]:
    """An output's shape and datatype from an HTTP (dict) or gRPC (protobuf) response."""
    if isinstance(output, dict):
        return list(output["shape"]), output["datatype"]
    return list(output.shape), output.datatype


@dataclass(frozen=True)
class _Placed:
    """Where one tensor lies in the region."""

    offset: int
    byte_size: int


class SharedMemoryCall:
    """The region and tensors of one request; a context manager that destroys the region on exit.

    Parameters
    ----------
    module : module
        ``tritonclient.http`` or ``tritonclient.grpc``: whose ``InferInput`` /
        ``InferRequestedOutput`` to build.
    config : ModelConfig
        The model's schema: output shapes size the region.
    inputs, outputs
        The request, as given to ``Transport.infer``.
    """

    def __init__(self, module: ModuleType, config: ModelConfig, inputs: Tensors, outputs: Sequence[str] | None) -> None:
        self.name = f"tritonmm_{uuid.uuid4().hex}"
        self.key = f"/{self.name}"
        self._module = module
        self._inputs = inputs
        self._inline_inputs = {name: a for name, a in inputs.items() if datatype_of(a) == BYTES}
        self._shared_inputs: dict[str, _Placed] = {}
        offset = 0
        for name, array in inputs.items():
            if name not in self._inline_inputs:
                self._shared_inputs[name] = _Placed(offset, array.nbytes)
                offset += array.nbytes
        batch = [len(next(iter(inputs.values())))] if config["max_batch_size"] > 0 else []
        specs = {spec["name"]: spec for spec in config["outputs"]}
        self._inline_outputs: list[str] = []
        self._shared_outputs: dict[str, _Placed] = {}
        for name in outputs if outputs is not None else list(specs):
            size = _fixed_byte_size(specs.get(name), batch)
            if size is None:
                self._inline_outputs.append(name)
            else:
                self._shared_outputs[name] = _Placed(offset, size)
                offset += size
        self.byte_size = max(offset, 1)  # a region cannot be empty
        self._region = SharedMemory(self.name, create=True, size=self.byte_size)
        for name, place in self._shared_inputs.items():
            array = inputs[name]
            np.ndarray(array.shape, array.dtype, buffer=self._region.buf, offset=place.offset)[...] = array

    def __enter__(self) -> SharedMemoryCall:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._region.close()
        self._region.unlink()

    def inputs(self, **options: Any) -> list[Any]:
        """``InferInput`` objects; ``options`` (``binary_data=True`` for HTTP) apply to the inline ones."""
        tensors = infer_inputs(self._module, self._inline_inputs, **options)
        for name, place in self._shared_inputs.items():
            array = self._inputs[name]
            tensor = self._module.InferInput(name, list(array.shape), datatype_of(array))
            tensors.append(tensor.set_shared_memory(self.name, place.byte_size, offset=place.offset))
        return tensors

    def outputs(self, **options: Any) -> list[Any]:
        """``InferRequestedOutput`` objects; ``options`` apply to the inline ones."""
        tensors = [self._module.InferRequestedOutput(name, **options) for name in self._inline_outputs]
        for name, place in self._shared_outputs.items():
            tensor = self._module.InferRequestedOutput(name)
            tensor.set_shared_memory(self.name, place.byte_size, offset=place.offset)
            tensors.append(tensor)
        return tensors

    def read(self, result: Any) -> dict[str, np.ndarray]:
        """The outputs of ``result``: shared ones copied out of the region (it is about to be destroyed)."""
        arrays = result_arrays(result, self._inline_outputs)
        for name, place in self._shared_outputs.items():
            shape, datatype = _shape_and_datatype(result.get_output(name))
            view: np.ndarray = np.ndarray(shape, numpy_dtype(datatype), buffer=self._region.buf, offset=place.offset)
            arrays[name] = view.copy()  # the region is destroyed after the call
        return arrays
