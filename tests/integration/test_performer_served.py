"""The Performer and hybrid pipelines served by the real embedded Triton: golden outputs over HTTP and gRPC, bad histories."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tritonmm.export.performer.hybrid import PIPELINE as HYBRID_PIPELINE
from tritonmm.export.performer.pipeline import ONNX_FILE
from tritonmm.export.performer.repository import FEATURIZE, MODEL, PIPELINE

from .performer_fixtures import MAX_HISTORY, history_inputs, hybrid_probability, performer_probability, run_graph
from .requests_helpers import client_for, infer_input


def test_quick_export_reports_a_held_out_auc(performer_export) -> None:
    assert 0.5 < performer_export.summary["performer"]["roc_auc"] <= 1.0


@pytest.mark.parametrize(("pipeline", "expected_probability"),
                         [(PIPELINE, performer_probability), (HYBRID_PIPELINE, hybrid_probability)],
                         ids=[PIPELINE, HYBRID_PIPELINE])
@pytest.mark.parametrize("length", [1, 40, 300])
def test_ensemble_scores_a_raw_history_like_the_in_process_pipeline(performer_server, performer_export, card, protocol,
                                                                     length, pipeline, expected_probability) -> None:
    assert len(card) >= length
    history = card.tail(length)
    result = client_for(protocol, performer_server).infer(pipeline, history_inputs(protocol, history))
    probability = result.as_numpy("probability")
    assert probability.shape == (1, 1)
    np.testing.assert_allclose(probability[0, 0], expected_probability(performer_export.work_dir, history), atol=1e-5)
    assert result.as_numpy("label")[0, 0] in (b"FRAUD", b"NOT FRAUD")


def test_featurizer_and_model_served_alone(performer_server, performer_export, card, protocol) -> None:
    client = client_for(protocol, performer_server)
    tokens = client.infer(FEATURIZE, history_inputs(protocol, card.tail(50)))
    out = client.infer(MODEL, [infer_input(protocol, "tokens", tokens.as_numpy("tokens")),
                               infer_input(protocol, "mask", tokens.as_numpy("mask"), "BOOL")])
    reference = run_graph(performer_export.work_dir / ONNX_FILE, tokens.as_numpy("tokens")[0])
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
def test_bad_histories_get_4xx_naming_the_tensor(performer_server, card, inputs, needle) -> None:
    with pytest.raises(InferenceServerException) as info:
        client_for(httpclient, performer_server).infer(PIPELINE, inputs(card))
    assert str(info.value.status()).startswith("4"), info.value
    assert needle in info.value.message(), info.value.message()
    assert client_for(httpclient, performer_server).is_server_ready()
    result = client_for(httpclient, performer_server).infer(PIPELINE, history_inputs(httpclient, card.tail(10)))
    assert result.as_numpy("probability").shape == (1, 1)
