"""moto's real server on loopback, one per test module: S3, SageMaker, IAM, Application Auto Scaling… on one URL.

A real HTTP server rather than in-process patches, so the code under test goes through
boto3's whole stack (signing, serialisation, endpoint URLs) exactly as against AWS.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tritonmm.loadtest.local_endpoint import wait_until_ready
from tritonmm.server.triton_process import free_port

REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}


def aws_client(url: str, service: str):
    """A boto3 client of ``service`` on moto's server, with moto's dummy credentials."""
    return boto3.client(service, endpoint_url=url, region_name=REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture(scope="module")
def s3_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a moto server started for this module (every AWS service, not only S3); stopped by PID after it."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    process = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                               stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, f"{url}/moto-api/data.json", timeout_s=60)  # moto's own state API: 200 once up
    except RuntimeError as exc:
        process.terminate()
        pytest.fail(f"moto server {exc}: {log.read_text()}")
    yield url
    process.terminate()
    process.wait(timeout=30)
