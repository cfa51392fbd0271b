"""What the transports put on the wire, without a server: config JSON, SageMaker bodies, shared-memory layout."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from tritonmm.client import InvalidInput, ModelConfig, ModelNotFound
from tritonmm.client._client import Client
from tritonmm.client._transports._shm import SharedMemoryCall
from tritonmm.client._transports._triton import config_from_triton
from tritonmm.client._transports.http import split_url
from tritonmm.client._transports.sagemaker import SageMakerTransport, decode_response, encode_request

HTTP_CONFIG = {"name": "m", "max_batch_size": 8, "input": [
    {"name": "x", "data_type": "TYPE_FP32", "dims": [3], "optional": False},
    {"name": "s", "data_type": "TYPE_STRING", "dims": [-1], "optional": True}],
    "output": [{"name": "y", "data_type": "TYPE_INT64", "dims": [1]}]}
GRPC_CONFIG = {"name": "m", "max_batch_size": 8, "input": [  # gRPC's as_json: int64 as strings, defaults omitted
    {"name": "x", "data_type": "TYPE_FP32", "dims": ["3"]},
    {"name": "s", "data_type": "TYPE_STRING", "dims": ["-1"], "optional": True}],
    "output": [{"name": "y", "data_type": "TYPE_INT64", "dims": ["1"]}]}
SCHEMA: ModelConfig = {"max_batch_size": 8,
                       "inputs": [{"name": "x", "datatype": "FP32", "dims": [3]},
                                  {"name": "s", "datatype": "BYTES", "dims": [-1], "optional": True}],
                       "outputs": [{"name": "y", "datatype": "INT64", "dims": [1]}]}


def test_triton_config_json_from_http_and_grpc() -> None:
    assert config_from_triton(HTTP_CONFIG) == config_from_triton(GRPC_CONFIG) == SCHEMA
    assert config_from_triton({"name": "plain", "input": [{"name": "x", "data_type": "TYPE_BOOL"}]}) == {
        "max_batch_size": 0, "inputs": [{"name": "x", "datatype": "BOOL", "dims": []}], "outputs": []}


@pytest.mark.parametrize(("url", "expected"), [
    ("127.0.0.1:8000", ("127.0.0.1:8000", False)), ("http://127.0.0.1:8000/", ("127.0.0.1:8000", False)),
    ("https://triton.example/base", ("triton.example/base", True))])
def test_http_urls_may_carry_a_scheme(url: str, expected: tuple[str, bool]) -> None:
    assert split_url(url) == expected


# --- SageMaker bodies ------------------------------------------------------------------------------


def binary_answer(outputs: dict[str, tuple[str, np.ndarray]]) -> tuple[bytes, str]:
    """A KServe v2 binary-extension answer, as Triton (and the endpoint) send it."""
    header, blobs = {"model_name": "m", "outputs": []}, []
    for name, (datatype, array) in outputs.items():
        if datatype == "BYTES":
            blob = b"".join(struct.pack("<I", len(v)) + v for v in array.reshape(-1))
        else:
            blob = array.tobytes()
        header["outputs"].append({"name": name, "datatype": datatype, "shape": list(array.shape),
                                  "parameters": {"binary_data_size": len(blob)}})
        blobs.append(blob)
    head = json.dumps(header).encode()
    return head + b"".join(blobs), f"application/vnd.sagemaker-triton.binary+json;json-header-size={len(head)}"


def test_request_body_is_the_binary_extension() -> None:
    inputs = {"x": np.arange(6, dtype=np.float32).reshape(2, 3), "s": np.array([["ab"], ["é"]])}
    body, content_type = encode_request(inputs, ["y"])
    size = int(content_type.removeprefix("application/vnd.sagemaker-triton.binary+json;json-header-size="))
    header = json.loads(body[:size])
    assert [(t["name"], t["datatype"], t["shape"]) for t in header["inputs"]] == [("x", "FP32", [2, 3]),
                                                                                ("s", "BYTES", [2, 1])]
    assert header["outputs"] == [{"name": "y", "parameters": {"binary_data": True}}]
    raw = body[size:]
    assert raw[:24] == inputs["x"].tobytes()
    assert raw[24:] == struct.pack("<I", 2) + b"ab" + struct.pack("<I", 2) + "é".encode()


def test_answers_in_either_form_decode_to_arrays() -> None:
    y = np.array([[1], [2]], np.int64)
    labels = np.array([[b"FRAUD"], [b"NOT FRAUD"]], dtype=object)
    body, content_type = binary_answer({"y": ("INT64", y), "label": ("BYTES", labels)})
    decoded = decode_response(body, content_type)
    np.testing.assert_array_equal(decoded["y"], y)
    assert decoded["label"].tolist() == labels.tolist()
    plain = json.dumps({"outputs": [{"name": "y", "datatype": "INT64", "shape": [2, 1], "data": [1, 2]}]}).encode()
    np.testing.assert_array_equal(decode_response(plain, "application/json")["y"], y)


class RecordingRuntime:
    """Stands in for boto3's sagemaker-runtime client."""

    def __init__(self, answer: tuple[bytes, str]) -> None:
        self.answer, self.calls = answer, []

    def invoke_endpoint(self, **request: object) -> dict:
        self.calls.append(request)
        return {"Body": io.BytesIO(self.answer[0]), "ContentType": self.answer[1]}

    def close(self) -> None:
        pass


