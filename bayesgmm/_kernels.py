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

import math

import numba
import numpy as np
from numba import njit, prange

__all__ = ["em_pass"]

_BLOCK = 256
_EXP_FLOOR = -500.0
_FASTMATH = {"contract", "reassoc", "nsz", "arcp", "afn"}

# Below this many (sample x component) pairs one thread is faster: Numba's OpenMP workers
# busy-wait between parallel regions and then fight BLAS/k-means threads for the cores, which
# made a 272-sample fit 30x slower in a measurement on 2 cores.
PARALLEL_MIN_WORK = 200_000


@njit(fastmath=_FASTMATH, cache=True, nogil=True)
def _normalise_block(lp, m, sample_weight, start, mx, tot):  # pragma: no cover
    """Turn ``lp[k, :m]`` log-probabilities into weighted responsibilities in place.

    Returns the block's ``sum_j w_j log p(x_j)``.
    """
    k_comp = lp.shape[0]
    for j in range(m):
        mx[j] = lp[0, j]
    for k in range(1, k_comp):
        for j in range(m):
            mx[j] = max(mx[j], lp[k, j])
    for j in range(m):
        tot[j] = 0.0
    for k in range(k_comp):
        for j in range(m):
            # Floor the exponent: below -500 a term is < 1e-217 of the largest, invisible in
            # float64, but exp() of it would produce subnormals that are ~100x slower.
            e = math.exp(max(lp[k, j] - mx[j], _EXP_FLOOR))
            lp[k, j] = e
            tot[j] += e
    ll = 0.0
    for j in range(m):
        w = sample_weight[start + j]
        ll += w * (mx[j] + math.log(tot[j]))
        tot[j] = w / tot[j]
    for k in range(k_comp):
        for j in range(m):
            lp[k, j] *= tot[j]
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
    tot = np.empty(_BLOCK)
    ll = 0.0
    for start in range(lo, hi, _BLOCK):
        m = min(_BLOCK, hi - start)
        for k in range(k_comp):
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
        ll += _normalise_block(lp, m, sample_weight, start, mx, tot)
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
    tot = np.empty(_BLOCK)
    ll = 0.0
    for start in range(lo, hi, _BLOCK):
        m = min(_BLOCK, hi - start)
        for k in range(k_comp):
            for j in range(m):
                lp[k, j] = 0.0
            for a in range(d):
                mu = means[k, a]
                u = prec_chol[k, a]
                for j in range(m):
                    t = X[start + j, a] - mu
                    diff[k, a, j] = t
                    t *= u
                    lp[k, j] += t * t
            c = log_const[k]
            for j in range(m):
                lp[k, j] = c - 0.5 * lp[k, j]
        ll += _normalise_block(lp, m, sample_weight, start, mx, tot)
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


@njit(cache=True)
def _allocate(n_chunks, k_comp, d, s2_tail):  # pragma: no cover
    return (
        np.zeros(n_chunks),
        np.zeros((n_chunks, k_comp)),
        np.zeros((n_chunks, k_comp, d)),
        np.zeros((n_chunks, k_comp) + s2_tail),  # noqa: RUF005 (Numba has no star-unpacking here)
    )


# The four whole-data passes below differ only in the chunk kernel and in prange vs range.
# They are written out rather than built by a factory because Numba's on-disk cache cannot
# key closures across processes (a factory recompiled them in every new process).


@njit(parallel=True, cache=True, nogil=True)
def _pass_full_parallel(
    X, sample_weight, log_const, means, prec_chol, n_chunks
):  # pragma: no cover
    n, d = X.shape
    ll, nk, s1, s2 = _allocate(n_chunks, means.shape[0], d, (d, d))
    for c in prange(n_chunks):
        ll[c] = _chunk_full(
            X,
            sample_weight,
            log_const,
            means,
            prec_chol,
            c * n // n_chunks,
            (c + 1) * n // n_chunks,
            nk[c],
            s1[c],
            s2[c],
        )
    return ll.sum(), nk.sum(axis=0), s1.sum(axis=0), s2.sum(axis=0)


@njit(cache=True, nogil=True)
def _pass_full_serial(X, sample_weight, log_const, means, prec_chol, n_chunks):  # pragma: no cover
    n, d = X.shape
    ll, nk, s1, s2 = _allocate(1, means.shape[0], d, (d, d))
    ll[0] = _chunk_full(X, sample_weight, log_const, means, prec_chol, 0, n, nk[0], s1[0], s2[0])
    return ll[0], nk[0], s1[0], s2[0]


@njit(parallel=True, cache=True, nogil=True)
def _pass_diag_parallel(
    X, sample_weight, log_const, means, prec_chol, n_chunks
):  # pragma: no cover
    n, d = X.shape
    ll, nk, s1, s2 = _allocate(n_chunks, means.shape[0], d, (d,))
    for c in prange(n_chunks):
        ll[c] = _chunk_diag(
            X,
            sample_weight,
            log_const,
            means,
            prec_chol,
            c * n // n_chunks,
            (c + 1) * n // n_chunks,
            nk[c],
            s1[c],
            s2[c],
        )
    return ll.sum(), nk.sum(axis=0), s1.sum(axis=0), s2.sum(axis=0)


@njit(cache=True, nogil=True)
def _pass_diag_serial(X, sample_weight, log_const, means, prec_chol, n_chunks):  # pragma: no cover
    n, d = X.shape
    ll, nk, s1, s2 = _allocate(1, means.shape[0], d, (d,))
    ll[0] = _chunk_diag(X, sample_weight, log_const, means, prec_chol, 0, n, nk[0], s1[0], s2[0])
    return ll[0], nk[0], s1[0], s2[0]


_KERNELS = {
    ("full", True): _pass_full_parallel,
    ("full", False): _pass_full_serial,
    ("diag", True): _pass_diag_parallel,
    ("diag", False): _pass_diag_serial,
}


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
    n = X.shape[0]
    threads = numba.get_num_threads()
    parallel = n * means.shape[0] >= PARALLEL_MIN_WORK and threads > 1
    n_chunks = max(1, min(2 * threads, n // (4 * _BLOCK))) if parallel else 1
    ll, nk, s1, s2 = _KERNELS[kind, parallel](
        X, sample_weight, log_const, means, prec_chol, n_chunks
    )
    if kind == "full":
        lower = np.tril_indices(X.shape[1], -1)
        s2[:, lower[1], lower[0]] = s2[:, lower[0], lower[1]]
    return ll, nk, s1, s2
