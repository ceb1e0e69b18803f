"""Time-to-posterior of a custom model: ``BayesGaussianMixture(model=hierarchical_means)``.

The custom model is the stock full-covariance mixture with a hierarchical prior on the means
(``mu0 ~ Normal(m, 3 s)``, ``tau ~ HalfNormal(3 s)``, ``means ~ Normal(mu0, tau)``), written
with public PyMC only (its likelihood a ``pm.CustomDist`` of plain PyTensor operations), so it
is sampled through nutpie's public API (its log-density and gradient compiled by PyTensor's
Numba backend and handed to ``nutpie.compiled_pyfunc.from_pyfunc``) from the EM start, then
relabelled and diagnosed like the stock model.

The measurement is the ``custom`` row of ``bench/nuts_speed.py`` (fresh processes, cold then
warm caches), which imports the model from here; this script runs that row beside the default
on B1:

    python bench/custom_model_speed.py            # B1: N=1000, D=2, K=3, 4 x (1000 + 1000)
    python bench/custom_model_speed.py --quick    # N=500, 300 + 300 draws: a smoke run
"""

from __future__ import annotations

import argparse


def hierarchical_means(X, n_components, covariance_type="full", priors=None, *, op=False):
    """Full-covariance mixture whose means share an unknown centre and spread.

    ``op=True`` writes the likelihood with bayesgmm's likelihood Op
    (``bayesgmm._likelihood_op.mixture_log_density``, the compiled kernel that
    ``build_model`` uses) instead of plain PyTensor operations: the same density, less graph
    for PyTensor to compile (the ``custom-op`` row of ``bench/nuts_speed.py``).
    """
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
            if op:
                from bayesgmm._likelihood_op import mixture_log_density

                return mixture_log_density(value, w_, mu_, u_, "full")
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


def hierarchical_means_op(X, n_components, covariance_type="full", priors=None):
    """:func:`hierarchical_means` with its likelihood through bayesgmm's likelihood Op."""
    return hierarchical_means(X, n_components, covariance_type, priors, op=True)


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
