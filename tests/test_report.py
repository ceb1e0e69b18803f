"""HTML and Markdown reports: sections, tables, figures on disk or embedded, escaping."""

from __future__ import annotations

import copy
import html
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from bayesgmm import BayesGaussianMixture, load_faithful
from bayesgmm.report import _md_text, render_report, write_report
from bayesgmm.selection import compare_models

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EVIL = "<script>alert('x')</script>"
FIGURES = {
    "trace_weights",
    "trace_means",
    "posterior_intervals",
    "em_vs_posterior",
    "predictive_check",
    "rank",
    "membership_uncertainty",
    "model_comparison",
    "prior_predictive",
    "prior_sensitivity",
}


@pytest.fixture(scope="module")
def comparison():
    return compare_models(
        load_faithful(),
        n_components=range(1, 3),
        covariance_types=("full",),
        methods=("em",),
        random_state=0,
    )


@pytest.fixture(scope="module")
def html_report(faithful_fit, comparison, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("report") / "faithful.html"
    return write_report(path, bgm=faithful_fit, comparison=comparison, dpi=50)


class _Tags(HTMLParser):
    """Collects start tags with their attributes and checks that tags are balanced."""

    VOID = frozenset({"meta", "img", "br", "hr", "link", "input"})

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}>"
        self.stack.pop()


def _parse(text: str) -> _Tags:
    parser = _Tags()
    parser.feed(text)
    parser.close()
    assert parser.stack == [], f"unclosed tags {parser.stack}"
    return parser


def test_html_report_sections_and_verdict(faithful_fit, comparison, html_report):
    text = html_report.read_text(encoding="utf-8")
    _parse(text)
    for heading in (
        "Summary",
        "Data",
        "EM fit",
        "Bayesian fit",
        "Convergence diagnostics",
        "Posterior vs EM",
        "Membership uncertainty",
        "Model comparison",
        "Provenance",
    ):
        assert re.search(rf"<h[23]>{heading}</h[23]>", text), heading
    assert html.escape(faithful_fit.diagnostics_.verdict) in text
    assert html.escape(comparison.verdict) in text
    assert faithful_fit.idata_.attrs["sampler"] in text
    assert str(faithful_fit.idata_.attrs["random_seed"]) in text
    assert f"{faithful_fit.em_.bic(load_faithful()):.1f}" in text


def test_html_report_posterior_mean_table(faithful_fit, html_report):
    text = html_report.read_text(encoding="utf-8")
    section = text.split("<h2>Posterior vs EM</h2>")[1]
    text = section[: section.index("</table>")]
    assert "<th>posterior mean</th>" in text and "<th>89% lower</th>" in text
    post = faithful_fit.idata_["posterior"]
    for c in range(faithful_fit.n_components):
        for feature in post["feature"].values:
            label = f"means[{c}, {feature}]"
            mean = post["means"].sel(component=c, feature=feature).mean().item()
            row = re.search(rf"<td>{re.escape(label)}</td>\s*<td>([^<]*)</td>", text)
            assert row is not None, label
            assert float(row.group(1)) == pytest.approx(mean, rel=1e-3)


def test_html_report_images_exist(html_report):
    text = html_report.read_text(encoding="utf-8")
    imgs = [attrs for tag, attrs in _parse(text).tags if tag == "img"]
    assert {Path(a["src"]).stem for a in imgs} == FIGURES
    for attrs in imgs:
        src = attrs["src"]
        assert not Path(src).is_absolute()
        file = html_report.parent / src
        assert file.is_file(), src
        assert file.read_bytes().startswith(PNG_MAGIC)
        assert attrs["alt"]


def test_markdown_report(faithful_fit, comparison, tmp_path):
    path = write_report(
        tmp_path / "out" / "faithful.md", bgm=faithful_fit, comparison=comparison, dpi=40
    )
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# bayesgmm report\n")
    assert "## Bayesian fit" in text and "### Convergence diagnostics" in text
    assert "| parameter | posterior mean |" in text
    assert faithful_fit.idata_.attrs["sampler"] in text
    assert _md_text(faithful_fit.diagnostics_.verdict) in text
    links = re.findall(r"!\[[^\]]*\]\(<([^>]+)>\)", text)
    assert {Path(link).stem for link in links} == FIGURES
    for link in links:
        assert (path.parent / link).read_bytes().startswith(PNG_MAGIC)
    # Plain Markdown: no raw HTML, no HTML entities, comparisons written as typed.
    assert not re.search(r"(?<!\\)<[A-Za-z/!?]", text.replace("](<", ""))
    assert "&lt;" not in text and "&gt;" not in text and "&amp;" not in text
    assert "have P(label) < 0.9." in text
    # every table row has as many cells as its header
    for block in re.findall(r"(?:^\|.*\|\n)+", text, flags=re.M):
        widths = {len(re.split(r"(?<!\\)\|", row)) for row in block.strip().splitlines()}
        assert len(widths) == 1, block


