"""Compiled one-pass EM kernels (Numba).

One pass over the data does the whole E-step and gathers the M-step's sufficient statistics:
for each sample it evaluates every component's log-density, normalises with a log-sum-exp and
accumulates the responsibility-weighted zeroth, first and second moments. Nothing of size
``n_samples x n_components`` is ever stored, which is where scikit-learn spends most of its
time (temporaries and repeated passes over memory).

Rows are processed in blocks of ``_BLOCK`` samples with the sample index innermost, so that
LLVM vectorises the arithmetic across samples; row chunks run on separate threads for large
problems. The fast-math flags allow re-association and fused multiply-adds but keep IEEE
infinities and NaNs (``-inf`` log-weights stay exact); measured against the plain loop the
moments agree to about 1e-14 relative.

The moments are accumulated around a *shift* (the current means), so that the covariance
``S2 / n_k - d d^T`` (``d = S1 / n_k``, the mean's move in this iteration) suffers no
catastrophic cancellation: ``d`` is small once EM is near a fixed point.

The log-density here is the compiled twin of :func:`bayesgmm._numerics.log_gaussian_prob`
(same conventions); the test suite checks them against each other.
"""

from __future__ import annotations

import functools
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit

__all__ = ["em_pass"]

_BLOCK = 256
_EXP_FLOOR = -500.0
_FASTMATH = {"contract", "reassoc", "nsz", "arcp", "afn"}

# Below this many (sample x component) pairs one thread is faster: handing slices to worker
# threads costs more than it saves. (With Numba's OpenMP prange, whose workers busy-wait and
# fight BLAS/k-means threads for the cores, a 272-sample fit was 30x slower on 2 cores.)
PARALLEL_MIN_WORK = 200_000


@njit(fastmath=_FASTMATH, cache=True, nogil=True)
def softmax_block(lp, m, weight, start, mx, lse):  # pragma: no cover
    """Normalise the columns ``t < m`` of ``lp`` (components x columns) in place.

    ``lp[:, t]`` becomes ``softmax(lp[:, t])``, times ``weight[start + t]`` unless ``weight``
    is None, and ``lse[t]`` the log-sum-exp ``log sum_k exp(lp[k, t])``. ``mx`` is scratch
    of the same length as ``lse``. The one normalisation of EM's E-step, of predictions and
    of the per-draw posterior summaries.
    """
    k_comp = lp.shape[0]
    for j in range(m):
        mx[j] = lp[0, j]
    for k in range(1, k_comp):
        for j in range(m):
            mx[j] = max(mx[j], lp[k, j])
    for j in range(m):
        lse[j] = 0.0
    for k in range(k_comp):
        for j in range(m):
            # Floor the exponent: below -500 a term is < 1e-217 of the largest, invisible in
            # float64, but exp() of it would produce subnormals that are ~100x slower.
            e = math.exp(max(lp[k, j] - mx[j], _EXP_FLOOR))
            lp[k, j] = e
            lse[j] += e
    for j in range(m):
        tot = lse[j]
        lse[j] = mx[j] + math.log(tot)
        mx[j] = (1.0 if weight is None else weight[start + j]) / tot  # the column's scale
    for k in range(k_comp):
        for j in range(m):
            lp[k, j] *= mx[j]


@njit(fastmath=_FASTMATH, cache=True, nogil=True)
def block_log_probs_full(X, start, m, log_const, means, prec_chol, diff, y, lp):  # pragma: no cover
    """``lp[k, t] = log_const[k] - |(x_{start+t} - mu_k) U_k|^2 / 2`` for rows ``t < m``.

    ``U_k = prec_chol[k]`` is upper triangular; the residuals ``x - mu_k`` are left in
    ``diff[k, :, t]`` (EM's moments need them); ``y`` is scratch of length ``m``.
    """
    d = X.shape[1]
    for k in range(means.shape[0]):
        for a in range(d):
            mu = means[k, a]
            for j in range(m):
                diff[k, a, j] = X[start + j, a] - mu
        for j in range(m):
            lp[k, j] = 0.0
        # y_b = sum_{a <= b} diff_a U_ab: the whitened residual, one coordinate at a time.
        for b in range(d):
            for j in range(m):
                y[j] = 0.0
            for a in range(b + 1):
                u = prec_chol[k, a, b]
                for j in range(m):
                    y[j] += diff[k, a, j] * u
            for j in range(m):
                lp[k, j] += y[j] * y[j]
        c = log_const[k]
        for j in range(m):
            lp[k, j] = c - 0.5 * lp[k, j]


