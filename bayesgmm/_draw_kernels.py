"""Compiled per-draw posterior kernels (Numba): log-densities and responsibilities of many
parameter sets.

Every function here takes parameters with one leading draw axis (the shapes of
:mod:`bayesgmm._numerics` otherwise) and is the compiled, parallel twin of a
:mod:`bayesgmm._numerics` reference that the test suite checks it against
(``tests/test_draw_kernels.py``). They serve the posterior after sampling (the
``log_likelihood`` group, membership summaries, relabelling) and EM's predictions; the
log-posterior that NUTS explores lives in :mod:`bayesgmm._logdensity`. The block kernels and
the thread pool they run on are EM's, in :mod:`bayesgmm._kernels`.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ._kernels import (
    _BLOCK,
    _FASTMATH,
    block_log_probs_diag,
    block_log_probs_full,
    parallel_parts,
    run_on_threads,
    softmax_block,
)

__all__ = [
    "mixture_responsibilities",
    "pointwise_log_likelihood",
    "responsibility_draws",
    "summarize_points",
]

_LOG_2PI = math.log(2.0 * math.pi)


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _over_draws(
    X, lo, hi, log_const, means, params, full, responsibilities, out, part
):  # pragma: no cover
    """Draws ``lo:hi``, blocks of rows: log-density or responsibilities into ``out``.

    Serial and GIL-free; :func:`bayesgmm._kernels.run_on_threads` runs slices of the draws on
    threads.
    """
    n, d = X.shape
    k = log_const.shape[1]
    lp = np.empty((k, _BLOCK))
    diff = np.empty((k, d, _BLOCK))
    y = np.empty(_BLOCK)
    mx = np.empty(_BLOCK)
    lse = np.empty(_BLOCK)
    for s in range(lo, hi):
        out_s = out[s]
        for start in range(0, n, _BLOCK):
            m = min(_BLOCK, n - start)
            if full:
                block_log_probs_full(X, start, m, log_const[s], means[s], params[s], diff, y, lp)
            else:
                block_log_probs_diag(
                    X, start, m, log_const[s], means[s], params[s, :, :, 0], diff, lp
                )
            softmax_block(lp, m, None, 0, mx, lse)
            for t in range(m):
                if responsibilities:
                    for j in range(k):
                        out_s.flat[(start + t) * k + j] = lp[j, t]
                else:
                    out_s.flat[start + t] = lse[t]


def _draw_parts(n_draws: int, n: int, k: int) -> int:
    """Slices of the draws to run in parallel (one per thread for enough work)."""
    return parallel_parts(n_draws * n * k, n_draws, min_per_part=1)


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _rows_one_draw(
    X, lo, hi, log_const, means, params, full, resp, log_norm, part
):  # pragma: no cover
    """One parameter set, rows ``lo:hi`` in blocks: responsibilities and log-density.

    Serial and GIL-free; :func:`bayesgmm._kernels.run_on_threads` runs slices on threads.
    """
    d = X.shape[1]
    k = log_const.shape[0]
    lp = np.empty((k, _BLOCK))
    diff = np.empty((k, d, _BLOCK))
    y = np.empty(_BLOCK)
    mx = np.empty(_BLOCK)
    for start in range(lo, hi, _BLOCK):
        m = min(_BLOCK, hi - start)
        if full:
            block_log_probs_full(X, start, m, log_const, means, params, diff, y, lp)
        else:
            block_log_probs_diag(X, start, m, log_const, means, params[:, :, 0], diff, lp)
        softmax_block(lp, m, None, 0, mx, log_norm[start : start + m])
        for t in range(m):
            for j in range(k):
                resp[start + t, j] = lp[j, t]


def _per_draw_inputs(X, weights, means, precisions_cholesky, covariance_type):
    """Common layout for the compiled per-draw kernels (tied/spherical broadcast)."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    mu = np.ascontiguousarray(means, dtype=np.float64)
    pc = np.asarray(precisions_cholesky, dtype=np.float64)
    n_draws, k = w.shape
    d = X.shape[1]
    with np.errstate(divide="ignore"):
        log_w = np.log(w)
    full = covariance_type in ("full", "tied")
    if covariance_type == "tied":
        pc = np.broadcast_to(pc[:, None], (n_draws, k, d, d))
    elif covariance_type == "spherical":
        pc = np.broadcast_to(pc[:, :, None], (n_draws, k, d))
    if full:
        log_det = np.log(np.diagonal(pc, axis1=-2, axis2=-1)).sum(-1)
        params = np.ascontiguousarray(pc)
    else:
        log_det = np.log(pc).sum(-1)
        params = np.ascontiguousarray(pc[..., None])  # (S, K, D, 1): one array type for both
    log_const = np.ascontiguousarray(log_w + log_det - 0.5 * d * _LOG_2PI)
    return X, log_const, mu, params, full


