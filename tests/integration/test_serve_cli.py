"""``tritonmm serve`` as a user runs it: ready, Ctrl-C/SIGTERM stops everything, busy ports are explained."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tritonmm.export.fraud import PIPELINE, POSTPROCESS, PREPROCESS, XGBOOST
from tritonmm.server.triton_process import free_port

CLI = [sys.executable, "-m", "tritonmm.cli", "serve"]


@pytest.fixture(scope="module")
def fraud_only(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fraud pipeline alone, as `make serve` serves it (the shared repository also holds broken models)."""
    target = tmp_path_factory.mktemp("fraud_only")
    for name in (PIPELINE, PREPROCESS, XGBOOST, POSTPROCESS):
        shutil.copytree(repository / name, target / name)
    return target


def processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line contains ``text`` (our unique backend directory), read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def serve_args(repository: Path, backends: Path, ports: tuple[int, int, int]) -> list[str]:
    http, grpc, metrics = ports
    return CLI + [
        f"--model-repository={repository}", f"--backend-directory={backends}",
        f"--http-port={http}", f"--grpc-port={grpc}", f"--metrics-port={metrics}",
    ]


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_serve_then_signal_leaves_no_process_behind(fraud_only: Path, tmp_path: Path, stop_signal) -> None:
    ports = (free_port(), free_port(), free_port())
    backends = tmp_path / "backends-cli"
    process = subprocess.Popen(serve_args(fraud_only, backends, ports), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 180
        while not any("Triton ready" in line for line in lines):
            assert process.poll() is None and time.monotonic() < deadline, "".join(lines)
            time.sleep(0.2)
        assert httpx.get(f"http://127.0.0.1:{ports[0]}/v2/models/fraud/ready", timeout=5).status_code == 200
        stubs = [pid for pid in processes_mentioning(str(backends)) if pid != process.pid]
        assert stubs, "tritonserver and its backend stubs should be running"
        process.send_signal(stop_signal)
        process.wait(timeout=60)
        reader.join(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    output = "".join(lines)
    assert "Triton ready" in output and "stopping tritonserver" in output
    assert process.returncode == 0, output
    assert processes_mentioning(str(backends)) == []


def test_busy_port_is_reported(fraud_only: Path, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            serve_args(fraud_only, tmp_path / "b", (free_port(), port, free_port())),
            capture_output=True, text=True, timeout=60,
        )
    assert done.returncode == 1
    assert f"gRPC port {port} already in use" in done.stderr


def test_a_model_that_fails_at_start_stops_the_server_with_the_reason(repository: Path, tmp_path: Path) -> None:
    broken = tmp_path / "repo"
    shutil.copytree(repository / "broken_type", broken / "broken_type")
    done = subprocess.run(
        serve_args(broken, tmp_path / "b", (free_port(), free_port(), free_port())),
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1
    assert "broken_type/1/xgboost.json: cannot be read as model_type 'xgboost_json'" in done.stderr
