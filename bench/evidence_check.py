"""Bridge-sampling evidence against PyMC's SMC, and its cost against the NUTS fit.

Three parts, all in this process (warm compile caches after the first fit):

1. ``smc``: small cases where NUTS passes its checks (K = 1 and K = 2 on 60 points, D = 1,
   "diag"): ``log_marginal_likelihood`` (bridge sampling on the NUTS draws) beside
   ``pm.sample_smc`` on the same ``build_model`` graph, whose ``log_marginal_likelihood``
   sample statistic is the SMC estimate (one per independent SMC run, "chain"); for K = 2
   also the importance-sampling reference of ``tests/test_evidence.py`` (10^6 draws).
2. ``overfit``: K = 3 on the same two-cluster data, where NUTS fails its checks so the bridge
   refuses; SMC's runs beside each other and beside importance sampling (10^6 draws from a
   heavy-tailed proposal built from the NUTS draws, symmetrised over the 3! labellings), to
   see whether SMC can stand in.
3. ``cost``: B1 of ``bench/nuts_speed.py`` (N = 1000, D = 2, K = 3, "full"; 4 chains x
   (1000 tune + 1000 draws)): wall time of ``log_marginal_likelihood`` over the sampling time
   and the whole ``fit`` time, for both targets (``"compiled"``, the default, and ``"pymc"``,
   which compiles the PyTensor graph on every call); ``--b2`` adds B2 (N = 10000, D = 4,
   K = 4).

    python bench/evidence_check.py                  # all three parts
    python bench/evidence_check.py --only cost --b2
    python bench/evidence_check.py --smc-draws 1000 # faster, noisier SMC
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402
from nuts_speed import make_data  # noqa: E402


def small_data():
    from bayesgmm import make_mixture

    X, _ = make_mixture(60, [0.4, 0.6], [[-3.0], [2.0]], [[[1.0]], [[0.6]]], random_state=3)
    return X


def fit(X, k, cov, seed=0):
    from bayesgmm import BayesGaussianMixture

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BayesGaussianMixture(
            k, covariance_type=cov, random_state=seed, progressbar=False
        ).fit(X)


def smc_evidence(X, k, cov, draws, chains, seed=0, kernel="imh"):
    """SMC log evidences, one per independent run, and the wall time."""
    import pymc as pm
    from pymc.smc.kernels import IMH, MH

    from bayesgmm import build_model

    model = build_model(X, k, covariance_type=cov)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tree = pm.sample_smc(
            draws=draws,
            kernel={"imh": IMH, "mh": MH}[kernel],
            chains=chains,
            cores=1,
            model=model,
            random_seed=seed,
            progressbar=False,
            compute_convergence_checks=False,
        )
    elapsed = time.perf_counter() - t0
    # one row per chain, one entry per stage (NaN until the last), ragged lists when the
    # chains took different numbers of stages: the last finite value is the estimate
    raw = tree["sample_stats"]["log_marginal_likelihood"].values
    per_chain = np.array([_last_finite(row) for row in raw])
    return per_chain, elapsed


def _last_finite(entry) -> float:
    flat = []

    def walk(x):
        if isinstance(x, list | tuple | np.ndarray):
            for y in x:
                walk(y)
        else:
            flat.append(float(x))

    walk(entry)
    finite = [v for v in flat if np.isfinite(v)]
    return finite[-1] if finite else float("nan")


def bridge(bgm, seed=0, target="compiled"):
    from bayesgmm import log_marginal_likelihood

    t0 = time.perf_counter()
    res = log_marginal_likelihood(bgm, random_state=seed, target=target)
    return res, time.perf_counter() - t0


def _importance_sampling(X, bgm):
    """The D = 1 importance-sampling reference of tests/test_evidence.py."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from test_evidence import _importance_sampling as reference

    return reference(X, bgm)


def fmt(res):
    if not res.estimable:
        return f"not estimable ({res.reason[:110]}...)"
    return f"{res.log_evidence:10.3f} ± {res.standard_error:.3f}"