@njit(fastmath=_FASTMATH, cache=True, nogil=True)
def block_log_probs_diag(X, start, m, log_const, means, inv_sd, diff, lp):  # pragma: no cover
    """As :func:`block_log_probs_full` for diagonal precisions ``inv_sd`` (K, D)."""
    d = X.shape[1]
    for k in range(means.shape[0]):
        for j in range(m):
            lp[k, j] = 0.0
        for a in range(d):
            mu = means[k, a]
            u = inv_sd[k, a]
            for j in range(m):
                t = X[start + j, a] - mu
                diff[k, a, j] = t
                t *= u
                lp[k, j] += t * t
        c = log_const[k]
        for j in range(m):
            lp[k, j] = c - 0.5 * lp[k, j]


@njit(fastmath=_FASTMATH, cache=True, nogil=True)
def _weighted_ll(sample_weight, start, m, lse):  # pragma: no cover
    ll = 0.0
    for j in range(m):
        ll += sample_weight[start + j] * lse[j]
    return ll


@njit(fastmath=_FASTMATH, cache=True, nogil=True)
def _chunk_full(
    X, sample_weight, log_const, means, prec_chol, lo, hi, nk, s1, s2
):  # pragma: no cover
    d = X.shape[1]
    k_comp = means.shape[0]
    diff = np.empty((k_comp, d, _BLOCK))
    lp = np.empty((k_comp, _BLOCK))
    y = np.empty(_BLOCK)
    mx = np.empty(_BLOCK)
    lse = np.empty(_BLOCK)
    ll = 0.0
    for start in range(lo, hi, _BLOCK):
        m = min(_BLOCK, hi - start)
        block_log_probs_full(X, start, m, log_const, means, prec_chol, diff, y, lp)
        softmax_block(lp, m, sample_weight, start, mx, lse)
        ll += _weighted_ll(sample_weight, start, m, lse)
        for k in range(k_comp):
            acc = 0.0
            for j in range(m):
                acc += lp[k, j]
            nk[k] += acc
            for a in range(d):
                acc = 0.0
                for j in range(m):
                    y[j] = lp[k, j] * diff[k, a, j]
                    acc += y[j]
                s1[k, a] += acc
                for b in range(a + 1):
                    acc = 0.0
                    for j in range(m):
                        acc += y[j] * diff[k, b, j]
                    s2[k, a, b] += acc
    return ll


@njit(fastmath=_FASTMATH, cache=True, nogil=True)
def _chunk_diag(
    X, sample_weight, log_const, means, prec_chol, lo, hi, nk, s1, s2
):  # pragma: no cover
    d = X.shape[1]
    k_comp = means.shape[0]
    diff = np.empty((k_comp, d, _BLOCK))
    lp = np.empty((k_comp, _BLOCK))
    mx = np.empty(_BLOCK)
    lse = np.empty(_BLOCK)
    ll = 0.0
    for start in range(lo, hi, _BLOCK):
        m = min(_BLOCK, hi - start)
        block_log_probs_diag(X, start, m, log_const, means, prec_chol, diff, lp)
        softmax_block(lp, m, sample_weight, start, mx, lse)
        ll += _weighted_ll(sample_weight, start, m, lse)
        for k in range(k_comp):
            acc = 0.0
            for j in range(m):
                acc += lp[k, j]
            nk[k] += acc
            for a in range(d):
                acc1 = 0.0
                acc2 = 0.0
                for j in range(m):
                    t = lp[k, j] * diff[k, a, j]
                    acc1 += t
                    acc2 += t * diff[k, a, j]
                s1[k, a] += acc1
                s2[k, a] += acc2
    return ll


def _executor(threads: int, pid: int) -> ThreadPoolExecutor:
    """A persistent pool per process (keyed by pid: a forked child must not reuse the
    parent's pool, whose threads it does not have)."""
    key = (threads, pid)
    pool = _POOLS.get(key)
    if pool is None:
        pool = _POOLS[key] = ThreadPoolExecutor(threads, thread_name_prefix="bayesgmm")
    return pool


