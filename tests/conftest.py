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
# `./dev test` runs the suite on pytest-xdist workers (`--dist loadgroup`). Two rules keep that
# fast and faithful: a module with module-scoped fixtures (a docs build, a browser, a cluster,
# a fitted posterior) runs on one worker, so its fixtures are built once; and the longest
# tests start first, so no worker is left with a long test at the end. The order changes
# nothing else: every test makes its own data and seeds.

#: The longest tests and modules (measured with --durations), longest first.
LONG_FIRST = (
    "test_selection.py::test_real_posteriors_iris_full_one_to_six",
    "test_docs.py",
    "test_notebooks.py",
    "test_bayes.py::test_one_feature_full_and_tied_on_every_sampler",
    "test_fastpath_proof.py",
    "test_evidence_custom.py",
    "test_browser.py",
    "test_custom_model.py",
    "test_methods.py::test_reproducibility_command_gives_the_identical_posterior",
    "test_kernels_cache.py",
    "test_plots.py::test_report_figures_are_legible",
)


def _module_has_module_fixtures(path, cache={}):  # noqa: B006 - a per-session memo
    if path not in cache:
        cache[path] = 'scope="module"' in path.read_text(encoding="utf-8")
    return cache[path]


def pytest_collection_modifyitems(config, items):
    def rank(item):
        where = f"{item.path.name}::{item.name}"
        for i, prefix in enumerate(LONG_FIRST):
            if where.startswith(prefix):
                return i
        return len(LONG_FIRST)

    items[:] = [item for _, item in sorted(enumerate(items), key=lambda t: (rank(t[1]), t[0]))]
    for item in items:
        if _module_has_module_fixtures(item.path):
            item.add_marker(pytest.mark.xdist_group(item.path.stem))
