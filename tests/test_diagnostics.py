"""diagnostics.diagnose on hand-built posteriors (no sampling): thresholds, sampler statistics
under PyMC and nutpie names, label switching before/after relabelling, and R-hat against an
independent implementation of the rank-normalised split R-hat (Vehtari et al. 2021)."""

from __future__ import annotations

import arviz_stats as azs
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.stats import norm, rankdata

from bayesgmm.diagnostics import DiagnosticsReport, diagnose

C, S, K = 4, 500, 3
FEATURES = ["eruptions", "waiting"]
STAT_NAMES = {
    "pymc": {"depth": "tree_depth", "flag": "reached_max_treedepth"},
    "nutpie": {"depth": "depth", "flag": "maxdepth_reached"},
}


def make_posterior(rng: np.random.Generator, n_chains: int = C, n_draws: int = S) -> xr.Dataset:
    """IID normal draws for weights, means, stds and a symmetric corr with unit diagonal.

    Component k is centred at 10 k so that swapping labels between chains is visible.
    """
    shape = (n_chains, n_draws, K)
    centre = 10.0 * np.arange(K)
    d = len(FEATURES)
    off = rng.uniform(-0.5, 0.5, size=shape)
    corr = np.broadcast_to(np.eye(d), (*shape, d, d)).copy()
    corr[..., 1, 0] = corr[..., 0, 1] = off
    return xr.Dataset(
        {
            "weights": (("chain", "draw", "component"), rng.normal(centre, 1.0, shape)),
            "means": (
                ("chain", "draw", "component", "feature"),
                rng.normal(centre[:, None], 1.0, (*shape, d)),
            ),
            "stds": (
                ("chain", "draw", "component", "feature"),
                rng.normal(centre[:, None] + 5.0, 1.0, (*shape, d)),
            ),
            "corr": (("chain", "draw", "component", "feature", "feature_bis"), corr),
        },
        coords={"component": np.arange(K), "feature": FEATURES, "feature_bis": FEATURES},
    )


def make_stats(
    rng: np.random.Generator,
    names: str = "pymc",
    n_chains: int = C,
    n_draws: int = S,
    n_divergent: int = 0,
    n_maxdepth: int = 0,
) -> xr.Dataset:
    dims = ("chain", "draw")
    diverging = np.zeros(n_chains * n_draws, dtype=bool)
    diverging[rng.choice(diverging.size, n_divergent, replace=False)] = True
    flag = np.zeros(n_chains * n_draws, dtype=bool)
    flag[rng.choice(flag.size, n_maxdepth, replace=False)] = True
    depth = rng.integers(2, 6, size=flag.size)
    depth[flag] = 10
    return xr.Dataset(
        {
            "diverging": (dims, diverging.reshape(n_chains, n_draws)),
            "energy": (dims, rng.normal(size=(n_chains, n_draws))),
            STAT_NAMES[names]["depth"]: (dims, depth.reshape(n_chains, n_draws)),
            STAT_NAMES[names]["flag"]: (dims, flag.reshape(n_chains, n_draws)),
        }
    )


def tree(posterior: xr.Dataset, stats: xr.Dataset | None = None) -> xr.DataTree:
    groups = {"posterior": posterior}
    if stats is not None:
        groups["sample_stats"] = stats
    return xr.DataTree.from_dict(groups)


def swap_components(posterior: xr.Dataset, chains: list[int], a: int = 0, b: int = 1):
    """Swap labels ``a`` and ``b`` in the given chains of every component variable."""
    out = posterior.copy(deep=True)
    for name, var in posterior.data_vars.items():
        values = var.transpose("chain", "draw", "component", ...).values.copy()
        for c in chains:
            values[c, :, [a, b]] = values[c, :, [b, a]]
        out[name] = (("chain", "draw", "component", *var.dims[3:]), values)
    return out


