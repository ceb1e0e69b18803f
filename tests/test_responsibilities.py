"""Posterior responsibility summaries on synthetic draw stacks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp

from bayesgmm import EMGaussianMixture
from bayesgmm._numerics import log_weighted_prob, responsibilities
from bayesgmm.responsibilities import responsibility_draws, summarize_responsibilities


def jittered_draws(gm, n_draws, scale, rng):
    """A cloud of parameter draws around an EM solution (shapes of a 2-chain posterior)."""
    k, d = gm.means_.shape
    means = gm.means_ + scale * rng.normal(size=(2, n_draws // 2, k, d))
    weights = rng.dirichlet(gm.weights_ * 400, size=(2, n_draws // 2))
    pc = np.broadcast_to(gm.precisions_cholesky_, (2, n_draws // 2, *gm.precisions_cholesky_.shape))
    return weights, means, pc


@pytest.fixture(scope="module")
def em_fit(separated):
    X, _ = separated
    return X, EMGaussianMixture(3, random_state=0).fit(X)


def test_identical_draws_reproduce_em(em_fit):
    X, gm = em_fit
    w = np.broadcast_to(gm.weights_, (4, 3))
    mu = np.broadcast_to(gm.means_, (4, 3, 2))
    pc = np.broadcast_to(gm.precisions_cholesky_, (4, 3, 2, 2))
    s = summarize_responsibilities(X, w, mu, pc, "full")
    np.testing.assert_allclose(s.mean, gm.predict_proba(X), atol=1e-12)
    np.testing.assert_allclose(s.lower, s.upper, atol=1e-12)
    np.testing.assert_allclose(s.entropy_epistemic, 0.0, atol=1e-12)
    np.testing.assert_allclose(s.log_density, gm.score_samples(X), rtol=1e-12)
    np.testing.assert_array_equal(s.labels, gm.predict(X))


def test_summaries_are_consistent(em_fit, rng):
    X, gm = em_fit
    w, mu, pc = jittered_draws(gm, 200, 0.3, rng)
    s = summarize_responsibilities(X, w, mu, pc, "full", interval=0.9)
    np.testing.assert_allclose(s.mean.sum(axis=1), 1.0, atol=1e-12)
    # (The mean of a skewed distribution may lie outside its equal-tailed interval.)
    assert (s.lower <= s.upper).all() and (s.lower >= 0).all() and (s.upper <= 1).all()
    assert (s.entropy_epistemic >= 0).all()
    assert (s.entropy_total <= np.log(3) + 1e-12).all()
    np.testing.assert_allclose(
        s.entropy_total, s.entropy_aleatoric + s.entropy_epistemic, atol=1e-12
    )
    draws = responsibility_draws(X, w, mu, pc, "full")
    assert draws.shape == (2, 100, X.shape[0], 3)
    np.testing.assert_allclose(draws.sum(axis=-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(draws.mean(axis=(0, 1)), s.mean, atol=1e-12)
    assert s.to_frame().shape == (X.shape[0], 8 + 3 * 3)


@pytest.mark.parametrize("cov", ["full", "tied", "diag", "spherical"])
def test_compiled_summary_equals_numpy_reference(cov, rng):
    """The streaming kernel against summaries of the dense per-draw array, in NumPy."""
    X = rng.normal(size=(300, 3))
    n_draws, k = 37, 3  # odd count: the quantiles interpolate between order statistics
    w = rng.dirichlet(np.ones(k), size=n_draws)
    mu = rng.normal(size=(n_draws, k, 3))
    a = rng.normal(size=(n_draws, k, 3, 3)) * 0.3 + 2 * np.eye(3)
    pc = {
        "full": np.triu(a),
        "tied": np.triu(a[:, 0]),
        "diag": np.abs(a[..., 0, :]) + 0.5,
        "spherical": np.abs(a[..., 0, 0]) + 0.5,
    }[cov]
    s = summarize_responsibilities(X, w, mu, pc, cov, interval=0.8)
    lw = log_weighted_prob(X, w, mu, pc, cov)
    resp, log_norm = responsibilities(lw)  # (S, N, K), (S, N)
    np.testing.assert_allclose(s.mean, resp.mean(axis=0), atol=1e-12)
    lo, hi = np.quantile(resp, [0.1, 0.9], axis=0)
    np.testing.assert_allclose(s.lower, lo, atol=1e-12)
    np.testing.assert_allclose(s.upper, hi, atol=1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(resp > 0, resp * np.log(resp), 0.0).sum(-1).mean(0)
    np.testing.assert_allclose(s.entropy_aleatoric, ent, atol=1e-10)
    np.testing.assert_allclose(
        s.log_density, logsumexp(log_norm, axis=0) - np.log(n_draws), rtol=1e-10
    )
    ld_lo, ld_hi = np.quantile(log_norm, [0.1, 0.9], axis=0)
    np.testing.assert_allclose(s.log_density_lower, ld_lo, rtol=1e-10)
    np.testing.assert_allclose(s.log_density_upper, ld_hi, rtol=1e-10)


def test_midway_points_are_more_uncertain_than_centres(em_fit, rng):
    _, gm = em_fit
    w, mu, pc = jittered_draws(gm, 200, 0.3, rng)
    centres = gm.means_
    midway = (gm.means_[[0, 1, 0]] + gm.means_[[1, 2, 2]]) / 2
    s = summarize_responsibilities(np.vstack([centres, midway]), w, mu, pc, "full")
    assert s.entropy_total[3:].min() > s.entropy_total[:3].max()
    assert s.label_probability[3:].max() < s.label_probability[:3].min()


def test_responsibility_draws_refuses_huge_results(em_fit, rng):
    X, gm = em_fit
    w, mu, pc = jittered_draws(gm, 40, 0.3, rng)
    with pytest.raises(ValueError, match="summarize_responsibilities"):
        responsibility_draws(X, w, mu, pc, "full", max_memory_mb=0.001)


def test_bad_interval_and_feature_mismatch(em_fit, rng):
    X, gm = em_fit
    w, mu, pc = jittered_draws(gm, 4, 0.1, rng)
    with pytest.raises(ValueError, match="interval"):
        summarize_responsibilities(X, w, mu, pc, "full", interval=1.5)
    with pytest.raises(ValueError, match="features"):
        summarize_responsibilities(np.zeros((3, 5)), w, mu, pc, "full")


def test_label_only_intervals_match_the_full_summary(em_fit, rng):
    X, gm = em_fit
    w, mu, pc = jittered_draws(gm, 60, 0.3, rng)
    full = summarize_responsibilities(X, w, mu, pc, "full")
    lean = summarize_responsibilities(X, w, mu, pc, "full", intervals="label")
    rows = np.arange(X.shape[0])
    np.testing.assert_array_equal(lean.labels, full.labels)
    np.testing.assert_array_equal(lean.mean, full.mean)
    np.testing.assert_array_equal(lean.entropy_aleatoric, full.entropy_aleatoric)
    np.testing.assert_array_equal(lean.lower[rows, lean.labels], full.lower[rows, full.labels])
    np.testing.assert_array_equal(lean.upper[rows, lean.labels], full.upper[rows, full.labels])
    other = np.ones_like(lean.lower, dtype=bool)
    other[rows, lean.labels] = False
    assert np.isnan(lean.lower[other]).all() and np.isnan(lean.log_density_lower).all()
    with pytest.raises(ValueError, match="intervals"):
        summarize_responsibilities(X, w, mu, pc, "full", intervals="some")
