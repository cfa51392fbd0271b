"""``fraud_postprocess``: class probabilities -> fraud probability and a label.

Takes the single input its config declares: FIL's ``[1 - p, p]`` rows
(``output__0``, dims ``[2]``) or one probability per row (e.g. the
Performer's ``fraud_probability``, dims ``[1]``); P(fraud) is the last column.
The decision threshold is a config parameter chosen at export time (best F1
on held-out data), so it can be changed without retraining.
"""

from __future__ import annotations

import json

import numpy as np
import triton_python_backend_utils as pb_utils

LABELS = np.array([b"NOT FRAUD", b"FRAUD"], dtype=object)


def label(probability: np.ndarray, threshold: float) -> np.ndarray:
    """``"FRAUD"`` where ``probability >= threshold``, else ``"NOT FRAUD"`` (bytes, one per row)."""
    return LABELS[(probability >= threshold).astype(np.int64)]


class TritonPythonModel:
    """Turns class probabilities into the pipeline's answer."""

    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        self.input = config["input"][0]["name"]
        self.threshold = float(config.get("parameters", {}).get("threshold", {"string_value": "0.5"})["string_value"])

    def execute(self, requests: list) -> list:
        responses = []
        for request in requests:
            probability = pb_utils.get_input_tensor_by_name(request, self.input).as_numpy()[..., -1:]
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor("probability", probability.astype(np.float32)),
                        pb_utils.Tensor("label", label(probability, self.threshold)),
                    ]
                )
            )
        return responses
