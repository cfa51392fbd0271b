"""``identity``: returns its input unchanged. The serving floor in benchmarks: the cost of a
Python-backend model that does no work, on the same server and the same payload."""

from __future__ import annotations

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """No-op model: ``output__0 = input__0``."""

    def execute(self, requests: list) -> list:
        return [
            pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor("output__0", pb_utils.get_input_tensor_by_name(r, "input__0").as_numpy())]
            )
            for r in requests
        ]
