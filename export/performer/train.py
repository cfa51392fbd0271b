"""Train the Performer on card histories and score it next to the single-transaction XGBoost model.

Data: :func:`~tritonmm.export.transactions.generate_transactions`, split by card exactly as
:func:`tritonmm.export.fraud.train` splits it (train/test, then fit/valid inside train), so the
XGBoost baseline is the fraud pipeline's own model and both models are scored on the same held-out
transactions. Every card is featurised and tokenised once over its whole history (tokens are causal,
so token ``t`` of the whole card equals token ``t`` of any prefix ending at ``t``); an example is a
transaction ``t`` and the window of its card's last ``max_train_len`` tokens ending at ``t``.

Training sees every fraud of the fit cards and a random share of the other transactions (fraud is
0.4% of rows); the metrics weight each sampled non-fraud by the inverse of that share, so validation
numbers estimate those of real traffic, and the test set is every transaction of the test cards,
unsampled. Early stopping keeps the epoch with the best validation PR AUC. Runs are reproducible:
seeded generators, deterministic algorithms, one thread (:func:`reproducible`).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from tritonmm.server.models.fraud_preprocess.features import FEATURE_NAMES, FeatureSpec, featurize
from tritonmm.server.models.performer_featurize.history import (
    SPEC_FILE,
    STATS_FILE,
    TokenizerStats,
    fit_stats,
    history_context,
    pad_histories,
    raw_tokens,
    scale_tokens,
)

from ..fraud import raw_columns, split_by_card
from ..transactions import LABEL_COLUMN, generate_transactions
from .attention import load_attention_weights
from .model import ModelConfig, PerformerClassifier

WEIGHTS_FILE = "performer.pt"
CONFIG_FILE = "performer_config.json"


@dataclass(frozen=True)
class TrainSettings:
    """How much data and how many steps; :data:`QUICK` is the seconds-long variant for tests."""

    max_train_len: int = 64
    negatives_per_fraud: float = 10.0
    max_train_examples: int = 8_000
    batch_size: int = 64
    max_epochs: int = 8
    patience: int = 1
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    fine_tune_epochs: int = 1
    fine_tune_learning_rate: float = 3e-4
    n_features: int = 64


QUICK = TrainSettings(max_train_len=16, max_train_examples=600, max_epochs=2, fine_tune_epochs=1, n_features=32)


@contextmanager
def reproducible(seed: int, threads: int = 1) -> Iterator[None]:
    """Seed torch, use deterministic algorithms and ``threads`` threads; restore the process's settings after.

    One thread by default: on the shared 2-core machine, with one other busy process, a training step took
    0.16 s with one thread and 0.53-0.81 s with two (OpenMP threads spin waiting for the busy core); the
    tensors of a step ([64, 64, 64]) are too small for a second thread to pay for itself.
    """
    deterministic, previous_threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(previous_threads)


@dataclass(frozen=True)
class Split:
    """All transactions of one split's cards, card after card, in time order within each card."""

    tokens: np.ndarray  # [n, n_tokens] float32, each card tokenised on its own
    card_start: np.ndarray  # [n] row of the first transaction of the row's card
    labels: np.ndarray  # [n] float32, 1 = fraud

    @property
    def cards(self) -> int:
        return int(np.unique(self.card_start).size)

    def windows(self, rows: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray]:
        """Padded tokens and mask of the histories ending at ``rows``, each cut to its last ``max_len`` tokens."""
        starts = np.maximum(self.card_start[rows], rows - max_len + 1)
        return pad_histories([self.tokens[s : r + 1] for s, r in zip(starts.tolist(), rows.tolist())])


@dataclass(frozen=True)
class Dataset:
    """The three splits, and the fitted featuriser spec and tokenizer stats they were built with."""

    fit: Split
    valid: Split
    test: Split
    spec: FeatureSpec
    stats: TokenizerStats


def _card_bounds(frame) -> np.ndarray:
    """Row offsets where a new (User, Card) starts in a frame sorted by card, plus the end."""
    user, card = frame["User"].to_numpy(), frame["Card"].to_numpy()
    new = np.flatnonzero((user[1:] != user[:-1]) | (card[1:] != card[:-1])) + 1
    return np.concatenate([[0], new, [len(frame)]])


def _raw_card_tokens(frame, spec: FeatureSpec, stats: TokenizerStats) -> list[np.ndarray]:
    """Each card's raw (unscaled) tokens: the featuriser over the whole frame, then the tokenizer card by card."""
    columns = raw_columns(frame)
    features = featurize(columns, spec)
    bounds = _card_bounds(frame)
    return [
        raw_tokens(features[a:b], history_context({c: v[a:b] for c, v in columns.items()}), stats)
        for a, b in zip(bounds[:-1], bounds[1:])
    ]


