"""The ``onnxruntime`` backend's pure parts and the ONNX exporter, without a server.

Native-backend parameters -> ORT options, the data-type map, config-vs-graph
checks at load, grouping a dynamic batch by shape and splitting it back, and
the config writer on small torch exports.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from google.protobuf.json_format import MessageToDict
from onnx import TensorProto, helper
from tritonclient.grpc import model_config_pb2 as mc

from tritonmm.export.model_config import ModelConfig, read_config
from tritonmm.export.onnx_model import export_onnx_model, onnx_model_config
from tritonmm.server.backends.onnxruntime.ort_session import (
    DATA_TYPES,
    InvalidInput,
    OrtLoadError,
    OrtModel,
    SessionSettings,
    TensorSpec,
    concat_feeds,
    config_type,
    execution_providers,
    model_file_path,
    shape_groups,
    split_outputs,
)

Level = ort.GraphOptimizationLevel


def settings(parameters: dict[str, str] | None = None, default_threads: int = 1, **config) -> SessionSettings:
    """Settings from a model config as Triton hands it to the backend (JSON, string parameters)."""
    config["parameters"] = {key: {"string_value": value} for key, value in (parameters or {}).items()}
    return SessionSettings.from_model_config(config, default_threads=default_threads)


def save_graph(path: Path, nodes: list, inputs: list, outputs: list, initializers: list | None = None) -> Path:
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, initializer=initializers or [])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def gather_model(path: Path) -> Path:
    """``y[b] = data[b, index[b]]``: ONNX Runtime refuses an index out of range, whatever the shapes say."""
    return save_graph(
        path,
        [helper.make_node("GatherElements", ["data", "index"], ["y"], axis=1)],
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["batch", 4]),
         helper.make_tensor_value_info("index", TensorProto.INT64, ["batch", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])],
    )


class MaskedMax(torch.nn.Module):
    """``x [B, L, 3]``, ``mask [B, L]`` -> ``[B, 2]``: a two-input graph with a shared symbolic length."""

    def __init__(self) -> None:
        super().__init__()
        self.head = torch.nn.Linear(3, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head((x * mask.unsqueeze(-1).to(x.dtype)).amax(dim=1))


@pytest.fixture(scope="module")
def pooled_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("torch") / "pooled.onnx"
    torch.manual_seed(0)
    torch.onnx.export(
        MaskedMax().eval(), (torch.randn(2, 5, 3), torch.ones(2, 5, dtype=torch.bool)), str(path), dynamo=False,
        opset_version=17, input_names=["x", "mask"], output_names=["scores"],
        dynamic_axes={"x": {0: "batch", 1: "length"}, "mask": {0: "batch", 1: "length"}, "scores": {0: "batch"}},
    )
    return path


def as_triton_json(config: ModelConfig) -> dict:
    """The config as Triton passes it to ``initialize`` (``args["model_config"]``)."""
    return MessageToDict(config, preserving_proto_field_name=True)


def load(path: Path, config: ModelConfig) -> OrtModel:
    """What ``model.py`` does with a config and its file."""
    json_config = as_triton_json(config)
    return OrtModel(
        path,
        [TensorSpec.from_config(t) for t in json_config["input"]],
        [TensorSpec.from_config(t) for t in json_config["output"]],
        max_batch_size=config.max_batch_size,
        settings=SessionSettings.from_model_config(json_config, default_threads=1),
    )


def pooled_feeds(rng: np.random.Generator, batch: int, length: int) -> dict[str, np.ndarray]:
    return {"x": rng.normal(size=(batch, length, 3)).astype(np.float32), "mask": rng.random((batch, length)) < 0.8}


class CountingSession:
    """Wraps an ``InferenceSession`` to count ``run`` calls (one per group is the point of dynamic batching)."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self.session, self.runs = session, 0

    def run(self, *args, **kwargs):
        self.runs += 1
        return self.session.run(*args, **kwargs)


# --- parameters -------------------------------------------------------------------------------------------


def test_defaults_follow_the_native_backend_except_threads() -> None:
    s = settings(default_threads=1)
    assert (s.intra_op_threads, s.inter_op_threads) == (1, 0)
    assert s.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL and s.graph_level == Level.ORT_ENABLE_ALL
    options = s.session_options()
    assert options.intra_op_num_threads == 1 and options.enable_cpu_mem_arena and options.enable_mem_pattern


