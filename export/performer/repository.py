"""Write the Performer pipeline into a Triton model repository from an export's work folder.

    performer_featurize/    backend: python        one card's raw history -> tokens [1, L, F], mask [1, L]
    performer/              backend: onnxruntime   tokens, mask -> fraud_probability [B, 1]
    performer_postprocess/  backend: python        fraud_probability -> probability, label
    performer_fraud/        platform: ensemble     the three steps as one call

One history per request (``max_batch_size: 0``): histories have their own
lengths, so requests are not batched together; the ONNX model still takes a
batch axis for callers that pad histories themselves.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tritonmm.server.models.fraud_preprocess.features import NUMERIC_COLUMNS, RAW_COLUMNS
from tritonmm.server.models.performer_featurize.history import SPEC_FILE, STATS_FILE, TokenizerStats

from ..ensemble import Step, build_ensemble
from ..model_config import VERSION, model_config, tensor, write_config
from ..onnx_model import export_onnx_model
from ..python_model import MODEL_SOURCES, export_python_model
from .onnx_export import INPUTS, OUTPUT

PIPELINE = "performer_fraud"
FEATURIZE, MODEL, POSTPROCESS = "performer_featurize", "performer", "performer_postprocess"
DEFAULT_MAX_HISTORY = 16_384


def write_performer_repository(repository: Path, work_dir: Path, *, onnx_file: Path, threshold: float = 0.5,
                               max_history: int = DEFAULT_MAX_HISTORY) -> None:
    """The four models of the Performer pipeline (existing ones are replaced)."""
    for name in (FEATURIZE, MODEL, POSTPROCESS, PIPELINE):
        shutil.rmtree(repository / name, ignore_errors=True)
    tokens_dim = len(TokenizerStats.load(work_dir / STATS_FILE).token_names)
    raw = [tensor(c, "TYPE_FP32" if c in NUMERIC_COLUMNS else "TYPE_STRING", [-1]) for c in RAW_COLUMNS]
    tokens_name, mask_name = INPUTS
    featurize = model_config(
        name=FEATURIZE, backend="python", max_batch_size=0, inputs=raw,
        outputs=[tensor(tokens_name, "TYPE_FP32", [1, -1, tokens_dim]), tensor(mask_name, "TYPE_BOOL", [1, -1])],
        parameters={"max_history": str(max_history)},
    )
    featurize_dir = export_python_model(featurize, repository, FEATURIZE, ("model.py", "history.py"))
    shutil.copyfile(MODEL_SOURCES / "fraud_preprocess" / "features.py", featurize_dir / VERSION / "features.py")
    for name in (SPEC_FILE, STATS_FILE):
        shutil.copyfile(work_dir / name, featurize_dir / VERSION / name)
    performer = export_onnx_model(onnx_file, repository, MODEL, max_batch_size=0)
    answer = [tensor("probability", "TYPE_FP32", [-1, 1]), tensor("label", "TYPE_STRING", [-1, 1])]
    postprocess = model_config(
        name=POSTPROCESS, backend="python", max_batch_size=0, inputs=[tensor(OUTPUT, "TYPE_FP32", [-1, 1])],
        outputs=answer, parameters={"threshold": repr(float(threshold))},
    )
    export_python_model(postprocess, repository, "fraud_postprocess")
    ensemble = build_ensemble(
        PIPELINE,
        [
            Step(featurize, {c: c for c in RAW_COLUMNS}, {tokens_name: tokens_name, mask_name: mask_name}),
            Step(performer, {tokens_name: tokens_name, mask_name: mask_name}, {OUTPUT: OUTPUT}),
            Step(postprocess, {OUTPUT: OUTPUT}, {"probability": "probability", "label": "label"}),
        ],
        inputs=raw, outputs=answer, max_batch_size=0,
    )
    write_config(ensemble, repository)
