"""Input checks that fail before the first AWS call, with a message naming the bad value.

AWS would refuse most of these too, but only after earlier steps already created
resources (a model without its endpoint, half the archives uploaded); checking up
front keeps a typo from leaving the account half-deployed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import DeployError

SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
"""Names of SageMaker models, endpoint configs, endpoints and variants (the API's own pattern)."""
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9-]+\.[a-z0-9]+$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_NO_SPACE = re.compile(r"^\S+$")


def check_name(kind: str, value: str) -> str:
    """``value`` if it is a valid SageMaker name (at most 63 letters, digits and hyphens)."""
    if not SAGEMAKER_NAME.match(value):
        raise DeployError(f"{kind} {value!r} is not a valid SageMaker name: it must match {SAGEMAKER_NAME.pattern} "
                          "(1-63 letters, digits and hyphens, starting and ending with a letter or digit)")
    return value


def check_role_arn(value: str) -> str:
    """``value`` if it is an IAM role ARN (the execution role SageMaker assumes to read S3 and pull the image)."""
    if not ROLE_ARN.match(value):
        raise DeployError(f"execution role {value!r} is not an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>)")
    return value


def check_instance_type(value: str) -> str:
    if not INSTANCE_TYPE.match(value):
        raise DeployError(f"instance type {value!r} is not a SageMaker instance type such as ml.g4dn.xlarge")
    return value


def check_positive(kind: str, value: int) -> int:
    if value < 1:
        raise DeployError(f"{kind} must be at least 1, got {value}")
    return value


def check_capacity(min_capacity: int, max_capacity: int) -> None:
    """A real-time endpoint keeps at least one instance, and the range must not be empty."""
    check_positive("minimum capacity", min_capacity)
    if min_capacity > max_capacity:
        raise DeployError(f"minimum capacity {min_capacity} is above maximum capacity {max_capacity}")


def check_kms_key(value: str | None) -> str | None:
    """A KMS key id, ARN or alias (checked by KMS itself; here only that it is one token)."""
    if value is not None and not _NO_SPACE.match(value):
        raise DeployError(f"KMS key {value!r} must be a key id, key ARN or alias without spaces")
    return value


@dataclass(frozen=True)
class S3Uri:
    """``s3://bucket/key``; for a prefix, ``key`` is empty or ends with ``/``."""

    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str, *, prefix: bool) -> S3Uri:
        """Parse ``uri``; with ``prefix`` a missing trailing ``/`` is added.

        SageMaker appends the TargetModel to ``ModelDataUrl``: without the slash,
        ``s3://b/models`` + ``fraud_1.tar.gz`` would name ``s3://b/modelsfraud_1.tar.gz``.
        """
        if not uri.startswith("s3://"):
            raise DeployError(f"{uri!r} is not an S3 URI (s3://bucket/prefix/)")
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        if not _BUCKET.match(bucket) or ".." in bucket:
            raise DeployError(f"{uri!r}: {bucket!r} is not a valid S3 bucket name")
        if key.startswith("/") or "//" in key:
            raise DeployError(f"{uri!r}: the key must not contain empty path segments")
        if prefix and key and not key.endswith("/"):
            key += "/"
        if not prefix and (not key or key.endswith("/")):
            raise DeployError(f"{uri!r} names a prefix, not an object")
        return cls(bucket, key)

    def join(self, relative: str) -> S3Uri:
        """The object ``relative`` under this prefix."""
        return S3Uri(self.bucket, self.key + relative)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"
