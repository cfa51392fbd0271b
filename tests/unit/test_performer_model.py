"""The Performer classifier: any length (no position table), padding invariance, softmax -> FAVOR+ checkpoint
transfer, ONNX export parity, and quick training through the export pipeline (AUC, files, determinism)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch

from tritonmm.export.fraud import raw_columns
from tritonmm.export.performer.attention import FAVOR_BUFFERS, load_attention_weights
from tritonmm.export.performer.model import PerformerClassifier
from tritonmm.export.performer.onnx_export import INPUTS, OUTPUT, example_inputs, export_onnx, parity
from tritonmm.export.performer.pipeline import ONNX_FILE, QUICK_ROWS, SUMMARY_FILE, export_performer
from tritonmm.export.performer.train import (
    CONFIG_FILE,
    QUICK,
    WEIGHTS_FILE,
    Checkpoint,
    build_dataset,
    new_model,
    reproducible,
    train_model,
)
from tritonmm.export.transactions import generate_transactions
from tritonmm.server.models.fraud_preprocess.features import fit_spec
from tritonmm.server.models.performer_featurize.history import SPEC_FILE, STATS_FILE

N_TOKENS = 20


def model(attention: str = "favor", seed: int = 0, **options) -> PerformerClassifier:
    torch.manual_seed(seed)
    return PerformerClassifier(N_TOKENS, attention=attention, **options).eval()


def test_padding_does_not_change_a_history_score_at_any_length() -> None:
    favor = model()
    lengths = (1, 7, 300, 4096)
    tokens, _ = example_inputs(N_TOKENS, max(lengths), batch=len(lengths))
    mask = torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]
    with torch.no_grad():
        batched = favor(tokens * mask[..., None], mask)
        alone = torch.cat([favor(tokens[i : i + 1, :n], mask[i : i + 1, :n]) for i, n in enumerate(lengths)])
    assert batched.shape == (len(lengths), 1) and ((batched > 0) & (batched < 1)).all()
    assert torch.allclose(batched, alone, atol=1e-5)


def test_runs_at_16384_tokens_with_favor() -> None:
    tokens, mask = example_inputs(N_TOKENS, 16_384, batch=1)
    with torch.no_grad():
        probability = model()(tokens, mask)
    assert probability.shape == (1, 1) and torch.isfinite(probability).all()


def test_softmax_checkpoint_loads_into_favor_with_the_same_parameters() -> None:
    softmax = model("softmax")
    favor = model("favor", seed=1)
    skipped = load_attention_weights(favor, softmax.state_dict())
    assert skipped and {key.rsplit(".", 1)[-1] for key in skipped} == FAVOR_BUFFERS
    for (name, a), (_, b) in zip(softmax.named_parameters(), favor.named_parameters()):
        assert torch.equal(a, b), name
    tokens, mask = example_inputs(N_TOKENS, 200)
    with torch.no_grad():
        # FAVOR+ estimates the same attention: 0.001-0.003 apart at random init with 128 features (3 draws).
        assert torch.allclose(softmax(tokens, mask), favor(tokens, mask), atol=0.02)


def test_onnx_export_keeps_batch_and_length_dynamic_and_matches_torch(tmp_path: Path) -> None:
    favor = model()
    path = export_onnx(favor, tmp_path / ONNX_FILE)
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == list(INPUTS) and [o.name for o in graph.output] == [OUTPUT]
    tokens_dims = graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in tokens_dims[:2]] == ["batch", "length"] and tokens_dims[2].dim_value == N_TOKENS
    assert parity(favor, path, (7, 64, 300)) <= 1e-4


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict]]:
    """A softmax model trained quickly, then loaded into FAVOR+ and fine-tuned: the checkpoint path end to end."""
    root = tmp_path_factory.mktemp("performer")
    softmax = export_performer(root / "repo", work_dir=root / "softmax", quick=True, attention="softmax")
    favor = export_performer(root / "repo", work_dir=root / "favor", quick=True, from_checkpoint=root / "softmax")
    return {"softmax": (root / "softmax", softmax), "favor": (root / "favor", favor)}


def test_quick_training_reports_auc_next_to_xgboost(quick_runs) -> None:
    for work_dir, summary in quick_runs.values():
        assert summary["rows"] == QUICK_ROWS and summary["test_frauds"] > 0
        for key in ("performer", "xgboost"):
            assert 0 <= summary[key]["roc_auc"] <= 1 and 0 <= summary[key]["pr_auc"] <= 1
        assert max(summary["onnx"]["parity_max_abs_diff"].values()) <= 1e-4
        for name in (WEIGHTS_FILE, CONFIG_FILE, STATS_FILE, SPEC_FILE, ONNX_FILE, SUMMARY_FILE):
            assert (work_dir / name).is_file(), name
    _, favor = quick_runs["favor"]
    assert 0 <= favor["after_swap"]["roc_auc"] <= 1
    assert len(favor["training"]["valid_by_epoch"]) == QUICK.fine_tune_epochs + 1


def test_fine_tuned_checkpoint_is_favor_with_the_softmax_tokenizer(quick_runs) -> None:
    softmax_dir, _ = quick_runs["softmax"]
    favor_dir, _ = quick_runs["favor"]
    checkpoint = Checkpoint.load(favor_dir)
    assert checkpoint.config.attention == "favor" and "blocks.0.attention.projection" in checkpoint.state_dict
    assert Checkpoint.load(softmax_dir).config.attention == "softmax"
    assert (favor_dir / STATS_FILE).read_text() == (softmax_dir / STATS_FILE).read_text()


def test_quick_training_is_deterministic() -> None:
    frame = generate_transactions(QUICK_ROWS, seed=5)
    data = build_dataset(QUICK_ROWS, 5, fit_spec(raw_columns(frame)))
    states = []
    for _ in range(2):
        with reproducible(5):
            trained = new_model(data, QUICK, "favor")
            train_model(trained, data, QUICK, epochs=QUICK.max_epochs, learning_rate=QUICK.learning_rate, seed=5)
        states.append(trained.state_dict())
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][key], states[1][key]) for key in states[0])
