"""Time-to-posterior of a custom model: ``BayesGaussianMixture(model=hierarchical_means)``.

The custom model is the stock mixture with a hierarchical prior on the means
(``mu0 ~ Normal(m, 3 s)``, ``tau ~ HalfNormal(3 s)``, ``means ~ Normal(mu0, tau)``), written
the way the user guide recommends: public PyMC for the changed prior, the stock covariance
prior and the mixture likelihood from ``bayesgmm.model.covariance_prior`` and
``bayesgmm.model.mixture_likelihood`` (the likelihood through the compiled kernel's Op).
``hierarchical_means_plain`` is the same model with everything written in plain PyMC and
PyTensor (its likelihood a ``pm.CustomDist`` of PyTensor operations): more graph for PyTensor
to compile. Both are sampled through nutpie (their log-density and gradient compiled by
PyTensor's Numba backend, called by nutpie as a C callback) from the EM start, then relabelled
and diagnosed like the stock model.

The measurements are the ``custom`` and ``custom-plain`` rows of ``bench/nuts_speed.py``
(fresh processes, cold then warm caches), which imports the models from here; this script
runs the first beside the default on B1:

    python bench/custom_model_speed.py            # B1: N=1000, D=2, K=3, 4 x (1000 + 1000)
    python bench/custom_model_speed.py --quick    # N=500, 300 + 300 draws: a smoke run
"""

from __future__ import annotations

import argparse


def hierarchical_means(X, n_components, covariance_type="full", priors=None):
    """The stock mixture whose means share an unknown centre and spread (any covariance type).

    Written with bayesgmm's building blocks: only the means' prior is new.
    """
    import pymc as pm

    from bayesgmm.model import (
        covariance_prior,
        mixture_likelihood,
        model_coords,
        prior_hyperparameters,
    )

    k = n_components
    hp = prior_hyperparameters(X, k, covariance_type=covariance_type, priors=priors)
    with pm.Model(coords=model_coords(X, k)) as model:
        weights = pm.Dirichlet("weights", a=hp.weights_concentration, dims="component")
        mu0 = pm.Normal("mu0", mu=hp.loc, sigma=3 * hp.scale, dims="feature")
        tau = pm.HalfNormal("tau", sigma=3 * hp.scale, dims="feature")
        means = pm.Normal("means", mu=mu0, sigma=tau, dims=("component", "feature"))
        prec_chol = covariance_prior(covariance_type, k, hp)
        mixture_likelihood(X, weights, means, prec_chol, covariance_type)
    return model


def hierarchical_means_plain(X, n_components, covariance_type="full", priors=None):
    """:func:`hierarchical_means` (``"full"`` only) written in plain PyMC and PyTensor."""
    import numpy as np
    import pymc as pm
    import pytensor.tensor as pt

    if covariance_type != "full":
        raise ValueError("this example model is written for covariance_type='full'")
    k = n_components
    n, d = X.shape
    m, s = X.mean(axis=0), X.std(axis=0)
    feats = [f"x{j}" for j in range(d)]
    coords = {"obs_id": np.arange(n), "component": np.arange(k), "feature": feats}
    coords["feature_bis"] = feats
    rows, cols = np.tril_indices(d)
    with pm.Model(coords=coords) as model:
        w = pm.Dirichlet("weights", a=np.ones(k), dims="component")
        mu0 = pm.Normal("mu0", mu=m, sigma=3 * s, dims="feature")
        tau = pm.HalfNormal("tau", sigma=3 * s, dims="feature")
        means = pm.Normal("means", mu=mu0, sigma=tau, dims=("component", "feature"))
        packed = [
            pm.LKJCholeskyCov(
                f"chol_cov_{j}",
                eta=2.0,
                n=d,
                sd_dist=pm.HalfNormal.dist(sigma=s, shape=d),
                compute_corr=False,
            )
            for j in range(k)
        ]
        chol = pt.zeros((k, d, d))[:, rows, cols].set(pt.stack(packed))
        cov = chol @ pt.swapaxes(chol, -1, -2)
        stds = pt.sqrt(pt.diagonal(cov, axis1=-2, axis2=-1))
        eye = pt.broadcast_to(pt.eye(d), (k, d, d))
        prec = pt.swapaxes(pt.linalg.solve_triangular(chol, eye, lower=True), -1, -2)
        dims3 = ("component", "feature", "feature_bis")
        pm.Deterministic("chol", chol, dims=dims3)
        pm.Deterministic("covariances", cov, dims=dims3)
        pm.Deterministic("stds", stds, dims=("component", "feature"))
        pm.Deterministic("corr", cov / (stds[:, :, None] * stds[:, None, :]), dims=dims3)
        pm.Deterministic("precisions_cholesky", prec, dims=dims3)

        def logp(value, w_, mu_, u_):
            # CustomDist may hand the parameters over with leading length-1 batch dims
            w_, mu_, u_ = w_.reshape((k,)), mu_.reshape((k, d)), u_.reshape((k, d, d))
            y = pt.einsum("nd,kde->nke", value, u_) - pt.einsum("kd,kde->ke", mu_, u_)[None]
            logdet = pt.log(pt.diagonal(u_, axis1=-2, axis2=-1)).sum(-1)
            comp = logdet - 0.5 * d * np.log(2 * np.pi) - 0.5 * (y**2).sum(-1)
            return pt.logsumexp(pt.log(w_) + comp, axis=-1)

        pm.CustomDist(
            "obs",
            w,
            means,
            prec,
            logp=logp,
            observed=X,
            dims=("obs_id", "feature"),
            signature="(k),(k,d),(k,d,d)->(d)",
        )
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, 300+300 draws")
    args = parser.parse_args()
    from nuts_speed import main as nuts_speed

    nuts_speed(
        ["--only", "default", "--only", "custom", "--case", "0"]
        + (["--quick"] if args.quick else [])
    )


if __name__ == "__main__":
    main()
