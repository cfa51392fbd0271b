"""The multi-model endpoint, really started, called with the stock boto3 SageMaker Runtime client."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from botocore.exceptions import ClientError

from tritonmm.export.archive import package_pipeline
from tritonmm.export.fraud import PIPELINE
from tritonmm.export.transactions import generate_transactions

from tritonmm.loadtest.payloads import fraud_kserve_json as kserve_json
from tritonmm.loadtest.local_endpoint import RunningEndpoint, start_endpoint
from .mme_fixtures import (
    OPS_API_KEY, TENANT_A_SECRET, build_store, expected_probability, probabilities, runtime_client, write_auth,
)

OPS = {"X-Api-Key": OPS_API_KEY}


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return generate_transactions(20_000, seed=11).iloc[::250].head(40).reset_index(drop=True)


@pytest.fixture(scope="module")
def store(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store")
    build_store(repository, root)
    return root


@pytest.fixture(scope="module")
def endpoint(store: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("endpoint")
    # As in the endpoint's container image: the endpoint on every interface, its Triton on loopback.
    running = start_endpoint(root, str(store), auth=write_auth(root / "auth.json"), env={"TENANT_A_SECRET": TENANT_A_SECRET},
                             extra=("--endpoint-host=0.0.0.0",))
    yield running
    running.stop()


def listening_addresses(port: int) -> set[str]:
    """IPv4 addresses with a socket listening on ``port`` (from /proc/net/tcp; state 0A = LISTEN)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
    return found


def test_endpoint_host_opens_the_endpoint_but_not_its_triton(endpoint) -> None:
    endpoint_port = int(endpoint.url.rsplit(":", 1)[1])
    triton_port = int(endpoint.triton_url.rsplit(":", 1)[1])
    assert listening_addresses(endpoint_port) == {"0.0.0.0"}
    assert listening_addresses(triton_port) == {"127.0.0.1"}


def test_off_loopback_without_auth_is_refused_before_anything_starts(store: Path, tmp_path: Path) -> None:
    answer = subprocess.run([sys.executable, "-m", "tritonmm.cli", "serve", f"--store={store}", "--endpoint-host=0.0.0.0",
                             f"--model-repository={tmp_path}", f"--cache-dir={tmp_path / 'cache'}"],
                            capture_output=True, text=True, timeout=60)
    assert answer.returncode == 2 and "pass --auth" in answer.stderr, answer.stderr


def invoke_ops(endpoint: RunningEndpoint, target: str, body: bytes) -> httpx.Response:
    return endpoint.invoke(target, body, OPS)


def test_boto3_cold_then_warm_calls_score_correctly(endpoint, repository, rows) -> None:
    client = runtime_client(endpoint.url)
    expected = expected_probability(repository, rows)
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        answer = client.invoke_endpoint(EndpointName="local", TargetModel="company_a/fraud-a_1.tar.gz",
                                        ContentType="application/json", Body=kserve_json(rows))
        timings.append(time.perf_counter() - started)
        np.testing.assert_allclose(probabilities(answer["Body"].read()), expected, atol=1e-5)
        assert answer["InvokedProductionVariant"] == "AllTraffic"
    assert timings[1] < timings[0] and timings[2] < timings[0], timings


def test_access_denied_for_another_tenants_archive(endpoint, rows) -> None:
    with pytest.raises(ClientError) as info:
        runtime_client(endpoint.url).invoke_endpoint(EndpointName="local", TargetModel="company_b/fraud-b_1.tar.gz",
                                                     ContentType="application/json", Body=kserve_json(rows))
    error = info.value.response["Error"]
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert error["Code"] == "AccessDeniedException" and "company_b/fraud-b_1.tar.gz" in error["Message"]


def test_bad_signature_and_unknown_key(endpoint, rows) -> None:
    for client, code in ((runtime_client(endpoint.url, secret="wrong"), "InvalidSignatureException"),
                         (runtime_client(endpoint.url, key_id="AKIAUNKNOWN000000000"), "UnrecognizedClientException")):
        with pytest.raises(ClientError) as info:
            client.invoke_endpoint(EndpointName="local", TargetModel="company_a/fraud-a_1.tar.gz",
                                   ContentType="application/json", Body=kserve_json(rows))
        assert info.value.response["Error"]["Code"] == code
    anonymous = httpx.post(f"{endpoint.url}/endpoints/local/invocations", content=kserve_json(rows),
                           headers={"X-Amzn-SageMaker-Target-Model": "fraud_1.tar.gz"})
    assert anonymous.status_code == 403 and TENANT_A_SECRET not in endpoint.log.read_text()


def test_unknown_and_malformed_targets(endpoint, rows) -> None:
    with pytest.raises(ClientError) as info:
        runtime_client(endpoint.url).invoke_endpoint(EndpointName="local", TargetModel="company_a/nope_9.tar.gz",
                                                     ContentType="application/json", Body=kserve_json(rows))
    assert info.value.response["Error"]["Code"] == "ValidationError"
    assert "company_a/nope_9.tar.gz" in info.value.response["Error"]["Message"]
    for target in ("../fraud_1.tar.gz", "/etc/passwd", "company_a/../fraud_1.tar.gz", "fraud_1", "a\\b.tar.gz"):
        answer = invoke_ops(endpoint, target, kserve_json(rows))
        assert answer.status_code == 400 and answer.json()["__type"] == "ValidationError", target
    assert invoke_ops(endpoint, "", kserve_json(rows)).status_code == 400


