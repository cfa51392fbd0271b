"""Synthetic TabFormer-schema transactions: schema, formats, ordering, determinism, fraud patterns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tritonmm.export.transactions import LABEL_COLUMN, RAW_COLUMNS, generate_transactions

N_ROWS = 100_000
INT_COLUMNS = ("User", "Card", "Year", "Month", "Day")
ERROR_NAMES = (
    "Insufficient Balance|Bad PIN|Technical Glitch|Bad Card Number|Bad Expiration|Bad CVV|Bad Zipcode"
)
FORMATS = {
    "Time": r"(?:[01]\d|2[0-3]):[0-5]\d",
    "Amount": r"\$-?\d+\.\d{2}",
    "Use Chip": r"Swipe Transaction|Chip Transaction|Online Transaction",
    "Merchant Name": r"-?\d+",
    "Merchant State": r"(?:[A-Z]{2}|[A-Z][a-z]+(?: [A-Z][a-z]+)*)?",
    "Zip": r"(?:\d{5})?",
    "MCC": r"\d{4}",
    "Errors?": rf"(?:(?:{ERROR_NAMES}),)*",
    LABEL_COLUMN: r"Yes|No",
}
RISKY_MCC = ("7995", "4829")


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return generate_transactions(N_ROWS, seed=0)


@pytest.fixture(scope="module")
def parsed(frame: pd.DataFrame) -> pd.DataFrame:
    """Numeric views of the raw columns; ``away``: merchant outside the user's usual state."""
    date = pd.to_datetime(frame[["Year", "Month", "Day"]].rename(columns=str.lower))
    minute = frame["Time"].str[:2].astype(int) * 60 + frame["Time"].str[3:].astype(int)
    state = frame["Merchant State"]
    home = state[state != ""].groupby(frame["User"]).agg(lambda s: s.mode().iloc[0])
    return pd.DataFrame(
        {
            "card": frame["User"] * 10 + frame["Card"],
            "ts": date.to_numpy().astype("datetime64[m]").astype(np.int64) + minute,
            "hour": minute // 60,
            "amount": frame["Amount"].str.replace("$", "", regex=False).astype(float),
            "online": frame["Use Chip"] == "Online Transaction",
            "error": frame["Errors?"] != "",
            "fraud": frame[LABEL_COLUMN] == "Yes",
            "away": (state != "") & (state != frame["User"].map(home)),
            "mcc": frame["MCC"],
            "merchant": frame["Merchant Name"],
        }
    )


