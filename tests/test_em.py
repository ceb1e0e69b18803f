"""EMGaussianMixture: scikit-learn conformance, references, invariants and bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from bayesgmm import (
    ConvergenceWarning,
    DegenerateMixtureWarning,
    EMGaussianMixture,
    load_acidity,
    load_faithful,
)
from bayesgmm._numerics import COVARIANCE_TYPES


def expected_failed_checks(estimator):
    """Checks that cannot hold for a mixture fitted from a random initialisation."""
    if estimator.n_components == 1:
        return {}
    return {
        "check_sample_weight_equivalence_on_dense_data": (
            "k-means seeding draws different random centres for weighted and for repeated "
            "rows, so EM can reach another local optimum; equivalence from a shared start is "
            "tested in test_integer_sample_weights_equal_repeated_rows."
        )
    }


@parametrize_with_checks(
    [EMGaussianMixture(), EMGaussianMixture(2, covariance_type="diag", random_state=0)],
    expected_failed_checks=expected_failed_checks,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


# ---------------------------------------------------------------- references


def sklearn_lower_bounds(X, init, n_iter, **kwargs):
    """Per-iteration lower bounds of scikit-learn's GaussianMixture, one iteration a call."""
    gm = GaussianMixture(max_iter=1, warm_start=True, tol=0.0, **init, **kwargs)
    bounds = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(n_iter):
            gm.fit(X)
            bounds.append(gm.lower_bound_)
    return np.array(bounds)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_lower_bounds_match_sklearn_per_iteration(separated, covariance_type):
    X, _ = separated
    X = X + np.array([3.0, -2.0])
    k = 3
    # A deliberately poor start, so that EM needs many iterations.
    start = GaussianMixture(k, covariance_type=covariance_type, max_iter=1, random_state=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start.fit(X[:40])
    init = dict(
        weights_init=start.weights_,
        means_init=start.means_,
        precisions_init=start.precisions_,
    )
    ours = EMGaussianMixture(k, covariance_type=covariance_type, tol=0.0, max_iter=25, **init)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X)
    theirs = sklearn_lower_bounds(X, init, 25, n_components=k, covariance_type=covariance_type)
    assert ours.lower_bounds_.shape == (25,)
    assert ours.lower_bounds_[-1] - ours.lower_bounds_[0] > 0.03  # EM really moved
    np.testing.assert_allclose(ours.lower_bounds_, theirs, rtol=1e-8)


def closed_form_single_gaussian_loglik(X, covariance_type):
    n, d = X.shape
    cov = np.cov(X.T, bias=True).reshape(d, d)
    if covariance_type in ("diag",):
        cov = np.diag(np.diag(cov))
    elif covariance_type == "spherical":
        cov = np.eye(d) * np.trace(cov) / d
    _, logdet = np.linalg.slogdet(cov)
    # At the maximum the Mahalanobis terms sum to n * d for every covariance type.
    return -0.5 * n * (d * np.log(2 * np.pi) + logdet + d)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_faithful_single_component_matches_closed_form(covariance_type):
    X = load_faithful().to_numpy()
    gm = EMGaussianMixture(1, covariance_type=covariance_type, reg_covar=0.0).fit(X)
    total = gm.score(X) * X.shape[0]
    np.testing.assert_allclose(
        total, closed_form_single_gaussian_loglik(X, covariance_type), rtol=1e-10
    )
    if covariance_type == "full":
        assert total == pytest.approx(-1289.796745, abs=1e-6)


def test_faithful_two_full_components_reference_loglik():
    X = load_faithful()
    gm = EMGaussianMixture(2, n_init=10, tol=1e-10, max_iter=2000, random_state=0).fit(X)
    assert gm.converged_
    assert gm.score(X) * len(X) == pytest.approx(-1130.264, abs=1e-3)
    assert not gm.degenerate_.any()


def test_faithful_tied_three_components_reference_loglik():
    X = load_faithful()
    gm = EMGaussianMixture(
        3, covariance_type="tied", n_init=10, tol=1e-10, max_iter=5000, random_state=0
    ).fit(X)
    assert gm.score(X) * len(X) == pytest.approx(-1126.3159, abs=1e-3)


