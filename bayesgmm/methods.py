"""What was fitted, in words: the model, its log-prior, the methods paragraph, reproducibility.

Everything here is read from the PyMC model that :func:`bayesgmm.build_model` builds (never
recomputed from :class:`~bayesgmm.model.Priors`) or from what a fit recorded in its
``idata_``, so the text cannot drift from what was run:

* :func:`model_hyperparameters` evaluates the distribution parameters of the model's free
  variables (their ``owner.inputs``);
* :func:`model_description` writes the likelihood and every prior with those numbers in data
  units;
* :func:`log_prior_dataset` evaluates the model's own prior terms (``pymc.logp`` of each free
  variable) at every posterior draw, the ``log_prior`` group that power-scaling prior
  sensitivity (Kallioinen et al. 2023, :func:`arviz_stats.psense_summary`) needs;
* :func:`methods_paragraph` writes a paragraph for a paper from the fit's settings,
  diagnostics and relabelling, with references;
* :func:`reproducibility` gathers the command or call, the input file's name, size and
  SHA-256, the seed and the versions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
from importlib import metadata
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from ._version import __version__

if TYPE_CHECKING:
    import pymc as pm

    from .bayes import BayesGaussianMixture
    from .selection import ComparisonResult

__all__ = [
    "REFERENCES",
    "ModelDescription",
    "file_fingerprint",
    "log_prior_dataset",
    "methods_markdown",
    "methods_paragraph",
    "model_description",
    "model_hyperparameters",
    "python_call",
    "python_call_caveat",
    "reproducibility",
    "sensitivity_table",
    "sensitivity_tree",
    "sensitivity_words",
]

#: The references the methods paragraph cites, keyed by their short citation.
REFERENCES = {
    "Dempster et al. 1977": "Dempster, A. P., Laird, N. M. and Rubin, D. B. (1977). Maximum "
    "likelihood from incomplete data via the EM algorithm. Journal of the Royal Statistical "
    "Society B, 39(1), 1-38.",
    "Hoffman and Gelman 2014": "Hoffman, M. D. and Gelman, A. (2014). The No-U-Turn sampler: "
    "adaptively setting path lengths in Hamiltonian Monte Carlo. Journal of Machine Learning "
    "Research, 15, 1593-1623.",
    "Lewandowski et al. 2009": "Lewandowski, D., Kurowicka, D. and Joe, H. (2009). Generating "
    "random correlation matrices based on vines and extended onion method. Journal of "
    "Multivariate Analysis, 100(9), 1989-2001.",
    "Stephens 2000": "Stephens, M. (2000). Dealing with label switching in mixture models. "
    "Journal of the Royal Statistical Society B, 62(4), 795-809.",
    "Vehtari et al. 2017": "Vehtari, A., Gelman, A. and Gabry, J. (2017). Practical Bayesian "
    "model evaluation using leave-one-out cross-validation and WAIC. Statistics and "
    "Computing, 27, 1413-1432.",
    "Vehtari et al. 2021": "Vehtari, A., Gelman, A., Simpson, D., Carpenter, B. and Bürkner, "
    "P.-C. (2021). Rank-normalization, folding, and localization: an improved R-hat for "
    "assessing convergence of MCMC. Bayesian Analysis, 16(2), 667-718.",
    "Kallioinen et al. 2023": "Kallioinen, N., Paananen, T., Bürkner, P.-C. and Vehtari, A. "
    "(2023). Detecting and diagnosing prior and likelihood sensitivity with power-scaling. "
    "Statistics and Computing, 34, 57.",
}

_VERSIONS = ("numpy", "scipy", "pymc", "pytensor", "arviz", "arviz-stats", "nutpie", "xarray")


# ---------------------------------------------------------------------- the model


def _value(var: Any) -> np.ndarray:
    """A constant graph input (a distribution parameter) as an array."""
    return np.asarray(var.eval(), dtype=np.float64)


def model_hyperparameters(model: pm.Model) -> dict[str, Any]:
    """The prior hyper-parameters of a :func:`bayesgmm.build_model` model, read from its graph.

    Parameters
    ----------
    model : pymc.Model
        A model built by :func:`bayesgmm.build_model`.

    Returns
    -------
    dict
        ``weights_alpha`` (K,), ``means_mu`` and ``means_sigma`` (K, D), ``covariance``: the
        covariance prior's kind (``"lkj"``, ``"halfnormal"``), its variable names, the LKJ
        ``eta`` (``None`` without LKJ) and ``sd_sigma``, the half-normal scale(s) of the
        standard deviations as the model holds them.

    Raises
    ------
    ValueError
        If ``model`` lacks the ``weights`` and ``means`` variables of the stock model.
    """
    names = {v.name for v in model.free_RVs}
    if not {"weights", "means"} <= names:
        raise ValueError(
            "model_hyperparameters reads models built by bayesgmm.build_model (free variables "
            f"'weights' and 'means'); this model has {sorted(names)}."
        )
    # A RandomVariable's inputs are (rng, size, *parameters).
    alpha = _value(model["weights"].owner.inputs[2])
    mu = _value(model["means"].owner.inputs[2])
    sigma = _value(model["means"].owner.inputs[3])
    k = alpha.shape[0]
    d = model["means"].type.shape[-1] if model["means"].type.shape[-1] else mu.shape[-1]
    mu, sigma = np.broadcast_to(mu, (k, d)).copy(), np.broadcast_to(sigma, (k, d)).copy()
    cov_names = sorted(names - {"weights", "means"})
    first = model[cov_names[0]]
    op = type(first.owner.op).__name__
    if "LKJ" in op:
        # inputs: rng, n, eta, sd_dist; sd_dist is a HalfNormal(loc=0, sigma)
        eta = float(_value(first.owner.inputs[2]))
        sd_sigma = _value(first.owner.inputs[3].owner.inputs[-1])
        cov = {"kind": "lkj", "variables": cov_names, "eta": eta, "sd_sigma": sd_sigma}
    else:
        sd_sigma = _value(first.owner.inputs[-1])
        cov = {"kind": "halfnormal", "variables": cov_names, "eta": None, "sd_sigma": sd_sigma}
    return {"weights_alpha": alpha, "means_mu": mu, "means_sigma": sigma, "covariance": cov}


def _num(v: float) -> str:
    return f"{float(v):.4g}"


def _vec(values: np.ndarray, names: list[str]) -> str:
    values = np.ravel(values)
    if len(values) == 1:
        return _num(values[0])
    return "(" + ", ".join(f"{n}: {_num(v)}" for n, v in zip(names, values, strict=False)) + ")"


@dataclasses.dataclass(frozen=True)
class ModelDescription:
    """The model in words: likelihood, priors with numbers, and the scaling sentence."""

    likelihood: str
    priors: pd.DataFrame  # parameter, prior, hyper-parameters (data units)
    scaling: str
    hyperparameters: dict[str, Any]

    def lines(self) -> list[str]:
        """The likelihood, one line per prior, and the scaling sentence."""
        rows = [f"{r.parameter} ~ {r.prior}" for r in self.priors.itertuples(index=False)]
        return [self.likelihood, *rows, self.scaling]


def model_description(
    X: Any,
    n_components: int,
    *,
    covariance_type: str = "full",
    priors: Any = None,
) -> ModelDescription:
    """The likelihood and every prior of the mixture, read from :func:`bayesgmm.build_model`.

    Parameters
    ----------
    X : array-like or DataFrame of shape (n_samples, n_features)
        The data the model is (or was) fitted to; the priors are scaled to it.
    n_components : int
    covariance_type : {"full", "tied", "diag", "spherical"}, default "full"
    priors : Priors, optional

    Returns
    -------
    ModelDescription
    """
    from .model import Priors, build_model

    priors = Priors() if priors is None else priors
    model = build_model(X, n_components, covariance_type=covariance_type, priors=priors)
    hp = model_hyperparameters(model)
    features = [str(f) for f in model.coords["feature"]]
    k, d = hp["means_mu"].shape
    cov = hp["covariance"]
    likelihood = (
        f"x_i ~ sum_k w_k Normal(mu_k, Sigma_k), i = 1..{len(model.coords['obs_id'])}, "
        f"k = 1..{k}, {d} feature(s), {covariance_type} covariances"
        + (" (one Sigma shared by all components)" if covariance_type == "tied" else "")
        + {
            "full": "",
            "tied": "",
            "diag": " (Sigma_k diagonal)",
            "spherical": " (Sigma_k = sigma_k^2 I)",
        }[covariance_type]
        + "; the component labels are marginalised out."
    )
    rows = [
        (
            "w (weights)",
            f"Dirichlet(alpha = {_num(hp['weights_alpha'][0])} for each of {k} components)"
            if np.all(hp["weights_alpha"] == hp["weights_alpha"][0])
            else f"Dirichlet(alpha = {_vec(hp['weights_alpha'], [str(j) for j in range(k)])})",
        ),
        (
            "mu_k (means, every component)",
            f"Normal(mean {_vec(hp['means_mu'][0], features)}, "
            f"sd {_vec(hp['means_sigma'][0], features)})",
        ),
    ]
    sd = np.asarray(cov["sd_sigma"])
    per = "shared Sigma" if covariance_type == "tied" else "every component"
    if cov["kind"] == "lkj":
        rows.append(
            (
                f"sd of Sigma ({per})",
                f"HalfNormal(scale {_vec(sd[0] if sd.ndim > 1 else sd, features)})",
            )
        )
        rows.append(
            (
                f"correlation of Sigma ({per})",
                f"LKJ(eta = {_num(cov['eta'])}), on its Cholesky factor",
            )
        )
    elif covariance_type == "spherical":
        rows.append(("sigma_k (sd, every component)", f"HalfNormal(scale {_num(sd.ravel()[0])})"))
    else:
        row = sd.reshape(-1, d)[0]
        label = (
            "sigma_kd (sd per feature, every component)"
            if covariance_type == "diag"
            else (f"sd of Sigma ({per}; one feature, so no correlation and no LKJ)")
        )
        rows.append((label, f"HalfNormal(scale {_vec(row, features)})"))
    table = pd.DataFrame(rows, columns=["parameter", "prior"])
    p = priors
    scaling = (
        "The priors are scaled to the data: with m and s the per-feature sample mean and "
        f"standard deviation, the means are Normal(m, {p.mean_scale:g} s), the standard "
        f"deviations HalfNormal({p.sd_scale:g} s)"
        + (
            " (the mean of s over features for spherical covariances)"
            if covariance_type == "spherical"
            else ""
        )
        + (
            f", the correlations LKJ({p.lkj_eta:g})"
            if cov["kind"] == "lkj"
            else (
                " (with one feature a full or tied covariance is its standard deviation alone)"
                if covariance_type in ("full", "tied")
                else ""
            )
        )
        + f" and the weights Dirichlet({p.weights_concentration:g}); the numbers above are "
        "these in data units."
    )
    return ModelDescription(likelihood, table, scaling, hp)


# ---------------------------------------------------------------------- log prior


def _prior_inputs(post: xr.Dataset, model: pm.Model, covariance_type: str) -> dict[str, np.ndarray]:
    """Posterior draws as values of the model's free variables, shape (S, *var shape)."""

    def flat(name: str, *dims: str) -> np.ndarray:
        da = post[name].transpose("chain", "draw", *dims)
        return da.values.reshape(-1, *da.shape[2:])

    values = {
        "weights": flat("weights", "component"),
        "means": flat("means", "component", "feature"),
    }
    d = post.sizes["feature"]
    if covariance_type in ("full", "tied"):
        lead = ("component",) if covariance_type == "full" else ()
        chol = flat("chol", *lead, "feature", "feature_bis")
        rows, cols = np.tril_indices(d)
        packed = chol[..., rows, cols]  # PyMC packs the lower triangle row by row
        if covariance_type == "full":
            for j in range(post.sizes["component"]):
                values[f"chol_cov_{j}"] = packed[:, j]
        else:
            values["chol_cov"] = packed
    elif covariance_type == "diag":
        values["sigma"] = flat("sigma", "component", "feature")
    else:
        values["sigma"] = flat("sigma", "component")
    return values


