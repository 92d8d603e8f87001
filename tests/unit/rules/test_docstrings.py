"""The ``>>>`` examples in the rules modules' docstrings are executed, so they stay true."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from relevo.rules import engine, expressions, model, timers


@pytest.mark.parametrize("module", [expressions, model, timers, engine], ids=lambda m: m.__name__)
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
