"""Shipped reference data sets and synthetic mixture generators.

The CSV files live inside the package (``bayesgmm/data``) and load offline. Their sources are
listed in ``bayesgmm/data/README.md`` and in each loader's docstring.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ._validation import check_positive, check_random_state

__all__ = [
    "load_acidity",
    "load_enzyme",
    "load_faithful",
    "load_galaxy",
    "load_sample_photo",
    "make_mixture",
    "make_regions_image",
    "read_data",
]


def _load(name: str) -> pd.DataFrame:
    with resources.files("bayesgmm").joinpath("data", f"{name}.csv").open("r") as fh:
        frame = pd.read_csv(fh)
    frame.attrs["name"] = name
    return frame


def load_faithful() -> pd.DataFrame:
    """Old Faithful geyser eruptions, Yellowstone National Park.

    272 eruptions with columns ``eruptions`` (eruption length, minutes) and ``waiting`` (time
    to the next eruption, minutes; integer-valued, so tied values are common). R's
    ``datasets::faithful`` (Härdle 1991; Azzalini & Bowman 1990).

    Returns
    -------
    DataFrame of shape (272, 2)

    Examples
    --------
    >>> load_faithful().shape
    (272, 2)
    """
    return _load("faithful")


def load_galaxy() -> pd.DataFrame:
    """Velocities of 82 galaxies in the Corona Borealis region, in 1000 km/s.

    Roeder (1990), in the version used by Richardson & Green (1997): observation 78 is 26.96
    (R's ``MASS::galaxies`` has the typo 26690 km/s). One column ``x``.

    Returns
    -------
    DataFrame of shape (82, 1)
    """
    return _load("galaxy")


def load_acidity() -> pd.DataFrame:
    """Acid neutralising capacity of 155 lakes in north-central Wisconsin.

    Already on the log scale (do not log again). Crawford et al. (1992), as used by
    Richardson & Green (1997); identical to R's ``mclust::acidity``. One column ``x``.

    Returns
    -------
    DataFrame of shape (155, 1)
    """
    return _load("acidity")


def load_enzyme() -> pd.DataFrame:
    """Enzymatic activity in the blood of 245 individuals.

    Bechtel et al. (1993), as used by Richardson & Green (1997). One column ``x``.

    Returns
    -------
    DataFrame of shape (245, 1)
    """
    return _load("enzyme")


def make_mixture(
    n_samples: int,
    weights: ArrayLike,
    means: ArrayLike,
    covariances: ArrayLike,
    random_state: int | np.random.RandomState | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw samples from a Gaussian mixture with known parameters.

    Parameters
    ----------
    n_samples : int
        Number of samples.
    weights : array-like of shape (n_components,)
        Mixing proportions, non-negative and summing to one.
    means : array-like of shape (n_components, n_features)
    covariances : array-like of shape (n_components, n_features, n_features)
        Symmetric positive semi-definite covariance matrices.
    random_state : int, RandomState or None

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        Samples in random order.
    labels : ndarray of shape (n_samples,)
        The component each sample was drawn from.

    Examples
    --------
    >>> X, y = make_mixture(100, [0.5, 0.5], [[0, 0], [5, 5]], [np.eye(2)] * 2, random_state=0)
    >>> X.shape, np.bincount(y).sum()
    ((100, 2), np.int64(100))
    """
    check_positive("n_samples", n_samples, integer=True)
    w = np.asarray(weights, dtype=np.float64)
    mu = np.atleast_2d(np.asarray(means, dtype=np.float64))
    cov = np.asarray(covariances, dtype=np.float64)
    k, d = mu.shape
    if w.shape != (k,):
        raise ValueError(f"weights has shape {w.shape}; expected ({k},), one per mean.")
    if (w < 0).any() or not np.isclose(w.sum(), 1.0):
        raise ValueError("weights must be non-negative and sum to 1.")
    if cov.shape != (k, d, d):
        raise ValueError(
            f"covariances has shape {cov.shape}; expected ({k}, {d}, {d}) "
            "(n_components, n_features, n_features)."
        )
    rng = check_random_state(random_state)
    labels = rng.choice(k, size=n_samples, p=w / w.sum())
    X = np.empty((n_samples, d))
    for j in range(k):
        idx = np.flatnonzero(labels == j)
        X[idx] = rng.multivariate_normal(mu[j], cov[j], size=idx.size)
    return X, labels


def make_regions_image(
    shape: tuple[int, int] = (96, 96),
    *,
    levels: Sequence[float] = (0.2, 0.5, 0.8),
    noise: float = 0.06,
    blur: float = 0.8,
    color: bool = False,
    random_state: int | np.random.RandomState | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic image of three regions with known labels, for segmentation.

    A background (label 0), a disc (label 1) and a rectangle (label 2) get the intensities
    ``levels``; the picture is blurred with a Gaussian of ``blur`` pixels (edges spread over
    a few pixels, as a camera's do) and Gaussian noise of standard deviation ``noise`` is added,
    so the intensity distributions of the regions overlap and pixels on boundaries take
    in-between values.

    Parameters
    ----------
    shape : (height, width), default (96, 96)
    levels : three floats, default (0.2, 0.5, 0.8)
        Intensity of background, disc and rectangle.
    noise : float, default 0.06
    blur : float, default 0.8
        Standard deviation of the blur in pixels (0 for sharp edges).
    color : bool, default False
        If True, return an RGB image whose three regions differ in hue as well as in
        brightness (the intensity of each region is still ``levels``).
    random_state : int, RandomState or None

    Returns
    -------
    image : ndarray of shape (height, width) or (height, width, 3), float
    labels : ndarray of int of shape (height, width)
        The true region of every pixel.

    Examples
    --------
    >>> image, labels = make_regions_image((32, 40), random_state=0)
    >>> image.shape, np.bincount(labels.ravel()).size
    ((32, 40), 3)
    """
    from scipy.ndimage import gaussian_filter

    h, w = (int(v) for v in shape)
    if h < 8 or w < 8:
        raise ValueError(f"shape={shape!r} is too small; use at least 8 x 8 pixels.")
    levels = np.asarray(levels, dtype=np.float64)
    if levels.shape != (3,):
        raise ValueError(f"levels must hold three intensities, got {levels.shape[0]}.")
    check_positive("noise", noise, allow_zero=True)
    check_positive("blur", blur, allow_zero=True)
    rng = check_random_state(random_state)
    rr, cc = np.indices((h, w), dtype=np.float64)
    labels = np.zeros((h, w), dtype=np.int64)
    disc = (rr - 0.6 * h) ** 2 + (cc - 0.33 * w) ** 2 <= (0.25 * min(h, w)) ** 2
    rect = (rr >= 0.15 * h) & (rr < 0.5 * h) & (cc >= 0.5 * w) & (cc < 0.85 * w)
    labels[disc] = 1
    labels[rect] = 2
    if not color:
        clean = levels[labels]
        image = gaussian_filter(clean, blur) if blur > 0 else clean
        return image + noise * rng.standard_normal((h, w)), labels
    # Hues: each region's RGB has Rec. 601 luma equal to its level.
    tints = np.array([[0.9, 1.0, 1.3], [1.3, 0.9, 0.8], [0.8, 1.05, 1.2]])
    tints /= (tints @ np.array([0.299, 0.587, 0.114]))[:, None]
    clean = levels[labels][..., None] * tints[labels]
    if blur > 0:
        clean = gaussian_filter(clean, (blur, blur, 0))
    return clean + noise * rng.standard_normal((h, w, 3)), labels


def load_sample_photo(name: str = "flower") -> np.ndarray:
    """A real photograph for segmentation examples, as uint8 RGB of shape (427, 640, 3).

    ``"flower"`` (a flower close-up) and ``"china"`` (a Chinese temple) are the two JPEG
    sample images that ship inside scikit-learn (``sklearn/datasets/images``; both CC BY 2.0,
    photographs by danielbuechele and vultilion on Flickr, as its README records). They load
    offline from the installed package.
    """
    from sklearn.datasets import load_sample_image

    names = ("flower", "china")
    if name not in names:
        raise ValueError(f"name={name!r} is not a sample photo; choose one of {names}.")
    return np.asarray(load_sample_image(f"{name}.jpg"), dtype=np.uint8)


def read_data(
    path: str | os.PathLike,
    *,
    columns: Sequence[str] | None = None,
    dropna: bool = False,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a data table for fitting: CSV/TSV, Parquet or NumPy ``.npy``.

    Parameters
    ----------
    path : path-like
        ``.csv``, ``.tsv``/``.tab``/``.txt`` (tab-separated), ``.parquet``/``.pq`` or ``.npy``
        (a 1-D or 2-D numeric array; columns are named ``x0, x1, ...``).
    columns : sequence of str, optional
        Columns to keep (all by default).
    dropna : bool, default False
        Drop rows with missing values instead of refusing them.

    Returns
    -------
    data : DataFrame
        The numeric columns, rows with missing values dropped when ``dropna``.
    dropped : ndarray of int
        0-based positions (in the file) of the dropped rows.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, unknown format or column, non-numeric column, or rows with missing
        values when ``dropna`` is False (the message names them).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Data file {str(path)!r} does not exist; check the path.")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame = pd.read_csv(path)
    elif suffix in (".tsv", ".tab", ".txt"):
        frame = pd.read_csv(path, sep="\t")
    elif suffix in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
    elif suffix == ".npy":
        array = np.load(path, allow_pickle=False)
        if array.ndim == 1:
            array = array[:, None]
        if array.ndim != 2:
            raise ValueError(f"{path.name}: expected a 1-D or 2-D array, got shape {array.shape}.")
        frame = pd.DataFrame(array, columns=[f"x{j}" for j in range(array.shape[1])])
    else:
        raise ValueError(
            f"{path.name}: unknown data format {suffix!r}; use .csv, .tsv, .parquet or .npy."
        )
    if columns:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(
                f"{path.name}: no column(s) {', '.join(map(repr, missing))}; available: "
                f"{', '.join(map(str, frame.columns))}."
            )
        frame = frame[list(columns)]
    text = [str(c) for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if text:
        raise ValueError(
            f"{path.name}: column(s) {', '.join(map(repr, text))} are not numeric; select "
            "numeric columns with --columns (or convert them)."
        )
    if frame.shape[1] == 0:
        raise ValueError(f"{path.name}: no columns to fit.")
    frame = frame.astype(np.float64)
    bad = np.flatnonzero(frame.isna().any(axis=1).to_numpy())
    if bad.size and not dropna:
        shown = ", ".join(str(int(r) + 1) for r in bad[:10])
        more = f" and {bad.size - 10} more" if bad.size > 10 else ""
        raise ValueError(
            f"{path.name}: {bad.size} row(s) with missing values (data rows {shown}{more}, "
            "1-based); drop them with --dropna or fill them in."
        )
    frame = frame.drop(index=frame.index[bad]).reset_index(drop=True)
    frame.attrs["name"] = path.stem
    return frame, bad
