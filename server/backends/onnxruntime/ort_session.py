"""ONNX Runtime sessions with the config contract of NVIDIA's native ``onnxruntime`` backend (release 24.10).

Pure Python + numpy + onnxruntime, no Triton types, so ``model.py`` stays a
thin adapter and everything here is unit-testable. The Python backend stub
appends the backend folder itself to ``sys.path``, after site-packages (seen
in a served stub: ``[..., site-packages, <backends>/onnxruntime,
<backends>/python]``), so ``import onnxruntime`` is the real package; this
module is still not called ``onnxruntime``, and the folder has no
``__init__.py``, so that nothing here could shadow it should that order change.

The native backend's config contract (checked against ``onnxruntime_backend``
r24.10, ``src/onnxruntime.cc``) and what it does here:

* ``intra_op_thread_count``: ORT intra-op threads, ``0`` = ORT's default (all
  cores). **Unset, it is ``OMP_NUM_THREADS``** (the launcher sets 1 per
  instance) instead of all cores: see ``SessionSettings.from_model_config``.
* ``inter_op_thread_count``: inter-op threads (parallel mode only); ``0`` or
  unset = ORT's default.
* ``execution_mode``: ``0`` sequential (default), ``1`` parallel; other values
  are refused at load.
* ``enable_mem_arena``, ``enable_mem_pattern``: CPU memory arena / memory
  pattern on or off (``1/0``, ``true/false``, ``on/off``); unset = ORT's default.
* ``memory.enable_memory_arena_shrinkage`` (a run option, e.g. ``"cpu:0"``) and
  ``session.use_device_allocator_for_initializers`` (a session entry): passed
  through.
* ``cudnn_conv_algo_search`` (0/1/2), ``arena_extend_strategy`` (0/1),
  ``gpu_mem_limit``, ``do_copy_in_default_stream`` and the parameters of a
  ``gpu_execution_accelerator { name: "cuda" }``: CUDA execution provider
  options, mapped to ORT's names as natively; used on GPU instances only.
* ``optimization { graph { level } }``: ``-1`` basic, ``1`` extended, ``2`` all
  disabled; anything else (``0``, unset) enables all.
* ``default_model_filename``: the file in the version folder (default
  ``model.onnx``; a folder there means ``<folder>/model.onnx``).

Other keys are ignored, as natively. Accelerators other than ``cuda``
(``tensorrt``, ``openvino``) are not in this onnxruntime build: they are
listed in ``SessionSettings.ignored_accelerators`` (``model.py`` logs a
warning) and the model runs on the CUDA or CPU provider instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

DEFAULT_MODEL_FILENAME = "model.onnx"
CUDA_PROVIDER, CPU_PROVIDER = "CUDAExecutionProvider", "CPUExecutionProvider"


class DataType(NamedTuple):
    """How one Triton data type appears to numpy and in ONNX Runtime's ``NodeArg.type``."""

    numpy: np.dtype
    onnx: str


DATA_TYPES: dict[str, DataType] = {
    "TYPE_FP32": DataType(np.dtype(np.float32), "tensor(float)"),
    "TYPE_FP16": DataType(np.dtype(np.float16), "tensor(float16)"),
    "TYPE_FP64": DataType(np.dtype(np.float64), "tensor(double)"),
    "TYPE_INT64": DataType(np.dtype(np.int64), "tensor(int64)"),
    "TYPE_INT32": DataType(np.dtype(np.int32), "tensor(int32)"),
    "TYPE_INT8": DataType(np.dtype(np.int8), "tensor(int8)"),
    "TYPE_UINT8": DataType(np.dtype(np.uint8), "tensor(uint8)"),
    "TYPE_BOOL": DataType(np.dtype(np.bool_), "tensor(bool)"),
}
"""The Triton data types this backend serves."""

GRAPH_LEVELS: dict[int, ort.GraphOptimizationLevel] = {
    -1: ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    1: ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    2: ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
}
"""``optimization.graph.level`` as the native backend maps it; any other level enables all optimizations."""

EXECUTION_MODES = (ort.ExecutionMode.ORT_SEQUENTIAL, ort.ExecutionMode.ORT_PARALLEL)
CUDNN_CONV_ALGO_SEARCH = ("EXHAUSTIVE", "HEURISTIC", "DEFAULT")
ARENA_EXTEND_STRATEGY = ("kNextPowerOfTwo", "kSameAsRequested")
PASSED_THROUGH_CUDA_OPTIONS = ("gpu_mem_limit", "do_copy_in_default_stream")
RUN_CONFIG_KEYS = ("memory.enable_memory_arena_shrinkage",)
SESSION_CONFIG_KEYS = ("session.use_device_allocator_for_initializers",)

