"""Raw card transactions -> the fraud model's feature matrix (numpy only).

The single featurisation code path: the exporter fits a :class:`FeatureSpec`
on training data and calls :func:`featurize` to build the training matrix; the
``fraud_preprocess`` Python-backend model imports this same file (copied next
to its ``model.py``) and calls the same function on request tensors. No torch,
pandas or sklearn, so it also runs in NVIDIA's stock Triton container.

Inputs are what real clients send: ``bytes`` from Triton BYTES tensors or
``str`` from a DataFrame; pandas ``astype(str)`` artefacts (``"nan"``,
``"91750.0"``, ``"5300.0"``); amounts with or without ``$`` and thousands
separators; surrounding spaces; non-ASCII text. Values that are only unusual
(unknown city, missing zip) get a defined answer (the unknown bucket, or NaN
which trees route as "missing"); values that cannot mean anything (amount
``"abc"``, time ``"25:99"``, invalid UTF-8) raise :class:`FeatureError`
naming the column.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

NUMERIC_COLUMNS = ("User", "Card", "Year", "Month", "Day")
TEXT_COLUMNS = ("Time", "Amount", "Use Chip", "Merchant Name", "Merchant City", "Merchant State", "Zip", "MCC", "Errors?")
RAW_COLUMNS = NUMERIC_COLUMNS + TEXT_COLUMNS
ERROR_TYPES = (
    "Insufficient Balance",
    "Bad PIN",
    "Technical Glitch",
    "Bad Card Number",
    "Bad Expiration",
    "Bad CVV",
    "Bad Zipcode",
)
CHIP_MODES = ("Swipe Transaction", "Chip Transaction", "Online Transaction")
FEATURE_NAMES = (
    "amount",
    "log_abs_amount",
    "is_refund",
    "minute_of_day",
    "day_of_week",
    "month",
    "use_chip",
    "merchant",
    "merchant_city",
    "merchant_state",
    "is_foreign",
    "zip3",
    "mcc",
    "error_count",
) + tuple("error_" + e.lower().replace(" ", "_") for e in ERROR_TYPES)

MAX_VALUE_BYTES = 1024
"""Longest accepted text value: anything longer is not a transaction field."""

UNKNOWN = 0
"""Code of the unknown bucket in every vocabulary (values unseen at fit time, or missing)."""

US_STATES = frozenset(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY "
    "NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR".split()
)
_MISSING = frozenset({"", "nan", "none", "null", "na", "<na>"})
_AMOUNT = re.compile(r"^(?P<sign>[-+]?)\s*\$?\s*(?P<sign2>[-+]?)(?P<digits>\d{1,3}(,\d{3})+|\d*)(?P<frac>\.\d*)?$")
_TIME = re.compile(r"^(?P<h>\d{1,2}):(?P<m>\d{2})(:\d{2}(\.\d*)?)?$")
_FLOAT_INT = re.compile(r"^[-+]?\d+(\.0*)?$")


class FeatureError(ValueError):
    """A raw value cannot be featurised; ``column`` names the input tensor."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(f"{column}: {message}")
        self.column = column


@dataclass(frozen=True)
class FeatureSpec:
    """Encoders fitted on training data: value -> code, code 0 being the unknown bucket."""

    merchant: dict[str, int]
    city: dict[str, int]
    state: dict[str, int]
    mcc: dict[str, int]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), sort_keys=True, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> FeatureSpec:
        return cls(**json.loads(path.read_text(encoding="utf-8")))


def _text(column: str, values: np.ndarray) -> list[str]:
    """Decode to NFC-normalised, stripped ``str``; reject invalid UTF-8 and oversized values."""
    out: list[str] = []
    for value in values.reshape(-1).tolist():
        if isinstance(value, bytes):
            if len(value) > MAX_VALUE_BYTES:
                raise FeatureError(column, f"value of {len(value)} bytes exceeds the {MAX_VALUE_BYTES}-byte limit")
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise FeatureError(column, f"invalid UTF-8 at byte {exc.start}") from None
        else:
            value = "" if value is None else str(value)
            if len(value) > MAX_VALUE_BYTES:
                raise FeatureError(column, f"value of {len(value)} characters exceeds the {MAX_VALUE_BYTES}-byte limit")
        out.append(unicodedata.normalize("NFC", value.strip()))
    return out


