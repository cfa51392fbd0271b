"""Endpoint errors in Amazon SageMaker Runtime's wire shapes, mapped to HTTP in one place.

boto3 users see these as ``botocore.exceptions.ClientError`` whose
``response["Error"]["Code"]`` is the ``code`` here: botocore reads it from the
``x-amzn-ErrorType`` header (and ``__type`` in the body), so the codes and
statuses match what SageMaker itself answers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass
class EndpointError(Exception):
    """An error with its HTTP status, SageMaker error code and extra body fields."""

    status: int
    code: str
    message: str
    extra: dict[str, object] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code} ({self.status}): {self.message}"

    def body(self) -> bytes:
        return json.dumps({"__type": self.code, "message": self.message, **self.extra}).encode()

    def headers(self) -> dict[str, str]:
        return {"x-amzn-ErrorType": f"{self.code}:", "content-type": "application/json"}


def validation_error(message: str) -> EndpointError:
    """400: the request is malformed or names something that does not exist."""
    return EndpointError(400, "ValidationError", message)


def model_error(message: str, original_status: int, original_message: str) -> EndpointError:
    """424: the model (Triton) answered with an error; SageMaker passes the original on."""
    return EndpointError(
        424, "ModelError", message, {"OriginalStatusCode": original_status, "OriginalMessage": original_message}
    )


def payload_too_large(limit: int) -> EndpointError:
    return EndpointError(413, "ValidationError", f"Request payload exceeds the {limit // (1 << 20)} MB limit")


def service_unavailable(message: str) -> EndpointError:
    """503: the model server is down (it is being restarted) or overloaded."""
    return EndpointError(503, "ServiceUnavailable", message)


def model_timeout(seconds: float) -> EndpointError:
    return EndpointError(424, "ModelError", f"Model did not respond within {seconds:g} s",
                         {"OriginalStatusCode": 504, "OriginalMessage": "invocation timed out"})
