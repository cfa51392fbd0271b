"""Start and stop a real MLServer (the peer in ``make bench-peers``) serving one XGBoost model.

MLServer lives in its own virtual environment (``build/peers/mlserver-venv``,
made by ``make bench-peers``): it needs ``uvloop<0.22`` and numpy 2, while the
project pins uvloop 0.23 and numpy 1.26. Only its ``mlserver`` executable is
used from here, so nothing of it is imported into this process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tritonmm.loadtest.local_endpoint import wait_until_ready
from tritonmm.server.triton_process import free_port

VENV = Path("build/peers/mlserver-venv")
MODEL_NAME = "fraud_xgboost"
INPUT = "input-0"
"""MLServer's XGBoost runtime reads the first input whatever its name; this is its default."""
OUTPUT = "predict"
"""A model loaded from ``xgboost.json`` is a Booster, so ``predict`` gives the probability of fraud."""


@dataclass(frozen=True)
class MLServerConfig:
    """The knobs tuned on MLServer's side."""

    parallel_workers: int
    omp_threads: int = 1

    @property
    def label(self) -> str:
        return f"mlserver workers={self.parallel_workers} omp={self.omp_threads}"


class MLServer:
    """``mlserver start`` over a folder holding ``settings.json`` and the model's ``model-settings.json``."""

    def __init__(self, config: MLServerConfig, model_file: Path, work_dir: Path) -> None:
        self.config = config
        self.http_port, self.grpc_port = free_port(), free_port()
        self._dir = work_dir
        shutil.rmtree(work_dir, ignore_errors=True)
        (work_dir / MODEL_NAME).mkdir(parents=True)
        shutil.copyfile(model_file, work_dir / MODEL_NAME / "xgboost.json")
        settings = {
            "debug": False, "parallel_workers": config.parallel_workers, "host": "127.0.0.1",
            "http_port": self.http_port, "grpc_port": self.grpc_port, "metrics_port": free_port(),
            "metrics_endpoint": None,  # no Prometheus middleware: MLServer's fastest setting
        }
        (work_dir / "settings.json").write_text(json.dumps(settings))
        model = {"name": MODEL_NAME, "implementation": "mlserver_xgboost.XGBoostModel", "parameters": {"uri": "./xgboost.json"}}
        (work_dir / MODEL_NAME / "model-settings.json").write_text(json.dumps(model))
        self._process: subprocess.Popen | None = None

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def __enter__(self) -> MLServer:
        executable = VENV / "bin" / "mlserver"
        if not executable.exists():
            raise FileNotFoundError(f"{executable} is missing: run `make bench-peers` (it creates the MLServer venv)")
        env = {**os.environ, "OMP_NUM_THREADS": str(self.config.omp_threads)}
        log = (self._dir / "mlserver.log").open("w")
        # Its own session, so stopping it also stops the inference workers it forks.
        self._process = subprocess.Popen([str(executable.resolve()), "start", "."], cwd=self._dir, env=env,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until_ready(self._process, f"http://{self.http_url}/v2/models/{MODEL_NAME}/ready", timeout_s=120)
        except RuntimeError as exc:
            self.__exit__()
            raise RuntimeError(f"MLServer {exc}: see {self._dir / 'mlserver.log'}") from None
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        os.killpg(self._process.pid, signal.SIGTERM)
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
