"""Input checks shared by every public entry point.

Every error raised here says what was wrong, what was expected and how to fix it, with one
wording across the package. Wrong values or shapes raise ``ValueError``; wrong types raise
``TypeError``.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np
from sklearn.utils import check_random_state as _sk_check_random_state
from sklearn.utils.validation import validate_data

__all__ = [
    "check_X",
    "check_choice",
    "check_n_components",
    "check_positive",
    "check_random_state",
    "check_sample_weight",
    "check_scale",
]

_MAX_ROWS_NAMED = 5

#: Standard deviations a non-constant feature may have. Covariances are stored in the data's
#: units, so a variance must stay well inside float64's range (about 1e-308 to 1e308) even
#: after a component shrinks to a small fraction of the data's spread; 1e-140 and 1e140
#: leave 28 orders of magnitude of room at either end.
SCALE_LIMITS = (1e-140, 1e140)
#: A feature whose spread is below this fraction of its largest magnitude is constant up to
#: rounding (float64 resolves about 16 digits).
_CONSTANT_RTOL = 1e-12
#: Magnitudes above this (or below its inverse) are rescaled before squaring.
_PRESCALE_ABOVE = 1e100


def _describe_rows(rows: np.ndarray) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:_MAX_ROWS_NAMED])
    more = f" and {rows.size - _MAX_ROWS_NAMED} more" if rows.size > _MAX_ROWS_NAMED else ""
    return f"row{'s' if rows.size > 1 else ''} {shown}{more}"


def _check_finite(X: np.ndarray, name: str) -> None:
    """Raise a ValueError naming the rows that hold NaN or infinity."""
    if X.dtype.kind not in "fc" or np.isfinite(X).all():
        return
    bad_nan = np.flatnonzero(np.isnan(X).any(axis=1))
    bad_inf = np.flatnonzero(np.isinf(X).any(axis=1))
    parts = []
    if bad_nan.size:
        parts.append(f"NaN in {_describe_rows(bad_nan)}")
    if bad_inf.size:
        parts.append(f"infinity (inf) in {_describe_rows(bad_inf)}")
    raise ValueError(
        f"Input {name} contains {' and '.join(parts)} (0-based); mixture models need finite "
        "values. Drop or impute those rows before fitting."
    )


def check_X(
    X: Any,
    *,
    estimator: Any = None,
    reset: bool = True,
    name: str = "X",
    min_samples: int = 1,
) -> np.ndarray:
    """Validate a data matrix and return it as a C-contiguous float64 array.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Numeric data; a pandas DataFrame is accepted and, with ``estimator``, its column
        names are recorded in ``feature_names_in_``.
    estimator : estimator, optional
        When given, scikit-learn's ``validate_data`` also records or checks
        ``n_features_in_``/``feature_names_in_`` on it (``reset`` decides which).
    reset : bool, default=True
        Record (True, at ``fit``) or check (False, at ``predict``) the feature count.
    name : str, default="X"
        The name used in error messages.
    min_samples : int, default=1
        Fewest rows accepted.

    Returns
    -------
    ndarray of shape (n_samples, n_features), dtype float64

    Raises
    ------
    TypeError
        If ``X`` holds strings or other non-numeric values.
    ValueError
        If ``X`` is empty, not 2-D, or holds NaN/inf.
    """
    dtypes = getattr(X, "dtypes", None)  # a DataFrame: name its date/time columns
    if dtypes is not None and hasattr(dtypes, "items"):
        dates = [str(c) for c, t in dtypes.items() if getattr(t, "kind", None) in ("m", "M")]
        if dates:
            raise TypeError(
                f"{name} column(s) {', '.join(map(repr, dates))} hold dates/times; mixture "
                "models need numbers. Drop them or convert them (e.g. to days since the first "
                "date) before fitting."
            )
    kwargs = dict(
        dtype=np.float64,
        order="C",
        ensure_all_finite=False,
        ensure_min_samples=min_samples,
        ensure_2d=True,
    )
    try:
        if estimator is not None:
            arr = validate_data(estimator, X, reset=reset, **kwargs)
        else:
            from sklearn.utils import check_array

            arr = check_array(X, input_name=name, **kwargs)
    except ValueError as exc:
        msg = str(exc)
        if msg.startswith("Complex data not supported"):
            raise ValueError(
                f"Complex data not supported: {name} holds complex numbers; mixture models need "
                "real data. Split them into columns, e.g. np.column_stack([z.real, z.imag])."
            ) from None
        if "could not convert" in msg or "Unable to convert" in msg:
            raise TypeError(
                f"{name} must be numeric, but it holds text ({msg}). Select the numeric "
                "columns or encode categorical features before fitting."
            ) from exc
        if "Expected 2D array" in msg or "Expected a 2-dimensional" in msg:
            raise ValueError(f"{name} must be 2-D of shape (n_samples, n_features); {msg}") from exc
        raise
    except TypeError as exc:
        raise TypeError(
            f"{name} must be numeric: {exc}. Select the numeric columns or encode categorical "
            "features before fitting."
        ) from exc
    _check_finite(arr, name)
    return arr


def check_sample_weight(sample_weight: Any, n_samples: int) -> np.ndarray:
    """Validate frequency weights: finite, non-negative, not all zero, one per sample.

    Returns
    -------
    ndarray of shape (n_samples,), dtype float64
        All ones when ``sample_weight`` is None.
    """
    if sample_weight is None:
        return np.ones(n_samples)
    if isinstance(sample_weight, numbers.Number):
        sample_weight = np.full(n_samples, float(sample_weight))
    try:
        w = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"sample_weight must be numeric: {exc}.") from exc
    if w.ndim != 1 or w.shape[0] != n_samples:
        raise ValueError(
            f"sample_weight has shape {w.shape}, but X has {n_samples} samples; pass one "
            "weight per row, shape (n_samples,)."
        )
    if not np.isfinite(w).all():
        raise ValueError("sample_weight contains NaN or inf; weights must be finite.")
    if (w < 0).any():
        raise ValueError("sample_weight has negative values; frequency weights must be >= 0.")
    if w.sum() <= 0:
        raise ValueError("sample_weight sums to zero; at least one sample needs weight > 0.")
    return np.ascontiguousarray(w)


def check_n_components(n_components: Any, n_samples: int | None = None) -> int:
    """Check that ``n_components`` is an integer in ``[1, n_samples]``."""
    if isinstance(n_components, bool) or not isinstance(n_components, numbers.Integral):
        raise TypeError(
            f"n_components must be an integer, got {n_components!r} "
            f"({type(n_components).__name__})."
        )
    if n_components < 1:
        raise ValueError(f"n_components={n_components} is invalid; it must be at least 1.")
    if n_samples is not None and n_components > n_samples:
        raise ValueError(
            f"n_components={n_components} exceeds n_samples={n_samples}; use fewer "
            "components or more data."
        )
    return int(n_components)


def check_choice(name: str, value: Any, allowed: Iterable[str]) -> str:
    """Check that an option string is one of ``allowed``."""
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        options = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name}={value!r} is not supported; choose one of {options}.")
    return value


def check_positive(
    name: str, value: Any, *, integer: bool = False, allow_zero: bool = False
) -> float | int:
    """Check a positive (or non-negative) scalar option."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        what = "an integer" if integer else "a number"
        raise TypeError(f"{name} must be {what}, got {value!r} ({type(value).__name__}).")
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}={value!r} is invalid; it must be finite and {bound}.")
    return value


