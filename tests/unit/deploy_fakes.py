"""Deploy test helpers: an AwsCalls whose clients answer from a script (the deploy logic runs for real, AWS is
not involved), and a tiny but valid archive to upload."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from tritonmm.deploy.calls import AwsCalls
from tritonmm.export.archive import package_pipeline


def client_error(code: str, message: str = "", status: int = 400, operation: str = "Op") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


def sagemaker_missing(what: str = "endpoint") -> ClientError:
    return client_error("ValidationException", f"Could not find {what} 'arn:...'.")


def in_turn(answers: Iterable[Any]):
    """A script entry giving ``answers`` one per call."""
    pending = iter(answers)
    return lambda params: next(pending)


class _Client:
    def __init__(self, script: dict, service: str) -> None:
        self.script, self.service = script, service

    def __getattr__(self, operation: str):
        def call(**params: Any) -> Any:
            answer = self.script.get((self.service, operation), {})
            if callable(answer):
                answer = answer(params)
            if isinstance(answer, Exception):
                raise answer
            return answer
        return call


@dataclass
class ScriptedCalls(AwsCalls):
    """``script[(service, operation)]``: an answer, an exception to raise, or ``f(params)`` giving either."""

    region: str = "us-east-1"
    script: dict = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.log = self.lines.append

    def client(self, service: str) -> _Client:
        return _Client(self.script, service)

    def operations(self, *, writes_only: bool = False) -> list[str]:
        return [call.operation for call in self.made if call.writes or not writes_only]


def tiny_archive(root: Path, name: str = "tiny", version: str = "1", *, text: str = "") -> Path:
    """``<root>/store/<name>_<version>.tar.gz`` packaging one identity-like model; ``text`` changes its bytes."""
    model = root / "repo" / name
    (model / "1").mkdir(parents=True, exist_ok=True)
    (model / "config.pbtxt").write_text(f'name: "{name}"\nbackend: "python"\n')
    (model / "1" / "model.py").write_text(f"# {text}\n")
    return package_pipeline(root / "repo", name, version=version, out_dir=root / "store")
