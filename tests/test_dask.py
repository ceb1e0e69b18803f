"""EM and predictions on Dask arrays (bayesgmm._dask), on a real dask.distributed cluster."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import dask
import dask.array as da
import distributed
import numpy as np
import pytest
from conftest import WELL_SEPARATED

from bayesgmm import EMGaussianMixture, make_mixture
from bayesgmm import em as em_module

COV_TYPES = ("full", "tied", "diag", "spherical")
ATTRS = ("weights_", "means_", "covariances_", "precisions_cholesky_", "lower_bounds_")


@pytest.fixture(scope="module")
def client():
    """Two worker processes, one thread each; a task whose worker dies is retried once."""
    import cloudpickle

    # The flaky loaders below live in this module, which the workers cannot import.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = distributed.LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            dashboard_address=":0",
            memory_limit="1GiB",
        )
    with cluster, distributed.Client(cluster) as c:
        yield c
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    X, _ = make_mixture(1500, **WELL_SEPARATED, random_state=3)
    return np.column_stack([X, X[:, 0] * 0.5 + np.random.default_rng(1).normal(size=1500)])


def _start(X: np.ndarray, cov_type: str) -> dict:
    """A deliberately rough common start (all three *_init), so EM has work to do."""
    base = EMGaussianMixture(3, covariance_type=cov_type, max_iter=1, tol=0.0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one iteration: not converged, on purpose
        base.fit(X[::7])
    return dict(
        weights_init=np.full(3, 1 / 3),
        means_init=base.means_ + 0.3,
        precisions_init=base.precisions_,
    )


def _fit(X, cov_type: str, start: dict, max_iter: int = 12) -> EMGaussianMixture:
    em = EMGaussianMixture(3, covariance_type=cov_type, max_iter=max_iter, tol=0.0, **start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: tol=0 runs all iterations
        return em.fit(X)


def _assert_same_fit(a: EMGaussianMixture, b: EMGaussianMixture, rtol: float) -> None:
    assert a.n_iter_ == b.n_iter_
    for name in ATTRS:
        x, y = getattr(a, name), getattr(b, name)
        err = np.abs(x - y).max() / np.abs(x).max()
        assert err <= rtol, (name, err)


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_dask_fit_equals_in_memory_fit(client, data, cov_type):
    start = _start(data, cov_type)
    ref = _fit(data, cov_type, start)
    got = _fit(da.from_array(data, chunks=(211, 3)), cov_type, start)
    _assert_same_fit(ref, got, 1e-10)
    assert ref.lower_bounds_[-1] > ref.lower_bounds_[0]  # EM moved: the check has teeth


def test_results_do_not_depend_on_workers(client, data):
    """2 workers, 1 worker and the synchronous scheduler give bit-identical parameters."""
    start = _start(data, "full")
    X = da.from_array(data, chunks=(97, 3))
    with distributed.get_task_stream(client=client) as ts:
        two = _fit(X, "full", start, max_iter=6)
    assert len({t["worker"] for t in ts.data}) == 2  # both workers took part
    with dask.config.set(scheduler="synchronous"):
        sync = _fit(X, "full", start, max_iter=6)
    with (
        distributed.LocalCluster(
            n_workers=1, processes=True, threads_per_worker=1, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as one_client,
        dask.config.set(scheduler=one_client.get),
        distributed.get_task_stream(client=one_client) as ts_one,
    ):
        one = _fit(X, "full", start, max_iter=6)
    assert len({t["worker"] for t in ts_one.data}) == 1 and len(ts_one.data) > 6
    for name in ATTRS:
        np.testing.assert_array_equal(getattr(two, name), getattr(sync, name))
        np.testing.assert_array_equal(getattr(two, name), getattr(one, name))


@pytest.mark.parametrize("cov_type", ["full", "spherical"])
def test_weighted_dask_fit_equals_in_memory_fit(client, data, cov_type):
    w = np.random.default_rng(2).integers(0, 4, size=data.shape[0]).astype(float)
    start = _start(data, cov_type)
    em = EMGaussianMixture(3, covariance_type=cov_type, max_iter=8, tol=0.0, **start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = em.fit(data, sample_weight=w)
        ref = {a: getattr(ref, a).copy() for a in ATTRS}
        X = da.from_array(data, chunks=(211, 3))
        for weights in (w, da.from_array(w, chunks=500)):  # NumPy, or Dask chunked otherwise
            em.fit(X, sample_weight=weights)
            for a in ATTRS:
                err = np.abs(getattr(em, a) - ref[a]).max() / np.abs(ref[a]).max()
                assert err <= 1e-10, (a, err)
    bad = w.copy()
    bad[450] = -1.0
    with pytest.raises(ValueError, match=r"sample_weight .* chunk 2 \(rows 422 to 632.*450"):
        em.fit(X, sample_weight=bad)


def test_features_split_across_chunks_are_rechunked(client, data):
    start = _start(data, "diag")
    whole = _fit(da.from_array(data, chunks=(300, 3)), "diag", start, max_iter=4)
    split = _fit(da.from_array(data, chunks=(300, 1)), "diag", start, max_iter=4)
    for name in ATTRS:
        np.testing.assert_array_equal(getattr(whole, name), getattr(split, name))


def test_default_initialisation_on_a_row_sample(client, data, monkeypatch):
    """k-means + EM on a 400-row sample, then EM on all rows: the in-memory optimum."""
    monkeypatch.setattr(em_module, "DASK_INIT_SAMPLE", 400)
    ref = EMGaussianMixture(3, tol=1e-10, max_iter=500, random_state=0).fit(data)
    got = EMGaussianMixture(3, tol=1e-10, max_iter=500, n_init=2, random_state=0)
    got.fit(da.from_array(data, chunks=250))
    assert got.converged_
    np.testing.assert_allclose(got.means_, ref.means_, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got.lower_bound_, ref.lower_bound_, rtol=1e-9)


def test_lazy_predictions_equal_in_memory(client, data):
    em = EMGaussianMixture(3, random_state=0).fit(data)
    X = da.from_array(data, chunks=(333, 3))
    for method in ("predict", "predict_proba", "score_samples"):
        lazy = getattr(em, method)(X)
        assert isinstance(lazy, da.Array), method
        assert lazy.chunks[0] == X.chunks[0], method
        np.testing.assert_allclose(lazy.compute(), getattr(em, method)(data), rtol=1e-12)
    assert em.score(X) == pytest.approx(em.score(data), rel=1e-12)
    labels = EMGaussianMixture(3, random_state=0).fit_predict(X)
    assert isinstance(labels, da.Array)


def test_xarray_and_zarr_input(client, data, tmp_path):
    import xarray as xr
    import zarr  # noqa: F401  (dask.array.from_zarr needs it; a dependency of the test extra)

    start = _start(data, "full")
    ref = _fit(data, "full", start, max_iter=4)
    arr = xr.DataArray(da.from_array(data, chunks=(400, 3)), dims=("obs", "feature"))
    _assert_same_fit(ref, _fit(arr, "full", start, max_iter=4), 1e-10)
    da.from_array(data, chunks=(400, 3)).to_zarr(str(tmp_path / "x.zarr"))
    Z = da.from_zarr(str(tmp_path / "x.zarr"))
    _assert_same_fit(ref, _fit(Z, "full", start, max_iter=4), 1e-10)


# ------------------------------------------------------------------ worker loss
def _flaky_chunk(block: np.ndarray, counter: str, die_on: tuple[int, ...]) -> np.ndarray:
    """Return ``block``, but kill this worker process on the listed calls (1-based)."""
    with open(counter, "a") as fh:
        fh.write("x")
    if os.path.getsize(counter) in die_on:
        os._exit(1)  # a worker lost mid-fit, as when the OOM killer strikes
    return block


def _flaky_array(data: np.ndarray, counter: Path, die_on: tuple[int, ...]):
    from dask import delayed

    half = data.shape[0] // 2
    first = da.from_delayed(
        delayed(_flaky_chunk, pure=False)(data[:half], str(counter), die_on),
        shape=(half, data.shape[1]),
        dtype=np.float64,
    )
    return da.concatenate([first, da.from_array(data[half:], chunks=(300, 3))])


def test_worker_lost_mid_fit_is_retried(client, data, tmp_path):
    start = _start(data, "full")
    ref = _fit(data, "full", start, max_iter=5)
    # calls: 1 = the moments pass, 2 = iteration 1, 3 = iteration 2 (dies), 4 = its retry
    got = _fit(_flaky_array(data, tmp_path / "calls", (3,)), "full", start, max_iter=5)
    assert (tmp_path / "calls").stat().st_size == 7  # moments + 5 iterations + 1 retry
    _assert_same_fit(ref, got, 1e-10)


def test_worker_lost_too_often_fails_clearly(client, data, tmp_path):
    start = _start(data, "full")
    em = EMGaussianMixture(3, max_iter=5, tol=0.0, **start)
    X = _flaky_array(data, tmp_path / "calls", (2, 3))  # iteration 1 and its one retry
    with pytest.raises(RuntimeError, match=r"lost the workers.*no partial result"):
        em.fit(X)
    assert not hasattr(em, "weights_")


# -------------------------------------------------------------------- bad input
def test_nan_reported_with_chunk_and_rows(client, data):
    bad = data.copy()
    bad[250, 1] = np.nan
    bad[260, 0] = np.inf
    with pytest.raises(
        ValueError,
        match=r"NaN and infinity \(inf\) in chunk 2 \(rows 200 to "
        r"299.*250, 260",
    ):
        EMGaussianMixture(2).fit(da.from_array(bad, chunks=(100, 3)))
    em = EMGaussianMixture(2, random_state=0).fit(data)
    with pytest.raises(ValueError, match=r"chunk 2 \(rows 200 to 299"):
        em.predict(da.from_array(bad, chunks=(100, 3))).compute()


def _never(shape):
    from dask import delayed

    def boom():
        raise AssertionError("data were read")

    return da.from_delayed(delayed(boom)(), shape=shape, dtype=np.float64)


def test_too_few_rows_and_empty_refused_before_any_work():
    with pytest.raises(ValueError, match="n_components=5 exceeds n_samples=3"):
        EMGaussianMixture(5).fit(_never((3, 2)))
    with pytest.raises(ValueError, match="X is empty"):
        EMGaussianMixture(1).fit(_never((0, 2)))
    with pytest.raises(ValueError, match="2-D"):
        EMGaussianMixture(1).fit(_never((10,)))
    X = da.from_array(np.arange(20.0).reshape(10, 2), chunks=5)
    with pytest.raises(ValueError, match=r"unknown chunk sizes.*compute_chunk_sizes"):
        EMGaussianMixture(1).fit(X[X[:, 0] > 3])
    with pytest.raises(ValueError, match=r"sample_weight has shape \(9,\), but X has 10"):
        EMGaussianMixture(1).fit(X, sample_weight=np.ones(9))
    em = EMGaussianMixture(1).fit(np.random.default_rng(0).normal(size=(10, 3)))
    with pytest.raises(ValueError, match=r"has 2 features.*fitted with 3"):
        em.predict(X)
    with pytest.raises(TypeError, match="Dask arrays"):
        em.bic(da.from_array(np.ones((4, 3))))


def test_plain_fit_does_not_import_dask():
    code = (
        "import sys, numpy as np\n"
        "from bayesgmm import EMGaussianMixture\n"
        "X = np.random.default_rng(0).normal(size=(200, 2))\n"
        "em = EMGaussianMixture(2, random_state=0).fit(X); em.predict(X)\n"
        "print(sorted(m for m in ('dask', 'distributed') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------ online EM (partial_fit)
def test_partial_fit_one_pass_matches_full_em():
    """One pass over 10^6 rows in batches of 10^4: held-out score within 0.5 % of full EM."""
    X, _ = make_mixture(
        1_100_000,
        weights=[0.5, 0.3, 0.2],
        means=[[0.0, 0.0], [2.5, 0.5], [0.5, 3.0]],  # overlapping components
        covariances=[
            [[1.0, 0.3], [0.3, 1.0]],
            [[0.6, 0.0], [0.0, 1.5]],
            [[1.2, -0.4], [-0.4, 0.8]],
        ],
        random_state=5,
    )
    train, held_out = X[:1_000_000], X[1_000_000:]
    full = EMGaussianMixture(3, tol=1e-6, max_iter=500, random_state=0).fit(train)
    online = EMGaussianMixture(3, random_state=0)
    for start in range(0, train.shape[0], 10_000):
        online.partial_fit(train[start : start + 10_000])
    assert online.n_samples_seen_ == 1_000_000
    assert online.n_iter_ == 100 and online.lower_bounds_.shape == (100,)
    a, b = full.score(held_out), online.score(held_out)
    assert abs(b - a) <= 0.005 * abs(a), (a, b)
    np.testing.assert_allclose(online.weights_.sum(), 1.0)
    # the first batch alone (where the stream starts) is measurably worse than the pass
    first = EMGaussianMixture(3, random_state=0).partial_fit(train[:10_000])
    assert first.n_samples_seen_ == 10_000
    assert abs(first.score(held_out) - a) > abs(b - a)


def test_partial_fit_state_and_checks(data):
    em = EMGaussianMixture(2, random_state=0)
    with pytest.raises(ValueError, match="n_components=2 exceeds n_samples=1"):
        em.partial_fit(data[:1])  # the first batch must initialise every component
    em.partial_fit(data[:200]).partial_fit(data[200:201])
    assert em.n_samples_seen_ == 201 and em.n_iter_ == 2
    with pytest.raises(ValueError, match="features"):
        em.partial_fit(data[:10, :2])
    em.fit(data)  # fit starts over: the next partial_fit begins a new stream
    em.partial_fit(data[:300])
    assert em.n_samples_seen_ == 300 and em.n_iter_ == 1


# ------------------------------------------------------ Bayesian membership on Dask
def test_bayes_membership_on_dask_is_lazy_and_equal(client, faithful_fit):
    from bayesgmm import load_faithful
    from bayesgmm._dask import _SUMMARY_FIELDS

    df = load_faithful()
    X = da.from_array(np.asarray(df, dtype=np.float64), chunks=(100, 2))
    lazy = faithful_fit.membership(X, max_draws=300)
    ref = faithful_fit.membership(df, max_draws=300)
    assert lazy.n_draws == ref.n_draws == 300
    names = [f for f, _, _ in _SUMMARY_FIELDS]
    for f in names:
        assert isinstance(getattr(lazy, f), da.Array), f
        assert getattr(lazy, f).chunks[0] == X.chunks[0], f
    values = dask.compute(*(getattr(lazy, f) for f in names))  # one pass for all fields
    for f, v in zip(names, values, strict=True):
        np.testing.assert_allclose(v, getattr(ref, f), rtol=1e-12, atol=1e-300, err_msg=f)
    labels = faithful_fit.predict(X)
    assert isinstance(labels, da.Array) and labels.chunks[0] == X.chunks[0]
    np.testing.assert_array_equal(labels.compute(), faithful_fit.predict(df))
    proba = faithful_fit.predict_proba(X)
    assert isinstance(proba, da.Array)
    np.testing.assert_allclose(proba.compute(), faithful_fit.predict_proba(df), rtol=1e-12)
    density = faithful_fit.score_samples(X)
    assert isinstance(density, da.Array)
    np.testing.assert_allclose(density.compute(), faithful_fit.score_samples(df), rtol=1e-12)
    with pytest.raises(TypeError, match="needs its data in memory"):
        faithful_fit.fit(X)  # refused before any work: the fitted posterior is untouched
    assert faithful_fit.membership(df, max_draws=300).mean.shape == ref.mean.shape
    bad = np.asarray(df, dtype=np.float64).copy()
    bad[130, 0] = np.nan
    with pytest.raises(ValueError, match=r"chunk 1 \(rows 100 to 199"):
        faithful_fit.membership(da.from_array(bad, chunks=(100, 2))).mean.compute()


def test_warm_start_on_dask_continues_the_fit(client, data):
    start = _start(data, "full")
    X = da.from_array(data, chunks=(400, 3))
    em = EMGaussianMixture(3, warm_start=True, max_iter=3, tol=0.0, **start)
    ref = EMGaussianMixture(3, max_iter=6, tol=0.0, **start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        em.fit(X).fit(X)  # 3 + 3 iterations
        ref.fit(data)  # 6 at once, in memory
    for name in ("weights_", "means_", "covariances_"):
        x, y = getattr(ref, name), getattr(em, name)
        assert np.abs(x - y).max() <= 1e-10 * np.abs(x).max(), name


@pytest.mark.parametrize("cov_type", ["tied", "diag", "spherical"])
def test_partial_fit_other_covariance_types(cov_type):
    X, _ = make_mixture(220_000, **WELL_SEPARATED, random_state=8)
    train, held_out = X[:200_000], X[200_000:]
    full = EMGaussianMixture(3, covariance_type=cov_type, random_state=0).fit(train)
    online = EMGaussianMixture(3, covariance_type=cov_type, random_state=0)
    for start in range(0, train.shape[0], 5_000):
        online.partial_fit(train[start : start + 5_000])
    a, b = full.score(held_out), online.score(held_out)
    assert abs(b - a) <= 0.005 * abs(a), (a, b)
    np.testing.assert_allclose(online.means_, full.means_, atol=0.05)
