"""The featuriser: parsing of what real clients send, encoders, and errors that name the column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tritonmm.export.fraud import raw_columns
from tritonmm.export.transactions import generate_transactions
from tritonmm.server.models.fraud_preprocess.features import (
    FEATURE_NAMES,
    MAX_VALUE_BYTES,
    UNKNOWN,
    FeatureError,
    FeatureSpec,
    featurize,
    fit_spec,
    parse_amount,
    parse_minutes,
)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return generate_transactions(5_000, seed=3)


@pytest.fixture(scope="module")
def spec(frame: pd.DataFrame) -> FeatureSpec:
    return fit_spec(raw_columns(frame), min_count=1)


def one_row(**overrides: object) -> dict[str, np.ndarray]:
    row = {
        "User": 1.0, "Card": 0.0, "Year": 2019.0, "Month": 3.0, "Day": 14.0, "Time": "12:30", "Amount": "$12.50",
        "Use Chip": "Chip Transaction", "Merchant Name": "123", "Merchant City": "La Verne", "Merchant State": "CA",
        "Zip": "91750", "MCC": "5411", "Errors?": "",
    }
    row.update(overrides)
    return {k: np.array([v], dtype=np.float32 if isinstance(v, float) else object) for k, v in row.items()}


@pytest.mark.parametrize(
    ("text", "dollars"),
    [("$134.09", 134.09), ("-$77.00", -77.0), ("$-77.00", -77.0), ("$1,234.50", 1234.5), (" 12 ", 12.0), ("0.5", 0.5), (".5", 0.5)],
)
def test_amounts_with_or_without_dollar_and_separators(text: str, dollars: float) -> None:
    assert parse_amount(text.strip()) == pytest.approx(dollars)


@pytest.mark.parametrize("text", ["abc", "$", "12.3.4", "1,23"])
def test_nonsense_amounts_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="not an amount"):
        parse_amount(text)


def test_times() -> None:
    assert parse_minutes("03:12") == 192
    assert parse_minutes("3:12") == 192
    assert parse_minutes("23:59:59") == 1439
    assert np.isnan(parse_minutes("nan"))
    for bad in ("25:99", "12:60", "noon"):
        with pytest.raises(ValueError, match="time of day"):
            parse_minutes(bad)


def test_training_frame_and_bytes_tensors_give_identical_features(frame: pd.DataFrame, spec: FeatureSpec) -> None:
    """The server sees BYTES (UTF-8) where training saw str: the features must not differ."""
    columns = raw_columns(frame)
    as_bytes = {k: (np.array([s.encode() for s in v], dtype=object) if v.dtype == object else v) for k, v in columns.items()}
    expected = featurize(columns, spec)
    assert expected.shape == (len(frame), len(FEATURE_NAMES))
    np.testing.assert_array_equal(featurize(as_bytes, spec), expected)


def test_pandas_astype_str_artefacts_are_understood(spec: FeatureSpec) -> None:
    clean = featurize(one_row(), spec)
    np.testing.assert_array_equal(featurize(one_row(Zip="91750.0", MCC="5411.0", Amount=" $12.50 "), spec), clean)
    missing = featurize(one_row(Zip="nan", Amount="nan", Time="", **{"Merchant State": "nan"}), spec)[0]
    names = list(FEATURE_NAMES)
    assert np.isnan(missing[names.index("zip3")]) and np.isnan(missing[names.index("amount")])
    assert np.isnan(missing[names.index("minute_of_day")])
    assert missing[names.index("merchant_state")] == UNKNOWN


def test_unknown_and_non_ascii_values_fall_into_the_unknown_bucket(spec: FeatureSpec) -> None:
    row = featurize(one_row(**{"Merchant City": "Zürich-Ünknown", "MCC": "0001", "Merchant Name": "-99"}), spec)[0]
    names = list(FEATURE_NAMES)
    for name in ("merchant_city", "mcc", "merchant"):
        assert row[names.index(name)] == UNKNOWN


def test_errors_column_flags(spec: FeatureSpec) -> None:
    row = featurize(one_row(**{"Errors?": "Bad PIN,Technical Glitch,"}), spec)[0]
    names = list(FEATURE_NAMES)
    assert row[names.index("error_count")] == 2
    assert row[names.index("error_bad_pin")] == 1 and row[names.index("error_technical_glitch")] == 1
    assert row[names.index("error_bad_cvv")] == 0


@pytest.mark.parametrize(
    ("overrides", "column", "message"),
    [
        ({"Amount": "abc"}, "Amount", "not an amount"),
        ({"Time": "25:99"}, "Time", "time of day"),
        ({"Month": 13.0}, "Month", "between 1 and 12"),
        ({"Day": 31.0, "Month": 2.0}, "Day", "not a day of that month"),
        ({"Year": float("nan")}, "Year", "whole number"),
        ({"Card": float("inf")}, "Card", "finite whole number"),
        ({"Day": 2.5}, "Day", "whole number"),
        ({"Merchant City": b"\xff\xfe"}, "Merchant City", "invalid UTF-8"),
        ({"Merchant City": b"x" * (MAX_VALUE_BYTES + 1)}, "Merchant City", "exceeds"),
    ],
)
def test_bad_values_name_the_column(spec: FeatureSpec, overrides: dict, column: str, message: str) -> None:
    with pytest.raises(FeatureError, match=message) as info:
        featurize(one_row(**overrides), spec)
    assert info.value.column == column and str(info.value).startswith(column)


def test_missing_and_mismatched_columns(spec: FeatureSpec) -> None:
    columns = one_row()
    del columns["MCC"]
    with pytest.raises(FeatureError, match="MCC: column is missing"):
        featurize(columns, spec)
    columns = one_row()
    columns["Zip"] = np.array(["1", "2"], dtype=object)
    with pytest.raises(FeatureError, match="Zip: has 2 values"):
        featurize(columns, spec)


def test_spec_round_trips_through_json(spec: FeatureSpec, tmp_path) -> None:
    spec.save(tmp_path / "spec.json")
    assert FeatureSpec.load(tmp_path / "spec.json") == spec


def test_fit_is_deterministic(frame: pd.DataFrame) -> None:
    assert fit_spec(raw_columns(frame)) == fit_spec(raw_columns(frame.copy()))
