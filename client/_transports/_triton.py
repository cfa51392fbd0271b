"""What the HTTP, gRPC and SageMaker transports share: tritonclient tensors and Triton's config JSON.

``tritonclient.http`` and ``tritonclient.grpc`` expose the same ``InferInput`` /
``InferRequestedOutput`` / ``InferResult`` API, so these helpers take the module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from .._codec import datatype_from_config, datatype_of, to_wire
from .._types import ModelConfig, TensorConfig, Tensors


def _tensor_config(entry: Mapping[str, Any]) -> TensorConfig:
    spec: TensorConfig = {
        "name": entry["name"],
        "datatype": datatype_from_config(entry["data_type"]),
        # gRPC's JSON form writes int64 values as strings.
        "dims": [int(d) for d in entry.get("dims", [])],
    }
    if entry.get("optional"):
        spec["optional"] = True
    return spec


def config_from_triton(config: Mapping[str, Any]) -> ModelConfig:
    """Triton's model configuration (``GET /v2/models/<m>/config``, or gRPC's ``as_json``) -> :class:`ModelConfig`.

    gRPC omits fields at their default (``max_batch_size`` 0, empty lists).
    """
    return {
        "max_batch_size": int(config.get("max_batch_size", 0)),
        "inputs": [_tensor_config(entry) for entry in config.get("input", [])],
        "outputs": [_tensor_config(entry) for entry in config.get("output", [])],
    }


def infer_inputs(module: ModuleType, inputs: Tensors, **options: Any) -> list[Any]:
    """``module.InferInput`` objects carrying ``inputs`` (``options`` go to ``set_data_from_numpy``)."""
    tensors = []
    for name, array in inputs.items():
        wire = to_wire(array)
        tensor = module.InferInput(name, list(wire.shape), datatype_of(wire))
        tensor.set_data_from_numpy(wire, **options)
        tensors.append(tensor)
    return tensors


def requested_outputs(module: ModuleType, names: Sequence[str] | None, **options: Any) -> list[Any] | None:
    """``module.InferRequestedOutput`` objects for ``names``; ``None`` asks for every output."""
    return None if names is None else [module.InferRequestedOutput(name, **options) for name in names]


def result_arrays(result: Any, names: Iterable[str]) -> dict[str, np.ndarray]:
    """The named outputs of an ``InferResult`` as numpy arrays (BYTES: object arrays of ``bytes``)."""
    return {name: result.as_numpy(name) for name in names}
