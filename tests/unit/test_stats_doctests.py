"""Run the executed examples in the statistics modules' docstrings.

Kept to these modules (rather than ``--doctest-modules`` over all of src) so
that importing a module for its examples never needs a service or an extra.
"""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "relevo.experiments.assignment",
    "relevo.experiments.stats",
    "relevo.experiments.bandits",
    "relevo.monitoring.drift",
    "relevo.monitoring.features",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0
