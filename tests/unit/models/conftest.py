"""Shared synthetic data for the model tests: small, deterministic, with a known answer."""

from __future__ import annotations

import pytest

from relevo.models.synthetic import SyntheticData, latent_tastes


@pytest.fixture(scope="session")
def tastes() -> SyntheticData:
    """300 users with sharp tastes over 4 topics of 60 items, items described by text."""
    return latent_tastes(
        n_users=300,
        n_items=60,
        n_interactions=6000,
        n_topics=4,
        concentration=0.05,
        with_text=True,
        seed=7,
    )