# Independent reference: rank-normalised split R-hat written from the paper's definitions.
def _split_rhat(x: np.ndarray) -> float:
    n = x.shape[1] // 2
    halves = np.concatenate([x[:, :n], x[:, -n:]])
    within = halves.var(axis=1, ddof=1).mean()
    between = n * halves.mean(axis=1).var(ddof=1)
    return float(np.sqrt(((n - 1) / n * within + between / n) / within))


def _rank_normal(x: np.ndarray) -> np.ndarray:
    ranks = rankdata(x, method="average").reshape(x.shape)
    return norm.ppf((ranks - 3 / 8) / (x.size + 1 / 4))


def reference_rhat(x: np.ndarray) -> float:
    """max(bulk, folded) rank-normalised split R-hat of a (chain, draw) array."""
    bulk = _split_rhat(_rank_normal(x))
    folded = _split_rhat(_rank_normal(np.abs(x - np.median(x))))
    return max(bulk, folded)


def element(posterior: xr.Dataset, label: str) -> np.ndarray:
    """The (chain, draw) draws of a table label such as ``means[1, eruptions]``."""
    name, _, rest = label.partition("[")
    var = posterior[name]
    keys = rest.rstrip("]").split(", ") if rest else []
    sel = {}
    for dim, key in zip(var.dims[2:], keys, strict=True):
        sel[dim] = type(var.coords[dim].values[0].item())(key) if dim in var.coords else int(key)
    return var.sel(sel).transpose("chain", "draw").values


# --------------------------------------------------------------------------- passing case


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_iid_draws_pass(seed):
    rng = np.random.default_rng(seed)
    report = diagnose(tree(make_posterior(rng), make_stats(rng)))
    assert isinstance(report, DiagnosticsReport)
    # 3 weights + 6 means + 6 stds + 3 corr (one strictly-lower entry per component).
    assert len(report.table) == 18
    assert report.table["ok"].all(), report.table
    assert report.passed, report.verdict
    assert report.n_divergent == 0
    assert report.n_draws_total == C * S
    assert report.max_treedepth_fraction == 0.0
    assert report.ebfmi.shape == (C,)
    assert report.max_rhat <= 1.01
    assert report.min_ess_bulk >= 400 and report.min_ess_tail >= 400
    assert report.verdict.startswith("All convergence checks passed")


def test_table_columns_and_labels(rng):
    report = diagnose(tree(make_posterior(rng), make_stats(rng)))
    assert list(report.table.columns) == [
        "parameter",
        "variable",
        "rhat",
        "ess_bulk",
        "ess_tail",
        "mcse_mean",
        "mean",
        "sd",
        "ok",
    ]
    labels = list(report.table["parameter"])
    assert labels[:3] == ["weights[0]", "weights[1]", "weights[2]"]
    assert "means[1, eruptions]" in labels
    assert "corr[2, waiting, eruptions]" in labels
    assert report.table["ok"].dtype == bool


def test_statistics_match_independent_references(rng):
    posterior = make_posterior(rng)
    posterior["means"][3, :, 1, 0] += 0.5  # make R-hat non-trivial for one element
    report = diagnose(tree(posterior))
    for row in report.table.itertuples():
        x = element(posterior, row.parameter)
        # rank-normalised split R-hat from the paper's definitions, and arviz_stats itself
        assert row.rhat == pytest.approx(reference_rhat(x), rel=1e-10), row.parameter
        assert row.rhat == pytest.approx(float(azs.rhat(x)), rel=1e-12)
        assert row.ess_bulk == pytest.approx(float(azs.ess(x, method="bulk")), rel=1e-12)
        assert row.ess_tail == pytest.approx(
            float(azs.ess(x, method="tail", prob=(0.05, 0.95))), rel=1e-12
        )
        assert row.mcse_mean == pytest.approx(float(azs.mcse(x, method="mean")), rel=1e-12)
        assert row.mean == pytest.approx(x.mean(), rel=1e-12, abs=1e-14)
        assert row.sd == pytest.approx(x.std(ddof=1), rel=1e-12)
    assert report.table.set_index("parameter").loc["means[1, eruptions]", "rhat"] > 1.01


# --------------------------------------------------------------------------- failures


