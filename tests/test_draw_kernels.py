"""The compiled per-draw kernels equal their NumPy references in :mod:`bayesgmm._numerics`."""

from __future__ import annotations

import numpy as np
import pytest

from bayesgmm import _draw_kernels as dk
from bayesgmm import _numerics as nm

COV_TYPES = ("full", "tied", "diag", "spherical")


def _random_draws(rng, cov, *, s, k, d):
    """A stack of ``s`` random parameter draws in the layout of :mod:`bayesgmm._numerics`."""
    w = rng.dirichlet(np.ones(k), size=s)
    mu = rng.normal(size=(s, k, d))
    a = rng.normal(size=(s, k, d, d))
    covs = a @ np.swapaxes(a, -1, -2) + 0.5 * np.eye(d)
    c = {
        "full": covs,
        "tied": covs[:, 0],
        "diag": np.diagonal(covs, axis1=-2, axis2=-1),
        "spherical": covs[:, :, 0, 0],
    }[cov]
    return w, mu, nm.precisions_cholesky_from_covariances(c, cov)


@pytest.mark.parametrize("cov", COV_TYPES)
def test_pointwise_log_density_equals_numerics(cov, rng):
    X = rng.normal(size=(700, 3))  # more than one block of rows
    w, mu, pc = _random_draws(rng, cov, s=7, k=3, d=3)
    w[0, 1] = 0.0  # an empty component gives -inf log-weight, not NaN
    w[0] /= w[0].sum()
    ours = dk.pointwise_log_likelihood(X, w, mu, pc, cov)
    ref = nm.log_mixture_density(X, w, mu, pc, cov)
    np.testing.assert_allclose(ours, ref, rtol=1e-12)


@pytest.mark.parametrize("cov", COV_TYPES)
def test_allocation_probabilities_equal_numerics(cov, rng):
    X = rng.normal(size=(300, 2))
    w, mu, pc = _random_draws(rng, cov, s=5, k=3, d=2)
    ours = dk.responsibility_draws(X, w, mu, pc, cov)
    ref = nm.responsibilities(nm.log_weighted_prob(X, w, mu, pc, cov))[0]
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(ours.sum(-1), 1.0, rtol=1e-12)
