"""The fraud exporter: deterministic output, the user's own model path, and wiring checks."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from tritonmm.export.ensemble import EnsembleWiringError
from tritonmm.export.fraud import PIPELINE, PREPROCESS, SPEC_FILE, XGBOOST, export_fraud
from tritonmm.export.model_config import VERSION, read_config
from tritonmm.server.models.fraud_preprocess.features import FEATURE_NAMES

ROWS = 30_000


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("a")
    export_fraud(root / "repo", rows=ROWS, seed=1, work_dir=root / "work")
    return root


def test_same_seed_gives_identical_files(exported: Path, tmp_path: Path) -> None:
    export_fraud(tmp_path / "repo", rows=ROWS, seed=1, work_dir=tmp_path / "work")
    assert tree(tmp_path / "repo") == tree(exported / "repo")


def test_repository_layout(exported: Path) -> None:
    repo = exported / "repo"
    assert sorted(p.name for p in repo.iterdir()) == ["fraud", "fraud_postprocess", "fraud_preprocess", "fraud_xgboost"]
    assert (repo / PREPROCESS / VERSION / "features.py").is_file() and (repo / PREPROCESS / VERSION / SPEC_FILE).is_file()
    fil = read_config(repo / XGBOOST)
    assert fil.backend == "fil" and list(fil.input[0].dims) == [len(FEATURE_NAMES)] and list(fil.output[0].dims) == [2]
    assert fil.parameters["model_type"].string_value == "xgboost_json"
    assert read_config(repo / PIPELINE).platform == "ensemble"
    assert (exported / "work" / "fraud_summary.json").is_file()


def test_users_own_lightgbm_model_and_spec(exported: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, len(FEATURE_NAMES)))
    booster = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(x, label=x[:, 0] > 0), 5)
    booster.save_model(tmp_path / "mine.txt")
    spec = exported / "repo" / PREPROCESS / VERSION / SPEC_FILE
    assert export_fraud(tmp_path / "repo", model_file=tmp_path / "mine.txt", spec_file=spec, threshold=0.3) is None
    fil = read_config(tmp_path / "repo" / XGBOOST)
    assert fil.parameters["model_type"].string_value == "lightgbm"
    assert (tmp_path / "repo" / XGBOOST / VERSION / "model.txt").is_file()
    assert read_config(tmp_path / "repo" / "fraud_postprocess").parameters["threshold"].string_value == "0.3"


def test_model_with_other_features_is_refused_at_export(exported: Path, tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(300, 5))
    lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(x, label=x[:, 0] > 0), 5).save_model(tmp_path / "m.txt")
    spec = exported / "repo" / PREPROCESS / VERSION / SPEC_FILE
    with pytest.raises(EnsembleWiringError, match=r"'input__0' expects TYPE_FP32 \[5\]"):
        export_fraud(tmp_path / "repo", model_file=tmp_path / "m.txt", spec_file=spec)


def test_model_and_spec_go_together(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="both a model file and a feature spec"):
        export_fraud(tmp_path / "repo", model_file=tmp_path / "m.json")
