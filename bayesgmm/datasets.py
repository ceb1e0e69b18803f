"""Shipped reference data sets and synthetic mixture generators.

The CSV files live inside the package (``bayesgmm/data``) and load offline. Their sources are
listed in ``bayesgmm/data/README.md`` and in each loader's docstring.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ._files import TEXT_SUFFIXES, check_data_path

__all__ = [
    "load_acidity",
    "load_enzyme",
    "load_faithful",
    "load_galaxy",
    "load_horse",
    "load_ihc",
    "load_phantom",
    "load_sample_photo",
    "make_mixture",
    "make_noisy_shape",
    "make_regions_image",
    "make_regions_volume",
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
    from ._validation import check_positive, check_random_state

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

    from ._validation import check_positive, check_random_state

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


def make_regions_volume(
    shape: tuple[int, int, int] = (32, 32, 32),
    *,
    levels: Sequence[float] = (0.2, 0.5, 0.8),
    noise: float = 0.06,
    blur: float = 0.8,
    random_state: int | np.random.RandomState | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic (z, y, x) volume of three regions with known labels (a 3-D regions image).

    The volume counterpart of :func:`make_regions_image`.

    A background (label 0), a ball (label 1) and a box (label 2) get the intensities
    ``levels``; the volume is blurred with a Gaussian of ``blur`` voxels and Gaussian noise of
    standard deviation ``noise`` is added. The ball (radius 0.3 of the smallest side) and the
    box (0.35 to 0.45 of each side) hold about 11 % and 6 % of the voxels; the box overlaps
    the ball's edge.

    Parameters
    ----------
    shape : (z, y, x), default (32, 32, 32)
    levels : three floats, default (0.2, 0.5, 0.8)
    noise : float, default 0.06
    blur : float, default 0.8
    random_state : int, RandomState or None

    Returns
    -------
    volume : ndarray of float64, shape (z, y, x)
    labels : ndarray of int64, shape (z, y, x)

    Examples
    --------
    >>> volume, labels = make_regions_volume((16, 20, 24), random_state=0)
    >>> volume.shape, np.bincount(labels.ravel()).size
    ((16, 20, 24), 3)
    """
    from scipy.ndimage import gaussian_filter

    from ._validation import check_positive, check_random_state

    if len(shape) != 3:
        raise ValueError(f"shape={shape!r} is invalid; give (z, y, x).")
    nz, h, w = (int(v) for v in shape)
    if min(nz, h, w) < 8:
        raise ValueError(f"shape={shape!r} is too small; use at least 8 voxels on each axis.")
    levels = np.asarray(levels, dtype=np.float64)
    if levels.shape != (3,):
        raise ValueError(f"levels must hold three intensities, got {levels.shape[0]}.")
    check_positive("noise", noise, allow_zero=True)
    check_positive("blur", blur, allow_zero=True)
    rng = check_random_state(random_state)
    zz, rr, cc = np.indices((nz, h, w), dtype=np.float64)
    ball = (zz - 0.6 * nz) ** 2 + (rr - 0.6 * h) ** 2 + (cc - 0.33 * w) ** 2 <= (
        0.3 * min(nz, h, w)
    ) ** 2
    box = (
        (zz >= 0.1 * nz)
        & (zz < 0.55 * nz)
        & (rr >= 0.15 * h)
        & (rr < 0.5 * h)
        & (cc >= 0.5 * w)
        & (cc < 0.9 * w)
    )
    labels = np.zeros((nz, h, w), dtype=np.int64)
    labels[ball] = 1
    labels[box] = 2
    clean = levels[labels]
    if blur > 0:
        clean = gaussian_filter(clean, blur)
    return clean + noise * rng.standard_normal((nz, h, w)), labels


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


# --------------------------------------------------------------------------- test shapes

#: Grey levels (8-bit codes) of the shipped Shepp-Logan phantom, and the class each belongs to
#: in :func:`make_noisy_shape`: 25 (0.1) is merged into 0 and 102 (0.4) into 76 (0.3).
_PHANTOM_CLASSES = {0: 0, 25: 0, 51: 1, 76: 2, 102: 2, 255: 3}
_SHAPES = ("horse", "phantom")