ORT_ERRORS: tuple[type[Exception], ...] = (
    ort_state.Fail,
    ort_state.InvalidArgument,
    ort_state.RuntimeException,
    ort_state.NotImplemented,
    ort_state.InvalidGraph,
    ort_state.EPFail,
    ort_state.EngineError,
)
"""What ``InferenceSession.run`` raises when the graph rejects its inputs."""

Feeds = Mapping[str, np.ndarray]
Outputs = dict[str, np.ndarray]
GraphDim = int | str | None
"""A dim as ONNX Runtime reports it: fixed (int), symbolic (its name) or unknown (None)."""


class OrtLoadError(ValueError):
    """The model file, its config or its parameters cannot be used; the message says which and why."""


class InvalidInput(ValueError):
    """A request the graph cannot run; the message names the input."""


def config_type(dtype: np.dtype) -> str:
    """The Triton ``TYPE_*`` for a numpy dtype (``ValueError`` when this backend cannot serve it)."""
    for name, data_type in DATA_TYPES.items():
        if data_type.numpy == dtype:
            return name
    raise ValueError(f"no supported Triton data type for {dtype} (supported: {', '.join(DATA_TYPES)})")


# --- parameters -------------------------------------------------------------------------------------


def _int(parameters: Mapping[str, str], key: str, default: int) -> int:
    if key not in parameters:
        return default
    try:
        return int(parameters[key])
    except ValueError:
        raise OrtLoadError(f"parameter {key!r} must be an integer, got {parameters[key]!r}") from None


def _bool(parameters: Mapping[str, str], key: str) -> bool | None:
    """The native backend's ``ParseBoolValue`` (``true/on/1``, ``false/off/0``); None when unset."""
    if key not in parameters:
        return None
    lowered = parameters[key].strip().lower()
    if lowered in ("true", "on", "1"):
        return True
    if lowered in ("false", "off", "0"):
        return False
    raise OrtLoadError(f"parameter {key!r} must be true/false, on/off or 1/0, got {parameters[key]!r}")


def _index(parameters: Mapping[str, str], key: str, choices: Sequence[object]) -> int | None:
    """A parameter given as an index into ``choices`` (how the native backend spells enums); None when unset."""
    if key not in parameters:
        return None
    index = _int(parameters, key, 0)
    if not 0 <= index < len(choices):
        raise OrtLoadError(f"parameter {key!r} must be one of {list(range(len(choices)))}, got {parameters[key]!r}")
    return index


def _cuda_options(parameters: Mapping[str, str], accelerator: Mapping[str, str]) -> dict[str, str]:
    """CUDA provider options: the ``cuda`` accelerator's parameters, then the (deprecated) top-level keys."""
    options = dict(accelerator)
    enums = (("cudnn_conv_algo_search", CUDNN_CONV_ALGO_SEARCH), ("arena_extend_strategy", ARENA_EXTEND_STRATEGY))
    for key, choices in enums:
        index = _index(parameters, key, choices)
        if index is not None:
            options[key] = choices[index]
    options.update({key: parameters[key] for key in PASSED_THROUGH_CUDA_OPTIONS if key in parameters})
    return options


def _accelerators(config: Mapping[str, Any]) -> tuple[dict[str, str], tuple[str, ...]]:
    """The ``cuda`` accelerator's parameters, and the names of the accelerators this build cannot apply."""
    accelerators = config.get("optimization", {}).get("execution_accelerators", {})
    cuda: dict[str, str] = {}
    ignored: list[str] = []
    for kind in ("gpu_execution_accelerator", "cpu_execution_accelerator"):
        for accelerator in accelerators.get(kind, []):
            if kind == "gpu_execution_accelerator" and accelerator["name"] == "cuda":
                cuda.update(accelerator.get("parameters", {}))
            else:
                ignored.append(accelerator["name"])
    return cuda, tuple(ignored)


