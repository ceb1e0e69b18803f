"""The shared log-density against SciPy, and the compiled EM kernel against the log-density."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from bayesgmm import _kernels
from bayesgmm._numerics import (
    COVARIANCE_TYPES,
    covariances_from_precisions_cholesky,
    log_gaussian_prob,
    log_mixture_density,
    n_parameters,
    precisions_cholesky_from_covariances,
    precisions_cholesky_from_precisions,
    precisions_from_precisions_cholesky,
    responsibilities,
)


def random_covariances(rng, covariance_type, k, d, lead=()):
    if covariance_type == "full":
        a = rng.normal(size=(*lead, k, d, d))
        return a @ np.swapaxes(a, -1, -2) + 0.5 * np.eye(d)
    if covariance_type == "tied":
        a = rng.normal(size=(*lead, d, d))
        return a @ np.swapaxes(a, -1, -2) + 0.5 * np.eye(d)
    if covariance_type == "diag":
        return rng.uniform(0.3, 2.0, size=(*lead, k, d))
    return rng.uniform(0.3, 2.0, size=(*lead, k))


def dense(cov, covariance_type, k, d):
    """Covariance matrix of every component, shape (..., K, D, D)."""
    if covariance_type == "full":
        return cov
    if covariance_type == "tied":
        return np.broadcast_to(cov[..., None, :, :], (*cov.shape[:-2], k, d, d))
    if covariance_type == "diag":
        return cov[..., :, None] * np.eye(d)
    return cov[..., :, None, None] * np.eye(d)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_gaussian_prob_matches_scipy(rng, covariance_type):
    k, d, n = 3, 4, 50
    X = rng.normal(scale=2.0, size=(n, d))
    means = rng.normal(size=(k, d))
    cov = random_covariances(rng, covariance_type, k, d)
    pc = precisions_cholesky_from_covariances(cov, covariance_type)
    got = log_gaussian_prob(X, means, pc, covariance_type)
    full = dense(cov, covariance_type, k, d)
    want = np.stack([multivariate_normal(means[j], full[j]).logpdf(X) for j in range(k)], axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_stacked_parameters_give_one_result_per_draw(rng, covariance_type):
    k, d, n, lead = 2, 3, 20, (2, 5)
    X = rng.normal(size=(n, d))
    means = rng.normal(size=(*lead, k, d))
    weights = rng.dirichlet(np.ones(k), size=lead)
    cov = random_covariances(rng, covariance_type, k, d, lead)
    pc = precisions_cholesky_from_covariances(cov, covariance_type)
    stacked = log_mixture_density(X, weights, means, pc, covariance_type)
    assert stacked.shape == (*lead, n)
    for c in range(lead[0]):
        for s in range(lead[1]):
            one = log_mixture_density(X, weights[c, s], means[c, s], pc[c, s], covariance_type)
            np.testing.assert_allclose(stacked[c, s], one, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_precision_conversions_round_trip(rng, covariance_type):
    cov = random_covariances(rng, covariance_type, 3, 4)
    pc = precisions_cholesky_from_covariances(cov, covariance_type)
    np.testing.assert_allclose(
        covariances_from_precisions_cholesky(pc, covariance_type), cov, rtol=1e-10
    )
    prec = precisions_from_precisions_cholesky(pc, covariance_type)
    np.testing.assert_allclose(
        precisions_cholesky_from_precisions(prec, covariance_type), pc, rtol=1e-10, atol=1e-12
    )
    if covariance_type in ("full", "tied"):
        assert np.allclose(np.tril(pc, -1), 0.0)
        np.testing.assert_allclose(prec @ cov, np.broadcast_to(np.eye(4), cov.shape), atol=1e-10)


def test_singular_covariance_gives_a_hint():
    cov = np.array([[[1.0, 1.0], [1.0, 1.0]]])
    with pytest.raises(ValueError, match="reg_covar"):
        precisions_cholesky_from_covariances(cov, "full")
    with pytest.raises(ValueError, match="reg_covar"):
        precisions_cholesky_from_covariances(np.array([1.0, 0.0]), "spherical")


def test_responsibilities_sum_to_one(rng):
    wlp = rng.normal(scale=30.0, size=(4, 100, 5))
    resp, log_norm = responsibilities(wlp)
    np.testing.assert_allclose(resp.sum(axis=-1), 1.0, atol=1e-12)
    assert log_norm.shape == (4, 100)


def test_n_parameters():
    assert n_parameters(3, 2, "full") == 3 * 3 + 3 * 2 + 2
    assert n_parameters(3, 2, "tied") == 3 + 6 + 2
    assert n_parameters(3, 2, "diag") == 6 + 6 + 2
    assert n_parameters(3, 2, "spherical") == 3 + 6 + 2


@pytest.mark.parametrize("n", [300, 150_000])  # serial and multi-threaded paths
@pytest.mark.parametrize("kind", ["full", "diag"])
def test_kernel_matches_numpy_reference(rng, kind, n):
    k, d = 3, 3
    X = np.ascontiguousarray(rng.normal(scale=3.0, size=(n, d)))
    sw = rng.uniform(0.5, 2.0, size=n)
    weights = np.array([0.2, 0.5, 0.3])
    means = rng.normal(size=(k, d))
    cov_type = "full" if kind == "full" else "diag"
    cov = random_covariances(rng, cov_type, k, d)
    pc = precisions_cholesky_from_covariances(cov, cov_type)
    from bayesgmm._numerics import log_det_precision_cholesky, log_weighted_prob

    log_const = (
        np.log(weights) + log_det_precision_cholesky(pc, cov_type, d) - 0.5 * d * np.log(2 * np.pi)
    )
    ll, nk, s1, s2 = _kernels.em_pass(kind, X, sw, log_const, means, pc)
    resp, log_norm = responsibilities(log_weighted_prob(X, weights, means, pc, cov_type))
    wr = resp * sw[:, None]
    np.testing.assert_allclose(ll, sw @ log_norm, rtol=1e-12)
    np.testing.assert_allclose(nk, wr.sum(axis=0), rtol=1e-11)
    diff = X[:, None, :] - means[None]
    np.testing.assert_allclose(s1, np.einsum("nk,nkd->kd", wr, diff), rtol=1e-10, atol=1e-9)
    second = np.einsum("nk,nka,nkb->kab", wr, diff, diff)
    want = second if kind == "full" else np.diagonal(second, axis1=1, axis2=2)
    np.testing.assert_allclose(s2, want, rtol=1e-10)
