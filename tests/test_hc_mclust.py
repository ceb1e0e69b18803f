"""The hierarchical start (``init_params="hc"``) against R's mclust itself.

tests/data/mclust_hc_{faithful,iris}.csv hold mclust 6.0.0's partitions from its default
agglomeration (model VVV on the ``hcUse = "SVD"`` transform, every row its own starting
cluster), cut at K = 2..10, made by tests/data/mclust_reference.R. Faithful has 16
duplicated rows and rounded values, so its agglomeration meets many exact ties: equal
partitions show that the criterion, the transform and the order in which ties are broken
are mclust's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris

from bayesgmm import load_faithful
from bayesgmm._hc import hc_labels

DATA = Path(__file__).parent / "data"


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when ``a`` and ``b`` split the rows alike (labels may be named differently)."""
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_same_partition_helper():
    assert same_partition(np.array([0, 0, 1, 2]), np.array([5, 5, 3, 1]))
    assert not same_partition(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]))
    assert not same_partition(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 2]))


@pytest.mark.parametrize(
    ("name", "load"),
    [("faithful", lambda: load_faithful().to_numpy()), ("iris", lambda: load_iris().data)],
)
def test_hc_partitions_are_mclusts(name, load):
    X = load()
    reference = pd.read_csv(DATA / f"mclust_hc_{name}.csv")
    assert len(reference) == len(X)
    for column in reference.columns:
        k = int(column)
        ours = hc_labels(X, k)
        assert len(np.unique(ours)) == k
        assert same_partition(ours, reference[column].to_numpy()), f"{name}, K={k}"


def test_hc_partition_does_not_depend_on_weights_of_one():
    X = load_faithful().to_numpy()
    np.testing.assert_array_equal(hc_labels(X, 4), hc_labels(X, 4, np.ones(len(X))))
