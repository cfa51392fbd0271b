"""Start the real multi-model endpoint (`tritonmm serve --store …`) as a subprocess on free ports, and stop it.

Used by the integration tests, `make bench-mme` and the load tests: everything that needs a local
endpoint it can measure and then stop (with Triton and its stubs) by itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tritonmm.server.triton_process import free_port


@dataclass
class RunningEndpoint:
    """A started endpoint: its URL, Triton's URL, and the process."""

    process: subprocess.Popen
    url: str
    triton_url: str
    cache_dir: Path
    log: Path

    def invoke(self, target: str, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        """One InvokeEndpoint call with a KServe v2 JSON body for ``target``."""
        return httpx.post(f"{self.url}/endpoints/local/invocations", content=body, timeout=120,
                          headers={"X-Amzn-SageMaker-Target-Model": target, "Content-Type": "application/json",
                                   **(headers or {})})

    def metric(self, name: str) -> float:
        """Sum of a Prometheus sample (all label sets) from ``/metrics``."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name) and (line[len(name)] in " {"))

    def children(self) -> dict[int, bytes]:
        """tritonserver and stub processes of this endpoint (found by its unique cache path): pid -> argv[0]."""
        needle = str(self.cache_dir.parent.resolve()).encode()
        found = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    cmdline = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                if needle in cmdline and b"tritonmm.cli" not in cmdline:
                    found[int(entry.name)] = cmdline.split(b"\0")[0]
        return found

    def triton_pid(self) -> int:
        return next(pid for pid, program in self.children().items() if program.endswith(b"tritonserver"))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wait_until_ready(process: subprocess.Popen, url: str, *, timeout_s: float, interval_s: float = 0.2) -> None:
    """Poll ``url`` until it answers 200; RuntimeError if ``process`` exits first or ``timeout_s`` runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with code {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(interval_s)
    raise RuntimeError(f"not ready in {timeout_s:.0f} s")


def start_endpoint(root: Path, store: str, *, auth: Path | None = None, extra: tuple[str, ...] = (),
                   env: dict[str, str] | None = None) -> RunningEndpoint:
    """Launch the endpoint over ``store``; wait until ``/ping`` answers 200."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "static").mkdir(exist_ok=True)
    port, http_port = free_port(), free_port()
    log = root / "endpoint.log"
    argv = [
        sys.executable, "-m", "tritonmm.cli", "serve",
        f"--model-repository={root / 'static'}", f"--backend-directory={root / 'backends'}",
        f"--http-port={http_port}", f"--grpc-port={free_port()}", f"--metrics-port={free_port()}",
        f"--store={store}", f"--endpoint-port={port}", f"--cache-dir={root / 'cache'}", *extra,
    ]
    if auth is not None:
        argv.append(f"--auth={auth}")
    process = subprocess.Popen(argv, stdout=log.open("w"), stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    running = RunningEndpoint(process, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{http_port}", root / "cache", log)
    try:
        wait_until_ready(process, f"{running.url}/ping", timeout_s=180)
    except RuntimeError as exc:
        running.stop()
        raise RuntimeError(f"endpoint {exc}: {log.read_text()[-3000:]}") from None
    return running
