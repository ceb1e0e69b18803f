"""Wall time of the full Old Faithful model comparison (issue 5): EM and NUTS, cold and warm.

Runs ``compare_models(load_faithful(), n_components=range(1, 6), four covariance types,
methods=("em", "bayes"), n_init=20)`` with the default sampler settings (4 chains x 1000 tune + 1000
draws) in a fresh process, twice: "cold" with empty Numba/PyTensor caches (a temporary
directory) and "warm" with the caches the first run left. Prints both wall times, the table
and the verdict of the warm run.

    python bench/compare_time.py            # the full grid (target: <= 10 minutes warm)
    python bench/compare_time.py --quick    # K = 1..3, 300 + 300 draws
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from _env import worker_env


def worker(quick: bool) -> None:
    import pandas as pd

    from bayesgmm import load_faithful
    from bayesgmm.selection import compare_models

    options = {"draws": 300, "tune": 300} if quick else {}
    t0 = time.perf_counter()
    result = compare_models(
        load_faithful(),
        n_components=range(1, 4 if quick else 6),
        random_state=0,
        n_init=20,  # EM restarts: 5 miss the tied K=3 optimum on Faithful (-1126.3)
        progress=lambda msg: print(msg, file=sys.stderr, flush=True),
        **options,
    )
    elapsed = time.perf_counter() - t0
    columns = [
        "model",
        "degenerate",
        "bic (lower better)",
        "aic (lower better)",
        "icl (lower better)",
        "waic_deviance (lower better)",
        "loo_deviance (lower better)",
        "max_pareto_k",
        "n_pareto_k_gt_0.7",
    ]
    table = result.table[[c for c in columns if c in result.table.columns]]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    print()
    print("best:", result.best)
    print(result.verdict)
    print(f"in-process time: {elapsed:.1f} s")


def run(quick: bool, cache: str) -> float:
    env = worker_env(cache)
    cmd = [sys.executable, __file__, "--worker"] + (["--quick"] if quick else [])
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        print(proc.stderr[-3000:])
        raise SystemExit(f"worker failed with exit code {proc.returncode}")
    print(proc.stdout)
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.quick)
        return
    with tempfile.TemporaryDirectory(prefix="bayesgmm_compare_") as cache:
        cold = run(args.quick, cache)
        warm = run(args.quick, cache)
    print(f"whole process wall time: cold {cold:.1f} s, warm {warm:.1f} s ({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
