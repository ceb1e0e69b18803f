"""PyMC graph of a Bayesian Gaussian mixture with the component labels marginalised out.

The likelihood is written by hand in "whitened" form, with the same conventions as
:mod:`bayesgmm._numerics` (scikit-learn's): for every component ``k`` an upper-triangular
precision Cholesky factor ``U_k`` with ``precision_k = U_k U_k^T`` is formed and

.. math::

    \\log p(x_i) = \\operatorname{logsumexp}_k \\Big[\\log w_k + \\log\\det U_k
    - \\tfrac{D}{2}\\log 2\\pi - \\tfrac12 \\lVert (x_i - \\mu_k) U_k \\rVert^2 \\Big].

For ``"full"`` and ``"tied"`` covariances the prior is placed on the covariance Cholesky factor
``L`` (``Sigma = L L^T``, :class:`pymc.LKJCholeskyCov`; for one feature ``L`` is the standard
deviation with its half-normal prior), and ``U = L^{-T}``. ``L`` is a tiny
``D x D`` triangular matrix, so its inverse is written out by forward substitution as plain
element-wise graph operations (one small vector operation per entry) instead of calling a
(batched) triangular solve: that keeps the per-evaluation cost dominated by one ``N x D`` by
``D x KD`` matrix product and the ``N x K`` exponentials, for every PyTensor backend (Numba, C,
JAX). For ``D`` above ``_UNROLL_MAX_FEATURES`` a batched ``solve_triangular`` is used instead.

By default (``likelihood="op"``) that log-density is not built from these graph operations but
computed by one PyTensor Op around the compiled mixture kernel, with an analytic gradient and a
Numba implementation (:mod:`bayesgmm._likelihood_op`); the graph written out here is the
reference formulation (``likelihood="reference"``), which the tests prove equal to the Op and
which the JAX-based samplers use.

The observed variable ``"obs"`` is a :class:`pymc.CustomDist` whose log-density is the pointwise
mixture log-density (one value per observation, features summed), so
:func:`pymc.compute_log_likelihood` gives a ``log_likelihood`` group with dims
``(chain, draw, obs_id)``.

:func:`~bayesgmm.build_model` is composed of public building blocks that a custom model
reuses when it changes one prior and keeps the others: :func:`model_coords`,
:func:`covariance_prior` (the covariance variables and their deterministics) and
:func:`mixture_likelihood` (the observed variable through the Op), with the numbers of
:func:`prior_hyperparameters`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from ._numerics import COVARIANCE_TYPES, covariance_deterministics
from ._validation import check_choice

if TYPE_CHECKING:
    from numpy.typing import ArrayLike
    from pytensor.tensor import TensorVariable

__all__ = [
    "PriorHyperparameters",
    "Priors",
    "build_model",
    "covariance_prior",
    "mixture_likelihood",
    "model_coords",
    "prior_hyperparameters",
]

_LOG_2PI = float(np.log(2.0 * np.pi))
#: Largest number of features for which the triangular inverse is unrolled into the graph.
_UNROLL_MAX_FEATURES = 8

CovarianceType = Literal["full", "tied", "diag", "spherical"]
Likelihood = Literal["op", "reference"]
LIKELIHOODS = ("op", "reference")
#: CustomDist signature of the observed variable per covariance type (weights, means, U).
_SIGNATURES = {
    "full": "(k),(k,d),(k,d,d)->(d)",
    "tied": "(k),(k,d),(d,d)->(d)",
    "diag": "(k),(k,d),(k,d)->(d)",
    "spherical": "(k),(k,d),(k)->(d)",
}


@dataclass(frozen=True)
class Priors:
    """Hyper-parameters of the mixture priors, all relative to the scale of the data.

    With ``m`` and ``s`` the per-feature sample mean and standard deviation of ``X``:

    * ``weights ~ Dirichlet(weights_concentration * ones(K))``;
    * ``means[k, d] ~ Normal(m[d], mean_scale * s[d])``;
    * ``"full"`` / ``"tied"``: ``LKJCholeskyCov(eta=lkj_eta, sd_dist=HalfNormal(sd_scale * s))``
      per component (``"full"``) or shared (``"tied"``); with one feature there is no
      correlation and this is the standard deviation's ``HalfNormal(sd_scale * s)`` alone;
    * ``"diag"``: ``sigma[k, d] ~ HalfNormal(sd_scale * s[d])``;
    * ``"spherical"``: ``sigma[k] ~ HalfNormal(sd_scale * mean(s))``.

    Parameters
    ----------
    weights_concentration : float, default 1.0
        Dirichlet concentration of every component (1 is uniform on the simplex).
    mean_scale : float, default 2.5
        Prior standard deviation of the component means, in data standard deviations.
    sd_scale : float, default 1.0
        Scale of the half-normal prior on component standard deviations, in data standard
        deviations.
    lkj_eta : float, default 2.0
        LKJ shape parameter of the correlation matrices (``"full"`` and ``"tied"``); values
        above 1 shrink towards independence.
    """

    weights_concentration: float = 1.0
    mean_scale: float = 2.5
    sd_scale: float = 1.0
    lkj_eta: float = 2.0

    def __post_init__(self) -> None:
        for name in ("weights_concentration", "mean_scale", "sd_scale", "lkj_eta"):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"Priors.{name} must be a positive finite number, got {value!r}.")


@dataclass(frozen=True)
class PriorHyperparameters:
    """The numbers the stock priors are built from, for one data set and ``K``.

    Computed by :func:`prior_hyperparameters`, the one place they are derived: both
    :func:`~bayesgmm.build_model` and the compiled log-posterior of the default sampler
    (:class:`bayesgmm._logdensity.LogDensitySpec`) take them from there.

    Attributes
    ----------
    loc : ndarray of shape (n_features,)
        Per-feature sample mean ``m`` of the data.
    scale : ndarray of shape (n_features,)
        Per-feature standard deviation ``s`` of the data (``ddof=0``; 1 for a constant
        feature).
    weights_concentration : ndarray of shape (n_components,)
        Dirichlet concentration of ``weights``.
    means_loc, means_scale : ndarray of shape (n_components, n_features)
        Mean and standard deviation of the normal prior of ``means``.
    sd_scale : ndarray of shape (n_features,)
        Half-normal scale of each feature's standard deviation (the LKJ ``sd_dist`` for
        ``"full"``/``"tied"``, ``sigma``'s prior for ``"diag"``); for ``"spherical"`` every
        entry is the one pooled scale ``sd_scale * mean(s)`` of ``sigma``.
    lkj_eta : float
        LKJ shape of the correlation matrices (``"full"``, ``"tied"``; unused otherwise).
    """

    loc: np.ndarray
    scale: np.ndarray
    weights_concentration: np.ndarray
    means_loc: np.ndarray
    means_scale: np.ndarray
    sd_scale: np.ndarray
    lkj_eta: float


def prior_hyperparameters(
    X: ArrayLike,
    n_components: int,
    *,
    covariance_type: CovarianceType = "full",
    priors: Priors | None = None,
) -> PriorHyperparameters:
    """Hyper-parameters of the stock priors of :func:`~bayesgmm.build_model` for data ``X``.

    The rules are those stated in :class:`Priors`: scales relative to the per-feature mean
    ``m`` and standard deviation ``s`` of ``X``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Finite observations.
    n_components : int
        Number of mixture components ``K``.
    covariance_type : {"full", "tied", "diag", "spherical"}, default "full"
    priors : Priors, optional
        ``Priors()`` when omitted.

    Returns
    -------
    PriorHyperparameters

    Raises
    ------
    ValueError
        For an unknown ``covariance_type``, ``n_components < 1`` or ``X`` that is not a 2-D
        array of at least one row.
    """
    check_choice("covariance_type", covariance_type, COVARIANCE_TYPES)
    if int(n_components) < 1:
        raise ValueError(f"n_components must be a positive integer, got {n_components}.")
    priors = Priors() if priors is None else priors
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2 or X.shape[0] < 1:
        raise ValueError(f"X must be a 2-D array with at least one row, got shape {X.shape}.")
    k, d = int(n_components), X.shape[1]
    loc = X.mean(axis=0)
    scale = X.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    sd_scale = priors.sd_scale * scale
    if covariance_type == "spherical":
        sd_scale = np.full(d, float(sd_scale.mean()))
    return PriorHyperparameters(
        loc=loc,
        scale=scale,
        weights_concentration=np.full(k, float(priors.weights_concentration)),
        means_loc=np.tile(loc, (k, 1)),
        means_scale=np.tile(priors.mean_scale * scale, (k, 1)),
        sd_scale=sd_scale,
        lkj_eta=float(priors.lkj_eta),
    )


def build_model(
    X: ArrayLike,
    n_components: int,
    *,
    covariance_type: CovarianceType = "full",
    priors: Priors | None = None,
    likelihood: Likelihood = "op",
) -> pm.Model:
    """Build the PyMC model of a Bayesian Gaussian mixture (labels marginalised out).

    Parameters
    ----------
    X : array-like or DataFrame of shape (n_samples, n_features)
        Observations. DataFrame column names become the ``feature`` coordinate values.
    n_components : int
        Number of mixture components ``K``.
    covariance_type : {"full", "tied", "diag", "spherical"}, default "full"
        Covariance structure, as in :mod:`bayesgmm._numerics`.
    priors : Priors, optional
        Prior hyper-parameters; ``Priors()`` (data-scaled defaults) when omitted.
    likelihood : {"op", "reference"}, default "op"
        How the observed variable's log-density is computed; both give the same function
        (tested equal, value and gradient). ``"op"``: one PyTensor Op around the compiled
        mixture kernel with an analytic gradient
        (:class:`bayesgmm._likelihood_op.MixtureLogDensity`), with a Numba implementation
        that PyTensor's Numba backend and ``nutpie.compile_pymc_model(backend="numba")``
        call directly; it has no JAX implementation. ``"reference"``: the same density
        written as plain PyTensor operations, which every backend (JAX included) compiles
        and differentiates itself.

    Returns
    -------
    pymc.Model
        With coords ``obs_id``, ``component``, ``feature``, ``feature_bis``; free variables
        ``weights`` (component), ``means`` (component, feature) and the covariance variables
        (``chol_cov_<k>`` per component for ``"full"``, ``chol_cov`` for ``"tied"``: packed
        ``LKJCholeskyCov`` values, or with one feature the standard deviation, a
        ``HalfNormal`` of shape (1,); ``sigma`` otherwise); deterministics ``covariances``
        (component, feature, feature_bis), or (feature, feature_bis) for ``"tied"``, and
        ``precisions_cholesky`` (sklearn layout);
        for ``"full"``/``"tied"`` also ``chol``, ``corr`` and ``stds``; the observed variable
        ``obs`` (obs_id, feature) whose pointwise log-density is the mixture log-density.
    """
    return _build_model(
        X, n_components, covariance_type=covariance_type, priors=priors, likelihood=likelihood
    )


def model_coords(X: ArrayLike, n_components: int) -> dict[str, Any]:
    """The coordinates of :func:`~bayesgmm.build_model`'s model for ``X``: a custom model's start.

    ``obs_id`` (row numbers), ``component`` (``0 .. K-1``), ``feature`` and ``feature_bis``
    (a DataFrame's column names, else ``x0``, ``x1``, ...): the dims that
    :func:`covariance_prior` and :func:`mixture_likelihood` use.
    """
    X, columns = _prepare_data(X)
    return _coords(X.shape[0], int(n_components), columns)


def _coords(n: int, k: int, columns: list) -> dict[str, Any]:
    return {
        "obs_id": np.arange(n),
        "component": np.arange(k),
        "feature": columns,
        "feature_bis": columns,
    }


def covariance_prior(
    covariance_type: CovarianceType,
    n_components: int,
    hyperparameters: PriorHyperparameters,
) -> TensorVariable:
    """The stock model's covariance prior, inside the current ``pm.Model``; returns ``U``.

    Creates exactly what :func:`~bayesgmm.build_model` creates for the covariances: for
    ``"full"`` one ``LKJCholeskyCov`` (half-normal standard deviations) per component,
    ``chol_cov_<k>``, for ``"tied"`` one, ``chol_cov`` (with one feature, the standard
    deviation's ``HalfNormal`` of shape (1,)), and the deterministics ``chol``, ``corr``,
    ``stds``, ``covariances``, ``precisions_cholesky``; for ``"diag"``/``"spherical"`` the
    ``HalfNormal`` ``sigma`` and ``covariances``, ``precisions_cholesky``. A custom model that
    changes another prior (the means', say) calls it to keep this one, with the names and
    dims the custom-model contract asks for.

    Parameters
    ----------
    covariance_type : {"full", "tied", "diag", "spherical"}
    n_components : int
    hyperparameters : PriorHyperparameters
        From :func:`prior_hyperparameters` for the same data, ``K`` and covariance type.

    Returns
    -------
    TensorVariable
        The precision Cholesky factors ``U`` (``precisions_cholesky``), for
        :func:`mixture_likelihood`.

    Raises
    ------
    ValueError
        If there is no enclosing model, or it lacks the dims ``component``, ``feature``
        (and ``feature_bis``) of :func:`model_coords`.
    """
    check_choice("covariance_type", covariance_type, COVARIANCE_TYPES)
    model = pm.modelcontext(None)
    missing = [dim for dim in ("component", "feature", "feature_bis") if dim not in model.coords]
    if missing:
        raise ValueError(
            f"covariance_prior needs the model's dims {', '.join(map(repr, missing))}; create "
            "the model with pm.Model(coords=bayesgmm.model.model_coords(X, n_components))."
        )
    d = len(hyperparameters.sd_scale)
    return _covariance_prior(covariance_type, int(n_components), d, hyperparameters)


def _covariance_prior(
    covariance_type: str, k: int, d: int, hp: PriorHyperparameters, *, inverse: str = "auto"
) -> TensorVariable:
    sd_scale = hp.sd_scale
    if covariance_type in ("full", "tied"):
        n_cov = k if covariance_type == "full" else 1
        packed = [
            _cholesky_prior(
                "chol_cov" if covariance_type == "tied" else f"chol_cov_{j}",
                d,
                eta=hp.lkj_eta,
                sd_scale=sd_scale,
            )
            for j in range(n_cov)
        ]
        chol = _unpack_lower(pt.stack(packed) if covariance_type == "full" else packed[0], d)
        derived = covariance_deterministics(
            chol,
            covariance_type,
            n_features=d,
            xp=pt,
            precisions_cholesky_from_chol=lambda c: _precision_cholesky_from_chol(c, d, inverse),
        )
        mat_dims = ("feature", "feature_bis")
        lead = ("component",) if covariance_type == "full" else ()
        for name in ("chol", "corr", "stds", "covariances", "precisions_cholesky"):
            dims = (*lead, "feature") if name == "stds" else (*lead, *mat_dims)
            pm.Deterministic(name, derived[name], dims=dims)
    else:
        if covariance_type == "diag":
            sigma_dims: tuple[str, ...] = ("component", "feature")
            sigma = pm.HalfNormal("sigma", sigma=np.broadcast_to(sd_scale, (k, d)), dims=sigma_dims)
        else:
            sigma_dims = ("component",)
            sigma = pm.HalfNormal("sigma", sigma=float(sd_scale[0]), dims=sigma_dims)
        derived = covariance_deterministics(sigma, covariance_type, n_features=d, xp=pt)
        dims = ("component", "feature", "feature_bis")
        pm.Deterministic("covariances", derived["covariances"], dims=dims)
        pm.Deterministic("precisions_cholesky", derived["precisions_cholesky"], dims=sigma_dims)
    return derived["precisions_cholesky"]


def mixture_likelihood(
    X: ArrayLike,
    weights: TensorVariable,
    means: TensorVariable,
    precisions_cholesky: TensorVariable,
    covariance_type: CovarianceType,
    *,
    name: str = "obs",
) -> TensorVariable:
    """Observe ``X`` through the Gaussian mixture likelihood, inside the current ``pm.Model``.

    The observed variable of :func:`~bayesgmm.build_model` (labels marginalised out): a
    ``pm.CustomDist`` whose log-density per observation is
    ``log sum_k w_k N(x_i | mu_k, Sigma_k)``, computed by the library's compiled kernel with
    its analytic gradient (:class:`bayesgmm._likelihood_op.MixtureLogDensity`, which
    PyTensor's Numba backend calls directly), with dims ``(obs_id, feature)`` and a random
    draw function for prior and posterior predictive sampling. In a custom model it replaces
    a hand-written likelihood: the same density (tested), less for PyTensor to compile.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        The data the model function received, unchanged.
    weights, means, precisions_cholesky : TensorVariable
        Of shapes ``(K,)``, ``(K, D)`` and the ``precisions_cholesky`` layout of
        ``covariance_type`` (what :func:`covariance_prior` returns).
    covariance_type : {"full", "tied", "diag", "spherical"}
    name : str, default "obs"

    Returns
    -------
    TensorVariable
        The observed variable.
    """
    check_choice("covariance_type", covariance_type, COVARIANCE_TYPES)
    X, _ = _prepare_data(X)
    k = weights.type.shape[0] if weights.type.ndim == 1 else None
    if k is None:
        coords = pm.modelcontext(None).coords
        if "component" not in coords:
            raise ValueError(
                "mixture_likelihood needs the number of components: give weights a static "
                "length or the model the dim 'component' (bayesgmm.model.model_coords)."
            )
        k = len(coords["component"])
    return pm.CustomDist(
        name,
        weights,
        means,
        precisions_cholesky,
        logp=_make_op_logp(covariance_type),
        random=_make_random(covariance_type, k, X.shape[1]),
        signature=_SIGNATURES[covariance_type],
        observed=X,
        dims=("obs_id", "feature"),
    )


def _prepare_data(X: Any) -> tuple[np.ndarray, list]:
    columns = None
    if hasattr(X, "columns") and hasattr(X, "to_numpy"):
        columns = [str(c) for c in X.columns]
        X = X.to_numpy(dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2 or X.shape[0] < 2:
        raise ValueError(f"X must be a 2-D array with at least two rows, got shape {X.shape}.")
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains NaN or infinite values.")
    if columns is None:
        columns = [f"x{d}" for d in range(X.shape[1])]
    return np.ascontiguousarray(X), columns


def _unpack_lower(packed: TensorVariable, n: int) -> TensorVariable:
    """Lower-triangular ``(n, n)`` matrix from PyMC's row-major packed vector (or a stack)."""
    rows, cols = np.tril_indices(n)
    batch = tuple(packed.shape[:-1])
    return pt.zeros((*batch, n, n))[..., rows, cols].set(packed)


def _lower_inverse_unrolled(chol: TensorVariable, n: int) -> TensorVariable:
    """Inverse of lower-triangular ``(..., n, n)`` matrices by unrolled forward substitution."""
    inv_diag = [1.0 / chol[..., i, i] for i in range(n)]
    entries: dict[tuple[int, int], TensorVariable] = {}
    for i in range(n):
        entries[i, i] = inv_diag[i]
        for j in range(i):
            acc = chol[..., i, j] * entries[j, j]
            for m in range(j + 1, i):
                acc = acc + chol[..., i, m] * entries[m, j]
            entries[i, j] = -acc * inv_diag[i]
    zero = pt.zeros_like(inv_diag[0])
    rows = [pt.stack([entries.get((i, j), zero) for j in range(n)], axis=-1) for i in range(n)]
    return pt.stack(rows, axis=-2)


def _precision_cholesky_from_chol(chol: TensorVariable, n: int, method: str) -> TensorVariable:
    """Upper ``U = L^{-T}`` (precision = U U^T) from the covariance Cholesky factor ``L``."""
    if method == "unrolled" or (method == "auto" and n <= _UNROLL_MAX_FEATURES):
        inv = _lower_inverse_unrolled(chol, n)
    else:
        eye = pt.broadcast_to(pt.eye(n), chol.shape)
        inv = pt.linalg.solve_triangular(chol, eye, lower=True)
    return pt.swapaxes(inv, -1, -2)


def _core(x: TensorVariable, ndim: int) -> TensorVariable:
    """Drop the length-1 batch dimensions PyMC prepends to CustomDist parameters."""
    return x[(0,) * (x.ndim - ndim)] if x.ndim > ndim else x


def _make_logp(covariance_type: str, n_components: int, n_features: int, formulation: str):
    """CustomDist log-density ``value (N, D) -> (N,)`` for a covariance type."""
    k, d = n_components, n_features
    const = -0.5 * d * _LOG_2PI

    def logsumexp_k(log_w, log_det, maha):
        # maha: (N, K); returns (N,)
        return pt.logsumexp(log_w + log_det + const - 0.5 * maha, axis=-1)

    if covariance_type in ("full", "tied"):

        def logp(value, weights, means, prec_chol):
            weights, means = _core(weights, 1), _core(means, 2)
            prec_chol = _core(prec_chol, 2 if covariance_type == "tied" else 3)
            log_w = pt.log(weights)
            if covariance_type == "tied":
                log_det = pt.log(pt.diagonal(prec_chol)).sum()
                y = pt.dot(value, prec_chol)  # (N, D)
                m = pt.dot(means, prec_chol)  # (K, D)
                maha = ((y[:, None, :] - m[None, :, :]) ** 2).sum(-1)
                return logsumexp_k(log_w, log_det, maha)
            log_det = pt.log(pt.diagonal(prec_chol, axis1=-2, axis2=-1)).sum(-1)  # (K,)
            if formulation == "einsum":
                resid = value[None, :, :] - means[:, None, :]  # (K, N, D)
                y = pt.einsum("knd,kde->kne", resid, prec_chol)
                maha = (y**2).sum(-1).T
            else:
                # One (N, D) @ (D, K*D) product: column k*D + e holds x @ U_k[:, e].
                u_wide = pt.transpose(prec_chol, (1, 0, 2)).reshape((d, k * d))
                y = pt.dot(value, u_wide).reshape((value.shape[0], k, d))
                m = (means[:, :, None] * prec_chol).sum(-2)  # (K, D) = mu_k @ U_k
                maha = ((y - m[None, :, :]) ** 2).sum(-1)
            return logsumexp_k(log_w, log_det, maha)

    elif covariance_type == "diag":

        def logp(value, weights, means, prec_chol):
            weights, means, prec_chol = _core(weights, 1), _core(means, 2), _core(prec_chol, 2)
            log_det = pt.log(prec_chol).sum(-1)
            y = (value[:, None, :] - means[None, :, :]) * prec_chol[None, :, :]
            return logsumexp_k(pt.log(weights), log_det, (y**2).sum(-1))

    else:

        def logp(value, weights, means, prec_chol):
            weights, means, prec_chol = _core(weights, 1), _core(means, 2), _core(prec_chol, 1)
            log_det = d * pt.log(prec_chol)
            sq = ((value[:, None, :] - means[None, :, :]) ** 2).sum(-1)
            return logsumexp_k(pt.log(weights), log_det, sq * prec_chol**2)

    return logp


def _make_op_logp(covariance_type: str):
    """CustomDist log-density ``value (N, D) -> (N,)`` through the compiled-kernel Op."""
    from ._likelihood_op import MixtureLogDensity

    op = MixtureLogDensity(covariance_type)
    core = {"full": 3, "tied": 2, "diag": 2, "spherical": 1}[covariance_type]

    def logp(value, weights, means, prec_chol):
        return op(value, _core(weights, 1), _core(means, 2), _core(prec_chol, core))

    return logp


def _make_random(covariance_type: str, n_components: int, n_features: int):
    """CustomDist draw function: pick a component by weight, then a Gaussian draw from it."""
    k, d = n_components, n_features
    core = {"full": 3, "tied": 2, "diag": 2, "spherical": 1}[covariance_type]

    def squeeze(x, ndim):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim > ndim:
            if any(n != 1 for n in x.shape[: x.ndim - ndim]):
                raise NotImplementedError(
                    "Drawing obs with batched mixture parameters is not supported; draw one "
                    "parameter set at a time (as sample_prior/posterior_predictive do)."
                )
            x = x.reshape(x.shape[x.ndim - ndim :])
        return x

    def random(weights, means, prec_chol, rng=None, size=None):
        w, mu, pc = squeeze(weights, 1), squeeze(means, 2), squeeze(prec_chol, core)
        rng = np.random.default_rng(rng)
        shape = () if size is None else tuple(int(s) for s in np.atleast_1d(size))
        z = rng.choice(k, size=shape, p=w / w.sum())
        eps = rng.standard_normal((*shape, d))
        if covariance_type in ("full", "tied"):
            # U is the precision Cholesky factor: Sigma = L L^T with L = U^{-T}.
            chol = np.swapaxes(np.linalg.inv(pc), -1, -2)
            chol = chol[z] if covariance_type == "full" else chol
            return mu[z] + np.einsum("...ij,...j->...i", chol, eps)
        scale = 1.0 / pc[z]
        return mu[z] + eps * (scale if covariance_type == "diag" else scale[..., None])

    return random


def _cholesky_prior(name: str, n: int, *, eta: float, sd_scale: np.ndarray) -> TensorVariable:
    """Packed lower Cholesky factor of one covariance: ``LKJCholeskyCov`` with half-normal sds.

    For ``n == 1`` there is no correlation, and the LKJ Cholesky prior reduces to its standard
    deviation with the half-normal prior (``LKJCholeskyCov`` itself fails for ``n = 1``). That
    case is the free variable ``HalfNormal(sd_scale)`` of shape ``(1,)``, whose packed value
    is the one Cholesky entry: the same density, on the same unconstrained (log) scale, as
    the ``n = 1`` case of the LKJ density written out in :mod:`bayesgmm._logdensity`.
    """
    if n == 1:
        return pm.HalfNormal(name, sigma=np.asarray(sd_scale, dtype=np.float64), shape=(1,))
    return pm.LKJCholeskyCov(
        name,
        eta=eta,
        n=n,
        sd_dist=pm.HalfNormal.dist(sigma=sd_scale, shape=n),
        compute_corr=False,
    )


def _build_model(
    X: Any,
    n_components: int,
    *,
    covariance_type: str = "full",
    priors: Priors | None = None,
    likelihood: str = "op",
    formulation: str = "whiten",
    inverse: str = "auto",
) -> pm.Model:
    """Model builder with the likelihood formulation exposed (for benchmarks and tests).

    ``likelihood``: ``"op"`` (the compiled-kernel Op) or ``"reference"`` (plain PyTensor
    operations, as below), see :func:`~bayesgmm.build_model`.
    ``formulation`` (``likelihood="reference"`` only): ``"whiten"`` (default, one wide matrix
    product), ``"einsum"`` (batched ``(K, N, D)`` residuals) or ``"mvnormal"`` (K separate
    ``MvNormal`` log-densities).
    ``inverse``: ``"auto"``, ``"unrolled"`` or ``"solve"`` (batched ``solve_triangular``).
    """
    if likelihood not in LIKELIHOODS:
        raise ValueError(
            f"likelihood={likelihood!r} is not supported; choose 'op' (the compiled kernel) "
            "or 'reference' (plain PyTensor operations, for JAX)."
        )
    if likelihood == "op" and formulation != "whiten":
        raise ValueError(
            f"formulation={formulation!r} selects a reference formulation; pass "
            "likelihood='reference' with it."
        )
    check_choice("covariance_type", covariance_type, COVARIANCE_TYPES)
    n_components = int(n_components)
    if n_components < 1:
        raise ValueError(f"n_components must be a positive integer, got {n_components}.")
    X, columns = _prepare_data(X)
    n, d = X.shape
    k = n_components
    hp = prior_hyperparameters(X, k, covariance_type=covariance_type, priors=priors)

    with pm.Model(coords=_coords(n, k, columns)) as model:
        weights = pm.Dirichlet("weights", a=hp.weights_concentration, dims="component")
        means = pm.Normal(
            "means", mu=hp.means_loc, sigma=hp.means_scale, dims=("component", "feature")
        )
        prec_chol = _covariance_prior(covariance_type, k, d, hp, inverse=inverse)

        if likelihood == "op":
            mixture_likelihood(X, weights, means, prec_chol, covariance_type)
            return model
        if formulation == "mvnormal" and covariance_type in ("full", "tied"):
            chol = model["chol"]
            full_chol = chol if covariance_type == "full" else pt.stack([chol] * k)

            def logp(value, weights, means, chol_):
                weights, means, chol_ = _core(weights, 1), _core(means, 2), _core(chol_, 3)
                comps = [
                    pm.logp(pm.MvNormal.dist(mu=means[j], chol=chol_[j]), value) for j in range(k)
                ]
                return pt.logsumexp(pt.log(weights) + pt.stack(comps, axis=-1), axis=-1)

            dist_params = (weights, means, full_chol)
            signature = "(k),(k,d),(k,d,d)->(d)"
        else:
            logp = _make_logp(covariance_type, k, d, formulation)
            dist_params = (weights, means, prec_chol)
            signature = _SIGNATURES[covariance_type]
        random = None if formulation == "mvnormal" else _make_random(covariance_type, k, d)
        pm.CustomDist(
            "obs",
            *dist_params,
            logp=logp,
            random=random,
            signature=signature,
            observed=X,
            dims=("obs_id", "feature"),
        )
    return model
