"""The Performer pipeline served by the real embedded Triton: golden outputs over HTTP and gRPC, bad histories."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tritonmm.export.performer.pipeline import ONNX_FILE, export_performer
from tritonmm.export.performer.repository import FEATURIZE, MODEL, PIPELINE, write_performer_repository

from .performer_fixtures import history_inputs, history_tokens, longest_card, serve
from .requests_helpers import PROTOCOLS, client_for, infer_input

MAX_HISTORY = 512


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("performer")
    repo, work = root / "repo", root / "work"
    summary = export_performer(repo, quick=True, work_dir=work)
    assert 0.5 < summary["performer"]["roc_auc"] <= 1.0
    write_performer_repository(repo, work, onnx_file=work / ONNX_FILE, max_history=MAX_HISTORY)
    return repo, work


@pytest.fixture(scope="module")
def server(exported, tmp_path_factory: pytest.TempPathFactory):
    yield from serve(exported[0], tmp_path_factory.mktemp("performer_triton"))


@pytest.fixture(scope="module")
def card() -> pd.DataFrame:
    return longest_card()


@pytest.fixture(params=sorted(PROTOCOLS))
def protocol(request) -> ModuleType:
    return PROTOCOLS[request.param]


def expected_probability(work: Path, history: pd.DataFrame) -> float:
    tokens = history_tokens(work, history)
    session = ort.InferenceSession(str(work / ONNX_FILE), providers=["CPUExecutionProvider"])
    return float(session.run(None, {"tokens": tokens[None].astype(np.float32), "mask": np.ones((1, len(tokens)), bool)})[0][0, 0])


@pytest.mark.parametrize("length", [1, 40, 300])
def test_ensemble_scores_a_raw_history_like_onnxruntime_in_process(server, exported, card, protocol, length) -> None:
    assert len(card) >= length
    history = card.tail(length)
    result = client_for(protocol, server).infer(PIPELINE, history_inputs(protocol, history))
    probability = result.as_numpy("probability")
    assert probability.shape == (1, 1)
    np.testing.assert_allclose(probability[0, 0], expected_probability(exported[1], history), atol=1e-5)
    assert result.as_numpy("label")[0, 0] in (b"FRAUD", b"NOT FRAUD")


def test_featurizer_and_model_served_alone(server, exported, card, protocol) -> None:
    client = client_for(protocol, server)
    tokens = client.infer(FEATURIZE, history_inputs(protocol, card.tail(50)))
    out = client.infer(MODEL, [infer_input(protocol, "tokens", tokens.as_numpy("tokens")),
                               infer_input(protocol, "mask", tokens.as_numpy("mask"), "BOOL")])
    session = ort.InferenceSession(str(exported[1] / ONNX_FILE), providers=["CPUExecutionProvider"])
    reference = session.run(None, {"tokens": tokens.as_numpy("tokens"), "mask": tokens.as_numpy("mask")})[0]
    np.testing.assert_allclose(out.as_numpy("fraud_probability"), reference, atol=1e-6)


def bad_history(card: pd.DataFrame, column: str, value: object) -> list:
    history = card.tail(5).copy()
    history[column] = history[column].astype(object)
    history.loc[history.index[2], column] = value
    return history_inputs(httpclient, history)


@pytest.mark.parametrize(
    ("inputs", "needle"),
    [
        (lambda card: history_inputs(httpclient, pd.concat([card] * 3).head(MAX_HISTORY + 1)), "max_history"),
        (lambda card: history_inputs(httpclient, card.head(0)), "empty"),
        (lambda card: bad_history(card, "Year", float("nan")), "Year"),
        (lambda card: bad_history(card, "Amount", "abc"), "Amount"),
        (lambda card: [i for i in history_inputs(httpclient, card.tail(5)) if i.name() != "Zip"]
         + [infer_input(httpclient, "Zip", np.array([b"1", b"2"], dtype=object))], "Zip"),
    ],
    ids=["too-long", "empty", "nan", "non-numeric", "mismatched-lengths"],
)
def test_bad_histories_get_4xx_naming_the_tensor(server, card, inputs, needle) -> None:
    with pytest.raises(InferenceServerException) as info:
        client_for(httpclient, server).infer(PIPELINE, inputs(card))
    assert str(info.value.status()).startswith("4"), info.value
    assert needle in info.value.message(), info.value.message()
    assert client_for(httpclient, server).is_server_ready()
    result = client_for(httpclient, server).infer(PIPELINE, history_inputs(httpclient, card.tail(10)))
    assert result.as_numpy("probability").shape == (1, 1)
