"""NUTS sampling of the Bayesian Gaussian mixture, started from given (EM) parameters.

:func:`sample_posterior` returns an :class:`xarray.DataTree` with the groups ``posterior``,
``sample_stats``, ``log_likelihood`` (pointwise, dims ``chain, draw, obs_id``) and
``observed_data``, whatever sampler ran. Samplers:

``"nutpie"`` (what ``"auto"`` picks)
    nutpie's NUTS (Rust, one thread per chain) calling the compiled log-posterior and analytic
    gradient of :mod:`bayesgmm._logdensity` through a C function pointer: no Python in the
    sampling loop and no PyTensor compilation. That log-density is the PyMC model of
    :func:`bayesgmm.build_model` written out by hand (tested equal, value and gradient,
    to 1e-10). Measured on the project's 2-core machines (``bench/nuts_speed.py``) it was the
    fastest path both cold and warm; numbers are in ``docs/dev/nuts-backends.md``. It needs
    nutpie's private API, confined to :mod:`bayesgmm._nutpie_private`; when that is missing
    or changed, or nutpie is not the tested series, the fit falls back to ``"pymc"`` with one
    warning in the ``"bayesgmm"`` log (root attribute ``sampler_fallback`` says why).
``"pymc"``
    PyMC's own NUTS on the PyMC graph (C backend, chains in worker processes with one BLAS
    thread each). Slower; a reference and the fallback when nutpie is not installed.
``"numpyro"``, ``"blackjax"``
    ``pymc.sample(nuts_sampler=...)`` on the PyMC graph, when JAX and that package are
    installed (they are not dependencies of bayesgmm).

Initial values are per chain, on the constrained scale (``weights``, ``means`` and ``chol``
or ``sigma``), typically the EM solution jittered per chain, so that every chain starts in
the same labelling.

**Units.** Every sampler runs on standardised data, ``Z = (X - loc) / scale`` with ``loc`` and
``scale`` the per-feature mean and standard deviation that :func:`bayesgmm.build_model`
scales its priors by (``standardization`` below; one pooled scale for ``"spherical"``).
The priors are stated relative to those same quantities, so the model of ``Z`` is the model
of ``X`` after a change of units, and its posterior maps back exactly: the draws are returned
in the data's units (means ``loc + scale * mean``, covariances ``S Sigma S``), and the
pointwise log-likelihood is evaluated on ``X`` itself, so WAIC and LOO are those of the data
(the density of ``X`` is that of ``Z`` divided by ``prod(scale)``). NUTS therefore meets
parameters of order one whatever the units: data in nanometres or in light years samples the
same way. Only the samplers' own statistics (``logp``, energies, step sizes) refer to ``Z``.
Data whose spread float64 cannot represent is refused before sampling (a ``ValueError`` that
says how to rescale).

**A user's own model** (``BayesGaussianMixture(model=...)``) goes through
:func:`sample_custom_posterior` instead: the fast path above is the stock model's density
only, so a custom model is sampled as its function built it, in the data's units (no
standardisation), with nutpie or ``pymc.sample``, and returned in the same groups and
layouts. For nutpie, the model's joint log-density and gradient on the unconstrained space
(``model.logp()`` and ``pytensor.grad``; the likelihood Op, when the model uses it, calls the
compiled kernel) are compiled by PyTensor's Numba backend, which caches them on disk across
processes. That one compiled function is what nutpie runs: wrapped in a C callback that needs
no GIL (:mod:`bayesgmm._compiled_callback`, chains in parallel), or, when PyTensor's, Numba's
or nutpie's internals are not the ones that was written for, through nutpie's public
Python-function interface (``nutpie.compiled_pyfunc.from_pyfunc``: the same draws, chains one
at a time). nutpie stores only the unconstrained point; the named variables (deterministics
included) are computed afterwards for all draws at once, so a custom model costs one compiled
function. ``nutpie.compile_pymc_model`` compiles the model again in its own way, for 20-35 s
even on warm caches (``bench/nuts_speed.py``, rows ``custom`` and ``custom-cpm``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import xarray as xr

from . import _draw_kernels, _logdensity
from ._compiled_callback import CallbackUnavailable
from ._numerics import covariance_deterministics
from ._nutpie_private import NutpiePrivateAPIError
from .methods import python_backend

__all__ = [
    "SAMPLERS",
    "posterior_dataset",
    "sample_custom_posterior",
    "sample_posterior",
    "standardization",
]

_log = logging.getLogger("bayesgmm")

SAMPLERS = ("auto", "nutpie", "pymc", "numpyro", "blackjax")
SamplerName = Literal["auto", "nutpie", "pymc", "numpyro", "blackjax"]
_BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: Draws per chunk of the pointwise log-likelihood are bounded by this many outputs.
_LOGLIK_CHUNK_ELEMENTS = 8 * 1024 * 1024


def available_samplers() -> list[str]:
    """Samplers whose packages are importable here, in order of preference."""
    from importlib.util import find_spec

    out = []
    if find_spec("nutpie") is not None:
        out.append("nutpie")
    out.append("pymc")
    if find_spec("jax") is not None:
        out += [name for name in ("numpyro", "blackjax") if find_spec(name) is not None]
    return out


def resolve_sampler(sampler: str) -> str:
    """The sampler that ``sampler`` names (``"auto"``: the measured-fastest available one)."""
    if sampler not in SAMPLERS:
        raise ValueError(
            f"sampler={sampler!r} is not supported; choose one of {', '.join(map(repr, SAMPLERS))}."
        )
    available = available_samplers()
    if sampler == "auto":
        return available[0]
    if sampler not in available:
        raise ValueError(
            f"sampler={sampler!r} needs a package that is not installed here "
            f"(available: {', '.join(available)}); install it or use sampler='auto'."
        )
    return sampler


def _fast_path_applies(model: Any, priors: Any) -> bool:
    """Whether the compiled log-posterior of :mod:`bayesgmm._logdensity` is the model to sample.

    It is written out for the stock :func:`bayesgmm.build_model` with a
    :class:`bayesgmm.model.Priors` object, and tested equal to that model's graph
    (``tests/test_fastpath_proof.py``) and nothing else: ``model`` must be ``None`` (the
    stock model) or ``build_model`` itself, and ``priors`` exactly a ``Priors``. Anything
    else is sampled on its own PyMC graph (the public path).
    """
    from .model import Priors, build_model

    return (model is None or model is build_model) and type(priors) is Priors


@dataclass(frozen=True)
class _SamplingJob:
    """Everything a sampler backend needs, validated by :func:`sample_posterior`."""

    X: np.ndarray
    k: int
    covariance_type: str
    priors: Any
    feature_names: list[str]
    initvals: Any
    init_jitter: Any
    draws: int
    tune: int
    chains: int
    sampler: str
    target_accept: float
    random_seed: Any
    progressbar: bool
    cores: int


def sample_posterior(
    X: np.ndarray,
    n_components: int,
    *,
    covariance_type: str = "full",
    priors: Any = None,
    feature_names: Sequence[str] | None = None,
    initvals: Mapping[str, np.ndarray] | Sequence[Mapping[str, np.ndarray]] | None = None,
    init_jitter: float | np.ndarray | None = None,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    sampler: SamplerName = "auto",
    target_accept: float = 0.8,
    random_seed: int | None = None,
    progressbar: bool = True,
    cores: int | None = None,
) -> xr.DataTree:
    """Draw NUTS samples from the posterior of a Gaussian mixture.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Validated, finite observations.
    n_components : int
    covariance_type : {"full", "tied", "diag", "spherical"}, default "full"
    priors : bayesgmm.model.Priors, optional
        Prior hyper-parameters (data-scaled defaults when omitted).
    feature_names : sequence of str, optional
        ``feature`` coordinate labels (``x0, x1, ...`` by default).
    initvals : dict or sequence of dict, optional
        Constrained starting values: ``weights`` (K,), ``means`` (K, D) and ``chol`` (lower
        Cholesky factor of the covariance: (K, D, D) for ``"full"``, (D, D) for ``"tied"``)
        or ``sigma`` (standard deviations: (K, D) for ``"diag"``, (K,) for
        ``"spherical"``). One dict: every chain starts there, plus ``init_jitter``. A
        sequence: one dict per chain, used as given. Without them each sampler uses its own
        default start (the prior's central point, jittered).
    init_jitter : float or ndarray of shape (n_unconstrained,), optional
        Standard deviation of the Gaussian jitter added to a single ``initvals`` start on the
        unconstrained scale of the standardised problem (layout of
        :mod:`bayesgmm._logdensity`; means in units of ``scale`` from
        ``standardization``, so the jitter does not depend on the data's units). Each
        chain's jitter is drawn from that chain's own seed, so results do not depend on
        thread timing.
    draws, tune : int, default 1000
        Kept draws and warm-up iterations per chain.
    chains : int, default 4
    sampler : {"auto", "nutpie", "pymc", "numpyro", "blackjax"}, default "auto"
        See the module docstring.
    target_accept : float, default 0.8
        Target acceptance rate of the step-size adaptation, in (0, 1).
    random_seed : int, optional
    progressbar : bool, default True
        Show the sampler's progress bar.
    cores : int, optional
        Chains run at once (default: the number of CPUs, at most ``chains``).

    Returns
    -------
    xarray.DataTree
        ``posterior`` with ``weights`` (chain, draw, component), ``means`` (..., component,
        feature), ``covariances`` and ``precisions_cholesky`` (the layouts of
        :func:`bayesgmm.build_model`), and ``chol``/``stds``/``corr`` (``"full"``,
        ``"tied"``) or ``sigma``; ``sample_stats`` as the sampler reports them;
        ``log_likelihood`` with ``obs`` (chain, draw, obs_id); ``observed_data``; all in the
        data's units (module Notes). Root attributes: ``sampler``, the standardisation
        ``sampling_loc`` and ``sampling_scale`` and, in seconds, ``compile_time``,
        ``sampling_time``, ``log_likelihood_time``, ``total_time``.

    Raises
    ------
    ValueError
        If a feature's standard deviation lies outside ``[1e-140, 1e140]`` (rescale ``X``).
    """
    from .model import Priors

    X = np.ascontiguousarray(X, dtype=np.float64)
    n, d = X.shape
    k = int(n_components)
    if draws < 1 or tune < 0 or chains < 1:
        raise ValueError(
            f"draws={draws}, tune={tune}, chains={chains}: draws and chains must be positive "
            "and tune non-negative."
        )
    if not 0.0 < target_accept < 1.0:
        raise ValueError(f"target_accept={target_accept} must lie strictly between 0 and 1.")
    if initvals is not None and not isinstance(initvals, Mapping) and len(initvals) != chains:
        raise ValueError(
            f"Got {len(initvals)} initvals dicts for {chains} chains; pass one per chain "
            "or a single dict."
        )
    priors = Priors() if priors is None else priors
    names = [str(f) for f in feature_names] if feature_names is not None else None
    names = names or [f"x{j}" for j in range(d)]
    loc, scale = standardization(X, covariance_type, feature_names=names)
    Z = np.ascontiguousarray((X - loc) / scale)
    chosen = resolve_sampler(sampler)
    if chosen == "nutpie" and not _fast_path_applies(None, priors):
        _log.info("The priors are not a bayesgmm Priors object: sampling the PyMC graph.")
        chosen = "pymc"
    cores = max(1, min(chains, cores or os.cpu_count() or 1))
    _log.info("Sampling %d chains x (%d tune + %d draws) with %s.", chains, tune, draws, chosen)
    t0 = time.perf_counter()
    run = _sample_nutpie if chosen == "nutpie" else _sample_pymc
    fallback = None
    with _single_threaded_blas():
        job = _SamplingJob(
            X=Z,
            k=k,
            covariance_type=covariance_type,
            priors=priors,
            feature_names=names,
            initvals=_standardize_initvals(initvals, covariance_type, loc, scale),
            init_jitter=init_jitter,
            draws=draws,
            tune=tune,
            chains=chains,
            sampler=chosen,
            target_accept=target_accept,
            random_seed=random_seed,
            progressbar=progressbar,
            cores=cores,
        )
        try:
            draws_, stats, compile_time, sampling_time = run(job)
        except NutpiePrivateAPIError as exc:
            # nutpie's private API moved (bayesgmm._nutpie_private): take the public path
            fallback = f"nutpie's private API is unavailable ({exc}); used PyMC's NUTS instead"
            _log.warning(
                "%s. The result is the same posterior, sampled more slowly; install a nutpie "
                "version this bayesgmm supports (see pyproject.toml) for the fast path.",
                fallback,
            )
            chosen = "pymc"
            draws_, stats, compile_time, sampling_time = _sample_pymc(
                dataclasses.replace(job, sampler="pymc")
            )
    t1 = time.perf_counter()
    draws_ = _draws_in_data_units(draws_, covariance_type, loc, scale)
    posterior = posterior_dataset(draws_, covariance_type, names)
    loglik = pointwise_log_likelihood(X, posterior, covariance_type)
    t2 = time.perf_counter()
    observed = xr.Dataset(
        {"obs": (("obs_id", "feature"), X)},
        coords={"obs_id": np.arange(n), "feature": names},
    )
    tree = xr.DataTree.from_dict(
        {
            "posterior": posterior,
            "sample_stats": stats,
            "log_likelihood": xr.Dataset({"obs": loglik}),
            "observed_data": observed,
        }
    )
    if fallback is not None:
        tree.attrs["sampler_fallback"] = fallback
    tree.attrs.update(
        sampler=chosen,
        sampling_loc=loc,
        sampling_scale=scale,
        compile_time=float(compile_time),
        sampling_time=float(sampling_time),
        log_likelihood_time=float(t2 - t1),
        total_time=float(t2 - t0),
    )
    _log.info(
        "%s: set-up/compile %.1f s, sampling %.1f s, log-likelihood %.1f s.",
        chosen,
        compile_time,
        sampling_time,
        t2 - t1,
    )
    return tree


# --------------------------------------------------------------------------- units


def standardization(
    X: np.ndarray, covariance_type: str, *, feature_names: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale of the standardised data on which the samplers run.

    ``loc`` and ``scale`` are the per-feature mean and standard deviation (``ddof=0``) that
    :func:`bayesgmm.build_model` scales its priors by, with 1 for a constant feature as
    there; for ``"spherical"``, whose prior uses the mean of those standard deviations, every
    feature gets that one pooled scale (rescaling features separately would change a
    spherical model). The priors of the standardised data are then exactly the priors of
    ``X`` after the change of units.

    Returns
    -------
    loc, scale : ndarray of shape (n_features,)

    Raises
    ------
    ValueError
        If a non-constant feature's standard deviation lies outside ``[1e-140, 1e140]``:
        covariances in those units do not fit in float64. Checked before any sampling.
    """
    from ._validation import check_scale

    X = np.asarray(X, dtype=np.float64)
    centre, _ = check_scale(X, feature_names=feature_names)  # refuses what float64 cannot hold
    with np.errstate(over="ignore", invalid="ignore"):
        # build_model's own statistics; only a constant feature near float64's largest
        # magnitude can overflow them, and then the overflow-safe centre stands in
        loc = X.mean(axis=0)
        scale = X.std(axis=0)
    unsafe = ~(np.isfinite(loc) & np.isfinite(scale))
    loc = np.where(unsafe, centre, loc)
    scale = np.where((scale > 0) & ~unsafe, scale, 1.0)
    if covariance_type == "spherical":
        scale = np.full(X.shape[1], float(scale.mean()))
    return loc, scale


def _standardize_initvals(initvals, covariance_type: str, loc: np.ndarray, scale: np.ndarray):
    """Constrained starting values (data units) in the units of ``(X - loc) / scale``."""
    if initvals is None:
        return None

    def one(iv: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = dict(iv)
        out["means"] = (np.asarray(iv["means"], dtype=np.float64) - loc) / scale
        if covariance_type in ("full", "tied"):
            out["chol"] = np.asarray(iv["chol"], dtype=np.float64) / scale[:, None]
        elif covariance_type == "diag":
            out["sigma"] = np.asarray(iv["sigma"], dtype=np.float64) / scale
        else:
            out["sigma"] = np.asarray(iv["sigma"], dtype=np.float64) / scale[0]
        return out

    if isinstance(initvals, Mapping):
        return one(initvals)
    return [one(iv) for iv in initvals]


def _draws_in_data_units(
    draws: Mapping[str, np.ndarray], covariance_type: str, loc: np.ndarray, scale: np.ndarray
) -> dict[str, np.ndarray]:
    """Constrained draws of the standardised problem mapped back to the data's units."""
    out = dict(draws)
    out["means"] = np.asarray(draws["means"], dtype=np.float64) * scale + loc
    if covariance_type in ("full", "tied"):
        # Sigma_X = S Sigma_Z S, so its lower Cholesky factor is S L_Z (rows scaled).
        out["chol"] = np.asarray(draws["chol"], dtype=np.float64) * scale[:, None]
    elif covariance_type == "diag":
        out["sigma"] = np.asarray(draws["sigma"], dtype=np.float64) * scale
    else:
        out["sigma"] = np.asarray(draws["sigma"], dtype=np.float64) * scale[0]
    return out


# --------------------------------------------------------------------------- output


def posterior_dataset(
    draws: Mapping[str, np.ndarray], covariance_type: str, feature_names: Sequence[str]
) -> xr.Dataset:
    """Posterior group from constrained draws ``weights``, ``means`` and ``chol``/``sigma``.

    Adds the deterministics of :func:`bayesgmm.build_model`: ``covariances``,
    ``precisions_cholesky`` and, for ``"full"``/``"tied"``, ``stds`` and ``corr``.
    Every array has leading (chain, draw) dimensions.
    """
    w = np.asarray(draws["weights"], dtype=np.float64)
    mu = np.asarray(draws["means"], dtype=np.float64)
    n_chains, n_draws, k = w.shape
    d = mu.shape[-1]
    comp, feat = ("component",), ("feature",)
    mat = ("feature", "feature_bis")
    out: dict[str, tuple] = {
        "weights": (("chain", "draw", *comp), w),
        "means": (("chain", "draw", *comp, *feat), mu),
    }
    if covariance_type in ("full", "tied"):
        param = np.tril(np.asarray(draws["chol"], dtype=np.float64))
        lead = comp if covariance_type == "full" else ()
        dims = {"stds": (*lead, *feat)} | {
            name: (*lead, *mat) for name in ("chol", "corr", "covariances", "precisions_cholesky")
        }
    else:
        param = np.asarray(draws["sigma"], dtype=np.float64)
        sdims = (*comp, *feat) if covariance_type == "diag" else comp
        dims = {"sigma": sdims, "covariances": (*comp, *mat), "precisions_cholesky": sdims}
    derived = covariance_deterministics(param, covariance_type, n_features=d)
    for name, value in derived.items():
        out[name] = (("chain", "draw", *dims[name]), value)
    coords = {
        "chain": np.arange(n_chains),
        "draw": np.arange(n_draws),
        "component": np.arange(k),
        "feature": list(feature_names),
        "feature_bis": list(feature_names),
    }
    return xr.Dataset(out, coords=coords)


def pointwise_log_likelihood(
    X: np.ndarray, posterior: xr.Dataset, covariance_type: str
) -> xr.DataArray:
    """``log p(x_i | theta_s)`` for every draw and observation, dims (chain, draw, obs_id).

    Evaluated by :func:`bayesgmm._draw_kernels.pointwise_log_likelihood` (compiled, parallel over
    draws; tested against :func:`bayesgmm._numerics.log_mixture_density`), in chunks of draws.
    """
    w = posterior["weights"].values
    mu = posterior["means"].values
    pc = posterior["precisions_cholesky"].values
    n_chains, n_draws, k = w.shape
    flat = n_chains * n_draws
    w, mu = w.reshape(flat, k), mu.reshape(flat, *mu.shape[2:])
    pc = pc.reshape(flat, *pc.shape[2:])
    out = np.empty((flat, X.shape[0]))
    chunk = max(64, _LOGLIK_CHUNK_ELEMENTS // max(1, X.shape[0]))
    for s in range(0, flat, chunk):
        sl = slice(s, s + chunk)
        out[sl] = _draw_kernels.pointwise_log_likelihood(X, w[sl], mu[sl], pc[sl], covariance_type)
    return xr.DataArray(
        out.reshape(n_chains, n_draws, X.shape[0]),
        dims=("chain", "draw", "obs_id"),
        coords={
            "chain": posterior["chain"].values,
            "draw": posterior["draw"].values,
            "obs_id": np.arange(X.shape[0]),
        },
    )


# --------------------------------------------------------------------------- helpers


@contextmanager
def _single_threaded_blas():
    """One BLAS/OpenMP thread per process while sampling: the chains use the cores.

    Environment variables reach worker processes started by PyMC; threadpoolctl limits the
    BLAS libraries already loaded here (and inherited by forked workers).
    """
    saved = {name: os.environ.get(name) for name in _BLAS_ENV}
    for name in _BLAS_ENV:
        os.environ[name] = "1"
    try:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _unconstrained_inits(initvals, covariance_type: str) -> list[np.ndarray] | None:
    if initvals is None:
        return None
    cov_key = "chol" if covariance_type in ("full", "tied") else "sigma"
    many = [initvals] if isinstance(initvals, Mapping) else list(initvals)
    return [
        _logdensity.to_unconstrained(iv["weights"], iv["means"], iv[cov_key], covariance_type)
        for iv in many
    ]


# --------------------------------------------------------------------------- nutpie


def _nutpie_model(
    spec: _logdensity.LogDensitySpec, feature_names, init_points, seed, init_jitter=None
):
    """A nutpie model whose log-density and expansion are our compiled C callbacks.

    Built by :mod:`bayesgmm._nutpie_private` (nutpie's private API), which raises
    ``NutpiePrivateAPIError`` when that API is missing or changed.
    """
    import pandas as pd

    from ._nutpie_private import make_model

    logp_c, expand_c = _logdensity.c_callbacks()
    k, d = spec.n_components, spec.X.shape[1]
    cov = spec.covariance_type
    n_dim = spec.n_dim
    names = ["weights", "means"]
    shapes: list[tuple[int, ...]] = [(k,), (k, d)]
    dims = {"weights": ("component",), "means": ("component", "feature")}
    if cov in ("full", "tied"):
        names.append("chol")
        shapes.append((k, d, d) if cov == "full" else (d, d))
        dims["chol"] = (("component",) if cov == "full" else ()) + ("feature", "feature_bis")
    else:
        names.append("sigma")
        shapes.append((k, d) if cov == "diag" else (k,))
        dims["sigma"] = ("component", "feature") if cov == "diag" else ("component",)
    coords = {
        "component": pd.Index(np.arange(k)),
        "feature": pd.Index(list(feature_names)),
        "feature_bis": pd.Index(list(feature_names)),
    }
    rng = np.random.default_rng(seed)
    lock = threading.Lock()
    handed_out = [0]
    asked: dict[int, int] = {}
    jitter = 0.0 if init_jitter is None else np.asarray(init_jitter, dtype=np.float64)

    def initial_point(chain_seed=None) -> np.ndarray:
        with lock:
            i = handed_out[0]
            handed_out[0] += 1
            attempt = asked.get(chain_seed, 0)
            asked[chain_seed] = attempt + 1
        if init_points is not None and len(init_points) == 1:
            # One start for all chains; the jitter comes from the seed nutpie gives this chain,
            # so the start does not depend on the order in which the threads ask.
            chain_rng = np.random.default_rng([int(chain_seed or 0), attempt])
            extra = 0.1 * attempt  # a retry after a failed start moves further away
            return init_points[0] + (jitter + extra) * chain_rng.standard_normal(n_dim)
        if init_points is not None:
            base = init_points[i % len(init_points)]
            return base if i < len(init_points) else base + rng.normal(scale=0.1, size=n_dim)
        return rng.uniform(-1.0, 1.0, size=n_dim) * 0.5 + _prior_centre(spec)

    return make_model(
        logp_address=logp_c.address,
        expand_address=expand_c.address,
        user_data=spec.user_data,
        n_dim=n_dim,
        n_expanded=_logdensity.n_expanded(k, d, cov),
        names=names,
        shapes=shapes,
        dims=dims,
        coords=coords,
        initial_point=initial_point,
        probe_point=_prior_centre(spec),
    )


def _prior_centre(spec: _logdensity.LogDensitySpec) -> np.ndarray:
    """Unconstrained point at equal weights, prior means and prior-scale covariances."""
    k, d = spec.n_components, spec.X.shape[1]
    w = np.full(k, 1.0 / k)
    mu = np.broadcast_to(spec.mean_loc, (k, d))
    if spec.covariance_type == "full":
        c = np.broadcast_to(np.diag(spec.sd_scale), (k, d, d))
    elif spec.covariance_type == "tied":
        c = np.diag(spec.sd_scale)
    elif spec.covariance_type == "diag":
        c = np.broadcast_to(spec.sd_scale, (k, d))
    else:
        c = np.full(k, spec.sd_scale[0])
    return _logdensity.to_unconstrained(w, mu, c, spec.covariance_type)


def _sample_nutpie(job: _SamplingJob):
    import nutpie

    t0 = time.perf_counter()
    spec = _logdensity.LogDensitySpec.from_data(job.X, job.k, job.covariance_type, job.priors)
    seed = int(np.random.SeedSequence(job.random_seed).generate_state(1)[0])
    inits = _unconstrained_inits(job.initvals, job.covariance_type)
    model = _nutpie_model(spec, job.feature_names, inits, seed, job.init_jitter)
    t1 = time.perf_counter()
    idata = nutpie.sample(
        model,
        draws=job.draws,
        tune=job.tune,
        chains=job.chains,
        cores=job.cores,
        seed=seed,
        save_warmup=False,
        progress_bar=job.progressbar,
        target_accept=job.target_accept,
    )
    t2 = time.perf_counter()
    post = idata["posterior"]
    draws_ = {name: post[name].values for name in post.data_vars}
    stats = idata["sample_stats"].to_dataset()
    keep = [v for v in stats.data_vars if stats[v].dims[:2] == ("chain", "draw")]
    stats = stats[keep].drop_vars([v for v in keep if stats[v].dtype == object])
    return draws_, stats, t1 - t0, t2 - t1


# --------------------------------------------------------------------------- PyMC graph


def _pymc_initvals(initvals, covariance_type: str, k: int, d: int, chains, jitter, seed):
    if initvals is None:
        return None
    if isinstance(initvals, Mapping):
        # one start, jittered per chain on the unconstrained scale
        theta = _logdensity.to_unconstrained(
            initvals["weights"],
            initvals["means"],
            initvals["chol" if covariance_type in ("full", "tied") else "sigma"],
            covariance_type,
        )
        rng = np.random.default_rng(seed)
        scale = 0.0 if jitter is None else np.asarray(jitter)
        flat = [
            _logdensity.expand(
                theta + scale * rng.standard_normal(theta.size), k, d, covariance_type
            )
            for _ in range(chains)
        ]
        initvals = [_logdensity.from_unconstrained(f, k, d, covariance_type) for f in flat]
    rows, cols = np.tril_indices(d)
    out = []
    for iv in initvals:
        point = {"weights": np.asarray(iv["weights"]), "means": np.asarray(iv["means"])}
        if covariance_type == "full":
            for j in range(k):
                point[f"chol_cov_{j}"] = np.asarray(iv["chol"])[j][rows, cols]
        elif covariance_type == "tied":
            point["chol_cov"] = np.asarray(iv["chol"])[rows, cols]
        else:
            point["sigma"] = np.asarray(iv["sigma"])
        out.append(point)
    return out


def _sample_pymc(job: _SamplingJob):
    import pandas as pd
    import pymc as pm

    from .model import build_model

    t0 = time.perf_counter()
    cov = job.covariance_type
    # The likelihood Op has no JAX implementation: numpyro and blackjax get the reference
    # formulation (plain PyTensor operations, the same density).
    model = build_model(
        pd.DataFrame(job.X, columns=job.feature_names),
        job.k,
        covariance_type=cov,
        priors=job.priors,
        likelihood="op" if job.sampler == "pymc" else "reference",
    )
    inits = _pymc_initvals(
        job.initvals, cov, job.k, job.X.shape[1], job.chains, job.init_jitter, job.random_seed
    )
    kwargs: dict[str, Any] = {}
    if job.sampler == "pymc":
        # The C backend compiles in seconds; PyTensor 3's default Numba backend takes minutes
        # cold, and a plain pm.sample() would hand the model to nutpie's Numba path.
        kwargs.update(
            cores=job.cores, nuts_sampler="pymc", target_accept=job.target_accept, backend="c"
        )
        kwargs["init"] = "adapt_diag" if inits is not None else "jitter+adapt_diag"
    else:
        kwargs.update(
            nuts_sampler=job.sampler,
            nuts={"chain_method": "vectorized", "target_accept": job.target_accept},
        )
    idata = pm.sample(
        draws=job.draws,
        tune=job.tune,
        chains=job.chains,
        model=model,
        initvals=inits,
        random_seed=job.random_seed,
        progressbar=job.progressbar,
        quiet=not job.progressbar,
        compute_convergence_checks=False,
        **kwargs,
    )
    total = time.perf_counter() - t0
    post = idata["posterior"]
    sampling = float(post.attrs.get("sampling_time", total))
    cov_key = "chol" if cov in ("full", "tied") else "sigma"
    draws_ = {
        "weights": post["weights"].values,
        "means": post["means"].values,
        cov_key: post[cov_key].values,
    }
    stats = idata["sample_stats"].to_dataset()
    return draws_, stats, max(total - sampling, 0.0), sampling


# --------------------------------------------------------------------------- custom models

#: Relative jitter of the EM start's weights and covariance factor (log scale), per chain.
_CUSTOM_LOG_JITTER = 0.05


def sample_custom_posterior(
    custom: Any,
    X: np.ndarray,
    n_components: int,
    *,
    covariance_type: str,
    feature_names: Sequence[str],
    start: Mapping[str, np.ndarray] | None = None,
    mean_jitter: np.ndarray | None = None,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    sampler: SamplerName = "auto",
    target_accept: float = 0.8,
    random_seed: int | None = None,
    progressbar: bool = True,
    cores: int | None = None,
) -> xr.DataTree:
    """Draw NUTS samples from a user's own PyMC model of the mixture (checked beforehand).

    The model is sampled as given, in the data's units (no standardisation), with public
    APIs only: ``"nutpie"`` (what ``"auto"`` picks when nutpie is installed) compiles the
    model's joint log-density and gradient with PyTensor (Numba backend, cached on disk),
    hands them to ``nutpie.compiled_pyfunc.from_pyfunc`` and samples with ``nutpie.sample``
    (``nutpie.compile_pymc_model`` when that interface is missing);
    ``"pymc"`` uses :func:`pymc.sample` (C backend); ``"numpyro"``/``"blackjax"`` go through
    ``pymc.sample(nuts_sampler=...)``. The stock fast path (:mod:`bayesgmm._logdensity`) is
    never used: it is the stock model's density, not this one.

    Parameters
    ----------
    custom : bayesgmm._custom.CustomModel
        A model that passed :func:`bayesgmm._custom.check_model`.
    X : ndarray of shape (n_samples, n_features)
        The observed data (the pointwise log-likelihood is evaluated on it).
    n_components : int
    covariance_type : {"full", "tied", "diag", "spherical"}
    feature_names : sequence of str
    start : dict, optional
        Constrained start in data units: ``weights``, ``means`` and ``chol`` or ``sigma``
        (the EM solution). The model's free ``weights``, ``means``, ``chol_cov*``/``sigma``
        start there, each chain jittered (means by ``mean_jitter``, weights and covariance
        factor by 5 % on the log scale, drawn from the chain's seed); the other free variables
        (hyper-priors) and stock names that are deterministic here start at the sampler's
        default. Without it, every variable does.
    mean_jitter : ndarray of shape (n_components, n_features), optional
        Standard deviation of the per-chain jitter of the start's means, in data units.
    draws, tune, chains, sampler, target_accept, random_seed, progressbar, cores
        As in :func:`sample_posterior`.

    Returns
    -------
    xarray.DataTree
        The groups of :func:`sample_posterior` (posterior built from the draws of
        ``weights``, ``means`` and ``chol``/``sigma`` with the same deterministics, plus the
        model's other free variables; ``sample_stats``; ``log_likelihood`` ``obs`` by the
        compiled kernel; ``observed_data``). Root attributes: ``sampler``, ``custom_model``
        (the function's name) and the timings; ``sampler_fallback`` when ``"auto"`` fell
        back to ``"pymc"`` because nutpie failed on the model (one warning in the
        ``"bayesgmm"`` log says why).
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    n = X.shape[0]
    k = int(n_components)
    if draws < 1 or tune < 0 or chains < 1:
        raise ValueError(
            f"draws={draws}, tune={tune}, chains={chains}: draws and chains must be positive "
            "and tune non-negative."
        )
    if not 0.0 < target_accept < 1.0:
        raise ValueError(f"target_accept={target_accept} must lie strictly between 0 and 1.")
    names = [str(f) for f in feature_names]
    chosen = resolve_sampler(sampler)
    cores = max(1, min(chains, cores or os.cpu_count() or 1))
    cov_key = "chol" if covariance_type in ("full", "tied") else "sigma"
    keep = ["weights", "means", cov_key, *custom.extra]
    _log.info(
        "Sampling the custom model %s: %d chains x (%d tune + %d draws) with %s.",
        custom.name,
        chains,
        tune,
        draws,
        chosen,
    )
    t0 = time.perf_counter()
    job = _CustomJob(
        custom=custom,
        start=start,
        mean_jitter=mean_jitter,
        covariance_type=covariance_type,
        k=k,
        keep=keep,
        draws=draws,
        tune=tune,
        chains=chains,
        cores=cores,
        target_accept=target_accept,
        random_seed=random_seed,
        progressbar=progressbar,
        sampler=chosen,
    )
    run = _sample_custom_nutpie if chosen == "nutpie" else _sample_custom_pymc
    fallback = None
    with _single_threaded_blas():
        try:
            post, stats, compile_time, sampling_time = run(job)
        except Exception as exc:
            if not (chosen == "nutpie" and sampler == "auto"):
                raise
            # "auto" promised a posterior, not nutpie: a model nutpie cannot compile (an Op
            # without a Numba implementation, say) goes to PyMC's NUTS; a broken model
            # fails there too, with PyMC's own error
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            fallback = (
                f"nutpie could not compile or sample the custom model ({type(exc).__name__}: "
                f"{first}); used PyMC's NUTS instead"
            )
            _log.warning("%s.", fallback)
            chosen = "pymc"
            job = dataclasses.replace(job, sampler="pymc")
            post, stats, compile_time, sampling_time = _sample_custom_pymc(job)
    t1 = time.perf_counter()
    draws_ = {
        name: np.asarray(post[name].transpose("chain", "draw", ...).values) for name in keep[:3]
    }
    posterior = posterior_dataset(draws_, covariance_type, names)
    for name in custom.extra:
        posterior[name] = _extra_variable(post[name], posterior)
    loglik = pointwise_log_likelihood(X, posterior, covariance_type)
    t2 = time.perf_counter()
    observed = xr.Dataset(
        {"obs": (("obs_id", "feature"), X)},
        coords={"obs_id": np.arange(n), "feature": names},
    )
    tree = xr.DataTree.from_dict(
        {
            "posterior": posterior,
            "sample_stats": stats,
            "log_likelihood": xr.Dataset({"obs": loglik}),
            "observed_data": observed,
        }
    )
    if fallback is not None:
        tree.attrs["sampler_fallback"] = fallback
    tree.attrs.update(
        sampler=chosen,
        custom_model=custom.name,
        compile_time=float(compile_time),
        sampling_time=float(sampling_time),
        log_likelihood_time=float(t2 - t1),
        total_time=float(t2 - t0),
    )
    _log.info(
        "%s (custom model): compile %.1f s, sampling %.1f s, log-likelihood %.1f s.",
        chosen,
        compile_time,
        sampling_time,
        t2 - t1,
    )
    return tree


@dataclass(frozen=True)
class _CustomJob:
    """Everything a custom-model sampler backend needs (see sample_custom_posterior)."""

    custom: Any
    start: Mapping[str, np.ndarray] | None
    mean_jitter: np.ndarray | None
    covariance_type: str
    k: int
    keep: list[str]
    draws: int
    tune: int
    chains: int
    cores: int
    target_accept: float
    random_seed: Any
    progressbar: bool
    sampler: str


def _extra_variable(da: xr.DataArray, posterior: xr.Dataset) -> xr.DataArray:
    """A hyper-parameter's draws with our chain/draw/component/feature coordinates."""
    da = da.transpose("chain", "draw", ...)
    ours = {"chain", "draw", "component", "feature", "feature_bis"}
    coords = {dim: posterior[dim].values for dim in da.dims if dim in ours}
    coords.update({dim: da[dim].values for dim in da.dims if dim not in ours and dim in da.coords})
    return xr.DataArray(np.asarray(da.values), dims=da.dims, coords=coords)


def _custom_starts_numeric(start, mean_jitter, covariance_type: str, k: int, free, chains, seed):
    """Per-chain constrained starts of the stock free variables (the ``pymc`` path)."""
    from ._custom import stock_values

    if start is None:
        return None
    out = []
    for c in range(chains):
        rng = np.random.default_rng([int(seed or 0), c])
        w = np.log(np.asarray(start["weights"], dtype=np.float64))
        w = np.exp(w + _CUSTOM_LOG_JITTER * rng.standard_normal(w.shape))
        mu = np.asarray(start["means"], dtype=np.float64)
        if mean_jitter is not None:
            mu = mu + np.asarray(mean_jitter) * rng.standard_normal(mu.shape)
        jittered = {"weights": w / w.sum(), "means": mu}
        key = "chol" if covariance_type in ("full", "tied") else "sigma"
        fac = np.asarray(start[key], dtype=np.float64)
        lead = fac.shape[:1] if covariance_type == "full" else ()
        scale = np.exp(_CUSTOM_LOG_JITTER * rng.standard_normal(lead))
        jittered[key] = fac * (scale[:, None, None] if lead else scale)
        if covariance_type in ("diag", "spherical"):
            jittered[key] = fac * np.exp(_CUSTOM_LOG_JITTER * rng.standard_normal(fac.shape))
        values = stock_values(jittered, covariance_type, k)
        out.append({name: v for name, v in values.items() if name in free})
    return out


def _custom_starts_symbolic(start, mean_jitter, covariance_type: str, k: int, free):
    """The stock free variables' start as PyTensor expressions with a per-chain jitter.

    nutpie's public ``compile_pymc_model(initial_points=...)`` takes one start for every
    chain; PyMC reseeds the random generators in it with the seed nutpie gives each chain,
    so these expressions give each chain its own jittered copy of the EM start.
    """
    import pytensor.tensor as pt

    from ._custom import stock_values

    if start is None:
        return None

    def normal(shape):
        rng = pt.random.shared_rng(seed=None)
        _, draw = pt.random.normal(0.0, 1.0, size=shape, rng=rng, return_next_rng=True)
        return draw

    base = stock_values(start, covariance_type, k)
    out: dict[str, Any] = {}
    if "weights" in free:
        logw = np.log(base["weights"]) + _CUSTOM_LOG_JITTER * normal((k,))
        out["weights"] = pt.special.softmax(logw, axis=-1)
    if "means" in free:
        jit = 0.0 if mean_jitter is None else np.asarray(mean_jitter, dtype=np.float64)
        out["means"] = base["means"] + jit * normal(base["means"].shape)
    for name, value in base.items():
        if name in ("weights", "means") or name not in free:
            continue
        # a positive factor: the packed Cholesky factor (or sigma) scaled by exp(jitter)
        size = () if name.startswith("chol_cov") else value.shape
        out[name] = value * pt.exp(_CUSTOM_LOG_JITTER * normal(size))
    return out


def _custom_stats(stats: xr.Dataset) -> xr.Dataset:
    keep = [v for v in stats.data_vars if stats[v].dims[:2] == ("chain", "draw")]
    return stats[keep].drop_vars([v for v in keep if stats[v].dtype == object])


#: How the nutpie path hands a custom model to nutpie: ``"callback"`` (its log-density and
#: gradient compiled by PyTensor, the compiled function wrapped in a C callback that nutpie
#: calls without the GIL, :mod:`bayesgmm._compiled_callback`, through
#: :mod:`bayesgmm._nutpie_private`), ``"pyfunc"`` (the same compiled function given to nutpie's
#: public ``nutpie.compiled_pyfunc.from_pyfunc``: same draws, chains one at a time) or
#: ``"compile_pymc_model"`` (nutpie compiles the model itself; slower to compile, measured in
#: ``bench/nuts_speed.py``). Each is the fallback of the one before when that is unavailable.
_CUSTOM_NUTPIE_INTERFACE = "callback"
#: PyTensor mode of the custom model's log-density with gradient on the nutpie path: PyTensor's
#: Numba backend, whose compiled functions PyTensor caches on disk across processes.
_CUSTOM_MODE = "NUMBA"


@dataclass(frozen=True)
class _CustomFunctions:
    """A custom model's joint log-density with gradient, and its expansion over draws.

    ``logp_dlogp(x) -> (logp, grad)`` takes the flat unconstrained vector ``x``: the model's
    free variables' transformed values, in the order of ``model.free_RVs``, each raveled
    (``names``/``shapes`` describe the blocks); ``function`` is the compiled PyTensor
    function behind it (``x`` and then ``constants``). :meth:`expand_draws` computes the
    variables in ``expanded_names`` (free, transformed back, or deterministic) from many such
    vectors at once.
    """

    logp_dlogp: Any
    function: Any
    constants: list[np.ndarray]
    n_dim: int
    names: list[str]
    shapes: list[tuple[int, ...]]
    expanded_names: list[str]
    point: Any  # the flat vector variable the expanded graph is written in
    expanded: list[Any]  # the expanded variables' graphs in ``point``

    def expand_draws(self, xs: np.ndarray) -> dict[str, np.ndarray]:
        """The expanded variables at the unconstrained vectors ``xs`` (one per row).

        One vectorised evaluation (PyTensor's Python backend, nothing to compile for the
        sampler): the sampler only stores the vectors, so a custom model costs one compiled
        function, its log-density with gradient.
        """
        from .methods import values_over_draws

        xs = np.ascontiguousarray(np.reshape(xs, (-1, self.n_dim)), dtype=np.float64)
        out = values_over_draws([self.point], self.expanded, [xs])
        return dict(zip(self.expanded_names, out, strict=True))


def _compile_custom_functions(model: Any, keep: Sequence[str], mode: str = _CUSTOM_MODE):
    """Compile a PyMC model's log-density with gradient with PyTensor; its expansion's graph.

    Public PyMC and PyTensor only: ``model.logp()`` (the joint log-density of the transformed
    free variables, Jacobians included), its gradient by ``pytensor.grad``, the value
    variables replaced by slices of one flat vector, compiled by ``pymc.pytensorf.compile``.
    The expansion (the variables in ``keep``: free, transformed back, or deterministic, as
    functions of the same vector) is not compiled for the sampler; see
    :meth:`_CustomFunctions.expand_draws`.
    """
    import pymc as pm
    import pytensor.tensor as pt
    from pymc.initial_point import make_initial_point_fn
    from pytensor.graph import clone_replace

    free = list(model.free_RVs)
    value_vars = [model.rvs_to_values[rv] for rv in free]
    # shapes of the transformed values (any point of the model has them)
    with python_backend():
        point = make_initial_point_fn(model=model, return_transformed=True, jitter_rvs=set())(0)
    names = [v.name for v in value_vars]
    shapes = [tuple(np.shape(point[name])) for name in names]
    sizes = [int(np.prod(shape)) for shape in shapes]
    n_dim = int(sum(sizes))
    x = pt.vector("unconstrained_point", dtype="float64", shape=(n_dim,))
    replace = {}
    offset = 0
    for var, shape, size in zip(value_vars, shapes, sizes, strict=True):
        replace[var] = x[offset : offset + size].reshape(shape).astype(var.dtype)
        offset += size
    logp = model.logp()
    grads = pt.grad(logp, value_vars)
    grad = pt.concatenate([pt.as_tensor(g).ravel().astype("float64") for g in grads])
    logp_x, grad_x = clone_replace([logp, grad], replace)
    # Array constants (the observed data, data-scaled prior parameters) become inputs, so that
    # PyTensor's on-disk cache, keyed on the graph, serves another data set of the same shape
    lifted = _lift_array_constants([logp_x, grad_x])
    logp_x, grad_x = clone_replace([logp_x, grad_x], {c: v for c, v, _ in lifted})
    by_name = {v.name: v for v in model.unobserved_value_vars}
    expanded = [by_name[name] for name in keep if name in by_name]
    expanded_x = clone_replace(expanded, replace)
    with model:
        inner = pm.pytensorf.compile([x, *(v for _, v, _ in lifted)], [logp_x, grad_x], mode=mode)
    values = [value for _, _, value in lifted]

    def logp_dlogp(point_x):
        return inner(point_x, *values)

    # One evaluation: PyTensor's Numba backend compiles (or loads from its cache) on the
    # first call, which belongs to the compile time.
    x0 = np.concatenate([np.ravel(point[name]) for name in names]).astype(np.float64)
    logp_dlogp(x0)
    return _CustomFunctions(
        logp_dlogp=logp_dlogp,
        function=inner,
        constants=values,
        n_dim=n_dim,
        names=names,
        shapes=shapes,
        expanded_names=[v.name for v in expanded],
        point=x,
        expanded=expanded_x,
    )


def _lift_array_constants(outputs) -> list[tuple[Any, Any, np.ndarray]]:
    """``(constant, new input, value)`` for every non-scalar tensor constant of ``outputs``."""
    import pytensor.tensor as pt
    from pytensor.graph.traversal import ancestors
    from pytensor.tensor.variable import TensorConstant

    out = []
    for var in ancestors(outputs):
        if isinstance(var, TensorConstant) and var.type.ndim > 0:
            # a writeable C-contiguous copy: the compiled signature is that of such arrays,
            # which the C callback (bayesgmm._compiled_callback) rebuilds from a buffer
            value = np.array(var.data, copy=True, order="C")
            out.append((var, pt.tensor(dtype=var.type.dtype, shape=value.shape), value))
    return out


#: Name of the one variable nutpie stores for a custom model: the unconstrained vector
#: (the named variables are computed from it after sampling, :meth:`_CustomFunctions.expand_draws`).
_RAW = "unconstrained_point"


def _custom_initial_point_fn(job: _CustomJob, overrides, jitter, names: Sequence[str]):
    """``start(seed) -> flat unconstrained vector``, where ``compile_pymc_model`` would start.

    PyMC's initial point of the model with the EM start's ``overrides`` and jitter, seeded by
    the seed nutpie gives the chain; thread-safe (nutpie asks from its chain threads).
    """
    from pymc.initial_point import make_initial_point_fn

    model = job.custom.model
    if jitter is None:  # nutpie's default with the support-point strategy: jitter them all
        jitter = set(model.free_RVs)
    with python_backend():
        start_fn = make_initial_point_fn(
            model=model, overrides=overrides, jitter_rvs=jitter, return_transformed=True
        )
    lock = threading.Lock()

    def initial_point(seed=None) -> np.ndarray:
        with lock:
            point = start_fn(seed)
        return np.concatenate([np.ravel(point[name]) for name in names]).astype(np.float64)

    return initial_point


def _custom_nutpie_model(job: _CustomJob, overrides, jitter, fns: _CustomFunctions):
    """nutpie's Python-function model (``nutpie.compiled_pyfunc.from_pyfunc``) of ``fns``.

    The chains share the compiled function behind one lock: a PyTensor function keeps its
    input and output storage, so one object must not run in two threads at once, and its
    Numba code holds the GIL anyway, so the lock serialises nothing that would run in
    parallel (a copy per chain would instead re-run PyTensor's graph rewrites, seconds each).
    nutpie stores the unconstrained vector (``_RAW``); the named variables follow after
    sampling.
    """
    from nutpie.compiled_pyfunc import from_pyfunc

    initial_point = _custom_initial_point_fn(job, overrides, jitter, fns.names)
    lock = threading.Lock()
    logp_dlogp = fns.logp_dlogp
    fns.function.trust_input = True  # x: always a float64 vector of length n_dim

    def logp(x, **_shared):
        with lock:
            value, grad = logp_dlogp(x)
            return float(value), np.array(grad, dtype=np.float64)

    def expand(x, **_shared):
        return {_RAW: np.array(x, dtype=np.float64)}

    def make_logp():
        return logp

    def make_expand(_seed1, _seed2, _chain):
        return expand

    return from_pyfunc(
        ndim=fns.n_dim,
        make_logp_fn=make_logp,
        make_expand_fn=make_expand,
        expanded_dtypes=[np.dtype("float64")],
        expanded_shapes=[(fns.n_dim,)],
        expanded_names=[_RAW],
        make_initial_point_fn=initial_point,
    )


def _custom_callback_model(job: _CustomJob, overrides, jitter, fns: _CustomFunctions):
    """A nutpie model calling ``fns``'s compiled function as a C callback (no GIL).

    Returns the model and the :class:`~bayesgmm._compiled_callback.LogDensityCallback`,
    which the caller keeps until sampling ends (it owns the code nutpie calls). Raises
    ``CallbackUnavailable`` or ``NutpiePrivateAPIError`` (set-up only) when PyTensor's,
    Numba's or nutpie's internals are not the ones this was written for.
    """
    import pandas as pd

    from ._compiled_callback import log_density_callback
    from ._nutpie_private import make_model

    callback = log_density_callback(fns.function, fns.constants, fns.n_dim)
    initial_point = _custom_initial_point_fn(job, overrides, jitter, fns.names)
    dim = f"{_RAW}_dim_0"
    model = make_model(
        logp_address=callback.logp.address,
        expand_address=callback.expand.address,
        user_data=callback.user_data,
        n_dim=fns.n_dim,
        n_expanded=fns.n_dim,
        names=[_RAW],
        shapes=[(fns.n_dim,)],
        dims={_RAW: (dim,)},
        coords={dim: pd.Index(np.arange(fns.n_dim))},
        initial_point=initial_point,
        probe_point=initial_point(0),
    )
    return model, callback


def _expanded_posterior(model: Any, fns: _CustomFunctions, raw: xr.DataArray) -> xr.Dataset:
    """The named variables of every draw from nutpie's draws of the unconstrained vector."""
    import pandas as pd

    raw = raw.transpose("chain", "draw", ...)
    n_chains, n_draws = raw.shape[:2]
    values = fns.expand_draws(raw.values.reshape(n_chains * n_draws, fns.n_dim))
    data = {}
    coords: dict[str, Any] = {"chain": raw["chain"].values, "draw": raw["draw"].values}
    for name, value in values.items():
        shape = value.shape[1:]
        dims = model.named_vars_to_dims.get(name)
        if dims is None or len(dims) != len(shape):
            dims = tuple(f"{name}_dim_{i}" for i in range(len(shape)))
        for dim in dims:
            if dim in model.coords and model.coords[dim] is not None:
                coords[dim] = pd.Index(np.asarray(model.coords[dim]))
        data[name] = (("chain", "draw", *dims), value.reshape(n_chains, n_draws, *shape))
    return xr.Dataset(data, coords=coords)


def _sample_custom_nutpie(job: _CustomJob):
    import nutpie

    custom = job.custom
    free = set(custom.free_stock)
    seed = int(np.random.SeedSequence(job.random_seed).generate_state(1)[0])
    t0 = time.perf_counter()
    overrides = _custom_starts_symbolic(
        job.start, job.mean_jitter, job.covariance_type, job.k, free
    )
    # PyMC's default U(-1, 1) jitter (unconstrained scale) for the variables the EM start
    # does not set (all of them without a start); those it sets are jittered above.
    jitter = None if overrides is None else {custom.model[name] for name in custom.extra}
    interface = _CUSTOM_NUTPIE_INTERFACE
    fns = compiled = callback = None
    if interface == "callback":
        fns = _compile_custom_functions(custom.model, job.keep)
        try:
            # the callback's machine code must outlive sampling: ``callback`` holds it
            compiled, callback = _custom_callback_model(job, overrides, jitter, fns)
        except (CallbackUnavailable, NutpiePrivateAPIError) as exc:
            _log.info(
                "The custom model's compiled log-density cannot be given to nutpie as a C "
                "callback (%s); using nutpie's Python-function interface (same draws, chains "
                "one at a time).",
                exc,
            )
            interface = "pyfunc"
    if interface == "pyfunc":
        try:
            from nutpie.compiled_pyfunc import from_pyfunc  # noqa: F401
        except ImportError as exc:
            # nutpie without its Python-function interface: its own PyMC compiler (slower
            # to compile; the same model and the same starts)
            _log.info("nutpie.compiled_pyfunc is unavailable (%s); using compile_pymc_model.", exc)
            interface = "compile_pymc_model"
    if interface == "compile_pymc_model":
        fns = None  # nutpie expands the draws itself
        compiled = nutpie.compile_pymc_model(
            custom.model,
            backend="numba",
            initial_points=overrides,
            jitter_rvs=jitter,
            var_names=job.keep,
        )
    elif interface == "pyfunc":
        if fns is None:
            fns = _compile_custom_functions(custom.model, job.keep)
        compiled = _custom_nutpie_model(job, overrides, jitter, fns)
    t1 = time.perf_counter()
    idata = nutpie.sample(
        compiled,
        draws=job.draws,
        tune=job.tune,
        chains=job.chains,
        cores=job.cores,
        seed=seed,
        save_warmup=False,
        progress_bar=job.progressbar,
        target_accept=job.target_accept,
    )
    t2 = time.perf_counter()
    del callback  # sampling is over
    post = idata["posterior"].to_dataset()
    if fns is not None:
        post = _expanded_posterior(custom.model, fns, post[_RAW])
    return post, _custom_stats(idata["sample_stats"].to_dataset()), t1 - t0, t2 - t1


def _sample_custom_pymc(job: _CustomJob):
    import pymc as pm

    t0 = time.perf_counter()
    inits = _custom_starts_numeric(
        job.start,
        job.mean_jitter,
        job.covariance_type,
        job.k,
        set(job.custom.free_stock),
        job.chains,
        job.random_seed,
    )
    kwargs: dict[str, Any] = {}
    if job.sampler == "pymc":
        # the C backend, as for the stock model (PyTensor's default Numba backend compiles
        # for minutes cold, and a plain pm.sample() would hand the model to nutpie)
        kwargs.update(
            cores=job.cores, nuts_sampler="pymc", target_accept=job.target_accept, backend="c"
        )
        kwargs["init"] = "adapt_diag" if inits is not None else "jitter+adapt_diag"
    else:
        kwargs.update(
            nuts_sampler=job.sampler,
            nuts={"chain_method": "vectorized", "target_accept": job.target_accept},
        )
    idata = pm.sample(
        draws=job.draws,
        tune=job.tune,
        chains=job.chains,
        model=job.custom.model,
        initvals=inits,
        random_seed=job.random_seed,
        progressbar=job.progressbar,
        quiet=not job.progressbar,
        compute_convergence_checks=False,
        var_names=job.keep,
        **kwargs,
    )
    total = time.perf_counter() - t0
    post = idata["posterior"].to_dataset()
    sampling = float(post.attrs.get("sampling_time", total))
    stats = _custom_stats(idata["sample_stats"].to_dataset())
    return post, stats, max(total - sampling, 0.0), sampling
