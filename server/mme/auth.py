"""Who may call the multi-model endpoint, and which models they may reach.

Clients authenticate the way they would against Amazon SageMaker, so the stock
``boto3`` ``sagemaker-runtime`` client works unchanged: every request is signed
with AWS Signature Version 4.  Clients that cannot sign may send an API key in
``X-Api-Key`` instead.  Access control mirrors IAM's ``sagemaker:TargetModel``
condition key: each tenant lists glob patterns of the ``TargetModel`` keys it may
invoke.

SigV4 is verified by recomputing the signature with botocore's own signer, so
that whatever botocore does when signing (header trimming, path quoting, the
default-port rule for ``host``) is matched exactly rather than re-implemented.

Errors use the codes and HTTP statuses AWS uses, so SDK users see familiar
exceptions.  Their messages never contain secrets, API keys or signatures.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import normalize_url_path

__all__ = [
    "AuthConfig",
    "AuthError",
    "Tenant",
    "authenticate",
    "authorize",
    "hash_api_key",
]

API_KEY_HEADER = "x-api-key"
SIGV4_ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "sagemaker"
# The authority in the URL handed to botocore.  The canonical request takes the
# host from the received (signed) Host header, never from the URL, so a fixed
# value keeps a hostile Host header from shifting where the path starts.
_URL_AUTHORITY = "mme.invalid"
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
_ENV_PREFIX = "env:"


class AuthError(Exception):
    """A refused request, carrying what the HTTP error response needs.

    ``code`` is the AWS error code (the ``__type`` SDKs turn into exception
    classes) and ``status`` its HTTP status.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def _missing_token() -> AuthError:
    return AuthError(403, "MissingAuthenticationTokenException", "Missing Authentication Token")


def _unrecognized_client() -> AuthError:
    return AuthError(403, "UnrecognizedClientException", "The security token included in the request is invalid.")


def _invalid_signature(message: str | None = None) -> AuthError:
    return AuthError(
        403,
        "InvalidSignatureException",
        message
        or "The request signature we calculated does not match the signature you provided. "
        "Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
    )


def _incomplete_signature(message: str) -> AuthError:
    return AuthError(400, "IncompleteSignatureException", message)


