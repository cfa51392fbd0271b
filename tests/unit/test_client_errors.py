"""Every transport's failures map to one exception tree; only those and nothing else."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest
from botocore import exceptions as boto
from tritonclient.utils import InferenceServerException

from tritonmm.client import AccessDenied, ClientError, InvalidInput, ModelNotFound, Timeout, Unavailable
from tritonmm.client._errors import as_client_error

UNKNOWN_MODEL = "Request for unknown model: 'nope' is not found"


def sagemaker_error(code: str, message: str, status: int, **extra: object) -> boto.ClientError:
    """A botocore ClientError as boto3 raises it for SageMaker Runtime's error shapes."""
    response = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}, **extra}
    return boto.ClientError(response, "InvokeEndpoint")


TRITON = [
    # (status string as tritonclient gives it, message, expected class, expected .status)
    ("400", "in ensemble 'fraud', Amount: 'abc' is not an amount", InvalidInput, 400),
    ("404", UNKNOWN_MODEL, ModelNotFound, 404),
    ("400", UNKNOWN_MODEL, ModelNotFound, 400),  # older Triton releases answer 400
    ("403", "forbidden", AccessDenied, 403),
    ("401", "who are you", AccessDenied, 401),
    ("429", "slow down", Unavailable, 429),
    ("503", "busy", Unavailable, 503),
    ("500", "Failed to parse the request JSON buffer", ClientError, 500),
    ("StatusCode.INVALID_ARGUMENT", "Amount: 'abc' is not an amount", InvalidInput, 400),
    ("StatusCode.NOT_FOUND", UNKNOWN_MODEL, ModelNotFound, 404),
    ("StatusCode.UNAVAILABLE", "failed to connect to all addresses", Unavailable, 503),
    ("StatusCode.RESOURCE_EXHAUSTED", "too many requests", Unavailable, 429),
    ("StatusCode.DEADLINE_EXCEEDED", "Deadline Exceeded", Timeout, 504),
    ("StatusCode.PERMISSION_DENIED", "no", AccessDenied, 403),
    ("StatusCode.UNAUTHENTICATED", "no", AccessDenied, 401),
    ("StatusCode.INTERNAL", "boom", ClientError, 500),
    (None, "url should not include the scheme", ClientError, None),
]


@pytest.mark.parametrize(("status", "message", "kind", "http_status"), TRITON)
def test_triton_errors(status: str | None, message: str, kind: type, http_status: int | None) -> None:
    error = as_client_error(InferenceServerException(message, status))
    assert type(error) is kind
    assert (error.message, error.status, error.code) == (message, http_status, status)


SAGEMAKER = [
    (sagemaker_error("ValidationError", "Could not find model data for TargetModel 'x.tar.gz' in store", 400),
     ModelNotFound, 400),
    (sagemaker_error("ValidationError", "inputs[0] (Amount).shape[0]: -1 is not a non-negative integer", 400),
     InvalidInput, 400),
    (sagemaker_error("ValidationError", "Request payload exceeds the 6 MB limit", 413), InvalidInput, 413),
    (sagemaker_error("ModelError", "Received client error (400)", 424, OriginalStatusCode=400,
                     OriginalMessage="Amount: 'abc' is not an amount"), InvalidInput, 400),
    (sagemaker_error("ModelError", "Model did not respond within 60 s", 424, OriginalStatusCode=504,
                     OriginalMessage="invocation timed out"), Unavailable, 504),
    (sagemaker_error("ModelError", "Received server error (500)", 424, OriginalStatusCode=500,
                     OriginalMessage="stub crashed"), Unavailable, 500),
    (sagemaker_error("AccessDeniedException", "not allowed", 403), AccessDenied, 403),
    (sagemaker_error("InvalidSignatureException", "bad signature", 403), AccessDenied, 403),
    (sagemaker_error("UnrecognizedClientException", "unknown key", 403), AccessDenied, 403),
    (sagemaker_error("MissingAuthenticationTokenException", "no credentials", 403), AccessDenied, 403),
    (sagemaker_error("ServiceUnavailable", "Model server unavailable, retry later", 503), Unavailable, 503),
    (sagemaker_error("ThrottlingException", "Rate exceeded", 400), Unavailable, 400),
    (sagemaker_error("SomethingNew", "overloaded", 503), Unavailable, 503),
    (sagemaker_error("SomethingNew", "too many", 429), Unavailable, 429),
    (sagemaker_error("InternalFailure", "oops", 500), ClientError, 500),
]


@pytest.mark.parametrize(("exc", "kind", "status"), SAGEMAKER, ids=lambda v: getattr(v, "response", {}).get(
    "Error", {}).get("Code") if isinstance(v, boto.ClientError) else None)
def test_sagemaker_errors(exc: boto.ClientError, kind: type, status: int) -> None:
    error = as_client_error(exc)
    assert type(error) is kind
    assert error.status == status
    assert error.code == exc.response["Error"]["Code"]


def test_model_error_carries_the_models_own_message() -> None:
    error = as_client_error(SAGEMAKER[3][0])
    assert error.message == "Amount: 'abc' is not an amount"


NETWORK = [
    (ConnectionRefusedError(111, "Connection refused"), Unavailable),
    (ConnectionResetError(104, "reset"), Unavailable),
    (socket.gaierror(-2, "Name or service not known"), Unavailable),
    (TimeoutError("timed out"), Timeout),
    (asyncio.TimeoutError(), Timeout),
    (aiohttp.ServerDisconnectedError(), Unavailable),
    (aiohttp.ServerTimeoutError("read timeout"), Timeout),
    (boto.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), Unavailable),
    (boto.ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"), Unavailable),
    (boto.ConnectionClosedError(endpoint_url="http://127.0.0.1:1"), Unavailable),
    (boto.ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), Timeout),
    (boto.NoCredentialsError(), AccessDenied),
]


@pytest.mark.parametrize(("exc", "kind"), NETWORK, ids=lambda v: type(v).__name__)
def test_network_errors(exc: Exception, kind: type) -> None:
    error = as_client_error(exc)
    assert type(error) is kind
    assert error.status is None and error.message


def test_client_errors_pass_through_and_bugs_are_not_mapped() -> None:
    own = ModelNotFound("no schema")
    assert as_client_error(own) is own
    assert as_client_error(ValueError("a bug")) is None
    assert as_client_error(KeyError("x")) is None
    assert as_client_error(boto.ParamValidationError(report="bad param")) is None


def test_str_shows_the_status() -> None:
    assert str(InvalidInput("Amount: bad", status=400)) == "[400] Amount: bad"
    assert str(Unavailable("refused")) == "refused"
