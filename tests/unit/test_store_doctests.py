"""Run the executed examples of the store's key layout and usage tally."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "relevo.store.keys",
    "relevo.store.usage",
    "relevo.features.profile",
    "relevo.serving.cache",
    "relevo.store.redis",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0
