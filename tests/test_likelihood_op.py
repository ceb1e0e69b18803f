"""The likelihood Op against the reference PyTensor formulation, finite differences and Numba."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
import xarray as xr

from bayesgmm._likelihood_op import MixtureLogDensity, MixtureLogDensityGrad
from bayesgmm._numerics import COVARIANCE_TYPES, log_mixture_density
from bayesgmm.model import _build_model, build_model

# Correctness does not depend on the backend: the Python linker compiles in seconds.
MODE = "FAST_COMPILE"
GRID = [(1, 1), (3, 1), (1, 3), (3, 3), (2, 9)]


def _data(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    half = n // 2
    return np.vstack([rng.normal(-1.5, 1.0, (half, d)), rng.normal(1.5, 0.7, (n - half, d))])


def _parameters(rng, k: int, d: int, covariance_type: str):
    """A random parameter set in the Op's layout (upper-triangular precision factors)."""
    weights = rng.dirichlet(np.full(k, 2.0))
    means = rng.normal(size=(k, d))
    if covariance_type == "full":
        pc = np.triu(rng.normal(scale=0.3, size=(k, d, d)), 1) + np.eye(d) * rng.uniform(
            0.6, 1.8, size=(k, 1, d)
        )
    elif covariance_type == "tied":
        pc = np.triu(rng.normal(scale=0.3, size=(d, d)), 1) + np.diag(rng.uniform(0.6, 1.8, d))
    elif covariance_type == "diag":
        pc = rng.uniform(0.6, 1.8, size=(k, d))
    else:
        pc = rng.uniform(0.6, 1.8, size=k)
    return weights, means, pc


def _logp_and_dlogp(model):
    """The model's log-density and gradient (``compile_logp`` / ``compile_dlogp``) in one
    compiled function: one compilation instead of two."""
    fn = model.compile_fn(
        inputs=model.value_vars, outs=[model.logp(), model.dlogp()], mode=MODE, point_fn=False
    )
    names = [v.name for v in model.value_vars]
    return lambda point: fn(*(point[n] for n in names))


@pytest.fixture(scope="module", params=[(k, d, c) for k, d in GRID for c in COVARIANCE_TYPES])
def model_pair(request):
    k, d, cov = request.param
    X = _data(24, d, seed=k * 10 + d)
    op = build_model(X, k, covariance_type=cov)
    ref = build_model(X, k, covariance_type=cov, likelihood="reference")
    return op, ref, _logp_and_dlogp(op), _logp_and_dlogp(ref)


def test_model_logp_and_gradient_equal_reference(model_pair):
    op_model, ref_model, op_fn, ref_fn = model_pair
    assert [v.name for v in op_model.value_vars] == [v.name for v in ref_model.value_vars]
    rng = np.random.default_rng(5)
    for _ in range(3):
        point = {
            name: value + rng.normal(scale=0.5, size=np.shape(value))
            for name, value in op_model.initial_point().items()
        }
        logp, dlogp = op_fn(point)
        ref_logp, ref_dlogp = ref_fn(point)
        assert np.isfinite(logp) and np.all(np.isfinite(dlogp))
        np.testing.assert_allclose(logp, ref_logp, rtol=1e-10)
        np.testing.assert_allclose(dlogp, ref_dlogp, rtol=1e-9, atol=1e-10)


def test_public_compile_logp_and_dlogp_equal_reference():
    """The public ``compile_logp``/``compile_dlogp`` of both formulations, one grid cell."""
    X = _data(30, 3, seed=1)
    op = build_model(X, 2, covariance_type="full")
    ref = build_model(X, 2, covariance_type="full", likelihood="reference")
    point = op.initial_point()
    for fn in ("compile_logp", "compile_dlogp"):
        got = getattr(op, fn)(mode=MODE)(point)
        want = getattr(ref, fn)(mode=MODE)(point)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize(("k", "d"), [(1, 1), (3, 2), (2, 4)])