def _canonical_code(value: str) -> str:
    """``"5300.0"`` -> ``"5300"`` (pandas float artefacts of integer-valued text); missing -> ``""``."""
    if value.lower() in _MISSING:
        return ""
    return value.split(".")[0] if _FLOAT_INT.match(value) else value


def _parse_each(values: list[str], parse: Callable[[str], float]) -> np.ndarray:
    """Apply ``parse`` once per distinct value (columns repeat a lot)."""
    cache: dict[str, float] = {}
    return np.array([cache[v] if v in cache else cache.setdefault(v, parse(v)) for v in values], dtype=np.float64)


def parse_amount(value: str) -> float:
    """``"$1,234.50"``, ``"-$77.00"``, ``"77"`` -> dollars; missing -> NaN; nonsense -> ValueError."""
    if value.lower() in _MISSING:
        return float("nan")
    match = _AMOUNT.match(value)
    if not match or not (match["digits"] or (match["frac"] or "")[1:]):
        raise ValueError(f"{value[:40]!r} is not an amount")
    number = float(match["digits"].replace(",", "") + (match["frac"] or "") or "0")
    negative = (match["sign"] == "-") != (match["sign2"] == "-")
    return -number if negative else number


def parse_minutes(value: str) -> float:
    """``"HH:MM"`` -> minutes after midnight; missing -> NaN; ``"25:99"`` -> ValueError."""
    if value.lower() in _MISSING:
        return float("nan")
    match = _TIME.match(value)
    if not match or int(match["h"]) > 23 or int(match["m"]) > 59:
        raise ValueError(f"{value[:40]!r} is not a time of day HH:MM")
    return float(int(match["h"]) * 60 + int(match["m"]))


def _parse_column(column: str, values: list[str], parse: Callable[[str], float]) -> np.ndarray:
    try:
        return _parse_each(values, parse)
    except ValueError as exc:
        raise FeatureError(column, str(exc)) from None


def _encode(values: list[str], vocabulary: Mapping[str, int]) -> np.ndarray:
    return np.array([vocabulary.get(v, UNKNOWN) for v in values], dtype=np.float32)


