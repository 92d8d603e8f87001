"""Fixtures for the rules tests."""

from __future__ import annotations

from typing import Any

import pytest

from .builders import make_profile


@pytest.fixture
def profile() -> dict[str, Any]:
    return make_profile()