def test_op_value_and_finite_difference_gradient(covariance_type, k, d):
    rng = np.random.default_rng(k + 10 * d)
    X = _data(50, d, seed=d)
    weights, means, pc = _parameters(rng, k, d, covariance_type)
    value = MixtureLogDensity(covariance_type)(pt.constant(X), weights, means, pc).eval(mode=MODE)
    want = log_mixture_density(X, weights, means, pc, covariance_type)
    np.testing.assert_allclose(value, want, rtol=1e-12)

    def f(w, mu, p):
        return MixtureLogDensity(covariance_type)(pt.constant(X), w, mu, p)

    pytensor.gradient.verify_grad(f, [weights, means, pc], rng=rng, mode=MODE)


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_op_reads_upper_triangle_only(covariance_type):
    """The lower triangle of U is ignored: no effect on the value, zero gradient."""
    rng = np.random.default_rng(2)
    X = _data(20, 3, seed=2)
    weights, means, pc = _parameters(rng, 2, 3, covariance_type)
    noisy = pc + np.tril(rng.normal(size=pc.shape), -1)
    p = pt.tensor(shape=pc.shape, dtype="float64")
    out = MixtureLogDensity(covariance_type)(pt.constant(X), weights, means, p)
    fn = pytensor.function([p], [out, pytensor.grad(out.sum(), p)], mode=MODE)
    v0, g0 = fn(pc)
    v1, g1 = fn(noisy)
    np.testing.assert_allclose(v1, v0, rtol=1e-14)
    np.testing.assert_allclose(g1, g0, rtol=1e-12)
    lower = np.tril(np.ones(pc.shape[-2:], dtype=bool), -1)
    assert np.all(g0[..., lower] == 0.0)
    assert np.any(g0[..., ~lower] != 0.0)


def test_gradient_of_weighted_sum_uses_cotangent():
    """The gradient Op is a vector-Jacobian product, not only the gradient of the sum."""
    rng = np.random.default_rng(3)
    X = _data(30, 2, seed=3)
    weights, means, pc = _parameters(rng, 3, 2, "diag")
    g = rng.normal(size=X.shape[0])
    mu = pt.matrix("mu")
    out = MixtureLogDensity("diag")(pt.constant(X), weights, mu, pc)
    fn = pytensor.function([mu], pytensor.grad((out * g).sum(), mu), mode=MODE)
    eps = 1e-6
    numeric = np.empty_like(means)
    for idx in np.ndindex(means.shape):
        step = np.zeros_like(means)
        step[idx] = eps
        up = log_mixture_density(X, weights, means + step, pc, "diag") @ g
        down = log_mixture_density(X, weights, means - step, pc, "diag") @ g
        numeric[idx] = (up - down) / (2 * eps)
    np.testing.assert_allclose(fn(means), numeric, rtol=1e-6, atol=1e-8)


