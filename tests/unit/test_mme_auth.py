"""MME authentication and authorisation, checked against requests signed by the real boto3 client.

The stock ``sagemaker-runtime`` client is pointed at an unreachable endpoint and a
``before-send`` hook captures each signed request and answers it, so no network
is used and the signatures are exactly what SDK users will send.
"""

from __future__ import annotations

import hashlib
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSPreparedRequest, AWSRequest, AWSResponse
from botocore.credentials import Credentials

from tritonmm.server.mme.auth import AuthConfig, AuthError, Tenant, authenticate, authorize, hash_api_key

ACCESS_KEY_A = "AKIAEXAMPLETENANTA01"
SECRET_A = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
API_KEY_B = "b-key-0123456789"
ENDPOINT = "fraud-mme"
TARGET = "company_a/fraud_2.tar.gz"

TENANT_A = Tenant(name="a", allow=("company_a/*", "common/*"), access_key_id=ACCESS_KEY_A, secret_access_key=SECRET_A)
TENANT_B = Tenant(name="b", allow=("company_b/*",), api_key_sha256=(hash_api_key(API_KEY_B),))
CONFIG = AuthConfig(tenants=(TENANT_A, TENANT_B), anonymous_allow=None)


def invoke_with_boto3(
    *,
    endpoint: str = ENDPOINT,
    target: str = TARGET,
    body: bytes = b'{"instances": [[1.0, 2.0]]}',
    content_type: str = "application/json",
    access_key: str = ACCESS_KEY_A,
    secret: str = SECRET_A,
) -> dict[str, Any]:
    """Sign an InvokeEndpoint call with boto3 and return it as ``authenticate`` keyword arguments."""
    captured: list[AWSPreparedRequest] = []

    def answer_locally(request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        # A non-None return from before-send is used as the HTTP response; InvokeEndpoint's
        # streaming Body only needs a raw object with read().
        captured.append(request)
        return AWSResponse(request.url, 200, {"Content-Type": "application/json"}, io.BytesIO(b"{}"))

    client = boto3.client(
        "sagemaker-runtime",
        endpoint_url="http://127.0.0.1:9",
        region_name="us-east-1",
        aws_access_key_id=access_key,
        aws_secret_access_key=secret,
    )
    client.meta.events.register("before-send.sagemaker-runtime.InvokeEndpoint", answer_locally)
    client.invoke_endpoint(EndpointName=endpoint, TargetModel=target, Body=body, ContentType=content_type)
    return as_received(captured[0])


def as_received(request: AWSPreparedRequest | AWSRequest) -> dict[str, Any]:
    """What a server sees: text headers plus the Host header urllib3 adds after signing."""
    url = urlsplit(request.url)
    headers = {name: value.decode() if isinstance(value, bytes) else value for name, value in request.headers.items()}
    headers["Host"] = url.netloc
    return {"method": request.method, "path": url.path, "query": url.query, "headers": headers, "body": request.body}


def signing_time(received: dict[str, Any]) -> datetime:
    return datetime.strptime(received["headers"]["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)


def refused(config: AuthConfig = CONFIG, **received: Any) -> AuthError:
    with pytest.raises(AuthError) as caught:
        authenticate(config, **received)
    return caught.value


# --- SigV4 --------------------------------------------------------------------------------------------------------


def test_boto3_signed_json_request_identifies_the_tenant() -> None:
    received = invoke_with_boto3()
    assert "x-amzn-sagemaker-target-model" in received["headers"]["Authorization"]
    assert authenticate(CONFIG, **received) is TENANT_A


def test_boto3_signed_binary_body_is_accepted() -> None:
    received = invoke_with_boto3(body=bytes(range(256)) * 64, content_type="application/octet-stream")
    assert authenticate(CONFIG, **received) is TENANT_A


def test_header_names_are_matched_case_insensitively() -> None:
    received = invoke_with_boto3()
    received["headers"] = {name.upper(): value for name, value in received["headers"].items()}
    assert authenticate(CONFIG, **received) is TENANT_A


def test_tampered_body_is_refused() -> None:
    received = invoke_with_boto3()
    received["body"] = b'{"instances": [[9.0, 2.0]]}'
    error = refused(**received)
    assert (error.status, error.code) == (403, "InvalidSignatureException")
    assert "does not match the signature you provided" in error.message


def test_target_model_changed_after_signing_is_refused() -> None:
    received = invoke_with_boto3()
    received["headers"]["X-Amzn-SageMaker-Target-Model"] = "company_b/fraud_2.tar.gz"
    assert refused(**received).code == "InvalidSignatureException"


def test_wrong_secret_is_refused() -> None:
    received = invoke_with_boto3(secret="not-the-secret")
    assert refused(**received).code == "InvalidSignatureException"


def test_non_ascii_signature_is_refused_not_crashed() -> None:
    received = invoke_with_boto3()
    received["headers"]["Authorization"] = received["headers"]["Authorization"][:-1] + "\u00e9"
    assert refused(**received).code == "InvalidSignatureException"


def test_unknown_access_key_is_refused() -> None:
    error = refused(**invoke_with_boto3(access_key="AKIAUNKNOWNKEY000000"))
    assert (error.status, error.code) == (403, "UnrecognizedClientException")
    assert error.message == "The security token included in the request is invalid."


def test_stale_signature_has_expired() -> None:
    received = invoke_with_boto3()
    error = refused(**received, now=signing_time(received) + timedelta(minutes=10))
    assert (error.status, error.code) == (403, "InvalidSignatureException")
    assert "Signature expired" in error.message


def test_signature_from_the_future_is_refused() -> None:
    received = invoke_with_boto3()
    error = refused(**received, now=signing_time(received) - timedelta(minutes=10))
    assert error.code == "InvalidSignatureException"
    assert "Signature not yet current" in error.message


def test_signature_within_the_allowed_skew_is_accepted() -> None:
    received = invoke_with_boto3()
    assert authenticate(CONFIG, **received, now=signing_time(received) + timedelta(minutes=4)) is TENANT_A


def test_credential_scope_date_must_match_x_amz_date() -> None:
    received = invoke_with_boto3()
    day = received["headers"]["X-Amz-Date"][:8]
    previous = (signing_time(received) - timedelta(days=1)).strftime("%Y%m%d")
    received["headers"]["Authorization"] = received["headers"]["Authorization"].replace(f"/{day}/", f"/{previous}/")
    error = refused(**received)
    assert error.code == "InvalidSignatureException"
    assert "Date in Credential scope does not match" in error.message


def test_credential_scope_must_name_sagemaker() -> None:
    request = AWSRequest(method="POST", url=f"http://127.0.0.1:9/endpoints/{ENDPOINT}/invocations", data=b"{}")
    SigV4Auth(Credentials(ACCESS_KEY_A, SECRET_A), "s3", "us-east-1").add_auth(request)
    error = refused(**as_received(request))
    assert error.code == "InvalidSignatureException"
    assert "correct service: 'sagemaker'" in error.message


def test_signed_payload_hash_header_cannot_vouch_for_another_body() -> None:
    # botocore's canonical request uses X-Amz-Content-SHA256 instead of hashing the body,
    # so a signed hash of the original body would otherwise cover any replacement body.
    request = AWSRequest(method="POST", url=f"http://127.0.0.1:9/endpoints/{ENDPOINT}/invocations", data=b"{}")
    request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(b"{}").hexdigest()
    SigV4Auth(Credentials(ACCESS_KEY_A, SECRET_A), "sagemaker", "us-east-1").add_auth(request)
    received = as_received(request)
    assert authenticate(CONFIG, **received) is TENANT_A
    received["body"] = b'{"evil": 1}'
    assert refused(**received).code == "InvalidSignatureException"


def test_unsigned_payload_is_refused() -> None:
    request = AWSRequest(method="POST", url=f"http://127.0.0.1:9/endpoints/{ENDPOINT}/invocations", data=b"{}")
    request.headers["X-Amz-Content-SHA256"] = "UNSIGNED-PAYLOAD"
    SigV4Auth(Credentials(ACCESS_KEY_A, SECRET_A), "sagemaker", "us-east-1").add_auth(request)
    assert refused(**as_received(request)).code == "InvalidSignatureException"


def test_path_must_be_passed_percent_encoded_as_received() -> None:
    # botocore signs its re-quoted form of the already-encoded path ("%20" -> "%2520").
    received = invoke_with_boto3(endpoint="ep a")
    assert received["path"] == "/endpoints/ep%20a/invocations"
    assert authenticate(CONFIG, **received) is TENANT_A
    received["path"] = "/endpoints/ep a/invocations"
    assert refused(**received).code == "InvalidSignatureException"


@pytest.mark.parametrize("path", ["/endpoints/x/../fraud-mme/invocations", "/endpoints//fraud-mme/invocations"])
def test_paths_botocore_would_normalise_are_refused(path: str) -> None:
    received = invoke_with_boto3()
    received["path"] = path
    error = refused(**received)
    assert (error.status, error.code) == (400, "IncompleteSignatureException")


def test_unsigned_host_header_is_refused() -> None:
    received = invoke_with_boto3()
    received["headers"]["Authorization"] = received["headers"]["Authorization"].replace("host;", "")
    assert refused(**received).code == "IncompleteSignatureException"


@pytest.mark.parametrize(
    "authorization",
    [
        "AWS4-HMAC-SHA256 garbage",
        "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLETENANTA01/20260101/us-east-1/sagemaker/aws4_request, "
        "SignedHeaders=host;x-amz-date",
        "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLETENANTA01/us-east-1/sagemaker, SignedHeaders=host, Signature=abc",
        "Bearer some-token",
        "",
    ],
)
def test_malformed_authorization_header_is_a_bad_request(authorization: str) -> None:
    received = invoke_with_boto3()
    received["headers"]["Authorization"] = authorization
    error = refused(**received)
    assert (error.status, error.code) == (400, "IncompleteSignatureException")


@pytest.mark.parametrize("amz_date", [None, "2026-01-01T00:00:00Z"])
def test_missing_or_malformed_x_amz_date_is_a_bad_request(amz_date: str | None) -> None:
    received = invoke_with_boto3()
    del received["headers"]["X-Amz-Date"]
    if amz_date is not None:
        received["headers"]["X-Amz-Date"] = amz_date
    assert refused(**received).status == 400


# --- API keys and anonymous callers ------------------------------------------------------------------------------


def test_valid_api_key_identifies_the_tenant() -> None:
    assert authenticate(CONFIG, **plain_request({"x-api-key": API_KEY_B})) is TENANT_B


def test_unknown_api_key_is_refused() -> None:
    error = refused(**plain_request({"X-Api-Key": "guessed"}))
    assert (error.status, error.code) == (403, "UnrecognizedClientException")


def test_api_key_takes_precedence_over_authorization() -> None:
    received = plain_request({"X-Api-Key": API_KEY_B, "Authorization": "AWS4-HMAC-SHA256 garbage"})
    assert authenticate(CONFIG, **received) is TENANT_B


def test_missing_credentials_are_refused_when_anonymous_is_off() -> None:
    error = refused(**plain_request({}))
    assert (error.status, error.code) == (403, "MissingAuthenticationTokenException")


def test_missing_credentials_are_anonymous_when_allowed() -> None:
    assert authenticate(AuthConfig.local_default(), **plain_request({})) is None


def test_bad_credentials_are_not_downgraded_to_anonymous() -> None:
    with_anonymous = AuthConfig(tenants=(TENANT_A, TENANT_B), anonymous_allow=("*",))
    assert refused(with_anonymous, **plain_request({"X-Api-Key": "guessed"})).code == "UnrecognizedClientException"


def plain_request(headers: dict[str, str]) -> dict[str, Any]:
    return {
        "method": "POST",
        "path": f"/endpoints/{ENDPOINT}/invocations",
        "query": "",
        "headers": {"Host": "127.0.0.1:8080", **headers},
        "body": b"{}",
    }


# --- Authorisation -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "allowed"),
    [
        ("company_a/fraud_2.tar.gz", True),
        ("company_a/nested/fraud.tar.gz", True),  # '*' crosses '/', as IAM's StringLike does
        ("common/identity.tar.gz", True),
        ("company_b/fraud_2.tar.gz", False),
        ("company_ab/x", False),
        ("fraud_2.tar.gz", False),
    ],
)
def test_tenant_patterns_decide_the_target_model(target: str, allowed: bool) -> None:
    assert TENANT_A.may_invoke(target) is allowed
    if allowed:
        authorize(CONFIG, TENANT_A, endpoint=ENDPOINT, target=target)
    else:
        with pytest.raises(AuthError) as caught:
            authorize(CONFIG, TENANT_A, endpoint=ENDPOINT, target=target)
        assert (caught.value.status, caught.value.code) == (403, "AccessDeniedException")
        assert caught.value.message == (
            "User: tenant/a is not authorized to perform: sagemaker:InvokeEndpoint "
            f"on resource: endpoint/{ENDPOINT} with TargetModel {target}"
        )


def test_anonymous_callers_get_the_anonymous_patterns() -> None:
    config = AuthConfig(tenants=(), anonymous_allow=("common/*",))
    authorize(config, None, endpoint=ENDPOINT, target="common/identity.tar.gz")
    with pytest.raises(AuthError, match="User: anonymous is not authorized"):
        authorize(config, None, endpoint=ENDPOINT, target="company_a/fraud_2.tar.gz")


def test_local_default_lets_anonymous_callers_reach_everything() -> None:
    config = AuthConfig.local_default()
    assert config.tenants == () and config.anonymous_allow == ("*",)
    authorize(config, None, endpoint=ENDPOINT, target="any/thing.tar.gz")


# --- Config files ------------------------------------------------------------------------------------------------


def write_config(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "auth.json"
    path.write_text(json.dumps(document))
    return path


def test_load_resolves_env_secrets_and_verifies_boto3_signatures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("A_SECRET", SECRET_A)
    document = {
        "tenants": [
            {
                "name": "a",
                "allow": ["company_a/*"],
                "api_keys_sha256": [hash_api_key("a-key").upper()],
                "aws_access_key_id": ACCESS_KEY_A,
                "aws_secret_access_key": "env:A_SECRET",
            }
        ],
        "anonymous": {"allow": ["common/*"]},
    }
    config = AuthConfig.load(write_config(tmp_path, document))
    (tenant,) = config.tenants
    assert tenant.secret_access_key == SECRET_A
    assert tenant.api_key_sha256 == (hash_api_key("a-key"),)
    assert config.anonymous_allow == ("common/*",) and config.max_clock_skew_s == 300
    assert authenticate(config, **invoke_with_boto3()) == tenant
    assert authenticate(config, **plain_request({"X-Api-Key": "a-key"})) == tenant


def test_load_without_anonymous_section_refuses_anonymous(tmp_path: Path) -> None:
    document = {"tenants": [{"name": "b", "allow": ["*"], "api_keys_sha256": [hash_api_key(API_KEY_B)]}]}
    assert AuthConfig.load(write_config(tmp_path, document)).anonymous_allow is None


def test_unset_env_secret_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_SECRET", raising=False)
    tenant = {"name": "a", "allow": [], "aws_access_key_id": "AKIA1", "aws_secret_access_key": "env:NO_SUCH_SECRET"}
    with pytest.raises(ValueError, match="tenant 'a'.*aws_secret_access_key.*NO_SUCH_SECRET"):
        AuthConfig.load(write_config(tmp_path, {"tenants": [tenant]}))


KEY = hash_api_key("k")


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ([], "JSON object"),
        ({"tenants": {}}, "'tenants' must be a list"),
        ({"tenants": [{"allow": ["*"], "api_keys_sha256": [KEY]}]}, r"tenants\[0\]: 'name'"),
        ({"tenants": [{"name": "a", "allow": "company_a/*", "api_keys_sha256": [KEY]}]}, "tenant 'a': 'allow'"),
        ({"tenants": [{"name": "a", "allow": ["*"], "api_keys_sha256": ["xyz"]}]}, "tenant 'a': 'api_keys_sha256'"),
        ({"tenants": [{"name": "a", "allow": ["*"], "api_keys_sha256": ["g" * 64]}]}, "tenant 'a': 'api_keys_sha256'"),
        ({"tenants": [{"name": "a", "allow": ["*"]}]}, "tenant 'a': needs"),
        ({"tenants": [{"name": "a", "allow": ["*"], "aws_access_key_id": "AKIA1"}]}, "tenant 'a': 'aws_secret"),
        ({"tenants": [{"name": "a", "allowed": ["*"], "api_keys_sha256": [KEY]}]}, "tenant 'a': unknown.*'allowed'"),
        (
            {"tenants": [{"name": "a", "allow": [], "api_keys_sha256": [KEY]}] * 2},
            "tenant 'a': name is already used by tenant 'a'",
        ),
        (
            {
                "tenants": [
                    {"name": "a", "allow": [], "aws_access_key_id": "AKIA1", "aws_secret_access_key": "s1"},
                    {"name": "b", "allow": [], "aws_access_key_id": "AKIA1", "aws_secret_access_key": "s2"},
                ]
            },
            "tenant 'b': aws_access_key_id is already used by tenant 'a'",
        ),
        (
            {
                "tenants": [
                    {"name": "a", "allow": [], "api_keys_sha256": [KEY]},
                    {"name": "b", "allow": [], "api_keys_sha256": [KEY]},
                ]
            },
            "tenant 'b': api_keys_sha256 is already used",
        ),
        ({"anonymous": {"allow": "*"}}, "anonymous: 'allow'"),
        ({"anonymous": True}, "anonymous: must be"),
        ({"max_clock_skew_s": 0}, "max_clock_skew_s"),
    ],
)
def test_load_rejects_bad_configs_naming_the_tenant_and_field(tmp_path: Path, document: Any, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        AuthConfig.load(write_config(tmp_path, document))


# --- Secrets stay out of logs ------------------------------------------------------------------------------------


def test_hash_api_key_is_hex_sha256() -> None:
    assert hash_api_key("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_repr_of_a_tenant_hides_the_secret() -> None:
    assert SECRET_A not in repr(TENANT_A)
    assert API_KEY_B not in repr(TENANT_B)


def test_errors_never_echo_secrets_keys_or_signatures() -> None:
    received = invoke_with_boto3(secret="not-the-secret")
    signature = received["headers"]["Authorization"].rpartition("Signature=")[2]
    errors = [
        refused(**received),
        refused(**invoke_with_boto3(), now=datetime.now(timezone.utc) + timedelta(hours=1)),
        refused(**plain_request({"X-Api-Key": API_KEY_B + "x"})),
    ]
    for error in errors:
        for secret in (SECRET_A, "not-the-secret", API_KEY_B, signature):
            assert secret not in str(error)


def test_without_tenants_signed_calls_are_anonymous() -> None:
    """The loopback default has no tenants: boto3 signs anyway, and that must not be refused."""
    config = AuthConfig.local_default()
    headers = {"Authorization": "AWS4-HMAC-SHA256 Credential=AKIAANY/20260101/us-east-1/sagemaker/aws4_request, "
                                "SignedHeaders=host, Signature=00", "Host": "127.0.0.1:8080"}
    assert authenticate(config, method="POST", path="/endpoints/x/invocations", query="", headers=headers, body=b"") is None