@contextlib.contextmanager
def python_backend():
    """Compile the PyTensor functions made inside this block without a C compiler.

    ``mode="FAST_COMPILE"`` alone runs Python implementations, except inside Scan and
    OpFromGraph ops (``pm.LKJCholeskyCov``'s graph has them), whose inner functions PyTensor
    still links with C thunks: about 40 calls of the C compiler, 12 s on a first fit with an
    empty cache. For functions called a few times (model checks, one vectorised evaluation
    over all draws) Python is the fast choice.
    """
    import pytensor

    with pytensor.config.change_flags(cxx=""):
        yield


def values_over_draws(
    inputs: list[Any], outputs: list[Any], arrays: list[np.ndarray]
) -> list[np.ndarray]:
    """PyTensor ``outputs`` of ``inputs`` at every draw, each with a leading draw axis.

    ``arrays[i]`` holds input ``i`` at every draw (a leading draw axis). The graph is
    vectorised over that axis and run once (PyTensor's Python backend: one call instead of
    one per draw, 0.02 s instead of seconds for 4000 draws); a graph holding an Op that does
    not vectorise is run one draw at a time, with the same result.
    """
    import pytensor
    import pytensor.tensor as pt

    n = arrays[0].shape[0]
    try:
        from pytensor.graph.replace import vectorize_graph

        batched = [pt.tensor(dtype=v.dtype, shape=(None, *v.type.shape)) for v in inputs]
        vec = vectorize_graph(outputs, replace=dict(zip(inputs, batched, strict=True)))
        with python_backend():
            fn = pytensor.function(batched, vec, on_unused_input="ignore", mode="FAST_COMPILE")
        # an output that does not depend on the draws comes back without the draw axis
        return [
            np.asarray(v, dtype=np.float64)
            if np.ndim(v) == out.type.ndim + 1
            else np.broadcast_to(np.asarray(v, dtype=np.float64), (n, *np.shape(v))).copy()
            for v, out in zip(fn(*arrays), outputs, strict=True)
        ]
    except Exception:  # an Op that does not vectorise: one draw at a time
        with python_backend():
            fn = pytensor.function(inputs, outputs, on_unused_input="ignore", mode="FAST_COMPILE")
        per_draw = [fn(*(arr[s] for arr in arrays)) for s in range(n)]
        return [
            np.stack([np.asarray(draw[i], dtype=np.float64) for draw in per_draw])
            for i in range(len(outputs))
        ]


