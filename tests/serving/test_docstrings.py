"""Run the executed examples in the serving modules' docstrings."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "relevo.serving.blend",
    "relevo.serving.cache",
    "relevo.models.profile_features",
    "relevo.catalog_cache",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), verbose=False)
    assert result.attempted > 0
    assert result.failed == 0
