"""A user's own PyMC model: the contract check, sampling, and everything downstream.

The example model puts a hierarchical prior on the component means (``mu0 ~ Normal``,
``tau ~ HalfNormal``, ``means ~ Normal(mu0, tau)``) with diagonal covariances, written the
way a user would write it, with the likelihood spelt out. Its fit (nutpie's public API) is
shared by the module; ``sampler="pymc"`` is run on ``build_model`` itself passed as the
custom model, which must agree with the stock fast path.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import warnings

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest

from bayesgmm import BayesGaussianMixture, build_model, make_mixture
from bayesgmm._custom import check_model
from bayesgmm.exceptions import SamplingWarning

DRAWS = dict(draws=200, tune=200, chains=2, progressbar=False)


def hierarchical_means(X, n_components, covariance_type="diag", priors=None, *, vary=None):
    """Diagonal-covariance mixture whose means share an unknown centre and spread.

    ``vary`` (tests only) breaks the contract in one named way.
    """
    vary = vary or {}
    k = n_components
    n, d = X.shape
    s = X.std(axis=0)
    feats = [f"x{j}" for j in range(d)]
    coords = {"obs_id": np.arange(n), "component": np.arange(k), "feature": feats}
    coords["feature_bis"] = feats

    def name(stock):
        return vary.get("rename", {}).get(stock, stock)

    with pm.Model(coords=coords) as model:
        w = pm.Dirichlet(name("weights"), a=np.ones(k), dims="component")
        mu0 = pm.Normal("mu0", mu=X.mean(axis=0), sigma=3 * s, dims="feature")
        tau = pm.HalfNormal("tau", sigma=3 * s, dims="feature")
        means = pm.Normal(
            name("means"), mu=mu0, sigma=tau, dims=vary.get("means_dims", ("component", "feature"))
        )
        sigma = pm.HalfNormal(
            name("sigma"), sigma=np.tile(s, (k, 1)), dims=("component", "feature")
        )
        prec = 1.0 / sigma
        cov = (sigma ** vary.get("cov_power", 2.0))[:, :, None]
        if name("covariances"):
            pm.Deterministic(
                name("covariances"),
                cov * pt.eye(d)[None],
                dims=("component", "feature", "feature_bis"),
            )
        if name("precisions_cholesky"):
            pm.Deterministic(name("precisions_cholesky"), prec, dims=("component", "feature"))
        use_w = pt.ones(k) / k if vary.get("ignore_weights") else w

        def logp(value, w_, mu_, pc_):
            y = (value[:, None, :] - mu_[None]) * pc_[None]
            comp = pt.log(pc_).sum(-1) - 0.5 * d * np.log(2 * np.pi) - 0.5 * (y**2).sum(-1)
            return pt.logsumexp(pt.log(w_) + comp, axis=-1)

        pm.CustomDist(
            "obs",
            use_w,
            means,
            prec,
            logp=logp,
            observed=vary.get("observed", X),
            dims=("obs_id", "feature"),
            signature="(k),(k,d),(k,d)->(d)",
        )
        if vary.get("second_observed"):
            pm.Normal("other", mu=mu0[0], sigma=1.0, observed=np.zeros(3))
    return model


@pytest.fixture(scope="module")
def data():
    X, y = make_mixture(
        160,
        weights=[0.4, 0.6],
        means=[[-3.0, 0.0], [3.0, 1.0]],
        covariances=[np.eye(2), np.diag([1.0, 0.5])],
        random_state=3,
    )
    return X, y


@pytest.fixture(scope="module")
def custom_fit(data):
    X, _ = data
    bgm = BayesGaussianMixture(
        2, covariance_type="diag", model=hierarchical_means, random_state=1, **DRAWS
    )
    with _no_check():
        return bgm.fit(X)


@contextlib.contextmanager
def _no_check():
    """Short chains may fail the ESS check; that is not what these tests are about."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        yield


# ---------------------------------------------------------------------- the fit


