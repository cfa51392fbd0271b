"""Split a batch larger than the model's ``max_batch_size`` into requests it accepts, and join the answers.

Triton rejects a request whose batch exceeds ``max_batch_size``; callers should
not have to know the limit of each model, so the client sends consecutive
slices and concatenates every output along the batch axis, in order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._types import Tensors


def split(inputs: Tensors, batch: int, max_batch_size: int) -> list[dict[str, np.ndarray]]:
    """Consecutive slices of at most ``max_batch_size`` rows (one slice when it fits or the model does not batch).

    Examples
    --------
    >>> import numpy as np
    >>> [part["x"].tolist() for part in split({"x": np.arange(5)}, 5, 2)]
    [[0, 1], [2, 3], [4]]
    """
    if max_batch_size <= 0 or batch <= max_batch_size:
        return [dict(inputs)]
    return [{name: array[start:start + max_batch_size] for name, array in inputs.items()}
            for start in range(0, batch, max_batch_size)]


def join(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate each output of ``parts`` along the batch axis, in order."""
    if len(parts) == 1:
        return parts[0]
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