def test_payload_over_6_mb_is_413(endpoint) -> None:
    answer = invoke_ops(endpoint, "fraud_1.tar.gz", b"x" * (6 * 1024 * 1024 + 1))
    assert answer.status_code == 413


def test_bodies_triton_would_answer_500_get_400(endpoint, rows) -> None:
    negative = json.loads(kserve_json(rows.head(1)))
    negative["inputs"][0]["shape"] = [-1, 1]
    for body, needle in ((b"{not json", "not valid JSON"), (json.dumps(negative).encode(), "shape[0]"),
                         (b'{"inputs": []}', "inputs")):
        answer = invoke_ops(endpoint, "fraud_1.tar.gz", body)
        assert answer.status_code == 400 and needle in answer.json()["message"], answer.text


def test_model_errors_are_424_with_the_original(endpoint, rows) -> None:
    body = json.loads(kserve_json(rows.head(2)))
    amount = next(i for i in body["inputs"] if i["name"] == "Amount")
    amount["data"][1] = "abc"
    answer = invoke_ops(endpoint, "fraud_1.tar.gz", json.dumps(body).encode())
    assert answer.status_code == 424, answer.text
    error = answer.json()
    assert error["__type"] == "ModelError" and error["OriginalStatusCode"] == 400
    assert "Amount" in error["OriginalMessage"]
    assert invoke_ops(endpoint, "fraud_1.tar.gz", kserve_json(rows)).status_code == 200


def test_two_versions_loaded_side_by_side(endpoint, repository, rows) -> None:
    expected = expected_probability(repository, rows)
    for target in ("fraud_1.tar.gz", "fraud_2.tar.gz"):
        answer = invoke_ops(endpoint, target, kserve_json(rows))
        assert answer.status_code == 200, answer.text
        np.testing.assert_allclose(probabilities(answer.content), expected, atol=1e-5)
    loaded = httpx.get(f"{endpoint.url}/models/loaded", headers=OPS).json()["models"]
    defaults = {m["target"]: m["default_model"] for m in loaded}
    assert defaults["fraud_1.tar.gz"] == "fraud__1__fraud" and defaults["fraud_2.tar.gz"] == "fraud__2__fraud"


def test_hot_added_archive_is_callable_without_restart(endpoint, store, repository, rows) -> None:
    package_pipeline(repository, PIPELINE, version="7", out_dir=store / "common")
    listed = [m["target"] for m in httpx.get(f"{endpoint.url}/models", headers=OPS).json()["models"]]
    assert "common/fraud_7.tar.gz" in listed
    answer = runtime_client(endpoint.url).invoke_endpoint(EndpointName="local", TargetModel="common/fraud_7.tar.gz",
                                                          ContentType="application/json", Body=kserve_json(rows))
    assert len(probabilities(answer["Body"].read())) == len(rows)


def test_concurrent_first_calls_share_one_load(endpoint, store, repository, rows) -> None:
    package_pipeline(repository, PIPELINE, version="8", out_dir=store)
    loads_before = endpoint.metric("ModelLoadingTime_count")
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda _: invoke_ops(endpoint, "fraud_8.tar.gz", kserve_json(rows.head(3))), range(12)))
    assert [a.status_code for a in answers] == [200] * 12
    assert endpoint.metric("ModelLoadingTime_count") == loads_before + 1


def test_control_api_load_and_unload(endpoint) -> None:
    assert httpx.post(f"{endpoint.url}/models/fraud_2.tar.gz/load", headers=OPS, timeout=120).status_code == 200
    assert httpx.delete(f"{endpoint.url}/models/fraud_2.tar.gz", headers=OPS, timeout=120).status_code == 200
    loaded = [m["target"] for m in httpx.get(f"{endpoint.url}/models/loaded", headers=OPS).json()["models"]]
    assert "fraud_2.tar.gz" not in loaded
    assert httpx.delete(f"{endpoint.url}/models/fraud_2.tar.gz", headers=OPS, timeout=120).status_code == 400


def evil_archive(path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(member, io.BytesIO(data) if data else None)
    return path


def test_malicious_archives_are_rejected_and_write_nothing_outside(endpoint, store, tmp_path, rows) -> None:
    escape = tmp_path / "escaped.txt"
    traversal = tarfile.TarInfo(f"../../../../../../../..{escape}")
    traversal.size = 4
    evil_archive(store / "evil-traversal_1.tar.gz", traversal, b"evil")
    link = tarfile.TarInfo("model/link")
    link.type, link.linkname = tarfile.SYMTYPE, str(escape)
    evil_archive(store / "evil-link_1.tar.gz", link)
    for target in ("evil-traversal_1.tar.gz", "evil-link_1.tar.gz"):
        answer = invoke_ops(endpoint, target, kserve_json(rows))
        assert answer.status_code == 400 and "is invalid" in answer.json()["message"], answer.text
    assert not escape.exists()
    assert invoke_ops(endpoint, "fraud_1.tar.gz", kserve_json(rows)).status_code == 200


def test_metrics_use_sagemaker_names(endpoint) -> None:
    text = httpx.get(f"{endpoint.url}/metrics").text
    for name in ("LoadedModelCount", "ModelCacheHit", "ModelLoadingWaitTime", "ModelDownloadingTime", "ModelLoadingTime",
                 "ModelUnloadingTime", "MemoryUtilization", "Invocations_total", "InvocationErrors_total", "ModelLatency"):
        assert name in text, name
    assert endpoint.metric("LoadedModelCount") >= 1
    assert httpx.get(endpoint.triton_url.replace("http://", "http://") + "/v2/health/live").status_code == 200
