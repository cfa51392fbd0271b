"""One card's transaction history -> Performer tokens, one token per transaction (numpy only).

The single tokenisation code path: the exporter tokenises training histories with it, and the
``performer_featurize`` Python-backend model imports this same file (copied next to its ``model.py``).

**Input contract.** :func:`tokenize_history` takes the per-transaction feature matrix that
``fraud_preprocess/features.py``'s ``featurize`` already computed (so raw values are parsed and
validated in one place, with the same messages), plus a :class:`HistoryContext` built by
:func:`history_context` from the few raw columns that the feature matrix collapses but a history
needs: the date (absolute time, for gaps between transactions), ``User``/``Card`` (one card per
history) and the merchant's identity (``featurize`` puts every merchant seen fewer than five times
at training into one unknown bucket, which would make two different rare merchants "the same").
This file imports nothing from ``features.py``: the featuriser's column names are recorded in
:class:`TokenizerStats` at export, and columns are looked up by those names, so this file works
the same next to ``features.py`` in a model repository and inside the installed package.

**Causal by construction.** Token ``i`` depends only on transactions ``0..i`` of the history:
every history-relative feature looks backwards (running median and most frequent state of the
*previous* transactions, gaps to the previous one, counts over a trailing window). Changing or
appending later transactions never changes earlier tokens, so a model may attend in both
directions and still classify the latest transaction without seeing the future.

**Token layout** (:attr:`TokenizerStats.token_names`): column 0 (:data:`TIME_COLUMN`) is the
minutes since the history's first transaction, unscaled: the model only uses differences of it
(recency relative to the transaction it classifies), which work at any history length and any
offset. Then per-transaction features (log amount, refund, cyclic hour and weekday, chip mode,
foreign, errors, one-hot MCC bucket) and history-relative ones (gap to the previous transaction,
amount against the running median, same/new merchant, new MCC, state against the card's usual
state, recent errors, transactions in the last hour). The continuous columns in
:data:`SCALED_TOKENS` are standardised with means and deviations fitted at export; flags, cyclic
encodings, the error count and the log1p count of recent transactions are already O(1).
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

SPEC_FILE = "feature_spec.json"
"""The featuriser spec's file name, in a checkpoint and in the model's version folder."""
STATS_FILE = "tokenizer_stats.json"
"""The tokenizer stats' file name, in a checkpoint and in the model's version folder."""

TIME_COLUMN = 0
"""Token column holding minutes since the history's first transaction (the model's recency input)."""

CHIP_TOKENS = ("chip_swipe", "chip_chip", "chip_online", "chip_other")
HISTORY_TOKENS = (
    "is_first",
    "log_gap",
    "amount_vs_median",
    "same_merchant",
    "new_merchant",
    "new_mcc",
    "state_differs",
    "recent_errors",
    "log_recent_count",
)
SCALED_TOKENS = ("log_amount", "log_gap", "amount_vs_median")
"""Continuous tokens standardised with fitted stats. ``log_recent_count`` is not among them: it is 0 for ~99% of
transactions, so its deviation is tiny and a burst would be standardised to 20+; as a log1p count it is O(1)."""
MAX_MCC_BUCKETS = 32
"""One-hot MCC columns at most; MCC codes are ranked by training frequency, so the rarest share the last one."""

_MINUTES_PER_DAY = 1440
_DATE_COLUMNS = ("Year", "Month", "Day")


class HistoryError(ValueError):
    """A history cannot be tokenised; ``column`` names the input tensor (as ``features.FeatureError`` does)."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(f"{column}: {message}")
        self.column = column