# ---------------------------------------------------------------- invariants


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_lower_bound_never_decreases(covariance_type):
    X = load_faithful().to_numpy()
    gm = EMGaussianMixture(
        3,
        covariance_type=covariance_type,
        tol=1e-8,
        max_iter=500,
        init_params="random",
        random_state=1,
    ).fit(X)
    steps = np.diff(gm.lower_bounds_)
    assert (steps >= -1e-10 * np.abs(gm.lower_bounds_[1:])).all()


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fit_predict_equals_fit_then_predict(separated, covariance_type):
    X, _ = separated
    a = EMGaussianMixture(3, covariance_type=covariance_type, random_state=0).fit_predict(X)
    b = EMGaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X).predict(X)
    np.testing.assert_array_equal(a, b)


def test_recovers_separated_components(separated):
    from sklearn.metrics import adjusted_rand_score

    X, y = separated
    gm = EMGaussianMixture(3, random_state=0).fit(X)
    assert adjusted_rand_score(y, gm.predict(X)) > 0.98
    resp = gm.predict_proba(X)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_integer_sample_weights_equal_repeated_rows(covariance_type, rng):
    X = load_faithful().to_numpy()
    counts = rng.integers(0, 4, size=X.shape[0])
    init = EMGaussianMixture(2, covariance_type=covariance_type, max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        init.fit(X)
    start = dict(
        weights_init=init.weights_, means_init=init.means_, precisions_init=init.precisions_
    )
    kw = dict(covariance_type=covariance_type, tol=1e-10, max_iter=300, **start)
    weighted = EMGaussianMixture(2, **kw).fit(X, sample_weight=counts)
    repeated = EMGaussianMixture(2, **kw).fit(np.repeat(X, counts, axis=0))
    np.testing.assert_allclose(weighted.lower_bounds_, repeated.lower_bounds_, rtol=1e-10)
    np.testing.assert_allclose(weighted.means_, repeated.means_, rtol=1e-8)
    np.testing.assert_allclose(weighted.covariances_, repeated.covariances_, rtol=1e-8)
    assert weighted.bic(X, sample_weight=counts) == pytest.approx(
        repeated.bic(np.repeat(X, counts, axis=0)), rel=1e-10
    )


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_every_initialisation_finds_the_separated_solution(separated, init_params):
    X, _ = separated
    gm = EMGaussianMixture(3, init_params=init_params, n_init=3, random_state=0).fit(X)
    np.testing.assert_allclose(gm.means_, [[-6.0, 0.0], [0.0, 5.0], [6.0, -1.0]], atol=0.25)


def test_component_order_is_stable_and_documented(separated):
    X, _ = separated
    orders = []
    for seed in range(4):
        gm = EMGaussianMixture(3, random_state=seed).fit(X)
        assert np.all(np.diff(gm.means_[:, 0]) > 0)  # sorted by the first feature
        orders.append(gm.predict(X))
    for other in orders[1:]:
        np.testing.assert_array_equal(orders[0], other)


def test_same_seed_same_result():
    X = load_faithful()
    a = EMGaussianMixture(3, n_init=3, random_state=5).fit(X)
    b = EMGaussianMixture(3, n_init=3, random_state=5).fit(X)
    np.testing.assert_array_equal(a.means_, b.means_)


def test_generator_random_state_is_accepted_and_reproducible():
    """Issue 14: np.random.default_rng(0) used to fail inside RandomState."""
    X = load_faithful()
    a = EMGaussianMixture(3, n_init=3, random_state=np.random.default_rng(7)).fit(X)
    b = EMGaussianMixture(3, n_init=3, random_state=np.random.default_rng(7)).fit(X)
    np.testing.assert_array_equal(a.means_, b.means_)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    samples = EMGaussianMixture(2, random_state=np.random.default_rng(1)).fit(X).sample(50)[0]
    assert samples.shape == (50, 2)
    # the generator is drawn from, as a RandomState instance would be
    rng = np.random.default_rng(3)
    state = rng.bit_generator.state
    EMGaussianMixture(2, init_params="random", random_state=rng).fit(X)
    assert rng.bit_generator.state != state


def test_int_seeds_keep_their_streams():
    """Generator support must not change what an int seed draws (bit-identical results)."""
    from bayesgmm._validation import check_random_state

    for seed in (0, 5, 2**32 - 1):
        np.testing.assert_array_equal(
            check_random_state(seed).randint(1000, size=20),
            np.random.RandomState(seed).randint(1000, size=20),
        )
    rs = np.random.RandomState(0)
    assert check_random_state(rs) is rs


@pytest.mark.parametrize("bad", ["0", 1.5, [1, 2]])
def test_bad_random_state_names_what_is_accepted(bad):
    with pytest.raises(TypeError, match=r"numpy\.random\.Generator"):
        EMGaussianMixture(1, random_state=bad).fit(np.arange(10.0).reshape(5, 2))


def test_reg_covar_acts_on_standardised_data_as_scikit_learn_does_on_its_input():
    """reg_covar is added in standardised units: ours on X = scikit-learn's on (X - m) / s."""
    X = load_faithful().to_numpy()
    m, s = X.mean(axis=0), X.std(axis=0)
    kw = dict(tol=1e-12, max_iter=2000, reg_covar=1e-3, random_state=0)
    ours = EMGaussianMixture(2, **kw).fit(X)
    theirs = GaussianMixture(2, **kw).fit((X - m) / s)
    order = np.argsort(theirs.means_[:, 0])
    np.testing.assert_allclose(ours.weights_, theirs.weights_[order], rtol=1e-7)
    np.testing.assert_allclose(ours.means_, m + s * theirs.means_[order], rtol=1e-7)
    np.testing.assert_allclose(
        ours.covariances_, theirs.covariances_[order] * s[:, None] * s, rtol=1e-6
    )


def test_warm_start_continues_from_the_previous_solution():
    X = load_faithful()
    gm = EMGaussianMixture(2, warm_start=True, max_iter=2, random_state=0)
    with pytest.warns(ConvergenceWarning):
        gm.fit(X)
    first = gm.lower_bound_
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(X)
    assert gm.lower_bounds_[0] >= first - 1e-12


def test_criteria_match_their_definitions():
    X = load_faithful().to_numpy()
    gm = EMGaussianMixture(2, n_init=3, random_state=0).fit(X)
    n, ll = X.shape[0], gm.score(X) * X.shape[0]
    assert gm.n_parameters_ == 2 * 3 + 2 * 2 + 1
    assert gm.bic(X) == pytest.approx(-2 * ll + gm.n_parameters_ * np.log(n))
    assert gm.aic(X) == pytest.approx(-2 * ll + 2 * gm.n_parameters_)
    resp = gm.predict_proba(X)
    assert gm.icl(X) == pytest.approx(gm.bic(X) - 2 * np.log(resp.max(axis=1)).sum())
    assert gm.icl(X) >= gm.bic(X)


def test_bic_picks_two_components_on_acidity():
    X = load_acidity()
    bics = [EMGaussianMixture(k, n_init=5, random_state=0).fit(X).bic(X) for k in range(1, 6)]
    assert int(np.argmin(bics)) + 1 == 2


def test_sample_draws_from_the_fitted_mixture(separated):
    X, _ = separated
    gm = EMGaussianMixture(3, random_state=0).fit(X)
    Xs, ys = gm.sample(20_000)
    assert Xs.shape == (20_000, 2)
    np.testing.assert_allclose(np.bincount(ys) / 20_000, gm.weights_, atol=0.02)
    for j in range(3):
        np.testing.assert_allclose(Xs[ys == j].mean(axis=0), gm.means_[j], atol=0.06)


def test_dataframe_feature_names_and_pipeline():
    X = load_faithful()
    gm = EMGaussianMixture(2, random_state=0).fit(X)
    np.testing.assert_array_equal(gm.feature_names_in_, ["eruptions", "waiting"])
    pipe = make_pipeline(StandardScaler(), EMGaussianMixture(2, random_state=0)).fit(X)
    assert pipe.predict(X).shape == (272,)
    grid = GridSearchCV(EMGaussianMixture(random_state=0), {"n_components": [1, 2, 3]}, cv=3)
    grid.fit(X.to_numpy())
    assert grid.best_params_["n_components"] in (2, 3)
    assert clone(gm).get_params() == gm.get_params()


# ---------------------------------------------------------------- degenerate optima


def test_collapsed_component_is_flagged():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(200, 2)), np.tile([[8.0, 8.0]], (6, 1))])
    means_init = np.array([[0.0, 0.0], [8.0, 8.0]])
    with pytest.warns(DegenerateMixtureWarning, match="collapsed"):
        gm = EMGaussianMixture(2, means_init=means_init, random_state=0).fit(X)
    np.testing.assert_array_equal(gm.degenerate_, [False, True])


