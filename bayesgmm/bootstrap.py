"""Bootstrap uncertainty for the EM estimate: standard errors and percentile intervals.

EM returns one set of parameters. Refitting it to many perturbed copies of the data shows how
much those parameters move (Efron & Tibshirani 1993; the idea of mclust's ``MclustBootstrap``,
Scrucca et al. 2016). Two perturbations, both as sample weights on the unchanged rows:

``"nonparametric"``
    Resample the ``n`` rows with replacement. A resample is the vector of how often each row
    was drawn, ``c ~ Multinomial(n, 1/n, ..., 1/n)``, and EM with the integer frequency weights
    ``c`` is EM on the resample (:class:`~bayesgmm.EMGaussianMixture` treats integer
    weights as repeated rows), so no copy of the data is made.
``"weighted"``
    The weighted likelihood bootstrap (Newton & Raftery 1994): EM maximises the weighted
    log-likelihood ``sum_i w_i log f(x_i)`` with ``w = n * (D_1, ..., D_n)`` and
    ``D ~ Dirichlet(1, ..., 1)``. Every row keeps a positive weight, so a resample never loses
    a small component's only points. EM's sample weights need not be integers: the E-step,
    the M-step, the standardisation and the degeneracy rule all use them as real-valued
    weights, and EM then maximises exactly this weighted likelihood.

Each replicate starts EM from the fit itself (its weights, means and precisions as
``*_init``, one start) and iterates to a tight tolerance, so a replicate is the optimum near
the fit rather than a possibly different mode found from a new random start.

**Label alignment.** EM sorts its components by their means, so a replicate whose means
moved can come back in another order, and a replicate may also swap two components. Each
replicate's labels are matched to the fit by a minimum-cost assignment (Hungarian algorithm)
whose cost is the cross-entropy ``-sum_i r_ij log p_ik`` between the replicate's
responsibilities ``r`` and the fit's ``p`` on the data: the cost of the posterior
relabelling in :mod:`bayesgmm.relabel` (its ``"pivot"`` method). Responsibilities rather than
distances between means, because they do not depend on the units, they tell apart
components that share a mean and differ in covariance, and bootstrap and posterior intervals
are then labelled by the same rule.
"""

from __future__ import annotations

import logging
import numbers
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import ArrayLike
from sklearn.utils.validation import check_is_fitted

from ._numerics import responsibilities
from ._validation import check_choice, check_positive, check_random_state, check_sample_weight
from ._version import __version__
from .exceptions import ConvergenceWarning, DegenerateMixtureWarning
from .relabel import MAX_RELABEL_POINTS, find_permutations

if TYPE_CHECKING:
    from .em import EMGaussianMixture

__all__ = ["BOOTSTRAP_KINDS", "BootstrapResult", "bootstrap"]

logger = logging.getLogger("bayesgmm")

BOOTSTRAP_KINDS = ("nonparametric", "weighted")
#: Status of a replicate; only ``"ok"`` replicates enter the table by default.
STATUSES = ("ok", "not converged", "degenerate", "failed")
#: Default convergence of a replicate: the *total* log-likelihood changes by less than this
#: (``tol = BOOTSTRAP_TOL / n_samples`` on EM's per-sample scale).
BOOTSTRAP_TOL = 1e-5
#: Default iteration cap of a replicate (at least the fit's ``max_iter``).
BOOTSTRAP_MAX_ITER = 1000


# ---------------------------------------------------------------- covariance structure
def _structure(covariance_type: str) -> tuple[bool, bool, bool]:
    """(shared, correlated, isotropic) for a scikit-learn or an mclust covariance name.

    ``shared``: one covariance for every component; ``correlated``: off-diagonal entries are
    free; ``isotropic``: one variance per component for all features. mclust names read
    volume, shape, orientation, each ``E`` (equal), ``V`` (varying) or ``I`` (identity).
    """
    known = {
        "full": (False, True, False),
        "tied": (True, True, False),
        "diag": (False, False, False),
        "spherical": (False, False, True),
    }
    if covariance_type in known:
        return known[covariance_type]
    name = covariance_type.upper()
    if len(name) == 3 and set(name) <= set("EVI"):
        shared = "V" not in name
        return shared, name[2] != "I", name[1:] == "II"
    # An unknown structure: treat it as general (every matrix entry its own).
    return False, True, False


