"""What the retry of failed posteriors costs (issue 13): iris, the default comparison grid.

Runs ``compare_models(iris, n_components=range(1, 7), four covariance types)`` with the
default settings (EM with 5 restarts, 4 chains x 1000 tune + 1000 draws per posterior) once per
condition, each in a fresh process with the same seed and warm compile caches (a small warm-up
run fills them first):

``none``
    ``retry=False``.
``rule``
    ``retry=True``, the default: a posterior that fails its convergence checks is sampled once
    more with twice the draws and tuning, after the grid, nearest misses first, while the
    retries fit in 30 % of the grid's time (``retry_budget``).
``all``
    ``retry=True`` with ``retry_budget=inf``: every failing posterior is retried. Its output
    is the evidence for the budget (which failing first attempts a retry rescues, and what
    the retries of overfitted cells cost).

Prints each condition's wall time and the CPU time of its process (less sensitive to other load
on the machine), their ratios to ``none`` (target: retries add at most 30 %), every sampling
attempt of a failing cell (divergences, R-hat, seconds) and each run's picks and verdict.

    python bench/compare_time.py                      # none and rule, the full grid
    python bench/compare_time.py --conditions none,rule,all
    python bench/compare_time.py --quick              # full and tied covariances, K = 1..3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

from _env import worker_env


def worker(quick: bool, condition: str, warmup: bool) -> None:
    import warnings

    import pandas as pd
    from sklearn.datasets import load_iris

    from bayesgmm import selection
    from bayesgmm.selection import compare_models

    attempts = []
    sample = selection._sample

    def recorded_sample(X, k, cov, seed, n_samples, bayes_fit, options):
        t = time.perf_counter()
        idata = sample(X, k, cov, seed, n_samples, bayes_fit, options)
        check = selection._convergence(idata) or {}
        attempts.append(
            {
                "model": selection._model_name(cov, k),
                "draws": int(options.get("draws", 1000)),
                "seconds": round(time.perf_counter() - t, 1),
                "passed": check.get("passed"),
                "max_rhat": round(float(check.get("max_rhat", float("nan"))), 3),
                "min_ess_bulk": round(float(check.get("min_ess_bulk", float("nan")))),
                "n_divergent": check.get("n_divergent"),
                "n_draws_total": check.get("n_draws_total"),
            }
        )
        return idata

    selection._sample = recorded_sample

    X = load_iris(as_frame=True).data
    grid = (
        {"n_components": range(1, 4), "covariance_types": ("full", "tied")}
        if quick
        else {"n_components": range(1, 7)}
    )
    if warmup:  # compile every kernel the grid needs once, into the shared caches
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compare_models(X, random_state=0, draws=60, tune=60, retry=False, **grid)
        return
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = compare_models(
            X,
            random_state=0,
            retry=condition != "none",
            retry_budget=float("inf") if condition == "all" else selection.RETRY_BUDGET,
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
    failing = {a["model"] for a in attempts if not a["passed"]}
    print("\nsampling attempts of the cells that failed a first attempt:")
    for a in attempts:
        if a["model"] in failing:
            print("ATTEMPT " + json.dumps(a))
    summary = {
        "seconds": elapsed,
        "sampling_seconds": sum(a["seconds"] for a in attempts),
        "cells": len(table),
        "retried": int(table["retried"].sum()),
        "rescued": int((table["retried"] & table["converged"].fillna(False)).sum()),
        "failed": int((~table["converged"].fillna(True).astype(bool)).sum()),
    }
    print("SUMMARY " + json.dumps(summary))


def run(quick: bool, condition: str, cache: str, warmup: bool = False) -> tuple[float, float, dict]:
    env = worker_env(cache)
    cmd = [sys.executable, __file__, "--worker", "--condition", condition]
    cmd += (["--quick"] if quick else []) + (["--warmup"] if warmup else [])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode:
        print(proc.stderr[-3000:])
        raise SystemExit(f"worker failed with exit code {proc.returncode}")
    if warmup:
        return wall, cpu, {}
    print(f"===== {condition}: wall {wall:.1f} s, CPU {cpu:.1f} s, load {os.getloadavg()[0]:.1f}")
    print(proc.stdout, flush=True)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("SUMMARY "))
    return wall, cpu, json.loads(line[len("SUMMARY ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--warmup", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--condition", default="rule", help=argparse.SUPPRESS)
    parser.add_argument(
        "--conditions",
        default="none,rule",
        help="comma-separated conditions to run in this order (none, rule, all)",
    )
    args = parser.parse_args()
    if args.worker:
        worker(args.quick, args.condition, args.warmup)
        return
    conditions = [c.strip() for c in args.conditions.split(",")]
    if "none" not in conditions or not set(conditions) <= {"none", "rule", "all"}:
        raise SystemExit("--conditions must list 'none' and any of 'rule', 'all'")
    results = {}
    with tempfile.TemporaryDirectory(prefix="bayesgmm_compare_") as cache:
        run(args.quick, "none", cache, warmup=True)
        for condition in conditions:
            results[condition] = run(args.quick, condition, cache)
    wall0, cpu0, s0 = results["none"]
    print(f"none: wall {wall0:.1f} s, CPU {cpu0:.1f} s, {s0['failed']} of {s0['cells']} failing")
    for condition in conditions:
        if condition == "none":
            continue
        wall, cpu, s1 = results[condition]
        print(
            f"{condition}: wall {wall:.1f} s (+{100 * (wall / wall0 - 1):.0f} %), CPU "
            f"{cpu:.1f} s (+{100 * (cpu / cpu0 - 1):.0f} %) (target <= +30 %); "
            f"{s1['retried']} of {s1['cells']} cells retried, {s1['rescued']} rescued, "
            f"{s1['failed']} still failing; {os.cpu_count()} CPUs"
        )


if __name__ == "__main__":
    main()