def test_shifted_chain_fails_rhat(rng):
    posterior = make_posterior(rng)
    posterior["means"][3, :, 1, 0] += 3.0
    report = diagnose(tree(posterior, make_stats(rng)))
    table = report.table.set_index("parameter")
    assert table.loc["means[1, eruptions]", "rhat"] > 1.1
    assert not table.loc["means[1, eruptions]", "ok"]
    assert table.drop(index="means[1, eruptions]")["ok"].all()
    assert not report.passed
    assert "R-hat is" in report.verdict and "means[1, eruptions]" in report.verdict
    assert "relabel" in report.verdict


def test_label_switching_fails_before_and_passes_after(rng):
    unswapped = make_posterior(rng)
    swapped = swap_components(unswapped, chains=[2, 3])
    stats = make_stats(rng)

    switched = diagnose(tree(swapped, stats))
    assert not switched.passed
    assert switched.max_rhat > 1.5
    bad = set(switched.table.loc[~switched.table["ok"], "parameter"])
    assert bad == {
        f"{name}[{k}{sfx}]"
        for k in (0, 1)
        for name, sfx in [
            ("weights", ""),
            ("means", ", eruptions"),
            ("means", ", waiting"),
            ("stds", ", eruptions"),
            ("stds", ", waiting"),
        ]
    }

    report = diagnose(tree(unswapped, stats), before=tree(swapped, stats))
    assert report.passed, report.verdict
    assert report.max_rhat <= 1.01
    for col in ("rhat", "ess_bulk", "ess_tail"):
        np.testing.assert_allclose(report.table[f"{col}_before"], switched.table[col])
        np.testing.assert_allclose(report.before_table[col], switched.table[col])
    assert list(report.table.columns)[-4:] == [
        "rhat_before",
        "ess_bulk_before",
        "ess_tail_before",
        "ok",
    ]
    assert report.summary()["max_rhat_before"] == pytest.approx(switched.max_rhat)
    assert f"from {switched.max_rhat:.3f} to {report.max_rhat:.3f}" in report.verdict


def test_relabelled_but_still_switched_gives_mode_advice(rng):
    swapped = swap_components(make_posterior(rng), chains=[3])
    report = diagnose(tree(swapped), before=tree(swapped))
    assert not report.passed
    assert "still disagree after relabelling" in report.verdict
    assert "fewer components" in report.verdict


def test_divergences_fail(rng):
    report = diagnose(tree(make_posterior(rng), make_stats(rng, n_divergent=7)))
    assert report.table["ok"].all()
    assert report.n_divergent == 7
    assert not report.passed
    assert "7 of 2000 transitions diverged" in report.verdict
    assert "target_accept" in report.verdict


def test_low_ess_fails(rng):
    posterior = make_posterior(rng)
    ar = np.zeros((C, S))
    eps = rng.normal(size=(C, S))
    for t in range(1, S):
        ar[:, t] = 0.95 * ar[:, t - 1] + eps[:, t]
    posterior["weights"][:, :, 0] = ar
    report = diagnose(tree(posterior, make_stats(rng)))
    row = report.table.set_index("parameter").loc["weights[0]"]
    assert row["ess_bulk"] < 400
    assert not row["ok"]
    assert not report.passed
    assert "bulk ESS" in report.verdict and "draw more samples" in report.verdict


def test_ess_threshold_is_applied(rng):
    report = diagnose(tree(make_posterior(rng), make_stats(rng)), ess_min=10_000)
    assert not report.table["ok"].any()
    assert not report.passed
    assert report.thresholds == {"rhat_max": 1.01, "ess_min": 10_000.0, "ebfmi_min": 0.3}


@pytest.mark.parametrize(("low", "high"), [("ess_tail", "ess_bulk"), ("ess_bulk", "ess_tail")])
def test_bulk_and_tail_ess_are_both_checked(rng, low, high):
    dt = tree(make_posterior(rng), make_stats(rng))
    table = diagnose(dt).table
    gap = table[high] - table[low]
    row = table.loc[gap.idxmax()]
    assert row[low] < row[high]
    # a threshold between the two ESS of that element: only the lower one fails it
    report = diagnose(dt, ess_min=(row[low] + row[high]) / 2)
    assert not report.table.set_index("parameter").loc[row["parameter"], "ok"]
    assert not report.passed
    kind = low.removeprefix("ess_")
    assert f"smallest {kind} ESS is" in report.verdict


