"""NUTS time-to-posterior: bayesgmm's default against a naive PyMC model (and NumPyro).

Every measurement is a fresh Python process, timed from start to exit, run twice: "cold" with
empty compile caches (Numba, PyTensor and JAX caches all in a new temporary directory) and
"warm", the identical process again with the caches it left. Each process makes the data,
fits, samples 4 chains x (1000 tune + 1000 draws) and computes the pointwise log-likelihood.

* ``default``: ``BayesGaussianMixture(K).fit(X)`` -- EM start, NUTS with sampler="auto",
  relabelling and diagnostics included;
* ``op``: the stock model through the likelihood Op and the custom-model path:
  ``BayesGaussianMixture(K, model=build_model).fit(X)``, i.e. ``build_model(X, K)``
  (``likelihood="op"``) as a custom model: its joint log-density and gradient compiled by
  PyTensor (Numba backend, cached on disk) and called by nutpie as a C callback without the
  GIL (``bayesgmm._compiled_callback``; nutpie's public ``from_pyfunc`` is the fallback),
  EM start, relabelling and diagnostics included;
* ``custom``: ``BayesGaussianMixture(K, model=hierarchical_means).fit(X)`` -- a custom model
  (the stock full-covariance mixture with a hierarchical prior on the means, written as the
  user guide recommends: the new prior in PyMC, the covariance prior and the likelihood from
  ``bayesgmm.model.covariance_prior``/``mixture_likelihood``; in
  ``bench/custom_model_speed.py``), sampled the same way;
* ``custom-plain``: the same custom model written in plain PyMC and PyTensor (its
  likelihood a ``pm.CustomDist`` of PyTensor operations; not run by default);
* ``op-cpm``, ``custom-cpm``: the same two fits with the model compiled by
  ``nutpie.compile_pymc_model(model, backend="numba")`` instead (the custom path before
  issue 15's speed work; not run by default);
* ``op-raw``: ``build_model(X, K)`` compiled by ``nutpie.compile_pymc_model`` by hand, every
  chain started at the EM solution (no jitter), ``nutpie.sample``, then
  ``pm.compute_log_likelihood``; no relabelling (the ESS is that of the raw chains; not run
  by default);
* ``naive``: ``pm.Mixture`` over a list of ``pm.MvNormal`` (one ``LKJCholeskyCov`` each),
  plain ``pm.sample()`` from the EM solution, then ``pm.compute_log_likelihood``;
* ``numpyro``: a hand-written NumPyro model of the same mixture, NUTS with vectorised chains,
  JAX's persistent compilation cache on (only when jax and numpyro are installed; they are
  not bayesgmm dependencies).

Printed per data size: cold and warm wall time and CPU time (user + sys of the process and the
compilers it ran), the 1-minute load average at the end of each, in-process compile time (cold
and warm, where the row can tell it) and sampling time (warm), the minimum bulk ESS over the
weights and means, and that ESS per second of sampling.

    python bench/nuts_speed.py                 # (N=1000, D=2, K=3) and (N=10000, D=4, K=4)
    python bench/nuts_speed.py --quick         # small data, 300+300 draws: a smoke run
    python bench/nuts_speed.py --only default  # one kind (see RUNNERS)
    python bench/nuts_speed.py --only op --case 0  # one row on the first case only (B1)
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
from importlib.util import find_spec

from _env import worker_env

CASES = [(1000, 2, 3), (10_000, 4, 4)]
QUICK_CASES = [(500, 2, 3), (2000, 4, 4)]
CHAINS = 4


def make_data(n: int, d: int, k: int, seed: int = 0):
    import numpy as np

    from bayesgmm import make_mixture

    rng = np.random.default_rng(seed)
    means = rng.normal(scale=4.0, size=(k, d))
    covs = []
    for _ in range(k):
        a = rng.normal(size=(d, d))
        covs.append(a @ a.T / d * 0.5 + 0.5 * np.eye(d))
    X, _ = make_mixture(n, np.full(k, 1.0 / k), means, np.array(covs), random_state=seed)
    return X


def min_bulk_ess(posterior) -> float:
    import arviz_stats

    ess = arviz_stats.ess(posterior[["weights", "means"]], method="bulk")
    return float(min(float(ess[v].min()) for v in ess.data_vars))


def run_default(X, k, draws, model=None):
    from bayesgmm import BayesGaussianMixture

    fit = BayesGaussianMixture(
        k, model=model, draws=draws, tune=draws, chains=CHAINS, random_state=3, progressbar=False
    ).fit(X)
    tree = fit.idata_
    assert tree["log_likelihood"]["obs"].dims == ("chain", "draw", "obs_id")
    return {
        "sampler": tree.attrs["sampler"],
        "compile_s": tree.attrs["compile_time"],
        "sampling_s": tree.attrs["sampling_time"],
        "min_ess": min_bulk_ess(tree["posterior"].to_dataset()),
        "divergences": int(tree["sample_stats"]["diverging"].sum()),
    }


def run_custom(X, k, draws):
    from custom_model_speed import hierarchical_means

    return run_default(X, k, draws, model=hierarchical_means)


def run_custom_plain(X, k, draws):
    from custom_model_speed import hierarchical_means_plain

    return run_default(X, k, draws, model=hierarchical_means_plain)


def run_op(X, k, draws):
    from bayesgmm import build_model

    return run_default(X, k, draws, model=build_model)


def _with_compile_pymc_model(run):
    def wrapped(X, k, draws):
        from bayesgmm import sampling

        sampling._CUSTOM_NUTPIE_INTERFACE = "compile_pymc_model"
        return run(X, k, draws)

    return wrapped


def _em_start(X, k):
    import numpy as np

    from bayesgmm import EMGaussianMixture

    em = EMGaussianMixture(k, n_init=5, random_state=0).fit(X)
    return em, np.linalg.cholesky(em.covariances_)


def run_op_raw(X, k, draws):
    import numpy as np
    import nutpie
    import pymc as pm

    from bayesgmm import build_model

    d = X.shape[1]
    em, chol = _em_start(X, k)
    rows, cols = np.tril_indices(d)
    model = build_model(X, k, covariance_type="full", likelihood="op")
    start = {"weights": em.weights_, "means": em.means_}
    start.update({f"chol_cov_{j}": chol[j][rows, cols] for j in range(k)})
    t0 = time.perf_counter()
    compiled = nutpie.compile_pymc_model(
        model, backend="numba", initial_points=start, jitter_rvs=set()
    )
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    idata = nutpie.sample(
        compiled, draws=draws, tune=draws, chains=CHAINS, seed=3, progress_bar=False
    )
    sampling_s = time.perf_counter() - t0
    idata = pm.compute_log_likelihood(idata, model=model, progressbar=False)
    assert idata["log_likelihood"]["obs"].dims == ("chain", "draw", "obs_id")
    return {
        "sampler": "nutpie-public",
        "compile_s": compile_s,
        "sampling_s": sampling_s,
        "min_ess": min_bulk_ess(idata["posterior"].to_dataset()),
        "divergences": int(idata["sample_stats"]["diverging"].sum()),
    }


def run_naive(X, k, draws):
    import numpy as np
    import pymc as pm

    _n, d = X.shape
    em, chol = _em_start(X, k)
    rows, cols = np.tril_indices(d)
    loc, s = X.mean(axis=0), X.std(axis=0)
    with pm.Model(coords={"component": range(k), "feature": range(d)}) as model:
        w = pm.Dirichlet("weights", np.ones(k), dims="component")
        mu = pm.Normal(
            "means",
            np.broadcast_to(loc, (k, d)),
            np.broadcast_to(2.5 * s, (k, d)),
            dims=("component", "feature"),
        )
        comps = []
        for j in range(k):
            c, _, _ = pm.LKJCholeskyCov(
                f"chol_cov_{j}",
                eta=2.0,
                n=d,
                sd_dist=pm.HalfNormal.dist(s, shape=d),
                compute_corr=True,
                store_in_trace=False,
            )
            comps.append(pm.MvNormal.dist(mu=mu[j], chol=c))
        pm.Mixture("obs", w=w, comp_dists=comps, observed=X)
    init = {"weights": em.weights_, "means": em.means_}
    init.update({f"chol_cov_{j}": chol[j][rows, cols] for j in range(k)})
    idata = pm.sample(
        draws=draws,
        tune=draws,
        chains=CHAINS,
        model=model,
        initvals=init,
        random_seed=3,
        progressbar=False,
    )
    t = float(idata["posterior"].attrs.get("sampling_time", float("nan")))
    idata = pm.compute_log_likelihood(idata, model=model, progressbar=False)
    post = idata["posterior"].to_dataset()
    return {
        "sampler": "pm.sample()",
        "sampling_s": t,
        "min_ess": min_bulk_ess(post),
        "divergences": int(idata["sample_stats"]["diverging"].sum()),
    }


def run_numpyro(X, k, draws):
    import jax

    jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    import jax.numpy as jnp
    import numpy as np
    import numpyro
    import numpyro.distributions as dist
    import xarray as xr
    from numpyro.infer import MCMC, NUTS, init_to_value

    n, d = X.shape
    loc, s = X.mean(axis=0), X.std(axis=0)
    em, chol = _em_start(X, k)

    def model(x):
        w = numpyro.sample("weights", dist.Dirichlet(jnp.ones(k)))
        mu = numpyro.sample(
            "means",
            dist.Normal(jnp.broadcast_to(loc, (k, d)), jnp.broadcast_to(2.5 * s, (k, d))).to_event(
                2
            ),
        )
        sd = numpyro.sample("sd", dist.HalfNormal(jnp.broadcast_to(s, (k, d))).to_event(2))
        corr = numpyro.sample("corr_chol", dist.LKJCholesky(d, 2.0).expand([k]).to_event(1))
        scale_tril = sd[..., :, None] * corr
        comp = dist.MultivariateNormal(mu, scale_tril=scale_tril)
        mix = dist.MixtureSameFamily(dist.Categorical(probs=w), comp)
        numpyro.sample("obs", mix, obs=x)

    sd0 = np.sqrt(np.diagonal(em.covariances_, axis1=1, axis2=2))
    init = init_to_value(
        values={
            "weights": em.weights_,
            "means": em.means_,
            "sd": sd0,
            "corr_chol": chol / sd0[:, :, None],
        }
    )
    mcmc = MCMC(
        NUTS(model, init_strategy=init),
        num_warmup=draws,
        num_samples=draws,
        num_chains=CHAINS,
        chain_method="vectorized",
        progress_bar=False,
    )
    t0 = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(3), jnp.asarray(X), extra_fields=("diverging",))
    samples = mcmc.get_samples(group_by_chain=True)
    jax.block_until_ready(samples)
    t = time.perf_counter() - t0
    ll = numpyro.infer.log_likelihood(model, mcmc.get_samples(), jnp.asarray(X))["obs"]
    assert ll.shape == (CHAINS * draws, n)
    post = xr.Dataset(
        {
            "weights": (("chain", "draw", "component"), np.asarray(samples["weights"])),
            "means": (("chain", "draw", "component", "feature"), np.asarray(samples["means"])),
        }
    )
    div = int(np.asarray(mcmc.get_extra_fields()["diverging"]).sum())
    return {
        "sampler": "numpyro",
        "sampling_s": t,
        "min_ess": min_bulk_ess(post),
        "divergences": div,
    }


RUNNERS = {
    "default": run_default,
    "op": run_op,
    "custom": run_custom,
    "custom-plain": run_custom_plain,
    "op-cpm": _with_compile_pymc_model(run_op),
    "custom-cpm": _with_compile_pymc_model(run_custom),
    "op-raw": run_op_raw,
    "naive": run_naive,
    "numpyro": run_numpyro,
}


def worker(kind: str, n: int, d: int, k: int, draws: int) -> None:
    import logging

    logging.getLogger("pymc").setLevel(logging.ERROR)
    X = make_data(n, d, k)
    print(json.dumps(RUNNERS[kind](X, k, draws)))


def run_process(kind: str, case, draws: int, cache: str) -> dict:
    env = worker_env(cache)
    cmd = [sys.executable, __file__, "--worker", kind, *map(str, case), str(draws)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU of the worker and every process it waited for (compilers included)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    load = os.getloadavg()[0]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        return {"wall_s": wall, "cpu_s": cpu, "load": load, "error": tail}
    return {"wall_s": wall, "cpu_s": cpu, "load": load, **json.loads(lines[-1])}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, 300+300 draws")
    parser.add_argument("--only", choices=sorted(RUNNERS), action="append")
    parser.add_argument(
        "--case", type=int, action="append", help="index of a data size (0: B1, 1: B2)"
    )
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        kind, n, d, k, draws = args.worker
        worker(kind, int(n), int(d), int(k), int(draws))
        return
    kinds = args.only or ["default", "op", "custom", "naive", "numpyro"]
    if "numpyro" in kinds and (find_spec("numpyro") is None or find_spec("jax") is None):
        print("numpyro row skipped: jax/numpyro not installed (pip install numpyro)")
        kinds.remove("numpyro")
    cases = QUICK_CASES if args.quick else CASES
    if args.case:
        cases = [cases[i] for i in args.case]
    draws = 300 if args.quick else 1000
    print(
        f"{CHAINS} chains x ({draws} tune + {draws} draws); whole processes; "
        f"cold = empty compile caches, warm = second run; {os.cpu_count()} CPUs"
    )
    header = (
        f"{'N,D,K':>12} {'model':>10} {'sampler':>13} {'cold s':>8} {'warm s':>8} "
        f"{'cold cpu':>8} {'warm cpu':>8} {'load':>9} "
        f"{'compile s':>13} {'sampling s':>10} {'min ESS':>8} {'ESS/s':>8} {'div':>4}"
    )
    print(header)
    print("-" * len(header), flush=True)
    for case in cases:
        for kind in kinds:
            with tempfile.TemporaryDirectory(prefix="bayesgmm_bench_") as cache:
                cold = run_process(kind, case, draws, cache)
                warm = run_process(kind, case, draws, cache)
            label = ",".join(map(str, case))
            if "error" in cold or "error" in warm:
                print(f"{label:>12} {kind:>10} failed: {cold.get('error') or warm.get('error')}")
                continue
            rate = warm["min_ess"] / warm["sampling_s"] if warm["sampling_s"] > 0 else 0.0
            compile_s = (
                f"{cold['compile_s']:.1f}/{warm['compile_s']:.1f}" if "compile_s" in warm else "-"
            )
            load = f"{cold['load']:.1f}/{warm['load']:.1f}"
            print(
                f"{label:>12} {kind:>10} {warm['sampler']:>13} {cold['wall_s']:8.1f} "
                f"{warm['wall_s']:8.1f} {cold['cpu_s']:8.1f} {warm['cpu_s']:8.1f} {load:>9} "
                f"{compile_s:>13} {warm['sampling_s']:10.2f} "
                f"{warm['min_ess']:8.0f} {rate:8.0f} {warm['divergences']:4d}",
                flush=True,
            )


if __name__ == "__main__":
    main()
