"""mclust's BIC grid with EMGaussianMixture: 14 covariance models x K = 1..6, hc starts.

Prints, for Old Faithful and for iris (scikit-learn's copy, four features), our BIC for
every model and number of components (``-2 log L + p log n``: lower is better; mclust prints
the same number with the opposite sign), the best cell, and the wall time of the whole
grid against scikit-learn's GaussianMixture fitting its four covariance types over the same
K (its default k-means start, one initialisation), in one process, as wall and process CPU
time. Then the difference of each cell from mclust 6.0.0's own grid
(tests/data/mclust_bic_*.csv, made by tests/data/mclust_reference.R), in mclust's sign:
``-BIC_ours - BIC_mclust``, so a positive number is a better fit of ours (twice the gain in
log-likelihood); mclust stops EM at a relative change of 1e-5, we at ``tol=1e-8``.

    python bench/mclust_grid.py
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning
from sklearn.mixture import GaussianMixture

from bayesgmm import EMGaussianMixture, load_faithful
from bayesgmm._mclust import MCLUST_MODELS
from bayesgmm.exceptions import ConvergenceWarning, DegenerateMixtureWarning

KS = range(1, 7)
REFERENCE = Path(__file__).resolve().parents[1] / "tests" / "data"


def grid(X: np.ndarray, tol: float) -> tuple[dict, float, float]:
    out = {}
    t0, c0 = time.perf_counter(), time.process_time()
    for model in MCLUST_MODELS:
        for k in KS:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                em = EMGaussianMixture(
                    k, covariance_type=model, init_params="hc", tol=tol, max_iter=1000
                ).fit(X)
            degenerate = any(issubclass(w.category, DegenerateMixtureWarning) for w in caught)
            out[model, k] = (em.bic(X), em.lower_bound_ * len(X), degenerate)
    return out, time.perf_counter() - t0, time.process_time() - c0


def sklearn_time(X: np.ndarray) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkConvergenceWarning)
        for cov in ("full", "tied", "diag", "spherical"):
            for k in KS:
                GaussianMixture(k, covariance_type=cov, random_state=0).fit(X)
    return time.perf_counter() - t0, time.process_time() - c0


def show(name: str, X: np.ndarray) -> None:
    EMGaussianMixture(2, init_params="hc").fit(X)  # compile / load the kernels once
    cells, _, _ = grid(X, 1e-8)
    _, t_grid, c_grid = grid(X, 1e-3)
    t_sk, c_sk = sklearn_time(X)
    print(f"\n{name}: n={X.shape[0]}, d={X.shape[1]}; BIC = -2 log L + p log n (* degenerate)")
    print(f"{'model':>5} " + " ".join(f"{f'K={k}':>10}" for k in KS))
    for model in MCLUST_MODELS:
        row = []
        for k in KS:
            bic, _, degenerate = cells[model, k]
            row.append(f"{bic:>9.2f}{'*' if degenerate else ' '}")
        print(f"{model:>5} " + " ".join(row))
    ok = {key: v for key, v in cells.items() if not v[2]}
    best = min(ok, key=lambda key: ok[key][0])
    print(
        f"best: {best[0]} with K={best[1]}, BIC {ok[best][0]:.3f}, log-likelihood {ok[best][1]:.4f}"
    )
    print(
        f"time: 14 models x K=1..6 (hc starts, tol=1e-3) {t_grid:.2f} s wall, {c_grid:.2f} s "
        f"CPU; scikit-learn's 4 types x K=1..6 {t_sk:.2f} s wall, {c_sk:.2f} s CPU; ratio "
        f"{t_grid / t_sk:.2f} wall, {c_grid / c_sk:.2f} CPU"
    )
    compare_with_mclust(name, cells)


def compare_with_mclust(name: str, cells: dict) -> None:
    path = REFERENCE / f"mclust_bic_{name}.csv"
    if not path.exists():
        return
    ref = pd.read_csv(path, index_col=0)
    print("ours - mclust 6.0.0 in mclust's sign (+: ours fits better; '-' no fit; * degenerate)")
    print(f"{'model':>5} " + " ".join(f"{f'K={k}':>10}" for k in KS))
    diffs = []
    for model in MCLUST_MODELS:
        row = []
        for k in KS:
            bic, _, degenerate = cells[model, k]
            theirs = ref.loc[k, model]
            if np.isnan(theirs):
                row.append(f"{'-':>9}{'*' if degenerate else ' '}")
                continue
            diff = -bic - theirs
            if not degenerate:
                diffs.append(diff)
            row.append(f"{diff:>9.3f}{'*' if degenerate else ' '}")
        print(f"{model:>5} " + " ".join(row))
    d = np.array(diffs)
    print(
        f"{d.size} cells fitted by both, neither degenerate: |diff| < 0.01 in "
        f"{np.sum(np.abs(d) < 0.01)}, ours better by more in {np.sum(d >= 0.01)}, mclust "
        f"better by more in {np.sum(d <= -0.01)} (largest {-d.min():.3f})"
    )


def main() -> None:
    warnings.simplefilter("ignore", ConvergenceWarning)
    show("faithful", load_faithful().to_numpy())
    show("iris", load_iris().data)


if __name__ == "__main__":
    main()