def test_single_chain_cannot_pass(rng):
    posterior = make_posterior(rng, n_chains=1)
    report = diagnose(tree(posterior, make_stats(rng, n_chains=1)))
    assert report.table["rhat"].isna().all()
    assert not report.passed
    assert "at least 2 chains" in report.verdict


# --------------------------------------------------------------------------- sampler stats


@pytest.mark.parametrize("names", ["pymc", "nutpie"])
def test_sampler_stat_names(rng, names):
    stats = make_stats(rng, names=names, n_divergent=3, n_maxdepth=50)
    report = diagnose(tree(make_posterior(rng), stats))
    assert report.n_divergent == 3
    assert report.max_treedepth_fraction == pytest.approx(50 / (C * S))
    assert report.max_tree_depth == 10
    assert report.ebfmi is not None
    assert "maximum tree depth" in report.verdict
    assert "not available" not in report.verdict.lower()


def test_missing_sample_stats_reported_not_available(rng):
    report = diagnose(tree(make_posterior(rng)))
    assert report.n_divergent is None
    assert report.max_treedepth_fraction is None
    assert report.max_tree_depth is None
    assert report.ebfmi is None
    assert report.passed, report.verdict
    assert "Not available" in report.verdict
    for name in ("divergences", "E-BFMI", "tree-depth"):
        assert name in report.verdict
    assert report.summary()["min_ebfmi"] is None
    assert "n_divergent: not available" in str(report)


def test_partial_sample_stats(rng):
    stats = make_stats(rng).drop_vars(["energy", "tree_depth", "reached_max_treedepth"])
    report = diagnose(tree(make_posterior(rng), stats))
    assert report.n_divergent == 0
    assert report.ebfmi is None and report.max_treedepth_fraction is None
    assert report.verdict.endswith(
        "Not available from this sampler: E-BFMI (no energy statistic), tree-depth saturation."
    )


def test_ebfmi_matches_formula_and_low_values_fail(rng):
    stats = make_stats(rng)
    energy = np.cumsum(rng.normal(size=(C, S)), axis=1)  # a random walk: E-BFMI near 0
    stats["energy"] = (("chain", "draw"), energy)
    report = diagnose(tree(make_posterior(rng), stats))
    centred = energy - energy.mean(axis=1, keepdims=True)
    expected = (np.diff(energy, axis=1) ** 2).sum(axis=1) / (centred**2).sum(axis=1)
    np.testing.assert_allclose(report.ebfmi, expected, rtol=1e-12)
    assert np.all(report.ebfmi < 0.3)
    assert report.table["ok"].all()
    assert not report.passed
    assert "E-BFMI is" in report.verdict


# --------------------------------------------------------------------------- element choice


def test_corr_diagonal_upper_and_constant_entries_skipped(rng):
    posterior = make_posterior(rng)
    corr = posterior["corr"].values
    # A diagonal that is 1 only up to rounding (as cov / (s s) gives) must still be skipped,
    # and a correlation fixed at 0 in component 2 carries no information.
    idx = np.arange(len(FEATURES))
    corr[..., idx, idx] += rng.normal(scale=1e-16, size=corr[..., idx, idx].shape)
    corr[:, :, 2, 1, 0] = corr[:, :, 2, 0, 1] = 0.0
    report = diagnose(tree(posterior, make_stats(rng)))
    corr_rows = list(report.table.loc[report.table["variable"] == "corr", "parameter"])
    assert corr_rows == ["corr[0, waiting, eruptions]", "corr[1, waiting, eruptions]"]
    assert report.passed, report.verdict


