"""The Python-based ``fil`` backend, served: FIL r24.10 shapes and values for each setting, and load errors."""

from __future__ import annotations

import httpx
import lightgbm as lgb
import numpy as np
import tritonclient.http as httpclient
import xgboost as xgb

from .requests_helpers import client_for, infer_input


def serve_fil(served, model: str, rows: np.ndarray) -> np.ndarray:
    client = client_for(httpclient, served.settings)
    return client.infer(model, [infer_input(httpclient, "input__0", rows)]).as_numpy("output__0")


def test_lightgbm_through_the_fil_backend(served, tree_models, tree_data) -> None:
    x, _ = tree_data
    out = serve_fil(served, "fil_lightgbm", x)
    assert out.shape == (len(x), 2)
    np.testing.assert_allclose(out[:, 1], lgb.Booster(model_file=str(tree_models["lightgbm"])).predict(x), atol=1e-5)


def test_class_output_with_threshold(served, tree_models, tree_data) -> None:
    x, _ = tree_data
    p = xgb.Booster(model_file=str(tree_models["binary"])).inplace_predict(x)
    out = serve_fil(served, "fil_class", x)
    assert out.shape == (len(x), 1)
    np.testing.assert_array_equal(out[:, 0], (p > 0.3).astype(np.float32))


def test_multiclass_probabilities(served, tree_models, tree_data) -> None:
    x, _ = tree_data
    out = serve_fil(served, "fil_multi", x)
    np.testing.assert_allclose(out, xgb.Booster(model_file=str(tree_models["multi"])).inplace_predict(x), atol=1e-6)


def test_regression_raw_scores(served, tree_models, tree_data) -> None:
    x, _ = tree_data
    out = serve_fil(served, "fil_regression", x)
    expected = xgb.Booster(model_file=str(tree_models["regression"])).inplace_predict(x)
    np.testing.assert_allclose(out[:, 0], expected, rtol=1e-5, atol=1e-5)


def test_dynamic_batches_split_back_in_order(served, tree_models, tree_data) -> None:
    """Concurrent requests are merged into one forest call; each must get its own rows back."""
    from concurrent.futures import ThreadPoolExecutor

    x, _ = tree_data
    p = xgb.Booster(model_file=str(tree_models["binary"])).inplace_predict(x)
    chunks = np.array_split(np.arange(len(x)), 40)
    with ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(lambda idx: serve_fil(served, "fil_lightgbm", x[idx]), chunks))
    assert [len(o) for o in outs] == [len(c) for c in chunks]
    whole = serve_fil(served, "fil_lightgbm", x)
    np.testing.assert_allclose(np.concatenate(outs), whole, atol=1e-7)
    assert p.shape == (len(x),)


def test_broken_models_fail_to_load_naming_file_and_reason(served) -> None:
    base = served.settings.http_url
    for model, reason in (("broken_file", "cannot be read as model_type 'xgboost_json'"),
                          ("broken_type", "cannot be read as model_type 'xgboost_json'")):
        answer = httpx.post(f"{base}/v2/repository/models/{model}/load", timeout=120)
        assert answer.status_code == 400, answer.text
        message = answer.json()["error"]
        assert f"{model}/1/xgboost.json" in message and reason in message, message
    assert httpx.get(f"{base}/v2/health/ready").status_code == 200
    assert httpx.get(f"{base}/v2/models/fraud/ready").status_code == 200
