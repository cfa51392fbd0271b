"""``performer_featurize``: one card's raw transaction history -> the Performer's ``tokens`` and ``mask``.

numpy only: ``features.py`` (the fraud featuriser) and ``history.py`` (the tokenizer) sit next to this file,
with the spec and stats fitted at export (:data:`SPEC_FILE`, :data:`STATS_FILE`), so it also runs in NVIDIA's
stock container.

Request contract (``max_batch_size: 0``: one history per request, no batch dimension):

* inputs: the 14 raw columns of the ``fraud`` pipeline with the same names and types (``User``, ``Card``,
  ``Year``, ``Month``, ``Day`` TYPE_FP32; the others TYPE_STRING), each with dims ``[-1]``: row ``i`` of every
  column is transaction ``i`` of ONE card, oldest first, the transaction to score last.
* outputs: ``tokens`` TYPE_FP32 dims ``[1, -1, F]`` (F = ``len(TokenizerStats.token_names)``, fixed at export)
  and ``mask`` TYPE_BOOL dims ``[1, -1]`` (all True) — exactly the ONNX model's inputs for a batch of one.
* parameter ``max_history`` (default :data:`DEFAULT_MAX_HISTORY`): the longest history accepted.

Several histories in one ``execute`` call (concurrent requests) are tokenised one by one: each has its own length.
Every invalid request gets INVALID_ARG naming the tensor and the problem: a history longer than
``max_history`` or empty, columns of different lengths, non-numeric or NaN numbers, a missing time or amount,
more than one card, transactions out of time order, and everything the featuriser rejects (``"abc"`` amounts...).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from features import FEATURE_NAMES, RAW_COLUMNS, FeatureError, FeatureSpec, featurize
from history import SPEC_FILE, STATS_FILE, HistoryError, TokenizerStats, history_context, tokenize_history

TOKENS, MASK = "tokens", "mask"
DEFAULT_MAX_HISTORY = 16_384


def _max_history(model_config: dict) -> int:
    value = model_config.get("parameters", {}).get("max_history", {}).get("string_value", str(DEFAULT_MAX_HISTORY))
    return int(value)


def _check_length(columns: dict[str, np.ndarray], max_history: int) -> None:
    """Refuse oversized histories before any parsing (the cost of a request grows with it)."""
    for name in RAW_COLUMNS:
        if columns[name].size > max_history:
            raise HistoryError(name, f"history of {columns[name].size} transactions exceeds max_history {max_history}")


class TritonPythonModel:
    """Tokenizer with the featuriser spec and tokenizer stats fitted at export."""

    def initialize(self, args: dict) -> None:
        version_dir = Path(args["model_repository"]) / args["model_version"]
        self.spec = FeatureSpec.load(version_dir / SPEC_FILE)
        self.stats = TokenizerStats.load(version_dir / STATS_FILE)
        if self.stats.feature_names != FEATURE_NAMES:
            raise ValueError(f"{version_dir / STATS_FILE}: fitted for other features than features.py computes")
        self.max_history = _max_history(json.loads(args["model_config"]))

    def tokens(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """``[L, F]`` tokens of one history; raises FeatureError or HistoryError naming the tensor."""
        _check_length(columns, self.max_history)
        features = featurize(columns, self.spec)
        return tokenize_history(features, history_context(columns), self.stats)

    def _respond(self, request):
        columns = {tensor.name(): tensor.as_numpy().reshape(-1) for tensor in request.inputs()}
        try:
            tokens = self.tokens(columns)
        except (FeatureError, HistoryError) as exc:
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc), pb_utils.TritonError.INVALID_ARG))
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor(TOKENS, tokens[None]),
                pb_utils.Tensor(MASK, np.ones((1, len(tokens)), dtype=np.bool_)),
            ]
        )

    def execute(self, requests: list) -> list:
        return [self._respond(request) for request in requests]