def test_native_parameters_become_session_and_run_options() -> None:
    s = settings({
        "intra_op_thread_count": "3", "inter_op_thread_count": "2", "execution_mode": "1", "enable_mem_arena": "on",
        "enable_mem_pattern": "False", "memory.enable_memory_arena_shrinkage": "cpu:0",
        "session.use_device_allocator_for_initializers": "1", "some_other_key": "ignored, as natively",
    })
    options = s.session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (3, 2)
    assert options.execution_mode == ort.ExecutionMode.ORT_PARALLEL
    assert options.enable_cpu_mem_arena and not options.enable_mem_pattern
    assert options.get_session_config_entry("session.use_device_allocator_for_initializers") == "1"
    assert s.run_options().get_run_config_entry("memory.enable_memory_arena_shrinkage") == "cpu:0"


def test_explicit_zero_threads_means_onnxruntime_default() -> None:
    assert settings({"intra_op_thread_count": "0"}, default_threads=1).session_options().intra_op_num_threads == 0


@pytest.mark.parametrize(
    ("level", "expected"),
    [(-1, Level.ORT_ENABLE_BASIC), (0, Level.ORT_ENABLE_ALL), (1, Level.ORT_ENABLE_EXTENDED), (2, Level.ORT_DISABLE_ALL)],
)
def test_graph_level_mapping(level: int, expected: ort.GraphOptimizationLevel) -> None:
    assert settings(optimization={"graph": {"level": level}}).session_options().graph_optimization_level == expected


@pytest.mark.parametrize(
    ("parameters", "needle"),
    [
        ({"execution_mode": "2"}, "'execution_mode' must be one of [0, 1]"),
        ({"intra_op_thread_count": "many"}, "'intra_op_thread_count' must be an integer"),
        ({"enable_mem_pattern": "maybe"}, "'enable_mem_pattern' must be true/false"),
        ({"cudnn_conv_algo_search": "3"}, "'cudnn_conv_algo_search' must be one of [0, 1, 2]"),
        ({"enable_mem_arena": "0", "memory.enable_memory_arena_shrinkage": "cpu:0"}, "needs the CPU memory arena"),
    ],
)
def test_bad_parameter_values_are_refused_naming_the_key(parameters: dict[str, str], needle: str) -> None:
    with pytest.raises(OrtLoadError) as info:
        settings(parameters)
    assert needle in str(info.value)


def test_cuda_options_from_parameters_and_accelerator() -> None:
    accelerators = {"gpu_execution_accelerator": [
        {"name": "cuda", "parameters": {"cudnn_conv_use_max_workspace": "0"}}, {"name": "tensorrt"},
    ]}
    s = settings(
        {"cudnn_conv_algo_search": "1", "arena_extend_strategy": "1", "gpu_mem_limit": "1024",
         "do_copy_in_default_stream": "0"},
        optimization={"execution_accelerators": accelerators},
    )
    assert s.cuda_options == {
        "cudnn_conv_use_max_workspace": "0", "cudnn_conv_algo_search": "HEURISTIC",
        "arena_extend_strategy": "kSameAsRequested", "gpu_mem_limit": "1024", "do_copy_in_default_stream": "0",
    }
    assert s.ignored_accelerators == ("tensorrt",)


