"""Build and write ``config.pbtxt`` files from Triton's own ``ModelConfig`` protobuf.

Using the protobuf classes that ship with ``tritonclient`` (rather than string
templates) means every generated file is valid model-config text by
construction, and field names are checked when the config is built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

CONFIG_FILE = "config.pbtxt"
VERSION = "1"
"""Version folder every exporter writes into."""

ModelConfig = mc.ModelConfig
DataType = str
"""A ``TYPE_*`` name such as ``"TYPE_FP32"``."""


def tensor(name: str, data_type: DataType, dims: Sequence[int]) -> dict:
    """One input/output description, as keyword arguments for ``ModelInput``/``ModelOutput``."""
    return {"name": name, "data_type": mc.DataType.Value(data_type), "dims": list(dims)}


def model_config(
    *,
    name: str,
    backend: str = "",
    platform: str = "",
    max_batch_size: int,
    inputs: Sequence[dict],
    outputs: Sequence[dict],
    parameters: Mapping[str, str] | None = None,
    instance_kind: str = "KIND_CPU",
    instance_count: int | None = 1,
    dynamic_batching: bool = True,
) -> ModelConfig:
    """A model config; ``instance_count=None`` leaves the count to Triton (e.g. one per GPU for ``KIND_AUTO``)."""
    config = ModelConfig(name=name, backend=backend, platform=platform, max_batch_size=max_batch_size)
    config.input.extend(mc.ModelInput(**t) for t in inputs)
    config.output.extend(mc.ModelOutput(**t) for t in outputs)
    for key, value in sorted((parameters or {}).items()):
        config.parameters[key].string_value = value
    if platform != "ensemble":
        group = config.instance_group.add(kind=mc.ModelInstanceGroup.Kind.Value(instance_kind))
        if instance_count is not None:
            group.count = instance_count
        if dynamic_batching and max_batch_size > 0:
            config.dynamic_batching.SetInParent()
    return config


def to_text(config: ModelConfig) -> str:
    """Protobuf text format, as Triton reads it."""
    return text_format.MessageToString(config)


def write_config(config: ModelConfig, repository: Path) -> Path:
    """Write ``<repository>/<name>/config.pbtxt`` and create the version folder; return the model folder."""
    model_dir = repository / config.name
    (model_dir / VERSION).mkdir(parents=True, exist_ok=True)
    (model_dir / CONFIG_FILE).write_text(to_text(config), encoding="utf-8")
    return model_dir


def read_config(model_dir: Path) -> ModelConfig:
    """Parse a model folder's ``config.pbtxt``."""
    return text_format.Parse((model_dir / CONFIG_FILE).read_text(encoding="utf-8"), ModelConfig())


def max_batch_size_for(memory_budget_bytes: int, bytes_per_row: int, *, cap: int = 1 << 20) -> int:
    """Largest power of two whose batch fits the budget (at least 1, at most ``cap``)."""
    rows = max(1, memory_budget_bytes // max(1, bytes_per_row))
    return min(cap, 1 << (rows.bit_length() - 1))
