"""Config writer and ensemble builder: valid protobuf text, and wiring mistakes caught at export time."""

from __future__ import annotations

import pytest

from tritonmm.export.ensemble import EnsembleWiringError, Step, build_ensemble
from tritonmm.export.model_config import max_batch_size_for, model_config, read_config, tensor, to_text, write_config


def step_model(name: str, inp: tuple[str, str, list[int]], out: tuple[str, str, list[int]], mbs: int = 64):
    return model_config(name=name, backend="python", max_batch_size=mbs, inputs=[tensor(*inp)], outputs=[tensor(*out)])


def test_written_config_round_trips(tmp_path) -> None:
    config = model_config(
        name="m", backend="fil", max_batch_size=128, inputs=[tensor("input__0", "TYPE_FP32", [4])],
        outputs=[tensor("output__0", "TYPE_FP32", [2])], parameters={"model_type": "xgboost_json"},
        instance_kind="KIND_AUTO",
    )
    model_dir = write_config(config, tmp_path)
    assert (model_dir / "1").is_dir()
    assert read_config(model_dir) == config
    text = to_text(config)
    assert 'backend: "fil"' in text and "dynamic_batching" in text and 'string_value: "xgboost_json"' in text


def test_writer_is_deterministic() -> None:
    def make():
        return to_text(step_model("a", ("x", "TYPE_FP32", [1]), ("y", "TYPE_STRING", [1])))

    assert make() == make()


def test_unknown_data_type_is_refused() -> None:
    with pytest.raises(ValueError):
        tensor("x", "TYPE_FLOAT", [1])


@pytest.mark.parametrize(("budget", "row", "expected"), [(16 << 20, 184, 65536), (1000, 184, 4), (10, 184, 1), (1 << 40, 4, 1 << 20)])
def test_max_batch_size_from_memory_budget(budget: int, row: int, expected: int) -> None:
    assert max_batch_size_for(budget, row) == expected


def test_ensemble_wires_steps_in_order() -> None:
    pre = step_model("pre", ("raw", "TYPE_STRING", [1]), ("features", "TYPE_FP32", [3]))
    post = step_model("post", ("features", "TYPE_FP32", [3]), ("score", "TYPE_FP32", [1]))
    ensemble = build_ensemble(
        "pipe",
        [Step(pre, {"raw": "raw"}, {"features": "f"}), Step(post, {"features": "f"}, {"score": "score"})],
        inputs=[tensor("raw", "TYPE_STRING", [1])],
        outputs=[tensor("score", "TYPE_FP32", [1])],
        max_batch_size=64,
    )
    assert [s.model_name for s in ensemble.ensemble_scheduling.step] == ["pre", "post"]
    assert ensemble.platform == "ensemble" and not ensemble.instance_group


@pytest.mark.parametrize(
    ("post_input", "message"),
    [
        (("features", "TYPE_FP64", [3]), r"expects TYPE_FP64 \[3\] but 'f' from step 'pre' is TYPE_FP32 \[3\]"),
        (("features", "TYPE_FP32", [4]), r"expects TYPE_FP32 \[4\]"),
    ],
)
def test_ensemble_reports_type_and_shape_mismatches(post_input, message: str) -> None:
    pre = step_model("pre", ("raw", "TYPE_STRING", [1]), ("features", "TYPE_FP32", [3]))
    post = step_model("post", post_input, ("score", "TYPE_FP32", [1]))
    with pytest.raises(EnsembleWiringError, match=message):
        build_ensemble(
            "pipe",
            [Step(pre, {"raw": "raw"}, {"features": "f"}), Step(post, {"features": "f"}, {"score": "score"})],
            inputs=[tensor("raw", "TYPE_STRING", [1])], outputs=[tensor("score", "TYPE_FP32", [1])], max_batch_size=64,
        )


def test_ensemble_reports_unproduced_tensors_and_small_steps() -> None:
    pre = step_model("pre", ("raw", "TYPE_STRING", [1]), ("features", "TYPE_FP32", [3]), mbs=8)
    raw = [tensor("raw", "TYPE_STRING", [1])]
    with pytest.raises(EnsembleWiringError, match="reads 'nope', which no earlier step produces"):
        build_ensemble("p", [Step(pre, {"raw": "nope"})], inputs=raw, outputs=[], max_batch_size=8)
    with pytest.raises(EnsembleWiringError, match="max_batch_size 8 is below the ensemble's 64"):
        build_ensemble("p", [Step(pre, {"raw": "raw"})], inputs=raw, outputs=[], max_batch_size=64)
    with pytest.raises(EnsembleWiringError, match="output 'score' is produced by no step"):
        build_ensemble("p", [Step(pre, {"raw": "raw"}, {"features": "f"})], inputs=raw,
                       outputs=[tensor("score", "TYPE_FP32", [1])], max_batch_size=8)
