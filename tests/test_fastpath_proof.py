"""Issue 15, item 3: the default sampler's compiled log-posterior is build_model's model.

The default sampler never builds the PyMC graph: it runs :mod:`bayesgmm._logdensity`, the
stock model's log-posterior written out by hand. These tests are what allows that:

* one function derives the prior hyper-parameters for both (:func:`prior_hyperparameters`),
  and the numbers in build_model's graph are those numbers;
* value and gradient equal PyMC's compiled log-posterior of the reference formulation on the
  grid (K, D) in {(1, 1), (3, 1), (1, 3), (3, 3), (2, 9)} x the four covariance types, on
  the unconstrained scale and in PyMC's variable order (D = 9 is above
  ``_UNROLL_MAX_FEATURES``, where build_model switches to a triangular solve);
* one function derives the deterministics, and the posterior group built from the fast
  path's draws equals build_model's ``Deterministic`` variables at the same points;
* the posterior of the default sampler agrees with ``pm.sample`` on build_model's graph
  (weights, means, standard deviations, correlations) within Monte Carlo error, and the same
  comparison detects a wrong prior scale on one side.
"""

from __future__ import annotations

import functools
import inspect
import warnings

import numpy as np
import pytest
import xarray as xr

from bayesgmm import _logdensity as ld
from bayesgmm.methods import model_hyperparameters
from bayesgmm.model import Priors, _build_model, build_model, prior_hyperparameters
from bayesgmm.sampling import _fast_path_applies, posterior_dataset

COV_TYPES = ("full", "tied", "diag", "spherical")
GRID = [(1, 1), (3, 1), (1, 3), (3, 3), (2, 9)]
#: Non-default values throughout, none of them a float32 number except eta's 2.5.
PRIORS = Priors(weights_concentration=1.7, mean_scale=2.0, sd_scale=1.3, lkj_eta=2.5)
DETERMINISTICS = {
    "full": ("chol", "corr", "stds", "covariances", "precisions_cholesky"),
    "tied": ("chol", "corr", "stds", "covariances", "precisions_cholesky"),
    "diag": ("covariances", "precisions_cholesky"),
    "spherical": ("covariances", "precisions_cholesky"),
}


def _constrained(cov: str) -> tuple[str, ...]:
    """Free variables compared on the constrained scale (PyMC's back-transform vs ``expand``);
    ``chol`` of full/tied is a Deterministic of the packed free variables."""
    return ("weights", "means", "sigma") if cov in ("diag", "spherical") else ("weights", "means")


def _data(d: int, seed: int = 0) -> np.ndarray:
    """40 rows, features on very different scales and centres (the priors scale with them)."""
    rng = np.random.default_rng(seed)
    scales = np.geomspace(0.2, 30.0, d)
    return rng.normal(size=(40, d)) * scales + np.linspace(-5.0, 50.0, d)


def _reference_model(X, k, cov, priors=PRIORS):
    """build_model's reference (pure-PyTensor) likelihood, whichever keyword selects it."""
    kwargs = {"formulation": "whiten"}
    if "likelihood" in inspect.signature(_build_model).parameters:
        kwargs["likelihood"] = "reference"
    return _build_model(X, k, covariance_type=cov, priors=priors, **kwargs)


def _value_var_names(k: int, d: int, cov: str) -> list[str]:
    """PyMC's value variables of the stock model, in the fast path's order."""
    # one feature: the covariance is the standard deviation alone (log-transformed
    # half-normal) instead of an LKJ Cholesky factor, on the same unconstrained scale
    packed = "log" if d == 1 else "cholesky-cov-packed"
    cov_names = {
        "full": [f"chol_cov_{j}_{packed}__" for j in range(k)],
        "tied": [f"chol_cov_{packed}__"],
        "diag": ["sigma_log__"],
        "spherical": ["sigma_log__"],
    }[cov]
    return ["weights_simplex__", "means", *cov_names]


