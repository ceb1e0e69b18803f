"""Which stronger setting rescues a posterior that failed its convergence checks (issue 13)?

For cells of the comparison grid whose posterior often fails (faithful full K = 3, 4; acidity
K = 3, 4; iris full K = 3), two seeds each, fits ``BayesGaussianMixture`` with the default
settings and with each candidate retry setting, and prints one JSON line per fit: wall time,
whether the checks passed, the largest R-hat, the smallest bulk/tail ESS and the divergences.
A setting is useful when it passes where the default failed; ``retry_options`` in
``bayesgmm/selection.py`` takes the one that did so most often (see its docstring).

    python bench/compare_retry.py
"""

from __future__ import annotations

import json
import time
import warnings

from sklearn.datasets import load_iris

from bayesgmm import BayesGaussianMixture, load_acidity, load_faithful

CELLS = [("faithful", 3), ("faithful", 4), ("acidity", 3), ("acidity", 4), ("iris", 3)]
LOAD = {
    "faithful": load_faithful,
    "acidity": load_acidity,
    "iris": lambda: load_iris(as_frame=True).data,
}
VARIANTS = {
    "default": {},
    "target_accept 0.95": {"target_accept": 0.95},
    "tune 3000, target_accept 0.95": {"tune": 3000, "target_accept": 0.95},
    "2x draws and tune, target_accept 0.9": {"tune": 2000, "draws": 2000, "target_accept": 0.9},
}


def main() -> None:
    for data, k in CELLS:
        X = LOAD[data]()
        for seed in (1, 2):
            for name, options in VARIANTS.items():
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model = BayesGaussianMixture(k, random_state=seed, progressbar=False, **options)
                    model.fit(X)
                s = model.diagnostics_.summary()
                row = {
                    "data": data,
                    "K": k,
                    "seed": seed,
                    "setting": name,
                    "seconds": round(time.perf_counter() - t0, 1),
                    "passed": s["passed"],
                    "max_rhat": round(s["max_rhat"], 3),
                    "min_ess_bulk": round(s["min_ess_bulk"]),
                    "min_ess_tail": round(s["min_ess_tail"]),
                    "n_divergent": s["n_divergent"],
                }
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
