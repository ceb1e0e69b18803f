"""Environment shared by the benchmark worker processes."""

from __future__ import annotations

import os


def worker_env(cache: str) -> dict[str, str]:
    """The current environment with one BLAS thread and compile caches under ``cache``.

    One BLAS thread: parallel chains or Numba threads would otherwise oversubscribe the cores.
    Private caches: an empty ``cache`` directory gives a cold start, a reused one a warm start.
    """
    env = dict(os.environ)
    env.update(
        OPENBLAS_NUM_THREADS="1",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        PYTENSOR_FLAGS=f"base_compiledir={cache}/pytensor",
        NUMBA_CACHE_DIR=f"{cache}/numba",
        JAX_COMPILATION_CACHE_DIR=f"{cache}/jax",
        XDG_CACHE_HOME=f"{cache}/xdg",
    )
    return env
