"""Python-based ``fil`` backend: runs configs written for NVIDIA's native FIL backend on CPU.

Triton loads this file for every model whose config says ``backend: "fil"``.
Tensors are ``input__0`` / ``output__0`` (FP32); parameters and output shapes
follow the native backend of release 24.10 (see ``forest.py``). All requests
of a dynamic batch are scored in one vectorised call.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from forest import MODEL_TYPES, FilParameters, Forest, ForestLoadError

INPUT, OUTPUT = "input__0", "output__0"


def _check_config(config: dict, forest: Forest, model_file: Path) -> None:
    """Refuse configs whose tensors the native backend would reject or fill wrongly."""
    inputs = {t["name"]: t for t in config["input"]}
    outputs = {t["name"]: t for t in config["output"]}
    if set(inputs) != {INPUT} or OUTPUT not in outputs:
        raise pb_utils.TritonModelException(f"{model_file}: FIL models take exactly {INPUT!r} and return {OUTPUT!r}")
    extra = set(outputs) - {OUTPUT}
    if extra:
        raise pb_utils.TritonModelException(f"{model_file}: outputs {sorted(extra)} are not supported on CPU")
    for tensor in (inputs[INPUT], outputs[OUTPUT]):
        if tensor["data_type"] != "TYPE_FP32":
            raise pb_utils.TritonModelException(f"{model_file}: {tensor['name']} must be TYPE_FP32")
    if [int(d) for d in inputs[INPUT]["dims"]] != [forest.num_features]:
        raise pb_utils.TritonModelException(
            f"{model_file}: {INPUT} dims {inputs[INPUT]['dims']} but the model has {forest.num_features} features"
        )
    if [int(d) for d in outputs[OUTPUT]["dims"]] != [forest.output_width]:
        raise pb_utils.TritonModelException(
            f"{model_file}: {OUTPUT} dims {outputs[OUTPUT]['dims']} but with predict_proba="
            f"{str(forest.params.predict_proba).lower()} this {forest.num_classes}-class model returns "
            f"{forest.output_width} value(s) per row (binary models return [1-p, p] as in release 24.10)"
        )


class TritonPythonModel:
    """One instance of a FIL model."""

    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        model_dir = Path(args["model_repository"])
        try:
            params = FilParameters.parse(
                {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
            )
        except ForestLoadError as exc:
            raise ForestLoadError(f"{model_dir / 'config.pbtxt'}: {exc}") from exc
        filename = config.get("default_model_filename") or MODEL_TYPES[params.model_type]
        model_file = model_dir / args["model_version"] / filename
        self.forest = Forest(model_file, params)
        _check_config(config, self.forest, model_file)

    def execute(self, requests: list) -> list:
        batches = [pb_utils.get_input_tensor_by_name(request, INPUT).as_numpy() for request in requests]
        if len(batches) == 1:
            return [pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(OUTPUT, self.forest.predict(batches[0]))])]
        predictions = self.forest.predict(np.concatenate(batches))
        bounds = np.cumsum([len(batch) for batch in batches])[:-1]
        return [
            pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(OUTPUT, part)])
            for part in np.split(predictions, bounds)
        ]
