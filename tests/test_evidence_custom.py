"""The evidence of a custom PyMC model: its own log-posterior, bridged like the stock model's.

The proof that the custom path is right: ``model=build_model`` is the stock model run through
the custom path (PyMC's graph, nutpie's public API, the model's own transforms and
relabelling), so its log-density must equal the stock one at the same points and its evidence
the stock evidence within their standard errors. A hierarchical-means model (hyper-priors
``mu0``, ``tau``) then exercises the general machinery: extra free variables, one of them
with a ``component`` dim.
"""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest
import xarray as xr

from bayesgmm import BayesGaussianMixture, build_model, log_marginal_likelihood, make_mixture
from bayesgmm.evidence import _custom_target, _FlatModel, _stock_target
from bayesgmm.exceptions import SamplingWarning
from bayesgmm.relabel import apply_permutations

DRAWS = dict(draws=500, tune=400, chains=4, progressbar=False)


def hierarchical_means(
    X,
    n_components,
    covariance_type="diag",
    priors=None,
    *,
    alpha=None,
    sigma_upper=None,
    spread=None,
):
    """Diagonal mixture whose means share an unknown centre ``mu0`` and spread ``tau``.

    Tests only: ``alpha``, the Dirichlet concentration (component-specific when not equal);
    ``sigma_upper``, a uniform prior on the standard deviations (an interval transform);
    ``spread``, a fixed spread of the means around ``mu0`` in place of ``tau``.
    """
    k = n_components
    n, d = X.shape
    s = X.std(axis=0)
    feats = [f"x{j}" for j in range(d)]
    coords = {"obs_id": np.arange(n), "component": np.arange(k), "feature": feats}
    coords["feature_bis"] = feats
    with pm.Model(coords=coords) as model:
        w = pm.Dirichlet("weights", a=np.ones(k) if alpha is None else alpha, dims="component")
        mu0 = pm.Normal("mu0", mu=X.mean(axis=0), sigma=3 * s, dims="feature")
        if spread is None:
            tau = pm.HalfNormal("tau", sigma=3 * s, dims="feature")
        else:
            tau = spread * s
        means = pm.Normal("means", mu=mu0, sigma=tau, dims=("component", "feature"))
        if sigma_upper is None:
            sigma = pm.HalfNormal("sigma", sigma=np.tile(s, (k, 1)), dims=("component", "feature"))
        else:
            sigma = pm.Uniform("sigma", 0.0, sigma_upper, dims=("component", "feature"))
        prec = 1.0 / sigma
        pm.Deterministic(
            "covariances",
            (sigma**2)[:, :, None] * pt.eye(d)[None],
            dims=("component", "feature", "feature_bis"),
        )
        pm.Deterministic("precisions_cholesky", prec, dims=("component", "feature"))

        def logp(value, w_, mu_, pc_):
            y = (value[:, None, :] - mu_[None]) * pc_[None]
            comp = pt.log(pc_).sum(-1) - 0.5 * d * np.log(2 * np.pi) - 0.5 * (y**2).sum(-1)
            return pt.logsumexp(pt.log(w_) + comp, axis=-1)

        pm.CustomDist(
            "obs",
            w,
            means,
            prec,
            logp=logp,
            observed=X,
            dims=("obs_id", "feature"),
            signature="(k),(k,d),(k,d)->(d)",
        )
    return model


def located_means(X, n_components, covariance_type="diag", priors=None):
    """Means spread around an unknown centre ``mu0`` by a fixed 3 standard deviations (one
    hyper-prior, no funnel: samples cleanly for K = 1 too)."""
    return hierarchical_means(X, n_components, spread=3.0)


@pytest.fixture(scope="module")
def data_1d():
    X, _ = make_mixture(60, [0.4, 0.6], [[-3.0], [2.0]], [[[1.0]], [[0.6]]], random_state=3)
    return X


