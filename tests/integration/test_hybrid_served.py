"""The hybrid pipeline (Performer score + XGBoost on FIL): its training summary and bad histories (golden outputs: test_performer_served)."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tritonmm.export.performer.hybrid import PIPELINE

from .performer_fixtures import history_inputs
from .requests_helpers import client_for


def test_summary_reports_all_three_models_on_the_same_cards(performer_export) -> None:
    held_out = performer_export.summary["hybrid"]["held_out"]
    assert set(held_out) == {"hybrid", "performer_only", "xgboost_only"}
    for metrics in held_out.values():
        assert 0.5 < metrics["roc_auc"] <= 1.0 and 0.0 < metrics["pr_auc"] <= 1.0
    assert performer_export.summary["hybrid"]["test_transactions"] == performer_export.summary["test_transactions"]
    assert np.isclose(held_out["performer_only"]["roc_auc"], performer_export.summary["performer"]["roc_auc"], atol=1e-4)


def test_bad_history_gets_4xx_naming_the_tensor(performer_server, card) -> None:
    history = card.tail(5).copy()
    history["Amount"] = history["Amount"].astype(object)
    history.loc[history.index[2], "Amount"] = "abc"
    with pytest.raises(InferenceServerException) as info:
        client_for(httpclient, performer_server).infer(PIPELINE, history_inputs(httpclient, history))
    assert str(info.value.status()).startswith("4"), info.value
    assert "Amount" in info.value.message(), info.value.message()
    result = client_for(httpclient, performer_server).infer(PIPELINE, history_inputs(httpclient, card.tail(10)))
    assert result.as_numpy("probability").shape == (1, 1)