@dataclass(frozen=True)
class SessionSettings:
    """The session and run options a native-backend config asks for."""

    intra_op_threads: int = 0
    inter_op_threads: int = 0
    execution_mode: ort.ExecutionMode = ort.ExecutionMode.ORT_SEQUENTIAL
    graph_level: ort.GraphOptimizationLevel = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    mem_arena: bool | None = None
    mem_pattern: bool | None = None
    session_entries: Mapping[str, str] = field(default_factory=dict)
    run_entries: Mapping[str, str] = field(default_factory=dict)
    cuda_options: Mapping[str, str] = field(default_factory=dict)
    ignored_accelerators: tuple[str, ...] = ()

    @classmethod
    def from_model_config(cls, config: Mapping[str, Any], *, default_threads: int) -> SessionSettings:
        """Parse the model config Triton hands the backend (JSON); ``default_threads`` replaces an unset intra-op count.

        ``default_threads`` exists because the native default (one thread per
        core, per instance) oversubscribes small hosts where several instances
        and models share the cores; ``model.py`` passes ``OMP_NUM_THREADS``.
        """
        parameters = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        cuda, ignored = _accelerators(config)
        level = int(config.get("optimization", {}).get("graph", {}).get("level", 0))
        settings = cls(
            intra_op_threads=_int(parameters, "intra_op_thread_count", default_threads),
            inter_op_threads=_int(parameters, "inter_op_thread_count", 0),
            execution_mode=EXECUTION_MODES[_index(parameters, "execution_mode", EXECUTION_MODES) or 0],
            graph_level=GRAPH_LEVELS.get(level, ort.GraphOptimizationLevel.ORT_ENABLE_ALL),
            mem_arena=_bool(parameters, "enable_mem_arena"),
            mem_pattern=_bool(parameters, "enable_mem_pattern"),
            session_entries={key: parameters[key] for key in SESSION_CONFIG_KEYS if key in parameters},
            run_entries={key: parameters[key] for key in RUN_CONFIG_KEYS if key in parameters},
            cuda_options=_cuda_options(parameters, cuda),
            ignored_accelerators=ignored,
        )
        settings._check_arena()
        return settings

    def _check_arena(self) -> None:
        """Refuse at load what ONNX Runtime would refuse on every request: shrinking a CPU arena that is disabled."""
        shrinkage = self.run_entries.get(RUN_CONFIG_KEYS[0], "")
        if self.mem_arena is False and "cpu" in shrinkage:
            raise OrtLoadError(f"parameter {RUN_CONFIG_KEYS[0]!r} = {shrinkage!r} needs the CPU memory arena, "
                               f"but 'enable_mem_arena' turns it off")

    def session_options(self) -> ort.SessionOptions:
        """ORT session options; counts of 0 (or less) leave ORT's own default, as natively."""
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(self.intra_op_threads, 0)
        options.inter_op_num_threads = max(self.inter_op_threads, 0)
        options.execution_mode = self.execution_mode
        options.graph_optimization_level = self.graph_level
        if self.mem_arena is not None:
            options.enable_cpu_mem_arena = self.mem_arena
        if self.mem_pattern is not None:
            options.enable_mem_pattern = self.mem_pattern
        for key, value in self.session_entries.items():
            options.add_session_config_entry(key, value)
        return options

    def run_options(self) -> ort.RunOptions:
        options = ort.RunOptions()
        for key, value in self.run_entries.items():
            options.add_run_config_entry(key, value)
        return options


def execution_providers(
    instance_kind: str, device_id: int, cuda_options: Mapping[str, str], available: Sequence[str]
) -> list[str | tuple[str, dict[str, str]]]:
    """CUDA first on a GPU instance when this onnxruntime build has it (CPU for what CUDA cannot run), else CPU."""
    if instance_kind == "GPU" and CUDA_PROVIDER in available:
        return [(CUDA_PROVIDER, {**cuda_options, "device_id": str(device_id)}), CPU_PROVIDER]
    return [CPU_PROVIDER]


# --- tensors and the graph ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorSpec:
    """One config input/output: name, ``TYPE_*`` and dims without the batch axis (``-1`` = variable)."""

    name: str
    data_type: str
    dims: tuple[int, ...]

    @classmethod
    def from_config(cls, tensor: Mapping[str, Any]) -> TensorSpec:
        """From Triton's JSON config; a ``reshape`` is what the model sees, so it is what gets checked."""
        dims = tensor.get("reshape", {}).get("shape", tensor["dims"])
        return cls(tensor["name"], tensor["data_type"], tuple(int(d) for d in dims))