def _fit(X, seed, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        bgm = BayesGaussianMixture(2, covariance_type="diag", random_state=seed, **DRAWS, **kw)
        return bgm.fit(X)


@pytest.fixture(scope="module")
def stock_fit(data_1d):
    bgm = _fit(data_1d, 0)
    assert bgm.diagnostics_.passed, bgm.diagnostics_.verdict
    return bgm


@pytest.fixture(scope="module")
def build_model_fit(data_1d):
    """The stock model through the custom path (nutpie's public API on the PyMC graph)."""
    bgm = _fit(data_1d, 1, model=build_model)
    assert "custom_model" in bgm.idata_.attrs and bgm.diagnostics_.passed
    return bgm


@pytest.fixture(scope="module")
def hier_fit(data_1d):
    bgm = _fit(data_1d, 2, model=hierarchical_means, target_accept=0.95)
    assert bgm.diagnostics_.passed, bgm.diagnostics_.verdict
    return bgm


# --------------------------------------------------------------------------- the target


def test_custom_target_is_the_stock_target_for_build_model(stock_fit, build_model_fit, data_1d):
    """Same draws -> the same unconstrained points and the same log-density, either path."""
    post = build_model_fit.idata_["posterior"]
    custom, why = _custom_target(build_model_fit, post, data_1d, 2)
    assert custom is not None, why
    stock = _stock_target(stock_fit, post, data_1d, 2, "compiled")
    np.testing.assert_allclose(custom.draws, stock.draws, rtol=1e-10, atol=1e-12)
    theta = custom.draws.reshape(-1, custom.dim)[::50]
    np.testing.assert_allclose(custom.log_density(theta), stock.log_density(theta), rtol=1e-10)
    # and the relabelling acts the same on both layouts
    perm = np.array([1, 0])
    np.testing.assert_array_equal(custom.permute(theta, perm), stock.permute(theta, perm))


@pytest.mark.parametrize("cov", ["diag", "full"])
def test_log_density_in_data_units_and_on_standardised_data(cov):
    """The units relationship between the custom target (build_model on ``X``, the data's
    units) and the stock fast path NUTS runs (``_logdensity`` on ``Z = (X - loc) / s``).

    With ``theta_X = T(theta_Z)`` the same parameters in the two units (means ``loc + s mu``,
    log standard deviations ``+ log s``; for a packed Cholesky factor the log-diagonal
    ``+ log s_i`` and the off-diagonal ``(i, j)`` times ``s_i``), ``p(X) = p(Z) / prod(s)^N``
    and ``p(theta_X | X) = p(theta_Z | Z) / |J_T|``, so

        log q_X(theta_X) = log q_Z(theta_Z) - N sum_d log s_d - log |J_T|,
        log |J_T| = K sum_d log s_d + K_cov sum_i i log s_i   (the last term "full"/"tied").
    """
    from bayesgmm import _logdensity as ld
    from bayesgmm.model import Priors
    from bayesgmm.sampling import standardization

    rng = np.random.default_rng(4)
    k, d, n = 2, 2, 40
    X = rng.normal(size=(n, d)) * [3.0, 0.02] + [100.0, -5.0]
    loc, s = standardization(X, cov)
    Z = (X - loc) / s
    spec = ld.LogDensitySpec.from_data(Z, k, cov, Priors())
    flat = _FlatModel(build_model(X, k, covariance_type=cov))
    assert flat.dim == spec.n_dim
    rows, cols = np.tril_indices(d)
    log_s = np.log(s)
    for _ in range(3):
        theta_z = rng.normal(scale=0.5, size=spec.n_dim)
        theta_x = theta_z.copy()
        mu = slice(k - 1, k - 1 + k * d)
        theta_x[mu] = (loc + s * theta_z[mu].reshape(k, d)).ravel()
        rest = theta_x[k - 1 + k * d :].reshape(k, -1)
        if cov == "diag":
            rest += log_s
            log_jac = k * log_s.sum()
        else:
            diag = rows == cols
            rest[:, diag] += log_s
            rest[:, ~diag] *= s[rows[~diag]]
            log_jac = k * log_s.sum() + k * float(np.sum(np.arange(d) * log_s))
        theta_x[k - 1 + k * d :] = rest.ravel()
        expected = ld.log_density_and_grad(theta_z, spec)[0] - n * log_s.sum() - log_jac
        assert flat.log_density(theta_x[None])[0] == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("cov", ["full", "tied", "diag", "spherical"])
def test_relabelling_from_dims_is_the_stock_relabelling(cov):
    """The general relabelling (from each value variable's dims and transform) of
    ``build_model``'s flat vector is the stock layout's, for every covariance type at K = 3
    (``chol_cov_j`` blocks for "full"), and leaves the log-posterior unchanged."""
    from bayesgmm import _logdensity as ld
    from bayesgmm.evidence import _Layout
    from bayesgmm.model import Priors

    k, d = 3, 2
    X = np.random.default_rng(2).normal(size=(30, d))
    flat = _FlatModel(build_model(X, k, covariance_type=cov))
    permute, why = flat.label_permutation(k, cov)
    assert permute is not None, why
    layout = _Layout(k, d, cov)
    spec = ld.LogDensitySpec.from_data(X, k, cov, Priors())
    theta = np.random.default_rng(3).normal(scale=0.5, size=(2, flat.dim))
    before = [ld.log_density_and_grad(t, spec)[0] for t in theta]
    for perm in layout.permutations():
        moved = permute(theta, perm)
        np.testing.assert_array_equal(moved, layout.permute(theta, perm))
        after = [ld.log_density_and_grad(t, spec)[0] for t in moved]
        np.testing.assert_allclose(after, before, rtol=1e-12)


# --------------------------------------------------------------------------- the evidence


def test_build_model_as_custom_model_has_the_stock_evidence(stock_fit, build_model_fit):
    a = log_marginal_likelihood(stock_fit, random_state=0)
    b = log_marginal_likelihood(build_model_fit, random_state=0)
    assert a.estimable and b.estimable, (a.reason, b.reason)
    assert b.n_labellings == 2 and b.n_proposal == 2 * b.n_bridge
    combined = math.hypot(a.standard_error, b.standard_error)
    assert abs(a.log_evidence - b.log_evidence) < 3 * combined, (a, b)


def test_hierarchical_model_evidence_is_finite_and_reproducible(hier_fit):
    a = log_marginal_likelihood(hier_fit, random_state=0)
    again = log_marginal_likelihood(hier_fit, random_state=0)
    other = log_marginal_likelihood(hier_fit, random_state=1)
    assert a.estimable, a.reason
    assert np.isfinite(a.log_evidence) and 0 < a.standard_error < 0.1
    assert again == a  # the same seed, the same number
    assert abs(other.log_evidence - a.log_evidence) < 3 * math.hypot(
        a.standard_error, other.standard_error
    )


def test_custom_relabelling_matches_the_relabelled_draws(hier_fit, data_1d):
    """Permuting labels on the unconstrained scale == relabelling the constrained draws (the
    simplex of ``weights`` included), and the estimate ignores the labels the draws carry."""
    post = hier_fit.idata_["posterior"].to_dataset()
    rng = np.random.default_rng(7)
    perms = np.argsort(rng.random((post.sizes["chain"], post.sizes["draw"], 2)), axis=-1)
    shuffled = copy.copy(hier_fit)
    shuffled.idata_ = hier_fit.idata_.copy()
    shuffled.idata_["posterior"] = xr.DataTree(apply_permutations(post, perms))
    before, _ = _custom_target(hier_fit, post, data_1d, 2)
    after, _ = _custom_target(shuffled, shuffled.idata_["posterior"], data_1d, 2)
    flat_perms = perms.reshape(-1, 2)
    theta = before.draws.reshape(-1, before.dim)
    moved = np.array(
        [before.permute(t[None], p)[0] for t, p in zip(theta, flat_perms, strict=True)]
    )
    np.testing.assert_allclose(after.draws.reshape(-1, after.dim), moved, atol=1e-12)
    a = log_marginal_likelihood(hier_fit, random_state=3)
    b = log_marginal_likelihood(shuffled, random_state=3)
    assert b.log_evidence == pytest.approx(a.log_evidence, abs=1e-8)


# --------------------------------------------------------------------------- not estimable


def _with_model(bgm, fn):
    out = copy.copy(bgm)
    out.model = fn
    return out


def test_a_model_that_is_not_label_invariant_is_refused(hier_fit):
    """Component-specific priors: swapping labels changes the log-posterior."""

    def tilted(X, k, covariance_type="diag", priors=None):
        return hierarchical_means(X, k, alpha=np.array([1.0, 4.0]))

    res = log_marginal_likelihood(_with_model(hier_fit, tilted))
    assert not res.estimable and res.log_evidence is None
    assert "component labels are swapped" in res.reason


def test_unsupported_transform_changed_function_and_loaded_fit(hier_fit, tmp_path):
    def uniform_sigma(X, k, covariance_type="diag", priors=None):
        return hierarchical_means(X, k, sigma_upper=10 * X.std(axis=0))

    res = log_marginal_likelihood(_with_model(hier_fit, uniform_sigma))
    assert not res.estimable and res.log_evidence is None
    assert "'sigma'" in res.reason and "transform Interval" in res.reason

    def changed(X, k, covariance_type="diag", priors=None):
        model = hierarchical_means(X, k)
        with model:
            pm.HalfNormal("extra", 1.0)
        return model

    res = log_marginal_likelihood(_with_model(hier_fit, changed))
    assert not res.estimable and "'extra'" in res.reason and "does not hold" in res.reason

    path = tmp_path / "fit"
    hier_fit.save(path)
    loaded = BayesGaussianMixture.load(path)
    res = log_marginal_likelihood(loaded)
    assert not res.estimable and "not restored from a file" in res.reason
    assert "hierarchical_means" in res.reason


# --------------------------------------------------------------------------- compare_models


def test_compare_models_fills_the_evidence_of_a_custom_model(data_1d):
    from bayesgmm import compare_models
    from bayesgmm.selection import EVIDENCE_NOTE, LOG_EVIDENCE, P_K_GIVEN_Y, SE_LOG_EVIDENCE

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        res = compare_models(
            data_1d,
            n_components=[1, 2],
            covariance_types=["diag"],
            model=located_means,
            random_state=0,
            retry=False,
            **{k: v for k, v in DRAWS.items() if k != "progressbar"},
        )
    table = res.table.set_index("n_components")
    assert table[LOG_EVIDENCE].notna().all(), table[EVIDENCE_NOTE].tolist()
    assert (table[SE_LOG_EVIDENCE] > 0).all()
    assert table[P_K_GIVEN_Y].sum() == pytest.approx(1.0)
    assert res.k_posterior["diag"].probabilities[2] > 0.99  # two well-separated groups
    assert "mu0" in res.posteriors["diag-K2"]["posterior"]
