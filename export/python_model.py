"""Exporter for Python-backend models whose sources live in ``server/models/<name>/``."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import tritonmm.server.models

from .model_config import VERSION, ModelConfig, write_config

MODEL_SOURCES = Path(tritonmm.server.models.__file__).resolve().parent


def export_python_model(config: ModelConfig, repository: Path, source: str, files: Sequence[str] = ("model.py",)) -> Path:
    """Write ``config`` and copy ``files`` from ``server/models/<source>/`` into the version folder."""
    model_dir = write_config(config, repository)
    for name in files:
        shutil.copyfile(MODEL_SOURCES / source / name, model_dir / VERSION / name)
    return model_dir
