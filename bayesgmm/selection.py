"""Model comparison: BIC, AIC and ICL (EM) beside WAIC and PSIS-LOO (posterior) in one table.

Every criterion has a direction, and the table says which in its column names:

=====================  =====================================  ==================
criterion              definition                             better when
=====================  =====================================  ==================
BIC                    ``-2 log L + p log n``                 lower
AIC                    ``-2 log L + 2 p``                     lower
ICL                    ``BIC - 2 sum_i log max_k r_ik``       lower
elpd_waic, elpd_loo    expected log pointwise predictive      higher
                       density (log scale)
waic/loo deviance      ``-2 elpd`` (the scale of BIC/AIC)     lower
=====================  =====================================  ==================

The choice under WAIC and PSIS-LOO (:attr:`ComparisonResult.best`) is the simplest model
(fewest parameters, then fewest components) whose elpd lies within one standard error of the
highest elpd, the standard error being that of the paired pointwise difference: an extra
component whose predictive gain is below its own noise is not chosen. The highest-elpd model
itself is :attr:`ComparisonResult.best_elpd`; the rank columns and ``loo_compare`` order by
elpd alone.

BIC, AIC and ICL follow scikit-learn's sign (mclust reports ``2 log L - p log n`` and
maximises it; the ranking is the same). ``log L`` is the maximised log-likelihood of the EM
fit and ``p`` the number of free parameters (:func:`bayesgmm._numerics.n_parameters`).

A posterior that fails its convergence checks (:func:`bayesgmm.diagnose`: R-hat, ESS,
divergences, E-BFMI) is sampled once more with stronger settings (:func:`retry_options`):
near misses always, farther misses nearest first within a time budget (``retry_budget``: by
default those retries add at most 30 % to the grid's time); if it still fails, its elpd
cannot be trusted (overfitted mixtures have multimodal posteriors that NUTS cannot mix
between), so it is never ranked or chosen by WAIC or PSIS-LOO, and the verdict names it with
the reason
(``ComparisonResult.excluded_posteriors``). The posterior distribution of the number of
occupied components of each cell (:func:`bayesgmm.diagnostics.occupied_components`) tells
what such a posterior behaves like.
Pareto ``k`` is judged against arviz-stats' sample-size dependent threshold
(:func:`pareto_k_threshold`).

EM inside the comparison runs to a tight convergence (``EM_TOTAL_TOL``), so BIC, AIC and
ICL are those of the converged optimum. EM fits whose components collapsed
(``EMGaussianMixture.degenerate_``) have a spuriously high likelihood. mclust reports them
as missing; here their values stay in the table, marked, and they are excluded from every
EM criterion's ranking and choice. Fits that raise are kept as
rows with missing values and the reason.

The posterior side uses :func:`waic` (written here, with ArviZ 0.x's p_waic diagnostic) and
:func:`loo`, a thin wrapper over :func:`arviz_stats.loo`; :func:`arviz_stats.compare` adds
elpd differences, their standard errors and stacking weights.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import math
import numbers
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr
from arviz_stats.utils import ELPDData
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from numpy.typing import ArrayLike
from scipy.special import logsumexp

from ._mclust import MCLUST_MODELS, bayes_covariance_type, mclust_name
from ._numerics import COVARIANCE_TYPES, n_parameters
from ._validation import (
    check_n_components,
    check_positive,
    check_random_state,
    check_scale,
    check_X,
)
from .diagnostics import EBFMI_MIN, OCCUPIED_MIN_SHARE, occupied_components
from .em import EMGaussianMixture
from .evidence import KPosterior
from .exceptions import ConvergenceWarning, DegenerateMixtureWarning

__all__ = [
    "CRITERIA",
    "HEADER",
    "ComparisonResult",
    "WAICResult",
    "compare_models",
    "loo",
    "loo_summary",
    "max_pareto_k",
    "n_high_pareto_k",
    "pareto_k_threshold",
    "retry_options",
    "waic",
]

logger = logging.getLogger("bayesgmm")

#: ``p_waic_i`` above this flags an observation for which WAIC may fail (ArviZ 0.x's rule).
P_WAIC_THRESHOLD = 0.4
#: Pareto ``k`` above this makes the PSIS-LOO estimate of an observation unreliable, at most;
#: with ``S`` posterior draws the threshold is ``min(1 - 1 / log10(S), 0.7)`` (arviz-stats'
#: ``ELPDData.good_k``; Vehtari et al. 2024), 0.7 from ``S`` = 2155 draws on.
PARETO_K_THRESHOLD = 0.7
METHODS = ("em", "bayes")
#: The convergence thresholds of :func:`bayesgmm.diagnose` (its defaults), named in the verdict.
RHAT_MAX = 1.01
ESS_MIN = 400
#: EM inside the comparison stops when the total log-likelihood changes by less than this
#: (``tol = EM_TOTAL_TOL / n_samples`` per sample), so that BIC, AIC and ICL are within 0.01 of
#: their values at the converged optimum (acidity, K = 2: log L -184.645, not -184.772 as
#: EMGaussianMixture's default tol=1e-3 gives).
EM_TOTAL_TOL = 1e-5
EM_MAX_ITER = 5000
_MAX_LISTED = 5  # models named in one sentence of the verdict
_PANELS_PER_ROW = 4  # ComparisonResult.plot's panels (covariance types) per row

# ------------------------------------------------------------------ table columns
COVARIANCE_TYPE = "covariance_type"
N_COMPONENTS = "n_components"
MODEL = "model"
N_PARAMETERS = "n_parameters"
EM_STATUS = "em_status"
DEGENERATE = "degenerate"
EM_CONVERGED = "em_converged"
EM_NOTE = "em_note"
LOG_LIKELIHOOD = "log_likelihood (higher better)"
BIC = "bic (lower better)"
AIC = "aic (lower better)"
ICL = "icl (lower better)"
BAYES_STATUS = "bayes_status"
BAYES_NOTE = "bayes_note"
CONVERGED = "converged"
RETRIED = "retried"
MAX_RHAT = "max_rhat"
MIN_ESS_BULK = "min_ess_bulk"
N_DIVERGENT = "n_divergent"
OCCUPIED = "occupied_components"
P_ALL_OCCUPIED = "p_all_occupied"
ELPD_WAIC = "elpd_waic (higher better)"
P_WAIC = "p_waic"
SE_WAIC = "se_waic"
N_HIGH_P_WAIC = f"n_p_waic_gt_{P_WAIC_THRESHOLD}"
WAIC_DEVIANCE = "waic_deviance (lower better)"
ELPD_LOO = "elpd_loo (higher better)"
P_LOO = "p_loo"
SE_LOO = "se_loo"
MAX_PARETO_K = "max_pareto_k (lower better)"
PARETO_K_GOOD = "pareto_k_threshold"
N_HIGH_PARETO_K = "n_high_pareto_k"
LOO_DEVIANCE = "loo_deviance (lower better)"
LOG_EVIDENCE = "log_evidence (higher better)"
EVIDENCE_DEVIANCE = "evidence_deviance (lower better)"
SE_LOG_EVIDENCE = "se_log_evidence"
P_K_GIVEN_Y = "p_k_given_y"
EVIDENCE_NOTE = "evidence_note"

#: criterion -> (table column, "lower" or "higher" is better, method that computes it)
CRITERIA: dict[str, tuple[str, str, str]] = {
    "bic": (BIC, "lower", "em"),
    "aic": (AIC, "lower", "em"),
    "icl": (ICL, "lower", "em"),
    "waic": (ELPD_WAIC, "higher", "bayes"),
    "loo": (ELPD_LOO, "higher", "bayes"),
}
_LABELS = {"bic": "BIC", "aic": "AIC", "icl": "ICL", "waic": "WAIC", "loo": "PSIS-LOO"}


def _rank_column(criterion: str) -> str:
    return f"{criterion}_rank (1 = best)"


#: Every table column with its meaning and direction.
HEADER: dict[str, str] = {
    COVARIANCE_TYPE: "covariance structure: full, tied, diag or spherical",
    N_COMPONENTS: "number of mixture components K",
    MODEL: "model name '<covariance_type>-K<n_components>', as in loo_compare's index",
    N_PARAMETERS: "free parameters p: K-1 weights, K*D means and the covariance parameters",
    EM_STATUS: "'ok', 'degenerate' (a component collapsed; excluded from EM criteria), "
    "'failed' (the fit raised; see em_note) or 'not run'",
    DEGENERATE: "True when the EM fit has a collapsed component (spuriously high likelihood)",
    EM_CONVERGED: "whether the kept EM run met tol before max_iter",
    EM_NOTE: "why an EM fit is degenerate, unconverged or missing",
    LOG_LIKELIHOOD: "maximised log-likelihood log L of the EM fit (higher is better, but "
    "always grows with K)",
    BIC: "Bayesian information criterion -2 log L + p log n (lower is better)",
    AIC: "Akaike information criterion -2 log L + 2 p (lower is better)",
    ICL: "integrated completed likelihood, BIC + 2 * classification entropy (lower is better)",
    BAYES_STATUS: "'ok', 'failed' (see bayes_note) or 'not run'",
    BAYES_NOTE: "why a posterior is missing, or its WAIC/LOO diagnostics",
    CONVERGED: "whether the posterior passed its convergence checks (R-hat, bulk and tail ESS, "
    "divergences, E-BFMI; after the retry when there was one); a posterior that did not is "
    "excluded from the WAIC/LOO choice. Missing: not checked (a custom bayes_fit) or not run",
    RETRIED: "whether the posterior was sampled a second time with stronger settings after "
    "failing its checks",
    MAX_RHAT: "largest rank-normalised split R-hat of the component parameters (at most 1.01 "
    "to pass)",
    MIN_ESS_BULK: "smallest bulk effective sample size of the component parameters (at least "
    "400 to pass)",
    N_DIVERGENT: "divergent NUTS transitions after tuning (none to pass)",
    OCCUPIED: "posterior mode of the number of occupied components: those receiving at least "
    "1 % of the points (each point allocated to its most probable component in each draw)",
    P_ALL_OCCUPIED: "posterior probability that all K components are occupied; low values "
    "mean the posterior behaves like a mixture with fewer components",
    ELPD_WAIC: "WAIC's estimate of the expected log pointwise predictive density (higher is "
    "better)",
    P_WAIC: "WAIC's effective number of parameters, sum of posterior variances of log p(x_i)",
    SE_WAIC: "standard error of elpd_waic",
    N_HIGH_P_WAIC: f"observations with p_waic_i > {P_WAIC_THRESHOLD} (WAIC may be unreliable)",
    WAIC_DEVIANCE: "-2 elpd_waic, on the scale of BIC and AIC (lower is better)",
    ELPD_LOO: "PSIS-LOO estimate of the expected log pointwise predictive density (higher is "
    "better)",
    P_LOO: "PSIS-LOO effective number of parameters",
    SE_LOO: "standard error of elpd_loo",
    MAX_PARETO_K: "largest Pareto k of the PSIS weights (lower is better; above "
    "pareto_k_threshold the estimate for that observation is unreliable)",
    PARETO_K_GOOD: "arviz-stats' sample-size dependent Pareto k threshold min(1 - 1/log10(S), "
    "0.7) for S posterior draws",
    N_HIGH_PARETO_K: "observations with Pareto k above pareto_k_threshold",
    LOO_DEVIANCE: "-2 elpd_loo, on the scale of BIC and AIC (lower is better)",
    LOG_EVIDENCE: "log marginal likelihood log p(y | K) of the posterior's model, by bridge "
    "sampling (bayesgmm.evidence.log_marginal_likelihood; higher is better); missing when not "
    "estimable (see evidence_note)",
    EVIDENCE_DEVIANCE: "-2 log p(y | K), on the scale of BIC, which approximates it (lower is "
    "better); the difference to BIC shows how good that approximation is",
    SE_LOG_EVIDENCE: "Monte Carlo standard error of log_evidence (nats)",
    P_K_GIVEN_Y: "posterior probability p(K | y) of this K among the K of the same covariance "
    "type whose evidence is estimable, under the stated prior on K (uniform by default); "
    "missing for the K left out",
    EVIDENCE_NOTE: "why the evidence of this K is not estimable or was not computed",
}
for _criterion in CRITERIA:
    HEADER[_rank_column(_criterion)] = (
        f"rank under {_LABELS[_criterion]} among eligible fits; 1 is best, missing when the "
        "fit is excluded (degenerate, failed, not converged or not run)"
    )

_EM_COLUMNS = (LOG_LIKELIHOOD, BIC, AIC, ICL)
_BAYES_COLUMNS = (
    MAX_RHAT,
    MIN_ESS_BULK,
    N_DIVERGENT,
    OCCUPIED,
    P_ALL_OCCUPIED,
    ELPD_WAIC,
    P_WAIC,
    SE_WAIC,
    N_HIGH_P_WAIC,
    WAIC_DEVIANCE,
    ELPD_LOO,
    P_LOO,
    SE_LOO,
    MAX_PARETO_K,
    PARETO_K_GOOD,
    N_HIGH_PARETO_K,
    LOO_DEVIANCE,
)
_EVIDENCE_COLUMNS = (EVIDENCE_DEVIANCE, SE_LOG_EVIDENCE, LOG_EVIDENCE, P_K_GIVEN_Y)


def _model_name(covariance_type: str, n_components: int) -> str:
    return f"{covariance_type}-K{n_components}"


# ========================================================================== WAIC
@dataclass(frozen=True)
class WAICResult:
    """The widely applicable information criterion of one posterior.

    Attributes
    ----------
    elpd_waic : float
        ``sum_i (lppd_i - p_waic_i)``; higher is better.
    p_waic : float
        Effective number of parameters, ``sum_i p_waic_i``.
    se : float
        Standard error of ``elpd_waic``, ``sqrt(n * var(elpd_waic_i))`` (``ddof=1``, as
        :func:`arviz_stats.loo` does for ``elpd_loo``; 0 for one observation).
    waic_deviance : float
        ``-2 * elpd_waic``, on the scale of BIC and AIC; lower is better.
    lppd : float
        Log pointwise predictive density ``sum_i lppd_i``.
    elpd_waic_i, p_waic_i, lppd_i : ndarray of shape (n_data_points,)
        Pointwise values, observation dimensions flattened in C order.
    n_high_p_waic : int
        Observations with ``p_waic_i > 0.4``, where WAIC may fail (Vehtari, Gelman & Gabry
        2017); prefer PSIS-LOO then.
    n_samples : int
        Posterior draws used (chains times draws).
    n_data_points : int
    """

    elpd_waic: float
    p_waic: float
    se: float
    waic_deviance: float
    lppd: float
    elpd_waic_i: np.ndarray
    p_waic_i: np.ndarray
    lppd_i: np.ndarray
    n_high_p_waic: int
    n_samples: int
    n_data_points: int

    @property
    def warning(self) -> bool:
        """Whether any observation has ``p_waic_i > 0.4``."""
        return self.n_high_p_waic > 0


def _log_lik_matrix(
    log_lik: Any, obs_dims: Iterable[str] | None, var_name: str | None
) -> np.ndarray:
    """Pointwise log-likelihood as an ``(n_samples, n_data_points)`` float array."""
    if isinstance(log_lik, xr.DataTree):
        if "log_likelihood" not in log_lik.children:
            raise ValueError(
                "The DataTree has no 'log_likelihood' group; compute the pointwise "
                "log-likelihood (e.g. pm.compute_log_likelihood) or pass the array directly."
            )
        log_lik = log_lik["log_likelihood"].to_dataset()
    if isinstance(log_lik, xr.Dataset):
        names = list(log_lik.data_vars)
        if var_name is None:
            if len(names) != 1:
                raise ValueError(
                    f"The log-likelihood group holds {len(names)} variables {names}; choose "
                    "one with var_name."
                )
            var_name = names[0]
        elif var_name not in names:
            raise ValueError(
                f"var_name={var_name!r} is not in the log-likelihood group; it holds {names}."
            )
        log_lik = log_lik[var_name]
    elif var_name is not None:
        raise ValueError("var_name applies to a DataTree or Dataset input only.")
    if isinstance(log_lik, xr.DataArray):
        if obs_dims is None:
            obs = [d for d in log_lik.dims if d not in ("chain", "draw", "sample")]
        else:
            obs = [obs_dims] if isinstance(obs_dims, str) else list(obs_dims)
            missing = [d for d in obs if d not in log_lik.dims]
            if missing:
                raise ValueError(
                    f"obs_dims {missing} are not dimensions of the log-likelihood "
                    f"{tuple(log_lik.dims)}."
                )
        sample = [d for d in log_lik.dims if d not in obs]
        if not sample:
            raise ValueError(
                f"The log-likelihood {tuple(log_lik.dims)} has no sample dimension; expected "
                "('chain', 'draw', *obs_dims)."
            )
        arr = log_lik.transpose(*sample, *obs).to_numpy()
        n_samples = math.prod(log_lik.sizes[d] for d in sample)
        arr = arr.reshape(n_samples, -1)
    else:
        if obs_dims is not None:
            raise ValueError(
                "obs_dims applies to labelled input (DataTree or DataArray); an array must be "
                "(chain, draw, n_obs) or (n_draws, n_obs)."
            )
        try:
            arr = np.asarray(log_lik, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                "log_lik must be a DataTree, a DataArray or a numeric array of shape "
                f"(chain, draw, n_obs) or (n_draws, n_obs); got {type(log_lik).__name__}."
            ) from exc
        if arr.ndim == 3:
            arr = arr.reshape(arr.shape[0] * arr.shape[1], arr.shape[2])
        elif arr.ndim != 2:
            raise ValueError(
                f"log_lik has shape {arr.shape}; expected (chain, draw, n_obs) or (n_draws, n_obs)."
            )
    arr = np.asarray(arr, dtype=np.float64)
    if arr.shape[0] < 2 or arr.shape[1] < 1:
        raise ValueError(
            f"WAIC needs at least 2 posterior draws and 1 observation; got {arr.shape[0]} "
            f"draw(s) of {arr.shape[1]} observation(s)."
        )
    if not np.isfinite(arr).all():
        raise ValueError(
            "The log-likelihood contains NaN or inf; every draw must give every observation a "
            "finite log-density. Check the model or drop the offending draws."
        )
    return arr


def waic(
    log_lik: xr.DataTree | xr.DataArray | ArrayLike,
    *,
    obs_dims: Iterable[str] | None = None,
    var_name: str | None = None,
) -> WAICResult:
    """Widely applicable information criterion from a pointwise log-likelihood.

    With ``S`` posterior draws and ``ll_si = log p(x_i | θ_s)``::

        lppd_i      = log( (1/S) sum_s exp(ll_si) )        (computed with logsumexp)
        p_waic_i    = var_s(ll_si)                          (ddof=1, over chains x draws)
        elpd_waic_i = lppd_i - p_waic_i

    Parameters
    ----------
    log_lik : DataTree, DataArray or array-like
        A posterior ``DataTree`` (its ``log_likelihood`` group's single variable, or
        ``var_name``); a ``DataArray`` with dims ``(chain, draw, *obs_dims)``; or an array of
        shape ``(chain, draw, n_obs)`` or ``(n_draws, n_obs)``.
    obs_dims : iterable of str, optional
        Observation dimensions of labelled input; every other dimension is a sample
        dimension. Default: all dimensions except ``chain``, ``draw`` and ``sample``.
    var_name : str, optional
        The log-likelihood variable when the group holds several.

    Returns
    -------
    WAICResult

    Raises
    ------
    ValueError
        Fewer than two draws, non-finite values, or a missing group or variable.

    Notes
    -----
    Observations with ``p_waic_i > 0.4`` are counted in ``n_high_p_waic`` and reported with a
    warning-level log to the ``"bayesgmm"`` logger, as ArviZ 0.x warned.

    Examples
    --------
    >>> import numpy as np
    >>> ll = np.random.default_rng(0).normal(-1.0, 0.1, size=(2, 100, 5))
    >>> res = waic(ll)
    >>> res.n_data_points, res.n_high_p_waic
    (5, 0)
    >>> bool(np.isclose(res.waic_deviance, -2 * res.elpd_waic))
    True
    """
    ll = _log_lik_matrix(log_lik, obs_dims, var_name)
    n_samples, n_obs = ll.shape
    lppd_i = logsumexp(ll, axis=0) - np.log(n_samples)
    p_waic_i = ll.var(axis=0, ddof=1)
    elpd_i = lppd_i - p_waic_i
    elpd = float(elpd_i.sum())
    se = float(np.sqrt(n_obs * elpd_i.var(ddof=1))) if n_obs > 1 else 0.0
    n_high = int((p_waic_i > P_WAIC_THRESHOLD).sum())
    if n_high:
        logger.warning(
            "WAIC: %d of %d observations have p_waic_i > %.1f (posterior variance of the "
            "log predictive density); WAIC may be unreliable, prefer PSIS-LOO. See "
            "https://arxiv.org/abs/1507.04544.",
            n_high,
            n_obs,
            P_WAIC_THRESHOLD,
        )
    return WAICResult(
        elpd_waic=elpd,
        p_waic=float(p_waic_i.sum()),
        se=se,
        waic_deviance=-2.0 * elpd,
        lppd=float(lppd_i.sum()),
        elpd_waic_i=elpd_i,
        p_waic_i=p_waic_i,
        lppd_i=lppd_i,
        n_high_p_waic=n_high,
        n_samples=int(n_samples),
        n_data_points=int(n_obs),
    )


# =========================================================================== LOO
def loo(idata: xr.DataTree, *, var_name: str | None = None) -> ELPDData:
    """PSIS-LOO of a posterior: :func:`arviz_stats.loo` with ``pointwise=True``, unchanged.

    Parameters
    ----------
    idata : DataTree
        A posterior with ``posterior`` and ``log_likelihood`` groups.
    var_name : str, optional
        The log-likelihood variable when the group holds several.

    Returns
    -------
    arviz_stats.utils.ELPDData
        ArviZ's result object (``elpd``, ``se``, ``p``, ``elpd_i``, ``pareto_k``, ``good_k``,
        ...). Read it with :func:`loo_summary`, :func:`max_pareto_k` and
        :func:`n_high_pareto_k`.
    """
    return azs.loo(idata, pointwise=True, var_name=var_name)


def max_pareto_k(elpd_data: ELPDData) -> float:
    """Largest Pareto ``k`` of a pointwise LOO result (NaN when it has none)."""
    k = getattr(elpd_data, "pareto_k", None)
    if k is None:
        return math.nan
    return float(np.nanmax(np.asarray(k, dtype=np.float64)))


def pareto_k_threshold(elpd_data: ELPDData) -> float:
    """The Pareto ``k`` above which PSIS-LOO is unreliable for this result's draw count.

    arviz-stats' sample-size dependent threshold ``min(1 - 1 / log10(S), 0.7)`` for ``S``
    posterior draws, read from ``elpd_data.good_k`` (recomputed from ``n_samples`` when the
    result does not carry it): 0.7 from about 2155 draws on, 0.67 for 1000 draws, 0.57 for 200.
    """
    good_k = getattr(elpd_data, "good_k", None)
    if good_k is not None and np.isfinite(good_k):
        return float(good_k)
    n = int(getattr(elpd_data, "n_samples", 0) or 0)
    return min(1.0 - 1.0 / math.log10(n), PARETO_K_THRESHOLD) if n > 10 else PARETO_K_THRESHOLD


def n_high_pareto_k(elpd_data: ELPDData, threshold: float | None = None) -> int:
    """Number of observations with Pareto ``k > threshold``.

    ``threshold`` defaults to :func:`pareto_k_threshold` of the result (sample-size
    dependent, at most 0.7).
    """
    k = getattr(elpd_data, "pareto_k", None)
    if k is None:
        return 0
    if threshold is None:
        threshold = pareto_k_threshold(elpd_data)
    return int((np.asarray(k, dtype=np.float64) > threshold).sum())


def loo_summary(elpd_data: ELPDData, *, threshold: float | None = None) -> dict[str, Any]:
    """The numbers of a LOO result that the comparison table shows.

    Parameters
    ----------
    elpd_data : ELPDData
        From :func:`loo` (or :func:`arviz_stats.loo` with ``pointwise=True``).
    threshold : float, optional
        Pareto ``k`` above which an observation's estimate is unreliable; by default
        arviz-stats' sample-size dependent ``min(1 - 1/log10(S), 0.7)``
        (:func:`pareto_k_threshold`).

    Returns
    -------
    dict
        ``elpd_loo`` (higher is better), ``p_loo``, ``se_loo``, ``loo_deviance``
        (``-2 elpd_loo``, lower is better), ``max_pareto_k``, ``pareto_k_threshold`` and
        ``n_pareto_k_gt`` (observations above that threshold).
    """
    elpd = float(elpd_data.elpd)
    if threshold is None:
        threshold = pareto_k_threshold(elpd_data)
    return {
        "elpd_loo": elpd,
        "p_loo": float(elpd_data.p),
        "se_loo": float(elpd_data.se),
        "loo_deviance": -2.0 * elpd,
        "max_pareto_k": max_pareto_k(elpd_data),
        "pareto_k_threshold": float(threshold),
        "n_pareto_k_gt": n_high_pareto_k(elpd_data, threshold),
    }


# ================================================================ comparison result
#: WAIC/LOO pick the simplest model whose elpd is within this many standard errors (of the
#: paired pointwise difference) of the highest elpd: differences smaller than their noise do
#: not justify extra components (the one-standard-error rule of cross-validation).
ELPD_SE_RULE = 1.0


def _eligible(table: pd.DataFrame, criterion: str) -> pd.Series:
    """Rows that may be chosen under a criterion: a finite value, not degenerate, and for
    WAIC/LOO a posterior that did not fail its convergence checks."""
    column, _, method = CRITERIA[criterion]
    if column not in table:
        return pd.Series(False, index=table.index)
    values = pd.to_numeric(table[column], errors="coerce").astype(float)
    ok = pd.Series(np.isfinite(values.to_numpy()), index=table.index)
    if method == "em":
        if DEGENERATE in table:
            ok &= ~table[DEGENERATE].fillna(False).astype(bool)
        if EM_STATUS in table:
            ok &= table[EM_STATUS].eq("ok")
    else:
        if BAYES_STATUS in table:
            ok &= table[BAYES_STATUS].eq("ok")
        if CONVERGED in table:
            # False excludes; missing (a custom bayes_fit that carries no check) does not.
            ok &= ~table[CONVERGED].astype("boolean").eq(False).fillna(False).astype(bool)
    return ok


def _ordered(table: pd.DataFrame, criterion: str, rows: pd.Series) -> pd.DataFrame:
    """Rows sorted best first; ties go to fewer parameters, then fewer components."""
    column, direction, _ = CRITERIA[criterion]
    sub = table.loc[rows]
    key = sub[column].astype(float) * (1.0 if direction == "lower" else -1.0)
    ordered = sub.assign(_key=key)
    by = ["_key"] + [c for c in (N_PARAMETERS, N_COMPONENTS) if c in sub]
    return ordered.sort_values(by, kind="stable")


def _computed(table: pd.DataFrame, criterion: str) -> bool:
    column = CRITERIA[criterion][0]
    return column in table and table[column].notna().any()


def _best(table: pd.DataFrame) -> dict[str, tuple[str, int] | None]:
    best: dict[str, tuple[str, int] | None] = {}
    for criterion in CRITERIA:
        if not _computed(table, criterion):
            continue
        ordered = _ordered(table, criterion, _eligible(table, criterion))
        if ordered.empty:
            best[criterion] = None
        else:
            row = ordered.iloc[0]
            best[criterion] = (str(row[COVARIANCE_TYPE]), int(row[N_COMPONENTS]))
    return best


def _add_ranks(table: pd.DataFrame) -> pd.DataFrame:
    """Add a rank column per computed criterion (1 = best; missing when excluded)."""
    table = table.copy()
    for criterion, (column, direction, _) in CRITERIA.items():
        if column not in table:
            continue
        rows = _eligible(table, criterion)
        values = table.loc[rows, column].astype(float)
        ranks = values.rank(method="min", ascending=direction == "lower")
        out = pd.Series(pd.NA, index=table.index, dtype="Int64")
        out.loc[rows] = ranks.astype("int64")
        table[_rank_column(criterion)] = out
    return table


def _describe(model: tuple[str, int] | None) -> str:
    if model is None:
        return "nothing (no eligible fit)"
    return f"{model[0]} covariance with K={model[1]} ({_model_name(*model)})"


def _join(items: list[str]) -> str:
    if len(items) > _MAX_LISTED:
        items = [*items[:_MAX_LISTED], f"{len(items) - _MAX_LISTED} more"]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


@dataclass
class ComparisonResult:
    """Model-selection results for a grid of covariance types and component counts.

    Attributes
    ----------
    table : DataFrame
        One row per ``(covariance_type, n_components)``; column names state each
        criterion's direction (``"bic (lower better)"``, ``"elpd_loo (higher better)"``) and
        :attr:`header` explains every column. Rank columns ``"<criterion>_rank (1 = best)"``
        are missing for excluded fits.
    loo_compare : DataFrame or None
        :func:`arviz_stats.compare` of the posteriors eligible for PSIS-LOO (those that did
        not fail their convergence checks; index: model names such as ``"full-K3"``;
        ``round_to="none"``), unchanged; None without such posteriors.
    posteriors : dict of str to DataTree
        The posterior of each model, by model name.
    loo_results : dict of str to ELPDData
        :func:`loo` of each posterior.
    waic_results : dict of str to WAICResult
    em_models : dict of str to EMGaussianMixture
        The fitted EM estimators (failed fits are absent).
    notes : list of str
        Warnings raised by :func:`arviz_stats.compare`, repeated in :attr:`verdict`.
    occupancy : dict of str to Series
        Per model, the posterior distribution of the number of occupied components (index
        1..K, values summing to one): components that receive at least 1 % of the points
        when each point goes to its most probable component in each draw
        (:func:`bayesgmm.diagnostics.occupied_components`).
    convergence : dict of str to dict
        Per checked posterior, the headline convergence numbers
        (:meth:`bayesgmm.diagnostics.DiagnosticsReport.summary`: ``passed``, ``max_rhat``,
        ``min_ess_bulk``, ``min_ess_tail``, ``n_divergent``...).
    k_posterior : dict of str to KPosterior
        Per covariance type, ``p(K | y)`` over the ``K`` whose evidence is estimable
        (:class:`bayesgmm.evidence.KPosterior`; ``excluded`` names the others and why; empty
        probabilities when no ``K`` is estimable).
    k_prior : str
        The prior on ``K`` of ``k_posterior``: ``"uniform"`` or ``"poisson(rate)"``.
    """

    table: pd.DataFrame
    loo_compare: pd.DataFrame | None = None
    posteriors: dict[str, xr.DataTree] = field(default_factory=dict)
    loo_results: dict[str, ELPDData] = field(default_factory=dict)
    waic_results: dict[str, WAICResult] = field(default_factory=dict)
    em_models: dict[str, EMGaussianMixture] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    occupancy: dict[str, pd.Series] = field(default_factory=dict)
    convergence: dict[str, dict[str, Any]] = field(default_factory=dict)
    k_posterior: dict[str, KPosterior] = field(default_factory=dict)
    k_prior: str = "uniform"

    @property
    def header(self) -> dict[str, str]:
        """Meaning and direction of each column of ``table``."""
        return {c: HEADER.get(c, "") for c in self.table.columns}

    @property
    def best(self) -> dict[str, tuple[str, int] | None]:
        """The choice of each computed criterion, ``criterion -> (covariance_type, K)``.

        Keys among ``"bic"``, ``"aic"``, ``"icl"`` (EM; degenerate and failed fits are never
        chosen) and ``"waic"``, ``"loo"`` (posterior). The value is None when a criterion was
        computed but no fit is eligible. Ties go to the model with fewer parameters.
        """
        best = _best(self.table)
        for criterion in ("waic", "loo"):
            if best.get(criterion) is not None:
                best[criterion] = self._one_se_pick(criterion)[0]
        return best

    @property
    def best_elpd(self) -> dict[str, tuple[str, int] | None]:
        """The model with the highest elpd under ``"waic"`` and ``"loo"`` (before the
        one-standard-error rule of :attr:`best`)."""
        return {c: m for c, m in _best(self.table).items() if c in ("waic", "loo")}

    def _pointwise(self, criterion: str) -> dict[str, np.ndarray]:
        if criterion == "loo":
            return {name: np.ravel(r.elpd_i) for name, r in self.loo_results.items()}
        return {name: np.ravel(r.elpd_waic_i) for name, r in self.waic_results.items()}

    def _one_se_pick(self, criterion: str) -> tuple[tuple[str, int] | None, float, float]:
        """The simplest model within ``ELPD_SE_RULE`` standard errors of the highest elpd.

        Returns the pick and its elpd difference to the highest-elpd model with the standard
        error of that difference (from the pointwise values, paired over observations).
        """
        ordered = _ordered(self.table, criterion, _eligible(self.table, criterion))
        if ordered.empty:
            return None, 0.0, 0.0
        top = ordered.iloc[0]
        pointwise = self._pointwise(criterion)
        if top[MODEL] not in pointwise:
            return (str(top[COVARIANCE_TYPE]), int(top[N_COMPONENTS])), 0.0, 0.0
        ref = pointwise[top[MODEL]]
        candidates = []
        for position, (_, row) in enumerate(ordered.iterrows()):
            values = pointwise.get(row[MODEL])
            if values is None or values.shape != ref.shape:
                continue
            d = ref - values
            se = float(np.sqrt(d.size * d.var(ddof=1))) if d.size > 1 else 0.0
            if d.sum() <= ELPD_SE_RULE * se:
                key = (row.get(N_PARAMETERS, 0), row[N_COMPONENTS], position)
                candidates.append((key, row, float(d.sum()), se))
        _, row, diff, se = min(candidates, key=lambda item: item[0])
        return (str(row[COVARIANCE_TYPE]), int(row[N_COMPONENTS])), diff, se

    @property
    def verdict(self) -> str:
        """A plain-language paragraph: each criterion's choice, agreement and caveats."""
        table, best = self.table, self.best
        parts: list[str] = []
        if not best:
            return "No criterion could be computed: every fit failed or was not run."
        picks = [f"{_LABELS[c]} picks {_describe(m)}" for c, m in best.items()]
        parts.append(f"Over {len(table)} candidate models, " + "; ".join(picks) + ".")
        for criterion, top in self.best_elpd.items():
            if top is not None and top != best.get(criterion):
                _, diff, se = self._one_se_pick(criterion)
                parts.append(
                    f"{_LABELS[criterion]}'s highest elpd is {_model_name(*top)}, but "
                    f"{_model_name(*best[criterion])} is only {diff:.1f} below it (standard "
                    f"error {se:.1f}); the simplest model within {ELPD_SE_RULE:g} standard "
                    "error of the highest elpd is the pick (the one-standard-error rule)."
                )

        em_best = [best[c] for c in ("bic", "aic", "icl") if c in best]
        if len(em_best) == 3 and len(set(em_best)) == 1 and em_best[0] is not None:
            parts.append("The three EM criteria agree.")
        if "bic" in best and "loo" in best:
            bic, loo_ = best["bic"], best["loo"]
            if bic == loo_:
                parts.append(f"BIC and PSIS-LOO agree on {_model_name(*bic)}.")
            elif bic is not None and loo_ is not None:
                parts.append(
                    f"BIC and PSIS-LOO disagree: BIC prefers {_model_name(*bic)}, "
                    f"PSIS-LOO {_model_name(*loo_)}."
                )
                parts.append(self._loo_difference(_model_name(*bic), _model_name(*loo_)))
            parts.append(
                "They answer different questions: BIC's log(n) penalty per parameter "
                "approximates the log marginal likelihood and favours parsimony, so it picks "
                "the smallest model that explains the data well; LOO and WAIC estimate "
                "out-of-sample predictive accuracy, so they accept extra or overlapping "
                "components that improve predictions even slightly (and are indifferent "
                "between models that predict equally well)."
            )
        has_em = any(c in best for c in ("bic", "aic", "icl"))
        has_bayes = any(c in best for c in ("waic", "loo"))
        if has_em != has_bayes:
            missing = "posterior criteria (WAIC, PSIS-LOO)" if has_em else "BIC, AIC and ICL"
            parts.append(
                f"The {missing} were not computed; run with methods=('em', 'bayes') (on the "
                "command line: --method both) to see "
                "whether the marginal-likelihood view (BIC) and the predictive view (LOO) agree."
            )
        parts.extend(self.evidence_notes)
        parts.extend(self._exclusions())
        parts.extend(self.excluded_posteriors)
        parts.extend(self._posterior_notes())
        parts.extend(self._diagnostics())
        parts.extend(self.notes)
        return " ".join(p for p in parts if p)

    @property
    def evidence_excluded(self) -> list[str]:
        """One line per ``K`` left out of ``p(K | y)``: the model and why (for the table)."""
        if not self._evidence_computed():
            return []
        out = []
        for cov, post in self.k_posterior.items():
            for k, reason in post.excluded.items():
                out.append(f"{_model_name(cov, k)}: {reason}")
        return out

    def _evidence_computed(self) -> bool:
        """Whether the evidence was attempted for some posterior (estimable or not)."""
        if EVIDENCE_NOTE not in self.table:
            return False
        notes = self.table[EVIDENCE_NOTE].fillna("").astype(str)
        return bool((~notes.str.startswith("not computed")).any())

    @property
    def evidence_notes(self) -> list[str]:
        """Sentences on the evidence: ``p(K | y)`` per covariance type, where BIC and the
        evidence disagree, and the ``K`` left out and why."""
        table, out = self.table, []
        if EVIDENCE_NOTE not in table or not self.k_posterior:
            return out
        if not self._evidence_computed():
            if BAYES_STATUS in table and table[BAYES_STATUS].eq("ok").any():
                why = str(table.loc[table[BAYES_STATUS].eq("ok"), EVIDENCE_NOTE].iloc[0])
                why = why.removeprefix("not computed: ")
                out.append(f"The evidence log p(y | K) and p(K | y) were not computed: {why}.")
            return out
        picks, agree, disagree, unknown, none = [], [], [], [], []
        bic_rows = _eligible(table, "bic")
        for cov, post in self.k_posterior.items():
            if not post.probabilities:
                none.append(str(cov))
                continue
            k_ev = max(post.probabilities, key=lambda k: (post.probabilities[k], -k))
            picks.append(f"{_model_name(cov, k_ev)} (p(K | y) = {post.probabilities[k_ev]:.2f})")
            sub = table[table[COVARIANCE_TYPE].eq(cov)]
            ordered = _ordered(table, "bic", bic_rows & table[COVARIANCE_TYPE].eq(cov))
            if ordered.empty:
                continue
            k_bic = int(ordered.iloc[0][N_COMPONENTS])
            gap = (sub[EVIDENCE_DEVIANCE] - sub[BIC]).dropna()
            if len(gap) == 1:
                only = int(sub.loc[gap.index[0], N_COMPONENTS])
                gap_text = f"; -2 log p(y | K) - BIC is {gap.iloc[0]:+.1f} at K={only}"
            elif len(gap):
                gap_text = (
                    f"; -2 log p(y | K) - BIC runs from {gap.min():+.1f} to {gap.max():+.1f} "
                    "over the estimable K"
                )
            else:
                gap_text = ""
            if k_bic == k_ev:
                agree.append(f"{cov} (K={k_bic}{gap_text})")
            elif k_bic in post.probabilities:
                disagree.append(
                    f"for {cov} covariance BIC prefers K={k_bic} (p(K | y) = "
                    f"{post.probabilities[k_bic]:.2f}), the evidence K={k_ev}{gap_text}"
                )
            else:
                unknown.append(
                    f"for {cov} covariance BIC prefers K={k_bic}, whose evidence is not "
                    f"estimable, so the evidence's K={k_ev} (the best of the estimable K) "
                    f"neither confirms nor contradicts it{gap_text}"
                )
        if picks:
            out.append(
                f"The evidence (bridge sampling; a {self.k_prior} prior on K, normalised over "
                f"the K whose evidence is estimable) favours {_join(picks)}."
            )
        if agree:
            out.append(f"BIC and the evidence agree for {_join(agree)}.")
        if disagree:
            out.append(
                "BIC and the evidence disagree: "
                + "; ".join(disagree)
                + ". BIC is a large-sample approximation to -2 log p(y | K) that ignores the "
                "prior; where they differ, the evidence is the Bayesian answer under this "
                "model's priors."
            )
        if unknown:
            out.append("BIC and the evidence cannot be compared: " + "; ".join(unknown) + ".")
        if none:
            out.append(
                f"No K has an estimable evidence for {_join(none)} covariance, so p(K | y) is "
                "undefined there."
            )
        if self._evidence_computed():
            by_reason: dict[str, list[str]] = {}
            for cov, post in self.k_posterior.items():
                for k, reason in post.excluded.items():
                    # the numbers of a failed check are in the sentence naming the posterior
                    if reason.startswith(_FAILED_CHECKS):
                        reason = _FAILED_CHECKS
                    by_reason.setdefault(reason, []).append(_model_name(cov, k))
            if by_reason:
                out.append(
                    "Left out of p(K | y): "
                    + "; ".join(f"{_join(models)} ({why})" for why, models in by_reason.items())
                    + "."
                )
        return out

    @property
    def excluded_posteriors(self) -> list[str]:
        """One plain sentence per posterior excluded from WAIC/LOO for failing its checks.

        Each names the model, why its elpd cannot be trusted (the worst R-hat, ESS or
        divergences) and what the posterior looks like in terms of occupied components.
        """
        table = self.table
        if CONVERGED not in table:
            return []
        out = []
        failed = table[CONVERGED].astype("boolean").eq(False).fillna(False).astype(bool)
        for _, row in table[failed].iterrows():
            name, k = str(row[MODEL]), int(row[N_COMPONENTS])
            check = self.convergence.get(name, {"passed": False})
            retried = bool(row.get(RETRIED, False))
            sentence = (
                f"{name}: {_join(_failure_reasons(check))}"
                + (" even after a retry with stronger sampler settings" if retried else "")
                + ", so its elpd cannot be trusted; not considered by WAIC or PSIS-LOO."
            )
            shape = self._occupancy_phrase(name, k, failed=True)
            out.append(sentence + (f" {shape}" if shape else ""))
        return out

    def _occupancy_phrase(self, name: str, k: int, *, failed: bool) -> str:
        occupancy = self.occupancy.get(name)
        if occupancy is None or k < 2:
            return ""
        mode = int(occupancy.idxmax())
        p_all = float(occupancy.iloc[-1])
        share = f"{OCCUPIED_MIN_SHARE:.0%}"
        if mode < k:
            n_empty = k - mode
            return (
                f"It behaves like K = {mode} with {n_empty} component"
                + (" " if n_empty == 1 else "s ")
                + f"emptied: in {float(occupancy.loc[mode]):.0%} of the draws only {mode} "
                f"components receive at least {share} of the points."
            )
        if p_all < 0.9:
            return (
                f"In {1 - p_all:.0%} of the draws it behaves like K = {k - 1} or fewer, with a "
                f"component receiving under {share} of the points."
            )
        if failed:
            return (
                f"All {k} components receive points in {p_all:.0%} of the draws, so the chains "
                "disagree on the components themselves (a cluster split in two, or a component "
                "collapsed onto a few points, in different ways), not on how many are used."
            )
        return ""

    def _posterior_notes(self) -> list[str]:
        """Converged posteriors that use fewer components than they have; unchecked ones."""
        table, out = self.table, []
        if CONVERGED not in table:
            return out
        converged = table[CONVERGED].astype("boolean").eq(True).fillna(False).astype(bool)
        for _, row in table[converged].iterrows():
            phrase = self._occupancy_phrase(str(row[MODEL]), int(row[N_COMPONENTS]), failed=False)
            if phrase:
                out.append(f"{row[MODEL]} passed its checks, but {phrase[0].lower()}{phrase[1:]}")
        if BAYES_STATUS in table:
            unchecked = table[table[BAYES_STATUS].eq("ok") & table[CONVERGED].isna()]
            if not unchecked.empty:
                out.append(
                    f"The posteriors of {_join([str(m) for m in unchecked[MODEL]])} carry no "
                    "convergence check (a custom bayes_fit without 'diagnostics_passed' in its "
                    "attrs), so they are ranked unchecked."
                )
        if not self.best.get("loo", ()) and self.excluded_posteriors:
            out.append(
                "No posterior passed its convergence checks, so WAIC and PSIS-LOO choose "
                "nothing; run more tuning and draws or fewer components."
            )
        return out

    def _loo_difference(self, bic_model: str, loo_model: str) -> str:
        """How far the BIC choice's elpd_loo lies below the LOO choice's, with its se."""
        cmp = self.loo_compare
        if cmp is not None and bic_model in cmp.index and cmp.index[0] == loo_model:
            # loo_compare's differences and their se are relative to its top model.
            diff = -float(cmp.loc[bic_model, "elpd_diff"])
            dse = float(cmp.loc[bic_model, "dse"])
        elif bic_model in self.loo_results and loo_model in self.loo_results:
            d_i = np.ravel(self.loo_results[loo_model].elpd_i) - np.ravel(
                self.loo_results[bic_model].elpd_i
            )
            diff, dse = float(d_i.sum()), float(np.sqrt(d_i.size * d_i.var(ddof=1)))
        else:
            return ""
        return (
            f"The BIC choice's elpd_loo is {diff:.1f} below the LOO choice's (standard "
            f"error of the difference {dse:.1f}), "
            + (
                f"more than two standard errors: PSIS-LOO clearly predicts better with {loo_model}."
                if abs(diff) > 2 * dse
                else "within two standard errors, so the predictive difference is not clear "
                "and the simpler model is a reasonable choice."
            )
        )

    def _exclusions(self) -> list[str]:
        table, out = self.table, []
        if DEGENERATE in table:
            degenerate = table[table[DEGENERATE].fillna(False).astype(bool)]
            if not degenerate.empty:
                names = _join([str(m) for m in degenerate[MODEL]])
                out.append(
                    f"Degenerate EM fit(s) {names} (a component collapsed onto too few points "
                    "or onto the reg_covar floor, so the likelihood is spuriously high) are "
                    "kept in the table but excluded from BIC, AIC and ICL, as mclust reports "
                    "them missing."
                )
                raw_best: dict[str, list[str]] = {}
                for criterion in ("bic", "aic", "icl"):
                    column = CRITERIA[criterion][0]
                    if column not in table or table[column].notna().sum() == 0:
                        continue
                    raw = _ordered(table, criterion, table[column].notna())
                    if bool(raw.iloc[0][DEGENERATE]):
                        raw_best.setdefault(str(raw.iloc[0][MODEL]), []).append(_LABELS[criterion])
                for model, labels in raw_best.items():
                    verb = "belongs" if len(labels) == 1 else "belong"
                    out.append(
                        f"The best raw {_join(labels)} {verb} to the degenerate {model}, "
                        "which is not chosen."
                    )
        for status, note, what in ((EM_STATUS, EM_NOTE, "EM"), (BAYES_STATUS, BAYES_NOTE, "Bayes")):
            if status in table:
                failed = table[table[status].eq("failed")]
                by_reason: dict[str, list[str]] = {}
                for _, r in failed.iterrows():
                    by_reason.setdefault(str(r.get(note, "")), []).append(str(r[MODEL]))
                reasons = [f"{_join(models)} ({reason})" for reason, models in by_reason.items()]
                if reasons:
                    out.append(f"{what} fit(s) failed and are missing: {'; '.join(reasons)}.")
        return out

    def _diagnostics(self) -> list[str]:
        table, out = self.table, []
        if N_HIGH_PARETO_K in table:
            high = table[
                (table[N_HIGH_PARETO_K].fillna(0).astype(int) > 0) & _eligible(table, "loo")
            ]
            if not high.empty:
                high = high.sort_values(MAX_PARETO_K, ascending=False)
                items = [
                    f"{r[MODEL]} ({int(r[N_HIGH_PARETO_K])} with k > "
                    f"{float(r.get(PARETO_K_GOOD, PARETO_K_THRESHOLD)):.2f}, "
                    f"max {float(r[MAX_PARETO_K]):.2f})"
                    for _, r in high.head(_MAX_LISTED).iterrows()
                ]
                if len(high) > _MAX_LISTED:
                    items.append(f"{len(high) - _MAX_LISTED} more model(s)")
                out.append(
                    f"PSIS-LOO is unreliable for {len(high)} of {len(table)} models, where "
                    "Pareto k is high (above arviz-stats' threshold min(1 - 1/log10(S), 0.7) "
                    "for S draws): "
                    + "; ".join(items)
                    + ". Remedies: moment matching (arviz_stats.loo_moment_match, or "
                    "arviz_stats.loo(..., moment_match=True, model=...)), exact K-fold "
                    "cross-validation (arviz_stats.loo_kfold), or more components, since an "
                    "observation that no component covers is highly influential."
                )
        if N_HIGH_P_WAIC in table:
            high = table[
                (table[N_HIGH_P_WAIC].fillna(0).astype(int) > 0) & _eligible(table, "waic")
            ]
            if not high.empty:
                names = _join([str(m) for m in high[MODEL]])
                out.append(
                    f"WAIC may be unreliable for {names} (observations with p_waic_i > "
                    f"{P_WAIC_THRESHOLD}); prefer PSIS-LOO there."
                )
        return out

    @property
    def shows_bic_grid(self) -> bool:
        """Whether the comparison names mclust's models, so that its report and the CLI show
        mclust's BIC grid (:meth:`bic_grid`): True when a covariance type of the table is an
        mclust name (``"EII"`` ... ``"VVV"``) and BIC was computed."""
        table = self.table
        if COVARIANCE_TYPE not in table or BIC not in table or table[BIC].isna().all():
            return False
        return any(c in MCLUST_MODELS for c in table[COVARIANCE_TYPE])

    def bic_grid(
        self, *, mclust_sign: bool = False, drop_degenerate: bool = False, marked: bool = False
    ) -> pd.DataFrame:
        """BIC as mclust prints it: one row per covariance model, one column per K.

        Rows are named by mclust's model names in mclust's order (EII, VII, EEI, ... VVV;
        scikit-learn's four names become VVV, EEE, VVI and VII), columns are the component
        counts. The values are those of the BIC column of ``table``.

        Parameters
        ----------
        mclust_sign : bool, default=False
            False: our BIC, ``-2 log L + p log n`` (lower is better). True: mclust's,
            ``2 log L - p log n`` (higher is better), the same number with the opposite sign.
        drop_degenerate : bool, default=False
            Show degenerate EM fits (a collapsed component, a spuriously high likelihood) as
            missing, as mclust does; by default they keep their values (and are never the
            best cell).
        marked : bool, default=False
            Return text (two decimals) with the BIC choice marked ``"★"``, degenerate fits
            ``"†"`` and failed fits ``"failed"``, for reading rather than computing.

        Returns
        -------
        DataFrame
            Index ``"model"`` (mclust names), columns ``"K"`` (int); float values, missing
            where the fit failed or the cell is not in the grid (text with ``marked``).
            When one model is in the table under both names (``"full"`` and ``"VVV"``), the
            non-degenerate fit of lower BIC is shown.

        Raises
        ------
        ValueError
            When BIC was not computed (``methods`` without ``"em"``).
        """
        table = self.table
        if BIC not in table or table[BIC].isna().all():
            raise ValueError(
                "BIC was not computed (every EM fit failed or methods did not include 'em'); "
                "run compare_models with methods=('em',) or ('em', 'bayes')."
            )
        status = table[EM_STATUS] if EM_STATUS in table else pd.Series("ok", index=table.index)
        flagged = table[DEGENERATE] if DEGENERATE in table else pd.Series(False, table.index)
        rows = table.assign(
            _model=[mclust_name(str(c)) for c in table[COVARIANCE_TYPE]],
            _degenerate=flagged.fillna(False).astype(bool) | status.eq("degenerate"),
            _failed=status.eq("failed"),
        )
        rows["_excluded"] = rows["_degenerate"] | rows[BIC].isna() | rows["_failed"]
        # One row per (model, K): a non-degenerate fit first, then the lowest BIC.
        rows = rows.sort_values(["_excluded", BIC], na_position="last", kind="stable")
        rows = rows.drop_duplicates(["_model", N_COMPONENTS], keep="first")
        models = [m for m in MCLUST_MODELS if m in set(rows["_model"])]
        ks = sorted(int(k) for k in rows[N_COMPONENTS].unique())
        values = rows.pivot(index="_model", columns=N_COMPONENTS, values=BIC).astype(float)
        values = values.reindex(index=models, columns=ks)
        degenerate, failed = (
            rows.pivot(index="_model", columns=N_COMPONENTS, values=flag)
            .reindex(index=models, columns=ks)
            .fillna(False)
            .astype(bool)
            for flag in ("_degenerate", "_failed")
        )
        if mclust_sign:
            values = -values
        if drop_degenerate:
            values = values.mask(degenerate)
        values.index.name, values.columns.name = "model", "K"
        if not marked:
            return values
        choice = self.best.get("bic")
        best = None if choice is None else (mclust_name(choice[0]), int(choice[1]))
        text = pd.DataFrame("", index=values.index, columns=values.columns, dtype=object)
        for model in models:
            for k in ks:
                v = values.loc[model, k]
                if failed.loc[model, k]:
                    cell = "failed"
                elif not np.isfinite(v):
                    cell = "—" if not degenerate.loc[model, k] else "† (dropped)"
                else:
                    cell = f"{v:.2f}"
                    if degenerate.loc[model, k]:
                        cell += " †"
                    elif (model, k) == best:
                        cell += " ★"
                text.loc[model, k] = cell
        return text

    def plot_bic_grid(self, *, mclust_sign: bool = False, zoom: float | None = 20.0) -> Figure:
        """mclust's BIC plot: BIC against K, one line per covariance model
        (:func:`bayesgmm.plots.plot_bic_grid`)."""
        from .plots import plot_bic_grid

        return plot_bic_grid(self, mclust_sign=mclust_sign, zoom=zoom)

    def plot(self) -> Figure:
        """Every criterion against K, one panel per covariance type, all lower-is-better.

        BIC, AIC and ICL are drawn as they are; WAIC and LOO on the deviance scale
        (``-2 elpd``) with bars of ± one standard error (``2 se_elpd``). Lines join the
        eligible fits only. Fits excluded from a criterion are drawn as grey crosses: EM fits
        that are degenerate, posteriors that failed their convergence checks (for WAIC and
        LOO). The y-axis spans the eligible values (error bars may run off it), so one
        excluded outlier cannot flatten the other curves; an excluded value beyond it is
        drawn at the edge as a grey triangle pointing off the scale. Each criterion's choice
        is starred.

        Returns
        -------
        matplotlib.figure.Figure
        """
        table = self.table
        cov_types = list(dict.fromkeys(table[COVARIANCE_TYPE]))
        # At most four panels a row (mclust's 14 models make four rows), sharing one y-axis.
        n_cols = min(len(cov_types), _PANELS_PER_ROW)
        n_rows = -(-len(cov_types) // n_cols)
        fig = Figure(
            figsize=(max(3.6 * n_cols + 2.2, 6.4), 3.4 * n_rows + 0.6), layout="constrained"
        )
        grid = fig.subplots(n_rows, n_cols, sharey=True, squeeze=False)
        for ax in grid.ravel()[len(cov_types) :]:
            ax.remove()
        axes = grid.ravel()[: len(cov_types)]
        series = [
            ("bic", BIC, None, "BIC", "o"),
            ("aic", AIC, None, "AIC", "s"),
            ("icl", ICL, None, "ICL", "^"),
            ("waic", WAIC_DEVIANCE, SE_WAIC, "WAIC deviance", "D"),
            ("loo", LOO_DEVIANCE, SE_LOO, "LOO deviance", "v"),
        ]
        best = self.best
        # The y-range of the eligible values over every panel (error bars may run off it).
        kept: list[float] = []
        for criterion, column, *_ in series:
            if column in table:
                ok = _eligible(table, criterion).to_numpy()
                kept.extend(table[column].to_numpy(dtype=float)[ok])
        kept = [v for v in kept if np.isfinite(v)]
        limits = None
        if kept:
            lo, hi = min(kept), max(kept)
            pad = 0.06 * (hi - lo) if hi > lo else max(1.0, 0.05 * abs(hi))
            limits = (lo - pad, hi + pad)
        off_scale: list[tuple[Any, float, float]] = []
        excluded_label = {"em": "degenerate EM fit (excluded)", "bayes": "failed checks (excluded)"}
        for ax, cov in zip(axes, cov_types, strict=True):
            sub = table[table[COVARIANCE_TYPE] == cov].sort_values(N_COMPONENTS)
            k = sub[N_COMPONENTS].to_numpy()
            for criterion, column, se_column, label, marker in series:
                if column not in sub or sub[column].isna().all():
                    continue
                method = CRITERIA[criterion][2]
                y = sub[column].to_numpy(dtype=float)
                ok = _eligible(sub, criterion).to_numpy()
                shown = np.where(ok, y, np.nan)
                if se_column is not None:
                    err = 2.0 * sub[se_column].to_numpy(dtype=float)
                    bars = ax.errorbar(
                        k,
                        shown,
                        yerr=np.where(ok, err, np.nan),
                        marker=marker,
                        label=label,
                        capsize=3,
                    )
                    color = bars.lines[0].get_color()
                else:
                    color = ax.plot(k, shown, marker=marker, label=label)[0].get_color()
                bad = np.isfinite(y) & ~ok
                if bad.any():
                    inside = bad.copy()
                    if limits is not None:
                        inside &= (y >= limits[0]) & (y <= limits[1])
                    ax.scatter(
                        k[inside],
                        y[inside],
                        marker="X",
                        s=90,
                        color="0.45",
                        edgecolors=color,
                        linewidths=1.2,
                        label=excluded_label[method],
                        zorder=3,
                    )
                    for kk, yy in zip(k[bad & ~inside], y[bad & ~inside], strict=True):
                        off_scale.append((ax, float(kk), float(yy)))
                choice = best.get(criterion)
                if choice is not None and choice[0] == cov:
                    yk = sub.loc[sub[N_COMPONENTS] == choice[1], column].to_numpy(dtype=float)
                    ax.scatter(
                        [choice[1]],
                        yk,
                        marker="*",
                        s=260,
                        color=color,
                        zorder=4,
                        edgecolors="black",
                        label="choice",
                    )
            ax.set_title(f"{cov} covariance", fontsize="medium")
            ax.set_xlabel("components K")
            ax.set_xticks(k)
        if limits is not None:
            axes[0].set_ylim(*limits)
            for ax, kk, yy in off_scale:
                above = yy > limits[1]
                ax.scatter(
                    [kk],
                    [limits[1] if above else limits[0]],
                    marker="^" if above else "v",
                    s=80,
                    color="0.45",
                    clip_on=False,
                    zorder=5,
                    label="excluded, off the scale",
                )
        for row in grid:
            row[0].set_ylabel("criterion (lower is better)")
        handles: list[Any] = []
        labels: list[str] = []
        for ax in axes:
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        order = [label for *_, label, _ in series]  # the criteria first, then the markers
        pairs = sorted(
            zip(handles, labels, strict=True),
            key=lambda hl: order.index(hl[1]) if hl[1] in order else len(order),
        )
        handles, labels = [h for h, _ in pairs], [lab for _, lab in pairs]
        if "choice" in labels:  # one grey star stands for every criterion's star
            i = labels.index("choice")
            handles[i] = Line2D(
                [], [], marker="*", markersize=13, color="0.6", markeredgecolor="black", ls=""
            )
            labels[i] = "choice (in its colour)"
        if handles:
            fig.legend(handles, labels, loc="outside right center", fontsize="small")
        fig.suptitle("Model selection: every criterion, lower is better", fontsize="medium")
        return fig


# ================================================================= compare_models
def _fit_posterior(
    X: Any,
    n_components: int,
    covariance_type: str,
    random_state: int | None,
    em_start: EMGaussianMixture | None = None,
    *,
    evidence: bool = True,
    **sampler_options: Any,
) -> Any:
    """Fit :class:`bayesgmm.bayes.BayesGaussianMixture` as the comparison does; return it.

    ``em_start`` (the grid cell's EM fit) starts the chains and pivots the relabelling, so the
    table's EM row and the posterior share one EM fit.

    The headline convergence numbers (:meth:`DiagnosticsReport.summary`) go into the
    posterior's ``attrs["diagnostics_summary"]`` (JSON) for the comparison table, and with
    ``evidence`` the bridge-sampling estimate of ``log p(y | K)``
    (:func:`~bayesgmm.log_marginal_likelihood`, which refuses a posterior that failed
    its checks) into ``attrs["evidence"]`` (JSON of :meth:`EvidenceResult.to_dict`).
    """
    from .bayes import BayesGaussianMixture
    from .exceptions import SamplingWarning

    # Relabelled so that the convergence checks are not tripped by label switching alone
    # (WAIC and LOO themselves do not depend on the labels).
    options = {"progressbar": False, "relabel": "pivot", **sampler_options}
    model = BayesGaussianMixture(
        n_components,
        covariance_type=covariance_type,
        random_state=random_state,
        **options,
    )
    with warnings.catch_warnings():
        # Convergence trouble is in the table's converged column and the verdict.
        warnings.simplefilter("ignore", SamplingWarning)
        model.fit(X, em_start=em_start)
    model.idata_.attrs["diagnostics_summary"] = json.dumps(model.diagnostics_.summary())
    if evidence:
        model.idata_.attrs["evidence"] = json.dumps(_estimate_evidence(model, random_state))
    return model


def _estimate_evidence(model: Any, random_state: int | None) -> dict[str, Any]:
    """:func:`log_marginal_likelihood` of a fitted posterior as a dict; an error is a reason."""
    from .evidence import log_marginal_likelihood

    try:
        found = log_marginal_likelihood(model, random_state=random_state).to_dict()
        # strict JSON: NaN (e.g. the overlap of a bridge that did not run) becomes null
        return {
            key: None if isinstance(v, float) and not math.isfinite(v) else v
            for key, v in found.items()
        }
    except Exception as exc:  # the comparison reports it, as it reports a failed fit
        name = _model_name(model.covariance_type, model.n_components)
        logger.warning("Evidence of %s failed: %s: %s", name, type(exc).__name__, exc)
        return {
            "log_evidence": None,
            "standard_error": None,
            "estimable": False,
            "reason": f"not estimable: bridge sampling raised {type(exc).__name__}: {exc}",
        }


def _default_bayes_fit(
    X: Any,
    n_components: int,
    covariance_type: str,
    random_state: int | None,
    em_start: EMGaussianMixture | None = None,
    *,
    evidence: bool = True,
    **sampler_options: Any,
) -> xr.DataTree:
    """The posterior of :func:`_fit_posterior` (the default ``bayes_fit``), with its evidence
    in ``attrs["evidence"]`` unless ``evidence`` is False."""
    return _fit_posterior(
        X,
        n_components,
        covariance_type,
        random_state,
        em_start,
        evidence=evidence,
        **sampler_options,
    ).idata_


def _takes_em_start(bayes_fit: Callable[..., Any]) -> bool:
    """Whether a ``bayes_fit`` accepts the grid cell's EM fit as ``em_start``."""
    import inspect

    try:
        return "em_start" in inspect.signature(bayes_fit).parameters
    except (TypeError, ValueError):
        return False


def _check_grid(
    n_components: Iterable[int],
    covariance_types: Iterable[str],
    methods: Iterable[str],
    n_samples: int,
) -> tuple[list[int], list[str], tuple[str, ...]]:
    if isinstance(n_components, numbers.Integral):
        n_components = [n_components]
    ks = [check_n_components(k, n_samples) for k in n_components]
    if not ks:
        raise ValueError("n_components is empty; give at least one component count, e.g. [1, 2].")
    ks = list(dict.fromkeys(ks))
    if isinstance(covariance_types, str):
        covariance_types = [covariance_types]
    cov_types = list(dict.fromkeys(covariance_types))
    bad = [c for c in cov_types if c not in COVARIANCE_TYPES + MCLUST_MODELS]
    if bad or not cov_types:
        raise ValueError(
            f"covariance_types={tuple(covariance_types)!r} is not supported; choose among "
            f"{', '.join(map(repr, COVARIANCE_TYPES))} or mclust's models "
            f"{', '.join(MCLUST_MODELS)}."
        )
    named: dict[str, str] = {}  # one model under two names (full and VVV) is refused
    for cov in cov_types:
        first = named.setdefault(mclust_name(cov), cov)
        if first != cov:
            raise ValueError(
                f"covariance_types={tuple(covariance_types)!r} names one model twice: "
                f"{first!r} and {cov!r} are both mclust's {mclust_name(cov)}; give it once."
            )
    if isinstance(methods, str):
        methods = [methods]
    methods = tuple(dict.fromkeys(methods))
    if not methods or any(m not in METHODS for m in methods):
        raise ValueError(
            f"methods={methods!r} is not supported; choose one or both of 'em' and 'bayes'."
        )
    return ks, cov_types, methods


def _fit_em(
    X: Any,
    k: int,
    cov: str,
    seed: int,
    n_samples: int,
    n_init: int,
    em_options: Mapping[str, Any],
) -> tuple[dict[str, Any], EMGaussianMixture | None]:
    row: dict[str, Any] = {EM_STATUS: "ok", DEGENERATE: False, EM_CONVERGED: pd.NA, EM_NOTE: ""}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DegenerateMixtureWarning)
            warnings.simplefilter("always", ConvergenceWarning)
            gm = EMGaussianMixture(
                k, covariance_type=cov, n_init=n_init, random_state=seed, **em_options
            ).fit(X)
            row[LOG_LIKELIHOOD] = gm.score(X) * n_samples
            row[BIC] = gm.bic(X)
            row[AIC] = gm.aic(X)
            row[ICL] = gm.icl(X)
    except Exception as exc:  # a failed cell is reported, not fatal to the grid
        logger.warning("EM fit %s failed: %s: %s", _model_name(cov, k), type(exc).__name__, exc)
        row.update({EM_STATUS: "failed", EM_NOTE: f"{type(exc).__name__}: {exc}"})
        row.update(dict.fromkeys(_EM_COLUMNS, np.nan))
        return row, None
    for w in caught:
        if not issubclass(w.category, (DegenerateMixtureWarning, ConvergenceWarning)):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    notes = []
    row[EM_CONVERGED] = bool(gm.converged_)
    if gm.degenerate_.any():
        row[EM_STATUS], row[DEGENERATE] = "degenerate", True
        notes.append(
            f"component(s) {np.flatnonzero(gm.degenerate_).tolist()} collapsed in all "
            f"{n_init} initialisation(s); excluded from EM criteria"
        )
    if not gm.converged_:
        notes.append(f"EM did not converge in max_iter={gm.max_iter}")
    row[EM_NOTE] = "; ".join(notes)
    return row, gm


