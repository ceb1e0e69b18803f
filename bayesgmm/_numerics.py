"""Pure-NumPy Gaussian-mixture numerics shared by EM, the posterior and model comparison.

Parameter conventions (the same as scikit-learn's, so fitted values can be exchanged):

================  ==========================  =======================================
covariance_type   covariances                 precisions_cholesky
================  ==========================  =======================================
``"full"``        ``(..., K, D, D)``          ``(..., K, D, D)``, upper triangular
``"tied"``        ``(..., D, D)``             ``(..., D, D)``, upper triangular
``"diag"``        ``(..., K, D)``             ``(..., K, D)``, ``1 / sqrt(variance)``
``"spherical"``   ``(..., K)``                ``(..., K)``, ``1 / sqrt(variance)``
================  ==========================  =======================================

mclust's model names (``"EEV"``, ...) are accepted too and mean their storage layout
(:func:`bayesgmm._mclust.covariance_layout`).

``precision = U @ U.T`` with ``U`` the precision Cholesky factor, so that
``(x - mu) @ U`` is a whitened residual. Any leading dimensions ``...`` are broadcast: pass a
stack of posterior draws (for example ``(chain, draw, K, D)`` means) and every function returns
one result per draw. This module is the one place where the Gaussian log-density is written;
the compiled EM kernel in :mod:`bayesgmm._kernels` is tested against it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.linalg import solve_triangular
from scipy.special import logsumexp

from ._mclust import covariance_layout, n_covariance_parameters

__all__ = [
    "COVARIANCE_TYPES",
    "covariance_deterministics",
    "covariances_from_precisions_cholesky",
    "log_det_precision_cholesky",
    "log_gaussian_prob",
    "log_mixture_density",
    "log_weighted_prob",
    "n_parameters",
    "precisions_cholesky_from_covariances",
    "precisions_cholesky_from_precisions",
    "precisions_from_precisions_cholesky",
    "responsibilities",
]

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
_LOG_2PI = np.log(2.0 * np.pi)


class SingularCovarianceError(ValueError):
    """A covariance matrix is not positive definite."""


def _singular_message(covariance_type: str) -> str:
    return (
        f"A {covariance_type} covariance matrix is singular or not positive definite: a "
        "component has collapsed onto too few (possibly tied) points or the features are "
        "collinear or constant. Use a positive reg_covar (in EMGaussianMixture it is a fraction "
        "of each feature's variance, so the default 1e-6 suits data in any units), drop "
        "constant or duplicate columns, or use fewer components."
    )


def precisions_cholesky_from_covariances(
    covariances: np.ndarray, covariance_type: str
) -> np.ndarray:
    """Precision Cholesky factors from covariances, stacked over leading dimensions.

    Parameters
    ----------
    covariances : ndarray
        Shapes as in the module table.
    covariance_type : {"full", "tied", "diag", "spherical"}

    Returns
    -------
    ndarray
        Same shape as ``covariances``.

    Raises
    ------
    SingularCovarianceError
        A ``ValueError`` subclass, with a hint, when a covariance is not positive definite.
    """
    covariance_type = covariance_layout(covariance_type)
    covariances = np.asarray(covariances, dtype=np.float64)
    if covariance_type in ("full", "tied"):
        try:
            chol = np.linalg.cholesky(covariances)
        except np.linalg.LinAlgError as exc:
            raise SingularCovarianceError(_singular_message(covariance_type)) from exc
        # Batched inverse of the lower factor (SciPy's batched solve_triangular wrapper costs
        # ~1 ms a call); the factor is triangular, so the inverse is too, up to rounding.
        return np.ascontiguousarray(np.swapaxes(np.tril(np.linalg.inv(chol)), -1, -2))
    if np.any(covariances <= 0.0) or not np.all(np.isfinite(covariances)):
        raise SingularCovarianceError(_singular_message(covariance_type))
    return 1.0 / np.sqrt(covariances)


def precisions_from_precisions_cholesky(
    precisions_cholesky: np.ndarray, covariance_type: str
) -> np.ndarray:
    """Precision matrices (or precision values) from their Cholesky factors."""
    covariance_type = covariance_layout(covariance_type)
    if covariance_type in ("full", "tied"):
        return precisions_cholesky @ np.swapaxes(precisions_cholesky, -1, -2)
    return precisions_cholesky**2


def covariances_from_precisions_cholesky(
    precisions_cholesky: np.ndarray, covariance_type: str
) -> np.ndarray:
    """Covariances from precision Cholesky factors (the inverse of the map above)."""
    covariance_type = covariance_layout(covariance_type)
    if covariance_type in ("full", "tied"):
        eye = np.broadcast_to(np.eye(precisions_cholesky.shape[-1]), precisions_cholesky.shape)
        # U is upper triangular with precision = U U^T, so covariance = U^{-T} U^{-1}.
        u_inv = solve_triangular(precisions_cholesky, eye, lower=False)
        return np.swapaxes(u_inv, -1, -2) @ u_inv
    return 1.0 / precisions_cholesky**2


def precisions_cholesky_from_precisions(precisions: np.ndarray, covariance_type: str) -> np.ndarray:
    """Precision Cholesky factors (upper triangular ``U`` with ``U U^T = P``) from precisions."""
    covariance_type = covariance_layout(covariance_type)
    precisions = np.asarray(precisions, dtype=np.float64)
    if covariance_type in ("full", "tied"):
        # P = U U^T with U upper triangular  <=>  flip(P) = L L^T with L = flip(U) lower.
        flipped = precisions[..., ::-1, ::-1]
        try:
            chol = np.linalg.cholesky(flipped)
        except np.linalg.LinAlgError as exc:
            raise SingularCovarianceError(_singular_message(covariance_type)) from exc
        return np.ascontiguousarray(chol[..., ::-1, ::-1])
    if np.any(precisions <= 0.0) or not np.all(np.isfinite(precisions)):
        raise SingularCovarianceError(_singular_message(covariance_type))
    return np.sqrt(precisions)


def log_det_precision_cholesky(
    precisions_cholesky: np.ndarray, covariance_type: str, n_features: int
) -> np.ndarray:
    """``log det U`` (half the log-determinant of the precision), per component.

    Returns
    -------
    ndarray of shape (..., K), or (...) for ``"tied"``
    """
    covariance_type = covariance_layout(covariance_type)
    if covariance_type in ("full", "tied"):
        return np.log(np.diagonal(precisions_cholesky, axis1=-2, axis2=-1)).sum(axis=-1)
    if covariance_type == "diag":
        return np.log(precisions_cholesky).sum(axis=-1)
    return n_features * np.log(precisions_cholesky)


def log_gaussian_prob(
    X: np.ndarray,
    means: np.ndarray,
    precisions_cholesky: np.ndarray,
    covariance_type: str,
) -> np.ndarray:
    """Gaussian log-density of every sample under every component, ``log N(x_i | mu_k, Sigma_k)``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    means : ndarray of shape (..., n_components, n_features)
    precisions_cholesky : ndarray
        Shapes as in the module table, with the same leading dimensions as ``means``.
    covariance_type : {"full", "tied", "diag", "spherical"}

    Returns
    -------
    ndarray of shape (..., n_samples, n_components)

    Notes
    -----
    Memory is ``prod(...) * K * n_samples * n_features`` floats; callers that evaluate many
    draws on many points pass them in chunks.
    """
    covariance_type = covariance_layout(covariance_type)
    X = np.asarray(X, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    pc = np.asarray(precisions_cholesky, dtype=np.float64)
    n_features = X.shape[1]
    if covariance_type == "full":
        # (..., K, N, D): whitened residuals of every sample for every component.
        y = X @ pc - (means[..., :, None, :] @ pc)
    elif covariance_type == "tied":
        y = (X @ pc)[..., None, :, :] - (means @ pc)[..., :, None, :]
    elif covariance_type == "diag":
        y = (X - means[..., :, None, :]) * pc[..., :, None, :]
    elif covariance_type == "spherical":
        y = (X - means[..., :, None, :]) * pc[..., :, None, None]
    else:
        raise ValueError(
            f"covariance_type={covariance_type!r} is not supported; choose one of "
            f"{', '.join(map(repr, COVARIANCE_TYPES))}."
        )
    maha = np.einsum("...knd,...knd->...nk", y, y)
    log_det = log_det_precision_cholesky(pc, covariance_type, n_features)
    if covariance_type == "tied":
        log_det = log_det[..., None]
    return -0.5 * (n_features * _LOG_2PI + maha) + log_det[..., None, :]


def log_weighted_prob(
    X: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    precisions_cholesky: np.ndarray,
    covariance_type: str,
) -> np.ndarray:
    """``log w_k + log N(x_i | mu_k, Sigma_k)``, shape ``(..., n_samples, n_components)``."""
    with np.errstate(divide="ignore"):
        log_w = np.log(np.asarray(weights, dtype=np.float64))
    return log_gaussian_prob(X, means, precisions_cholesky, covariance_type) + log_w[..., None, :]


def log_mixture_density(
    X: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    precisions_cholesky: np.ndarray,
    covariance_type: str,
) -> np.ndarray:
    """Pointwise mixture log-density ``log sum_k w_k N(x_i | mu_k, Sigma_k)``.

    Returns
    -------
    ndarray of shape (..., n_samples)
    """
    return logsumexp(
        log_weighted_prob(X, weights, means, precisions_cholesky, covariance_type), axis=-1
    )


def responsibilities(weighted_log_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalise weighted log-probabilities into responsibilities.

    Parameters
    ----------
    weighted_log_prob : ndarray of shape (..., n_samples, n_components)

    Returns
    -------
    resp : ndarray of shape (..., n_samples, n_components)
        ``p(z_i = k | x_i)``; each row sums to one.
    log_norm : ndarray of shape (..., n_samples)
        The pointwise mixture log-density.
    """
    log_norm = logsumexp(weighted_log_prob, axis=-1)
    return np.exp(weighted_log_prob - log_norm[..., None]), log_norm


