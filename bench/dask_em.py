"""EM on a Dask array stored as zarr, on a LocalCluster, against in-memory EM.

Writes ``--rows`` rows (D = 3, K = 5, float64) to a zarr store (uncompressed unless
``--compress``), chunk by chunk, never all in memory, and fits them on a ``LocalCluster`` of
``--workers`` worker processes with one thread and ``--memory-limit`` each, from a fixed start
for ``--iters`` iterations. In the same run it fits the first ``min(rows, --memory-rows)``
rows in memory from the same start: with as many kernel threads as the cluster has worker
threads (the like-for-like reference: the same number of cores), just before and just after
the Dask fit (on a shared machine the load changes within minutes; the two bracket it), and
once with one thread.

Prints the wall time of each EM iteration (one pass over the data and the M-step; from the
estimator's per-iteration log), CPU time (user + sys) of the worker processes and of this
process, the load average, each worker's peak resident memory, the per-row throughput of the
Dask fit relative to in-memory EM (target >= 0.5) in wall time and in CPU time (the latter
does not depend on the machine's load), and the difference of the mean
log-likelihood per row between the two fits (they see different rows when ``--rows`` exceeds
``--memory-rows``: the difference is then sampling noise, not error).

    python bench/dask_em.py --rows 2e6                    # a smoke run
    python bench/dask_em.py --rows 2e8 --memory-rows 1e7  # the issue's case (4.8 GB on disk)

Set ``OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1`` (the workers inherit them). The store goes
in a temporary directory (or ``--store``) and is deleted at the end unless ``--keep-store``.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import shutil
import statistics
import tempfile
import time
import warnings

import numpy as np

from bayesgmm import EMGaussianMixture, make_mixture

D, K = 3, 5
MEANS = np.array([[0, 0, 0], [4, 0, 0], [0, 4, 0], [0, 0, 4], [4, 4, 4]], dtype=float)
COVS = np.stack([np.eye(D) * s for s in (1.0, 0.6, 1.4, 0.8, 1.1)])
WEIGHTS = np.full(K, 1.0 / K)


def _chunk(i: int, rows: int) -> np.ndarray:
    X, _ = make_mixture(rows, WEIGHTS, MEANS, COVS, random_state=1000 + i)
    return X


def write_zarr(path: str, n: int, chunk: int, compress: bool = False) -> None:
    import dask.array as da
    from dask import delayed

    sizes = [min(chunk, n - s) for s in range(0, n, chunk)]
    parts = [
        da.from_delayed(delayed(_chunk)(i, m), shape=(m, D), dtype=np.float64)
        for i, m in enumerate(sizes)
    ]
    # Random float64 data hardly compress, and a compressed chunk must be decoded on every EM
    # pass (measured here: 4e6 x 3 rows read in 0.34 s with zarr's default codec, 0.05 s
    # without), so the store is uncompressed unless asked.
    da.concatenate(parts).to_zarr(path, **({} if compress else {"compressors": None}))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu_seconds() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


class _IterationClock(logging.Handler):
    """Records when each EM iteration ends (the estimator logs it at verbose=2)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.times: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().lstrip().startswith("iteration"):
            self.times.append(time.perf_counter())