def _full_covariances(covariances: np.ndarray, covariance_type: str, k: int, d: int) -> np.ndarray:
    """Any stored covariance as one full matrix per component, shape ``(K, D, D)``.

    The storage follows :mod:`bayesgmm._numerics` (``(K, D, D)``, ``(D, D)``, ``(K, D)``,
    ``(K,)``); for other covariance names the shape decides, the name breaking the ties
    that arise when ``K == D``.
    """
    cov = np.asarray(covariances, dtype=np.float64)
    _, correlated, isotropic = _structure(covariance_type)
    eye = np.eye(d)
    if cov.ndim == 3:
        return cov
    if cov.ndim == 2:
        if cov.shape == (d, d) and (correlated or cov.shape != (k, d)):
            return np.broadcast_to(cov, (k, d, d)).copy()
        if cov.shape == (k, d):
            return cov[:, :, None] * eye
        if cov.shape == (1, d):
            return np.broadcast_to(cov[0][:, None] * eye, (k, d, d)).copy()
    if cov.ndim == 1:
        if cov.shape == (k,) and (isotropic or d != k):
            return cov[:, None, None] * eye
        if cov.shape == (d,):
            return np.broadcast_to(cov[:, None] * eye, (k, d, d)).copy()
        if cov.shape == (1,):
            return np.broadcast_to(cov[0] * eye, (k, d, d)).copy()
    if cov.ndim == 0:
        return np.broadcast_to(float(cov) * eye, (k, d, d)).copy()
    raise ValueError(
        f"Cannot read covariances of shape {cov.shape} for covariance_type="
        f"{covariance_type!r} with {k} components and {d} features."
    )


def _derived(
    weights: np.ndarray, means: np.ndarray, covariances: np.ndarray, covariance_type: str
) -> dict[str, np.ndarray]:
    """Weights, means, standard deviations and correlations of one parameter set."""
    k, d = means.shape
    cov = _full_covariances(covariances, covariance_type, k, d)
    sds = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / (sds[:, :, None] * sds[:, None, :])
    return {"weights": weights, "means": means, "stds": sds, "corr": corr, "cov": cov}