def model_file_path(model_dir: Path, version: str, filename: str | None) -> Path:
    """``<model>/<version>/<default_model_filename or model.onnx>``; a folder there holds ``model.onnx``."""
    path = model_dir / version / (filename or DEFAULT_MODEL_FILENAME)
    return path / DEFAULT_MODEL_FILENAME if path.is_dir() else path


def _show(shape: Sequence[GraphDim]) -> str:
    return "[" + ", ".join("?" if dim is None else str(dim) for dim in shape) + "]"


def _dims_match(graph_shape: Sequence[GraphDim], config_shape: Sequence[int], exact: bool) -> bool:
    """The native ``CompareDimsSupported``: a variable graph dim accepts any config dim, unless ``exact`` (outputs)."""
    if len(graph_shape) != len(config_shape):
        return False
    graph_dims = [dim if isinstance(dim, int) else -1 for dim in graph_shape]
    return all(g == c or (g == -1 and not exact) for g, c in zip(graph_dims, config_shape))


def check_tensor(model_file: Path, kind: str, spec: TensorSpec, arg: Any, *, batched: bool) -> None:
    """Refuse a config tensor that does not match the graph's ``NodeArg`` (type, rank, fixed dims)."""
    if spec.data_type not in DATA_TYPES:
        raise OrtLoadError(f"{model_file}: {kind} '{spec.name}': data type {spec.data_type} is not supported "
                           f"(supported: {', '.join(DATA_TYPES)})")
    if DATA_TYPES[spec.data_type].onnx != arg.type:
        raise OrtLoadError(f"{model_file}: {kind} '{spec.name}' is {spec.data_type} in the config "
                           f"but {arg.type} in the graph")
    graph_shape: list[GraphDim] = list(arg.shape)
    if batched and (not graph_shape or isinstance(graph_shape[0], int)):
        raise OrtLoadError(f"{model_file}: {kind} '{spec.name}': max_batch_size > 0 needs a variable first (batch) "
                           f"dim, but the graph's shape is {_show(graph_shape)}")
    config_shape = [-1, *spec.dims] if batched else list(spec.dims)
    if not _dims_match(graph_shape, config_shape, exact=kind == "output"):
        raise OrtLoadError(f"{model_file}: {kind} '{spec.name}' has shape {_show(config_shape)} with the config's "
                           f"dims{' and batch axis' if batched else ''}, but the graph's shape is {_show(graph_shape)}")


def check_io(
    model_file: Path, session: Any, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], *, batched: bool
) -> None:
    """The config's inputs must be exactly the graph's, and its outputs some of the graph's, each matching."""
    for kind, specs, args in (("input", inputs, session.get_inputs()), ("output", outputs, session.get_outputs())):
        graph = {arg.name: arg for arg in args}
        for spec in specs:
            if spec.name not in graph:
                raise OrtLoadError(f"{model_file}: the config's {kind} '{spec.name}' is not an {kind} of the graph "
                                   f"(graph {kind}s: {', '.join(repr(name) for name in graph)})")
            check_tensor(model_file, kind, spec, graph[spec.name], batched=batched)
    missing = [arg.name for arg in session.get_inputs() if arg.name not in {spec.name for spec in inputs}]
    if missing:
        raise OrtLoadError(f"{model_file}: graph input '{missing[0]}' is missing from the config's inputs")


# --- dynamic batches -----------------------------------------------------------------------------------


def shape_groups(requests: Mapping[int, Feeds]) -> list[list[int]]:
    """Request indices grouped by every input's non-batch shape, in arrival order: each group is one run."""
    groups: dict[tuple, list[int]] = {}
    for index, feeds in requests.items():
        key = tuple((name, array.shape[1:]) for name, array in sorted(feeds.items()))
        groups.setdefault(key, []).append(index)
    return list(groups.values())


def rows(feeds: Feeds) -> int:
    """A request's batch size (Triton has checked that every input agrees)."""
    return len(next(iter(feeds.values())))


def concat_feeds(group: Sequence[Feeds]) -> dict[str, np.ndarray]:
    """One feed dict holding every request's rows, in order."""
    return {name: np.concatenate([feeds[name] for feeds in group]) for name in group[0]}