def retry_options(sampler_options: Mapping[str, Any]) -> dict[str, Any]:
    """The stronger sampler settings of the one retry of a posterior that failed its checks.

    Twice the draws and the tuning (2000 each by default) and ``target_accept`` at least 0.9;
    the retry also draws a new seed, so new chains start from new jittered EM starts. Chosen
    by measurement (faithful full K = 3, 4, acidity K = 3, 4 and iris K = 3, two seeds each,
    every failing first attempt sampled again with each setting; ``bench/compare_retry.py``):
    this setting rescued 4 of 7 failures, including a chain stuck in a poor mode (iris K = 3,
    R-hat 2.28) and near misses on ESS (acidity K = 4); ``target_accept=0.95`` with the
    default draws rescued 1 of 8. Posteriors of overfitted mixtures (faithful full K = 3, 4)
    were rescued by neither: their chains sit in different modes.

    Parameters
    ----------
    sampler_options : mapping
        The options of the first attempt (``draws``, ``tune``, ``target_accept``...; the
        defaults of :class:`~bayesgmm.BayesGaussianMixture` when absent).

    Returns
    -------
    dict
        ``sampler_options`` with the stronger settings.
    """
    options = dict(sampler_options)
    for key in ("draws", "tune"):
        options[key] = 2 * int(options.get(key, 1000))
    options["target_accept"] = max(float(options.get("target_accept", 0.8)), 0.9)
    return options