def evaluate_over_draws(
    inputs: list[Any], outputs: list[Any], arrays: list[np.ndarray]
) -> np.ndarray:
    """Scalar PyTensor ``outputs`` of ``inputs`` at every draw: ``(len(outputs), n_draws)``.

    See :func:`values_over_draws`.
    """
    return np.stack(values_over_draws(inputs, outputs, arrays)).reshape(len(outputs), -1)


def log_prior_dataset(
    posterior: xr.Dataset,
    model: pm.Model,
    covariance_type: str,
) -> xr.Dataset:
    """The log prior density of every posterior draw, from the model's own prior terms.

    Each free variable's ``pymc.logp`` (no Jacobian: the density of the parameters as they
    are, which is what power-scaling the prior scales) is evaluated at every draw. The
    priors are exchangeable over components, so relabelled draws give the same values.

    Parameters
    ----------
    posterior : xarray.Dataset
        The ``posterior`` group of a fit (dims chain, draw, ...).
    model : pymc.Model
        The model of that fit (:func:`bayesgmm.build_model` with the same data and priors).
    covariance_type : str

    Returns
    -------
    xarray.Dataset
        ``weights``, ``means`` and ``covariance``: each prior's log density (summed over its
        elements), dims (chain, draw).
    """
    import pymc as pm
    import pytensor.tensor as pt

    values = _prior_inputs(posterior, model, covariance_type)
    inputs, terms = [], {"weights": [], "means": [], "covariance": []}
    for name, arr in values.items():
        rv = model[name]
        x = pt.tensor(name=f"{name}_value", dtype="float64", shape=arr.shape[1:])
        inputs.append(x)
        group = name if name in ("weights", "means") else "covariance"
        terms[group].append(pm.logp(rv, x).sum())
    outputs = [pt.add(*t) if len(t) > 1 else t[0] for t in terms.values()]
    out = evaluate_over_draws(inputs, outputs, list(values.values()))
    shape = (posterior.sizes["chain"], posterior.sizes["draw"])
    coords = {"chain": posterior["chain"].values, "draw": posterior["draw"].values}
    return xr.Dataset(
        {name: (("chain", "draw"), out[i].reshape(shape)) for i, name in enumerate(terms)},
        coords=coords,
    )


