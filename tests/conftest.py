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


# ------------------------------------------------------------------ running on two workers
# `./dev test` runs the suite on two pytest-xdist workers with `--dist loadfile`: a test file
# runs on one worker, so its module-scoped fixtures (a docs build, a browser, a cluster, a
# fitted posterior) are built once. (xdist's `loadgroup` would be finer, but its group marks
# do not reach the test ids under pytest 9.2.) The files with the longest tests start first,
# so no worker is left with a long file at the end. The order changes nothing else: every
# test makes its own data and seeds.

#: Test files holding the longest tests (measured with --durations), longest first.
LONG_FIRST = (
    "test_selection.py",
    "test_docs.py",
    "test_notebooks.py",
    "test_browser.py",
    "test_bayes.py",
    "test_fastpath_proof.py",
    "test_evidence_custom.py",
    "test_methods.py",
    "test_custom_model.py",
    "test_kernels_cache.py",
    "test_plots.py",
    "test_cli.py",
)


def pytest_collection_modifyitems(config, items):
    def rank(item):
        name = item.path.name
        return LONG_FIRST.index(name) if name in LONG_FIRST else len(LONG_FIRST)

    items[:] = [item for _, item in sorted(enumerate(items), key=lambda t: (rank(t[1]), t[0]))]