def test_custom_fit_has_the_stock_groups_and_its_hyper_parameters(custom_fit, data):
    X, _ = data
    tree = custom_fit.idata_
    assert tree.attrs["sampler"] == "nutpie"
    assert tree.attrs["custom_model"].endswith("hierarchical_means")
    assert "def hierarchical_means" in tree.attrs["custom_model_source"]
    assert custom_fit.model_source_ == tree.attrs["custom_model_source"]
    post = tree["posterior"]
    for name in ("weights", "means", "sigma", "covariances", "precisions_cholesky", "mu0", "tau"):
        assert name in post, name
    assert post["means"].dims == ("chain", "draw", "component", "feature")
    assert post["tau"].dims == ("chain", "draw", "feature")
    assert tree["log_likelihood"]["obs"].shape == (2, 200, X.shape[0])
    assert set(tree["log_prior"].data_vars) == {"weights", "means", "covariance", "other"}
    # the hyper-parameters are diagnosed too
    assert any(str(p).startswith("tau") for p in custom_fit.diagnostics_.table["parameter"])
    # draws are in the data's units: the means sit at the clusters' centres
    order = np.argsort(custom_fit.means_[:, 0])
    np.testing.assert_allclose(custom_fit.means_[order], [[-3.0, 0.0], [3.0, 1.0]], atol=0.4)


def test_custom_fit_membership_predict_and_report(custom_fit, data):
    from sklearn.metrics import adjusted_rand_score

    from bayesgmm.report import render_report

    X, y = data
    labels = custom_fit.predict(X)
    assert labels.shape == (X.shape[0],)
    assert adjusted_rand_score(y, labels) > 0.95
    proba = custom_fit.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(custom_fit.membership().mean, proba, atol=1e-12)
    assert np.all(np.isfinite(custom_fit.score_samples(X)))
    html = render_report(bgm=custom_fit, figures=False)
    assert "hierarchical_means" in html
    assert "mu0 = pm.Normal" in html  # the model's source is shown, as text
    assert "Normal(mean" not in html  # the stock priors are not claimed
    # Issue 21: the model as PyMC prints it, and the variables bayesgmm reads with their role
    assert "mu0 ~ Normal" in html and "means ~ Normal" in html
    assert '<td>weights</td><td class="text">free random variable</td>' in html
    assert '<td>covariances</td><td class="text">deterministic</td>' in html
    assert "observed: the mixture likelihood of X" in html
    assert "free random variable of the model&#x27;s own" in html
    assert "could not be computed" not in html  # prior sensitivity from the model's own priors
    table = custom_fit.prior_sensitivity()
    assert {"prior", "likelihood"} <= set(table.columns)


def test_save_load_round_trip_never_runs_the_recorded_source(custom_fit, data, tmp_path):
    X, _ = data
    path = tmp_path / "fit.nc"
    custom_fit.save(path)
    loaded = BayesGaussianMixture.load(path)
    assert loaded.model == custom_fit.idata_.attrs["custom_model"]
    assert loaded.model_source_ == custom_fit.model_source_
    np.testing.assert_array_equal(loaded.predict(X), custom_fit.predict(X))
    np.testing.assert_allclose(loaded.score_samples(X), custom_fit.score_samples(X))
    with pytest.raises(ValueError, match="pass model=your_function to refit"):
        loaded.fit(X)
    # diagnostics (hyper-parameters included) and prior sensitivity from the saved draws
    assert loaded.diagnostics_.verdict == custom_fit.diagnostics_.verdict
    assert loaded.prior_sensitivity().equals(custom_fit.prior_sensitivity())

    # A file whose recorded "source" would create a file if it were ever executed.
    marker = tmp_path / "PWNED"
    evil = custom_fit.idata_.copy()
    evil.attrs["custom_model"] = "os.system"
    evil.attrs["custom_model_source"] = (
        f"import pathlib; pathlib.Path({str(marker)!r}).write_text('ran')\n"
        f"def hierarchical_means(*a, **k):\n    pathlib.Path({str(marker)!r}).write_text('ran')\n"
    )
    bad = BayesGaussianMixture.load(path)
    bad.idata_ = evil
    bad.save(tmp_path / "evil.nc")
    opened = BayesGaussianMixture.load(tmp_path / "evil.nc")
    opened.membership()
    opened.predict(X)
    from bayesgmm.report import render_report

    assert "write_text" in render_report(bgm=opened, figures=False)
    assert opened.model == "os.system"  # a name, not a resolved object
    assert not marker.exists()


def test_build_model_as_custom_model_agrees_with_the_stock_fit(data):
    """``model=build_model`` through pm.sample must give the stock posterior (fast path)."""
    X, _ = data
    common = dict(covariance_type="diag", random_state=5, **DRAWS)
    with _no_check():
        custom = BayesGaussianMixture(2, model=build_model, sampler="pymc", **common).fit(X)
        stock = BayesGaussianMixture(2, **common).fit(X)
    assert custom.idata_.attrs["sampler"] == "pymc"
    assert "custom_model" in custom.idata_.attrs and "custom_model" not in stock.idata_.attrs
    a, b = custom.idata_["posterior"], stock.idata_["posterior"]
    for name in ("weights", "means", "sigma"):
        ma, mb = a[name].mean(("chain", "draw")), b[name].mean(("chain", "draw"))
        sd = np.sqrt(a[name].var(("chain", "draw")) + b[name].var(("chain", "draw")))
        assert float((abs(ma - mb) / sd).max()) < 1.0, name  # within one posterior sd
    # the pointwise log-likelihood is the same kernel on the same data
    assert (
        custom.idata_["log_likelihood"]["obs"].shape == stock.idata_["log_likelihood"]["obs"].shape
    )