def test_cuda_provider_only_on_gpu_instances_of_a_cuda_build() -> None:
    cuda_build = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert execution_providers("GPU", 1, {"gpu_mem_limit": "8"}, cuda_build) == [
        ("CUDAExecutionProvider", {"gpu_mem_limit": "8", "device_id": "1"}), "CPUExecutionProvider"]
    assert execution_providers("GPU", 0, {}, ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert execution_providers("CPU", 0, {}, cuda_build) == ["CPUExecutionProvider"]


# --- data types, files and config checks ---------------------------------------------------------------------


@pytest.mark.parametrize("triton_type", DATA_TYPES)
def test_data_type_map_agrees_with_onnxruntime(tmp_path: Path, triton_type: str) -> None:
    dtype = DATA_TYPES[triton_type].numpy
    onnx_type = helper.np_dtype_to_tensor_dtype(dtype)
    path = save_graph(tmp_path / "identity.onnx", [helper.make_node("Identity", ["a"], ["b"])],
                      [helper.make_tensor_value_info("a", onnx_type, ["batch"])],
                      [helper.make_tensor_value_info("b", onnx_type, ["batch"])])
    session = ort.InferenceSession(str(path))
    assert session.get_inputs()[0].type == DATA_TYPES[triton_type].onnx
    assert session.run(None, {"a": np.zeros(2, dtype)})[0].dtype == dtype
    assert config_type(dtype) == triton_type


def test_config_type_refuses_what_triton_cannot_carry_here() -> None:
    with pytest.raises(ValueError, match="no supported Triton data type"):
        config_type(np.dtype(object))


def test_model_file_defaults_and_folders(tmp_path: Path) -> None:
    assert model_file_path(tmp_path, "1", None) == tmp_path / "1" / "model.onnx"
    assert model_file_path(tmp_path, "1", "net.onnx") == tmp_path / "1" / "net.onnx"
    (tmp_path / "1" / "bundle").mkdir(parents=True)
    assert model_file_path(tmp_path, "1", "bundle") == tmp_path / "1" / "bundle" / "model.onnx"


def edited(config: ModelConfig, edit) -> ModelConfig:
    copy = ModelConfig()
    copy.CopyFrom(config)
    edit(copy)
    return copy


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda c: setattr(c.input[0], "name", "tokens"), "the config's input 'tokens' is not an input of the graph"),
        (lambda c: c.input.pop(), "graph input 'mask' is missing from the config's inputs"),
        (lambda c: setattr(c.input[1], "data_type", mc.TYPE_INT8),
         "input 'mask' is TYPE_INT8 in the config but tensor(bool)"),
        (lambda c: setattr(c.input[0], "data_type", mc.TYPE_STRING), "input 'x': data type TYPE_STRING is not supported"),
        (lambda c: c.input[0].dims.__setitem__(1, 5), "input 'x' has shape [-1, -1, 5]"),
        (lambda c: c.output[0].dims.__setitem__(0, -1), "output 'scores' has shape [-1, -1]"),
        (lambda c: setattr(c.output[0], "name", "logits"), "the config's output 'logits' is not an output of the graph"),
    ],
)
def test_config_that_disagrees_with_the_graph_fails_naming_file_and_tensor(pooled_onnx: Path, edit, needle: str) -> None:
    config = edited(onnx_model_config(pooled_onnx, "pooled", max_batch_size=8), edit)
    with pytest.raises(OrtLoadError) as info:
        load(pooled_onnx, config)
    assert str(info.value).startswith(f"{pooled_onnx}: ") and needle in str(info.value), str(info.value)


def test_batching_needs_a_variable_first_dim(tmp_path: Path) -> None:
    path = save_graph(tmp_path / "fixed.onnx", [helper.make_node("Identity", ["a"], ["b"])],
                      [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3])],
                      [helper.make_tensor_value_info("b", TensorProto.FLOAT, [2, 3])])
    config = onnx_model_config(path, "fixed", max_batch_size=0)
    config.max_batch_size = 4
    del config.input[0].dims[0]
    with pytest.raises(OrtLoadError, match="input 'a': max_batch_size > 0 needs a variable first"):
        load(path, config)


def test_unreadable_or_missing_files_fail_naming_the_file(tmp_path: Path, pooled_onnx: Path) -> None:
    config = onnx_model_config(pooled_onnx, "pooled", max_batch_size=8)
    (tmp_path / "garbage.onnx").write_bytes(b"not a model")
    with pytest.raises(OrtLoadError, match="garbage.onnx: onnxruntime cannot load it"):
        load(tmp_path / "garbage.onnx", config)
    with pytest.raises(OrtLoadError, match="absent.onnx: file not found"):
        load(tmp_path / "absent.onnx", config)


# --- dynamic batches --------------------------------------------------------------------------------------


