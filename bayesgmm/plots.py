"""Figures of a fitted mixture: EM beside the posterior, membership uncertainty, traces.

Every function takes the fitted object first, options keyword-only, and returns a
:class:`matplotlib.figure.Figure` built without pyplot: nothing is shown and no global state
changes. Save one with ``fig.savefig("name.png")``, or display it in a notebook by leaving it
as the last expression of a cell.

======================================  =========================================================
function                                figure
======================================  =========================================================
:func:`plot_em_vs_posterior`            data with EM ellipses (2 sd) beside ellipses of random
                                        posterior draws (1-D: histograms with densities)
:func:`plot_membership_uncertainty`     labels, total and epistemic entropy of every point
:func:`plot_trace`                      per-chain marginal densities and traces of one variable
:func:`plot_posterior_intervals`        forest plot: posterior mean and interval beside EM
:func:`plot_predictive_check`           data density against the posterior predictive density
:func:`plot_prior_predictive`           data simulated from the priors against the data range
:func:`plot_pairs`                      every feature pair (for D > 2): EM and posterior ellipses
:func:`plot_prior_sensitivity`          power-scaled posteriors (prior and likelihood), from
                                        arviz-plots
:func:`plot_rank`, :func:`plot_forest`  rank and forest plots from arviz-plots
:func:`plot_comparison`                 model-selection criteria against K
                                        (:meth:`~bayesgmm.selection.ComparisonResult.plot`)
:func:`plot_bic_grid`                   BIC against K, one line per mclust covariance model
                                        (mclust's ``plot(BIC)``)
:func:`plot_segmentation`               image, label map and uncertainty maps side by side
======================================  =========================================================

:func:`posterior_vs_em` gives the numbers behind :func:`plot_posterior_intervals` as a table
(the report shows the same table, so figure and table cannot disagree).

Components keep their colour in every figure: component ``k`` is drawn in matplotlib's
``"C{k}"``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse
from matplotlib.ticker import MaxNLocator
from scipy import stats
from sklearn.utils.validation import check_is_fitted

if TYPE_CHECKING:
    from .bayes import BayesGaussianMixture
    from .responsibilities import MembershipSummary
    from .segmentation import CalibrationResult, SegmentationResult
    from .selection import ComparisonResult

__all__ = [
    "plot_bic_grid",
    "plot_comparison",
    "plot_em_vs_posterior",
    "plot_forest",
    "plot_membership_uncertainty",
    "plot_pairs",
    "plot_posterior_intervals",
    "plot_predictive_check",
    "plot_prior_predictive",
    "plot_prior_sensitivity",
    "plot_rank",
    "plot_reliability",
    "plot_segmentation",
    "plot_trace",
    "posterior_vs_em",
    "prior_predictive_draws",
]

_ELLIPSE_SD = 2.0  # ellipses enclose +-2 standard deviations (Mahalanobis radius 2)
_MAX_TRACE_ROWS = 40
_GRID = 200  # points of density curves
_POINT_COLOR = "0.55"
_MAX_PANEL_PIXELS = 1024  # plot_segmentation draws at most this many pixels across a panel


# ---------------------------------------------------------------------- inputs


def _check_bgm(bgm: Any, func: str) -> None:
    from .bayes import BayesGaussianMixture

    if not isinstance(bgm, BayesGaussianMixture):
        raise TypeError(
            f"{func} needs a fitted BayesGaussianMixture, got {type(bgm).__name__}; fit one "
            "with BayesGaussianMixture(n_components).fit(X) or load one with "
            "BayesGaussianMixture.load(path)."
        )
    check_is_fitted(bgm, "idata_")


def _text(value: Any) -> str:
    """User text (a column name, a title) made safe for matplotlib.

    Matplotlib reads text between two ``$`` as mathtext and raises on what it cannot parse
    (a column named ``cost $x^$``); every ``$`` is escaped so the text is shown as written.
    """
    return str(value).replace("$", r"\$")


def _observed(bgm: BayesGaussianMixture) -> tuple[np.ndarray, list[str]]:
    obs = bgm.idata_["observed_data"]["obs"]
    return np.asarray(obs.values, dtype=float), [str(f) for f in obs["feature"].values]


def _check_interval(interval: Any) -> float:
    try:
        value = float(interval)
    except (TypeError, ValueError):
        raise TypeError(f"interval must be a number in (0, 1), got {interval!r}.") from None
    if not 0.0 < value < 1.0:
        raise ValueError(f"interval={interval!r} is invalid; it must lie strictly in (0, 1).")
    return value


def _feature_pair(
    names: list[str], features: Sequence[int | str] | None
) -> tuple[list[int], str | None]:
    """Indices of the (at most two) features to draw, and a note when others are left out."""
    d = len(names)
    if features is None:
        idx = list(range(min(d, 2)))
    else:
        if isinstance(features, str | int) or len(features) not in (1, 2):
            raise ValueError(
                f"features={features!r} is invalid; pass one or two feature names or indices, "
                f"e.g. features=({names[0]!r}, {names[-1]!r})."
            )
        idx = []
        for f in features:
            if isinstance(f, str):
                if f not in names:
                    raise ValueError(f"Unknown feature {f!r}; the features are {names}.")
                idx.append(names.index(f))
            elif isinstance(f, int | np.integer) and -d <= int(f) < d:
                idx.append(int(f) % d)
            else:
                raise ValueError(f"Feature index {f!r} is out of range for {d} feature(s).")
        if len(set(idx)) != len(idx):
            raise ValueError(f"features={features!r} names the same feature twice.")
    note = None
    if len(idx) < d:
        shown = " and ".join(_text(names[i]) for i in idx)
        note = (
            f"Showing {shown} of {d} features; ellipses and densities are the marginals "
            "of the components on these features."
        )
    return idx, note


def _full_covariances(cov: np.ndarray, covariance_type: str, k: int, d: int) -> np.ndarray:
    """Covariances of any type as full matrices of shape (..., k, d, d)."""
    cov = np.asarray(cov, dtype=float)
    if covariance_type == "full":
        return cov
    if covariance_type == "tied":
        return np.broadcast_to(cov[..., None, :, :], (*cov.shape[:-2], k, d, d))
    eye = np.eye(d)
    if covariance_type == "diag":
        return cov[..., :, :, None] * eye
    return cov[..., :, None, None] * eye


def _em_params(bgm: BayesGaussianMixture) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    em = bgm.em_
    k, d = em.means_.shape
    return em.weights_, em.means_, _full_covariances(em.covariances_, em.covariance_type, k, d)


def _posterior_draws(bgm: BayesGaussianMixture) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights (S, K), means (S, K, D) and full covariances (S, K, D, D) over all draws."""
    post = bgm.idata_["posterior"]
    w = post["weights"].transpose("chain", "draw", "component").values
    mu = post["means"].transpose("chain", "draw", "component", "feature").values
    cov_da = post["covariances"]
    dims = [d for d in ("chain", "draw", "component", "feature", "feature_bis") if d in cov_da.dims]
    cov = cov_da.transpose(*dims).values
    k, d = mu.shape[-2:]
    if "component" not in cov_da.dims:  # tied
        cov = np.broadcast_to(cov[:, :, None], (*cov.shape[:2], k, d, d))
    n = w.shape[0] * w.shape[1]
    return w.reshape(n, k), mu.reshape(n, k, d), np.reshape(cov, (n, k, d, d))