def check_random_state(seed: Any) -> np.random.RandomState:
    """Turn ``None``, an int, a ``RandomState`` or a ``Generator`` into a ``RandomState``.

    ``None``, ints and ``RandomState`` instances follow scikit-learn's rule, so an int seed
    gives the same stream as before ``Generator`` support existed. A
    :class:`numpy.random.Generator` is wrapped: the returned ``RandomState`` draws from the
    generator's own bit generator, so it advances the generator (as passing a ``RandomState``
    instance advances that instance) and two fits from equally seeded generators agree.

    Raises
    ------
    TypeError
        For anything else, naming what is accepted.
    """
    if isinstance(seed, np.random.Generator):
        return np.random.RandomState(seed.bit_generator)
    if isinstance(seed, np.random.BitGenerator):
        return np.random.RandomState(seed)
    if seed is None or isinstance(seed, numbers.Integral | np.random.RandomState):
        return _sk_check_random_state(seed)
    raise TypeError(_RANDOM_STATE_HELP.format(seed=seed, kind=type(seed).__name__))


_RANDOM_STATE_HELP = (
    "random_state={seed!r} ({kind}) is not accepted; pass None, an int seed, a "
    "numpy.random.Generator (e.g. np.random.default_rng(0)) or a numpy.random.RandomState."
)


