"""Bridge-sampling evidence against quadrature, importance sampling and itself.

Every reference below integrates the log-density of the same PyMC model (``build_model``,
``compile_logp``): directly, or through a vectorised NumPy copy that is first checked equal to
it at random points.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math

import numpy as np
import pytest
import xarray as xr
from scipy.special import gammaln, logsumexp

from bayesgmm import (
    BayesGaussianMixture,
    Priors,
    build_model,
    log_marginal_likelihood,
    make_mixture,
)
from bayesgmm.evidence import EvidenceResult, _Layout, posterior_over_k
from bayesgmm.relabel import apply_permutations

HALF_LOG_2_OVER_PI = 0.5 * math.log(2.0 / math.pi)
LOG_2PI = math.log(2.0 * math.pi)


def _fit(X, k, seed, **kw):
    kw = {"covariance_type": "diag", "draws": 1000, "tune": 600, "chains": 4, **kw}
    return BayesGaussianMixture(k, random_state=seed, progressbar=False, **kw).fit(X)


@pytest.fixture(scope="module")
def data_1d():
    X, _ = make_mixture(60, [0.4, 0.6], [[-3.0], [2.0]], [[[1.0]], [[0.6]]], random_state=3)
    return X


@pytest.fixture(scope="module")
def data_2d():
    rng = np.random.default_rng(5)
    return rng.normal(size=(40, 2)) * [1.0, 0.3] + [2.0, -1.0]


@pytest.fixture(scope="module")
def k2_fits(data_1d):
    """Three independent posteriors of the K = 2, D = 1 model."""
    fits = [_fit(data_1d, 2, seed) for seed in (0, 1, 2)]
    assert all(f.diagnostics_.passed for f in fits)
    return fits


# --------------------------------------------------------------------------- NumPy references


def _scales(X, priors_mean_scale=2.5, priors_sd_scale=1.0):
    loc, scale = X.mean(0), X.std(0)
    return loc, priors_mean_scale * scale, priors_sd_scale * scale


def _logp_diag_k1(X, mu, u, mean_scale=2.5, sd_scale=1.0):
    """Log-posterior of K = 1, "diag", at unconstrained (means ``mu``, log-sds ``u``).

    ``mu`` and ``u`` have shape (..., D); NumPy broadcasting over the leading axes.
    """
    n = X.shape[0]
    loc, tau, sds = _scales(X, mean_scale, sd_scale)
    s1, s2 = X.sum(0), (X**2).sum(0)
    sigma = np.exp(u)
    out = -0.5 * LOG_2PI - np.log(tau) - 0.5 * ((mu - loc) / tau) ** 2  # means prior
    out = out + HALF_LOG_2_OVER_PI - np.log(sds) - 0.5 * (sigma / sds) ** 2 + u  # sd prior, Jac
    quad = (s2 - 2 * mu * s1 + n * mu**2) / sigma**2
    out = out - 0.5 * n * LOG_2PI - n * u - 0.5 * quad  # likelihood
    return out.sum(-1)


def _logp_diag_d1(X, theta, k=2):
    """Log-posterior of K components, D = 1, "diag" at ``theta`` (..., 3K - 1).

    ``theta = [y (K-1), mu (K), log sd (K)]``, ``y`` PyMC's simplex value:
    ``log w = softmax-log of [y, -sum(y)]``.
    """
    x = X[:, 0]
    loc, tau, sds = (v[0] for v in _scales(X))
    y, mu, u = theta[..., : k - 1], theta[..., k - 1 : 2 * k - 1], theta[..., 2 * k - 1 :]
    log_w = np.concatenate([y, -y.sum(-1, keepdims=True)], -1)
    log_w = log_w - logsumexp(log_w, axis=-1, keepdims=True)
    alpha = 1.0
    out = gammaln(k * alpha) - k * gammaln(alpha) + math.log(k) + (alpha * log_w).sum(-1)
    out = out + (-0.5 * LOG_2PI - math.log(tau) - 0.5 * ((mu - loc) / tau) ** 2).sum(-1)
    sigma = np.exp(u)
    out = out + (HALF_LOG_2_OVER_PI - math.log(sds) - 0.5 * (sigma / sds) ** 2 + u).sum(-1)
    z = (x[..., None, :] - mu[..., :, None]) / sigma[..., :, None]  # (..., K, N)
    comp = log_w[..., :, None] - 0.5 * LOG_2PI - u[..., :, None] - 0.5 * z**2
    return out + logsumexp(comp, axis=-2).sum(-1)


def _relabelling_matrices(k):
    """The K! linear maps of ``theta`` (D = 1, "diag") that permute the component labels.

    Built from the definitions (simplex value ``y`` -> ``z = [y, -sum y]``, permute, drop the
    last; means and log-sds permuted), independently of :mod:`bayesgmm.evidence`.
    """
    lift = np.vstack([np.eye(k - 1), -np.ones((1, k - 1))])  # y -> z
    drop = np.eye(k)[: k - 1]  # z -> y
    out = []
    for perm in itertools.permutations(range(k)):
        p = np.eye(k)[list(perm)]
        m = np.zeros((3 * k - 1, 3 * k - 1))
        m[: k - 1, : k - 1] = drop @ p @ lift
        m[k - 1 : 2 * k - 1, k - 1 : 2 * k - 1] = p
        m[2 * k - 1 :, 2 * k - 1 :] = p
        out.append(m)
    return out


def _pymc_logp(X, k, cov="diag", priors=None):
    model = build_model(X, k, covariance_type=cov, priors=priors)
    logp = model.compile_logp(jacobian=True)
    names = [v.name for v in model.value_vars]
    shapes = [np.shape(model.initial_point()[n]) for n in names]
    sizes = [int(np.prod(s)) for s in shapes]
    bounds = np.cumsum([0, *sizes])

    def f(theta):
        return float(
            logp(
                {
                    n: theta[bounds[j] : bounds[j + 1]].reshape(shapes[j])
                    for j, n in enumerate(names)
                }
            )
        )

    return f, model


def _grid_log_integral(logf, centres, halfwidths, n):
    """log ∫ exp(logf) over a box, trapezoid rule on an n^D grid (the integrand is ~0 at edges)."""
    axes = [np.linspace(c - h, c + h, n) for c, h in zip(centres, halfwidths, strict=True)]
    grids = np.meshgrid(*axes, indexing="ij")
    values = logf(*grids)
    assert np.all(values.max() - np.array(_edges(values)) > 20), "grid box too small"
    log_cell = sum(math.log(a[1] - a[0]) for a in axes)
    return float(logsumexp(values)) + log_cell


def _edges(values):
    out = []
    for ax in range(values.ndim):
        out.append(np.take(values, 0, axis=ax).max())
        out.append(np.take(values, -1, axis=ax).max())
    return out


# --------------------------------------------------------------------------- (a) quadrature


def test_numpy_references_equal_pymc_logp(data_1d, data_2d):
    rng = np.random.default_rng(0)
    f, _ = _pymc_logp(data_2d, 1)
    for _ in range(3):
        theta = rng.normal(scale=0.5, size=4)  # [mu (2), log sd (2)]
        ours = _logp_diag_k1(data_2d, theta[:2], theta[2:])
        assert ours == pytest.approx(f(theta), rel=1e-10)
    f, _ = _pymc_logp(data_1d, 2)
    for _ in range(3):
        theta = rng.normal(scale=0.7, size=5)
        assert _logp_diag_d1(data_1d, theta) == pytest.approx(f(theta), rel=1e-10)
    f, _ = _pymc_logp(data_1d, 3)  # the K = 3 reference of bench/evidence_check.py
    theta = rng.normal(scale=0.7, size=8)
    assert _logp_diag_d1(data_1d, theta, 3) == pytest.approx(f(theta), rel=1e-10)


def test_prior_normalising_constants_and_jacobians_are_in_the_target():
    """The priors on PyMC's unconstrained scale integrate to one (weights of K = 3, sds)."""
    X = np.random.default_rng(1).normal(size=(20, 1))
    model = build_model(X, 3, covariance_type="spherical")
    logp_w = model.compile_logp(vars=[model["weights"]], jacobian=True)
    axis = np.linspace(-12.0, 12.0, 161)
    point = model.initial_point()
    values = np.array(
        [[logp_w({**point, "weights_simplex__": np.array([a, b])}) for b in axis] for a in axis]
    )
    assert logsumexp(values) + 2 * math.log(axis[1] - axis[0]) == pytest.approx(0.0, abs=1e-6)
    one = build_model(X, 1, covariance_type="spherical")
    logp_s = one.compile_logp(vars=[one["sigma"]], jacobian=True)
    axis = np.linspace(-15.0, 5.0, 2001)
    point = one.initial_point()
    values = np.array([logp_s({**point, "sigma_log__": np.array([u])}) for u in axis])
    assert logsumexp(values) + math.log(axis[1] - axis[0]) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    ("d", "priors"), [(1, None), (1, Priors(mean_scale=0.5, sd_scale=3.0)), (2, None)]
)
def test_k1_diag_matches_quadrature(d, priors, data_1d, data_2d):
    X = data_1d if d == 1 else data_2d
    scales = {} if priors is None else {"mean_scale": 0.5, "sd_scale": 3.0}
    if priors is not None:  # the NumPy reference with these priors equals PyMC's graph
        f, _ = _pymc_logp(X, 1, priors=priors)
        theta = np.random.default_rng(6).normal(scale=0.5, size=2)
        assert _logp_diag_k1(X, theta[:1], theta[1:], **scales) == pytest.approx(f(theta))
    bgm = _fit(X, 1, seed=4, priors=priors)
    res = log_marginal_likelihood(bgm, random_state=0, target="pymc")  # the specification
    assert res.estimable, res.reason
    n = X.shape[0]
    centres = [*X.mean(0), *np.log(X.std(0))]
    halfwidths = [*(10 * X.std(0) / math.sqrt(n)), *([10 / math.sqrt(2 * n)] * d)]
    points = 401 if d == 1 else 41

    def logf(*g):
        mu, u = np.stack(g[:d], -1), np.stack(g[d:], -1)
        return _logp_diag_k1(X, mu, u, **scales)

    exact = _grid_log_integral(logf, centres, halfwidths, points)
    assert abs(res.log_evidence - exact) < 0.05, (res, exact)
    assert res.standard_error < 0.05


