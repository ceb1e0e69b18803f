"""``covariance_prior``, ``mixture_likelihood`` and ``model_coords``: build_model in pieces.

A custom model that keeps the stock priors but for one is written with these building blocks;
composed with the stock weights and means priors they must give ``build_model``'s model
exactly (same variables, same log-density), and a custom model written with them keeps the
custom-model contract.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest

from bayesgmm._custom import check_model
from bayesgmm.model import (
    build_model,
    covariance_prior,
    mixture_likelihood,
    model_coords,
    prior_hyperparameters,
)

MODE = "FAST_COMPILE"


def from_blocks(X, k, covariance_type, *, hierarchical=False):
    """The stock model from the blocks, or with means drawn around a learnt centre."""
    hp = prior_hyperparameters(X, k, covariance_type=covariance_type)
    with pm.Model(coords=model_coords(X, k)) as model:
        weights = pm.Dirichlet("weights", a=hp.weights_concentration, dims="component")
        mu, sd = hp.means_loc, hp.means_scale
        if hierarchical:
            mu = pm.Normal("centre", mu=hp.loc, sigma=3 * hp.scale, dims="feature")
            sd = pm.HalfNormal("spread", sigma=3 * hp.scale, dims="feature")
        means = pm.Normal("means", mu=mu, sigma=sd, dims=("component", "feature"))
        prec_chol = covariance_prior(covariance_type, k, hp)
        mixture_likelihood(X, weights, means, prec_chol, covariance_type)
    return model


@pytest.mark.parametrize("k,d", [(1, 1), (3, 1), (2, 3)])
@pytest.mark.parametrize("cov", ["full", "tied", "diag", "spherical"])
def test_blocks_compose_to_build_model(cov, k, d):
    rng = np.random.default_rng(k * 10 + d)
    X = rng.normal(size=(40, d)) * np.arange(1, d + 1) + 3.0
    stock = build_model(X, k, covariance_type=cov)
    blocks = from_blocks(X, k, cov)
    assert [v.name for v in blocks.free_RVs] == [v.name for v in stock.free_RVs]
    assert {v.name for v in blocks.deterministics} == {v.name for v in stock.deterministics}
    assert dict(blocks.named_vars_to_dims) == dict(stock.named_vars_to_dims)
    logp_a = stock.compile_logp(mode=MODE)
    logp_b = blocks.compile_logp(mode=MODE)
    point0 = stock.initial_point()
    for _ in range(3):
        point = {n: v + 0.4 * rng.standard_normal(np.shape(v)) for n, v in point0.items()}
        assert logp_b(point) == pytest.approx(logp_a(point), rel=1e-12)


@pytest.mark.parametrize("cov", ["full", "tied", "diag", "spherical"])
def test_a_custom_model_from_blocks_keeps_the_contract(cov):
    rng = np.random.default_rng(7)
    X = np.vstack([rng.normal(-2, 1, size=(30, 2)), rng.normal(2, 0.5, size=(30, 2))])
    model = from_blocks(X, 2, cov, hierarchical=True)
    custom = check_model(model, X, 2, cov, name="hierarchical")
    assert custom.extra == ("centre", "spread")
    assert set(custom.free_stock) >= {"weights", "means"}


def test_blocks_refuse_a_model_without_the_dims():
    X = np.random.default_rng(0).normal(size=(20, 2))
    hp = prior_hyperparameters(X, 2, covariance_type="full")
    with pm.Model(), pytest.raises(ValueError, match="model_coords"):
        covariance_prior("full", 2, hp)
    with pm.Model(), pytest.raises(ValueError, match="covariance_type='banded'"):
        covariance_prior("banded", 2, hp)
    with pytest.raises(TypeError, match="No model on context stack"):
        covariance_prior("full", 2, hp)
    with pm.Model(coords=model_coords(X, 2)):
        w = pm.Dirichlet("weights", a=np.ones(2), dims="component")
        mu = pm.Normal("means", 0.0, 1.0, dims=("component", "feature"))
        prec = covariance_prior("diag", 2, hp)
        with pytest.raises(ValueError, match="covariance_type='banded'"):
            mixture_likelihood(X, w, mu, prec, "banded")
        obs = mixture_likelihood(X, w, mu, prec, "diag")
    assert obs.name == "obs"
