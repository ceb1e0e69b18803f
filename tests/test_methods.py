"""The model section, prior sensitivity, methods paragraph and reproducibility block."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from bayesgmm import BayesGaussianMixture, build_model, load_faithful
from bayesgmm.methods import (
    log_prior_dataset,
    methods_paragraph,
    model_description,
    model_hyperparameters,
)
from bayesgmm.model import Priors
from bayesgmm.report import render_report


def _fit(**kw) -> BayesGaussianMixture:
    options = dict(draws=300, tune=300, chains=2, random_state=0, progressbar=False)
    options.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short fits may fail the convergence checks
        return BayesGaussianMixture(2, **options).fit(load_faithful())


@pytest.fixture(scope="module")
def default_fit() -> BayesGaussianMixture:
    return _fit()


@pytest.fixture(scope="module")
def conflicting_fit() -> BayesGaussianMixture:
    # Both component means held at the overall mean, far from both clusters.
    return _fit(priors=Priors(mean_scale=0.01))


@pytest.fixture(scope="module")
def short_stephens_fit() -> BayesGaussianMixture:
    return _fit(draws=100, tune=100, relabel="stephens")


# ---------------------------------------------------------------------- model section


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("n_features", [1, 2])
def test_hyperparameters_equal_build_model(covariance_type, n_features):
    X = load_faithful().iloc[:, :n_features]
    priors = Priors(weights_concentration=1.5, mean_scale=3.0, sd_scale=0.7, lkj_eta=4.0)
    hp = model_hyperparameters(build_model(X, 3, covariance_type=covariance_type, priors=priors))
    m, s = X.mean().to_numpy(), X.std(ddof=0).to_numpy()
    np.testing.assert_allclose(hp["weights_alpha"], [1.5] * 3)
    np.testing.assert_allclose(hp["means_mu"], np.tile(m, (3, 1)))
    np.testing.assert_allclose(hp["means_sigma"], np.tile(3.0 * s, (3, 1)))
    cov = hp["covariance"]
    expected_sd = 0.7 * (s.mean() if covariance_type == "spherical" else s)
    np.testing.assert_allclose(
        np.unique(np.round(cov["sd_sigma"], 12)),
        np.unique(np.round(np.broadcast_to(expected_sd, np.shape(cov["sd_sigma"])), 12)),
    )
    if covariance_type in ("full", "tied") and n_features > 1:
        assert cov["kind"] == "lkj" and cov["eta"] == 4.0
    else:
        assert cov["kind"] == "halfnormal" and cov["eta"] is None


def test_model_description_writes_the_numbers_in_data_units():
    X = load_faithful()
    desc = model_description(X, 2, covariance_type="full", priors=Priors(mean_scale=2.5))
    text = "\n".join(desc.lines())
    m, s = X.mean(), X.std(ddof=0)
    assert f"waiting: {m['waiting']:.4g}" in text  # prior mean of the means
    assert f"waiting: {2.5 * s['waiting']:.4g}" in text  # their prior sd
    assert f"waiting: {s['waiting']:.4g}" in text  # half-normal scale of the sds
    assert "LKJ(eta = 2)" in text and "Dirichlet(alpha = 1" in text
    assert "scaled to the data" in desc.scaling
    one = "\n".join(model_description(X.iloc[:, :1], 2, covariance_type="full").lines())
    assert "LKJ(" not in one
    assert "no LKJ" in one


# ---------------------------------------------------------------------- log prior


def test_log_prior_group_equals_the_model_log_density(default_fit):
    """The stored log prior is the model's prior terms: check one draw against model.logp."""
    tree = default_fit.idata_
    assert set(tree["log_prior"].data_vars) == {"weights", "means", "covariance"}
    model = build_model(load_faithful(), 2, covariance_type="full")
    total = sum(tree["log_prior"][v] for v in tree["log_prior"].data_vars)
    # means prior: closed form, from scipy
    from scipy import stats

    X = load_faithful()
    mu = tree["posterior"]["means"].isel(chain=0, draw=5).values
    ref = stats.norm.logpdf(mu, X.mean().to_numpy(), 2.5 * X.std(ddof=0).to_numpy()).sum()
    np.testing.assert_allclose(tree["log_prior"]["means"].isel(chain=0, draw=5), ref, rtol=1e-10)
    assert np.isfinite(total).all()
    again = log_prior_dataset(tree["posterior"].to_dataset(), model, "full")
    xr.testing.assert_allclose(again, tree["log_prior"].to_dataset())