def test_auto_falls_back_to_pymc_when_nutpie_fails_on_the_model(data, monkeypatch, caplog):
    from bayesgmm import sampling

    def broken(*args, **kwargs):
        raise NotImplementedError("no Numba implementation for SomeOp")

    # the nutpie path compiles the model's log-density with PyTensor before nutpie sees it
    monkeypatch.setattr(sampling, "_compile_custom_functions", broken)
    X, _ = data
    common = dict(covariance_type="diag", model=build_model, random_state=5, **DRAWS)
    with pytest.raises(NotImplementedError, match="SomeOp"):  # asked for nutpie: no fallback
        BayesGaussianMixture(2, sampler="nutpie", **common).fit(X)
    with _no_check(), caplog.at_level("WARNING", logger="bayesgmm"):
        bgm = BayesGaussianMixture(2, sampler="auto", **common).fit(X)
    assert bgm.idata_.attrs["sampler"] == "pymc"
    assert "SomeOp" in bgm.idata_.attrs["sampler_fallback"]
    assert "used PyMC's NUTS instead" in caplog.text
    assert bgm.predict(X).shape == (X.shape[0],)


# ---------------------------------------------------------------------- the contract


@pytest.mark.parametrize("k,d", [(1, 1), (2, 1), (2, 3)])
@pytest.mark.parametrize("cov", ["full", "tied", "diag", "spherical"])
def test_build_model_keeps_the_contract(cov, k, d, rng):
    X = rng.normal(size=(30, d))
    em_like = {"weights": np.full(k, 1.0 / k), "means": rng.normal(size=(k, d))}
    if cov == "full":
        em_like["chol"] = np.broadcast_to(np.eye(d) * 0.7, (k, d, d)).copy()
    elif cov == "tied":
        em_like["chol"] = np.eye(d) * 0.7
    elif cov == "diag":
        em_like["sigma"] = np.full((k, d), 0.8)
    else:
        em_like["sigma"] = np.full(k, 0.8)
    info = check_model(build_model(X, k, covariance_type=cov), X, k, cov, name="b", start=em_like)
    assert info.extra == ()
    assert "weights" in info.free_stock and "means" in info.free_stock


def _check(X, **vary):
    model = hierarchical_means(X, 2, vary=vary)
    return check_model(model, X, 2, "diag", name="tests.hierarchical_means")


@pytest.mark.parametrize(
    "stock", ["weights", "means", "sigma", "covariances", "precisions_cholesky"]
)
def test_a_missing_variable_is_named(stock, rng):
    X = rng.normal(size=(40, 2))
    rename = {stock: None if stock in ("covariances", "precisions_cholesky") else stock + "_"}
    with pytest.raises(ValueError, match=f"without a free or deterministic variable '{stock}'"):
        _check(X, rename=rename)


def test_the_extra_free_variables_are_reported(rng):
    X = rng.normal(size=(40, 2))
    info = _check(X)
    assert set(info.extra) == {"mu0", "tau"}
    assert set(info.free_stock) == {"weights", "means", "sigma"}


def test_wrong_dims_wrong_data_and_wrong_likelihood_are_refused(rng):
    X = rng.normal(size=(40, 2))
    with pytest.raises(ValueError, match=r"'means' has dims \('feature', 'component'\)"):
        _check(X, means_dims=("feature", "component"))
    with pytest.raises(ValueError, match=r"observes data of shape .* that is not X"):
        _check(X, observed=(X - X.mean(0)) / X.std(0))  # standardised: not the data
    with pytest.raises(ValueError, match="observes data of shape \\(20, 2\\)"):
        _check(X, observed=X[:20])
    with pytest.raises(ValueError, match="Gaussian mixture log-likelihood"):
        _check(X, ignore_weights=True)
    with pytest.raises(ValueError, match="2 observed variables"):
        _check(X, second_observed=True)
    with pytest.raises(ValueError, match="'covariances' does not follow from 'sigma'"):
        _check(X, cov_power=1.0)


