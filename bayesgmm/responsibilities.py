"""Posterior responsibilities ``p(z_i = k | x_i, theta_s)`` and their uncertainty.

Every posterior draw ``theta_s`` gives each point a vector of responsibilities. Summaries over
draws say how sure the model is about each point's component:

- the posterior mean responsibility and an equal-tailed interval per component;
- the most probable label and the posterior probability that it is right;
- the entropy of the mean responsibilities (*total* uncertainty), the mean of the per-draw
  entropies (*aleatoric*: overlap of the components themselves) and their difference
  (*epistemic*: the mutual information between the label and the parameters, which shrinks as
  data accumulate);
- the posterior predictive log-density ``log mean_s p(x_i | theta_s)`` with an interval of
  the per-draw log-densities, an anomaly score.

Memory is bounded: :func:`summarize_responsibilities` is compiled and streams over points,
holding one point's draws x components responsibilities at a time per thread; the full
draws x points x components array is only built by :func:`responsibility_draws`, which
refuses when it would exceed ``max_memory_mb``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from . import _draw_kernels
from ._draw_kernels import summarize_points
from ._validation import check_choice, check_X

__all__ = ["MembershipSummary", "responsibility_draws", "summarize_responsibilities"]

_BYTES = 8


def _entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    """Shannon entropy in nats, with ``0 log 0 = 0``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    return -terms.sum(axis=axis)


