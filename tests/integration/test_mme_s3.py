"""The endpoint over an S3 store: a real S3 API server (moto's server mode) on loopback, not in-process patches."""

from __future__ import annotations

from pathlib import Path

import boto3
import httpx
import numpy as np
import pytest

from tritonmm.export.transactions import generate_transactions

from tritonmm.loadtest.payloads import fraud_kserve_json as kserve_json
from tritonmm.loadtest.local_endpoint import start_endpoint
from .mme_fixtures import build_store, expected_probability, probabilities
from .moto_fixtures import CREDENTIALS, s3_url  # noqa: F401 - s3_url is a fixture


@pytest.fixture(scope="module")
def bucket(s3_url: str, repository: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.create_bucket(Bucket="models")
    for target, path in build_store(repository, tmp_path_factory.mktemp("local")).items():
        s3.upload_file(str(path), "models", f"mme/prefix/{target}")
    return "models"


def test_archives_from_s3_load_and_score(s3_url, bucket, repository, tmp_path) -> None:
    endpoint = start_endpoint(tmp_path / "ep", f"s3://{bucket}/mme/prefix/",
                              extra=(f"--s3-endpoint-url={s3_url}",), env=CREDENTIALS)
    try:
        listed = [m["target"] for m in httpx.get(f"{endpoint.url}/models").json()["models"]]
        assert listed == ["company_a/fraud-a_1.tar.gz", "company_b/fraud-b_1.tar.gz", "fraud_1.tar.gz", "fraud_2.tar.gz"]
        rows = generate_transactions(5_000, seed=4).head(8)
        for target in ("company_a/fraud-a_1.tar.gz", "fraud_2.tar.gz"):
            answer = endpoint.invoke(target, kserve_json(rows))
            assert answer.status_code == 200, answer.text
            np.testing.assert_allclose(probabilities(answer.content), expected_probability(repository, rows), atol=1e-5)
        missing = endpoint.invoke("nope_1.tar.gz", kserve_json(rows))
        assert missing.status_code == 400 and "nope_1.tar.gz" in missing.json()["message"]
        assert endpoint.metric("ModelDownloadingTime_count") >= 2
    finally:
        endpoint.stop()