def _logp_full_k1_d2(X, theta, eta=2.0):
    """Log-posterior of K = 1, D = 2, "full" at ``theta`` (..., 5) = [mu (2), packed chol (3)].

    Packed chol: ``log L00, L10, log L11`` (PyMC's LKJCholeskyCov value); vectorised.
    """
    n, d = X.shape
    loc, tau, sds = _scales(X)
    mu = theta[..., :2]
    a, b, c = np.exp(theta[..., 2]), theta[..., 3], np.exp(theta[..., 4])
    out = (-0.5 * LOG_2PI - np.log(tau) - 0.5 * ((mu - loc) / tau) ** 2).sum(-1)
    # LKJCholeskyCov(eta, HalfNormal(sds)) density of the Cholesky factor, with constants
    lkj_norm = gammaln(eta + 0.5) - 0.5 * math.log(math.pi) - gammaln(eta)
    out = out + lkj_norm + (HALF_LOG_2_OVER_PI - np.log(sds)).sum()
    for i, (diag, sd2) in enumerate([(a, a**2), (c, b**2 + c**2)]):
        a_i = 2 * eta - 2 + d - i
        out = out + a_i * np.log(diag) - 0.5 * (a_i + i) * np.log(sd2) - 0.5 * sd2 / sds[i] ** 2
    out = out + theta[..., 2] + theta[..., 4]  # log-Jacobian of the log-diagonal transform
    xbar = X.mean(0)
    S = (X - xbar).T @ (X - xbar)
    v1, v2 = xbar[0] - mu[..., 0], xbar[1] - mu[..., 1]
    z1 = v1 / a
    z2 = (v2 - b * z1) / c
    trace = S[0, 0] / a**2 + (S[1, 1] - 2 * (b / a) * S[0, 1] + (b / a) ** 2 * S[0, 0]) / c**2
    quad = trace + n * (z1**2 + z2**2)
    return out - 0.5 * n * d * LOG_2PI - n * (theta[..., 2] + theta[..., 4]) - 0.5 * quad