# ------------------------------------------------------------------------- result
@dataclass
class BootstrapResult:
    """Replicates of an EM fit and their summaries, as the bootstrap returns them.

    Attributes
    ----------
    replicates : xarray.Dataset
        One entry per replicate along ``replicate``, labels aligned to the fit:
        ``weights`` (replicate, component), ``means`` (replicate, component, feature),
        ``stds`` (replicate, component, feature), ``corr`` (replicate, component, feature,
        feature_bis; present when the covariance model has correlations and ``D > 1``) and
        ``covariances`` (replicate, component, feature, feature_bis, full matrices whatever
        the covariance type); per replicate ``status`` (``"ok"``, ``"not converged"``,
        ``"degenerate"`` or ``"failed"``), ``converged``, ``degenerate``, ``n_iter``,
        ``lower_bound`` (the replicate's weighted mean log-likelihood) and ``permutation``
        (``permutation[b, k]`` is the replicate component that received the fit's label
        ``k``). A ``"failed"`` replicate (EM raised an error) has NaN parameters.
        ``attrs`` hold the provenance: kind, n_boot, the seed, tolerances, counts and the
        package version.
    estimate : xarray.Dataset
        The fit's own values of the same variables, without the ``replicate`` dimension.
    kind : str
        ``"nonparametric"`` or ``"weighted"``.
    covariance_type : str
        The fit's covariance type.
    """

    replicates: xr.Dataset
    estimate: xr.Dataset
    kind: str
    covariance_type: str
    _shared: bool = field(repr=False, default=False)
    _isotropic: bool = field(repr=False, default=False)

    @property
    def counts(self) -> dict[str, int]:
        """Number of replicates per status (every status listed, zeros included)."""
        status = self.replicates["status"].values
        return {s: int((status == s).sum()) for s in STATUSES}

    @property
    def n_boot(self) -> int:
        """Number of replicates run."""
        return int(self.replicates.sizes["replicate"])

    def table(self, interval: float = 0.89, *, include_unconverged: bool = False) -> pd.DataFrame:
        """Tidy table of estimates, bootstrap standard errors and percentile intervals.

        Parameters
        ----------
        interval : float, default=0.89
            Probability mass of the equal-tailed percentile interval (the ``(1 - interval) /
            2`` and ``(1 + interval) / 2`` quantiles of the replicates). The default matches
            the posterior intervals of :func:`bayesgmm.plots.posterior_vs_em`, so the two can
            be set side by side; pass ``0.95`` for the conventional level.
        include_unconverged : bool, default=False
            Also use replicates that stopped at the iteration cap before meeting the
            tolerance. Degenerate and failed replicates are never used: their parameters are
            spurious or missing.

        Returns
        -------
        pandas.DataFrame
            One row per parameter element, with columns ``parameter`` (a label such as
            ``"means[1, waiting]"``), ``variable`` (``weights``, ``means``, ``stds`` or
            ``corr``), ``component`` (missing for a shared covariance), ``feature`` and
            ``feature_bis`` (empty where they do not apply; correlations list each pair
            once, ``feature`` after ``feature_bis``), ``estimate`` (the fit's value),
            ``std_error`` (standard deviation over the replicates), ``lower``, ``upper`` and
            ``n_replicates`` (how many replicates were used). ``attrs`` hold ``interval``,
            ``kind``, ``n_boot`` and the per-status ``counts``.

        Raises
        ------
        ValueError
            If ``interval`` is not in (0, 1), or no replicate is usable.
        """
        interval = _check_interval(interval)
        status = self.replicates["status"].values
        keep = status == "ok"
        if include_unconverged:
            keep |= status == "not converged"
        n_used = int(keep.sum())
        if n_used < 2:
            raise ValueError(
                f"Only {n_used} of {self.n_boot} bootstrap replicates are usable "
                f"({self._counts_text()}); standard errors need at least 2. Run more "
                "replicates (n_boot), or check the fit: a fit whose replicates collapse has "
                "too many components for the data."
            )
        q = [(1.0 - interval) / 2.0, (1.0 + interval) / 2.0]
        reps = self.replicates.isel(replicate=np.flatnonzero(keep))
        features = [str(f) for f in self.estimate["feature"].values]
        k = self.estimate.sizes["component"]
        rows: list[dict[str, Any]] = []

        def add(var: str, comp: int | None, f: str, fb: str, est: float, draws: np.ndarray) -> None:
            lo, hi = np.quantile(draws, q)
            where = [] if comp is None else [str(comp)]
            where += [x for x in (f, fb) if x]
            rows.append(
                {
                    "parameter": f"{var}[{', '.join(where)}]",
                    "variable": var,
                    "component": pd.NA if comp is None else comp,
                    "feature": f,
                    "feature_bis": fb,
                    "estimate": float(est),
                    "std_error": float(np.std(draws, ddof=1)),
                    "lower": float(lo),
                    "upper": float(hi),
                    "n_replicates": n_used,
                }
            )

        w, w_est = reps["weights"].values, self.estimate["weights"].values
        for c in range(k):
            add("weights", c, "", "", w_est[c], w[:, c])
        mu, mu_est = reps["means"].values, self.estimate["means"].values
        for c in range(k):
            for j, name in enumerate(features):
                add("means", c, name, "", mu_est[c, j], mu[:, c, j])
        comps: list[int | None] = [None] if self._shared else list(range(k))
        sd, sd_est = reps["stds"].values, self.estimate["stds"].values
        for c in comps:
            cc = 0 if c is None else c
            names = features[:1] if self._isotropic else features
            for j, name in enumerate(names):
                add("stds", c, "" if self._isotropic else name, "", sd_est[cc, j], sd[:, cc, j])
        if "corr" in reps:
            r, r_est = reps["corr"].values, self.estimate["corr"].values
            for c in comps:
                cc = 0 if c is None else c
                for i in range(len(features)):
                    for j in range(i):
                        add("corr", c, features[i], features[j], r_est[cc, i, j], r[:, cc, i, j])
        out = pd.DataFrame(rows)
        out["component"] = out["component"].astype("Int64")
        out.attrs.update(interval=interval, kind=self.kind, n_boot=self.n_boot, counts=self.counts)
        return out

    def _counts_text(self) -> str:
        return ", ".join(f"{n} {s}" for s, n in self.counts.items() if n)

    def __repr__(self) -> str:
        k = self.estimate.sizes["component"]
        return (
            f"BootstrapResult(kind={self.kind!r}, n_boot={self.n_boot}, n_components={k}, "
            f"covariance_type={self.covariance_type!r}; {self._counts_text()})"
        )


def _check_interval(interval: Any) -> float:
    if isinstance(interval, bool) or not isinstance(interval, numbers.Real):
        raise TypeError(f"interval must be a number in (0, 1), got {interval!r}.")
    value = float(interval)
    if not 0.0 < value < 1.0:
        raise ValueError(f"interval={interval!r} is invalid; it must lie strictly in (0, 1).")
    return value