def _numbers(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """The five numeric columns as a ``(5, n)`` array of whole, finite numbers."""
    try:
        numbers = np.array([np.asarray(columns[c]).reshape(-1) for c in NUMERIC_COLUMNS], dtype=np.float64)
    except ValueError:
        bad = next(c for c in NUMERIC_COLUMNS if np.asarray(columns[c]).dtype.kind not in "biuf")
        raise FeatureError(bad, "must be numeric") from None
    whole = np.isfinite(numbers) & (numbers == np.round(numbers))
    if not whole.all():
        raise FeatureError(NUMERIC_COLUMNS[int(np.argmin(whole.all(axis=1)))], "must be a finite whole number")
    return numbers


def _calendar(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Validate the dates; return the day of week (0 = Monday)."""
    if not ((year >= 1900) & (year <= 2200)).all():
        raise FeatureError("Year", "must be between 1900 and 2200")
    if not ((month >= 1) & (month <= 12)).all():
        raise FeatureError("Month", "must be between 1 and 12")
    first = (year - 1970) * 12 + (month - 1)
    dates = first.astype("datetime64[M]").astype("datetime64[D]") + (day - 1)
    if not ((day >= 1) & (dates.astype("datetime64[M]") == first.astype("datetime64[M]"))).all():
        raise FeatureError("Day", "is not a day of that month")
    return ((dates.astype(np.int64) + 3) % 7).astype(np.float32)  # 1970-01-01 was a Thursday


def _errors(values: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``"Bad PIN,Technical Glitch,"`` -> (count, one flag column per known error type)."""
    lowered = [e.lower() for e in ERROR_TYPES]
    counts = np.zeros(len(values), dtype=np.float32)
    flags = np.zeros((len(values), len(ERROR_TYPES)), dtype=np.float32)
    for row, value in enumerate(values):
        if value.lower() in _MISSING:
            continue
        names = [n.strip().lower() for n in value.split(",") if n.strip()]
        counts[row] = len(names)
        for name in names:
            if name in lowered:
                flags[row, lowered.index(name)] = 1.0
    return counts, flags


def _use_chip(values: list[str]) -> np.ndarray:
    """Swipe 0, chip 1, online 2, anything else 3."""
    words = ("swipe", "chip", "online")
    codes = [next((i for i, w in enumerate(words) if w in v.lower()), len(words)) for v in values]
    return np.asarray(codes, dtype=np.float32)


def _zip3(values: list[str]) -> np.ndarray:
    """Numeric 3-digit zip prefix; missing or non-numeric (foreign) -> NaN."""
    codes = [_canonical_code(v) for v in values]
    return np.array([float(int(c) // 100) if c.isdigit() else np.nan for c in codes], dtype=np.float32)


def check_columns(columns: Mapping[str, np.ndarray]) -> int:
    """All 14 columns present with one equal length; return that length."""
    missing = [c for c in RAW_COLUMNS if c not in columns]
    if missing:
        raise FeatureError(missing[0], "column is missing")
    lengths = {c: int(np.asarray(columns[c]).size) for c in RAW_COLUMNS}
    if len(set(lengths.values())) != 1:
        first = RAW_COLUMNS[0]
        odd = next(c for c in RAW_COLUMNS if lengths[c] != lengths[first])
        raise FeatureError(odd, f"has {lengths[odd]} values but {first} has {lengths[first]}")
    return lengths[RAW_COLUMNS[0]]


def featurize(columns: Mapping[str, np.ndarray], spec: FeatureSpec) -> np.ndarray:
    """The ``(n, len(FEATURE_NAMES))`` float32 feature matrix of ``n`` raw transactions."""
    n = check_columns(columns)
    numbers = _numbers(columns).astype(np.int64)
    text = {c: _text(c, np.asarray(columns[c])) for c in TEXT_COLUMNS}
    amount = _parse_column("Amount", text["Amount"], parse_amount)
    minutes = _parse_column("Time", text["Time"], parse_minutes)
    year, month, day = numbers[2], numbers[3], numbers[4]
    state_values = text["Merchant State"]
    error_count, error_flags = _errors(text["Errors?"])
    features = np.empty((n, len(FEATURE_NAMES)), dtype=np.float32)
    features[:, 0] = amount
    features[:, 1] = np.log1p(np.abs(amount))
    features[:, 2] = amount < 0
    features[:, 3] = minutes
    features[:, 4] = _calendar(year, month, day)
    features[:, 5] = month
    features[:, 6] = _use_chip(text["Use Chip"])
    features[:, 7] = _encode([_canonical_code(v) for v in text["Merchant Name"]], spec.merchant)
    features[:, 8] = _encode(text["Merchant City"], spec.city)
    features[:, 9] = _encode(state_values, spec.state)
    features[:, 10] = [bool(s) and s.lower() not in _MISSING and s.upper() not in US_STATES for s in state_values]
    features[:, 11] = _zip3(text["Zip"])
    features[:, 12] = _encode([_canonical_code(v) for v in text["MCC"]], spec.mcc)
    features[:, 13] = error_count
    features[:, 14:] = error_flags
    return features


def _vocabulary(values: Sequence[str], max_size: int, min_count: int) -> dict[str, int]:
    """Most frequent values first, codes from 1 (0 is unknown); ties broken by value for determinism."""
    counts = Counter(v for v in values if v.lower() not in _MISSING)
    ranked = sorted((item for item in counts.items() if item[1] >= min_count), key=lambda kv: (-kv[1], kv[0]))
    return {value: code for code, (value, _) in enumerate(ranked[:max_size], start=1)}


def fit_spec(columns: Mapping[str, np.ndarray], *, max_merchants: int = 5000, min_count: int = 5) -> FeatureSpec:
    """Fit the encoders on training columns (same parsing as :func:`featurize`)."""
    text = {c: _text(c, np.asarray(columns[c])) for c in ("Merchant Name", "Merchant City", "Merchant State", "MCC")}
    return FeatureSpec(
        merchant=_vocabulary([_canonical_code(v) for v in text["Merchant Name"]], max_merchants, min_count),
        city=_vocabulary(text["Merchant City"], 2000, min_count),
        state=_vocabulary(text["Merchant State"], 500, 1),
        mcc=_vocabulary([_canonical_code(v) for v in text["MCC"]], 1000, 1),
    )