def _split(frame, raw: list[np.ndarray], stats: TokenizerStats) -> Split:
    sizes = [len(card) for card in raw]
    return Split(
        tokens=scale_tokens(np.concatenate(raw), stats),
        card_start=np.repeat(np.cumsum(sizes) - sizes, sizes),
        labels=(frame[LABEL_COLUMN] == "Yes").to_numpy(dtype=np.float32),
    )


def build_dataset(rows: int, seed: int, spec: FeatureSpec, stats: TokenizerStats | None = None) -> Dataset:
    """Generate, split like the fraud pipeline, featurise with ``spec`` and tokenise.

    ``stats=None`` fits them on the fit cards only, so validation and test cards are tokenised as unseen traffic.
    """
    frame = generate_transactions(rows, seed=seed)
    train_frame, test_frame = split_by_card(frame, seed=seed)
    parts = dict(zip(("fit", "valid"), split_by_card(train_frame, seed=seed + 1)), test=test_frame)
    layout = stats or TokenizerStats.unfitted(FEATURE_NAMES, len(spec.mcc))
    raw = {name: _raw_card_tokens(part, spec, layout) for name, part in parts.items()}
    stats = stats or fit_stats(raw["fit"], layout)
    return Dataset(**{name: _split(part, raw[name], stats) for name, part in parts.items()}, spec=spec, stats=stats)


def sample_rows(
    labels: np.ndarray, negatives_per_fraud: float, cap: int, rng: np.random.Generator
) -> tuple[np.ndarray, float]:
    """Every fraud and a random share of the rest (at most ``cap`` rows in all); return the rows and that share."""
    frauds, others = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    n_others = int(min(others.size, negatives_per_fraud * frauds.size, max(cap - frauds.size, 0)))
    kept = rng.choice(others, size=n_others, replace=False)
    return np.sort(np.concatenate([frauds, kept])), n_others / max(others.size, 1)


def inverse_sampling_weights(labels: np.ndarray, kept_share: float) -> np.ndarray:
    """Weight of each sampled row in population metrics: 1 for frauds, 1 / share for the sampled rest."""
    return np.where(labels == 1, 1.0, 1.0 / kept_share)


