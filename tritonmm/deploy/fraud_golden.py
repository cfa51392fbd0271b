"""The default golden checks of a ``fraud`` archive, computed from the archive itself.

The expected outputs are recomputed outside Triton from the files the archive carries —
the fitted feature spec, the XGBoost model read by Treelite (the library NVIDIA's FIL
backend imports models with) and the postprocess threshold — for fixed synthetic rows.
So a check fails when the serving stack computes something else than the model that was
packaged: a wrong archive under a key, a backend or image that scores differently, a
preprocessing mismatch.

The rows are the first of the sample scored clearly above and clearly below the label
threshold, so both labels are checked; a row within a few tolerances of the threshold
could flip its label on a legitimate rounding difference and make a flaky gate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tritonmm.export.fraud import POSTPROCESS, PREPROCESS, SPEC_FILE, XGBOOST, raw_columns
from tritonmm.export.model_config import VERSION, read_config
from tritonmm.server.backends.fil.forest import MODEL_TYPES, FilParameters, Forest
from tritonmm.server.mme.archive_extract import Manifest
from tritonmm.server.models.fraud_preprocess.features import FeatureSpec, featurize

from .archives import extracted
from .errors import DeployError
from .golden import ExpectedOutput, GoldenCheck

if TYPE_CHECKING:
    import pandas as pd

ATOL = 1e-4
"""Native FIL on a GPU sums the trees in another order than Treelite: differences of ~1e-6 are normal."""
ROWS, SEED, FRAUD_RATE = 4000, 20240611, 0.05
"""A fixed synthetic sample with enough fraud to have both labels among the chosen rows."""


def _parameters(model_dir: Path) -> dict[str, str]:
    return {key: value.string_value for key, value in read_config(model_dir).parameters.items()}


def _model_dir(root: Path, manifest: Manifest, model: str) -> Path:
    """The archive's folder of pipeline step ``model`` (names are namespaced ``<name>__<version>__<model>``)."""
    suffix = f"__{model}"
    found = [m for m in manifest.models if m.endswith(suffix)]
    if len(found) != 1:
        raise DeployError(f"archive {manifest.name}_{manifest.version} has no single {model!r} model: "
                          "it is not a fraud pipeline archive")
    return root / found[0]


def _sample() -> pd.DataFrame:
    """A fixed synthetic sample (pandas: the export extras, like ``tritonmm package``)."""
    from tritonmm.export.transactions import generate_transactions  # noqa: PLC0415

    return generate_transactions(ROWS, seed=SEED, fraud_rate=FRAUD_RATE)


def _pick(probability: np.ndarray, threshold: float, per_label: int) -> np.ndarray:
    """Indices of the first ``per_label`` rows clearly above and clearly below ``threshold``, in sample order."""
    margin = 10 * ATOL
    above = np.flatnonzero(probability >= threshold + margin)[:per_label]
    below = np.flatnonzero(probability < threshold - margin)[:per_label]
    return np.sort(np.concatenate([above, below]))


def fraud_golden(archive: Path, target_model: str, *, per_label: int = 4) -> GoldenCheck:
    """One golden check for the fraud archive ``archive``, served as ``target_model``."""
    from tritonmm.loadtest.payloads import fraud_kserve_json  # noqa: PLC0415 - pandas, only needed here

    with extracted(archive) as (root, manifest):
        spec = FeatureSpec.load(_model_dir(root, manifest, PREPROCESS) / VERSION / SPEC_FILE)
        xgboost_dir = _model_dir(root, manifest, XGBOOST)
        params = FilParameters.parse(_parameters(xgboost_dir))
        forest = Forest(xgboost_dir / VERSION / MODEL_TYPES[params.model_type], params)
        threshold = float(_parameters(_model_dir(root, manifest, POSTPROCESS)).get("threshold", "0.5"))
        sample = _sample()
        scores = forest.predict(featurize(raw_columns(sample), spec))[:, -1].astype(np.float32)
    chosen = _pick(scores, threshold, per_label)
    rows, probability = sample.iloc[chosen], scores[chosen]
    return GoldenCheck(
        target_model=target_model,
        body=json.loads(fraud_kserve_json(rows)),
        expected=(
            ExpectedOutput("probability", tuple(float(p) for p in probability), ATOL),
            ExpectedOutput("label", tuple("FRAUD" if p >= threshold else "NOT FRAUD" for p in probability)),
        ),
    )
