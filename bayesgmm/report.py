"""Render fitted results to an HTML or Markdown report; nothing is fitted or sampled here.

:func:`render_report` takes a fitted :class:`~bayesgmm.BayesGaussianMixture`, a
:class:`~bayesgmm.selection.ComparisonResult` and/or a segmentation, and lays out what they
already hold:

1. the data (``idata_["observed_data"]``) and the model: the likelihood and every prior with
   its hyper-parameters in data units, read from :func:`bayesgmm.build_model`'s PyMC model
   (:func:`bayesgmm.methods.model_description`);
2. the EM fit: weights, means, BIC/AIC/ICL and collapsed (degenerate) components;
3. the Bayesian fit: sampler, settings, timings (``idata_.attrs``), the diagnostics verdict
   and table, and the trace of the means;
4. the posterior beside EM: posterior means with equal-tailed intervals next to the EM
   estimates (:func:`bayesgmm.plots.posterior_vs_em`), with figures;
5. membership uncertainty: how many points have ``P(label) < 0.9`` and the least certain
   points (:meth:`~bayesgmm.BayesGaussianMixture.membership`);
6. model comparison: the verdict, each criterion's choice and the table;
7. image segmentation (a :class:`~bayesgmm.SegmentationResult`): settings, the sampler's
   verdict for a Bayesian fit, a per-segment table and the image, label and uncertainty maps;
8. prior sensitivity (power-scaling, :meth:`~bayesgmm.BayesGaussianMixture.prior_sensitivity`)
   in a table and in words, with a prior predictive check;
9. methods: a paragraph for a paper with references
   (:func:`bayesgmm.methods.methods_paragraph`) and what reproduces the fit;
10. provenance: package versions, estimator parameters and the seed.

Figures are PNG files in ``figures_dir``, referenced by relative path, or embedded as base64
with ``embed=True`` so that an HTML report is one self-contained file. Every piece of text is
escaped (:func:`html.escape` in HTML, backslash escapes in Markdown, which stays plain
Markdown: ``P(label) < 0.9`` is written as typed), so feature names or notes cannot inject
markup. A table wider than the page scrolls inside its own box, its first column kept in
view.

:func:`write_report` writes the report to a file, with the figures in a folder beside it.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import html
import io
import json
import logging
import os
import platform
import re
import urllib.parse
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ._numerics import n_parameters
from ._validation import check_choice
from ._version import __version__
from .methods import _params  # the fit's recorded parameters, one reader for both
from .plots import (
    plot_bic_grid,
    plot_comparison,
    plot_em_vs_posterior,
    plot_membership_uncertainty,
    plot_pairs,
    plot_posterior_intervals,
    plot_predictive_check,
    plot_prior_predictive,
    plot_prior_sensitivity,
    plot_rank,
    plot_segmentation,
    plot_trace,
    posterior_vs_em,
)

if TYPE_CHECKING:
    from .bayes import BayesGaussianMixture
    from .responsibilities import MembershipSummary
    from .segmentation import CalibrationResult, SegmentationResult
    from .selection import ComparisonResult

__all__ = ["render_report", "write_report"]

_log = logging.getLogger("bayesgmm")

FORMATS = ("html", "md")
_MISSING = "NA"
_DIAGNOSTIC_ROWS = 30  # largest R-hat rows shown when there are more parameters
_TIMINGS = {
    "em_time": "EM fit (start and pivot)",
    "compile_time": "compilation",
    "sampling_time": "NUTS sampling",
    "log_likelihood_time": "pointwise log-likelihood",
    "total_time": "sampling step in total",
    "fit_time": "whole fit",
}
_VERSIONS = ("numpy", "scipy", "pandas", "xarray", "matplotlib", "pymc", "arviz", "nutpie")

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1150px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45;
       overflow-wrap: anywhere; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { border-bottom: 1px solid #bbb; padding-bottom: .1em; margin-top: 2em; }
div.table { max-width: 100%; overflow-x: auto; margin: .6em 0 1.2em; }
table.data { border-collapse: separate; border-spacing: 0; font-size: .85em; }
table.data th, table.data td { border: 1px solid #ccc; border-width: 0 1px 1px 0;
       padding: .25em .6em; text-align: right; overflow-wrap: normal; }
table.data tr:first-child th { border-top-width: 1px; }
table.data th { background: #f0f0f0; }
table.data td { background: #fff; }
table.data tr:nth-child(even) td { background: #fafafa; }
table.data td:first-child, table.data th:first-child { text-align: left; position: sticky;
       left: 0; z-index: 1; border-left-width: 1px; }
table.data td:first-child { background: #f7f7f7; }
table.data td.text, table.data th.text { text-align: left; }
p.pass { border-left: 5px solid #2a7d2a; background: #eef7ee; padding: .5em .8em; }
p.fail { border-left: 5px solid #b22; background: #fbeeee; padding: .5em .8em; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; box-sizing: border-box; }
figcaption { font-size: .9em; color: #555; }
pre.code { background: #f6f6f6; border: 1px solid #ddd; padding: .6em .8em; overflow-x: auto;
       font-size: .85em; white-space: pre; overflow-wrap: normal; }
p.caption { font-size: .9em; color: #555; margin-bottom: .2em; }
table.data { display: block; max-width: 100%; overflow-x: auto; }
table.data th { white-space: nowrap; }
table.data td:first-child, table.data th:first-child { position: sticky; left: 0; z-index: 1;
    background: #fff; white-space: nowrap; }
table.data th:first-child { background: #f0f0f0; }
table.data tr:nth-child(even) td:first-child { background: #fafafa; }
"""


# ---------------------------------------------------------------------- document model
# A report is a list of blocks, rendered to HTML or Markdown by the two renderers below.


@dataclasses.dataclass
class _Heading:
    text: str
    level: int = 2


@dataclasses.dataclass
class _Para:
    text: str
    kind: str = ""  # "pass" / "fail" highlight a verdict


@dataclasses.dataclass
class _Table:
    frame: pd.DataFrame  # all cells already formatted as str
    caption: str = ""


@dataclasses.dataclass
class _Image:
    src: str
    caption: str


@dataclasses.dataclass
class _List:
    items: list[str]


@dataclasses.dataclass
class _Code:
    text: str  # shown verbatim (escaped), never run


_Block = _Heading | _Para | _Table | _Image | _List | _Code


def _fmt(value: Any) -> str:
    """One cell or value as text: 4 significant digits (kept: ``1.000``), one decimal from 1000."""
    if value is None or value is pd.NA:
        return _MISSING
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        v = float(value)
        if not np.isfinite(v):
            return _MISSING if np.isnan(v) else str(v)
        return f"{v:.1f}" if abs(v) >= 1000 else f"{v:#.4g}"
    return str(value)


