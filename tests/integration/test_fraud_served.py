"""Golden outputs of every model of the fraud pipeline and of the ensemble, over HTTP and gRPC."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from tritonmm.export.fraud import FEATURES, PIPELINE, POSTPROCESS, PREPROCESS, SPEC_FILE, XGBOOST, raw_columns
from tritonmm.export.model_config import VERSION, read_config
from tritonmm.export.transactions import generate_transactions
from tritonmm.server.models.fraud_preprocess.features import FeatureSpec, featurize

from .requests_helpers import client_for, fraud_inputs, infer_input


@pytest.fixture(scope="module")
def unseen() -> pd.DataFrame:
    """Transactions from another seed: never seen in training, with frauds among them."""
    frame = generate_transactions(20_000, seed=99)
    fraud = frame[frame["Is Fraud?"] == "Yes"].head(20)
    return pd.concat([fraud, frame.iloc[::97].head(236)]).reset_index(drop=True)


@pytest.fixture(scope="module")
def expected(served, unseen: pd.DataFrame) -> dict[str, np.ndarray]:
    """In-process reference: the same featuriser and XGBoost's own predictor."""
    spec = FeatureSpec.load(served.repository / PREPROCESS / VERSION / SPEC_FILE)
    features = featurize(raw_columns(unseen), spec)
    booster = xgb.Booster(model_file=str(served.repository / XGBOOST / VERSION / "xgboost.json"))
    threshold = float(read_config(served.repository / POSTPROCESS).parameters["threshold"].string_value)
    probability = booster.inplace_predict(features)
    return {"features": features, "probability": probability, "threshold": np.float32(threshold)}


def test_all_models_are_ready(served, protocol: ModuleType) -> None:
    client = client_for(protocol, served.settings)
    for name in (PIPELINE, PREPROCESS, XGBOOST, POSTPROCESS, "fil_lightgbm", "fil_class", "fil_multi", "fil_regression"):
        assert client.is_model_ready(name), name


def test_preprocess_matches_the_training_featuriser_exactly(served, protocol, unseen, expected) -> None:
    result = client_for(protocol, served.settings).infer(PREPROCESS, fraud_inputs(protocol, unseen))
    np.testing.assert_array_equal(result.as_numpy(FEATURES), expected["features"])


def test_fil_model_matches_xgboost(served, protocol, expected) -> None:
    client = client_for(protocol, served.settings)
    result = client.infer(XGBOOST, [infer_input(protocol, "input__0", expected["features"])])
    out = result.as_numpy("output__0")
    assert out.shape == (len(expected["features"]), 2)
    np.testing.assert_allclose(out[:, 1], expected["probability"], atol=1e-5)
    np.testing.assert_allclose(out[:, 0], 1 - expected["probability"], atol=1e-5)


def test_postprocess_labels(served, protocol) -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8]], dtype=np.float32)
    result = client_for(protocol, served.settings).infer(POSTPROCESS, [infer_input(protocol, "output__0", probs)])
    threshold = float(read_config(served.repository / POSTPROCESS).parameters["threshold"].string_value)
    labels = [b"FRAUD" if p >= threshold else b"NOT FRAUD" for p in probs[:, 1]]
    assert result.as_numpy("label").reshape(-1).tolist() == labels
    np.testing.assert_allclose(result.as_numpy("probability")[:, 0], probs[:, 1])


def test_ensemble_scores_raw_transactions(served, protocol, unseen, expected) -> None:
    result = client_for(protocol, served.settings).infer(PIPELINE, fraud_inputs(protocol, unseen))
    probability = result.as_numpy("probability")[:, 0]
    np.testing.assert_allclose(probability, expected["probability"], atol=1e-5)
    labels = result.as_numpy("label")[:, 0]
    np.testing.assert_array_equal(labels == b"FRAUD", probability >= expected["threshold"])
    flagged = labels[: 20] == b"FRAUD"
    assert flagged.mean() > 0.5, "most of the known frauds should be flagged"


def test_single_row_request(served, protocol, unseen, expected) -> None:
    result = client_for(protocol, served.settings).infer(PIPELINE, fraud_inputs(protocol, unseen.head(1)))
    assert result.as_numpy("probability").shape == (1, 1)
    np.testing.assert_allclose(result.as_numpy("probability")[0, 0], expected["probability"][0], atol=1e-5)