def test_bad_arguments_say_what_is_expected():
    with pytest.raises(ValueError, match="covariance_type='banana'"):
        MixtureLogDensity("banana")
    with pytest.raises(ValueError, match="means must have 2 dimension"):
        MixtureLogDensity("diag")(pt.matrix(), pt.vector(), pt.vector(), pt.matrix())
    X = pt.constant(_data(10, 2, seed=0))
    with pytest.raises(ValueError, match=r"means must have shape \(K, D\)"):
        MixtureLogDensity("diag")(X, np.full(2, 0.5), np.zeros((3, 2)), np.ones((2, 2))).eval(
            mode=MODE
        )
    with pytest.raises(ValueError, match="precision parameter's shape"):
        MixtureLogDensity("full")(X, np.full(2, 0.5), np.zeros((2, 2)), np.ones((2, 3, 3))).eval(
            mode=MODE
        )
    with pytest.raises(ValueError, match="likelihood='fast'"):
        build_model(_data(10, 1, seed=0), 1, likelihood="fast")
    with pytest.raises(ValueError, match="likelihood='reference'"):
        _build_model(_data(10, 2, seed=0), 2, formulation="einsum")


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_numba_implementation_equals_perform(covariance_type):
    """PyTensor's Numba backend calls the kernels directly (no object-mode fallback) and gives
    what ``perform`` gives, value and gradient."""
    rng = np.random.default_rng(4)
    k, d = 3, 2
    X = _data(300, d, seed=4)  # more than one block of rows
    weights, means, pc = _parameters(rng, k, d, covariance_type)
    w, mu, p = pt.vector("w"), pt.matrix("mu"), pt.tensor("p", shape=(None,) * pc.ndim)
    g = pt.vector("g")
    out = MixtureLogDensity(covariance_type)(pt.constant(X), w, mu, p)
    grads = pytensor.grad((out * g).sum(), [w, mu, p])
    args = (weights, means, pc, rng.normal(size=X.shape[0]))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*object mode.*")
        numba_fn = pytensor.function([w, mu, p, g], [out, *grads], mode="NUMBA")
    python_fn = pytensor.function([w, mu, p, g], [out, *grads], mode=MODE)
    for got, want in zip(numba_fn(*args), python_fn(*args), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
    nodes = [type(n.op) for n in numba_fn.maker.fgraph.toposort()]
    assert MixtureLogDensity in nodes and MixtureLogDensityGrad in nodes


def test_compute_log_likelihood_and_predictive_draws():
    X = pd.DataFrame(_data(40, 2, seed=6), columns=["a", "b"])
    model = build_model(X, 2, covariance_type="tied")
    with model:
        prior = pm.sample_prior_predictive(draws=6, random_seed=1, compile_kwargs={"mode": MODE})
    post = prior["prior"].to_dataset()
    tree = xr.DataTree.from_dict({"posterior": _as_chain_draw(post, 2, 3)})
    ll = pm.compute_log_likelihood(
        tree,
        model=model,
        extend_inferencedata=False,
        progressbar=False,
        compile_kwargs={"mode": MODE},
    )
    assert ll["obs"].dims == ("chain", "draw", "obs_id")
    assert ll["obs"].shape == (2, 3, 40)
    tied = tree["posterior"]["precisions_cholesky"].values
    for c in range(2):
        for s in range(3):
            want = log_mixture_density(
                X.to_numpy(),
                tree["posterior"]["weights"].values[c, s],
                tree["posterior"]["means"].values[c, s],
                tied[c, s],
                "tied",
            )
            np.testing.assert_allclose(ll["obs"].values[c, s], want, rtol=1e-10)
    # the random function still draws data of the observed shape
    assert prior["prior_predictive"]["obs"].shape == (1, 6, 40, 2)


def _as_chain_draw(prior: xr.Dataset, chains: int, draws: int) -> xr.Dataset:
    """Reshape the first chains*draws prior draws into (chain, draw, ...)."""
    out = {}
    for name, da in prior.data_vars.items():
        values = da.values[0, : chains * draws]
        out[name] = (
            ("chain", "draw", *da.dims[2:]),
            values.reshape((chains, draws, *values.shape[1:])),
        )
    coords = {c: prior.coords[c] for c in prior.coords if c not in ("chain", "draw")}
    return xr.Dataset(out, coords={**coords, "chain": range(chains), "draw": range(draws)})


def test_nutpie_numba_backend_samples_the_op_model():
    """nutpie's public API compiles the Op model with Numba (no object mode) and samples it."""
    nutpie = pytest.importorskip("nutpie")
    rng = np.random.default_rng(8)
    X = np.vstack([rng.normal([-3.0, 0.0], 0.6, (60, 2)), rng.normal([3.0, 1.0], 0.6, (60, 2))])
    model = build_model(X, 2, covariance_type="diag")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*object mode.*")
        compiled = nutpie.compile_pymc_model(model, backend="numba")
    idata = nutpie.sample(
        compiled, draws=100, tune=150, chains=2, seed=3, progress_bar=False, cores=1
    )
    means = idata["posterior"]["means"].values  # (chain, draw, component, feature)
    order = np.argsort(means[..., 0], axis=-1)
    ordered = np.take_along_axis(means, order[..., None], axis=-2)
    centre = ordered.reshape(-1, 2, 2).mean(axis=0)
    np.testing.assert_allclose(centre, [[-3.0, 0.0], [3.0, 1.0]], atol=0.4)


@pytest.mark.parametrize(
    ("sampler", "likelihood"), [("pymc", "op"), ("numpyro", "reference"), ("blackjax", "reference")]
)
def test_jax_samplers_build_the_reference_likelihood(monkeypatch, sampler, likelihood):
    """The Op has no JAX implementation: the samplers that run the graph through JAX get the
    reference formulation, PyMC's own NUTS gets the Op."""
    from bayesgmm import sampling

    seen = {}

    class Built(Exception):
        pass

    def fake_build_model(*args, likelihood="op", **kwargs):
        seen["likelihood"] = likelihood
        raise Built

    monkeypatch.setattr("bayesgmm.model.build_model", fake_build_model)
    job = sampling._SamplingJob(
        X=_data(10, 2, seed=0),
        k=2,
        covariance_type="diag",
        priors=None,
        feature_names=["a", "b"],
        initvals=None,
        init_jitter=None,
        draws=10,
        tune=10,
        chains=1,
        sampler=sampler,
        target_accept=0.8,
        random_seed=0,
        progressbar=False,
        cores=1,
    )
    with pytest.raises(Built):
        sampling._sample_pymc(job)
    assert seen == {"likelihood": likelihood}
