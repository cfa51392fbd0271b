"""The Python-based ``onnxruntime`` backend, served: outputs equal in-process ONNX Runtime, batches split back right.

Its own server (module scope) on free ports, over a repository of small
models: an MLP with the native backend's thread parameters (and a TensorRT
accelerator, which this build ignores), a two-input sequence model
(``backend: "onnxruntime"``), the same network exported with unnamed dynamic
axes under a ``platform: "onnxruntime_onnx"`` config, a graph passing every
served data type through, and a config naming a tensor the graph lacks
(explicit model control: loaded by the test that expects it to fail).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from tritonmm.export.model_config import ModelConfig, write_config
from tritonmm.export.onnx_model import export_onnx_model
from tritonmm.server.triton_process import TritonServer, TritonSettings, free_port

from .requests_helpers import PROTOCOLS, client_for, infer_input

SERVED = ("mlp", "seq", "seq_platform", "dtypes")
THREAD_PARAMETERS = {
    "intra_op_thread_count": "1",
    "inter_op_thread_count": "1",
    "execution_mode": "1",
    "enable_mem_arena": "1",
    "enable_mem_pattern": "false",
    "memory.enable_memory_arena_shrinkage": "cpu:0",
}
DTYPES = (np.float16, np.float64, np.int64, np.int32, np.int8, np.uint8, np.bool_)
LENGTHS = (1, 4, 17, 64)
REJECTED = ("400", "StatusCode.INVALID_ARGUMENT")
"""How HTTP and gRPC say INVALID_ARG."""


class MaskedMean(torch.nn.Module):
    """``x [B, L, 4]``, ``mask [B, L]`` -> a linear map of the mean of the unmasked steps, ``[B, 1]``."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = mask.to(x.dtype).unsqueeze(-1)
        return self.linear((x * weights).sum(1) / weights.sum(1).clamp(min=1.0))


def export_torch(module: torch.nn.Module, args: tuple, path: Path, names: list[str], dynamic_axes: dict) -> Path:
    """The legacy (TorchScript) exporter, as users with ``dynamic_axes`` call it; the last name is the output."""
    torch.onnx.export(module.eval(), args, str(path), dynamo=False, opset_version=17, input_names=names[:-1],
                      output_names=names[-1:], dynamic_axes=dynamic_axes)
    return path


