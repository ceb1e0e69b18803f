"""EM speed: bayesgmm's EMGaussianMixture against scikit-learn's GaussianMixture.

Both estimators get the same data and the same initial parameters (weights, means and
precisions from one k-means run) and the same tol/max_iter, in one process. Prints the median
wall time of each over ``--repeats`` runs, the ratio (ours / sklearn; below 1 is faster) and
the relative difference of the final mean log-likelihoods.

    python bench/em_speed.py            # the three cases of the speed target
    python bench/em_speed.py --quick    # smaller data, for a smoke run

A second table times each of mclust's covariance models beyond scikit-learn's four (one row
per model, from the same start). scikit-learn has none of them, so the peer is its type with
the same storage and E-step: ``"spherical"`` for EII, ``"diag"`` for EEI, VEI and EVI,
``"full"`` for the six with orientations. Each row gives our time, the peer's, the ratio of
wall times and of times per iteration (the models stop after different numbers of
iterations), then the process CPU times (user + system, all threads) of both and their
ratio, which a shared machine disturbs less than wall time.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_info

from bayesgmm import EMGaussianMixture, make_mixture
from bayesgmm._mclust import MCLUST_MODELS, covariance_layout

CASES = [(10_000, 2, 3), (100_000, 10, 8), (1_000_000, 2, 5)]
QUICK_CASES = [(10_000, 2, 3), (20_000, 10, 8), (100_000, 2, 5)]
MCLUST_CASES = [(10_000, 2, 3), (100_000, 10, 8)]
QUICK_MCLUST_CASES = [(10_000, 2, 3), (20_000, 10, 8)]
NEW_MODELS = [m for m in MCLUST_MODELS if m not in ("VVV", "EEE", "VVI", "VII")]


def make_data(n: int, d: int, k: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=4.0, size=(k, d))
    covs = []
    for _ in range(k):
        a = rng.normal(size=(d, d))
        covs.append(a @ a.T / d + 0.5 * np.eye(d))
    X, _ = make_mixture(n, np.full(k, 1.0 / k), means, np.array(covs), random_state=seed)
    return X


def initial_parameters(X: np.ndarray, k: int) -> dict[str, np.ndarray]:
    sub = X[:: max(1, X.shape[0] // 20_000)]
    labels = KMeans(k, n_init=1, random_state=0).fit(sub).labels_
    weights = np.bincount(labels, minlength=k) / labels.size
    means = np.stack([sub[labels == j].mean(axis=0) for j in range(k)])
    precisions = np.stack(
        [np.linalg.inv(np.cov(sub[labels == j].T) + 1e-6 * np.eye(X.shape[1])) for j in range(k)]
    )
    return {"weights_init": weights, "means_init": means, "precisions_init": precisions}


def timed(make, X: np.ndarray, repeats: int) -> tuple[float, object]:
    times, est = [], None
    for _ in range(repeats):
        est = make()
        t0 = time.perf_counter()
        est.fit(X)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), est


def timed_cpu(make, X: np.ndarray, repeats: int) -> tuple[float, float, object]:
    """Median wall and median process CPU time (user + system, all threads) of ``fit``."""
    walls, cpus, est = [], [], None
    for _ in range(repeats):
        est = make()
        t0, c0 = time.perf_counter(), time.process_time()
        est.fit(X)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return float(np.median(walls)), float(np.median(cpus)), est


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller data sets")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--max-iter", type=int, default=100)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    blas = ", ".join(f"{i['internal_api']}x{i['num_threads']}" for i in threadpool_info())
    print(f"thread pools: {blas}")
    header = (
        f"{'N':>9} {'D':>3} {'K':>3} {'iters':>9} {'ours [s]':>9} {'sklearn [s]':>11} "
        f"{'ratio':>6} {'rel. diff ll':>12}"
    )
    print(header)
    print("-" * len(header))
    # Warm the compiled kernels once so that compile time (cached on disk) is not timed.
    EMGaussianMixture(2, max_iter=2).fit(make_data(2000, 2, 2))
    for n, d, k in QUICK_CASES if args.quick else CASES:
        X = make_data(n, d, k)
        init = initial_parameters(X, k)
        common = dict(n_components=k, tol=args.tol, max_iter=args.max_iter, **init)
        t_ours, ours = timed(lambda c=common: EMGaussianMixture(**c), X, args.repeats)
        t_sk, sk = timed(lambda c=common: GaussianMixture(**c), X, args.repeats)
        ll_ours, ll_sk = ours.score(X), sk.score(X)
        rel = abs(ll_ours - ll_sk) / abs(ll_sk)
        print(
            f"{n:>9} {d:>3} {k:>3} {ours.n_iter_:>4}/{sk.n_iter_:<4} {t_ours:>9.3f} "
            f"{t_sk:>11.3f} {t_ours / t_sk:>6.3f} {rel:>12.2e}"
        )

    print()
    print("mclust models (peer: the scikit-learn type of the same storage, same start)")
    header = (
        f"{'N':>9} {'D':>3} {'K':>3} {'model':>5} {'peer':>9} {'iters':>9} {'ours [s]':>9} "
        f"{'sklearn [s]':>11} {'ratio':>6} {'ratio/iter':>10} {'cpu ours/sk [s]':>16} "
        f"{'cpu ratio':>9}"
    )
    print(header)
    print("-" * len(header))
    for n, d, k in QUICK_MCLUST_CASES if args.quick else MCLUST_CASES:
        X = make_data(n, d, k)
        init = initial_parameters(X, k)
        peers = {}
        for model in NEW_MODELS:
            layout = covariance_layout(model)
            common = dict(n_components=k, tol=args.tol, max_iter=args.max_iter)
            common.update(layout_init(init, model))
            if layout not in peers:
                peer = dict(common, covariance_type=layout)
                peers[layout] = timed_cpu(lambda c=peer: GaussianMixture(**c), X, args.repeats)
            t_sk, c_sk, sk = peers[layout]
            t_ours, c_ours, ours = timed_cpu(
                lambda c=common, m=model: EMGaussianMixture(covariance_type=m, **c),
                X,
                args.repeats,
            )
            per_iter = (t_ours / max(ours.n_iter_, 1)) / (t_sk / max(sk.n_iter_, 1))
            print(
                f"{n:>9} {d:>3} {k:>3} {model:>5} {layout:>9} {ours.n_iter_:>4}/{sk.n_iter_:<4} "
                f"{t_ours:>9.3f} {t_sk:>11.3f} {t_ours / t_sk:>6.3f} {per_iter:>10.3f} "
                f"{f'{c_ours:.3f}/{c_sk:.3f}':>16} {c_ours / c_sk:>9.3f}",
                flush=True,
            )


def layout_init(init: dict[str, np.ndarray], model: str) -> dict[str, np.ndarray]:
    """The full-covariance start in the storage layout of ``model`` (its precisions)."""
    out = dict(init)
    layout = covariance_layout(model)
    covs = np.linalg.inv(init["precisions_init"])
    if layout == "diag":
        out["precisions_init"] = 1.0 / np.einsum("kaa->ka", covs)
    elif layout == "spherical":
        out["precisions_init"] = 1.0 / np.einsum("kaa->ka", covs).mean(axis=1)
    return out


if __name__ == "__main__":
    main()