# ---------------------------------------------------------------------- prior sensitivity


def test_default_priors_are_not_flagged(default_fit):
    table = default_fit.prior_sensitivity()
    assert {"prior", "likelihood", "diagnosis"} <= set(table.columns)
    assert any(i.startswith("corr[") for i in table.index)
    assert not table["diagnosis"].str.startswith("potential").any(), table


def test_conflicting_prior_is_flagged(conflicting_fit):
    table = conflicting_fit.prior_sensitivity()
    means = table[table.index.str.startswith("means")]
    assert means["diagnosis"].str.startswith("potential").any(), table
    assert (table["prior"] > 0.05).sum() >= 4, table


# ---------------------------------------------------------------------- methods paragraph


def test_methods_paragraph_follows_the_settings(default_fit, short_stephens_fit):
    a = methods_paragraph(default_fit)
    b = methods_paragraph(short_stephens_fit)
    assert "300 kept iterations" in a and "100 kept iterations" in b
    assert "pivot" in a and "Stephens' (2000) Kullback-Leibler" in b
    assert "Stephens' (2000) Kullback-Leibler" not in a
    for ref in ("Dempster", "Hoffman", "Lewandowski", "Vehtari", "Kallioinen"):
        assert ref in a
    # the sampler named is the one in the posterior's attributes
    other = BayesGaussianMixture._from_tree(default_fit.idata_.copy())
    other.idata_.attrs["sampler"] = "pymc"
    other.idata_["sample_stats"].attrs["inference_library_version"] = "6.4.0"
    assert "implemented in pymc 6.4.0" in methods_paragraph(other)
    assert f"implemented in {default_fit.idata_.attrs['sampler']}" in a


def test_methods_paragraph_never_calls_a_failed_check_passed(
    default_fit, conflicting_fit, short_stephens_fit
):
    seen_failure = False
    for bgm in (default_fit, conflicting_fit, short_stephens_fit):
        text = methods_paragraph(bgm, references=False)
        rep = bgm.diagnostics_
        assert ("All convergence checks passed." in text) == rep.passed
        assert ("checks FAILED" in text) == (not rep.passed)
        rhat = float(np.nanmax(rep.table["rhat"]))
        assert ("R-hat at most 1.01 (FAILED" in text) == (rhat > rep.rhat_max)
        seen_failure |= not rep.passed
    assert seen_failure, "no failing fit among the fixtures: the test would prove nothing"


def test_report_has_model_sensitivity_and_methods(conflicting_fit):
    for fmt in ("html", "md"):
        text = render_report(bgm=conflicting_fit, fmt=fmt, figures=False)
        for heading in ("Model", "Prior sensitivity", "Methods", "Reproducibility"):
            assert heading in text
        assert "prior-data conflict" in text or "Strong prior influence" in text
        assert "Kallioinen" in text