def _flatten_draws(
    weights: np.ndarray, means: np.ndarray, precisions_cholesky: np.ndarray, covariance_type: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Collapse all leading (chain, draw, ...) dimensions into one draw axis."""
    weights = np.asarray(weights, dtype=np.float64)
    lead = weights.shape[:-1]
    n_draws = int(np.prod(lead)) if lead else 1
    k = weights.shape[-1]
    means = np.asarray(means, dtype=np.float64).reshape(n_draws, k, -1)
    pc = np.asarray(precisions_cholesky, dtype=np.float64)
    tail = pc.shape[len(lead) :]
    return weights.reshape(n_draws, k), means, pc.reshape(n_draws, *tail)


@dataclass
class MembershipSummary:
    """Per-point summaries of posterior responsibilities; arrays have n_samples rows.

    Attributes
    ----------
    mean : ndarray of shape (n_samples, n_components)
        Posterior mean responsibilities; rows sum to one.
    lower, upper : ndarray of shape (n_samples, n_components)
        Equal-tailed ``interval`` bounds of the per-draw responsibilities.
    labels : ndarray of shape (n_samples,)
        The component with the highest mean responsibility.
    label_probability : ndarray of shape (n_samples,)
        Posterior probability that ``labels`` is right, ``E_theta[p(z_i = label | x_i, theta)]``.
    entropy_total, entropy_aleatoric, entropy_epistemic : ndarray of shape (n_samples,)
        Total = entropy of ``mean``; aleatoric = mean per-draw entropy; epistemic = their
        difference (mutual information of label and parameters, >= 0). In nats.
    log_density : ndarray of shape (n_samples,)
        Posterior predictive log-density ``log mean_s p(x_i | theta_s)``.
    log_density_lower, log_density_upper : ndarray of shape (n_samples,)
        Interval of the per-draw log-densities ``log p(x_i | theta_s)``.
    interval : float
        The interval's probability mass.
    n_draws : int
        Posterior draws used.
    """

    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    labels: np.ndarray
    label_probability: np.ndarray
    entropy_total: np.ndarray
    entropy_aleatoric: np.ndarray
    entropy_epistemic: np.ndarray
    log_density: np.ndarray
    log_density_lower: np.ndarray
    log_density_upper: np.ndarray
    interval: float
    n_draws: int
    component_names: list = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        """One row per point: label, its probability, uncertainties and per-component columns."""
        k = self.mean.shape[1]
        names = self.component_names or list(range(k))
        cols: dict[str, np.ndarray] = {
            "label": self.labels,
            "label_probability": self.label_probability,
            "entropy_total": self.entropy_total,
            "entropy_aleatoric": self.entropy_aleatoric,
            "entropy_epistemic": self.entropy_epistemic,
            "log_density": self.log_density,
            "log_density_lower": self.log_density_lower,
            "log_density_upper": self.log_density_upper,
        }
        for j, name in enumerate(names):
            cols[f"p_{name}"] = self.mean[:, j]
            cols[f"p_{name}_lower"] = self.lower[:, j]
            cols[f"p_{name}_upper"] = self.upper[:, j]
        return pd.DataFrame(cols)


def summarize_responsibilities(
    X: ArrayLike,
    weights: ArrayLike,
    means: ArrayLike,
    precisions_cholesky: ArrayLike,
    covariance_type: str,
    *,
    interval: float = 0.89,
    intervals: str = "all",
) -> MembershipSummary:
    """Summarise per-draw responsibilities of every point, streaming over points.

    Compiled and parallel over points: each point's ``draws x components`` responsibilities
    are formed, summarised and discarded, so memory is that of the outputs
    (``n_samples x n_components``), whatever the number of draws.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    weights : array-like of shape (..., n_components)
        Posterior draws; all leading dimensions (e.g. chain, draw) are pooled.
    means : array-like of shape (..., n_components, n_features)
    precisions_cholesky : array-like
        Per-draw precision Cholesky factors in the layout of :mod:`bayesgmm._numerics`.
    covariance_type : {"full", "tied", "diag", "spherical"}
    interval : float, default=0.89
        Probability mass of the equal-tailed intervals (NumPy's default quantile rule).
    intervals : {"all", "label"}, default="all"
        ``"label"`` computes the interval of each point's most probable component only
        (``lower``/``upper`` are NaN elsewhere, and so are the log-density's bounds): one sort
        of the draws per point instead of ``K + 1``, for very many points (image maps).

    Returns
    -------
    MembershipSummary
    """
    if not 0.0 < interval < 1.0:
        raise ValueError(f"interval={interval!r} is invalid; it must lie strictly in (0, 1).")
    X = check_X(X)
    w, mu, pc = _flatten_draws(weights, means, precisions_cholesky, covariance_type)
    n_draws = w.shape[0]
    n, d = X.shape
    if mu.shape[2] != d:
        raise ValueError(f"X has {d} features but the posterior means have {mu.shape[2]}.")
    check_choice("intervals", intervals, ("all", "label"))
    q = ((1.0 - interval) / 2.0, (1.0 + interval) / 2.0)
    mean, lower, upper, stats = summarize_points(
        X, w, mu, pc, covariance_type, q, label_only=intervals == "label"
    )
    labels = mean.argmax(axis=1)
    total = _entropy(mean)
    return MembershipSummary(
        mean=mean,
        lower=lower,
        upper=upper,
        labels=labels,
        label_probability=mean[np.arange(n), labels],
        entropy_total=total,
        entropy_aleatoric=stats[:, 0],
        entropy_epistemic=np.maximum(total - stats[:, 0], 0.0),
        log_density=stats[:, 1],
        log_density_lower=stats[:, 2],
        log_density_upper=stats[:, 3],
        interval=interval,
        n_draws=n_draws,
    )


def responsibility_draws(
    X: ArrayLike,
    weights: ArrayLike,
    means: ArrayLike,
    precisions_cholesky: ArrayLike,
    covariance_type: str,
    *,
    max_memory_mb: float = 1024.0,
) -> np.ndarray:
    """Every draw's responsibilities, shape ``(..., n_samples, n_components)``.

    The leading dimensions of ``weights`` (e.g. chain, draw) are kept. Refuses with a
    ``ValueError`` when the result would exceed ``max_memory_mb``; use
    :func:`summarize_responsibilities`, which streams, for large data.
    """
    X = check_X(X)
    weights = np.asarray(weights, dtype=np.float64)
    lead = weights.shape[:-1]
    w, mu, pc = _flatten_draws(weights, means, precisions_cholesky, covariance_type)
    n_draws, k = w.shape
    n = X.shape[0]
    size_mb = n_draws * n * k * _BYTES / 2**20
    if size_mb > max_memory_mb:
        raise ValueError(
            f"All per-draw responsibilities need {size_mb:.0f} MB ({n_draws} draws x {n} "
            f"points x {k} components), above max_memory_mb={max_memory_mb:.0f}. Use "
            "summarize_responsibilities (streams over chunks), thin the draws, or raise "
            "max_memory_mb."
        )
    result = _draw_kernels.responsibility_draws(X, w, mu, pc, covariance_type)  # compiled
    return result.reshape(*lead, n, k)
