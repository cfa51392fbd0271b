"""The Python-based FIL backend's core: NVIDIA FIL r24.10 output contract, checked against the reference libraries."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb

from tritonmm.server.backends.fil.forest import XGBOOST_MIN_ROWS, FilParameters, Forest, ForestLoadError


def forest(path: Path, model_type: str, **params: str) -> Forest:
    return Forest(path, FilParameters.parse({"model_type": model_type, "output_class": "true", **params}))


@pytest.mark.parametrize("rows", [1, XGBOOST_MIN_ROWS - 1, XGBOOST_MIN_ROWS, 600])
def test_binary_predict_proba_is_two_columns_like_release_24_10(tree_models, tree_data, rows: int) -> None:
    x, _ = tree_data
    p = xgb.Booster(model_file=str(tree_models["binary"])).inplace_predict(x[:rows])
    model = forest(tree_models["binary"], "xgboost_json", predict_proba="true")
    assert model.wait_for_accelerator(timeout=60)  # both predictors are exercised across the row counts
    out = model.predict(x[:rows])
    assert out.shape == (rows, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 1], p, atol=1e-6)
    np.testing.assert_allclose(out[:, 0], 1 - p, atol=1e-6)


def test_binary_class_output_uses_the_threshold(tree_models, tree_data) -> None:
    x, _ = tree_data
    p = xgb.Booster(model_file=str(tree_models["binary"])).inplace_predict(x)
    for threshold in ("0.5", "0.2"):
        out = forest(tree_models["binary"], "xgboost_json", threshold=threshold).predict(x)
        assert out.shape == (len(x), 1)
        np.testing.assert_array_equal(out[:, 0], (p > float(threshold)).astype(np.float32))


def test_regression_returns_the_raw_score(tree_models, tree_data) -> None:
    x, _ = tree_data
    expected = xgb.Booster(model_file=str(tree_models["regression"])).inplace_predict(x)
    out = Forest(tree_models["regression"], FilParameters.parse({"model_type": "xgboost_json", "output_class": "false"}))
    np.testing.assert_allclose(out.predict(x)[:, 0], expected, rtol=1e-5, atol=1e-5)


def test_multiclass_probabilities_and_argmax(tree_models, tree_data) -> None:
    x, _ = tree_data
    expected = xgb.Booster(model_file=str(tree_models["multi"])).inplace_predict(x)
    proba = forest(tree_models["multi"], "xgboost_json", predict_proba="true")
    assert proba.output_width == 3
    np.testing.assert_allclose(proba.predict(x), expected, atol=1e-6)
    classes = forest(tree_models["multi"], "xgboost_json").predict(x)
    np.testing.assert_array_equal(classes[:, 0], expected.argmax(axis=1))


@pytest.mark.parametrize(("name", "model_type"), [("binary_ubj", "xgboost_ubj"), ("checkpoint", "treelite_checkpoint")])
def test_other_serialisations_agree(tree_models, tree_data, name: str, model_type: str) -> None:
    x, _ = tree_data
    expected = xgb.Booster(model_file=str(tree_models["binary"])).inplace_predict(x)
    out = forest(tree_models[name], model_type, predict_proba="true").predict(x)
    np.testing.assert_allclose(out[:, 1], expected, atol=1e-6)


def test_lightgbm(tree_models, tree_data) -> None:
    x, _ = tree_data
    expected = lgb.Booster(model_file=str(tree_models["lightgbm"])).predict(x)
    out = forest(tree_models["lightgbm"], "lightgbm", predict_proba="true").predict(x)
    np.testing.assert_allclose(out[:, 1], expected, atol=1e-5)


def test_newer_parameter_names_and_gpu_keys_are_accepted(tree_models, tree_data) -> None:
    x, _ = tree_data
    params = FilParameters.parse(
        {"model_type": "xgboost_json", "is_classifier": "true", "layout": "depth_first", "chunk_size": "4",
         "storage_type": "SPARSE", "threads_per_tree": "4", "use_experimental_optimizations": "true"}
    )
    assert params.output_class
    assert Forest(tree_models["binary"], params).predict(x).shape == (len(x), 1)


def test_load_errors_name_the_file_and_the_reason(tree_models) -> None:
    with pytest.raises(ForestLoadError, match=r"garbage\.json: cannot be read as model_type 'xgboost_json'"):
        forest(tree_models["garbage"], "xgboost_json")
    with pytest.raises(ForestLoadError, match=r"lightgbm\.txt: cannot be read as model_type 'xgboost_json'"):
        forest(tree_models["lightgbm"], "xgboost_json")
    with pytest.raises(ForestLoadError, match=r"missing\.json: model file not found"):
        forest(tree_models["binary"].with_name("missing.json"), "xgboost_json")
    with pytest.raises(ForestLoadError, match="unknown model_type 'sklearn'"):
        FilParameters.parse({"model_type": "sklearn"})
    with pytest.raises(ForestLoadError, match="'predict_proba' must be true or false"):
        FilParameters.parse({"predict_proba": "maybe"})


def test_wrong_feature_count_is_rejected(tree_models, tree_data) -> None:
    x, _ = tree_data
    with pytest.raises(ValueError, match=r"input__0 must have shape \[n, 6\]"):
        forest(tree_models["binary"], "xgboost_json").predict(x[:, :5])


@pytest.mark.parametrize("name", ["binary", "multi", "lightgbm"])
def test_hoisted_gtil_equals_treelite_gtil(tree_models, tree_data, name: str) -> None:
    import treelite
    import treelite.gtil

    from tritonmm.server.backends.fil.forest import GtilPredictor

    x, _ = tree_data
    path = tree_models[name]
    model = treelite.frontend.load_lightgbm_model(str(path)) if name == "lightgbm" else treelite.frontend.load_xgboost_model(str(path))
    np.testing.assert_array_equal(GtilPredictor(model, 1)(x), treelite.gtil.predict(model, x, nthread=1)[:, 0, :])