def split_outputs(outputs: Outputs, sizes: Sequence[int]) -> list[Outputs]:
    """Give each request its rows of every output back; ``ValueError`` if an output is not row-aligned."""
    total = sum(sizes)
    for name, value in outputs.items():
        if value.ndim == 0 or len(value) != total:
            raise ValueError(f"output '{name}' has shape {list(value.shape)}, not {total} rows")
    bounds = np.cumsum(sizes)[:-1]
    parts = {name: np.split(value, bounds) for name, value in outputs.items()}
    return [{name: parts[name][i] for name in outputs} for i in range(len(sizes))]


def _describe(feeds: Feeds) -> str:
    return ", ".join(f"{name} {list(array.shape)}" for name, array in feeds.items())


class OrtModel:
    """An ONNX Runtime session checked against a Triton config, running each dynamic batch by shape group."""

    def __init__(
        self,
        model_file: Path,
        inputs: Sequence[TensorSpec],
        outputs: Sequence[TensorSpec],
        *,
        max_batch_size: int,
        settings: SessionSettings,
        providers: Sequence[str | tuple[str, dict[str, str]]] = (CPU_PROVIDER,),
    ) -> None:
        if not model_file.is_file():
            raise OrtLoadError(f"{model_file}: file not found")
        try:
            self.session = ort.InferenceSession(str(model_file), settings.session_options(), providers=list(providers))
        except ORT_ERRORS + (ort_state.InvalidProtobuf, ort_state.NoSuchFile) as exc:
            raise OrtLoadError(f"{model_file}: onnxruntime cannot load it: {exc}") from exc
        self.model_file = model_file
        self.batched = max_batch_size > 0
        check_io(model_file, self.session, inputs, outputs, batched=self.batched)
        self.output_names = [spec.name for spec in outputs]
        self.run_options = settings.run_options()
        self._named_axes = [
            (arg.name, axis, dim)
            for arg in self.session.get_inputs()
            for axis, dim in enumerate(arg.shape)
            if isinstance(dim, str)
        ]

    def check_named_dims(self, feeds: Feeds) -> None:
        """Name the input whose size for a symbolic graph dim disagrees with another input's.

        Triton has checked ranks and fixed dims against the config (and the
        config was checked against the graph at load), but in the config
        every variable axis is just ``-1``: only the graph says which must
        agree, e.g. ``length`` in ``x [batch, length, 4]`` and ``mask [batch, length]``.
        """
        sizes: dict[str, tuple[str, int]] = {}
        for name, axis, dim in self._named_axes:
            size = feeds[name].shape[axis]
            first, first_size = sizes.setdefault(dim, (name, size))
            if size != first_size:
                raise InvalidInput(f"{name}: dim {axis} ('{dim}') is {size}, but {first} has '{dim}' = {first_size}")

    def run(self, feeds: Feeds) -> Outputs:
        """One ``session.run``; the graph's refusal becomes ``InvalidInput`` naming the inputs and their shapes."""
        try:
            values = self.session.run(self.output_names, dict(feeds), self.run_options)
        except ORT_ERRORS as exc:
            raise InvalidInput(f"inputs {_describe(feeds)} rejected by {self.model_file.name}: {exc}") from exc
        return dict(zip(self.output_names, values))

    def run_requests(self, requests: Sequence[Feeds]) -> list[Outputs | InvalidInput]:
        """Each request's outputs or its error, in order: one ``session.run`` per group of equal non-batch shapes."""
        results: dict[int, Outputs | InvalidInput] = {}
        runnable: dict[int, Feeds] = {}
        for index, feeds in enumerate(requests):
            try:
                self.check_named_dims(feeds)
                runnable[index] = feeds
            except InvalidInput as exc:
                results[index] = exc
        groups = shape_groups(runnable) if self.batched else [[index] for index in runnable]
        for group in groups:
            results.update(zip(group, self._run_group([runnable[index] for index in group])))
        return [results[index] for index in range(len(requests))]

    def _run_group(self, group: Sequence[Feeds]) -> list[Outputs | InvalidInput]:
        """Run a group as one batch; if that fails, run its requests one by one so only a bad one gets the error."""
        if len(group) > 1:
            try:
                return split_outputs(self.run(concat_feeds(group)), [rows(feeds) for feeds in group])
            except ValueError:
                pass
        return [self._run_alone(feeds) for feeds in group]

    def _run_alone(self, feeds: Feeds) -> Outputs | InvalidInput:
        try:
            return self.run(feeds)
        except InvalidInput as exc:
            return exc