@dataclass(frozen=True)
class TokenizerStats:
    """Everything tokenisation needs besides the history, fitted at export and stored as JSON.

    ``feature_names`` are the featuriser's columns at export (the matrix layout this tokenizer reads);
    MCC codes (0 = unknown, then by training frequency) get one-hot columns ``0..mcc_buckets-1``, codes from
    ``mcc_buckets-1`` up (the rarest, when there are more than :data:`MAX_MCC_BUCKETS`) sharing the last;
    ``error_window`` is how many previous transactions ``recent_errors`` looks at and ``recent_minutes``
    the window of ``log_recent_count``; ``mean``/``std`` standardise :data:`SCALED_TOKENS`.
    """

    feature_names: tuple[str, ...]
    mcc_buckets: int
    error_window: int = 5
    recent_minutes: int = 60
    mean: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SCALED_TOKENS, 0.0))
    std: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SCALED_TOKENS, 1.0))

    @classmethod
    def unfitted(cls, feature_names: Sequence[str], n_mcc_codes: int) -> TokenizerStats:
        """Stats before :func:`fit_stats`: identity scaling, a bucket per MCC code (``n_mcc_codes`` + unknown)."""
        return cls(feature_names=tuple(feature_names), mcc_buckets=min(n_mcc_codes + 1, MAX_MCC_BUCKETS))

    @property
    def token_names(self) -> tuple[str, ...]:
        errors = tuple(name for name in self.feature_names if name.startswith("error_"))
        per_transaction = (
            "elapsed_minutes", "log_amount", "is_refund", "hour_sin", "hour_cos", "weekday_sin", "weekday_cos",
            *CHIP_TOKENS, "is_foreign", *errors,
        )
        mcc = tuple(f"mcc_{b}" for b in range(self.mcc_buckets))
        return per_transaction + mcc + HISTORY_TOKENS

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> TokenizerStats:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(**{**data, "feature_names": tuple(data["feature_names"])})


@dataclass(frozen=True)
class HistoryContext:
    """What the history needs beyond the feature matrix: day numbers and merchant identities, per transaction."""

    day: np.ndarray  # int64 days since 1970-01-01
    merchant: np.ndarray  # int64: equal values mean the same ``Merchant Name``


