"""Staging → production: copy archives to the production prefix only when the staging endpoint passes.

The staging endpoint serves the staging prefix; the golden checks run through it, and
only when every check passes are the archives copied (server-side, under the same
immutable-key rule as uploads) to the production prefix that the production endpoint
serves. A failure copies nothing, so production never holds an archive that failed.
An archive without a golden check is refused: "promoted" must mean "checked".
"""

from __future__ import annotations

from collections.abc import Sequence

from .archives import Encryption, copy_archive
from .calls import AwsCalls
from .errors import DeployError
from .golden import GoldenCheck, run_checks
from .validation import S3Uri, check_name


def promote(calls: AwsCalls, *, endpoint_name: str, staging: S3Uri, production: S3Uri,
            checks: Sequence[GoldenCheck], archives: Sequence[str] = (),
            encryption: Encryption = Encryption()) -> dict[str, str]:
    """Run ``checks`` on the staging endpoint, then copy ``archives`` (default: those checked); key -> outcome."""
    check_name("endpoint name", endpoint_name)
    if staging == production:
        raise DeployError(f"staging and production are the same prefix ({staging})")
    checked = {check.target_model for check in checks}
    keys = list(dict.fromkeys(archives or sorted(checked)))
    unchecked = [key for key in keys if key not in checked]
    if unchecked:
        raise DeployError(f"no golden check covers {', '.join(unchecked)}; refusing to promote untested archives")
    failures = run_checks(calls, endpoint_name, checks)
    if failures:
        raise DeployError("golden checks failed on endpoint {!r}; nothing was promoted:\n  {}".format(
            endpoint_name, "\n  ".join(failures)))
    return {key: copy_archive(calls, staging.join(key), production.join(key), encryption) for key in keys}
