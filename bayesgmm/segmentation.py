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

**Feature scaling.** Each feature *group* is centred and divided by one pooled standard
deviation computed over all pixels: one number for the colour (or intensity) channels and one
for the two position coordinates. A single scale per group keeps the geometry inside the group
(colour differences keep their RGB proportions; the image keeps its aspect ratio) while putting
colour and position on comparable scales: a pixel one standard deviation of colour away from a
segment's mean counts as much as one that is one standard deviation of position away. The
position group is then multiplied by ``position_weight`` (default 1): larger values give more
compact, blob-like segments, smaller ones segments driven by colour. Integer images are read on
their full range (uint8 / 255, uint16 / 65535); float images are taken as they are.

**Large images.** The mixture is fitted to a random subsample of ``n_fit_pixels`` pixels, then
every pixel is predicted by compiled kernels that run in parallel over pixels: EM's membership
probabilities directly, the Bayesian maps from ``n_map_draws`` posterior draws (thinned evenly
over the pooled chains), streaming, so memory is that of the output maps whatever the number
of draws.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ._validation import check_n_components, check_positive, check_random_state
from .responsibilities import _entropy

__all__ = [
    "PixelFeatures",
    "SegmentationResult",
    "as_image",
    "image_features",
    "segment_image",
]

FEATURE_GROUPS = ("intensity", "color", "position")
#: Rec. 601 luma weights: intensity of an RGB pixel.
LUMA = np.array([0.299, 0.587, 0.114])
_DEFAULT_FIT_PIXELS = {"em": 50_000, "bayes": 5_000}
_log = logging.getLogger("bayesgmm")


def as_image(image: ArrayLike) -> np.ndarray:
    """Validate an image and return it as float64 of shape (H, W) or (H, W, 3).

    uint8 and uint16 images are divided by their maximum code value; floats are kept. An alpha
    channel is refused rather than silently dropped.
    """
    arr = np.asarray(image)
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
    if np.issubdtype(arr.dtype, np.integer):
        top = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(arr.dtype)
        if top is None:
            top = float(max(arr.max(), 1))
        return arr.astype(np.float64) / top
    out = arr.astype(np.float64)
    bad = ~np.isfinite(out)
    if bad.any():
        n_bad = int(bad.any(axis=-1).sum() if out.ndim == 3 else bad.sum())
        raise ValueError(f"image has {n_bad} pixel(s) with NaN or infinite values.")
    return out


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


def _raw_columns(img: np.ndarray, groups: tuple[str, ...]) -> tuple[list[np.ndarray], list[str]]:
    """Raw feature columns (flattened, row-major) per group, before scaling."""
    h, w = img.shape[:2]
    cols: list[np.ndarray] = []
    names: list[str] = []
    for g in groups:
        if g == "intensity" or (g == "color" and img.ndim == 2):
            lum = img if img.ndim == 2 else img @ LUMA
            cols.append(lum.reshape(-1, 1))
            names.append("intensity")
        elif g == "color":
            cols.append(img.reshape(-1, 3))
            names.extend(["red", "green", "blue"])
        else:
            rr, cc = np.indices((h, w), dtype=np.float64)
            cols.append(np.column_stack([rr.ravel(), cc.ravel()]))
            names.extend(["row", "col"])
    return cols, names


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
        One row per pixel, row-major.
    scaler : PixelFeatures
    """
    return _features(as_image(image), features, position_weight)


def _features(
    img: np.ndarray, features: str | Sequence[str], position_weight: float
) -> tuple[np.ndarray, PixelFeatures]:
    """:func:`image_features` of an image already validated by :func:`as_image`."""
    groups = _check_groups(features)
    check_positive("position_weight", position_weight)
    cols, names = _raw_columns(img, groups)
    offsets, scales = [], []
    for g, col in zip(groups, cols, strict=True):
        centre = col.mean(axis=0)
        spread = float(np.sqrt(((col - centre) ** 2).mean(axis=0).mean()))
        if spread == 0.0:
            raise ValueError(f"the image's {g} is constant; there is nothing to segment.")
        if g == "position":
            spread /= position_weight
        offsets.append(centre)
        scales.append(np.full(col.shape[1], spread))
    offset, scale = np.concatenate(offsets), np.concatenate(scales)
    X = (np.hstack(cols) - offset) / scale
    return X, PixelFeatures(groups, names, offset, scale, float(position_weight))


@dataclass
class SegmentationResult:
    """Label map, membership probabilities and uncertainty maps of one segmented image.

    Maps have the image's height and width. Entropies are in nats (at most ``log K``).

    Attributes
    ----------
    image : ndarray
        The input image as float (see :func:`~bayesgmm.segmentation.as_image`).
    labels : ndarray of int, shape (H, W)
        Most probable component of every pixel.
    probabilities : ndarray of shape (H, W, K)
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
        Seconds spent on ``features``, ``fit`` and ``maps``.
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

    @property
    def n_components(self) -> int:
        """Number of segments (mixture components)."""
        return self.probabilities.shape[-1]

    def component_means(self) -> pd.DataFrame:
        """Fitted component means in image units (e.g. RGB in [0, 1], pixels), with weights."""
        if self.method == "bayes":
            post = self.estimator.idata_["posterior"]
            means = post["means"].mean(("chain", "draw")).values
            weights = post["weights"].mean(("chain", "draw")).values
        else:
            means, weights = self.estimator.means_, self.estimator.weights_
        frame = pd.DataFrame(self.features.to_raw(means), columns=self.features.names)
        frame.insert(0, "weight", weights)
        frame.index.name = "component"
        return frame

    def summary(self) -> pd.DataFrame:
        """Per segment: share of pixels, mean probability of the label, mean uncertainties."""
        k = self.n_components
        lab = self.labels.ravel()
        counts = np.bincount(lab, minlength=k)

        def per_label(values: np.ndarray) -> np.ndarray:
            sums = np.bincount(lab, weights=values.ravel(), minlength=k)
            with np.errstate(invalid="ignore", divide="ignore"):
                return sums / counts

        cols = {
            "pixel_share": counts / lab.size,
            "mean_label_probability": per_label(self.label_probability),
            "mean_total_uncertainty": per_label(self.uncertainty_total),
            "mean_epistemic_uncertainty": per_label(self.uncertainty_epistemic),
        }
        if self.interval_width is not None:
            cols["mean_interval_width"] = per_label(self.interval_width)
        frame = pd.DataFrame(cols)
        frame.index.name = "component"
        return frame

    def to_npz(self, path) -> None:
        """Save every map (and the fitted pixel indices) to a compressed ``.npz`` file."""
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
        np.savez_compressed(path, **arrays)


