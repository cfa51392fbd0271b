"""Helpers shared by the Performer and hybrid served tests: a card history, its request, a server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd

from tritonmm.export.fraud import raw_columns
from tritonmm.export.transactions import generate_transactions
from tritonmm.server.models.fraud_preprocess.features import FeatureSpec, featurize
from tritonmm.server.models.performer_featurize.history import SPEC_FILE, STATS_FILE, TokenizerStats, history_context, tokenize_history
from tritonmm.server.triton_process import TritonServer, TritonSettings, free_port

from .requests_helpers import infer_input


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


def serve(repository: Path, log_dir: Path) -> Iterator[TritonSettings]:
    """Run a real tritonserver over ``repository`` on free ports for the duration of a fixture."""
    settings = TritonSettings(model_repository=repository, backend_directory=log_dir / "backends",
                              http_port=free_port(), grpc_port=free_port(), metrics_port=free_port())
    running = TritonServer(settings, log_sink=(log_dir / "tritonserver.log").open("w")).start()
    try:
        running.wait_ready(timeout=180)
        yield settings
    finally:
        running.stop()
