"""mclust's 14 covariance models in the comparison: ``bayesgmm compare --covariance all``,
``ComparisonResult.bic_grid``, the BIC-grid figure and the report's grid (issue 18, item 2).

EM only (``methods=("em",)``, ``--method em``) and hierarchical starts, on Old Faithful, so
every test takes seconds; the posterior side is a synthetic log-likelihood array.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.figure import Figure

from bayesgmm import cli, load_faithful
from bayesgmm import selection as sel
from bayesgmm._mclust import MCLUST_MODELS
from bayesgmm.em import INIT_PARAMS
from bayesgmm.plots import plot_bic_grid
from bayesgmm.report import render_report
from bayesgmm.selection import ComparisonResult, compare_models

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def faithful_all() -> ComparisonResult:
    """The 14 models x K = 1..3 on Old Faithful, EM from hierarchical starts."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compare_models(
            load_faithful(),
            n_components=range(1, 4),
            covariance_types=MCLUST_MODELS,
            methods=("em",),
            random_state=0,
            n_init=1,
            em_options={"init_params": "hc"},
        )


def test_cli_names_match_the_library():
    assert cli._MCLUST_COVARIANCES == MCLUST_MODELS
    assert cli._INIT_CHOICES == INIT_PARAMS
    assert cli._parse_covariances("all") == MCLUST_MODELS
    assert cli._parse_covariances("full, EEV,vvi") == ("full", "EEV", "VVI")
    assert cli._parse_covariances("Spherical") == ("spherical",)


