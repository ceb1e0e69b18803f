"""A one-chain fit's report renders (arviz's rank test needs 2 chains) and says why R-hat is
missing. Kept apart from test_report.py so that it merges cleanly; fold it in at will."""

from __future__ import annotations

import warnings

import pytest

from bayesgmm import BayesGaussianMixture, SamplingWarning, load_faithful
from bayesgmm.report import render_report


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_one_chain_report_renders_and_says_rhat_is_not_available(fmt, tmp_path):
    fit = BayesGaussianMixture(2, draws=100, tune=100, chains=1, random_state=0, progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)  # one chain cannot pass
        fit.fit(load_faithful())
    assert "R-hat not available with one chain" in fit.diagnostics_.verdict
    text = render_report(bgm=fit, fmt=fmt, figures_dir=tmp_path / "figs", dpi=30)
    assert "R-hat not available with one chain" in text
    assert (tmp_path / "figs").is_dir() and not list((tmp_path / "figs").glob("rank*"))
    assert list((tmp_path / "figs").glob("trace_weights*"))