def _frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` with every cell and column name formatted as text."""
    out = pd.DataFrame({str(c): [_fmt(v) for v in df[c].tolist()] for c in df.columns})
    return out


def _kv(pairs: Iterable[tuple[str, Any]], columns: tuple[str, str] = ("", "")) -> pd.DataFrame:
    rows = [(str(k), _fmt(v)) for k, v in pairs]
    return pd.DataFrame(rows, columns=list(columns) if any(columns) else ["item", "value"])


# ---------------------------------------------------------------------- renderers


def _esc(text: str) -> str:
    return html.escape(str(text), quote=True)


_NUMBER = re.compile(r"^[-+\u2212]?(\d[\d,]*\.?\d*|\.\d+)([eE][-+]?\d+)?\s*%?$")


def _is_text_column(values: list[Any]) -> bool:
    """Whether a column holds mostly words (left-aligned) rather than numbers (right)."""
    cells = [str(v).strip() for v in values if not _missing(v) and str(v).strip()]
    words = sum(not _NUMBER.match(c) and c not in ("NA", "nan", "inf", "-inf") for c in cells)
    return bool(cells) and words > len(cells) / 2


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _table_html(frame: pd.DataFrame) -> str:
    """An HTML table of ``frame``'s cells (escaped); columns of words are left-aligned."""
    text = [_is_text_column(frame.iloc[:, j].tolist()) for j in range(frame.shape[1])]
    # The first column is left-aligned (and sticky) by the style sheet already.
    attr = [' class="text"' if t and j else "" for j, t in enumerate(text)]
    head = "".join(f"<th{a}>{_esc(c)}</th>" for c, a in zip(frame.columns, attr, strict=True))
    rows = [
        "<tr>"
        + "".join(
            f"<td{a}>{_esc(_MISSING if _missing(v) else v)}</td>"
            for v, a in zip(values, attr, strict=True)
        )
        + "</tr>"
        for values in frame.itertuples(index=False, name=None)
    ]
    return (
        f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def _render_html(title: str, blocks: list[_Block]) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{_esc(title)}</h1>",
    ]
    for block in blocks:
        if isinstance(block, _Heading):
            out.append(f"<h{block.level}>{_esc(block.text)}</h{block.level}>")
        elif isinstance(block, _Para):
            cls = f' class="{block.kind}"' if block.kind else ""
            out.append(f"<p{cls}>{_esc(block.text)}</p>")
        elif isinstance(block, _List):
            out.append("<ul>" + "".join(f"<li>{_esc(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, _Code):
            out.append(f'<pre class="code"><code>{_esc(block.text)}</code></pre>')
        elif isinstance(block, _Table):
            if block.caption:
                out.append(f'<p class="caption">{_esc(block.caption)}</p>')
            # A table wider than the page scrolls inside its own box; its first column stays
            # in view (position: sticky).
            out.append(f'<div class="table">{_table_html(block.frame)}</div>')
        elif isinstance(block, _Image):
            out.append(
                f'<figure><img src="{_esc(block.src)}" alt="{_esc(block.caption)}">'
                f"<figcaption>{_esc(block.caption)}</figcaption></figure>"
            )
    out += ["</body>", "</html>", ""]
    return "\n".join(out)


# Markdown that would not show as typed: backslash, code and emphasis marks, a "]" that could
# close a link ("[a](b)", "[a][b]", "[a]: b"), a "<" that could open an HTML tag or autolink,
# an "&" that would start an entity, and a ">" that would start a block quote. Each is
# backslash-escaped (CommonMark drops the backslash), so "P(label) < 0.9" stays as it is and
# "<script>" shows as text.
_MD_SPECIAL = re.compile(r"[\\`*]|\](?=[(\[:])|<(?=[A-Za-z/!?])|&(?=#?\w+;)|^>")


def _md_text(text: str) -> str:
    """Text for Markdown, shown as typed: special characters backslash-escaped."""
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), str(text))


def _md_cell(text: str) -> str:
    return _md_text(text).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _md_table(frame: pd.DataFrame) -> str:
    header = [_md_cell(c) for c in frame.columns]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(" --- " for _ in header) + "|",
    ]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
    return "\n".join(lines)


def _render_md(title: str, blocks: list[_Block]) -> str:
    out = [f"# {_md_text(title)}", ""]
    for block in blocks:
        if isinstance(block, _Heading):
            out += ["#" * block.level + " " + _md_text(block.text), ""]
        elif isinstance(block, _Para):
            text = _md_text(block.text)
            out += [f"> **{text}**" if block.kind else text, ""]
        elif isinstance(block, _List):
            out += [f"- {_md_text(i)}" for i in block.items] + [""]
        elif isinstance(block, _Code):
            # a fence longer than any run of backticks inside, so the text cannot close it
            runs = [len(r) for r in re.findall(r"`+", block.text)]
            fence = "`" * max(3, max(runs, default=0) + 1)
            out += [fence + "python", block.text.rstrip("\n"), fence, ""]
        elif isinstance(block, _Table):
            if block.caption:
                out += [_md_text(block.caption), ""]
            out += [_md_table(block.frame), ""]
        elif isinstance(block, _Image):
            alt = re.sub(r"(?<!\\)([\[\]])", r"\\\1", _md_cell(block.caption))
            out += [f"![{alt}](<{block.src}>)", "", f"*{_md_text(block.caption)}*", ""]
    return "\n".join(out)


# ---------------------------------------------------------------------- figures


class _Figures:
    """Saves figures as PNG (``figures_dir``) and/or embeds them; returns image blocks."""

    def __init__(
        self,
        figures_dir: Path | None,
        relative_to: Path,
        embed: bool,
        dpi: float,
    ) -> None:
        self.figures_dir = figures_dir
        self.relative_to = relative_to
        self.embed = embed
        self.dpi = dpi
        self.paths: list[Path] = []

    def add(self, make: Callable[[], Figure], name: str, caption: str) -> _Image:
        fig = make()
        path = None
        if self.figures_dir is not None:
            self.figures_dir.mkdir(parents=True, exist_ok=True)
            path = self.figures_dir / f"{name}.png"
            fig.savefig(path, dpi=self.dpi, format="png")
            self.paths.append(path)
        if self.embed:
            buf = io.BytesIO()
            fig.savefig(buf, dpi=self.dpi, format="png")
            src = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
        else:
            assert path is not None
            rel = Path(os.path.relpath(path.resolve(), self.relative_to.resolve()))
            src = urllib.parse.quote(rel.as_posix())
        return _Image(src, caption)


# ---------------------------------------------------------------------- sections


def _observed(bgm: BayesGaussianMixture) -> pd.DataFrame:
    obs = bgm.idata_["observed_data"]["obs"]
    return pd.DataFrame(obs.values, columns=[str(f) for f in obs["feature"].values])


def _summary_section(
    bgm: BayesGaussianMixture | None,
    membership: MembershipSummary | None,
    comparison: ComparisonResult | None,
    threshold: float,
    segmentation: SegmentationResult | None = None,
) -> list[_Block]:
    items = []
    if bgm is not None and membership is not None:
        n, d = bgm.idata_["observed_data"]["obs"].shape
        k = int(bgm.em_.n_components)
        items.append(
            f"{k} component(s), {bgm.covariance_type} covariances, fitted to {n} points with "
            f"{d} feature(s)."
        )
        degenerate = np.flatnonzero(np.asarray(bgm.em_.degenerate_, dtype=bool)).tolist()
        items.append(
            f"EM fit: degenerate components {degenerate}."
            if degenerate
            else "EM fit: no collapsed component."
        )
        items.append(
            "Convergence of the posterior: "
            + ("PASSED." if bgm.diagnostics_.passed else "FAILED (see the diagnostics).")
        )
        unsure = int(np.sum(membership.label_probability < threshold))
        items.append(f"{unsure} of {n} points have P(label) < {threshold:g}.")
    if comparison is not None:
        picks = [
            f"{criterion.upper()}: " + ("none" if m is None else f"{m[0]}, K={m[1]}")
            for criterion, m in comparison.best.items()
        ]
        items.append("Model choice by " + "; ".join(picks) + "." if picks else "No model chosen.")
    if segmentation is not None:
        seg = segmentation
        h, w = seg.labels.shape
        items.append(
            f"Image of {w} x {h} pixels segmented into {seg.n_components} segments by "
            f"{'EM' if seg.method == 'em' else 'NUTS'}; "
            f"{np.mean(seg.label_probability < threshold):.1%} of the pixels have "
            f"P(label) < {threshold:g}."
        )
        if seg.method == "bayes":
            items.append(
                "Convergence of the posterior: "
                + ("PASSED." if seg.estimator.diagnostics_.passed else "FAILED (see below).")
            )
    return [_Heading("Summary"), _List(items)]


