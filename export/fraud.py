"""The ``fraud`` pipeline: generate data, train XGBoost, write the Triton model repository.

Repository written (names are the pipeline's public surface)::

    fraud_preprocess/   backend: python   14 raw columns -> features   (numpy only)
    fraud_xgboost/      backend: fil      features -> [1 - p, p]
    fraud_postprocess/  backend: python   [1 - p, p] -> probability, label
    fraud/              platform: ensemble, the three steps as one call

A user's own trained model and fitted feature spec can replace the training
step (:func:`export_fraud` with ``model_file`` and ``spec_file``).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tritonmm.server.models.fraud_preprocess.features import (
    FEATURE_NAMES,
    NUMERIC_COLUMNS,
    RAW_COLUMNS,
    FeatureSpec,
    featurize,
    fit_spec,
)

from .ensemble import Step, build_ensemble
from .model_config import VERSION, model_config, tensor, write_config
from .progress import console, step
from .python_model import export_python_model
from .transactions import LABEL_COLUMN, generate_transactions
from .trees import export_tree_model

PIPELINE = "fraud"
PREPROCESS, XGBOOST, POSTPROCESS = "fraud_preprocess", "fraud_xgboost", "fraud_postprocess"
FEATURES = "features"
SPEC_FILE = "feature_spec.json"
MAX_BATCH_SIZE = 8192
SUMMARY_FILE = "fraud_summary.json"


@dataclass(frozen=True)
class TrainingResult:
    """What the export summary reports."""

    rows: int
    fraud_rate: float
    train_cards: int
    test_cards: int
    roc_auc: float
    pr_auc: float
    threshold: float
    best_iteration: int


def raw_columns(frame) -> dict[str, np.ndarray]:
    """DataFrame -> the column arrays the featuriser and the served model both take."""
    return {
        c: frame[c].to_numpy(dtype=np.float32) if c in NUMERIC_COLUMNS else frame[c].to_numpy(dtype=object)
        for c in RAW_COLUMNS
    }


def split_by_card(frame, *, seed: int, test_share: float = 0.2):
    """Hold out whole cards, so the test set measures generalisation to unseen cards."""
    cards = frame[["User", "Card"]].drop_duplicates().to_numpy()
    rng = np.random.default_rng(seed)
    test = {tuple(c) for c in cards[rng.random(len(cards)) < test_share]}
    in_test = np.array([(u, c) in test for u, c in zip(frame["User"], frame["Card"])])
    return frame[~in_test], frame[in_test]


def best_f1_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """Threshold with the highest F1 on held-out data (fraud is rare: 0.5 is rarely right)."""
    from sklearn.metrics import precision_recall_curve  # noqa: PLC0415 - export-only dependency

    precision, recall, thresholds = precision_recall_curve(labels, scores)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    return float(thresholds[int(np.argmax(f1))])


def train(rows: int, seed: int, work_dir: Path) -> tuple[Path, FeatureSpec, TrainingResult]:
    """Generate data, fit the featuriser, train and evaluate XGBoost; return model file, spec, metrics."""
    import xgboost as xgb  # noqa: PLC0415 - export-only dependency
    from sklearn.metrics import average_precision_score, roc_auc_score  # noqa: PLC0415

    with step(f"Generating {rows:,} transactions"):
        frame = generate_transactions(rows, seed=seed)
        train_frame, test_frame = split_by_card(frame, seed=seed)
        fit_frame, valid_frame = split_by_card(train_frame, seed=seed + 1)
    with step("Featurising"):
        spec = fit_spec(raw_columns(fit_frame))
        matrices = {
            name: (featurize(raw_columns(part), spec), (part[LABEL_COLUMN] == "Yes").to_numpy(dtype=np.float32))
            for name, part in (("fit", fit_frame), ("valid", valid_frame), ("test", test_frame))
        }
    with step("Training XGBoost"):
        dmatrix = {name: xgb.DMatrix(x, label=y, feature_names=list(FEATURE_NAMES)) for name, (x, y) in matrices.items()}
        params = {
            "objective": "binary:logistic",
            "eval_metric": "aucpr",
            "tree_method": "hist",
            "max_depth": 6,
            "eta": 0.1,
            "subsample": 0.9,
            "colsample_bytree": 0.9,
            "min_child_weight": 2,
            "seed": seed,
            "nthread": 2,
        }
        booster = xgb.train(
            params, dmatrix["fit"], num_boost_round=400, evals=[(dmatrix["valid"], "valid")],
            early_stopping_rounds=40, verbose_eval=False,
        )
        booster = booster[: booster.best_iteration + 1]
    valid_scores = booster.predict(dmatrix["valid"])
    test_x, test_y = matrices["test"]
    test_scores = booster.predict(dmatrix["test"])
    result = TrainingResult(
        rows=rows,
        fraud_rate=float((frame[LABEL_COLUMN] == "Yes").mean()),
        train_cards=int(len(train_frame[["User", "Card"]].drop_duplicates())),
        test_cards=int(len(test_frame[["User", "Card"]].drop_duplicates())),
        roc_auc=float(roc_auc_score(test_y, test_scores)),
        pr_auc=float(average_precision_score(test_y, test_scores)),
        threshold=best_f1_threshold(matrices["valid"][1], valid_scores),
        best_iteration=int(booster.num_boosted_rounds()),
    )
    model_file = work_dir / "xgboost.json"
    booster.save_model(model_file)
    return model_file, spec, result


def write_repository(repository: Path, model_file: Path, spec: FeatureSpec, threshold: float) -> None:
    """Write the four models of the pipeline into ``repository`` (existing ones are replaced)."""
    for name in (PREPROCESS, XGBOOST, POSTPROCESS, PIPELINE):
        shutil.rmtree(repository / name, ignore_errors=True)
    raw_inputs = [
        tensor(c, "TYPE_FP32" if c in NUMERIC_COLUMNS else "TYPE_STRING", [1]) for c in RAW_COLUMNS
    ]
    features = [tensor(FEATURES, "TYPE_FP32", [len(FEATURE_NAMES)])]
    preprocess = model_config(
        name=PREPROCESS, backend="python", max_batch_size=MAX_BATCH_SIZE, inputs=raw_inputs, outputs=features
    )
    preprocess_dir = export_python_model(preprocess, repository, PREPROCESS, ("model.py", "features.py"))
    spec.save(preprocess_dir / VERSION / SPEC_FILE)
    xgboost = export_tree_model(model_file, repository, XGBOOST, predict_proba=True, threshold=threshold)
    answer = [tensor("probability", "TYPE_FP32", [1]), tensor("label", "TYPE_STRING", [1])]
    postprocess = model_config(
        name=POSTPROCESS,
        backend="python",
        max_batch_size=MAX_BATCH_SIZE,
        inputs=[tensor("output__0", "TYPE_FP32", list(xgboost.output[0].dims))],
        outputs=answer,
        parameters={"threshold": repr(float(threshold))},
    )
    export_python_model(postprocess, repository, POSTPROCESS)
    ensemble = build_ensemble(
        PIPELINE,
        [
            Step(preprocess, {c: c for c in RAW_COLUMNS}, {FEATURES: FEATURES}),
            Step(xgboost, {"input__0": FEATURES}, {"output__0": "class_probabilities"}),
            Step(postprocess, {"output__0": "class_probabilities"}, {"probability": "probability", "label": "label"}),
        ],
        inputs=raw_inputs,
        outputs=answer,
        max_batch_size=MAX_BATCH_SIZE,
    )
    write_config(ensemble, repository)


def export_fraud(
    repository: Path,
    *,
    rows: int = 250_000,
    seed: int = 0,
    model_file: Path | None = None,
    spec_file: Path | None = None,
    threshold: float = 0.5,
    work_dir: Path = Path("build/export"),
) -> TrainingResult | None:
    """Train (or take ``model_file`` + ``spec_file``) and write the pipeline; return metrics when trained."""
    repository.mkdir(parents=True, exist_ok=True)
    if (model_file is None) != (spec_file is None):
        raise ValueError("pass both a model file and a feature spec, or neither to train")
    result = None
    work_dir.mkdir(parents=True, exist_ok=True)
    if model_file is None:
        model_file, spec, result = train(rows, seed, work_dir)
        threshold = result.threshold
    else:
        spec = FeatureSpec.load(spec_file)
    with step("Writing the model repository"):
        write_repository(repository, model_file, spec, threshold)
    if result is not None:
        (work_dir / SUMMARY_FILE).write_text(json.dumps(asdict(result), indent=1) + "\n")
        console.print(
            f"fraud: held-out ROC AUC {result.roc_auc:.4f}, PR AUC {result.pr_auc:.4f} "
            f"({result.test_cards} unseen cards; fraud rate {result.fraud_rate:.2%}; threshold {result.threshold:.3f})"
        )
    return result
