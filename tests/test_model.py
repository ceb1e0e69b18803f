"""The PyMC mixture graph against the shared NumPy log-density."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytensor
import pytest

from bayesgmm._numerics import (
    COVARIANCE_TYPES,
    log_mixture_density,
    precisions_cholesky_from_covariances,
)
from bayesgmm.model import Priors, build_model

# Correctness of the graph does not depend on the backend; the Python linker compiles in
# seconds where Numba needs minutes for four models.
MODE = "FAST_COMPILE"


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal(-2, 1, size=(30, 3)), rng.normal(2, 0.5, size=(30, 3))])
    return pd.DataFrame(X, columns=["a", "b", "c"])


def random_point(model, rng):
    """A random point in the unconstrained space, with the deterministics evaluated there."""
    point = {
        name: value + rng.normal(scale=0.3, size=np.shape(value))
        for name, value in model.initial_point().items()
    }
    names = ["weights", "means", "covariances", "precisions_cholesky"]
    outputs = model.replace_rvs_by_values([model[n] for n in names])
    fn = pytensor.function(model.value_vars, outputs, mode=MODE, on_unused_input="ignore")
    values = fn(*(point[v.name] for v in model.value_vars))
    return point, dict(zip(names, values, strict=True))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_model_logp_is_numerics_likelihood_plus_priors(data, covariance_type):
    rng = np.random.default_rng(0)
    model = build_model(data, 2, covariance_type=covariance_type)
    assert list(model.coords["feature"]) == ["a", "b", "c"]
    assert set(model.coords) >= {"obs_id", "component", "feature", "feature_bis"}
    point, params = random_point(model, rng)
    total = model.compile_logp(jacobian=False, mode=MODE)(point)
    priors = model.compile_logp(vars=model.free_RVs, jacobian=False, mode=MODE)(point)
    pointwise = model.compile_logp(vars=[model["obs"]], sum=False, mode=MODE)(point)[0]
    want = log_mixture_density(
        data.to_numpy(),
        params["weights"],
        params["means"],
        params["precisions_cholesky"],
        covariance_type,
    )
    assert pointwise.shape == (data.shape[0],)  # one value per observation
    np.testing.assert_allclose(pointwise, want, rtol=1e-10)
    np.testing.assert_allclose(total, priors + want.sum(), rtol=1e-10)
    # The graph's precision factors are those of its covariances, in _numerics' layout.
    np.testing.assert_allclose(
        params["precisions_cholesky"],
        precisions_cholesky_from_covariances(params["covariances"], covariance_type)
        if covariance_type in ("full", "tied")
        else precisions_cholesky_from_covariances(
            np.diagonal(params["covariances"], axis1=-2, axis2=-1)
            if covariance_type == "diag"
            else params["covariances"][:, 0, 0],
            covariance_type,
        ),
        rtol=1e-10,
    )


def test_prior_sampling_of_parameters(data):
    import pymc as pm

    model = build_model(data, 3, covariance_type="diag")
    with model:
        prior = pm.sample_prior_predictive(
            draws=20,
            var_names=["weights", "means", "covariances"],
            random_seed=1,
            compile_kwargs={"mode": MODE},
        )
    assert prior["prior"]["weights"].shape == (1, 20, 3)
    np.testing.assert_allclose(prior["prior"]["weights"].sum("component"), 1.0)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_obs_draws_have_the_mixture_moments(covariance_type):
    """The CustomDist's random draws: mean and covariance of the mixture (200k draws)."""
    from bayesgmm._numerics import precisions_cholesky_from_covariances
    from bayesgmm.model import _make_random

    w = np.array([0.2, 0.5, 0.3])
    mu = np.array([[-3.0, 0.0], [0.0, 2.0], [4.0, -1.0]])
    covs = np.array(
        [[[1.0, 0.5], [0.5, 2.0]], [[0.5, -0.2], [-0.2, 0.4]], [[2.0, 0.0], [0.0, 1.0]]]
    )
    if covariance_type == "tied":
        covs = np.broadcast_to(covs[0], covs.shape)
        param = covs[0]
    elif covariance_type == "diag":
        covs = covs * np.eye(2)
        param = np.diagonal(covs, axis1=1, axis2=2)
    elif covariance_type == "spherical":
        covs = np.array([1.0, 0.5, 2.0])[:, None, None] * np.eye(2)
        param = covs[:, 0, 0]
    else:
        param = covs
    pc = precisions_cholesky_from_covariances(param, covariance_type)
    draws = _make_random(covariance_type, 3, 2)(w, mu, pc, rng=0, size=(200_000,))
    assert draws.shape == (200_000, 2)
    mean = w @ mu
    cov = np.einsum("k,kij->ij", w, covs + mu[:, :, None] * mu[:, None, :]) - np.outer(mean, mean)
    np.testing.assert_allclose(draws.mean(axis=0), mean, atol=0.03)
    np.testing.assert_allclose(np.cov(draws.T), cov, rtol=0.02, atol=0.02)


def test_prior_predictive_of_obs(data):
    import pymc as pm

    model = build_model(data, 2, covariance_type="full")
    with model:
        prior = pm.sample_prior_predictive(draws=5, random_seed=1, compile_kwargs={"mode": MODE})
    assert prior["prior_predictive"]["obs"].shape == (1, 5, *np.shape(data))
    assert np.isfinite(prior["prior_predictive"]["obs"].values).all()


def test_priors_are_validated():
    with pytest.raises(ValueError, match="positive"):
        Priors(mean_scale=-1.0)


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_one_feature_full_and_tied_is_the_half_normal_scale(covariance_type, k):
    """Issue 15, item 5: with D = 1 the LKJ Cholesky factor is the sd with its half-normal
    prior (LKJCholeskyCov(n=1) raised IndexError at initial_point)."""
    from scipy import stats

    rng = np.random.default_rng(5)
    X = pd.DataFrame({"x": np.concatenate([rng.normal(-1, 0.5, 25), rng.normal(2, 1.0, 35)])})
    priors = Priors(sd_scale=1.7)
    model = build_model(X, k, covariance_type=covariance_type, priors=priors)
    point, params = random_point(model, rng)
    names = ["chol_cov"] if covariance_type == "tied" else [f"chol_cov_{j}" for j in range(k)]
    assert {v.name for v in model.free_RVs} == {"weights", "means", *names}
    # The sd's prior term is HalfNormal(sd_scale * std(X)) at the one Cholesky entry.
    scale = priors.sd_scale * X.to_numpy().std()
    sds = np.exp(np.concatenate([point[f"{n}_log__"] for n in names]))
    cov_prior = model.compile_logp(vars=[model[n] for n in names], jacobian=False, mode=MODE)
    np.testing.assert_allclose(
        cov_prior(point), stats.halfnorm.logpdf(sds, scale=scale).sum(), rtol=1e-12
    )
    covs = params["covariances"].reshape(-1)
    np.testing.assert_allclose(np.sqrt(covs), np.resize(sds, covs.shape), rtol=1e-12)
    # The likelihood is the shared NumPy mixture density at the graph's parameters.
    pointwise = model.compile_logp(vars=[model["obs"]], sum=False, mode=MODE)(point)[0]
    want = log_mixture_density(
        X.to_numpy(),
        params["weights"],
        params["means"],
        params["precisions_cholesky"],
        covariance_type,
    )
    np.testing.assert_allclose(pointwise, want, rtol=1e-10)
