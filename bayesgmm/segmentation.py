"""Uncertainty-aware image segmentation: pixel features -> mixture -> label and uncertainty maps.

A Gaussian mixture is fitted to pixel features (intensity, colour, optionally position) and
every pixel gets a label, its per-component membership probabilities and uncertainty maps:

- **total** uncertainty, the entropy of the membership probabilities (nats, at most
  ``log K``);
- **aleatoric**, the expected per-draw entropy: pixels whose features lie where components
  overlap (boundaries blurred over several pixels, noise);
- **epistemic**, their difference: disagreement between posterior draws about the components
  themselves, which shrinks as more pixels are fitted. EM has no parameter uncertainty, so for
  ``method="em"`` it is zero and aleatoric equals total;
- for ``method="bayes"``, the width of the posterior interval of the assigned label's
  probability.

**Spatial prior.** With ``spatial="potts"`` neighbouring pixels are no longer independent: a
Potts prior on the labels, fitted by mean-field EM over all pixels, with its strength
``beta`` estimated from the image (see :mod:`bayesgmm._spatial`). With ``method="bayes"`` the
component parameters are then sampled under that prior's field (each fitted pixel's label
prior given its neighbours), and every map draw gets its own mean-field label map, started
from the EM one at the same ``beta``; the maps average them, so the epistemic map is the
disagreement of the draws' spatial label maps.
:func:`calibration` measures, against a truth map, how often labels are right at each level
of their probability.

**Feature scaling.** Each feature *group* is centred and divided by one pooled standard
deviation computed over all pixels: one number for the colour (or intensity) channels and one
for the two position coordinates. A single scale per group keeps the geometry inside the group
(colour differences keep their RGB proportions; the image keeps its aspect ratio) while putting
colour and position on comparable scales: a pixel one standard deviation of colour away from a
segment's mean counts as much as one that is one standard deviation of position away. The
position group is then multiplied by ``position_weight`` (default 1): larger values give more
compact, blob-like segments, smaller ones segments driven by colour. Integer images are read on
their full range (uint8 / 255, uint16 / 65535); float images are taken as they are.

**Constant images.** A feature group with nothing to segment is refused with a
``ValueError``: an integer image (uint8, uint16) whose pixels are all equal, or a float image
whose group varies by no more than rounding, a standard deviation at most
``CONSTANT_ULPS`` (64) machine epsilons of the image's dtype times the group's largest
absolute value (about 1.4e-14 relative for float64, 7.6e-6 for float32). Rounding noise of a
few operations on a uniform image (a resampling, a colour conversion) stays below that bound;
data that differ by one uint8 code (0.4 %), or by 1e-9 in float64, are far above it. Integer
codes are exact, so for integer images only exact equality counts as constant.

**Large images.** The mixture is fitted to a random subsample of ``n_fit_pixels`` pixels, then
every pixel is predicted by compiled kernels that run in parallel over pixels: EM's membership
probabilities directly, the Bayesian maps from ``max_draws`` posterior draws (thinned evenly
over the pooled chains), streaming, so memory is that of the output maps whatever the number
of draws. Features are computed chunk by chunk (``CHUNK_PIXELS`` pixels) from the image in
its own dtype and never held for the whole image, and the maps are stored compactly (uint8
labels, float32 probabilities and uncertainties): about ``4 K + 13`` bytes per pixel for EM,
``4 K + 21`` for the Bayesian maps, plus the image itself. An 8000 x 8000 photograph with
K = 4 needs about 2 GB of maps (see ``bench/segment_speed.py``), and
:meth:`~bayesgmm.SegmentationResult.to_npz` logs a warning before writing more than 1 GB.

**Images larger than memory.** A Dask array (or a Dask-backed xarray ``DataArray``), a zarr
array or the path of a ``.zarr`` store is segmented without being loaded: the features are
computed per image block by the same functions as above; the scaling comes from one lazy pass
over the blocks (each block's mean and centred sum of squares of its differences from the
first pixel, combined in block order, so exactly constant images are still caught and the
result does not depend on scheduling; the same pass reports NaN or infinity with the pixel);
the mixture is fitted on the same uniform sample of ``n_fit_pixels`` pixels as in memory,
gathered block by block. The maps come back as lazy Dask arrays chunked like the image (the
components of ``probabilities`` in one chunk), computed by the estimators' own Dask paths
(``predict_proba``; ``membership`` for ``method="bayes"``) when they are asked for:
:meth:`~bayesgmm.SegmentationResult.to_zarr` writes them all in one pass, block by block, and
:meth:`~bayesgmm.SegmentationResult.preview` gives a strided view in memory for figures. A
task holds one block's float64 features, probabilities and work arrays: an 8192 x 8192 RGB
image in 2048 x 2048 blocks (K = 3) peaked at 1.2 GB with two threads, against 4.0 GB in
memory (``bench/dask_segment.py``), that is about 100 bytes per pixel of each block in work
beyond the 0.35 GB the process needs for a small image. Blocks of 1 to 4 million pixels suit
a worker with a few GB. The spatial prior needs the image in memory and is refused for a
Dask image.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ._validation import check_n_components, check_positive, check_random_state
from .exceptions import BayesGMMDeprecationWarning
from .responsibilities import _entropy

__all__ = [
    "CalibrationResult",
    "PixelFeatures",
    "SegmentationResult",
    "as_image",
    "calibration",
    "image_features",
    "segment_image",
]

FEATURE_GROUPS = ("intensity", "color", "position")
#: Rec. 601 luma weights: intensity of an RGB pixel.
LUMA = np.array([0.299, 0.587, 0.114])
_DEFAULT_FIT_PIXELS = {"em": 50_000, "bayes": 5_000}
#: Pixels per chunk when features and maps are computed: the float64 work arrays of one chunk
#: (features, probabilities, entropies; about 100 MB) are all the memory beyond the maps.
CHUNK_PIXELS = 1 << 20
#: ``spatial="potts"`` keeps all pixels' float64 features in memory up to this size.
SPATIAL_CACHE_BYTES = 256 * 2**20
#: :meth:`SegmentationResult.to_npz` logs a warning before writing more bytes of maps.
LARGE_OUTPUT_BYTES = 10**9  # 1 GB
#: A feature group of a float image is "constant" when its standard deviation is at most
#: this many machine epsilons of the image's dtype times the group's largest absolute value.
CONSTANT_ULPS = 64
_log = logging.getLogger("bayesgmm")


def _check_layout(arr: Any) -> Any:
    """Check an image's dtype and shape (NumPy or Dask, no data read); drop a single
    channel axis."""
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise TypeError(
            f"image has dtype {arr.dtype}; pass a numeric array (uint8, uint16 or float)."
        )
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[2] == 4:
        raise ValueError(
            "image has 4 channels (RGBA); drop or composite the alpha channel first, e.g. "
            "image[..., :3]."
        )
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise ValueError(
            f"image has shape {arr.shape}; expected (height, width) for grayscale or "
            "(height, width, 3) for RGB."
        )
    if min(arr.shape[:2]) < 2:
        raise ValueError(f"image of shape {arr.shape} is too small to segment.")
    return arr


#: Integer codes of these dtypes are read on their full range.
_TOPS = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def _check_image(image: ArrayLike) -> tuple[np.ndarray, float | None]:
    """Validate an image without converting it: C-contiguous (H, W) or (H, W, 3) in its own
    dtype, and the divisor that maps integer codes to [0, 1] (None for float images)."""
    arr = _check_layout(np.asarray(image))
    arr = np.ascontiguousarray(arr)  # flat pixel rows are then views, never copies
    if np.issubdtype(arr.dtype, np.integer):
        top = _TOPS.get(arr.dtype)
        if top is None:
            top = float(max(arr.max(), 1))
        return arr, top
    if not np.isfinite(arr).all():
        bad = ~np.isfinite(arr)
        n_bad = int(bad.any(axis=-1).sum() if arr.ndim == 3 else bad.sum())
        raise ValueError(f"image has {n_bad} pixel(s) with NaN or infinite values.")
    return arr, None


def as_image(image: ArrayLike) -> np.ndarray:
    """Validate an image and return it as float64 of shape (H, W) or (H, W, 3).

    uint8 and uint16 images are divided by their maximum code value; floats are kept. An alpha
    channel is refused rather than silently dropped.
    """
    arr, top = _check_image(image)
    return arr.astype(np.float64) if top is None else arr.astype(np.float64) / top


@dataclass
class PixelFeatures:
    """The feature map from pixels to the space the mixture is fitted in.

    Attributes
    ----------
    groups : tuple of str
        The requested feature groups, e.g. ``("color", "position")``.
    names : list of str
        One name per feature column, e.g. ``["red", "green", "blue", "row", "col"]``.
    offset, scale : ndarray of shape (n_features,)
        ``feature = (raw - offset) / scale``; ``scale`` is shared within a group (and divided
        by ``position_weight`` for the position columns).
    position_weight : float
        Weight of position relative to colour.
    """

    groups: tuple[str, ...]
    names: list[str]
    offset: np.ndarray
    scale: np.ndarray
    position_weight: float

    def to_raw(self, features: np.ndarray) -> np.ndarray:
        """Undo the scaling: fitted-space values (e.g. component means) in image units."""
        return np.asarray(features) * self.scale + self.offset


def _check_groups(features: str | Sequence[str]) -> tuple[str, ...]:
    groups = (features,) if isinstance(features, str) else tuple(features)
    unknown = [g for g in groups if g not in FEATURE_GROUPS]
    if unknown or not groups or len(set(groups)) != len(groups):
        raise ValueError(
            f"features={features!r} is invalid; use a combination of {FEATURE_GROUPS} such as "
            "('intensity',), ('color',) or ('color', 'position')."
        )
    if "intensity" in groups and "color" in groups:
        raise ValueError("features: choose 'intensity' or 'color', not both.")
    if groups == ("position",):
        raise ValueError("features: position alone ignores the image; add 'color' or 'intensity'.")
    return groups


def _feature_names(groups: tuple[str, ...], n_channels: int) -> tuple[list[str], list[int]]:
    """Feature column names, and the number of columns of each group."""
    names: list[str] = []
    widths: list[int] = []
    for g in groups:
        if g == "position":
            group_names = ["row", "col"]
        elif g == "intensity" or n_channels == 1:
            group_names = ["intensity"]
        else:
            group_names = ["red", "green", "blue"]
        names += group_names
        widths.append(len(group_names))
    return names, widths


def _raw_features(
    pix: np.ndarray,
    top: float | None,
    groups: tuple[str, ...],
    coords: Callable[[], tuple[np.ndarray, np.ndarray]],
) -> np.ndarray:
    """THE definition of the unscaled pixel features (float64, one row per pixel).

    ``pix`` holds the pixels' values in the image's own dtype, shape ``(m, channels)``;
    ``top`` divides integer codes (None for float images); ``coords()`` returns the pixels'
    row and column in the whole image (called only for the position features).
    """
    pix = pix.astype(np.float64)  # a copy: callers scale it in place
    if top is not None:
        pix /= top
    cols = []
    for g in groups:
        if g == "position":
            r, c = coords()
            cols.append(np.column_stack([r, c]).astype(np.float64))
        elif pix.shape[1] == 3 and g == "intensity":
            cols.append((pix @ LUMA)[:, None])
        else:
            cols.append(pix)
    return cols[0] if len(cols) == 1 else np.hstack(cols)


def _group_scales(
    groups: tuple[str, ...],
    widths: list[int],
    variance: np.ndarray,
    largest: np.ndarray,
    eps: float,
    dtype: np.dtype,
    position_weight: float,
) -> np.ndarray:
    """One pooled standard deviation per feature group (position divided by its weight),
    refusing a constant colour or intensity group (see :data:`CONSTANT_ULPS`)."""
    scales, col = [], 0
    for g, width in zip(groups, widths, strict=True):
        cols = slice(col, col + width)
        col += width
        spread = float(np.sqrt(variance[cols].mean()))
        if g != "position":
            _check_not_constant(g, spread, float(largest[cols].max()), eps, dtype)
        else:
            spread /= position_weight
        scales.append(np.full(width, spread))
    return np.concatenate(scales)


class _Pixels:
    """Feature rows of any set of pixels, computed on demand from the checked image.

    Nothing of size ``n_pixels x n_features`` is held: features are built per chunk of
    pixels (or for a sample of them) from the image in its own dtype, so a uint8 photo costs
    its 3 bytes per pixel and not 8 per feature.
    """

    def __init__(self, arr: np.ndarray, top: float | None, groups: tuple[str, ...]) -> None:
        self.arr, self.top, self.groups = arr, top, groups
        h, w = arr.shape[:2]
        self.width, self.n = w, h * w
        self.flat = arr.reshape(self.n, -1)  # a view: _check_image made arr contiguous
        self.names, self.widths = _feature_names(groups, self.flat.shape[1])
        self.offset = np.zeros(len(self.names))
        self.scale = np.ones(len(self.names))

    def chunks(self) -> list[slice]:
        """Consecutive slices of at most :data:`CHUNK_PIXELS` flat pixel indices."""
        step = max(1, int(CHUNK_PIXELS))
        return [slice(lo, min(lo + step, self.n)) for lo in range(0, self.n, step)]

    def raw(self, rows: slice | np.ndarray) -> np.ndarray:
        """Unscaled feature rows, float64, of the flat (row-major) pixel indices ``rows``."""

        def coords() -> tuple[np.ndarray, np.ndarray]:
            idx = np.arange(*rows.indices(self.n)) if isinstance(rows, slice) else rows
            return np.divmod(np.asarray(idx, dtype=np.int64), self.width)

        return _raw_features(self.flat[rows], self.top, self.groups, coords)

    def features(self, rows: slice | np.ndarray) -> np.ndarray:
        """Scaled feature rows (``(raw - offset) / scale``) of the pixels ``rows``."""
        X = self.raw(rows)
        X -= self.offset
        X /= self.scale
        return X

    def fit_scaler(self, position_weight: float) -> PixelFeatures:
        """Centre and pooled scale of every feature group over all pixels, in two streaming
        passes; refuses a constant (or, for float images, constant up to rounding) group."""
        chunks = self.chunks()
        # Sums of differences from the first pixel: an exactly constant image gives exactly
        # zero, not the rounding error of a mean.
        ref = self.raw(slice(0, 1))[0]
        shifted = np.zeros(ref.size)
        largest = np.zeros(ref.size)
        for rows in chunks:
            block = self.raw(rows)
            if self.top is None:  # (only float images have a rounding tolerance)
                largest = np.maximum(largest, np.abs(block).max(axis=0))
            block -= ref
            shifted += block.sum(axis=0)
        centre = ref + shifted / self.n
        squares = np.zeros(ref.size)
        for rows in chunks:
            block = self.raw(rows)
            block -= centre
            squares += np.einsum("ij,ij->j", block, block)
        variance = squares / self.n
        eps = 0.0 if self.top is not None else float(np.finfo(self.arr.dtype).eps)
        scales = _group_scales(
            self.groups, self.widths, variance, largest, eps, self.arr.dtype, position_weight
        )
        self.offset, self.scale = centre, scales
        return PixelFeatures(
            self.groups, list(self.names), self.offset, self.scale, float(position_weight)
        )


def _check_not_constant(group: str, spread: float, largest: float, eps: float, dtype) -> None:
    """Refuse a feature group with nothing to segment (see :data:`CONSTANT_ULPS`)."""
    tol = CONSTANT_ULPS * eps * largest
    if spread > tol:
        return
    why = ""
    if spread > 0.0:
        why = (
            f" to within {dtype} rounding (standard deviation {spread:.3g}, at most "
            f"{CONSTANT_ULPS} x eps({dtype}) x its largest value {largest:.3g} = {tol:.3g})"
        )
    raise ValueError(
        f"the image's {group} is constant{why}; there is nothing to segment. Check that the "
        "intended image was read (not a blank, uniform or saturated frame)."
    )


def _pixels(
    image: ArrayLike, features: str | Sequence[str], position_weight: float
) -> tuple[_Pixels | _DaskPixels, PixelFeatures]:
    groups = _check_groups(features)
    check_positive("position_weight", position_weight)
    if _is_lazy_image(image):
        arr, top = _check_dask_image(image)
        pixels: _Pixels | _DaskPixels = _DaskPixels(arr, top, groups)
    else:
        arr, top = _check_image(image)
        pixels = _Pixels(arr, top, groups)
    return pixels, pixels.fit_scaler(position_weight)


# ------------------------------------------------------------------ images larger than memory


def _is_lazy_image(image: Any) -> bool:
    """A Dask array (or Dask-backed xarray), a zarr array, or the path of a ``.zarr`` store."""
    from ._dask import is_dask_collection

    if isinstance(image, str | os.PathLike):
        return os.fspath(image).rstrip("/\\").endswith(".zarr")
    return is_dask_collection(image) or type(image).__module__.startswith("zarr")


def _open_zarr(path: str | os.PathLike) -> Any:
    """The image array of a zarr store (its root array, or the only array of its root
    group) as a lazy Dask array: nothing is read."""
    import dask.array as da
    import zarr

    shown = os.fspath(path)
    if not os.path.isdir(shown):
        raise FileNotFoundError(f"zarr store {shown!r} does not exist; check the path.")
    try:
        node = zarr.open(shown, mode="r")
    except Exception as exc:  # zarr raises several types for a store it cannot read
        raise ValueError(f"{shown!r} is not a zarr store zarr can open: {exc}") from None
    if isinstance(node, zarr.Group):
        arrays = sorted(name for name, _ in node.arrays())
        if len(arrays) != 1:
            example = os.path.join(shown, arrays[0] if arrays else "image")
            raise ValueError(
                f"{shown!r} is a zarr group holding {len(arrays)} arrays "
                f"({', '.join(arrays[:5]) or 'none'}); give the path of the image array "
                f"itself, e.g. {example!r}."
            )
        node = node[arrays[0]]
    return da.from_zarr(node)


def _check_dask_image(image: Any) -> tuple[Any, float | None]:
    """The lazy counterpart of :func:`_check_image`: a Dask array of shape (H, W) or
    (H, W, 3) with the channels in one chunk, and the divisor of integer codes. Reads no
    pixel, except one pass for the largest code of an integer dtype other than uint8/uint16.
    """
    import dask.array as da

    if isinstance(image, str | os.PathLike):
        image = _open_zarr(image)
    elif type(image).__module__.startswith("zarr"):
        image = da.from_zarr(image)
    elif not isinstance(image, da.Array):
        image = image.data  # xarray.DataArray backed by Dask
    arr = _check_layout(image)
    if any(np.isnan(c) for axis in arr.chunks for c in axis):
        raise ValueError(
            f"image has unknown chunk sizes (shape {arr.shape}); call "
            "image.compute_chunk_sizes() first."
        )
    if arr.ndim == 3 and len(arr.chunks[2]) > 1:
        arr = arr.rechunk({2: -1})  # a pixel's channels in one block
    if np.issubdtype(arr.dtype, np.integer):
        top = _TOPS.get(arr.dtype)
        if top is None:
            top = float(max(int(arr.max().compute()), 1))
        return arr, top
    return arr, None


def _block_coords(r0: int, c0: int, bh: int, bw: int) -> tuple[np.ndarray, np.ndarray]:
    """Global row and column of every pixel of a block, row-major within the block."""
    return (
        np.repeat(np.arange(r0, r0 + bh, dtype=np.int64), bw),
        np.tile(np.arange(c0, c0 + bw, dtype=np.int64), bh),
    )


def _block_raw(block: np.ndarray, r0: int, c0: int, top: float | None, groups) -> np.ndarray:
    """Unscaled features of one image block's pixels (block order: row-major in the block)."""
    bh, bw = block.shape[:2]
    pix = np.asarray(block).reshape(bh * bw, -1)
    return _raw_features(pix, top, groups, lambda: _block_coords(r0, c0, bh, bw))


