"""Archives, auth config and request bodies shared by the multi-model endpoint tests."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import xgboost as xgb
from botocore.config import Config

from tritonmm.export.archive import package_pipeline
from tritonmm.export.fraud import PIPELINE, PREPROCESS, SPEC_FILE, XGBOOST, raw_columns
from tritonmm.export.model_config import VERSION
from tritonmm.server.mme.auth import hash_api_key
from tritonmm.server.models.fraud_preprocess.features import FeatureSpec, featurize

TENANT_A_KEY_ID, TENANT_A_SECRET = "AKIATENANTA0000000001", "tenant-a-secret-not-for-logs"
OPS_API_KEY = "ops-key-not-for-logs"


def build_store(repository: Path, store: Path) -> dict[str, Path]:
    """fraud_1, fraud_2, company_a/fraud-a_1, company_b/fraud-b_1 (all the same trained pipeline)."""
    return {
        "fraud_1.tar.gz": package_pipeline(repository, PIPELINE, version="1", out_dir=store),
        "fraud_2.tar.gz": package_pipeline(repository, PIPELINE, version="2", out_dir=store),
        "company_a/fraud-a_1.tar.gz": package_pipeline(repository, PIPELINE, version="1", name="fraud-a", out_dir=store / "company_a"),
        "company_b/fraud-b_1.tar.gz": package_pipeline(repository, PIPELINE, version="1", name="fraud-b", out_dir=store / "company_b"),
    }


def write_auth(path: Path) -> Path:
    path.write_text(json.dumps({
        "tenants": [
            {"name": "tenant_a", "allow": ["company_a/*", "common/*"],
             "aws_access_key_id": TENANT_A_KEY_ID, "aws_secret_access_key": "env:TENANT_A_SECRET"},
            {"name": "ops", "allow": ["*"], "api_keys_sha256": [hash_api_key(OPS_API_KEY)]},
        ],
    }))
    return path


def runtime_client(url: str, *, key_id: str = TENANT_A_KEY_ID, secret: str = TENANT_A_SECRET):
    """The stock boto3 SageMaker Runtime client, pointed at the local endpoint, no retries."""
    return boto3.client(
        "sagemaker-runtime", endpoint_url=url, region_name="us-east-1",
        aws_access_key_id=key_id, aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=120),
    )


def expected_probability(repository: Path, frame: pd.DataFrame) -> np.ndarray:
    spec = FeatureSpec.load(repository / PREPROCESS / VERSION / SPEC_FILE)
    booster = xgb.Booster(model_file=str(repository / XGBOOST / VERSION / "xgboost.json"))
    return booster.inplace_predict(featurize(raw_columns(frame), spec))


def probabilities(answer: bytes) -> np.ndarray:
    outputs = {o["name"]: o for o in json.loads(answer)["outputs"]}
    return np.asarray(outputs["probability"]["data"], dtype=np.float32)
