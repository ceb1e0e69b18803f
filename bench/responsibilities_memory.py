"""Peak memory of posterior responsibility summaries for a million points.

Builds 1000 parameter draws (K=5, D=2, full covariances) around a fitted EM solution, then
summarises the responsibilities of N = 10^6 points (mean, interval, entropies, predictive
log-density) with the streaming summary, and prints wall time and the process's peak RSS.
The full draws x points x components array would need 1000 * 10^6 * 5 * 8 B = 40 GB.

    python bench/responsibilities_memory.py [--n 1000000] [--draws 1000]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from bayesgmm import EMGaussianMixture, make_mixture
from bayesgmm.responsibilities import summarize_responsibilities


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--draws", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    k, d = 5, 2
    means = rng.normal(scale=4.0, size=(k, d))
    covs = np.stack([np.eye(d) * rng.uniform(0.5, 1.5) for _ in range(k)])
    X, _ = make_mixture(args.n, np.full(k, 1 / k), means, covs, random_state=0)
    gm = EMGaussianMixture(k, random_state=0).fit(X[:20_000])
    w = rng.dirichlet(gm.weights_ * 2000, size=args.draws)
    mu = gm.means_ + 0.02 * rng.normal(size=(args.draws, k, d))
    pc = np.broadcast_to(gm.precisions_cholesky_, (args.draws, k, d, d))
    before = peak_rss_mb()
    t0 = time.perf_counter()
    s = summarize_responsibilities(X, w, mu, pc, "full")
    elapsed = time.perf_counter() - t0
    full_gb = args.draws * args.n * k * 8 / 1e9
    print(f"N={args.n}, draws={args.draws}, K={k}, D={d}: {elapsed:.1f} s")
    print(
        f"peak RSS {peak_rss_mb():.0f} MB (before summarising {before:.0f} MB); "
        f"the dense per-draw array would be {full_gb:.0f} GB"
    )
    print(
        f"mean label probability {s.label_probability.mean():.4f}, "
        f"mean epistemic entropy {s.entropy_epistemic.mean():.2e} nats"
    )


if __name__ == "__main__":
    main()
