"""The compiled log-posterior equals the PyMC graph of build_model, value and gradient."""

from __future__ import annotations

import numpy as np
import pytest

from bayesgmm import _logdensity as ld
from bayesgmm.model import Priors, build_model

COV_TYPES = ("full", "tied", "diag", "spherical")


def _pymc_point(theta, model, k, d, cov):
    """Split our unconstrained vector into PyMC's value variables."""
    p = d * (d + 1) // 2
    point = {
        "weights_simplex__": theta[: k - 1],
        "means": theta[k - 1 : k - 1 + k * d].reshape(k, d),
    }
    rest = theta[k - 1 + k * d :]
    # With one feature the covariance is the standard deviation alone (log-transformed
    # half-normal) instead of an LKJ Cholesky factor; the unconstrained values are the same.
    packed = "log" if d == 1 else "cholesky-cov-packed"
    if cov == "full":
        for j in range(k):
            point[f"chol_cov_{j}_{packed}__"] = rest[j * p : (j + 1) * p]
    elif cov == "tied":
        point[f"chol_cov_{packed}__"] = rest
    elif cov == "diag":
        point["sigma_log__"] = rest.reshape(k, d)
    else:
        point["sigma_log__"] = rest
    assert set(point) == {v.name for v in model.value_vars}
    return point


@pytest.mark.parametrize("cov", COV_TYPES)
@pytest.mark.parametrize(("k", "d"), [(3, 3), (1, 1), (3, 1), (1, 3)])
def test_log_density_and_gradient_equal_pymc_graph(cov, k, d, rng):
    X = (rng.normal(size=(40, 3)) * [1.0, 3.0, 0.2] + [0.0, 5.0, -1.0])[:, :d]
    priors = Priors(weights_concentration=1.7, mean_scale=2.0, sd_scale=1.3, lkj_eta=2.5)
    model = build_model(X, k, covariance_type=cov, priors=priors)
    logp = model.compile_logp(mode="FAST_COMPILE")
    dlogp = model.compile_dlogp(mode="FAST_COMPILE")
    spec = ld.LogDensitySpec.from_data(X, k, cov, priors)
    order = [v.name for v in model.value_vars]
    for _ in range(3):
        theta = rng.normal(scale=0.7, size=spec.n_dim)
        point = _pymc_point(theta, model, k, d, cov)
        value, grad = ld.log_density_and_grad(theta, spec)
        # our gradient, reordered into PyMC's value-variable order
        pieces, start = {}, 0
        for name, v in point.items():
            pieces[name] = grad[start : start + np.size(v)]
            start += np.size(v)
        ours = np.concatenate([pieces[name] for name in order])
        np.testing.assert_allclose(value, logp(point), rtol=1e-10)
        np.testing.assert_allclose(ours, dlogp(point), rtol=1e-8, atol=1e-8)


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