# ---------------------------------------------------------------------- methods paragraph


def _sampler_name(bgm: BayesGaussianMixture) -> str:
    tree = bgm.idata_
    stats = tree["sample_stats"].attrs if "sample_stats" in tree.children else {}
    name = str(tree.attrs.get("sampler", stats.get("inference_library", "unknown")))
    version = stats.get("inference_library_version")
    return name + (f" {version}" if version else "")


def _params(bgm: BayesGaussianMixture) -> dict[str, Any]:
    raw = bgm.idata_.attrs.get("params")
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            pass
    return bgm.get_params()


def methods_paragraph(
    bgm: BayesGaussianMixture,
    *,
    comparison: ComparisonResult | None = None,
    references: bool = True,
) -> str:
    """A methods paragraph for a paper, written from what the fit actually ran.

    It states the model and its priors (numbers from :func:`model_description`), the EM
    start, the sampler with its chains, tuning, draws and target acceptance, the
    convergence criteria and whether each was met, the relabelling method, and, when
    ``comparison`` is given, the model-comparison criteria. A failed check is written as
    failed.

    Parameters
    ----------
    bgm : BayesGaussianMixture
        A fitted estimator.
    comparison : ComparisonResult, optional
        The model comparison shown beside it, if any.
    references : bool, default True
        Append the reference list.

    Returns
    -------
    str
        The paragraph (and, with ``references``, a blank line and the references).
    """
    from .model import Priors

    tree = bgm.idata_
    params = _params(bgm)
    post = tree["posterior"]
    obs = tree["observed_data"]["obs"]
    n, d = obs.shape
    k = post.sizes["component"]
    cov_type = params.get("covariance_type", bgm.covariance_type)
    pri = params.get("priors")
    priors = Priors(**pri) if isinstance(pri, dict) else (pri or Priors())
    features = [str(f) for f in obs["feature"].values]
    cited = ["Dempster et al. 1977", "Hoffman and Gelman 2014", "Vehtari et al. 2021"]
    text = [
        f"We fitted a Bayesian Gaussian mixture with K = {k} components and {cov_type} "
        f"covariance matrices to {n} observations of {d} feature(s) ({', '.join(features)}), "
        "with the component labels marginalised out of the likelihood. "
    ]
    custom = tree.attrs.get("custom_model")
    if custom is not None:  # the user's own PyMC model: its priors are its own
        text[0] += (
            f"The priors are those of a custom PyMC model (the function {custom}, whose "
            "source is recorded with the results)."
        )
    else:
        frame = pd.DataFrame(obs.values, columns=features)
        desc = model_description(frame, k, covariance_type=cov_type, priors=priors)
        prior_text = "; ".join(f"{r.parameter} ~ {r.prior}" for r in desc.priors.itertuples())
        text[0] += f"Priors: {prior_text}. {desc.scaling}"
    if custom is None and desc.hyperparameters["covariance"]["kind"] == "lkj":
        text[0] += " The LKJ prior is that of Lewandowski et al. (2009)."
        cited.append("Lewandowski et al. 2009")
    chains, draws = post.sizes["chain"], post.sizes["draw"]
    init = params.get("init", "em")
    start = (
        "Every chain started from the maximum-likelihood solution found by the EM algorithm "
        f"(Dempster et al. 1977; best of {params.get('n_init', '?')} initialisations), "
        "jittered per chain."
        if init == "em"
        else "The chains started from the sampler's default initial values; the EM algorithm "
        "(Dempster et al. 1977) gave the relabelling pivot."
    )
    text.append(
        f"The posterior was sampled with the No-U-Turn sampler (Hoffman and Gelman 2014) as "
        f"implemented in {_sampler_name(bgm)}: {chains} chain(s) of {params.get('tune', '?')} "
        f"tuning and {draws} kept iterations each (target acceptance "
        f"{params.get('target_accept', '?')}, random seed {tree.attrs.get('random_seed')}). "
        + start
    )
    if "relabel" in tree.children:
        rel = tree["relabel"].attrs
        method = str(rel.get("method", params.get("relabel")))
        if method == "stephens":
            how = "by Stephens' (2000) Kullback-Leibler algorithm, started from the EM labelling"
            cited.append("Stephens 2000")
        else:
            how = (
                "by matching each draw to the EM solution (the pivot) with a minimum-cost "
                "assignment of its allocation probabilities (a pivotal relabelling; "
                "see Stephens 2000 on label switching)"
            )
            cited.append("Stephens 2000")
        text.append(
            f"Label switching was undone {how}; {rel.get('n_changed', '?')} draw(s) were permuted."
        )
    else:
        text.append("The draws were not relabelled (the sampler's labels were kept).")
    rep = bgm.diagnostics_
    table = rep.table
    rhat = table["rhat"].to_numpy(dtype=float)
    ess = np.minimum(table["ess_bulk"].to_numpy(float), table["ess_tail"].to_numpy(float))
    checks = []
    if chains >= 2 and np.isfinite(rhat).any():
        worst = float(np.nanmax(rhat))
        ok = worst <= rep.rhat_max
        checks.append(
            f"rank-normalised R-hat at most {rep.rhat_max:g} ({'met' if ok else 'FAILED'}: "
            f"largest {worst:.3f})"
        )
    else:
        checks.append("R-hat (not available with one chain)")
    low = float(np.nanmin(ess))
    checks.append(
        f"bulk and tail effective sample size at least {rep.ess_min:g} "
        f"({'met' if low >= rep.ess_min else 'FAILED'}: smallest {low:.0f})"
    )
    if rep.n_divergent is not None:
        checks.append(
            "no divergent transitions ("
            + ("met" if rep.n_divergent == 0 else f"FAILED: {rep.n_divergent} divergent")
            + ")"
        )
    if rep.ebfmi is not None:
        lo = float(np.min(rep.ebfmi))
        checks.append(
            f"E-BFMI at least {rep.ebfmi_min:g} in every chain "
            f"({'met' if lo >= rep.ebfmi_min else 'FAILED'}: smallest {lo:.2f})"
        )
    text.append(
        "Convergence was checked (Vehtari et al. 2021) by "
        + "; ".join(checks)
        + ". "
        + (
            "All convergence checks passed."
            if rep.passed
            else "The convergence checks FAILED, so the posterior summaries should not be "
            "trusted until that is resolved."
        )
    )
    if comparison is not None:
        crits = [c for c in comparison.best]
        names = {"loo": "PSIS-LOO", "waic": "WAIC"}
        shown = ", ".join(names.get(c, c.upper()) for c in crits)
        text.append(
            f"Models were compared by {shown}"
            + (" (Vehtari et al. 2017)" if any(c in ("loo", "waic") for c in crits) else "")
            + "."
        )
        if any(c in ("loo", "waic") for c in crits):
            cited.append("Vehtari et al. 2017")
    if "log_prior" in tree.children:
        text.append(
            "Prior sensitivity was assessed by power-scaling the prior and the likelihood "
            "(Kallioinen et al. 2023)."
        )
        cited.append("Kallioinen et al. 2023")
    text.append(f"The analysis used bayesgmm {tree.attrs.get('bayesgmm_version', __version__)}.")
    paragraph = " ".join(text)
    if not references:
        return paragraph
    refs = [REFERENCES[c] for c in dict.fromkeys(cited)]
    return paragraph + "\n\nReferences\n\n" + "\n".join(sorted(refs))


