"""Pipelines served by this project, as tables in and tables out.

``fraud``: raw TabFormer credit-card transactions (14 columns, TabFormer's own
names) -> ``probability`` of fraud and ``label`` (``"FRAUD"`` / ``"NOT FRAUD"``).
The preprocessing runs on the server; the client only turns columns into the
ensemble's tensors: the 5 numeric columns as FP32, the rest as UTF-8 BYTES,
missing text as ``""`` (the model treats an empty zip, state or error as
missing). pandas is optional: without it, records in, records out.
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

BUILTIN_SCHEMAS: Mapping[str, ModelConfig] = {FRAUD_MODEL: FRAUD_SCHEMA}
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
