"""The hybrid pipeline ``hybrid_fraud``: the Performer's score as one more feature of an XGBoost model.

Repository entries (next to the Performer pipeline's, whose ``performer_featurize`` it reuses)::

    performer_featurize/  backend: python        one card's raw history -> tokens [1, L, F], mask [1, L]
    performer_hybrid/     backend: onnxruntime   tokens, mask -> hybrid_features [B, F]
    hybrid_xgboost/       backend: fil           hybrid_features -> [1 - p, p]
    hybrid_postprocess/   backend: python        [1 - p, p] -> probability, label
    hybrid_fraud/         platform: ensemble     the four steps as one call (same request as performer_fraud)

**What the XGBoost sees (``hybrid_features``).** The ONNX graph wraps the trained
:class:`~.model.PerformerClassifier` and outputs ``concat(current, fraud_probability)``, where ``current`` is the
token of the transaction being scored (the last real token, gathered at ``mask.sum(1) - 1``) without its
``elapsed_minutes`` column (minutes since the first transaction *sent*, which says how much history the caller
sent, not anything about the transaction). The fraud featuriser's 21 features of that transaction cannot be
recovered from the token exactly (merchant, city, zip3, state and MCC codes, month and the raw amount are not in
it, or only as buckets), and ``performer_featurize/model.py`` only outputs tokens and mask; so rather than a
second Python step (more latency per request, and a copy of the featuriser's work) the trees are trained on what
the graph can see: the current token's per-transaction and history values, plus the Performer's score.

**Training data and leakage.** The trees are trained on the fit cards (the Performer's training cards, a sample
of them: every fraud and ``NEGATIVES_PER_FRAUD`` others per fraud, weighted back to the population), early-stopped
on the validation cards, and scored on every transaction of the test cards, the very rows the Performer and the
XGBoost-only model are scored on. The Performer score of a fit row comes from the trained model in eval mode
(the exported graph itself: no dropout, the fixed FAVOR+ projection), exactly what is served. Those rows are partly
ones the Performer was trained on, so its scores there are somewhat more confident than on unseen cards; the
validation cards (never trained on) pick the number of trees, which limits how far the trees lean on that.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import Tensor, nn

from tritonmm.server.models.fraud_preprocess.features import NUMERIC_COLUMNS, RAW_COLUMNS
from tritonmm.server.models.performer_featurize.history import TIME_COLUMN

from ..ensemble import Step, build_ensemble
from ..model_config import ModelConfig, model_config, read_config, tensor, write_config
from ..onnx_model import export_onnx_model
from ..python_model import export_python_model
from ..trees import FIL_INPUT, FIL_OUTPUT, export_tree_model
from .model import PerformerClassifier
from .onnx_export import INPUTS, cpu_session, example_inputs, export_onnx
from .repository import FEATURIZE
from .train import Dataset, Split, TrainSettings, auc_metrics, inverse_sampling_weights, sample_rows

PIPELINE = "hybrid_fraud"
MODEL, XGBOOST, POSTPROCESS = "performer_hybrid", "hybrid_xgboost", "hybrid_postprocess"
OUTPUT = "hybrid_features"
ONNX_FILE = "performer_hybrid.onnx"
XGBOOST_FILE = "hybrid_xgboost.json"
HYBRID_FILE = "hybrid.json"
NEGATIVES_PER_FRAUD = 20.0
MAX_FIT_EXAMPLES = 30_000
MAX_PARITY_DIFF = 1e-4


class HybridFeatures(nn.Module):
    """``(tokens [B, L, F], mask [B, L]) -> [B, F]``: the latest token without elapsed minutes, then P(fraud)."""

    def __init__(self, model: PerformerClassifier) -> None:
        super().__init__()
        self.model = model
        keep = [i for i in range(model.config.n_token_features) if i != TIME_COLUMN]
        self.register_buffer("keep", torch.tensor(keep, dtype=torch.int64), persistent=False)

    def forward(self, tokens: Tensor, mask: Tensor) -> Tensor:
        last = mask.to(torch.int64).sum(1) - 1
        current = tokens.gather(1, last[:, None, None].expand(-1, 1, tokens.shape[-1])).squeeze(1)
        return torch.cat([current.index_select(1, self.keep), self.model(tokens, mask)], dim=1)


def feature_names(token_names: tuple[str, ...]) -> list[str]:
    return [name for i, name in enumerate(token_names) if i != TIME_COLUMN] + ["performer_probability"]


def export_hybrid_onnx(model: PerformerClassifier, path: Path, *, opset: int = 17) -> Path:
    """The wrapper in eval mode, dynamic batch and length, exactly as the Performer itself is exported."""
    return export_onnx(HybridFeatures(model), path, opset=opset, output=OUTPUT,
                       n_token_features=model.config.n_token_features)


def hybrid_parity(model: PerformerClassifier, path: Path, lengths: tuple[int, ...]) -> float:
    """Max absolute difference of the PyTorch wrapper and the graph in onnxruntime (padded batches of 2)."""
    wrapper, session, worst = HybridFeatures(model).eval(), cpu_session(path), 0.0
    for length in lengths:
        tokens, mask = example_inputs(model.config.n_token_features, length, seed=length)
        with torch.no_grad():
            expected = wrapper(tokens, mask).numpy()
        (actual,) = session.run([OUTPUT], {INPUTS[0]: tokens.numpy(), INPUTS[1]: mask.numpy()})
        worst = max(worst, float(np.abs(actual - expected).max()))
    return worst


def hybrid_features(session: ort.InferenceSession, split: Split, rows: np.ndarray, settings: TrainSettings,
                    batch_size: int = 256) -> np.ndarray:
    """``[len(rows), F]`` features of each row's window (as the Performer is scored), in length order to pad little."""
    lengths = np.minimum(rows - split.card_start[rows] + 1, settings.max_train_len)
    order = np.argsort(lengths, kind="stable")
    out: np.ndarray | None = None
    for batch in np.array_split(order, max(1, -(-rows.size // batch_size))):
        tokens, mask = split.windows(rows[batch], settings.max_train_len)
        values = session.run([OUTPUT], {INPUTS[0]: tokens, INPUTS[1]: mask})[0]
        if out is None:
            out = np.empty((rows.size, values.shape[1]), dtype=np.float32)
        out[batch] = values
    assert out is not None
    return out


def _weighted_best_f1_threshold(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> float:
    from sklearn.metrics import precision_recall_curve  # noqa: PLC0415 - export-only dependency

    precision, recall, thresholds = precision_recall_curve(labels, scores, sample_weight=weights)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    return float(thresholds[int(np.argmax(f1))])


def train_hybrid(model: PerformerClassifier, data: Dataset, settings: TrainSettings, work_dir: Path, *,
                 seed: int, parity_lengths: tuple[int, ...], xgboost_only: dict[str, float]) -> dict:
    """Export the hybrid graph, train the trees, score the test cards; write files into ``work_dir``; return metrics."""
    import xgboost as xgb  # noqa: PLC0415 - export-only dependency

    onnx_file = export_hybrid_onnx(model, work_dir / ONNX_FILE)
    diffs = {length: hybrid_parity(model, onnx_file, (length,)) for length in parity_lengths}
    if max(diffs.values()) > MAX_PARITY_DIFF:
        raise RuntimeError(f"{onnx_file}: onnxruntime differs from PyTorch by up to {max(diffs.values()):.2e}: {diffs}")
    session = cpu_session(onnx_file)
    names = feature_names(data.stats.token_names)
    rng = np.random.default_rng(seed + 7)
    fit_rows, fit_share = sample_rows(data.fit.labels, NEGATIVES_PER_FRAUD, MAX_FIT_EXAMPLES, rng)
    valid_rows, valid_share = sample_rows(data.valid.labels, NEGATIVES_PER_FRAUD, MAX_FIT_EXAMPLES, rng)
    matrices = {}
    for name, split, rows, share in (("fit", data.fit, fit_rows, fit_share), ("valid", data.valid, valid_rows, valid_share)):
        labels = split.labels[rows]
        matrices[name] = xgb.DMatrix(hybrid_features(session, split, rows, settings), label=labels,
                                     weight=inverse_sampling_weights(labels, share), feature_names=names)
    test_rows = np.arange(data.test.labels.size)
    test_x = hybrid_features(session, data.test, test_rows, settings)
    params = {
        "objective": "binary:logistic", "eval_metric": "aucpr", "tree_method": "hist", "max_depth": 6, "eta": 0.1,
        "subsample": 0.9, "colsample_bytree": 0.9, "min_child_weight": 2, "seed": seed, "nthread": 2,
    }
    booster = xgb.train(params, matrices["fit"], num_boost_round=400, evals=[(matrices["valid"], "valid")],
                        early_stopping_rounds=40, verbose_eval=False)
    booster = booster[: booster.best_iteration + 1]
    booster.save_model(work_dir / XGBOOST_FILE)
    valid_scores = booster.predict(matrices["valid"])
    threshold = _weighted_best_f1_threshold(matrices["valid"].get_label(), valid_scores, matrices["valid"].get_weight())
    labels = data.test.labels
    summary = {
        "features": names,
        "fit_examples": int(fit_rows.size),
        "kept_share_of_non_fraud": fit_share,
        "trees": int(booster.num_boosted_rounds()),
        "threshold": threshold,
        "performer_scores": "trained Performer in eval mode (the exported graph), on fit-card windows",
        "onnx_parity_max_abs_diff": {str(k): v for k, v in diffs.items()},
        "held_out": {
            "hybrid": auc_metrics(labels, booster.predict(xgb.DMatrix(test_x, feature_names=names))),
            "performer_only": auc_metrics(labels, test_x[:, -1]),
            "xgboost_only": dict(xgboost_only),
        },
        "test_transactions": int(labels.size),
    }
    (work_dir / HYBRID_FILE).write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def _batched_view(config: ModelConfig) -> ModelConfig:
    """A batched model's tensors as a non-batching ensemble sees them: the batch axis (-1) in front of dims."""
    view = ModelConfig()
    view.CopyFrom(config)
    view.max_batch_size = 0
    for t in (*view.input, *view.output):
        t.dims[:] = [-1, *t.dims]
    return view


def write_hybrid_repository(repository: Path, work_dir: Path, *, threshold: float | None = None) -> None:
    """``performer_hybrid``, ``hybrid_xgboost``, ``hybrid_postprocess`` and the ``hybrid_fraud`` ensemble.

    Needs ``performer_featurize`` in ``repository`` (:func:`.repository.write_performer_repository`) and the files
    :func:`train_hybrid` wrote into ``work_dir``; ``threshold`` defaults to the best F1 on the validation cards.
    """
    for name in (MODEL, XGBOOST, POSTPROCESS, PIPELINE):
        shutil.rmtree(repository / name, ignore_errors=True)
    if threshold is None:
        threshold = float(json.loads((work_dir / HYBRID_FILE).read_text())["threshold"])
    featurize = read_config(repository / FEATURIZE)
    hybrid = export_onnx_model(work_dir / ONNX_FILE, repository, MODEL, max_batch_size=0)
    trees = export_tree_model(work_dir / XGBOOST_FILE, repository, XGBOOST, predict_proba=True, threshold=threshold)
    raw = [tensor(c, "TYPE_FP32" if c in NUMERIC_COLUMNS else "TYPE_STRING", [-1]) for c in RAW_COLUMNS]
    answer = [tensor("probability", "TYPE_FP32", [-1, 1]), tensor("label", "TYPE_STRING", [-1, 1])]
    postprocess = model_config(
        name=POSTPROCESS, backend="python", max_batch_size=0, inputs=[tensor(FIL_OUTPUT, "TYPE_FP32", [-1, 2])],
        outputs=answer, parameters={"threshold": repr(float(threshold))},
    )
    export_python_model(postprocess, repository, "fraud_postprocess")
    tokens_name, mask_name = INPUTS
    ensemble = build_ensemble(
        PIPELINE,
        [
            Step(featurize, {c: c for c in RAW_COLUMNS}, {tokens_name: tokens_name, mask_name: mask_name}),
            Step(hybrid, {tokens_name: tokens_name, mask_name: mask_name}, {OUTPUT: OUTPUT}),
            Step(_batched_view(trees), {FIL_INPUT: OUTPUT}, {FIL_OUTPUT: "class_probabilities"}),
            Step(postprocess, {FIL_OUTPUT: "class_probabilities"}, {"probability": "probability", "label": "label"}),
        ],
        inputs=raw, outputs=answer, max_batch_size=0,
    )
    write_config(ensemble, repository)
