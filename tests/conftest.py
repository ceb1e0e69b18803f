"""Shared fixtures: a seeded generator and a well-separated mixture."""

from __future__ import annotations

import numpy as np
import pytest

from bayesgmm import make_mixture

WELL_SEPARATED = dict(
    weights=[0.3, 0.5, 0.2],
    means=[[-6.0, 0.0], [0.0, 5.0], [6.0, -1.0]],
    covariances=[
        [[1.0, 0.3], [0.3, 0.8]],
        [[0.7, -0.2], [-0.2, 1.2]],
        [[1.1, 0.0], [0.0, 0.5]],
    ],
)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261122)


@pytest.fixture(scope="session")
def separated() -> tuple[np.ndarray, np.ndarray]:
    """600 samples from three well-separated 2-D components, with their labels."""
    return make_mixture(600, **WELL_SEPARATED, random_state=7)


@pytest.fixture(scope="session")
def faithful_fit():
    """A real posterior, reused by many tests: Old Faithful, 2 full components, 4 chains."""
    from bayesgmm import BayesGaussianMixture, load_faithful

    return BayesGaussianMixture(2, random_state=0, progressbar=False).fit(load_faithful())
