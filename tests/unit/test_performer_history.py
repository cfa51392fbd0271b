"""The history tokenizer and the ``performer_featurize`` Python-backend model: causality, padding, stats files,
served tokens equal to training tokens, and the request contract's INVALID_ARG answers."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from tritonmm.export.fraud import raw_columns
from tritonmm.export.transactions import generate_transactions
from tritonmm.server.models.fraud_preprocess import features as features_module
from tritonmm.server.models.fraud_preprocess.features import FEATURE_NAMES, NUMERIC_COLUMNS, featurize, fit_spec
from tritonmm.server.models.performer_featurize import history as history_module
from tritonmm.server.models.performer_featurize.history import (
    HISTORY_TOKENS,
    SPEC_FILE,
    STATS_FILE,
    TIME_COLUMN,
    HistoryError,
    TokenizerStats,
    fit_stats,
    history_context,
    pad_histories,
    raw_tokens,
    tokenize_history,
)

INVALID_ARG = 3


@pytest.fixture(scope="module")
def frame():
    return generate_transactions(6_000, seed=3)


@pytest.fixture(scope="module")
def spec(frame):
    return fit_spec(raw_columns(frame))


@pytest.fixture(scope="module")
def card(frame):
    """The raw columns of the card with the most transactions, one of which is fraud."""
    frauds = frame[frame["Is Fraud?"] == "Yes"]
    sizes = frame.groupby(["User", "Card"]).size()
    user, card = max(set(zip(frauds["User"], frauds["Card"])), key=lambda key: sizes[key])
    return raw_columns(frame[(frame["User"] == user) & (frame["Card"] == card)])


@pytest.fixture(scope="module")
def stats(spec, card) -> TokenizerStats:
    unfitted = TokenizerStats.unfitted(FEATURE_NAMES, len(spec.mcc))
    return fit_stats([raw_tokens(featurize(card, spec), history_context(card), unfitted)], unfitted)


def tokens_of(columns: dict[str, np.ndarray], spec, stats) -> np.ndarray:
    return tokenize_history(featurize(columns, spec), history_context(columns), stats)


def head(columns: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    return {name: values[:n].copy() for name, values in columns.items()}


def test_tokens_depend_only_on_earlier_transactions(card, spec, stats) -> None:
    full = tokens_of(card, spec, stats)
    assert full.shape == (len(card["User"]), len(stats.token_names)) and full.dtype == np.float32
    assert np.isfinite(full).all()
    k = len(full) // 2
    assert np.array_equal(tokens_of(head(card, k), spec, stats), full[:k])
    changed = head(card, len(full))
    changed["Amount"][k:] = "$9,999.00"
    changed["Merchant Name"][k:] = "42"
    changed["Merchant State"][k:] = "Italy"
    changed["Errors?"][k:] = "Bad PIN,"
    later = tokens_of(changed, spec, stats)
    assert np.array_equal(later[:k], full[:k])
    assert not np.array_equal(later[k:], full[k:])


def test_history_tokens_see_what_one_row_cannot(card, spec, stats) -> None:
    """A repeat at the same merchant a minute later: gap, same-merchant flag and recent count say so."""
    columns = head(card, 30)
    columns = {name: np.concatenate([values, values[-1:]]) for name, values in columns.items()}
    minute = int(columns["Time"][-1][:2]) * 60 + int(columns["Time"][-1][3:]) + 1
    columns["Time"][-1] = f"{minute // 60:02d}:{minute % 60:02d}" if minute < 1440 else columns["Time"][-1]
    raw = raw_tokens(featurize(columns, spec), history_context(columns), stats)
    last = dict(zip(stats.token_names, raw[-1]))
    assert last["same_merchant"] == 1.0 and last["new_merchant"] == 0.0 and last["log_recent_count"] >= np.log1p(1)
    assert last["log_gap"] <= np.log1p(1)
    assert raw[0, stats.token_names.index("is_first")] == 1.0 and raw[0, TIME_COLUMN] == 0.0


def test_stats_round_trip_and_layout(tmp_path: Path, stats: TokenizerStats) -> None:
    stats.save(tmp_path / STATS_FILE)
    assert TokenizerStats.load(tmp_path / STATS_FILE) == stats
    names = stats.token_names
    assert names[TIME_COLUMN] == "elapsed_minutes" and names[-len(HISTORY_TOKENS) :] == HISTORY_TOKENS
    assert len(set(names)) == len(names)


def test_padding_puts_real_tokens_first() -> None:
    histories = [np.full((n, 3), n, dtype=np.float32) for n in (2, 5, 1)]
    tokens, mask = pad_histories(histories)
    assert tokens.shape == (3, 5, 3) and mask.dtype == np.bool_
    assert mask.sum(1).tolist() == [2, 5, 1] and (mask.sum(1) - 1).tolist() == [1, 4, 0]
    assert (tokens[0, :2] == 2).all() and (tokens[0, 2:] == 0).all() and (tokens[2, 0] == 1).all()
    with pytest.raises(ValueError):
        pad_histories([np.zeros((0, 3), dtype=np.float32)])


def other_card_at_row_3(columns: dict[str, np.ndarray]) -> None:
    columns["Card"][3] += 1


def out_of_order_at_row_2(columns: dict[str, np.ndarray]) -> None:
    for name, value in (("Year", 2019), ("Month", 3), ("Day", 14)):
        columns[name][:] = value
    columns["Time"][:] = "23:00"
    columns["Time"][2] = "00:00"


def no_time_at_row_1(columns: dict[str, np.ndarray]) -> None:
    columns["Time"][1] = ""


def no_amount_at_row_4(columns: dict[str, np.ndarray]) -> None:
    columns["Amount"][4] = "nan"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (other_card_at_row_3, "Card: row 3 is .* but row 0 is"),
        (out_of_order_at_row_2, "Time: row 2 is earlier than row 1"),
        (no_time_at_row_1, "Time: row 1 is missing"),
        (no_amount_at_row_4, "Amount: row 4 is missing"),
    ],
)
def test_unusable_histories_name_the_column(card, spec, stats, change, message: str) -> None:
    columns = head(card, 10)
    change(columns)
    with pytest.raises(HistoryError, match=message):
        tokens_of(columns, spec, stats)


# --- the Python-backend model, loaded as Triton loads it: files side by side in a version folder -------------


def fake_triton_utils() -> types.ModuleType:
    """The small part of ``triton_python_backend_utils`` the model uses."""
    utils = types.ModuleType("triton_python_backend_utils")

    class Tensor:
        def __init__(self, name: str, array: np.ndarray) -> None:
            self._name, self._array = name, array

        def name(self) -> str:
            return self._name

        def as_numpy(self) -> np.ndarray:
            return self._array

    class TritonError:
        INVALID_ARG = INVALID_ARG

        def __init__(self, message: str, code: int = 0) -> None:
            self.message, self.code = message, code

    class InferenceResponse:
        def __init__(self, output_tensors=(), error=None) -> None:
            self.outputs = {t.name(): t.as_numpy() for t in output_tensors}
            self.error = error

    utils.Tensor, utils.TritonError, utils.InferenceResponse = Tensor, TritonError, InferenceResponse
    return utils


class Request:
    def __init__(self, columns: dict[str, np.ndarray]) -> None:
        self._inputs = [sys.modules["triton_python_backend_utils"].Tensor(n, v) for n, v in columns.items()]

    def inputs(self) -> list:
        return self._inputs


@pytest.fixture()
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec, stats):
    version = tmp_path / "performer_featurize" / "1"
    version.mkdir(parents=True)
    history_file = Path(history_module.__file__)
    for source in (Path(features_module.__file__), history_file, history_file.with_name("model.py")):
        shutil.copyfile(source, version / source.name)
    spec.save(version / SPEC_FILE)
    stats.save(version / STATS_FILE)
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", fake_triton_utils())
    monkeypatch.syspath_prepend(str(version))
    siblings = ("features", "history", "model")
    saved = {name: sys.modules.pop(name, None) for name in siblings}
    try:
        model = importlib.import_module("model").TritonPythonModel()
        config = json.dumps({"parameters": {"max_history": {"string_value": "64"}}})
        model.initialize({"model_repository": str(version.parent), "model_version": "1", "model_config": config})
        yield model
    finally:
        for name in siblings:
            sys.modules.pop(name, None)
            if saved[name] is not None:
                sys.modules[name] = saved[name]


def request_columns(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """As a client sends them: FP32 numbers, UTF-8 bytes for text."""
    def encoded(values: np.ndarray) -> np.ndarray:
        return np.array([v.encode() for v in values], dtype=object)

    return {n: values.astype(np.float32) if n in NUMERIC_COLUMNS else encoded(values) for n, values in columns.items()}


def test_served_tokens_equal_training_tokens(served, card, spec, stats) -> None:
    histories = [head(card, 40), head(card, 7)]
    responses = served.execute([Request(request_columns(h)) for h in histories])
    for response, history in zip(responses, histories):
        assert response.error is None
        expected = tokens_of(history, spec, stats)
        assert np.array_equal(response.outputs["tokens"], expected[None])
        assert response.outputs["mask"].shape == (1, len(expected)) and response.outputs["mask"].all()


def at_row(columns: dict[str, np.ndarray], name: str, row: int, value) -> dict[str, np.ndarray]:
    changed = columns[name].copy()
    changed[row] = value
    return {**columns, name: changed}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: {n: np.concatenate([v] * 7) for n, v in c.items()}, "User: history of 70 transactions exceeds"),
        (lambda c: {n: v[:0] for n, v in c.items()}, "User: the history is empty"),
        (lambda c: {**c, "Zip": c["Zip"][:3]}, "Zip: has 3 values but User has 10"),
        (lambda c: at_row(c, "Year", 2, np.nan), "Year: must be a finite whole number"),
        (lambda c: at_row(c, "Amount", 0, b"abc"), "Amount: 'abc' is not an amount"),
        (lambda c: at_row(c, "User", 5, c["User"][5] + 1), "User: row 5 is"),
        (lambda c: at_row(c, "Time", 0, b""), "Time: row 0 is missing"),
    ],
)
def test_bad_requests_get_invalid_arg_naming_the_tensor(served, card, change, message: str) -> None:
    (response,) = served.execute([Request(change(request_columns(head(card, 10))))])
    assert response.error is not None and response.error.code == INVALID_ARG
    assert response.error.message.startswith(message)
