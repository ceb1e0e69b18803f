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

Memory is bounded: points are processed in chunks sized so that the per-chunk arrays
(draws x points x components x features floats) stay under ``max_memory_mb``; the full
draws x points x components array is only built by :func:`responsibility_draws`, which
refuses when it would exceed that budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.special import logsumexp

from ._numerics import log_weighted_prob, responsibilities
from ._validation import check_X

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


def _chunk_size(n_draws: int, k: int, d: int, max_memory_mb: float) -> int:
    # log_gaussian_prob holds a (draws, K, chunk, D) residual plus a few (draws, chunk, K)
    # arrays; budget for both.
    per_point = n_draws * k * (d + 4) * _BYTES
    return max(1, int(max_memory_mb * 2**20 // per_point))


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
    max_memory_mb: float = 256.0,
) -> MembershipSummary:
    """Summarise per-draw responsibilities of every point, streaming over chunks of points.

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
        Probability mass of the equal-tailed intervals.
    max_memory_mb : float, default=256
        Budget for the per-chunk working arrays; points are processed in chunks of
        ``max_memory_mb / (draws * K * (D + 4) * 8 bytes)`` points.

    Returns
    -------
    MembershipSummary
    """
    if not 0.0 < interval < 1.0:
        raise ValueError(f"interval={interval!r} is invalid; it must lie strictly in (0, 1).")
    X = check_X(X)
    w, mu, pc = _flatten_draws(weights, means, precisions_cholesky, covariance_type)
    n_draws, k = w.shape
    n, d = X.shape
    if mu.shape[2] != d:
        raise ValueError(f"X has {d} features but the posterior means have {mu.shape[2]}.")
    q = [(1.0 - interval) / 2.0, (1.0 + interval) / 2.0]
    out = {name: np.empty((n, k)) for name in ("mean", "lower", "upper")}
    vec = {
        name: np.empty(n)
        for name in (
            "entropy_aleatoric",
            "log_density",
            "log_density_lower",
            "log_density_upper",
        )
    }
    step = _chunk_size(n_draws, k, d, max_memory_mb)
    for lo in range(0, n, step):
        sl = slice(lo, min(n, lo + step))
        resp, log_norm = responsibilities(
            log_weighted_prob(X[sl], w, mu, pc, covariance_type)
        )  # (S, chunk, K), (S, chunk)
        out["mean"][sl] = resp.mean(axis=0)
        bounds = np.quantile(resp, q, axis=0)
        out["lower"][sl], out["upper"][sl] = bounds[0], bounds[1]
        vec["entropy_aleatoric"][sl] = _entropy(resp).mean(axis=0)
        vec["log_density"][sl] = logsumexp(log_norm, axis=0) - np.log(n_draws)
        ld = np.quantile(log_norm, q, axis=0)
        vec["log_density_lower"][sl], vec["log_density_upper"][sl] = ld[0], ld[1]
    labels = out["mean"].argmax(axis=1)
    total = _entropy(out["mean"])
    return MembershipSummary(
        mean=out["mean"],
        lower=out["lower"],
        upper=out["upper"],
        labels=labels,
        label_probability=out["mean"][np.arange(n), labels],
        entropy_total=total,
        entropy_aleatoric=vec["entropy_aleatoric"],
        entropy_epistemic=np.maximum(total - vec["entropy_aleatoric"], 0.0),
        log_density=vec["log_density"],
        log_density_lower=vec["log_density_lower"],
        log_density_upper=vec["log_density_upper"],
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
    n, d = X.shape
    size_mb = n_draws * n * k * _BYTES / 2**20
    if size_mb > max_memory_mb:
        raise ValueError(
            f"All per-draw responsibilities need {size_mb:.0f} MB ({n_draws} draws x {n} "
            f"points x {k} components), above max_memory_mb={max_memory_mb:.0f}. Use "
            "summarize_responsibilities (streams over chunks), thin the draws, or raise "
            "max_memory_mb."
        )
    result = np.empty((n_draws, n, k))
    step = _chunk_size(n_draws, k, d, max_memory_mb=256.0)
    for lo in range(0, n, step):
        sl = slice(lo, min(n, lo + step))
        result[:, sl] = responsibilities(log_weighted_prob(X[sl], w, mu, pc, covariance_type))[0]
    return result.reshape(*lead, n, k)
