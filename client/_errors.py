"""The client's exceptions, and the one place where transport errors become them.

::

    ClientError                 any failure the server or the network reported (.message, .status, .code)
     ├── ModelNotFound          the server (or the client's schemas) knows no such model / TargetModel
     ├── AccessDenied           credentials missing, wrong, or not allowed this model
     ├── InvalidInput           the request is wrong: names, types, shapes, values (4xx); never retried
     ├── Unavailable            overloaded (429/503) or unreachable; retried with backoff
     └── Timeout                no answer in time; not retried (the server may still be working on it)

Transports raise whatever their library raises — tritonclient's
``InferenceServerException`` (an HTTP status such as ``"400"`` or a gRPC status
name such as ``"StatusCode.NOT_FOUND"``), botocore's ``ClientError`` (SageMaker's
error codes), socket, aiohttp and botocore connection errors — and the client
translates them here with :func:`as_client_error`, so callers catch one typed tree
instead of parsing three libraries' errors.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

from tritonclient.utils import InferenceServerException


class ClientError(Exception):
    """A request failed.

    Attributes
    ----------
    message : str
        The server's own message (e.g. Triton's ``"Amount: 'abc' is not an amount"``),
        or a description of the network failure.
    status : int or None
        HTTP status of the failure: the wire status for HTTP and SageMaker (the
        model's original status for SageMaker ``ModelError``), the HTTP equivalent of
        the gRPC status code for gRPC, ``None`` when no server answered.
    code : str or None
        The transport's own code: ``"400"``, ``"StatusCode.INVALID_ARGUMENT"``,
        ``"ModelError"``...; ``None`` for network failures.
    """

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code

    def __str__(self) -> str:
        return f"[{self.status}] {self.message}" if self.status is not None else self.message


class ModelNotFound(ClientError):
    """The model (Triton) or TargetModel (SageMaker) does not exist, or the client has no schema for it."""


class AccessDenied(ClientError):
    """Authentication failed or the caller may not invoke this model."""


class InvalidInput(ClientError):
    """The request cannot succeed as sent; the message names the tensor or column."""


class Unavailable(ClientError):
    """The server is overloaded, restarting or unreachable: worth retrying later."""


class Timeout(ClientError):
    """No answer within the client's timeout."""


# gRPC status names -> the HTTP status Triton's HTTP endpoint gives for the same condition.
_GRPC_TO_HTTP = {
    "INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400, "ALREADY_EXISTS": 409,
    "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403, "NOT_FOUND": 404, "CANCELLED": 499,
    "RESOURCE_EXHAUSTED": 429, "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504,
    "UNIMPLEMENTED": 501, "INTERNAL": 500, "UNKNOWN": 500, "DATA_LOSS": 500, "ABORTED": 500,
}
_UNKNOWN_MODEL = "unknown model"  # Triton: "Request for unknown model: 'x' is not found"
_NO_MODEL_DATA = "could not find model data"  # SageMaker: unknown TargetModel
_ACCESS_CODES = frozenset({"AccessDeniedException", "InvalidSignatureException", "UnrecognizedClientException",
                           "MissingAuthenticationTokenException", "ExpiredTokenException"})
_BUSY_CODES = frozenset({"ServiceUnavailable", "ThrottlingException"})


def _by_status(status: int | None, message: str, code: str | None) -> ClientError:
    """Classify an answer from a server by its (HTTP) status and message."""
    kind: type[ClientError] = ClientError
    if status == 404 or _UNKNOWN_MODEL in message.lower():
        kind = ModelNotFound
    elif status in (401, 403):
        kind = AccessDenied
    elif status in (429, 503):
        kind = Unavailable
    elif status in (408, 504):
        kind = Timeout
    elif status is not None and 400 <= status < 500:
        kind = InvalidInput
    return kind(message, status=status, code=code)


def _from_triton(exc: InferenceServerException) -> ClientError:
    code = exc.status()
    message = exc.message() or str(exc)
    if code is None:
        status = None
    elif code.isdigit():
        status = int(code)
    else:
        status = _GRPC_TO_HTTP.get(code.removeprefix("StatusCode."), 500)
    return _by_status(status, message, code)


def _from_sagemaker(response: Mapping[str, Any]) -> ClientError:
    """Map botocore's parsed SageMaker Runtime error (``ClientError.response``)."""
    error = response.get("Error", {})
    code, message = error.get("Code", ""), error.get("Message", "")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code == "ModelError":
        # The model server answered an error; SageMaker passes its status and message on.
        original = response.get("OriginalStatusCode")
        original_message = response.get("OriginalMessage", message)
        kind: type[ClientError] = (
            InvalidInput if isinstance(original, int) and 400 <= original < 500 else Unavailable)
        return kind(original_message, status=original, code=code)
    if code in _ACCESS_CODES:
        return AccessDenied(message, status=status, code=code)
    if code in _BUSY_CODES:
        return Unavailable(message, status=status, code=code)
    if code == "ValidationError":
        kind = ModelNotFound if _NO_MODEL_DATA in message.lower() else InvalidInput
        return kind(message, status=status, code=code)
    return _by_status(status, message, code)


def _from_botocore(exc: BaseException) -> ClientError | None:
    """botocore is optional (the ``sagemaker`` extra): imported only for its own exceptions."""
    from botocore import exceptions as boto  # noqa: PLC0415 - optional dependency

    if isinstance(exc, boto.ClientError):
        return _from_sagemaker(exc.response)
    if isinstance(exc, boto.NoCredentialsError):
        return AccessDenied(f"{exc}: pass credentials, a boto3 session, or anonymous=True for a local endpoint")
    if isinstance(exc, boto.ReadTimeoutError):
        return Timeout(str(exc))
    # A connect timeout means nothing was sent: as safe to retry as a refused connection.
    if isinstance(exc, (boto.ConnectionError, boto.ConnectionClosedError)):
        return Unavailable(str(exc))
    return None


def as_client_error(exc: BaseException) -> ClientError | None:
    """The :class:`ClientError` for ``exc``, or ``None`` if it is not a server or network failure.

    Examples
    --------
    >>> from tritonclient.utils import InferenceServerException
    >>> error = as_client_error(InferenceServerException("Request for unknown model: 'x' is not found", "404"))
    >>> type(error).__name__, error.status
    ('ModelNotFound', 404)
    """
    if isinstance(exc, ClientError):
        return exc
    if isinstance(exc, InferenceServerException):
        return _from_triton(exc)
    if type(exc).__module__.startswith("botocore"):
        return _from_botocore(exc)
    if isinstance(exc, TimeoutError):  # socket.timeout, asyncio/aiohttp timeouts
        return Timeout(str(exc) or "the server did not answer in time")
    if isinstance(exc, (ConnectionError, socket.gaierror)) or _is_aiohttp_connection_error(exc):
        return Unavailable(str(exc) or type(exc).__name__)
    return None


def _is_aiohttp_connection_error(exc: BaseException) -> bool:
    """aiohttp (the async HTTP transport) is imported only when one of its errors is seen."""
    if not type(exc).__module__.startswith("aiohttp"):
        return False
    import aiohttp  # noqa: PLC0415 - only the async HTTP transport uses it

    return isinstance(exc, aiohttp.ClientConnectionError)
