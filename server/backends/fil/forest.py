"""Tree-forest inference with the output contract of NVIDIA's native FIL backend (release 24.10).

Pure Python + numpy + Treelite (the library FIL itself imports models with);
XGBoost, when installed, is used as a faster predictor for large batches of
single-output XGBoost models. No Triton types here, so it is unit-testable.

Output contract reproduced from fil_backend r24.10 (``src/tl_model.h`` and
``qa/L0_e2e``), per row:

=================  ============  ===========================================
``predict_proba``  classes       ``output__0``
=================  ============  ===========================================
true               1 (binary)    ``[1 - p, p]`` (dims ``[2]``)
true               k > 1         ``k`` class probabilities
false              1 (binary)    ``output_class``: ``p > threshold`` as 0/1;
                                 else the raw score ``p``
false              k > 1         ``output_class``: the argmax class index
=================  ============  ===========================================
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import treelite
from treelite.core import _LIB, _check_call
from treelite.gtil.gtil import GTILConfig

MODEL_TYPES: dict[str, str] = {
    "xgboost_json": "xgboost.json",
    "xgboost_ubj": "xgboost.ubj",
    "xgboost": "xgboost.model",
    "lightgbm": "model.txt",
    "treelite_checkpoint": "checkpoint.tl",
}
"""FIL ``model_type`` values and the default file name each implies."""

ACCEPTED_WITHOUT_EFFECT = frozenset(
    {
        "storage_type",
        "algo",
        "blocks_per_sm",
        "threads_per_tree",
        "transfer_threshold",
        "use_experimental_optimizations",
        "layout",
        "chunk_size",
    }
)
"""GPU/layout tuning keys of the native backend: accepted, no effect on CPU."""

# Below this many rows Treelite's GTIL is faster than XGBoost's predictor
# (whose per-call overhead is ~0.2 ms); above it XGBoost is much faster.
XGBOOST_MIN_ROWS = 16


class ForestLoadError(ValueError):
    """The model file or its FIL parameters cannot be used; the message names the file and the reason."""


def _as_bool(key: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ForestLoadError(f"parameter {key!r} must be true or false, got {value!r}")


@dataclass(frozen=True)
class FilParameters:
    """The FIL ``parameters`` block of a ``config.pbtxt``, parsed and validated."""

    model_type: str = "xgboost"
    predict_proba: bool = False
    output_class: bool = True
    threshold: float = 0.5
    xgboost_allow_unknown_field: bool = False
    cpu_nthread: int = 1

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> FilParameters:
        """Build from ``{key: string_value}``; ``is_classifier`` is the newer name of ``output_class``."""
        model_type = params.get("model_type", "xgboost")
        if model_type not in MODEL_TYPES:
            raise ForestLoadError(f"unknown model_type {model_type!r}; expected one of {sorted(MODEL_TYPES)}")
        classifier_key = "output_class" if "output_class" in params else "is_classifier"
        output_class = _as_bool(classifier_key, params[classifier_key]) if classifier_key in params else True
        try:
            threshold = float(params.get("threshold", "0.5"))
            default_threads = os.environ.get("OMP_NUM_THREADS", "-1")
            cpu_nthread = int(params.get("cpu_nthread", default_threads))
        except ValueError as exc:
            raise ForestLoadError(f"bad numeric FIL parameter: {exc}") from exc
        return cls(
            model_type=model_type,
            predict_proba=_as_bool("predict_proba", params.get("predict_proba", "false")),
            output_class=output_class,
            threshold=threshold,
            xgboost_allow_unknown_field=_as_bool(
                "xgboost_allow_unknown_field", params.get("xgboost_allow_unknown_field", "false")
            ),
            cpu_nthread=cpu_nthread,
        )


def _load_treelite(path: Path, params: FilParameters) -> treelite.Model:
    kind = params.model_type
    if kind == "xgboost_json":
        return treelite.frontend.load_xgboost_model(
            str(path), format_choice="json", allow_unknown_field=params.xgboost_allow_unknown_field
        )
    if kind == "xgboost_ubj":
        return treelite.frontend.load_xgboost_model(str(path), format_choice="ubjson")
    if kind == "xgboost":
        return treelite.frontend.load_xgboost_model_legacy_binary(str(path))
    if kind == "lightgbm":
        return treelite.frontend.load_lightgbm_model(str(path))
    return treelite.Model.deserialize(str(path))


class GtilPredictor:
    """Treelite GTIL prediction through its C API with the per-call setup hoisted out.

    ``treelite.gtil.predict`` re-parses its JSON config and re-queries the
    model's types and output shape on every call (about 35 µs for one row);
    here that is done once, leaving one ``TreeliteGTILPredict`` call (about
    14 µs). Results are identical (unit-tested against ``treelite.gtil``).
    """

    _CTYPES = {"float32": ctypes.c_float, "float64": ctypes.c_double}

    def __init__(self, model: treelite.Model, nthread: int) -> None:
        self._model = model
        self._config = GTILConfig(nthread=nthread, predict_type="default")
        self._input_type, self._output_type = model.input_type, model.output_type
        self._input_dtype, self._output_dtype = np.dtype(self._input_type), np.dtype(self._output_type)
        self._input_pointer = ctypes.POINTER(self._CTYPES[self._input_type])
        self._output_pointer = ctypes.POINTER(self._CTYPES[self._output_type])
        self._num_classes = int(model.get_header_accessor().get_field("num_class")[0])

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        """Post-processed scores, shape ``(n, num_classes)``."""
        rows = np.ascontiguousarray(rows, dtype=self._input_dtype)
        out = np.empty((len(rows), self._num_classes), dtype=self._output_dtype)
        _check_call(
            _LIB.TreeliteGTILPredict(
                self._model.handle,
                rows.ctypes.data_as(self._input_pointer),
                self._input_type.encode(),
                ctypes.c_uint64(len(rows)),
                out.ctypes.data_as(self._output_pointer),
                self._config.handle,
            )
        )
        return out


class Forest:
    """A loaded tree model that answers with FIL's ``output__0`` for a batch of rows."""

    def __init__(self, path: Path, params: FilParameters) -> None:
        if not path.is_file():
            raise ForestLoadError(f"{path}: model file not found (model_type {params.model_type!r} expects this name)")
        try:
            self._model = _load_treelite(path, params)
        except (treelite.TreeliteError, UnicodeDecodeError, ValueError) as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise ForestLoadError(f"{path}: cannot be read as model_type {params.model_type!r}: {reason}") from exc
        header = self._model.get_header_accessor()
        self.params = params
        self.num_features = int(header.get_field("num_feature")[0])
        self.num_classes = int(header.get_field("num_class")[0])
        if int(header.get_field("num_target")[0]) != 1:
            raise ForestLoadError(f"{path}: multi-target models are not supported by FIL")
        self._gtil = GtilPredictor(self._model, params.cpu_nthread)
        # XGBoost takes ~1-2 s to import: attach it in the background so the model is
        # ready (on GTIL alone) as soon as Treelite has read it — cold loads matter on an MME.
        self._xgboost: object | None = None
        self._xgboost_thread: threading.Thread | None = None
        if self.num_classes == 1 and params.model_type.startswith("xgboost"):
            self._xgboost_thread = threading.Thread(target=self._attach_xgboost, args=(path,), daemon=True)
            self._xgboost_thread.start()

    @property
    def output_width(self) -> int:
        """Columns of ``output__0`` per row under these parameters."""
        if self.params.predict_proba:
            return 2 if self.num_classes == 1 else self.num_classes
        return 1

    def _attach_xgboost(self, path: Path) -> None:
        """Use XGBoost's own predictor for big batches, if installed and it agrees with Treelite on a probe."""
        try:
            import xgboost  # noqa: PLC0415 - optional accelerator
        except ImportError:
            return
        booster = xgboost.Booster(model_file=str(path))
        booster.set_param({"nthread": max(self.params.cpu_nthread, 0)})
        probe = np.random.default_rng(0).normal(size=(64, self.num_features)).astype(np.float32)
        ours = booster.inplace_predict(probe)
        if ours.shape == (64,) and np.allclose(ours, self._gtil(probe)[:, 0], atol=1e-6):
            self._xgboost = booster

    def wait_for_accelerator(self, timeout: float | None = None) -> bool:
        """Block until the background XGBoost attach has finished; True if it is in use."""
        if self._xgboost_thread is not None:
            self._xgboost_thread.join(timeout)
        return self._xgboost is not None

    def scores(self, rows: np.ndarray) -> np.ndarray:
        """Post-processed model output (probabilities for classifiers), shape ``(n, num_classes)``."""
        if self._xgboost is not None and len(rows) >= XGBOOST_MIN_ROWS:
            rows = np.ascontiguousarray(rows, dtype=np.float32)
            return np.asarray(self._xgboost.inplace_predict(rows), dtype=np.float32).reshape(-1, 1)
        return self._gtil(rows).astype(np.float32, copy=False)

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """``output__0`` for ``rows`` of shape ``(n, num_features)``, shape ``(n, output_width)``."""
        if rows.ndim != 2 or rows.shape[1] != self.num_features:
            raise ValueError(f"input__0 must have shape [n, {self.num_features}], got {list(rows.shape)}")
        scores = self.scores(rows)
        params = self.params
        if self.num_classes == 1:
            if params.predict_proba:
                both = np.empty((len(scores), 2), dtype=np.float32)
                both[:, 1:] = scores
                np.subtract(1.0, scores, out=both[:, :1])
                return both
            if params.output_class:
                return (scores > params.threshold).astype(np.float32)
            return scores
        if params.predict_proba:
            return scores
        if params.output_class:
            return np.argmax(scores, axis=1).astype(np.float32).reshape(-1, 1)
        return scores
