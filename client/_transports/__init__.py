"""Transports: how a request reaches a model — Triton over HTTP or gRPC, or SageMaker's InvokeEndpoint.

Every transport offers the same three calls (:class:`Transport`, or
:class:`AsyncTransport` with coroutines) and raises its library's own errors:
the client maps those to :mod:`tritonmm.client._errors` in one place and owns
validation, chunking and retries, so a transport only moves tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from .._types import ModelConfig, Tensors


class Transport(Protocol):
    """A blocking transport."""

    def infer(self, model: str, inputs: Tensors, outputs: Sequence[str] | None) -> dict[str, np.ndarray]:
        """Run ``model`` once on ``inputs`` (already checked); return the requested outputs (all if ``None``)."""
        ...

    def model_config(self, model: str) -> ModelConfig:
        """The schema of ``model``."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class AsyncTransport(Protocol):
    """An asyncio transport: the same calls as :class:`Transport`, as coroutines."""

    async def infer(self, model: str, inputs: Tensors, outputs: Sequence[str] | None) -> dict[str, np.ndarray]:
        """Run ``model`` once on ``inputs`` (already checked); return the requested outputs (all if ``None``)."""
        ...

    async def model_config(self, model: str) -> ModelConfig:
        """The schema of ``model``."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