# ----------------------------------------------------------------------- the driver
def _replicate_weights(
    kind: str, base: np.ndarray, n_rows: int, rng: np.random.RandomState
) -> np.ndarray:
    """One replicate's sample weights (``base`` are the fit's frequency weights)."""
    total = base.sum()
    if kind == "nonparametric":
        # Draw round(total) rows with probability proportional to their frequency weight.
        n_draw = max(round(float(total)), 1)
        return rng.multinomial(n_draw, base / total).astype(np.float64)
    # Dirichlet(base) scaled to the total: a row of frequency m is m rows each with an
    # Exp(1) weight, whose sum is Gamma(m, 1); rows of weight 0 stay at 0.
    g = np.zeros(n_rows)
    pos = base > 0
    g[pos] = rng.standard_gamma(base[pos])
    return g * (total / g.sum())


def _alignment(rep: EMGaussianMixture, X_match: np.ndarray, pivot: np.ndarray) -> np.ndarray:
    """``perm`` with ``perm[k]`` = the replicate component that takes the fit's label ``k``.

    The minimum-cost assignment of :func:`bayesgmm.relabel.find_permutations` (``"pivot"``):
    cost ``-sum_i r_ij log p_ik`` between the replicate's responsibilities ``r`` and the
    fit's ``pivot`` on the rows ``X_match``.
    """
    resp = responsibilities(rep._weighted_log_prob(X_match))[0]
    return find_permutations(resp[None], pivot)[0][0]


def bootstrap(
    em: EMGaussianMixture,
    X: ArrayLike,
    *,
    n_boot: int = 200,
    kind: str = "nonparametric",
    sample_weight: ArrayLike | None = None,
    random_state: int | np.random.Generator | np.random.RandomState | None = None,
    tol: float | None = None,
    max_iter: int | None = None,
    progress: Callable[[str], Any] | None = None,
) -> BootstrapResult:
    """Bootstrap the EM fit: refit it to ``n_boot`` reweighted copies of the data.

    Parameters
    ----------
    em : EMGaussianMixture
        A fitted estimator; it is not modified.
    X : array-like of shape (n_samples, n_features)
        The data ``em`` was fitted to.
    n_boot : int, default=200
        Number of bootstrap replicates. A few hundred suffice for standard errors; intervals
        at 0.95 want a thousand or more (Efron & Tibshirani 1993, ch. 13).
    kind : {"nonparametric", "weighted"}, default="nonparametric"
        ``"nonparametric"``: rows resampled with replacement (as multinomial frequency
        weights); ``"weighted"``: the weighted likelihood bootstrap, Dirichlet(1, ..., 1)
        weights times ``n`` (Newton & Raftery 1994). See the module notes.
    sample_weight : array-like of shape (n_samples,), optional
        The frequency weights the fit used, if any: a row of weight ``m`` counts as ``m``
        rows (resampled with probability ``m / sum(w)``, or given a Gamma(m, 1) weight).
    random_state : int, numpy.random.Generator, RandomState or None, default=None
        Seed of the resampling; the same seed gives the same replicates.
    tol : float, optional
        EM tolerance of each replicate on its per-sample scale. Default
        ``BOOTSTRAP_TOL / n_samples`` (a change of the total log-likelihood below 1e-5):
        tighter than a usual fit's, because a replicate started at the fit and stopped early
        stays near the fit and understates the spread.
    max_iter : int, optional
        Iteration cap of each replicate; default ``max(em.max_iter, 1000)``.
    progress : callable, optional
        Called with one line of text after each replicate. Without it, each line is logged
        at DEBUG level to the ``"bayesgmm"`` logger.

    Returns
    -------
    BootstrapResult
        The aligned replicates (:class:`xarray.Dataset`), the fit's estimate, per-status
        counts and :meth:`~bayesgmm.BootstrapResult.table` (standard errors and percentile
        intervals).

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``em`` is not fitted.
    ValueError
        For ``n_boot < 1``, an unknown ``kind``, or ``X`` of another width than the fit's.

    Warns
    -----
    ConvergenceWarning
        When some replicates did not converge, collapsed or failed: says how many and that
        :meth:`~bayesgmm.BootstrapResult.table` leaves them out.

    Notes
    -----
    The replicates inherit the fit's settings (covariance type, ``reg_covar``) and start from
    its parameters; the fit's ``n_init``, ``init_params`` and ``random_state`` play no part.
    Replicates whose EM hit ``max_iter``, collapsed (``degenerate_``) or raised an error are
    kept in ``replicates`` with their ``status`` and counted, and the table uses the ``"ok"``
    ones. A replicate started at the fit finds the optimum near it, so the intervals describe
    the uncertainty of that optimum, not the chance that EM finds another mode.

    References
    ----------
    Efron, B. & Tibshirani, R. J. (1993). *An Introduction to the Bootstrap*. Chapman & Hall.

    Newton, M. A. & Raftery, A. E. (1994). Approximate Bayesian inference with the weighted
    likelihood bootstrap. *Journal of the Royal Statistical Society B*, 56(1), 3-48.

    Scrucca, L., Fop, M., Murphy, T. B. & Raftery, A. E. (2016). mclust 5: clustering,
    classification and density estimation using Gaussian finite mixture models. *The R
    Journal*, 8(1), 289-317 (``MclustBootstrap``).

    Examples
    --------
    >>> from bayesgmm import EMGaussianMixture, load_faithful
    >>> X = load_faithful()
    >>> em = EMGaussianMixture(2, random_state=0).fit(X)
    >>> boot = em.bootstrap(X, n_boot=50, random_state=1)
    >>> boot.counts["ok"]
    50
    >>> table = boot.table(0.95)
    >>> table.loc[table["parameter"] == "weights[0]", ["estimate", "std_error"]].round(2)
       estimate  std_error
    0      0.36       0.03
    """
    return _bootstrap(
        em,
        X,
        n_boot=n_boot,
        kind=kind,
        sample_weight=sample_weight,
        random_state=random_state,
        tol=tol,
        max_iter=max_iter,
        progress=progress,
        stacklevel=3,
    )