def test_tied_corr_and_spherical_sigma(rng):
    d = 3
    feats = ["a", "b", "c"]
    corr = np.broadcast_to(np.eye(d), (C, S, d, d)).copy()
    for i, j in [(1, 0), (2, 0), (2, 1)]:
        corr[:, :, i, j] = corr[:, :, j, i] = rng.uniform(-0.5, 0.5, (C, S))
    posterior = xr.Dataset(
        {
            "sigma": (("chain", "draw", "component"), rng.normal(size=(C, S, K))),
            "corr": (("chain", "draw", "feature", "feature_bis"), corr),
            "other": (("chain", "draw"), rng.normal(size=(C, S))),
        },
        coords={"feature": feats, "feature_bis": feats},
    )
    report = diagnose(tree(posterior))
    assert list(report.table["parameter"]) == [
        "sigma[0]",
        "sigma[1]",
        "sigma[2]",
        "corr[b, a]",
        "corr[c, a]",
        "corr[c, b]",
    ]


def test_var_names_and_symmetric_matrices(rng):
    posterior = make_posterior(rng)
    a = rng.normal(size=(C, S, K, 2, 2))
    posterior["covariances"] = (
        ("chain", "draw", "component", "feature", "feature_bis"),
        a @ np.swapaxes(a, -1, -2),
    )
    posterior["scalar"] = (("chain", "draw"), rng.normal(size=(C, S)))
    report = diagnose(tree(posterior), var_names=["covariances", "scalar"])
    labels = list(report.table["parameter"])
    # lower triangle including the (varying) diagonal of a symmetric matrix, no upper entries
    assert len(labels) == 3 * K + 1
    assert "covariances[0, eruptions, eruptions]" in labels
    assert "covariances[0, waiting, eruptions]" in labels
    assert "covariances[0, eruptions, waiting]" not in labels
    assert labels[-1] == "scalar"
    single = diagnose(tree(posterior), var_names="means")
    assert set(single.table["variable"]) == {"means"}


# --------------------------------------------------------------------------- report methods


def test_summary_to_frame_and_str(rng):
    report = diagnose(tree(make_posterior(rng), make_stats(rng)))
    summary = report.summary()
    assert summary["passed"] is True
    assert summary["n_parameters"] == 18
    assert summary["max_rhat"] == pytest.approx(report.table["rhat"].max())
    assert summary["min_ess_tail"] == pytest.approx(report.table["ess_tail"].min())
    assert summary["min_ebfmi"] == pytest.approx(report.ebfmi.min())
    assert "max_rhat_before" not in summary
    frame = report.to_frame()
    assert isinstance(frame, pd.DataFrame)
    assert frame.index.name == "parameter" and len(frame) == 18
    frame.loc[:, "rhat"] = 99.0
    assert report.table["rhat"].max() < 2  # to_frame returns a copy
    text = str(report)
    assert text.startswith("Convergence diagnostics: PASSED")
    assert report.verdict in text and "means[1, eruptions]" in text


def test_str_of_a_long_table_shows_the_worst_rows(rng):
    posterior = xr.Dataset({"means": (("chain", "draw", "component"), rng.normal(size=(C, S, 40)))})
    posterior["means"][3, :, 17] += 3.0
    text = str(diagnose(tree(posterior)))
    assert "The 30 parameters with the largest R-hat:" in text
    rows = text.split("largest R-hat:\n")[1].splitlines()
    assert len(rows) == 31  # header + 30
    assert rows[1].split()[0] == "means[17]"


# --------------------------------------------------------------------------- bad input


def test_missing_posterior_group(rng):
    dt = xr.DataTree.from_dict({"sample_stats": make_stats(rng)})
    with pytest.raises(ValueError, match="no 'posterior' group"):
        diagnose(dt)


def test_not_a_datatree(rng):
    with pytest.raises(TypeError, match=r"xarray\.DataTree"):
        diagnose(make_posterior(rng))


def test_no_default_parameters(rng):
    posterior = xr.Dataset({"mu": (("chain", "draw"), rng.normal(size=(C, S)))})
    with pytest.raises(ValueError, match=r"none of the default parameters.*var_names"):
        diagnose(tree(posterior))


