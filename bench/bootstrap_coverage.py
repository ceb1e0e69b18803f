"""How often do the EM bootstrap's percentile intervals cover the true parameters (issue 18)?

Simulates data sets of N = 50 and N = 500 points from one known two-component 2-D mixture
(full covariances), fits EM (5 k-means starts) to each, bootstraps the fit with both kinds
(``"nonparametric"`` and ``"weighted"``) and counts how often the 95 % percentile interval of
each parameter contains its true value. Prints, per N, kind and parameter kind (weights,
means, standard deviations, correlations), the coverage over all replications and elements,
its Monte Carlo standard error (binomial over replications, ignoring the correlation between
elements of one replication, so a little optimistic), the mean interval width, and how many
replicates and replications were unusable.

The fit's labels are matched to the true components by the nearest means (Hungarian); a
replication whose EM fit is degenerate, or whose bootstrap has fewer than 2 usable
replicates, is counted and left out.

    nice -n 10 python bench/bootstrap_coverage.py               # R = 100, n_boot = 200
    python bench/bootstrap_coverage.py --reps 20 --n-boot 100   # a quick look
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from bayesgmm import EMGaussianMixture, make_mixture

WEIGHTS = np.array([0.4, 0.6])
MEANS = np.array([[0.0, 0.0], [4.0, 2.0]])
COVARIANCES = np.array([[[1.0, 0.3], [0.3, 1.0]], [[1.5, -0.4], [-0.4, 0.8]]])
SIZES = (50, 500)
KINDS = ("nonparametric", "weighted")
LEVEL = 0.95


def truth_table() -> dict[tuple[str, int, int, int], float]:
    """True value of every parameter element, keyed like the bootstrap table's rows."""
    sds = np.sqrt(np.diagonal(COVARIANCES, axis1=1, axis2=2))
    out: dict[tuple[str, int, int, int], float] = {}
    for k in range(2):
        out[("weights", k, -1, -1)] = WEIGHTS[k]
        for j in range(2):
            out[("means", k, j, -1)] = MEANS[k, j]
            out[("stds", k, j, -1)] = sds[k, j]
        out[("corr", k, 1, 0)] = COVARIANCES[k, 0, 1] / (sds[k, 0] * sds[k, 1])
    return out


def one_replication(n: int, seed: int, n_boot: int) -> tuple[list[dict], dict[str, int]]:
    """Coverage rows of one simulated data set (both kinds), and its unusable counts."""
    X, _ = make_mixture(n, WEIGHTS, MEANS, COVARIANCES, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        em = EMGaussianMixture(2, n_init=5, random_state=seed).fit(X)
    problems = {"fit degenerate": 0, "no usable replicates": 0, "unusable replicates": 0}
    if em.degenerate_.any():
        problems["fit degenerate"] = 1
        return [], problems
    # fit component order[k] is the true component k
    cost = ((em.means_[:, None, :] - MEANS[None]) ** 2).sum(axis=2)
    rows_, cols = linear_sum_assignment(cost)
    to_true = dict(zip(rows_.tolist(), cols.tolist(), strict=True))
    truth = truth_table()
    features = {"x0": 0, "x1": 1}
    rows: list[dict] = []
    for kind in KINDS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            boot = em.bootstrap(X, n_boot=n_boot, kind=kind, random_state=seed + 1)
        problems["unusable replicates"] += n_boot - boot.counts["ok"]
        try:
            table = boot.table(LEVEL)
        except ValueError:
            problems["no usable replicates"] += 1
            continue
        for r in table.itertuples():
            k = to_true[int(r.component)]
            j = features.get(r.feature, -1)
            jb = features.get(r.feature_bis, -1)
            value = truth[(r.variable, k, j, jb)]
            rows.append(
                {
                    "N": n,
                    "seed": seed,
                    "kind": kind,
                    "variable": r.variable,
                    "covered": bool(r.lower <= value <= r.upper),
                    "width": r.upper - r.lower,
                }
            )
    return rows, problems


def summarize(rows: list[dict]) -> pd.DataFrame:
    """Coverage, its Monte Carlo standard error and the mean width per N, kind and variable."""
    summary = (
        pd.DataFrame(rows)
        .groupby(["N", "kind", "variable"], sort=False)
        .agg(
            coverage=("covered", "mean"),
            intervals=("covered", "size"),
            data_sets=("seed", "nunique"),
            mean_width=("width", "mean"),
        )
        .reset_index()
    )
    p = summary["coverage"]
    summary["mc_se"] = np.sqrt(p * (1 - p) / summary["data_sets"])
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=100, help="simulated data sets per N")
    parser.add_argument("--n-boot", type=int, default=200, help="bootstrap replicates")
    args = parser.parse_args()
    t0 = time.perf_counter()
    print(
        f"true mixture: weights {WEIGHTS.tolist()}, means {MEANS.tolist()}, "
        f"covariances {COVARIANCES.tolist()}"
    )
    print(f"R = {args.reps} data sets per N, n_boot = {args.n_boot}, level {LEVEL}", flush=True)
    for n in SIZES:
        rows: list[dict] = []
        totals = {"fit degenerate": 0, "no usable replicates": 0, "unusable replicates": 0}
        t_n = time.perf_counter()
        for r in range(args.reps):
            new, problems = one_replication(n, 1000 * n + r, args.n_boot)
            rows.extend(new)
            for key, value in problems.items():
                totals[key] += value
        n_rep = args.reps * args.n_boot * len(KINDS)
        print(
            f"\nN = {n}: {time.perf_counter() - t_n:.0f} s; degenerate EM fits (left out): "
            f"{totals['fit degenerate']} of {args.reps}; bootstraps without 2 usable "
            f"replicates: {totals['no usable replicates']}; unusable replicates: "
            f"{totals['unusable replicates']} of {n_rep}"
        )
        print(summarize(rows).round(3).to_string(index=False), flush=True)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