#: Retries of failed posteriors may add at most this fraction of the grid's first-pass time.
RETRY_BUDGET = 0.3
#: A retry (twice the draws and tuning, target_accept 0.9) is predicted to take this many times
#: the first attempt of its cell (``bench/compare_time.py`` measured 2.0 to 2.4).
RETRY_COST_FACTOR = 2.5
#: A failed posterior whose miss (:func:`_miss`) is at most this is a near miss (R-hat up to
#: about 1.05, ESS above 80): retried whatever the budget, as such posteriors usually pass
#: on the retry; farther misses are retried only within ``retry_budget``.
NEAR_MISS = 5.0


def _miss(check: Mapping[str, Any]) -> float:
    """How far a failed posterior is from passing its checks (1 = on the thresholds).

    The larger of ``log R-hat / log 1.01`` and ``400 / ESS`` (bulk and tail), so a near miss
    (R-hat 1.012, or ESS 300) scores close to 1 and chains in different modes (R-hat 2,
    ESS 5) score far above it; divergent transitions add their percentage.
    """
    rhat = check.get("max_rhat")
    score = 1.0
    if rhat is not None and np.isfinite(rhat) and rhat > 1.0:
        score = max(score, float(np.log(rhat) / np.log(RHAT_MAX)))
    elif rhat is not None and not np.isfinite(rhat):
        score = np.inf
    for key in ("min_ess_bulk", "min_ess_tail"):
        ess = check.get(key)
        if ess is not None and np.isfinite(ess):
            score = max(score, ESS_MIN / max(float(ess), 1.0))
    n_div, total = check.get("n_divergent"), check.get("n_draws_total")
    if n_div and total:
        score += 100.0 * float(n_div) / float(total)
    return score