def test_k1_full_matches_quadrature(data_2d):
    """The default covariance type (LKJ Cholesky prior, packed transform): 5-D quadrature."""
    from bayesgmm.evidence import _theta_from_posterior

    X = data_2d
    f, _ = _pymc_logp(X, 1, "tied")  # = "full" for K = 1; build_model(K=1, "full") fails
    rng = np.random.default_rng(4)
    for _ in range(3):
        theta = rng.normal(scale=0.5, size=5)
        assert _logp_full_k1_d2(X, theta) == pytest.approx(f(theta), rel=1e-10)
    bgm = _fit(X, 1, seed=5, covariance_type="full")
    res = log_marginal_likelihood(bgm, random_state=0, target="pymc")
    assert res.estimable, res.reason
    draws = _theta_from_posterior(bgm.idata_["posterior"], _Layout(1, 2, "full")).reshape(-1, 5)

    def logf(*g):
        return _logp_full_k1_d2(X, np.stack(g, -1))

    exact = _grid_log_integral(logf, draws.mean(0), 9.5 * draws.std(0), 17)
    assert abs(res.log_evidence - exact) < 0.05, (res, exact)


# ------------------------------------------------------------------ (b) importance sampling


def _importance_sampling(X, bgm, n_draws=1_000_000, seed=0, df=4.0, chunk=50_000):
    """log p(y) by importance sampling from a symmetrised multivariate t (df=4), 10^6 draws.

    D = 1, "diag", any K: the t is centred on the stored (relabelled) draws with 1.5 times
    their covariance, and mixed evenly over the K! relabellings.
    """
    post = bgm.idata_["posterior"]
    k = post.sizes["component"]
    w = post["weights"].transpose("chain", "draw", "component").values.reshape(-1, k)
    mu = post["means"].transpose("chain", "draw", "component", "feature").values.reshape(-1, k)
    sd = post["sigma"].transpose("chain", "draw", "component", "feature").values.reshape(-1, k)
    log_w = np.log(w)
    theta = np.hstack([(log_w - log_w.mean(1, keepdims=True))[:, : k - 1], mu, np.log(sd)])
    mean, cov = theta.mean(0), 1.5 * np.cov(theta, rowvar=False)
    chol = np.linalg.cholesky(cov)
    maps = _relabelling_matrices(k)
    p = mean.size

    def log_t(x):
        z = np.linalg.solve(chol, (x - mean).T)
        m = (z * z).sum(0)
        return (
            gammaln((df + p) / 2)
            - gammaln(df / 2)
            - 0.5 * p * math.log(df * math.pi)
            - np.log(np.diag(chol)).sum()
            - 0.5 * (df + p) * np.log1p(m / df)
        )

    rng = np.random.default_rng(seed)
    log_w = []
    for start in range(0, n_draws, chunk):
        m = min(chunk, n_draws - start)
        z = rng.standard_normal((m, p)) @ chol.T
        x = mean + z / np.sqrt(rng.chisquare(df, size=(m, 1)) / df)
        which = rng.integers(len(maps), size=m)
        x = np.einsum("nij,nj->ni", np.stack(maps)[which], x)
        log_g = logsumexp([log_t(x @ a.T) for a in maps], axis=0) - math.log(len(maps))
        log_w.append(_logp_diag_d1(X, x, k) - log_g)
    log_w = np.concatenate(log_w)
    est = logsumexp(log_w) - math.log(n_draws)
    w = np.exp(log_w - log_w.max())
    se = w.std() / (w.mean() * math.sqrt(n_draws))
    return float(est), float(se)