def _load_png(name: str) -> np.ndarray:
    from PIL import Image

    with resources.files("bayesgmm").joinpath("data", f"{name}.png").open("rb") as fh:
        with Image.open(fh) as im:
            return np.asarray(im.convert("RGB"))


def load_horse() -> np.ndarray:
    """A horse silhouette: bool array of shape (328, 400), True on the horse.

    ``horse.png`` as shipped in scikit-image 0.26's wheel (``skimage/data``; drawn by Andreas
    Preuss (marauder) for openclipart, released under CC0). The picture is black on white,
    anti-aliased on its edges; a pixel is on the horse when its grey value is below 128 (of
    255). 33 % of the pixels are on the horse.

    Examples
    --------
    >>> horse = load_horse()
    >>> horse.shape, horse.dtype
    ((328, 400), dtype('bool'))
    """
    return _load_png("horse")[..., 0] < 128


def load_phantom() -> np.ndarray:
    """The Shepp-Logan head phantom: float array of shape (400, 400), grey levels in [0, 1].

    ``phantom.png`` as shipped in scikit-image 0.26's wheel (``skimage/data``, BSD-3-Clause;
    the phantom is Shepp & Logan's 1974 definition in its modified, higher-contrast form). Its
    six grey levels are the 8-bit codes 0, 25, 51, 76, 102 and 255 divided by 255: background
    and ventricles 0 (58 % of the pixels), 0.1 (0.14 %), brain 0.2 (33 %), 0.3 (4.3 %), 0.4
    (0.08 %) and the skull 1.0 (4.4 %).

    References
    ----------
    Shepp, L. A. & Logan, B. F. (1974) The Fourier reconstruction of a head section. IEEE
    Transactions on Nuclear Science 21(3), 21-43.

    Examples
    --------
    >>> phantom = load_phantom()
    >>> phantom.shape, np.unique(phantom).size
    ((400, 400), 6)
    """
    return _load_png("phantom")[..., 0] / 255.0


def load_ihc() -> np.ndarray:
    """A real microscopy photograph, with no truth: uint8 RGB of shape (512, 512, 3).

    Immunohistochemical (IHC) staining of colonic glands: the FHL2 protein revealed with DAB
    (brown), hematoxylin counterstain (blue). ``ihc.png`` as shipped in scikit-image 0.26's
    wheel (``skimage/data``), acquired at the Center for Microscopy And Molecular Imaging
    (CMMI); no known copyright restrictions, as scikit-image records.

    Examples
    --------
    >>> load_ihc().shape
    (512, 512, 3)
    """
    return _load_png("ihc")