def test_columns_in_order(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == [*RAW_COLUMNS, LABEL_COLUMN]
    assert len(RAW_COLUMNS) == 14


def test_dtypes(frame: pd.DataFrame) -> None:
    for column in INT_COLUMNS:
        assert frame[column].dtype == np.int64, column
    for column in frame.columns.difference(INT_COLUMNS):
        assert pd.api.types.is_string_dtype(frame[column]), column
        assert frame[column].map(type).eq(str).all(), column


@pytest.mark.parametrize("column", sorted(FORMATS))
def test_text_formats(frame: pd.DataFrame, column: str) -> None:
    bad = frame.loc[~frame[column].str.fullmatch(FORMATS[column]), column]
    assert bad.empty, f"{column}: {bad.head().tolist()}"


def test_date_parts(frame: pd.DataFrame) -> None:
    assert frame["Year"].between(2015, 2020).all()
    assert frame["Month"].between(1, 12).all()
    assert frame["Day"].between(1, 31).all()
    pd.to_datetime(frame[["Year", "Month", "Day"]].rename(columns=str.lower))  # valid dates


def test_online_rows_have_no_location(frame: pd.DataFrame) -> None:
    online = frame["Use Chip"] == "Online Transaction"
    assert online.any()
    assert (frame.loc[online, "Merchant City"] == "ONLINE").all()
    assert (frame.loc[online, ["Merchant State", "Zip"]] == "").all().all()
    assert (frame.loc[~online, "Merchant City"] != "ONLINE").all()


def test_foreign_rows_name_a_country_and_have_no_zip(frame: pd.DataFrame) -> None:
    foreign = frame["Merchant State"].str.len() > 2
    assert foreign.any()
    assert (frame.loc[foreign, "Zip"] == "").all()
    domestic = frame["Merchant State"].str.len() == 2
    assert frame.loc[domestic, "Zip"].str.fullmatch(r"\d{5}").all()


def test_non_ascii_cities_present(frame: pd.DataFrame) -> None:
    cities = set(frame["Merchant City"])
    assert {"San José", "Cañon City"} & cities
    assert any(not c.isascii() for c in cities)


def test_mix_of_values(frame: pd.DataFrame) -> None:
    chip = frame["Use Chip"].value_counts(normalize=True)
    assert set(chip.index) == {"Swipe Transaction", "Chip Transaction", "Online Transaction"}
    refunds = frame["Amount"].str.startswith("$-").mean()
    assert 0.005 < refunds < 0.03
    errors = (frame["Errors?"] != "").mean()
    assert 0.01 < errors < 0.03
    assert frame["Errors?"].str.count(",").max() >= 2  # some rows carry two errors
    per_user = N_ROWS / frame["User"].nunique()
    assert 150 < per_user < 600
    assert frame.groupby("User")["Card"].nunique().between(1, 3).all()


def test_rows_time_ordered_per_card(frame: pd.DataFrame, parsed: pd.DataFrame) -> None:
    assert frame.index.equals(pd.RangeIndex(N_ROWS))
    order = np.lexsort((parsed["ts"], frame["Card"], frame["User"]))
    assert np.array_equal(order, np.arange(N_ROWS))


@pytest.mark.parametrize("n_rows", [1, 17, 1_000, 12_345])
def test_exact_row_count(n_rows: int) -> None:
    frame = generate_transactions(n_rows, seed=3)
    assert len(frame) == n_rows
    assert frame.index.equals(pd.RangeIndex(n_rows))


def test_fraud_rate(frame: pd.DataFrame) -> None:
    rate = (frame[LABEL_COLUMN] == "Yes").mean()
    assert 0.001 <= rate <= 0.01
    assert rate == pytest.approx(0.004)


def test_fraud_rate_argument() -> None:
    frame = generate_transactions(20_000, seed=1, fraud_rate=0.01)
    assert (frame[LABEL_COLUMN] == "Yes").sum() == 200
    assert (generate_transactions(5_000, seed=1, fraud_rate=0.0)[LABEL_COLUMN] == "No").all()


@pytest.mark.parametrize("kwargs", [{"n_rows": 0}, {"fraud_rate": -0.1}, {"fraud_rate": 0.5}])
def test_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        generate_transactions(**{"n_rows": 100, **kwargs})


def test_deterministic_per_seed() -> None:
    first = generate_transactions(20_000, seed=7)
    pd.testing.assert_frame_equal(first, generate_transactions(20_000, seed=7))
    other = generate_transactions(20_000, seed=8)
    assert not first.equals(other)
    assert not first["Amount"].equals(other["Amount"])


def _before(values: pd.Series, card: pd.Series, step: int) -> pd.Series:
    """``values`` ``step`` rows earlier on the same card; False where that row is another card's."""
    return values.shift(step).where(card.shift(step) == card, False).astype(bool)


def test_card_testing_bursts(parsed: pd.DataFrame) -> None:
    """>= 3 tiny online fraud charges within minutes, then a large electronics/jewellery fraud."""
    p = parsed
    tiny = p["online"] & (p["amount"].abs() < 5)
    big = p["fraud"] & (p["amount"] >= 500) & p["mcc"].isin(["5732", "5944"])
    burst = big & (p["ts"] - p["ts"].shift(3) <= 120)
    for step in (1, 2, 3):
        burst &= _before(tiny & p["fraud"], p["card"], step)
    assert burst.sum() >= 5
    # One tiny online charge does not give fraud away: most of them are legitimate.
    assert (tiny & ~p["fraud"]).sum() > 3 * (tiny & p["fraud"]).sum()


def test_far_away_fraud(parsed: pd.DataFrame) -> None:
    p = parsed
    far_fraud = p["fraud"] & p["away"] & ~p["error"]
    assert far_fraud.sum() >= 20
    assert p.loc[far_fraud, "amount"].median() > 2 * p.loc[~p["fraud"], "amount"].median()
    assert (p["away"] & ~p["fraud"]).sum() > 10 * far_fraud.sum()  # trips are common


def test_unusual_hour_and_mcc(parsed: pd.DataFrame, frame: pd.DataFrame) -> None:
    p = parsed
    risky = p["mcc"].isin(RISKY_MCC)
    legit_risky_users = set(frame.loc[risky & ~p["fraud"], "User"])
    odd = p["fraud"] & risky & p["hour"].between(1, 4)
    assert odd.sum() >= 10
    assert not set(frame.loc[odd, "User"]) & legit_risky_users
    assert legit_risky_users  # some users gamble or wire money legitimately


def test_error_retries_then_success(parsed: pd.DataFrame) -> None:
    """>= 2 declined fraud attempts at one merchant, then a successful fraud there."""
    p = parsed
    retry = p["fraud"] & ~p["error"]
    for step in (1, 2):
        retry &= _before(p["fraud"] & p["error"], p["card"], step)
        retry &= p["merchant"].shift(step) == p["merchant"]
    assert retry.sum() >= 5
    # One declined attempt does not give fraud away: most of them are legitimate.
    assert (p["error"] & ~p["fraud"]).sum() > 5 * (p["error"] & p["fraud"]).sum()


def test_history_features_add_signal(frame: pd.DataFrame, parsed: pd.DataFrame) -> None:
    """Single-row features find some fraud; a few history features find much more."""
    import sklearn.metrics as metrics
    import xgboost as xgb

    p = parsed
    single = pd.DataFrame(
        {
            "amount": p["amount"],
            "hour": p["hour"],
            "mcc": p["mcc"].astype(int),
            "chip": frame["Use Chip"].astype("category").cat.codes,
            "error": p["error"].astype(int),
            "foreign": (frame["Merchant State"].str.len() > 2).astype(int),
        }
    )
    by_card = p.groupby("card")
    history = single.assign(
        minutes_since_last=by_card["ts"].diff().fillna(1e7),
        away=p["away"].astype(int),
        prev_error=by_card["error"].shift(1, fill_value=False).astype(int),
        prev_tiny=(p["amount"].abs() < 5).groupby(p["card"]).shift(1, fill_value=False).astype(int),
        user_risky=p["mcc"].isin(RISKY_MCC).groupby(frame["User"]).transform("mean"),
    )
    train = (frame["User"] % 3 != 0).to_numpy()
    y = p["fraud"].to_numpy()
    scores = {}
    for name, x in (("single", single), ("history", history)):
        model = xgb.XGBClassifier(n_estimators=80, max_depth=5, learning_rate=0.2, n_jobs=2, random_state=0)
        model.fit(x[train], y[train])
        scores[name] = metrics.average_precision_score(y[~train], model.predict_proba(x[~train])[:, 1])
    assert 0.1 < scores["single"] < 0.9, scores
    assert scores["history"] > scores["single"] + 0.15, scores
