"""``fraud_postprocess``: FIL's ``[1 - p, p]`` rows -> fraud probability and a label.

The decision threshold is a config parameter chosen at export time (best F1
on held-out data), so it can be changed without retraining.
"""

from __future__ import annotations

import json

import numpy as np
import triton_python_backend_utils as pb_utils

INPUT = "output__0"
LABELS = np.array([b"NOT FRAUD", b"FRAUD"], dtype=object)


def label(probability: np.ndarray, threshold: float) -> np.ndarray:
    """``"FRAUD"`` where ``probability >= threshold``, else ``"NOT FRAUD"`` (bytes, one per row)."""
    return LABELS[(probability >= threshold).astype(np.int64)]


class TritonPythonModel:
    """Turns class probabilities into the pipeline's answer."""

    def initialize(self, args: dict) -> None:
        parameters = json.loads(args["model_config"]).get("parameters", {})
        self.threshold = float(parameters.get("threshold", {"string_value": "0.5"})["string_value"])

    def execute(self, requests: list) -> list:
        responses = []
        for request in requests:
            probability = pb_utils.get_input_tensor_by_name(request, INPUT).as_numpy()[:, 1:2]
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor("probability", probability.astype(np.float32)),
                        pb_utils.Tensor("label", label(probability, self.threshold)),
                    ]
                )
            )
        return responses