def test_n_init_prefers_non_degenerate_run():
    X = load_faithful().to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = [
            EMGaussianMixture(5, covariance_type="diag", random_state=s, init_params="random").fit(
                X
            )
            for s in range(12)
        ]
    best = EMGaussianMixture(
        5, covariance_type="diag", random_state=0, init_params="random", n_init=12
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        best.fit(X)
    if any(not r.degenerate_.any() for r in runs):
        assert not best.degenerate_.any()


def test_tied_component_with_few_points_is_not_degenerate():
    """Issue 18: a shared covariance cannot collapse onto one component's few points."""
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(size=(150, 2)), [[9.0, 9.0]]])  # one far outlier
    start = dict(weights_init=[150 / 151, 1 / 151], means_init=[[0.0, 0.0], [9.0, 9.0]])
    tied = EMGaussianMixture(2, covariance_type="tied", tol=1e-8, **start).fit(X)
    assert tied.weights_[1] * X.shape[0] < X.shape[1] + 1  # the outlier's component
    assert not tied.degenerate_.any()
    with pytest.warns(DegenerateMixtureWarning, match="fewer than n_features"):
        full = EMGaussianMixture(2, covariance_type="full", tol=1e-8, **start).fit(X)
    np.testing.assert_array_equal(full.degenerate_, [False, True])


