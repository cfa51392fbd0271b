"""Python-based ``onnxruntime`` backend: runs configs written for NVIDIA's native ONNX Runtime backend.

Triton loads this file for every model whose config says ``backend: "onnxruntime"``
or ``platform: "onnxruntime_onnx"``. Tensor names and types come from the
config and are checked against the graph at load; parameters follow the native
backend of release 24.10 (see ``ort_session.py``). The requests of a dynamic
batch are grouped by their non-batch shapes and each group is one
``session.run``. A request the graph cannot run gets INVALID_ARG naming the
input; the others in its batch are unaffected.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import onnxruntime as ort
import triton_python_backend_utils as pb_utils

from ort_session import (
    CPU_PROVIDER,
    CUDA_PROVIDER,
    InvalidInput,
    OrtLoadError,
    OrtModel,
    Outputs,
    SessionSettings,
    TensorSpec,
    execution_providers,
    model_file_path,
)


def _default_threads() -> int:
    """``OMP_NUM_THREADS`` (the launcher sets one per instance); 0, i.e. ORT's default, when unset or not a number."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() else 0


def _response(result: Outputs | InvalidInput):
    """Outputs, or INVALID_ARG (HTTP 400) with the message naming the input."""
    if isinstance(result, InvalidInput):
        return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(result), pb_utils.TritonError.INVALID_ARG))
    return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(name, value) for name, value in result.items()])


def _settings(config: dict, model_dir: Path) -> SessionSettings:
    """Session settings, a bad parameter named with the config file; accelerators this build lacks are logged."""
    try:
        settings = SessionSettings.from_model_config(config, default_threads=_default_threads())
    except OrtLoadError as exc:
        raise OrtLoadError(f"{model_dir / 'config.pbtxt'}: {exc}") from exc
    for name in settings.ignored_accelerators:
        pb_utils.Logger.log_warn(f"{config['name']}: execution accelerator {name!r} is not available here; ignored")
    return settings


def _providers(args: dict, settings: SessionSettings) -> list:
    """CUDA on GPU instances where this onnxruntime has it; a GPU instance left on CPU says so in the log."""
    kind, device_id = args["model_instance_kind"], int(args["model_instance_device_id"])
    providers = execution_providers(kind, device_id, settings.cuda_options, ort.get_available_providers())
    if kind == "GPU" and providers == [CPU_PROVIDER]:
        pb_utils.Logger.log_warn(f"{args['model_instance_name']}: this onnxruntime has no {CUDA_PROVIDER}; running on CPU")
    return providers


class TritonPythonModel:
    """One instance of an ONNX model."""

    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        model_dir = Path(args["model_repository"])
        settings = _settings(config, model_dir)
        inputs = [TensorSpec.from_config(tensor) for tensor in config["input"]]
        self.input_names = [spec.name for spec in inputs]
        self.model = OrtModel(
            model_file_path(model_dir, args["model_version"], config.get("default_model_filename")),
            inputs,
            [TensorSpec.from_config(tensor) for tensor in config["output"]],
            max_batch_size=int(config.get("max_batch_size", 0)),
            settings=settings,
            providers=_providers(args, settings),
        )

    def execute(self, requests: list) -> list:
        feeds = [
            {name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in self.input_names}
            for request in requests
        ]
        return [_response(result) for result in self.model.run_requests(feeds)]