def test_k2_matches_importance_sampling(data_1d, k2_fits):
    bgm = k2_fits[0]
    res = log_marginal_likelihood(bgm, random_state=0)
    assert res.estimable, res.reason
    assert res.n_labellings == 2
    ref, ref_se = _importance_sampling(data_1d, bgm)
    assert ref_se < 0.02
    assert abs(res.log_evidence - ref) < 3 * math.hypot(res.standard_error, ref_se), (
        res,
        ref,
        ref_se,
    )


# --------------------------------------------------------------------------- (c), (d)


def test_repeated_fits_and_seeds_agree_within_standard_errors(k2_fits):
    results = [log_marginal_likelihood(f, random_state=i) for i, f in enumerate(k2_fits)]
    results.append(log_marginal_likelihood(k2_fits[0], random_state=123))
    assert all(r.estimable for r in results), [r.reason for r in results]
    for i, a in enumerate(results):
        for b in results[i + 1 :]:
            combined = math.hypot(a.standard_error, b.standard_error)
            assert abs(a.log_evidence - b.log_evidence) < 3 * combined, (a, b)


def test_estimate_does_not_depend_on_the_labels_of_the_draws(k2_fits):
    bgm = k2_fits[1]
    post = bgm.idata_["posterior"].to_dataset()
    rng = np.random.default_rng(7)
    perms = np.argsort(rng.random((post.sizes["chain"], post.sizes["draw"], 2)), axis=-1)
    shuffled = copy.copy(bgm)
    shuffled.idata_ = bgm.idata_.copy()
    shuffled.idata_["posterior"] = xr.DataTree(apply_permutations(post, perms))
    a = log_marginal_likelihood(bgm, random_state=3)
    b = log_marginal_likelihood(shuffled, random_state=3)
    assert a.estimable and b.estimable
    assert abs(a.log_evidence - b.log_evidence) < a.standard_error
    # symmetric target and proposal, proposal fitted after an internal relabelling: the same
    assert b.log_evidence == pytest.approx(a.log_evidence, abs=1e-8)


