"""The launcher's pure parts: the tritonserver command line, environment and port checks."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tritonmm.server.backend_dir import assemble_backend_dir, find_triton
from tritonmm.server.triton_process import TritonServer, TritonSettings, TritonStartError, build_argv, build_env, port_is_free


def settings(tmp_path: Path, **overrides) -> TritonSettings:
    return TritonSettings(model_repository=tmp_path, backend_directory=tmp_path / "backends", **overrides)


def test_argv_binds_loopback_by_default(tmp_path: Path) -> None:
    argv = build_argv(Path("/bin/tritonserver"), settings(tmp_path))
    assert argv[0] == "/bin/tritonserver"
    for flag in ("--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1",
                 "--http-port=8000", "--grpc-port=8001", "--metrics-port=8002", "--model-control-mode=none"):
        assert flag in argv


def test_argv_options(tmp_path: Path) -> None:
    argv = build_argv(
        Path("tritonserver"),
        settings(tmp_path, host="0.0.0.0", http_port=1, model_control_mode="explicit", load_models=("a", "b"),
                 log_verbose=2, extra_args=("--log-info=false",)),
    )
    assert "--http-address=0.0.0.0" in argv and "--http-port=1" in argv
    assert argv.count("--load-model=a") == 1 and "--load-model=b" in argv
    assert "--model-control-mode=explicit" in argv and "--log-verbose=2" in argv
    assert argv[-1] == "--log-info=false"


def test_env_puts_this_python_first_and_limits_openmp(tmp_path: Path) -> None:
    import sys

    env = build_env(find_triton(), settings(tmp_path))
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)
    assert "nvidia_pytriton.libs" in env["LD_LIBRARY_PATH"]
    assert env["OMP_NUM_THREADS"] == "1"


def test_backend_dir_has_stub_and_our_backends(tmp_path: Path) -> None:
    target = assemble_backend_dir(tmp_path / "backends")
    assert (target / "python" / "libtriton_python.so").is_file()
    assert (target / "python" / "triton_python_backend_stub").is_file()
    assert (target / "fil" / "model.py").is_file() and (target / "fil" / "forest.py").is_file()


def test_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert not port_is_free("127.0.0.1", port)
        with pytest.raises(TritonStartError, match=f"HTTP port {port} already in use"):
            TritonServer(settings(tmp_path, http_port=port)).start()


def test_missing_repository_is_a_clear_error(tmp_path: Path) -> None:
    s = TritonSettings(model_repository=tmp_path / "nope", backend_directory=tmp_path / "b", http_port=0, grpc_port=0, metrics_port=0)
    with pytest.raises(TritonStartError, match="does not exist"):
        TritonServer(s).start()
