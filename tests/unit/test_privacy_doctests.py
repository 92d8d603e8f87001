"""Run the executed examples in the docstrings of the privacy and security modules."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "relevo.auth",
    "relevo.consent",
    "relevo.erasure",
    "relevo.store.bucket",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0
