"""Same seed, same bits, whether the compiled kernels were just compiled or loaded from disk.

Numba compiles a kernel in memory on its first use and stores the machine code in its on-disk
cache; later processes load it from there. With fastmath, the in-memory and the cached code
rounded differently in the last bits (fused multiply-adds, reassociated sums), so the first
fit after a cache miss drew another posterior from the same seed than every later fit: NUTS
amplifies such bits. On a cache miss the kernels are now compiled in a child process and
loaded from the cache (``_logdensity._load_compiled_from_cache``). This test runs the same
computations in a process with an empty cache and again in one that loads it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import hashlib
import numpy as np
from bayesgmm import EMGaussianMixture, load_faithful
from bayesgmm import _logdensity
from bayesgmm._draw_kernels import pointwise_log_likelihood
from bayesgmm.model import Priors

X = load_faithful().to_numpy()
Z = (X - X.mean(0)) / X.std(0)
h = hashlib.sha256()
for cov in ("full", "diag"):
    spec = _logdensity.LogDensitySpec.from_data(Z, 2, cov, Priors())
    theta = np.random.default_rng(0).normal(size=spec.n_dim) * 0.3
    value, grad = _logdensity.log_density_and_grad(theta, spec)
    h.update(np.float64(value).tobytes() + grad.tobytes())
em = EMGaussianMixture(3, random_state=0).fit(X)
h.update(em.means_.tobytes() + em.covariances_.tobytes())
draws = pointwise_log_likelihood(
    X, em.weights_[None], em.means_[None], em.precisions_cholesky_[None], "full"
)
h.update(np.ascontiguousarray(draws).tobytes())
print(h.hexdigest())
"""


def test_fresh_and_cached_kernels_give_identical_bits(tmp_path):
    env = dict(os.environ)
    env.update(
        NUMBA_CACHE_DIR=str(tmp_path / "numba"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        OPENBLAS_NUM_THREADS="1",
    )

    def run() -> str:
        proc = subprocess.run(
            [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout.strip()

    cold = run()  # compiles every kernel and writes the cache
    assert any((tmp_path / "numba").rglob("*.nbi")), "the first run wrote no Numba cache"
    warm = run()  # loads them from the cache
    assert len(cold) == 64 and warm == cold