@pytest.mark.parametrize("cov", ["full", "tied", "diag", "spherical"])
def test_permutations_leave_the_log_posterior_unchanged_and_preserve_volume(cov):
    # the compiled twin of PyMC's log-posterior (tests/test_fastpath_proof.py proves them equal)
    from bayesgmm import _logdensity as ld
    from bayesgmm.model import Priors

    X = np.random.default_rng(2).normal(size=(30, 2))
    k = 3
    spec = ld.LogDensitySpec.from_data(X, k, cov, Priors(weights_concentration=1.5))
    layout = _Layout(k, 2, cov)
    theta = np.random.default_rng(3).normal(scale=0.5, size=(1, layout.dim))
    eye = np.eye(layout.dim)
    before = ld.log_density_and_grad(theta[0], spec)[0]
    for perm in layout.permutations():
        moved = layout.permute(theta, perm)[0]
        assert ld.log_density_and_grad(moved, spec)[0] == pytest.approx(before, rel=1e-12)
        matrix = layout.permute(eye, perm)
        assert abs(np.linalg.det(matrix)) == pytest.approx(1.0)


def test_full_covariance_posterior_is_estimable(faithful_fit):
    """Old Faithful, K = 2, "full" (the session fit): estimable, precise, seed-stable."""
    a = log_marginal_likelihood(faithful_fit, random_state=0)
    b = log_marginal_likelihood(faithful_fit, random_state=1)
    assert a.estimable and b.estimable, (a.reason, b.reason)
    assert a.n_labellings == 2 and a.n_proposal == 2 * a.n_bridge
    assert a.standard_error < 0.05 and a.overlap > 0.5
    assert abs(a.log_evidence - b.log_evidence) < 3 * math.hypot(a.standard_error, b.standard_error)