def make_noisy_shape(
    name: str,
    *,
    noise: float,
    size: int = 128,
    blur: float = 0.8,
    random_state: int | np.random.RandomState | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A shipped shape, downsampled, blurred and with Gaussian noise, and its true classes.

    The truth is the shape's classes sampled at the centres of the pixels of the smaller
    picture (nearest neighbour, no averaging); the image is each pixel's grey level, blurred
    by a Gaussian of ``blur`` pixels (edges spread as a camera's do), plus Gaussian noise of
    standard deviation ``noise``, as in :func:`make_regions_image`.

    - ``"horse"`` (:func:`load_horse`): 2 classes, background (0, grey level 1.0) and the horse
      (1, grey level 0.0); the contrast is 1.
    - ``"phantom"`` (:func:`load_phantom`): 4 classes by grey level: 0 background and
      ventricles (0.0), 1 brain (0.2), 2 the inner ellipses (0.3) and 3 the skull (1.0); the
      smallest contrast is 0.1. The phantom's two other levels are merged into a neighbour:
      0.1 (a sliver of 225 of its 160 000 pixels, about 20 pixels at 128 x 128) into 0.0, and
      0.4 (a disc of 122 pixels, about 12 at 128 x 128) into 0.3. Each is one contrast step
      (0.1) from that neighbour and too small to separate under noise: a component cannot be
      estimated from a dozen pixels, and the spatial prior smooths regions a few pixels
      across into their surroundings. Their pixels keep their own grey levels in the image.

    Parameters
    ----------
    name : {"horse", "phantom"}
    noise : float
        Standard deviation of the noise, in the grey levels' units (a contrast of 1 for the
        horse, 0.1 between the phantom's closest classes).
    size : int, default 128
        Length of the longer side in pixels (the horse keeps its aspect ratio: 105 x 128 at
        the default); at most the shape's own size.
    blur : float, default 0.8
        Standard deviation of the blur in pixels (0 for sharp edges).
    random_state : int, RandomState or None

    Returns
    -------
    image : ndarray of float64, shape (height, width)
    truth : ndarray of int64, shape (height, width)
        The true class of every pixel.

    Examples
    --------
    >>> image, truth = make_noisy_shape("phantom", noise=0.05, random_state=0)
    >>> image.shape, np.unique(truth).tolist()
    ((128, 128), [0, 1, 2, 3])
    """
    from scipy.ndimage import gaussian_filter

    from ._validation import check_positive, check_random_state

    if name not in _SHAPES:
        raise ValueError(f"name={name!r} is not a shape; choose one of {_SHAPES}.")
    check_positive("noise", noise, allow_zero=True)
    check_positive("blur", blur, allow_zero=True)
    check_positive("size", size, integer=True)
    if name == "horse":
        horse = load_horse()
        truth_full = horse.astype(np.int64)
        level_full = np.where(horse, 0.0, 1.0)
    else:
        codes = _load_png("phantom")[..., 0]
        lut = np.zeros(256, dtype=np.int64)
        for code, cls in _PHANTOM_CLASSES.items():
            lut[code] = cls
        truth_full = lut[codes]
        level_full = codes / 255.0
    h_full, w_full = truth_full.shape
    longer = max(h_full, w_full)
    if not 8 <= size <= longer:
        raise ValueError(
            f"size={size} is invalid for the {name} ({w_full} x {h_full} pixels); use 8 to "
            f"{longer}."
        )
    h, w = (max(1, round(n * size / longer)) for n in (h_full, w_full))
    # Nearest neighbour at the centres of the new pixels.
    rows = ((np.arange(h) + 0.5) * h_full / h).astype(np.intp)
    cols = ((np.arange(w) + 0.5) * w_full / w).astype(np.intp)
    truth = truth_full[np.ix_(rows, cols)]
    clean = level_full[np.ix_(rows, cols)]
    if blur > 0:
        clean = gaussian_filter(clean, blur)
    rng = check_random_state(random_state)
    return clean + noise * rng.standard_normal((h, w)), truth


# --------------------------------------------------------------------------- reading data files

_SAMPLE_BYTES = 1 << 16
_SEPARATORS = (",", ";", "\t", "|")
_SEP_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}
_DOT_NUMBER = re.compile(r"^[+-]?(\d+\.\d*|\.\d+)([eE][+-]?\d+)?$")
_COMMA_NUMBER = re.compile(r"^[+-]?\d+,\d+([eE][+-]?\d+)?$")
_INTEGER = re.compile(r"^[+-]?\d+$")


def _sep_name(sep: str) -> str:
    return f"{_SEP_NAMES.get(sep, repr(sep))} ({sep!r})"


def _decode_sample(path: Path) -> tuple[str, str]:
    """The first 64 KiB of a text table, decoded, and the encoding to read it with."""
    with path.open("rb") as fh:
        raw = fh.read(_SAMPLE_BYTES)
    control = sum(1 for b in raw if b < 32 and b not in (9, 10, 13))
    if b"\x00" in raw or control > max(2, len(raw) // 100):
        raise ValueError(
            f"{str(path)!r} holds binary data, not a text table; give a CSV/TSV text file "
            "(or .parquet/.npy for binary formats)."
        )
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8", errors="ignore"), "utf-8-sig"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(raw) - 3:  # a character cut by the 64 KiB sample
            return raw[: exc.start].decode("utf-8"), "utf-8"
        return raw.decode("cp1252", errors="replace"), "cp1252"


def _split(lines: list[str], sep: str) -> list[list[str]]:
    import csv

    return [row for row in csv.reader(lines, delimiter=sep) if row]


def _sniff(path: Path, sample: str, sep: str | None, decimal: str | None) -> tuple[str, str]:
    """Pick the field separator and the decimal mark from the first lines of a text table."""
    lines = [line for line in sample.splitlines() if line.strip()]
    if len(sample.encode("utf-8", errors="ignore")) >= _SAMPLE_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line of the sample may be cut short
    lines = lines[:200]
    if not lines:
        raise ValueError(f"{str(path)!r} holds only blank lines; it holds no data to fit.")
    default = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    if sep is not None:
        counts = [len(row) for row in _split(lines, sep)]
        bad = next((i for i, c in enumerate(counts) if c != counts[0]), None)
        if bad is not None:
            raise ValueError(
                f"{str(path)!r}: with {_sep_name(sep)} as the separator, line 1 has "
                f"{counts[0]} field(s) but line {bad + 1} has {counts[bad]}; check --sep "
                "(sep= in read_data) and the decimal mark."
            )
    else:
        consistent = []
        for cand in _SEPARATORS:
            counts = {len(row) for row in _split(lines, cand)}
            if len(counts) == 1:
                consistent.append((counts.pop(), cand))
        wide = [c for c in consistent if c[0] > 1]
        data = [line.strip() for line in lines[1:]]
        if wide:
            sep = max(wide, key=lambda c: (c[0], c[1] == default))[1]
        elif not any(cand in line for cand in _SEPARATORS for line in lines):
            sep = default  # one column: no separator at all
        elif (
            "," not in lines[0]
            and data
            and all(_COMMA_NUMBER.match(f) or _INTEGER.match(f) for f in data)
            and any(_COMMA_NUMBER.match(f) for f in data)
            and not any(cand in line for cand in ";\t|" for line in lines)
        ):
            sep = ";"  # one column of numbers with a decimal comma
        else:
            rows = _split(lines, default)
            counts = [len(r) for r in rows]
            bad = next((i for i, c in enumerate(counts) if c != counts[0]), 0)
            raise ValueError(
                f"{str(path)!r}: the lines do not split into the same number of columns with "
                f"any usual separator (with {_sep_name(default)}, line 1 has {counts[0]} "
                f"field(s) but line {bad + 1} has {counts[bad]}); check the file, or give the "
                "separator with --sep (sep= in read_data)."
            )
    if decimal is None:
        decimal = "."
        if sep != ",":
            fields = [f.strip() for row in _split(lines[1:], sep) for f in row]
            comma = sum(bool(_COMMA_NUMBER.match(f)) for f in fields)
            dot = sum(bool(_DOT_NUMBER.match(f)) for f in fields)
            if comma and not dot:
                decimal = ","
    if decimal == sep:
        raise ValueError(
            f"{str(path)!r}: the separator and the decimal mark are both {sep!r}; they must "
            "differ (e.g. --sep ';' --decimal ',')."
        )
    return sep, decimal


def _describe_text_column(frame: pd.DataFrame, name: Any, decimal: str = ".") -> str:
    """What a non-numeric column holds, for the error message."""
    col = frame[name]
    if pd.api.types.is_datetime64_any_dtype(col) or pd.api.types.is_timedelta64_dtype(col):
        return f"{str(name)!r} holds dates/times"
    values = col.dropna()
    if values.empty:
        return f"{str(name)!r} is empty"
    text = values.astype(str)
    example = text.iloc[0]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            parsed = pd.to_datetime(text.head(50), errors="coerce", format="mixed")
        except (ValueError, TypeError):  # pragma: no cover - pandas version differences
            parsed = pd.Series([pd.NaT])
    if parsed.notna().mean() > 0.8:
        return f"{str(name)!r} holds dates/times (e.g. {example!r})"
    numeric = pd.to_numeric(text.str.replace(",", ".") if decimal == "," else text, errors="coerce")
    if numeric.notna().any():
        bad = text[numeric.isna()]
        row = int(np.flatnonzero(numeric.isna().to_numpy())[0])
        return f"{str(name)!r} (data row {row + 1}: {bad.iloc[0]!r})"
    return f"{str(name)!r} (e.g. {example!r})"


def read_data(
    path: str | os.PathLike,
    *,
    columns: Sequence[str] | None = None,
    dropna: bool = False,
    sep: str | None = None,
    decimal: str | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a data table for fitting: CSV/TSV, Parquet or NumPy ``.npy``.

    Text tables are checked before they are fitted: the field separator (comma, semicolon,
    tab or vertical bar) and the decimal mark (``.`` or ``,``) are detected from the first
    lines unless given, and a file that does not split into numeric columns is refused with
    a message naming the file and the column that looks wrong. A first column without a
    header holding distinct values (the row labels ``DataFrame.to_csv()`` writes, read back
    as ``Unnamed: 0``) is dropped, with a note in ``data.attrs["notes"]``.

    Parameters
    ----------
    path : path-like
        ``.csv``, ``.tsv``/``.tab``/``.txt``, ``.parquet``/``.pq`` or ``.npy`` (a 1-D or 2-D
        real array; columns are named ``x0, x1, ...``).
    columns : sequence of str, optional
        Columns to keep (all by default).
    dropna : bool, default False
        Drop rows with missing values instead of refusing them.
    sep : str, optional
        Field separator of a text table (detected by default).
    decimal : {".", ","}, optional
        Decimal mark of a text table (detected by default).

    Returns
    -------
    data : DataFrame
        The numeric columns as float64, rows with missing values dropped when ``dropna``.
        ``data.attrs["notes"]`` lists what was repaired (an index column dropped, the
        separator or decimal mark detected).
    dropped : ndarray of int
        0-based positions (in the file) of the dropped rows.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        A directory, an empty, header-only or binary file, an unknown format or column,
        a non-numeric column, rows with missing values when ``dropna`` is False (the message
        names them).
    TypeError
        A complex or non-numeric ``.npy`` array.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "eu.csv"
    >>> _ = f.write_text("a;b\\n1,5;2\\n2,5;3\\n")
    >>> read_data(f)[0]["a"].tolist()
    [1.5, 2.5]
    """
    path = check_data_path(path)
    shown = str(path)
    notes: list[str] = []
    suffix = path.suffix.lower()
    if decimal is not None and decimal not in (".", ","):
        raise ValueError(f"decimal={decimal!r} is not supported; use '.' or ','.")
    if sep is not None and (not isinstance(sep, str) or len(sep) != 1):
        raise ValueError(f"sep={sep!r} must be one character, e.g. ',', ';' or a tab.")
    if suffix in TEXT_SUFFIXES:
        sample, encoding = _decode_sample(path)
        sep_given, dec_given = sep, decimal
        sep, decimal = _sniff(path, sample, sep, decimal)
        if sep_given is None and sep != ("\t" if suffix in (".tsv", ".tab") else ","):
            notes.append(f"{shown}: fields are separated by {_sep_name(sep)}")
        if dec_given is None and decimal == ",":
            notes.append(f"{shown}: numbers use a decimal comma")
        header = _split([next(x for x in sample.splitlines() if x.strip())], sep)[0]
        headerless = all(_is_number(f, decimal) for f in header)
        if headerless:
            notes.append(
                f"{shown}: the first line holds numbers, not column names; it is read as data "
                "and the columns are named x0, x1, ..."
            )
        try:
            with warnings.catch_warnings():
                # a row longer than the header would be cut short: refuse it instead
                warnings.simplefilter("error", pd.errors.ParserWarning)
                frame = pd.read_csv(
                    path,
                    sep=sep,
                    decimal=decimal,
                    encoding=encoding,
                    index_col=False,
                    header=None if headerless else "infer",
                    skipinitialspace=True,  # "a, b" names columns a and b
                )
            if headerless:
                frame.columns = [f"x{j}" for j in range(frame.shape[1])]
        except pd.errors.ParserWarning:
            raise ValueError(
                f"{shown!r}: some lines have more fields than the header when split by "
                f"{_sep_name(sep)}; check the separator (--sep) and the decimal mark "
                "(--decimal)."
            ) from None
        except pd.errors.EmptyDataError:
            raise ValueError(f"{shown!r} holds no columns; it holds no data to fit.") from None
        except pd.errors.ParserError as exc:
            detail = str(exc).strip().splitlines()[-1].removeprefix("Error tokenizing data. ")
            raise ValueError(
                f"{shown!r} is not a regular table with {_sep_name(sep)} between fields: "
                f"{detail}; check the file or give --sep/--decimal."
            ) from None
        except UnicodeDecodeError as exc:
            raise ValueError(f"{shown!r} is not readable text ({exc.reason}).") from None
    elif suffix in (".parquet", ".pq"):
        try:
            frame = pd.read_parquet(path)
        except ImportError:
            raise
        except Exception as exc:  # pyarrow raises several types for a damaged file
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"{shown!r} is not a readable Parquet file: {first}") from None
    else:
        frame = _read_npy(path)
    if frame.shape[1] == 0:
        raise ValueError(f"{shown!r}: no columns to fit.")
    frame.columns = [str(c) for c in frame.columns]
    first = frame.columns[0]
    if (
        suffix != ".npy"
        and (first.startswith("Unnamed: 0") or first == "")
        and frame.shape[1] > 1
        and frame[first].is_unique
        and frame[first].notna().all()
    ):
        frame = frame.drop(columns=first)
        notes.append(
            f"{shown}: the first column has no name and holds row labels (as written by "
            "DataFrame.to_csv()); it is not used as a feature"
        )
    if len(frame) == 0:
        raise ValueError(
            f"{shown!r} has a header ({', '.join(map(str, frame.columns))}) but no data rows."
        )
    if columns:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(
                f"{shown!r}: no column(s) {', '.join(map(repr, missing))}; available: "
                f"{', '.join(map(str, frame.columns))}."
            )
        frame = frame[list(columns)]
    text = [c for c in frame.columns if not _is_real(frame[c])]
    if text:
        described = [_describe_text_column(frame, c, decimal or ".") for c in text]
        what = "; ".join(described)
        hint = "select the numeric columns with --columns (columns= in read_data) or convert them"
        if any("dates/times" in d for d in described):
            hint += " (a date can become a number, e.g. days since the first one)"
        if suffix in TEXT_SUFFIXES:
            hint += (
                f"; the file was read with {_sep_name(sep)} between fields and {decimal!r} as "
                "the decimal mark, give --sep/--decimal if that is wrong"
            )
        raise ValueError(f"{shown!r}: column(s) not numeric: {what}; {hint}.")
    frame = frame.astype(np.float64)
    bad = np.flatnonzero(frame.isna().any(axis=1).to_numpy())
    if bad.size == len(frame):
        raise ValueError(f"{shown!r}: every row has missing values; there is no data to fit.")
    if bad.size and not dropna:
        shown_rows = ", ".join(str(int(r) + 1) for r in bad[:10])
        more = f" and {bad.size - 10} more" if bad.size > 10 else ""
        raise ValueError(
            f"{shown!r}: {bad.size} row(s) with missing values (data rows {shown_rows}{more}, "
            "1-based); drop them with --dropna or fill them in."
        )
    frame = frame.drop(index=frame.index[bad]).reset_index(drop=True)
    frame.attrs["name"] = path.stem
    frame.attrs["notes"] = notes
    return frame, bad


def _is_number(text: str, decimal: str) -> bool:
    text = text.strip()
    if decimal == ",":
        text = text.replace(",", ".")
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_real(column: pd.Series) -> bool:
    return (
        pd.api.types.is_numeric_dtype(column)
        and not pd.api.types.is_complex_dtype(column)
        and not pd.api.types.is_timedelta64_dtype(column)
    )


def _read_npy(path: Path) -> pd.DataFrame:
    shown = str(path)
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise TypeError(
                f"{shown!r} holds Python objects, which bayesgmm never unpickles; save a "
                "numeric array (np.save(path, X.astype(float)))."
            ) from None
        raise ValueError(f"{shown!r} is not a readable .npy file: {exc}") from None
    except (OSError, EOFError) as exc:
        raise ValueError(f"{shown!r} is not a readable .npy file: {exc}") from None
    if not isinstance(array, np.ndarray):  # pragma: no cover - np.load of an .npz
        raise ValueError(f"{shown!r} is not a single NumPy array.")
    kind = array.dtype.kind
    if kind == "c":
        raise TypeError(
            f"{shown!r} holds complex numbers; mixture models need real data. Split them into "
            "columns, e.g. np.column_stack([z.real, z.imag])."
        )
    if kind in "mM":
        raise TypeError(
            f"{shown!r} holds dates/times ({array.dtype}); convert them to numbers first."
        )
    if kind not in "biuf":
        raise TypeError(f"{shown!r} holds {array.dtype} values, not numbers; save a numeric array.")
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"{shown!r}: expected a 1-D or 2-D array, got shape {array.shape}.")
    if array.shape[0] == 0:
        raise ValueError(f"{shown!r} holds an array with no rows (shape {array.shape}).")
    return pd.DataFrame(array, columns=[f"x{j}" for j in range(array.shape[1])])
