"""Requests are checked before they are sent, and errors name the tensor or column."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tritonmm.client import FRAUD_SCHEMA, Client, InvalidInput, ModelConfig, _pipelines
from tritonmm.client._pipelines import NUMERIC_COLUMNS, TEXT_COLUMNS, scores_table, transactions_to_inputs
from tritonmm.client._validate import check_request

CONFIG: ModelConfig = {
    "max_batch_size": 4,
    "inputs": [{"name": "x", "datatype": "FP32", "dims": [-1, 3]},
               {"name": "tag", "datatype": "BYTES", "dims": [1]},
               {"name": "mask", "datatype": "BOOL", "dims": [1], "optional": True}],
    "outputs": [{"name": "y", "datatype": "FP32", "dims": [1]}],
}


def request(rows: int = 2, width: int = 5) -> dict[str, np.ndarray]:
    return {"x": np.zeros((rows, width, 3), np.float32), "tag": np.full((rows, 1), "a")}


def test_a_good_request_gives_its_batch_size() -> None:
    assert check_request("m", CONFIG, request(rows=3), None) == 3
    assert check_request("m", CONFIG, {**request(), "mask": np.ones((2, 1), bool)}, ["y"]) == 2


@pytest.mark.parametrize(("change", "message"), [
    (lambda r: r.pop("tag"), r"^tag: missing input for 'm'$"),
    (lambda r: r.update(extra=np.zeros((2, 1))), r"^extra: 'm' has no such input \(inputs: x, tag, mask\)$"),
    (lambda r: r.update(x=np.zeros((2, 5, 3), np.float64)), r"^x: expected FP32, got numpy float64 \(FP64\)$"),
    (lambda r: r.update(x=np.zeros((2, 5, 3), np.complex64)), r"^x: expected FP32, got numpy complex64 \(no KServe"),
    (lambda r: r.update(tag=np.zeros((2, 1), np.float32)), r"^tag: expected BYTES, got numpy float32"),
    (lambda r: r.update(x=np.zeros((2, 5, 4), np.float32)),
     r"^x: expected shape \[-1, -1, 3\] \(-1 = any\), got \[2, 5, 4\]$"),
    (lambda r: r.update(x=np.zeros((2, 3), np.float32)), r"^x: expected shape \[-1, -1, 3\]"),
    (lambda r: r.update(tag=np.array(["a"])), r"^tag: expected shape \[-1, 1\] \(-1 = any\), got \[1\]$"),
    (lambda r: r.update(tag=np.array([["a"]] * 3)), r"^tag: batch of 3 but x has 2$"),
])
def test_mistakes_are_named(change, message: str) -> None:
    bad = request()
    change(bad)
    with pytest.raises(InvalidInput, match=message):
        check_request("m", CONFIG, bad, None)


def test_unknown_output_and_empty_batch() -> None:
    with pytest.raises(InvalidInput, match=r"^z: 'm' has no such output \(outputs: y\)$"):
        check_request("m", CONFIG, request(), ["z"])
    with pytest.raises(InvalidInput, match=r"^x: empty batch"):
        check_request("m", CONFIG, request(rows=0), None)


def test_a_model_without_batching_checks_every_dim() -> None:
    config: ModelConfig = {"max_batch_size": 0, "inputs": [{"name": "x", "datatype": "INT64", "dims": [2, -1]}],
                           "outputs": []}
    assert check_request("m", config, {"x": np.zeros((2, 7), np.int64)}, None) == 0
    with pytest.raises(InvalidInput, match=r"x: expected shape \[2, -1\]"):
        check_request("m", config, {"x": np.zeros((1, 2, 7), np.int64)}, None)


class NeverCalled:
    def model_config(self, model: str) -> ModelConfig:
        return CONFIG

    def infer(self, *args: object) -> dict:
        raise AssertionError("an invalid request must not be sent")

    def close(self) -> None:
        pass


def test_the_client_checks_before_sending_and_accepts_lists() -> None:
    client = Client(NeverCalled())
    with pytest.raises(InvalidInput, match="^tag: missing input"):
        client.infer("m", {"x": [[[0.0, 1.0, 2.0]]]})
    with pytest.raises(InvalidInput, match="^x: expected FP32, got numpy float64"):
        client.infer("m", {"x": [[[0.0, 1.0, 2.0]]], "tag": [["a"]]})  # lists of floats are float64


# --- the fraud pipeline's table -> tensors ---------------------------------------------------------


def transactions(rows: int = 3) -> pd.DataFrame:
    return pd.DataFrame({
        "User": [1, 2, 3][:rows], "Card": [0, 1, 0][:rows], "Year": [2019, 2020, 2018][:rows],
        "Month": [3, 12, 1][:rows], "Day": [14, 31, 1][:rows], "Time": ["03:12", "23:59", "00:00"][:rows],
        "Amount": ["$2,499.00", "-$77.00", "$1.50"][:rows], "Use Chip": ["Online Transaction"] * rows,
        "Merchant Name": [-4282466774399734331, 5, 7][:rows], "Merchant City": ["ONLINE", "Zürich", None][:rows],
        "Merchant State": [None, "CA", math.nan][:rows], "Zip": [math.nan, 91750.0, 10001.0][:rows],
        "MCC": [5732, 5411, 5812][:rows], "Errors?": [None, "Bad CVV,", ""][:rows], "Is Fraud?": ["No"] * rows,
    }, index=[10, 20, 30][:rows])


def test_frame_to_tensors() -> None:
    tensors = transactions_to_inputs(transactions())
    assert list(tensors) == list(NUMERIC_COLUMNS + TEXT_COLUMNS) == [s["name"] for s in FRAUD_SCHEMA["inputs"]]
    assert check_request("fraud", FRAUD_SCHEMA, tensors, ["probability", "label"]) == 3
    assert tensors["Year"].dtype == np.float32 and tensors["Year"][:, 0].tolist() == [2019, 2020, 2018]
    assert tensors["Merchant City"][:, 0].tolist() == [b"ONLINE", "Zürich".encode(), b""]
    assert tensors["Merchant State"][:, 0].tolist() == [b"", b"CA", b""]
    assert tensors["Zip"][:, 0].tolist() == [b"", b"91750.0", b"10001.0"]  # astype(str) artefacts the server accepts
    assert tensors["Merchant Name"][0, 0] == b"-4282466774399734331"


def test_records_give_the_same_tensors() -> None:
    frame = transactions()
    from_records = transactions_to_inputs(frame.to_dict("records"))
    for name, array in transactions_to_inputs(frame).items():
        np.testing.assert_array_equal(from_records[name], array, err_msg=name)


def test_missing_columns_and_bad_numbers_are_named() -> None:
    with pytest.raises(InvalidInput, match=r"^Amount: missing column"):
        transactions_to_inputs(transactions().drop(columns=["Amount"]))
    records = transactions().to_dict("records")
    del records[1]["Errors?"]
    with pytest.raises(InvalidInput, match=r"^Errors\?: missing column \(record 1\)$"):
        transactions_to_inputs(records)
    bad = transactions().astype({"Card": object})
    bad.loc[20, "Card"] = "two"
    with pytest.raises(InvalidInput, match=r"^Card: 'two' \(row 1\) is not a number$"):
        transactions_to_inputs(bad)
    with pytest.raises(TypeError, match="DataFrame or a sequence of dicts"):
        transactions_to_inputs("User,Card\n1,0")


def test_numbers_as_text_are_read() -> None:
    frame = transactions().astype(str)  # pd.read_csv(..., dtype=str)
    assert transactions_to_inputs(frame)["Day"][:, 0].tolist() == [14, 31, 1]


def test_scores_keep_the_index_or_become_records_without_pandas(monkeypatch: pytest.MonkeyPatch) -> None:
    outputs = {"probability": np.array([[0.25], [0.75]], np.float32),
               "label": np.array([[b"NOT FRAUD"], [b"FRAUD"]], dtype=object)}
    frame = transactions(2)
    table = scores_table(outputs, frame)
    assert list(table.index) == [10, 20] and table["label"].tolist() == ["NOT FRAUD", "FRAUD"]
    assert list(scores_table(outputs, frame.to_dict("records")).index) == [0, 1]
    monkeypatch.setattr(_pipelines, "_pandas", lambda: None)
    records = frame.to_dict("records")
    assert transactions_to_inputs(records)["User"].shape == (2, 1)
    assert scores_table(outputs, records) == [{"probability": 0.25, "label": "NOT FRAUD"},
                                              {"probability": 0.75, "label": "FRAUD"}]


def test_no_transactions_need_no_request() -> None:
    assert Client(NeverCalled()).score_transactions(transactions().head(0)).empty
