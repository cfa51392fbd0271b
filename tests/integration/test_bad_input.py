"""Bad input gets a 4xx naming the tensor and the problem, never a 5xx from our models, and the server stays healthy."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pandas as pd
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tritonmm.export.fraud import MAX_BATCH_SIZE, PIPELINE
from tritonmm.export.transactions import generate_transactions

from .requests_helpers import client_for, fraud_inputs, infer_input


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return generate_transactions(2_000, seed=5).head(3).reset_index(drop=True)


def with_value(rows: pd.DataFrame, column: str, value) -> list:
    frame = rows.copy()
    frame[column] = frame[column].astype(object)
    frame.loc[1, column] = value
    inputs = fraud_inputs(httpclient, frame)
    if isinstance(value, bytes):  # raw bytes the helper's str() would mangle
        array = np.array([str(v).encode() for v in frame[column]], dtype=object)
        array[1] = value
        inputs = [i for i in inputs if i.name() != column] + [infer_input(httpclient, column, array.reshape(-1, 1))]
    return inputs


def expect_4xx(served, inputs: list, *needles: str, model: str = PIPELINE) -> str:
    with pytest.raises(InferenceServerException) as info:
        client_for(httpclient, served.settings).infer(model, inputs)
    status, message = str(info.value.status()), info.value.message()
    assert status.startswith("4"), (status, message)
    for needle in needles:
        assert needle in message, message
    return message


@pytest.mark.parametrize(
    ("column", "value", "needles"),
    [
        ("Amount", "abc", ("Amount", "not an amount")),
        ("Time", "25:99", ("Time", "not a time of day")),
        ("Merchant City", b"San Jos\xe9", ("Merchant City", "invalid UTF-8")),
        ("Merchant Name", "x" * (1 << 20), ("Merchant Name", "exceeds")),
    ],
)
def test_unparseable_values_name_the_tensor(served, rows, column, value, needles) -> None:
    expect_4xx(served, with_value(rows, column, value), *needles)


@pytest.mark.parametrize(
    ("column", "value"),
    [("Merchant City", "Zürich"), ("MCC", "9999"), ("Zip", ""), ("Amount", "nan"), ("Errors?", "Unheard Of,")],
)
def test_unusual_values_get_a_defined_answer(served, rows, column, value) -> None:
    result = client_for(httpclient, served.settings).infer(PIPELINE, with_value(rows, column, value))
    probability = result.as_numpy("probability")
    assert probability.shape == (3, 1) and np.all((probability >= 0) & (probability <= 1))


def test_missing_column(served, rows) -> None:
    inputs = [i for i in fraud_inputs(httpclient, rows) if i.name() != "MCC"]
    expect_4xx(served, inputs, "MCC")


def test_wrong_datatype(served, rows) -> None:
    inputs = [i for i in fraud_inputs(httpclient, rows) if i.name() != "Amount"]
    inputs.append(infer_input(httpclient, "Amount", np.ones((3, 1), np.float32)))
    expect_4xx(served, inputs, "Amount", "FP32")


def test_wrong_shape(served, rows) -> None:
    inputs = [i for i in fraud_inputs(httpclient, rows) if i.name() != "Year"]
    inputs.append(infer_input(httpclient, "Year", np.full((3, 2), 2019, np.float32)))
    expect_4xx(served, inputs, "Year", "shape")


def test_mismatched_lengths(served, rows) -> None:
    inputs = [i for i in fraud_inputs(httpclient, rows) if i.name() != "Zip"]
    inputs.append(infer_input(httpclient, "Zip", np.array([[b"1"], [b"2"]], dtype=object)))
    expect_4xx(served, inputs, "batch size does not match other inputs")  # Triton checks before any model runs


def test_batch_over_max_batch_size(served, rows) -> None:
    big = rows.iloc[np.zeros(MAX_BATCH_SIZE + 1, dtype=int)].reset_index(drop=True)
    expect_4xx(served, fraud_inputs(httpclient, big), "batch-size must be <= 8192")


def test_unknown_model(served, rows) -> None:
    expect_4xx(served, fraud_inputs(httpclient, rows), "unknown model", model="no_such_model")


def test_wrong_feature_count_for_fil(served) -> None:
    expect_4xx(served, [infer_input(httpclient, "input__0", np.zeros((2, 3), np.float32))], "input__0", model="fraud_xgboost")


def test_burst_of_bad_requests_then_a_good_one(served, rows) -> None:
    """Triton's own HTTP parser answers some malformed bodies with 500 (see README); none may hurt the server."""
    url = f"{served.settings.http_url}/v2/models/{PIPELINE}/infer"
    client = client_for(httpclient, served.settings)
    bodies = [b"{not json", json.dumps({"inputs": [{"name": "Amount", "shape": [-1, 1], "datatype": "BYTES", "data": []}]}).encode()]
    with httpx.Client(timeout=30) as http:
        for _ in range(20):
            for body in bodies:
                assert http.post(url, content=body).status_code >= 400
            for bad in (with_value(rows, "Amount", "abc"), with_value(rows, "Time", "99:99")):
                with pytest.raises(InferenceServerException):
                    client.infer(PIPELINE, bad)
        assert http.get(f"{served.settings.http_url}/v2/health/ready").status_code == 200
    result = client.infer(PIPELINE, fraud_inputs(httpclient, rows))
    assert result.as_numpy("label").shape == (3, 1)
