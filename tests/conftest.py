"""Shared fixtures: small trained tree models, written the way users hand them to the exporter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def tree_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(600, 6)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.float32)
    return x, y


@pytest.fixture(scope="session")
def tree_models(tmp_path_factory: pytest.TempPathFactory, tree_data) -> dict[str, Path]:
    """xgboost binary (json, ubj, legacy), multiclass and regression; LightGBM binary; a Treelite checkpoint."""
    import lightgbm as lgb
    import treelite
    import xgboost as xgb

    x, y = tree_data
    out = tmp_path_factory.mktemp("trees")
    binary = xgb.train({"objective": "binary:logistic", "max_depth": 3, "seed": 0}, xgb.DMatrix(x, label=y), 20)
    binary.save_model(out / "binary.json")
    binary.save_model(out / "binary.ubj")
    classes = (x[:, 2] > 0).astype(int) + (x[:, 0] > 0.5).astype(int)
    multi = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 3}, xgb.DMatrix(x, label=classes), 10)
    multi.save_model(out / "multi.json")
    regression = xgb.train({"objective": "reg:squarederror", "max_depth": 3}, xgb.DMatrix(x, label=x[:, 0] * 2), 10)
    regression.save_model(out / "regression.json")
    lgbm = lgb.train({"objective": "binary", "num_leaves": 8, "verbose": -1}, lgb.Dataset(x, label=y), 20)
    lgbm.save_model(out / "lightgbm.txt")
    treelite.frontend.load_xgboost_model(str(out / "binary.json")).serialize(str(out / "checkpoint.tl"))
    (out / "garbage.json").write_text("{not a model")
    return {p.stem if p.suffix != ".ubj" else "binary_ubj": p for p in out.iterdir()}
