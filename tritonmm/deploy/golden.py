"""Golden-output checks: known requests, the outputs they must give, through ``InvokeEndpoint``.

A golden file is a JSON list; each entry names the archive (TargetModel), the KServe v2
request body and the expected outputs::

    [{"target_model": "fraud_1.tar.gz",
      "body": {"inputs": [...]},
      "expected": [{"name": "probability", "data": [0.01, 0.97], "atol": 1e-4},
                   {"name": "label", "data": ["NOT FRAUD", "FRAUD"]}]}]

Numbers pass within ``atol`` (default 0: exact); anything else must be equal. The checks
run against a deployed endpoint, so they test what production will run — the image, the
native backends, the archive as stored in S3 — not the local build that produced it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from .calls import AwsCalls
from .errors import DeployError


@dataclass(frozen=True)
class ExpectedOutput:
    name: str
    data: tuple[Any, ...]
    atol: float = 0.0


@dataclass(frozen=True)
class GoldenCheck:
    target_model: str
    body: dict[str, Any]
    expected: tuple[ExpectedOutput, ...]

    def to_json(self) -> dict[str, Any]:
        return {"target_model": self.target_model, "body": self.body,
                "expected": [{"name": e.name, "data": list(e.data), "atol": e.atol} for e in self.expected]}


def _parse_check(index: int, entry: Any) -> GoldenCheck:
    where = f"golden check {index}"
    if not isinstance(entry, dict) or not {"target_model", "body", "expected"} <= set(entry):
        raise DeployError(f"{where}: needs 'target_model', 'body' and 'expected'")
    expected = entry["expected"]
    if not isinstance(expected, list) or not expected:
        raise DeployError(f"{where}: 'expected' must be a non-empty list of outputs")
    try:
        outputs = tuple(ExpectedOutput(e["name"], tuple(e["data"]), float(e.get("atol", 0.0))) for e in expected)
    except (KeyError, TypeError, ValueError) as exc:
        raise DeployError(f"{where}: each expected output needs 'name', 'data' and an optional numeric 'atol' ({exc})") from None
    return GoldenCheck(str(entry["target_model"]), entry["body"], outputs)


def load_golden(path: Path) -> list[GoldenCheck]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DeployError(f"{path}: cannot read golden checks: {exc}") from None
    if not isinstance(document, list) or not document:
        raise DeployError(f"{path}: a golden file is a non-empty JSON list of checks")
    return [_parse_check(index, entry) for index, entry in enumerate(document)]


def write_golden(checks: Sequence[GoldenCheck], path: Path) -> Path:
    path.write_text(json.dumps([check.to_json() for check in checks], indent=1) + "\n", encoding="utf-8")
    return path


def _difference(got: Any, want: Any) -> float | None:
    """|got - want| for two numbers; ``None`` when either is not a number (compared for equality instead)."""
    numbers = (int, float)
    if isinstance(got, numbers) and isinstance(want, numbers) and not isinstance(got, bool):
        return abs(float(got) - float(want))
    return None


def _compare_output(target: str, expected: ExpectedOutput, got: Sequence[Any]) -> str | None:
    """The failure message for one output, or ``None`` if it matches."""
    prefix = f"{target}: output {expected.name!r}"
    if len(got) != len(expected.data):
        return f"{prefix}: {len(got)} values, expected {len(expected.data)}"
    worst: tuple[float, int] | None = None
    for index, (value, want) in enumerate(zip(got, expected.data)):
        difference = _difference(value, want)
        if difference is None:
            if value != want:
                return f"{prefix}[{index}]: got {value!r}, expected {want!r}"
        elif not difference <= expected.atol and (worst is None or difference > worst[0] or math.isnan(difference)):
            worst = (difference, index)
    if worst is None:
        return None
    difference, index = worst
    return (f"{prefix}[{index}]: got {got[index]!r}, expected {expected.data[index]!r} "
            f"(difference {difference:.3g} > atol {expected.atol:g})")


def compare(check: GoldenCheck, answer: bytes) -> list[str]:
    """Failure messages of ``answer`` (a KServe v2 JSON response) against ``check``; empty when it passes."""
    try:
        outputs = {o["name"]: o.get("data", []) for o in json.loads(answer)["outputs"]}
    except (ValueError, KeyError, TypeError):
        return [f"{check.target_model}: the response is not a KServe v2 JSON answer: {answer[:200]!r}"]
    failures = []
    for expected in check.expected:
        if expected.name not in outputs:
            failures.append(f"{check.target_model}: output {expected.name!r} missing (got {sorted(outputs)})")
            continue
        failure = _compare_output(check.target_model, expected, outputs[expected.name])
        if failure:
            failures.append(failure)
    return failures


def run_checks(calls: AwsCalls, endpoint_name: str, checks: Sequence[GoldenCheck]) -> list[str]:
    """Invoke ``endpoint_name`` once per check; every failure message (a dry run prints the calls, fails none)."""
    failures: list[str] = []
    for check in checks:
        try:
            response = calls.read("sagemaker-runtime", "invoke_endpoint", EndpointName=endpoint_name,
                                  TargetModel=check.target_model, ContentType="application/json",
                                  Accept="application/json", Body=json.dumps(check.body).encode())
        except ClientError as error:
            details = error.response.get("Error", {})
            failures.append(f"{check.target_model}: invocation failed: {details.get('Code')}: {details.get('Message')}")
            continue
        if response is not None:
            failures += compare(check, response["Body"].read())
    return failures
