"""Run the endpoint: Triton (explicit model control) + the ASGI app on uvicorn + a supervisor.

The supervisor restarts Triton if it dies; calls meanwhile get 503, the
loaded-archive bookkeeping is reset, and the next call for each target loads
it again — the endpoint recovers by itself, as SageMaker's does.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import IO

import uvicorn

from ..triton_process import TritonServer, TritonSettings
from .app import Endpoint, EndpointSettings, create_app
from .auth import AuthConfig
from .manager import ManagerSettings, ModelManager
from .metrics import EndpointMetrics
from .store import ModelStore
from .triton_client import TritonClient

log = logging.getLogger("tritonmm.endpoint")


@dataclass
class TritonSupervisor:
    """Keeps one tritonserver running; restarts it when it exits unexpectedly."""

    settings: TritonSettings
    log_sink: IO[str] | None = None
    check_interval_s: float = 1.0
    restarts: int = 0
    server: TritonServer | None = field(default=None, init=False)

    @property
    def pid(self) -> int | None:
        return self.server.pid if self.server else None

    def start(self) -> None:
        self.server = TritonServer(self.settings, log_sink=self.log_sink).start()
        self.server.wait_ready()

    def stop(self) -> None:
        if self.server:
            self.server.stop()
            self.server = None

    def died(self) -> bool:
        return self.server is not None and not self.server.running

    async def watch(self, manager: ModelManager) -> None:
        """Poll the process; on exit, forget loaded archives and start a fresh server."""
        while True:
            await asyncio.sleep(self.check_interval_s)
            if self.died():
                log.error("tritonserver exited; restarting it (loaded archives will reload on their next call)")
                self.server.stop()
                manager.forget_all()
                self.restarts += 1
                await asyncio.to_thread(self.start)


def endpoint_app(store: ModelStore, supervisor: TritonSupervisor, auth: AuthConfig, manager_settings: ManagerSettings,
                 endpoint_settings: EndpointSettings, metrics: EndpointMetrics | None = None):
    """The ASGI app, with a lifespan that owns the Triton client, the manager and the supervisor task."""
    metrics = metrics or EndpointMetrics()
    triton = TritonClient(supervisor.settings.http_url, timeout=endpoint_settings.invocation_timeout_s)
    manager = ModelManager(store, triton, manager_settings, metrics, triton_pid=lambda: supervisor.pid)
    endpoint = Endpoint(manager, triton, auth, metrics, endpoint_settings)

    @asynccontextmanager
    async def lifespan(_app: object) -> AsyncIterator[None]:
        watcher = asyncio.create_task(supervisor.watch(manager))
        try:
            yield
        finally:
            # Stop Triton here, not after uvicorn returns: uvicorn re-raises SIGTERM/SIGINT
            # once it has shut down, which would end this process before any `finally`.
            watcher.cancel()
            await triton.close()
            await asyncio.to_thread(supervisor.stop)

    return create_app(endpoint, lifespan=lifespan)


def run_endpoint(
    triton_settings: TritonSettings,
    store: ModelStore,
    auth: AuthConfig,
    manager_settings: ManagerSettings,
    endpoint_settings: EndpointSettings,
    *,
    host: str,
    port: int,
    static_models: tuple[str, ...] = (),
) -> None:
    """Start Triton with the archive repository next to the static one, then serve until interrupted."""
    manager_settings.repository_dir.mkdir(parents=True, exist_ok=True)
    for stale in manager_settings.repository_dir.iterdir():  # links left by a previous run
        stale.unlink()
    settings = replace(
        triton_settings,
        model_control_mode="explicit",
        extra_repositories=(*triton_settings.extra_repositories, manager_settings.repository_dir),
        load_models=static_models,
    )
    supervisor = TritonSupervisor(settings, log_sink=sys.stderr)
    supervisor.start()
    try:
        app = endpoint_app(store, supervisor, auth, manager_settings, endpoint_settings)
        print(f"Endpoint ready: http://{host}:{port}/endpoints/<name>/invocations (store {store.describe()})",
              file=sys.stderr, flush=True)
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        supervisor.stop()