def _timed_fit(X, kw: dict, client=None) -> dict:
    """Fit with per-iteration wall times, the fit's wall time and CPU time (this process and,
    with a client, the workers)."""
    clock = _IterationClock()
    log = logging.getLogger("bayesgmm")
    log.addHandler(clock)
    log.setLevel(logging.INFO)
    load0 = os.getloadavg()[0]
    w0 = client.run(_cpu_seconds) if client is not None else {}
    c0, t0 = _cpu_seconds(), time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tol=0: ConvergenceWarning by design
            em = EMGaussianMixture(K, verbose=2, **kw).fit(X)
    finally:
        log.removeHandler(clock)
    wall, c1 = time.perf_counter() - t0, _cpu_seconds()
    w1 = client.run(_cpu_seconds) if client is not None else {}
    cpu = (c1[0] - c0[0], c1[1] - c0[1])
    iters = np.diff(clock.times)  # iteration 2.. : one pass and the M-step each
    return dict(
        em=em,
        wall=wall,
        cpu=cpu,
        workers_cpu=(
            sum(w1[a][0] - w0[a][0] for a in w0),
            sum(w1[a][1] - w0[a][1] for a in w0),
        ),
        iter_times=iters,
        per_iter=statistics.median(iters),
        load=(load0, os.getloadavg()[0]),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=float, default=2e6)
    ap.add_argument("--memory-rows", type=float, default=1e7)
    ap.add_argument("--chunk", type=float, default=1e6, help="rows per zarr/Dask chunk")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--memory-limit", default="3GB")
    ap.add_argument("--compress", action="store_true", help="zarr's default codec")
    ap.add_argument("--store", help="zarr store path (reused if it exists)")
    ap.add_argument("--keep-store", action="store_true")
    ap.add_argument(
        "--malloc-heap",
        action="store_true",
        help="workers keep freed memory in glibc's heap (MALLOC_MMAP_THRESHOLD_ and "
        "MALLOC_TRIM_THRESHOLD_ 1 GiB instead of distributed's MALLOC_TRIM_THRESHOLD_=65536)",
    )
    args = ap.parse_args()
    n, n_mem, chunk = int(args.rows), int(min(args.rows, args.memory_rows)), int(args.chunk)
    if args.iters < 3:
        ap.error("--iters must be at least 3 (iterations 2.. are timed)")

    import dask
    import dask.array as da
    import numba
    from dask.distributed import Client, LocalCluster

    if args.malloc_heap:
        env = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
        env.update(MALLOC_MMAP_THRESHOLD_=2**30, MALLOC_TRIM_THRESHOLD_=2**30)
        dask.config.set({"distributed.nanny.pre-spawn-environ": env})

    tmp = None if args.store else tempfile.mkdtemp(prefix="bayesgmm-dask-bench-")
    path = args.store or os.path.join(tmp, "x.zarr")
    start = dict(
        weights_init=WEIGHTS,
        means_init=MEANS + 0.5,
        precisions_init=np.stack([np.eye(D)] * K),
    )
    kw = dict(max_iter=args.iters, tol=0.0, **start)
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    try:
        with (
            LocalCluster(
                n_workers=args.workers,
                threads_per_worker=1,
                processes=True,
                memory_limit=args.memory_limit,
                dashboard_address=":0",
            ) as cluster,
            Client(cluster) as client,
        ):
            if not os.path.exists(path):
                t0 = time.perf_counter()
                write_zarr(path, n, chunk, args.compress)
                print(f"wrote {n:,} x {D} rows to zarr in {time.perf_counter() - t0:.1f} s")
            X = da.from_zarr(path)
            assert X.shape == (n, D), f"{path} holds {X.shape}, not {(n, D)}"
            X_mem = np.asarray(X[:n_mem].compute())
            threads = min(args.workers, numba.get_num_threads())  # one thread per worker
            default_threads = numba.get_num_threads()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                EMGaussianMixture(K, **{**kw, "max_iter": 1}).fit(X[: X.chunks[0][0]])  # warm up
                EMGaussianMixture(K, **{**kw, "max_iter": 1}).fit(X_mem[:10_000])  # compile
            # The in-memory reference runs just before and just after the Dask fit: on a
            # shared machine the load changes within minutes, and the two bracket it.
            numba.set_num_threads(threads)
            mem_before = _timed_fit(X_mem, kw)
            dask_run = _timed_fit(X, kw, client)
            peaks = client.run(_peak_rss_mb)
            mem_after = _timed_fit(X_mem, kw)
            numba.set_num_threads(1)
            mem_run1 = _timed_fit(X_mem, kw)
            numba.set_num_threads(default_threads)
    finally:
        if tmp is not None and not args.keep_store:
            shutil.rmtree(tmp, ignore_errors=True)

    def line(run: dict, rows: int) -> str:
        t = ", ".join(f"{v:.2f}" for v in run["iter_times"])
        (u, s), (wu, ws) = run["cpu"], run["workers_cpu"]
        total = u + s + wu + ws
        who = (
            f"workers {wu:.1f} user + {ws:.1f} sys, client and scheduler {u:.1f} + {s:.1f}"
            if wu + ws
            else f"{u:.1f} user + {s:.1f} sys"
        )
        return (
            f"  wall per iteration (median of iterations 2..{args.iters}): {run['per_iter']:.3f} s"
            f" [{t}]\n  whole fit: {run['wall']:.1f} s wall, CPU {total:.1f} s ({who}) = "
            f"{total * 1e9 / (rows * (args.iters + 1)):.0f} ns per row and pass; load "
            f"average {run['load'][0]:.2f} -> {run['load'][1]:.2f}"
        )

    store = "uncompressed" if not args.compress else "zarr's default codec"
    print(
        f"Dask fit: {n:,} rows ({n * D * 8 / 1e9:.1f} GB float64, zarr {store}, chunks of "
        f"{X.chunks[0][0]:,} rows), LocalCluster of {args.workers} worker processes x 1 "
        f"thread, {args.memory_limit} each; compiled kernel on 1 thread per task"
        + ("; workers' glibc heap kept (--malloc-heap)" if args.malloc_heap else "")
    )
    print(line(dask_run, n))
    for addr, mb in sorted(peaks.items()):
        print(f"  peak RSS of worker {addr}: {mb:.0f} MB")
    for when, run in (("just before", mem_before), ("just after", mem_after)):
        print(f"In-memory fit {when}: {n_mem:,} rows, one process, kernel on {threads} thread(s)")
        print(line(run, n_mem))
    print(f"In-memory fit, kernel on 1 thread: {n_mem:,} rows")
    print(line(mem_run1, n_mem))
    rate_dask = n / dask_run["per_iter"]
    rate_mem = [n_mem / r["per_iter"] for r in (mem_before, mem_after)]
    ratios = [rate_dask / r for r in rate_mem]
    ratio1 = rate_dask / (n_mem / mem_run1["per_iter"])
    print(
        f"throughput ratio per iteration (Dask rows/s over in-memory rows/s, {threads} "
        f"core(s) each): {rate_dask / np.mean(rate_mem):.2f} (target >= 0.5; "
        f"{ratios[0]:.2f} against the run before, {ratios[1]:.2f} against the one after); "
        f"against in-memory on 1 thread: {ratio1:.2f}"
    )
    cpu_dask = (sum(dask_run["cpu"]) + sum(dask_run["workers_cpu"])) / n
    cpu_mem = np.mean([sum(r["cpu"]) for r in (mem_before, mem_after)]) / n_mem
    print(
        f"CPU time per row, in-memory ({threads} thread(s)) over Dask, whole fits (the same "
        f"ratio without the load's effect on wall time): {cpu_mem / cpu_dask:.2f}"
    )
    a, b = dask_run["em"].lower_bound_, mem_after["em"].lower_bound_
    same = "same rows" if n == n_mem else "different rows: sampling noise"
    print(
        f"mean log-likelihood per row after {args.iters} iterations: Dask {a:.8f}, in memory "
        f"{b:.8f}, difference {a - b:.2e} ({same})"
    )
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
