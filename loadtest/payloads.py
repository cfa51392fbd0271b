"""Request bodies for the fraud pipeline, shared by load tests, benchmarks and tests."""

from __future__ import annotations

import json

import pandas as pd

from tritonmm.export.fraud import raw_columns
from tritonmm.server.models.fraud_preprocess.features import NUMERIC_COLUMNS, RAW_COLUMNS


def fraud_kserve_json(frame: pd.DataFrame) -> bytes:
    """A KServe v2 JSON inference request carrying ``frame``'s 14 raw columns, each ``[n, 1]``."""
    columns = raw_columns(frame)
    inputs = []
    for name in RAW_COLUMNS:
        values = columns[name]
        numeric = name in NUMERIC_COLUMNS
        inputs.append({"name": name, "shape": [len(frame), 1], "datatype": "FP32" if numeric else "BYTES",
                       "data": [float(v) for v in values] if numeric else [str(v) for v in values]})
    return json.dumps({"inputs": inputs}).encode()
