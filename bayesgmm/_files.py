"""Cheap checks of the files the command line reads, with no heavy imports.

The command line calls these before it imports pandas, scikit-learn or the Bayesian stack, so
a mistyped path is answered at once.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_FORMATS = ".csv, .tsv/.tab/.txt, .parquet/.pq or .npy"
TEXT_SUFFIXES = (".csv", ".tsv", ".tab", ".txt")
DATA_SUFFIXES = (*TEXT_SUFFIXES, ".parquet", ".pq", ".npy")


def check_data_path(path: str | os.PathLike) -> Path:
    """Check that ``path`` names a non-empty data file of a known format.

    Parameters
    ----------
    path : path-like

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileNotFoundError
        If nothing exists at ``path``.
    ValueError
        If ``path`` is a directory, an empty file or of an unknown format.
    """
    p = Path(path)
    shown = str(p)
    if not p.exists():
        raise FileNotFoundError(f"Data file {shown!r} does not exist; check the path.")
    if p.is_dir():
        raise ValueError(
            f"{shown!r} is a directory, not a data file; give the path of a {DATA_FORMATS} file."
        )
    if not p.is_file():
        raise ValueError(f"{shown!r} is not a regular file; give the path of a data file.")
    suffix = p.suffix.lower()
    if suffix not in DATA_SUFFIXES:
        raise ValueError(f"{shown!r}: unknown data format {suffix!r}; use {DATA_FORMATS}.")
    if p.stat().st_size == 0:
        raise ValueError(f"{shown!r} is empty (0 bytes); it holds no data to fit.")
    return p