def test_shape_groups_keep_arrival_order_and_ignore_the_batch_axis() -> None:
    def request(batch: int, length: int) -> dict[str, np.ndarray]:
        return {"x": np.zeros((batch, length, 3)), "mask": np.zeros((batch, length), bool)}

    requests = {0: request(1, 4), 1: request(3, 7), 2: request(2, 4), 5: request(1, 7), 6: request(1, 9)}
    assert shape_groups(requests) == [[0, 2], [1, 5], [6]]


def test_concat_and_split_round_trip() -> None:
    group = [{"a": np.full((n, 2), n, np.float32)} for n in (1, 3, 2)]
    merged = concat_feeds(group)
    assert merged["a"].shape == (6, 2)
    parts = split_outputs({"out": merged["a"] * 10}, [1, 3, 2])
    for feeds, part in zip(group, parts):
        np.testing.assert_array_equal(part["out"], feeds["a"] * 10)


def test_split_refuses_outputs_that_are_not_row_aligned() -> None:
    with pytest.raises(ValueError, match="output 'total' has shape \\[1\\], not 3 rows"):
        split_outputs({"total": np.zeros(1)}, [1, 2])


def test_one_run_per_shape_group_and_the_same_answers_as_alone(pooled_onnx: Path) -> None:
    model = load(pooled_onnx, onnx_model_config(pooled_onnx, "pooled", max_batch_size=8))
    rng = np.random.default_rng(0)
    requests = [pooled_feeds(rng, batch, length) for batch, length in [(1, 4), (2, 9), (3, 4), (1, 9), (2, 4)]]
    model.session = CountingSession(model.session)
    results = model.run_requests(requests)
    assert model.session.runs == 2
    reference = ort.InferenceSession(str(pooled_onnx))
    for feeds, result in zip(requests, results):
        np.testing.assert_allclose(result["scores"], reference.run(["scores"], feeds)[0], atol=1e-6)


def test_disagreeing_named_dims_are_refused_for_that_request_only(pooled_onnx: Path) -> None:
    model = load(pooled_onnx, onnx_model_config(pooled_onnx, "pooled", max_batch_size=8))
    rng = np.random.default_rng(1)
    bad = pooled_feeds(rng, 2, 5)
    bad["mask"] = bad["mask"][:, :3]
    good, error, also_good = model.run_requests([pooled_feeds(rng, 1, 5), bad, pooled_feeds(rng, 2, 5)])
    assert isinstance(error, InvalidInput) and str(error) == "mask: dim 1 ('length') is 3, but x has 'length' = 5"
    assert good["scores"].shape == (1, 2) and also_good["scores"].shape == (2, 2)


def test_a_request_the_graph_refuses_does_not_fail_its_group(tmp_path: Path) -> None:
    """Same shapes, one bad value: the batched run fails, so each request is rerun alone."""
    path = gather_model(tmp_path / "gather.onnx")
    model = load(path, onnx_model_config(path, "gather", max_batch_size=8))
    data = np.arange(8, dtype=np.float32).reshape(2, 4)
    requests = [{"data": data, "index": np.array([[i], [0]])} for i in (1, 9, 3)]
    first, error, last = model.run_requests(requests)
    assert isinstance(error, InvalidInput)
    assert str(error).startswith("inputs data [2, 4], index [2, 1] rejected by gather.onnx: ")
    assert "Out of range" in str(error)
    np.testing.assert_array_equal(first["y"], [[1], [4]])
    np.testing.assert_array_equal(last["y"], [[3], [4]])


def test_unbatched_models_run_each_request_alone(tmp_path: Path) -> None:
    path = gather_model(tmp_path / "gather.onnx")
    model = load(path, onnx_model_config(path, "gather", max_batch_size=0))
    model.session = CountingSession(model.session)
    requests = [{"data": np.ones((2, 4), np.float32), "index": np.zeros((2, 1), np.int64)} for _ in range(3)]
    assert all(result["y"].shape == (2, 1) for result in model.run_requests(requests))
    assert model.session.runs == 3


# --- the exporter -------------------------------------------------------------------------------------------