def pointwise_log_likelihood(
    X: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    precisions_cholesky: np.ndarray,
    covariance_type: str,
) -> np.ndarray:
    """Compiled, draw-parallel twin of :func:`bayesgmm._numerics.log_mixture_density`.

    Parameters carry one leading draw axis (shapes of :mod:`bayesgmm._numerics` otherwise);
    returns ``(n_draws, n_samples)``. Used for the ``log_likelihood`` group, where NumPy's
    temporaries made it the slowest step after sampling.
    """
    X, log_const, mu, params, full = _per_draw_inputs(
        X, weights, means, precisions_cholesky, covariance_type
    )
    out = np.empty((log_const.shape[0], X.shape[0]))
    n_draws = log_const.shape[0]
    parts = _draw_parts(n_draws, X.shape[0], log_const.shape[1])
    run_on_threads(_over_draws, n_draws, parts, X, log_const, mu, params, full, False, out)
    return out


def mixture_responsibilities(
    X: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    precisions_cholesky: np.ndarray,
    covariance_type: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Responsibilities ``(n_samples, n_components)`` and log-density ``(n_samples,)`` of one
    parameter set (shapes of :mod:`bayesgmm._numerics`), compiled and parallel over rows.

    The twin of :func:`bayesgmm._numerics.responsibilities` of
    :func:`bayesgmm._numerics.log_weighted_prob`; memory is that of the outputs.
    """
    X, log_const, mu, params, full = _per_draw_inputs(
        X,
        np.asarray(weights)[None],
        np.asarray(means)[None],
        np.asarray(precisions_cholesky)[None],
        covariance_type,
    )
    n, k = X.shape[0], log_const.shape[1]
    resp, log_norm = np.empty((n, k)), np.empty(n)
    run_on_threads(
        _rows_one_draw,
        n,
        parallel_parts(n * k, n),
        X,
        log_const[0],
        mu[0],
        params[0],
        full,
        resp,
        log_norm,
    )
    return resp, log_norm


def responsibility_draws(
    X: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    precisions_cholesky: np.ndarray,
    covariance_type: str,
) -> np.ndarray:
    """Per-draw responsibilities ``(n_draws, n_samples, n_components)``, compiled.

    The twin of :func:`bayesgmm._numerics.responsibilities` applied to
    :func:`bayesgmm._numerics.log_weighted_prob`, parallel over draws.
    """
    X, log_const, mu, params, full = _per_draw_inputs(
        X, weights, means, precisions_cholesky, covariance_type
    )
    out = np.empty((log_const.shape[0], X.shape[0], log_const.shape[1]))
    n_draws = log_const.shape[0]
    parts = _draw_parts(n_draws, X.shape[0], log_const.shape[1])
    run_on_threads(_over_draws, n_draws, parts, X, log_const, mu, params, full, True, out)
    return out


@numba.njit(cache=True, nogil=True)
def _sorted_quantile(v, q):  # pragma: no cover - compiled
    """NumPy's default ("linear") quantile of the already sorted vector ``v``."""
    h = (v.size - 1) * q
    lo = int(h)  # h >= 0, so truncation is the floor
    hi = min(lo + 1, v.size - 1)
    return v[lo] + (h - lo) * (v[hi] - v[lo])


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _summarize_points(
    X,
    lo,
    hi,
    log_const,
    means,
    params,
    full,
    q_lo,
    q_hi,
    label_only,
    mean,
    lower,
    upper,
    stats,
    part,
):  # pragma: no cover - compiled
    """Per point ``lo:hi``, loop over every draw and summarise.

    With ``label_only``, quantiles are computed for the most probable component only (the
    others and the log-density's are NaN): one sort per point instead of ``K + 1``.

    ``mean/lower/upper[i, j]``: mean and quantiles over draws of ``p(z_i = j | x_i, theta_s)``;
    ``stats[i]``: mean per-draw entropy, ``log mean_s p(x_i | theta_s)``, and the ``q_lo``/
    ``q_hi`` quantiles of ``log p(x_i | theta_s)``. Only ``draws x components`` floats are
    held, so memory does not grow with the number of points. Serial and GIL-free;
    :func:`bayesgmm._kernels.run_on_threads` runs slices of the points on threads.
    """
    d = X.shape[1]
    n_draws, k = log_const.shape
    resp = np.empty((k, n_draws))  # components x draws, for one point at a time
    lnorm = np.empty(n_draws)
    col = np.empty(n_draws)
    diff = np.empty(d)
    for i in range(lo, hi):
        # resp[j, s] = log w_j + log N(x_i | theta_s); a scalar loop over one point's draws,
        # since the block kernels of _kernels run over rows of one draw (calling them with
        # one row per draw measured ~15 % slower here).
        for s in range(n_draws):
            for j in range(k):
                for a in range(d):
                    diff[a] = X[i, a] - means[s, j, a]
                quad = 0.0
                if full:
                    for b in range(d):
                        y = 0.0
                        for a in range(b + 1):
                            y += diff[a] * params[s, j, a, b]
                        quad += y * y
                else:
                    for a in range(d):
                        v = diff[a] * params[s, j, a, 0]
                        quad += v * v
                resp[j, s] = log_const[s, j] - 0.5 * quad
        softmax_block(resp, n_draws, None, 0, col, lnorm)
        entropy_sum = 0.0
        for s in range(n_draws):
            for j in range(k):
                p = resp[j, s]
                if p > 0.0:
                    entropy_sum -= p * math.log(p)
        best = 0
        for j in range(k):
            acc = 0.0
            for s in range(n_draws):
                acc += resp[j, s]
            mean[i, j] = acc / n_draws
            if mean[i, j] > mean[i, best]:
                best = j
        for j in range(k):
            if label_only and j != best:
                lower[i, j] = np.nan
                upper[i, j] = np.nan
                continue
            for s in range(n_draws):
                col[s] = resp[j, s]
            col.sort()
            lower[i, j] = _sorted_quantile(col, q_lo)
            upper[i, j] = _sorted_quantile(col, q_hi)
        mx = lnorm.max()
        acc = 0.0
        for s in range(n_draws):
            acc += math.exp(lnorm[s] - mx)
        stats[i, 0] = entropy_sum / n_draws
        stats[i, 1] = mx + math.log(acc / n_draws)
        if label_only:
            stats[i, 2] = np.nan
            stats[i, 3] = np.nan
        else:
            lnorm.sort()
            stats[i, 2] = _sorted_quantile(lnorm, q_lo)
            stats[i, 3] = _sorted_quantile(lnorm, q_hi)


def summarize_points(
    X: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    precisions_cholesky: np.ndarray,
    covariance_type: str,
    quantiles: tuple[float, float],
    label_only: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Streaming per-point summaries of the per-draw responsibilities, compiled.

    Parameters carry one leading draw axis. Returns ``mean, lower, upper`` of shape
    ``(n_samples, n_components)`` and ``stats`` of shape ``(n_samples, 4)``: mean per-draw
    entropy, posterior predictive log-density and the two quantiles of the per-draw
    log-densities. Memory is ``O(n_samples * n_components)`` for the outputs only; the
    ``draws x points x components`` array is never formed.
    """
    X, log_const, mu, params, full = _per_draw_inputs(
        X, weights, means, precisions_cholesky, covariance_type
    )
    n, k = X.shape[0], log_const.shape[1]
    mean, lower, upper = (np.empty((n, k)) for _ in range(3))
    stats = np.empty((n, 4))
    run_on_threads(
        _summarize_points,
        n,
        parallel_parts(n * log_const.shape[0] * k, n, min_per_part=8),
        X,
        log_const,
        mu,
        params,
        full,
        float(quantiles[0]),
        float(quantiles[1]),
        bool(label_only),
        mean,
        lower,
        upper,
        stats,
    )
    return mean, lower, upper, stats