def _sample(
    X: Any,
    k: int,
    cov: str,
    seed: int,
    n_samples: int,
    bayes_fit: Callable[..., xr.DataTree],
    options: Mapping[str, Any],
) -> xr.DataTree:
    idata = bayes_fit(X, k, covariance_type=cov, random_state=seed, **options)
    if not isinstance(idata, xr.DataTree):
        raise TypeError(
            f"bayes_fit returned {type(idata).__name__}; it must return an xarray.DataTree "
            "with 'posterior' and 'log_likelihood' groups."
        )
    return idata


def _convergence(idata: xr.DataTree) -> dict[str, Any] | None:
    """The posterior's convergence summary, or None when it carries no check.

    :func:`_default_bayes_fit` stores :meth:`DiagnosticsReport.summary` in the attrs; a
    posterior from :class:`~bayesgmm.BayesGaussianMixture` has ``diagnostics_passed`` and is
    diagnosed again for the numbers; anything else (a custom ``bayes_fit``) is not checked.
    """
    attrs = idata.attrs
    if "diagnostics_summary" in attrs:
        return dict(json.loads(attrs["diagnostics_summary"]))
    if "diagnostics_passed" not in attrs:
        return None
    from .diagnostics import diagnose

    try:
        return diagnose(idata).summary()
    except (ValueError, TypeError):
        return {"passed": bool(attrs["diagnostics_passed"])}


