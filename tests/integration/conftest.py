"""One real embedded tritonserver for the integration tests, on ports it picks itself.

The repository is exported fresh (the real ``fraud`` export) plus extra FIL
models for the output contract and two broken ones for load errors (not
loaded at start: explicit model control).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from types import ModuleType
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from tritonmm.export.fraud import export_fraud
from tritonmm.export.performer.pipeline import ONNX_FILE, export_performer
from tritonmm.export.performer.repository import write_performer_repository
from tritonmm.export.model_config import VERSION
from tritonmm.export.trees import export_tree_model
from tritonmm.server.triton_process import TritonServer, TritonSettings, free_port

from .performer_fixtures import MAX_HISTORY, longest_card
from .requests_helpers import PROTOCOLS

pytestmark = pytest.mark.integration

CONTRACT_MODELS = ("fil_lightgbm", "fil_class", "fil_multi", "fil_regression")
BROKEN_MODELS = ("broken_file", "broken_type")


@dataclass(frozen=True)
class Served:
    """A running server and the repository it serves."""

    settings: TritonSettings
    repository: Path
    log: Path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


def write_contract_models(repository: Path, tree_models: dict[str, Path]) -> None:
    export_tree_model(tree_models["lightgbm"], repository, "fil_lightgbm")
    export_tree_model(tree_models["binary"], repository, "fil_class", predict_proba=False, threshold=0.3)
    export_tree_model(tree_models["multi"], repository, "fil_multi")
    export_tree_model(tree_models["regression"], repository, "fil_regression", predict_proba=False, classifier=False)
    export_tree_model(tree_models["binary"], repository, "broken_file")
    shutil.copyfile(tree_models["garbage"], repository / "broken_file" / VERSION / "xgboost.json")
    export_tree_model(tree_models["binary"], repository, "broken_type")
    shutil.copyfile(tree_models["lightgbm"], repository / "broken_type" / VERSION / "xgboost.json")


@pytest.fixture(scope="session")
def repository(tmp_path_factory: pytest.TempPathFactory, tree_models: dict[str, Path]) -> Path:
    root = tmp_path_factory.mktemp("export")
    repo = root / "model_repository"
    result = export_fraud(repo, rows=250_000, seed=0, work_dir=root / "work")
    assert result is not None and result.roc_auc > 0.9, result
    (root / "summary.json").write_text(json.dumps(result.__dict__))
    write_contract_models(repo, tree_models)
    return repo


def start_server(repository: Path, log: Path, **overrides) -> TritonServer:
    settings = TritonSettings(
        model_repository=repository,
        backend_directory=log.parent / "backends",
        http_port=free_port(),
        grpc_port=free_port(),
        metrics_port=free_port(),
        **overrides,
    )
    server = TritonServer(settings, log_sink=log.open("w")).start()
    server.wait_ready(timeout=180)
    return server


@pytest.fixture(scope="session")
def served(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    log = tmp_path_factory.mktemp("triton") / "tritonserver.log"
    good = sorted(p.name for p in repository.iterdir() if p.is_dir() and p.name not in BROKEN_MODELS)
    server = start_server(repository, log, model_control_mode="explicit", load_models=tuple(good))
    try:
        yield Served(server.settings, repository, log)
    finally:
        server.stop()


@pytest.fixture(params=sorted(PROTOCOLS))
def protocol(request: pytest.FixtureRequest) -> ModuleType:
    """Each test taking it runs over HTTP and over gRPC."""
    return PROTOCOLS[request.param]


@dataclass(frozen=True)
class PerformerExport:
    """One quick Performer export (performer_fraud and hybrid_fraud) with a small max_history."""

    repository: Path
    work_dir: Path
    summary: dict


@pytest.fixture(scope="session")
def performer_export(tmp_path_factory: pytest.TempPathFactory) -> PerformerExport:
    root = tmp_path_factory.mktemp("performer")
    repo, work = root / "repo", root / "work"
    summary = export_performer(repo, quick=True, work_dir=work)
    write_performer_repository(repo, work, onnx_file=work / ONNX_FILE, max_history=MAX_HISTORY)
    return PerformerExport(repo, work, summary)


@pytest.fixture(scope="session")
def performer_server(performer_export: PerformerExport, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonSettings]:
    server = start_server(performer_export.repository, tmp_path_factory.mktemp("performer_triton") / "tritonserver.log")
    try:
        yield server.settings
    finally:
        server.stop()


@pytest.fixture(scope="session")
def card() -> pd.DataFrame:
    return longest_card()