def test_fit_refuses_a_broken_model_before_sampling(rng):
    X = rng.normal(size=(40, 2))

    def not_a_model(X, n_components, covariance_type, priors):
        return {"weights": 1}

    with pytest.raises(TypeError, match=r"returned dict, not a pymc\.Model"):
        BayesGaussianMixture(2, covariance_type="diag", model=not_a_model, **DRAWS).fit(X)

    def no_weights(X, n_components, covariance_type, priors):
        return hierarchical_means(X, n_components, vary={"rename": {"weights": "w"}})

    with pytest.raises(ValueError, match="'weights' of dims \\('component',\\)"):
        BayesGaussianMixture(2, covariance_type="diag", model=no_weights, **DRAWS).fit(X)
    with pytest.raises(TypeError, match="model must be a function"):
        BayesGaussianMixture(2, model=3, **DRAWS).fit(X)


def test_the_model_parameter_is_a_plain_estimator_parameter():
    from sklearn.base import clone

    bgm = BayesGaussianMixture(2, model=hierarchical_means)
    assert clone(bgm).model is hierarchical_means
    assert BayesGaussianMixture(2).get_params()["model"] is None


# ---------------------------------------------------------------------- compare_models, CLI


def test_compare_models_takes_the_custom_model(data):
    from bayesgmm import compare_models

    X, _ = data
    with _no_check():
        res = compare_models(
            X,
            n_components=[2],
            covariance_types=["diag"],
            model=hierarchical_means,
            random_state=0,
            retry=False,
            **{k: v for k, v in DRAWS.items() if k != "progressbar"},
        )
    tree = res.posteriors["diag-K2"]
    assert tree.attrs["custom_model"].endswith("hierarchical_means")
    assert "tau" in tree["posterior"]
    assert len(res.table) == 1
    # the evidence is the custom model's own (tests/test_evidence_custom.py): a number, or a
    # reason that is not "custom model" (short chains here may fail their checks)
    found = json.loads(tree.attrs["evidence"])
    assert found["estimable"] or "custom model" not in found["reason"], found
    from bayesgmm.report import render_report

    html = render_report(comparison=res, figures=False)
    assert "custom PyMC models" in html and "hierarchical_means" in html
    assert "Normal(mean" not in html  # the stock priors are not claimed for them
    with pytest.raises(ValueError, match="does not include 'bayes'"):
        compare_models(X, n_components=[2], methods=("em",), model=hierarchical_means)


_MODEL_FILE = """
import numpy as np
import pymc as pm
import pytensor.tensor as pt

NOT_A_FUNCTION = 3


def returns_a_dict(X, n_components, covariance_type, priors):
    return {"weights": None}
"""


def _model_file(tmp_path):
    path = tmp_path / "my_models.py"
    path.write_text(_MODEL_FILE + "\n\n" + inspect.getsource(hierarchical_means))
    return path