def n_parameters(n_components: int, n_features: int, covariance_type: str) -> int:
    """Number of free parameters of a Gaussian mixture.

    ``K - 1`` weights, ``K * D`` means and the covariance parameters: ``K D (D + 1) / 2``
    (full), ``D (D + 1) / 2`` (tied), ``K D`` (diag) or ``K`` (spherical); for mclust's
    model names (``"EEV"``, ...), mclust's count
    (:func:`bayesgmm._mclust.n_covariance_parameters`).
    """
    k, d = n_components, n_features
    if covariance_type not in COVARIANCE_TYPES:
        return int(n_covariance_parameters(covariance_type, k, d) + k * d + k - 1)
    cov = {
        "full": k * d * (d + 1) // 2,
        "tied": d * (d + 1) // 2,
        "diag": k * d,
        "spherical": k,
    }[covariance_type]
    return int(cov + k * d + k - 1)


def _lower_inverse_transposed(chol: np.ndarray) -> np.ndarray:
    """Upper ``U = L^{-T}`` (so that ``precision = U U^T``) from lower ``L``, batched."""
    return np.swapaxes(np.tril(np.linalg.inv(chol)), -1, -2)


def covariance_deterministics(
    cov_param: Any,
    covariance_type: str,
    *,
    n_features: int,
    xp: Any = np,
    precisions_cholesky_from_chol: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """The posterior's derived covariance quantities, from ``chol`` or ``sigma``.

    The one formula for the deterministics of :func:`bayesgmm.build_model`. The model's graph
    calls it with ``xp=pytensor.tensor`` (so the same expressions become its
    ``pm.Deterministic`` variables); everything that post-processes draws calls it with NumPy
    (:func:`bayesgmm.sampling.posterior_dataset`). The graph keeps its own triangular inverse
    (``precisions_cholesky_from_chol``: unrolled forward substitution or a batched
    ``solve_triangular``, chosen for the PyTensor backends' speed); the NumPy default inverts
    ``L`` by LAPACK. The compiled fast path (:mod:`bayesgmm._logdensity`) only produces
    ``chol``/``sigma`` (the inverse of PyMC's transforms), and the rest is derived here.

    Parameters
    ----------
    cov_param : array of shape (..., K, D, D), (..., D, D), (..., K, D) or (..., K)
        Lower Cholesky factor ``L`` of the covariance (``Sigma = L L^T``) for ``"full"`` and
        ``"tied"``; standard deviations ``sigma`` for ``"diag"`` and ``"spherical"``. Any
        leading dimensions (chains, draws) are broadcast.
    covariance_type : {"full", "tied", "diag", "spherical"}
    n_features : int
        ``D`` (needed for ``"spherical"``, whose ``sigma`` does not show it).
    xp : module, default numpy
        Array namespace: ``numpy`` or ``pytensor.tensor``.
    precisions_cholesky_from_chol : callable, optional
        ``L -> U = L^{-T}``; LAPACK's inverse of ``L`` by default (NumPy only).

    Returns
    -------
    dict
        ``"full"``/``"tied"``: ``chol``, ``corr``, ``stds``, ``covariances``,
        ``precisions_cholesky`` (upper ``U`` with ``precision = U U^T``); ``"diag"``/
        ``"spherical"``: ``sigma``, ``covariances`` (diagonal matrices) and
        ``precisions_cholesky = 1 / sigma``. Shapes as in the module table.
    """
    if covariance_type in ("full", "tied"):
        chol = cov_param
        cov = chol @ xp.swapaxes(chol, -1, -2)
        stds = xp.sqrt(xp.diagonal(cov, axis1=-2, axis2=-1))
        corr = cov / (stds[..., :, None] * stds[..., None, :])
        invert = precisions_cholesky_from_chol or _lower_inverse_transposed
        return {
            "chol": chol,
            "corr": corr,
            "stds": stds,
            "covariances": cov,
            "precisions_cholesky": invert(chol),
        }
    if covariance_type not in ("diag", "spherical"):
        raise ValueError(
            f"covariance_type={covariance_type!r} is not supported; choose one of "
            f"{', '.join(map(repr, COVARIANCE_TYPES))}."
        )
    sigma = cov_param
    var = sigma**2
    var = var[..., :, :, None] if covariance_type == "diag" else var[..., :, None, None]
    return {
        "sigma": sigma,
        "covariances": var * xp.eye(n_features),
        "precisions_cholesky": 1.0 / sigma,
    }