def _data_section(bgm: BayesGaussianMixture) -> list[_Block]:
    X = _observed(bgm)
    desc = X.describe().T.reset_index(names="feature")
    desc = desc[["feature", "mean", "std", "min", "50%", "max"]].rename(
        columns={"std": "sd", "50%": "median"}
    )
    return [
        _Heading("Data"),
        _Para(
            f"{X.shape[0]} observations of {X.shape[1]} feature(s): " + ", ".join(X.columns) + "."
        ),
        _Table(_frame(desc)),
    ]


def _em_section(bgm: BayesGaussianMixture) -> list[_Block]:
    em = bgm.em_
    if not hasattr(em, "n_parameters_"):
        # An estimator from BayesGaussianMixture.load lacks n_parameters_, which bic/aic/icl
        # read; give a copy the count (the formula lives in _numerics) rather than refit.
        em = copy.copy(em)
        em.n_parameters_ = n_parameters(em.n_components, em.means_.shape[1], em.covariance_type)
    X = _observed(bgm)
    data: Any = X if hasattr(em, "feature_names_in_") else X.to_numpy()
    n = X.shape[0]
    degenerate = np.asarray(em.degenerate_, dtype=bool)
    params = pd.DataFrame({"component": np.arange(em.n_components), "weight": em.weights_})
    for j, name in enumerate(X.columns):
        params[f"mean[{name}]"] = em.means_[:, j]
    params["degenerate"] = degenerate
    criteria = [
        ("log-likelihood (higher better)", em.score(data) * n),
        ("BIC (lower better)", em.bic(data)),
        ("AIC (lower better)", em.aic(data)),
        ("ICL (lower better)", em.icl(data)),
    ]
    blocks: list[_Block] = [
        _Heading("EM fit"),
        _Para(
            f"{em.n_components} component(s), {em.covariance_type} covariances, best of "
            f"{em.n_init} initialisation(s); "
            + (
                f"converged after {em.n_iter_} iteration(s)."
                if em.converged_
                else f"did NOT converge in {em.n_iter_} iteration(s)."
            )
        ),
        _Table(_frame(params)),
        _Table(_kv(criteria, ("criterion", "value"))),
    ]
    if degenerate.any():
        blocks.append(
            _Para(
                f"Degenerate fit: component(s) {np.flatnonzero(degenerate).tolist()} collapsed "
                "onto too few points or onto the covariance floor, so the likelihood and the "
                "criteria above are spuriously good; the posterior started from this fit "
                "should not be trusted. Use fewer components or more n_init (the EM warning "
                "names the cause).",
                "fail",
            )
        )
    else:
        blocks.append(_Para("No component collapsed (the EM fit is not degenerate)."))
    return blocks


