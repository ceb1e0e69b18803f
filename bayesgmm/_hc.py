"""Model-based agglomerative hierarchical clustering, the start of ``init_params="hc"``.

The criterion is the classification likelihood of Gaussian clusters with unconstrained
covariances (Banfield & Raftery 1993; Fraley 1998), regularised as R's mclust regularises
its ``VVV`` agglomeration so that clusters of a few points have finite cost: a cluster of
``n`` points with scatter matrix ``W`` (sum of squared deviations about its mean) and
``t = trace(W)`` costs

* ``n log(beta (t + alpha) / n)`` while ``n <= D`` (too few points for a determinant),
* ``n log(det(W / n) + beta (t + alpha) / n)`` otherwise (``det`` taken as 0 when ``W`` is
  singular),

with ``beta = 1`` and ``alpha = trace(W_all) / (N D)`` for the whole data's scatter. Every
step merges the two clusters whose union increases the total cost least; a tie goes to the
pair listed last in mclust's packed order (a deterministic rule, so the partitions are the
same on every machine). Every row starts as a cluster of its own, identical rows too, as in
mclust (whose ``hc`` does not pass its duplicate-row partition on to the agglomeration);
this matters, because a point joining a pair of identical points can cost less than
merging another identical pair.

Before agglomerating, the data are transformed as mclust's default ``hcUse = "SVD"`` does:
each feature centred and divided by its standard deviation, then rotated onto the right
singular vectors ``V`` of the result and divided by the square roots of its singular values,
``Z = X_std V diag(s)^{-1/2}``. (This is not a whitening: the spread left along each
principal axis is ``sqrt(s)``, and the criterion is not invariant to it.)

These choices give mclust's own partitions: on Old Faithful (rounded, with duplicated rows,
so full of exact ties) and on iris, the partitions for K = 2..10 equal those of mclust 6.0.0
(tests/test_hc_mclust.py; on faithful also in ten shuffled row orders, checked by hand).

The cost is ``O(N^2)`` memory and about ``O(N^2 D^3)`` time, so callers agglomerate a random
subset of at most :data:`HC_SUBSET` rows, as mclust does. The whole tree is built once and
the last few trees are kept (keyed by a hash of the data), so the partitions for many
numbers of clusters, as in a BIC grid, cost one agglomeration.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
from numba import njit

__all__ = ["HC_SUBSET", "hc_labels", "quantile_labels", "svd_transform"]

#: Rows agglomerated at most (mclust's ``mclust.options("subset")``); above it a random
#: subset is clustered and EM continues on all rows.
HC_SUBSET = 2000


def svd_transform(X: np.ndarray, sample_weight: np.ndarray | None = None) -> np.ndarray:
    """mclust's ``hcUse = "SVD"`` transform of ``X`` (see the module docstring).

    Weighted rows count as repeated rows: the centre, the standard deviations (divisor
    ``n - 1``, as R's ``scale``) and the singular values are those of the expanded data.
    Constant features are dropped, as mclust drops non-finite standardised columns.
    """
    X = np.asarray(X, dtype=np.float64)
    w = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, float)
    total = w.sum()
    centre = w @ X / total
    R = X - centre
    var = (w @ R**2) / max(total - 1.0, np.finfo(float).tiny)
    keep = var > 0
    R = R[:, keep] / np.sqrt(var[keep])
    _, s, vt = np.linalg.svd(R * np.sqrt(w)[:, None], full_matrices=False)
    p = min(R.shape)
    s = s[:p]
    with np.errstate(divide="ignore"):
        inv_root = np.where(s > 0, 1.0 / np.sqrt(s), 0.0)
    return (R @ vt[:p].T) * inv_root


@njit(cache=True)
def _log_det_scaled(W, n):  # pragma: no cover
    """``log det(W / n)`` by Cholesky, or ``-inf`` if ``W`` is singular."""
    p = W.shape[0]
    L = np.zeros((p, p))
    out = 0.0
    for j in range(p):
        s = W[j, j] / n
        for k in range(j):
            s -= L[j, k] * L[j, k]
        if not s > 0.0:
            return -np.inf
        L[j, j] = math.sqrt(s)
        out += math.log(s)
        for i in range(j + 1, p):
            t = W[i, j] / n
            for k in range(j):
                t -= L[i, k] * L[j, k]
            L[i, j] = t / L[j, j]
    return out


@njit(cache=True)
def _term(n, count, W, trace, alpha, beta):  # pragma: no cover
    """The regularised classification cost of one cluster (module docstring)."""
    p = W.shape[0]
    reg = beta * (trace + alpha) / n
    if count <= p:
        return n * math.log(reg)
    if trace == 0.0:
        return n * math.log(alpha * beta / n)
    detlog = _log_det_scaled(W, n)
    if detlog == -np.inf:
        return n * math.log(reg)
    if detlog <= 0.0:
        return n * math.log(math.exp(detlog) + reg)
    return n * (math.log1p(math.exp(-detlog) * reg) + detlog)


@njit(cache=True)
def _merged(a, b, n, count, mean, W, trace, out_mean, out_W):  # pragma: no cover
    """Weight, count and trace of clusters ``a`` and ``b`` merged; mean and scatter into
    ``out_mean`` and ``out_W``."""
    p = mean.shape[1]
    nab = n[a] + n[b]
    c = n[a] * n[b] / nab
    tr = trace[a] + trace[b]
    for u in range(p):
        du = mean[a, u] - mean[b, u]
        out_mean[u] = (n[a] * mean[a, u] + n[b] * mean[b, u]) / nab
        tr += c * du * du
        for v in range(p):
            out_W[u, v] = W[a, u, v] + W[b, u, v] + c * du * (mean[a, v] - mean[b, v])
    return nab, count[a] + count[b], tr


@njit(cache=True)
def _cost(a, b, n, count, mean, W, trace, term, alpha, beta, m_buf, w_buf):  # pragma: no cover
    nab, cab, tr = _merged(a, b, n, count, mean, W, trace, m_buf, w_buf)
    return _term(nab, cab, w_buf, tr, alpha, beta) - term[a] - term[b]


@njit(cache=True)
def _column_min(D, c):  # pragma: no cover
    """Smallest ``D[r, c]`` over ``r < c``, the last such ``r`` on ties."""
    best = np.inf
    arg = -1
    for r in range(c):
        if D[r, c] <= best:
            best = D[r, c]
            arg = r
    return best, arg


@njit(cache=True)
def _agglomerate(n, count, mean, W, trace, alpha, beta):  # pragma: no cover
    """Merge the ``g`` starting clusters down to one; the positions ``(i, j)`` merged at each
    step (the union takes position ``i``, the last position moves into ``j``)."""
    g, p = mean.shape
    term = np.empty(g)
    for c in range(g):
        term[c] = _term(n[c], count[c], W[c], trace[c], alpha, beta)
    merges = np.empty((max(g - 1, 0), 2), dtype=np.int64)
    m_buf = np.empty(p)
    w_buf = np.empty((p, p))
    D = np.full((g, g), np.inf)
    for j in range(1, g):
        for i in range(j):
            D[i, j] = _cost(i, j, n, count, mean, W, trace, term, alpha, beta, m_buf, w_buf)
            D[j, i] = D[i, j]
    cmin = np.full(g, np.inf)
    carg = np.full(g, -1)
    for c in range(1, g):
        cmin[c], carg[c] = _column_min(D, c)
    lg = g
    while lg > 1:
        # the pair to merge: the smallest cost, the last in (column, row) order on ties
        jo = 1
        for c in range(1, lg):
            if cmin[c] <= cmin[jo]:
                jo = c
        io = carg[jo]
        last = lg - 1
        nab, cab, tr = _merged(io, jo, n, count, mean, W, trace, m_buf, w_buf)
        merges[g - lg, 0] = io
        merges[g - lg, 1] = jo
        # the last position moves into jo (its costs with it), the union goes to io
        if jo != last:
            n[jo], count[jo], trace[jo], term[jo] = n[last], count[last], trace[last], term[last]
            mean[jo] = mean[last]
            W[jo] = W[last]
            for r in range(lg):
                D[r, jo] = D[r, last]
                D[jo, r] = D[r, last]
            D[jo, jo] = np.inf
        n[io], count[io], trace[io] = nab, cab, tr
        mean[io] = m_buf
        W[io] = w_buf
        term[io] = _term(nab, cab, w_buf, tr, alpha, beta)
        lg -= 1
        for r in range(lg):
            if r != io:
                D[r, io] = _cost(r, io, n, count, mean, W, trace, term, alpha, beta, m_buf, w_buf)
                D[io, r] = D[r, io]
        # refresh the column minima that changed
        for c in range(1, lg):
            if c == io or c == jo or carg[c] == io or carg[c] == jo or carg[c] >= lg:
                cmin[c], carg[c] = _column_min(D, c)
            else:
                for r in (io, jo):
                    if r < c and (D[r, c] < cmin[c] or (D[r, c] == cmin[c] and r > carg[c])):
                        cmin[c] = D[r, c]
                        carg[c] = r
    return merges


def _labels_at(merges: np.ndarray, g: int, n_clusters: int) -> np.ndarray:
    """Positions of the ``g`` starting clusters after merging down to ``n_clusters``."""
    where = np.arange(g)
    for step in range(g - max(n_clusters, 1)):
        io, jo = merges[step]
        last = g - 1 - step
        where[where == jo] = io
        where[where == last] = jo
    return where


_CACHE: dict[bytes, np.ndarray] = {}
_CACHE_SIZE = 4


def hc_labels(
    X: np.ndarray,
    n_clusters: int,
    sample_weight: np.ndarray | None = None,
    *,
    alpha: float = 1.0,
    beta: float = 1.0,
    transform: bool = True,
) -> np.ndarray:
    """Partition of the rows of ``X`` into ``n_clusters`` by hierarchical agglomeration.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    n_clusters : int
    sample_weight : ndarray of shape (n_samples,), optional
        Frequency weights: a row of weight ``w`` starts as a cluster of ``w`` identical
        points (which differs from ``w`` repeated rows only in the order of the first
        merges). Rows of weight 0 take no part and get label 0.
    alpha, beta : float, default=1.0
        The regulariser of the criterion (module docstring); ``alpha`` is relative to the
        data's mean squared deviation per coordinate, as in mclust.
    transform : bool, default=True
        Apply :func:`svd_transform` first (mclust's default).

    Returns
    -------
    labels : ndarray of int of shape (n_samples,)
        Values in ``0 .. n_clusters - 1`` (fewer distinct values when ``X`` has fewer
        rows of positive weight than ``n_clusters``).
    """
    X = np.asarray(X, dtype=np.float64)
    n_rows = X.shape[0]
    w = np.ones(n_rows) if sample_weight is None else np.asarray(sample_weight, float)
    labels = np.zeros(n_rows, dtype=np.int64)
    active = np.flatnonzero(w > 0)
    Xa, wa = X[active], w[active]
    Z = svd_transform(Xa, wa) if transform else Xa
    # every row starts as its own cluster, identical rows too (module docstring); a row of
    # weight w as a cluster of w identical points
    g, p = Z.shape
    n = wa.copy()
    count = wa.copy()
    mean = Z.copy()
    W = np.zeros((g, p, p))
    trace = np.zeros(g)
    total = wa.sum()
    centre = wa @ Z / total
    alpha_abs = alpha * float(wa @ ((Z - centre) ** 2).sum(axis=1)) / (total * p)
    alpha_abs = max(alpha_abs, np.finfo(float).eps)
    key = hashlib.sha256(
        b"".join([Z.tobytes(), wa.tobytes(), np.array([alpha_abs, beta, p]).tobytes()])
    ).digest()
    merges = _CACHE.get(key)
    if merges is None:
        merges = _agglomerate(n, count, mean, W, trace, alpha_abs, beta)
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = merges
    labels[active] = _labels_at(merges, g, n_clusters)
    return labels


def quantile_labels(x: np.ndarray, n_clusters: int) -> np.ndarray:
    """Classes of a 1-D sample between its quantiles (mclust's univariate start, ``qclass``).

    Cut points are the sample quantiles (linear interpolation, R's default) at
    ``0, 1/m, ..., 1`` for the smallest ``m >= n_clusters`` giving ``n_clusters + 1`` distinct
    values; if there are more, those bounding the narrowest classes are dropped.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    k = n_clusters
    q = np.unique(x)
    if q.size <= k:  # at most k distinct values: one class each
        return np.searchsorted(q, x)
    m = k
    while True:
        m += 1
        q = np.unique(np.quantile(x, np.linspace(0.0, 1.0, m)))
        if q.size >= k + 1:
            break
    if q.size > k + 1:
        drop = np.argsort(np.diff(q), kind="stable")[: q.size - k - 1]
        q = np.delete(q, drop)
    eps = np.std(x, ddof=1) * np.sqrt(np.finfo(float).eps)
    q[0], q[-1] = x.min() - eps, x.max() + eps
    return np.clip(np.searchsorted(q, x, side="right") - 1, 0, k - 1)