def _bootstrap(
    em: EMGaussianMixture,
    X: ArrayLike,
    *,
    n_boot: int = 200,
    kind: str = "nonparametric",
    sample_weight: ArrayLike | None = None,
    random_state: int | np.random.Generator | np.random.RandomState | None = None,
    tol: float | None = None,
    max_iter: int | None = None,
    progress: Callable[[str], Any] | None = None,
    stacklevel: int = 2,
) -> BootstrapResult:
    """:func:`bootstrap`, warning at ``stacklevel`` (the caller of the public entry point)."""
    from .em import EMGaussianMixture

    if not isinstance(em, EMGaussianMixture):
        raise TypeError(
            f"bootstrap needs a fitted EMGaussianMixture, got {type(em).__name__}. Fit one "
            "with EMGaussianMixture(n_components).fit(X)."
        )
    check_is_fitted(em)
    if isinstance(n_boot, bool) or not isinstance(n_boot, numbers.Integral):
        raise TypeError(f"n_boot must be an integer, got {n_boot!r} ({type(n_boot).__name__}).")
    if n_boot < 1:
        raise ValueError(f"n_boot={n_boot} is invalid; it must be at least 1 (e.g. 200).")
    check_choice("kind", kind, BOOTSTRAP_KINDS)
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable or None, got {type(progress).__name__}.")
    try:
        Xv = em._check_X_predict(X)  # same width (and names) as the fit
    except ValueError as exc:
        raise ValueError(
            f"{exc} The bootstrap refits the estimator to its own data: pass the X it was "
            "fitted to."
        ) from exc
    n, d = Xv.shape
    base = check_sample_weight(sample_weight, n)
    if tol is None:
        tol = BOOTSTRAP_TOL / float(base.sum())
    check_positive("tol", tol, allow_zero=True)
    if max_iter is None:
        max_iter = max(int(em.max_iter), BOOTSTRAP_MAX_ITER)
    check_positive("max_iter", max_iter, integer=True)
    rng = check_random_state(random_state)
    cov_type = em.covariance_type
    k = int(em.n_components)
    shared, correlated, isotropic = _structure(cov_type)
    names = (
        [str(c) for c in em.feature_names_in_]
        if hasattr(em, "feature_names_in_")
        else [f"x{j}" for j in range(d)]
    )

    template = EMGaussianMixture(
        **{
            **em.get_params(deep=False),
            "weights_init": em.weights_,
            "means_init": em.means_,
            "precisions_init": em.precisions_,
            "n_init": 1,
            "warm_start": False,
            "verbose": 0,
            "tol": tol,
            "max_iter": max_iter,
            "random_state": 0,  # unused: the start is the fit's parameters
        }
    )
    # Rows on which labels are matched: all, or an evenly spaced subset of a large data set.
    m = min(n, MAX_RELABEL_POINTS)
    rows = np.unique(np.linspace(0, n - 1, m).round().astype(np.int64))
    X_match = np.ascontiguousarray(Xv[rows])
    pivot = responsibilities(em._weighted_log_prob(X_match))[0]

    est = _derived(em.weights_, em.means_, em.covariances_, cov_type)
    weights = np.full((n_boot, k), np.nan)
    means = np.full((n_boot, k, d), np.nan)
    covs = np.full((n_boot, k, d, d), np.nan)
    status = np.empty(n_boot, dtype=object)
    converged = np.zeros(n_boot, dtype=bool)
    degenerate = np.zeros(n_boot, dtype=bool)
    n_iter = np.zeros(n_boot, dtype=np.int64)
    lower_bound = np.full(n_boot, np.nan)
    perms = np.tile(np.arange(k), (n_boot, 1))
    first_error = ""
    for b in range(n_boot):
        w = _replicate_weights(kind, base, n, rng)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                warnings.simplefilter("ignore", DegenerateMixtureWarning)
                rep = template.fit(Xv, sample_weight=w)
        except (ValueError, np.linalg.LinAlgError) as exc:
            status[b] = "failed"
            first_error = first_error or f"replicate {b + 1}: {exc}"
            logger.debug("bootstrap replicate %d failed: %s", b + 1, exc)
        else:
            perm = _alignment(rep, X_match, pivot)
            perms[b] = perm
            weights[b] = rep.weights_[perm]
            means[b] = rep.means_[perm]
            covs[b] = _full_covariances(rep.covariances_, cov_type, k, d)[perm]
            converged[b] = bool(rep.converged_)
            degenerate[b] = bool(np.asarray(rep.degenerate_).any())
            n_iter[b] = int(rep.n_iter_)
            lower_bound[b] = float(rep.lower_bound_)
            status[b] = "degenerate" if degenerate[b] else "ok" if converged[b] else "not converged"
        message = f"bootstrap replicate {b + 1}/{n_boot}: {status[b]}"
        if progress is not None:
            progress(message)
        else:
            logger.debug(message)

    sds = np.sqrt(np.diagonal(covs, axis1=-2, axis2=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = covs / (sds[..., :, None] * sds[..., None, :])
    coords = {"component": np.arange(k), "feature": names, "feature_bis": names}
    rep_vars: dict[str, Any] = {
        "weights": (("replicate", "component"), weights),
        "means": (("replicate", "component", "feature"), means),
        "stds": (("replicate", "component", "feature"), sds),
        "covariances": (("replicate", "component", "feature", "feature_bis"), covs),
    }
    est_vars: dict[str, Any] = {
        "weights": (("component",), est["weights"]),
        "means": (("component", "feature"), est["means"]),
        "stds": (("component", "feature"), est["stds"]),
        "covariances": (("component", "feature", "feature_bis"), est["cov"]),
    }
    if correlated and d > 1:
        rep_vars["corr"] = (("replicate", "component", "feature", "feature_bis"), corr)
        est_vars["corr"] = (("component", "feature", "feature_bis"), est["corr"])
    rep_vars.update(
        status=(("replicate",), status.astype(str)),
        converged=(("replicate",), converged),
        degenerate=(("replicate",), degenerate),
        n_iter=(("replicate",), n_iter),
        lower_bound=(("replicate",), lower_bound),
        permutation=(("replicate", "component"), perms),
    )
    result = BootstrapResult(
        replicates=xr.Dataset(rep_vars, coords={"replicate": np.arange(n_boot), **coords}),
        estimate=xr.Dataset(est_vars, coords=coords),
        kind=kind,
        covariance_type=cov_type,
        _shared=shared,
        _isotropic=isotropic,
    )
    counts = result.counts
    result.replicates.attrs.update(
        bayesgmm_version=__version__,
        kind=kind,
        n_boot=n_boot,
        covariance_type=cov_type,
        random_state=repr(random_state),
        tol=float(tol),
        max_iter=int(max_iter),
        first_error=first_error,
        **{f"n_{s.replace(' ', '_')}": c for s, c in counts.items()},
    )
    bad = n_boot - counts["ok"]
    if bad:
        warnings.warn(
            f"{bad} of {n_boot} bootstrap replicates are not usable ({result._counts_text()}); "
            "BootstrapResult.table() leaves them out (include_unconverged=True keeps the "
            "unconverged ones). Collapsed replicates mean that a component rests on very few "
            "points (the data may support fewer components); unconverged ones ask for a "
            "larger max_iter.",
            ConvergenceWarning,
            stacklevel=stacklevel,
        )
    return result