def _with_feature_names(bgm: BayesGaussianMixture, names: list[str]) -> BayesGaussianMixture:
    """The same fit with its features renamed (no refit)."""
    groups = {}
    for name, node in bgm.idata_.children.items():
        ds = node.to_dataset()
        for dim in ("feature", "feature_bis"):
            if dim in ds.coords:
                ds = ds.assign_coords({dim: names})
        groups[name] = ds
    tree = xr.DataTree.from_dict(groups)
    tree.attrs = dict(bgm.idata_.attrs)
    out = copy.copy(bgm)
    out.idata_ = tree
    out.feature_names_in_ = np.asarray(names, dtype=object)
    out.em_ = copy.copy(bgm.em_)
    out.em_.feature_names_in_ = out.feature_names_in_
    return out


@pytest.mark.parametrize("fmt", ["html", "md"])
def test_text_is_escaped(faithful_fit, fmt, tmp_path):
    evil = _with_feature_names(faithful_fit, [EVIL, "a & b | c"])
    text = render_report(bgm=evil, title=f"report {EVIL}", fmt=fmt, figures=False)
    if fmt == "html":
        assert "<script" not in text.lower()
        assert "&lt;script&gt;" in text
        _parse(text)
        assert "a &amp; b | c" in text
    else:
        # Markdown shows a backslash-escaped "<" as typed, and opens no tag with it.
        assert not re.search(r"(?<!\\)<script", text.lower())
        assert "\\<script>alert('x')\\</script>" in text
        assert "a & b \\| c" in text  # a pipe would split a Markdown table cell


