"""Every AWS call of the deploy commands goes through :class:`AwsCalls`, so ``--dry-run`` is a mode, not a copy.

The deploy steps are written once, against ``calls.read(...)`` and ``calls.write(...)``.
In a real run those call boto3; in a dry run they print the call (service, operation,
parameters as JSON) and return ``None`` — reads included, because a dry run must work
without credentials and without touching the account. The steps treat ``None`` from a
read as "not there", so a dry run prints the calls a first deployment would make.

Nothing secret ever reaches the parameters: credentials live in the boto3 session, never
in a request, and file bodies are printed as their path and size, not their bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

ALL_SERVICES = "*"
"""Key of :attr:`AwsCalls.endpoint_urls` that applies to every service without its own entry."""

NotFound = Callable[[ClientError], bool]
"""Tells whether an error of a read means "the resource does not exist" (the read then returns ``None``)."""


@dataclass(frozen=True)
class LocalFile:
    """A request body that is a file: opened only when the call is really made, printed as path and size."""

    path: Path

    def __str__(self) -> str:
        return f"<file {self.path} ({self.path.stat().st_size} bytes)>"


@dataclass(frozen=True)
class Call:
    """One AWS API call as the deploy code asked for it."""

    service: str
    operation: str
    params: Mapping[str, Any]
    writes: bool

    def to_json(self) -> str:
        """One line of JSON: what ``--dry-run`` prints, and what a real run logs for each change it makes."""
        return json.dumps({"service": self.service, "operation": self.operation, "params": self.params},
                          default=_printable, sort_keys=True)


def _printable(value: Any) -> Any:
    """JSON for what ``json`` cannot write: bodies are summarised (size, never content), dates are ISO."""
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def error_code_in(*codes: str) -> NotFound:
    """A :data:`NotFound` for errors with one of ``codes`` (HTTP statuses as strings count, e.g. S3's ``"404"``)."""

    def matches(error: ClientError) -> bool:
        response = error.response
        status = str(response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        return response.get("Error", {}).get("Code") in codes or status in codes

    return matches


def could_not_find(error: ClientError) -> bool:
    """SageMaker's not-found: a ``ValidationException`` whose message starts "Could not find"."""
    details = error.response.get("Error", {})
    return details.get("Code") == "ValidationException" and "Could not find" in details.get("Message", "")


def _open_files(params: Mapping[str, Any]) -> tuple[dict[str, Any], list]:
    opened, handles = {}, []
    for name, value in params.items():
        if isinstance(value, LocalFile):
            value = value.path.open("rb")
            handles.append(value)
        opened[name] = value
    return opened, handles


@dataclass
class AwsCalls:
    """Makes (or, in a dry run, prints) AWS calls and remembers each one in :attr:`made`.

    ``endpoint_urls`` maps a service name (or :data:`ALL_SERVICES`) to an API URL: moto's
    server in the tests, the local multi-model endpoint for ``sagemaker-runtime``.
    ``log`` receives one JSON line per printed call: every call in a dry run, each write
    otherwise (so a real run shows what it changed).
    """

    region: str
    dry_run: bool = False
    endpoint_urls: Mapping[str, str] = field(default_factory=dict)
    profile: str | None = None
    log: Callable[[str], None] = print
    made: list[Call] = field(default_factory=list)
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    def client(self, service: str) -> Any:
        """The boto3 client for ``service``, created on first use (never in a dry run: no credentials needed)."""
        if service not in self._clients:
            import boto3  # noqa: PLC0415 - a dry run and the CLI's --help never pay for it
            from botocore.config import Config  # noqa: PLC0415

            session = boto3.Session(profile_name=self.profile, region_name=self.region)
            url = self.endpoint_urls.get(service, self.endpoint_urls.get(ALL_SERVICES))
            self._clients[service] = session.client(
                service, endpoint_url=url, config=Config(retries={"mode": "standard", "max_attempts": 5},
                                                         read_timeout=120))
        return self._clients[service]

    def read(self, service: str, operation: str, *, missing: NotFound | None = None, **params: Any) -> dict | None:
        """A call that changes nothing; ``None`` in a dry run, or when ``missing`` says the error means "not there"."""
        return self._call(Call(service, operation, params, writes=False), missing)

    def write(self, service: str, operation: str, *, missing: NotFound | None = None, **params: Any) -> dict | None:
        """A call that changes the account; ``None`` in a dry run, or when ``missing`` matches (deleting what is gone)."""
        return self._call(Call(service, operation, params, writes=True), missing)

    def note(self, text: str) -> None:
        """A ``#`` comment among the printed calls, for what a dry run cannot know (it reads nothing)."""
        if self.dry_run:
            self.log(f"# {text}")

    def _call(self, call: Call, missing: NotFound | None) -> dict | None:
        self.made.append(call)
        if self.dry_run or call.writes:
            self.log(call.to_json())
        if self.dry_run:
            return None
        params, handles = _open_files(call.params)
        try:
            return getattr(self.client(call.service), call.operation)(**params)
        except ClientError as error:
            if missing is not None and missing(error):
                return None
            raise
        finally:
            for handle in handles:
                handle.close()