def _block_moments(block, r0: int, c0: int, top: float | None, groups, ref: np.ndarray):
    """One block's pixel count, mean and centred sum of squares of ``raw - ref``, the
    largest absolute raw value, and its number of non-finite pixels with the first one."""
    block = np.asarray(block)
    bh, bw = block.shape[:2]
    if top is None:
        bad = ~np.isfinite(block.reshape(bh * bw, -1)).all(axis=1)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            d = ref.size
            where = (r0 + first // bw, c0 + first % bw)
            return 0, np.zeros(d), np.zeros(d), np.zeros(d), int(bad.sum()), where
    X = _block_raw(block, r0, c0, top, groups)
    largest = np.abs(X).max(axis=0)
    X -= ref  # differences from the first pixel: exactly zero for a constant image
    mean = X.mean(axis=0)
    X -= mean
    return X.shape[0], mean, np.einsum("ij,ij->j", X, X), largest, 0, None


def _block_features(top, groups, offset, scale, block, r0: int, c0: int) -> np.ndarray:
    """Scaled features of one image block's pixels (the task of the lazy feature rows)."""
    X = _block_raw(block, r0, c0, top, groups)
    X -= offset
    X /= scale
    return X


def _gather(block, r: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.asarray(block)[r, c]


class _DaskPixels:
    """The pixels of a Dask image: the same features as :class:`_Pixels`, computed lazily
    block by block (an image block is one task; nothing is gathered but a fitted sample)."""

    def __init__(self, arr: Any, top: float | None, groups: tuple[str, ...]) -> None:
        self.arr, self.top, self.groups = arr, top, groups
        h, w = arr.shape[:2]
        self.width, self.n = int(w), int(h) * int(w)
        self.channels = 1 if arr.ndim == 2 else int(arr.shape[2])
        self.names, self.widths = _feature_names(groups, self.channels)
        self.offset = np.zeros(len(self.names))
        self.scale = np.ones(len(self.names))

    def _blocks(self) -> list[tuple[Any, int, int]]:
        """(delayed block, first row, first column) of every block, in block order."""
        r_off = np.concatenate([[0], np.cumsum(self.arr.chunks[0])])
        c_off = np.concatenate([[0], np.cumsum(self.arr.chunks[1])])
        grid = self.arr.to_delayed().reshape(len(r_off) - 1, len(c_off) - 1)
        return [
            (grid[i, j], int(r_off[i]), int(c_off[j]))
            for i in range(grid.shape[0])
            for j in range(grid.shape[1])
        ]

    def fit_scaler(self, position_weight: float) -> PixelFeatures:
        """Centre and pooled scale of every feature group over all pixels, in one lazy pass
        over the blocks (each block's mean and centred sum of squares of its differences from
        the first pixel, combined in block order: Chan, Golub & LeVeque); the same pass finds
        NaN or infinity. Refuses a constant group as :class:`_Pixels` does."""
        from dask import delayed

        from ._dask import _compute, combine_moments

        first = np.asarray(self.arr[:1, :1].compute())
        ref = _block_raw(first, 0, 0, self.top, self.groups)[0]
        fn = delayed(_block_moments, pure=True)
        parts = _compute(
            [fn(b, r0, c0, self.top, self.groups, ref) for b, r0, c0 in self._blocks()],
            "the image's feature scaling",
        )
        n_bad = sum(p[4] for p in parts)
        if n_bad:
            r, c = next(p[5] for p in parts if p[4])
            raise ValueError(
                f"image has {n_bad} pixel(s) with NaN or infinite values (the first at row {r}, "
                f"column {c})."
            )
        n, mean, m2 = combine_moments(parts, ref.size)
        largest = np.max([p[3] for p in parts], axis=0)
        eps = 0.0 if self.top is not None else float(np.finfo(self.arr.dtype).eps)
        scales = _group_scales(
            self.groups, self.widths, m2 / n, largest, eps, self.arr.dtype, position_weight
        )
        self.offset, self.scale = ref + mean, scales
        return PixelFeatures(
            self.groups, list(self.names), self.offset, self.scale, float(position_weight)
        )

    def features(self, rows: np.ndarray) -> np.ndarray:
        """Scaled features of the pixels at the sorted flat (row-major) indices ``rows``, in
        memory: each block holding some of them is read once."""
        from dask import delayed

        from ._dask import _compute

        rows = np.asarray(rows, dtype=np.int64)
        r, c = np.divmod(rows, self.width)
        r_off = np.concatenate([[0], np.cumsum(self.arr.chunks[0])])
        c_off = np.concatenate([[0], np.cumsum(self.arr.chunks[1])])
        bi = np.searchsorted(r_off, r, side="right") - 1
        bj = np.searchsorted(c_off, c, side="right") - 1
        grid = self.arr.to_delayed().reshape(len(r_off) - 1, len(c_off) - 1)
        block_of = bi * grid.shape[1] + bj
        order = np.argsort(block_of, kind="stable")
        ids, starts = np.unique(block_of[order], return_index=True)
        groups = np.split(order, starts[1:])
        fn = delayed(_gather, pure=True)
        tasks = [
            fn(
                grid[b // grid.shape[1], b % grid.shape[1]],
                r[g] - r_off[bi[g[0]]],
                c[g] - c_off[bj[g[0]]],
            )
            for b, g in zip(ids, groups, strict=True)
        ]
        parts = _compute(tasks, "the fitted pixel sample")
        pix = np.empty((rows.size, self.channels), dtype=self.arr.dtype)
        for g, values in zip(groups, parts, strict=True):
            pix[g] = np.asarray(values).reshape(g.size, self.channels)
        X = _raw_features(pix, self.top, self.groups, lambda: (r, c))
        X -= self.offset
        X /= self.scale
        return X

    def feature_rows(self) -> Any:
        """Lazy scaled features of every pixel, shape (n_pixels, n_features), in block order
        with one row chunk per image block (see :func:`bayesgmm._dask.rows_from_blocks`)."""
        import functools

        from ._dask import rows_from_blocks

        fn = functools.partial(_block_features, self.top, self.groups, self.offset, self.scale)
        return rows_from_blocks(
            self.arr, fn, n_cols=len(self.names), dtype=np.float64, label="pixel-features"
        )

    def to_image(self, flat: Any, label: str) -> Any:
        """Per-pixel values in block order back to a lazy map chunked like the image."""
        from ._dask import blocks_from_rows

        return blocks_from_rows(flat, self.arr, label=label)


def image_features(
    image: ArrayLike,
    features: str | Sequence[str] = ("intensity",),
    *,
    position_weight: float = 1.0,
) -> tuple[np.ndarray, PixelFeatures]:
    """Pixel features of an image, scaled as described in :mod:`bayesgmm.segmentation`.

    Parameters
    ----------
    image : array-like of shape (H, W) or (H, W, 3)
        Grayscale or RGB; uint8, uint16 or float.
    features : str or sequence of {"intensity", "color", "position"}, default ("intensity",)
        ``"intensity"`` is the Rec. 601 luma of RGB pixels (the value itself for grayscale);
        ``"color"`` the three RGB channels (the intensity for a grayscale image);
        ``"position"`` the row and column coordinates.
    position_weight : float, default=1.0
        Multiplies the standardised position columns.

    Returns
    -------
    X : ndarray of shape (H * W, n_features)
        One row per pixel, row-major (float64, 8 bytes per pixel and feature:
        :func:`~bayesgmm.segment_image` never builds this whole array).
    scaler : PixelFeatures
    """
    if _is_lazy_image(image):
        raise TypeError(
            "image_features builds every pixel's features in memory; for a Dask or zarr image "
            "segment_image computes them block by block (or pass image.compute())."
        )
    pixels, scaler = _pixels(image, features, position_weight)
    return pixels.features(slice(None)), scaler


#: The per-pixel maps of a :class:`SegmentationResult`, as saved.
MAP_NAMES = (
    "labels",
    "probabilities",
    "label_probability",
    "uncertainty_total",
    "uncertainty_aleatoric",
    "uncertainty_epistemic",
    "interval_width",
)
#: Attributes that mark a zarr store of maps written by :meth:`SegmentationResult.to_zarr`.
_MAPS_STORE_ATTRS = {"written_by": "bayesgmm", "content": "segmentation maps"}


def _block_label_sums(k: int, labels: np.ndarray, *values: np.ndarray):
    """Pixels per label and, for each map in ``values``, its sum over each label's pixels."""
    lab = np.asarray(labels).ravel()
    counts = np.bincount(lab, minlength=k)
    return counts, [np.bincount(lab, weights=np.asarray(v).ravel(), minlength=k) for v in values]


def _label_sums(labels: Any, values: list[Any], k: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """:func:`_block_label_sums` over a whole label map, chunk by chunk (image blocks for a
    Dask map, added in block order; :data:`CHUNK_PIXELS` flat pixels for a NumPy map)."""
    from ._dask import is_dask_collection

    if is_dask_collection(labels):
        from dask import delayed

        from ._dask import _compute

        fn = delayed(_block_label_sums, pure=True)
        blocks = [a.to_delayed().ravel() for a in (labels, *values)]
        parts = _compute([fn(k, *b) for b in zip(*blocks, strict=True)], "the summary")
    else:
        # bincount works on intp labels and float64 weights, 16 bytes per pixel at once.
        lab, flats = labels.ravel(), [v.ravel() for v in values]
        step = max(1, int(CHUNK_PIXELS))
        parts = [
            _block_label_sums(k, lab[c], *(f[c] for f in flats))
            for c in (slice(lo, lo + step) for lo in range(0, lab.size, step))
        ]
    counts = sum(p[0] for p in parts)
    sums = [sum(p[1][i] for p in parts) for i in range(len(values))]
    return counts, sums


def _regular_chunks(arr: Any) -> Any:
    """Rechunk a Dask array whose chunks zarr cannot store (uneven inside an axis)."""
    if all(len(set(c[:-1])) <= 1 and c[-1] <= c[0] for c in arr.chunks):
        return arr
    return arr.rechunk(tuple(max(c) for c in arr.chunks))


def _check_maps_target(path: Any, overwrite: bool) -> None:
    """Refuse to write maps where they would replace what bayesgmm did not write."""
    import json

    shown = str(path)
    if path.is_symlink():
        raise FileExistsError(
            f"{shown!r} is a symbolic link; bayesgmm writes its maps only to a new path or "
            "over a maps store it wrote. Choose another path."
        )
    if not path.exists():
        return
    attrs = None
    if path.is_dir():
        try:
            meta = json.loads((path / "zarr.json").read_text())
            attrs = meta.get("attributes", {})
        except (OSError, ValueError, AttributeError):
            attrs = None
    ours = isinstance(attrs, dict) and all(
        attrs.get(key) == value for key, value in _MAPS_STORE_ATTRS.items()
    )
    if not ours:
        raise FileExistsError(
            f"{shown!r} already exists and is not a maps store bayesgmm wrote; bayesgmm never "
            "replaces it. Choose another path."
        )
    foreign = sorted({p.name for p in path.iterdir()} - {"zarr.json", "fit_pixels", *MAP_NAMES})
    if foreign:
        raise FileExistsError(
            f"{shown!r} is a maps store bayesgmm wrote but also holds {', '.join(foreign[:5])}; "
            "bayesgmm does not replace it. Move those out or choose another path."
        )
    if not overwrite:
        raise FileExistsError(
            f"{shown!r} already holds maps bayesgmm wrote; pass overwrite=True to replace them, "
            "or choose another path."
        )


class _lock:
    """An exclusive advisory lock on a directory while a store is renamed into it."""

    def __init__(self, directory: Any) -> None:
        self.directory = directory
        self.fd: int | None = None

    def __enter__(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: the rename is the only guard
            return
        self.fd = os.open(self.directory, os.O_RDONLY)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the lock


@dataclass
class SegmentationResult:
    """Label map, membership probabilities and uncertainty maps of one segmented image.

    Maps have the image's height and width. When the image was a Dask or zarr array they are
    lazy Dask arrays chunked like it (``lazy`` is True): compute several together
    (``dask.compute(result.labels, result.uncertainty_total)``) or write them all with
    :meth:`~bayesgmm.SegmentationResult.to_zarr`, so that each block's features are
    computed once; :meth:`~bayesgmm.SegmentationResult.preview` gives NumPy maps of every
    ``step``-th pixel for figures. Entropies are in nats (at most ``log K``). Maps use
    compact dtypes, about ``4 K + 13`` bytes per pixel for EM (``4 K + 21`` Bayesian):
    labels the smallest unsigned integer that holds ``K - 1`` (uint8 up to 256 segments),
    every other map float32 (computed in float64 and rounded once when stored: relative error
    at most 2**-24, 6e-8).

    Attributes
    ----------
    image : ndarray or dask.array.Array
        The input image as given (validated; the caller's own array, not a copy, when it is
        C-contiguous), in its own dtype: ``as_image(result.image)`` gives it as float on
        [0, 1] for uint8 and uint16 images. For a Dask or zarr image, the Dask array read
        (the colour axis in one chunk).
    labels : ndarray of unsigned int, shape (H, W)
        Most probable component of every pixel (decided in float64).
    probabilities : ndarray of float32, shape (H, W, K)
        Membership probabilities (posterior means for ``method="bayes"``).
    label_probability : ndarray of shape (H, W)
        Probability of the assigned label.
    uncertainty_total, uncertainty_aleatoric, uncertainty_epistemic : ndarray of shape (H, W)
        Total = entropy of ``probabilities``; aleatoric = expected per-draw entropy;
        epistemic = their difference (zero for EM).
    interval_width : ndarray of shape (H, W) or None
        Width of the ``interval`` posterior interval of the assigned label's probability
        (``method="bayes"`` only).
    method : str
    features : PixelFeatures
        The feature map, with the scaling used.
    estimator : EMGaussianMixture or BayesGaussianMixture
        The fitted mixture (on scaled features).
    fit_pixels : ndarray of int
        Flat (row-major) indices of the pixels the mixture was fitted to.
    n_map_draws : int or None
        Posterior draws behind the Bayesian maps.
    interval : float or None
    timings : dict
        Seconds spent on ``features``, ``fit`` and ``maps`` (for lazy maps, building their
        graph: they are computed when asked for).
    spatial : str or None
        The spatial prior (``"potts"``), or None for independent pixels.
    beta : float or None
        Strength of the Potts prior used (estimated or given).
    preview_step : int
        1, or for a :meth:`~bayesgmm.SegmentationResult.preview` the step between the
        image's pixels that the maps show.
    full_shape : tuple of int or None
        For a :meth:`~bayesgmm.SegmentationResult.preview`, the (height, width) of the whole
        image.
    """

    image: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray
    label_probability: np.ndarray
    uncertainty_total: np.ndarray
    uncertainty_aleatoric: np.ndarray
    uncertainty_epistemic: np.ndarray
    interval_width: np.ndarray | None
    method: str
    features: PixelFeatures
    estimator: Any
    fit_pixels: np.ndarray
    n_map_draws: int | None = None
    interval: float | None = None
    timings: dict[str, float] = field(default_factory=dict)
    spatial: str | None = None
    beta: float | None = None
    preview_step: int = 1
    full_shape: tuple[int, int] | None = None

    @property
    def n_components(self) -> int:
        """Number of segments (mixture components)."""
        return self.probabilities.shape[-1]

    @property
    def lazy(self) -> bool:
        """Whether the maps are lazy Dask arrays (the image was a Dask or zarr array)."""
        from ._dask import is_dask_collection

        return is_dask_collection(self.labels)

    @property
    def n_pixels(self) -> int:
        """Pixels of the segmented image (of the whole image for a preview)."""
        h, w = self.full_shape if self.full_shape is not None else self.labels.shape
        return int(h) * int(w)

    #: Set by ``preview``: the summary of the whole image the preview was made from.
    _full_summary = None

    def _maps(self) -> dict[str, Any]:
        maps = {name: getattr(self, name) for name in MAP_NAMES}
        if maps["interval_width"] is None:
            del maps["interval_width"]
        return maps

    def component_means(self) -> pd.DataFrame:
        """Fitted component means in image units (e.g. RGB in [0, 1], pixels), with weights
        (posterior means for ``method="bayes"``; with the spatial prior, the label shares)."""
        if self.method == "bayes":
            post = self.estimator.idata_["posterior"]
            means = post["means"].mean(("chain", "draw")).values
            weights = post["weights"].mean(("chain", "draw")).values
            if self.spatial is not None:  # the Potts field model leaves weights to their prior
                weights = self.probabilities.reshape(-1, self.n_components).mean(
                    axis=0, dtype=np.float64
                )
        else:
            means, weights = self.estimator.means_, self.estimator.weights_
        frame = pd.DataFrame(self.features.to_raw(means), columns=self.features.names)
        frame.insert(0, "weight", weights)
        frame.index.name = "component"
        return frame

    def summary(self) -> pd.DataFrame:
        """Per segment: share of pixels, mean probability of the label, mean uncertainties.

        For lazy maps this reads every map once, block by block (sums combined in block
        order). The summary of a :meth:`~bayesgmm.SegmentationResult.preview` is that of
        the whole image when the preview was made from it, else of the preview's pixels.
        """
        if self._full_summary is not None:
            return self._full_summary.copy()
        k = self.n_components
        values = [self.label_probability, self.uncertainty_total, self.uncertainty_epistemic]
        if self.interval_width is not None:
            values.append(self.interval_width)
        counts, sums = _label_sums(self.labels, values, k)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = [s / counts for s in sums]
        cols = {
            "pixel_share": counts / counts.sum(),
            "mean_label_probability": means[0],
            "mean_total_uncertainty": means[1],
            "mean_epistemic_uncertainty": means[2],
        }
        if self.interval_width is not None:
            cols["mean_interval_width"] = means[3]
        frame = pd.DataFrame(cols)
        frame.index.name = "component"
        return frame

    def preview(self, step: int, *, whole_summary: bool = True) -> SegmentationResult:
        """Every ``step``-th pixel of the image and of every map, in memory.

        For figures and reports of an image too large to draw (``plot_segmentation`` and
        ``write_report`` take the preview; they say that it is one). Lazy maps are computed
        together, block by block, keeping only the strided pixels. ``fit_pixels`` still
        index the whole image, and ``n_pixels`` counts it.

        Parameters
        ----------
        step : int
            Keep rows and columns ``0, step, 2 step, ...``.
        whole_summary : bool, default=True
            Compute the summary on the whole maps first (one more pass over them), so the
            preview's summary is the whole image's.

        Returns
        -------
        SegmentationResult
            With NumPy maps; ``preview_step`` and ``full_shape`` say what it shows.
        """
        check_positive("step", step, integer=True)
        full = self.summary() if whole_summary else None
        keep = (slice(None, None, step), slice(None, None, step))
        arrays = {"image": self.image, **self._maps()}
        shown = {name: a[keep] for name, a in arrays.items()}
        if self.lazy:
            from ._dask import _compute

            shown = dict(zip(shown, _compute(list(shown.values()), "the preview"), strict=True))
        out = replace(
            self,
            **{name: np.ascontiguousarray(a) for name, a in shown.items()},
            preview_step=self.preview_step * int(step),
            full_shape=tuple(int(v) for v in self.full_shape or self.labels.shape),
        )
        out._full_summary = full
        return out

    def to_zarr(self, path: str | os.PathLike, *, overwrite: bool = False) -> SegmentationResult:
        """Write the maps to a zarr store (a directory), block by block, and open them.

        Lazy maps are computed together, so every image block's features and probabilities
        are computed once, and stored as they come: nothing of the size of the image is held
        in memory. Maps in memory are written too. The store holds one array per map (the
        dtypes of the class, chunked like the image; ``probabilities`` with the components
        in one chunk) and ``fit_pixels``; its attributes record the method, the feature
        scaling and who wrote it. The store is written under a temporary name beside
        ``path`` and renamed into place when complete.

        Parameters
        ----------
        path : str or path-like
            The store to create, e.g. ``"maps.zarr"``.
        overwrite : bool, default=False
            Replace ``path`` if it is a maps store that bayesgmm wrote and holds nothing
            else. Anything else at ``path`` is never replaced.

        Returns
        -------
        SegmentationResult
            This result with its maps read lazily from the store (Dask arrays).

        Raises
        ------
        FileExistsError
            If ``path`` exists and is not a bayesgmm maps store that may be replaced.
        """
        import shutil
        import tempfile
        from pathlib import Path

        import dask.array as da
        import zarr

        from ._dask import _compute
        from ._version import __version__

        path = Path(path)
        _check_maps_target(path, overwrite)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(
            tempfile.mkdtemp(
                prefix=f".{path.name}.bayesgmm-{os.getpid()}-", suffix=".tmp", dir=path.parent
            )
        )
        try:
            group = zarr.open_group(str(tmp), mode="w")
            group.attrs.update(
                {
                    **_MAPS_STORE_ATTRS,
                    "bayesgmm_version": __version__,
                    "method": self.method,
                    "n_components": int(self.n_components),
                    "image_shape": [int(v) for v in self.image.shape],
                    "features": list(self.features.names),
                    "feature_offset": [float(v) for v in self.features.offset],
                    "feature_scale": [float(v) for v in self.features.scale],
                    "position_weight": float(self.features.position_weight),
                    "n_map_draws": self.n_map_draws,
                    "interval": self.interval,
                    "spatial": self.spatial,
                    "beta": self.beta,
                    "preview_step": int(self.preview_step),
                }
            )
            group.create_array("fit_pixels", data=np.asarray(self.fit_pixels, dtype=np.int64))
            stores = []
            for name, values in self._maps().items():
                if not self.lazy:
                    values = da.from_array(values, chunks=(1024, 1024, -1)[: values.ndim])
                stores.append(
                    da.to_zarr(_regular_chunks(values), str(tmp), component=name, compute=False)
                )
            _compute(stores, "the maps")
            with _lock(path.parent):
                _check_maps_target(path, overwrite)
                if path.exists():
                    old = path.with_name(f".{path.name}.bayesgmm-{os.getpid()}-old.tmp")
                    path.rename(old)
                    tmp.rename(path)
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    tmp.rename(path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return self._from_store(path)

    def _from_store(self, path: os.PathLike) -> SegmentationResult:
        import dask.array as da

        maps = {name: da.from_zarr(str(path), component=name) for name in self._maps()}
        return replace(self, **maps)

    def to_npz(self, path: str | os.PathLike, *, warn_bytes: int = LARGE_OUTPUT_BYTES) -> None:
        """Save every map (and the fitted pixel indices) to a compressed ``.npz`` file.

        The maps keep their compact dtypes (see the class); compression is lossless. Logs a
        warning first when the maps hold more than ``warn_bytes`` bytes (default 1 GB)
        before compression.

        Parameters
        ----------
        path : str or path-like
        warn_bytes : int, default=10**9
            Size of the maps above which a warning is logged before writing.
        """
        if self.lazy:
            raise TypeError(
                "the maps are lazy Dask arrays (the image was a Dask or zarr array) and an "
                ".npz file holds arrays in memory; write them with result.to_zarr(path)."
            )
        arrays = {
            "labels": self.labels,
            "probabilities": self.probabilities,
            "label_probability": self.label_probability,
            "uncertainty_total": self.uncertainty_total,
            "uncertainty_aleatoric": self.uncertainty_aleatoric,
            "uncertainty_epistemic": self.uncertainty_epistemic,
            "fit_pixels": self.fit_pixels,
        }
        if self.interval_width is not None:
            arrays["interval_width"] = self.interval_width
        size = sum(a.nbytes for a in arrays.values())
        if size > warn_bytes:
            h, w = self.labels.shape
            _log.warning(
                "writing %.2f GB of maps (%d x %d pixels x %d segments, before compression) to "
                "%s; segment a smaller or downscaled image if that is more than you need.",
                size / 1e9,
                w,
                h,
                self.n_components,
                os.path.basename(os.fspath(path)),
            )
        np.savez_compressed(path, **arrays)


class _Maps:
    """The compact output maps of :func:`segment_image`, filled chunk by chunk."""

    def __init__(self, n: int, k: int, *, bayes: bool) -> None:
        f32 = np.float32
        self.labels = np.empty(n, dtype=np.min_scalar_type(k - 1))
        self.probabilities = np.empty((n, k), dtype=f32)
        self.label_probability = np.empty(n, dtype=f32)
        self.total = np.empty(n, dtype=f32)
        # EM has no parameter uncertainty: aleatoric is total, epistemic zero.
        self.aleatoric = np.empty(n, dtype=f32) if bayes else self.total
        self.epistemic = np.empty(n, dtype=f32) if bayes else np.zeros(n, dtype=f32)
        self.width = np.empty(n, dtype=f32) if bayes else None

    @property
    def nbytes(self) -> int:
        """Bytes of the maps (the EM aleatoric map, which is the total map, counted once)."""
        arrays = {id(a): a for a in vars(self).values() if isinstance(a, np.ndarray)}
        return sum(a.nbytes for a in arrays.values())

    def store(
        self,
        rows: slice,
        prob: np.ndarray,
        labels: np.ndarray,
        total: np.ndarray,
        *,
        aleatoric: np.ndarray | None = None,
        epistemic: np.ndarray | None = None,
        width: np.ndarray | None = None,
    ) -> None:
        """Round one chunk's float64 results into the maps."""
        self.probabilities[rows] = prob
        self.labels[rows] = labels
        self.label_probability[rows] = _at_label(prob, labels)
        self.total[rows] = total
        if aleatoric is not None:
            self.aleatoric[rows] = aleatoric
            self.epistemic[rows] = epistemic
            self.width[rows] = width


def _checked_max_draws(max_draws: int, n_map_draws: int | None) -> int:
    """``max_draws``, or the deprecated ``n_map_draws`` when given (with a warning), checked."""
    if n_map_draws is not None:
        warnings.warn(
            "n_map_draws is deprecated; use max_draws (the same number: posterior draws, "
            "evenly thinned, behind the maps).",
            BayesGMMDeprecationWarning,
            stacklevel=3,
        )
        max_draws = n_map_draws
    check_positive("max_draws", max_draws, integer=True)
    return max_draws


def segment_image(
    image: ArrayLike,
    n_components: int,
    *,
    features: str | Sequence[str] = ("intensity",),
    method: Literal["em", "bayes"] = "em",
    n_fit_pixels: int | None = None,
    max_draws: int = 200,
    position_weight: float = 1.0,
    interval: float = 0.89,
    spatial: Literal["potts"] | None = None,
    beta: float | None = None,
    random_state: int | np.random.RandomState | None = None,
    n_map_draws: int | None = None,
    **estimator_options: Any,
) -> SegmentationResult:
    """Segment an image with a Gaussian mixture and map where its labels are uncertain.

    Parameters
    ----------
    image : array-like of shape (H, W) or (H, W, 3)
        Grayscale or RGB image, uint8, uint16 or float. A Dask array (also backed by an
        xarray ``DataArray``), a zarr array or the path of a ``.zarr`` store holding one is
        segmented block by block without being loaded, and the maps are lazy Dask arrays
        chunked like it (see "Images larger than memory" in :mod:`bayesgmm.segmentation`).
    n_components : int
        Number of segments (mixture components).
    features : str or sequence, default ("intensity",)
        Pixel features: ``("intensity",)``, ``("color",)``, ``("color", "position")``, or
        ``("intensity", "position")``; scaling as in :mod:`bayesgmm.segmentation`.
    method : {"em", "bayes"}, default "em"
        :class:`~bayesgmm.EMGaussianMixture`, or :class:`~bayesgmm.BayesGaussianMixture`
        (NUTS started from EM) with posterior uncertainty maps.
    n_fit_pixels : int, optional
        Pixels (a uniform random subsample without replacement) the mixture is fitted to;
        default 50 000 for EM and 5 000 for the Bayesian fit, or all pixels if fewer. With
        ``spatial="potts"`` and ``method="bayes"`` the Potts EM before NUTS fits as many
        pixels as EM would (at least 50 000), and NUTS ``n_fit_pixels`` of those.
    max_draws : int, default=200
        Posterior draws (evenly thinned) behind the Bayesian maps; ``result.n_map_draws`` says
        how many were used. With ``spatial="potts"`` each draw costs one mean-field run over
        all pixels (a data term and a few sweeps).
    position_weight : float, default=1.0
        Weight of the standardised position features relative to colour.
    interval : float, default=0.89
        Mass of the posterior interval whose width is mapped (``method="bayes"``).
    spatial : {"potts"} or None, default None
        None treats pixels as independent. ``"potts"`` adds a Potts (hidden Markov random
        field) prior on the labels, 4-neighbour, fitted by mean-field EM started from the
        independent-pixel fit (see :mod:`bayesgmm._spatial`): neighbouring pixels tend to
        share a label, which removes most noise-driven label flips. Needs an image in memory
        (refused for a Dask image) and about ``8 K`` more bytes per pixel while it runs.
        With ``method="bayes"``, after the Potts EM: NUTS samples the component parameters
        of the fitted pixels with each pixel's label prior ``softmax_k(beta s_ik)``, ``s_ik``
        the sum of its 4 neighbours' Potts EM probabilities of label ``k``
        (:func:`bayesgmm._spatial.potts_field_model`; chains start from the Potts EM
        solution and are not relabelled, the field pins the labels, unless ``relabel=`` is
        passed); then for each map draw the mean-field label probabilities of all pixels are
        iterated from the Potts EM's at its ``beta`` until they settle
        (:func:`bayesgmm._spatial.potts_draw_maps`). ``probabilities`` is their mean over the
        draws; aleatoric is the mean of the draws' entropies, epistemic the rest of the
        total; ``interval_width`` spans the draws' probabilities of the label. That needs
        ``16 K + 8 m K`` bytes per pixel more, ``m = floor((S - 1)(1 - interval) / 2) + 2``
        for ``S`` draws (``m = 12`` for 200 draws at 0.89). The sampled ``weights`` follow
        their prior (the Potts prior has no per-label field); ``component_means`` reports
        the label shares. Meant for colour or intensity features: the prior
        has no mixing weights, and with ``"position"`` features, whose components differ
        widely in spread, it was measured to lower the accuracy (ARI 0.99 to 0.93 on the
        colour regions image at noise 0.06).
    beta : float, optional
        Strength of the Potts prior (``>= 0``; 0 is the independent-pixel model) when
        ``spatial="potts"``; by default estimated from the image by maximising the
        mean-field pseudo-likelihood (``result.beta`` reports it).
    random_state : int, RandomState or None
        Seeds the pixel subsample and the estimator.
    n_map_draws : int, optional
        Deprecated name of ``max_draws`` (the cap on posterior draws is ``max_draws`` in
        every function, as in :meth:`~bayesgmm.BayesGaussianMixture.membership`).
    **estimator_options
        Passed to the estimator, e.g. ``covariance_type``, ``n_init``, ``draws``, ``chains``,
        ``progressbar``.

    Returns
    -------
    SegmentationResult

    Examples
    --------
    >>> from bayesgmm.datasets import make_regions_image
    >>> image, truth = make_regions_image((48, 48), random_state=0)
    >>> result = segment_image(image, 3, random_state=0)
    >>> result.labels.shape, result.uncertainty_total.shape
    ((48, 48), (48, 48))
    """
    from .em import EMGaussianMixture

    if method not in ("em", "bayes"):
        raise ValueError(f"method={method!r} is invalid; use 'em' or 'bayes'.")
    if spatial not in (None, "potts"):
        raise ValueError(f"spatial={spatial!r} is invalid; use None or 'potts'.")
    if beta is not None:
        if spatial is None:
            raise ValueError("beta is the strength of the spatial prior; pass spatial='potts'.")
        if not (np.isscalar(beta) and np.isfinite(beta) and beta >= 0):
            raise ValueError(f"beta={beta!r} is invalid; it must be a finite number >= 0.")
    if "n_components" in estimator_options or "random_state" in estimator_options:
        raise TypeError("pass n_components and random_state as segment_image's own arguments.")
    lazy = _is_lazy_image(image)
    if lazy and spatial is not None:
        raise ValueError(
            f"spatial={spatial!r}: the spatial prior needs the image in memory (its mean-field "
            "EM updates every pixel from its neighbours at each iteration); segment this Dask "
            "or zarr image with spatial=None, or pass a NumPy image (e.g. a crop or a "
            "downscaled copy, image[::4, ::4].compute())."
        )
    t0 = time.perf_counter()
    pixels, scaler = _pixels(image, features, position_weight)
    n_pixels = pixels.n
    h, w = pixels.arr.shape[:2]
    k = check_n_components(n_components, n_pixels)
    if n_fit_pixels is None:
        n_fit_pixels = _DEFAULT_FIT_PIXELS[method]
    check_positive("n_fit_pixels", n_fit_pixels, integer=True)
    if n_fit_pixels < k:
        raise ValueError(f"n_fit_pixels={n_fit_pixels} is fewer than n_components={k}.")
    max_draws = _checked_max_draws(max_draws, n_map_draws)
    if not 0.0 < interval < 1.0:
        raise ValueError(f"interval={interval!r} is invalid; it must lie strictly in (0, 1).")
    rng = check_random_state(random_state)
    seed = int(rng.randint(2**31 - 1))
    spatial_bayes = spatial is not None and method == "bayes"
    # With spatial="potts" and method="bayes", the Potts EM (beta, the field) runs on as many
    # pixels as EM would fit (em_idx) and NUTS on n_fit_pixels of them: measured on the
    # phantom (noise 0.05), a Potts EM on 5 000 of its 16 384 pixels gave ARI 0.96 and
    # ECE 0.025, on all of them 0.98 to 0.99 and 0.004 to 0.011.
    n_em = max(n_fit_pixels, _DEFAULT_FIT_PIXELS["em"]) if spatial_bayes else n_fit_pixels
    em_idx = _sample_pixels(n_pixels, n_em, rng)
    fit_idx = em_idx
    if spatial_bayes and n_fit_pixels < em_idx.size:
        fit_idx = np.sort(rng.choice(em_idx, size=n_fit_pixels, replace=False))
    timings = {"features": time.perf_counter() - t0}

    t0 = time.perf_counter()
    # Named columns: the estimators, their diagnostics and posteriors say "red", "row", ...
    frame = pd.DataFrame(pixels.features(fit_idx), columns=scaler.names, copy=False)
    em_frame = frame
    if em_idx is not fit_idx:
        em_frame = pd.DataFrame(pixels.features(em_idx), columns=scaler.names, copy=False)
    if method == "em":
        cls = EMGaussianMixture
    else:  # imports PyMC: only when needed
        from .bayes import BayesGaussianMixture as cls
    _log.info(
        "fitting %s with %d components to %d of %d pixels (%s)",
        cls.__name__,
        k,
        fit_idx.size,
        n_pixels,
        ", ".join(scaler.names),
    )
    start = frame
    options = estimator_options
    if spatial == "potts":
        # Start from the mixture of locally averaged features (3 x 3 mean filter): with the
        # noise cut three-fold, EM finds the regions rather than splitting the noise of the
        # largest one; the Potts EM below then refits every parameter on the raw features.
        start = pd.DataFrame(_smoothed_features(pixels, em_idx), columns=scaler.names)
        if method == "bayes":  # the Potts EM first; NUTS starts from its solution below
            cls = EMGaussianMixture
            options = {
                key: estimator_options[key]
                for key in ("covariance_type", "n_init")
                if key in estimator_options
            }
    est = cls(k, random_state=seed, **options).fit(start)
    potts = None
    if spatial == "potts":
        from ._spatial import potts_em

        all_features = _all_features(pixels)
        potts = potts_em(all_features, (h, w), em_frame.to_numpy(), em_idx, est, beta=beta)
        _log.info(
            "Potts prior: beta %.3f, %d mean-field EM iterations%s",
            potts.beta,
            potts.n_iter,
            "" if potts.converged else " (not converged)",
        )
        if not potts.converged:
            from .exceptions import ConvergenceWarning

            warnings.warn(
                f"the Potts mean-field EM did not converge in {potts.n_iter} iterations "
                f"(beta {potts.beta:.3f}); the maps are from the last iteration. Fix beta= "
                "(e.g. to this value) or check the number of segments.",
                ConvergenceWarning,
                stacklevel=2,
            )
        est = _with_params(est, potts)
        if method == "bayes":
            from ._spatial import field_log_prior, potts_field_model
            from .bayes import BayesGaussianMixture

            # The posterior of the component parameters on the fitted pixels, each pixel's
            # label prior the Potts field of its neighbours' q; chains started from the Potts
            # EM solution. The field pins the labels: no relabelling unless asked for.
            log_field = field_log_prior(potts.q, fit_idx, potts.beta)
            options = {"relabel": None, **estimator_options}
            est = BayesGaussianMixture(
                k, random_state=seed, model=potts_field_model(log_field), **options
            ).fit(frame, em_start=est)
    timings["fit"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if lazy:
        fields, used_draws = _lazy_maps(pixels, est, k, method, max_draws, interval)
        timings["maps"] = time.perf_counter() - t0  # building the graph: nothing computed
        return SegmentationResult(
            image=pixels.arr,
            **fields,
            method=method,
            features=scaler,
            estimator=est,
            fit_pixels=fit_idx,
            n_map_draws=used_draws,
            interval=interval if method == "bayes" else None,
            timings=timings,
        )
    maps = _Maps(n_pixels, k, bayes=method == "bayes")
    _log.info(
        "computing the maps of %d pixels%s (%.2f GB)",
        n_pixels,
        f" from up to {max_draws} posterior draws" if method == "bayes" else "",
        maps.nbytes / 1e9,
    )
    used_draws = None
    if method == "bayes":
        from .bayes import _thin
        from .responsibilities import summarize_responsibilities

        draws = _thin(max_draws, *est._draws())
        used_draws = int(draws[0].shape[0])
        if potts is not None:
            from ._spatial import potts_draw_maps

            potts_maps = potts_draw_maps(
                all_features,
                (h, w),
                *draws[1:],
                est.covariance_type,
                potts.q,
                potts.beta,
                interval=interval,
            )
            all_features = None  # frees the cached features
    # Chunk by chunk: memory is the compact maps plus one chunk's float64 work arrays.
    for rows in pixels.chunks():
        if method == "em":
            if potts is not None:
                prob = potts.q.reshape(n_pixels, k)[rows].astype(np.float64)
            else:
                X = pixels.features(rows)
                prob = est.predict_proba(pd.DataFrame(X, columns=scaler.names, copy=False))
            labels = prob.argmax(axis=1)
            maps.store(rows, prob, labels, _entropy(prob))
            continue
        if potts is not None:  # each draw's mean-field map, summarised
            prob = potts_maps.mean[rows]
            labels = prob.argmax(axis=1)
            total = _entropy(prob)
            aleatoric = potts_maps.aleatoric[rows]
            epistemic = np.maximum(total - aleatoric, 0.0)
            width = potts_maps.upper[rows] - potts_maps.lower[rows]
        else:
            s = summarize_responsibilities(
                pixels.features(rows),
                *draws,
                est.covariance_type,
                interval=interval,
                intervals="label",
            )
            prob, labels, total = s.mean, s.labels, s.entropy_total
            aleatoric, epistemic = s.entropy_aleatoric, s.entropy_epistemic
            width = _label_width(s.upper, s.lower, s.labels)
        maps.store(rows, prob, labels, total, aleatoric=aleatoric, epistemic=epistemic, width=width)
    timings["maps"] = time.perf_counter() - t0
    return SegmentationResult(
        image=pixels.arr,
        labels=maps.labels.reshape(h, w),
        probabilities=maps.probabilities.reshape(h, w, k),
        label_probability=maps.label_probability.reshape(h, w),
        uncertainty_total=maps.total.reshape(h, w),
        uncertainty_aleatoric=maps.aleatoric.reshape(h, w),
        uncertainty_epistemic=maps.epistemic.reshape(h, w),
        interval_width=None if maps.width is None else maps.width.reshape(h, w),
        method=method,
        features=scaler,
        estimator=est,
        fit_pixels=fit_idx,
        n_map_draws=used_draws,
        interval=interval if method == "bayes" else None,
        timings=timings,
        spatial=spatial,
        beta=None if potts is None else potts.beta,
    )


def _lazy_maps(
    pixels: _DaskPixels, est: Any, k: int, method: str, max_draws: int, interval: float
) -> tuple[dict[str, Any], int | None]:
    """The maps of a Dask image as lazy Dask arrays chunked like the image.

    The same computations as the in-memory loop of :func:`segment_image`, per image block:
    EM's ``predict_proba`` and the Bayesian membership summary go through the estimators'
    own Dask paths on the lazy feature rows (one row chunk per block), then back to blocks.
    """
    import dask.array as da

    X = pixels.feature_rows()
    ltype = np.min_scalar_type(k - 1)
    used_draws = None
    if method == "em":
        prob = est.predict_proba(X)
        labels = prob.argmax(axis=1)
        total = prob.map_blocks(_entropy, drop_axis=1, dtype=np.float64)
        aleatoric = epistemic = width = None
    else:
        s = est.membership(X, interval=interval, max_draws=max_draws, intervals="label")
        used_draws = int(s.n_draws)
        prob, labels, total = s.mean, s.labels, s.entropy_total
        aleatoric, epistemic = s.entropy_aleatoric, s.entropy_epistemic
        width = da.blockwise(
            _label_width,
            "i",
            s.upper,
            "ij",
            s.lower,
            "ij",
            labels,
            "i",
            dtype=np.float64,
            concatenate=True,
        )
    label_probability = da.blockwise(
        _at_label, "i", prob, "ij", labels, "i", dtype=np.float64, concatenate=True
    )
    f32 = np.float32

    def image(flat: Any, name: str) -> Any:
        return pixels.to_image(flat, f"segment-{name}")

    fields = {
        "labels": image(labels.astype(ltype), "labels"),
        "probabilities": image(prob.astype(f32), "probabilities"),
        "label_probability": image(label_probability.astype(f32), "label-probability"),
        "uncertainty_total": image(total.astype(f32), "uncertainty-total"),
    }
    if method == "em":  # as in memory: aleatoric is total, epistemic zero
        fields["uncertainty_aleatoric"] = fields["uncertainty_total"]
        fields["uncertainty_epistemic"] = da.zeros_like(fields["uncertainty_total"])
        fields["interval_width"] = None
    else:
        fields["uncertainty_aleatoric"] = image(aleatoric.astype(f32), "uncertainty-aleatoric")
        fields["uncertainty_epistemic"] = image(epistemic.astype(f32), "uncertainty-epistemic")
        fields["interval_width"] = image(width.astype(f32), "interval-width")
    return fields, used_draws


def _all_features(pixels: _Pixels) -> Callable[[], Any]:
    """``all_features()`` yields ``(rows, X)``, every pixel's scaled features by chunk, as
    the Potts kernels read them once per sweep or draw: computed once and kept when they fit
    in :data:`SPATIAL_CACHE_BYTES`, else chunk by chunk at each call."""
    cached = None
    if pixels.n * len(pixels.names) * 8 <= SPATIAL_CACHE_BYTES:
        cached = pixels.features(slice(None))

    def all_features():
        for rows in pixels.chunks():
            yield rows, (pixels.features(rows) if cached is None else cached[rows])

    return all_features


def _sample_pixels(n_pixels: int, size: int, rng: np.random.RandomState) -> np.ndarray:
    """Sorted flat indices of ``size`` pixels drawn without replacement (all if fewer)."""
    if size >= n_pixels:
        return np.arange(n_pixels)
    return np.sort(rng.choice(n_pixels, size=size, replace=False))


def _at_label(prob: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each row's probability of its label."""
    return prob[np.arange(labels.size), labels]


def _label_width(upper: np.ndarray, lower: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Width of each row's interval of its label's probability."""
    at = np.arange(labels.size)
    return upper[at, labels] - lower[at, labels]


def _smoothed_features(pixels: _Pixels, idx: np.ndarray) -> np.ndarray:
    """Features of the pixels ``idx`` with the colour/intensity columns averaged over each
    pixel's 3 x 3 neighbourhood (borders reflected); position columns as they are."""
    from scipy.ndimage import uniform_filter

    h, w = pixels.arr.shape[:2]
    d = len(pixels.names)
    full = np.empty((pixels.n, d), dtype=np.float32)
    for rows in pixels.chunks():
        full[rows] = pixels.features(rows)
    full = full.reshape(h, w, d)
    out = pixels.features(idx)
    r, c = np.divmod(idx, w)
    for j, name in enumerate(pixels.names):
        if name not in ("row", "col"):
            out[:, j] = uniform_filter(full[..., j], size=3, mode="reflect")[r, c]
    return out


def _with_params(est: Any, potts: Any) -> Any:
    """A copy of the fitted EM estimator carrying the Potts fit's parameters (weights: the
    label shares), and its ``n_iter_`` and ``converged_``."""
    import copy

    from ._numerics import precisions_from_precisions_cholesky

    out = copy.deepcopy(est)
    out.weights_ = potts.weights
    out.means_ = potts.means
    out.covariances_ = potts.covariances
    out.precisions_cholesky_ = potts.precisions_cholesky
    out.precisions_ = precisions_from_precisions_cholesky(
        potts.precisions_cholesky, est.covariance_type
    )
    out.n_iter_, out.converged_ = potts.n_iter, potts.converged
    return out


#: Bins of the reliability curve and of the expected calibration error.
CALIBRATION_BINS = 15


@dataclass
class CalibrationResult:
    """How well a segmentation's label probabilities match how often its labels are right.

    Attributes
    ----------
    accuracy : float
        Share of pixels whose label, matched to the truth, is the true one.
    ari : float
        Adjusted Rand index of the label map against the truth (invariant to label names).
    ece : float
        Expected calibration error: ``sum_b (n_b / n) |accuracy_b - confidence_b|`` over
        ``n_bins`` equal-width bins of the assigned label's probability.
    curve : DataFrame
        The reliability curve, one row per bin: ``lower``, ``upper``, ``n_pixels``,
        ``confidence`` (mean probability of the label) and ``accuracy`` (NaN for empty bins).
    label_map : ndarray of int, shape (K,)
        The truth label matched to each segment (Hungarian algorithm on the pixel counts;
        -1 for a segment left unmatched when there are more segments than true classes).
    """

    accuracy: float
    ari: float
    ece: float
    curve: pd.DataFrame
    label_map: np.ndarray


def calibration(
    result: SegmentationResult, truth: ArrayLike, *, n_bins: int = CALIBRATION_BINS
) -> CalibrationResult:
    """Accuracy, adjusted Rand index and calibration of a segmentation against a truth map.

    Segments are matched one-to-one to the true classes by the Hungarian algorithm on their
    pixel counts (the matching that maximises the pixels labelled correctly); a pixel counts
    as correct when its segment's matched class is its true class. The confidence of a pixel
    is ``result.label_probability``, the probability of its assigned label; a calibrated map
    is right on 90 % of the pixels it gives probability 0.9. Lazy (Dask) maps are computed:
    the label map and the label probabilities are brought into memory, as for a NumPy image.

    Parameters
    ----------
    result : SegmentationResult
    truth : array-like of int, shape (H, W)
        True class of every pixel (any integer codes).
    n_bins : int, default=15
        Equal-width bins of ``[0, 1]`` for the reliability curve and the ECE.

    Returns
    -------
    CalibrationResult

    Examples
    --------
    >>> from bayesgmm.datasets import make_regions_image
    >>> image, truth = make_regions_image((48, 48), random_state=0)
    >>> cal = calibration(segment_image(image, 3, random_state=0), truth)
    >>> 0.0 <= cal.ece <= 1.0 and cal.accuracy > 0.9
    True
    """
    from scipy.optimize import linear_sum_assignment
    from sklearn.metrics import adjusted_rand_score

    truth = np.asarray(truth)
    if truth.shape != result.labels.shape:
        raise ValueError(
            f"truth has shape {truth.shape}; expected the label map's shape {result.labels.shape}."
        )
    if not np.issubdtype(truth.dtype, np.integer):
        raise TypeError(f"truth has dtype {truth.dtype}; pass integer class codes.")
    check_positive("n_bins", n_bins, integer=True)
    classes, t = np.unique(truth.ravel(), return_inverse=True)
    lab = np.asarray(result.labels).ravel().astype(np.intp)  # (computes lazy maps)
    k = result.n_components
    counts = np.zeros((k, classes.size), dtype=np.int64)
    np.add.at(counts, (lab, t), 1)
    seg, cls = linear_sum_assignment(counts, maximize=True)
    matched = np.full(k, -1, dtype=np.int64)
    matched[seg] = cls
    correct = matched[lab] == t
    conf = np.asarray(result.label_probability).ravel().astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    b = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_bins - 1)
    n_b = np.bincount(b, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf_b = np.bincount(b, weights=conf, minlength=n_bins) / n_b
        acc_b = np.bincount(b, weights=correct, minlength=n_bins) / n_b
    filled = n_b > 0
    ece = float((n_b[filled] * np.abs(acc_b[filled] - conf_b[filled])).sum() / conf.size)
    curve = pd.DataFrame(
        {
            "lower": edges[:-1],
            "upper": edges[1:],
            "n_pixels": n_b,
            "confidence": conf_b,
            "accuracy": acc_b,
        }
    )
    curve.index.name = "bin"
    return CalibrationResult(
        accuracy=float(correct.mean()),
        ari=float(adjusted_rand_score(t, lab)),
        ece=ece,
        curve=curve,
        label_map=np.where(matched >= 0, classes.astype(np.int64)[np.maximum(matched, 0)], -1),
    )
