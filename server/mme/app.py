"""The endpoint's HTTP surface: thin Starlette routes that translate HTTP and delegate.

* ``POST /endpoints/{EndpointName}/invocations`` — SageMaker Runtime
  InvokeEndpoint (``X-Amzn-SageMaker-Target-Model`` picks the archive; the body
  is a KServe v2 request for the archive's default model; Triton's answer is
  returned with ``X-Amzn-Invoked-Production-Variant``);
* ``GET /ping``; ``GET /metrics`` (Prometheus);
* control API: ``GET /models`` (archives in the store), ``GET /models/loaded``,
  ``POST /models/{target}/load``, ``DELETE /models/{target}``.

Every error leaves through :func:`_error_response` in SageMaker's shape.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .auth import AuthConfig, AuthError, Tenant, authenticate, authorize
from .errors import EndpointError, model_error, model_timeout, payload_too_large, service_unavailable, validation_error
from .kserve_body import BINARY_CONTENT_TYPE, json_header_length, validate_request
from .manager import ModelManager
from .metrics import EndpointMetrics
from .store import TARGET_PATTERN
from .triton_client import HEADER_LENGTH, TritonClient, TritonUnavailable

TARGET_HEADER = "x-amzn-sagemaker-target-model"
VARIANT_HEADER = "X-Amzn-Invoked-Production-Variant"
MAX_PAYLOAD_BYTES = 6 << 20
"""SageMaker's InvokeEndpoint payload limit."""


@dataclass(frozen=True)
class EndpointSettings:
    """What the routes need besides the manager."""

    variant: str = "AllTraffic"
    invocation_timeout_s: float = 60.0
    max_payload_bytes: int = MAX_PAYLOAD_BYTES


def _error_response(error: EndpointError) -> Response:
    return Response(error.body(), status_code=error.status, headers=error.headers())


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise payload_too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise payload_too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _as_endpoint_error(error: AuthError) -> EndpointError:
    return EndpointError(error.status, error.code, error.message)


class Endpoint:
    """Request handlers bound to one manager, auth config and Triton."""

    def __init__(self, manager: ModelManager, triton: TritonClient, auth: AuthConfig,
                 metrics: EndpointMetrics, settings: EndpointSettings) -> None:
        self.manager, self.triton, self.auth, self.metrics, self.settings = manager, triton, auth, metrics, settings

    async def _caller(self, request: Request, body: bytes) -> Tenant | None:
        try:
            # The raw (still percent-encoded) path: SigV4 signs the encoded form.
            raw_path = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1")
            return authenticate(
                self.auth, method=request.method, path=raw_path, query=request.url.query,
                headers=request.headers, body=body,
            )
        except AuthError as exc:
            raise _as_endpoint_error(exc) from None

    def _authorize(self, tenant: Tenant | None, endpoint: str, target: str) -> None:
        try:
            authorize(self.auth, tenant, endpoint=endpoint, target=target)
        except AuthError as exc:
            raise _as_endpoint_error(exc) from None

    async def invoke(self, request: Request) -> Response:
        endpoint = request.path_params["endpoint"]
        target = request.headers.get(TARGET_HEADER, "")
        label = target if TARGET_PATTERN.fullmatch(target) else "<invalid>"  # bounded metric labels
        started = time.perf_counter()
        try:
            body = await _read_body(request, self.settings.max_payload_bytes)
            tenant = await self._caller(request, body)
            if not target:
                raise validation_error("X-Amzn-SageMaker-Target-Model header is required on a multi-model endpoint")
            self._authorize(tenant, endpoint, target)
            header_length = json_header_length(request.headers.get("content-type", ""), request.headers.get(HEADER_LENGTH), len(body))
            validate_request(body, header_length)
            response = await self._infer(target, body, header_length)
        except EndpointError as exc:
            self.metrics.errors.labels(target=label, code=exc.code).inc()
            return _error_response(exc)
        finally:
            self.metrics.invocations.labels(target=label).inc()
        self.metrics.latency.labels(target=label).observe(time.perf_counter() - started)
        return response

    async def _infer(self, target: str, body: bytes, header_length: int | None) -> Response:
        timeout = self.settings.invocation_timeout_s
        try:
            async with self.manager.use(target) as archive:
                answer = await asyncio.wait_for(
                    self.triton.infer(archive.manifest.default_model, body, header_length, timeout=timeout), timeout
                )
        except TritonUnavailable as exc:
            raise service_unavailable(f"Model server unavailable, retry later: {exc}") from None
        except asyncio.TimeoutError:
            raise model_timeout(timeout) from None
        if answer.status != 200:
            original = answer.error_message()
            raise model_error(f"Received client error ({answer.status}) from model with message \"{original}\"",
                              answer.status, original)
        headers = {VARIANT_HEADER: self.settings.variant}
        binary_header = answer.header_length
        if binary_header is not None:
            headers[HEADER_LENGTH] = binary_header
            content_type = f"{BINARY_CONTENT_TYPE};json-header-size={binary_header}"
        else:
            content_type = "application/json"
        return Response(answer.body, headers=headers, media_type=content_type)

    async def ping(self, _request: Request) -> Response:
        healthy = await self.triton.live()
        return Response(b"" if healthy else b"model server unavailable", status_code=200 if healthy else 503)

    async def metrics_page(self, _request: Request) -> Response:
        return Response(self.metrics.exposition(), media_type="text/plain; version=0.0.4")

    async def _visible(self, request: Request, targets: list[str]) -> list[str]:
        tenant = await self._caller(request, await request.body())
        visible = []
        for target in targets:
            try:
                authorize(self.auth, tenant, endpoint="-", target=target)
            except AuthError:
                continue
            visible.append(target)
        return visible

    async def list_store(self, request: Request) -> Response:
        targets = await asyncio.to_thread(self.manager.store.list_targets)
        return JSONResponse({"models": [{"target": t} for t in await self._visible(request, targets)]})

    async def list_loaded(self, request: Request) -> Response:
        visible = await self._visible(request, self.manager.loaded())
        return JSONResponse({"models": [self.manager.describe(t) for t in visible if t in self.manager.loaded()]})

    async def load(self, request: Request) -> Response:
        target = request.path_params["target"]
        self._authorize(await self._caller(request, await request.body()), "-", target)
        async with self.manager.use(target):
            return JSONResponse(self.manager.describe(target))

    async def unload(self, request: Request) -> Response:
        target = request.path_params["target"]
        self._authorize(await self._caller(request, await request.body()), "-", target)
        if not await self.manager.unload(target):
            raise validation_error(f"TargetModel {target!r} is not loaded")
        return JSONResponse({"target": target, "unloaded": True})


def _errors_to_responses(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except EndpointError as exc:
            return _error_response(exc)
        except TritonUnavailable as exc:
            return _error_response(service_unavailable(str(exc)))

    return wrapped


def create_app(endpoint: Endpoint, *, lifespan: Callable | None = None) -> Starlette:
    """The ASGI app serving ``endpoint``; ``lifespan`` starts/stops what it depends on."""
    guard = _errors_to_responses
    routes = [
        Route("/endpoints/{endpoint}/invocations", endpoint.invoke, methods=["POST"]),
        Route("/ping", endpoint.ping, methods=["GET"]),
        Route("/metrics", endpoint.metrics_page, methods=["GET"]),
        Route("/models", guard(endpoint.list_store), methods=["GET"]),
        Route("/models/loaded", guard(endpoint.list_loaded), methods=["GET"]),
        Route("/models/{target:path}/load", guard(endpoint.load), methods=["POST"]),
        Route("/models/{target:path}", guard(endpoint.unload), methods=["DELETE"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
