"""Figures of a fitted mixture: types, panel counts, contents checked against the posterior."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse
from sklearn.exceptions import NotFittedError

from bayesgmm import BayesGaussianMixture, load_faithful
from bayesgmm.plots import (
    plot_comparison,
    plot_em_vs_posterior,
    plot_membership_uncertainty,
    plot_posterior_intervals,
    plot_trace,
    posterior_vs_em,
)
from bayesgmm.selection import compare_models

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _saved_png(fig: Figure, path) -> bytes:
    fig.savefig(path, dpi=50)
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    return data


def _ellipses(ax) -> list[Ellipse]:
    return [p for p in ax.patches if isinstance(p, Ellipse)]


def test_em_vs_posterior_2d(faithful_fit, tmp_path):
    fig = plot_em_vs_posterior(faithful_fit, n_draws=12)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2
    ax_em, ax_post = fig.axes
    k = faithful_fit.n_components
    assert len(_ellipses(ax_em)) == k
    assert len(_ellipses(ax_post)) == k * (12 + 1)  # draws plus the dashed EM reference
    # an EM ellipse is centred on the EM mean and its half-axes are 2 sd along the eigenvectors
    cov = faithful_fit.em_.covariances_[0]
    e = _ellipses(ax_em)[0]
    np.testing.assert_allclose(e.center, faithful_fit.em_.means_[0])
    np.testing.assert_allclose(
        sorted([e.width, e.height]), sorted(4.0 * np.sqrt(np.linalg.eigvalsh(cov))), rtol=1e-12
    )
    assert ax_em.get_xlabel() == "eruptions" and ax_em.get_ylabel() == "waiting"
    _saved_png(fig, tmp_path / "em_vs_posterior.png")


def test_em_vs_posterior_one_feature_is_a_histogram_with_a_note(faithful_fit):
    fig = plot_em_vs_posterior(faithful_fit, features=["waiting"], n_draws=5)
    assert len(fig.axes) == 2
    ax_em, ax_post = fig.axes
    k = faithful_fit.n_components
    assert len(ax_em.patches) > 3  # histogram bars
    assert len(ax_em.lines) == k + 1  # components and mixture
    assert len(ax_post.lines) == 5 * (k + 1) + 1  # per draw, plus the EM mixture
    # the EM component curves integrate to their weights (up to the tails beyond the data)
    grid = ax_em.lines[0].get_xdata()
    area = np.trapezoid(ax_em.lines[0].get_ydata(), grid)
    assert area == pytest.approx(faithful_fit.em_.weights_[0], rel=5e-3)
    assert "Showing waiting of 2 features" in fig.get_supxlabel()  # the note sits under the panels


@pytest.mark.parametrize("features", [("nope",), (0, 0), (0, 5), "waiting", (0, 1, 0)], ids=repr)
def test_bad_features_raise(faithful_fit, features):
    with pytest.raises(ValueError, match="feature"):
        plot_em_vs_posterior(faithful_fit, features=features)


def test_membership_uncertainty(faithful_fit, tmp_path):
    m = faithful_fit.membership()
    fig = plot_membership_uncertainty(faithful_fit, membership=m)
    assert len(fig.axes) == 5  # three panels and two colour bars
    panels = fig.axes[:3]
    n = len(m.labels)
    for ax in panels:
        assert ax.collections[0].get_offsets().shape == (n, 2)
    # the entropy panels are coloured by the entropies (sorted so uncertain points are on top)
    np.testing.assert_allclose(
        np.sort(panels[1].collections[0].get_array()), np.sort(m.entropy_total)
    )
    np.testing.assert_allclose(
        np.sort(panels[2].collections[0].get_array()), np.sort(m.entropy_epistemic)
    )
    assert f"{int(np.sum(m.label_probability < 0.9))} of {n} points" in fig.get_suptitle()
    _saved_png(fig, tmp_path / "membership.png")


def test_membership_uncertainty_one_feature(faithful_fit):
    fig = plot_membership_uncertainty(faithful_fit, features=[1])
    assert len(fig.axes) == 3
    assert fig.axes[0].get_ylabel() == "P(label)"


def test_membership_of_other_points_is_refused(faithful_fit):
    m = faithful_fit.membership(load_faithful().iloc[:10])
    with pytest.raises(ValueError, match="10 points"):
        plot_membership_uncertainty(faithful_fit, membership=m)


def test_trace(faithful_fit, tmp_path):
    post = faithful_fit.idata_["posterior"]
    n_chains = post.sizes["chain"]
    fig = plot_trace(faithful_fit)  # means: K * D rows of (density, trace)
    k, d = post.sizes["component"], post.sizes["feature"]
    assert len(fig.axes) == 2 * k * d
    density, trace = fig.axes[0], fig.axes[1]
    assert len(density.lines) == n_chains and len(trace.lines) == n_chains
    np.testing.assert_array_equal(
        trace.lines[1].get_ydata(), post["means"].isel(chain=1, component=0, feature=0).values
    )
    assert "relabelled" in fig.get_suptitle()
    _saved_png(fig, tmp_path / "trace.png")

    assert len(plot_trace(faithful_fit, "weights").axes) == 2 * k
    sel = plot_trace(faithful_fit, "means", coords={"feature": "waiting"})
    assert len(sel.axes) == 2 * k
    assert sel.axes[0].get_ylabel() == "means[0, waiting]"


def test_trace_errors(faithful_fit):
    with pytest.raises(ValueError, match="no variable 'nope'"):
        plot_trace(faithful_fit, "nope")
    with pytest.raises(ValueError, match="coords"):
        plot_trace(faithful_fit, "means", coords={"feature": "nope"})
    with pytest.raises(ValueError, match="selects no element"):
        plot_trace(faithful_fit, "means", coords={"component": []})


def test_posterior_vs_em_against_the_draws(faithful_fit):
    table = posterior_vs_em(faithful_fit, interval=0.8)
    post = faithful_fit.idata_["posterior"]
    k, d = post.sizes["component"], post.sizes["feature"]
    assert len(table) == k + 2 * k * d
    assert table.attrs["interval"] == 0.8
    row = table.set_index("parameter").loc["means[1, waiting]"]
    draws = post["means"].sel(component=1, feature="waiting").values.ravel()
    assert row["posterior_mean"] == pytest.approx(draws.mean(), rel=1e-12)
    assert row["lower"] == pytest.approx(np.quantile(draws, 0.1), rel=1e-12)
    assert row["upper"] == pytest.approx(np.quantile(draws, 0.9), rel=1e-12)
    assert row["em"] == faithful_fit.em_.means_[1, 1]
    sd = table.set_index("parameter").loc["stds[0, eruptions]"]
    assert sd["em"] == pytest.approx(np.sqrt(faithful_fit.em_.covariances_[0, 0, 0]))
    assert sd["posterior_mean"] == pytest.approx(
        post["stds"].sel(component=0, feature="eruptions").mean().item(), rel=1e-10
    )
    assert (table["lower"] <= table["posterior_mean"]).all()
    assert (table["posterior_mean"] <= table["upper"]).all()
    with pytest.raises(ValueError, match="interval"):
        posterior_vs_em(faithful_fit, interval=1.5)


def test_posterior_intervals(faithful_fit, tmp_path):
    fig = plot_posterior_intervals(faithful_fit)
    k, d = faithful_fit.em_.means_.shape
    assert len(fig.axes) == k * (1 + d)
    ax = fig.axes[1]  # component 0, means of eruptions
    em_marker = next(ln for ln in ax.lines if ln.get_marker() == "v")
    assert em_marker.get_xdata()[0] == faithful_fit.em_.means_[0, 0]
    _saved_png(fig, tmp_path / "intervals.png")


def test_plot_comparison_delegates():
    res = compare_models(
        load_faithful(),
        n_components=range(1, 3),
        covariance_types=("full", "diag"),
        methods=("em",),
        random_state=0,
    )
    fig = plot_comparison(res)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2  # one panel per covariance type
    with pytest.raises(TypeError, match="ComparisonResult"):
        plot_comparison(res.table)


def test_wrong_or_unfitted_estimator():
    with pytest.raises(TypeError, match="BayesGaussianMixture"):
        plot_em_vs_posterior(object())
    with pytest.raises(NotFittedError):
        plot_trace(BayesGaussianMixture(2))


def test_no_pyplot_state(faithful_fit):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plot_posterior_intervals(faithful_fit)
    plot_em_vs_posterior(faithful_fit, n_draws=2)
    assert plt.get_fignums() == before


def test_predictive_check_band_contains_em_density(faithful_fit, tmp_path):
    from bayesgmm.plots import plot_predictive_check

    fig = plot_predictive_check(faithful_fit, n_draws=100)
    axes = fig.axes
    assert len(axes) == 2
    for ax in axes:
        lines = {line.get_label(): line for line in ax.get_lines()}
        mean = lines["posterior predictive"].get_ydata()
        em = lines["EM"].get_ydata()
        # a concentrated posterior: the predictive density is close to EM's, and positive
        assert np.all(mean > 0)
        np.testing.assert_allclose(mean, em, atol=0.1 * em.max())
    fig.savefig(tmp_path / "ppc.png")
    assert (tmp_path / "ppc.png").stat().st_size > 0


def test_arviz_plots_rank_and_forest_leave_no_pyplot_state(faithful_fit, tmp_path):
    import matplotlib.pyplot as plt

    from bayesgmm.plots import plot_forest, plot_rank

    before = len(plt.get_fignums())
    for func in (plot_rank, plot_forest):
        fig = func(faithful_fit)
        assert isinstance(fig, Figure) and len(fig.axes) >= 1
        fig.savefig(tmp_path / f"{func.__name__}.png")
        assert (tmp_path / f"{func.__name__}.png").stat().st_size > 0
    assert len(plt.get_fignums()) == before


def test_pair_plot_for_three_features(tmp_path):
    import warnings

    from bayesgmm import make_mixture
    from bayesgmm.plots import plot_pairs

    X, _ = make_mixture(
        300, [0.5, 0.5], [[0, 0, 0], [5, 5, 5]], [np.eye(3), 0.5 * np.eye(3)], random_state=0
    )
    fit = BayesGaussianMixture(2, draws=100, tune=200, chains=2, random_state=0, progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 2 x 100 draws may not pass the ESS threshold
        fit.fit(X)
    fig = plot_pairs(fit, n_draws=5)
    axes = np.array(fig.axes).reshape(3, 3)
    # lower triangle: 2 EM ellipses + 2 x 5 posterior ellipses per panel
    assert sum(isinstance(p, Ellipse) for p in axes[2, 0].patches) == 2 + 2 * 5
    assert not axes[0, 2].axison  # upper triangle empty
    fig.savefig(tmp_path / "pairs.png")


# ---------------------------------------------------------------------- legibility
# Every figure of a report, drawn at the report's dpi and scaled to the width the page shows
# it at: no two drawn texts overlap, every text lies inside the canvas, none is smaller than
# MIN_TEXT_PX on screen. Texts are those matplotlib actually draws (Text.draw is recorded).

REPORT_DPI = 100  # render_report's default
PAGE_WIDTH_PX = 1100  # what the report's 1150 px column leaves a figure, borders included
MIN_TEXT_PX = 8.0  # smallest font size on screen, CSS pixels


def _drawn_texts(fig: Figure) -> list[tuple[str, object, float]]:
    """(text, window extent, font size in px) of every non-empty text drawn by savefig."""
    import io

    from matplotlib.text import Text

    drawn: dict[int, tuple[str, object, float]] = {}  # by artist: the last draw counts
    original = Text.draw

    def record(self, renderer):
        original(self, renderer)
        if self.get_visible() and self.get_text().strip():
            extent = self.get_window_extent(renderer)
            size = renderer.points_to_pixels(self.get_size())
            drawn[id(self)] = (self.get_text(), extent, size)

    Text.draw = record
    try:
        fig.savefig(io.BytesIO(), dpi=REPORT_DPI, format="png")
    finally:
        Text.draw = original
    return list(drawn.values())


def _legibility_problems(fig: Figure) -> list[str]:
    texts = _drawn_texts(fig)
    width, height = fig.get_size_inches() * REPORT_DPI
    scale = min(1.0, PAGE_WIDTH_PX / width)
    problems = []
    for text, box, size in texts:
        if box.x0 < -1 or box.y0 < -1 or box.x1 > width + 1 or box.y1 > height + 1:
            problems.append(f"outside the canvas ({width:.0f} x {height:.0f} px): {text!r}")
        if size * scale < MIN_TEXT_PX:
            problems.append(f"{size * scale:.1f} px on the page: {text!r}")
    for i, (text_a, a, _) in enumerate(texts):
        for text_b, b, _ in texts[i + 1 :]:
            dx = min(a.x1, b.x1) - max(a.x0, b.x0)
            dy = min(a.y1, b.y1) - max(a.y0, b.y0)
            if dx > 1 and dy > 1:
                problems.append(f"{text_a!r} overlaps {text_b!r} ({dx:.0f} x {dy:.0f} px)")
    return problems


def _report_figures(monkeypatch, **report_options) -> dict[str, Figure]:
    """The figures render_report draws for these options, by name."""
    from bayesgmm import report

    figures: dict[str, Figure] = {}

    def keep(self, make, name, caption):
        figures[name] = make()
        return report._Image("data:,", caption)

    monkeypatch.setattr(report._Figures, "add", keep)
    report.render_report(embed=True, **report_options)
    return figures


@pytest.fixture(scope="module")
def iris_fit():
    """Four features with long names ("sepal length (cm)"), three components."""
    import warnings

    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True).data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a short run; convergence is not the point here
        return BayesGaussianMixture(
            3, draws=150, tune=150, chains=2, random_state=0, progressbar=False
        ).fit(iris)


@pytest.fixture(scope="module")
def bayes_segmentation():
    import warnings

    from bayesgmm import load_sample_photo, segment_image

    photo = load_sample_photo("flower")[100:190, 200:330]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return segment_image(
            photo,
            3,
            features=("color", "position"),
            method="bayes",
            n_fit_pixels=1500,
            max_draws=50,
            random_state=0,
            draws=100,
            tune=100,
            chains=2,
            progressbar=False,
        )


def _renamed(bgm: BayesGaussianMixture, names: list[str]) -> BayesGaussianMixture:
    """The same fit with its features renamed (no refit)."""
    import copy

    import xarray as xr

    groups = {}
    for group, node in bgm.idata_.children.items():
        ds = node.to_dataset()
        for dim in ("feature", "feature_bis"):
            if dim in ds.coords:
                ds = ds.assign_coords({dim: names})
        groups[group] = ds
    out = copy.copy(bgm)
    out.idata_ = xr.DataTree.from_dict(groups)
    out.idata_.attrs = dict(bgm.idata_.attrs)
    out.feature_names_in_ = np.asarray(names, dtype=object)
    out.em_ = copy.copy(bgm.em_)
    out.em_.feature_names_in_ = out.feature_names_in_
    return out


@pytest.mark.parametrize("fit", ["faithful", "iris", "iris_long_names", "segmentation"])
def test_report_figures_are_legible(fit, request, monkeypatch):
    if fit == "segmentation":
        options = {"segmentation": request.getfixturevalue("bayes_segmentation")}
    elif fit == "iris_long_names":  # 41 characters each: wrapped, never clipped or overlapping
        long = [
            f"{part} {what} of the flower in centimetres"
            for part in ("sepal", "petal")
            for what in ("length", "width")
        ]
        options = {"bgm": _renamed(request.getfixturevalue("iris_fit"), long)}
    else:
        options = {"bgm": request.getfixturevalue(f"{fit}_fit")}
    figures = _report_figures(monkeypatch, **options)
    assert figures
    problems = {name: _legibility_problems(fig) for name, fig in figures.items()}
    problems = {name: found for name, found in problems.items() if found}
    assert not problems, "\n".join(
        f"{name}: {len(found)} problem(s), e.g. " + "; ".join(found[:4])
        for name, found in problems.items()
    )


def test_legibility_check_catches_overlap_and_clipping():
    """The check itself can fail: overprinted and clipped texts are found."""
    fig = Figure(figsize=(3, 2))
    ax = fig.subplots()
    ax.set_title("a title")
    ax.text(0.5, 1.02, "overprints the title", transform=ax.transAxes, ha="center")
    fig.text(0.9, 0.5, "runs off the right edge")
    found = _legibility_problems(fig)
    assert any("overlaps" in p for p in found)
    assert any("outside the canvas" in p for p in found)
    fig = Figure(figsize=(3, 2), layout="constrained")
    fig.subplots().set_title("fits")
    assert _legibility_problems(fig) == []


def test_comparison_figure_is_legible():
    result = compare_models(
        load_faithful(),
        n_components=[1, 2, 3],
        covariance_types=("full",),
        methods=("em",),
        random_state=0,
    )
    problems = _legibility_problems(plot_comparison(result))
    assert not problems, "; ".join(problems[:4])


def test_prior_sensitivity_figure(faithful_fit):
    """Prior and likelihood columns, one row per weight and mean, no pyplot state left."""
    import matplotlib.pyplot as plt

    from bayesgmm.plots import plot_prior_sensitivity

    before = plt.get_fignums()
    fig = plot_prior_sensitivity(faithful_fit)
    assert plt.get_fignums() == before
    titles = [ax.get_title() for ax in fig.axes if ax.axison]
    assert len(titles) == 2 * (2 + 2 * 2)  # (2 weights + 2 x 2 means) x (prior, likelihood)
    assert "means[1, waiting], power-scaled prior" in titles
    assert "means[1, waiting], power-scaled likelihood" in titles
    assert _legibility_problems(fig) == []
    with pytest.raises(ValueError, match="names none"):
        plot_prior_sensitivity(faithful_fit, var_names=("nope",))
