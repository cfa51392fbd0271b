"""The few Triton HTTP calls the endpoint makes: repository load/unload, health, raw inference.

Inference bodies are forwarded untouched (JSON or the binary-tensor
extension), so the answer is Triton's own. aiohttp rather than httpx: on the
hot path of every invocation its per-request CPU cost is several times lower,
and the endpoint shares the host's cores with Triton.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import aiohttp

# Triton's header for the binary-tensor extension: length of the JSON part of the body.
HEADER_LENGTH = "inference-header-content-length"


class TritonUnavailable(ConnectionError):
    """Triton did not answer at all (not started, crashed, restarting)."""


class TritonRejected(RuntimeError):
    """Triton answered a repository call with an error."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class TritonAnswer:
    """Status, body and the headers the endpoint passes on."""

    status: int
    body: bytes
    header_length: str | None

    def error_message(self) -> str:
        """Triton's ``{"error": ...}`` message, or the raw body."""
        try:
            return str(json.loads(self.body).get("error", self.body.decode(errors="replace")))
        except (ValueError, AttributeError):
            return self.body.decode(errors="replace")


class TritonClient:
    """Async client for one Triton's HTTP endpoint (``http://host:port``); create it inside the event loop."""

    def __init__(self, base_url: str, *, timeout: float = 60.0, connections: int = 64) -> None:
        self._base = base_url.rstrip("/")
        self._timeout = timeout
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections), timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(self, path: str, body: bytes, headers: dict[str, str], timeout: float | None = None) -> TritonAnswer:
        try:
            async with self._client().post(
                self._base + path, data=body, headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout) if timeout else None,
            ) as answer:
                return TritonAnswer(answer.status, await answer.read(), answer.headers.get(HEADER_LENGTH))
        except (aiohttp.ClientConnectionError, ConnectionError) as exc:
            raise TritonUnavailable(f"Triton is not answering: {exc}") from exc

    async def _repository(self, model: str, action: str, parameters: str = "{}") -> None:
        answer = await self._post(f"/v2/repository/models/{model}/{action}", f'{{"parameters": {parameters}}}'.encode(),
                                  {"content-type": "application/json"})
        if answer.status != 200:
            raise TritonRejected(answer.status, answer.error_message())

    async def load(self, model: str) -> None:
        """Load (or reload) ``model`` and, for an ensemble, the models it uses."""
        await self._repository(model, "load")

    async def unload(self, model: str) -> None:
        """Unload ``model`` and the models it uses; Triton lets in-flight requests finish first."""
        await self._repository(model, "unload", '{"unload_dependents": true}')

    async def live(self) -> bool:
        try:
            async with self._client().get(self._base + "/v2/health/live", timeout=aiohttp.ClientTimeout(total=2)) as answer:
                return answer.status == 200
        except (aiohttp.ClientError, ConnectionError, TimeoutError):
            return False

    async def infer(self, model: str, body: bytes, header_length: int | None, *, timeout: float) -> TritonAnswer:
        """POST a KServe v2 body (JSON, or binary extension when ``header_length`` is set)."""
        headers = {"content-type": "application/octet-stream" if header_length is not None else "application/json"}
        if header_length is not None:
            headers[HEADER_LENGTH] = str(header_length)
        return await self._post(f"/v2/models/{model}/infer", body, headers, timeout)