_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}


def run_on_threads(kernel, n: int, parts: int, *args) -> list:
    """``kernel(args[0], lo, hi, *args[1:], part)`` for ``parts`` slices ``lo:hi`` of
    ``range(n)``, on up to Numba's thread count of threads; returns the results in slice order.

    The kernels are serial, GIL-free Numba functions: Python threads run them in parallel.
    (A ``prange`` kernel would do the same but takes seconds longer to compile on first use,
    and its OpenMP workers busy-wait between calls.) The slices do not depend on the number
    of threads, so neither do sums over them: results are the same on any machine's core
    count.
    """
    bounds = [i * n // parts for i in range(parts + 1)]
    calls = [(args[0], bounds[p], bounds[p + 1], *args[1:], p) for p in range(parts)]
    threads = min(parts, numba.get_num_threads())
    if threads == 1:
        return [kernel(*c) for c in calls]
    pool = _executor(threads, os.getpid())
    return [job.result() for job in [pool.submit(kernel, *c) for c in calls]]


#: Most slices a parallel job is cut into. Fixed, not the thread count, so that sums over
#: slices (EM's moments) come out the same whatever the number of cores.
MAX_PARTS = 8


def parallel_parts(work: int, n: int, min_per_part: int = 4 * _BLOCK) -> int:
    """Slices of ``n`` items worth running in parallel: up to :data:`MAX_PARTS` when ``work``
    (about the number of sample x component evaluations) is large enough, with at least
    ``min_per_part`` items per slice. Independent of the thread count."""
    if work < PARALLEL_MIN_WORK:
        return 1
    return max(1, min(MAX_PARTS, n // min_per_part))


def _chunk_call(kernel, X, lo, hi, sample_weight, log_const, means, prec_chol, nk, s1, s2, p):
    return kernel(X, sample_weight, log_const, means, prec_chol, lo, hi, nk[p], s1[p], s2[p])


_CHUNK_KERNELS = {"full": _chunk_full, "diag": _chunk_diag}


def em_pass(kind: str, X, sample_weight, log_const, means, prec_chol):
    """One EM pass with the ``"full"`` or ``"diag"`` kernel.

    Parameters
    ----------
    kind : {"full", "diag"}
        ``"full"`` takes upper-triangular precision factors of shape (K, D, D) (tied ones
        repeated per component); ``"diag"`` takes (K, D) inverse standard deviations
        (spherical ones repeated per feature).
    X : ndarray of shape (N, D), C-contiguous float64
    sample_weight : ndarray of shape (N,)
    log_const : ndarray of shape (K,)
        ``log w_k + log det U_k - D/2 log(2 pi)``.
    means : ndarray of shape (K, D)
        Current means, also the shift of the accumulated moments.
    prec_chol : ndarray

    Returns
    -------
    ll : float
        ``sum_i w_i log p(x_i)``.
    nk : ndarray of shape (K,)
        ``sum_i w_i r_ik``.
    s1 : ndarray of shape (K, D)
        ``sum_i w_i r_ik (x_i - mu_k)``.
    s2 : ndarray of shape (K, D, D) or (K, D)
        ``sum_i w_i r_ik (x_i - mu_k)(x_i - mu_k)^T`` (symmetric), or its diagonal.
    """
    n, d = X.shape
    k = means.shape[0]
    parts = parallel_parts(n * k, n)
    nk = np.zeros((parts, k))
    s1 = np.zeros((parts, k, d))
    s2 = np.zeros((parts, k, d, d) if kind == "full" else (parts, k, d))
    kernel = _CHUNK_KERNELS[kind]
    ll = run_on_threads(
        functools.partial(_chunk_call, kernel),
        n,
        parts,
        X,
        sample_weight,
        log_const,
        means,
        prec_chol,
        nk,
        s1,
        s2,
    )
    ll, nk, s1, s2 = float(sum(ll)), nk.sum(axis=0), s1.sum(axis=0), s2.sum(axis=0)
    if kind == "full":
        lower = np.tril_indices(d, -1)
        s2[:, lower[1], lower[0]] = s2[:, lower[0], lower[1]]
    return ll, nk, s1, s2
