"""The few Triton HTTP calls the endpoint makes: repository load/unload, health, raw inference.

Inference bodies are forwarded untouched (JSON or the binary-tensor
extension), so the answer is Triton's own.
"""

from __future__ import annotations

import httpx

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


class TritonClient:
    """Async client for one Triton's HTTP endpoint (``http://host:port``)."""

    def __init__(self, base_url: str, *, timeout: float = 60.0, connections: int = 64) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def _post(self, path: str, **kwargs: object) -> httpx.Response:
        try:
            return await self._http.post(path, **kwargs)
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise TritonUnavailable(f"Triton is not answering: {exc}") from exc

    async def _repository(self, model: str, action: str, parameters: dict | None = None) -> None:
        answer = await self._post(f"/v2/repository/models/{model}/{action}", json={"parameters": parameters or {}})
        if answer.status_code != 200:
            try:
                message = answer.json().get("error", answer.text)
            except ValueError:
                message = answer.text
            raise TritonRejected(answer.status_code, message)

    async def load(self, model: str) -> None:
        """Load (or reload) ``model`` and, for an ensemble, the models it uses."""
        await self._repository(model, "load")

    async def unload(self, model: str) -> None:
        """Unload ``model`` and the models it uses; Triton lets in-flight requests finish first."""
        await self._repository(model, "unload", {"unload_dependents": True})

    async def live(self) -> bool:
        try:
            return (await self._http.get("/v2/health/live", timeout=2.0)).status_code == 200
        except httpx.HTTPError:
            return False

    async def infer(self, model: str, body: bytes, header_length: int | None, *, timeout: float) -> httpx.Response:
        """POST a KServe v2 body (JSON, or binary extension when ``header_length`` is set)."""
        headers = {"content-type": "application/octet-stream" if header_length is not None else "application/json"}
        if header_length is not None:
            headers[HEADER_LENGTH] = str(header_length)
        return await self._post(f"/v2/models/{model}/infer", content=body, headers=headers, timeout=timeout)
