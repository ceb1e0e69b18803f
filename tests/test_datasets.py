"""Shipped data sets and the synthetic generator."""

from __future__ import annotations

import numpy as np
import pytest

from bayesgmm import load_acidity, load_enzyme, load_faithful, load_galaxy, make_mixture


@pytest.mark.parametrize(
    "loader, shape, columns",
    [
        (load_faithful, (272, 2), ["eruptions", "waiting"]),
        (load_galaxy, (82, 1), ["x"]),
        (load_acidity, (155, 1), ["x"]),
        (load_enzyme, (245, 1), ["x"]),
    ],
)
def test_loaders_return_numeric_frames(loader, shape, columns):
    frame = loader()
    assert frame.shape == shape
    assert list(frame.columns) == columns
    assert np.isfinite(frame.to_numpy(float)).all()


def test_galaxy_has_the_corrected_observation():
    x = load_galaxy()["x"].to_numpy()
    assert x[77] == pytest.approx(26.96)
    assert x.max() < 40


def test_make_mixture_draws_the_requested_mixture():
    means = [[0.0, 0.0], [10.0, 10.0]]
    covs = [np.eye(2), 4 * np.eye(2)]
    X, y = make_mixture(20_000, [0.25, 0.75], means, covs, random_state=0)
    assert X.shape == (20_000, 2)
    assert np.bincount(y)[0] / 20_000 == pytest.approx(0.25, abs=0.01)
    np.testing.assert_allclose(X[y == 1].mean(axis=0), [10, 10], atol=0.05)
    np.testing.assert_allclose(np.cov(X[y == 1].T), covs[1], atol=0.15)
    X2, _ = make_mixture(20_000, [0.25, 0.75], means, covs, random_state=0)
    np.testing.assert_array_equal(X, X2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(weights=[0.5, 0.6]), "sum to 1"),
        (dict(weights=[1.0]), "one per mean"),
        (dict(covariances=np.eye(2)), "covariances has shape"),
    ],
)
def test_make_mixture_rejects_bad_parameters(kwargs, match):
    base = dict(weights=[0.5, 0.5], means=[[0, 0], [1, 1]], covariances=[np.eye(2)] * 2)
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        make_mixture(10, **base)


def test_public_names_load_lazily_and_all_is_complete():
    import subprocess
    import sys

    import bayesgmm

    assert set(bayesgmm.__all__) == set(bayesgmm._LAZY) | {"__version__"}
    for name in bayesgmm.__all__:
        assert getattr(bayesgmm, name) is not None
    assert set(bayesgmm.__all__) <= set(dir(bayesgmm))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        bayesgmm.nope
    # EM alone does not import PyMC (a fresh interpreter: this one has loaded it already).
    code = "import sys, bayesgmm; bayesgmm.EMGaussianMixture; print('pymc' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
