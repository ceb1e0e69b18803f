"""The compiled log-posterior: finite differences, layout round trip, C entry point.

Its equality with build_model's PyMC graph (value and gradient on a grid of shapes) is
proven in ``tests/test_fastpath_proof.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from bayesgmm import _logdensity as ld
from bayesgmm.model import Priors

COV_TYPES = ("full", "tied", "diag", "spherical")


@pytest.mark.parametrize("cov", COV_TYPES)
def test_gradient_matches_finite_differences(cov, rng):
    X = rng.normal(size=(30, 2))
    spec = ld.LogDensitySpec.from_data(X, 2, cov, Priors())
    theta = rng.normal(scale=0.5, size=spec.n_dim)
    _, grad = ld.log_density_and_grad(theta, spec)
    eps = 1e-6
    fd = np.array(
        [
            (
                ld.log_density_and_grad(theta + eps * e, spec)[0]
                - ld.log_density_and_grad(theta - eps * e, spec)[0]
            )
            / (2 * eps)
            for e in np.eye(spec.n_dim)
        ]
    )
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cov", COV_TYPES)
def test_unconstrained_round_trip(cov, rng):
    k, d = 3, 2
    w = rng.dirichlet(np.ones(k))
    mu = rng.normal(size=(k, d))
    a = rng.normal(size=(k, d, d))
    covs = a @ np.swapaxes(a, -1, -2) + np.eye(d)
    param = {
        "full": np.linalg.cholesky(covs),
        "tied": np.linalg.cholesky(covs[0]),
        "diag": np.sqrt(np.diagonal(covs, axis1=1, axis2=2)),
        "spherical": np.sqrt(covs[:, 0, 0]),
    }[cov]
    theta = ld.to_unconstrained(w, mu, param, cov)
    assert theta.shape == (ld.n_unconstrained(k, d, cov),)
    back = ld.from_unconstrained(ld.expand(theta, k, d, cov)[None], k, d, cov)
    np.testing.assert_allclose(back["weights"][0], w, rtol=1e-12)
    np.testing.assert_allclose(back["means"][0], mu, rtol=1e-12)
    key = "chol" if cov in ("full", "tied") else "sigma"
    np.testing.assert_allclose(back[key][0], param, rtol=1e-12)


def test_c_callbacks_agree_with_python_entry(rng):
    import ctypes

    X = rng.normal(size=(50, 2))
    spec = ld.LogDensitySpec.from_data(X, 2, "full", Priors())
    logp_c, _ = ld.c_callbacks()
    theta = rng.normal(scale=0.3, size=spec.n_dim)
    grad = np.empty_like(theta)
    out = np.empty(1)
    data = spec.user_data
    p = ctypes.POINTER(ctypes.c_double)
    code = logp_c.ctypes(
        spec.n_dim,
        theta.ctypes.data_as(p),
        grad.ctypes.data_as(p),
        out.ctypes.data_as(p),
        data.ctypes.data_as(p),
    )
    value, ref_grad = ld.log_density_and_grad(theta, spec)
    assert code == 0
    assert out[0] == pytest.approx(value, rel=1e-14)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-14)
