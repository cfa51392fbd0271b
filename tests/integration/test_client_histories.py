"""``score_histories``: the SDK turns a table of many cards' transactions into one Performer/hybrid request per card."""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest

from tritonmm.client import AsyncClient, Client, InvalidInput
from tritonmm.export.archive import package_pipeline
from tritonmm.export.transactions import generate_transactions
from tritonmm.loadtest.local_endpoint import start_endpoint

from .performer_fixtures import MAX_HISTORY, hybrid_probability, performer_probability

SENT = 60
"""Transactions sent per card (``max_history``): enough history, small requests."""
EXPECTED = {"performer_fraud": performer_probability, "hybrid_fraud": hybrid_probability}


@pytest.fixture(scope="module")
def cards() -> pd.DataFrame:
    """Three cards' transactions, shuffled together (as a caller's table would be)."""
    frame = generate_transactions(20_000, seed=21)
    keys = frame.groupby(["User", "Card"]).size().sort_values().index[-3:]
    picked = frame.set_index(["User", "Card"]).loc[list(keys)].reset_index()
    return picked.sample(frac=1.0, random_state=3).reset_index(drop=True)


def clients(settings) -> dict[str, Client]:
    return {"http": Client.http(f"{settings.host}:{settings.http_port}"), "grpc": Client.grpc(settings.grpc_url)}


def history_of(cards: pd.DataFrame, user: int, card: int) -> pd.DataFrame:
    """One card's transactions, oldest first, last ``SENT`` (what the client must have sent)."""
    mine = cards[(cards["User"] == user) & (cards["Card"] == card)]
    order = mine.assign(_t=mine["Time"].astype(str)).sort_values(["Year", "Month", "Day", "_t"], kind="stable")
    return order.drop(columns="_t").tail(SENT)


@pytest.mark.parametrize("model", sorted(EXPECTED))
def test_each_card_is_scored_like_the_in_process_pipeline(performer_server, performer_export, cards, model) -> None:
    for transport, client in clients(performer_server).items():
        with client:
            table = client.score_histories(cards, model=model, max_history=SENT)
        first_seen = list(dict.fromkeys(zip(cards["User"], cards["Card"])))
        assert list(zip(table["User"], table["Card"])) == first_seen, transport
        assert (table["transactions"] == SENT).all()
        for row in table.itertuples():
            expected = EXPECTED[model](performer_export.work_dir, history_of(cards, row.User, row.Card))
            np.testing.assert_allclose(row.probability, expected, atol=1e-5, err_msg=f"{transport} {model}")
            assert row.label in ("FRAUD", "NOT FRAUD")


def test_sagemaker_transport_through_the_local_endpoint(performer_server, performer_export, cards, tmp_path) -> None:
    """The Performer archive behind the multi-model endpoint: the same table as Triton's own gRPC port."""
    archive = package_pipeline(performer_export.repository, "performer_fraud", version="1", out_dir=tmp_path / "store")
    endpoint = start_endpoint(tmp_path / "endpoint", str(tmp_path / "store"))
    try:
        with Client.sagemaker("local", archive.name, endpoint_url=endpoint.url, region_name="us-east-1",
                              anonymous=True) as client:
            table = client.score_histories(cards, model="performer_fraud", max_history=SENT)
    finally:
        endpoint.stop()
    with Client.grpc(performer_server.grpc_url) as client:
        expected = client.score_histories(cards, max_history=SENT)
    pd.testing.assert_frame_equal(table, expected, atol=1e-6)


def test_async_client_gives_the_same_table(performer_server, cards) -> None:
    with Client.grpc(performer_server.grpc_url) as client:
        expected = client.score_histories(cards, max_history=SENT)

    async def score() -> pd.DataFrame:
        async with AsyncClient.http(f"{performer_server.host}:{performer_server.http_port}", max_concurrency=2) as client:
            return await client.score_histories(cards, max_history=SENT)

    pd.testing.assert_frame_equal(asyncio.run(score()), expected, atol=1e-6)


def test_records_without_a_column_are_refused_before_sending(performer_server, cards) -> None:
    records = cards.drop(columns="MCC").to_dict("records")
    with Client.http(f"{performer_server.host}:{performer_server.http_port}") as client, \
            pytest.raises(InvalidInput, match="MCC: missing column"):
        client.score_histories(records)


def test_a_history_over_the_servers_limit_is_the_servers_invalid_input(performer_server, card) -> None:
    longer = pd.concat([card, card.assign(Year=card["Year"] + 10)])  # the same card, ten years on
    assert len(longer) > MAX_HISTORY
    with Client.http(f"{performer_server.host}:{performer_server.http_port}") as client:
        with pytest.raises(InvalidInput, match="max_history"):
            client.score_histories(longer)
        assert client.score_histories(longer, max_history=MAX_HISTORY)["transactions"].tolist() == [MAX_HISTORY]