def dtype_model(path: Path) -> Path:
    """One ``Identity`` per served type besides FP32 (the MLP's): values must come back bit-exact."""
    kinds = [(np.dtype(t).name, helper.np_dtype_to_tensor_dtype(np.dtype(t))) for t in DTYPES]
    graph = helper.make_graph(
        [helper.make_node("Identity", [f"in_{name}"], [f"out_{name}"]) for name, _ in kinds],
        "dtypes",
        [helper.make_tensor_value_info(f"in_{name}", kind, ["batch", 2]) for name, kind in kinds],
        [helper.make_tensor_value_info(f"out_{name}", kind, ["batch", 2]) for name, kind in kinds],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def write_models(root: Path) -> dict[str, Path]:
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    sequence_args = (torch.randn(2, 5, 4), torch.ones(2, 5, dtype=torch.bool))
    named_axes = {"x": {0: "batch", 1: "length"}, "mask": {0: "batch", 1: "length"}, "y": {0: "batch"}}
    batch_axis = {"x": {0: "batch"}, "y": {0: "batch"}}
    return {
        "mlp": export_torch(mlp, (torch.randn(2, 8),), root / "mlp.onnx", ["x", "y"], batch_axis),
        "seq": export_torch(MaskedMean(), sequence_args, root / "seq.onnx", ["x", "mask", "y"], named_axes),
        # Unnamed axes: nothing in the graph says x's and mask's lengths agree, so ONNX Runtime itself refuses a mismatch.
        "seq_platform": export_torch(MaskedMean(), sequence_args, root / "seq_unnamed.onnx", ["x", "mask", "y"],
                                     {"x": [0, 1], "mask": [0, 1], "y": [0]}),
        "dtypes": dtype_model(root / "dtypes.onnx"),
    }


def tuned(config: ModelConfig) -> None:
    config.optimization.graph.level = -1
    config.optimization.execution_accelerators.gpu_execution_accelerator.add(name="tensorrt")  # not in this build


def patient(config: ModelConfig) -> None:
    config.dynamic_batching.max_queue_delay_microseconds = 5_000  # so that concurrent requests meet in one execute()


def as_platform(config: ModelConfig) -> None:
    config.ClearField("backend")
    config.platform = "onnxruntime_onnx"


def misnamed(config: ModelConfig) -> None:
    config.input[0].name = "features"


def export_edited(onnx_file: Path, repository: Path, name: str, edit: Callable[[ModelConfig], None], **options: Any) -> None:
    """Export, then change what the exporter does not write (optimization, queue delay, platform) and rewrite."""
    config = export_onnx_model(onnx_file, repository, name, **options)
    edit(config)
    write_config(config, repository)


def write_repository(repository: Path, files: dict[str, Path]) -> None:
    export_edited(files["mlp"], repository, "mlp", tuned, max_batch_size=64, parameters=THREAD_PARAMETERS)
    export_edited(files["seq"], repository, "seq", patient, max_batch_size=32)
    export_edited(files["seq_platform"], repository, "seq_platform", as_platform, max_batch_size=32)
    export_onnx_model(files["dtypes"], repository, "dtypes", max_batch_size=8)
    export_edited(files["mlp"], repository, "broken", misnamed, max_batch_size=8)


@dataclass(frozen=True)
class OnnxServed:
    settings: TritonSettings
    files: dict[str, Path]


@pytest.fixture(scope="module")
def onnx_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OnnxServed]:
    root = tmp_path_factory.mktemp("onnx")
    files = write_models(root)
    repository = root / "repository"
    write_repository(repository, files)
    settings = TritonSettings(
        model_repository=repository, backend_directory=root / "backends", http_port=free_port(),
        grpc_port=free_port(), metrics_port=free_port(), model_control_mode="explicit", load_models=SERVED,
    )
    with (root / "tritonserver.log").open("w") as log, TritonServer(settings, log_sink=log) as server:
        server.wait_ready(timeout=120)
        yield OnnxServed(settings, files)