def test_compiled_and_pymc_targets_give_the_same_estimate(k2_fits):
    a = log_marginal_likelihood(k2_fits[0], random_state=5, target="pymc")
    b = log_marginal_likelihood(k2_fits[0], random_state=5)
    assert a.estimable and b.estimable
    assert b.log_evidence == pytest.approx(a.log_evidence, abs=1e-8)
    assert b.standard_error == pytest.approx(a.standard_error, rel=1e-6)
    with pytest.raises(ValueError, match="target"):
        log_marginal_likelihood(k2_fits[0], target="jax")


def test_spherical_equals_diag_in_one_dimension_and_tied_runs(data_1d, k2_fits):
    """For D = 1 "spherical" and "diag" are the same model: the same evidence."""
    diag = log_marginal_likelihood(k2_fits[0], random_state=0)
    sph = log_marginal_likelihood(_fit(data_1d, 2, 0, covariance_type="spherical"), random_state=1)
    assert sph.estimable, sph.reason
    assert abs(sph.log_evidence - diag.log_evidence) < 3 * math.hypot(
        sph.standard_error, diag.standard_error
    )
    tied = log_marginal_likelihood(_fit(data_1d, 2, 0, covariance_type="tied"), random_state=0)
    assert tied.estimable and tied.n_labellings == 2 and tied.standard_error < 0.05, tied


# --------------------------------------------------------------------------- not estimable


def test_not_estimable_when_checks_fail_or_too_many_labellings(k2_fits):
    bgm = copy.copy(k2_fits[2])
    res = log_marginal_likelihood(bgm, max_labellings=1)
    assert not res.estimable and res.log_evidence is None and res.standard_error is None
    assert "max_labellings" in res.reason
    bgm.diagnostics_ = dataclasses.replace(bgm.diagnostics_, passed=False, verdict="R-hat 1.2")
    res = log_marginal_likelihood(bgm)
    assert not res.estimable and res.log_evidence is None
    assert "convergence checks" in res.reason and "R-hat 1.2" in res.reason
    res = log_marginal_likelihood(k2_fits[2], min_overlap=0.999999)
    assert not res.estimable and res.log_evidence is None and "overlap" in res.reason
    with pytest.raises(ValueError, match="min_overlap"):
        log_marginal_likelihood(k2_fits[2], min_overlap=1.5)


# --------------------------------------------------------------------------- p(K | y)


def test_posterior_over_k():
    post = posterior_over_k({1: -100.0, 2: -100.0 + math.log(3.0), 3: None})
    assert post.probabilities == pytest.approx({1: 0.25, 2: 0.75})
    assert post.excluded == {3: "no estimate"}
    bad = EvidenceResult(None, None, 0, False, "not estimable: overlap")
    post = posterior_over_k({1: -100.0, 2: -100.0, 4: bad}, prior="poisson", poisson_rate=2.0)
    # truncated Poisson(2) on {1, 2}: p(1) ∝ 2, p(2) ∝ 2 -> equal
    assert post.prior == pytest.approx({1: 0.5, 2: 0.5})
    assert post.probabilities == pytest.approx({1: 0.5, 2: 0.5})
    assert post.excluded == {4: "not estimable: overlap"}
    post = posterior_over_k({1: 0.0, 3: 0.0}, prior="poisson", poisson_rate=1.0)
    assert post.probabilities[1] == pytest.approx(6 / 7)  # 1/1! : 1/3! = 6 : 1
    with pytest.raises(ValueError, match="no K has an estimable"):
        posterior_over_k({2: None})
    with pytest.raises(ValueError, match="poisson_rate"):
        posterior_over_k({1: 0.0}, prior="poisson")
