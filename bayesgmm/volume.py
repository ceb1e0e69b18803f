"""Uncertainty-aware segmentation of volumes: voxel features -> mixture -> 3-D maps.

:func:`~bayesgmm.segment_volume` is :func:`~bayesgmm.segment_image` for (z, y, x) stacks
(a confocal or light-sheet stack, an MRI or CT volume), one value per voxel or several
channels: a Gaussian mixture is fitted to the voxel values and every voxel gets a label,
membership probabilities and uncertainty maps, each of the volume's shape. With
``spatial="potts"`` the labels get a Potts (hidden Markov random field) prior over the 6 face
neighbours of each voxel (two along each axis), fitted by the mean-field EM of
:mod:`bayesgmm._spatial`, as FSL FAST and ANTs Atropos do for brain MRI.

**Features.** The voxel's value, or its channels; integer volumes are read on their full
range (uint8 / 255, uint16 / 65535), float volumes as they are. Each channel is centred and
divided by its own standard deviation over all voxels: the channels of a volume are usually
different stains or contrasts, in units that do not compare (unlike an image's RGB, whose
pooled scale :mod:`bayesgmm.segmentation` keeps). There are no position features.

**Voxel spacing.** The prior counts the 6 neighbours alike, whatever the voxel spacing: a
stack with slices much thicker than its pixels gets as much smoothing across slices as
within them.

**Memory.** Like :func:`~bayesgmm.segment_image`, the mixture is fitted to a subsample of
``n_fit_voxels`` voxels and the maps are computed chunk by chunk, about ``4 K + 13`` bytes
per voxel for EM. The Potts prior needs ``8 K`` to ``12 K`` more bytes per voxel while it
runs (its label probabilities and data term, float32), and the voxel features in float64 when
they fit in 256 MB. Measured on a 256^3 float64 volume with K = 3: a peak of 0.75 GB above
the volume itself (``bench/segment_speed.py --only volume`` times it).
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ._validation import check_n_components, check_positive, check_random_state
from .responsibilities import _entropy
from .segmentation import (
    _DEFAULT_FIT_PIXELS,
    CHUNK_PIXELS,
    LARGE_OUTPUT_BYTES,
    SPATIAL_CACHE_BYTES,
    PixelFeatures,
    SegmentationResult,
    _check_not_constant,
    _checked_max_draws,
    _Maps,
    _with_params,
)

__all__ = ["VolumeSegmentationResult", "plot_volume", "segment_volume"]

_log = logging.getLogger("bayesgmm")


def _check_volume(volume: ArrayLike, channel_axis: int | None) -> tuple[np.ndarray, float | None]:
    """Validate a volume without converting it: C-contiguous (Z, Y, X, C) in its own dtype
    (C = 1 without channels), and the divisor of integer codes (None for float volumes)."""
    arr = np.asarray(volume)
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise TypeError(
            f"volume has dtype {arr.dtype}; pass a numeric array (uint8, uint16 or float)."
        )
    if channel_axis is None:
        if arr.ndim != 3:
            hint = (
                " If the last axis holds channels, pass channel_axis=-1."
                if arr.ndim == 4
                else " For a 2-D image use segment_image."
                if arr.ndim == 2
                else ""
            )
            raise ValueError(
                f"volume has shape {arr.shape}; expected (z, y, x), or (z, y, x, channel) "
                f"with channel_axis given.{hint}"
            )
        arr = arr[..., None]
    else:
        if arr.ndim != 4:
            raise ValueError(
                f"volume has shape {arr.shape}; with channel_axis={channel_axis} expected 4 "
                "axes, (z, y, x) and the channels."
            )
        if not isinstance(channel_axis, int | np.integer) or not -4 <= channel_axis < 4:
            raise ValueError(f"channel_axis={channel_axis!r} is invalid; use an axis of 0..3.")
        arr = np.moveaxis(arr, int(channel_axis), -1)
    if min(arr.shape[1:3]) < 2 or arr.shape[0] < 1:
        raise ValueError(
            f"volume of shape {arr.shape[:3]} (z, y, x) is too small to segment; it needs at "
            "least 2 x 2 voxels per slice."
        )
    arr = np.ascontiguousarray(arr)  # flat voxel rows are then views
    if np.issubdtype(arr.dtype, np.integer):
        top = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(arr.dtype)
        if top is None:
            top = float(max(arr.max(), 1))
        return arr, top
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(
            f"volume has {int(bad.any(axis=-1).sum())} voxel(s) with NaN or infinite values."
        )
    return arr, None


class _Voxels:
    """Feature rows of any set of voxels, computed on demand (never all at once): the
    interface of :class:`bayesgmm.segmentation._Pixels` that the fit and the maps use."""

    def __init__(self, arr: np.ndarray, top: float | None) -> None:
        self.arr, self.top = arr, top
        self.shape = arr.shape[:3]
        self.n = int(np.prod(self.shape))
        self.flat = arr.reshape(self.n, arr.shape[3])
        c = arr.shape[3]
        self.names = ["intensity"] if c == 1 else [f"channel_{j}" for j in range(c)]
        self.offset = np.zeros(c)
        self.scale = np.ones(c)

    def chunks(self) -> list[slice]:
        step = max(1, int(CHUNK_PIXELS))
        return [slice(lo, min(lo + step, self.n)) for lo in range(0, self.n, step)]

    def raw(self, rows: slice | np.ndarray) -> np.ndarray:
        X = self.flat[rows].astype(np.float64)
        if self.top is not None:
            X /= self.top
        return X

    def features(self, rows: slice | np.ndarray) -> np.ndarray:
        X = self.raw(rows)
        X -= self.offset
        X /= self.scale
        return X

    def fit_scaler(self) -> PixelFeatures:
        """Centre and standard deviation of every channel over all voxels (two streaming
        passes, differences from the first voxel as in segmentation); refuses a constant
        channel."""
        chunks = self.chunks()
        ref = self.raw(slice(0, 1))[0]
        shifted = np.zeros(ref.size)
        largest = np.zeros(ref.size)
        for rows in chunks:
            block = self.raw(rows)
            if self.top is None:
                largest = np.maximum(largest, np.abs(block).max(axis=0))
            block -= ref
            shifted += block.sum(axis=0)
        centre = ref + shifted / self.n
        squares = np.zeros(ref.size)
        for rows in chunks:
            block = self.raw(rows)
            block -= centre
            squares += np.einsum("ij,ij->j", block, block)
        spread = np.sqrt(squares / self.n)
        eps = 0.0 if self.top is not None else float(np.finfo(self.arr.dtype).eps)
        for j, name in enumerate(self.names):
            what = "intensity" if name == "intensity" else name.replace("_", " ")
            _check_not_constant(what, float(spread[j]), float(largest[j]), eps, self.arr.dtype)
        self.offset, self.scale = centre, spread
        groups = ("intensity",) if len(self.names) == 1 else ("channels",)
        return PixelFeatures(groups, list(self.names), centre, spread, 1.0)

    def smoothed(self, idx: np.ndarray) -> np.ndarray:
        """Features of the voxels ``idx``, each channel averaged over the voxel's 3 x 3 x 3
        neighbourhood (borders reflected): the start of the Potts EM, as in segmentation."""
        from scipy.ndimage import uniform_filter

        out = np.empty((idx.size, len(self.names)))
        coords = np.unravel_index(idx, self.shape)
        for j in range(len(self.names)):
            channel = np.empty(self.n, dtype=np.float32)
            for rows in self.chunks():
                channel[rows] = self.features(rows)[:, j]
            out[:, j] = uniform_filter(channel.reshape(self.shape), size=3, mode="reflect")[coords]
        return out


@dataclass
class VolumeSegmentationResult:
    """Label, probability and uncertainty volumes of one segmented volume.

    The maps have the volume's (z, y, x) shape and the compact dtypes of
    :class:`~bayesgmm.SegmentationResult` (labels uint8 up to 256 segments, the rest float32).
    :func:`bayesgmm.segmentation.calibration` takes it with a (z, y, x) truth volume.

    Attributes
    ----------
    volume : ndarray of shape (Z, Y, X, C)
        The input as validated (channels last, C = 1 without channels), in its own dtype.
    labels : ndarray of unsigned int, shape (Z, Y, X)
        Most probable component of every voxel.
    probabilities : ndarray of float32, shape (Z, Y, X, K)
        Membership probabilities (posterior means for ``method="bayes"``).
    label_probability : ndarray of shape (Z, Y, X)
        Probability of the assigned label.
    uncertainty_total, uncertainty_aleatoric, uncertainty_epistemic : ndarray, (Z, Y, X)
        Entropies in nats, as in :class:`~bayesgmm.SegmentationResult` (epistemic zero for EM).
    interval_width : ndarray of shape (Z, Y, X) or None
        Width of the posterior interval of the assigned label's probability (bayes only).
    method : str
    features : PixelFeatures
        The scaling of each channel (``names`` ``["intensity"]`` or ``channel_0``, ...).
    estimator : EMGaussianMixture or BayesGaussianMixture
    fit_voxels : ndarray of int
        Flat (row-major) indices of the voxels the mixture was fitted to.
    n_map_draws : int or None
    interval : float or None
    timings : dict
        Seconds spent on ``features``, ``fit`` and ``maps``.
    spatial : str or None
        ``"potts"`` (6-neighbour Potts prior) or None (independent voxels).
    beta : float or None
        Strength of the Potts prior used (estimated or given).
    """

    volume: np.ndarray
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
    fit_voxels: np.ndarray
    n_map_draws: int | None = None
    interval: float | None = None
    timings: dict[str, float] = field(default_factory=dict)
    spatial: str | None = None
    beta: float | None = None

    # The per-segment tables are those of an image's result, over voxels (the column
    # "pixel_share" is the share of voxels).
    n_components = SegmentationResult.n_components
    component_means = SegmentationResult.component_means
    summary = SegmentationResult.summary
    _full_summary = None  # a volume is never a preview of a larger one

    def to_npz(self, path: str | os.PathLike, *, warn_bytes: int = LARGE_OUTPUT_BYTES) -> None:
        """Save every map (and the fitted voxel indices) to a compressed ``.npz`` file.

        Logs a warning first when the maps hold more than ``warn_bytes`` bytes (default 1 GB)
        before compression.
        """
        arrays = {
            "labels": self.labels,
            "probabilities": self.probabilities,
            "label_probability": self.label_probability,
            "uncertainty_total": self.uncertainty_total,
            "uncertainty_aleatoric": self.uncertainty_aleatoric,
            "uncertainty_epistemic": self.uncertainty_epistemic,
            "fit_voxels": self.fit_voxels,
        }
        if self.interval_width is not None:
            arrays["interval_width"] = self.interval_width
        size = sum(a.nbytes for a in arrays.values())
        if size > warn_bytes:
            _log.warning(
                "writing %.2f GB of maps (%s voxels x %d segments, before compression) to %s.",
                size / 1e9,
                " x ".join(map(str, self.labels.shape)),
                self.n_components,
                os.path.basename(os.fspath(path)),
            )
        np.savez_compressed(path, **arrays)


def segment_volume(
    volume: ArrayLike,
    n_components: int,
    *,
    channel_axis: int | None = None,
    spatial: Literal["potts"] | None = None,
    beta: float | None = None,
    method: Literal["em", "bayes"] = "em",
    n_fit_voxels: int | None = None,
    max_draws: int = 200,
    interval: float = 0.89,
    random_state: int | np.random.RandomState | None = None,
    n_map_draws: int | None = None,
    **estimator_options: Any,
) -> VolumeSegmentationResult:
    """Segment a (z, y, x) volume with a Gaussian mixture and map where its labels are unsure.

    Parameters
    ----------
    volume : array-like of shape (Z, Y, X), or (Z, Y, X) plus a channel axis
        uint8, uint16 or float voxel values.
    n_components : int
        Number of segments.
    channel_axis : int, optional
        The axis of a 4-D volume that holds channels (e.g. -1 for (z, y, x, channel)); each
        channel is a feature, standardised on its own. None (default): a 3-D volume of single
        values.
    spatial : {"potts"} or None, default None
        None treats voxels as independent. ``"potts"``: a Potts prior over the 6 face
        neighbours of each voxel, fitted by mean-field EM started from the independent-voxel
        fit (see :mod:`bayesgmm._spatial`). ``method="em"`` only.
    beta : float, optional
        Strength of the Potts prior (``>= 0``); by default estimated from the volume by the
        mean-field pseudo-likelihood (``result.beta``).
    method : {"em", "bayes"}, default "em"
        :class:`~bayesgmm.EMGaussianMixture`, or :class:`~bayesgmm.BayesGaussianMixture`
        with posterior uncertainty maps (``spatial=None`` only).
    n_fit_voxels : int, optional
        Voxels (a uniform random subsample) the mixture is fitted to; default 50 000 for EM
        and 5 000 for the Bayesian fit, or all voxels if fewer.
    max_draws : int, default=200
        Posterior draws behind the Bayesian maps.
    interval : float, default=0.89
        Mass of the posterior interval whose width is mapped (``method="bayes"``).
    random_state : int, RandomState or None
        Seeds the voxel subsample and the estimator.
    n_map_draws : int, optional
        Deprecated name of ``max_draws`` (the cap on posterior draws is ``max_draws`` in
        every function, as in :meth:`~bayesgmm.BayesGaussianMixture.membership`).
    **estimator_options
        Passed to the estimator, e.g. ``covariance_type``, ``n_init``, ``draws``. EM's
        ``n_init`` (restarts, the best likelihood kept) defaults to 5 here, not 1: the
        regions of a volume are often a small share of its voxels, and with one start EM
        split the background and merged the regions in 2 of 3 seeds of the 32^3
        :func:`~bayesgmm.make_regions_volume` test volume at noise 0.2.

    Returns
    -------
    VolumeSegmentationResult

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> truth = np.zeros((16, 16, 16), dtype=int)
    >>> truth[4:12, 4:12, 4:12] = 1
    >>> volume = truth + 0.4 * rng.standard_normal(truth.shape)
    >>> result = segment_volume(volume, 2, spatial="potts", random_state=0)
    >>> result.labels.shape, result.probabilities.shape
    ((16, 16, 16), (16, 16, 16, 2))
    """
    from .em import EMGaussianMixture

    if method not in ("em", "bayes"):
        raise ValueError(f"method={method!r} is invalid; use 'em' or 'bayes'.")
    if spatial not in (None, "potts"):
        raise ValueError(f"spatial={spatial!r} is invalid; use None or 'potts'.")
    if spatial is not None and method != "em":
        raise ValueError(
            f"spatial={spatial!r} is implemented for method='em' only so far; use "
            "method='em' or spatial=None."
        )
    if beta is not None:
        if spatial is None:
            raise ValueError("beta is the strength of the spatial prior; pass spatial='potts'.")
        if not (np.isscalar(beta) and np.isfinite(beta) and beta >= 0):
            raise ValueError(f"beta={beta!r} is invalid; it must be a finite number >= 0.")
    if "n_components" in estimator_options or "random_state" in estimator_options:
        raise TypeError("pass n_components and random_state as segment_volume's own arguments.")
    estimator_options.setdefault("n_init", 5)
    t0 = time.perf_counter()
    arr, top = _check_volume(volume, channel_axis)
    voxels = _Voxels(arr, top)
    scaler = voxels.fit_scaler()
    n = voxels.n
    k = check_n_components(n_components, n)
    if n_fit_voxels is None:
        n_fit_voxels = _DEFAULT_FIT_PIXELS[method]
    check_positive("n_fit_voxels", n_fit_voxels, integer=True)
    if n_fit_voxels < k:
        raise ValueError(f"n_fit_voxels={n_fit_voxels} is fewer than n_components={k}.")
    max_draws = _checked_max_draws(max_draws, n_map_draws)
    if not 0.0 < interval < 1.0:
        raise ValueError(f"interval={interval!r} is invalid; it must lie strictly in (0, 1).")
    rng = check_random_state(random_state)
    seed = int(rng.randint(2**31 - 1))
    if n_fit_voxels >= n:
        fit_idx = np.arange(n)
    else:
        fit_idx = np.sort(rng.choice(n, size=n_fit_voxels, replace=False))
    timings = {"features": time.perf_counter() - t0}

    t0 = time.perf_counter()
    frame = pd.DataFrame(voxels.features(fit_idx), columns=scaler.names, copy=False)
    if method == "em":
        cls = EMGaussianMixture
    else:
        from .bayes import BayesGaussianMixture as cls
    _log.info("fitting %s with %d components to %d of %d voxels", cls.__name__, k, fit_idx.size, n)
    start = frame
    if spatial == "potts":
        start = pd.DataFrame(voxels.smoothed(fit_idx), columns=scaler.names)
    est = cls(k, random_state=seed, **estimator_options).fit(start)
    potts = None
    if spatial == "potts":
        from ._spatial import potts_em

        est = _raw_start(est, start, frame)

        cached = None
        if n * len(scaler.names) * 8 <= SPATIAL_CACHE_BYTES:
            cached = voxels.features(slice(None))

        def all_features():
            for rows in voxels.chunks():
                yield rows, (voxels.features(rows) if cached is None else cached[rows])

        potts = potts_em(all_features, voxels.shape, frame.to_numpy(), fit_idx, est, beta=beta)
        del cached
        _log.info(
            "Potts prior (6 neighbours): beta %.3f, %d mean-field EM iterations%s",
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
    timings["fit"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    maps = _Maps(n, k, bayes=method == "bayes")
    used_draws = None
    if method == "bayes":
        from .bayes import _thin
        from .responsibilities import summarize_responsibilities

        draws = _thin(max_draws, *est._draws())
        used_draws = int(draws[0].shape[0])
    q_flat = None if potts is None else potts.q.reshape(n, k)
    for rows in voxels.chunks():
        if q_flat is not None:
            prob = q_flat[rows].astype(np.float64)
            labels = prob.argmax(axis=1)
            maps.store(rows, prob, labels, _entropy(prob))
        elif method == "em":
            X = voxels.features(rows)
            prob = est.predict_proba(pd.DataFrame(X, columns=scaler.names, copy=False))
            labels = prob.argmax(axis=1)
            maps.store(rows, prob, labels, _entropy(prob))
        else:
            X = voxels.features(rows)
            s = summarize_responsibilities(
                X, *draws, est.covariance_type, interval=interval, intervals="label"
            )
            at = np.arange(s.labels.size)
            maps.store(
                rows,
                s.mean,
                s.labels,
                s.entropy_total,
                aleatoric=s.entropy_aleatoric,
                epistemic=s.entropy_epistemic,
                width=s.upper[at, s.labels] - s.lower[at, s.labels],
            )
    timings["maps"] = time.perf_counter() - t0
    shape = voxels.shape
    return VolumeSegmentationResult(
        volume=arr,
        labels=maps.labels.reshape(shape),
        probabilities=maps.probabilities.reshape(*shape, k),
        label_probability=maps.label_probability.reshape(shape),
        uncertainty_total=maps.total.reshape(shape),
        uncertainty_aleatoric=maps.aleatoric.reshape(shape),
        uncertainty_epistemic=maps.epistemic.reshape(shape),
        interval_width=None if maps.width is None else maps.width.reshape(shape),
        method=method,
        features=scaler,
        estimator=est,
        fit_voxels=fit_idx,
        n_map_draws=used_draws,
        interval=interval if method == "bayes" else None,
        timings=timings,
        spatial=spatial,
        beta=None if potts is None else potts.beta,
    )


def _raw_start(est: Any, smoothed: pd.DataFrame, frame: pd.DataFrame) -> Any:
    """The smoothed-feature fit's partition, with components re-estimated on the raw features.

    A 3 x 3 x 3 mean cuts the noise about five-fold: the smoothed fit's covariances are
    far narrower than the raw voxels' spread, and the first Potts sweep on raw features
    then gave most of the background to the widest component (measured on the 32^3 test
    volume at noise 0.2, which the Potts EM never recovered from). One M-step on the raw
    features, weighted by the smoothed fit's memberships, gives a start with the right spread.
    """
    from types import SimpleNamespace

    from ._numerics import precisions_cholesky_from_covariances
    from ._spatial import _weighted_m_step

    resp = est.predict_proba(smoothed)
    X = frame.to_numpy()
    reg = est.reg_covar * X.var(axis=0)
    if est.covariance_type == "spherical":
        reg = float(reg.mean())
    means, covs = _weighted_m_step(X, resp, est.covariance_type, reg)
    params = SimpleNamespace(
        weights=resp.mean(axis=0),
        means=means,
        covariances=covs,
        precisions_cholesky=precisions_cholesky_from_covariances(covs, est.covariance_type),
        n_iter=est.n_iter_,
        converged=est.converged_,
    )
    return _with_params(est, params)


def plot_volume(result: VolumeSegmentationResult, *, width: float = 3.0) -> Any:
    """The middle slice of the volume along each axis: values, labels and total uncertainty.

    Rows: the middle z slice (y, x), the middle y slice (z, x) and the middle x slice (z, y);
    columns: the volume (its first channel, or the mean of three channels), the label map
    (segment ``k`` in ``"C{k}"``) and the entropy (0 to ``log K`` nats).

    Parameters
    ----------
    result : VolumeSegmentationResult
        From :func:`~bayesgmm.segment_volume`.
    width : float, default=3.0
        Width of one panel in inches.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure

    if not isinstance(result, VolumeSegmentationResult):
        raise TypeError(
            f"plot_volume needs a VolumeSegmentationResult, got {type(result).__name__}."
        )
    z, y, x = result.labels.shape
    k = result.n_components
    values = result.volume
    values = values[..., 0] if values.shape[-1] != 3 else values.mean(axis=-1)
    cuts = [
        ("z", z // 2, (slice(z // 2, z // 2 + 1), slice(None), slice(None)), ("x", "y")),
        ("y", y // 2, (slice(None), slice(y // 2, y // 2 + 1), slice(None)), ("x", "z")),
        ("x", x // 2, (slice(None), slice(None), slice(x // 2, x // 2 + 1)), ("y", "z")),
    ]
    fig = Figure(figsize=(3 * width, 3 * width), layout="constrained")
    axes = fig.subplots(3, 3)
    cmap = ListedColormap([f"C{j}" for j in range(k)])
    top = float(np.log(k)) if k > 1 else 1.0
    for row, (axis, at, sl, (xlabel, ylabel)) in enumerate(cuts):
        dim = "zyx".index(axis)

        def cut(a: np.ndarray, sl=sl, dim=dim) -> np.ndarray:
            return np.squeeze(a[sl], axis=dim)

        panels = [
            (cut(values).astype(np.float64), "gray", None, None, f"{axis} = {at}: volume"),
            (cut(result.labels), cmap, -0.5, k - 0.5, "labels"),
            (cut(result.uncertainty_total), "magma", 0.0, top, "total uncertainty (nats)"),
        ]
        for col, (img, cm, lo, hi, title) in enumerate(panels):
            ax = axes[row, col]
            im = ax.imshow(img, cmap=cm, vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_title(title, fontsize=9)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            if col == 2:
                fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def _report_html(
    result: VolumeSegmentationResult,
    *,
    calibration: Any = None,
    title: str = "bayesgmm volume segmentation",
    figures_dir: str | os.PathLike | None = None,
    threshold: float = 0.9,
) -> str:
    """A self-contained HTML report of a volume segmentation (settings, per-segment tables,
    the middle slices and, given a truth volume, the calibration), in the layout of
    :mod:`bayesgmm.report`, whose blocks and renderer it uses. The figures are embedded, and
    also saved as PNG in ``figures_dir`` when given."""
    from pathlib import Path

    from .report import (
        _calibration_section,
        _em_model_section,
        _Figures,
        _frame,
        _Heading,
        _kv,
        _Para,
        _render_html,
        _Table,
    )

    z, y, x = result.labels.shape
    n = result.labels.size
    channels = result.volume.shape[-1]
    how = "EM" if result.method == "em" else "the Bayesian mixture (NUTS, started from EM)"
    if result.spatial == "potts":
        prior = f"Potts, 6 neighbours, beta = {result.beta:.3g}, labels by mean-field EM"
    else:
        prior = "none: voxels are independent given the components"
    settings = [
        ("volume (z, y, x)", f"{z} x {y} x {x} voxels, {channels} channel(s)"),
        ("segments (components)", result.n_components),
        ("method", how),
        ("features", ", ".join(result.features.names)),
        ("spatial prior", prior),
        (
            "voxels fitted",
            f"all {n}"
            if result.fit_voxels.size == n
            else f"{result.fit_voxels.size} of {n} (uniform random sample)",
        ),
    ]
    if result.n_map_draws is not None:
        settings.append(("posterior draws behind the maps", result.n_map_draws))
    settings += [(f"seconds: {k}", round(v, 2)) for k, v in result.timings.items()]
    unsure = float(np.mean(result.label_probability < threshold))
    figures = _Figures(
        None if figures_dir is None else Path(figures_dir), Path.cwd(), embed=True, dpi=100
    )
    names = {
        "pixel_share": "voxel share",
        "mean_label_probability": "mean P(label)",
        "mean_total_uncertainty": "total (nats)",
        "mean_epistemic_uncertainty": "epistemic (nats)",
        "mean_interval_width": "interval width",
    }
    summary = result.summary().rename(columns=names).rename_axis("segment")
    means = result.component_means().rename_axis("segment")
    blocks: list[Any] = [
        _Heading("Volume segmentation"),
        _Table(_kv(settings, ("setting", "value"))),
        _Para(
            f"{unsure:.1%} of the voxels have a label probability below {threshold:g}. Total "
            "uncertainty is the entropy of a voxel's membership probabilities (nats, at most "
            f"log K = {np.log(max(result.n_components, 2)):.2f}); epistemic is the part due to "
            "uncertainty about the components (zero for EM)."
        ),
        _Table(_frame(summary.reset_index()), "Per segment: share of voxels and means."),
        _Table(
            _frame(means.reset_index()),
            "Per segment: its weight and fitted mean in the volume's units.",
        ),
        figures.add(
            lambda: plot_volume(result),
            "slices",
            "The middle slice along each axis: the volume, its labels and total uncertainty.",
        ),
    ]
    if calibration is not None:
        blocks += _calibration_section(calibration, figures)
    if result.method == "em":
        blocks += _em_model_section(result, "6-neighbour voxel grid")  # type: ignore[arg-type]
    else:
        from .report import _model_section

        blocks += _model_section(result.estimator)
    return _render_html(title, blocks)