def test_tied_shared_covariance_collapse_is_flagged():
    rng = np.random.default_rng(2)
    X = np.column_stack([rng.normal(size=100), np.full(100, 3.0)])  # a constant feature
    with pytest.warns(DegenerateMixtureWarning, match="shrank"):
        gm = EMGaussianMixture(2, covariance_type="tied", random_state=0).fit(X)
    assert gm.degenerate_.all()


ACIDITY_TIED_5 = -175.118  # reached by mclust 6.0 (issue 18) and by scikit-learn below


def test_acidity_tied_five_components_reaches_reference_and_is_not_degenerate():
    X = load_acidity().to_numpy().reshape(-1, 1)
    kw = dict(covariance_type="tied", tol=1e-8, max_iter=5000)
    sk = GaussianMixture(5, n_init=5, random_state=0, reg_covar=0.0, **kw).fit(X)
    assert sk.score(X) * X.shape[0] == pytest.approx(ACIDITY_TIED_5, abs=1e-3)
    start = dict(weights_init=sk.weights_, means_init=sk.means_, precisions_init=sk.precisions_)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither degenerate nor unconverged
        at_optimum = EMGaussianMixture(5, **kw, **start).fit(X)
        ours = EMGaussianMixture(5, n_init=20, random_state=0, **kw).fit(X)
    assert (at_optimum.weights_ * X.shape[0]).min() < 2  # one component holds about one point
    for gm in (at_optimum, ours):
        assert gm.score(X) * X.shape[0] == pytest.approx(ACIDITY_TIED_5, abs=1e-3)
        assert not gm.degenerate_.any()


# ---------------------------------------------------------------- max_iter=0


def _standardised_faithful():
    """Faithful in standard units, where our relative reg_covar is scikit-learn's absolute."""
    X = load_faithful().to_numpy()
    return (X - X.mean(axis=0)) / X.std(axis=0)


