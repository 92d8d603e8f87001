"""Run the executed examples of the decisions package."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["relevo.decisions.placements"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0