def test_sagemaker_transport_sends_to_the_target_and_checks_against_the_schema() -> None:
    runtime = RecordingRuntime(binary_answer({"y": ("INT64", np.array([[7]], np.int64))}))
    transport = SageMakerTransport(runtime, endpoint_name="ep", target_model="m_1.tar.gz", schemas={"m": SCHEMA})
    client = Client(transport)
    assert client.infer("m", {"x": np.zeros((1, 3), np.float32)})["y"].tolist() == [[7]]
    (call,) = runtime.calls
    assert (call["EndpointName"], call["TargetModel"]) == ("ep", "m_1.tar.gz")
    assert call["ContentType"].startswith("application/vnd.sagemaker-triton.binary+json;json-header-size=")
    with pytest.raises(InvalidInput, match="^x: expected FP32"):
        client.infer("m", {"x": np.zeros((1, 3), np.int32)})
    with pytest.raises(ModelNotFound, match=r"^other: SageMaker has no metadata API .*known: m"):
        client.infer("other", {"x": np.zeros((1, 3), np.float32)})
    assert len(runtime.calls) == 1


# --- shared memory ---------------------------------------------------------------------------------


class ShmResult:
    """The part of an HTTP InferResult that SharedMemoryCall reads."""

    def __init__(self, outputs: dict[str, dict], inline: dict[str, np.ndarray]) -> None:
        self.outputs, self.inline = outputs, inline

    def get_output(self, name: str) -> dict:
        return self.outputs[name]

    def as_numpy(self, name: str) -> np.ndarray:
        return self.inline[name]


def test_shared_memory_layout_and_lifetime() -> None:
    import tritonclient.http as httpclient

    config: ModelConfig = {"max_batch_size": 8,
                           "inputs": [{"name": "a", "datatype": "FP32", "dims": [2]},
                                      {"name": "s", "datatype": "BYTES", "dims": [1]},
                                      {"name": "b", "datatype": "INT64", "dims": [1]}],
                           "outputs": [{"name": "p", "datatype": "FP32", "dims": [1]},
                                       {"name": "label", "datatype": "BYTES", "dims": [1]},
                                       {"name": "ragged", "datatype": "FP32", "dims": [-1]}]}
    inputs = {"a": np.ones((3, 2), np.float32), "s": np.array([[b"x"]] * 3, dtype=object),
              "b": np.arange(3, dtype=np.int64).reshape(3, 1)}
    with SharedMemoryCall(httpclient, config, inputs, None) as call:
        assert Path("/dev/shm", call.name).exists() and call.key == f"/{call.name}"
        assert call.byte_size == 24 + 24 + 12  # a, b, then p: 3 rows x 1 x FP32
        tensors = {t.name(): t._get_tensor() for t in call.inputs(binary_data=True)}
        assert tensors["s"]["parameters"] == {"binary_data_size": 3 * (4 + 1)}
        assert tensors["a"]["parameters"] == {"shared_memory_region": call.name, "shared_memory_byte_size": 24}
        assert tensors["b"]["parameters"] == {"shared_memory_region": call.name, "shared_memory_byte_size": 24,
                                              "shared_memory_offset": 24}
        outputs = {t.name(): t._get_tensor()["parameters"] for t in call.outputs(binary_data=True)}
        assert outputs["label"] == outputs["ragged"] == {"binary_data": True}
        assert outputs["p"]["shared_memory_offset"] == 48 and outputs["p"]["shared_memory_byte_size"] == 12
        region = np.frombuffer(Path("/dev/shm", call.name).read_bytes(), np.uint8)
        np.testing.assert_array_equal(region[24:48].view(np.int64), [0, 1, 2])  # the inputs are in place
        with open(f"/dev/shm/{call.name}", "r+b") as region_file:  # the server writes p
            region_file.seek(48)
            region_file.write(np.array([0.5, 0.25, 0.125], np.float32).tobytes())
        result = ShmResult({"p": {"name": "p", "datatype": "FP32", "shape": [3, 1]}},
                           {"label": inputs["s"], "ragged": np.zeros((3, 2), np.float32)})
        read = call.read(result)
        assert read["p"].tolist() == [[0.5], [0.25], [0.125]] and set(read) == {"p", "label", "ragged"}
    assert not Path("/dev/shm", call.name).exists()
    assert read["p"].sum() == 0.875  # copied out before the region went away


def test_unregister_waits_while_triton_still_holds_the_region() -> None:
    from tritonclient.utils import InferenceServerException

    from tritonmm.client._transports._shm import unregister, unregister_async

    def releaser(failures: list[Exception]):
        calls = []

        def release() -> None:
            calls.append(1)
            if failures:
                raise failures.pop(0)

        return release, calls

    in_use = InferenceServerException("Cannot unregister shared memory region 'r', it is currently in use.", "500")
    release, calls = releaser([in_use, in_use])
    unregister(release)
    assert len(calls) == 3
    release, calls = releaser([InferenceServerException("Unable to find system shared memory region: 'r'", "400")])
    with pytest.raises(InferenceServerException, match="Unable to find"):
        unregister(release)
    assert len(calls) == 1

    async def async_release() -> None:
        release()

    release, calls = releaser([in_use])
    import asyncio

    asyncio.run(unregister_async(async_release))
    assert len(calls) == 2
