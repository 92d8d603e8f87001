"""Run the executed examples in the live models' docstrings."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "relevo.live.weights",
    "relevo.live.accumulator",
    "relevo.live.attributes",
    "relevo.live.models",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), verbose=False)
    assert result.attempted > 0
    assert result.failed == 0
