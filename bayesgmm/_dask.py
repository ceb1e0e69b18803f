"""EM and prediction on Dask arrays: data that do not fit in one machine's memory.

Imported only when a Dask array (or an xarray ``DataArray`` backed by one) reaches an
estimator, so that plain NumPy users never import dask. Everything here works with Dask's
default (threaded) scheduler and with a :mod:`dask.distributed` cluster: the active
``Client``, if any, runs the tasks.

The design, in the terms of :mod:`bayesgmm.em`:

* every EM iteration maps the compiled one-pass kernel (:func:`bayesgmm._kernels.em_pass`)
  over the row chunks; each chunk task standardises its rows, runs the kernel and returns
  ``K * (1 + D + D^2)`` numbers plus its log-likelihood. The client sums those in chunk index
  order, so the result does not depend on the number of workers or on the order in which
  tasks finish, and runs the M-step. The data are read once per iteration and never gathered
  or persisted;
* the centre and scale on which EM runs come from one pass over the chunks (counts, means and
  centred second moments combined in chunk order, Chan, Golub & LeVeque 1979); the same pass
  reports NaN or infinity with the chunk and its row range;
* predictions are lazy: ``map_blocks`` over the row chunks.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

__all__ = [
    "DaskRows",
    "blocks_from_rows",
    "combine_moments",
    "is_dask_collection",
    "map_rows",
    "rows_from_blocks",
]


def is_dask_collection(X: Any) -> bool:
    """Whether ``X`` is a Dask array or an xarray object backed by one.

    Never imports dask: if ``dask.array`` has not been imported, no Dask array exists.
    """
    da = sys.modules.get("dask.array")
    if da is None:
        return False
    if isinstance(X, da.Array):
        return True
    data = getattr(X, "data", None)  # xarray.DataArray
    return type(X).__module__.startswith("xarray") and isinstance(data, da.Array)


def _as_dask_matrix(X: Any, *, name: str = "X"):
    """A float64 2-D Dask array whose chunks span all features (rechunked when split)."""
    import dask.array as da

    if not isinstance(X, da.Array):
        X = X.data  # xarray.DataArray backed by Dask
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2-D Dask array of shape (n_samples, n_features) for {name}; got "
            f"{X.ndim} dimension(s) with shape {X.shape}. Reshape it, e.g. "
            f"{name}.reshape(-1, 1) for a single feature."
        )
    if np.isnan(X.shape[0]) or any(np.isnan(c) for c in X.chunks[0]):
        raise ValueError(
            f"{name} has unknown chunk sizes (shape {X.shape}), so its rows cannot be "
            f"counted before fitting. Call {name}.compute_chunk_sizes() first (one pass "
            "over the data)."
        )
    if X.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} has dtype {X.dtype}; expected a numeric (integer or float) Dask array. "
            "Convert it with .astype(float) after removing non-numeric columns."
        )
    if len(X.chunks[1]) > 1:
        # The kernel needs whole rows. Rechunking along features only moves data within a
        # row band, so it keeps the row chunks and costs no extra pass.
        X = X.rechunk({0: X.chunks[0], 1: -1})
    return X.astype(np.float64)


def _as_dask_weights(sample_weight: Any, row_chunks: tuple[int, ...]):
    """``sample_weight`` (NumPy or Dask, one per row) as a Dask array chunked like the rows."""
    import dask.array as da

    n = int(sum(row_chunks))
    if not isinstance(sample_weight, da.Array):
        if np.ndim(sample_weight) == 0:
            sample_weight = np.full(n, float(sample_weight))
        sample_weight = np.asarray(sample_weight, dtype=np.float64)
        if sample_weight.ndim != 1 or sample_weight.shape[0] != n:
            raise ValueError(
                f"sample_weight has shape {sample_weight.shape}, but X has {n} samples; pass "
                "one weight per row, shape (n_samples,)."
            )
        return da.from_array(sample_weight, chunks=(row_chunks,))
    if sample_weight.ndim != 1 or sample_weight.shape[0] != n:
        raise ValueError(
            f"sample_weight has shape {sample_weight.shape}, but X has {n} samples; pass one "
            "weight per row, shape (n_samples,)."
        )
    return sample_weight.astype(np.float64).rechunk((row_chunks,))


def _row_bounds(chunks: tuple[int, ...]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(chunks)]).astype(np.int64)


# Two compiled helpers of the chunk tasks. NumPy's broadcasting over rows of a few features
# runs an inner loop of length D per row: standardising a chunk of 1e6 x 3 rows took 18 ns of
# CPU per row (a third of the E-step kernel's 51 ns), and the moments pass as long again.
# These loops do the same arithmetic in a few ns per row. No fast-math: ``(x - c) / s`` is
# rounded exactly as NumPy rounds it, so a Dask fit sees the very numbers an in-memory fit sees.


@njit(cache=True, nogil=True)
def _standardize_into(block, lo, centre, scale, out):  # pragma: no cover (compiled)
    """``out[:] = (block[lo:lo + len(out)] - centre) / scale`` (bit-identical to NumPy)."""
    m, d = out.shape
    for i in range(m):
        for j in range(d):
            out[i, j] = (block[lo + i, j] - centre[j]) / scale[j]


_SUM_BLOCK = 4096


@njit(cache=True, nogil=True)
def _moments_kernel(block, w, weighted):  # pragma: no cover (compiled)
    """Whether all values are finite, total weight, weighted mean and centred weighted sum of
    squares of each column (two passes; sums in blocks of rows, then over blocks)."""
    n, d = block.shape
    total = 0.0
    sums = np.zeros(d)
    part = np.zeros(d)
    for lo in range(0, n, _SUM_BLOCK):
        hi = min(n, lo + _SUM_BLOCK)
        part[:] = 0.0
        wpart = 0.0
        for i in range(lo, hi):
            wi = w[i] if weighted else 1.0
            wpart += wi
            for j in range(d):
                x = block[i, j]
                if not np.isfinite(x):
                    return False, 0.0, sums, part
                part[j] += wi * x
        total += wpart
        sums += part
    mean = np.zeros(d)
    m2 = np.zeros(d)
    if total == 0.0:
        return True, 0.0, mean, m2
    mean[:] = sums / total
    for lo in range(0, n, _SUM_BLOCK):
        hi = min(n, lo + _SUM_BLOCK)
        part[:] = 0.0
        for i in range(lo, hi):
            wi = w[i] if weighted else 1.0
            for j in range(d):
                dev = block[i, j] - mean[j]
                part[j] += wi * dev * dev
        m2 += part
    return True, total, mean, m2


def _one_thread(fn, *args):
    """``fn(*args)`` with the compiled kernels on this thread only.

    A Dask task is one unit of parallelism: the worker already runs as many tasks at once as
    it has threads, so a kernel that spread over threads of its own would oversubscribe the
    cores. The kernels' results do not depend on their thread count.
    """
    import numba

    before = numba.get_num_threads()
    if before == 1:
        return fn(*args)
    numba.set_num_threads(1)
    try:
        return fn(*args)
    finally:
        numba.set_num_threads(before)


def _check_chunk_finite(block: np.ndarray, index: int, lo: int, name: str) -> None:
    """Raise naming the chunk, its row range and the first bad rows (global, 0-based)."""
    if np.isfinite(block).all():
        return
    bad = np.flatnonzero(~np.isfinite(block).all(axis=1)) + lo
    kinds = []
    if np.isnan(block).any():
        kinds.append("NaN")
    if np.isinf(block).any():
        kinds.append("infinity (inf)")
    shown = ", ".join(str(int(r)) for r in bad[:5])
    more = f" and {bad.size - 5} more" if bad.size > 5 else ""
    raise ValueError(
        f"Input {name} contains {' and '.join(kinds)} in chunk {index} (rows {lo} to "
        f"{lo + block.shape[0] - 1}, 0-based): row(s) {shown}{more}. Mixture models need "
        "finite values; drop or impute those rows (e.g. X[da.isfinite(X).all(axis=1)], then "
        "X.compute_chunk_sizes()) and fit again."
    )


def _check_chunk_weights(w: np.ndarray, index: int, lo: int) -> None:
    bad = np.flatnonzero(~np.isfinite(w) | (w < 0))
    if bad.size:
        raise ValueError(
            f"sample_weight has a negative, NaN or infinite value in chunk {index} (rows {lo} "
            f"to {lo + w.shape[0] - 1}, 0-based): row(s) "
            f"{', '.join(str(int(r) + lo) for r in bad[:5])}. Frequency weights must be "
            "finite and >= 0."
        )


def _chunk_moments(block: np.ndarray, weights, index: int, lo: int, name: str):
    """Total weight, weighted mean and centred weighted sum of squares of one chunk, after
    checking that its values (and weights) are finite."""
    block = np.ascontiguousarray(block, dtype=np.float64)
    if weights is None:
        w, weighted = np.empty(0), False
    else:
        w, weighted = np.ascontiguousarray(weights, dtype=np.float64), True
        _check_chunk_weights(w, index, lo)
    finite, total, mean, m2 = _moments_kernel(block, w, weighted)
    if not finite:
        _check_chunk_finite(block, index, lo, name)  # raises, naming chunk and rows
    return total, mean, m2


def combine_moments(parts, d: int) -> tuple[float, np.ndarray, np.ndarray]:
    """Total weight, mean and centred sum of squares of all chunks from each chunk's
    ``(weight, mean, centred sum of squares, ...)``, combined in the order given (Chan, Golub
    & LeVeque's pairwise update), so the result does not depend on scheduling."""
    n, mean, m2 = 0.0, np.zeros(d), np.zeros(d)
    for nb, mb, m2b, *_ in parts:
        if nb == 0:
            continue
        tot = n + nb
        delta = mb - mean
        mean = mean + delta * (nb / tot)
        m2 = m2 + m2b + delta**2 * (n * nb / tot)
        n = tot
    return n, mean, m2


#: Rows standardised and passed to the kernel at a time within a chunk task. The slice's
#: scratch (1.5 MB for D = 3) is reused across the chunk: a Dask worker process runs with
#: ``MALLOC_TRIM_THRESHOLD_`` set (distributed's default), which makes glibc map every large
#: array afresh from the kernel, so a chunk-sized copy paid a page fault per 4 kB on every
#: pass (measured: 9 ns of system time per row for the copy and its weights).
_SLICE_ROWS = 1 << 16


def _chunk_em(block, weights, centre, scale, kind, log_const, means, prec_chol):
    """One chunk's EM statistics in standardised units: (ll, nk, s1, s2), summed over fixed
    slices of :data:`_SLICE_ROWS` rows in order (so they depend only on the chunk)."""
    args = (block, weights, centre, scale, kind, log_const, means, prec_chol)
    return _one_thread(_em_slices, *args)


def _em_slices(block, weights, centre, scale, kind, log_const, means, prec_chol):
    from . import _kernels

    block = np.asarray(block, dtype=np.float64)
    n = block.shape[0]
    k, d = means.shape
    ll, nk, s1 = 0.0, np.zeros(k), np.zeros((k, d))
    s2 = np.zeros((k, d, d) if kind == "full" else (k, d))
    if n == 0:
        return ll, nk, s1, s2
    step = min(n, _SLICE_ROWS)
    scratch = np.empty((step, d))
    ones = np.ones(step) if weights is None else None
    w_all = None if weights is None else np.ascontiguousarray(weights, dtype=np.float64)
    for lo in range(0, n, step):
        m = min(step, n - lo)
        Z = scratch[:m]
        _standardize_into(block, lo, centre, scale, Z)
        w = ones[:m] if w_all is None else w_all[lo : lo + m]
        part = _kernels.em_pass(kind, Z, w, log_const, means, prec_chol)
        ll += part[0]
        nk += part[1]
        s1 += part[2]
        s2 += part[3]
    return ll, nk, s1, s2


def _compute(tasks: list, what: str) -> list:
    """``dask.compute`` with a clear message when the cluster gives up on a task."""
    import dask

    try:
        return list(dask.compute(*tasks))
    except ValueError:
        raise  # our own input errors (NaN in a chunk ...) pass through unchanged
    except Exception as exc:
        if type(exc).__name__ in ("KilledWorker", "CancelledError", "CommClosedError"):
            raise RuntimeError(
                f"The Dask cluster lost the workers running {what} ({type(exc).__name__}: "
                f"{exc}) more times than it retries a task, so the fit was stopped: no "
                "partial result is returned. Check the workers' logs (memory limits are the "
                "usual cause), use smaller chunks or more memory per worker, and fit again."
            ) from exc
        raise


@dataclass
class DaskRows:
    """The rows of a Dask array, as EM sees them: chunk tasks and fixed-order reductions.

    Attributes
    ----------
    array : dask.array.Array
        Float64, one chunk along features.
    shape : tuple of int
    name : str
        Used in error messages.
    """

    array: Any
    shape: tuple[int, int]
    name: str = "X"
    centre: np.ndarray | None = None
    scale: np.ndarray | None = None
    weights: Any = None  # None or a 1-D Dask array chunked like the rows
    total_weight: float | None = None
    _delayed: tuple[list, list] | None = dataclasses.field(default=None, repr=False)

    @classmethod
    def from_input(
        cls, X: Any, *, min_samples: int, sample_weight: Any = None, name: str = "X"
    ) -> DaskRows:
        """Validate the array's metadata (no data read) and make its chunks whole rows.

        Raises
        ------
        ValueError
            If ``X`` is empty, has fewer than ``min_samples`` rows, is not 2-D or has unknown
            chunk sizes.
        TypeError
            If its dtype is not numeric.
        """
        arr = _as_dask_matrix(X, name=name)
        n, d = (int(s) for s in arr.shape)
        if n == 0 or d == 0:
            raise ValueError(
                f"{name} is empty (shape {arr.shape}); expected at least {min_samples} rows "
                "and one feature."
            )
        if n < min_samples:
            raise ValueError(
                f"{name} has {n} row(s); at least {min_samples} are needed. Use fewer "
                "components or more data."
            )
        rows = cls(arr, (n, d), name)
        if sample_weight is not None:
            rows.weights = _as_dask_weights(sample_weight, arr.chunks[0])
        return rows

    @property
    def bounds(self) -> np.ndarray:
        return _row_bounds(self.array.chunks[0])

    def _chunk_pairs(self) -> list:
        """(data chunk, weight chunk or None) per row chunk, as Dask delayed objects.

        Built (and the input's graph optimised) once per fit, not once per iteration: for a
        store of thousands of chunks that alone took a noticeable part of each pass.
        """
        if self._delayed is None:
            blocks = list(self.array.to_delayed().ravel())
            if self.weights is None:
                weights = [None] * len(blocks)
            else:
                weights = list(self.weights.to_delayed().ravel())
            self._delayed = (blocks, weights)
        return list(zip(*self._delayed, strict=True))

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation (``ddof=0``) of every feature, in one pass.

        Chunks are combined in index order, so the result is the same on any cluster.
        Raises a ``ValueError`` naming the chunk and rows that hold NaN or infinity.
        """
        from dask import delayed

        bounds = self.bounds
        fn = delayed(_chunk_moments, pure=True)
        parts = _compute(
            [
                fn(b, w, i, int(bounds[i]), self.name)
                for i, (b, w) in enumerate(self._chunk_pairs())
            ],
            "the data's moments",
        )
        n, mean, m2 = combine_moments(parts, self.shape[1])
        if n <= 0:
            raise ValueError("sample_weight sums to zero; at least one sample needs weight > 0.")
        self.total_weight = n
        return mean, np.sqrt(m2 / n)

    def em_pass(self, kind: str, log_const, means, prec_chol):
        """The E-step statistics of all rows, summed in chunk order: (ll, nk, s1, s2)."""
        from dask import delayed

        fn = delayed(_chunk_em, pure=True)
        args = (self.centre, self.scale, kind, log_const, means, prec_chol)
        parts = _compute([fn(b, w, *args) for b, w in self._chunk_pairs()], "an EM iteration")
        ll, nk, s1, s2 = parts[0]
        ll, nk, s1, s2 = float(ll), nk.copy(), s1.copy(), s2.copy()
        for p in parts[1:]:
            ll += p[0]
            nk += p[1]
            s1 += p[2]
            s2 += p[3]
        return ll, nk, s1, s2

    def sample_rows(
        self, size: int, random_state: np.random.RandomState
    ) -> tuple[np.ndarray, np.ndarray]:
        """A uniform random sample of ``size`` rows without replacement and their weights,
        in memory (sorted by row index; reads only the chunks that hold sampled rows)."""
        n = self.shape[0]
        if size >= n:
            idx = np.arange(n)
        else:
            idx = np.sort(random_state.choice(n, size=size, replace=False))
        if self.weights is None:
            rows = _compute([self.array[idx]], "the initialisation sample")[0]
            return np.asarray(rows), np.ones(idx.size)
        rows, w = _compute([self.array[idx], self.weights[idx]], "the initialisation sample")
        return np.asarray(rows), np.asarray(w, dtype=np.float64)


def map_rows(X: Any, fn, *, n_features: int, out_cols: int | None, dtype, name: str = "X"):
    """Lazy ``fn(block)`` over the row chunks of ``X`` (validated as in fit).

    ``fn`` maps a finite float64 block of shape ``(m, n_features)`` to ``(m,)`` (when
    ``out_cols`` is None) or ``(m, out_cols)``. NaN or infinity is reported, when computed,
    with the chunk and its row range.
    """
    arr = _as_dask_matrix(X, name=name)
    if arr.shape[1] != n_features:
        raise ValueError(
            f"{name} has {arr.shape[1]} features, but the estimator was fitted with "
            f"{n_features}. Pass data with the same columns as in fit."
        )
    bounds = _row_bounds(arr.chunks[0])

    def block_fn(block, block_info=None):
        i = block_info[0]["chunk-location"][0]
        block = np.asarray(block, dtype=np.float64)
        _check_chunk_finite(block, i, int(bounds[i]), name)
        return fn(np.ascontiguousarray(block))

    if out_cols is None:
        return arr.map_blocks(block_fn, drop_axis=1, dtype=dtype, chunks=(arr.chunks[0],))
    return arr.map_blocks(block_fn, dtype=dtype, chunks=(arr.chunks[0], (out_cols,)))


def check_moments(centre: np.ndarray, std: np.ndarray, *, name: str = "X") -> np.ndarray:
    """The rules of :func:`bayesgmm._validation.check_scale` for moments computed in chunks.

    Returns ``std`` with features constant up to rounding set to exactly 0; raises a
    ``ValueError`` saying how to rescale when a feature's spread does not fit in float64.
    """
    from ._validation import _CONSTANT_RTOL, SCALE_LIMITS

    if not (np.isfinite(centre).all() and np.isfinite(std).all()):
        raise ValueError(
            f"The mean or spread of {name} overflowed float64 (values near 1e154 or beyond). "
            f"Rescale {name} (e.g. divide the large features by a power of ten) and fit again."
        )
    constant = std <= _CONSTANT_RTOL * np.abs(centre)
    std = np.where(constant, 0.0, std)
    low, high = SCALE_LIMITS
    bad = np.flatnonzero(~constant & ((std < low) | (std > high)))
    if bad.size:
        j = int(bad[0])
        raise ValueError(
            f"{name} is on a scale that float64 cannot fit: feature {j} has standard "
            f"deviation {std[j]:.3g}; bayesgmm fits features whose standard deviation lies "
            f"between {low:g} and {high:g}. Rescale {name} (or standardise every feature) "
            "and fit again."
        )
    return std


def _pack(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    return arrays


def _summarize_chunk(block, index, lo, draws, covariance_type, interval, intervals, name):
    from .responsibilities import summarize_responsibilities

    block = np.asarray(block, dtype=np.float64)
    _check_chunk_finite(block, index, lo, name)
    w, mu, pc = draws
    return summarize_responsibilities(
        np.ascontiguousarray(block),
        w,
        mu,
        pc,
        covariance_type,
        interval=interval,
        intervals=intervals,
    )


#: MembershipSummary's per-point fields: (name, per-row shape is (K,) or scalar, dtype).
_SUMMARY_FIELDS = (
    ("mean", True, np.float64),
    ("lower", True, np.float64),
    ("upper", True, np.float64),
    ("labels", False, np.intp),
    ("label_probability", False, np.float64),
    ("entropy_total", False, np.float64),
    ("entropy_aleatoric", False, np.float64),
    ("entropy_epistemic", False, np.float64),
    ("log_density", False, np.float64),
    ("log_density_lower", False, np.float64),
    ("log_density_upper", False, np.float64),
)


def summarize_rows(
    X: Any,
    weights: np.ndarray,
    means: np.ndarray,
    precisions_cholesky: np.ndarray,
    covariance_type: str,
    *,
    n_features: int,
    interval: float,
    intervals: str,
    name: str = "X",
):
    """Posterior membership summaries of a Dask array's rows, as lazy Dask arrays.

    Each row chunk goes through :func:`bayesgmm.responsibilities.summarize_responsibilities`
    (the compiled streaming summary). The posterior draws are one task of the graph, so each
    worker receives them once, however many chunks it summarises. The returned
    :class:`~bayesgmm.responsibilities.MembershipSummary` holds Dask arrays chunked like
    ``X``'s rows; fields computed together (``dask.compute(s.mean, s.labels)``) share one pass
    over the data.
    """
    import dask.array as da
    from dask import delayed

    from .responsibilities import MembershipSummary

    arr = _as_dask_matrix(X, name=name)
    if arr.shape[1] != n_features:
        raise ValueError(
            f"{name} has {arr.shape[1]} features, but the estimator was fitted with "
            f"{n_features}. Pass data with the same columns as in fit."
        )
    k = weights.shape[-1]
    draws = delayed(_pack, pure=True)(weights, means, precisions_cholesky)
    bounds = _row_bounds(arr.chunks[0])
    summ = delayed(_summarize_chunk, pure=True)
    parts = [
        summ(b, i, int(bounds[i]), draws, covariance_type, interval, intervals, name)
        for i, b in enumerate(arr.to_delayed().ravel())
    ]
    sizes = arr.chunks[0]
    fields = {}
    for field, per_component, dtype in _SUMMARY_FIELDS:
        pieces = [
            da.from_delayed(
                delayed(getattr, pure=True)(p, field),
                shape=(m, k) if per_component else (m,),
                dtype=dtype,
            )
            for p, m in zip(parts, sizes, strict=True)
        ]
        fields[field] = da.concatenate(pieces)
    n_draws = int(np.prod(weights.shape[:-1]))
    return MembershipSummary(**fields, interval=interval, n_draws=n_draws)


# ----------------------------------------------------------------------------- images
#
# An image (H, W) or (H, W, C) chunked in spatial blocks (the channel axis in one chunk) is
# seen by the row-wise machinery above as a matrix of pixel rows in *block order*: block
# (0, 0)'s pixels (row-major within the block), then block (0, 1)'s, and so on, one row
# chunk per block. These two graph layers go from blocks to rows and back, one task per
# block and nothing moved between blocks.


def _offsets(chunks: tuple[int, ...]) -> list[int]:
    return [int(v) for v in _row_bounds(chunks)[:-1]]


def rows_from_blocks(image: Any, fn, *, n_cols: int, dtype, label: str):
    """Lazy ``fn(block, r0, c0)`` of every spatial block of ``image``, as pixel rows.

    ``fn`` gets a block in memory and the global row and column of its top-left pixel, and
    returns an array of shape ``(block_height * block_width, n_cols)``. The result is a Dask
    array of shape ``(H * W, n_cols)`` in block order, one row chunk per block.
    """
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    rows, cols = image.chunks[:2]
    if image.ndim == 3 and len(image.chunks[2]) != 1:
        raise ValueError("the channel axis must be one chunk; rechunk it with {2: -1}.")
    extra = (0,) * (image.ndim - 2)
    name = f"{label}-{tokenize(image, fn, n_cols, np.dtype(dtype).str)}"
    dsk, sizes = {}, []
    for i, (r0, bh) in enumerate(zip(_offsets(rows), rows, strict=True)):
        for j, (c0, bw) in enumerate(zip(_offsets(cols), cols, strict=True)):
            dsk[(name, len(sizes), 0)] = (fn, (image.name, i, j, *extra), r0, c0)
            sizes.append(int(bh) * int(bw))
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[image])
    return da.Array(graph, name, chunks=(tuple(sizes), (int(n_cols),)), dtype=dtype)


def blocks_from_rows(flat: Any, like: Any, *, label: str):
    """Pixel rows in block order (as made by :func:`rows_from_blocks` from ``like``) back to
    an image chunked like ``like``'s spatial blocks: ``(H, W)`` for a 1-D ``flat``,
    ``(H, W, K)`` (the last axis in one chunk) for ``flat`` of shape ``(H * W, K)``."""
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    rows, cols = like.chunks[:2]
    sizes = tuple(int(bh) * int(bw) for bh in rows for bw in cols)
    if flat.ndim == 2 and len(flat.chunks[1]) != 1:
        flat = flat.rechunk({1: -1})
    if tuple(flat.chunks[0]) != sizes:
        raise ValueError("the pixel rows are not chunked one chunk per block of the image.")
    tail = tuple(int(v) for v in flat.shape[1:])
    extra = (0,) * len(tail)
    name = f"{label}-{tokenize(flat, rows, cols)}"
    dsk, b = {}, 0
    for i, bh in enumerate(rows):
        for j, bw in enumerate(cols):
            dsk[(name, i, j, *extra)] = (np.reshape, (flat.name, b, *extra), (bh, bw, *tail))
            b += 1
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[flat])
    chunks = (tuple(rows), tuple(cols), *((t,) for t in tail))
    return da.Array(graph, name, chunks=chunks, dtype=flat.dtype)
