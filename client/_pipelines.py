"""Pipelines served by this project, as tables in and tables out.

``fraud``: raw TabFormer credit-card transactions (14 columns, TabFormer's own
names) -> ``probability`` of fraud and ``label`` (``"FRAUD"`` / ``"NOT FRAUD"``).
The preprocessing runs on the server; the client only turns columns into the
ensemble's tensors: the 5 numeric columns as FP32, the rest as UTF-8 BYTES,
missing text as ``""`` (the model treats an empty zip, state or error as
missing). pandas is optional: without it, records in, records out.

``performer_fraud`` and ``hybrid_fraud``: the same columns, but one request is
one card's whole history (oldest first) and the answer scores its last
transaction. :func:`card_histories` groups and orders a table into those
requests, so callers hand over transactions as they have them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._errors import InvalidInput
from ._types import ModelConfig, TensorConfig

FRAUD_MODEL = "fraud"
NUMERIC_COLUMNS = ("User", "Card", "Year", "Month", "Day")
TEXT_COLUMNS = ("Time", "Amount", "Use Chip", "Merchant Name", "Merchant City", "Merchant State", "Zip", "MCC",
                "Errors?")


def _column(name: str, datatype: str) -> TensorConfig:
    return {"name": name, "datatype": datatype, "dims": [1]}


FRAUD_SCHEMA: ModelConfig = {
    "max_batch_size": 8192,
    "inputs": [_column(name, "FP32") for name in NUMERIC_COLUMNS] + [_column(name, "BYTES") for name in TEXT_COLUMNS],
    "outputs": [_column("probability", "FP32"), _column("label", "BYTES")],
}
"""The ``fraud`` ensemble's schema, as its exported ``config.pbtxt`` declares it."""

PERFORMER_MODEL = "performer_fraud"
HYBRID_MODEL = "hybrid_fraud"


def _history_column(name: str, datatype: str) -> TensorConfig:
    return {"name": name, "datatype": datatype, "dims": [-1]}


HISTORY_SCHEMA: ModelConfig = {
    "max_batch_size": 0,
    "inputs": [_history_column(name, "FP32") for name in NUMERIC_COLUMNS]
    + [_history_column(name, "BYTES") for name in TEXT_COLUMNS],
    "outputs": [{"name": "probability", "datatype": "FP32", "dims": [-1, 1]},
                {"name": "label", "datatype": "BYTES", "dims": [-1, 1]}],
}
"""The ``performer_fraud`` and ``hybrid_fraud`` ensembles' schema: one card's history per request, no batching."""

BUILTIN_SCHEMAS: Mapping[str, ModelConfig] = {FRAUD_MODEL: FRAUD_SCHEMA, PERFORMER_MODEL: HISTORY_SCHEMA,
                                              HYBRID_MODEL: HISTORY_SCHEMA}
"""Schemas a SageMaker client knows without being told."""

Transactions = Any  # a pandas DataFrame, or a sequence of mappings (records)
"""What :func:`transactions_to_inputs` accepts."""