def test_embedded_html_is_self_contained(faithful_fit, comparison, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_report(
        tmp_path / "embedded.html", bgm=faithful_fit, comparison=comparison, embed=True, dpi=30
    )
    text = path.read_text(encoding="utf-8")
    tags = _parse(text).tags
    refs = [v for _, attrs in tags for k, v in attrs.items() if k in ("src", "href")]
    assert len(refs) == len(FIGURES)
    assert all(ref.startswith("data:image/png;base64,") for ref in refs)
    assert not any(tag in ("link", "script", "iframe") for tag, _ in tags)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["embedded.html"]  # no figure files


def test_comparison_only_report(comparison, tmp_path):
    text = render_report(comparison=comparison, figures_dir=tmp_path / "figs", dpi=30)
    assert "<h2>Model comparison</h2>" in text and "Bayesian fit" not in text
    assert html.escape(comparison.verdict) in text
    assert 'src="figs/model_comparison.png"' in text
    assert (tmp_path / "figs" / "model_comparison.png").is_file()


def test_figures_relative_to_the_report(comparison, tmp_path):
    text = render_report(
        comparison=comparison,
        figures_dir=tmp_path / "a" / "figures",
        relative_to=tmp_path / "b",
        fmt="md",
        dpi=30,
    )
    assert "](<../a/figures/model_comparison.png>)" in text


def test_errors(faithful_fit, comparison, tmp_path):
    with pytest.raises(ValueError, match="Nothing to report"):
        render_report()
    with pytest.raises(ValueError, match="figures_dir"):
        render_report(comparison=comparison)
    with pytest.raises(ValueError, match="fmt"):
        render_report(comparison=comparison, fmt="pdf", figures=False)
    with pytest.raises(TypeError, match="BayesGaussianMixture"):
        render_report(bgm=faithful_fit.em_, figures=False)
    with pytest.raises(TypeError, match="ComparisonResult"):
        render_report(comparison=comparison.table, figures=False)
    with pytest.raises(ValueError, match="suffix"):
        write_report(tmp_path / "report.txt", comparison=comparison, figures=False)
    assert not list(tmp_path.iterdir())


def test_degenerate_em_fit_is_flagged(faithful_fit):
    bad = copy.copy(faithful_fit)
    bad.em_ = copy.copy(faithful_fit.em_)
    bad.em_.degenerate_ = np.array([True, False])
    text = render_report(bgm=bad, figures=False)
    assert '<p class="fail">Degenerate fit: component(s) [0] collapsed' in text
    assert "EM fit: degenerate components [0]." in text
    assert "No component collapsed" in render_report(bgm=faithful_fit, figures=False, fmt="md")


def test_report_of_a_loaded_fit(faithful_fit, tmp_path):
    faithful_fit.save(tmp_path / "fit.nc")
    loaded = BayesGaussianMixture.load(tmp_path / "fit.nc")
    text = render_report(bgm=loaded, figures=False, fmt="md")
    assert f"| BIC (lower better) | {faithful_fit.em_.bic(load_faithful()):.1f} |" in text
    assert _md_text(faithful_fit.diagnostics_.verdict) in text


def test_report_from_saved_results_has_the_same_tables(faithful_fit, tmp_path):
    """Issue 6, must-show 2: the report regenerated from saved results, without refitting."""
    faithful_fit.save(tmp_path / "fit.nc")
    loaded = BayesGaussianMixture.load(tmp_path / "fit.nc")
    original = render_report(bgm=faithful_fit, figures=False, fmt="md")
    again = render_report(bgm=loaded, figures=False, fmt="md")

    def tables(text):
        return [line for line in text.splitlines() if line.startswith("|")]

    assert len(tables(original)) > 20
    assert tables(again) == tables(original)


def test_segmentation_report(tmp_path):
    from bayesgmm import make_regions_image, segment_image

    image, _ = make_regions_image((40, 48), random_state=0)
    result = segment_image(image, 3, random_state=0)
    text = render_report(segmentation=result, fmt="md", figures=False)
    assert "## Image segmentation" in text and "48 x 40 pixels" in text
    assert "| segment | pixel share | mean P(label) |" in text
    assert "| pixels fitted | all 1920 |" in text
    share = f"{np.mean(result.label_probability < 0.9):.1%}"
    assert f"{share} of the pixels have a label probability below 0.9" in text
    path = write_report(tmp_path / "seg.html", segmentation=result, embed=True, dpi=30)
    page = path.read_text(encoding="utf-8")
    assert "<h2>Image segmentation</h2>" in page and "data:image/png;base64," in page
    assert "Bayesian fit" not in page  # EM: no posterior sections
    with pytest.raises(TypeError, match="SegmentationResult"):
        render_report(segmentation=image, figures=False)


def test_em_segmentation_report_states_its_model():
    """Issue 21: an EM-only segmentation report has a model section too, read from the fit
    (its covariance type, starts, regularisation and spatial prior), and says it has no
    priors."""
    from bayesgmm import make_regions_image, segment_image

    image, _ = make_regions_image((30, 36), random_state=1)
    plain = segment_image(image, 3, random_state=0)
    text = render_report(segmentation=plain, fmt="md", figures=False)
    assert "## Model" in text
    em = plain.estimator
    assert f"covariance_type={em.covariance_type!r}" in text
    assert f"best of {em.n_init} start(s), tol={em.tol:g}" in text
    assert f"reg_covar={em.reg_covar:g}" in text
    assert "none: pixels are independent" in text and "No priors" in text
    spatial = segment_image(image, 3, random_state=0, spatial="potts", beta=0.7)
    text = render_report(segmentation=spatial, fmt="md", figures=False)
    assert "Potts model on the 4-neighbour pixel grid" in text and "beta = 0.7" in text


def _markdown_tokens(text: str):
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark").enable("table")
    return md, md.parse(text)


def test_markdown_report_is_plain_markdown(faithful_fit, comparison):
    """Parsed by a CommonMark parser: no HTML, every table a table, text shown as typed."""
    evil = _with_feature_names(faithful_fit, [EVIL, "a & b | c"])
    text = render_report(bgm=evil, comparison=comparison, title="r", fmt="md", figures=False)
    md, tokens = _markdown_tokens(text)
    kinds = {t.type for t in tokens} | {c.type for t in tokens for c in t.children or []}
    assert not kinds & {"html_block", "html_inline"}, "raw HTML in the Markdown report"
    separators = re.findall(r"^\|(?: --- \|)+$", text, flags=re.M)
    assert len(separators) > 5
    assert sum(t.type == "table_open" for t in tokens) == len(separators)
    shown = md.render(text)
    shown_text = html.unescape(re.sub(r"<[^>]+>", "", shown))
    assert "have P(label) < 0.9." in shown_text
    assert EVIL in shown_text  # the feature name shows as typed, not as a tag
    assert "a & b | c" in shown_text


def test_comparison_only_report_states_the_model_once():
    """A report of a comparison alone states the stock priors of its posteriors, read from
    build_model (not recomputed), once for the grid."""
    import warnings

    from bayesgmm import build_model
    from bayesgmm.methods import model_hyperparameters

    X = load_faithful()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 1 short chain per model: diagnostics fail
        result = compare_models(
            X,
            n_components=[1, 2],
            covariance_types=("full", "spherical"),
            methods=("bayes",),
            random_state=0,
            draws=60,
            tune=60,
            chains=1,
        )
    md = render_report(comparison=result, figures=False, fmt="md")
    assert md.count("## Model\n") == 1
    section = md.split("## Model\n")[1].split("\n## ")[0]
    full = model_hyperparameters(build_model(X, 2, covariance_type="full"))
    sph = model_hyperparameters(build_model(X, 2, covariance_type="spherical"))
    for j, name in enumerate(X.columns):
        assert f"{name}: {float(full['means_sigma'][0, j]):.4g}" in section
        assert f"{name}: {float(full['covariance']['sd_sigma'].ravel()[j]):.4g}" in section
    assert f"HalfNormal(scale {float(np.ravel(sph['covariance']['sd_sigma'])[0]):.4g})" in section
    assert "for each of the K components" in section and "K in {1, 2}" in section
    assert "LKJ(eta = 2)" in section