# ---------------------------------------------------------------------- drawing helpers


def _ellipse(mean: np.ndarray, cov: np.ndarray, **kwargs: Any) -> Ellipse:
    """The ``_ELLIPSE_SD`` standard-deviation ellipse of a 2-D Gaussian."""
    vals, vecs = np.linalg.eigh(cov)
    vals = np.clip(vals, 0.0, None)
    angle = float(np.degrees(np.arctan2(vecs[1, -1], vecs[0, -1])))
    width, height = 2.0 * _ELLIPSE_SD * np.sqrt(vals[::-1])
    return Ellipse(tuple(mean), width=width, height=height, angle=angle, fill=False, **kwargs)


def _density_grid(x: np.ndarray, pad: float = 0.1) -> np.ndarray:
    lo, hi = float(np.min(x)), float(np.max(x))
    span = hi - lo or 1.0
    return np.linspace(lo - pad * span, hi + pad * span, _GRID)


def _mixture_pdf(grid: np.ndarray, w: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Weighted component densities on ``grid``: shape (K, len(grid))."""
    return w[:, None] * stats.norm.pdf(grid[None, :], mu[:, None], sd[:, None])


def _kde(values: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """A Gaussian KDE of ``values`` on a grid, or None when they are (nearly) constant."""
    if values.size < 2 or not np.ptp(values) > 0:
        return None
    try:
        kde = stats.gaussian_kde(values)
    except np.linalg.LinAlgError:
        return None
    grid = _density_grid(values, pad=0.05)
    return grid, kde(grid)


def _wrap(text: str, width: float, fontsize: float) -> str:
    """``text`` wrapped so that each line fits ``width`` inches at ``fontsize`` points."""
    import textwrap

    chars = int(width * 72.0 / (0.56 * fontsize))
    return "\n".join(textwrap.fill(line, max(chars, 12)) for line in text.split("\n"))


def _fit_title(text: str, fig: Figure, fontsize: float) -> str:
    """``text`` wrapped so that each line fits the figure's width at ``fontsize`` points."""
    return _wrap(text, fig.get_size_inches()[0], fontsize)


def _component_legend(k: int) -> list[Line2D]:
    return [Line2D([], [], color=f"C{j}", label=f"component {j}") for j in range(k)]


# ---------------------------------------------------------------------- plots


def plot_em_vs_posterior(
    bgm: BayesGaussianMixture,
    *,
    n_draws: int = 30,
    features: Sequence[int | str] | None = None,
    random_state: int | None = 0,
) -> Figure:
    """EM fit and posterior side by side on the data.

    Two panels sharing their axes. With two or more features: the data as points, the
    EM components as ellipses of 2 standard deviations (left) and the same ellipses for
    ``n_draws`` random posterior draws, thin and transparent, with the EM ellipses dashed
    for reference (right). With one feature: a density histogram with the weighted EM
    component densities and their sum (left) and those of the posterior draws (right).

    Parameters
    ----------
    bgm : BayesGaussianMixture
        A fitted estimator.
    n_draws : int, default=30
        Posterior draws drawn (chosen at random over all chains).
    features : sequence of one or two int or str, optional
        Features to draw (names or indices); the first two by default. With more features
        than drawn, the ellipses are the marginal ones and a note under the panels says so.
    random_state : int or None, default=0
        Seed for choosing the draws.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes: EM (left) and posterior (right).

    Examples
    --------
    >>> fig = plot_em_vs_posterior(bgm)  # doctest: +SKIP
    >>> fig.savefig("em_vs_posterior.png")  # doctest: +SKIP
    """
    _check_bgm(bgm, "plot_em_vs_posterior")
    if not isinstance(n_draws, int | np.integer) or n_draws < 1:
        raise ValueError(f"n_draws={n_draws!r} is invalid; pass a positive integer such as 30.")
    X, names = _observed(bgm)
    idx, note = _feature_pair(names, features)
    w_em, mu_em, cov_em = _em_params(bgm)
    w_s, mu_s, cov_s = _posterior_draws(bgm)
    rng = np.random.default_rng(random_state)
    pick = rng.choice(w_s.shape[0], size=min(int(n_draws), w_s.shape[0]), replace=False)
    k = w_em.shape[0]
    sub = np.ix_(idx, idx)

    fig = Figure(figsize=(10.0, 4.4), layout="constrained")
    ax_em, ax_post = fig.subplots(1, 2, sharex=True, sharey=True)
    if len(idx) == 1:
        j = idx[0]
        x = X[:, j]
        grid = _density_grid(x)
        for ax in (ax_em, ax_post):
            ax.hist(x, bins="auto", density=True, color="0.85", edgecolor="0.6")
            ax.set_xlabel(_text(names[j]))
        ax_em.set_ylabel("density")
        dens = _mixture_pdf(grid, w_em, mu_em[:, j], np.sqrt(cov_em[:, j, j]))
        for c in range(k):
            ax_em.plot(grid, dens[c], color=f"C{c}", lw=2)
        ax_em.plot(grid, dens.sum(axis=0), color="black", lw=1.5, label="mixture")
        for s in pick:
            d_s = _mixture_pdf(grid, w_s[s], mu_s[s, :, j], np.sqrt(cov_s[s, :, j, j]))
            for c in range(k):
                ax_post.plot(grid, d_s[c], color=f"C{c}", lw=0.7, alpha=0.35)
            ax_post.plot(grid, d_s.sum(axis=0), color="black", lw=0.7, alpha=0.35)
        ax_post.plot(grid, dens.sum(axis=0), color="black", lw=1.2, ls="--", label="EM mixture")
        handles = [*_component_legend(k), Line2D([], [], color="black", label="mixture")]
        ax_em.legend(handles=handles, fontsize=8, loc="upper right")
        ax_post.legend(
            handles=[Line2D([], [], color="black", ls="--", label="EM mixture")],
            fontsize=8,
            loc="upper right",
        )
    else:
        jx, jy = idx
        for ax in (ax_em, ax_post):
            ax.scatter(X[:, jx], X[:, jy], s=9, color=_POINT_COLOR, alpha=0.6, linewidths=0)
            ax.set_xlabel(_text(names[jx]))
        ax_em.set_ylabel(_text(names[jy]))
        for c in range(k):
            ax_em.add_patch(_ellipse(mu_em[c, idx], cov_em[c][sub], color=f"C{c}", lw=2))
            ax_em.plot(*mu_em[c, idx], marker="x", color=f"C{c}", ms=9, mew=2)
            ax_post.add_patch(
                _ellipse(mu_em[c, idx], cov_em[c][sub], color="black", lw=1.2, ls="--")
            )
            for s in pick:
                ax_post.add_patch(
                    _ellipse(mu_s[s, c, idx], cov_s[s, c][sub], color=f"C{c}", lw=0.7, alpha=0.4)
                )
            ax_post.scatter(
                mu_s[pick, c, jx], mu_s[pick, c, jy], s=6, color=f"C{c}", alpha=0.6, zorder=3
            )
        for ax in (ax_em, ax_post):
            ax.autoscale_view()
        ax_em.legend(handles=_component_legend(k), fontsize=8, loc="best")
        ax_post.legend(
            handles=[Line2D([], [], color="black", ls="--", label="EM (2 sd)")],
            fontsize=8,
            loc="best",
        )
    ax_em.set_title("EM point estimate" + (" (2 sd ellipses)" if len(idx) == 2 else ""))
    ax_post.set_title(f"Posterior: {len(pick)} random draws")
    fig.suptitle("EM vs MCMC posterior", fontsize=11)
    if note:
        fig.supxlabel(_fit_title(note, fig, 9), fontsize=9, color="0.3")
    return fig


def plot_membership_uncertainty(
    bgm: BayesGaussianMixture,
    *,
    membership: MembershipSummary | None = None,
    features: Sequence[int | str] | None = None,
) -> Figure:
    """Every point's label, its total and its epistemic uncertainty, in three panels.

    Left: points coloured by their most probable component, more transparent the less
    probable that label is. Middle: coloured by the total entropy of the mean
    responsibilities. Right: coloured by the epistemic part (the mutual information between
    label and parameters, which more data would shrink); in these two, uncertain points are
    also drawn larger and on top. With one feature the panels plot
    the label probability and the entropies against the feature instead.

    Parameters
    ----------
    bgm : BayesGaussianMixture
        A fitted estimator.
    membership : MembershipSummary, optional
        ``bgm.membership()`` when already computed (it is computed otherwise).
    features : sequence of one or two int or str, optional
        Features to draw; the first two by default.

    Returns
    -------
    matplotlib.figure.Figure
        Five axes: the three panels and, with two or more features, the colour bars of the
        two entropy panels (three axes with one feature).
    """
    _check_bgm(bgm, "plot_membership_uncertainty")
    m = bgm.membership() if membership is None else membership
    X, names = _observed(bgm)
    if m.labels.shape[0] != X.shape[0]:
        raise ValueError(
            f"membership has {m.labels.shape[0]} points but the training data has "
            f"{X.shape[0]}; pass bgm.membership() of the training data or None."
        )
    idx, note = _feature_pair(names, features)
    k = m.mean.shape[1]
    colors = np.array([f"C{c}" for c in range(k)])[m.labels]
    # alpha from 0.15 (label probability 1/K) to 1 (certain)
    certainty = (m.label_probability - 1.0 / k) / (1.0 - 1.0 / k)
    alpha = 0.15 + 0.85 * np.clip(certainty, 0.0, 1.0)
    panels = [
        (m.entropy_total, "total entropy (nats)", 0.0, float(np.log(k))),
        (m.entropy_epistemic, "epistemic entropy (nats)", 0.0, None),
    ]

    fig = Figure(figsize=(14.0, 4.4), layout="constrained")
    axes = fig.subplots(1, 3, sharex=True, sharey=len(idx) == 2)
    if len(idx) == 1:
        x = X[:, idx[0]]
        axes[0].scatter(x, m.label_probability, c=colors, s=12, linewidths=0)
        axes[0].axhline(0.9, color="0.4", lw=0.8, ls=":")
        axes[0].set_ylabel("P(label)")
        axes[0].set_title("label and its probability")
        for ax, (values, label, _, _) in zip(axes[1:], panels, strict=True):
            ax.scatter(x, values, c=colors, s=12, linewidths=0)
            ax.set_ylabel(label)
            ax.set_title(label.split(" (")[0])
        for ax in axes:
            ax.set_xlabel(_text(names[idx[0]]))
    else:
        jx, jy = idx
        rgba = np.array([to_rgba(c) for c in colors])
        rgba[:, 3] = alpha
        axes[0].scatter(X[:, jx], X[:, jy], c=rgba, s=14, linewidths=0)
        axes[0].set_title("label (transparent: uncertain)")
        order = np.argsort(m.entropy_total)  # uncertain points on top
        for ax, (values, label, vmin, vmax) in zip(axes[1:], panels, strict=True):
            top = vmax if vmax is not None else float(np.max(values))
            size = 10.0 + 70.0 * (values[order] / top if top > 0 else 0.0)
            sc = ax.scatter(
                X[order, jx],
                X[order, jy],
                c=values[order],
                cmap="viridis",
                vmin=vmin,
                vmax=vmax,
                s=size,
                linewidths=0,
            )
            fig.colorbar(sc, ax=ax, label=label, shrink=0.9)
            ax.set_title(label.split(" (")[0])
        for ax in axes:
            ax.set_xlabel(_text(names[jx]))
        axes[0].set_ylabel(_text(names[jy]))
    axes[0].legend(handles=_component_legend(k), fontsize=8, loc="best")
    n_unsure = int(np.sum(m.label_probability < 0.9))
    title = (
        f"Membership uncertainty: {n_unsure} of {len(m.labels)} points have P(label) < 0.9 "
        f"({m.n_draws} posterior draws)"
    )
    fig.suptitle(_fit_title(title, fig, 11), fontsize=11)
    if note:
        fig.supxlabel(_fit_title(note, fig, 9), fontsize=9, color="0.3")
    return fig


def plot_trace(
    bgm: BayesGaussianMixture,
    var: str = "means",
    *,
    coords: Mapping[str, Any] | None = None,
) -> Figure:
    """Per-chain marginal densities (left) and traces (right) of one posterior variable.

    The draws are those of ``bgm.idata_["posterior"]``, that is after relabelling to the
    EM labels (when the estimator relabelled). One row per scalar element of ``var``.

    Parameters
    ----------
    bgm : BayesGaussianMixture
        A fitted estimator.
    var : str, default="means"
        A posterior variable: ``"weights"``, ``"means"``, ``"stds"``, ``"sigma"``,
        ``"corr"``, ``"covariances"``...
    coords : mapping, optional
        Selection passed to :meth:`xarray.DataArray.sel`, e.g.
        ``{"component": [0], "feature": ["waiting"]}``; needed when ``var`` has more than
        40 elements.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes per element (density, trace), row by row.
    """
    _check_bgm(bgm, "plot_trace")
    post = bgm.idata_["posterior"]
    available = sorted(str(v) for v in post.data_vars)
    if var not in post.data_vars:
        raise ValueError(f"The posterior has no variable {var!r}; choose one of {available}.")
    da = post[var]
    if coords:
        try:
            da = da.sel({key: _as_list(value) for key, value in coords.items()})
        except (KeyError, ValueError) as exc:
            raise ValueError(
                f"coords={dict(coords)!r} does not select from {var!r} (dims "
                f"{dict(da.sizes)}): {exc}"
            ) from None
    elem_dims = [d for d in da.dims if d not in ("chain", "draw")]
    da = da.transpose("chain", "draw", *elem_dims)
    values = da.values.reshape(da.sizes["chain"], da.sizes["draw"], -1)
    n_rows = values.shape[-1]
    if n_rows == 0:
        raise ValueError(f"coords={coords!r} selects no element of {var!r}.")
    if n_rows > _MAX_TRACE_ROWS:
        raise ValueError(
            f"{var!r} has {n_rows} elements, more than {_MAX_TRACE_ROWS} rows of panels; "
            "select some with coords=, e.g. coords={'component': [0, 1]}."
        )
    labels = _element_labels(da, elem_dims, var)
    chains = da["chain"].values

    fig = Figure(figsize=(10.0, 0.4 + 1.6 * n_rows), layout="constrained")
    axes = fig.subplots(n_rows, 2, squeeze=False, gridspec_kw={"width_ratios": [1, 2.2]})
    for r in range(n_rows):
        ax_d, ax_t = axes[r]
        for c in range(values.shape[0]):
            v = values[c, :, r]
            color = f"C{c % 10}"
            curve = _kde(v)
            if curve is None:
                ax_d.axvline(v[0], color=color, lw=1)
            else:
                ax_d.plot(*curve, color=color, lw=1)
            ax_t.plot(da["draw"].values, v, color=color, lw=0.5, alpha=0.7)
        ax_d.set_yticks([])
        ax_d.set_ylabel(_text(labels[r]), rotation=0, ha="right", va="center", fontsize=9)
        ax_t.margins(x=0)
    axes[-1, 0].set_xlabel("value")
    axes[-1, 1].set_xlabel("draw")
    axes[0, 0].set_title("marginal density per chain", fontsize=10)
    axes[0, 1].set_title("trace per chain", fontsize=10)
    chain_handles = [
        Line2D([], [], color=f"C{c % 10}", label=f"chain {ch}") for c, ch in enumerate(chains)
    ]
    axes[0, 1].legend(handles=chain_handles, fontsize=7, loc="upper right", ncols=len(chains))
    state = "relabelled" if "relabel" in bgm.idata_.children else "sampled"
    fig.suptitle(f"Trace of {var} ({state} posterior)", fontsize=11)
    return fig


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
        return [value]
    return list(value)


def _element_labels(da: Any, dims: list[Hashable], var: str) -> list[str]:
    if not dims:
        return [var]
    grids = np.meshgrid(*[da[d].values for d in dims], indexing="ij")
    flat = [g.ravel() for g in grids]
    return [f"{var}[{', '.join(str(f[i]) for f in flat)}]" for i in range(flat[0].size)]


def posterior_vs_em(bgm: BayesGaussianMixture, *, interval: float = 0.89) -> pd.DataFrame:
    """Posterior means and equal-tailed intervals of weights, means and sds, beside EM.

    Parameters
    ----------
    bgm : BayesGaussianMixture
        A fitted estimator.
    interval : float, default=0.89
        Probability mass of the interval.

    Returns
    -------
    pandas.DataFrame
        One row per element, columns ``parameter`` (``"means[1, waiting]"``), ``variable``
        (``weights``, ``means`` or ``stds``; standard deviations are the square roots of the
        covariance diagonals, whatever the covariance type), ``component``, ``feature`` (empty
        for weights), ``posterior_mean``, ``lower``, ``upper`` and ``em``. ``attrs["interval"]``
        holds ``interval``.
    """
    _check_bgm(bgm, "posterior_vs_em")
    interval = _check_interval(interval)
    _, names = _observed(bgm)
    w_em, mu_em, cov_em = _em_params(bgm)
    w_s, mu_s, cov_s = _posterior_draws(bgm)
    sd_s = np.sqrt(np.diagonal(cov_s, axis1=-2, axis2=-1))
    sd_em = np.sqrt(np.diagonal(cov_em, axis1=-2, axis2=-1))
    q = [(1.0 - interval) / 2.0, (1.0 + interval) / 2.0]
    rows: list[dict[str, Any]] = []
    k = w_em.shape[0]
    for c in range(k):
        lo, hi = np.quantile(w_s[:, c], q)
        rows.append(
            {
                "parameter": f"weights[{c}]",
                "variable": "weights",
                "component": c,
                "feature": "",
                "posterior_mean": float(w_s[:, c].mean()),
                "lower": float(lo),
                "upper": float(hi),
                "em": float(w_em[c]),
            }
        )
    for var, draws, em in (("means", mu_s, mu_em), ("stds", sd_s, sd_em)):
        for c in range(k):
            for j, name in enumerate(names):
                lo, hi = np.quantile(draws[:, c, j], q)
                rows.append(
                    {
                        "parameter": f"{var}[{c}, {name}]",
                        "variable": var,
                        "component": c,
                        "feature": name,
                        "posterior_mean": float(draws[:, c, j].mean()),
                        "lower": float(lo),
                        "upper": float(hi),
                        "em": float(em[c, j]),
                    }
                )
    table = pd.DataFrame(rows)
    table.attrs["interval"] = interval
    return table


def plot_posterior_intervals(bgm: BayesGaussianMixture, *, interval: float = 0.89) -> Figure:
    """Forest plot of the weights and means: posterior mean and interval beside the EM estimate.

    A grid of small panels, one row per component (in its colour) and one column for the
    weights and one per feature for the means. Every panel has its own horizontal scale,
    so an interval is readable even when the components lie far apart. The numbers are
    those of :func:`posterior_vs_em`.

    Parameters
    ----------
    bgm : BayesGaussianMixture
        A fitted estimator.
    interval : float, default=0.89
        Probability mass of the equal-tailed intervals.

    Returns
    -------
    matplotlib.figure.Figure
        ``n_components * (1 + n_features)`` axes, row by row.
    """
    table = posterior_vs_em(bgm, interval=interval)
    _, names = _observed(bgm)
    columns = [("weights", "weights", "")] + [("means", f"means: {_text(n)}", n) for n in names]
    k = int(table["component"].max()) + 1
    # Panels narrow enough that 1 + D columns fit the report's page width at D = 4.
    fig = Figure(figsize=(2.2 * len(columns) + 1.2, 1.0 + 0.8 * k), layout="constrained")
    axes = fig.subplots(k, len(columns), squeeze=False)
    for c in range(k):
        for col, (var, title, feature) in enumerate(columns):
            ax = axes[c, col]
            row = table[
                (table["variable"] == var)
                & (table["component"] == c)
                & (table["feature"] == feature)
            ].iloc[0]
            color = f"C{c}"
            ax.hlines(0.0, row["lower"], row["upper"], color=color, lw=3)
            ax.plot(row["posterior_mean"], 0.0, "o", color=color, ms=7)
            ax.plot(row["em"], 0.45, marker="v", color="black", ms=7, ls="none")
            ax.set_ylim(-0.6, 1.0)
            ax.set_yticks([])
            ax.grid(axis="x", alpha=0.3)
            ax.tick_params(axis="x", labelsize=9)
            ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
            lo, hi = min(row["lower"], row["em"]), max(row["upper"], row["em"])
            pad = 0.15 * (hi - lo or abs(hi) or 1.0)
            ax.set_xlim(lo - pad, hi + pad)
            if c == 0:
                ax.set_title(_wrap(title, 2.1, 10), fontsize=10)  # one panel wide
            if col == 0:
                ax.set_ylabel(f"component {c}", rotation=0, ha="right", va="center", fontsize=9)
    handles = [
        Line2D([], [], color="0.3", lw=3, marker="o", label=f"posterior mean, {interval:.0%}"),
        Line2D([], [], color="black", marker="v", ls="none", label="EM estimate"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=9)
    fig.suptitle(f"Posterior means with {interval:.0%} intervals beside EM", fontsize=11)
    return fig


def plot_predictive_check(
    bgm: BayesGaussianMixture,
    *,
    n_draws: int = 200,
    interval: float = 0.89,
    random_state: int = 0,
) -> Figure:
    """Posterior predictive check: the data's density against the posterior predictive.

    One panel per feature (at most 6): a histogram of the observed values, the posterior
    predictive marginal density (the mean over ``n_draws`` random draws of
    ``sum_k w_k N(x | mu_kf, Sigma_kff)``) with its equal-tailed ``interval`` band, and the
    EM fit's marginal density. Systematic misfit (a mode the band misses, tails too thin)
    shows the model is inadequate, whatever the diagnostics say about the sampler.
    """
    _check_bgm(bgm, "plot_predictive_check")
    interval = _check_interval(interval)
    X, names = _observed(bgm)
    w, mu, cov = _posterior_draws(bgm)
    rng = np.random.default_rng(random_state)
    pick = rng.choice(w.shape[0], size=min(int(n_draws), w.shape[0]), replace=False)
    em_w, em_mu, em_cov = _em_params(bgm)
    n_panels = min(X.shape[1], 6)
    n_cols = min(n_panels, 3)  # a grid sized by the number of panels, at most 3 across
    n_rows = -(-n_panels // n_cols)
    fig = Figure(figsize=(3.8 * n_cols, 0.5 + 3.0 * n_rows), layout="constrained")
    grid_axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax in grid_axes[n_panels:]:
        ax.set_axis_off()
    axes = grid_axes[:n_panels]
    q = [(1.0 - interval) / 2.0, (1.0 + interval) / 2.0]
    for f, ax in enumerate(axes):
        grid = _density_grid(X[:, f])
        sd = np.sqrt(cov[pick][:, :, f, f])  # (S, K)
        dens = np.stack(
            [_mixture_pdf(grid, w[s], mu[s, :, f], sd[i]).sum(axis=0) for i, s in enumerate(pick)]
        )
        lo, hi = np.quantile(dens, q, axis=0)
        ax.hist(X[:, f], bins="auto", density=True, color=_POINT_COLOR, alpha=0.5, label="data")
        ax.fill_between(grid, lo, hi, color="C0", alpha=0.3, label=f"{interval:.0%} band")
        ax.plot(grid, dens.mean(axis=0), color="C0", lw=1.8, label="posterior predictive")
        em_density = _mixture_pdf(grid, em_w, em_mu[:, f], np.sqrt(em_cov[:, f, f])).sum(0)
        ax.plot(grid, em_density, color="k", ls="--", lw=1.2, label="EM")
        ax.set_xlabel(_text(names[f]))
        ax.set_ylabel("density" if f % n_cols == 0 else "")
    axes[0].legend(fontsize=9)
    title = "Posterior predictive check (marginal densities)"
    if X.shape[1] > n_panels:
        title += f": first {n_panels} of {X.shape[1]} features"
    fig.suptitle(title)
    return fig


def prior_predictive_draws(
    bgm: BayesGaussianMixture, *, n_draws: int = 100, random_state: int = 0
) -> np.ndarray:
    """Data sets simulated from the prior of the fitted model, shape (n_draws, n_samples, D).

    The parameters (weights, means, covariances) are drawn from the priors of the PyMC model
    :func:`bayesgmm.build_model` builds for the fit's data, priors and covariance type; each
    data set then picks every point's component by weight and draws it from that Gaussian.
    """
    import warnings

    import pymc as pm

    from .model import Priors, build_model

    _check_bgm(bgm, "prior_predictive_draws")
    if "custom_model" in bgm.idata_.attrs:
        raise ValueError(
            "prior_predictive_draws draws from the stock model's priors, but this fit used the "
            f"custom model {bgm.idata_.attrs['custom_model']}; draw from your model instead "
            "(pm.sample_prior_predictive on the model your function builds)."
        )
    X, names = _observed(bgm)
    post = bgm.idata_["posterior"]
    priors = bgm.priors if isinstance(bgm.priors, Priors) else None
    model = build_model(
        pd.DataFrame(X, columns=names),
        post.sizes["component"],
        covariance_type=bgm.covariance_type,
        priors=priors,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTensor's notes on BLAS and object mode
        w, mu, cov = pm.draw(
            [model["weights"], model["means"], model["covariances"]],
            draws=int(n_draws),
            random_seed=random_state,
            mode="FAST_COMPILE",
        )
    if cov.ndim == 3:  # tied: one covariance for every component
        cov = np.broadcast_to(cov[:, None], (cov.shape[0], mu.shape[1], *cov.shape[1:]))
    rng = np.random.default_rng(random_state)
    n, d = X.shape
    out = np.empty((int(n_draws), n, d))
    for s in range(int(n_draws)):
        z = rng.choice(w.shape[1], size=n, p=w[s] / w[s].sum())
        chol = np.linalg.cholesky(cov[s])
        eps = rng.standard_normal((n, d))
        out[s] = mu[s][z] + np.einsum("nij,nj->ni", chol[z], eps)
    return out


def plot_prior_predictive(
    bgm: BayesGaussianMixture, *, n_draws: int = 100, random_state: int = 0
) -> Figure:
    """Prior predictive check: data simulated from the priors against the observed range.

    One panel per feature (at most 6): the histogram of all values of ``n_draws`` data sets
    simulated from the prior (:func:`prior_predictive_draws`), the observed data's histogram
    and the observed range shaded. Weakly informative priors spread somewhat wider than the
    data without reaching absurd values; a prior predictive much narrower than the data, or
    offset from it, is a prior in conflict with the data.
    """
    sims = prior_predictive_draws(bgm, n_draws=n_draws, random_state=random_state)
    X, names = _observed(bgm)
    n_panels = min(X.shape[1], 6)
    n_cols = min(n_panels, 3)
    n_rows = -(-n_panels // n_cols)
    fig = Figure(figsize=(3.8 * n_cols, 0.5 + 3.0 * n_rows), layout="constrained")
    grid_axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax in grid_axes[n_panels:]:
        ax.set_axis_off()
    for f, ax in enumerate(grid_axes[:n_panels]):
        values = sims[:, :, f].ravel()
        lo, hi = np.quantile(values, [0.005, 0.995])
        lo, hi = min(lo, X[:, f].min()), max(hi, X[:, f].max())
        bins = np.linspace(lo, hi, 60)
        ax.axvspan(X[:, f].min(), X[:, f].max(), color="C2", alpha=0.15, label="data range")
        ax.hist(
            values,
            bins=bins,
            density=True,
            histtype="step",
            color="C0",
            lw=1.5,
            label="prior predictive",
        )
        ax.hist(X[:, f], bins=bins, density=True, color=_POINT_COLOR, alpha=0.5, label="data")
        ax.set_xlim(lo, hi)
        ax.set_xlabel(_text(names[f]))
        ax.set_ylabel("density" if f % n_cols == 0 else "")
        ax.xaxis.set_major_locator(MaxNLocator(5))
    handles, labels = grid_axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=9)
    title = f"Prior predictive check ({int(n_draws)} simulated data sets)"
    if X.shape[1] > n_panels:
        title += f": first {n_panels} of {X.shape[1]} features"
    fig.suptitle(title)
    return fig


def plot_pairs(
    bgm: BayesGaussianMixture,
    *,
    n_draws: int = 20,
    max_features: int = 5,
    random_state: int = 0,
) -> Figure:
    """Pair plot for any number of features: EM beside the posterior on every feature pair.

    Below the diagonal: the data with EM ellipses (2 sd, thick) and the ellipses of
    ``n_draws`` random posterior draws (thin), for each pair of features; on the diagonal:
    a histogram with the EM marginal component densities. At most ``max_features``
    features (the first ones) are shown.
    """
    _check_bgm(bgm, "plot_pairs")
    X, names = _observed(bgm)
    d = min(X.shape[1], int(max_features))
    w, mu, cov = _posterior_draws(bgm)
    em_w, em_mu, em_cov = _em_params(bgm)
    rng = np.random.default_rng(random_state)
    pick = rng.choice(w.shape[0], size=min(int(n_draws), w.shape[0]), replace=False)
    k = em_mu.shape[0]
    fig = Figure(figsize=(2.6 * d, 2.6 * d), layout="constrained")
    axes = fig.subplots(d, d, squeeze=False)
    for r in range(d):
        for c in range(d):
            ax = axes[r, c]
            if c > r:
                ax.set_axis_off()
                continue
            if r == c:
                grid = _density_grid(X[:, r])
                ax.hist(X[:, r], bins="auto", density=True, color=_POINT_COLOR, alpha=0.5)
                dens = _mixture_pdf(grid, em_w, em_mu[:, r], np.sqrt(em_cov[:, r, r]))
                for j in range(k):
                    ax.plot(grid, dens[j], color=f"C{j}", lw=1.2)
            else:
                ax.scatter(X[:, c], X[:, r], s=3, color=_POINT_COLOR, alpha=0.6)
                idx = np.ix_([c, r], [c, r])
                for j in range(k):
                    for s_ in pick:
                        ax.add_patch(
                            _ellipse(
                                mu[s_, j, [c, r]],
                                cov[s_, j][idx],
                                color=f"C{j}",
                                lw=0.5,
                                alpha=0.35,
                            )
                        )
                    ax.add_patch(_ellipse(em_mu[j, [c, r]], em_cov[j][idx], color=f"C{j}", lw=1.8))
            if r == d - 1:
                ax.set_xlabel(_wrap(_text(names[c]), 2.4, 10))  # long names wrap in the panel
            if c == 0 and r > 0:
                ax.set_ylabel(_wrap(_text(names[r]), 2.4, 10))
    title = "EM (thick) and posterior draws (thin) on every pair of features"
    if X.shape[1] > d:
        title += f"; first {d} of {X.shape[1]} features"
    fig.suptitle(title)
    return fig


def _for_arviz(bgm: BayesGaussianMixture) -> Any:
    """``idata_`` for arviz-plots, its feature names escaped (:func:`_text`) where needed."""
    tree = bgm.idata_
    post = tree["posterior"]
    if not any("$" in str(f) for f in post.coords.get("feature", [])):
        return tree
    import xarray as xr

    ds = post.to_dataset()
    for dim in ("feature", "feature_bis"):
        if dim in ds.coords:
            ds = ds.assign_coords({dim: [_text(f) for f in ds[dim].values]})
    return xr.DataTree.from_dict({"posterior": ds})


def _from_arviz_plots(collection: Any) -> Figure:
    """The Figure of an arviz-plots PlotCollection, detached from pyplot's registry."""
    import matplotlib.pyplot as plt

    fig = collection.get_viz("figure")
    plt.close(fig)  # arviz-plots draws through pyplot; keep no global state behind
    return fig


def plot_rank(
    bgm: BayesGaussianMixture, *, var_names: Sequence[str] = ("weights", "means")
) -> Figure:
    """Rank plots (:func:`arviz_plots.plot_rank`) of the relabelled posterior.

    Per parameter, the ECDF of each chain's ranks against the uniform band: chains that
    explore the same distribution stay inside it (a label switch between chains would not).
    """
    import arviz_plots as azp

    _check_bgm(bgm, "plot_rank")
    pc = azp.plot_rank(_for_arviz(bgm), var_names=list(var_names), backend="matplotlib")
    fig = _from_arviz_plots(pc)
    _tidy_rank_panels(fig)
    return fig


def _panel_grid(fig: Figure) -> tuple[list[Any], int, int]:
    """The visible panels of an arviz-plots figure and its grid's rows and columns."""
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    if not panels:
        return [], 0, 0
    n_rows, n_cols = panels[0].get_subplotspec().get_gridspec().get_geometry()
    return panels, n_rows, n_cols


def _tidy_rank_panels(fig: Figure) -> None:
    """Make arviz-plots' grid of rank panels legible at any number of panels.

    The grid is sized by its number of rows and columns, each two-line title
    (``"means\\n0, waiting"``) becomes one line (``"means[0, waiting]"``), the p-value note
    moves inside its panel's top-left corner, and constrained layout keeps titles clear of
    the tick labels of the panel above.
    """
    panels, n_rows, n_cols = _panel_grid(fig)
    if not panels:
        return
    fig.set_size_inches(3.3 * n_cols, 0.4 + 2.1 * n_rows)
    for ax in panels:
        var, _, element = ax.get_title().partition("\n")
        title = f"{var}[{element}]" if element else var
        ax.set_title(_wrap(title, 3.1, 10), fontsize=10)  # long feature names wrap
        ax.tick_params(labelsize=9)
        ax.xaxis.label.set_fontsize(9)
        for note in ax.texts:  # "p=0.82(α=0.01)": the uniformity test of the panel
            note.set_transform(ax.transAxes)
            note.set_position((0.02, 0.98))
            note.set_verticalalignment("top")
            note.set_horizontalalignment("left")
            note.set_fontsize(8)
    fig.set_layout_engine("constrained")


def plot_forest(
    bgm: BayesGaussianMixture,
    *,
    var_names: Sequence[str] = ("weights", "means"),
    interval: float = 0.89,
) -> Figure:
    """Forest plot (:func:`arviz_plots.plot_forest`) of the relabelled posterior, per chain."""
    import arviz_plots as azp

    _check_bgm(bgm, "plot_forest")
    interval = _check_interval(interval)
    pc = azp.plot_forest(
        _for_arviz(bgm), var_names=list(var_names), ci_probs=[0.5, interval], backend="matplotlib"
    )
    return _from_arviz_plots(pc)


def plot_comparison(result: ComparisonResult) -> Figure:
    """Model-selection criteria against K (the figure of ``result.plot()``).

    Same as :meth:`~bayesgmm.selection.ComparisonResult.plot`.

    Parameters
    ----------
    result : ComparisonResult
        From :func:`bayesgmm.compare_models`.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per covariance type.
    """
    from .selection import ComparisonResult

    if not isinstance(result, ComparisonResult):
        raise TypeError(
            "plot_comparison needs a ComparisonResult from bayesgmm.selection.compare_models, "
            f"got {type(result).__name__}."
        )
    return result.plot()


# mclust's models: volume E (dashed) or V (solid); one colour and one marker each.
_BIC_COLORS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939", "#843c39", "#7b4173",
)  # fmt: skip
_BIC_MARKERS = ("o", "s", "^", "v", "D", "P", "<", ">", "p", "h", "H", "d", "8", "2")


def plot_bic_grid(
    result: ComparisonResult, *, mclust_sign: bool = False, zoom: float | None = 20.0
) -> Figure:
    """BIC against K, one line per covariance model: the figure of mclust's ``plot(BIC)``.

    Each of mclust's models (EII ... VVV; scikit-learn's four types under their mclust
    names VII, VVI, EEE and VVV) keeps one colour and one marker, dashed when its volume is
    equal across components (E..) and solid when it varies (V..). Lines join the fits that
    BIC may choose; degenerate EM fits (a collapsed component, a spuriously high likelihood)
    are grey crosses, and BIC's choice is starred. A second panel shows the cells within
    ``zoom`` of the best BIC, where the models that matter crowd together.

    Parameters
    ----------
    result : ComparisonResult
        From :func:`bayesgmm.compare_models` with ``"em"`` among its methods.
    mclust_sign : bool, default=False
        False: our BIC, ``-2 log L + p log n``, lower is better. True: mclust's sign,
        ``2 log L - p log n``, higher is better (mclust's own plot).
    zoom : float or None, default=20.0
        Height of the close-up panel above the best BIC (BIC units, i.e. twice a log Bayes
        factor; 10 is Kass & Raftery's "very strong"); None draws the full range only.

    Returns
    -------
    matplotlib.figure.Figure
        One or two axes, with the models' legend to their right.

    Raises
    ------
    TypeError
        ``result`` is not a ComparisonResult.
    ValueError
        BIC was not computed, or ``zoom`` is not positive.
    """
    from .selection import ComparisonResult

    if not isinstance(result, ComparisonResult):
        raise TypeError(
            "plot_bic_grid needs a ComparisonResult from bayesgmm.selection.compare_models, "
            f"got {type(result).__name__}."
        )
    if zoom is not None and not (isinstance(zoom, int | float) and zoom > 0):
        raise ValueError(f"zoom={zoom!r} is invalid; give a positive BIC difference, or None.")
    from ._mclust import MCLUST_MODELS

    values = result.bic_grid(mclust_sign=mclust_sign)
    shown = result.bic_grid(mclust_sign=mclust_sign, drop_degenerate=True)
    marks = result.bic_grid(marked=True)
    failed = marks.eq("failed")
    ok = shown.mask(failed)
    ks = np.asarray(values.columns, dtype=int)
    best_cell = [(m, k) for m in marks.index for k in ks if str(marks.loc[m, k]).endswith("★")]
    panels = 2 if zoom is not None and np.isfinite(ok.to_numpy(dtype=float)).any() else 1
    fig = Figure(figsize=(5.2 * panels + 1.6, 4.6), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    for ax in axes:
        for model in values.index:
            i = MCLUST_MODELS.index(model)
            ax.plot(
                ks,
                ok.loc[model].to_numpy(dtype=float),
                color=_BIC_COLORS[i],
                marker=_BIC_MARKERS[i],
                markersize=5,
                linestyle="--" if model[0] == "E" else "-",
                linewidth=1.3,
                label=model,
            )
            bad = np.isfinite(values.loc[model].to_numpy(dtype=float)) & ~np.isfinite(
                shown.loc[model].to_numpy(dtype=float)
            )
            if bad.any():
                ax.scatter(
                    ks[bad],
                    values.loc[model].to_numpy(dtype=float)[bad],
                    marker="x",
                    s=40,
                    color="0.45",
                    zorder=3,
                    label="degenerate fit (excluded)",
                )
        for model, k in best_cell:
            ax.scatter(
                [k],
                [values.loc[model, k]],
                marker="*",
                s=300,
                facecolor="none",
                edgecolors="black",
                linewidths=1.2,
                zorder=4,
                label=f"BIC's choice: {model}, K = {k}",
            )
        ax.set_xticks(ks)
        ax.set_xlabel("components K")
        ax.grid(alpha=0.3)
    direction = "higher" if mclust_sign else "lower"
    formula = "2 log L - p log n (mclust's sign)" if mclust_sign else "-2 log L + p log n"
    axes[0].set_ylabel(f"BIC = {formula}\n{direction} is better")
    finite = ok.to_numpy(dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size:
        lo, hi = float(finite.min()), float(finite.max())
        pad = 0.05 * (hi - lo) if hi > lo else 1.0
        axes[0].set_ylim(lo - pad, hi + pad)
        axes[0].set_title("every model", fontsize="medium")
    if panels == 2:
        top = float(finite.max()) if mclust_sign else float(finite.min())
        near = (top - zoom, top + 0.1 * zoom) if mclust_sign else (top - 0.1 * zoom, top + zoom)
        axes[1].set_ylim(*near)
        # only the K that have a cell in the close-up
        values_ok = ok.to_numpy(dtype=float)
        inside = ((values_ok >= near[0]) & (values_ok <= near[1])).any(axis=0)
        axes[1].set_xlim(ks[inside].min() - 0.3, ks[inside].max() + 0.3)
        axes[1].set_title(f"close-up: within {zoom:g} of the best", fontsize="medium")
    handles, labels = axes[0].get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    # the models in mclust's order, then the marks
    extra = [lab for lab in unique if lab not in MCLUST_MODELS]
    order = [m for m in MCLUST_MODELS if m in unique] + extra
    fig.legend(
        [unique[lab] for lab in order],
        order,
        loc="outside right center",
        fontsize="small",
        title="model",
    )
    other = "lower" if mclust_sign else "higher"
    fig.suptitle(
        f"BIC by covariance model and K: {direction} is better\n(mclust's plot(BIC) shows "
        f"the same values with the opposite sign, {other} better)"
        if not mclust_sign
        else "BIC by covariance model and K, mclust's sign: higher is better",
        fontsize="medium",
    )
    return fig


def plot_segmentation(result: SegmentationResult, *, width: float = 4.0) -> Figure:
    """The image, its label map and uncertainty maps side by side.

    EM: image, labels, total uncertainty (entropy). Bayesian: a second row with aleatoric and
    epistemic uncertainty and the width of the assigned label's posterior interval. Segment
    ``k`` is painted in ``"C{k}"``; entropy colour bars run from 0 to ``log K`` nats.

    Parameters
    ----------
    result : SegmentationResult
        From :func:`bayesgmm.segment_image`.
    width : float, default=4.0
        Width of one panel in inches (height follows the image's aspect ratio).
    """
    from matplotlib.colors import ListedColormap

    from .segmentation import as_image

    if not hasattr(result, "labels") or not hasattr(result, "uncertainty_total"):
        raise TypeError(
            f"plot_segmentation needs a SegmentationResult, got {type(result).__name__}."
        )
    h, w = result.labels.shape
    k = result.n_components
    bayes = result.interval_width is not None
    rows = 2 if bayes else 1
    fig = Figure(figsize=(3 * width, rows * width * h / w + 0.6 * rows), layout="constrained")
    axes = np.atleast_2d(fig.subplots(rows, 3))
    # Draw every `step`-th pixel (views, no copies): a panel shows a few hundred pixels, and
    # matplotlib would otherwise convert full-size maps of a large image to RGBA floats.
    step = max(1, -(-max(h, w) // _MAX_PANEL_PIXELS))

    def shown(values: np.ndarray) -> np.ndarray:
        return values[::step, ::step]

    image = as_image(shown(result.image))
    if image.ndim == 3:
        image = np.clip(image, 0.0, 1.0)
    axes[0, 0].imshow(image, cmap="gray" if image.ndim == 2 else None, interpolation="nearest")
    axes[0, 0].set_title("image")
    cmap = ListedColormap([f"C{j}" for j in range(k)])
    im = axes[0, 1].imshow(
        shown(result.labels), cmap=cmap, vmin=-0.5, vmax=k - 0.5, interpolation="nearest"
    )
    fig.colorbar(im, ax=axes[0, 1], ticks=range(k), shrink=0.8, label="segment")
    axes[0, 1].set_title(f"labels (K = {k}, {result.method.upper()})")
    top = float(np.log(k)) if k > 1 else 1.0
    panels = [(axes[0, 2], result.uncertainty_total, "total uncertainty (nats)", top)]
    if bayes:
        panels += [
            (axes[1, 0], result.uncertainty_aleatoric, "aleatoric (nats)", top),
            (axes[1, 1], result.uncertainty_epistemic, "epistemic (nats)", None),
            (
                axes[1, 2],
                result.interval_width,
                f"{result.interval:.0%} interval width of P(label)",
                1.0,
            ),
        ]
    for ax, values, title, vmax in panels:
        im = ax.imshow(shown(values), cmap="magma", vmin=0.0, vmax=vmax, interpolation="nearest")
        fig.colorbar(im, ax=ax, shrink=0.8)
        ax.set_title(title)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    note = f"fitted on {result.fit_pixels.size} of {result.n_pixels} pixels"
    if result.preview_step > 1:
        note += f"; maps show one row and column in {result.preview_step}"
    if bayes:
        note += f"; maps from {result.n_map_draws} posterior draws"
    fig.suptitle(note, fontsize="small")
    return fig


def plot_reliability(
    calibration: CalibrationResult | Mapping[str, CalibrationResult], *, width: float = 4.0
) -> Figure:
    """Reliability diagram of segmentation maps: how often a label is right against how sure
    the map says it is.

    Top: accuracy of the pixels in each confidence bin against the bin's mean probability of
    the assigned label; a calibrated map lies on the diagonal, an overconfident one below it.
    Bottom: the share of pixels in each bin. Each curve's legend gives its ECE and ARI.

    Parameters
    ----------
    calibration : CalibrationResult or mapping of str to CalibrationResult
        From :func:`bayesgmm.segmentation.calibration`; several, keyed by a name (e.g.
        ``{"independent": ..., "Potts": ...}``), are drawn on the same axes.
    width : float, default=4.0
        Width of the figure in inches.
    """
    cals = calibration if isinstance(calibration, Mapping) else {"": calibration}
    for name, cal in cals.items():
        if not hasattr(cal, "curve") or not hasattr(cal, "ece"):
            raise TypeError(
                f"plot_reliability needs CalibrationResult objects (from "
                f"bayesgmm.segmentation.calibration), got {type(cal).__name__}"
                + (f" for {name!r}." if name else ".")
            )
    fig = Figure(figsize=(width, 1.3 * width), layout="constrained")
    ax, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    ax.plot([0, 1], [0, 1], color=_POINT_COLOR, linestyle="--", linewidth=1, label="calibrated")
    n = len(cals)
    for i, (name, cal) in enumerate(cals.items()):
        curve = cal.curve
        filled = curve["n_pixels"].to_numpy() > 0
        label = f"{name}: " if name else ""
        label += f"ECE {cal.ece:.3f}, ARI {cal.ari:.2f}"
        ax.plot(
            curve["confidence"][filled],
            curve["accuracy"][filled],
            marker="o",
            color=f"C{i}",
            label=label,
        )
        lower, upper = curve["lower"].to_numpy(), curve["upper"].to_numpy()
        bin_w = (upper - lower) / n
        share = curve["n_pixels"].to_numpy() / curve["n_pixels"].sum()
        bottom.bar(lower + i * bin_w, share, width=bin_w, align="edge", color=f"C{i}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("accuracy (share of labels right)")
    ax.legend(loc="upper left", fontsize="small")
    ax.set_title("Reliability of the label probabilities")
    bottom.set_xlabel("probability of the assigned label")
    bottom.set_ylabel("share of pixels")
    return fig


def plot_prior_sensitivity(
    bgm: BayesGaussianMixture, *, var_names: Sequence[str] = ("weights", "means")
) -> Figure:
    """Power-scaled posteriors (:func:`arviz_plots.plot_psense_dist`), prior and likelihood.

    Per parameter, its posterior density and interval when the prior (left) or the
    likelihood (right) is raised to the power 0.8, 1 and 1.25 (Kallioinen et al. 2023),
    estimated by importance sampling of the draws already taken: curves that stay on top of
    one another mean the posterior does not depend on that part of the model. The numbers
    are :meth:`~bayesgmm.BayesGaussianMixture.prior_sensitivity`.

    Parameters
    ----------
    bgm : BayesGaussianMixture
        A fitted estimator.
    var_names : sequence of str, default ("weights", "means")
        Among ``"weights"``, ``"means"``, ``"stds"`` and ``"corr"`` (full or tied covariances
        with several features).

    Returns
    -------
    matplotlib.figure.Figure
        Two columns (prior, likelihood), one row per parameter element.
    """
    import logging

    import arviz_plots as azp
    import xarray as xr

    from .bayes import _log_prior
    from .methods import sensitivity_tree

    _check_bgm(bgm, "plot_prior_sensitivity")
    tree = bgm.idata_
    if "log_prior" not in tree.children:  # a fit saved before the group existed
        X = tree["observed_data"]["obs"]
        lp = _log_prior(
            tree,
            X.values,
            [str(f) for f in X["feature"].values],
            tree["posterior"].sizes["component"],
            bgm.covariance_type,
            bgm.priors,
        )
        tree = tree.copy()
        tree["log_prior"] = xr.DataTree(lp)
    small = sensitivity_tree(tree, bgm.covariance_type)
    post = small["posterior"].to_dataset()
    known = [v for v in var_names if v in post]
    if not known:
        raise ValueError(
            f"var_names={list(var_names)!r} names none of this fit's parameters; choose among "
            f"{sorted(post.data_vars)}."
        )
    for dim in ("feature", "pair"):  # "$" would start mathtext in matplotlib
        if dim in post.coords:
            post = post.assign_coords({dim: [_text(f) for f in post[dim].values]})
    small["posterior"] = xr.DataTree(post)
    logger = logging.getLogger("arviz_stats.psense")  # its warnings are in the report's words
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        pc = azp.plot_psense_dist(small, var_names=known, backend="matplotlib")
    finally:
        logger.setLevel(level)
    fig = _from_arviz_plots(pc)
    _tidy_psense_panels(fig)
    return fig


def _tidy_psense_panels(fig: Figure) -> None:
    """One-line panel titles, a legend above the panels and a layout that keeps text apart."""
    panels, n_rows, n_cols = _panel_grid(fig)
    if not panels:
        return
    fig.set_size_inches(3.4 * n_cols, 1.0 + 1.7 * n_rows)
    for ax in panels:
        var, _, rest = ax.get_title().partition("\n")
        element, _, part = rest.rpartition(", ")
        title = f"{var}[{element}]" if element else var
        title = f"{title}, power-scaled {part}" if part else title
        ax.set_title(_wrap(title, 3.2, 9), fontsize=9)
        ax.tick_params(labelsize=8)
    fig.set_layout_engine("constrained")
    for legend in list(fig.legends):
        handles, labels = legend.legend_handles, [t.get_text() for t in legend.get_texts()]
        legend.remove()
        fig.legend(
            handles,
            [f"power {lab}" for lab in labels],
            loc="outside upper center",
            ncols=len(labels),
            fontsize=9,
            frameon=False,
        )
