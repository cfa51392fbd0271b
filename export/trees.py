"""Tree-model exporter: an XGBoost / LightGBM / Treelite file -> a ``backend: "fil"`` model folder.

The model is opened with Treelite (what the FIL backend itself uses) to read
its feature and class counts, so the config's tensor shapes always match the
file, and an unreadable file fails here rather than at server start.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tritonmm.server.backends.fil.forest import MODEL_TYPES, FilParameters, Forest

from .model_config import VERSION, ModelConfig, max_batch_size_for, model_config, tensor, write_config

FIL_INPUT, FIL_OUTPUT = "input__0", "output__0"
_SUFFIX_TYPES = {".json": "xgboost_json", ".ubj": "xgboost_ubj", ".model": "xgboost", ".txt": "lightgbm", ".tl": "treelite_checkpoint"}
DEFAULT_MEMORY_BUDGET = 16 << 20
"""Bytes one FIL batch may use for its input and output tensors."""


def guess_model_type(path: Path) -> str:
    """FIL ``model_type`` from the file suffix (``.json``, ``.ubj``, ``.model``, ``.txt``, ``.tl``)."""
    try:
        return _SUFFIX_TYPES[path.suffix.lower()]
    except KeyError:
        raise ValueError(f"{path}: cannot tell the model type from the suffix; pass model_type explicitly") from None


def export_tree_model(
    source: Path,
    repository: Path,
    name: str,
    *,
    model_type: str | None = None,
    predict_proba: bool = True,
    classifier: bool = True,
    threshold: float = 0.5,
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET,
    instance_count: int | None = 1,
) -> ModelConfig:
    """Copy ``source`` into ``<repository>/<name>/1/`` under FIL's default name and write its config.

    ``classifier=False`` (FIL's ``output_class``) serves regressors' raw scores.
    """
    model_type = model_type or guess_model_type(source)
    params = FilParameters(model_type=model_type, predict_proba=predict_proba, output_class=classifier, threshold=threshold)
    forest = Forest(source, params)  # raises ForestLoadError naming the file if it cannot be read
    bytes_per_row = 4 * (forest.num_features + forest.output_width) * 2  # input + output, request and response copies
    config = model_config(
        name=name,
        backend="fil",
        max_batch_size=max_batch_size_for(memory_budget_bytes, bytes_per_row),
        inputs=[tensor(FIL_INPUT, "TYPE_FP32", [forest.num_features])],
        outputs=[tensor(FIL_OUTPUT, "TYPE_FP32", [forest.output_width])],
        parameters={
            "model_type": model_type,
            "predict_proba": str(predict_proba).lower(),
            "output_class": str(classifier).lower(),
            "threshold": repr(float(threshold)),
            "storage_type": "AUTO",
        },
        instance_kind="KIND_AUTO",
        instance_count=instance_count,
    )
    model_dir = write_config(config, repository)
    shutil.copyfile(source, model_dir / VERSION / MODEL_TYPES[model_type])
    return config
