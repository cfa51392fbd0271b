"""Export a :class:`~model.PerformerClassifier` to ONNX and check it against PyTorch in onnxruntime.

Graph contract (what the onnxruntime backend serves): inputs ``tokens`` float32 ``[B, L, F]`` and ``mask`` bool
``[B, L]`` (True = real token, right-padded), output ``fraud_probability`` float32 ``[B, 1]``; B and L dynamic.
The TorchScript exporter (``dynamo=False``) is used: ``attention.py`` was written for it (no data-dependent
shapes, ``reshape`` rather than ``unflatten``), and the FAVOR+ projection is frozen into the graph as a constant.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from tritonmm.server.models.performer_featurize.history import TIME_COLUMN

from .model import PerformerClassifier

INPUTS = ("tokens", "mask")
OUTPUT = "fraud_probability"
PARITY_LENGTHS = (8, 64, 300, 1024, 4096)
"""Checked at export: short, training-sized (64), and far longer than any training window or held-out history."""


def example_inputs(
    n_token_features: int, length: int, *, batch: int = 2, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plausible random tokens: standard-normal features, a growing elapsed-minutes column; later rows padded."""
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randn(batch, length, n_token_features, generator=generator)
    tokens[..., TIME_COLUMN] = torch.cumsum(600 * torch.rand(batch, length, generator=generator), dim=1)
    lengths = torch.tensor([max(1, length - (length // 3) * row) for row in range(batch)])
    mask = torch.arange(length)[None, :] < lengths[:, None]
    return tokens * mask[..., None], mask


def export_onnx(model: torch.nn.Module, path: Path, *, opset: int = 17, output: str = OUTPUT,
                n_token_features: int | None = None) -> Path:
    """Write ``model`` (in eval mode; ``(tokens, mask) -> output``) to ``path`` with dynamic batch and sequence axes.

    ``n_token_features`` defaults to a :class:`PerformerClassifier`'s own; pass it for a module wrapping one.
    """
    model.eval()
    n_token_features = n_token_features or model.config.n_token_features
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {"tokens": {0: "batch", 1: "length"}, "mask": {0: "batch", 1: "length"}, output: {0: "batch"}}
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter is chosen on purpose (module docstring), and that it cannot constant-fold a
        # strided Slice does not make the graph wrong (parity checks it): neither notice needs to reach the user.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1", category=UserWarning)
        torch.onnx.export(
            model,
            example_inputs(n_token_features, 16),
            str(path),
            input_names=list(INPUTS),
            output_names=[output],
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    return path


def cpu_session(path: Path) -> ort.InferenceSession:
    """An onnxruntime CPU session using as many threads as PyTorch does here."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_scorer(path: Path) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``(tokens, mask) -> probability [B]`` with onnxruntime: on CPU about twice as fast as PyTorch here."""
    session = cpu_session(path)

    def score(tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return session.run([OUTPUT], {"tokens": tokens, "mask": mask})[0][:, 0]

    return score


def parity(model: PerformerClassifier, path: Path, lengths: Sequence[int] = PARITY_LENGTHS) -> float:
    """Max absolute difference of PyTorch and onnxruntime probabilities over ``lengths`` (a padded batch of 2 each)."""
    model.eval()
    session = cpu_session(path)
    worst = 0.0
    for length in lengths:
        tokens, mask = example_inputs(model.config.n_token_features, length, seed=length)
        with torch.no_grad():
            expected = model(tokens, mask).numpy()
        (actual,) = session.run([OUTPUT], {"tokens": tokens.numpy(), "mask": mask.numpy()})
        worst = max(worst, float(np.abs(actual - expected).max()))
    return worst