def _pandas() -> Any | None:
    try:
        import pandas  # noqa: PLC0415 - optional dependency (the ``pandas`` extra)
    except ImportError:
        return None
    return pandas


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _records_columns(records: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    for row, record in enumerate(records):
        missing = [column for column in NUMERIC_COLUMNS + TEXT_COLUMNS if column not in record]
        if missing:
            raise InvalidInput(f"{missing[0]}: missing column (record {row})")
    return {column: [record[column] for record in records] for column in NUMERIC_COLUMNS + TEXT_COLUMNS}


def _frame_columns(frame: Any) -> dict[str, list[Any]]:
    missing = [column for column in NUMERIC_COLUMNS + TEXT_COLUMNS if column not in frame.columns]
    if missing:
        raise InvalidInput(f"{missing[0]}: missing column (the frame has {', '.join(map(str, frame.columns))})")
    return {column: frame[column].astype(object).where(frame[column].notna(), None).tolist()
            for column in NUMERIC_COLUMNS + TEXT_COLUMNS}


def _numbers(column: str, values: list[Any]) -> np.ndarray:
    try:
        return np.array([math.nan if v is None else v for v in values], dtype=np.float32).reshape(-1, 1)
    except (TypeError, ValueError):
        for row, value in enumerate(values):
            try:
                float(value)
            except (TypeError, ValueError):
                raise InvalidInput(f"{column}: {value!r} (row {row}) is not a number") from None
        raise


def _text(values: list[Any]) -> np.ndarray:
    encoded = [b"" if _is_missing(v) else v if isinstance(v, bytes) else str(v).encode() for v in values]
    return np.array(encoded, dtype=np.object_).reshape(-1, 1)


def transactions_to_inputs(data: Transactions) -> dict[str, np.ndarray]:
    """The ``fraud`` ensemble's 14 input tensors for a DataFrame or records of raw transactions.

    Raises :class:`InvalidInput` naming a missing column or a non-numeric value
    in a numeric column; extra columns (e.g. the label ``"Is Fraud?"``) are ignored.

    Examples
    --------
    >>> record = {"User": 0, "Card": 0, "Year": 2019, "Month": 3, "Day": 14, "Time": "03:12",
    ...           "Amount": "$2,499.00", "Use Chip": "Online Transaction", "Merchant Name": "-4282466774399734331",
    ...           "Merchant City": "ONLINE", "Merchant State": None, "Zip": None, "MCC": 5732, "Errors?": None}
    >>> tensors = transactions_to_inputs([record])
    >>> tensors["Year"].tolist(), tensors["MCC"].tolist(), tensors["Zip"].tolist()
    ([[2019.0]], [[b'5732']], [[b'']])
    """
    pandas = _pandas()
    if pandas is not None and isinstance(data, pandas.DataFrame):
        columns = _frame_columns(data)
    elif isinstance(data, Sequence) and all(isinstance(record, Mapping) for record in data):
        columns = _records_columns(data)
    else:
        raise TypeError(f"expected a pandas DataFrame or a sequence of dicts, got {type(data).__name__}")
    tensors = {column: _numbers(column, columns[column]) for column in NUMERIC_COLUMNS}
    tensors.update({column: _text(columns[column]) for column in TEXT_COLUMNS})
    return tensors


NO_SCORES: Mapping[str, np.ndarray] = {"probability": np.empty((0, 1), np.float32),
                                       "label": np.empty((0, 1), np.object_)}
"""The outputs for no transactions: an empty table needs no request."""


def scores_table(outputs: Mapping[str, np.ndarray], data: Transactions) -> Any:
    """``probability`` and ``label`` per transaction: a DataFrame on ``data``'s index, or records without pandas."""
    probability = outputs["probability"].reshape(-1)
    labels = [value.decode() for value in outputs["label"].reshape(-1)]
    pandas = _pandas()
    if pandas is None:
        return [{"probability": float(p), "label": label} for p, label in zip(probability, labels)]
    index = data.index if isinstance(data, pandas.DataFrame) else None
    return pandas.DataFrame({"probability": probability, "label": labels}, index=index)


CardKey = tuple[float, float]
"""``(User, Card)``: a card is identified by both (TabFormer numbers cards per user)."""


def card_histories(data: Transactions, *, max_history: int | None = None) -> dict[CardKey, dict[str, np.ndarray]]:
    """One history request per card: its transactions oldest first, as 1-D tensors.

    Transactions are ordered by ``Year``, ``Month``, ``Day``, ``Time`` (``HH:MM``);
    ties keep their order in ``data``. ``max_history`` keeps only each card's most
    recent transactions (the server rejects histories over its own limit).
    Cards come in order of first appearance in ``data``.

    Examples
    --------
    >>> base = {"Merchant Name": "1", "Merchant City": "ONLINE", "Merchant State": None, "Zip": None,
    ...         "MCC": 5411, "Errors?": None, "Use Chip": "Chip Transaction", "Amount": "$1.00"}
    >>> rows = [dict(base, User=0, Card=1, Year=2019, Month=3, Day=2, Time="10:00"),
    ...         dict(base, User=0, Card=1, Year=2019, Month=3, Day=1, Time="09:00"),
    ...         dict(base, User=7, Card=0, Year=2020, Month=1, Day=1, Time="00:00")]
    >>> histories = card_histories(rows)
    >>> list(histories), histories[(0.0, 1.0)]["Day"].tolist()
    ([(0.0, 1.0), (7.0, 0.0)], [1.0, 2.0])
    """
    if max_history is not None and max_history < 1:
        raise ValueError(f"max_history must be >= 1, got {max_history}")
    tensors = {name: array.reshape(-1) for name, array in transactions_to_inputs(data).items()}
    times = tensors["Time"].astype(bytes)
    # lexsort is stable and sorts by the last key first: card, then time.
    order = np.lexsort((times, tensors["Day"], tensors["Month"], tensors["Year"], tensors["Card"], tensors["User"]))
    users, cards = tensors["User"].tolist(), tensors["Card"].tolist()
    rows: dict[CardKey, list[int]] = {key: [] for key in zip(users, cards)}  # first appearance order
    for position in order.tolist():
        rows[(users[position], cards[position])].append(position)
    histories = {}
    for key, positions in rows.items():
        picked = np.asarray(positions[-max_history:] if max_history else positions)
        histories[key] = {name: array[picked] for name, array in tensors.items()}
    return histories


def card_scores_table(histories: Mapping[CardKey, Mapping[str, np.ndarray]],
                      outputs: Sequence[Mapping[str, np.ndarray]]) -> Any:
    """One row per card: ``User``, ``Card``, ``transactions`` sent, and the last transaction's ``probability``, ``label``."""
    records = [{"User": int(user), "Card": int(card), "transactions": len(history["User"]),
                "probability": float(answer["probability"].reshape(-1)[-1]),
                "label": answer["label"].reshape(-1)[-1].decode()}
               for ((user, card), history), answer in zip(histories.items(), outputs)]
    pandas = _pandas()
    if pandas is None:
        return records
    return pandas.DataFrame(records, columns=["User", "Card", "transactions", "probability", "label"])
