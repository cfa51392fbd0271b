"""The one exception the deploy commands raise for anything the user must fix."""

from __future__ import annotations


class DeployError(Exception):
    """A refused or failed deployment step; the message says what and names the resource.

    Kept separate from botocore's ``ClientError`` so the CLI can tell "your input or the
    state of the account is wrong" (exit 2, our message) from "AWS refused a call" (exit 1,
    AWS's code and message).
    """