def _flat(columns: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    return np.asarray(columns[name]).reshape(-1)


def _identity_keys(values: np.ndarray) -> np.ndarray:
    """Same stripped value -> same integer, numbered in order of first appearance (bytes or str alike)."""
    keys: dict[object, int] = {}
    stripped = (v.strip() if isinstance(v, (bytes, str)) else v for v in values.tolist())
    return np.array([keys.setdefault(v, len(keys)) for v in stripped], dtype=np.int64)


def history_context(columns: Mapping[str, np.ndarray]) -> HistoryContext:
    """Day numbers and merchant keys of one card's raw columns, after ``featurize`` has validated them.

    Raises :class:`HistoryError` for an empty history or one that mixes cards.
    """
    user, card = _flat(columns, "User"), _flat(columns, "Card")
    if user.size == 0:
        raise HistoryError("User", "the history is empty: send at least one transaction")
    for name, values in (("User", user), ("Card", card)):
        odd = np.flatnonzero(values != values[0])
        if odd.size:
            message = f"row {odd[0]} is {values[odd[0]]:g} but row 0 is {values[0]:g}: one card per history"
            raise HistoryError(name, message)
    year, month, day = (_flat(columns, c).astype(np.float64).astype(np.int64) for c in _DATE_COLUMNS)
    first_of_month = ((year - 1970) * 12 + month - 1).astype("datetime64[M]").astype("datetime64[D]")
    days = first_of_month.astype(np.int64) + day - 1
    return HistoryContext(day=days, merchant=_identity_keys(_flat(columns, "Merchant Name")))


def _column(features: np.ndarray, stats: TokenizerStats, name: str) -> np.ndarray:
    return features[:, stats.feature_names.index(name)].astype(np.float64)


def _required(values: np.ndarray, column: str) -> np.ndarray:
    """Values the history cannot do without (the featuriser lets them be missing for the trees)."""
    missing = np.flatnonzero(np.isnan(values))
    if missing.size:
        raise HistoryError(column, f"row {missing[0]} is missing: every transaction of a history needs it")
    return values


def _minutes(features: np.ndarray, context: HistoryContext, stats: TokenizerStats) -> np.ndarray:
    """Minutes since 1970 of each transaction; the history must be oldest first."""
    minutes = context.day * _MINUTES_PER_DAY + _required(_column(features, stats, "minute_of_day"), "Time")
    earlier = np.flatnonzero(np.diff(minutes) < 0)
    if earlier.size:
        row = earlier[0] + 1
        raise HistoryError("Time", f"row {row} is earlier than row {row - 1}: send the history oldest first")
    return minutes


def _prior_medians(values: np.ndarray) -> np.ndarray:
    """Median of ``values[:i]`` for every ``i`` (NaN at 0): two heaps, exact, O(L log L)."""
    lower: list[float] = []  # max-heap (negated) of the lower half; never smaller than ``upper``
    upper: list[float] = []
    out = np.full(values.size, np.nan)
    for i, value in enumerate(values.tolist()):
        if i:
            out[i] = -lower[0] if len(lower) > len(upper) else (upper[0] - lower[0]) / 2
        heapq.heappush(upper, -heapq.heappushpop(lower, -value))
        if len(upper) > len(lower):
            heapq.heappush(lower, -heapq.heappop(upper))
    return out


def _prior_modes(codes: np.ndarray) -> np.ndarray:
    """Most frequent non-zero code among ``codes[:i]`` (0 when none; ties keep the one that got there first)."""
    counts: dict[int, int] = {}
    mode = 0
    out = np.zeros(codes.size, dtype=np.int64)
    for i, code in enumerate(codes.tolist()):
        out[i] = mode
        if code:
            counts[code] = counts.get(code, 0) + 1
            if not mode or counts[code] > counts[mode]:
                mode = code
    return out


def _first_seen(keys: np.ndarray) -> np.ndarray:
    """1.0 where a key appears for the first time in the history."""
    flags = np.zeros(keys.size)
    flags[np.unique(keys, return_index=True)[1]] = 1.0
    return flags


def _trailing_count(flags: np.ndarray, window: int) -> np.ndarray:
    """How many of the ``window`` transactions before each one have the flag."""
    before = np.concatenate([[0.0], np.cumsum(flags)])
    start = np.maximum(np.arange(flags.size) - window, 0)
    return before[:-1] - before[start]


def _one_hot(codes: np.ndarray, width: int) -> np.ndarray:
    return (codes[:, None] == np.arange(width)).astype(np.float64)


def _cyclic(values: np.ndarray, period: float) -> tuple[np.ndarray, np.ndarray]:
    angle = 2 * np.pi * values / period
    return np.sin(angle), np.cos(angle)


def _history_tokens(
    features: np.ndarray, context: HistoryContext, stats: TokenizerStats, minutes: np.ndarray
) -> list[np.ndarray]:
    """The :data:`HISTORY_TOKENS` columns, each looking only at earlier transactions."""
    n = minutes.size
    gap = np.diff(minutes, prepend=minutes[0])
    abs_amount = np.abs(_column(features, stats, "amount"))
    with np.errstate(invalid="ignore"):  # NaN median of no earlier transaction -> 0 below
        vs_median = np.nan_to_num(np.log1p(abs_amount) - np.log1p(_prior_medians(abs_amount)))
    same_merchant = np.concatenate([[0.0], context.merchant[1:] == context.merchant[:-1]])
    state = _column(features, stats, "merchant_state").astype(np.int64)
    usual = _prior_modes(state)
    state_differs = (state != 0) & (usual != 0) & (state != usual)
    errors = (_column(features, stats, "error_count") > 0).astype(np.float64)
    recent = np.arange(n) - np.searchsorted(minutes, minutes - stats.recent_minutes, side="left")
    return [
        (np.arange(n) == 0).astype(np.float64),
        np.log1p(gap),
        vs_median,
        same_merchant,
        _first_seen(context.merchant),
        _first_seen(_column(features, stats, "mcc")),
        state_differs.astype(np.float64),
        _trailing_count(errors, stats.error_window) / stats.error_window,
        np.log1p(recent),
    ]


def raw_tokens(features: np.ndarray, context: HistoryContext, stats: TokenizerStats) -> np.ndarray:
    """Unscaled ``[L, len(stats.token_names)]`` float64 tokens; raises :class:`HistoryError` for unusable histories."""
    if features.shape != (context.day.size, len(stats.feature_names)):
        raise ValueError(f"features of shape {features.shape} do not match {context.day.size} transactions "
                         f"of {len(stats.feature_names)} features")
    minutes = _minutes(features, context, stats)
    amount = _required(_column(features, stats, "amount"), "Amount")
    chip = np.clip(_column(features, stats, "use_chip").astype(np.int64), 0, len(CHIP_TOKENS) - 1)
    mcc = np.minimum(_column(features, stats, "mcc").astype(np.int64), stats.mcc_buckets - 1)
    error_columns = [i for i, name in enumerate(stats.feature_names) if name.startswith("error_")]
    columns = [
        (minutes - minutes[0])[:, None],
        np.log1p(np.abs(amount))[:, None],
        (amount < 0)[:, None],
        np.stack(_cyclic(_column(features, stats, "minute_of_day"), _MINUTES_PER_DAY), axis=1),
        np.stack(_cyclic(_column(features, stats, "day_of_week"), 7), axis=1),
        _one_hot(chip, len(CHIP_TOKENS)),
        _column(features, stats, "is_foreign")[:, None],
        features[:, error_columns].astype(np.float64),
        _one_hot(mcc, stats.mcc_buckets),
        np.stack(_history_tokens(features, context, stats, minutes), axis=1),
    ]
    return np.concatenate(columns, axis=1)


def scale_tokens(raw: np.ndarray, stats: TokenizerStats) -> np.ndarray:
    """Standardise :data:`SCALED_TOKENS` with the fitted stats; float32 for the model."""
    out = raw.astype(np.float32)
    names = stats.token_names
    for name in SCALED_TOKENS:
        i = names.index(name)
        out[:, i] = (raw[:, i] - stats.mean[name]) / stats.std[name]
    return out


def tokenize_history(features: np.ndarray, context: HistoryContext, stats: TokenizerStats) -> np.ndarray:
    """``[L, len(stats.token_names)]`` float32 tokens of one card's history (oldest first)."""
    return scale_tokens(raw_tokens(features, context, stats), stats)


def fit_stats(raw: Iterable[np.ndarray], stats: TokenizerStats) -> TokenizerStats:
    """``stats`` with mean and deviation of :data:`SCALED_TOKENS` over the training histories' raw tokens."""
    stacked = np.concatenate(list(raw))
    names = stats.token_names
    columns = {name: stacked[:, names.index(name)] for name in SCALED_TOKENS}
    return replace(
        stats,
        mean={name: float(values.mean()) for name, values in columns.items()},
        std={name: float(max(values.std(), 1e-6)) for name, values in columns.items()},
    )


def pad_histories(histories: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad token matrices to the longest: ``tokens [B, L, F]`` float32 and ``mask [B, L]`` (True = real).

    Real tokens come first in every row, so the latest transaction sits at ``mask.sum(1) - 1``.
    """
    if not histories or min(len(h) for h in histories) == 0:
        raise ValueError("need at least one history, each with at least one transaction")
    lengths = np.array([len(h) for h in histories])
    tokens = np.zeros((len(histories), lengths.max(), histories[0].shape[1]), dtype=np.float32)
    for row, history in enumerate(histories):
        tokens[row, : len(history)] = history
    return tokens, np.arange(lengths.max()) < lengths[:, None]
