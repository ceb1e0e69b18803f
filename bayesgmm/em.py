"""Maximum-likelihood Gaussian mixtures by expectation-maximisation.

:class:`EMGaussianMixture` is a scikit-learn estimator with the parameters and fitted
attributes of :class:`sklearn.mixture.GaussianMixture`, plus frequency weights, ICL, a stable
component order, per-iteration lower bounds and detection of degenerate optima. Each EM
iteration is one compiled pass over the data (:mod:`bayesgmm._kernels`).
"""

from __future__ import annotations

import functools
import logging
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.utils.validation import check_is_fitted

from . import _kernels
from ._dask import is_dask_collection
from ._draw_kernels import mixture_responsibilities
from ._hc import HC_SUBSET, hc_labels, quantile_labels
from ._mclust import (
    MCLUST_MODELS,
    constrained_covariances,
    covariance_layout,
    is_scale_invariant,
    mclust_name,
)
from ._numerics import (
    COVARIANCE_TYPES,
    covariances_from_precisions_cholesky,
    log_det_precision_cholesky,
    log_weighted_prob,
    n_parameters,
    precisions_cholesky_from_covariances,
    precisions_cholesky_from_precisions,
    precisions_from_precisions_cholesky,
    responsibilities,
)
from ._validation import (
    SCALE_LIMITS,
    check_choice,
    check_n_components,
    check_positive,
    check_random_state,
    check_sample_weight,
    check_scale,
    check_X,
)
from .exceptions import ConvergenceWarning, DegenerateMixtureWarning

if TYPE_CHECKING:
    from .bootstrap import BootstrapResult

__all__ = [
    "EMGaussianMixture",
    "em_from_dataset",
    "em_from_state",
    "em_state",
    "em_to_dataset",
    "fitted_from_parameters",
]

#: The four covariance types with their own M-steps, by either name.
_FOUR_MODELS = (*COVARIANCE_TYPES, "VVV", "EEE", "VVI", "VII")

logger = logging.getLogger("bayesgmm")

INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data", "hc")
_LOG_2PI = np.log(2.0 * np.pi)
_EPS10 = 10 * np.finfo(np.float64).eps
#: Rows of the in-memory sample on which EM on Dask input is initialised (at least
#: 1000 per component).
DASK_INIT_SAMPLE = 100_000
#: ``partial_fit``'s step for the ``t``-th batch is ``t ** -ONLINE_STEP_EXPONENT``; any
#: exponent in (0.5, 1] satisfies the conditions of Cappé & Moulines (2009).
ONLINE_STEP_EXPONENT = 0.6


@dataclass
class _Params:
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    precisions_cholesky: np.ndarray
    state: dict = field(default_factory=dict)  # an iterative mclust M-step's last blocks


@dataclass
class _Run:
    params: _Params
    lower_bounds: list[float]
    lower_bound: float  # mean log-likelihood of the last E-step (of the start if max_iter=0)
    converged: bool
    degenerate: np.ndarray
    few_points: np.ndarray  # the degenerate components that hold < n_features + 1 points


def _cov_shape(covariance_type: str, k: int, d: int) -> tuple[int, ...]:
    return {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}[covariance_type]


def _smallest_variances(covariances: np.ndarray, covariance_type: str, k: int) -> np.ndarray:
    """Smallest variance along any direction, per component."""
    if covariance_type == "full":
        return np.linalg.eigvalsh(covariances)[:, 0]
    if covariance_type == "tied":
        return np.full(k, np.linalg.eigvalsh(covariances)[0])
    if covariance_type == "diag":
        return covariances.min(axis=1)
    return covariances


def _rescale(p: _Params, covariance_type: str, scale: np.ndarray, shift: np.ndarray) -> _Params:
    """Parameters after the change of units ``x -> x * scale + shift`` (per feature).

    ``scale`` has one positive entry per feature (all equal for ``"spherical"``). Means move
    with the data, covariances by ``S Sigma S`` and the precision Cholesky factor ``U`` (with
    ``precision = U U^T``) by ``S^{-1} U``, which stays upper triangular.
    """
    means = p.means * scale + shift
    if covariance_type in ("full", "tied"):
        covs = p.covariances * scale[:, None] * scale
        pc = p.precisions_cholesky / scale[:, None]
    elif covariance_type == "diag":
        covs = p.covariances * scale**2
        pc = p.precisions_cholesky / scale
    else:
        covs = p.covariances * scale[0] ** 2
        pc = p.precisions_cholesky / scale[0]
    return _Params(p.weights.copy(), means, covs, pc)