# ---------------------------------------------------------------------- reproducibility


def file_fingerprint(path: str | os.PathLike) -> dict[str, Any]:
    """Name, size in bytes and SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return {
        "name": os.path.basename(os.fspath(path)),
        "size": os.path.getsize(path),
        "sha256": h.hexdigest(),
    }


def _versions() -> dict[str, str]:
    out = {"bayesgmm": __version__, "python": platform.python_version()}
    for name in _VERSIONS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


class _Bare(str):
    """A name written without quotes in :func:`python_call`."""

    def __repr__(self) -> str:
        return str(self)


def python_call(bgm: BayesGaussianMixture) -> str:
    """The Python call of the fit (with the same data as ``X``).

    It reproduces the posterior only when the fit's ``random_state`` was an integer; see
    :func:`python_call_caveat` for the sentence that says so otherwise.
    """
    params = _params(bgm)
    params.pop("progressbar", None)
    pri = params.pop("priors", None)
    if params.get("model") is None:
        params.pop("model", None)
    else:  # a custom model function, recorded by name: the call names the function
        params["model"] = _Bare(str(params["model"]).rsplit(".", 1)[-1])
    args = ", ".join(f"{k}={v!r}" for k, v in params.items() if k != "n_components")
    prior_text = ""
    if isinstance(pri, dict):
        prior_text = "priors=Priors(" + ", ".join(f"{k}={v!r}" for k, v in pri.items()) + "), "
    return f"BayesGaussianMixture({params['n_components']}, {prior_text}{args}).fit(X)"


def python_call_caveat(bgm: BayesGaussianMixture) -> str | None:
    """Why :func:`python_call` cannot reproduce the fit, or None when it can.

    A fit with ``random_state=None`` (or a generator object, which is not recorded) drew its
    sampler seed at random: the seed it used is in ``idata_.attrs["random_seed"]``, but the
    estimator derives the sampler's seed from ``random_state``, so no ``random_state``
    given to the call recreates that seed.
    """
    rs = _params(bgm).get("random_state")
    if isinstance(rs, int | np.integer) and not isinstance(rs, bool):
        return None
    seed = bgm.idata_.attrs.get("random_seed")
    return (
        "This call cannot reproduce the fit: it ran with random_state=None (or a random "
        f"generator, which is not recorded), so its sampler seed ({seed}) was drawn at random "
        "and this call would draw another. To make a fit reproducible, refit with an integer "
        "random_state (e.g. random_state=0)."
    )


def reproducibility(
    bgm: BayesGaussianMixture | None = None,
    *,
    command: str | None = None,
    data_path: str | os.PathLike | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """What reproduces a fit: the command or call, the input file, the seed and versions.

    Parameters
    ----------
    bgm : BayesGaussianMixture, optional
        The fit; its resolved seed and a Python call are read from ``idata_``.
    command : str, optional
        The command line that ran the fit (the CLI records it).
    data_path : path-like, optional
        The input file: its name, size and SHA-256 are recorded.
    seed : int, optional
        The seed given by the user (the CLI's ``--seed``).

    Returns
    -------
    dict
        ``command``, ``python``, ``python_caveat`` (only when the call cannot reproduce the
        fit, :func:`python_call_caveat`), ``input``, ``seed``, ``resolved_seed``,
        ``versions``.
    """
    out: dict[str, Any] = {}
    if command is not None:
        out["command"] = command
    if bgm is not None:
        out["python"] = python_call(bgm)
        caveat = python_call_caveat(bgm)
        if caveat is not None:
            out["python_caveat"] = caveat
        out["resolved_seed"] = int(bgm.idata_.attrs.get("random_seed", -1))
    if data_path is not None:
        out["input"] = file_fingerprint(data_path)
    if seed is not None:
        out["seed"] = int(seed)
    out["versions"] = _versions()
    return out


# ---------------------------------------------------------------------- prior sensitivity


def _sensitivity_posterior(post: xr.Dataset, covariance_type: str) -> xr.Dataset:
    """Weights, means, standard deviations and the correlations below the diagonal."""
    out = {"weights": post["weights"], "means": post["means"]}
    if "stds" in post:
        out["stds"] = post["stds"]
    elif "sigma" in post:
        out["stds"] = post["sigma"]
    if "corr" in post and post.sizes["feature"] > 1:
        feats = [str(f) for f in post["feature"].values]
        rows, cols = np.tril_indices(len(feats), -1)
        corr = post["corr"]
        pieces = [
            corr.isel(feature=int(i), feature_bis=int(j), drop=True)
            for i, j in zip(rows, cols, strict=True)
        ]
        out["corr"] = xr.concat(pieces, dim="pair").assign_coords(
            pair=[f"{feats[i]}~{feats[j]}" for i, j in zip(rows, cols, strict=True)]
        )
    return xr.Dataset(out)


def sensitivity_tree(tree: xr.DataTree, covariance_type: str) -> xr.DataTree:
    """The groups power-scaling needs: the parameters of :func:`sensitivity_table` and the
    ``log_prior`` and ``log_likelihood`` groups of ``tree``.

    The component dimension is renamed ``k``: arviz-stats stacks its prior and likelihood
    results along a dimension called ``component``.
    """
    if "log_prior" not in tree.children or "log_likelihood" not in tree.children:
        raise ValueError(
            "Prior sensitivity needs the log_prior and log_likelihood groups of a fit; refit "
            "with this version of bayesgmm."
        )
    post = _sensitivity_posterior(tree["posterior"].to_dataset(), covariance_type)
    post = post.rename({"component": "k"}) if "component" in post.dims else post
    return xr.DataTree.from_dict(
        {
            "posterior": post,
            "log_prior": tree["log_prior"].to_dataset(),
            "log_likelihood": tree["log_likelihood"].to_dataset(),
        }
    )


def sensitivity_table(tree: xr.DataTree, covariance_type: str, *, threshold: float = 0.05):
    """:func:`arviz_stats.psense_summary` of a fit's tree (it needs a ``log_prior`` group).

    See :meth:`bayesgmm.BayesGaussianMixture.prior_sensitivity`.
    """
    import logging

    from arviz_stats import psense_summary

    small = sensitivity_tree(tree, covariance_type)
    # psense_summary logs its own warning with a link; our report says it in words.
    logger = logging.getLogger("arviz_stats.psense")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        table = psense_summary(small, threshold=threshold, round_to=4)
    finally:
        logger.setLevel(level)
    table.index = [str(i).replace("'", "") for i in table.index]
    return table


def sensitivity_words(table: pd.DataFrame) -> str:
    """The sensitivity table in plain words."""
    conflict = [i for i, d in table["diagnosis"].items() if "conflict" in str(d)]
    strong = [i for i, d in table["diagnosis"].items() if "strong prior" in str(d)]
    if not conflict and not strong:
        return (
            "No parameter is sensitive to the prior: power-scaling the prior moves none of "
            f"the {len(table)} posterior quantities by more than the threshold, so the "
            "posterior is driven by the data."
        )
    parts = []
    if conflict:
        parts.append(
            f"Potential prior-data conflict for {', '.join(conflict)}: the posterior of these "
            "moves when either the prior or the likelihood is strengthened, so the prior "
            "and the data pull in different directions."
        )
    if strong:
        parts.append(
            f"Strong prior influence (weak likelihood) for {', '.join(strong)}: the prior "
            "rather than the data determines these."
        )
    parts.append(
        "Check whether the prior is what you intended (e.g. widen it) before trusting "
        "those parameters."
    )
    return " ".join(parts)


def methods_markdown(
    bgm: BayesGaussianMixture,
    *,
    comparison: ComparisonResult | None = None,
    reproducibility: dict[str, Any] | None = None,
) -> str:
    """``methods.md``: the methods paragraph, its references and the reproducibility block."""
    text = methods_paragraph(bgm, comparison=comparison, references=True)
    paragraph, _, refs = text.partition("\n\nReferences\n\n")
    out = ["# Methods", "", paragraph, ""]
    if refs:
        out += ["## References", ""] + [f"- {r}" for r in refs.splitlines()] + [""]
    if reproducibility:
        out += ["## Reproducibility", ""]
        if "command" in reproducibility:
            out += ["Command line:", "", "```", reproducibility["command"], "```", ""]
        if "python" in reproducibility:
            out += [
                "Python call (with the same data as `X`):",
                "",
                "```python",
                reproducibility["python"],
                "```",
                "",
            ]
            if "python_caveat" in reproducibility:
                out += [f"**{reproducibility['python_caveat']}**", ""]
        inp = reproducibility.get("input")
        if inp:
            out += [f"- input file: {inp['name']} ({inp['size']} bytes, SHA-256 `{inp['sha256']}`)"]
        if "seed" in reproducibility:
            out.append(f"- seed: {reproducibility['seed']}")
        if "resolved_seed" in reproducibility:
            out.append(f"- resolved seed (sampler): {reproducibility['resolved_seed']}")
        versions = reproducibility.get("versions", {})
        if versions:
            out.append("- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
        out.append("")
    return "\n".join(out)