# ---------------------------------------------------------------------- reproducibility


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    return subprocess.run(
        [sys.executable, "-m", "bayesgmm", "--quiet", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_reproducibility_command_gives_the_identical_posterior(tmp_path):
    data = tmp_path / "faithful.csv"
    load_faithful().to_csv(data, index=False)
    first = _cli(
        "fit",
        str(data),
        "--draws",
        "100",
        "--tune",
        "100",
        "--chains",
        "2",
        "--method",
        "bayes",
        "--out",
        str(tmp_path / "a"),
        cwd=tmp_path,
    )
    assert first.returncode == 0, first.stderr
    run = json.loads((tmp_path / "a" / "run.json").read_text())["reproducibility"]
    assert run["input"]["name"] == "faithful.csv"
    assert run["input"]["size"] == data.stat().st_size
    import hashlib

    assert run["input"]["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert run["seed"] == 0 and "pymc" in run["versions"]
    methods = (tmp_path / "a" / "methods.md").read_text()
    assert run["command"] in methods and "## References" in methods
    html = (tmp_path / "a" / "report.html").read_text()
    assert run["input"]["sha256"] in html
    argv = shlex.split(run["command"])
    assert argv[:2] == ["bayesgmm", "fit"]
    argv[argv.index("--out") + 1] = str(tmp_path / "b")
    second = _cli(*argv[1:], cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    # 'bayesgmm report' shows the recorded reproducibility block and the methods
    report = _cli("report", str(tmp_path / "a"), "--format", "md", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    md = (tmp_path / "a" / "report.md").read_text()
    assert "## Methods" in md and run["input"]["sha256"] in md and "Kallioinen" in md
    a = BayesGaussianMixture.load(tmp_path / "a" / "posterior.nc").idata_["posterior"]
    b = BayesGaussianMixture.load(tmp_path / "b" / "posterior.nc").idata_["posterior"]
    for name in ("weights", "means", "covariances"):
        np.testing.assert_array_equal(a[name].values, b[name].values)


# ---------------------------------------------------------------------- prior predictive


def test_prior_predictive_draws_follow_the_priors(default_fit):
    from bayesgmm.plots import plot_prior_predictive, prior_predictive_draws

    X = load_faithful()
    sims = prior_predictive_draws(default_fit, n_draws=300, random_state=1)
    assert sims.shape == (300, len(X), 2)
    m, s = X.mean().to_numpy(), X.std(ddof=0).to_numpy()
    # E[x] = prior mean of the means; sd over data sets of a data set's mean is about
    # 2.5 s / sqrt(2) (two components), so 300 sets give a standard error near 0.1 s.
    np.testing.assert_array_less(np.abs(sims.mean(axis=(0, 1)) - m), 0.5 * s)
    # weakly informative: wider than the data, but not absurdly (within 20 data sds)
    lo, hi = np.quantile(sims.reshape(-1, 2), [0.01, 0.99], axis=0)
    assert np.all(lo < X.min().to_numpy()) and np.all(hi > X.max().to_numpy())
    assert np.all(hi - lo < 20 * s)
    fig = plot_prior_predictive(default_fit, n_draws=20)
    assert len([ax for ax in fig.axes if ax.axison]) == 2


# ---------------------------------------------------------------------- the Python call


def _tiny_fit(random_state) -> BayesGaussianMixture:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 1 chain of 50 draws fails the convergence checks
        return BayesGaussianMixture(
            2, draws=50, tune=50, chains=1, random_state=random_state, progressbar=False
        ).fit(load_faithful())


def test_python_call_reproduces_a_seeded_fit_and_says_when_it_cannot():
    from bayesgmm.methods import methods_markdown, python_call, python_call_caveat, reproducibility

    X = load_faithful()
    seeded = _tiny_fit(3)
    assert python_call_caveat(seeded) is None
    assert "python_caveat" not in reproducibility(seeded)
    call = python_call(seeded)
    assert "random_state=3" in call
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = eval(call, {"BayesGaussianMixture": BayesGaussianMixture, "Priors": Priors, "X": X})
    np.testing.assert_array_equal(
        again.idata_["posterior"]["means"].values, seeded.idata_["posterior"]["means"].values
    )

    unseeded = _tiny_fit(None)
    seed = unseeded.idata_.attrs["random_seed"]
    caveat = python_call_caveat(unseeded)
    assert caveat is not None and "cannot reproduce" in caveat and str(seed) in caveat
    info = reproducibility(unseeded)
    assert info["python_caveat"] == caveat and "random_state=None" in info["python"]
    assert caveat in methods_markdown(unseeded, reproducibility=info)
    md = render_report(bgm=unseeded, figures=False, fmt="md")
    assert "cannot reproduce the fit" in md
    assert "cannot reproduce" not in render_report(bgm=seeded, figures=False, fmt="md")
    # a generator object is not recorded either
    assert python_call_caveat(_tiny_fit(np.random.RandomState(1))) is not None
