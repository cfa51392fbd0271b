"""Helpers shared by the Performer and hybrid served tests: a card history, its request and tokens, the graph."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import onnxruntime as ort
import pandas as pd
import xgboost as xgb

from tritonmm.export.fraud import raw_columns
from tritonmm.export.performer import hybrid
from tritonmm.export.performer.pipeline import ONNX_FILE
from tritonmm.export.transactions import generate_transactions
from tritonmm.server.models.fraud_preprocess.features import FeatureSpec, featurize
from tritonmm.server.models.performer_featurize.history import SPEC_FILE, STATS_FILE, TokenizerStats, history_context, tokenize_history

from .requests_helpers import infer_input

MAX_HISTORY = 512
"""``max_history`` of the served featurizer in these tests, so "too long" stays cheap to send."""


def longest_card() -> pd.DataFrame:
    """The longest card history in a small generated set (oldest first)."""
    frame = generate_transactions(20_000, seed=21)
    user, card_id = frame.groupby(["User", "Card"]).size().idxmax()
    return frame[(frame["User"] == user) & (frame["Card"] == card_id)].reset_index(drop=True)


def history_inputs(module: ModuleType, history: pd.DataFrame) -> list:
    """One history request: each raw column a 1-D tensor of the history's length (text as UTF-8)."""
    columns = raw_columns(history)
    return [infer_input(module, name, values if values.dtype != object else np.array([str(v).encode() for v in values], dtype=object))
            for name, values in columns.items()]


def history_tokens(work_dir: Path, history: pd.DataFrame) -> np.ndarray:
    """``[L, F]`` tokens of ``history`` in process, with the spec and stats an export wrote to ``work_dir``."""
    columns = raw_columns(history)
    return tokenize_history(featurize(columns, FeatureSpec.load(work_dir / SPEC_FILE)), history_context(columns),
                            TokenizerStats.load(work_dir / STATS_FILE))


def run_graph(onnx_file: Path, tokens: np.ndarray) -> np.ndarray:
    """The exported graph's output for one unpadded history, in onnxruntime in process."""
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    return session.run(None, {"tokens": tokens[None].astype(np.float32), "mask": np.ones((1, len(tokens)), bool)})[0]


def performer_probability(work: Path, history: pd.DataFrame) -> float:
    """``performer_fraud``'s answer for ``history``, computed in process: tokenize -> ONNX graph."""
    return float(run_graph(work / ONNX_FILE, history_tokens(work, history))[0, 0])


def hybrid_probability(work: Path, history: pd.DataFrame) -> float:
    """``hybrid_fraud``'s answer for ``history``, in process: tokenize -> hybrid ONNX graph -> XGBoost."""
    features = run_graph(work / hybrid.ONNX_FILE, history_tokens(work, history))
    booster = xgb.Booster(model_file=str(work / hybrid.XGBOOST_FILE))
    return float(booster.predict(xgb.DMatrix(features, feature_names=booster.feature_names))[0])
