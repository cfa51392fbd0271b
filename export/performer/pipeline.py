"""The Performer export: train (or fine-tune a checkpoint), save, export ONNX, and report AUC next to XGBoost.

Files written to ``work_dir`` (names fixed, so the repository wiring can pick them up)::

    performer.pt              state_dict (a dict of tensors; torch.load(..., weights_only=True))
    performer_config.json     PerformerClassifier arguments
    tokenizer_stats.json      history.TokenizerStats (STATS_FILE)
    feature_spec.json         the featuriser spec the tokens were built with (SPEC_FILE)
    performer.onnx            tokens [B, L, F] + mask [B, L] -> fraud_probability [B, 1]
    performer_summary.json    held-out AUC of the Performer and of the XGBoost-only model, parity, timings
    performer_baseline/       the XGBoost baseline (the fraud pipeline's own training on the same cards)

The first four files are a checkpoint: ``from_checkpoint=<that work_dir>`` loads it, e.g. a model trained
with ``attention="softmax"``, into a FAVOR+ model and fine-tunes it. The command line is
``tritonmm export performer`` (``--quick``, ``--attention``, ``--from-checkpoint``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Literal

from .. import fraud
from ..progress import console, step
from .hybrid import train_hybrid, write_hybrid_repository
from .model import PerformerClassifier
from .onnx_export import PARITY_LENGTHS, export_onnx, onnx_scorer, parity
from .repository import write_performer_repository
from .train import (
    QUICK,
    Checkpoint,
    Dataset,
    Evaluation,
    TrainLog,
    TrainSettings,
    build_dataset,
    evaluate,
    new_model,
    reproducible,
    save_checkpoint,
    train_model,
)

ONNX_FILE = "performer.onnx"
SUMMARY_FILE = "performer_summary.json"
BASELINE_DIR = "performer_baseline"
QUICK_ROWS = 15_000
QUICK_PARITY_LENGTHS = (7, 64, 300)
MAX_PARITY_DIFF = 1e-4


def _log_summary(log: TrainLog) -> dict:
    return {
        "valid_by_epoch": log.valid,
        "best_epoch": log.best_epoch,
        "train_examples": log.train_examples,
        "kept_share_of_non_fraud": log.kept_share_of_negatives,
        "seconds": round(log.seconds, 1),
    }


def export_performer(
    repository: Path,
    *,
    rows: int = 250_000,
    seed: int = 0,
    work_dir: Path = Path("build/export"),
    from_checkpoint: Path | None = None,
    quick: bool = False,
    attention: Literal["favor", "softmax"] = "favor",
) -> dict:
    """Train (or load ``from_checkpoint`` and fine-tune), export, and return the summary written to ``work_dir``.

    The Performer pipeline's models are written into ``repository`` (see :mod:`.repository`). ``quick`` caps rows at :data:`QUICK_ROWS` and trains for seconds (tests).
    ``attention="softmax"`` trains the exact-attention baseline whose checkpoint FAVOR+ can start from.
    """
    started = time.perf_counter()
    settings: TrainSettings = QUICK if quick else TrainSettings()
    rows = min(rows, QUICK_ROWS) if quick else rows
    (work_dir / BASELINE_DIR).mkdir(parents=True, exist_ok=True)
    with reproducible(seed):
        _, spec, baseline = fraud.train(rows, seed, work_dir / BASELINE_DIR)
        checkpoint = Checkpoint.load(from_checkpoint) if from_checkpoint else None
        with step("Tokenising card histories"):
            spec, stats = (checkpoint.spec, checkpoint.stats) if checkpoint else (spec, None)
            data = build_dataset(rows, seed, spec, stats)
        if baseline.test_cards != data.test.cards:  # the XGBoost numbers below are only comparable on the same cards
            raise RuntimeError(f"XGBoost held out {baseline.test_cards} cards, the Performer {data.test.cards}")
        summary: dict = {
            "rows": rows,
            "seed": seed,
            "quick": quick,
            "from_checkpoint": str(from_checkpoint) if from_checkpoint else None,
            "test_cards": data.test.cards,
            "test_transactions": int(data.test.labels.size),
            "test_frauds": int(data.test.labels.sum()),
            "max_train_len": settings.max_train_len,
        }
        model, epochs, learning_rate, summary["after_swap"] = _initial_model(checkpoint, data, settings, attention)
        with step(f"{'Fine-tuning' if checkpoint else 'Training'} the Performer ({attention})"):
            log = train_model(model, data, settings, epochs=epochs, learning_rate=learning_rate, seed=seed)
        save_checkpoint(model, data, work_dir)
        with step("Exporting ONNX and scoring held-out cards with it"):
            summary["performer"] = _score_exported(model, work_dir / ONNX_FILE, data, settings)
            summary["onnx"] = _parity(model, work_dir / ONNX_FILE, QUICK_PARITY_LENGTHS if quick else PARITY_LENGTHS)
        with step("Training the hybrid XGBoost on the Performer's score"):
            summary["hybrid"] = train_hybrid(
                model, data, settings, work_dir, seed=seed, parity_lengths=QUICK_PARITY_LENGTHS,
                xgboost_only={"roc_auc": baseline.roc_auc, "pr_auc": baseline.pr_auc},
            )
    summary["xgboost"] = {"roc_auc": baseline.roc_auc, "pr_auc": baseline.pr_auc}
    summary["training"] = _log_summary(log)
    summary["model"] = asdict(model.config)
    with step("Writing the Performer's models into the repository"):
        write_performer_repository(repository, work_dir, onnx_file=work_dir / ONNX_FILE)
        write_hybrid_repository(repository, work_dir)
    summary["wall_seconds"] = round(time.perf_counter() - started, 1)
    (work_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=1) + "\n")
    _print(summary)
    return summary


def _initial_model(
    checkpoint: Checkpoint | None, data: Dataset, settings: TrainSettings, attention: Literal["favor", "softmax"]
) -> tuple[PerformerClassifier, int, float, dict[str, float] | None]:
    """A fresh model and its training schedule, or the checkpoint's weights in ``attention`` and a fine-tune's.

    A checkpoint's model is scored on the held-out cards right after the swap (the last value; None when fresh).
    """
    if checkpoint is None:
        return new_model(data, settings, attention), settings.max_epochs, settings.learning_rate, None
    model = checkpoint.into(attention)
    with step(f"Scoring the {checkpoint.config.attention} checkpoint with {attention} attention"):
        with TemporaryDirectory() as tmp:
            after_swap = _score_exported(model, Path(tmp) / ONNX_FILE, data, settings)
    return model, settings.fine_tune_epochs, settings.fine_tune_learning_rate, after_swap


def _score_exported(
    model: PerformerClassifier, path: Path, data: Dataset, settings: TrainSettings
) -> dict[str, float]:
    """Export ``model`` to ``path`` and score every held-out transaction with that graph in onnxruntime.

    The reported AUC is then the served artefact's, and onnxruntime scores this CPU's batches about twice as fast.
    """
    export_onnx(model, path)
    return evaluate(onnx_scorer(path), data.test, Evaluation.every_row(data.test), settings, batch_size=256)


def _parity(model: PerformerClassifier, path: Path, lengths: tuple[int, ...]) -> dict:
    """Parity per length; refuse a graph that disagrees with PyTorch."""
    diffs = {length: parity(model, path, (length,)) for length in lengths}
    if max(diffs.values()) > MAX_PARITY_DIFF:
        raise RuntimeError(f"{path}: onnxruntime differs from PyTorch by up to {max(diffs.values()):.2e}: {diffs}")
    return {"path": str(path), "parity_max_abs_diff": {str(k): v for k, v in diffs.items()}}


def _print(summary: dict) -> None:
    rows = [("Performer", summary["performer"]), ("XGBoost only", summary["xgboost"])]
    if summary["after_swap"]:
        rows.insert(1, ("right after the swap", summary["after_swap"]))
    if summary.get("hybrid"):
        rows.append(("Hybrid (XGB + Performer)", summary["hybrid"]["held_out"]["hybrid"]))
    for name, metrics in rows:
        console.print(f"{name:>24}: held-out ROC AUC {metrics['roc_auc']:.4f}, PR AUC {metrics['pr_auc']:.4f}")
    held_out = f"{summary['test_cards']} unseen cards, {summary['test_transactions']:,} transactions"
    console.print(f"({held_out}; {summary['wall_seconds']} s)")

