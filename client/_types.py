"""The shapes of what the client passes around: model schemas and tensors.

A schema is a plain dict (what ``model_config`` returns, what ``schemas=`` takes)
so that it can be written inline or loaded from JSON::

    {"max_batch_size": 8192,
     "inputs": [{"name": "User", "datatype": "FP32", "dims": [1]}, ...],
     "outputs": [{"name": "probability", "datatype": "FP32", "dims": [1]}, ...]}

``dims`` exclude the batch dimension when ``max_batch_size`` > 0; ``-1`` means any size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NotRequired, TypedDict

import numpy as np


class TensorConfig(TypedDict):
    """One input or output of a model."""

    name: str
    datatype: str
    """KServe v2 datatype: ``FP32``, ``INT64``, ``BYTES``..."""
    dims: Sequence[int]
    optional: NotRequired[bool]
    """An input the model can run without (Triton's ``optional: true``)."""


class ModelConfig(TypedDict):
    """What the client needs to know about a model to check and split a request."""

    max_batch_size: int
    """0: the model does not batch (no batch dimension); otherwise the largest batch per request."""
    inputs: Sequence[TensorConfig]
    outputs: Sequence[TensorConfig]


Tensors = Mapping[str, np.ndarray]
"""Named tensors, batch first: ``{"Amount": np.array([[b"$1.00"], [b"$2.50"]], dtype=object)}``."""