class EMGaussianMixture(DensityMixin, BaseEstimator):
    """Gaussian mixture fitted by maximum likelihood with the EM algorithm.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components.
    covariance_type : str, default="full"
        ``"full"``: each component has its own general covariance; ``"tied"``: all share one;
        ``"diag"``: each has its own diagonal covariance; ``"spherical"``: each has one variance.
        Or one of mclust's 14 models ``"EII"``, ``"VII"``, ``"EEI"``, ``"VEI"``, ``"EVI"``,
        ``"VVI"``, ``"EEE"``, ``"VEE"``, ``"EVE"``, ``"VVE"``, ``"EEV"``, ``"VEV"``,
        ``"EVV"``, ``"VVV"`` (Celeux & Govaert 1995): volume, shape and orientation of
        ``Sigma_k = lambda_k D_k A_k D_k^T`` equal (E) or varying (V) across components, or
        the identity (I); see :mod:`bayesgmm._mclust`. ``"VVV"``, ``"EEE"``, ``"VVI"`` and
        ``"VII"`` are the same as ``"full"``, ``"tied"``, ``"diag"`` and ``"spherical"``.
        The others store their covariances as ``"spherical"`` (EII), ``"diag"`` (EEI, VEI,
        EVI) or ``"full"`` (the rest) do. :meth:`bic` is ``-2 log L + p log n``, mclust's BIC
        with the opposite sign.
    tol : float, default=1e-3
        EM stops when the mean log-likelihood per sample changes by less than ``tol``.
    reg_covar : float, default=1e-6
        Regularisation of the covariances, **relative to the data's spread**: every
        covariance gets ``reg_covar`` times the variance of each feature added to its diagonal
        (``"full"``, ``"tied"``, ``"diag"``), or ``reg_covar`` times the features' mean
        variance added to its one variance (``"spherical"``). It keeps covariances positive
        definite, and because it moves with the data, fitting ``X * c`` (or, except for
        ``"spherical"``, rescaling single features) gives the same labels and parameters in
        the new units. Equivalently, EM runs on standardised data (see Notes) and adds
        ``reg_covar`` to the diagonal there, as scikit-learn adds its absolute ``reg_covar``.
    max_iter : int, default=100
        Most EM iterations per initialisation. ``0`` returns the initialisation itself, as
        scikit-learn does: the parameters from the initial responsibilities, overridden by
        any ``*_init`` given (with ``warm_start``, the previous fit), with ``converged_``
        False and no :class:`ConvergenceWarning`. ``lower_bound_`` is then the start's mean
        log-likelihood (scikit-learn reports ``-inf``), ``lower_bounds_`` is empty,
        ``n_iter_`` is 0, and of ``n_init`` starts the one of highest likelihood is kept
        (scikit-learn keeps the last).
    n_init : int, default=1
        Number of initialisations; the best non-degenerate run (highest lower bound) is kept.
    init_params : {"kmeans", "k-means++", "random", "random_from_data", "hc"}, default="kmeans"
        ``"kmeans"``: responsibilities from a k-means partition; ``"k-means++"`` and
        ``"random_from_data"``: centres chosen by k-means++ seeding or at random among the
        samples, every sample assigned to its nearest centre; ``"random"``: random soft
        responsibilities; ``"hc"``: the partition of model-based agglomerative hierarchical
        clustering, mclust's default start (:mod:`bayesgmm._hc`: unconstrained-covariance
        classification likelihood on mclust's SVD-transformed data; a random subset of
        2000 rows when there are more, quantile classes for one feature). It is
        deterministic up to that subset, so ``n_init`` is ignored (one start) up to 2000
        rows.
    weights_init : array-like of shape (n_components,), optional
        Initial weights; overrides the initialisation's.
    means_init : array-like of shape (n_components, n_features), optional
        Initial means.
    precisions_init : array-like, optional
        Initial precisions (inverse covariances), shaped as ``covariances_``.
    random_state : int, numpy.random.Generator, RandomState or None, default=None
        Seed for initialisation and :meth:`sample`. A ``Generator`` (or ``RandomState``)
        is drawn from, and so advanced, by each call.
    warm_start : bool, default=False
        Start a new :meth:`fit` from the previous solution (then ``n_init`` is 1).
    verbose : int, default=0
        ``1`` logs each initialisation, ``2`` every iteration, to the ``"bayesgmm"`` logger.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_ : ndarray
        ``(K, D, D)`` full, ``(D, D)`` tied, ``(K, D)`` diag, ``(K,)`` spherical (mclust
        models: the shape of their storage layout, see ``covariance_type``).
    precisions_ : ndarray
        Inverses of ``covariances_``, same shape.
    precisions_cholesky_ : ndarray
        Upper-triangular ``U`` with ``precisions_ = U @ U.T`` (square roots for diag and
        spherical).
    converged_ : bool
        Whether the kept run met ``tol`` before ``max_iter``.
    n_iter_ : int
        Iterations of the kept run.
    lower_bound_ : float
        Mean log-likelihood per sample (weighted) at the kept run's last iteration (of its
        initialisation if ``max_iter=0``).
    lower_bounds_ : ndarray of shape (n_iterations,)
        The same per iteration; EM never decreases it.
    degenerate_ : ndarray of bool, shape (n_components,)
        Components that collapsed: fewer than ``n_features + 1`` effective points, or a
        variance, along some direction of the standardised data, within ten times the
        ``reg_covar`` floor (and at least below ``1e-10``), that is below
        ``max(10 * reg_covar, 1e-10)`` times the data's own variance in that direction. The
        rule is unit-free. Such fits have spuriously high likelihood. With
        ``covariance_type="tied"`` the covariance is shared, so a component with few points
        cannot make the likelihood unbounded and is not flagged; only the shared covariance
        can collapse, and then every component is flagged. The same holds for every mclust
        model of equal volume (first letter E).
    n_parameters_ : int
        Free parameters, used by :meth:`bic` and :meth:`aic`.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Present when ``X`` had string column names.

    Notes
    -----
    **Component order.** After fitting, components are sorted by their means in
    lexicographic order: by the first feature, ties broken by the second, and so on. The same
    data and seed therefore always give the same labels, and 1-D mixtures are ordered left to
    right. User-supplied ``*_init`` arrays are taken in their given order, but the fitted
    attributes follow this rule.

    **Frequency weights.** ``sample_weight`` in :meth:`fit` counts repetitions: integer
    weights give the same fit as repeating rows.

    **Units.** EM runs on standardised data: each feature centred on its (weighted) mean and
    divided by its (weighted) standard deviation for ``"full"``, ``"tied"`` and ``"diag"``,
    whose models are unchanged by rescaling single features (as are mclust's EEI, VEI,
    EVI, VEE and EVV); all features divided by one pooled standard deviation (the root of
    the features' mean variance) for ``"spherical"`` and mclust's EII, EVE, VVE, EEV and VEV,
    whose models are not. ``reg_covar`` and the degeneracy rule act there, and the fitted
    attributes are mapped back to the data's units, so multiplying ``X`` by a constant
    multiplies ``means_`` by it and ``covariances_`` by its square and changes no label;
    ``lower_bound_`` and the criteria shift by the log of the constant, as a density does.
    The initial partition (k-means, k-means++, ``"random_from_data"``) is still measured in
    the data's own geometry, up to that one constant: the relative weights you give features
    steer the start, as in scikit-learn, while from a given start rescaling single features
    (full, tied, diag) changes nothing. A constant feature is divided by the other features'
    pooled standard deviation instead (it then collapses onto the ``reg_covar`` floor and is
    reported as degenerate). Features whose standard deviation lies outside
    ``[1e-140, 1e140]`` are refused with a ``ValueError`` asking to rescale: their
    covariances would not fit in float64.

    Examples
    --------
    >>> from bayesgmm import EMGaussianMixture, load_faithful
    >>> X = load_faithful()
    >>> gm = EMGaussianMixture(2, n_init=5, random_state=0).fit(X)
    >>> gm.weights_.round(2)
    array([0.36, 0.64])
    >>> gm.predict(X[:3])
    array([1, 0, 1])
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "full",
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans",
        weights_init: ArrayLike | None = None,
        means_init: ArrayLike | None = None,
        precisions_init: ArrayLike | None = None,
        random_state: int | np.random.Generator | np.random.RandomState | None = None,
        warm_start: bool = False,
        verbose: int = 0,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose

    # ------------------------------------------------------------------ checks
    @property
    def _layout(self) -> str:
        """How this covariance type's parameters are stored and evaluated: one of
        scikit-learn's four types (:func:`bayesgmm._mclust.covariance_layout`)."""
        return covariance_layout(self.covariance_type)

    def _check_parameters(self, n_samples: int) -> None:
        check_n_components(self.n_components, n_samples)
        check_choice("covariance_type", self.covariance_type, (*COVARIANCE_TYPES, *MCLUST_MODELS))
        check_choice("init_params", self.init_params, INIT_PARAMS)
        check_positive("tol", self.tol, allow_zero=True)
        check_positive("reg_covar", self.reg_covar, allow_zero=True)
        check_positive("max_iter", self.max_iter, integer=True, allow_zero=True)
        check_positive("n_init", self.n_init, integer=True)

    def _check_inits(self, n_features: int) -> dict[str, np.ndarray]:
        k, cov_type = self.n_components, self._layout
        out: dict[str, np.ndarray] = {}
        if self.weights_init is not None:
            w = np.asarray(self.weights_init, dtype=np.float64)
            if w.shape != (k,):
                raise ValueError(
                    f"weights_init has shape {w.shape}; expected ({k},) for n_components={k}."
                )
            if (w < 0).any() or not np.isfinite(w).all() or not np.isclose(w.sum(), 1.0):
                raise ValueError(
                    "weights_init must be finite, non-negative and sum to 1; got "
                    f"sum={w.sum():.6g}. Normalise it with w / w.sum()."
                )
            out["weights"] = w / w.sum()
        if self.means_init is not None:
            m = np.asarray(self.means_init, dtype=np.float64)
            if m.shape != (k, n_features):
                raise ValueError(
                    f"means_init has shape {m.shape}; expected ({k}, {n_features}) "
                    "(n_components, n_features)."
                )
            if not np.isfinite(m).all():
                raise ValueError("means_init contains NaN or inf; initial means must be finite.")
            out["means"] = m
        if self.precisions_init is not None:
            p = np.asarray(self.precisions_init, dtype=np.float64)
            expected = _cov_shape(cov_type, k, n_features)
            if p.shape != expected:
                raise ValueError(
                    f"precisions_init has shape {p.shape}; expected {expected} for "
                    f"covariance_type={cov_type!r}."
                )
            if cov_type in ("full", "tied") and not np.allclose(p, np.swapaxes(p, -1, -2)):
                raise ValueError("precisions_init must be symmetric positive definite.")
            try:
                out["precisions_cholesky"] = precisions_cholesky_from_precisions(p, cov_type)
            except ValueError as exc:
                raise ValueError(
                    "precisions_init must be positive definite (a precision is the inverse "
                    "of a covariance)."
                ) from exc
        return out

    # ---------------------------------------------------------- initialisation
    def _params_from_resp(
        self, X: np.ndarray, wresp: np.ndarray, centres: np.ndarray | None
    ) -> _Params:
        """M-step from (sample-weighted) responsibilities, for initialisation."""
        cov_type = self._layout
        nk = wresp.sum(axis=0) + _EPS10
        means = (wresp.T @ X) / nk[:, None]
        empty = nk < 1e-8 * nk.sum()
        if empty.any():
            # A hard partition can leave a component without samples (tied values). Give it
            # its centre and the pooled data covariance so that EM can still move it.
            means[empty] = centres[empty] if centres is not None else X.mean(axis=0)
        if cov_type in ("full", "tied"):
            covs = np.empty((self.n_components, X.shape[1], X.shape[1]))
            for k in range(self.n_components):
                diff = X - means[k]
                covs[k] = (wresp[:, k] * diff.T) @ diff / nk[k]
        else:
            covs = np.stack(
                [(wresp[:, k] @ (X - means[k]) ** 2) / nk[k] for k in range(self.n_components)]
            )
        if empty.any():
            w = wresp.sum(axis=1)
            pooled = np.cov(X.T, aweights=w, bias=True).reshape(X.shape[1], X.shape[1])
            covs[empty] = pooled if cov_type in ("full", "tied") else np.diag(pooled)
        return self._finish_m_step(nk, means, covs)

    def _finish_m_step(
        self, nk: np.ndarray, means: np.ndarray, covs: np.ndarray, state: dict | None = None
    ) -> _Params:
        """Turn per-component covariances (``(K, D, D)`` or ``(K, D)``) into parameters.

        ``state`` is what the previous M-step of an iterative mclust model left
        (:func:`bayesgmm._mclust.constrained_covariances`).
        """
        cov_type, reg = self._layout, self.reg_covar
        d = means.shape[1]
        if self.covariance_type not in _FOUR_MODELS:
            # an mclust model beyond the four: its constrained M-step on the regularised
            # sample covariances, stored in its layout
            if covs.ndim == 3:
                covs[:, np.arange(d), np.arange(d)] += reg
            else:
                covs = covs + reg
            covariances, new_state = constrained_covariances(self.covariance_type, nk, covs, state)
            prec_chol = precisions_cholesky_from_covariances(covariances, cov_type)
            return _Params(nk / nk.sum(), means, covariances, prec_chol, new_state)
        if cov_type == "full":
            covariances = covs
            covariances[:, np.arange(d), np.arange(d)] += reg
        elif cov_type == "tied":
            covariances = np.einsum("k,kab->ab", nk, covs) / nk.sum()
            covariances.flat[:: d + 1] += reg
        elif cov_type == "diag":
            covariances = covs + reg
        else:
            covariances = covs.mean(axis=1) + reg
        prec_chol = precisions_cholesky_from_covariances(covariances, cov_type)
        return _Params(nk / nk.sum(), means, covariances, prec_chol)

    def _standardize_inits(
        self, inits: dict[str, np.ndarray], centre: np.ndarray, scale: np.ndarray
    ) -> dict[str, np.ndarray]:
        """User-supplied initial means and precisions, moved to the standardised units."""
        out = dict(inits)
        if "means" in out:
            out["means"] = (out["means"] - centre) / scale
        if "precisions_cholesky" in out:
            pc = out["precisions_cholesky"]
            if self._layout in ("full", "tied"):
                out["precisions_cholesky"] = pc * scale[:, None]
            elif self._layout == "diag":
                out["precisions_cholesky"] = pc * scale
            else:
                out["precisions_cholesky"] = pc * scale[0]
        return out

    def _initialize(
        self,
        X: np.ndarray,
        sample_weight: np.ndarray,
        random_state: np.random.RandomState,
        inits: dict[str, np.ndarray],
        partition_units: np.ndarray,
    ) -> _Params:
        """Initial parameters in standardised units, from a partition in the data's geometry.

        ``X`` is standardised; the distances of k-means, k-means++ and ``"random_from_data"``
        are measured on ``X * partition_units``, the data rescaled by one constant only, so
        the partition is the one the data in their own units give (k-means is unchanged by a
        change of units common to all features) and the relative scales the user chose for
        the features still steer it.
        """
        n, k = X.shape[0], self.n_components
        if len(inits) == 3:
            return self._params_from_inits(inits)
        centres = None
        if self.init_params == "hc":
            return self._initialize_hc(X, sample_weight, random_state, inits)
        if self.init_params == "random":
            resp = random_state.uniform(size=(n, k))
            resp /= resp.sum(axis=1, keepdims=True)
        else:
            same = bool(np.all(partition_units == 1.0))
            Y = X if same else X * partition_units
            if self.init_params == "kmeans":
                labels = (
                    KMeans(n_clusters=k, n_init=1, random_state=random_state)
                    .fit(Y, sample_weight=sample_weight)
                    .labels_
                )
            else:
                if self.init_params == "k-means++":
                    centres, _ = kmeans_plusplus(
                        Y, k, random_state=random_state, sample_weight=sample_weight
                    )
                else:
                    p = sample_weight / sample_weight.sum()
                    idx = random_state.choice(n, size=k, replace=False, p=p)
                    centres = Y[idx]
                labels = ((Y[:, None, :] - centres[None]) ** 2).sum(axis=2).argmin(axis=1)
                centres = centres if same else centres / partition_units
            resp = np.zeros((n, k))
            resp[np.arange(n), labels] = 1.0
        params = self._params_from_resp(X, resp * sample_weight[:, None], centres)
        if inits:
            params = self._params_from_inits(inits, params)
        return params

    def _initialize_hc(
        self,
        X: np.ndarray,
        sample_weight: np.ndarray,
        random_state: np.random.RandomState,
        inits: dict[str, np.ndarray],
    ) -> _Params:
        """Initial parameters from a hierarchical partition (:mod:`bayesgmm._hc`), as mclust.

        With more than :data:`~bayesgmm._hc.HC_SUBSET` rows the partition is of a random
        subset of them (drawn in proportion to ``sample_weight``), and the M-step uses that
        subset only. One feature: classes between quantiles, as mclust starts 1-D data.
        """
        n, k = X.shape[0], self.n_components
        rows = np.arange(n)
        if n > HC_SUBSET:
            positive = np.flatnonzero(sample_weight > 0)
            size = min(HC_SUBSET, positive.size)
            p = sample_weight[positive] / sample_weight[positive].sum()
            rows = np.sort(random_state.choice(positive, size=size, replace=False, p=p))
        Xs, ws = X[rows], sample_weight[rows]
        if X.shape[1] == 1:
            labels = quantile_labels(Xs[:, 0], k)
        else:
            labels = hc_labels(Xs, k, ws)
        resp = np.zeros((rows.size, k))
        resp[np.arange(rows.size), labels] = 1.0
        params = self._params_from_resp(Xs, resp * ws[:, None], None)
        if inits:
            params = self._params_from_inits(inits, params)
        return params

    def _params_from_inits(
        self, inits: dict[str, np.ndarray], base: _Params | None = None
    ) -> _Params:
        weights = inits.get("weights", base.weights if base else None)
        means = inits.get("means", base.means if base else None)
        if "precisions_cholesky" in inits:
            pc = inits["precisions_cholesky"]
            covs = covariances_from_precisions_cholesky(pc, self._layout)
        else:
            pc, covs = base.precisions_cholesky, base.covariances
        return _Params(weights.copy(), means.copy(), covs.copy(), pc.copy())

    # ---------------------------------------------------------------- EM core
    def _em_pass(
        self, X: np.ndarray, sample_weight: np.ndarray, p: _Params
    ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        cov_type = self._layout
        k, d = p.means.shape
        log_det = log_det_precision_cholesky(p.precisions_cholesky, cov_type, d)
        with np.errstate(divide="ignore"):
            log_const = np.log(p.weights) + log_det - 0.5 * d * _LOG_2PI
        if cov_type in ("full", "tied"):
            kind = "full"
            pc = np.ascontiguousarray(np.broadcast_to(p.precisions_cholesky, (k, d, d)))
        else:
            kind = "diag"
            pc = p.precisions_cholesky
            pc = np.broadcast_to(pc if pc.ndim == 2 else pc[:, None], (k, d))
            pc = np.ascontiguousarray(pc)
        if not isinstance(X, np.ndarray):  # Dask rows (bayesgmm._dask.DaskRows)
            return X.em_pass(kind, log_const, p.means, pc)
        return _kernels.em_pass(kind, X, sample_weight, log_const, p.means, pc)

    def _m_step(self, p: _Params, nk: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> _Params:
        nk = nk + _EPS10
        delta = s1 / nk[:, None]
        means = p.means + delta
        if self._layout in ("full", "tied"):
            covs = s2 / nk[:, None, None] - delta[:, :, None] * delta[:, None, :]
        else:
            covs = s2 / nk[:, None] - delta**2
        return self._finish_m_step(nk, means, covs, p.state)

    def _run_em(
        self,
        X: np.ndarray,
        sample_weight: np.ndarray,
        params: _Params,
        lower_bound: float,
        data_var: float,
        total_weight: float | None = None,
    ) -> _Run:
        if total_weight is None:
            total_weight = sample_weight.sum()
        lower_bounds: list[float] = []
        converged = False
        if self.max_iter == 0:  # the initialisation itself, scored by one E-step
            lower_bound = self._em_pass(X, sample_weight, params)[0] / total_weight
        for n_iter in range(1, self.max_iter + 1):
            prev = lower_bound
            ll, nk, s1, s2 = self._em_pass(X, sample_weight, params)
            try:
                params = self._m_step(params, nk, s1, s2)
            except ValueError as exc:
                raise ValueError(f"EM failed at iteration {n_iter}: {exc}") from exc
            lower_bound = ll / total_weight
            lower_bounds.append(lower_bound)
            if self.verbose >= 2:
                logger.info("  iteration %d: lower bound %.10g", n_iter, lower_bound)
            if abs(lower_bound - prev) < self.tol:
                converged = True
                break
        degenerate, few_points = self._degenerate(params, total_weight, X.shape[1], data_var)
        return _Run(params, lower_bounds, lower_bound, converged, degenerate, few_points)

    def _standardization(
        self, X: np.ndarray, sample_weight: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centre and per-feature scale on which EM runs (class Notes), and the data's sd."""
        centre, std = check_scale(
            X, sample_weight, feature_names=getattr(self, "feature_names_in_", None)
        )
        return self._scale_from_std(centre, std)

    def _scale_from_std(
        self, centre: np.ndarray, std: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The per-feature scale of the standardisation, given the data's centre and sd."""
        constant = std == 0.0
        if not is_scale_invariant(self.covariance_type):
            pooled = float(np.sqrt(np.mean(std**2)))
            scale = np.full(std.shape[0], pooled)
        elif constant.any():
            pooled = float(np.sqrt(np.mean(std[~constant] ** 2))) if not constant.all() else 0.0
            scale = np.where(constant, pooled, std)
        else:
            return centre, std, std
        if pooled == 0.0:  # every feature constant: the data's magnitude, or 1 for zeros
            low, high = SCALE_LIMITS
            magnitude = float(np.abs(centre).max())
            scale[:] = min(max(magnitude, low), high) if magnitude > 0 else 1.0
        return centre, scale, std

    def _degenerate(
        self, p: _Params, total_weight: float, n_features: int, data_var: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Collapsed components (either reason) and those among them with too few points.

        ``p`` and ``data_var`` are in standardised units, where ``reg_covar`` is added, so
        the floor is relative to the data's spread.
        """
        k = self.n_components
        floor = max(10.0 * self.reg_covar, 1e-10 * data_var)
        small_var = _smallest_variances(p.covariances, self._layout, k) <= floor
        if mclust_name(self.covariance_type)[0] == "E":
            # The volume is shared (e.g. "tied"): a component with few points (even one)
            # cannot shrink it, so it does not make the likelihood unbounded. Only the
            # covariances as a whole can collapse (onto the floor).
            few_points = np.zeros(k, dtype=bool)
        else:
            few_points = p.weights * total_weight < n_features + 1
        return small_var | few_points, few_points

    # -------------------------------------------------------------------- API
    def fit(self, X: ArrayLike, y: Any = None, sample_weight: ArrayLike | None = None) -> Self:
        """Estimate the mixture's parameters with EM.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Numeric data without missing values; a DataFrame's column names are recorded.
        y : None
            Ignored; present for pipeline compatibility.
        sample_weight : array-like of shape (n_samples,), optional
            Frequency weights (integer weights equal repeating rows).

        Returns
        -------
        self : EMGaussianMixture
            The fitted estimator.

        Warns
        -----
        ConvergenceWarning
            If the kept run stopped at ``max_iter`` before reaching ``tol``.
        DegenerateMixtureWarning
            If every run ended with a collapsed component (see ``degenerate_``).
        """
        self._fit(X, sample_weight)
        self.__dict__.pop("_online", None)  # a later partial_fit starts a new stream
        return self

    def fit_predict(
        self, X: ArrayLike, y: Any = None, sample_weight: ArrayLike | None = None
    ) -> np.ndarray:
        """Fit, then return the most probable component of each sample.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        Xv = self._fit(X, sample_weight)
        if not isinstance(Xv, np.ndarray):  # Dask input: lazy labels, chunked like X
            return self.predict(X)
        return self._weighted_log_prob(Xv).argmax(axis=1)

    def _fit(self, X: ArrayLike, sample_weight: ArrayLike | None) -> np.ndarray:
        if is_dask_collection(X):
            return self._fit_dask(X, sample_weight)
        continuing = self.warm_start and hasattr(self, "converged_")
        X = check_X(X, estimator=self, reset=not continuing, min_samples=2)
        n, d = X.shape
        self._check_parameters(n)
        sample_weight = check_sample_weight(sample_weight, n)
        inits = self._check_inits(d)
        random_state = check_random_state(self.random_state)
        # EM runs on standardised data Z = (X - centre) / scale (class Notes): reg_covar and
        # the degeneracy rule are then unit-free, and nothing overflows.
        centre, scale, std = self._standardization(X, sample_weight)
        Z = np.ascontiguousarray((X - centre) / scale)
        inits = self._standardize_inits(inits, centre, scale)
        log_scale = float(np.log(scale).sum())  # log-densities of X = those of Z - log_scale
        units = scale / scale.max()  # Z * units is X up to one constant: k-means' geometry
        data_var = float(np.mean((std / scale) ** 2))  # the mean variance of Z
        n_init = 1 if continuing else self.n_init
        if self.init_params == "hc" and n <= HC_SUBSET:
            n_init = 1  # the hierarchical start is deterministic: more would repeat it
        best: _Run | None = None
        start = time.perf_counter()
        for init in range(n_init):
            if continuing:
                fitted = _Params(
                    self.weights_, self.means_, self.covariances_, self.precisions_cholesky_
                )
                params = _rescale(fitted, self._layout, 1.0 / scale, -centre / scale)
                lower_bound = self.lower_bound_ + log_scale
            else:
                params = self._initialize(Z, sample_weight, random_state, inits, units)
                lower_bound = -np.inf
            run = self._run_em(Z, sample_weight, params, lower_bound, data_var)
            if self.verbose >= 1:
                logger.info(
                    "init %d/%d: lower bound %.6f after %d iterations%s%s",
                    init + 1,
                    n_init,
                    run.lower_bound - log_scale,
                    len(run.lower_bounds),
                    "" if run.converged else " (not converged)",
                    " (degenerate)" if run.degenerate.any() else "",
                )
            if best is None or self._better(run, best):
                best = run
        assert best is not None
        self._finish_fit(best, centre, scale, log_scale, d, n_init, start)
        return X

    def _finish_fit(
        self,
        best: _Run,
        centre: np.ndarray,
        scale: np.ndarray,
        log_scale: float,
        d: int,
        n_init: int,
        start: float,
    ) -> None:
        """Map the kept run back to the data's units, refuse non-finite parameters, store."""
        best.params = _rescale(best.params, self._layout, scale, centre)
        best.lower_bounds = [lb - log_scale for lb in best.lower_bounds]
        best.lower_bound -= log_scale
        p = best.params
        finite = [np.isfinite(a).all() for a in (p.weights, p.means, p.covariances)]
        if not (all(finite) and np.isfinite(p.precisions_cholesky).all()):
            # never hand back NaN parameters as a fit
            raise ValueError(
                "EM produced non-finite parameters, so there is no fit to return. Check X for "
                "values that differ by many orders of magnitude within a feature, rescale or "
                "transform such features (e.g. take logarithms), or use a larger reg_covar."
            )
        self._set_fitted(best, d, n_init)
        logger.debug("EM fit in %.3f s", time.perf_counter() - start)

    def _fit_dask(self, X: Any, sample_weight: ArrayLike | None) -> Any:
        """EM on a Dask array: the same iterations as in memory, one pass over the chunks each.

        See :mod:`bayesgmm._dask`. The initialisation runs on a uniform random sample of at
        most :data:`DASK_INIT_SAMPLE` rows held in memory: each of the ``n_init`` starts
        (k-means, k-means++, ...) is followed by EM on that sample, and the best sample
        solution starts EM on all rows. Full ``*_init`` parameters skip the sample.
        """
        from ._dask import DaskRows, check_moments

        continuing = self.warm_start and hasattr(self, "converged_")
        rows = DaskRows.from_input(X, min_samples=2, sample_weight=sample_weight)
        n, d = rows.shape
        if continuing and d != self.n_features_in_:
            raise ValueError(
                f"X has {d} features, but the estimator was fitted with {self.n_features_in_}."
                " Pass data with the same columns, or set warm_start=False."
            )
        self._check_parameters(n)  # before any data is read
        inits = self._check_inits(d)
        random_state = check_random_state(self.random_state)
        start = time.perf_counter()
        centre, std = rows.moments()  # one pass; NaN/inf reported with chunk and rows
        std = check_moments(centre, std)
        centre, scale, std = self._scale_from_std(centre, std)
        if not continuing:
            self.n_features_in_ = d
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        rows.centre, rows.scale = centre, scale
        inits = self._standardize_inits(inits, centre, scale)
        log_scale = float(np.log(scale).sum())
        units = scale / scale.max()
        data_var = float(np.mean((std / scale) ** 2))
        n_init = 1 if continuing else self.n_init
        lower_bound = -np.inf
        if continuing:
            fitted = _Params(
                self.weights_, self.means_, self.covariances_, self.precisions_cholesky_
            )
            params = _rescale(fitted, self._layout, 1.0 / scale, -centre / scale)
            lower_bound = self.lower_bound_ + log_scale
        elif len(inits) == 3:
            params = self._params_from_inits(inits)
        else:
            size = min(n, max(DASK_INIT_SAMPLE, 1000 * self.n_components))
            sample, ws = rows.sample_rows(size, random_state)
            if ws.sum() <= 0:  # every sampled row has weight 0: draw among weighted rows
                raise ValueError(
                    "The initialisation sample holds only rows of weight 0; give enough rows "
                    "positive weight, or pass weights_init, means_init and precisions_init."
                )
            Zs = np.ascontiguousarray((sample - centre) / scale)
            best_sample: _Run | None = None
            for _ in range(n_init):
                p0 = self._initialize(Zs, ws, random_state, inits, units)
                run = self._run_em(Zs, ws, p0, -np.inf, data_var)
                if best_sample is None or self._better(run, best_sample):
                    best_sample = run
            assert best_sample is not None
            params = best_sample.params
            logger.info(
                "Dask EM: initialised on %d of %d rows (%d start(s))", Zs.shape[0], n, n_init
            )
        run = self._run_em(rows, None, params, lower_bound, data_var, rows.total_weight)
        self._finish_fit(run, centre, scale, log_scale, d, n_init, start)
        return rows

    def partial_fit(
        self, X: ArrayLike, y: Any = None, sample_weight: ArrayLike | None = None
    ) -> Self:
        """Online EM: update the mixture with one batch of a stream that is never stored.

        Stochastic-approximation EM (Cappé & Moulines 2009): the running averages ``s`` of
        the sufficient statistics (per-row responsibilities, their first and second moments)
        move towards the batch's, ``s <- (1 - g_t) s + g_t s_batch`` with the decreasing step
        ``g_t = t ** -ONLINE_STEP_EXPONENT`` for the ``t``-th batch, and the parameters are the
        M-step of ``s``. Each batch is one compiled pass.

        The first call (or the first after :meth:`fit`) starts the stream: it fixes the units
        (the standardisation of the class Notes, from this batch), initialises as
        :meth:`fit` does on this batch (``init_params``, ``n_init`` restarts, EM on the batch)
        and needs at least ``n_components`` rows. Later batches may have any size.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            One batch of rows.
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), optional
            Frequency weights of the batch's rows.

        Returns
        -------
        self : EMGaussianMixture
            ``n_samples_seen_`` counts the rows (sum of weights) seen, ``n_iter_`` the
            batches and ``lower_bounds_`` each batch's mean log-likelihood under the
            parameters before its update (a held-out score of the stream).
        """
        state = getattr(self, "_online", None)
        X = check_X(X, estimator=self, reset=state is None, min_samples=1)
        w = check_sample_weight(sample_weight, X.shape[0])
        if state is None:
            return self._start_online(X, w)
        centre, scale = state["centre"], state["scale"]
        Z = np.ascontiguousarray((X - centre) / scale)
        params = state["params"]
        ll, nk, s1, s2 = self._em_pass(Z, w, params)
        total = float(w.sum())
        state["t"] += 1
        gamma = state["t"] ** -ONLINE_STEP_EXPONENT
        batch = self._raw_moments(params, nk, s1, s2, total)
        state["stats"] = [
            (1 - gamma) * a + gamma * b for a, b in zip(state["stats"], batch, strict=True)
        ]
        state["lower_bounds"].append(ll / total - state["log_scale"])
        state["n_seen"] += total
        state["params"] = self._params_from_raw_moments(*state["stats"])
        self._set_online_fitted(state)
        return self

    def _raw_moments(
        self, p: _Params, nk: np.ndarray, s1: np.ndarray, s2: np.ndarray, total: float
    ) -> list[np.ndarray]:
        """Per-row averages of ``r``, ``r z`` and ``r z z^T`` (or its diagonal) about 0."""
        mu = p.means
        if s2.ndim == 3:
            cross = mu[:, :, None] * s1[:, None, :]
            second = (
                s2
                + cross
                + np.swapaxes(cross, 1, 2)
                + nk[:, None, None] * (mu[:, :, None] * mu[:, None, :])
            )
        else:
            second = s2 + 2 * mu * s1 + nk[:, None] * mu**2
        return [nk / total, (s1 + nk[:, None] * mu) / total, second / total]

    def _params_from_raw_moments(self, s0: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> _Params:
        nk = s0 + _EPS10
        means = s1 / nk[:, None]
        if s2.ndim == 3:
            covs = s2 / nk[:, None, None] - means[:, :, None] * means[:, None, :]
        else:
            covs = s2 / nk[:, None] - means**2
        return self._finish_m_step(nk, means, covs)

    def _start_online(self, X: np.ndarray, w: np.ndarray) -> Self:
        self._check_parameters(X.shape[0])
        inits = self._check_inits(X.shape[1])
        random_state = check_random_state(self.random_state)
        centre, scale, std = self._standardization(X, w)
        Z = np.ascontiguousarray((X - centre) / scale)
        inits = self._standardize_inits(inits, centre, scale)
        data_var = float(np.mean((std / scale) ** 2))
        best: _Run | None = None
        for _ in range(self.n_init):
            p0 = self._initialize(Z, w, random_state, inits, scale / scale.max())
            run = self._run_em(Z, w, p0, -np.inf, data_var)
            if best is None or self._better(run, best):
                best = run
        assert best is not None
        params = best.params
        ll, nk, s1, s2 = self._em_pass(Z, w, params)
        total = float(w.sum())
        log_scale = float(np.log(scale).sum())
        state = {
            "centre": centre,
            "scale": scale,
            "log_scale": log_scale,
            "data_var": data_var,
            "t": 1,
            "stats": self._raw_moments(params, nk, s1, s2, total),
            "lower_bounds": [ll / total - log_scale],
            "n_seen": total,
        }
        state["params"] = self._params_from_raw_moments(*state["stats"])
        self._online = state
        self._set_online_fitted(state)
        return self

    def _set_online_fitted(self, state: dict) -> None:
        """Public attributes from the online state (data units, the stable order); no
        warnings: a stream has no convergence to report."""
        p = _rescale(state["params"], self._layout, state["scale"], state["centre"])
        degenerate, _ = self._degenerate(
            state["params"], state["n_seen"], p.means.shape[1], state["data_var"]
        )
        order = np.lexsort(p.means.T[::-1])
        tied = self._layout == "tied"
        self.weights_ = p.weights[order]
        self.means_ = p.means[order]
        self.covariances_ = p.covariances if tied else p.covariances[order]
        self.precisions_cholesky_ = p.precisions_cholesky if tied else p.precisions_cholesky[order]
        self.precisions_ = precisions_from_precisions_cholesky(
            self.precisions_cholesky_, self._layout
        )
        self.degenerate_ = degenerate[order]
        self.converged_ = False
        self.lower_bounds_ = np.asarray(state["lower_bounds"])
        self.lower_bound_ = float(state["lower_bounds"][-1])
        self.n_iter_ = int(state["t"])
        self.n_samples_seen_ = state["n_seen"]
        self.n_parameters_ = n_parameters(self.n_components, p.means.shape[1], self.covariance_type)

    @staticmethod
    def _better(run: _Run, best: _Run) -> bool:
        run_ok, best_ok = not run.degenerate.any(), not best.degenerate.any()
        if run_ok != best_ok:
            return run_ok
        return run.lower_bound > best.lower_bound

    def _set_fitted(self, run: _Run, n_features: int, n_init: int) -> None:
        p = run.params
        order = np.lexsort(p.means.T[::-1])
        self.weights_ = p.weights[order]
        self.means_ = p.means[order]
        tied = self._layout == "tied"
        self.covariances_ = p.covariances if tied else p.covariances[order]
        pc = p.precisions_cholesky
        self.precisions_cholesky_ = pc if tied else pc[order]
        self.precisions_ = precisions_from_precisions_cholesky(
            self.precisions_cholesky_, self._layout
        )
        self.degenerate_ = run.degenerate[order]
        few_points = run.few_points[order]
        self.converged_ = run.converged
        self.lower_bounds_ = np.asarray(run.lower_bounds)
        self.lower_bound_ = float(run.lower_bound)
        self.n_iter_ = len(run.lower_bounds)
        self.n_parameters_ = n_parameters(self.n_components, n_features, self.covariance_type)
        if not run.converged and self.max_iter > 0:  # max_iter=0 asks for the start
            warnings.warn(
                f"EM did not converge in max_iter={self.max_iter} iterations (best of "
                f"{n_init} initialisations; last change above tol={self.tol}). Increase "
                "max_iter, loosen tol, or check the data's scaling.",
                ConvergenceWarning,
                stacklevel=4,
            )
        if self.degenerate_.any():
            warnings.warn(
                self._degenerate_message(few_points, n_features, n_init),
                DegenerateMixtureWarning,
                stacklevel=4,
            )

    def _degenerate_message(self, few_points: np.ndarray, n_features: int, n_init: int) -> str:
        """What collapsed, why, and what helps (a larger reg_covar does not: see below)."""
        crowded = np.flatnonzero(few_points).tolist()
        flat = np.flatnonzero(self.degenerate_ & ~few_points).tolist()
        parts = []
        if crowded:
            parts.append(
                f"component(s) {crowded} hold fewer than n_features + 1 = {n_features + 1} "
                "points' worth of weight"
            )
        if flat:
            parts.append(
                f"component(s) {flat} shrank, along some direction, to a variance within ten "
                f"times the reg_covar floor (reg_covar={self.reg_covar:g} of the data's own "
                "variance there): they sit on repeated (tied) values, a constant feature or "
                "collinear features"
            )
        advice = "use fewer components or a larger n_init"
        if flat:
            advice += (
                "; remove duplicate rows, constant or collinear columns, or add noise of the "
                "data's resolution to rounded values. A larger reg_covar only hides the "
                "collapse (the floor is relative, so the data's units are not the cause)"
            )
        return (
            f"Component(s) {np.flatnonzero(self.degenerate_).tolist()} collapsed in every one "
            f"of the {n_init} initialisation(s): "
            f"{'; '.join(parts)}. The likelihood of such a fit is spuriously high, so its "
            f"criteria cannot be compared. To fix it, {advice}."
        )

    def _check_X_predict(self, X: ArrayLike) -> np.ndarray:
        check_is_fitted(self)
        return check_X(X, estimator=self, reset=False)

    def _weighted_log_prob(self, X: np.ndarray) -> np.ndarray:
        return log_weighted_prob(
            X, self.weights_, self.means_, self.precisions_cholesky_, self._layout
        )

    def score_samples(self, X: ArrayLike) -> np.ndarray:
        """Log-density of the fitted mixture at each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_density : ndarray of shape (n_samples,)
            A lazy Dask array chunked like ``X``'s rows when ``X`` is a Dask array.
        """
        if is_dask_collection(X):
            return self._dask_map(X, "score_samples")
        return self._responsibilities(X)[1]

    def score(self, X: ArrayLike, y: Any = None) -> float:
        """Mean log-likelihood per sample of ``X`` under the fitted mixture."""
        return float(self.score_samples(X).mean())

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Responsibilities ``p(z = k | x)`` of each component for each sample.

        Returns
        -------
        resp : ndarray of shape (n_samples, n_components)
            Rows sum to one. A lazy Dask array chunked like ``X``'s rows when ``X`` is a
            Dask array.
        """
        if is_dask_collection(X):
            return self._dask_map(X, "predict_proba")
        return self._responsibilities(X)[0]

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Most probable component of each sample.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            A lazy Dask array chunked like ``X``'s rows when ``X`` is a Dask array.
        """
        if is_dask_collection(X):
            return self._dask_map(X, "predict")
        return self._responsibilities(X)[0].argmax(axis=1)

    def _dask_map(self, X: Any, what: str) -> Any:
        """Lazy predictions over the row chunks of a Dask array (nothing is computed)."""
        from ._dask import map_rows

        check_is_fitted(self)
        fn = functools.partial(
            _predict_block,
            what,
            self.weights_,
            self.means_,
            self.precisions_cholesky_,
            self._layout,
        )
        k = self.n_components if what == "predict_proba" else None
        dtype = np.int64 if what == "predict" else np.float64
        return map_rows(X, fn, n_features=self.n_features_in_, out_cols=k, dtype=dtype)

    def _responsibilities(self, X: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """Validated ``X`` -> (responsibilities, log-density), compiled and parallel over rows."""
        X = self._check_X_predict(X)
        return mixture_responsibilities(
            X, self.weights_, self.means_, self.precisions_cholesky_, self._layout
        )

    def _total_log_likelihood(
        self, X: ArrayLike, sample_weight: ArrayLike | None
    ) -> tuple[float, float, np.ndarray, np.ndarray]:
        if is_dask_collection(X):
            raise TypeError(
                "bic, aic and icl do not take Dask arrays yet. Use "
                "float(em.score_samples(X).sum()) for the total log-likelihood of a Dask "
                "array, or pass an in-memory sample."
            )
        X = self._check_X_predict(X)
        w = check_sample_weight(sample_weight, X.shape[0])
        resp, log_norm = responsibilities(self._weighted_log_prob(X))
        return float(w @ log_norm), float(w.sum()), resp, w

    def bic(self, X: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        """Bayesian information criterion, ``-2 log L + p log n`` (lower is better).

        ``n`` is the number of samples (the sum of ``sample_weight`` when given).
        """
        ll, n, _, _ = self._total_log_likelihood(X, sample_weight)
        return -2.0 * ll + self.n_parameters_ * np.log(n)

    def aic(self, X: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        """Akaike information criterion, ``-2 log L + 2 p`` (lower is better)."""
        ll, _, _, _ = self._total_log_likelihood(X, sample_weight)
        return -2.0 * ll + 2.0 * self.n_parameters_

    def icl(self, X: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        """Integrated completed likelihood, BIC plus twice the classification entropy.

        ``ICL = BIC - 2 sum_i log max_k r_ik`` (Biernacki, Celeux & Govaert 2000), on BIC's
        scale: lower is better. It penalises overlapping components that BIC accepts.
        """
        ll, n, resp, w = self._total_log_likelihood(X, sample_weight)
        with np.errstate(divide="ignore"):
            hard = w @ np.log(resp.max(axis=1))
        return -2.0 * ll + self.n_parameters_ * np.log(n) - 2.0 * hard

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw samples from the fitted mixture.

        Parameters
        ----------
        n_samples : int, default=1

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        labels : ndarray of shape (n_samples,)
            The component each sample came from.
        """
        check_is_fitted(self)
        check_positive("n_samples", n_samples, integer=True)
        rng = check_random_state(self.random_state)
        k, d = self.means_.shape
        counts = rng.multinomial(n_samples, self.weights_)
        cov = self.covariances_
        parts, labels = [], []
        for j in range(k):
            if self._layout == "full":
                c = cov[j]
            elif self._layout == "tied":
                c = cov
            elif self._layout == "diag":
                c = np.diag(cov[j])
            else:
                c = np.eye(d) * cov[j]
            parts.append(rng.multivariate_normal(self.means_[j], c, counts[j]))
            labels.append(np.full(counts[j], j))
        return np.vstack(parts), np.concatenate(labels)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags

    def bootstrap(
        self,
        X: ArrayLike,
        *,
        n_boot: int = 200,
        kind: str = "nonparametric",
        random_state: int | np.random.Generator | np.random.RandomState | None = None,
        **options: Any,
    ) -> BootstrapResult:
        """Bootstrap standard errors and percentile intervals of the fitted parameters.

        Refits EM, started from this fit, to ``n_boot`` resamples (``"nonparametric"``) or
        Dirichlet reweightings (``"weighted"``) of ``X`` and aligns the replicates' labels
        to this fit. See :func:`bayesgmm.bootstrap.bootstrap`, which takes the same
        arguments (``options``: ``sample_weight``, ``tol``, ``max_iter``, ``progress``),
        except that ``random_state=None`` takes the estimator's own ``random_state``, as
        :meth:`sample` does.

        Returns
        -------
        BootstrapResult
            ``.table(interval)`` gives estimates, standard errors and intervals;
            ``.replicates`` the aligned replicates; ``.counts`` the replicates per status.
        """
        from .bootstrap import _bootstrap

        seed = self.random_state if random_state is None else random_state
        return _bootstrap(
            self, X, n_boot=n_boot, kind=kind, random_state=seed, stacklevel=3, **options
        )


def _predict_block(
    what: str,
    weights: np.ndarray,
    means: np.ndarray,
    precisions_cholesky: np.ndarray,
    covariance_type: str,
    block: np.ndarray,
) -> np.ndarray:
    """Predictions for one in-memory block of rows (the task of lazy Dask predictions)."""
    resp, log_density = mixture_responsibilities(
        block, weights, means, precisions_cholesky, covariance_type
    )
    if what == "score_samples":
        return log_density
    if what == "predict":
        return resp.argmax(axis=1).astype(np.int64)
    return resp


def fitted_from_parameters(
    weights: ArrayLike,
    means: ArrayLike,
    covariances: ArrayLike,
    precisions_cholesky: ArrayLike,
    *,
    covariance_type: str,
    degenerate: ArrayLike | None = None,
    converged: bool = True,
    n_iter: int = 0,
    lower_bound: float = np.nan,
    feature_names: ArrayLike | None = None,
    **params: Any,
) -> EMGaussianMixture:
    """A fitted :class:`EMGaussianMixture` rebuilt from saved parameters (no refitting).

    Used to restore the EM solution stored beside a posterior or in ``em.json``; the result
    predicts, scores and reports BIC/AIC/ICL like the original fit. ``params`` are passed to
    the constructor (e.g. ``n_init``).
    """
    em = EMGaussianMixture(len(np.asarray(weights)), covariance_type=covariance_type, **params)
    em.weights_ = np.asarray(weights, dtype=np.float64)
    em.means_ = np.asarray(means, dtype=np.float64)
    em.covariances_ = np.asarray(covariances, dtype=np.float64)
    em.precisions_cholesky_ = np.asarray(precisions_cholesky, dtype=np.float64)
    em.precisions_ = precisions_from_precisions_cholesky(
        em.precisions_cholesky_, covariance_layout(covariance_type)
    )
    k = em.weights_.size
    em.degenerate_ = np.zeros(k, bool) if degenerate is None else np.asarray(degenerate, bool)
    em.converged_ = bool(converged)
    em.n_iter_ = int(n_iter)
    em.lower_bound_ = float(lower_bound)
    em.n_features_in_ = em.means_.shape[1]
    em.n_parameters_ = n_parameters(k, em.n_features_in_, covariance_type)
    if feature_names is not None:
        em.feature_names_in_ = np.asarray(feature_names, dtype=object)
    return em


#: Names and dims of a fitted EM's arrays in its serialised form (per covariance type).
_STATE_ARRAYS = ("weights", "means", "covariances", "precisions_cholesky", "degenerate")
_COV_DIMS = {
    "full": ("component", "feature", "feature_bis"),
    "tied": ("feature", "feature_bis"),
    "diag": ("component", "feature"),
    "spherical": ("component",),
}


def em_state(em: EMGaussianMixture, feature_names: ArrayLike | None = None) -> dict[str, Any]:
    """The fitted state of ``em`` as plain values: the one serialisation of a fitted EM.

    :func:`em_from_state` rebuilds the estimator from it (no refitting). ``bayesgmm fit``
    writes it to ``em.json`` (plus fit statistics); :func:`em_to_dataset` stores it beside a
    saved posterior.

    Parameters
    ----------
    em : EMGaussianMixture
        A fitted estimator.
    feature_names : array-like of str, optional
        Feature names; ``em.feature_names_in_`` when omitted and present, else ``x0, x1, ...``.

    Returns
    -------
    dict
        ``covariance_type``, ``features`` (list of str), ``weights``, ``means``,
        ``covariances``, ``precisions_cholesky``, ``degenerate`` (ndarrays in the layout of
        the fitted attributes), ``converged`` (bool), ``n_iter`` (int) and ``lower_bound``
        (float).
    """
    check_is_fitted(em, "weights_")
    if feature_names is None:
        feature_names = getattr(em, "feature_names_in_", None)
    if feature_names is None:
        feature_names = [f"x{j}" for j in range(em.means_.shape[1])]
    return {
        "covariance_type": em.covariance_type,
        "features": [str(f) for f in feature_names],
        "weights": np.asarray(em.weights_, dtype=np.float64),
        "means": np.asarray(em.means_, dtype=np.float64),
        "covariances": np.asarray(em.covariances_, dtype=np.float64),
        "precisions_cholesky": np.asarray(em.precisions_cholesky_, dtype=np.float64),
        "degenerate": np.asarray(em.degenerate_, dtype=bool),
        "converged": bool(em.converged_),
        "n_iter": int(em.n_iter_),
        "lower_bound": float(em.lower_bound_),
    }


def em_from_state(
    state: Any, *, feature_names: ArrayLike | None = None, **params: Any
) -> EMGaussianMixture:
    """A fitted :class:`EMGaussianMixture` from :func:`em_state`'s values (no refitting).

    ``state`` is a mapping with the keys of :func:`em_state` (``converged``, ``n_iter``,
    ``lower_bound`` and ``features`` are optional: files written before they were recorded
    load too). ``feature_names`` (default: ``state["features"]`` if present) become
    ``feature_names_in_``; leave both out for a fit on an unnamed array. ``params`` go to the
    constructor (e.g. ``n_init``).
    """
    if feature_names is None:
        feature_names = state.get("features")
    return fitted_from_parameters(
        state["weights"],
        state["means"],
        state["covariances"],
        state["precisions_cholesky"],
        covariance_type=state["covariance_type"],
        degenerate=state.get("degenerate"),
        converged=bool(state.get("converged", True)),
        n_iter=int(state.get("n_iter", 0)),
        lower_bound=float(state.get("lower_bound", np.nan)),
        feature_names=feature_names,
        **params,
    )


def em_to_dataset(em: EMGaussianMixture, feature_names: ArrayLike | None = None) -> Any:
    """:func:`em_state` as an :class:`xarray.Dataset` (the ``em`` group of a saved fit).

    Arrays with dims ``component``/``feature``/``feature_bis`` (``degenerate`` as int8 for
    netCDF), the scalars ``converged``, ``n_iter``, ``lower_bound`` and the
    ``covariance_type`` as attributes. :func:`em_from_dataset` reads it back.
    """
    import xarray as xr

    state = em_state(em, feature_names)
    names = state["features"]
    dims = {
        "weights": ("component",),
        "means": ("component", "feature"),
        "covariances": _COV_DIMS[state["covariance_type"]],
        "precisions_cholesky": _COV_DIMS[state["covariance_type"]],
        "degenerate": ("component",),
    }
    data = {name: (dims[name], state[name]) for name in _STATE_ARRAYS}
    data["degenerate"] = (dims["degenerate"], state["degenerate"].astype(np.int8))
    return xr.Dataset(
        data,
        coords={
            "component": np.arange(state["weights"].size),
            "feature": names,
            "feature_bis": names,
        },
        attrs={
            "covariance_type": state["covariance_type"],
            "lower_bound": state["lower_bound"],
            "converged": int(state["converged"]),
            "n_iter": state["n_iter"],
        },
    )


def em_from_dataset(
    ds: Any,
    *,
    covariance_type: str | None = None,
    feature_names: ArrayLike | None = None,
    **params: Any,
) -> EMGaussianMixture:
    """A fitted :class:`EMGaussianMixture` from :func:`em_to_dataset`'s Dataset.

    ``covariance_type`` is read from the Dataset's attributes when it records it (files
    written before it did need it passed). The ``feature`` coordinate is always present, so
    ``feature_names_in_`` is set only from ``feature_names`` (pass them for a fit on named
    columns). ``params`` go to the constructor.
    """
    cov = covariance_type or ds.attrs.get("covariance_type")
    if cov is None:
        raise ValueError(
            "This EM dataset does not record its covariance_type; pass covariance_type=..."
        )
    state: dict[str, Any] = {name: ds[name].values for name in _STATE_ARRAYS}
    state["degenerate"] = state["degenerate"].astype(bool)
    state["covariance_type"] = cov
    for key in ("converged", "n_iter", "lower_bound"):
        if key in ds.attrs:
            state[key] = ds.attrs[key]
    return em_from_state(state, feature_names=feature_names, **params)