def _weighted_mean_std(X: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and standard deviation per column (matrix products: fast for any D)."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        total = w.sum()
        mean = (w @ X) / total
        dev = X - mean
        return mean, np.sqrt(np.einsum("i,ij,ij->j", w, dev, dev) / total)


def check_scale(
    X: np.ndarray,
    sample_weight: np.ndarray | None = None,
    *,
    name: str = "X",
    feature_names: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and standard deviation of every feature, refusing extreme units.

    Computed without overflow or underflow whatever the magnitude of ``X`` (a feature too
    large or too small to square is first divided by a power of two near its largest
    magnitude, which is exact).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Validated, finite data.
    sample_weight : ndarray of shape (n_samples,), optional
        Frequency weights (all ones when omitted).
    name : str, default="X"
        The name used in error messages.
    feature_names : sequence of str, optional
        Feature names for error messages.

    Returns
    -------
    centre : ndarray of shape (n_features,)
        Weighted mean.
    std : ndarray of shape (n_features,)
        Weighted standard deviation (``ddof=0``); exactly 0 for a feature that is constant up
        to rounding (spread below ``1e-12`` of its magnitude).

    Raises
    ------
    ValueError
        If a non-constant feature's standard deviation lies outside
        ``[1e-140, 1e140]``: its covariances could not be represented in float64 in the
        data's units. The message says how to rescale.
    """
    X = np.asarray(X, dtype=np.float64)
    w = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, np.float64)
    centre, std = _weighted_mean_std(X, w)
    # Features whose squares overflow or underflow are redone after dividing them by a power
    # of two near their largest magnitude (exact, so nothing else changes).
    redo = ~(np.isfinite(centre) & np.isfinite(std)) | (np.abs(centre) > _PRESCALE_ABOVE)
    redo |= std < 1.0 / _PRESCALE_ABOVE  # tiny or zero: squares may have underflowed
    magnitude = np.abs(centre)
    if redo.any():
        cols = np.flatnonzero(redo)
        sub = X[:, cols]
        amax = np.maximum(sub.max(axis=0), -sub.min(axis=0))
        factor = np.ldexp(1.0, np.frexp(np.where(amax > 0, amax, 1.0))[1])
        c, sd = _weighted_mean_std(sub / factor, w)
        centre[cols], std[cols], magnitude[cols] = c * factor, sd * factor, amax
    constant = std <= _CONSTANT_RTOL * magnitude
    std = np.where(constant, 0.0, std)
    low, high = SCALE_LIMITS
    bad = np.flatnonzero(~constant & ((std < low) | (std > high)))
    if bad.size:
        j = int(bad[0])
        label = f"feature {j}"
        if feature_names is not None:
            label += f" ({str(list(feature_names)[j])!r})"
        exponent10 = int(np.round(np.log10(std[j])))
        hint = (
            f"divide it by 1e{exponent10}" if exponent10 > 0 else f"multiply it by 1e{-exponent10}"
        )
        raise ValueError(
            f"{name} is on a scale that float64 cannot fit: {label} has standard deviation "
            f"{std[j]:.3g}, and covariances in these units would "
            f"{'overflow' if std[j] > high else 'underflow'}. bayesgmm fits features whose "
            f"standard deviation lies between {low:g} and {high:g}. Rescale {name} (for "
            f"example {hint}, or standardise every feature) and fit again."
        )
    return centre, std
