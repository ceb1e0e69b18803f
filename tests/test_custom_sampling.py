"""How a custom model is sampled: its PyTensor-compiled log-density handed to nutpie.

The nutpie path of :func:`bayesgmm.sampling.sample_custom_posterior` compiles the model's
joint log-density and gradient on the unconstrained space with PyTensor (public PyMC API) and
gives them to nutpie's Python-function interface. These tests check that those functions are
the model's own (value and gradient against ``model.compile_logp``/``compile_dlogp``), that a
seed gives bit-identical draws, and that the posterior agrees with PyMC's NUTS on the same
model within Monte Carlo error.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from test_custom_model import hierarchical_means

from bayesgmm import make_mixture
from bayesgmm._custom import check_model
from bayesgmm.sampling import _compile_custom_functions, sample_custom_posterior

DRAWS = dict(draws=300, tune=300, chains=2, progressbar=False)


@pytest.fixture(scope="module")
def data():
    X, _ = make_mixture(
        160,
        weights=[0.4, 0.6],
        means=[[-3.0, 0.0], [3.0, 1.0]],
        covariances=[np.eye(2), np.diag([1.0, 0.5])],
        random_state=3,
    )
    return X


@pytest.fixture(scope="module")
def custom(data):
    model = hierarchical_means(data, 2)
    return check_model(model, data, 2, "diag", name="hierarchical_means")


def _sample(custom, X, sampler, seed):
    return sample_custom_posterior(
        custom,
        X,
        2,
        covariance_type="diag",
        feature_names=["x0", "x1"],
        sampler=sampler,
        random_seed=seed,
        **DRAWS,
    )


def test_compiled_logp_and_gradient_are_the_models(custom):
    model = custom.model
    fns = _compile_custom_functions(model, ["weights", "means", "sigma", "mu0", "tau"])
    logp = model.compile_logp()
    dlogp = model.compile_dlogp()
    rng = np.random.default_rng(0)
    point0 = model.initial_point()
    assert fns.names == [model.rvs_to_values[rv].name for rv in model.free_RVs]
    for _ in range(3):
        point = {k: v + 0.3 * rng.standard_normal(np.shape(v)) for k, v in point0.items()}
        x = np.concatenate([np.ravel(point[name]) for name in fns.names])
        value, grad = fns.logp_dlogp(x)
        np.testing.assert_allclose(value, logp(point), rtol=1e-10)
        np.testing.assert_allclose(grad, dlogp(point), rtol=1e-8, atol=1e-8)
        expanded = {name: v[0] for name, v in fns.expand_draws(x[None]).items()}
        assert set(expanded) == {"weights", "means", "sigma", "mu0", "tau"}
        for name in ("weights", "sigma", "tau"):  # back from the transformed values
            rv = model[name]
            value = point[model.rvs_to_values[rv].name]
            want = model.rvs_to_transforms[rv].backward(value, *rv.owner.inputs).eval()
            np.testing.assert_allclose(expanded[name], want, rtol=1e-12)
        np.testing.assert_allclose(expanded["means"], point["means"], rtol=1e-12)


def test_same_seed_gives_identical_draws(custom, data, monkeypatch):
    import nutpie

    def not_this_one(*args, **kwargs):
        raise AssertionError("the custom path must not go through compile_pymc_model")

    monkeypatch.setattr(nutpie, "compile_pymc_model", not_this_one)
    a = _sample(custom, data, "nutpie", 11)
    b = _sample(custom, data, "nutpie", 11)
    c = _sample(custom, data, "nutpie", 12)
    assert a.attrs["sampler"] == "nutpie"
    for name in ("weights", "means", "sigma", "mu0", "tau"):
        np.testing.assert_array_equal(a["posterior"][name].values, b["posterior"][name].values)
    assert not np.array_equal(a["posterior"]["means"].values, c["posterior"]["means"].values)


def test_posterior_agrees_with_pymc_nuts(custom, data):
    """Means of every stock parameter and hyper-parameter within 4 MCSE-combined units."""
    import arviz_stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = _sample(custom, data, "nutpie", 21)["posterior"].to_dataset()
        b = _sample(custom, data, "pymc", 22)["posterior"].to_dataset()
    names = ["weights", "means", "sigma", "mu0", "tau"]
    # chains start at the model's jittered initial point (no EM start here), so both
    # samplers' chains may sit in different labellings: compare the sorted components
    for post in (a, b):
        order = np.argsort(post["means"].isel(feature=0).values, axis=-1)
        for name in ("weights", "means", "sigma"):
            values = post[name].values
            idx = order.reshape(order.shape + (1,) * (values.ndim - 3))
            post[name].values = np.take_along_axis(values, idx, axis=2)
    for name in names:
        mean_a = a[name].mean(("chain", "draw")).values
        mean_b = b[name].mean(("chain", "draw")).values
        mcse_a = arviz_stats.mcse(a[[name]])[name].values
        mcse_b = arviz_stats.mcse(b[[name]])[name].values
        z = np.abs(mean_a - mean_b) / np.sqrt(mcse_a**2 + mcse_b**2)
        assert float(z.max()) < 4.0, (name, z)


def test_log_prior_of_every_draw_at_once_equals_one_draw_at_a_time(custom, data, monkeypatch):
    import pytensor.graph.replace

    from bayesgmm.bayes import _custom_log_prior

    post = _sample(custom, data, "nutpie", 5)["posterior"].to_dataset()
    real, used = pytensor.graph.replace.vectorize_graph, []

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        used.append(out)
        return out

    monkeypatch.setattr(pytensor.graph.replace, "vectorize_graph", spy)
    at_once = _custom_log_prior(post, custom, "diag")
    assert len(used) == 1

    def refuse(*args, **kwargs):
        raise NotImplementedError("not vectorisable")

    monkeypatch.setattr(pytensor.graph.replace, "vectorize_graph", refuse)
    one_by_one = _custom_log_prior(post, custom, "diag")
    assert set(at_once.data_vars) == {"weights", "means", "covariance", "other"}
    for name in at_once.data_vars:
        np.testing.assert_allclose(at_once[name].values, one_by_one[name].values, rtol=1e-12)


# ------------------------------------------------------------- the C callback (no GIL)


def test_callback_is_the_compiled_function(custom):
    """The C callback returns the compiled function's value and gradient, bit for bit,
    and calls the overload already compiled (no second compilation)."""
    import ctypes

    from bayesgmm._compiled_callback import log_density_callback

    fns = _compile_custom_functions(custom.model, ["weights", "means", "sigma"])
    jit_fn = fns.function.vm.jit_fn
    callback = log_density_callback(fns.function, fns.constants, fns.n_dim)
    assert len(jit_fn.overloads) == 1
    ptr = ctypes.POINTER(ctypes.c_double)
    data = callback.user_data.ctypes.data_as(ctypes.c_void_p)
    rng = np.random.default_rng(1)
    for _ in range(3):
        x = rng.normal(scale=0.5, size=fns.n_dim)
        grad, logp = np.empty(fns.n_dim), np.empty(1)
        code = callback.logp.ctypes(
            fns.n_dim, x.ctypes.data_as(ptr), grad.ctypes.data_as(ptr), logp.ctypes.data_as(ptr),
            data,
        )  # fmt: skip
        want, want_grad = fns.logp_dlogp(x)
        assert code == 0
        assert logp[0] == float(want)
        np.testing.assert_array_equal(grad, want_grad)
        out = np.empty(fns.n_dim)
        code = callback.expand.ctypes(
            fns.n_dim, fns.n_dim, x.ctypes.data_as(ptr), out.ctypes.data_as(ptr), data
        )
        assert code == 0
        np.testing.assert_array_equal(out, x)
    bad = np.full(fns.n_dim, np.nan)
    grad, logp = np.empty(fns.n_dim), np.empty(1)
    code = callback.logp.ctypes(
        fns.n_dim, bad.ctypes.data_as(ptr), grad.ctypes.data_as(ptr), logp.ctypes.data_as(ptr),
        data,
    )  # fmt: skip
    assert code != 0  # a non-finite density is reported, not returned as a number


def test_callback_and_python_interface_give_the_same_draws(custom, data, monkeypatch, caplog):
    """The default (C callback) and the public fallback (nutpie's Python-function
    interface) sample the same function from the same starts: identical draws."""
    from bayesgmm import _compiled_callback, sampling

    calls = []
    real = _compiled_callback.log_density_callback

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(_compiled_callback, "log_density_callback", spy)
    a = _sample(custom, data, "nutpie", 31)
    assert calls  # the default went through the callback
    monkeypatch.setattr(sampling, "_CUSTOM_NUTPIE_INTERFACE", "pyfunc")
    b = _sample(custom, data, "nutpie", 31)
    for name in ("weights", "means", "sigma", "mu0", "tau"):
        np.testing.assert_array_equal(a["posterior"][name].values, b["posterior"][name].values)

    # the callback unavailable (internals changed): one log line, the public path, same draws
    monkeypatch.setattr(sampling, "_CUSTOM_NUTPIE_INTERFACE", "callback")

    def unavailable(*args, **kwargs):
        raise _compiled_callback.CallbackUnavailable("jit_fn moved")

    monkeypatch.setattr(_compiled_callback, "log_density_callback", unavailable)
    with caplog.at_level("INFO", logger="bayesgmm"):
        c = _sample(custom, data, "nutpie", 31)
    assert sum("jit_fn moved" in r.getMessage() for r in caplog.records) == 1
    for name in ("weights", "means", "sigma", "mu0", "tau"):
        np.testing.assert_array_equal(a["posterior"][name].values, c["posterior"][name].values)


def test_callback_reports_an_error_raised_inside_the_model():
    """An exception inside the compiled function becomes error code 1 (nutpie's code for
    it), not a crash or a number."""
    import ctypes

    import pytensor
    import pytensor.tensor as pt
    from pytensor.raise_op import Assert

    from bayesgmm._compiled_callback import log_density_callback

    x = pt.vector("x", dtype="float64", shape=(3,))
    c = pt.vector("c", dtype="float64", shape=(3,))
    logp = Assert("the point left the model's support")(-((x - c) ** 2).sum(), x.sum() < 10.0)
    fn = pytensor.function([x, c], [logp, pt.grad(logp, x)], mode="NUMBA")
    centre = np.array([1.0, 2.0, 3.0])
    fn(np.zeros(3), centre)
    callback = log_density_callback(fn, [centre], 3)
    ptr = ctypes.POINTER(ctypes.c_double)
    data = callback.user_data.ctypes.data_as(ctypes.c_void_p)
    for point, want in ((np.zeros(3), 0), (np.full(3, 5.0), 1)):
        grad, value = np.empty(3), np.empty(1)
        code = callback.logp.ctypes(
            3, point.ctypes.data_as(ptr), grad.ctypes.data_as(ptr), value.ctypes.data_as(ptr),
            data,
        )  # fmt: skip
        assert code == want
        if want == 0:
            assert value[0] == -14.0
            np.testing.assert_array_equal(grad, -2 * (point - centre))


def test_callback_of_a_function_pytensor_does_not_cache():
    """Without PyTensor's cache the compiled function takes its inputs one by one (no
    ``*args`` wrapper): the callback calls that signature too."""
    import ctypes

    import pytensor
    import pytensor.tensor as pt

    from bayesgmm._compiled_callback import log_density_callback

    x = pt.vector("x", dtype="float64", shape=(2,))
    c = pt.matrix("c", dtype="float64", shape=(3, 2))
    logp = -((x[None, :] - c) ** 2).sum()
    with pytensor.config.change_flags(numba__cache=False):
        fn = pytensor.function([x, c], [logp, pt.grad(logp, x)], mode="NUMBA")
    centres = np.arange(6.0).reshape(3, 2)
    fn(np.zeros(2), centres)
    assert len(fn.vm.jit_fn.signatures[0]) == 2  # positional: not the cached wrapper
    callback = log_density_callback(fn, [centres], 2)
    ptr = ctypes.POINTER(ctypes.c_double)
    point, grad, value = np.array([0.5, -1.0]), np.empty(2), np.empty(1)
    code = callback.logp.ctypes(
        2, point.ctypes.data_as(ptr), grad.ctypes.data_as(ptr), value.ctypes.data_as(ptr),
        callback.user_data.ctypes.data_as(ctypes.c_void_p),
    )  # fmt: skip
    want, want_grad = fn(point, centres)
    assert code == 0 and value[0] == float(want)
    np.testing.assert_array_equal(grad, want_grad)