def _failure_reasons(check: Mapping[str, Any]) -> list[str]:
    """Why a posterior failed its checks, in plain words with the worst values."""
    reasons = []
    rhat = check.get("max_rhat")
    if rhat is not None and not rhat <= RHAT_MAX:
        # three decimals near the 1.01 threshold, so that a failing value never reads "1.01"
        shown = f"{rhat:.3f}" if rhat < 1.1 else f"{rhat:.2f}"
        reasons.append(
            f"the chains disagree (R-hat {shown})"
            if np.isfinite(rhat)
            else "R-hat could not be computed"
        )
    ess = [check.get(key) for key in ("min_ess_bulk", "min_ess_tail")]
    ess = [float(e) for e in ess if e is not None]
    if ess and not min(ess) >= ESS_MIN:
        reasons.append(f"it has too few effective draws (ESS {min(ess):.0f}, below {ESS_MIN:g})")
    n_div = check.get("n_divergent")
    if n_div:
        reasons.append(f"{n_div} transitions diverged")
    ebfmi = check.get("min_ebfmi")
    if ebfmi is not None and ebfmi < EBFMI_MIN:
        reasons.append(f"poor energy exploration (E-BFMI {ebfmi:.2f})")
    if not reasons:
        reasons.append("its convergence checks failed")
    return reasons