def test_cli_covariance_all_writes_the_grid(tmp_path):
    data = tmp_path / "faithful.csv"
    load_faithful().to_csv(data, index=False)
    out = tmp_path / "cmp"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"}
    args = ["--covariance", "all", "--method", "em", "-k", "1:3", "--init", "hc"]
    proc = subprocess.run(
        [sys.executable, "-m", "bayesgmm", "compare", str(data), *args, "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(out / "comparison.csv")
    assert len(table) == 14 * 3
    assert list(dict.fromkeys(table[sel.COVARIANCE_TYPE])) == list(MCLUST_MODELS)
    assert sorted(set(table[sel.N_COMPONENTS])) == [1, 2, 3]
    grid = pd.read_csv(out / "bic_grid.csv", index_col="model")
    assert list(grid.index) == list(MCLUST_MODELS) and list(grid.columns) == ["1", "2", "3"]
    for _, row in table.iterrows():
        cell = grid.loc[row[sel.COVARIANCE_TYPE], str(row[sel.N_COMPONENTS])]
        if row[sel.DEGENERATE]:
            assert np.isnan(cell)  # missing, as mclust reports a degenerate fit
        else:
            assert cell == pytest.approx(row[sel.BIC], rel=1e-12)
    for name in ("bic_grid.png", "comparison.png", "verdict.txt"):
        assert (out / name).stat().st_size > 0
    # mclust's choice on Old Faithful, EEE with three components, starred in the printed grid
    best = table.loc[table[sel.BIC].idxmin()]
    assert (best[sel.COVARIANCE_TYPE], best[sel.N_COMPONENTS]) == ("EEE", 3)
    eee = next(line for line in proc.stdout.splitlines() if line.startswith("EEE"))
    assert eee.rstrip().endswith("★") and "opposite sign" in proc.stdout
    assert "BIC picks EEE covariance with K=3" in proc.stdout
    run = json.loads((out / "run.json").read_text())
    assert run["arguments"]["init"] == "hc" and run["arguments"]["covariance"] == "all"


def test_cli_passes_init_and_covariances_to_compare_models(tmp_path, monkeypatch):
    data = tmp_path / "faithful.csv"
    load_faithful().to_csv(data, index=False)
    seen = {}
    real = sel.compare_models

    def spy(X, **kwargs):
        seen.update(kwargs)
        return real(X, **kwargs)

    monkeypatch.setattr(sel, "compare_models", spy)
    argv = ["--quiet", "compare", str(data), "--covariance", "EII,full", "-k", "2"]
    code = cli.main([*argv, "--method", "em", "--init", "hc", "--out", str(tmp_path / "o")])
    assert code == 0
    assert seen["em_options"] == {"init_params": "hc"}
    assert seen["covariance_types"] == ("EII", "full")
    # the default start is k-means, as EMGaussianMixture's
    argv[-1] = "1"
    assert cli.main([*argv, "--method", "em", "--out", str(tmp_path / "o2")]) == 0
    assert seen["em_options"] == {"init_params": "kmeans"}
    assert (tmp_path / "o" / "bic_grid.csv").is_file()


@pytest.mark.parametrize(
    ("covariance", "message"),
    [
        ("full,XYZ", "unknown type(s) 'XYZ'; choose from full, tied, diag, spherical or mclust"),
        ("EEV,vve,abc", "unknown type(s) 'abc'"),
        ("full,VVV", "'full' and 'VVV' are the same model (mclust's VVV)"),
        ("EII,EII", "'EII' is given twice"),
        ("all,EII", "give 'all' alone"),
        ("full,,diag", "has an empty name"),
    ],
)
def test_cli_refuses_bad_covariance_names(tmp_path, capsys, covariance, message):
    data = tmp_path / "faithful.csv"
    load_faithful().to_csv(data, index=False)
    out = tmp_path / "out"
    argv = ["compare", str(data), "--covariance", covariance, "--method", "em"]
    assert cli.main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    if "unknown" in message:  # the valid names are listed
        assert "EII, VII, EEI" in err and "'all' for mclust's 14" in err
    assert not out.exists()


def test_cli_refuses_an_unknown_init(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["compare", "x.csv", "--init", "ward", "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    assert "invalid choice: 'ward'" in capsys.readouterr().err


def test_bic_grid_equals_the_table(faithful_all):
    result = faithful_all
    grid = result.bic_grid()
    assert grid.shape == (14, 3) and list(grid.index) == list(MCLUST_MODELS)
    assert list(grid.columns) == [1, 2, 3]
    assert result.shows_bic_grid
    table = result.table
    for _, row in table.iterrows():
        assert grid.loc[row[sel.COVARIANCE_TYPE], row[sel.N_COMPONENTS]] == row[sel.BIC]
    pd.testing.assert_frame_equal(result.bic_grid(mclust_sign=True), -grid)
    # Its best cell is BIC's choice, starred once in the marked grid.
    assert result.best["bic"] == ("EEE", 3)
    assert grid.stack().idxmin() == ("EEE", 3)
    marked = result.bic_grid(marked=True)
    stars = [(m, k) for m in marked.index for k in marked.columns if "★" in marked.loc[m, k]]
    assert stars == [("EEE", 3)]
    assert marked.loc["EEE", 3] == f"{grid.loc['EEE', 3]:.2f} ★"


def test_bic_grid_marks_degenerate_cells_and_names_sklearn_types(faithful_all):
    table = faithful_all.table.copy()
    # Make the best cell degenerate (as if a component had collapsed) and rename VVV "full".
    best = (table[sel.MODEL] == "EEE-K3").to_numpy()
    table.loc[best, [sel.DEGENERATE, sel.EM_STATUS]] = [True, "degenerate"]
    table.loc[table[sel.COVARIANCE_TYPE].eq("VVV"), sel.COVARIANCE_TYPE] = "full"
    result = ComparisonResult(table=table)
    grid = result.bic_grid()
    assert "VVV" in grid.index and "full" not in grid.index  # mclust's names
    assert grid.loc["EEE", 3] == table.loc[best, sel.BIC].item()  # kept by default
    assert np.isnan(result.bic_grid(drop_degenerate=True).loc["EEE", 3])
    marked = result.bic_grid(marked=True)
    assert marked.loc["EEE", 3].endswith("†")
    second = table[~best].sort_values(sel.BIC).iloc[0]
    choice = (str(second[sel.COVARIANCE_TYPE]).replace("full", "VVV"), second[sel.N_COMPONENTS])
    assert marked.loc[choice].endswith("★")
    # A model given under both names: the non-degenerate fit of lower BIC is shown.
    both = pd.concat([table, table[table[sel.COVARIANCE_TYPE].eq("full")].assign(
        **{sel.COVARIANCE_TYPE: "VVV", sel.BIC: lambda t: t[sel.BIC] - 1.0}
    )])  # fmt: skip
    shown = ComparisonResult(table=both).bic_grid()
    np.testing.assert_allclose(shown.loc["VVV"], grid.loc["VVV"] - 1.0)
    with pytest.raises(ValueError, match="BIC was not computed"):
        ComparisonResult(table=table.assign(**{sel.BIC: np.nan})).bic_grid()


def test_bic_grid_figure_has_a_labelled_line_per_model(faithful_all):
    fig = plot_bic_grid(faithful_all)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    lines = [ln for ln in ax.get_lines() if ln.get_label() in MCLUST_MODELS]
    assert [ln.get_label() for ln in lines] == list(MCLUST_MODELS)
    grid = faithful_all.bic_grid()
    for line in lines:
        np.testing.assert_array_equal(line.get_xdata(), [1, 2, 3])
        np.testing.assert_allclose(line.get_ydata(), grid.loc[line.get_label()].to_numpy())
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:14] == list(MCLUST_MODELS)
    assert "BIC's choice: EEE, K = 3" in legend
    assert "lower is better" in ax.get_ylabel() and "opposite sign" in fig._suptitle.get_text()
    assert len(fig.axes) == 2  # every model, and a close-up near the best
    low, high = fig.axes[1].get_ylim()
    assert low < grid.loc["EEE", 3] < high and high - low < 30
    # mclust's sign: the same lines upside down, higher is better
    flipped = faithful_all.plot_bic_grid(mclust_sign=True, zoom=None)
    assert len(flipped.axes) == 1 and "higher is better" in flipped.axes[0].get_ylabel()
    top = next(ln for ln in flipped.axes[0].get_lines() if ln.get_label() == "EEE")
    np.testing.assert_allclose(top.get_ydata(), -grid.loc["EEE"].to_numpy())
    with pytest.raises(ValueError, match="zoom"):
        plot_bic_grid(faithful_all, zoom=0)
    # The per-type figure keeps at most four panels a row.
    panels = faithful_all.plot().axes
    assert len(panels) == 14
    assert len({round(a.get_position().y0, 3) for a in panels}) == 4


def _posterior(X, n_components, covariance_type, random_state, **options):
    """A synthetic posterior that passes its checks."""
    n = np.asarray(X).shape[0]
    rng = np.random.default_rng(random_state)
    ll = rng.normal(-4.0 + 0.05 * n_components, 0.05, size=(2, 50, n))
    tree = xr.DataTree.from_dict(
        {
            "posterior": xr.Dataset({"mu": (("chain", "draw"), rng.normal(size=(2, 50)))}),
            "log_likelihood": xr.Dataset({"obs": (("chain", "draw", "obs_id"), ll)}),
        }
    )
    summary = {"passed": True, "max_rhat": 1.0, "min_ess_bulk": 900.0, "n_divergent": 0}
    tree.attrs["diagnostics_summary"] = json.dumps(summary)
    return tree


def test_report_shows_the_grid_and_one_note_for_the_cells_without_posterior(faithful_all):
    md = render_report(comparison=faithful_all, fmt="md", figures=False)
    assert "mclust's BIC grid" in md and "opposite sign" in md
    assert "| model | K = 1 | K = 2 | K = 3 |" in md
    eee = next(line for line in md.splitlines() if line.startswith("| EEE |"))
    assert eee.endswith(f"| {faithful_all.bic_grid().loc['EEE', 3]:.2f} ★ |")
    html = render_report(comparison=faithful_all, fmt="html", embed=True, dpi=30)
    assert html.count("<img") == 2 and "BIC against K, one line per covariance model" in html

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        both = compare_models(
            load_faithful(),
            n_components=[1, 2],
            covariance_types=("EII", "EEV", "full"),
            random_state=0,
            n_init=1,
            bayes_fit=_posterior,
        )
    assert both.table[sel.BAYES_STATUS].tolist() == ["not run"] * 4 + ["ok"] * 2
    md = render_report(comparison=both, fmt="md", figures=False)
    assert md.count("no posterior") == 0 and md.count("No posterior for") == 1
    assert "No posterior for EII, EEV (every K): the Bayesian fit has 4 covariance structures" in md
    # the grid names "full" by its mclust name
    assert "| VVV |" in md and "| EEV |" in md
    # Four types and none of mclust's names: no grid.
    four = ComparisonResult(table=both.table[both.table[sel.COVARIANCE_TYPE].eq("full")])
    assert not four.shows_bic_grid
    assert "BIC grid" not in render_report(comparison=four, fmt="md", figures=False)