def auc_metrics(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> dict[str, float]:
    """ROC AUC and PR AUC (average precision), optionally importance-weighted."""
    from sklearn.metrics import average_precision_score, roc_auc_score  # noqa: PLC0415 - export-only dependency

    if np.unique(labels).size < 2:
        raise ValueError("the split has no fraud (or only fraud): use more rows")
    return {
        "roc_auc": float(roc_auc_score(labels, scores, sample_weight=weights)),
        "pr_auc": float(average_precision_score(labels, scores, sample_weight=weights)),
    }


Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``(tokens [B, L, F], mask [B, L]) -> fraud probability [B]``: a PyTorch model or an onnxruntime session."""


def torch_scorer(model: PerformerClassifier) -> Scorer:
    """Score with ``model`` in eval mode, without gradients."""
    model.eval()

    def score(tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(tokens), torch.from_numpy(mask))[:, 0].numpy()

    return score


def predict(score: Scorer, split: Split, rows: np.ndarray, settings: TrainSettings, batch_size: int) -> np.ndarray:
    """Fraud probability of each row's transaction given its window; in length order to pad little."""
    lengths = np.minimum(rows - split.card_start[rows] + 1, settings.max_train_len)
    order = np.argsort(lengths, kind="stable")
    scores = np.empty(rows.size, dtype=np.float32)
    for batch in np.array_split(order, max(1, -(-rows.size // batch_size))):
        scores[batch] = score(*split.windows(rows[batch], settings.max_train_len))
    return scores


@dataclass(frozen=True)
class Evaluation:
    """Rows of a split scored by :func:`evaluate`, with the weights that make metrics estimate real traffic."""

    rows: np.ndarray
    weights: np.ndarray | None

    @classmethod
    def sampled(cls, split: Split, settings: TrainSettings, seed: int) -> Evaluation:
        rng = np.random.default_rng(seed)
        rows, share = sample_rows(split.labels, settings.negatives_per_fraud, split.labels.size, rng)
        return cls(rows, inverse_sampling_weights(split.labels[rows], share))

    @classmethod
    def every_row(cls, split: Split) -> Evaluation:
        return cls(np.arange(split.labels.size), None)


def evaluate(
    score: Scorer, split: Split, evaluation: Evaluation, settings: TrainSettings, *, batch_size: int = 64
) -> dict[str, float]:
    """ROC AUC and PR AUC of ``score`` on the evaluation's rows (64 windows a batch: PyTorch's fastest here)."""
    scores = predict(score, split, evaluation.rows, settings, batch_size)
    return auc_metrics(split.labels[evaluation.rows], scores, evaluation.weights)


@dataclass(frozen=True)
class TrainLog:
    """What a training run did: valid metrics per epoch (epoch 0 = before training), the epoch kept, its duration."""

    valid: list[dict[str, float]]
    best_epoch: int
    train_examples: int
    kept_share_of_negatives: float
    seconds: float


def _epoch(
    model: PerformerClassifier,
    split: Split,
    rows: np.ndarray,
    optimizer: torch.optim.Optimizer,
    settings: TrainSettings,
    generator: torch.Generator,
) -> None:
    """One pass over ``rows`` in a seeded random order: BCE on the sample's odds, gradients clipped at norm 1."""
    model.train()
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for batch in torch.randperm(rows.size, generator=generator).split(settings.batch_size):
        picked = rows[batch.numpy()]
        tokens, mask = split.windows(picked, settings.max_train_len)
        logits = model.logits(torch.from_numpy(tokens), torch.from_numpy(mask))
        loss = loss_fn(logits[:, 0], torch.from_numpy(split.labels[picked]))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()


def train_model(
    model: PerformerClassifier, data: Dataset, settings: TrainSettings, *, epochs: int, learning_rate: float, seed: int
) -> TrainLog:
    """AdamW on BCE over sampled fit rows; keep the weights of the best validation PR AUC (epoch 0 included).

    Early stopping after ``settings.patience`` epochs without improvement. Sets the model's sampling correction.
    """
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    rows, share = sample_rows(data.fit.labels, settings.negatives_per_fraud, settings.max_train_examples, rng)
    valid = Evaluation.sampled(data.valid, settings, seed + 1)
    model.set_sampling_rate(share)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=settings.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    history = [evaluate(torch_scorer(model), data.valid, valid, settings)]
    best_state, best_epoch = copy.deepcopy(model.state_dict()), 0
    for epoch in range(1, epochs + 1):
        _epoch(model, data.fit, rows, optimizer, settings, generator)
        history.append(evaluate(torch_scorer(model), data.valid, valid, settings))
        if history[epoch]["pr_auc"] > history[best_epoch]["pr_auc"]:
            best_state, best_epoch = copy.deepcopy(model.state_dict()), epoch
        elif epoch - best_epoch >= settings.patience:
            break
    model.load_state_dict(best_state)
    return TrainLog(history, best_epoch, int(rows.size), share, time.perf_counter() - started)


def new_model(data: Dataset, settings: TrainSettings, attention: str) -> PerformerClassifier:
    """A fresh model for the dataset's tokens (call inside :func:`reproducible` for seeded weights)."""
    return PerformerClassifier(len(data.stats.token_names), attention=attention, n_features=settings.n_features)


def save_checkpoint(model: PerformerClassifier, data: Dataset, directory: Path) -> None:
    """Weights (a dict of tensors), model config JSON, tokenizer stats and feature spec: all the model needs."""
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), directory / WEIGHTS_FILE)
    (directory / CONFIG_FILE).write_text(json.dumps(asdict(model.config), indent=1) + "\n")
    data.stats.save(directory / STATS_FILE)
    data.spec.save(directory / SPEC_FILE)


@dataclass(frozen=True)
class Checkpoint:
    """A saved model: its config, weights, and the featuriser spec and tokenizer stats its tokens came from."""

    config: ModelConfig
    state_dict: dict[str, Tensor]
    spec: FeatureSpec
    stats: TokenizerStats

    @classmethod
    def load(cls, directory: Path) -> Checkpoint:
        return cls(
            config=ModelConfig(**json.loads((directory / CONFIG_FILE).read_text())),
            state_dict=torch.load(directory / WEIGHTS_FILE, weights_only=True),
            spec=FeatureSpec.load(directory / SPEC_FILE),
            stats=TokenizerStats.load(directory / STATS_FILE),
        )

    def into(self, attention: str) -> PerformerClassifier:
        """The checkpoint's model with ``attention``: a softmax checkpoint keeps its weights, gets FAVOR+ buffers."""
        model = PerformerClassifier.from_config(replace(self.config, attention=attention))
        load_attention_weights(model, self.state_dict)
        return model