def _occupancy(idata: xr.DataTree, X: Any, k: int, cov: str) -> np.ndarray | None:
    """Posterior probabilities of 1..K occupied components, or None without the parameters."""
    post = idata.children.get("posterior")
    if post is None or not {"weights", "means", "precisions_cholesky"} <= set(post.data_vars):
        return None
    try:
        occupied = occupied_components(idata, X, covariance_type=cov).to_numpy().ravel()
    except (ValueError, KeyError) as exc:
        logger.warning("Occupied components of %s not computed: %s", _model_name(cov, k), exc)
        return None
    return np.bincount(occupied, minlength=k + 1)[1:] / occupied.size


def _criteria(idata: xr.DataTree, n_samples: int) -> tuple[WAICResult, ELPDData]:
    """WAIC and PSIS-LOO of a posterior whose log-likelihood is pointwise over ``X``."""
    w = waic(idata)
    if w.n_data_points != n_samples:
        raise ValueError(
            f"the log-likelihood has {w.n_data_points} observations but X has "
            f"{n_samples} rows; it must be pointwise over the rows of X."
        )
    with warnings.catch_warnings():
        # High Pareto k is reported in the table and the verdict instead.
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
        res = loo(idata)
    return w, res


@dataclass
class _Attempt:
    """One sampled posterior of a grid cell, with its checks and criteria."""

    idata: xr.DataTree
    check: dict[str, Any] | None
    waic: WAICResult
    loo: ELPDData
    seconds: float


def _attempt(
    X: Any,
    k: int,
    cov: str,
    seed: int,
    n_samples: int,
    bayes_fit: Callable[..., xr.DataTree],
    options: Mapping[str, Any],
) -> _Attempt:
    t0 = time.perf_counter()
    idata = _sample(X, k, cov, seed, n_samples, bayes_fit, options)
    check = _convergence(idata)
    w, res = _criteria(idata, n_samples)
    return _Attempt(idata, check, w, res, time.perf_counter() - t0)


def _no_posterior_row(status: str, note: str, evidence_note: str) -> dict[str, Any]:
    """The Bayesian columns of a cell without a usable posterior (failed or not run)."""
    row: dict[str, Any] = {BAYES_STATUS: status, BAYES_NOTE: note}
    row.update({CONVERGED: pd.NA, RETRIED: False})
    row.update(dict.fromkeys(_BAYES_COLUMNS, np.nan))
    row.update(dict.fromkeys(_EVIDENCE_COLUMNS[:3], np.nan))
    row[EVIDENCE_NOTE] = evidence_note
    return row


def _failed_bayes_row(exc: BaseException) -> dict[str, Any]:
    return _no_posterior_row(
        "failed", f"{type(exc).__name__}: {exc}", "not computed: the posterior fit failed"
    )


def _fit_bayes(
    X: Any,
    k: int,
    cov: str,
    seed: int,
    n_samples: int,
    bayes_fit: Callable[..., xr.DataTree],
    sampler_options: Mapping[str, Any],
) -> tuple[dict[str, Any], _Attempt | None]:
    """The first attempt at a cell's posterior: its table row and the attempt (None if the
    fit raised; the row then says why)."""
    name = _model_name(cov, k)
    try:
        attempt = _attempt(X, k, cov, seed, n_samples, bayes_fit, sampler_options)
    except Exception as exc:  # a failed cell is reported, not fatal to the grid
        logger.warning("Bayes fit %s failed: %s: %s", name, type(exc).__name__, exc)
        return _failed_bayes_row(exc), None
    return _bayes_row(X, k, cov, attempt), attempt