@pytest.mark.parametrize("init_params", ["random", "kmeans"])
@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_max_iter_zero_returns_sklearn_initialisation(covariance_type, init_params):
    """Issue 18: max_iter=0 returns the start, as scikit-learn's GaussianMixture does."""
    X = _standardised_faithful()
    kw = dict(covariance_type=covariance_type, init_params=init_params, random_state=3)
    sk = GaussianMixture(3, max_iter=0, **kw).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scikit-learn does not warn either
        ours = EMGaussianMixture(3, max_iter=0, **kw).fit(X)
    order = np.lexsort(sk.means_.T[::-1])  # our stable component order
    sk_covs = sk.covariances_ if covariance_type == "tied" else sk.covariances_[order]
    np.testing.assert_allclose(ours.weights_, sk.weights_[order], rtol=1e-10)
    np.testing.assert_allclose(ours.means_, sk.means_[order], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.covariances_, sk_covs, rtol=1e-10, atol=1e-12)
    assert not ours.converged_ and not sk.converged_
    assert ours.n_iter_ == sk.n_iter_ == 0 and ours.lower_bounds_.size == 0
    # ours reports the start's log-likelihood where scikit-learn reports -inf
    assert ours.lower_bound_ == pytest.approx(sk.score(X), rel=1e-10)
    one_step = EMGaussianMixture(3, max_iter=1, tol=0.0, **kw)
    with pytest.warns(ConvergenceWarning):
        one_step.fit(X)
    assert one_step.lower_bounds_[0] == pytest.approx(ours.lower_bound_, rel=1e-10)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_max_iter_zero_returns_given_inits(covariance_type):
    X = load_faithful().to_numpy()
    means_init = np.array([[2.0, 55.0], [4.3, 80.0]])
    prec = np.stack([np.diag([4.0, 0.02])] * 2)
    start = dict(
        weights_init=[0.4, 0.6],
        means_init=means_init,
        precisions_init=prec if covariance_type == "full" else prec[:, [0, 1], [0, 1]],
    )
    gm = EMGaussianMixture(2, covariance_type=covariance_type, max_iter=0, **start).fit(X)
    np.testing.assert_allclose(gm.weights_, [0.4, 0.6])
    np.testing.assert_allclose(gm.means_, means_init)
    np.testing.assert_allclose(gm.precisions_, start["precisions_init"], rtol=1e-12)
    # only means_init (scikit-learn's test_max_iter_zero): the rest from the k-means start
    sk = GaussianMixture(2, max_iter=0, means_init=means_init, random_state=0, reg_covar=0.0)
    ours = EMGaussianMixture(2, max_iter=0, means_init=means_init, random_state=0, reg_covar=0.0)
    sk.fit(X)
    ours.fit(X)
    np.testing.assert_allclose(ours.means_, means_init)
    np.testing.assert_allclose(ours.weights_, sk.weights_, rtol=1e-10)
    np.testing.assert_allclose(ours.covariances_, sk.covariances_, rtol=1e-8)


def test_max_iter_zero_keeps_the_most_likely_of_n_init_starts():
    X = load_faithful().to_numpy()
    kw = dict(init_params="random", max_iter=0)
    rs = np.random.RandomState(0)  # advanced by each fit, as by each of n_init starts
    singles = [EMGaussianMixture(3, random_state=rs, **kw).fit(X) for _ in range(4)]
    best = EMGaussianMixture(3, n_init=4, random_state=0, **kw).fit(X)
    i = int(np.argmax([g.lower_bound_ for g in singles]))
    assert best.lower_bound_ == pytest.approx(singles[i].lower_bound_, rel=1e-12)
    np.testing.assert_allclose(best.means_, singles[i].means_, rtol=1e-12)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "X, error, match",
    [
        (np.array([[1.0, 2.0], [np.nan, 1.0], [3.0, 4.0]]), ValueError, "NaN in row 1"),
        (np.array([[1.0, 2.0], [np.inf, 1.0], [3.0, 4.0]]), ValueError, "inf"),
        (np.arange(10.0), ValueError, "reshape"),
        (np.empty((0, 2)), ValueError, "0 sample"),
        (np.empty((5, 0)), ValueError, "0 feature"),
        (np.array([["a", "b"], ["c", "d"]]), TypeError, "numeric"),
        (pd.DataFrame({"x": [1.0, 2.0, 3.0], "s": ["a", "b", "c"]}), TypeError, "numeric"),
        (np.array([[1e200, 0.0], [3e200, 1.0], [2e200, 2.0]]), ValueError, "divide it by 1e200"),
        (np.array([[0.0, 1e-200], [1.0, 3e-200], [2.0, 0.0]]), ValueError, "feature 1 has"),
    ],
)
def test_bad_data_is_refused_clearly(X, error, match):
    with pytest.raises(error, match=match):
        EMGaussianMixture(1).fit(X)


