"""Locust users for the three ways into the server: Triton HTTP, Triton gRPC and the multi-model endpoint.

Each abstract user wraps one client and reports every call as a locust request event, so one run
compares the protocols in the same tables; concrete users (the locustfile) only declare tasks.
Addresses come from environment variables set by ``loadtest.run`` (or by hand), falling back to
locust's ``--host`` for the two HTTP users:

- ``LOADTEST_TRITON_URL`` (``http://127.0.0.1:8000``), ``LOADTEST_TRITON_GRPC`` (``127.0.0.1:8001``),
  ``LOADTEST_TRITON_MODEL`` (the Triton model name the Triton users call);
- ``LOADTEST_ENDPOINT_URL`` (``http://127.0.0.1:8080``), ``LOADTEST_TARGETS`` (comma-separated archives).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from functools import cache

# gRPC's C core blocks gevent's hub unless it is told to cooperate (locust's own gRPC example does this).
import grpc.experimental.gevent as grpc_gevent
import numpy as np
import tritonclient.grpc as triton_grpc
from geventhttpclient import HTTPClient
from geventhttpclient.url import URL
from locust import User

from tritonmm.export.transactions import generate_transactions
from tritonmm.loadtest.payloads import fraud_kserve_json

grpc_gevent.init_gevent()

ROWS = int(os.environ.get("LOADTEST_ROWS", "8"))
TARGET_HEADER = "X-Amzn-SageMaker-Target-Model"


@cache
def request_body() -> bytes:
    """One KServe v2 JSON request of ``LOADTEST_ROWS`` transactions, shared by every user of the process."""
    return fraud_kserve_json(generate_transactions(ROWS, seed=1))


def grpc_inputs() -> list[triton_grpc.InferInput]:
    """The same request as :func:`request_body`, as gRPC tensors (so all protocols send identical data)."""
    inputs = []
    for spec in json.loads(request_body())["inputs"]:
        dtype = np.float32 if spec["datatype"] == "FP32" else np.object_
        tensor = triton_grpc.InferInput(spec["name"], spec["shape"], spec["datatype"])
        tensor.set_data_from_numpy(np.asarray(spec["data"], dtype=dtype).reshape(spec["shape"]))
        inputs.append(tensor)
    return inputs


class TimedUser(User):
    """Times a call and fires locust's request event with its outcome."""

    abstract = True

    def timed(self, request_type: str, name: str, call: Callable[[], int]) -> None:
        """Run ``call`` (returns the response length); any exception counts as a failure, never stops the user."""
        started = time.perf_counter()
        length, exception = 0, None
        try:
            length = call()
        except Exception as error:  # noqa: BLE001 - every failure is a data point for the report
            exception = error
        self.environment.events.request.fire(
            request_type=request_type, name=name, response_time=(time.perf_counter() - started) * 1e3,
            response_length=length, exception=exception, context={},
        )


class _HttpJsonUser(TimedUser):
    """POSTs KServe JSON over a gevent-native keep-alive connection (cheap on CPU, unlike a full HTTP stack)."""

    abstract = True
    url_env = ""

    def on_start(self) -> None:
        self.base = URL(os.environ.get(self.url_env) or self.host)
        self.http = HTTPClient.from_url(self.base, concurrency=1, network_timeout=60, connection_timeout=10)

    def on_stop(self) -> None:
        self.http.close()

    def post(self, request_type: str, name: str, path: str, headers: dict[str, str]) -> None:
        def call() -> int:
            response = self.http.post(path, body=request_body(), headers={"Content-Type": "application/json", **headers})
            content = response.read()
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}: {content[:300]!r}")
            return len(content)

        self.timed(request_type, name, call)


class TritonHttpUser(_HttpJsonUser):
    """Triton's KServe v2 HTTP API, ``POST /v2/models/<model>/infer``."""

    abstract = True
    url_env = "LOADTEST_TRITON_URL"

    def infer(self) -> None:
        model = os.environ.get("LOADTEST_TRITON_MODEL", "fraud")
        self.post("triton-http", model, f"/v2/models/{model}/infer", {})


class EndpointUser(_HttpJsonUser):
    """The multi-model endpoint's InvokeEndpoint, one archive per call from ``targets()``."""

    abstract = True
    url_env = "LOADTEST_ENDPOINT_URL"
    endpoint_name = "local"

    def on_start(self) -> None:
        super().on_start()
        self.calls = 0

    def targets(self) -> list[str]:
        """Archives to call in turn; a scenario may change them over time (see ``scenarios.ChurnShape``)."""
        phase_targets = getattr(self.environment.shape_class, "targets", None)
        return phase_targets() if phase_targets else os.environ.get("LOADTEST_TARGETS", "fraud_0.tar.gz").split(",")

    def invoke(self) -> None:
        targets = self.targets()
        target = targets[self.calls % len(targets)]
        self.calls += 1
        self.post("mme", "invoke", f"/endpoints/{self.endpoint_name}/invocations", {TARGET_HEADER: target})


class TritonGrpcUser(TimedUser):
    """Triton's KServe v2 gRPC API through ``tritonclient.grpc``."""

    abstract = True

    def on_start(self) -> None:
        self.client = triton_grpc.InferenceServerClient(os.environ.get("LOADTEST_TRITON_GRPC", "127.0.0.1:8001"))
        self.inputs = grpc_inputs()

    def on_stop(self) -> None:
        self.client.close()

    def infer(self) -> None:
        model = os.environ.get("LOADTEST_TRITON_MODEL", "fraud")

        def call() -> int:
            result = self.client.infer(model, self.inputs)
            return sum(len(raw) for raw in result.get_response().raw_output_contents)

        self.timed("triton-grpc", model, call)
