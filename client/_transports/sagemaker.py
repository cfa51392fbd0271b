"""Amazon SageMaker multi-model endpoints (and the project's local one) through boto3's InvokeEndpoint.

The body is a KServe v2 request in Triton's binary tensor extension, which
SageMaker's Triton containers and the local endpoint accept under the content
type ``application/vnd.sagemaker-triton.binary+json;json-header-size=N`` (N: the
length of the JSON header that precedes the raw tensors); the answer comes back
in the same form. tritonclient's own ``generate_request_body`` /
``parse_response_body`` write and read it, so the bytes are exactly those
tritonclient sends to Triton over HTTP.

SageMaker has no metadata API: schemas come from the caller (``schemas=``) or
the built-in pipeline schemas. Every call goes to ``target_model``'s default
model; the ``model`` argument picks the schema the request is checked against.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict, Unpack

import numpy as np
import tritonclient.http as httpclient

from .._errors import ModelNotFound
from .._types import ModelConfig, Tensors
from ._triton import infer_inputs, requested_outputs, result_arrays

BINARY_CONTENT_TYPE = "application/vnd.sagemaker-triton.binary+json"
JSON_CONTENT_TYPE = "application/json"
_HEADER_SIZE = re.compile(r";\s*json-header-size\s*=\s*(\d+)")


def encode_request(inputs: Tensors, outputs: Sequence[str] | None) -> tuple[bytes, str]:
    """A KServe v2 binary-extension body for ``inputs`` and its content type.

    Examples
    --------
    >>> import numpy as np
    >>> body, content_type = encode_request({"x": np.ones((1, 2), np.float32)}, None)
    >>> content_type, len(body) - int(content_type.rsplit("=", 1)[1])
    ('application/vnd.sagemaker-triton.binary+json;json-header-size=134', 8)
    """
    body, header_size = httpclient.InferenceServerClient.generate_request_body(
        infer_inputs(httpclient, inputs, binary_data=True),
        outputs=requested_outputs(httpclient, outputs, binary_data=True))
    if header_size is None:  # no tensor data outside the JSON (e.g. zero-size inputs)
        return body, JSON_CONTENT_TYPE
    return body, f"{BINARY_CONTENT_TYPE};json-header-size={header_size}"


def decode_response(body: bytes, content_type: str) -> dict[str, np.ndarray]:
    """The outputs in a KServe v2 answer, JSON or binary extension (told apart by ``content_type``)."""
    match = _HEADER_SIZE.search(content_type)
    result = httpclient.InferenceServerClient.parse_response_body(
        body, header_length=int(match.group(1)) if match else None)
    return result_arrays(result, [output["name"] for output in result.get_response()["outputs"]])


class SageMakerTransport:
    """Blocking transport over a boto3 ``sagemaker-runtime`` client (thread-safe, as boto3 clients are).

    Parameters
    ----------
    runtime : botocore client
        ``boto3.client("sagemaker-runtime", ...)``, configured by the caller
        (region, credentials, timeouts, retries off: the SDK retries itself).
    endpoint_name, target_model : str
        Where to send: ``TargetModel`` is the archive's key in the endpoint's
        model store, e.g. ``"fraud_2.tar.gz"``.
    schemas : mapping
        Model name -> :class:`ModelConfig` for every model callers will name.
    """

    def __init__(self, runtime: Any, *, endpoint_name: str, target_model: str,
                 schemas: Mapping[str, ModelConfig]) -> None:
        self._runtime = runtime
        self._endpoint_name = endpoint_name
        self._target_model = target_model
        self._schemas = dict(schemas)

    def model_config(self, model: str) -> ModelConfig:
        try:
            return self._schemas[model]
        except KeyError:
            raise ModelNotFound(
                f"{model}: SageMaker has no metadata API and no schema was given for this model "
                f"(known: {', '.join(sorted(self._schemas)) or 'none'}; pass schemas={{{model!r}: ...}})") from None

    def infer(self, model: str, inputs: Tensors, outputs: Sequence[str] | None) -> dict[str, np.ndarray]:
        body, content_type = encode_request(inputs, outputs)
        answer = self._runtime.invoke_endpoint(
            EndpointName=self._endpoint_name, TargetModel=self._target_model, ContentType=content_type, Body=body)
        return decode_response(answer["Body"].read(), answer.get("ContentType", JSON_CONTENT_TYPE))

    def close(self) -> None:
        self._runtime.close()


class AsyncSageMakerTransport:
    """asyncio face of :class:`SageMakerTransport`: boto3 is blocking, so each call runs in a worker thread."""

    def __init__(self, transport: SageMakerTransport) -> None:
        self._transport = transport

    async def model_config(self, model: str) -> ModelConfig:
        return self._transport.model_config(model)

    async def infer(self, model: str, inputs: Tensors, outputs: Sequence[str] | None) -> dict[str, np.ndarray]:
        return await asyncio.to_thread(self._transport.infer, model, inputs, outputs)

    async def close(self) -> None:
        self._transport.close()



class AwsOptions(TypedDict, total=False):
    """Where and as whom to call SageMaker; anything left out is boto3's default."""

    endpoint_url: str
    """Another endpoint than AWS's, e.g. the local one: ``"http://127.0.0.1:8080"``."""
    region_name: str
    session: Any
    """A ``boto3.Session`` to create the client from."""
    aws_access_key_id: str
    aws_secret_access_key: str
    aws_session_token: str
    anonymous: bool
    """Send unsigned requests (only the local endpoint started without ``--auth`` accepts them)."""


def connect(*, endpoint_name: str, target_model: str, schemas: Mapping[str, ModelConfig], timeout: float,
            **aws: Unpack[AwsOptions]) -> SageMakerTransport:
    """A :class:`SageMakerTransport` over a new boto3 ``sagemaker-runtime`` client.

    botocore's own retries are switched off: the SDK's policy decides, the same
    for every transport.
    """
    try:
        import boto3  # noqa: PLC0415 - optional dependency (the ``sagemaker`` extra)
        import botocore  # noqa: PLC0415
        from botocore.config import Config  # noqa: PLC0415
    except ImportError as exc:
        raise ImportError("the SageMaker transport needs boto3: pip install 'tritonmm-client[sagemaker]'") from exc
    options: dict[str, Any] = dict(aws)
    session = options.pop("session", None) or boto3.Session()
    unsigned = options.pop("anonymous", False)
    config = Config(connect_timeout=timeout, read_timeout=timeout, retries={"total_max_attempts": 1},
                    signature_version=botocore.UNSIGNED if unsigned else None)
    runtime = session.client("sagemaker-runtime", config=config, **options)
    return SageMakerTransport(runtime, endpoint_name=endpoint_name, target_model=target_model, schemas=schemas)
