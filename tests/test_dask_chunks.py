"""The compiled helpers of the Dask chunk tasks (bayesgmm._dask) against NumPy references."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from bayesgmm import _dask, _kernels


@pytest.fixture
def block() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.normal(size=(1000, 3)) * [1.0, 30.0, 1e-3] + [5.0, -200.0, 0.01]


@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_standardize_is_bit_identical_to_numpy(block, layout):
    b = {"C": block, "F": np.asfortranarray(block), "strided": block[::2]}[layout]
    centre, scale = b.mean(axis=0), b.std(axis=0)
    out = np.empty((b.shape[0] - 30, 3))
    _dask._standardize_into(b, 30, centre, scale, out)
    np.testing.assert_array_equal(out, ((b - centre) / scale)[30:])


def test_standardize_one_feature():
    x = np.linspace(-3.0, 9.0, 101)[:, None]
    out = np.empty_like(x)
    _dask._standardize_into(x, 0, np.array([1.5]), np.array([0.7]), out)
    np.testing.assert_array_equal(out, (x - 1.5) / 0.7)


@pytest.mark.parametrize("weighted", [False, True])
def test_chunk_moments_match_numpy(block, weighted):
    rng = np.random.default_rng(3)
    w = rng.integers(0, 3, size=block.shape[0]).astype(float) if weighted else None
    # more rows than one summation block, so the blocked sums are exercised
    big = np.tile(block, (10, 1))
    wb = None if w is None else np.tile(w, 10)
    total, mean, m2 = _dask._chunk_moments(big, wb, 0, 0, "X")
    ww = np.ones(big.shape[0]) if wb is None else wb
    ref_mean = (ww @ big) / ww.sum()
    ref_m2 = ww @ (big - ref_mean) ** 2
    assert total == ww.sum()
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(m2, ref_m2, rtol=1e-12)


def test_chunk_moments_zero_weight_and_nan(block):
    total, mean, m2 = _dask._chunk_moments(block, np.zeros(block.shape[0]), 0, 0, "X")
    assert total == 0.0 and not mean.any() and not m2.any()
    bad = block.copy()
    bad[17, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN in chunk 4 \(rows 500 to 1499.*row\(s\) 517"):
        _dask._chunk_moments(bad, None, 4, 500, "X")


def _stats(kind: str, k: int, d: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(k, d))
    if kind == "full":
        pc = np.stack([np.triu(rng.normal(size=(d, d)) * 0.1) + np.eye(d) for _ in range(k)])
        log_det = np.log(np.abs(np.diagonal(pc, axis1=1, axis2=2))).sum(axis=1)
    else:
        pc = rng.uniform(0.5, 1.5, size=(k, d))
        log_det = np.log(pc).sum(axis=1)
    log_const = np.log(np.full(k, 1.0 / k)) + log_det - 0.5 * d * np.log(2 * np.pi)
    return log_const, means, pc


@pytest.mark.parametrize("kind", ["full", "diag"])
@pytest.mark.parametrize("weighted", [False, True])
def test_chunk_em_in_slices_equals_one_pass(block, kind, weighted, monkeypatch):
    """A chunk cut in slices (here of 64 rows, 15 full and a ragged last one) gives the
    statistics of one kernel pass over the whole standardised chunk."""
    monkeypatch.setattr(_dask, "_SLICE_ROWS", 64)
    rng = np.random.default_rng(5)
    w = rng.uniform(0, 2, size=block.shape[0]) if weighted else None
    centre, scale = block.mean(axis=0), block.std(axis=0)
    log_const, means, pc = _stats(kind, 4, 3)
    got = _dask._chunk_em(block, w, centre, scale, kind, log_const, means, pc)
    Z = np.ascontiguousarray((block - centre) / scale)
    ref = _kernels.em_pass(kind, Z, np.ones(len(Z)) if w is None else w, log_const, means, pc)
    assert got[0] == pytest.approx(ref[0], rel=1e-12)
    for a, b in zip(got[1:], ref[1:], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12 * np.abs(b).max())


def test_chunk_em_empty_chunk():
    log_const, means, pc = _stats("full", 2, 3)
    ll, nk, s1, s2 = _dask._chunk_em(
        np.empty((0, 3)), None, np.zeros(3), np.ones(3), "full", log_const, means, pc
    )
    assert ll == 0.0 and nk.shape == (2,) and s1.shape == (2, 3) and s2.shape == (2, 3, 3)
    assert not (nk.any() or s1.any() or s2.any())


def test_one_thread_restores_the_thread_count():
    before = numba.get_num_threads()
    inside = _dask._one_thread(numba.get_num_threads)
    assert inside == 1
    assert numba.get_num_threads() == before
    with pytest.raises(ZeroDivisionError):
        _dask._one_thread(lambda: 1 / 0)
    assert numba.get_num_threads() == before