def test_unknown_var_names(rng):
    with pytest.raises(ValueError, match=r"\['nope'\] are not in the posterior"):
        diagnose(tree(make_posterior(rng)), var_names=["means", "nope"])


def test_missing_sample_dims(rng):
    posterior = make_posterior(rng).rename({"chain": "c"})
    with pytest.raises(ValueError, match=r"lacks the dims \['chain'\]"):
        diagnose(tree(posterior))


def test_non_finite_draws(rng):
    posterior = make_posterior(rng)
    posterior["means"][0, 3, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite values in 1 draws"):
        diagnose(tree(posterior))


def test_all_constant(rng):
    posterior = xr.Dataset({"weights": (("chain", "draw", "component"), np.ones((C, S, 1)))})
    with pytest.raises(ValueError, match="constant over all draws"):
        diagnose(tree(posterior))


def test_before_must_match(rng):
    posterior = make_posterior(rng)
    with pytest.raises(ValueError, match="before has no posterior variable 'corr'"):
        diagnose(tree(posterior), before=tree(posterior.drop_vars("corr")))
    fewer = posterior.isel(component=slice(0, 2))
    with pytest.raises(ValueError, match="differs from idata's"):
        diagnose(tree(posterior), before=tree(fewer))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rhat_max": 0.9}, "rhat_max=0.9"),
        ({"ess_min": 0}, "ess_min=0.0"),
        ({"ess_min": -5}, "ess_min=-5.0"),
    ],
)
def test_bad_thresholds(rng, kwargs, match):
    with pytest.raises(ValueError, match=match):
        diagnose(tree(make_posterior(rng)), **kwargs)


# --------------------------------------------------------------------------- EM start


def em_group(converged: bool, degenerate: list[int], n_iter: int = 7) -> xr.Dataset:
    """An ``em`` group as BayesGaussianMixture stores it (only what the verdict reads)."""
    flags = np.zeros(K, dtype=np.int8)
    flags[degenerate] = 1
    return xr.Dataset(
        {"degenerate": (("component",), flags)},
        coords={"component": np.arange(K)},
        attrs={"converged": int(converged), "n_iter": n_iter, "lower_bound": -1.0},
    )


@pytest.mark.parametrize(
    ("converged", "degenerate", "named"),
    [
        (False, [], ["did not converge (stopped after 7 iterations)"]),
        (True, [2], ["collapsed (degenerate) component(s) [2]", "fewer components"]),
        (False, [0, 2], ["did not converge", "component(s) [0, 2]"]),
    ],
)
def test_em_start_problems_are_named_in_the_verdict(rng, converged, degenerate, named):
    """Issue 15, item 7: a non-converged or degenerate EM start is in the verdict and str."""
    t = tree(make_posterior(rng), make_stats(rng))
    t["em"] = xr.DataTree(em_group(converged, degenerate))
    report = diagnose(t)
    assert report.passed  # the sampler's convergence is a separate matter
    note = report.em_start_note
    assert note is not None and note in report.verdict and note in str(report)
    assert note.startswith("The EM solution that started the chains")
    for text in named:
        assert text in note
    if converged:
        assert "converge" not in note
    if not degenerate:
        assert "degenerate" not in note


def test_clean_em_start_adds_nothing(rng):
    posterior, stats = make_posterior(rng), make_stats(rng)
    plain = diagnose(tree(posterior, stats))
    t = tree(posterior, stats)
    t["em"] = xr.DataTree(em_group(True, []))
    report = diagnose(t)
    assert report.em_start_note is None and plain.em_start_note is None
    assert report.verdict == plain.verdict
    assert "EM" not in report.verdict


def test_single_chain_verdict_says_rhat_is_not_available(rng):
    report = diagnose(
        tree(make_posterior(rng, n_chains=1), make_stats(rng, n_chains=1)),
        before=tree(make_posterior(rng, n_chains=1)),
    )
    assert "R-hat not available with one chain" in report.verdict
    assert "above 1.01" not in report.verdict and "nan" not in report.verdict
