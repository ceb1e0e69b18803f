"""What the retry of failed posteriors costs (issue 13): iris, the default comparison grid.

Runs ``compare_models(iris, n_components=range(1, 7), four covariance types)`` with the
default settings (EM with 5 restarts, 4 chains x 1000 tune + 1000 draws per posterior) twice,
each in a fresh process with the same seed and warm compile caches (a small warm-up run fills
them first): once with ``retry=True`` (the default: a posterior that fails its convergence
checks is sampled once more with twice the draws and tuning) and once with ``retry=False``.
Prints both wall times, their ratio (target: retries add at most 30 %), how many cells were
retried and rescued, and each run's picks and verdict.

    python bench/compare_time.py            # the full grid (about 10+ minutes per run)
    python bench/compare_time.py --quick    # full and tied covariances, K = 1..3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from _env import worker_env


def worker(quick: bool, retry: bool, warmup: bool) -> None:
    import warnings

    import pandas as pd
    from sklearn.datasets import load_iris

    from bayesgmm.selection import compare_models

    X = load_iris(as_frame=True).data
    if warmup:  # compile the kernels and the model once, into the shared caches
        compare_models(X, n_components=(1, 2), covariance_types=("full",), random_state=0,
                       draws=100, tune=100, retry=False)  # fmt: skip
        return
    grid = (
        {"n_components": range(1, 4), "covariance_types": ("full", "tied")}
        if quick
        else {"n_components": range(1, 7)}
    )
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = compare_models(
            X,
            random_state=0,
            retry=retry,
            progress=lambda msg: print(msg, file=sys.stderr, flush=True),
            **grid,
        )
    elapsed = time.perf_counter() - t0
    table = result.table
    columns = [
        "model",
        "bic (lower better)",
        "converged",
        "retried",
        "max_rhat",
        "occupied_components",
        "p_all_occupied",
        "elpd_loo (higher better)",
        "max_pareto_k (lower better)",
    ]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table[columns].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print()
    print("best:", result.best)
    print(result.verdict)
    summary = {
        "seconds": elapsed,
        "cells": len(table),
        "retried": int(table["retried"].sum()),
        "rescued": int((table["retried"] & table["converged"].fillna(False)).sum()),
        "failed": int((~table["converged"].fillna(True).astype(bool)).sum()),
    }
    print("SUMMARY " + json.dumps(summary))


def run(quick: bool, retry: bool, cache: str, warmup: bool = False) -> tuple[float, dict]:
    env = worker_env(cache)
    cmd = [sys.executable, __file__, "--worker", "--retry" if retry else "--no-retry"]
    cmd += (["--quick"] if quick else []) + (["--warmup"] if warmup else [])
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        print(proc.stderr[-3000:])
        raise SystemExit(f"worker failed with exit code {proc.returncode}")
    if warmup:
        return wall, {}
    print(f"===== retry={retry}: {wall:.1f} s")
    print(proc.stdout, flush=True)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("SUMMARY "))
    return wall, json.loads(line[len("SUMMARY ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--warmup", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--retry", dest="retry", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-retry", dest="retry", action="store_false", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.quick, args.retry, args.warmup)
        return
    with tempfile.TemporaryDirectory(prefix="bayesgmm_compare_") as cache:
        run(args.quick, False, cache, warmup=True)
        without, s0 = run(args.quick, False, cache)
        with_retry, s1 = run(args.quick, True, cache)
    print(
        f"wall time without retries {without:.1f} s, with retries {with_retry:.1f} s: "
        f"retries add {100 * (with_retry / without - 1):.0f} % (target <= 30 %); "
        f"{s1['retried']} of {s1['cells']} cells retried, {s1['rescued']} rescued, "
        f"{s1['failed']} still failing (without retries: {s0['failed']} failing); "
        f"{os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