def part_smc(args):
    X = small_data()
    print("== bridge sampling (NUTS draws) against SMC, N=60, D=1, diag ==")
    for k in (1, 2):
        bgm = fit(X, k, "diag")
        res, t_b = bridge(bgm)
        smc, t_s = smc_evidence(
            X, k, "diag", args.smc_draws, args.smc_chains, kernel=args.smc_kernel
        )
        se_smc = smc.std(ddof=1) / np.sqrt(smc.size)
        print(
            f"K={k}: bridge {fmt(res)} ({t_b:.1f} s; NUTS checks "
            f"{'passed' if bgm.diagnostics_.passed else 'failed'}) | SMC runs "
            f"{np.array2string(smc, precision=3)} mean {smc.mean():.3f} ± {se_smc:.3f} "
            f"({t_s:.1f} s for {args.smc_chains} x {args.smc_draws} particles)"
        )
        if res.estimable:
            diff = res.log_evidence - smc.mean()
            z = diff / np.hypot(res.standard_error, se_smc)
            print(f"      bridge - SMC = {diff:+.3f} nats ({z:+.1f} combined standard errors)")
        if k == 2:
            ref, ref_se = _importance_sampling(X, bgm)
            print(
                f"      importance sampling (10^6 draws, symmetrised t4 proposal): {ref:.3f} ± "
                f"{ref_se:.3f}; bridge - IS = {res.log_evidence - ref:+.3f}, SMC - IS = "
                f"{smc.mean() - ref:+.3f}"
            )


def part_overfit(args):
    X = small_data()
    print("== overfitted K=3 on two clusters (N=60, D=1, diag) ==")
    bgm = fit(X, 3, "diag")
    res, _ = bridge(bgm)
    print(f"NUTS checks {'passed' if bgm.diagnostics_.passed else 'failed'}; bridge: {fmt(res)}")
    ref, ref_se = _importance_sampling(X, bgm)
    print(
        f"importance sampling (10^6 draws, t4 proposal from the failed NUTS draws, symmetrised "
        f"over the 3! labellings): {ref:.3f} ± {ref_se:.3f}"
    )
    for seed in (0, 1):
        smc, t_s = smc_evidence(
            X, 3, "diag", args.smc_draws, args.smc_chains, seed=seed, kernel=args.smc_kernel
        )
        print(
            f"SMC seed {seed}: runs {np.array2string(smc, precision=3)}; mean {smc.mean():.3f}, "
            f"sd between runs {smc.std(ddof=1):.3f} ({t_s:.1f} s)"
        )


def part_cost(args):
    cases = [("B1", 1000, 2, 3)] + ([("B2", 10_000, 4, 4)] if args.b2 else [])
    print("== cost of the evidence against the fit (4 chains x (1000 + 1000)) ==")
    for name, n, d, k in cases:
        X = make_data(n, d, k)
        fit(X, k, "full", seed=3)  # warm the compile caches
        bgm = fit(X, k, "full", seed=3)
        sampling = float(bgm.idata_.attrs["sampling_time"])
        whole = float(bgm.idata_.attrs["fit_time"])
        print(
            f"{name} (N={n}, D={d}, K={k}): checks "
            f"{'passed' if bgm.diagnostics_.passed else 'failed'}; sampling {sampling:.2f} s, "
            f"whole fit {whole:.2f} s"
        )
        for target in ("compiled", "pymc"):
            times, results = [], []
            for seed in range(args.repeats):
                res, t = bridge(bgm, seed=seed, target=target)
                times.append(t)
                results.append(res)
            t = float(np.median(times))
            first = results[0]
            spread = ""
            if all(r.estimable for r in results):
                vals = np.array([r.log_evidence for r in results])
                spread = f", sd over {args.repeats} proposal seeds {vals.std(ddof=1):.4f}"
            print(
                f"  target={target}: log p(y|K) {fmt(first)}, {first.n_iterations} iterations, "
                f"overlap {first.overlap:.2f}, {first.n_labellings} labellings{spread}"
            )
            print(
                f"      evidence {t:.2f} s (median of {args.repeats}) | over sampling "
                f"{t / sampling:.2f} | over the whole fit {t / whole:.2f}"
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["smc", "overfit", "cost"])
    parser.add_argument("--b2", action="store_true", help="also time B2 (N=10000, D=4, K=4)")
    parser.add_argument("--smc-draws", type=int, default=2000)
    parser.add_argument("--smc-chains", type=int, default=4)
    parser.add_argument("--smc-kernel", choices=["imh", "mh"], default="imh")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    parts = {"smc": part_smc, "overfit": part_overfit, "cost": part_cost}
    for name, run in parts.items():
        if args.only in (None, name):
            run(args)


if __name__ == "__main__":
    main()