def test_config_from_a_torch_export(pooled_onnx: Path) -> None:
    config = onnx_model_config(pooled_onnx, "pooled", max_batch_size=16, parameters={"intra_op_thread_count": "2"})
    assert config.backend == "onnxruntime" and config.max_batch_size == 16
    assert [(t.name, mc.DataType.Name(t.data_type), list(t.dims)) for t in config.input] == [
        ("x", "TYPE_FP32", [-1, 3]), ("mask", "TYPE_BOOL", [-1])]
    assert [(t.name, mc.DataType.Name(t.data_type), list(t.dims)) for t in config.output] == [("scores", "TYPE_FP32", [2])]
    (group,) = config.instance_group
    assert group.kind == mc.ModelInstanceGroup.KIND_AUTO and group.count == 1
    assert config.HasField("dynamic_batching") and config.parameters["intra_op_thread_count"].string_value == "2"
    left_to_triton = onnx_model_config(pooled_onnx, "p", max_batch_size=4, instance_count=None)
    assert left_to_triton.instance_group[0].count == 0


def test_fixed_first_dim_is_refused_unless_batching_is_off(tmp_path: Path) -> None:
    path = save_graph(tmp_path / "fixed.onnx", [helper.make_node("Identity", ["a"], ["b"])],
                      [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3])],
                      [helper.make_tensor_value_info("b", TensorProto.FLOAT, [2, 3])])
    with pytest.raises(ValueError, match=r"'a' has shape \[2, 3\], but with max_batch_size > 0 its first dim must be"):
        onnx_model_config(path, "fixed", max_batch_size=8)
    unbatched = onnx_model_config(path, "fixed", max_batch_size=0)
    assert list(unbatched.input[0].dims) == [2, 3] and not unbatched.HasField("dynamic_batching")


def test_unsupported_tensor_type_is_refused_naming_it(tmp_path: Path) -> None:
    path = save_graph(tmp_path / "text.onnx", [helper.make_node("Identity", ["words"], ["same"])],
                      [helper.make_tensor_value_info("words", TensorProto.STRING, ["batch"])],
                      [helper.make_tensor_value_info("same", TensorProto.STRING, ["batch"])])
    with pytest.raises(ValueError, match="'words' has ONNX type STRING"):
        onnx_model_config(path, "text", max_batch_size=8)


def test_weights_listed_as_inputs_are_not_config_inputs(tmp_path: Path) -> None:
    weight = helper.make_tensor("w", TensorProto.FLOAT, [3], [1.0, 2.0, 3.0])
    path = save_graph(tmp_path / "old.onnx", [helper.make_node("Mul", ["a", "w"], ["b"])],
                      [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", 3]),
                       helper.make_tensor_value_info("w", TensorProto.FLOAT, [3])],
                      [helper.make_tensor_value_info("b", TensorProto.FLOAT, ["batch", 3])], [weight])
    config = onnx_model_config(path, "old", max_batch_size=8)
    assert [t.name for t in config.input] == ["a"]
    load(path, config)


def test_export_writes_a_folder_the_backend_loads(tmp_path: Path, pooled_onnx: Path) -> None:
    config = export_onnx_model(pooled_onnx, tmp_path / "repo", "pooled", max_batch_size=8, instance_count=2)
    model_dir = tmp_path / "repo" / "pooled"
    assert read_config(model_dir) == config and config.instance_group[0].count == 2
    model = load(model_dir / "1" / "model.onnx", config)
    result = model.run_requests([pooled_feeds(np.random.default_rng(2), 3, 6)])[0]
    assert result["scores"].shape == (3, 2)


def test_export_copies_external_weights(tmp_path: Path, pooled_onnx: Path) -> None:
    source = tmp_path / "big" / "net.onnx"
    source.parent.mkdir()
    onnx.save_model(onnx.load(str(pooled_onnx)), str(source), save_as_external_data=True, location="net.weights",
                    size_threshold=0)
    config = export_onnx_model(source, tmp_path / "repo", "big", max_batch_size=8)
    version_dir = tmp_path / "repo" / "big" / "1"
    assert (version_dir / "net.weights").is_file()
    model = load(version_dir / "model.onnx", config)
    feeds = pooled_feeds(np.random.default_rng(3), 2, 4)
    expected = ort.InferenceSession(str(pooled_onnx)).run(["scores"], feeds)[0]
    np.testing.assert_allclose(model.run_requests([feeds])[0]["scores"], expected, atol=1e-6)
