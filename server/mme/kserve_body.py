"""Validate a KServe v2 inference request before Triton sees it.

Triton 2.51's HTTP parser answers some malformed bodies (broken JSON, a
negative shape) with 500; the endpoint rejects them with a 400 naming the
field instead. Only the JSON header is read; binary tensor data (the binary
extension, SageMaker content type
``application/vnd.sagemaker-triton.binary+json;json-header-size=N``) is
forwarded untouched.
"""

from __future__ import annotations

import json
import re

from .errors import validation_error

BINARY_CONTENT_TYPE = "application/vnd.sagemaker-triton.binary+json"
_HEADER_SIZE = re.compile(r";\s*json-header-size\s*=\s*(\d+)")
DATATYPES = frozenset({"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
                       "FP16", "FP32", "FP64", "BYTES", "BF16"})


def json_header_length(content_type: str, header_length: str | None, body_length: int) -> int | None:
    """Length of the JSON part for a binary-extension body, or None for plain JSON."""
    declared = header_length
    match = _HEADER_SIZE.search(content_type or "")
    if match:
        declared = match.group(1)
    if declared is None:
        return None
    if not declared.isdigit() or int(declared) > body_length:
        raise validation_error(f"json-header-size {declared!r} is not a length within the {body_length}-byte body")
    return int(declared)


def _check_tensor(index: int, tensor: object, *, kind: str) -> None:
    where = f"{kind}[{index}]"
    if not isinstance(tensor, dict):
        raise validation_error(f"{where}: must be an object")
    if not isinstance(tensor.get("name"), str) or not tensor["name"]:
        raise validation_error(f"{where}.name: must be a non-empty string")
    if kind == "outputs":
        return
    shape = tensor.get("shape")
    if not isinstance(shape, list):
        raise validation_error(f"{where} ({tensor['name']}).shape: must be a list of non-negative integers")
    for axis, dim in enumerate(shape):
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 0:
            raise validation_error(f"{where} ({tensor['name']}).shape[{axis}]: {dim!r} is not a non-negative integer")
    if tensor.get("datatype") not in DATATYPES:
        raise validation_error(f"{where} ({tensor['name']}).datatype: {tensor.get('datatype')!r} is not a KServe v2 datatype")


def validate_request(body: bytes, header_length: int | None) -> None:
    """Raise a 400 :class:`EndpointError` naming the problem, or return if Triton can parse it."""
    header = body[:header_length] if header_length is not None else body
    try:
        request = json.loads(header)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise validation_error(f"request body is not valid JSON: {exc}") from None
    if not isinstance(request, dict):
        raise validation_error("request body must be a JSON object with an 'inputs' list")
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise validation_error("inputs: must be a non-empty list of tensors")
    for index, tensor in enumerate(inputs):
        _check_tensor(index, tensor, kind="inputs")
    outputs = request.get("outputs", [])
    if not isinstance(outputs, list):
        raise validation_error("outputs: must be a list")
    for index, tensor in enumerate(outputs):
        _check_tensor(index, tensor, kind="outputs")