def _bayes_section(bgm: BayesGaussianMixture, figures: _Figures | None) -> list[_Block]:
    tree = bgm.idata_
    attrs = tree.attrs
    params = _params(bgm)
    post = tree["posterior"]
    sampler = str(attrs.get("sampler", "unknown"))
    stats_attrs = tree["sample_stats"].attrs if "sample_stats" in tree.children else {}
    version = stats_attrs.get("inference_library_version")
    settings = [
        ("sampler", sampler + (f" {version}" if version else "")),
        ("chains", post.sizes["chain"]),
        ("draws per chain", post.sizes["draw"]),
        ("tuning iterations per chain", params.get("tune")),
        ("target_accept", params.get("target_accept")),
        ("initialisation", params.get("init")),
    ]
    if "relabel" in tree.children:
        rel = tree["relabel"].attrs
        settings.append(
            (
                "relabelling",
                f"{rel.get('method', params.get('relabel'))} "
                f"({rel.get('n_changed', '?')} draw(s) permuted)",
            )
        )
    else:
        settings.append(("relabelling", "none (sampler's labels)"))
    timings = [(label, attrs[key]) for key, label in _TIMINGS.items() if key in attrs]

    report = bgm.diagnostics_
    diag = report.table.drop(columns=["variable"], errors="ignore")
    caption = "Convergence statistics per parameter element."
    if len(diag) > _DIAGNOSTIC_ROWS:
        diag = diag.sort_values("rhat", ascending=False, na_position="first")
        diag = diag.head(_DIAGNOSTIC_ROWS)
        caption = (
            f"The {_DIAGNOSTIC_ROWS} of {len(report.table)} parameters with the largest R-hat."
        )
    summary = report.summary()
    summary.pop("passed", None)

    blocks: list[_Block] = [
        _Heading("Bayesian fit"),
        _Para(f"Posterior sampled with {sampler} (NUTS), every chain started from the EM fit."),
        _Table(_kv(settings, ("setting", "value"))),
    ]
    if timings:
        blocks.append(_Table(_kv(timings, ("step", "seconds")), "Timings (seconds)."))
    blocks += [
        _Heading("Convergence diagnostics", 3),
        _Para(
            ("PASSED: " if report.passed else "FAILED: ") + report.verdict,
            "pass" if report.passed else "fail",
        ),
        _Table(_kv(summary.items(), ("statistic", "value"))),
        _Table(_frame(diag), caption),
    ]
    if figures is not None:
        blocks.append(
            figures.add(
                lambda: plot_trace(bgm, "weights"),
                "trace_weights",
                "Trace and per-chain densities of the weights.",
            )
        )
        d = post.sizes["feature"]
        k = post.sizes["component"]
        coords = None if k * d <= 12 else {"component": list(range(min(k, max(1, 12 // d))))}
        blocks.append(
            figures.add(
                lambda: plot_trace(bgm, "means", coords=coords),
                "trace_means",
                "Trace and per-chain densities of the component means"
                + (" (first components only)." if coords else "."),
            )
        )
        if post.sizes["chain"] >= 2:
            blocks.append(
                figures.add(
                    lambda: plot_rank(bgm),
                    "rank",
                    "Rank plots (arviz-plots): each chain's rank ECDF against the uniform band; "
                    "chains exploring the same distribution stay inside it.",
                )
            )
    if post.sizes["chain"] < 2:
        # R-hat and the rank plots' test compare chains (arviz's raises with one chain).
        blocks.append(
            _Para(
                "R-hat not available with one chain, and no rank plots: both compare chains. "
                "Fit with at least 2 chains (4 is usual) to check convergence."
            )
        )
    return blocks


def _posterior_section(
    bgm: BayesGaussianMixture, interval: float, figures: _Figures | None
) -> list[_Block]:
    table = posterior_vs_em(bgm, interval=interval)
    pct = f"{interval:.0%}"
    inside = (table["em"] >= table["lower"]) & (table["em"] <= table["upper"])
    shown = pd.DataFrame(
        {
            "parameter": table["parameter"],
            "posterior mean": table["posterior_mean"],
            f"{pct} lower": table["lower"],
            f"{pct} upper": table["upper"],
            "EM": table["em"],
            f"EM inside {pct}": inside,
        }
    )
    blocks: list[_Block] = [
        _Heading("Posterior vs EM"),
        _Para(
            f"Posterior means with equal-tailed {pct} intervals beside the EM estimates; "
            "stds are the square roots of the covariance diagonals. "
            f"{int(inside.sum())} of {len(table)} EM estimates lie inside their interval."
        ),
        _Table(_frame(shown)),
    ]
    if figures is not None:
        blocks.append(
            figures.add(
                lambda: plot_posterior_intervals(bgm, interval=interval),
                "posterior_intervals",
                f"Posterior means with {pct} intervals (dots and bars) and EM estimates "
                "(triangles).",
            )
        )
        blocks.append(
            figures.add(
                lambda: plot_em_vs_posterior(bgm),
                "em_vs_posterior",
                "EM components (2 sd ellipses or densities) beside 30 random posterior draws.",
            )
        )
        if bgm.idata_["posterior"].sizes["feature"] > 2:
            blocks.append(
                figures.add(
                    lambda: plot_pairs(bgm),
                    "pairs",
                    "Every pair of features: EM ellipses (thick) and 20 posterior draws (thin).",
                )
            )
        blocks.append(
            figures.add(
                lambda: plot_predictive_check(bgm, interval=interval),
                "predictive_check",
                f"Posterior predictive check: the data's histogram against the posterior "
                f"predictive marginal density (mean and {pct} band) and the EM density.",
            )
        )
    return blocks


def _membership_section(
    bgm: BayesGaussianMixture,
    m: MembershipSummary,
    interval: float,
    threshold: float,
    n_uncertain: int,
    figures: _Figures | None,
) -> list[_Block]:
    X = _observed(bgm)
    n, k = m.mean.shape
    unsure = m.label_probability < threshold
    counts = pd.DataFrame(
        {
            "component": [*range(k), "all"],
            "points labelled": [*np.bincount(m.labels, minlength=k).tolist(), n],
            f"P(label) < {threshold:g}": [
                *np.bincount(m.labels[unsure], minlength=k).tolist(),
                int(unsure.sum()),
            ],
        }
    )
    order = np.lexsort((-m.entropy_total, m.label_probability))[: max(0, int(n_uncertain))]
    rows = np.arange(n)
    top = pd.DataFrame({"obs_id": order})
    for name in X.columns:
        top[name] = X[name].to_numpy()[order]
    top["label"] = m.labels[order]
    top["P(label)"] = m.label_probability[order]
    top[f"{interval:.0%} lower"] = m.lower[rows[order], m.labels[order]]
    top[f"{interval:.0%} upper"] = m.upper[rows[order], m.labels[order]]
    top["total entropy"] = m.entropy_total[order]
    top["epistemic entropy"] = m.entropy_epistemic[order]
    blocks: list[_Block] = [
        _Heading("Membership uncertainty"),
        _Para(
            f"{int(unsure.sum())} of {n} points have a posterior probability below "
            f"{threshold:g} of belonging to their most probable component "
            f"(over {m.n_draws} posterior draws). Mean total entropy "
            f"{_fmt(float(m.entropy_total.mean()))} nats, of which epistemic (would shrink "
            f"with more data) {_fmt(float(m.entropy_epistemic.mean()))}."
        ),
        _Table(_frame(counts)),
        _Table(
            _frame(top),
            f"The {len(order)} least certain points; the interval is that of P(label) over "
            "the posterior draws.",
        ),
    ]
    if figures is not None:
        blocks.append(
            figures.add(
                lambda: plot_membership_uncertainty(bgm, membership=m),
                "membership_uncertainty",
                "Labels, total entropy and epistemic entropy of every point.",
            )
        )
    return blocks


def _comparison_section(result: ComparisonResult, figures: _Figures | None) -> list[_Block]:
    """The verdict, each criterion's choice, a compact table and the notes as a list.

    The table keeps one short line per model (the full table, every column, is
    ``result.table`` and the CLI's comparison.csv); notes and column meanings are lists under
    it, so no row grows tall and the WAIC/LOO columns stay in view.
    """
    from . import selection as sel

    table = result.table
    best_rows = []
    for criterion, choice in result.best.items():
        label = criterion.upper() if criterion != "loo" else "PSIS-LOO"
        best_rows.append(
            (label, "no eligible model" if choice is None else f"{choice[0]}-K{choice[1]}")
        )
    # (short header shown, table column, what the header means)
    spec = [
        ("model", sel.MODEL, "covariance type and number of components K"),
        ("p", sel.N_PARAMETERS, "free parameters"),
        ("EM", sel.EM_STATUS, sel.HEADER[sel.EM_STATUS]),
        ("BIC ↓", sel.BIC, sel.HEADER[sel.BIC]),
        ("AIC ↓", sel.AIC, sel.HEADER[sel.AIC]),
        ("ICL ↓", sel.ICL, sel.HEADER[sel.ICL]),
        ("converged", sel.CONVERGED, sel.HEADER[sel.CONVERGED]),
        ("occupied", sel.OCCUPIED, sel.HEADER[sel.OCCUPIED]),
        ("P(all K)", sel.P_ALL_OCCUPIED, sel.HEADER[sel.P_ALL_OCCUPIED]),
        ("elpd WAIC ↑", sel.ELPD_WAIC, sel.HEADER[sel.ELPD_WAIC]),
        ("se", sel.SE_WAIC, sel.HEADER[sel.SE_WAIC]),
        ("elpd LOO ↑", sel.ELPD_LOO, sel.HEADER[sel.ELPD_LOO]),
        ("se ", sel.SE_LOO, sel.HEADER[sel.SE_LOO]),
        ("max k", sel.MAX_PARETO_K, sel.HEADER[sel.MAX_PARETO_K]),
    ]
    spec = [s for s in spec if s[1] in table and not table[s[1]].isna().all()]
    compact = _frame(table[[c for _, c, _ in spec]])
    compact.columns = [h for h, _, _ in spec]
    notes = []
    no_posterior: list[str] = []  # mclust models the Bayesian fit does not have: one note
    for _, row in table.iterrows():
        for column in (sel.EM_NOTE, sel.BAYES_NOTE):
            text = str(row.get(column, "") or "")
            if column == sel.BAYES_NOTE and text.startswith("no posterior"):
                no_posterior.append(str(row[sel.COVARIANCE_TYPE]))
            elif text and text != "nan":
                notes.append(f"{row[sel.MODEL]}: {text}")
    if no_posterior:
        models = list(dict.fromkeys(no_posterior))
        notes.insert(
            0,
            f"No posterior for {', '.join(models)} (every K): the Bayesian fit has 4 "
            "covariance structures (full, tied, diag, spherical = mclust's VVV, EEE, VVI, "
            "VII); these rows have EM criteria only.",
        )
    excluded = result.excluded_posteriors
    evidence_left = getattr(result, "evidence_excluded", [])
    verdict = result.verdict
    moved = [n for n in getattr(result, "evidence_notes", []) if n.startswith("Left out of")]
    for sentence in [*excluded, *moved]:  # listed under the verdict instead
        verdict = verdict.replace(" " + sentence, "").replace(sentence, "")
    # p(K | y) in a small table of its own, so the compact table keeps one short line per row
    evidence_rows = []
    if sel.P_K_GIVEN_Y in table and table[sel.P_K_GIVEN_Y].notna().any():
        for _, row in table[table[sel.P_K_GIVEN_Y].notna()].iterrows():
            evidence_rows.append(
                {
                    "model": row[sel.MODEL],
                    "BIC ↓": row.get(sel.BIC),
                    "-2 log p(y|K) ↓": row[sel.EVIDENCE_DEVIANCE],
                    "se": 2.0 * row[sel.SE_LOG_EVIDENCE],
                    "p(K | y)": row[sel.P_K_GIVEN_Y],
                }
            )
    blocks: list[_Block] = [_Heading("Model comparison"), _Para(verdict.strip())]
    if best_rows:
        blocks.append(_Table(_kv(best_rows, ("criterion", "chosen model"))))
    if excluded:
        blocks.append(_Para("Posteriors excluded from the WAIC and PSIS-LOO choice:", "fail"))
        blocks.append(_List(excluded))
    blocks.append(
        _Table(
            compact,
            "Every candidate model, one line each (↓ lower is better, ↑ higher is better; every "
            "column is in the full table, comparison.csv).",
        )
    )
    if result.shows_bic_grid:
        blocks.append(
            _Table(
                result.bic_grid(marked=True)
                .rename(columns=lambda k: f"K = {k}")
                .reset_index(names="model"),
                "mclust's BIC grid: BIC = -2 log L + p log n of every covariance model (rows) "
                "and K (columns), lower is better; mclust prints the same numbers with the "
                "opposite sign. ★ BIC's choice; † a degenerate fit (a component collapsed; "
                "mclust reports it missing), never chosen.",
            )
        )
        if figures is not None:
            blocks.append(
                figures.add(
                    lambda: plot_bic_grid(result),
                    "bic_grid",
                    "BIC against K, one line per covariance model (dashed: equal volumes); "
                    "lower is better, the star is BIC's choice, grey crosses degenerate fits.",
                )
            )
    if evidence_rows:
        blocks.append(
            _Table(
                _frame(pd.DataFrame(evidence_rows)),
                f"The evidence by bridge sampling beside BIC, which approximates it (se: of "
                f"-2 log p(y|K)), and p(K | y) per covariance type under a {result.k_prior} "
                "prior on K, normalised over the K whose evidence is estimable.",
            )
        )
    if evidence_left:
        blocks.append(_Para("Left out of p(K | y):"))
        blocks.append(_List(evidence_left))
    if notes:
        blocks.append(_Para("Notes on the fits:"))
        blocks.append(_List(notes))
    blocks.append(_Para("What the columns mean:"))
    blocks.append(_List([f"{h.strip()}: {meaning}" for h, _, meaning in spec]))
    if figures is not None and len(table):
        blocks.append(
            figures.add(
                lambda: plot_comparison(result),
                "model_comparison",
                "Every criterion against K (lower is better); stars mark each criterion's "
                "choice, grey crosses the fits it excludes.",
            )
        )
    return blocks


def _segmentation_section(
    result: SegmentationResult, threshold: float, figures: _Figures | None
) -> list[_Block]:
    h, w = result.labels.shape if result.full_shape is None else result.full_shape
    n_pixels = h * w
    how = "EM" if result.method == "em" else "the Bayesian mixture (NUTS, started from EM)"
    settings = [
        ("image", f"{w} x {h} pixels, {'RGB' if result.image.ndim == 3 else 'grayscale'}"),
        ("segments (components)", result.n_components),
        ("method", how),
        ("features", ", ".join(result.features.names)),
        ("position weight", result.features.position_weight),
        (
            "pixels fitted",
            f"all {n_pixels}"
            if result.fit_pixels.size == n_pixels
            else f"{result.fit_pixels.size} of {n_pixels} (uniform random sample)",
        ),
    ]
    if result.spatial == "potts":
        settings.append(("spatial prior", f"Potts, beta = {result.beta:.3g}"))
    if result.preview_step > 1:  # an image too large to draw: a strided preview
        ph, pw = result.labels.shape
        table = "all pixels" if result._full_summary is not None else "the preview"
        settings.append(
            (
                "maps shown",
                f"a preview, one row and one column in {result.preview_step} ({pw} x {ph} "
                "pixels): the figure and the share of uncertain pixels are from the preview, "
                f"the per-segment table from {table}",
            )
        )
    if result.n_map_draws is not None:
        settings.append(("posterior draws behind the maps", result.n_map_draws))
    settings += [(f"seconds: {k}", round(v, 2)) for k, v in result.timings.items()]
    unsure = float(np.mean(result.label_probability < threshold))
    blocks: list[_Block] = [
        _Heading("Image segmentation"),
        _Table(_kv(settings, ("setting", "value"))),
        _Para(
            f"{unsure:.1%} of the pixels have a label probability below {threshold:g}. "
            "Total uncertainty is the entropy of a pixel's membership probabilities (nats, at "
            f"most log K = {np.log(max(result.n_components, 2)):.2f}); aleatoric is the "
            "expected entropy under the posterior (overlapping components), epistemic the "
            "rest (uncertainty about the components, zero for EM)."
        ),
    ]
    if result.method == "bayes":
        diag = result.estimator.diagnostics_
        blocks.append(_Para(diag.verdict, "pass" if diag.passed else "fail"))
    # Two narrow tables rather than one that runs past the page: uncertainty, then means.
    names = {
        "pixel_share": "pixel share",
        "mean_label_probability": "mean P(label)",
        "mean_total_uncertainty": "total (nats)",
        "mean_epistemic_uncertainty": "epistemic (nats)",
    }
    if result.interval is not None:
        names["mean_interval_width"] = f"{result.interval:.0%} interval width"
    raw = result.summary()
    summary = raw.rename(columns=names).rename_axis("segment")
    means = result.component_means().rename_axis("segment")
    blocks += [
        _Table(
            _frame(summary.reset_index()),
            "Per segment: share of pixels, mean label probability and mean uncertainties "
            "over its pixels"
            + (
                "; the interval width is that of P(label) over the posterior draws."
                if "mean_interval_width" in raw
                else "."
            ),
        ),
        _Table(
            _frame(means.reset_index()),
            "Per segment: its weight and fitted mean in image units (colour in [0, 1], "
            "position in pixels).",
        ),
    ]
    if figures is not None:
        blocks.append(
            figures.add(
                lambda: plot_segmentation(result),
                "segmentation",
                "The image, its label map and the uncertainty maps.",
            )
        )
    return blocks


def _custom_model_blocks(attrs: Any) -> list[_Block]:
    """A custom model's name and recorded source, shown as text (never run)."""
    name = str(attrs["custom_model"])
    source = attrs.get("custom_model_source")
    built = f"Custom PyMC model built by the function {name} (BayesGaussianMixture(model=...)). "
    description = attrs.get("custom_model_description")
    if description:  # the model function's own statement of its likelihood and priors
        text = built + str(description)
    else:
        text = built + (
            "Likelihood: x_i ~ sum_k w_k Normal(mu_k, Sigma_k), the component labels "
            "marginalised out, checked numerically against the Gaussian mixture "
            "log-likelihood when the fit started. The priors are the function's own; "
            "bayesgmm's stock priors (Priors) do not apply, so none are stated here."
        )
        potentials = json.loads(attrs.get("custom_model_potentials") or "[]")
        if potentials:
            text += (
                f" The model also adds the potential term(s) {', '.join(potentials)} to its "
                "log density, so the density sampled is not that likelihood alone (see the "
                "model as PyMC prints it below)."
            )
    blocks: list[_Block] = [_Heading("Model"), _Para(text)]
    roles = attrs.get("custom_model_variables")
    if roles:
        table = pd.DataFrame(
            sorted(json.loads(roles).items()), columns=["variable", "what bayesgmm reads"]
        )
        blocks.append(
            _Table(
                table,
                "The variables bayesgmm relies on (relabelling, diagnostics, membership, "
                "predictions and the report read them by these names), and the model's own.",
            )
        )
    text = attrs.get("custom_model_text")
    if text:
        blocks += [_Para("The model as PyMC prints it:"), _Code(str(text))]
    if source:
        blocks += [
            _Para("Its source, as recorded at fit time (shown as text, never executed):"),
            _Code(str(source)),
        ]
    else:
        blocks.append(_Para("Its source text was not available when the model was fitted."))
    return blocks


def _model_section(bgm: BayesGaussianMixture) -> list[_Block]:
    """The likelihood and every prior with its numbers, read from build_model's PyMC model."""
    from .methods import model_description
    from .model import Priors

    if "custom_model" in bgm.idata_.attrs:
        return _custom_model_blocks(bgm.idata_.attrs)

    params = _params(bgm)
    pri = params.get("priors")
    priors = Priors(**pri) if isinstance(pri, dict) else (bgm.priors or Priors())
    desc = model_description(
        _observed(bgm),
        int(bgm.idata_["posterior"].sizes["component"]),
        covariance_type=str(params.get("covariance_type", bgm.covariance_type)),
        priors=priors,
    )
    return [
        _Heading("Model"),
        _Para("Likelihood: " + desc.likelihood),
        _Table(
            _frame(desc.priors),
            "Priors, with their hyper-parameters in data units (read from the PyMC model).",
        ),
        _Para(desc.scaling),
    ]


def _calibration_section(cal: CalibrationResult, figures: _Figures | None) -> list[_Block]:
    """Accuracy, ARI, ECE and the reliability diagram of a segmentation against its truth."""
    from .plots import plot_reliability

    rows = [
        ("accuracy (labels matched to the truth)", f"{cal.accuracy:.3f}"),
        ("adjusted Rand index", f"{cal.ari:.3f}"),
        ("expected calibration error (ECE)", f"{cal.ece:.3f}"),
    ]
    blocks: list[_Block] = [
        _Heading("Calibration against the truth map", level=3),
        _Table(_kv(rows, ("measure", "value"))),
        _Para(
            "A label probability is calibrated when, among the pixels given probability p, a "
            "share p carry the right label: in the reliability diagram the points then lie on "
            "the diagonal. ECE is the mean distance from it, weighted by the pixels per bin."
        ),
    ]
    if figures is not None:
        blocks.append(
            figures.add(
                lambda: plot_reliability(cal),
                "reliability",
                "Reliability diagram: accuracy against the mean label probability per bin.",
            )
        )
    return blocks


def _em_model_section(
    result: SegmentationResult, grid: str = "4-neighbour pixel grid"
) -> list[_Block]:
    """The model of an EM-only segmentation: likelihood, estimation and spatial prior."""
    em = result.estimator
    k, cov = int(em.n_components), str(em.covariance_type)
    names = ", ".join(result.features.names)
    structure = {
        "full": "its own full covariance matrix",
        "tied": "one covariance matrix shared by all components",
        "diag": "its own diagonal covariance matrix (independent features)",
        "spherical": "its own single variance for all features",
    }.get(cov, f"{cov!r} covariance")
    rows = [
        ("likelihood", f"mixture of {k} Gaussian components over the pixel features ({names})"),
        ("component covariance", f"{structure} (covariance_type={cov!r})"),
        ("weights", "one mixing proportion per component, estimated"),
        (
            "estimation",
            "maximum likelihood by EM (Dempster et al. 1977), best of "
            f"{em.n_init} start(s), tol={em.tol:g}",
        ),
        (
            "regularisation",
            f"reg_covar={em.reg_covar:g} times each feature's variance added to the "
            "covariance diagonal (relative to the data's spread)",
        ),
    ]
    if result.spatial == "potts":
        beta = "estimated" if result.beta is None else f"{result.beta:.3g}"
        rows.append(
            (
                "spatial prior",
                f"Potts model on the {grid}, labels by mean-field EM; interaction beta = {beta}",
            )
        )
    else:
        unit = "voxels" if "voxel" in grid else "pixels"
        rows.append(("spatial prior", f"none: {unit} are independent given the components"))
    return [
        _Heading("Model"),
        _Table(_kv(rows, ("part", "specification"))),
        _Para(
            "No priors on the component parameters: EM gives a point estimate, so the maps "
            "carry no uncertainty about the components (epistemic uncertainty is zero); fit "
            "with the Bayesian mixture for that."
        ),
    ]


def _comparison_model_section(result: ComparisonResult) -> list[_Block]:
    """The stock model's priors for a comparison's posteriors, stated once for the grid.

    The priors depend only on the data and :class:`~bayesgmm.model.Priors`, both recorded
    in each posterior (``observed_data``, ``attrs["params"]``); their numbers are read from
    :func:`bayesgmm.build_model` per covariance type, as in :func:`_model_section`.
    """
    from .methods import model_description
    from .model import Priors

    stock: dict[str, list[tuple[int, Any, Any]]] = {}
    other = []
    for name, tree in result.posteriors.items():
        raw = tree.attrs.get("params")
        params = json.loads(raw) if isinstance(raw, str) else None
        if "custom_model" in tree.attrs:
            other.append(f"{name} (custom model {tree.attrs['custom_model']})")
            continue
        if (
            tree.attrs.get("estimator") != "BayesGaussianMixture"
            or params is None
            or "observed_data" not in tree.children
        ):
            other.append(name)
            continue
        pri = params.get("priors")
        priors = Priors(**pri) if isinstance(pri, dict) else Priors()
        obs = tree["observed_data"]["obs"]
        frame = pd.DataFrame(obs.values, columns=[str(f) for f in obs["feature"].values])
        cov = str(params.get("covariance_type"))
        stock.setdefault(cov, []).append((int(tree["posterior"].sizes["component"]), priors, frame))
    custom = [o for o in other if "(custom model " in o]
    if not stock:
        if not custom:
            return []
        return [
            _Heading("Model"),
            _Para(
                "The compared posteriors come from custom PyMC models: "
                + ", ".join(custom)
                + ". Each defines its own priors (recorded with each posterior)."
            ),
        ]
    rows: dict[tuple[str, str], list[str]] = {}
    scalings: dict[str, list[str]] = {}
    for cov, fits in stock.items():
        _, priors, frame = fits[0]
        if any(p != priors or not f.equals(frame) for _, p, f in fits[1:]):
            other += [f"{cov} (models with differing priors or data)"]
            continue
        desc = model_description(frame, 2, covariance_type=cov, priors=priors)
        for r in desc.priors.itertuples(index=False):
            prior = str(r.prior).replace("for each of 2 components", "for each of the K components")
            rows.setdefault((str(r.parameter), prior), []).append(cov)
        scalings.setdefault(desc.scaling, []).append(cov)
    table = pd.DataFrame(
        [(p, prior, ", ".join(covs)) for (p, prior), covs in rows.items()],
        columns=["parameter", "prior", "covariance types"],
    )
    ks = sorted({k for fits in stock.values() for k, _, _ in fits})
    blocks: list[_Block] = [
        _Heading("Model"),
        _Para(
            "Likelihood of every compared posterior: x_i ~ sum_k w_k Normal(mu_k, Sigma_k), "
            f"k = 1..K, K in {{{', '.join(map(str, ks))}}}, with the covariance types "
            f"{', '.join(stock)}; the component labels are marginalised out. The priors do "
            "not depend on K (the same prior for every component), so they are stated once."
        ),
        _Table(
            _frame(table),
            "Priors of the compared posteriors, with their hyper-parameters in data units "
            "(read from the PyMC model).",
        ),
    ]
    if len(scalings) == 1:
        blocks.append(_Para(next(iter(scalings))))
    else:
        blocks += [_Para(f"{', '.join(c)} covariances: {t}") for t, c in scalings.items()]
    if other:
        blocks.append(
            _Para(
                "Not stated for: " + ", ".join(other) + " (not the stock BayesGaussianMixture "
                "model, or its settings were not recorded)."
            )
        )
    return blocks


def _sensitivity_section(bgm: BayesGaussianMixture, figures: _Figures | None) -> list[_Block]:
    """Power-scaling prior sensitivity (psense_summary), in a table and in words."""
    from .methods import sensitivity_words

    try:
        table = bgm.prior_sensitivity()
    except Exception as exc:  # a damaged or foreign tree: say so, keep the report
        return [
            _Heading("Prior sensitivity"),
            _Para(
                f"Prior sensitivity could not be computed ({type(exc).__name__}: {exc}).", "fail"
            ),
        ]
    flagged = table["diagnosis"].astype(str).str.startswith("potential").any()
    shown = table.reset_index(names="parameter").rename(
        columns={"prior": "prior sensitivity", "likelihood": "likelihood sensitivity"}
    )
    shown["diagnosis"] = shown["diagnosis"].replace({"✓": "fine"})
    blocks: list[_Block] = [
        _Heading("Prior sensitivity"),
        _Para(
            "Power-scaling sensitivity (Kallioinen et al. 2023; arviz_stats.psense_summary): how "
            "far each posterior quantity moves when the prior, or the likelihood, is raised to "
            "a power near 1, estimated by importance sampling of the draws already taken. "
            "Values above 0.05 are flagged."
        ),
        _Para(sensitivity_words(table), "fail" if flagged else "pass"),
        _Table(_frame(shown), "Prior and likelihood sensitivity of every parameter."),
    ]
    if figures is not None:
        blocks.append(
            figures.add(
                lambda: plot_prior_sensitivity(bgm),
                "prior_sensitivity",
                "Power-scaled posteriors of the weights and means: each parameter's density and "
                "interval with the prior (left) or the likelihood (right) raised to the power "
                "0.8, 1 and 1.25. Curves that coincide on the left mean the prior does not "
                "drive that parameter.",
            )
        )
        if "custom_model" not in bgm.idata_.attrs:  # drawn from the stock priors only
            blocks.append(_prior_predictive_figure(bgm, figures))
    return blocks


def _prior_predictive_figure(bgm: BayesGaussianMixture, figures: _Figures) -> _Image:
    return figures.add(
        lambda: plot_prior_predictive(bgm),
        "prior_predictive",
        "Prior predictive check: values of 100 data sets simulated from the priors (line) "
        "against the data (grey) and its range (shaded); weakly informative priors spread "
        "wider than the data without absurd values.",
    )


def _methods_section(
    bgm: BayesGaussianMixture,
    comparison: ComparisonResult | None,
    repro: dict[str, Any] | None,
) -> list[_Block]:
    """The methods paragraph with references, and what reproduces the fit."""
    from .methods import methods_paragraph, reproducibility

    text = methods_paragraph(bgm, comparison=comparison, references=True)
    paragraph, _, refs = text.partition("\n\nReferences\n\n")
    blocks: list[_Block] = [
        _Heading("Methods"),
        _Para(paragraph),
    ]
    if refs:
        blocks += [_Para("References:"), _List(refs.splitlines())]
    info = dict(repro) if repro is not None else reproducibility(bgm)
    rows: list[tuple[str, Any]] = []
    if "command" in info:
        rows.append(("command line", info["command"]))
    if "python" in info:
        rows.append(("Python call", info["python"]))
    if "python_caveat" in info:
        rows.append(("Python call: caveat", info["python_caveat"]))
    if "input" in info:
        inp = info["input"]
        rows += [
            ("input file", inp.get("name")),
            ("input size (bytes)", inp.get("size")),
            ("input SHA-256", inp.get("sha256")),
        ]
    if "seed" in info:
        rows.append(("seed", info["seed"]))
    if "resolved_seed" in info:
        rows.append(("resolved seed (sampler)", info["resolved_seed"]))
    rows += [(f"version: {k}", v) for k, v in info.get("versions", {}).items()]
    blocks += [
        _Heading("Reproducibility", 3),
        _Table(_kv(rows, ("item", "value")), "What reproduces this fit."),
    ]
    if "python_caveat" in info and "command" not in info:
        blocks.append(_Para(info["python_caveat"], "fail"))
    return blocks


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _provenance_section(bgm: BayesGaussianMixture | None) -> list[_Block]:
    blocks: list[_Block] = [_Heading("Provenance")]
    if bgm is not None:
        attrs = bgm.idata_.attrs
        fit = [
            ("fitted with bayesgmm", attrs.get("bayesgmm_version", "unknown")),
            ("estimator", attrs.get("estimator", type(bgm).__name__)),
            ("random seed (resolved)", attrs.get("random_seed")),
        ]
        stats_attrs = (
            bgm.idata_["sample_stats"].attrs if "sample_stats" in bgm.idata_.children else {}
        )
        if "created_at" in stats_attrs:
            fit.append(("posterior created at", stats_attrs["created_at"]))
        params = _params(bgm)
        blocks += [
            _Table(_kv(fit, ("item", "value")), "The fit."),
            _Table(
                _kv(
                    (
                        (key, json.dumps(v) if isinstance(v, dict | list) else v)
                        for key, v in params.items()
                    ),
                    ("parameter", "value"),
                ),
                "Estimator parameters.",
            ),
        ]
    env = [("bayesgmm", __version__), ("python", platform.python_version())]
    env += [(name, _version(name)) for name in _VERSIONS]
    blocks.append(_Table(_kv(env, ("package", "version")), "Software that rendered this report."))
    return blocks


# ---------------------------------------------------------------------- public API


def render_report(
    *,
    bgm: BayesGaussianMixture | None = None,
    comparison: ComparisonResult | None = None,
    segmentation: SegmentationResult | None = None,
    calibration: CalibrationResult | None = None,
    title: str = "bayesgmm report",
    figures_dir: str | os.PathLike | None = None,
    fmt: Literal["html", "md"] = "html",
    embed: bool = False,
    figures: bool = True,
    relative_to: str | os.PathLike | None = None,
    interval: float = 0.89,
    threshold: float = 0.9,
    n_uncertain: int = 10,
    dpi: float = 100,
    reproducibility: dict[str, Any] | None = None,
) -> str:
    """Render a fitted mixture and/or a model comparison as an HTML or Markdown document.

    Nothing is fitted: the sections show what ``bgm`` and ``comparison`` hold (and what
    their methods return, such as ``bgm.membership()`` and ``bgm.em_.bic``).

    Parameters
    ----------
    bgm : BayesGaussianMixture, optional
        A fitted estimator: data, EM fit, Bayesian fit and diagnostics, posterior vs EM,
        membership uncertainty and provenance sections.
    comparison : ComparisonResult, optional
        From :func:`bayesgmm.compare_models`: the model comparison section.
    segmentation : SegmentationResult, optional
        From :func:`bayesgmm.segment_image`: the image segmentation section (and, for a
        Bayesian segmentation without ``bgm``, provenance from its estimator).
    calibration : CalibrationResult, optional
        From :func:`bayesgmm.segmentation.calibration` (the segmentation against a truth
        map): its accuracy, ARI and ECE and the reliability diagram join the segmentation
        section. Needs ``segmentation``.
    title : str, default="bayesgmm report"
    figures_dir : str or path-like, optional
        Folder for the figures as PNG files (created if missing). Needed for figures unless
        ``embed=True``; with ``embed=True`` the files are written too when it is given.
    fmt : {"html", "md"}, default="html"
    embed : bool, default=False
        Embed the figures as base64 ``data:`` URIs instead of referring to files, so the
        document is self-contained (many Markdown viewers do not show ``data:`` images).
    figures : bool, default=True
        Draw figures at all.
    relative_to : str or path-like, optional
        Folder the report will be saved in; figure paths are written relative to it. By
        default the parent of ``figures_dir`` (the report sits beside the figures folder).
    interval : float, default=0.89
        Probability mass of the posterior intervals.
    threshold : float, default=0.9
        Points whose label probability is below it are counted as uncertain.
    n_uncertain : int, default=10
        Least certain points listed.
    dpi : float, default=100
        Resolution of the PNG figures.
    reproducibility : dict, optional
        What reproduces the fit (:func:`bayesgmm.methods.reproducibility`: the command line,
        the input file's name, size and SHA-256, the seed, versions); by default the Python
        call, the seed and the versions read from ``bgm``.

    Returns
    -------
    str
        The document.

    Raises
    ------
    ValueError
        None of ``bgm``, ``comparison`` and ``segmentation`` given, an unknown ``fmt``, or
        figures requested with neither ``figures_dir`` nor ``embed=True``.
    TypeError
        ``bgm``, ``comparison`` or ``segmentation`` of the wrong type.

    Examples
    --------
    >>> text = render_report(bgm=bgm, figures_dir="report_figures")  # doctest: +SKIP
    >>> text = render_report(bgm=bgm, embed=True)  # one self-contained HTML  # doctest: +SKIP
    """
    from sklearn.utils.validation import check_is_fitted

    from .bayes import BayesGaussianMixture
    from .selection import ComparisonResult

    check_choice("fmt", fmt, FORMATS)
    from .segmentation import SegmentationResult

    if calibration is not None and segmentation is None:
        raise ValueError(
            "calibration= describes a segmentation against its truth map; pass the "
            "segmentation= it was computed from too."
        )
    if bgm is None and comparison is None and segmentation is None:
        raise ValueError(
            "Nothing to report: pass bgm= (a fitted BayesGaussianMixture), comparison= (a "
            "ComparisonResult from compare_models) and/or segmentation= (a "
            "SegmentationResult from segment_image)."
        )
    if segmentation is not None and not isinstance(segmentation, SegmentationResult):
        raise TypeError(
            "segmentation must be a SegmentationResult from bayesgmm.segment_image, got "
            f"{type(segmentation).__name__}."
        )
    if bgm is not None:
        if not isinstance(bgm, BayesGaussianMixture):
            raise TypeError(f"bgm must be a fitted BayesGaussianMixture, got {type(bgm).__name__}.")
        check_is_fitted(bgm, "idata_")
    if comparison is not None and not isinstance(comparison, ComparisonResult):
        raise TypeError(
            "comparison must be a ComparisonResult from bayesgmm.selection.compare_models, "
            f"got {type(comparison).__name__}."
        )
    if not 0.0 < float(threshold) <= 1.0:
        raise ValueError(f"threshold={threshold!r} is invalid; it must lie in (0, 1].")
    fig_store = None
    if figures:
        if figures_dir is None and not embed:
            raise ValueError(
                "Figures need somewhere to go: pass figures_dir= (a folder for the PNG "
                "files), embed=True (figures inside the document) or figures=False."
            )
        folder = None if figures_dir is None else Path(figures_dir)
        base = Path(relative_to) if relative_to is not None else None
        if base is None:
            base = folder.parent if folder is not None else Path.cwd()
        fig_store = _Figures(folder, base, embed, dpi)

    membership = None if bgm is None else bgm.membership(interval=interval)
    blocks = _summary_section(bgm, membership, comparison, threshold, segmentation)
    if bgm is not None:
        assert membership is not None
        blocks += _data_section(bgm)
        blocks += _model_section(bgm)
        blocks += _em_section(bgm)
        blocks += _bayes_section(bgm, fig_store)
        blocks += _posterior_section(bgm, interval, fig_store)
        blocks += _membership_section(bgm, membership, interval, threshold, n_uncertain, fig_store)
        blocks += _sensitivity_section(bgm, fig_store)
    if comparison is not None and bgm is None:
        blocks += _comparison_model_section(comparison)
    if comparison is not None:
        blocks += _comparison_section(comparison, fig_store)
    if segmentation is not None:
        blocks += _segmentation_section(segmentation, threshold, fig_store)
    if calibration is not None:
        blocks += _calibration_section(calibration, fig_store)
    source = bgm
    if source is None and segmentation is not None and segmentation.method == "bayes":
        source = segmentation.estimator
        blocks += _model_section(source)
    elif source is None and segmentation is not None:
        blocks += _em_model_section(segmentation)
    if source is not None:
        blocks += _methods_section(source, comparison, reproducibility)
    blocks += _provenance_section(source)
    text = _render_html(title, blocks) if fmt == "html" else _render_md(title, blocks)
    _log.info(
        "Rendered a %s report with %d figure(s).",
        fmt,
        sum(isinstance(b, _Image) for b in blocks),
    )
    return text


def write_report(
    path: str | os.PathLike,
    *,
    fmt: Literal["html", "md"] | None = None,
    figures_dir: str | os.PathLike | None = None,
    embed: bool = False,
    **options: Any,
) -> Path:
    """Render a report (:func:`render_report`) and write it to ``path``.

    Parameters
    ----------
    path : str or path-like
        The report file; its folder is created if missing.
    fmt : {"html", "md"}, optional
        By default from the suffix of ``path``: ``.md``/``.markdown`` give Markdown,
        ``.html``/``.htm`` HTML.
    figures_dir : str or path-like, optional
        Folder for the PNG figures; by default ``<stem>_figures`` beside ``path`` (unless
        ``embed=True``). Figures are referenced relative to the folder of ``path``.
    embed : bool, default=False
        Embed the figures in the document (self-contained HTML).
    **options
        ``bgm``, ``comparison``, ``title`` and the other options of :func:`render_report`.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    if fmt is None:
        suffix = path.suffix.lower()
        if suffix in (".md", ".markdown"):
            fmt = "md"
        elif suffix in (".html", ".htm"):
            fmt = "html"
        else:
            raise ValueError(
                f"Cannot tell the format of {str(path)!r} from its suffix; name it .html or "
                ".md, or pass fmt='html' or fmt='md'."
            )
    if "relative_to" in options:
        raise ValueError("write_report sets relative_to itself (the folder of path).")
    if figures_dir is None and not embed and options.get("figures", True):
        figures_dir = path.with_name(f"{path.stem}_figures")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render_report(
        fmt=fmt, figures_dir=figures_dir, embed=embed, relative_to=path.parent, **options
    )
    # Write beside the target and rename: a reader never sees a half-written report.
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    _log.debug("Report written to %s", path)
    return path
