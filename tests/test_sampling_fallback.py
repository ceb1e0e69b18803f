"""Issue 15, item 4: nutpie's private API has a net (bayesgmm._nutpie_private)."""

from __future__ import annotations

import logging
import types
import warnings

import numpy as np
import pytest

from bayesgmm import BayesGaussianMixture, SamplingWarning, load_faithful
from bayesgmm import _logdensity as logdensity
from bayesgmm._nutpie_private import NutpiePrivateAPIError
from bayesgmm.model import Priors
from bayesgmm.sampling import _nutpie_model

nutpie = pytest.importorskip("nutpie")


def _spec():
    X = np.random.default_rng(0).standard_normal((40, 2))
    return logdensity.LogDensitySpec.from_data(X, 2, "full", Priors())


def test_missing_private_module_is_detected_at_set_up(monkeypatch):
    """A nutpie without the private classes we use: detected before any sampling."""
    monkeypatch.setattr(nutpie, "_lib", types.SimpleNamespace())
    with pytest.raises(NutpiePrivateAPIError, match="AttributeError"):
        _nutpie_model(_spec(), ["a", "b"], None, 0)


def test_untested_nutpie_series_takes_the_public_path(monkeypatch):
    """A nutpie outside the tested series is not tried: its private API may differ silently."""
    monkeypatch.setattr(nutpie, "__version__", "0.17.0")
    with pytest.raises(NutpiePrivateAPIError, match=r"nutpie 0\.17\.0 is installed.*0\.16\.x"):
        _nutpie_model(_spec(), ["a", "b"], None, 0)


def test_changed_sampler_signature_is_detected_before_sampling(monkeypatch):
    """The sampler's private constructor changed: nutpie.sample raises our error, not its own."""
    real = nutpie._lib

    def from_pymc(*args):
        raise TypeError(f"from_pymc() takes 5 positional arguments but {len(args)} were given")

    class Changed:
        PySampler = types.SimpleNamespace(from_pymc=from_pymc)

        def __getattr__(self, name):
            return getattr(real, name)

    monkeypatch.setattr(nutpie, "_lib", Changed())
    model = _nutpie_model(_spec(), ["a", "b"], None, 0)  # the other constructors still work
    with pytest.raises(NutpiePrivateAPIError, match="TypeError: from_pymc"):
        nutpie.sample(model, draws=5, tune=5, chains=1, progress_bar=False)


def test_fit_falls_back_to_the_public_path_with_one_log_line(monkeypatch, caplog):
    """Without nutpie's private module the fit samples with PyMC: same posterior, one warning."""
    import arviz_stats

    X = load_faithful()
    kwargs = dict(draws=300, tune=300, chains=2, random_state=3, progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        default = BayesGaussianMixture(2, **kwargs).fit(X)
        monkeypatch.setattr(nutpie, "_lib", types.SimpleNamespace())
        with caplog.at_level(logging.INFO, logger="bayesgmm"):
            fallback = BayesGaussianMixture(2, **kwargs).fit(X)
    assert default.idata_.attrs["sampler"] == "nutpie"
    assert fallback.idata_.attrs["sampler"] == "pymc"
    assert "private API" in fallback.idata_.attrs["sampler_fallback"]
    warned = [r for r in caplog.records if r.name == "bayesgmm" and r.levelno >= logging.WARNING]
    assert len(warned) == 1 and "nutpie's private API is unavailable" in warned[0].getMessage()
    # the same posterior: weights and means within 4 combined Monte Carlo standard errors
    for name in ("weights", "means"):
        a = default.idata_["posterior"].to_dataset()[[name]]
        b = fallback.idata_["posterior"].to_dataset()[[name]]
        se = np.hypot(arviz_stats.mcse(a)[name].values, arviz_stats.mcse(b)[name].values)
        diff = np.abs(
            a[name].mean(("chain", "draw")).values - b[name].mean(("chain", "draw")).values
        )
        assert np.all(diff <= 4 * se), (name, diff, se)
    assert fallback.diagnostics_.n_divergent == 0