def segment_image(
    image: ArrayLike,
    n_components: int,
    *,
    features: str | Sequence[str] = ("intensity",),
    method: Literal["em", "bayes"] = "em",
    n_fit_pixels: int | None = None,
    n_map_draws: int = 200,
    position_weight: float = 1.0,
    interval: float = 0.89,
    random_state: int | np.random.RandomState | None = None,
    **estimator_options: Any,
) -> SegmentationResult:
    """Segment an image with a Gaussian mixture and map where its labels are uncertain.

    Parameters
    ----------
    image : array-like of shape (H, W) or (H, W, 3)
        Grayscale or RGB image, uint8, uint16 or float.
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
        default 50 000 for EM and 5 000 for the Bayesian fit, or all pixels if fewer.
    n_map_draws : int, default=200
        Posterior draws (evenly thinned) behind the Bayesian maps; ``result.n_map_draws`` says
        how many were used.
    position_weight : float, default=1.0
        Weight of the standardised position features relative to colour.
    interval : float, default=0.89
        Mass of the posterior interval whose width is mapped (``method="bayes"``).
    random_state : int, RandomState or None
        Seeds the pixel subsample and the estimator.
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
    from .bayes import BayesGaussianMixture
    from .em import EMGaussianMixture

    if method not in ("em", "bayes"):
        raise ValueError(f"method={method!r} is invalid; use 'em' or 'bayes'.")
    if "n_components" in estimator_options or "random_state" in estimator_options:
        raise TypeError("pass n_components and random_state as segment_image's own arguments.")
    t0 = time.perf_counter()
    img = as_image(image)
    h, w = img.shape[:2]
    X, scaler = _features(img, features, position_weight)
    n_pixels = X.shape[0]
    k = check_n_components(n_components, n_pixels)
    if n_fit_pixels is None:
        n_fit_pixels = _DEFAULT_FIT_PIXELS[method]
    check_positive("n_fit_pixels", n_fit_pixels, integer=True)
    if n_fit_pixels < k:
        raise ValueError(f"n_fit_pixels={n_fit_pixels} is fewer than n_components={k}.")
    check_positive("n_map_draws", n_map_draws, integer=True)
    if not 0.0 < interval < 1.0:
        raise ValueError(f"interval={interval!r} is invalid; it must lie strictly in (0, 1).")
    rng = check_random_state(random_state)
    seed = int(rng.randint(2**31 - 1))
    if n_fit_pixels >= n_pixels:
        fit_idx = np.arange(n_pixels)
    else:
        fit_idx = np.sort(rng.choice(n_pixels, size=n_fit_pixels, replace=False))
    timings = {"features": time.perf_counter() - t0}

    t0 = time.perf_counter()
    # Named columns: the estimators, their diagnostics and posteriors say "red", "row", ...
    frame = pd.DataFrame(X, columns=scaler.names, copy=False)
    cls = EMGaussianMixture if method == "em" else BayesGaussianMixture
    _log.info(
        "fitting %s with %d components to %d of %d pixels (%s)",
        cls.__name__,
        k,
        fit_idx.size,
        n_pixels,
        ", ".join(scaler.names),
    )
    est = cls(k, random_state=seed, **estimator_options).fit(frame.iloc[fit_idx])
    timings["fit"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    _log.info(
        "computing the maps of %d pixels%s",
        n_pixels,
        f" from up to {n_map_draws} posterior draws" if method == "bayes" else "",
    )
    width = None
    used_draws = None
    if method == "em":
        prob = est.predict_proba(frame)  # compiled, parallel over pixels
        labels = prob.argmax(axis=1)
        label_p = prob[np.arange(n_pixels), labels]
        total = _entropy(prob)
        aleatoric, epistemic = total, np.zeros(n_pixels)
    else:
        s = est.membership(frame, interval=interval, max_draws=n_map_draws, intervals="label")
        prob, labels, label_p = s.mean, s.labels, s.label_probability
        total, aleatoric, epistemic = s.entropy_total, s.entropy_aleatoric, s.entropy_epistemic
        rows = np.arange(n_pixels)
        width = (s.upper[rows, labels] - s.lower[rows, labels]).reshape(h, w)
        used_draws = s.n_draws
    timings["maps"] = time.perf_counter() - t0
    return SegmentationResult(
        image=img,
        labels=labels.reshape(h, w),
        probabilities=prob.reshape(h, w, k),
        label_probability=label_p.reshape(h, w),
        uncertainty_total=total.reshape(h, w),
        uncertainty_aleatoric=aleatoric.reshape(h, w),
        uncertainty_epistemic=epistemic.reshape(h, w),
        interval_width=width,
        method=method,
        features=scaler,
        estimator=est,
        fit_pixels=fit_idx,
        n_map_draws=used_draws,
        interval=interval if method == "bayes" else None,
        timings=timings,
    )