def reference(served: OnnxServed, model: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """What ONNX Runtime in this process computes for the same file."""
    return ort.InferenceSession(str(served.files[model]), providers=["CPUExecutionProvider"]).run(["y"], feeds)[0]


def infer(
    served: OnnxServed, protocol: str, model: str, feeds: dict[str, np.ndarray], outputs: list[str]
) -> list[np.ndarray]:
    module = PROTOCOLS[protocol]
    inputs = [infer_input(module, name, array, np_to_triton_dtype(array.dtype)) for name, array in feeds.items()]
    result = client_for(module, served.settings).infer(model, inputs)
    return [result.as_numpy(name) for name in outputs]


def sequences(rng: np.random.Generator, batch: int, length: int) -> dict[str, np.ndarray]:
    mask = rng.random((batch, length)) < 0.7
    mask[:, 0] = True
    return {"x": rng.normal(size=(batch, length, 4)).astype(np.float32), "mask": mask}


def expect_rejected(served: OnnxServed, protocol: str, model: str, feeds: dict[str, np.ndarray], *needles: str) -> None:
    with pytest.raises(InferenceServerException) as info:
        infer(served, protocol, model, feeds, ["y"])
    assert str(info.value.status()) in REJECTED, (info.value.status(), info.value.message())
    for needle in needles:
        assert needle in info.value.message(), info.value.message()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_mlp_with_thread_parameters_matches_onnxruntime(onnx_served: OnnxServed, protocol: str) -> None:
    x = np.random.default_rng(1).normal(size=(5, 8)).astype(np.float32)
    (served,) = infer(onnx_served, protocol, "mlp", {"x": x}, ["y"])
    assert served.shape == (5, 3) and served.dtype == np.float32
    np.testing.assert_allclose(served, reference(onnx_served, "mlp", {"x": x}), atol=1e-6)


def test_native_parameters_are_kept_in_the_served_config(onnx_served: OnnxServed) -> None:
    config = httpx.get(f"{onnx_served.settings.http_url}/v2/models/mlp/config").json()
    assert {key: value["string_value"] for key, value in config["parameters"].items()} == THREAD_PARAMETERS
    assert config["optimization"]["graph"]["level"] == -1
    assert config["optimization"]["execution_accelerators"]["gpu_execution_accelerator"][0]["name"] == "tensorrt"


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("model", ["seq", "seq_platform"])
def test_sequence_model_at_several_lengths(onnx_served: OnnxServed, protocol: str, model: str) -> None:
    rng = np.random.default_rng(2)
    for length in LENGTHS:
        feeds = sequences(rng, 3, length)
        (served,) = infer(onnx_served, protocol, model, feeds, ["y"])
        np.testing.assert_allclose(served, reference(onnx_served, model, feeds), atol=1e-6, err_msg=f"length {length}")


def test_platform_config_runs_on_this_backend(onnx_served: OnnxServed) -> None:
    config = httpx.get(f"{onnx_served.settings.http_url}/v2/models/seq_platform/config").json()
    assert config["platform"] == "onnxruntime_onnx"


def test_concurrent_requests_with_different_lengths_come_back_right(onnx_served: OnnxServed) -> None:
    """Requests that meet in one execute() are grouped by length; each must get exactly its own rows back."""
    rng = np.random.default_rng(3)
    requests = [sequences(rng, 1 + i % 3, (3, 8, 20)[i // 3 % 3]) for i in range(48)]
    stats_url = f"{onnx_served.settings.http_url}/v2/models/seq/stats"
    before = httpx.get(stats_url).json()["model_stats"][0]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda feeds: infer(onnx_served, "grpc", "seq", feeds, ["y"])[0], requests))
    for feeds, served in zip(requests, answers):
        np.testing.assert_allclose(served, reference(onnx_served, "seq", feeds), atol=1e-6)
    after = httpx.get(stats_url).json()["model_stats"][0]
    executions = after["execution_count"] - before["execution_count"]
    assert executions < len(requests), "no two requests were batched: the grouping was not exercised"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_data_type_round_trips(onnx_served: OnnxServed, protocol: str) -> None:
    rng = np.random.default_rng(4)
    feeds = {f"in_{np.dtype(t).name}": (rng.integers(0, 100, size=(3, 2)) / 4).astype(t) for t in DTYPES}
    served = infer(onnx_served, protocol, "dtypes", feeds, [name.replace("in_", "out_") for name in feeds])
    for (name, sent), back in zip(feeds.items(), served):
        assert back.dtype == sent.dtype, name
        np.testing.assert_array_equal(back, sent, err_msg=name)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_wrong_dtype_and_rank_are_rejected_naming_the_tensor(onnx_served: OnnxServed, protocol: str) -> None:
    expect_rejected(onnx_served, protocol, "mlp", {"x": np.ones((2, 8), np.float64)}, "'x'", "FP64")
    expect_rejected(onnx_served, protocol, "mlp", {"x": np.ones((2, 8, 1), np.float32)}, "'x'")
    feeds = sequences(np.random.default_rng(5), 2, 6)
    expect_rejected(onnx_served, protocol, "seq", {"x": feeds["x"].astype(np.float16), "mask": feeds["mask"]}, "'x'")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_lengths_that_disagree_are_rejected_naming_the_input(onnx_served: OnnxServed, protocol: str) -> None:
    """Named graph dims are checked before the run; without names ONNX Runtime's own refusal is passed on."""
    feeds = sequences(np.random.default_rng(6), 2, 6)
    feeds["mask"] = feeds["mask"][:, :5]
    expect_rejected(onnx_served, protocol, "seq", feeds, "mask: dim 1 ('length') is 5, but x has 'length' = 6")
    expect_rejected(onnx_served, protocol, "seq_platform", feeds, "mask [2, 5]", "rejected by model.onnx")
    (served,) = infer(onnx_served, protocol, "seq", sequences(np.random.default_rng(7), 2, 6), ["y"])
    assert served.shape == (2, 1)


def test_config_naming_a_tensor_the_graph_lacks_fails_to_load(onnx_served: OnnxServed) -> None:
    base = onnx_served.settings.http_url
    answer = httpx.post(f"{base}/v2/repository/models/broken/load", timeout=60)
    assert answer.status_code == 400, answer.text
    message = answer.json()["error"]
    assert "broken/1/model.onnx" in message and "input 'features' is not an input of the graph" in message, message
    assert httpx.get(f"{base}/v2/health/ready").status_code == 200
    assert httpx.get(f"{base}/v2/models/mlp/ready").status_code == 200