@pytest.mark.parametrize(
    "params, error, match",
    [
        (dict(n_components=0), ValueError, "at least 1"),
        (dict(n_components=50), ValueError, "exceeds n_samples"),
        (dict(n_components=1.5), TypeError, "integer"),
        (dict(covariance_type="fulll"), ValueError, "choose one of"),
        (dict(init_params="kmean"), ValueError, "choose one of"),
        (dict(tol=-1.0), ValueError, "tol"),
        (dict(max_iter=-1), ValueError, "max_iter=-1 is invalid"),
        (dict(max_iter=2.5), TypeError, "max_iter"),
        (dict(n_components=2, means_init=np.zeros((3, 2))), ValueError, "means_init"),
        (dict(n_components=2, weights_init=[0.2, 0.2]), ValueError, "sum to 1"),
        (dict(n_components=2, precisions_init=-np.ones((2, 2, 2))), ValueError, "precisions"),
    ],
)
def test_bad_parameters_are_refused_at_fit(params, error, match):
    X = np.random.default_rng(0).normal(size=(20, 2))
    est = EMGaussianMixture(**params)  # __init__ stores without checking
    with pytest.raises(error, match=match):
        est.fit(X)


def test_predict_checks_feature_count_and_fitting(separated):
    X, _ = separated
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        EMGaussianMixture(2).predict(X)
    gm = EMGaussianMixture(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="features"):
        gm.predict(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="NaN"):
        gm.score_samples(np.array([[np.nan, 0.0]]))


def test_bad_sample_weight():
    X = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(ValueError, match="negative"):
        EMGaussianMixture(1).fit(X, sample_weight=-np.ones(20))
    with pytest.raises(ValueError, match="one weight per row"):
        EMGaussianMixture(1).fit(X, sample_weight=np.ones(3))


def test_constant_column_is_rescued_by_reg_covar_or_explained():
    X = np.column_stack([np.random.default_rng(0).normal(size=50), np.ones(50)])
    gm = EMGaussianMixture(1).fit(X)  # reg_covar keeps the covariance invertible
    assert np.isfinite(gm.score(X))
    with pytest.raises(ValueError, match="reg_covar"):
        EMGaussianMixture(1, reg_covar=0.0).fit(X)


def test_convergence_warning_at_max_iter():
    X = load_faithful()
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        gm = EMGaussianMixture(3, max_iter=2, tol=1e-12, random_state=0).fit(X)
    assert not gm.converged_ and gm.n_iter_ == 2


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_fitted_from_parameters_reproduces_the_fit(covariance_type):
    from bayesgmm.em import fitted_from_parameters

    X = load_faithful()
    gm = EMGaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    again = fitted_from_parameters(
        gm.weights_,
        gm.means_,
        gm.covariances_,
        gm.precisions_cholesky_,
        covariance_type=covariance_type,
        degenerate=gm.degenerate_,
        feature_names=gm.feature_names_in_,
    )
    np.testing.assert_allclose(again.predict_proba(X), gm.predict_proba(X), rtol=1e-12)
    assert again.bic(X) == pytest.approx(gm.bic(X), rel=1e-12)
    assert again.icl(X) == pytest.approx(gm.icl(X), rel=1e-12)


@pytest.mark.parametrize("cov", ["full", "tied", "diag", "spherical"])
def test_compiled_prediction_equals_numpy_reference(cov, separated):
    """predict_proba/score_samples/predict (compiled, parallel over rows) against _numerics."""
    from bayesgmm._numerics import log_weighted_prob, responsibilities

    X, _ = separated
    gm = EMGaussianMixture(3, covariance_type=cov, random_state=0).fit(X)
    # 600 rows = 2 full blocks of 256 and a partial one; far points test the tails.
    Xt = np.vstack([X, [[40.0, -40.0], [1e3, 1e3]]])
    lw = log_weighted_prob(Xt, gm.weights_, gm.means_, gm.precisions_cholesky_, cov)
    resp, log_norm = responsibilities(lw)
    np.testing.assert_allclose(gm.predict_proba(Xt), resp, atol=1e-12)
    np.testing.assert_allclose(gm.score_samples(Xt), log_norm, rtol=1e-12)
    np.testing.assert_array_equal(gm.predict(Xt), lw.argmax(axis=1))


