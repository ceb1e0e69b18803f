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
]

_MAX_ROWS_NAMED = 5


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
                f"{name} holds complex numbers; mixture models need real data. Split them into "
                "columns, e.g. np.column_stack([z.real, z.imag])."
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
    """Turn ``None``, an int or a ``RandomState`` into a ``RandomState`` (scikit-learn's rule)."""
    return _sk_check_random_state(seed)
