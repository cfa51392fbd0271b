"""Check a request against the model's schema before it is sent.

The server would reject the same mistakes, but one round trip later, after
serialising a possibly large batch, and (through SageMaker) wrapped in a
``ModelError``. Checking here gives one :class:`InvalidInput` naming the tensor,
on every transport alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._codec import datatype_of
from ._errors import InvalidInput
from ._types import ModelConfig, TensorConfig, Tensors

ANY = -1
"""A dimension of any size in a schema's ``dims``."""


def _expected_shape(spec: TensorConfig, batching: bool) -> list[int]:
    return ([ANY] if batching else []) + [int(d) for d in spec["dims"]]


def _check_tensor(spec: TensorConfig, array: np.ndarray, batching: bool) -> None:
    name = spec["name"]
    datatype = datatype_of(array)
    if datatype != spec["datatype"]:
        raise InvalidInput(f"{name}: expected {spec['datatype']}, got numpy {array.dtype} "
                           f"({datatype or 'no KServe datatype'})")
    expected = _expected_shape(spec, batching)
    matches = len(expected) == array.ndim and all(e in (ANY, a) for e, a in zip(expected, array.shape))
    if not matches:
        raise InvalidInput(f"{name}: expected shape {expected} (-1 = any), got {list(array.shape)}")


def check_request(model: str, config: ModelConfig, inputs: Tensors, outputs: Sequence[str] | None) -> int:
    """Raise :class:`InvalidInput` for the first problem in ``inputs``; return the batch size.

    Returns 0 for a model that does not batch (``max_batch_size`` 0).

    Examples
    --------
    >>> import numpy as np
    >>> config = {"max_batch_size": 8, "inputs": [{"name": "x", "datatype": "FP32", "dims": [2]}], "outputs": []}
    >>> check_request("m", config, {"x": np.zeros((5, 2), np.float32)}, None)
    5
    >>> check_request("m", config, {"x": np.zeros((5, 3), np.float32)}, None)
    Traceback (most recent call last):
    ...
    tritonmm.client._errors.InvalidInput: x: expected shape [-1, 2] (-1 = any), got [5, 3]
    """
    specs = {spec["name"]: spec for spec in config["inputs"]}
    extra = [name for name in inputs if name not in specs]
    if extra:
        raise InvalidInput(f"{extra[0]}: {model!r} has no such input (inputs: {', '.join(specs)})")
    missing = [name for name, spec in specs.items() if name not in inputs and not spec.get("optional", False)]
    if missing:
        raise InvalidInput(f"{missing[0]}: missing input for {model!r}")
    batching = config["max_batch_size"] > 0
    for name, array in inputs.items():
        _check_tensor(specs[name], array, batching)
    known_outputs = {spec["name"] for spec in config["outputs"]}
    unknown = [name for name in outputs or () if known_outputs and name not in known_outputs]
    if unknown:
        raise InvalidInput(f"{unknown[0]}: {model!r} has no such output (outputs: {', '.join(sorted(known_outputs))})")
    if not batching:
        return 0
    sizes = {name: array.shape[0] for name, array in inputs.items()}
    first = next(iter(sizes))
    odd = [name for name, size in sizes.items() if size != sizes[first]]
    if odd:
        raise InvalidInput(f"{odd[0]}: batch of {sizes[odd[0]]} but {first} has {sizes[first]}")
    if sizes[first] == 0:
        raise InvalidInput(f"{first}: empty batch (0 rows), nothing to infer")
    return sizes[first]
