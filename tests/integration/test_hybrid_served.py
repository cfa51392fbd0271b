"""The hybrid pipeline (Performer score + XGBoost on FIL) served by the real embedded Triton, over HTTP and gRPC."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import tritonclient.http as httpclient
import xgboost as xgb
from tritonclient.utils import InferenceServerException

from tritonmm.export.fraud import raw_columns
from tritonmm.export.performer.hybrid import ONNX_FILE, PIPELINE, XGBOOST_FILE
from tritonmm.export.performer.pipeline import export_performer
from tritonmm.export.transactions import generate_transactions
from tritonmm.server.models.fraud_preprocess.features import FeatureSpec, featurize
from tritonmm.server.models.performer_featurize.history import SPEC_FILE, STATS_FILE, TokenizerStats, history_context, tokenize_history
from tritonmm.server.triton_process import TritonServer, TritonSettings, free_port

from .requests_helpers import PROTOCOLS, client_for, infer_input


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("hybrid")
    repo, work = root / "repo", root / "work"
    summary = export_performer(repo, quick=True, work_dir=work)
    return repo, work, summary


@pytest.fixture(scope="module")
def server(exported, tmp_path_factory: pytest.TempPathFactory):
    repo, _, _ = exported
    log = tmp_path_factory.mktemp("hybrid_triton") / "tritonserver.log"
    settings = TritonSettings(model_repository=repo, backend_directory=log.parent / "backends",
                              http_port=free_port(), grpc_port=free_port(), metrics_port=free_port())
    running = TritonServer(settings, log_sink=log.open("w")).start()
    running.wait_ready(timeout=180)
    yield settings
    running.stop()


@pytest.fixture(scope="module")
def card() -> pd.DataFrame:
    """The longest card history in a small generated set (oldest first)."""
    frame = generate_transactions(20_000, seed=21)
    user, card_id = frame.groupby(["User", "Card"]).size().idxmax()
    return frame[(frame["User"] == user) & (frame["Card"] == card_id)].reset_index(drop=True)


@pytest.fixture(params=sorted(PROTOCOLS))
def protocol(request) -> ModuleType:
    return PROTOCOLS[request.param]


def history_inputs(module: ModuleType, history: pd.DataFrame) -> list:
    columns = raw_columns(history)
    return [infer_input(module, name, values if values.dtype != object else np.array([str(v).encode() for v in values], dtype=object))
            for name, values in columns.items()]


def expected_probability(work: Path, history: pd.DataFrame) -> float:
    """tokenize -> hybrid ONNX in onnxruntime -> XGBoost, in process."""
    columns = raw_columns(history)
    tokens = tokenize_history(featurize(columns, FeatureSpec.load(work / SPEC_FILE)), history_context(columns),
                              TokenizerStats.load(work / STATS_FILE))
    session = ort.InferenceSession(str(work / ONNX_FILE), providers=["CPUExecutionProvider"])
    features = session.run(None, {"tokens": tokens[None].astype(np.float32), "mask": np.ones((1, len(tokens)), bool)})[0]
    booster = xgb.Booster(model_file=str(work / XGBOOST_FILE))
    return float(booster.predict(xgb.DMatrix(features, feature_names=booster.feature_names))[0])


def test_summary_reports_all_three_models_on_the_same_cards(exported) -> None:
    held_out = exported[2]["hybrid"]["held_out"]
    assert set(held_out) == {"hybrid", "performer_only", "xgboost_only"}
    for metrics in held_out.values():
        assert 0.5 < metrics["roc_auc"] <= 1.0 and 0.0 < metrics["pr_auc"] <= 1.0
    assert exported[2]["hybrid"]["test_transactions"] == exported[2]["test_transactions"]
    assert np.isclose(held_out["performer_only"]["roc_auc"], exported[2]["performer"]["roc_auc"], atol=1e-4)


@pytest.mark.parametrize("length", [1, 40, 300])
def test_hybrid_scores_a_raw_history_like_the_in_process_pipeline(server, exported, card, protocol, length) -> None:
    assert len(card) >= length
    history = card.tail(length)
    result = client_for(protocol, server).infer(PIPELINE, history_inputs(protocol, history))
    probability = result.as_numpy("probability")
    assert probability.shape == (1, 1)
    np.testing.assert_allclose(probability[0, 0], expected_probability(exported[1], history), atol=1e-5)
    assert result.as_numpy("label")[0, 0] in (b"FRAUD", b"NOT FRAUD")


def test_bad_history_gets_4xx_naming_the_tensor(server, card) -> None:
    history = card.tail(5).copy()
    history["Amount"] = history["Amount"].astype(object)
    history.loc[history.index[2], "Amount"] = "abc"
    with pytest.raises(InferenceServerException) as info:
        client_for(httpclient, server).infer(PIPELINE, history_inputs(httpclient, history))
    assert str(info.value.status()).startswith("4"), info.value
    assert "Amount" in info.value.message(), info.value.message()
    result = client_for(httpclient, server).infer(PIPELINE, history_inputs(httpclient, card.tail(10)))
    assert result.as_numpy("probability").shape == (1, 1)