def _bayes_row(
    X: Any,
    k: int,
    cov: str,
    attempt: _Attempt,
    *,
    first: Mapping[str, Any] | None = None,
    notes: Iterable[str] = (),
) -> dict[str, Any]:
    """The Bayesian columns of a cell from its (final) attempt; ``first`` is the check of a
    failed first attempt when this one is its retry."""
    name = _model_name(cov, k)
    idata, check, w, res = attempt.idata, attempt.check, attempt.waic, attempt.loo
    retried = first is not None
    row: dict[str, Any] = {BAYES_STATUS: "ok", CONVERGED: pd.NA, RETRIED: retried}
    notes = list(notes)
    summary = loo_summary(res)
    occupancy = _occupancy(idata, X, k, cov)
    if check is not None:
        row[CONVERGED] = bool(check["passed"])
    row.update(
        {
            MAX_RHAT: np.nan if check is None else check.get("max_rhat", np.nan),
            MIN_ESS_BULK: np.nan if check is None else check.get("min_ess_bulk", np.nan),
            N_DIVERGENT: pd.NA if check is None else check.get("n_divergent", pd.NA),
            OCCUPIED: pd.NA if occupancy is None else int(np.argmax(occupancy) + 1),
            P_ALL_OCCUPIED: np.nan if occupancy is None else float(occupancy[-1]),
            ELPD_WAIC: w.elpd_waic,
            P_WAIC: w.p_waic,
            SE_WAIC: w.se,
            N_HIGH_P_WAIC: w.n_high_p_waic,
            WAIC_DEVIANCE: w.waic_deviance,
            ELPD_LOO: summary["elpd_loo"],
            P_LOO: summary["p_loo"],
            SE_LOO: summary["se_loo"],
            MAX_PARETO_K: summary["max_pareto_k"],
            PARETO_K_GOOD: summary["pareto_k_threshold"],
            N_HIGH_PARETO_K: summary["n_pareto_k_gt"],
            LOO_DEVIANCE: summary["loo_deviance"],
        }
    )
    if check is not None and not check["passed"]:
        notes.insert(
            0,
            "convergence checks failed"
            + (" after a retry" if retried else "")
            + ": "
            + "; ".join(_failure_reasons(check)),
        )
    elif retried:
        assert first is not None
        notes.insert(
            0,
            "passed its checks on the retry (first attempt: "
            + "; ".join(_failure_reasons(first))
            + ")",
        )
    if summary["n_pareto_k_gt"]:
        notes.append(
            f"{summary['n_pareto_k_gt']} observation(s) with Pareto k > "
            f"{summary['pareto_k_threshold']:.2f}"
        )
        logger.warning(
            "%s: %d observation(s) with Pareto k > %.2f (max %.2f); PSIS-LOO is unreliable "
            "for them.",
            name,
            summary["n_pareto_k_gt"],
            summary["pareto_k_threshold"],
            summary["max_pareto_k"],
        )
    if w.n_high_p_waic:
        notes.append(f"{w.n_high_p_waic} observation(s) with p_waic_i > {P_WAIC_THRESHOLD}")
    row[BAYES_NOTE] = "; ".join(notes)
    row.update(_evidence_row(idata, check))
    if occupancy is not None:
        row["_occupancy"] = occupancy
    if check is not None:
        row["_convergence"] = check
    return row


@dataclass
class _Pending:
    """A cell whose first posterior failed its checks: what a retry needs."""

    index: int
    k: int
    cov: str
    seed: int
    bayes_fit: Callable[..., xr.DataTree]
    first: _Attempt
    cell_seconds: float


def _retry_failed(
    pending: list[_Pending],
    budget: float,
    X: Any,
    n_samples: int,
    sampler_options: Mapping[str, Any],
    progress: Callable[[str], None],
) -> dict[int, tuple[dict[str, Any], _Attempt | None]]:
    """Retry failed posteriors, nearest misses first: near misses (``NEAR_MISS``) always,
    farther ones while their retries fit in ``budget`` seconds (near misses' retries do not
    count against it). Returns the new Bayesian columns (and final attempt) of each pending
    cell."""
    stronger = retry_options(sampler_options)
    out: dict[int, tuple[dict[str, Any], _Attempt | None]] = {}
    spent = 0.0
    order = sorted(pending, key=lambda p: (_miss(p.first.check or {}), p.index))
    for p in order:
        name = _model_name(p.cov, p.k)
        first_check = p.first.check or {}
        predicted = RETRY_COST_FACTOR * p.cell_seconds
        near = _miss(first_check) <= NEAR_MISS
        if not near and spent + predicted > budget:
            note = (
                f"not retried: a retry would take about {predicted:.0f} s and the retries may "
                f"add {budget - spent:.0f} s more (retry_budget; the rest went to nearer misses)"
                if spent > 0
                else f"not retried: a retry would take about {predicted:.0f} s, more than the "
                f"{budget:.0f} s the retries may add (retry_budget)"
            )
            out[p.index] = (_bayes_row(X, p.k, p.cov, p.first, notes=[note]), p.first)
            logger.info("%s %s.", name, note)
            continue
        logger.info(
            "%s failed its convergence checks (%s); sampling again with %s.",
            name,
            ", ".join(_failure_reasons(first_check)),
            stronger,
        )
        t0 = time.perf_counter()
        try:
            again = _attempt(X, p.k, p.cov, p.seed + 1, n_samples, p.bayes_fit, stronger)
        except Exception as exc:  # an unusable retry keeps the first posterior
            logger.warning("The retry of %s failed: %s: %s", name, type(exc).__name__, exc)
            note = (
                f"the retry gave no usable posterior ({type(exc).__name__}: {exc}); the first "
                "attempt is kept"
            )
            row = _bayes_row(X, p.k, p.cov, p.first, notes=[note])
            row[RETRIED] = True
            out[p.index] = (row, p.first)
        else:
            out[p.index] = (_bayes_row(X, p.k, p.cov, again, first=first_check), again)
        if not near:  # near misses are always retried and do not use up the budget
            spent += time.perf_counter() - t0
        row = out[p.index][0]
        progress(
            f"[retry] {name}: "
            + ("passed its checks" if row.get(CONVERGED) is True else "still fails its checks")
            + f" ({time.perf_counter() - t0:.0f} s)"
        )
    return out


_FAILED_CHECKS = "not estimable: the convergence checks failed"


def _store_bayes(
    result: ComparisonResult,
    row: dict[str, Any],
    name: str,
    k: int,
    b_row: dict[str, Any],
    attempt: _Attempt | None,
) -> None:
    """Put a cell's Bayesian columns in its row and its posterior in the result."""
    b_row = dict(b_row)
    occupancy = b_row.pop("_occupancy", None)
    check = b_row.pop("_convergence", None)
    row.update(b_row)
    if occupancy is not None:
        result.occupancy[name] = pd.Series(
            occupancy, index=pd.RangeIndex(1, k + 1, name="occupied components")
        )
    if check is not None:
        result.convergence[name] = check
    if attempt is not None:
        result.posteriors[name] = attempt.idata
        result.loo_results[name] = attempt.loo
        result.waic_results[name] = attempt.waic


def _evidence_row(idata: xr.DataTree, check: Mapping[str, Any] | None) -> dict[str, Any]:
    """The evidence columns of a posterior, from the ``attrs["evidence"]`` of
    :func:`_default_bayes_fit`; "not computed" for a posterior without them. A posterior that
    failed its convergence checks gets their short reasons (the evidence refuses it)."""
    row: dict[str, Any] = dict.fromkeys((LOG_EVIDENCE, EVIDENCE_DEVIANCE, SE_LOG_EVIDENCE), np.nan)
    text = idata.attrs.get("evidence")
    if text is None:
        row[EVIDENCE_NOTE] = (
            "not computed: the posterior carries no evidence (evidence=False, or a custom "
            "bayes_fit; bayesgmm.log_marginal_likelihood estimates it from a fitted "
            "BayesGaussianMixture)"
        )
        return row
    found = json.loads(text)
    value, se = found.get("log_evidence"), found.get("standard_error")
    if found.get("estimable") and value is not None and np.isfinite(value):
        row.update(
            {
                LOG_EVIDENCE: float(value),
                EVIDENCE_DEVIANCE: -2.0 * float(value),
                SE_LOG_EVIDENCE: np.nan if se is None else float(se),
                EVIDENCE_NOTE: "",
            }
        )
    elif check is not None and not check.get("passed", True):
        row[EVIDENCE_NOTE] = f"{_FAILED_CHECKS} ({_join(_failure_reasons(check))})"
    else:
        row[EVIDENCE_NOTE] = str(found.get("reason") or "not estimable")
    return row


def _progress_message(i: int, n_cells: int, name: str, row: dict[str, Any]) -> str:
    msg = f"[{i}/{n_cells}] {name}:"
    pieces = []
    if row.get(EM_STATUS) == "failed":
        pieces.append("EM failed")
    elif row.get(EM_STATUS) in ("ok", "degenerate"):
        pieces.append(
            f"EM BIC {row[BIC]:.1f}" + (" (degenerate)" if row[EM_STATUS] == "degenerate" else "")
        )
    if row.get(BAYES_STATUS) == "failed":
        pieces.append("posterior failed")
    elif row.get(BAYES_STATUS) == "ok":
        converged = row.get(CONVERGED, pd.NA)
        state = (
            ""
            if converged is pd.NA or converged is None
            else ("; converged" if converged else "; FAILED its convergence checks")
        )
        if row.get(RETRIED):
            state += " (retried)"
        pieces.append(
            f"elpd_loo {row[ELPD_LOO]:.1f} ± {row[SE_LOO]:.1f} "
            f"(max Pareto k {row[MAX_PARETO_K]:.2f}){state}"
        )
        value = row.get(LOG_EVIDENCE, np.nan)
        if value is not None and np.isfinite(value):
            pieces.append(f"log p(y | K) {value:.1f} ± {row[SE_LOG_EVIDENCE]:.2f}")
    return msg + " " + "; ".join(pieces)


def _check_k_prior(k_prior: Any) -> tuple[str, float | None]:
    """``"uniform"`` or ``("poisson", rate)`` -> (kind, rate)."""
    if isinstance(k_prior, str) and k_prior == "uniform":
        return "uniform", None
    if (
        isinstance(k_prior, tuple | list)
        and len(k_prior) == 2
        and k_prior[0] == "poisson"
        and isinstance(k_prior[1], numbers.Real)
        and np.isfinite(k_prior[1])
        and k_prior[1] > 0
    ):
        return "poisson", float(k_prior[1])
    raise ValueError(
        f"k_prior={k_prior!r} is not supported; give 'uniform' or ('poisson', rate) with a "
        "positive rate, e.g. ('poisson', 3.0)."
    )


def _add_k_posterior(
    table: pd.DataFrame, prior: str, rate: float | None
) -> tuple[pd.DataFrame, dict[str, KPosterior]]:
    """Add ``p(K | y)`` per covariance type and put the evidence columns beside BIC."""
    from .evidence import posterior_over_k

    table = table.copy()
    table[P_K_GIVEN_Y] = np.nan
    out: dict[str, KPosterior] = {}
    for cov, sub in table.groupby(COVARIANCE_TYPE, sort=False):
        values = {
            int(r[N_COMPONENTS]): (None if pd.isna(r[LOG_EVIDENCE]) else float(r[LOG_EVIDENCE]))
            for _, r in sub.iterrows()
        }
        reasons = {int(r[N_COMPONENTS]): str(r[EVIDENCE_NOTE]) for _, r in sub.iterrows()}
        if all(v is None for v in values.values()):
            name = "uniform" if rate is None else f"poisson({rate:g})"
            out[str(cov)] = KPosterior({}, {}, dict(sorted(reasons.items())), name)
            continue
        post = posterior_over_k(values, prior=prior, poisson_rate=rate)  # type: ignore[arg-type]
        excluded = {k: reasons[k] for k in post.excluded}
        out[str(cov)] = KPosterior(post.probabilities, post.prior, excluded, post.prior_name)
        for index, r in sub.iterrows():
            table.loc[index, P_K_GIVEN_Y] = post.probabilities.get(int(r[N_COMPONENTS]), np.nan)
    # the evidence beside BIC, which approximates it; the reasons beside the other notes
    columns = [c for c in table.columns if c not in (*_EVIDENCE_COLUMNS, EVIDENCE_NOTE)]
    at = columns.index(BIC) + 1 if BIC in columns else len(columns)
    columns[at:at] = list(_EVIDENCE_COLUMNS)
    at = columns.index(BAYES_NOTE) + 1 if BAYES_NOTE in columns else len(columns)
    columns.insert(at, EVIDENCE_NOTE)
    return table[columns], out


