"""The examples in the client's docstrings run as written."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ("_errors", "_codec", "_validate", "_chunking", "_retry", "_pipelines", "_transports.http",
           "_transports.sagemaker")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(f"tritonmm.client.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, result
