"""ONNX exporter: an ``.onnx`` file -> a ``backend: "onnxruntime"`` model folder.

Tensor names, data types and shapes are read from the graph with the ``onnx``
package, so the config always matches the file: the first dim of every input
and output is the batch axis (it must be symbolic, as ``dynamic_axes`` makes
it) and is left out of ``dims``; other symbolic dims become ``-1``. The same
config runs on the embedded server (our Python-based backend) and on NVIDIA's
native ONNX Runtime backend; ``KIND_AUTO`` puts instances on a GPU where there
is one.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import onnx
from onnx import helper

from tritonmm.server.backends.onnxruntime.ort_session import DEFAULT_MODEL_FILENAME, config_type

from .model_config import VERSION, ModelConfig, model_config, tensor, write_config


def _graph(onnx_file: Path) -> onnx.GraphProto:
    """The graph without its (possibly external, possibly huge) weights."""
    return onnx.load(str(onnx_file), load_external_data=False).graph


def _config_tensor(onnx_file: Path, value: onnx.ValueInfoProto, *, batched: bool) -> dict:
    """A config tensor for one graph input/output; ``ValueError`` naming it when Triton could not serve it."""
    if not value.type.HasField("tensor_type"):
        raise ValueError(f"{onnx_file}: '{value.name}' is not a tensor")
    tensor_type = value.type.tensor_type
    try:
        data_type = config_type(helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{onnx_file}: '{value.name}' has ONNX type "
                         f"{onnx.TensorProto.DataType.Name(tensor_type.elem_type)}: {exc}") from None
    dims = [dim.dim_value if dim.HasField("dim_value") else -1 for dim in tensor_type.shape.dim]
    if not batched:
        return tensor(value.name, data_type, dims)
    if not dims or dims[0] != -1:
        raise ValueError(
            f"{onnx_file}: '{value.name}' has shape {dims}, but with max_batch_size > 0 its first dim must be the "
            f"batch axis, symbolic: export with e.g. dynamic_axes={{'{value.name}': {{0: 'batch'}}}}, "
            f"or pass max_batch_size=0 to serve the graph's shapes as they are"
        )
    return tensor(value.name, data_type, dims[1:])


def onnx_model_config(
    onnx_file: Path,
    name: str,
    *,
    max_batch_size: int,
    instance_count: int | None = 1,
    parameters: Mapping[str, str] | None = None,
    dynamic_batching: bool = True,
) -> ModelConfig:
    """A ``backend: "onnxruntime"`` config for ``onnx_file``, tensors read from its graph.

    ``parameters`` are the native backend's (e.g. ``intra_op_thread_count``);
    ``instance_count=None`` leaves the count to Triton (one per GPU).
    """
    graph = _graph(onnx_file)
    # Old exports list weights as graph inputs too; ONNX Runtime does not need them fed.
    initializers = {initializer.name for initializer in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initializers]
    batched = max_batch_size > 0
    return model_config(
        name=name,
        backend="onnxruntime",
        max_batch_size=max_batch_size,
        inputs=[_config_tensor(onnx_file, value, batched=batched) for value in inputs],
        outputs=[_config_tensor(onnx_file, value, batched=batched) for value in graph.output],
        parameters=parameters,
        instance_kind="KIND_AUTO",
        instance_count=instance_count,
        dynamic_batching=dynamic_batching,
    )


def _external_data_files(graph: onnx.GraphProto) -> set[str]:
    """Weight files a large model keeps next to itself (paths relative to the ``.onnx`` file)."""
    return {
        entry.value
        for initializer in graph.initializer
        if initializer.data_location == onnx.TensorProto.EXTERNAL
        for entry in initializer.external_data
        if entry.key == "location"
    }


def export_onnx_model(onnx_file: Path, repository: Path, name: str, **options: Any) -> ModelConfig:
    """Write the config (``options`` as for ``onnx_model_config``) and copy the file to ``<name>/1/model.onnx``.

    External weight files, if any, are copied next to it under their own names.
    """
    config = onnx_model_config(onnx_file, name, **options)
    version_dir = write_config(config, repository) / VERSION
    shutil.copyfile(onnx_file, version_dir / DEFAULT_MODEL_FILENAME)
    for location in _external_data_files(_graph(onnx_file)):
        target = version_dir / location
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(onnx_file.parent / location, target)
    return config
