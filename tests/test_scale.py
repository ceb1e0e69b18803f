"""Units do not change answers (issues 13.4 and 14.4): EM, model comparison and the posterior.

Multiplying all of ``X`` by one constant must change no label and no pick, and return every
parameter in the new units; per-feature rescaling likewise for the covariance types whose
model allows it (full, tied, diag). Units that float64 cannot hold are refused before any work
with a message that says how to rescale, never answered with NaN.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from bayesgmm import (
    BayesGaussianMixture,
    DegenerateMixtureWarning,
    EMGaussianMixture,
    compare_models,
    load_acidity,
    load_faithful,
)
from bayesgmm._numerics import COVARIANCE_TYPES, log_mixture_density
from bayesgmm.sampling import sample_posterior
from bayesgmm.selection import BIC, DEGENERATE

SCALES = (1e-6, 1e-3, 1e3, 1e6)


@pytest.fixture(scope="module")
def faithful() -> np.ndarray:
    return load_faithful().to_numpy()


def _fit(X, cov, k=3, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateMixtureWarning)
        return EMGaussianMixture(k, covariance_type=cov, n_init=2, random_state=0, **kw).fit(X)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_em_scaled_data_gives_same_labels_and_scaled_parameters(faithful, covariance_type):
    X = faithful
    ref = _fit(X, covariance_type)
    d = X.shape[1]
    for c in SCALES:
        gm = _fit(X * c, covariance_type)
        np.testing.assert_array_equal(gm.predict(X * c), ref.predict(X))
        np.testing.assert_array_equal(gm.degenerate_, ref.degenerate_)
        np.testing.assert_allclose(gm.weights_, ref.weights_, rtol=1e-9)
        np.testing.assert_allclose(gm.means_, ref.means_ * c, rtol=1e-9)
        np.testing.assert_allclose(gm.covariances_, ref.covariances_ * c**2, rtol=1e-8, atol=0)
        np.testing.assert_allclose(gm.precisions_, ref.precisions_ / c**2, rtol=1e-8)
        # a density in units of c is the density in the old units divided by c**d
        assert gm.lower_bound_ == pytest.approx(ref.lower_bound_ - d * np.log(c), abs=1e-8)
        assert gm.bic(X * c) == pytest.approx(ref.bic(X) + 2 * len(X) * d * np.log(c), abs=1e-6)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag"])
def test_em_per_feature_rescaling_changes_nothing_where_the_model_allows(faithful, covariance_type):
    """From one start, EM is equivariant under rescaling single features (not spherical).

    (The k-means start itself is measured in the data's geometry, as documented, so the
    start is given here.)
    """
    s = np.array([1e-4, 1e5])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = EMGaussianMixture(
            3, covariance_type=covariance_type, max_iter=1, init_params="random", random_state=2
        ).fit(faithful)
    p = start.precisions_
    scaled_p = p / s**2 if covariance_type == "diag" else p / (s[:, None] * s)

    def fit(X, means, precisions):
        kw = dict(weights_init=start.weights_, means_init=means, precisions_init=precisions)
        return _fit(X, covariance_type, tol=1e-8, max_iter=500, **kw)

    ref = fit(faithful, start.means_, p)
    gm = fit(faithful * s, start.means_ * s, scaled_p)
    np.testing.assert_array_equal(gm.predict(faithful * s), ref.predict(faithful))
    np.testing.assert_allclose(gm.means_, ref.means_ * s, rtol=1e-7)
    assert ref.n_iter_ >= 2  # EM iterated from the start


@pytest.mark.parametrize(
    "covariance_type, expected",
    [
        # reg_covar is a fraction of each feature's variance ...
        ("diag", lambda var: var * (1 + 1e-3)),
        # ... or, for one variance per component, of the features' mean variance
        ("spherical", lambda var: np.full(1, var.mean() * (1 + 1e-3))),
    ],
)
def test_reg_covar_is_relative_to_the_data_variance(faithful, covariance_type, expected):
    for c in (1e-3, 1.0, 1e3):
        X = faithful * c
        gm = EMGaussianMixture(1, covariance_type=covariance_type, reg_covar=1e-3).fit(X)
        np.testing.assert_allclose(gm.covariances_.ravel(), np.ravel(expected(X.var(axis=0))))


def test_small_scale_data_is_not_called_degenerate(faithful):
    """Issue 13: sd about 1e-3 used to flag every fit, K = 1 included, as degenerate."""
    for c in (1e-3, 1e-6):
        with warnings.catch_warnings():
            warnings.simplefilter("error", DegenerateMixtureWarning)
            for k in (1, 2):
                gm = EMGaussianMixture(k, n_init=2, random_state=0).fit(faithful * c)
                assert not gm.degenerate_.any()


def test_a_real_collapse_is_still_flagged_in_any_units():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(200, 2)), np.tile([[8.0, 8.0]], (6, 1))])
    means_init = np.array([[0.0, 0.0], [8.0, 8.0]])
    for c in (1e-6, 1.0, 1e6):
        with pytest.warns(DegenerateMixtureWarning) as record:
            gm = EMGaussianMixture(2, means_init=means_init * c, random_state=0).fit(X * c)
        np.testing.assert_array_equal(gm.degenerate_, [False, True])
        message = str(record[0].message)
        assert "collapsed" in message and "repeated" in message
        assert "larger reg_covar only hides" in message  # no advice in the wrong direction


@pytest.mark.parametrize("c", [1e-130, 1e130])
def test_em_works_near_the_limits_with_finite_parameters(faithful, c):
    ref = _fit(faithful, "full", k=2)
    gm = _fit(faithful * c, "full", k=2)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert np.isfinite(getattr(gm, name)).all(), name
    np.testing.assert_array_equal(gm.predict(faithful * c), ref.predict(faithful))
    np.testing.assert_allclose(gm.means_ / c, ref.means_, rtol=1e-9)


@pytest.mark.parametrize("c", [1e160, 1e300, 1e-160, 1e-300])
@pytest.mark.parametrize("covariance_type", ["full", "spherical"])
def test_extreme_scales_are_refused_with_a_rescale_hint(faithful, c, covariance_type):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning (overflow, invalid value) first
        with pytest.raises(ValueError, match=r"eruptions.*standard deviation.*Rescale X"):
            EMGaussianMixture(2, covariance_type=covariance_type).fit(load_faithful() * c)
        with pytest.raises(ValueError, match="Rescale X"):
            sample_posterior(faithful * c, 2, covariance_type=covariance_type, draws=5, tune=5)


def test_bayes_refuses_extreme_scales_before_sampling(faithful):
    est = BayesGaussianMixture(2, draws=5, tune=5, chains=1, progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"multiply it by 1e300"):
            est.fit(faithful * 1e-300)
        with pytest.raises(ValueError, match=r"divide it by 1e300"):
            est.fit(faithful * 1e300)
    assert not hasattr(est, "idata_")


@pytest.mark.parametrize("c", SCALES)
@pytest.mark.parametrize("data", ["acidity", "faithful"])
def test_compare_models_em_picks_and_labels_do_not_depend_on_units(c, data):
    X = (load_acidity() if data == "acidity" else load_faithful()).to_numpy()
    kw = dict(
        n_components=[1, 2, 3],
        covariance_types=("full", "diag", "spherical") if data == "faithful" else ("full",),
        methods=("em",),
        random_state=0,
    )
    ref = compare_models(X, **kw)
    scaled = compare_models(X * c, **kw)
    assert all(ref.best[criterion] is not None for criterion in ("bic", "aic", "icl"))
    assert scaled.best == ref.best
    assert list(scaled.table[DEGENERATE]) == list(ref.table[DEGENERATE])
    for name, gm in ref.em_models.items():
        np.testing.assert_array_equal(scaled.em_models[name].predict(X * c), gm.predict(X))


def test_compare_models_refuses_extreme_units_before_any_fit(monkeypatch):
    """Data too large for float64 moments is refused once, not reported as a failed grid."""
    from bayesgmm import selection

    def no_fit(*args, **kwargs):
        raise AssertionError("a fit ran on data the grid should have refused")

    monkeypatch.setattr(selection, "_fit_em", no_fit)
    X = load_faithful().to_numpy() * 1e300
    with pytest.raises(ValueError, match=r"divide it by 1e300"):
        compare_models(X, n_components=[1, 2], methods=("em",), random_state=0)


# ---------------------------------------------------------------- the posterior in any units


@pytest.fixture(scope="module")
def scaled_posteriors(faithful):
    """Small fits of the same data in three units (the default draws are in test_bayes)."""
    out = {}
    for c in (1.0, 1e-10, 1e6):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # few draws: the ESS check may fail, as intended
            out[c] = BayesGaussianMixture(
                2, draws=300, tune=400, chains=2, random_state=1, progressbar=False
            ).fit(faithful * c)
    return out


@pytest.mark.parametrize("c", [1e-10, 1e6])
def test_posterior_in_data_units_matches_the_unscaled_fit(scaled_posteriors, faithful, c):
    ref = scaled_posteriors[1.0].idata_["posterior"]
    post = scaled_posteriors[c].idata_["posterior"]
    for name, power in (("weights", 0), ("means", 1), ("covariances", 2)):
        mean = post[name].mean(("chain", "draw")).values / c**power
        ref_mean = ref[name].mean(("chain", "draw")).values
        ref_sd = ref[name].std(("chain", "draw")).values
        # Monte Carlo error of two runs of ~300 effective draws is about 0.1 sd
        assert np.all(np.abs(mean - ref_mean) <= 0.3 * ref_sd + 1e-12 * np.abs(ref_mean)), name
    # the stored pointwise log-likelihood is the density of the data in its own units ...
    tree = scaled_posteriors[c].idata_
    ll = tree["log_likelihood"]["obs"].values
    s = (1, 7)
    expected = log_mixture_density(
        faithful * c,
        post["weights"].values[s],
        post["means"].values[s],
        post["precisions_cholesky"].values[s],
        "full",
    )
    np.testing.assert_allclose(ll[s], expected, rtol=1e-9)
    # ... so WAIC/LOO move by n * D * log(c), as the log-density of any model does
    ref_ll = scaled_posteriors[1.0].idata_["log_likelihood"]["obs"].values
    shift = ll.mean(axis=(0, 1)) - ref_ll.mean(axis=(0, 1))
    np.testing.assert_allclose(shift, -2 * np.log(c), atol=0.05)
    np.testing.assert_allclose(tree["observed_data"]["obs"].values, faithful * c)
    # it mixes as in the original units (300 draws x 2 chains: R-hat is itself noisy)
    diagnostics = scaled_posteriors[c].diagnostics_
    ref_rhat = scaled_posteriors[1.0].diagnostics_.table["rhat"].max()
    assert diagnostics.n_divergent == 0
    assert diagnostics.table["rhat"].max() <= max(1.05, ref_rhat + 0.02)


def test_posterior_labels_do_not_depend_on_units(scaled_posteriors, faithful):
    ref = scaled_posteriors[1.0].predict(faithful)
    for c in (1e-10, 1e6):
        np.testing.assert_array_equal(scaled_posteriors[c].predict(faithful * c), ref)


def test_generator_seeds_compare_models_and_generators():
    """random_state=np.random.default_rng(...) works wherever a seed is taken (issue 14)."""
    from bayesgmm import make_mixture

    X = load_acidity().to_numpy()
    kw = dict(n_components=[1, 2], covariance_types=("full",), methods=("em",))
    a = compare_models(X, random_state=np.random.default_rng(0), **kw)
    b = compare_models(X, random_state=np.random.default_rng(0), **kw)
    assert a.best == b.best
    np.testing.assert_array_equal(a.table[BIC], b.table[BIC])
    spec = dict(weights=[0.5, 0.5], means=[[0.0], [3.0]], covariances=[[[1.0]], [[1.0]]])
    x1, _ = make_mixture(50, **spec, random_state=np.random.default_rng(2))
    x2, _ = make_mixture(50, **spec, random_state=np.random.default_rng(2))
    np.testing.assert_array_equal(x1, x2)


def test_check_scale_is_exact_and_safe_at_any_magnitude():
    from bayesgmm._validation import check_scale

    X = np.random.default_rng(0).normal(size=(100, 3)) + np.array([0.0, 5.0, -2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow/underflow RuntimeWarning
        for c in (1e-130, 1e-60, 1.0, 1e60, 1e130):
            centre, std = check_scale(X * c)
            np.testing.assert_allclose(centre / c, X.mean(axis=0), rtol=1e-12)
            np.testing.assert_allclose(std / c, X.std(axis=0), rtol=1e-12)
        # constant features, however large or small, have zero spread and do not overflow
        Y = np.column_stack([np.full(2000, 1e306), np.zeros(2000), np.full(2000, 1e-310)])
        centre, std = check_scale(np.column_stack([Y, X[np.arange(2000) % 100, 0]]))
    np.testing.assert_array_equal(std[:3], 0.0)
    np.testing.assert_allclose(centre[:3], [1e306, 0.0, 1e-310])


def test_em_with_a_huge_constant_feature_is_finite():
    X = np.column_stack([np.full(272, 1e306), load_faithful().to_numpy()[:, 0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.warns(DegenerateMixtureWarning, match="constant feature"):
            gm = EMGaussianMixture(2, n_init=2, random_state=0).fit(X)
    assert np.isfinite(gm.means_).all() and np.isfinite(gm.covariances_).all()
    assert np.isfinite(gm.score_samples(X)).all()


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_standardised_sampler_targets_the_same_posterior(faithful, covariance_type):
    """The posterior of Z = (X - loc) / scale, mapped back, is the posterior of X.

    The map between the two parameterisations is affine on the unconstrained scale (means and
    Cholesky entries scale, log standard deviations shift), so its Jacobian is constant: the
    two log-posteriors must differ by one constant at every parameter value.
    """
    from bayesgmm import _logdensity
    from bayesgmm.model import Priors
    from bayesgmm.sampling import _draws_in_data_units, standardization

    X = faithful * np.array([1e-3, 1e4]) + np.array([5.0, -2e5])
    k, d = 2, X.shape[1]
    loc, scale = standardization(X, covariance_type)
    Z = (X - loc) / scale
    spec_x = _logdensity.LogDensitySpec.from_data(X, k, covariance_type, Priors())
    spec_z = _logdensity.LogDensitySpec.from_data(Z, k, covariance_type, Priors())
    rng = np.random.default_rng(0)
    key = "chol" if covariance_type in ("full", "tied") else "sigma"
    diffs, size = [], 0.0
    for _ in range(6):
        draw = {"weights": rng.dirichlet([2.0] * k), "means": rng.normal(size=(k, d))}
        if key == "chol":
            shape = (k, d, d) if covariance_type == "full" else (d, d)
            chol = np.tril(rng.normal(scale=0.3, size=shape))
            diag = np.arange(d)
            chol[..., diag, diag] = rng.uniform(0.3, 1.5, size=shape[:-1])
            draw["chol"] = chol
        else:
            draw["sigma"] = rng.uniform(0.3, 1.5, size=(k, d) if covariance_type == "diag" else k)
        data_units = _draws_in_data_units(draw, covariance_type, loc, scale)
        theta_z = _logdensity.to_unconstrained(
            draw["weights"], draw["means"], draw[key], covariance_type
        )
        theta_x = _logdensity.to_unconstrained(
            data_units["weights"], data_units["means"], data_units[key], covariance_type
        )
        lp_z, _ = _logdensity.log_density_and_grad(theta_z, spec_z)
        lp_x, _ = _logdensity.log_density_and_grad(theta_x, spec_x)
        diffs.append(lp_x - lp_z)
        size = max(size, abs(lp_x))
    # (for "spherical" the pooled scale makes these random draws absurd for the first feature
    # and lp reaches -1e14, hence a tolerance relative to lp's size)
    assert np.ptp(diffs) < 1e-9 * size, diffs