def hash_api_key(key: str) -> str:
    """The hex SHA-256 of an API key, as stored in the config file (keys are never stored in clear)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Tenant:
    """One caller identity and the models it may invoke.

    ``allow`` holds :func:`fnmatch.fnmatchcase` patterns matched against the whole
    TargetModel key.  Unlike shell globs, ``*`` also matches ``/``: ``company_a/*``
    allows ``company_a/sub/model.tar.gz`` (as IAM's ``StringLike`` does).  The
    ``/`` written in a pattern is literal, so ``company_a/*`` does not allow
    ``company_ab/x``.

    ``secret_access_key`` is kept in clear because SigV4 verification needs the
    secret itself; it is left out of ``repr`` so it never reaches logs.
    """

    name: str
    allow: tuple[str, ...]
    api_key_sha256: tuple[str, ...] = ()
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)

    def may_invoke(self, target: str) -> bool:
        """Whether any of this tenant's patterns matches ``target``."""
        return _matches_any(self.allow, target)


def _matches_any(patterns: tuple[str, ...], target: str) -> bool:
    return any(fnmatchcase(target, pattern) for pattern in patterns)


@dataclass(frozen=True)
class AuthConfig:
    """All tenants, plus what callers without credentials may do.

    ``anonymous_allow`` is ``None`` when anonymous calls are refused, otherwise
    the TargetModel patterns anonymous callers may invoke.  ``max_clock_skew_s``
    bounds how far a SigV4 ``X-Amz-Date`` may be from the server clock, which
    limits how long a captured request can be replayed.
    """

    tenants: tuple[Tenant, ...]
    anonymous_allow: tuple[str, ...] | None
    max_clock_skew_s: float = 300

    def __post_init__(self) -> None:
        """Refuse ambiguous configs however they were built: one credential must name one tenant."""
        _check_unique(self.tenants, lambda t: (t.name,), "name")
        _check_unique(self.tenants, lambda t: (t.access_key_id,) if t.access_key_id else (), "aws_access_key_id")
        _check_unique(self.tenants, lambda t: t.api_key_sha256, "api_keys_sha256")

    @classmethod
    def local_default(cls) -> AuthConfig:
        """No tenants; anonymous callers may invoke every model.

        Only meant for a server bound to 127.0.0.1: the caller prints a warning at
        start-up when it runs with this config.
        """
        return cls(tenants=(), anonymous_allow=("*",))

    @classmethod
    def load(cls, path: Path) -> AuthConfig:
        """Read a JSON config; ``env:VARNAME`` secrets are resolved from the environment now.

        Shape::

            {"tenants": [{"name": "a", "allow": ["company_a/*"],
                          "api_keys_sha256": ["<hex sha256>"],
                          "aws_access_key_id": "AKIA...",
                          "aws_secret_access_key": "env:A_SECRET"}],
             "anonymous": {"allow": ["common/*"]},
             "max_clock_skew_s": 300}

        Raises ValueError naming the tenant and field for anything malformed, so
        mistakes show at start-up rather than as refused requests.
        """
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(document, dict):
            raise ValueError(f"{path}: the auth config must be a JSON object")
        _reject_unknown_keys(document, {"tenants", "anonymous", "max_clock_skew_s"}, "the auth config")
        tenants = document.get("tenants", [])
        if not isinstance(tenants, list):
            raise ValueError("auth config: 'tenants' must be a list")
        return cls(
            tenants=tuple(_parse_tenant(index, entry) for index, entry in enumerate(tenants)),
            anonymous_allow=_parse_anonymous(document.get("anonymous")),
            max_clock_skew_s=_parse_skew(document.get("max_clock_skew_s", 300)),
        )

    def tenant_for_access_key(self, access_key_id: str) -> Tenant | None:
        """The tenant owning an AWS access key id (ids are public, so no constant-time compare)."""
        return next((t for t in self.tenants if t.access_key_id == access_key_id), None)

    def tenant_for_api_key(self, api_key: str) -> Tenant | None:
        """The tenant owning an API key, comparing against every stored hash so timing reveals nothing."""
        digest = hash_api_key(api_key)
        found = None
        for tenant in self.tenants:
            for stored in tenant.api_key_sha256:
                if _same(digest, stored):
                    found = tenant
        return found


def _check_unique(
    tenants: tuple[Tenant, ...], values: Callable[[Tenant], Iterable[str]], field_name: str
) -> None:
    seen: dict[str, str] = {}
    for tenant in tenants:
        for value in values(tenant):
            if value in seen:
                raise ValueError(f"tenant {tenant.name!r}: {field_name} is already used by tenant {seen[value]!r}")
            seen[value] = tenant.name


def _reject_unknown_keys(entry: dict[str, Any], known: set[str], where: str) -> None:
    """Unknown keys are refused because a misspelt one (``allowed``) would otherwise silently grant nothing."""
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}")


def _parse_tenant(index: int, entry: Any) -> Tenant:
    if not isinstance(entry, dict):
        raise ValueError(f"tenants[{index}]: must be a JSON object")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"tenants[{index}]: 'name' must be a non-empty string")
    where = f"tenant {name!r}"
    _reject_unknown_keys(
        entry, {"name", "allow", "api_keys_sha256", "aws_access_key_id", "aws_secret_access_key"}, where
    )
    hashes = _string_list(entry.get("api_keys_sha256", []), where, "api_keys_sha256")
    for value in hashes:
        if not _HEX_SHA256.fullmatch(value.lower()):
            raise ValueError(f"{where}: 'api_keys_sha256' entries must be 64 hex digits (use hash_api_key)")
    access_key_id, secret = _parse_aws_keys(entry, where)
    if not hashes and access_key_id is None:
        raise ValueError(f"{where}: needs 'api_keys_sha256' or 'aws_access_key_id', or it can never authenticate")
    return Tenant(
        name=name,
        allow=tuple(_string_list(entry.get("allow"), where, "allow")),
        api_key_sha256=tuple(value.lower() for value in hashes),
        access_key_id=access_key_id,
        secret_access_key=secret,
    )


def _parse_aws_keys(entry: dict[str, Any], where: str) -> tuple[str | None, str | None]:
    access_key_id = entry.get("aws_access_key_id")
    secret = entry.get("aws_secret_access_key")
    if access_key_id is None and secret is None:
        return None, None
    if not isinstance(access_key_id, str) or not access_key_id or "/" in access_key_id:
        raise ValueError(f"{where}: 'aws_access_key_id' must be a non-empty string without '/'")
    if not isinstance(secret, str) or not secret:
        raise ValueError(f"{where}: 'aws_secret_access_key' must be a non-empty string or 'env:VARNAME'")
    return access_key_id, _resolve_secret(secret, where)


def _resolve_secret(value: str, where: str) -> str:
    """Resolve ``env:VARNAME`` so config files can be committed without the secret in them."""
    if not value.startswith(_ENV_PREFIX):
        return value
    variable = value.removeprefix(_ENV_PREFIX)
    secret = os.environ.get(variable)
    if not secret:
        raise ValueError(f"{where}: 'aws_secret_access_key' names environment variable {variable!r}, which is unset")
    return secret


def _parse_anonymous(entry: Any) -> tuple[str, ...] | None:
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise ValueError("anonymous: must be a JSON object such as {\"allow\": [\"common/*\"]}, or null")
    _reject_unknown_keys(entry, {"allow"}, "anonymous")
    return tuple(_string_list(entry.get("allow"), "anonymous", "allow"))


def _parse_skew(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError("auth config: 'max_clock_skew_s' must be a positive number")
    return float(value)


def _string_list(value: Any, where: str, field_name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ValueError(f"{where}: {field_name!r} must be a list of non-empty strings")
    return value


def authenticate(
    config: AuthConfig,
    *,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime | None = None,
) -> Tenant | None:
    """The tenant a request comes from, or ``None`` for an allowed anonymous caller.

    ``path`` must be the path exactly as received on the wire, still
    percent-encoded (ASGI ``scope["raw_path"]``), and ``query`` the raw query
    string: SigV4 signs botocore's *re-quoted* form of the encoded path, so a
    decoded path only verifies when it contains nothing that needs quoting.
    ``headers`` must include ``Host`` as the client sent it.  ``now`` is for
    tests; a naive datetime is taken as UTC.

    ``X-Api-Key`` takes precedence over ``Authorization``; a request carrying
    bad credentials is refused, never downgraded to anonymous. The one
    exception is a config with no tenants at all (the loopback default): then
    every caller is anonymous, so a stock boto3 client, which always signs,
    works against it with any credentials.
    """
    if not config.tenants and config.anonymous_allow is not None:
        return None
    normalized = _normalize_headers(headers)
    if API_KEY_HEADER in normalized:
        return _authenticate_api_key(config, normalized[API_KEY_HEADER])
    if "authorization" in normalized:
        request = _SignedRequest(method, path, query, normalized, body)
        return _authenticate_sigv4(config, request, now or datetime.now(timezone.utc))
    if config.anonymous_allow is None:
        raise _missing_token()
    return None


def _normalize_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Lower-case names; repeated headers (Starlette's ``items()`` yields each) are comma-joined as SigV4 does."""
    normalized: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        normalized[key] = f"{normalized[key]},{value}" if key in normalized else value
    return normalized


def _authenticate_api_key(config: AuthConfig, api_key: str) -> Tenant:
    tenant = config.tenant_for_api_key(api_key)
    if tenant is None:
        raise _unrecognized_client()
    return tenant


@dataclass(frozen=True)
class _SignedRequest:
    """The parts of a received request that SigV4 covers, with lower-cased header names."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class _Authorization:
    """A parsed ``Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...``."""

    access_key_id: str
    scope_date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def _authenticate_sigv4(config: AuthConfig, request: _SignedRequest, now: datetime) -> Tenant:
    authorization = _parse_authorization(request.headers["authorization"])
    amz_date = _parse_amz_date(request.headers)
    tenant = config.tenant_for_access_key(authorization.access_key_id)
    if tenant is None or tenant.secret_access_key is None:
        raise _unrecognized_client()
    _check_scope(authorization, amz_date)
    _check_clock_skew(amz_date, now, config.max_clock_skew_s)
    _check_payload_hash(request)
    expected = _expected_signature(request, authorization, tenant.secret_access_key, amz_date)
    if not _same(expected, authorization.signature):
        raise _invalid_signature()
    return tenant


def _same(computed: str, received: str) -> bool:
    """Constant-time equality; compared as bytes because ``compare_digest`` raises on non-ASCII ``str``."""
    return hmac.compare_digest(computed.encode("utf-8"), received.encode("utf-8"))


def _parse_authorization(value: str) -> _Authorization:
    scheme, _, params = value.strip().partition(" ")
    if scheme != SIGV4_ALGORITHM:
        raise _incomplete_signature(f"Authorization header must use the {SIGV4_ALGORITHM} scheme.")
    fields: dict[str, str] = {}
    for part in params.split(","):
        name, _, field_value = part.strip().partition("=")
        fields[name] = field_value
    missing = [name for name in ("Credential", "SignedHeaders", "Signature") if not fields.get(name)]
    if missing:
        raise _incomplete_signature(
            " ".join(f"Authorization header requires '{name}' parameter." for name in missing)
            + f" Authorization={SIGV4_ALGORITHM}"
        )
    credential = fields["Credential"].split("/")
    if len(credential) != 5 or credential[4] != "aws4_request" or not all(credential):
        raise _incomplete_signature(
            "Credential must have the form <access key id>/<yyyymmdd>/<region>/<service>/aws4_request."
        )
    signed_headers = tuple(name.lower() for name in fields["SignedHeaders"].split(";"))
    if "host" not in signed_headers:
        raise _incomplete_signature("SignedHeaders must include 'host'.")
    return _Authorization(
        access_key_id=credential[0],
        scope_date=credential[1],
        region=credential[2],
        service=credential[3],
        signed_headers=signed_headers,
        signature=fields["Signature"],
    )


def _parse_amz_date(headers: Mapping[str, str]) -> datetime:
    """The signing time; only ``X-Amz-Date`` is supported (botocore always sends it)."""
    value = headers.get("x-amz-date")
    if value is None:
        raise _incomplete_signature("Authorization header requires existence of a 'X-Amz-Date' header.")
    try:
        return datetime.strptime(value, SIGV4_TIMESTAMP).replace(tzinfo=timezone.utc)
    except ValueError:
        raise _incomplete_signature("'X-Amz-Date' must have the form yyyymmddThhmmssZ.") from None


def _check_scope(authorization: _Authorization, amz_date: datetime) -> None:
    if authorization.service != SERVICE:
        raise _invalid_signature(f"Credential should be scoped to correct service: '{SERVICE}'.")
    if authorization.scope_date != amz_date.strftime("%Y%m%d"):
        raise _invalid_signature(
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{authorization.scope_date}' != '{amz_date:%Y%m%d}'"
        )


def _check_clock_skew(amz_date: datetime, now: datetime, max_skew_s: float) -> None:
    """Bound replays of captured requests, with AWS's wording so SDKs recognise clock-skew errors."""
    now = now if now.tzinfo else now.replace(tzinfo=timezone.utc)
    skew = timedelta(seconds=max_skew_s)
    signed_at, current = f"{amz_date:{SIGV4_TIMESTAMP}}", f"{now:{SIGV4_TIMESTAMP}}"
    if amz_date < now - skew:
        raise _invalid_signature(
            f"Signature expired: {signed_at} is now earlier than "
            f"{now - skew:{SIGV4_TIMESTAMP}} ({current} - {max_skew_s:g} s.)"
        )
    if amz_date > now + skew:
        raise _invalid_signature(
            f"Signature not yet current: {signed_at} is still later than "
            f"{now + skew:{SIGV4_TIMESTAMP}} ({current} + {max_skew_s:g} s.)"
        )


def _check_payload_hash(request: _SignedRequest) -> None:
    """Hold a declared ``X-Amz-Content-SHA256`` to the real body.

    botocore's canonical request uses that header's value *instead of* hashing the
    body, so without this check a request could carry any body under a signature
    made for another (or for ``UNSIGNED-PAYLOAD``).
    """
    declared = request.headers.get("x-amz-content-sha256")
    if declared is not None and not _same(declared, hashlib.sha256(request.body).hexdigest()):
        raise _invalid_signature("The provided 'x-amz-content-sha256' header does not match what was computed.")


def _expected_signature(request: _SignedRequest, authorization: _Authorization, secret: str, amz_date: datetime) -> str:
    """Recompute the signature with botocore's signer from the signed headers as received."""
    signer = SigV4Auth(
        Credentials(authorization.access_key_id, secret), authorization.service, authorization.region
    )
    aws_request = AWSRequest(
        method=request.method,
        url=_signing_url(request.path, request.query),
        data=request.body,
        headers={name: request.headers.get(name, "") for name in authorization.signed_headers},
    )
    aws_request.context["timestamp"] = amz_date.strftime(SIGV4_TIMESTAMP)
    canonical_request = signer.canonical_request(aws_request)
    return signer.signature(signer.string_to_sign(aws_request, canonical_request), aws_request)


def _signing_url(path: str, query: str) -> str:
    """The URL botocore derives the canonical path and query from.

    The path must already be in the form botocore signs (absolute, no ``.``/``..``
    or empty segments): botocore normalises those away before signing, so
    accepting them would let the app route on a path other than the one verified.
    """
    if not path.startswith("/") or "?" in path or "#" in path or normalize_url_path(path) != path:
        raise _incomplete_signature("The request path must be absolute and normalised to be signed.")
    return f"http://{_URL_AUTHORITY}{path}" + (f"?{query}" if query else "")


def authorize(config: AuthConfig, tenant: Tenant | None, *, endpoint: str, target: str) -> None:
    """Refuse a call whose TargetModel none of the caller's patterns allow (``None`` = anonymous)."""
    if tenant is not None:
        allowed, user = tenant.may_invoke(target), f"tenant/{tenant.name}"
    else:
        allowed, user = _matches_any(config.anonymous_allow or (), target), "anonymous"
    if not allowed:
        raise AuthError(
            403,
            "AccessDeniedException",
            f"User: {user} is not authorized to perform: sagemaker:InvokeEndpoint "
            f"on resource: endpoint/{endpoint} with TargetModel {target}",
        )