def test_cli_fit_with_model_then_report_and_predict(data, tmp_path, capsys):
    from bayesgmm.cli import main

    X, _ = data
    np.save(tmp_path / "data.npy", X)
    spec = f"{_model_file(tmp_path)}:hierarchical_means"
    out = tmp_path / "out"
    argv = ["--quiet", "fit", str(tmp_path / "data.npy"), "-k", "2", "--covariance", "diag"]
    argv += ["--method", "both", "--draws", "200", "--tune", "200", "--chains", "2"]
    code = main([*argv, "--model", spec, "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    loaded = BayesGaussianMixture.load(out / "posterior.nc")
    assert loaded.model == spec  # the name as given on the command line
    assert "def hierarchical_means" in loaded.model_source_
    run = json.loads((out / "run.json").read_text())
    assert f"--model {spec}" in run["reproducibility"]["command"]
    assert "mu0 = pm.Normal" in (out / "report.html").read_text()
    assert main(["--quiet", "predict", str(out), str(tmp_path / "data.npy"), "--out",
                 str(tmp_path / "pred.csv")]) == 0  # fmt: skip


@pytest.mark.parametrize(
    "suffix,message",
    [
        ("missing.py:f", "does not exist"),
        ("{file}:nope", "defines no 'nope'"),
        ("{file}:NOT_A_FUNCTION", "is not callable (it is of type int)"),
        ("{file}", "give the model function as FILE.py:FUNCTION"),
        ("{file}:returns_a_dict", "returned dict, not a pymc.Model"),
    ],
)
def test_cli_model_errors_exit_2_with_one_line(suffix, message, data, tmp_path, capsys):
    from bayesgmm.cli import main

    X, _ = data
    np.save(tmp_path / "data.npy", X)
    spec = suffix.format(file=_model_file(tmp_path)).replace("missing.py", str(tmp_path / "m.py"))
    argv = ["--quiet", "fit", str(tmp_path / "data.npy"), "-k", "2", "--covariance", "diag"]
    argv += ["--method", "bayes", "--draws", "20", "--tune", "20", "--chains", "1"]
    code = main([*argv, "--model", spec, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # nothing written


def test_cli_refuses_model_with_em_only(data, tmp_path, capsys):
    from bayesgmm.cli import main

    X, _ = data
    np.save(tmp_path / "data.npy", X)
    spec = f"{_model_file(tmp_path)}:hierarchical_means"
    for cmd in ("fit", "compare"):
        code = main([cmd, str(tmp_path / "data.npy"), "--method", "em", "--model", spec,
                     "--out", str(tmp_path / cmd)])  # fmt: skip
        assert code == 2
        assert "--method em fits EM only" in capsys.readouterr().err


def test_cli_compare_passes_the_model_on(data, tmp_path, monkeypatch):
    import bayesgmm.selection
    from bayesgmm.cli import main

    X, _ = data
    np.save(tmp_path / "data.npy", X)
    seen = {}

    def fake_compare(X, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop here")

    monkeypatch.setattr(bayesgmm.selection, "compare_models", fake_compare)
    spec = f"{_model_file(tmp_path)}:hierarchical_means"
    argv = ["--quiet", "compare", str(tmp_path / "data.npy"), "-k", "2", "--covariance", "diag"]
    assert main([*argv, "--model", spec, "--out", str(tmp_path / "cmp")]) == 2
    assert seen["model"].__name__ == "hierarchical_means"
    assert "def hierarchical_means" in inspect.getsource(seen["model"])


# ---------------------------------------------------------------------- starts, provenance


@pytest.mark.parametrize("cov", ["full", "tied", "diag", "spherical"])
def test_em_starts_are_jittered_per_chain_and_valid(cov, rng):
    """The per-chain starts (symbolic for nutpie, numeric for pm.sample) of every type."""
    from pymc.initial_point import make_initial_point_fn

    from bayesgmm.sampling import _custom_starts_numeric, _custom_starts_symbolic

    k, d = 2, 2
    X = rng.normal(size=(30, d))
    model = build_model(X, k, covariance_type=cov)
    start = {"weights": np.array([0.3, 0.7]), "means": np.array([[-1.0, 0.0], [1.0, 0.5]])}
    if cov == "full":
        start["chol"] = np.array([[[1.0, 0.0], [0.3, 0.8]], [[0.5, 0.0], [-0.1, 0.9]]])
    elif cov == "tied":
        start["chol"] = np.array([[1.0, 0.0], [0.3, 0.8]])
    else:
        start["sigma"] = np.full((k, d), 0.8) if cov == "diag" else np.array([0.8, 0.6])
    free = {rv.name for rv in model.free_RVs}
    jitter = np.full((k, d), 0.1)
    overrides = _custom_starts_symbolic(start, jitter, cov, k, free)
    fn = make_initial_point_fn(
        model=model, overrides=overrides, jitter_rvs=set(), return_transformed=False
    )
    a, b = fn(1), fn(2)
    numeric = _custom_starts_numeric(start, jitter, cov, k, free, 2, 0)
    for point in (a, b, *numeric):
        np.testing.assert_allclose(point["weights"].sum(), 1.0)
        np.testing.assert_allclose(point["weights"], start["weights"], rtol=0.3)
        np.testing.assert_allclose(point["means"], start["means"], atol=0.6)
    assert not np.allclose(a["means"], b["means"])  # each chain its own start
    assert not np.allclose(numeric[0]["means"], numeric[1]["means"])
    name = {"full": "chol_cov_1", "tied": "chol_cov"}.get(cov, "sigma")
    assert np.all(np.isfinite(a[name])) and not np.allclose(a[name], b[name])


def test_python_call_and_markdown_report_name_the_function(custom_fit):
    from bayesgmm.methods import methods_paragraph, python_call
    from bayesgmm.report import render_report

    assert "model=hierarchical_means," in python_call(custom_fit)
    assert "custom PyMC model" in methods_paragraph(custom_fit)
    assert "Priors:" not in methods_paragraph(custom_fit)
    md = render_report(bgm=custom_fit, figures=False, fmt="md")
    assert "```python\ndef hierarchical_means" in md