@functools.cache
def _compiled(k: int, d: int, cov: str):
    """The reference model of the grid case, with one compiled function (shared by tests):
    point -> [logp, dlogp, *deterministics]."""
    X = _data(d)
    model = _reference_model(X, k, cov)
    names = [v.name for v in model.value_vars]
    assert names == _value_var_names(k, d, cov)  # the fast path's layout, same order
    dets = model.replace_rvs_by_values([model[n] for n in _constrained(cov) + DETERMINISTICS[cov]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # PyTensor's "no BLAS" notice
        fn = model.compile_fn(
            [model.logp(), model.dlogp(), *dets],
            inputs=model.value_vars,
            mode="FAST_COMPILE",
            on_unused_input="ignore",
        )
        point = model.initial_point()
        fn(point)  # the first call links the thunks (and may warn again)
    shapes = [tuple(point[n].shape) for n in names]
    return X, fn, names, shapes


def _point(theta: np.ndarray, names, shapes) -> dict[str, np.ndarray]:
    """Split the fast path's unconstrained vector into PyMC's value variables."""
    out, start = {}, 0
    for name, shape in zip(names, shapes, strict=True):
        size = int(np.prod(shape))
        out[name] = theta[start : start + size].reshape(shape)
        start += size
    assert start == theta.size
    return out


def _thetas(spec: ld.LogDensitySpec, n: int, seed: int) -> list[np.ndarray]:
    """The prior's centre and ``n`` random parameter sets on the unconstrained scale.

    Drawn in the data's units (means within a few standard deviations of the data's centre,
    standard deviations around the data's, correlated Cholesky factors), so that every
    term of the log-posterior, the priors of large-scale features included, moves by O(1)
    between points.
    """
    from bayesgmm.sampling import _prior_centre

    rng = np.random.default_rng(seed)
    k, d, cov = spec.n_components, spec.X.shape[1], spec.covariance_type
    loc, scale = spec.X.mean(axis=0), spec.X.std(axis=0)
    out = [_prior_centre(spec)]
    for _ in range(n):
        w = rng.dirichlet(np.full(k, 2.0))
        mu = loc + scale * rng.normal(scale=1.5, size=(k, d))
        if cov in ("full", "tied"):
            m = k if cov == "full" else 1
            chol = np.tril(rng.normal(scale=0.5, size=(m, d, d)), -1)
            chol[:, np.arange(d), np.arange(d)] = np.exp(rng.normal(scale=0.5, size=(m, d)))
            chol = scale[:, None] * chol  # Sigma = S C S: the data's scales
            param = chol if cov == "full" else chol[0]
        elif cov == "diag":
            param = scale * np.exp(rng.normal(scale=0.5, size=(k, d)))
        else:
            param = scale.mean() * np.exp(rng.normal(scale=0.5, size=k))
        out.append(ld.to_unconstrained(w, mu, param, cov))
    return out


@pytest.mark.parametrize("cov", COV_TYPES)
@pytest.mark.parametrize(("k", "d"), GRID)
def test_value_and_gradient_equal_pymc_reference(k, d, cov):
    X, fn, names, shapes = _compiled(k, d, cov)
    spec = ld.LogDensitySpec.from_data(X, k, cov, PRIORS)
    assert spec.n_dim == sum(int(np.prod(s)) for s in shapes)
    for theta in _thetas(spec, 3, seed=10 * k + d):
        value, grad = ld.log_density_and_grad(theta, spec)
        ref_value, ref_grad = fn(_point(theta, names, shapes))[:2]
        np.testing.assert_allclose(value, ref_value, rtol=1e-10)
        scale = max(1.0, float(np.max(np.abs(ref_grad))))
        np.testing.assert_allclose(grad, ref_grad, rtol=1e-8, atol=1e-9 * scale)


@pytest.mark.parametrize("cov", COV_TYPES)
@pytest.mark.parametrize(("k", "d"), GRID)
def test_posterior_deterministics_equal_the_models(k, d, cov):
    """sampling.posterior_dataset on the fast path's expanded draws gives build_model's free
    variables (PyMC's back-transforms of the same point) and its Deterministic variables (both
    call _numerics.covariance_deterministics, the graph with its own triangular inverse)."""
    X, fn, names, shapes = _compiled(k, d, cov)
    spec = ld.LogDensitySpec.from_data(X, k, cov, PRIORS)
    thetas = _thetas(spec, 2, seed=k + 7 * d)
    flat = np.stack([ld.expand(t, k, d, cov) for t in thetas])[None]  # (chain, draw, n_exp)
    draws = ld.from_unconstrained(flat, k, d, cov)
    post = posterior_dataset(draws, cov, [f"x{j}" for j in range(d)])
    for s, theta in enumerate(thetas):
        outs = fn(_point(theta, names, shapes))[2:]
        ref = dict(zip(_constrained(cov) + DETERMINISTICS[cov], outs, strict=True))
        for name, value in ref.items():
            np.testing.assert_allclose(
                post[name].values[0, s], value, rtol=1e-9, atol=1e-12, err_msg=name
            )


@pytest.mark.parametrize("cov", COV_TYPES)
@pytest.mark.parametrize(("k", "d"), [(3, 1), (2, 3)])
def test_one_function_gives_both_paths_their_hyperparameters(k, d, cov):
    priors = Priors(weights_concentration=0.6, mean_scale=1.9, sd_scale=0.7, lkj_eta=1.3)
    X = _data(d, seed=3)
    X[:, -1] = 4.0  # a constant feature: scale 1 on both paths
    hp = prior_hyperparameters(X, k, covariance_type=cov, priors=priors)
    # the stated rules of Priors, from the data's own moments
    loc, scale = X.mean(0), np.where(X.std(0) > 0, X.std(0), 1.0)
    assert scale[-1] == 1.0
    np.testing.assert_array_equal(hp.weights_concentration, np.full(k, 0.6))
    np.testing.assert_allclose(hp.means_loc, np.tile(loc, (k, 1)), rtol=1e-15)
    np.testing.assert_allclose(hp.means_scale, np.tile(1.9 * scale, (k, 1)), rtol=1e-15)
    sd = 0.7 * scale if cov != "spherical" else np.full(d, 0.7 * scale.mean())
    np.testing.assert_allclose(hp.sd_scale, sd, rtol=1e-15)
    # the compiled path
    spec = ld.LogDensitySpec.from_data(X, k, cov, priors)
    np.testing.assert_array_equal(spec.alpha, hp.weights_concentration)
    np.testing.assert_array_equal(spec.mean_loc, hp.means_loc)
    np.testing.assert_array_equal(spec.mean_scale, hp.means_scale)
    np.testing.assert_array_equal(spec.sd_scale, hp.sd_scale)
    assert spec.lkj_eta == hp.lkj_eta
    # the PyMC graph, read back by the report's reader of build_model's hyper-parameters
    graph = model_hyperparameters(build_model(X, k, covariance_type=cov, priors=priors))
    np.testing.assert_array_equal(graph["weights_alpha"], hp.weights_concentration)
    np.testing.assert_array_equal(graph["means_mu"], hp.means_loc)
    np.testing.assert_array_equal(graph["means_sigma"], hp.means_scale)
    shape = {"diag": (k, d), "spherical": (k,)}.get(cov, (d,))
    sd_graph = np.broadcast_to(graph["covariance"]["sd_sigma"], shape)
    # spherical: one pooled scale (every entry of hp.sd_scale) for each component's sigma
    sd_hp = np.full(k, hp.sd_scale[0]) if cov == "spherical" else hp.sd_scale
    np.testing.assert_array_equal(sd_graph, np.broadcast_to(sd_hp, shape))
    if cov in ("full", "tied") and d > 1:
        assert graph["covariance"]["eta"] == hp.lkj_eta


def test_prior_hyperparameters_refuse_bad_arguments():
    X = _data(2)
    with pytest.raises(ValueError, match="covariance_type='ful' is not supported"):
        prior_hyperparameters(X, 2, covariance_type="ful")
    with pytest.raises(ValueError, match="n_components must be a positive integer"):
        prior_hyperparameters(X, 0)
    with pytest.raises(ValueError, match="2-D array"):
        prior_hyperparameters(X[None], 2)


def test_fast_path_only_for_the_stock_model():
    assert _fast_path_applies(None, Priors())
    assert _fast_path_applies(build_model, PRIORS)

    def my_model(X, n_components, covariance_type, priors):  # pragma: no cover - not called
        return build_model(X, n_components, covariance_type=covariance_type, priors=priors)

    assert not _fast_path_applies(my_model, Priors())

    class LookAlike:  # duck-typed priors: build_model would read them, the proof does not hold
        weights_concentration, mean_scale, sd_scale, lkj_eta = 1.0, 2.5, 1.0, 2.0

    assert not _fast_path_applies(None, LookAlike())


def test_auto_takes_the_public_path_when_the_fast_path_does_not_apply(monkeypatch):
    from bayesgmm import sampling

    seen = []

    class Stop(Exception):
        pass

    def fake_pymc(job):
        seen.append(job.sampler)
        raise Stop

    def fake_nutpie(job):  # pragma: no cover - must not be reached
        raise AssertionError("the fast path ran for priors it is not proven for")

    monkeypatch.setattr(sampling, "_sample_pymc", fake_pymc)
    monkeypatch.setattr(sampling, "_sample_nutpie", fake_nutpie)

    class LookAlike:
        weights_concentration, mean_scale, sd_scale, lkj_eta = 1.0, 2.5, 1.0, 2.0

    X = _data(2)
    with pytest.raises(Stop):
        sampling.sample_posterior(X, 2, priors=LookAlike(), progressbar=False)
    assert seen == ["pymc"]


# --------------------------------------------------------------------------- whole posterior


def _scalars(fit) -> xr.Dataset:
    """Every scalar the comparison covers: weights, means, standard deviations and the
    correlation (the off-diagonal entry; the diagonal is exactly 1), relabelled draws."""
    post = fit.idata_["posterior"].to_dataset()
    out = post[["weights", "means", "stds"]]
    out["corr"] = post["corr"].isel(feature=0, feature_bis=1)
    return out


def _z_scores(a: xr.Dataset, b: xr.Dataset) -> dict[tuple[str, str], np.ndarray]:
    """|mean_a - mean_b| / sqrt(mcse_a^2 + mcse_b^2) per scalar (and the same for the sd)."""
    import arviz_stats as azs

    out = {}
    for stat, method in (("mean", "mean"), ("std", "sd")):
        diff = abs(getattr(a, stat)(("chain", "draw")) - getattr(b, stat)(("chain", "draw")))
        tol = np.sqrt(azs.mcse(a, method=method) ** 2 + azs.mcse(b, method=method) ** 2)
        for name in a.data_vars:
            out[name, stat] = np.atleast_1d((diff[name] / tol[name]).values)
    return out


@pytest.fixture(scope="module")
def pymc_faithful():
    """PyMC's own NUTS (pm.sample) on build_model's graph: Old Faithful, K = 2, full."""
    from bayesgmm import BayesGaussianMixture, load_faithful
    from bayesgmm.exceptions import SamplingWarning

    fit = BayesGaussianMixture(
        2, draws=1000, tune=500, chains=2, sampler="pymc", random_state=1, progressbar=False
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        fit.fit(load_faithful())
    assert fit.idata_.attrs["sampler"] == "pymc"
    return fit


def test_default_posterior_agrees_with_pm_sample(faithful_fit, pymc_faithful):
    """The default sampler (compiled log-posterior, nutpie) and pm.sample on build_model's
    graph: posterior mean and sd of every weight, mean, sd and correlation agree within
    4 sqrt(mcse_a^2 + mcse_b^2)."""
    import arviz_stats as azs

    assert faithful_fit.idata_.attrs["sampler"] == "nutpie"
    a, b = _scalars(faithful_fit), _scalars(pymc_faithful)
    assert float(azs.ess(b, method="bulk").to_array().min()) >= 400  # an honest comparison
    z = _z_scores(a, b)
    assert len(z) == 8 and sum(v.size for v in z.values()) == 2 * (2 + 4 + 4 + 2)
    worst = {key: float(v.max()) for key, v in z.items()}
    assert max(worst.values()) <= 4.0, worst
    assert set(faithful_fit.idata_["posterior"].data_vars) == set(
        pymc_faithful.idata_["posterior"].data_vars
    )


def test_the_comparison_detects_a_wrong_prior_on_one_path(pymc_faithful, monkeypatch):
    """The same comparison fails when the fast path's prior on the means is ten times too
    narrow (build_model's is unchanged): the test above can fail."""
    import dataclasses

    from bayesgmm import BayesGaussianMixture, load_faithful
    from bayesgmm.exceptions import SamplingWarning

    real = ld.LogDensitySpec.from_data.__func__

    def wrong(cls, X, k, cov, priors):
        narrow = dataclasses.replace(priors, mean_scale=priors.mean_scale / 10)
        return real(cls, X, k, cov, narrow)

    monkeypatch.setattr(ld.LogDensitySpec, "from_data", classmethod(wrong))
    fit = BayesGaussianMixture(2, draws=500, tune=500, random_state=0, progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        fit.fit(load_faithful())
    z = _z_scores(_scalars(fit), _scalars(pymc_faithful))
    assert float(z["means", "mean"].max()) > 4.0