def _fit_in_child(X):
    # "random_from_data": no k-means, whose OpenMP runtime is not fork-safe by itself
    gm = EMGaussianMixture(
        2, init_params="random_from_data", random_state=0, max_iter=3, tol=0.0
    ).fit(X)
    return float(gm.predict_proba(X).sum())


def test_threaded_kernels_work_in_a_forked_child():
    """The kernels' thread pool is per process: a forked child (as PyMC's chain workers or
    multiprocessing pools are) must start its own rather than wait on the parent's threads."""
    import multiprocessing
    import warnings

    import numba

    X = np.random.default_rng(0).normal(size=(120_000, 2))
    if numba.get_num_threads() < 2:
        pytest.skip("one CPU thread: the kernels run serially and no pool exists")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter=3 does not converge, on purpose
        _fit_in_child(X)  # the parent's pool now exists
        with multiprocessing.get_context("fork").Pool(1) as pool:
            total = pool.apply_async(_fit_in_child, (X,)).get(timeout=60)
    assert total == pytest.approx(X.shape[0])


def test_em_does_not_depend_on_the_number_of_threads():
    """Work is cut into the same slices whatever the core count, so sums agree bit for bit."""
    import numba

    X = np.random.default_rng(1).normal(size=(100_000, 2))  # above PARALLEL_MIN_WORK
    before = numba.get_num_threads()
    fits = []
    try:
        for threads in sorted({1, before}):
            numba.set_num_threads(threads)
            gm = EMGaussianMixture(3, init_params="random_from_data", random_state=0).fit(X)
            fits.append((gm.means_, gm.covariances_, gm.predict_proba(X[:1000])))
    finally:
        numba.set_num_threads(before)
    for a, b in zip(fits[0], fits[-1], strict=True):
        np.testing.assert_array_equal(a, b)


def test_non_finite_parameters_are_never_returned_as_a_fit(monkeypatch):
    """Issue 14: a fit with NaN parameters is refused, never returned (guard tested directly)."""
    import bayesgmm.em as em_module

    real = em_module._rescale

    def broken(p, *args):
        out = real(p, *args)
        out.means[0, 0] = np.nan
        return out

    monkeypatch.setattr(em_module, "_rescale", broken)
    gm = EMGaussianMixture(2, random_state=0)
    with pytest.raises(ValueError, match="non-finite parameters"):
        gm.fit(load_faithful())
    assert not hasattr(gm, "means_")


@pytest.mark.parametrize("cov", COVARIANCE_TYPES)
def test_one_serialisation_round_trips_through_json_and_netcdf(cov, separated, tmp_path):
    """Issue 15, item 8: em_state/em_to_dataset are the one serialisation of a fitted EM (used by
    BayesGaussianMixture.save/load and by the CLI's em.json); both round trips rebuild it."""
    import json

    import xarray as xr

    from bayesgmm.em import em_from_dataset, em_from_state, em_state, em_to_dataset

    X, _ = separated
    frame = pd.DataFrame(X, columns=["a", "b"])
    gm = EMGaussianMixture(3, covariance_type=cov, random_state=0).fit(frame)
    state = em_state(gm)
    assert state["features"] == ["a", "b"]
    text = json.dumps(state, default=lambda v: v.tolist())
    path = tmp_path / "em.nc"
    em_to_dataset(gm).to_netcdf(path)
    with xr.open_dataset(path) as ds:
        from_nc = em_from_dataset(ds.load(), feature_names=["a", "b"])
    for back in (em_from_state(json.loads(text)), from_nc):
        assert back.covariance_type == cov
        for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"):
            np.testing.assert_allclose(getattr(back, name), getattr(gm, name), rtol=1e-15)
        np.testing.assert_array_equal(back.degenerate_, gm.degenerate_)
        assert (back.converged_, back.n_iter_) == (gm.converged_, gm.n_iter_)
        assert back.lower_bound_ == gm.lower_bound_
        assert list(back.feature_names_in_) == ["a", "b"]
        np.testing.assert_allclose(back.predict_proba(frame), gm.predict_proba(frame), rtol=1e-12)
        assert back.bic(frame) == pytest.approx(gm.bic(frame), rel=1e-14)