def compare_models(
    X: ArrayLike,
    *,
    n_components: Iterable[int] = range(1, 7),
    covariance_types: Iterable[str] = ("full", "tied", "diag", "spherical"),
    methods: Iterable[str] = ("em", "bayes"),
    random_state: int | np.random.RandomState | None = None,
    n_init: int = 5,
    bayes_fit: Callable[..., xr.DataTree] | None = None,
    progress: Callable[[str], Any] | None = None,
    em_options: Mapping[str, Any] | None = None,
    retry: bool = True,
    retry_budget: float = RETRY_BUDGET,
    evidence: bool = True,
    k_prior: str | tuple[str, float] = "uniform",
    model: Callable[..., Any] | None = None,
    **sampler_options: Any,
) -> ComparisonResult:
    """Fit a grid of mixtures and compare them by BIC, AIC, ICL, WAIC and PSIS-LOO.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The data; a DataFrame is passed on unchanged, so its column names reach the fits.
    n_components : iterable of int, default=range(1, 7)
        Component counts ``K`` to try.
    covariance_types : iterable of str, default=("full", "tied", "diag", "spherical")
        Also mclust's 14 model names (``"EII"`` ... ``"VVV"``; see
        :class:`~bayesgmm.em.EMGaussianMixture`) for EM. The Bayesian fit has the four
        scikit-learn types only (mclust's VVV, EEE, VVI, VII, fitted under those names);
        other mclust models get EM criteria and a row whose posterior columns are empty,
        with a note saying there is no posterior. One model under two names (``"full"``
        and ``"VVV"``) is refused: its fits would be one row twice.
    methods : iterable of {"em", "bayes"}, default=("em", "bayes")
        ``"em"``: :class:`~bayesgmm.em.EMGaussianMixture` with BIC, AIC and ICL;
        ``"bayes"``: a posterior per cell with WAIC and PSIS-LOO.
    random_state : int, RandomState or None
        Resolved once; every grid cell draws its own EM and posterior seeds from it in grid
        order, so results are reproducible whichever ``methods`` are run.
    n_init : int, default=5
        EM initialisations per cell (the best non-degenerate run is kept).
    bayes_fit : callable, optional
        ``bayes_fit(X, n_components, covariance_type=..., random_state=..., **sampler_options)``
        returning an :class:`xarray.DataTree` with ``posterior`` and ``log_likelihood``
        groups (the pointwise log-likelihood over the rows of ``X``). Default:
        ``BayesGaussianMixture(n_components, covariance_type=..., random_state=...,
        **sampler_options).fit(X, em_start=...).idata_`` from :mod:`bayesgmm.bayes`. A
        ``bayes_fit`` with an ``em_start`` parameter is given the cell's EM fit (when it ran
        and is not degenerate), so the table's EM row and the posterior's start are one fit.
    progress : callable, optional
        Called with one line of text after each grid cell (the CLI prints it). Without it,
        each line is logged at INFO level to the ``"bayesgmm"`` logger instead.
    em_options : mapping, optional
        Further :class:`~bayesgmm.em.EMGaussianMixture` parameters (``tol``, ``max_iter``,
        ``reg_covar``, ``init_params``...). By default EM runs to a tight convergence
        (``tol = 1e-5 / n_samples``, a change of the total log-likelihood below 1e-5, and
        ``max_iter=5000``) so that BIC, AIC and ICL are those of the converged optimum.
    retry : bool, default=True
        Sample a posterior that fails its convergence checks once more, with the stronger
        settings of :func:`~bayesgmm.selection.retry_options`, after the grid, nearest misses
        first, as long as the retries fit in ``retry_budget``. A posterior that fails
        stays in the table (``converged`` is False) but is excluded from the WAIC and
        PSIS-LOO choice, and the verdict names it with the reason.
    retry_budget : float, default=0.3
        Near misses (R-hat up to about 1.05 and ESS above about 80, few divergences) are
        always retried; farther misses, typically overfitted mixtures whose chains sit in
        different modes, only while their retries add at most this fraction of the time the
        grid took without them (``RETRY_BUDGET``). Each retry is predicted to take
        ``RETRY_COST_FACTOR`` (2.5) times its cell's first attempt; the failed posteriors
        nearest to passing are retried first, and one that does not fit in what is left of
        the budget is not retried (its note says so). ``float("inf")`` retries every failure.
        Measured on iris (4 covariance types, K = 1..6; ``bench/compare_time.py``), retrying
        every failure added 24 % and 69 % to the grid's time in two runs and rescued none of
        its seven failures; with this budget the retries added 17 % of CPU time and rescued
        the one near miss.
    evidence : bool, default=True
        Estimate each posterior's log marginal likelihood ``log p(y | K)`` by bridge sampling
        (:func:`~bayesgmm.log_marginal_likelihood`; only for posteriors that passed
        their checks) and ``p(K | y)`` per covariance type. Only the default ``bayes_fit``
        computes it (a custom one gets "not computed"); False skips it.
    k_prior : "uniform" or ("poisson", rate), default="uniform"
        The prior on ``K`` of ``p(K | y)``: uniform over the grid, or a Poisson(rate)
        truncated to it; either is renormalised over the ``K`` whose evidence is estimable.
    model : callable, optional
        Your own PyMC model for every posterior of the grid (called per cell with that
        cell's ``n_components`` and ``covariance_type``), as
        :class:`~bayesgmm.BayesGaussianMixture`'s ``model`` (contract in
        :mod:`bayesgmm._custom`); ``None``: :func:`bayesgmm.build_model`. Only with the
        default ``bayes_fit``. The evidence ``log p(y | K)`` of a custom model is bridged on
        its own PyMC log-posterior (hyper-priors included), so ``p(K | y)`` compares the
        ``K`` of that model.
    **sampler_options
        Passed to ``bayes_fit``.

    Returns
    -------
    ComparisonResult
        ``.table`` (one row per ``(covariance_type, n_components)``), ``.best``,
        ``.verdict``, ``.loo_compare`` and ``.plot()``.

    Raises
    ------
    ValueError, TypeError
        Bad ``X`` or grid. A fit that raises does not stop the grid: its row is marked
        ``"failed"`` with the reason.

    Notes
    -----
    A degenerate EM fit (a collapsed component) keeps its values in the table but is never
    ranked or chosen by BIC, AIC or ICL; a posterior that failed its convergence checks
    (``converged`` False: R-hat, ESS, divergences or E-BFMI) is never ranked or chosen by
    WAIC or PSIS-LOO, since an elpd estimated from chains that disagree cannot be trusted.
    Overfitted mixtures (more components than the data support) have multimodal posteriors
    that NUTS cannot mix between, so this is common for large ``K``; the columns
    ``occupied_components`` and ``p_all_occupied`` show how many components the posterior
    really uses. High Pareto ``k`` and ``p_waic_i > 0.4`` are
    counted per model and discussed in the verdict; the per-model ArviZ warning about
    Pareto ``k`` is replaced by that report.

    Examples
    --------
    >>> from bayesgmm import load_acidity
    >>> res = compare_models(load_acidity(), n_components=range(1, 4),
    ...                      covariance_types=("full",), methods=("em",), random_state=0)
    >>> res.best["bic"]
    ('full', 2)
    """
    prior_kind, prior_rate = _check_k_prior(k_prior)
    X_checked = check_X(X)
    # Units the fits cannot work in are refused once, up front, not as a grid of failed cells.
    check_scale(X_checked, feature_names=getattr(X, "columns", None))
    n_samples = X_checked.shape[0]
    ks, cov_types, methods = _check_grid(n_components, covariance_types, methods, n_samples)
    check_positive("n_init", n_init, integer=True)
    if isinstance(retry_budget, bool) or not isinstance(retry_budget, numbers.Real):
        raise TypeError(
            f"retry_budget must be a number, got {retry_budget!r} ({type(retry_budget).__name__})."
        )
    if not retry_budget >= 0:  # NaN fails too
        raise ValueError(
            f"retry_budget={retry_budget!r} is invalid; it must be >= 0 (a share of the grid's "
            "time; float('inf') retries every failed posterior)."
        )
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable or None, got {type(progress).__name__}.")
    em_options = dict(em_options or {})
    em_options.setdefault("tol", EM_TOTAL_TOL / n_samples)
    em_options.setdefault("max_iter", EM_MAX_ITER)
    clash = {"n_components", "covariance_type", "n_init", "random_state"} & set(em_options)
    if clash:
        raise ValueError(
            f"em_options may not set {sorted(clash)}; use compare_models' own arguments."
        )
    if model is not None:
        if "bayes" not in methods:
            raise ValueError(
                f"model= was given but methods={methods!r} does not include 'bayes'; add "
                "'bayes' or drop model=."
            )
        if bayes_fit is not None:
            raise ValueError(
                "model= applies to the default bayes_fit only; build your model inside your "
                "own bayes_fit instead, or drop bayes_fit=."
            )
        if not callable(model):
            raise TypeError(
                "model must be a function (X, n_components, covariance_type, priors) -> "
                f"pymc.Model, or None; got {type(model).__name__}."
            )
        sampler_options = {**sampler_options, "model": model}
    if "bayes" in methods:
        if bayes_fit is None:
            try:
                from .bayes import BayesGaussianMixture  # noqa: F401
            except ImportError as exc:
                raise ImportError(
                    "methods includes 'bayes' but bayesgmm.bayes.BayesGaussianMixture cannot "
                    f"be imported ({exc}); pass bayes_fit=... or methods=('em',)."
                ) from exc
            bayes_fit = (
                _default_bayes_fit
                if evidence
                else functools.partial(_default_bayes_fit, evidence=False)
            )
        elif not callable(bayes_fit):
            raise TypeError(f"bayes_fit must be callable, got {type(bayes_fit).__name__}.")
    elif sampler_options:
        raise ValueError(
            f"Sampler options {sorted(sampler_options)} were given but methods={methods!r} "
            "does not include 'bayes'."
        )

    rs = check_random_state(random_state)
    n_features = X_checked.shape[1]
    rows: list[dict[str, Any]] = []
    pending: list[_Pending] = []
    t_grid = time.perf_counter()
    result = ComparisonResult(table=pd.DataFrame())
    n_cells = len(ks) * len(cov_types)
    for cov in cov_types:
        for k in ks:
            em_seed, bayes_seed = (int(s) for s in rs.randint(np.iinfo(np.int32).max, size=2))
            name = _model_name(cov, k)
            row: dict[str, Any] = {
                COVARIANCE_TYPE: cov,
                N_COMPONENTS: k,
                MODEL: name,
                N_PARAMETERS: n_parameters(k, n_features, cov),
            }
            gm = None
            if "em" in methods:
                em_row, gm = _fit_em(X, k, cov, em_seed, n_samples, n_init, em_options)
                row.update(em_row)
                if gm is not None:
                    result.em_models[name] = gm
            else:
                row.update({EM_STATUS: "not run", DEGENERATE: False, EM_CONVERGED: pd.NA})
                row.update({EM_NOTE: "", **dict.fromkeys(_EM_COLUMNS, np.nan)})
            bayes_cov = bayes_covariance_type(cov)
            if "bayes" in methods and bayes_cov is None:
                row.update(
                    _no_posterior_row(
                        "not run",
                        f"no posterior: the Bayesian fit has no {cov} model (only full, tied, "
                        "diag and spherical, i.e. mclust's VVV, EEE, VVI and VII)",
                        "not computed: no posterior for this covariance model",
                    )
                )
            elif "bayes" in methods:
                assert bayes_fit is not None
                cell_fit = bayes_fit
                if gm is not None and not gm.degenerate_.any() and _takes_em_start(bayes_fit):
                    # one EM fit per model: the table's EM row starts and pivots the posterior
                    start = gm
                    if bayes_cov != cov:  # an mclust alias: the same fit under the Bayes name
                        start = copy.deepcopy(gm)
                        start.covariance_type = bayes_cov
                    cell_fit = functools.partial(bayes_fit, em_start=start)
                t_cell = time.perf_counter()
                b_row, attempt = _fit_bayes(
                    X, k, bayes_cov, bayes_seed, n_samples, cell_fit, sampler_options
                )
                _store_bayes(result, row, name, k, b_row, attempt)
                if (
                    retry
                    and attempt is not None
                    and attempt.check is not None
                    and not attempt.check["passed"]
                ):
                    pending.append(
                        _Pending(
                            len(rows), k, bayes_cov, bayes_seed, cell_fit, attempt,
                            time.perf_counter() - t_cell,
                        )
                    )  # fmt: skip
            else:
                row.update(
                    _no_posterior_row(
                        "not run", "", "not computed: no posterior was fitted (methods=('em',))"
                    )
                )
            rows.append(row)
            message = _progress_message(len(rows), n_cells, name, row)
            if progress is not None:
                progress(message)
            else:
                logger.info(message)

    if pending:
        # Retries come after the grid, nearest misses first, within a budget that is a share
        # of the grid's own time: failures of overfitted mixtures are common, slow to sample
        # and rarely rescued, and must not double the cost of a comparison.
        budget = float(retry_budget) * (time.perf_counter() - t_grid)
        report = progress if progress is not None else logger.info
        redone = _retry_failed(pending, budget, X, n_samples, sampler_options, report)
        for index, (b_row, attempt) in redone.items():
            row = rows[index]
            name, k = row[MODEL], int(row[N_COMPONENTS])
            _store_bayes(result, row, name, k, b_row, attempt)

    table = pd.DataFrame(rows)
    table[DEGENERATE] = table[DEGENERATE].astype(bool)
    table[EM_CONVERGED] = table[EM_CONVERGED].astype("boolean")
    table[CONVERGED] = table[CONVERGED].astype("boolean")
    table[RETRIED] = table[RETRIED].astype(bool)
    for column in (N_HIGH_P_WAIC, N_HIGH_PARETO_K, N_DIVERGENT, OCCUPIED):
        table[column] = pd.to_numeric(table[column]).astype("Int64")
    if not evidence:
        table.loc[table[BAYES_STATUS].eq("ok"), EVIDENCE_NOTE] = (
            "not computed: evidence=False (on the command line: --no-evidence)"
        )
    table, result.k_posterior = _add_k_posterior(table, prior_kind, prior_rate)
    result.k_prior = prior_kind if prior_rate is None else f"{prior_kind}({prior_rate:g})"
    result.table = _add_ranks(table)

    eligible = set(result.table.loc[_eligible(result.table, "loo"), MODEL])
    trusted = {m: r for m, r in result.loo_results.items() if m in eligible}
    if trusted:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result.loo_compare = azs.compare(trusted, round_to="none")
        for w in caught:
            note = f"arviz_stats.compare warns: {w.message}"
            if note not in result.notes:
                result.notes.append(note)
                logger.warning(note)
    return result
