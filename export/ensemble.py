"""Build an ensemble config from steps, checking that tensors line up between them.

Triton only discovers a miswired ensemble when it loads it; checking here
reports the step and tensor at export time, with both sides' type and shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tritonclient.grpc import model_config_pb2 as mc

from .model_config import ModelConfig


class EnsembleWiringError(ValueError):
    """An ensemble step consumes a tensor that nothing produces, or with the wrong type/shape."""


@dataclass(frozen=True)
class Step:
    """One model in the pipeline. Maps are ``{model tensor: ensemble tensor}``."""

    model: ModelConfig
    input_map: Mapping[str, str]
    output_map: Mapping[str, str] = field(default_factory=dict)


def _signature(t: mc.ModelInput | mc.ModelOutput) -> tuple[str, tuple[int, ...]]:
    return mc.DataType.Name(t.data_type), tuple(t.dims)


def _compatible(produced: tuple[int, ...], consumed: tuple[int, ...]) -> bool:
    return len(produced) == len(consumed) and all(p == c or -1 in (p, c) for p, c in zip(produced, consumed))


def build_ensemble(
    name: str,
    steps: Sequence[Step],
    *,
    inputs: Sequence[dict],
    outputs: Sequence[dict],
    max_batch_size: int,
) -> ModelConfig:
    """The ``platform: "ensemble"`` config running ``steps`` in order; raises :class:`EnsembleWiringError`."""
    config = ModelConfig(name=name, platform="ensemble", max_batch_size=max_batch_size)
    config.input.extend(mc.ModelInput(**t) for t in inputs)
    config.output.extend(mc.ModelOutput(**t) for t in outputs)
    available = {t.name: (_signature(t), "ensemble input") for t in config.input}
    for step in steps:
        model = step.model
        if model.max_batch_size < max_batch_size:
            raise EnsembleWiringError(
                f"step {model.name!r}: max_batch_size {model.max_batch_size} is below the ensemble's {max_batch_size}"
            )
        declared_inputs = {t.name: t for t in model.input}
        unmapped = set(declared_inputs) - set(step.input_map)
        if unmapped:
            raise EnsembleWiringError(f"step {model.name!r}: inputs {sorted(unmapped)} are not mapped")
        for model_tensor, ensemble_tensor in step.input_map.items():
            if model_tensor not in declared_inputs:
                raise EnsembleWiringError(f"step {model.name!r} has no input {model_tensor!r}")
            if ensemble_tensor not in available:
                raise EnsembleWiringError(
                    f"step {model.name!r}: input {model_tensor!r} reads {ensemble_tensor!r}, which no earlier step produces"
                )
            (want_type, want_dims), (have, source) = _signature(declared_inputs[model_tensor]), available[ensemble_tensor]
            if have[0] != want_type or not _compatible(have[1], want_dims):
                raise EnsembleWiringError(
                    f"step {model.name!r}: input {model_tensor!r} expects {want_type} {list(want_dims)} but "
                    f"{ensemble_tensor!r} from {source} is {have[0]} {list(have[1])}"
                )
        declared_outputs = {t.name: t for t in model.output}
        for model_tensor, ensemble_tensor in step.output_map.items():
            if model_tensor not in declared_outputs:
                raise EnsembleWiringError(f"step {model.name!r} has no output {model_tensor!r}")
            available[ensemble_tensor] = (_signature(declared_outputs[model_tensor]), f"step {model.name!r}")
        entry = config.ensemble_scheduling.step.add(model_name=model.name, model_version=-1)
        entry.input_map.update(step.input_map)
        entry.output_map.update(step.output_map)
    for out in config.output:
        if out.name not in available:
            raise EnsembleWiringError(f"ensemble output {out.name!r} is produced by no step")
        have, source = available[out.name]
        if have[0] != _signature(out)[0] or not _compatible(have[1], _signature(out)[1]):
            raise EnsembleWiringError(
                f"ensemble output {out.name!r} is declared {_signature(out)[0]} {list(out.dims)} but {source} gives "
                f"{have[0]} {list(have[1])}"
            )
    return config
