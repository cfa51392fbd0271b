"""``fraud_preprocess``: the 14 raw transaction columns -> the fraud feature matrix.

numpy only (``features.py`` sits next to this file), so it also runs in
NVIDIA's stock container. A dynamic batch is featurised in one call; if that
fails, requests are redone one by one so only the bad request gets the error,
as a 400 (INVALID_ARG) naming the tensor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from features import RAW_COLUMNS, FeatureError, FeatureSpec, featurize

OUTPUT = "features"
SPEC_FILE = "feature_spec.json"


def _columns(request) -> dict[str, np.ndarray]:
    """All inputs in one pass (Triton has already checked that each is present)."""
    return {tensor.name(): tensor.as_numpy().reshape(-1) for tensor in request.inputs()}


class TritonPythonModel:
    """Featuriser with encoders fitted at export time."""

    def initialize(self, args: dict) -> None:
        self.spec = FeatureSpec.load(Path(args["model_repository"]) / args["model_version"] / SPEC_FILE)

    def _respond(self, columns: dict[str, np.ndarray]):
        try:
            features = featurize(columns, self.spec)
        except FeatureError as exc:
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc), pb_utils.TritonError.INVALID_ARG))
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(OUTPUT, features)])

    def execute(self, requests: list) -> list:
        per_request = [_columns(request) for request in requests]
        if len(per_request) == 1:
            return [self._respond(per_request[0])]
        merged = {name: np.concatenate([cols[name] for cols in per_request]) for name in RAW_COLUMNS}
        try:
            features = featurize(merged, self.spec)
        except FeatureError:
            return [self._respond(cols) for cols in per_request]
        bounds = np.cumsum([len(cols[RAW_COLUMNS[0]]) for cols in per_request])[:-1]
        return [
            pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(OUTPUT, part)])
            for part in np.split(features, bounds)
        ]
