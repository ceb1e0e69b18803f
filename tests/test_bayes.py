"""BayesGaussianMixture on real posteriors: convergence, recovery, persistence, API."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from scipy import stats
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from bayesgmm import (
    BayesGaussianMixture,
    SamplingWarning,
    load_acidity,
    load_faithful,
    load_galaxy,
    make_mixture,
)
from bayesgmm.bayes import _PARAM_DIMS
from bayesgmm.relabel import apply_permutations, relabel


def test_faithful_converges_and_agrees_with_em(faithful_fit):
    """Issue 3, must-show 3: R-hat <= 1.01, bulk ESS >= 400, no divergences, means near EM."""
    import arviz_stats

    post = faithful_fit.idata_["posterior"].to_dataset()
    sub = post[["weights", "means"]]
    assert float(arviz_stats.rhat(sub).to_array().max()) <= 1.01
    assert float(arviz_stats.ess(sub, method="bulk").to_array().min()) >= 400
    assert int(faithful_fit.idata_["sample_stats"]["diverging"].sum()) == 0
    mean = post["means"].mean(("chain", "draw")).values
    sd = post["means"].std(("chain", "draw")).values
    assert np.all(np.abs(mean - faithful_fit.em_.means_) <= 2 * sd)
    assert faithful_fit.diagnostics_.passed


def test_datatree_layout_and_provenance(faithful_fit):
    tree = faithful_fit.idata_
    assert {"posterior", "sample_stats", "log_likelihood", "observed_data", "relabel", "em"} <= set(
        tree.children
    )
    post = tree["posterior"]
    assert post["weights"].dims == ("chain", "draw", "component")
    assert post["means"].dims == ("chain", "draw", "component", "feature")
    assert post["covariances"].dims == ("chain", "draw", "component", "feature", "feature_bis")
    assert list(post["feature"].values) == ["eruptions", "waiting"]
    assert tree["log_likelihood"]["obs"].dims == ("chain", "draw", "obs_id")
    assert tree["log_likelihood"]["obs"].shape == (4, 1000, 272)
    np.testing.assert_allclose(post["weights"].sum("component"), 1.0, rtol=1e-12)
    for key in ("bayesgmm_version", "params", "random_seed", "sampler", "sampling_time"):
        assert key in tree.attrs
    # the stored log-likelihood is the mixture density of each draw
    from bayesgmm._numerics import log_mixture_density

    c, s = 2, 17
    ref = log_mixture_density(
        load_faithful().to_numpy(),
        post["weights"].values[c, s],
        post["means"].values[c, s],
        post["precisions_cholesky"].values[c, s],
        "full",
    )
    np.testing.assert_allclose(tree["log_likelihood"]["obs"].values[c, s], ref, rtol=1e-10)


def test_save_load_round_trips_exactly(faithful_fit, tmp_path):
    path = tmp_path / "fit.nc"
    faithful_fit.save(path)
    loaded = BayesGaussianMixture.load(path)
    assert loaded.idata_.identical(faithful_fit.idata_)
    assert loaded.get_params() == faithful_fit.get_params()
    X = load_faithful().iloc[:20]
    np.testing.assert_array_equal(loaded.predict_proba(X), faithful_fit.predict_proba(X))
    for name in ("weights_", "means_", "covariances_"):  # set on load, not only in fit
        np.testing.assert_array_equal(getattr(loaded, name), getattr(faithful_fit, name))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "X has feature names, but ... fitted without"
        np.testing.assert_allclose(loaded.em_.predict_proba(X), faithful_fit.em_.predict_proba(X))
    assert list(loaded.em_.feature_names_in_) == ["eruptions", "waiting"]
    assert loaded.diagnostics_.passed == faithful_fit.diagnostics_.passed


def test_saved_file_is_compressed_losslessly(faithful_fit, tmp_path):
    """Issue 14, item 7: compressed, float64 kept, WAIC and LOO from the file are exact."""
    import h5py

    from bayesgmm.selection import loo, waic

    path = tmp_path / "fit.nc"
    faithful_fit.save(path)
    with h5py.File(path, "r") as f:
        for name in ("log_likelihood/obs", "posterior/means", "posterior/weights"):
            assert f[name].dtype == np.float64, name
            assert f[name].compression == "gzip" and f[name].shuffle, name
    raw = tmp_path / "raw.nc"
    faithful_fit.idata_.to_netcdf(raw, engine="h5netcdf")  # what save wrote before
    assert path.stat().st_size < 0.9 * raw.stat().st_size
    loaded = BayesGaussianMixture.load(path)
    ll = loaded.idata_["log_likelihood"]["obs"]
    np.testing.assert_array_equal(ll.values, faithful_fit.idata_["log_likelihood"]["obs"].values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # WAIC's p_waic warning, the same for both
        before, after = waic(faithful_fit.idata_), waic(loaded.idata_)
    assert after.elpd_waic == before.elpd_waic and after.p_waic == before.p_waic
    np.testing.assert_array_equal(after.elpd_waic_i, before.elpd_waic_i)
    loo_before, loo_after = loo(faithful_fit.idata_), loo(loaded.idata_)
    assert loo_after.elpd == loo_before.elpd and loo_after.se == loo_before.se
    np.testing.assert_array_equal(loo_after.pareto_k.values, loo_before.pareto_k.values)


def test_load_refuses_other_files(tmp_path):
    path = tmp_path / "other.nc"
    xr.DataTree(xr.Dataset({"a": ("x", [1.0])})).to_netcdf(path, engine="h5netcdf")
    with pytest.raises(ValueError, match="not written by BayesGaussianMixture"):
        BayesGaussianMixture.load(path)


def test_predictions_for_new_points(faithful_fit):
    X = np.array([[2.0, 54.0], [4.3, 80.0], [3.2, 67.0]])
    member = faithful_fit.membership(X, interval=0.9)
    proba = member.mean
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    # (the mean of a skewed responsibility can lie outside an equal-tailed interval)
    assert np.all((member.lower >= 0) & (member.lower <= member.upper) & (member.upper <= 1))
    width = (member.upper - member.lower).max(axis=1)
    assert width[2] > width[0] and width[2] > width[1]  # the midway point is least determined
    labels = faithful_fit.predict(X)
    assert list(labels[:2]) == [0, 1]  # components sorted like EM: short eruptions first
    prob = member.label_probability
    assert prob[2] < prob[0] and prob[2] < prob[1]  # the midway point is the least certain
    dens = faithful_fit.score_samples(X)
    assert dens.shape == (3,) and dens[2] < dens[0]


def test_scikit_learn_contract_of_predictions(faithful_fit):
    """Issue 15, item 6: plain arrays, equal to membership()'s, as scikit-learn users expect."""
    from sklearn.metrics import adjusted_rand_score

    X = load_faithful()
    member = faithful_fit.membership(X)
    proba = faithful_fit.predict_proba(X)
    assert type(proba) is np.ndarray and proba.shape == (272, 2)
    np.testing.assert_allclose(proba, member.mean, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(proba[:, 1], member.mean[:, 1], rtol=1e-12, atol=1e-14)
    labels = faithful_fit.predict(X)
    assert type(labels) is np.ndarray and labels.shape == (272,)
    assert labels.dtype.kind == "i"
    np.testing.assert_array_equal(labels, member.labels)
    assert adjusted_rand_score(faithful_fit.em_.predict(X), labels) > 0.95
    np.testing.assert_allclose(faithful_fit.score_samples(X), member.log_density, rtol=1e-12)
    assert faithful_fit.score(X) == pytest.approx(member.log_density.mean(), rel=1e-12)


def test_predictions_stream_over_blocks_of_points_and_draws(faithful_fit, monkeypatch):
    """The cheap path gives the same answer whatever its blocks (here 1-2 rows, few draws)."""
    import bayesgmm.bayes as bayes_module

    X = load_faithful().iloc[:7]
    whole_p, whole_d = faithful_fit.predict_proba(X), faithful_fit.score_samples(X)
    monkeypatch.setattr(bayes_module, "_CHUNK_ELEMENTS", 5)
    np.testing.assert_allclose(faithful_fit.predict_proba(X), whole_p, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(faithful_fit.score_samples(X), whole_d, rtol=1e-12)


def test_predict_and_score_samples_compute_no_interval(faithful_fit, monkeypatch):
    """predict/predict_proba/score_samples never call the sorting (interval) summary."""
    import bayesgmm.bayes as bayes_module

    def refuse(*args, **kwargs):
        raise AssertionError("an interval summary was computed")

    monkeypatch.setattr(bayes_module, "summarize_responsibilities", refuse)
    X = load_faithful().iloc[:5]
    faithful_fit.predict(X)
    faithful_fit.predict_proba(X)
    faithful_fit.score_samples(X)
    with pytest.raises(AssertionError, match="interval summary"):
        faithful_fit.membership(X)


def test_posterior_mean_parameters(faithful_fit):
    post = faithful_fit.idata_["posterior"]
    np.testing.assert_allclose(
        faithful_fit.weights_, post["weights"].mean(("chain", "draw")).values, rtol=1e-12
    )
    np.testing.assert_allclose(faithful_fit.weights_.sum(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(
        faithful_fit.means_, post["means"].mean(("chain", "draw")).values, rtol=1e-12
    )
    cov = post["covariances"].mean(("chain", "draw")).values
    np.testing.assert_allclose(faithful_fit.covariances_, cov, rtol=1e-12)
    assert faithful_fit.covariances_.shape == faithful_fit.em_.covariances_.shape
    # near the EM solution on this well-determined posterior
    np.testing.assert_allclose(faithful_fit.means_, faithful_fit.em_.means_, rtol=0.02)


@pytest.mark.parametrize("cov", ["tied", "diag", "spherical"])
def test_posterior_mean_covariances_have_scikit_learn_layouts(cov, separated):
    X, _ = separated
    bgm = BayesGaussianMixture(
        3, covariance_type=cov, draws=60, tune=60, chains=2, random_state=1, progressbar=False
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        bgm.fit(X)
    assert bgm.covariances_.shape == bgm.em_.covariances_.shape
    full = bgm.idata_["posterior"]["covariances"].mean(("chain", "draw")).values
    if cov == "tied":
        expected = full
    else:
        variances = np.diagonal(full, axis1=-2, axis2=-1)
        expected = variances if cov == "diag" else variances[:, 0]
    np.testing.assert_allclose(bgm.covariances_, expected, rtol=1e-12)
    Xs, ys = bgm.sample(4, random_state=0)
    assert Xs.shape == (4, 2) and ys.shape == (4,)


def test_sample_draws_from_the_posterior_predictive(faithful_fit):
    """Moments of sample() against those of the posterior predictive, computed from draws."""
    n = 40_000
    Xs, ys = faithful_fit.sample(n, random_state=3)
    assert Xs.shape == (n, 2) and ys.shape == (n,) and set(np.unique(ys)) == {0, 1}
    post = faithful_fit.idata_["posterior"]
    w = post["weights"].values.reshape(-1, 2)
    mu = post["means"].values.reshape(-1, 2, 2)
    cov = post["covariances"].values.reshape(-1, 2, 2, 2)
    # label frequencies: the posterior mean weights, within 4 binomial standard errors
    share = np.bincount(ys, minlength=2) / n
    se = np.sqrt(faithful_fit.weights_ * (1 - faithful_fit.weights_) / n)
    assert np.all(np.abs(share - faithful_fit.weights_) <= 4 * se)
    # per-component mean and covariance: E[mu_k] and E[Sigma_k] + Var[mu_k]
    for k in range(2):
        pts = Xs[ys == k]
        wk = w[:, k] / w[:, k].sum()  # draws are picked in proportion to their weight of k
        m = (wk[:, None] * mu[:, k]).sum(0)
        dm = mu[:, k] - m
        c = (wk[:, None, None] * (cov[:, k] + dm[:, :, None] * dm[:, None, :])).sum(0)
        se_m = np.sqrt(np.diag(c) / len(pts))
        assert np.all(np.abs(pts.mean(0) - m) <= 4 * se_m)
        np.testing.assert_allclose(
            np.cov(pts.T), c, rtol=0.05, atol=0.05 * np.sqrt(np.outer(np.diag(c), np.diag(c))).max()
        )
    # reproducible with a seed, and another seed gives another sample
    again, _ = faithful_fit.sample(5, random_state=3)
    np.testing.assert_array_equal(faithful_fit.sample(5, random_state=3)[0], again)
    assert not np.array_equal(faithful_fit.sample(5, random_state=4)[0], again)


def test_relabel_recovers_permuted_real_posterior(faithful_fit):
    """Issue 4, must-show 1, on a real posterior: scrambled labels are recovered."""
    import arviz_stats

    post = faithful_fit.idata_["posterior"].to_dataset()
    X = load_faithful().to_numpy()
    rng = np.random.default_rng(5)
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    # a different labelling per chain: R-hat fails before relabelling, passes after
    per_chain = np.empty((n_chain, n_draw, 2), dtype=np.int64)
    per_chain[0::2], per_chain[1::2] = [0, 1], [1, 0]
    scrambled = apply_permutations(post, per_chain)
    assert float(arviz_stats.rhat(scrambled["means"]).max()) > 1.5
    fixed, _, _ = relabel(scrambled, X, faithful_fit.em_, covariance_type="full")
    xr.testing.assert_allclose(fixed["means"], post["means"])
    assert float(arviz_stats.rhat(fixed["means"]).max()) <= 1.01
    # a random permutation for every single draw is undone too
    per_draw = np.argsort(rng.random((n_chain, n_draw, 2)), axis=-1)
    fixed, _found, _ = relabel(
        apply_permutations(post, per_draw), X, faithful_fit.em_, covariance_type="full"
    )
    xr.testing.assert_allclose(fixed["weights"], post["weights"])
    _again, second, _ = relabel(fixed, X, faithful_fit.em_, covariance_type="full")
    assert np.all(second.values == np.arange(2))


def test_parameter_recovery_interval_coverage():
    """Issue 3, must-show 2: 90% intervals cover the truth at a rate consistent with 90%."""
    truth = dict(
        weights=[0.35, 0.65],
        means=[[-2.0, 0.0], [2.0, 1.0]],
        covariances=[[[1.0, 0.4], [0.4, 0.8]], [[0.6, -0.1], [-0.1, 1.2]]],
    )
    hits = total = 0
    for seed in range(12):
        X, _ = make_mixture(400, **truth, random_state=seed)
        fit = BayesGaussianMixture(
            2, draws=500, tune=500, chains=2, random_state=seed, progressbar=False
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SamplingWarning)
            fit.fit(X)
        post = fit.idata_["posterior"]
        for name in ("weights", "means"):
            draws = post[name].values.reshape(-1, *post[name].shape[2:])
            lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
            true = np.asarray(truth[name])
            hits += int(np.sum((lo <= true) & (true <= hi)))
            total += true.size
    lo_ok, hi_ok = stats.binom.ppf([0.0005, 0.9995], total, 0.9)
    assert lo_ok <= hits <= hi_ok, f"{hits}/{total} intervals covered the truth"


@pytest.mark.parametrize("cov", ["tied", "diag", "spherical"])
def test_other_covariance_types_sample(cov, separated):
    X, _ = separated
    fit = BayesGaussianMixture(
        3, covariance_type=cov, draws=300, tune=300, chains=2, random_state=0, progressbar=False
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        fit.fit(X)
    post = fit.idata_["posterior"]
    means = post["means"].mean(("chain", "draw")).values
    np.testing.assert_allclose(means, fit.em_.means_, atol=0.3)
    assert fit.idata_["log_likelihood"]["obs"].shape == (2, 300, X.shape[0])


def test_failed_diagnostics_warn_and_are_recorded():
    X, _ = make_mixture(200, [0.5, 0.5], [[0, 0], [4, 4]], [np.eye(2)] * 2, random_state=0)
    fit = BayesGaussianMixture(2, draws=30, tune=30, chains=2, random_state=0, progressbar=False)
    with pytest.warns(SamplingWarning, match="ESS"):
        fit.fit(X)
    assert not fit.diagnostics_.passed
    assert fit.idata_.attrs["diagnostics_passed"] == 0


def test_generator_random_state_is_accepted_and_reproducible():
    """Issue 14: the modern NumPy idiom np.random.default_rng(seed) works as a seed."""
    X, _ = make_mixture(200, [0.5, 0.5], [[0, 0], [4, 4]], [np.eye(2)] * 2, random_state=0)
    fits = [
        BayesGaussianMixture(
            2, draws=30, tune=30, chains=2, random_state=np.random.default_rng(4), progressbar=False
        )
        for _ in range(2)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)  # 30 draws: the ESS check fails
        for fit in fits:
            fit.fit(X)
    a, b = (fit.idata_["posterior"]["means"].values for fit in fits)
    np.testing.assert_array_equal(a, b)
    assert fits[0].idata_.attrs["random_seed"] == fits[1].idata_.attrs["random_seed"]


def test_estimator_api():
    est = BayesGaussianMixture(3, covariance_type="diag", draws=10, random_state=0)
    params = est.get_params()
    assert params["n_components"] == 3 and params["covariance_type"] == "diag"
    assert clone(est).get_params() == params


@pytest.mark.parametrize(
    ("kwargs", "X", "error", "match"),
    [
        ({"n_components": 5}, np.zeros((3, 2)) + np.arange(3)[:, None], ValueError, "exceeds"),
        ({"sampler": "stan"}, None, ValueError, "sampler"),
        ({"target_accept": 1.0}, None, ValueError, "target_accept"),
        ({"covariance_type": "banana"}, None, ValueError, "covariance_type"),
        ({"draws": 0}, None, ValueError, "draws"),
        ({"relabel": "sort"}, None, ValueError, "relabel"),
        ({}, np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 1.0]]), ValueError, "NaN"),
        ({}, np.array([["a", "b"], ["c", "d"]]), (TypeError, ValueError), "numeric|string"),
    ],
)
def test_bad_input_is_refused(kwargs, X, error, match):
    if X is None:
        X = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(error, match=match):
        BayesGaussianMixture(**{"n_components": 2, **kwargs}, progressbar=False).fit(X)


def _separated_fit(n, seed=0):
    from conftest import WELL_SEPARATED

    spec = dict(WELL_SEPARATED, means=2.0 * np.asarray(WELL_SEPARATED["means"]))
    X, _ = make_mixture(n, **spec, random_state=seed)
    fit = BayesGaussianMixture(
        3, draws=500, tune=500, chains=2, random_state=seed, progressbar=False
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        return fit.fit(X), X


def test_concentrated_posterior_memberships_match_em_and_epistemic_shrinks():
    """Issue 4, must-show 2, on real posteriors of two sizes."""
    big, X_big = _separated_fit(3000)
    small, _ = _separated_fit(150)
    draws = big.responsibility_draws()
    assert draws.dims == ("chain", "draw", "obs_id", "component")
    np.testing.assert_allclose(draws.sum("component"), 1.0, atol=1e-12)
    member = big.membership()
    np.testing.assert_allclose(member.mean, big.em_.predict_proba(X_big), atol=1e-3)
    np.testing.assert_allclose(member.mean, draws.mean(("chain", "draw")), atol=1e-12)
    # epistemic uncertainty (label-parameter mutual information) shrinks with more data
    assert big.membership().entropy_epistemic.mean() < small.membership().entropy_epistemic.mean()


def test_prior_start_reaches_the_same_posterior(faithful_fit):
    fit = BayesGaussianMixture(
        2, init="prior", draws=400, tune=600, chains=2, random_state=3, progressbar=False
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        fit.fit(load_faithful())
    a = fit.idata_["posterior"]["means"].mean(("chain", "draw")).values
    b = faithful_fit.idata_["posterior"]["means"]
    assert np.all(np.abs(a - b.mean(("chain", "draw")).values) <= b.std(("chain", "draw")).values)


def test_membership_thins_draws_evenly(faithful_fit):
    from bayesgmm.responsibilities import summarize_responsibilities

    thin = faithful_fit.membership(max_draws=100)
    assert thin.n_draws == 100
    assert faithful_fit.membership().n_draws == 4000
    post = faithful_fit.idata_["posterior"]
    keep = np.linspace(0, 3999, 100).round().astype(int)

    def pooled(name, *dims):
        values = post[name].transpose("chain", "draw", *dims).values
        return values.reshape(-1, *values.shape[2:])[keep]

    ref = summarize_responsibilities(
        faithful_fit.idata_["observed_data"]["obs"].values,
        pooled("weights", "component"),
        pooled("means", "component", "feature"),
        pooled("precisions_cholesky", *_PARAM_DIMS["full"]),
        "full",
    )
    np.testing.assert_allclose(thin.mean, ref.mean, atol=1e-14)
    np.testing.assert_allclose(thin.upper, ref.upper, atol=1e-14)
    with pytest.raises(ValueError, match="max_draws"):
        faithful_fit.membership(max_draws=0)


_ONE_FEATURE_DATA = {"acidity": (load_acidity, 2), "galaxy": (load_galaxy, 3)}


def _installed_samplers() -> tuple[str, ...]:
    """The sampler paths this machine can run: numpyro and blackjax only where installed
    (they are optional; a case that can never run here is left out rather than skipped)."""
    from bayesgmm.sampling import available_samplers

    return ("auto", "pymc", *(s for s in ("numpyro", "blackjax") if s in available_samplers()))


_ONE_FEATURE_CASES = [
    (data, cov, sampler)
    for sampler in _installed_samplers()
    for data in sorted(_ONE_FEATURE_DATA)
    for cov in ("full", "tied")
    # PyMC's C backend compiles each graph (~30 s cold): two graphs cover full and tied on
    # both data sets; acidity-tied is compiled again by the agreement test below (cache hit).
    if sampler != "pymc" or (data, cov) in {("acidity", "tied"), ("galaxy", "full")}
]


@pytest.mark.parametrize(("data", "cov", "sampler"), _ONE_FEATURE_CASES)
def test_one_feature_full_and_tied_on_every_sampler(data, cov, sampler):
    """Issue 15, item 5: the shipped 1-D data with full and tied covariances, every sampler
    (the PyMC graph used LKJCholeskyCov(n=1), which raised IndexError)."""
    from bayesgmm.sampling import resolve_sampler

    loader, k = _ONE_FEATURE_DATA[data]
    X = loader()
    draws = 100
    fit = BayesGaussianMixture(
        k,
        covariance_type=cov,
        draws=draws,
        tune=150,
        chains=2,
        sampler=sampler,
        random_state=3,
        progressbar=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)  # 2 x 100 draws: ESS below 400
        fit.fit(X)
    assert fit.idata_.attrs["sampler"] == resolve_sampler(sampler)
    post = fit.idata_["posterior"]
    lead = ("component",) if cov == "full" else ()
    assert post["stds"].dims == ("chain", "draw", *lead, "feature")
    assert post["covariances"].dims[-2:] == ("feature", "feature_bis")
    np.testing.assert_allclose(post["corr"], 1.0, rtol=1e-12)
    np.testing.assert_allclose(post["covariances"].values[..., 0], post["stds"].values ** 2)
    loglik = fit.idata_["log_likelihood"]["obs"]
    assert loglik.shape == (2, draws, X.shape[0])
    assert np.isfinite(loglik.values).all()
    # started from EM and relabelled to it: the posterior sits around the EM solution
    mean = post["means"].mean(("chain", "draw")).values
    sd = post["means"].std(("chain", "draw")).values
    assert np.all(np.abs(mean - fit.em_.means_) <= 3 * sd), (mean, fit.em_.means_, sd)


def test_one_feature_tied_pymc_agrees_with_default():
    """Issue 15, item 5: on 1-D tied data PyMC's NUTS on build_model's graph and the default
    (nutpie on the compiled log-density) agree on the posterior mean and sd of weights,
    means and the sd, within 4 sqrt(mcse_a^2 + mcse_b^2)."""
    import arviz_stats as azs

    X = load_acidity()
    posts = {}
    for sampler, chains in (("auto", 4), ("pymc", 2)):
        fit = BayesGaussianMixture(
            2,
            covariance_type="tied",
            draws=1000,
            tune=500,
            chains=chains,
            sampler=sampler,
            random_state=11,
            progressbar=False,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SamplingWarning)
            fit.fit(X)
        posts[sampler] = fit.idata_["posterior"].to_dataset()[["weights", "means", "stds"]]
    a, b = posts["auto"], posts["pymc"]
    assert float(azs.ess(b, method="bulk").to_array().min()) >= 200  # an honest comparison
    for stat, method in (("mean", "mean"), ("std", "sd")):
        diff = abs(getattr(a, stat)(("chain", "draw")) - getattr(b, stat)(("chain", "draw")))
        tol = 4 * np.sqrt(azs.mcse(a, method=method) ** 2 + azs.mcse(b, method=method) ** 2)
        for name in a.data_vars:
            assert np.all(diff[name].values <= tol[name].values), (name, stat, diff, tol)


def test_em_start_warnings_reach_the_user(separated, monkeypatch, tmp_path):
    """Issue 15, item 7: a non-converged EM start is re-emitted by fit and named in the verdict,
    str(diagnostics_), the saved file's verdict and the report."""
    import functools

    from bayesgmm import bayes
    from bayesgmm.em import EMGaussianMixture
    from bayesgmm.exceptions import ConvergenceWarning
    from bayesgmm.report import render_report

    # BayesGaussianMixture has no EM options: force a one-iteration EM start
    monkeypatch.setattr(
        bayes, "EMGaussianMixture", functools.partial(EMGaussianMixture, max_iter=1)
    )
    X, _ = separated
    fit = BayesGaussianMixture(3, draws=50, tune=100, chains=2, random_state=0, progressbar=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit.fit(X)
    em_warnings = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert len(em_warnings) == 1
    assert "EM start" in str(em_warnings[0].message)
    assert em_warnings[0].filename == __file__  # points at the caller of fit
    assert not fit.em_.converged_
    note = fit.diagnostics_.em_start_note
    assert note is not None and "did not converge (stopped after 1 iteration)" in note
    assert note in fit.diagnostics_.verdict and note in str(fit.diagnostics_)
    assert note in fit.idata_.attrs["diagnostics_verdict"]
    path = tmp_path / "fit.nc"
    fit.save(path)
    assert BayesGaussianMixture.load(path).diagnostics_.em_start_note == note
    assert "did not converge (stopped after 1 iteration)" in render_report(
        bgm=fit, fmt="md", figures=False
    )


def test_clean_em_start_has_no_note(faithful_fit):
    assert faithful_fit.em_.converged_ and not faithful_fit.em_.degenerate_.any()
    assert faithful_fit.diagnostics_.em_start_note is None
    assert "EM solution" not in faithful_fit.diagnostics_.verdict


def test_degenerate_em_start_is_reemitted_and_other_warnings_pass_unchanged():
    """Issue 15, item 7, without sampling: the EM start's DegenerateMixtureWarning is passed on
    (as about the Bayesian fit's start); any other warning is passed on as it was."""
    from bayesgmm.bayes import _fit_em_start
    from bayesgmm.em import EMGaussianMixture
    from bayesgmm.exceptions import DegenerateMixtureWarning

    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(60, 2)), np.repeat([[6.0, 6.0]], 10, axis=0)])
    em = EMGaussianMixture(2, n_init=5, random_state=0)
    with pytest.warns(DegenerateMixtureWarning, match=r"^The EM start of .*collapsed") as info:
        _fit_em_start(em, X)
    assert em.degenerate_.any() and len(info) == 1

    class Noisy:
        def fit(self, X):
            warnings.warn("something else", RuntimeWarning, stacklevel=1)

    with pytest.warns(RuntimeWarning, match="^something else$"):
        _fit_em_start(Noisy(), X)


# ---------------------------------------------------------------- scikit-learn's own checks

#: Small draws: the checks test the estimator's contract (cloning, validation, shapes,
#: invariances, pickling, idempotent fits), not the posterior; each fit takes ~0.1 s.
_SMALL = dict(draws=10, tune=10, chains=2, n_init=1, progressbar=False)


@parametrize_with_checks(
    [
        BayesGaussianMixture(**_SMALL),
        BayesGaussianMixture(2, covariance_type="diag", random_state=0, **_SMALL),
    ]
)
def test_sklearn_compatible_estimator(estimator, check):
    """Issue 15, item 6: every check of parametrize_with_checks (all run in ~6 s per estimator).

    The diagnostics of such short chains fail by design, so their SamplingWarning is ignored.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        check(estimator)
