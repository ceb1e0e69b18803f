"""Convergence diagnostics of a mixture posterior, before and after relabelling, with a verdict.

:func:`~bayesgmm.diagnose` checks the component parameters of a posterior (``weights``,
``means``, the scales ``stds`` / ``sigma`` and the correlations ``corr``) with the
rank-normalised split R-hat, bulk and tail effective sample sizes and the Monte Carlo
standard error of the mean (all from :mod:`arviz_stats`), and the sampler's own statistics:
divergent transitions, tree-depth saturation and the energy Bayesian fraction of missing
information (E-BFMI).

Component parameters of a mixture are only identified up to a permutation of the labels, so
R-hat computed on a posterior whose chains use different labellings is large even when every
chain has converged. Pass the posterior before relabelling as ``before`` and the report shows
the R-hat of both side by side.

Samplers name their statistics differently; both spellings are read:

==================  ===========================  ====================
statistic           PyMC                         nutpie
==================  ===========================  ====================
divergence          ``diverging``                ``diverging``
tree depth          ``tree_depth``               ``depth``
max depth reached   ``reached_max_treedepth``    ``maxdepth_reached``
energy              ``energy``                   ``energy``
==================  ===========================  ====================

A statistic that is missing is reported as "not available" and does not fail the check.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr

__all__ = [
    "DEFAULT_VAR_NAMES",
    "EBFMI_MIN",
    "OCCUPIED_MIN_SHARE",
    "TAIL_ESS_PROB",
    "DiagnosticsReport",
    "diagnose",
    "occupied_components",
]

_log = logging.getLogger("bayesgmm")

#: Parameters checked when ``var_names`` is not given (those present in the posterior).
DEFAULT_VAR_NAMES: tuple[str, ...] = ("weights", "means", "stds", "sigma", "corr")
#: E-BFMI below this value indicates that the sampler explores the energy poorly.
EBFMI_MIN = 0.3

#: A component is occupied in a draw when at least this share of the points is allocated to it.
OCCUPIED_MIN_SHARE = 0.01

_SAMPLE_DIMS = ("chain", "draw")
_MATRIX_DIMS = ("feature", "feature_bis")
# Sampler-statistic names, PyMC spelling first, then nutpie's.
_DIVERGING = ("diverging",)
_TREE_DEPTH = ("tree_depth", "depth")
_MAX_DEPTH_FLAG = ("reached_max_treedepth", "maxdepth_reached")
_ENERGY = ("energy",)
_STAT_COLUMNS = ("rhat", "ess_bulk", "ess_tail")
_ROWS_SHOWN = 30
# Tail ESS is the smaller ESS of the 5% and 95% quantiles (Vehtari et al. 2021), fixed here so
# that it does not depend on the user's arviz rcParams["stats.ci_prob"].
TAIL_ESS_PROB = (0.05, 0.95)


@dataclass(eq=False)
class DiagnosticsReport:
    """Convergence diagnostics of a posterior and a plain-language verdict.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per scalar parameter element (``"means[1, eruptions]"``), with columns
        ``parameter``, ``variable``, ``rhat``, ``ess_bulk``, ``ess_tail`` (the smaller ESS of
        the 5% and 95% quantiles), ``mcse_mean``, ``mean``, ``sd``; when a ``before``
        posterior was given also ``rhat_before``, ``ess_bulk_before`` and
        ``ess_tail_before``; and ``ok`` (R-hat and both ESS within the thresholds).
    n_divergent : int or None
        Divergent transitions after tuning; None when the sampler did not record them.
    n_draws_total : int
        Draws over all chains.
    n_chains : int
        Number of chains.
    max_treedepth_fraction : float or None
        Fraction of transitions that stopped at the maximum tree depth; None when not recorded.
    max_tree_depth : int or None
        Largest tree depth reached by any transition; None when not recorded.
    ebfmi : ndarray of shape (n_chains,) or None
        E-BFMI of every chain; None when the ``energy`` statistic is missing.
    rhat_max : float
        Largest acceptable R-hat.
    ess_min : float
        Smallest acceptable bulk and tail effective sample size.
    ebfmi_min : float
        Smallest acceptable E-BFMI.
    passed : bool
        Every parameter within the R-hat and ESS thresholds, no divergences and every
        chain's E-BFMI at least ``ebfmi_min`` (the last two only when recorded).
    verdict : str
        One paragraph saying what passed and failed, the worst values, and what to do.
    before_table : pandas.DataFrame or None
        The statistics of the posterior before relabelling, when ``before`` was given: the
        same rows as ``table`` and its columns ``parameter`` to ``sd`` (no ``ok``).
    em_start_note : str or None
        When ``idata`` has an ``em`` group (the EM solution that started the chains and is the
        relabelling pivot) that did not converge or has collapsed (degenerate) components,
        the sentence of ``verdict`` that says so; None otherwise. It does not affect
        ``passed``, which is about the sampler's convergence.
    """

    table: pd.DataFrame
    n_divergent: int | None
    n_draws_total: int
    n_chains: int
    max_treedepth_fraction: float | None
    max_tree_depth: int | None
    ebfmi: np.ndarray | None
    rhat_max: float
    ess_min: float
    ebfmi_min: float
    passed: bool
    verdict: str
    before_table: pd.DataFrame | None = None
    em_start_note: str | None = None

    @property
    def thresholds(self) -> dict[str, float]:
        """The thresholds the checks used: ``rhat_max``, ``ess_min`` and ``ebfmi_min``."""
        return {"rhat_max": self.rhat_max, "ess_min": self.ess_min, "ebfmi_min": self.ebfmi_min}

    @property
    def max_rhat(self) -> float:
        """Largest R-hat over all parameter elements (NaN if any could not be computed)."""
        return _max_or_nan(self.table["rhat"])

    @property
    def min_ess_bulk(self) -> float:
        """Smallest bulk effective sample size over all parameter elements."""
        return _min_or_nan(self.table["ess_bulk"])

    @property
    def min_ess_tail(self) -> float:
        """Smallest tail effective sample size over all parameter elements."""
        return _min_or_nan(self.table["ess_tail"])

    def summary(self) -> dict[str, Any]:
        """The headline numbers as a flat dict of plain Python values.

        Returns
        -------
        dict
            ``passed``, ``n_parameters``, ``max_rhat``, ``min_ess_bulk``, ``min_ess_tail``,
            ``n_divergent``, ``n_draws_total``, ``max_treedepth_fraction``, ``min_ebfmi``
            (None when not available) and, with a ``before`` posterior, ``max_rhat_before``.
        """
        out: dict[str, Any] = {
            "passed": bool(self.passed),
            "n_parameters": len(self.table),
            "max_rhat": self.max_rhat,
            "min_ess_bulk": self.min_ess_bulk,
            "min_ess_tail": self.min_ess_tail,
            "n_divergent": self.n_divergent,
            "n_draws_total": self.n_draws_total,
            "max_treedepth_fraction": self.max_treedepth_fraction,
            "min_ebfmi": None if self.ebfmi is None else float(np.min(self.ebfmi)),
        }
        if self.before_table is not None:
            out["max_rhat_before"] = _max_or_nan(self.before_table["rhat"])
        return out

    def to_frame(self) -> pd.DataFrame:
        """A copy of ``table``, indexed by parameter element.

        Returns
        -------
        pandas.DataFrame
            One row per parameter element, index ``parameter``.
        """
        return self.table.set_index("parameter").copy()

    def __str__(self) -> str:
        lines = [f"Convergence diagnostics: {'PASSED' if self.passed else 'FAILED'}"]
        for key, value in self.summary().items():
            if key == "passed":
                continue
            lines.append(f"  {key}: {_fmt(value)}")
        lines.extend(["", self.verdict, ""])
        table = self.table
        if len(table) > _ROWS_SHOWN:
            table = table.sort_values("rhat", ascending=False, na_position="first")
            table = table.head(_ROWS_SHOWN)
            lines.append(f"The {_ROWS_SHOWN} parameters with the largest R-hat:")
        lines.append(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        return "\n".join(lines)


def diagnose(
    idata: xr.DataTree,
    *,
    before: xr.DataTree | None = None,
    var_names: str | Sequence[str] | None = None,
    rhat_max: float = 1.01,
    ess_min: float = 400,
) -> DiagnosticsReport:
    """Check the convergence of a mixture posterior and say whether it can be trusted.

    Parameters
    ----------
    idata : xarray.DataTree
        The (relabelled) posterior, with a ``posterior`` group whose variables have dims
        ``(chain, draw, ...)`` and optionally a ``sample_stats`` group and an ``em`` group
        (the EM start of :class:`~bayesgmm.BayesGaussianMixture`: attribute ``converged`` and
        variable ``degenerate``), whose non-convergence or collapsed components the verdict
        names.
    before : xarray.DataTree, optional
        The same posterior before relabelling. Its R-hat and ESS are reported beside those of
        ``idata`` (columns ``rhat_before``, ``ess_bulk_before``, ``ess_tail_before`` and
        ``before_table``); it does not affect ``passed``.
    var_names : str or sequence of str, optional
        Posterior variables to check. By default whichever of ``weights``, ``means``,
        ``stds``, ``sigma`` and ``corr`` exist. Only the strictly lower triangle of ``corr``
        is used (its diagonal is the constant 1 and it is symmetric), the lower triangle of
        any other variable that is a symmetric ``(feature, feature_bis)`` matrix in every
        draw, and elements that are constant over all draws are skipped.
    rhat_max : float, default=1.01
        Largest acceptable rank-normalised split R-hat.
    ess_min : float, default=400
        Smallest acceptable bulk and tail effective sample size.

    Returns
    -------
    DiagnosticsReport
        The per-parameter table, the sampler statistics, ``passed`` and a ``verdict``.

    Raises
    ------
    TypeError
        If ``idata`` or ``before`` is not an :class:`xarray.DataTree`.
    ValueError
        If the posterior group is missing, lacks ``chain``/``draw`` dims, a requested variable
        is missing or holds non-finite values, ``before`` does not match ``idata``, or a
        threshold is out of range.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> rng = np.random.default_rng(0)
    >>> post = xr.Dataset({"means": (("chain", "draw", "component"), rng.normal(size=(4, 500, 2)))})
    >>> report = diagnose(xr.DataTree.from_dict({"posterior": post}))
    >>> report.passed
    True
    >>> list(report.table["parameter"])
    ['means[0]', 'means[1]']
    """
    rhat_max, ess_min = _check_thresholds(rhat_max, ess_min)
    posterior = _posterior(idata, "idata")
    names = _resolve_var_names(posterior, var_names)
    selection = _select_elements(posterior, names)
    if not selection:
        raise ValueError(
            f"Every element of {names} is constant over all draws, so there is nothing to "
            "diagnose; pass var_names= with sampled (non-constant) parameters."
        )
    n_chains, n_draws = posterior.sizes["chain"], posterior.sizes["draw"]
    if n_chains < 2:
        _log.warning("R-hat needs at least 2 chains; got %d. Run 4 chains.", n_chains)

    table = _stats_table(_stack(posterior, selection, "idata"), selection)
    table["ok"] = _ok(table, rhat_max, ess_min)

    before_table = None
    if before is not None:
        before_post = _posterior(before, "before")
        for name in names:
            if name not in before_post.data_vars:
                raise ValueError(
                    f"before has no posterior variable {name!r} but idata has; pass the same "
                    "posterior before relabelling as before=."
                )
        before_table = _stats_table(_stack(before_post, selection, "before"), selection)
        for col in _STAT_COLUMNS:
            table.insert(table.columns.get_loc("ok"), f"{col}_before", before_table[col].values)

    stats = _sampler_stats(idata)
    report_args = dict(
        table=table,
        n_divergent=stats["n_divergent"],
        n_draws_total=int(n_chains * n_draws),
        n_chains=int(n_chains),
        max_treedepth_fraction=stats["max_treedepth_fraction"],
        max_tree_depth=stats["max_tree_depth"],
        ebfmi=stats["ebfmi"],
        rhat_max=rhat_max,
        ess_min=ess_min,
        ebfmi_min=EBFMI_MIN,
        before_table=before_table,
    )
    passed = bool(
        table["ok"].all()
        and not stats["n_divergent"]
        and (stats["ebfmi"] is None or bool(np.all(stats["ebfmi"] >= EBFMI_MIN)))
    )
    report = DiagnosticsReport(
        passed=passed, verdict="", em_start_note=_em_start_note(idata), **report_args
    )
    with_component = {s.name for s in selection if "component" in s.dims}
    report.verdict = _verdict(report, with_component)
    _log.info(
        "Diagnostics %s: max R-hat %.4g, min ESS bulk %.0f / tail %.0f, %s divergences.",
        "passed" if passed else "failed",
        report.max_rhat,
        report.min_ess_bulk,
        report.min_ess_tail,
        "unknown" if report.n_divergent is None else report.n_divergent,
    )
    return report


def occupied_components(
    idata: xr.DataTree,
    X: Any,
    *,
    covariance_type: str,
    min_share: float = OCCUPIED_MIN_SHARE,
    max_draws: int = 1000,
) -> xr.DataArray:
    """Number of occupied components in every posterior draw.

    In draw ``s`` each observation is allocated to its most probable component under
    ``theta_s`` (the largest responsibility), and a component is *occupied* when it receives
    at least ``min_share`` of the observations (and at least one). An overfitted mixture, with
    more components than the data support, empties the extra components (they hold almost no
    weight and no points) or splits one cluster between two of them; the first shows here as
    fewer occupied components than ``K``.

    Parameters
    ----------
    idata : xarray.DataTree
        A posterior with ``weights`` (chain, draw, component), ``means`` and
        ``precisions_cholesky`` (as :class:`~bayesgmm.BayesGaussianMixture` stores them).
    X : array-like of shape (n_samples, n_features)
        The data the posterior was fitted to.
    covariance_type : {"full", "tied", "diag", "spherical"}
    min_share : float, default=0.01
        Smallest share of the allocated observations that makes a component occupied.
    max_draws : int, default=1000
        Use at most this many draws, evenly spaced over each chain (memory and time grow
        with the draws times the observations times the components).

    Returns
    -------
    xarray.DataArray of int, dims (chain, draw)
        Occupied components per (kept) draw.

    Raises
    ------
    ValueError
        If the posterior lacks ``weights``, ``means`` or ``precisions_cholesky``, or
        ``min_share`` is not in (0, 1).
    """
    from ._validation import check_choice, check_X
    from .responsibilities import responsibility_draws

    check_choice("covariance_type", covariance_type, ("full", "tied", "diag", "spherical"))
    if not 0.0 < float(min_share) < 1.0:
        raise ValueError(f"min_share={min_share!r} must lie in (0, 1), e.g. 0.01 (1 %).")
    posterior = _posterior(idata, "idata")
    missing = [v for v in ("weights", "means", "precisions_cholesky") if v not in posterior]
    if missing:
        raise ValueError(
            f"The posterior has no {missing}; occupied_components needs weights, means and "
            "precisions_cholesky as BayesGaussianMixture stores them."
        )
    X = check_X(X)
    n_chains, n_draws = posterior.sizes["chain"], posterior.sizes["draw"]
    step = max(1, int(np.ceil(n_chains * n_draws / max(int(max_draws), 1))))
    kept = posterior.isel(draw=slice(None, None, step))
    from .relabel import _draw_arrays

    w, mu, pc = _draw_arrays(kept, covariance_type)  # (chain, draw) flattened
    lead = (kept.sizes["chain"], kept.sizes["draw"])
    k, n = w.shape[-1], X.shape[0]
    threshold = max(1, int(np.ceil(min_share * n)))
    occupied = np.empty(w.shape[0], dtype=np.int64)
    chunk = max(1, int(2**23 // max(n * k, 1)))  # about 64 MB of responsibilities at a time
    for start in range(0, w.shape[0], chunk):
        part = slice(start, start + chunk)
        resp = responsibility_draws(X, w[part], mu[part], pc[part], covariance_type)
        label = resp.argmax(axis=-1)  # (draws, n)
        counts = np.stack([(label == j).sum(axis=-1) for j in range(k)], axis=-1)
        occupied[part] = (counts >= threshold).sum(axis=-1)
    occupied = occupied.reshape(lead)
    return xr.DataArray(
        occupied,
        dims=("chain", "draw"),
        coords={"chain": kept["chain"].values, "draw": kept["draw"].values},
        name="occupied_components",
        attrs={"min_share": float(min_share), "min_points": threshold},
    )


# --------------------------------------------------------------------------- input


def _check_thresholds(rhat_max: Any, ess_min: Any) -> tuple[float, float]:
    try:
        rhat_max, ess_min = float(rhat_max), float(ess_min)
    except (TypeError, ValueError):
        raise TypeError(
            f"rhat_max and ess_min must be numbers; got {rhat_max!r} and {ess_min!r}."
        ) from None
    if not np.isfinite(rhat_max) or rhat_max < 1.0:
        raise ValueError(
            f"rhat_max={rhat_max} is below 1, which no R-hat can reach; use a value such as "
            "1.01 (the usual threshold)."
        )
    if not np.isfinite(ess_min) or ess_min <= 0:
        raise ValueError(
            f"ess_min={ess_min} must be a positive number; use e.g. 400 (100 per chain for "
            "4 chains)."
        )
    return rhat_max, ess_min


def _posterior(tree: Any, arg: str) -> xr.Dataset:
    if not isinstance(tree, xr.DataTree):
        raise TypeError(
            f"{arg} must be an xarray.DataTree with a 'posterior' group; got "
            f"{type(tree).__name__}. Wrap a Dataset with "
            "xr.DataTree.from_dict({'posterior': dataset})."
        )
    if "posterior" not in tree.children:
        raise ValueError(
            f"{arg} has no 'posterior' group (groups: {sorted(tree.children)}); pass the "
            "DataTree returned by sampling, which holds the draws in 'posterior'."
        )
    posterior = tree["posterior"].to_dataset()
    missing = [d for d in _SAMPLE_DIMS if d not in posterior.dims]
    if missing:
        raise ValueError(
            f"The posterior of {arg} lacks the dims {missing}; expected draws with dims "
            "(chain, draw, ...). Rename the sample dims to 'chain' and 'draw'."
        )
    return posterior


def _resolve_var_names(posterior: xr.Dataset, var_names: str | Sequence[str] | None) -> list[str]:
    available = sorted(str(v) for v in posterior.data_vars)
    if var_names is None:
        names = [name for name in DEFAULT_VAR_NAMES if name in posterior.data_vars]
        if not names:
            raise ValueError(
                f"The posterior has none of the default parameters {list(DEFAULT_VAR_NAMES)} "
                f"(it has {available}); pass var_names= to choose which to check."
            )
        return names
    names = [var_names] if isinstance(var_names, str) else list(var_names)
    if not names:
        raise ValueError("var_names is empty; pass at least one posterior variable name.")
    unknown = [name for name in names if name not in posterior.data_vars]
    if unknown:
        raise ValueError(
            f"var_names {unknown} are not in the posterior; expected some of {available}."
        )
    return names


@dataclass(frozen=True)
class _Selection:
    """The elements of one variable that are checked, as flat indices after (chain, draw)."""

    name: str
    dims: tuple[str, ...]
    flat_index: np.ndarray
    labels: list[str]


def _values(posterior: xr.Dataset, name: str, arg: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Draws of one variable as (chain, draw, *element dims), with the element dims."""
    var = posterior[name]
    missing = [d for d in _SAMPLE_DIMS if d not in var.dims]
    if missing:
        raise ValueError(
            f"Posterior variable {name!r} of {arg} has dims {var.dims}, without {missing}; "
            "only sampled variables with dims (chain, draw, ...) can be diagnosed."
        )
    var = var.transpose(*_SAMPLE_DIMS, ...)
    values = np.asarray(var.values, dtype=np.float64)
    if not np.isfinite(values).all():
        n_bad = int((~np.isfinite(values)).reshape(*values.shape[:2], -1).any(axis=-1).sum())
        raise ValueError(
            f"Posterior variable {name!r} of {arg} holds NaN or infinite values in {n_bad} "
            "draws; diagnostics need finite draws. Check the sampler output (divergences, "
            "failed initialisation) before diagnosing."
        )
    return values, tuple(str(d) for d in var.dims[2:])


def _kept_mask(name: str, values: np.ndarray, dims: tuple[str, ...]) -> np.ndarray:
    """Boolean mask over the element dims: which elements carry information."""
    element_shape = values.shape[2:]
    keep = np.ones(element_shape, dtype=bool)
    if all(d in dims for d in _MATRIX_DIMS):
        i, j = (dims.index(d) for d in _MATRIX_DIMS)
        rows = np.arange(element_shape[i]).reshape([-1 if a == i else 1 for a in range(len(dims))])
        cols = np.arange(element_shape[j]).reshape([-1 if a == j else 1 for a in range(len(dims))])
        if name == "corr":
            keep &= rows > cols
        elif element_shape[i] == element_shape[j] and np.allclose(
            values, np.swapaxes(values, i + 2, j + 2)
        ):
            keep &= rows >= cols
    constant = np.all(values == values[:1, :1], axis=(0, 1))
    return keep & ~constant


def _element_labels(var: xr.DataArray, dims: tuple[str, ...]) -> np.ndarray:
    """Labels ``name[c1, c2, ...]`` for every element, in C order over the element dims."""
    per_dim = []
    for dim in dims:
        if dim in var.coords:
            per_dim.append([_coord_str(v) for v in var.coords[dim].values])
        else:
            per_dim.append([str(k) for k in range(var.sizes[dim])])
    if not dims:
        return np.array([str(var.name)], dtype=object)
    grids = np.meshgrid(*[np.array(p, dtype=object) for p in per_dim], indexing="ij")
    flat = [g.ravel() for g in grids]
    return np.array(
        [f"{var.name}[{', '.join(parts)}]" for parts in zip(*flat, strict=True)], dtype=object
    )


def _coord_str(value: Any) -> str:
    return str(value.item() if isinstance(value, np.generic) else value)


def _select_elements(posterior: xr.Dataset, names: list[str]) -> list[_Selection]:
    selection = []
    for name in names:
        values, dims = _values(posterior, name, "idata")
        keep = _kept_mask(name, values, dims).ravel()
        n_skipped = int(keep.size - keep.sum())
        if n_skipped:
            _log.debug(
                "diagnose: skipping %d redundant or constant elements of %s.", n_skipped, name
            )
        if not keep.any():
            continue
        labels = _element_labels(posterior[name], dims)
        index = np.flatnonzero(keep)
        selection.append(_Selection(name, dims, index, list(labels[index])))
    return selection


def _stack(posterior: xr.Dataset, selection: list[_Selection], arg: str) -> np.ndarray:
    """The selected elements of every variable as one array (chain, draw, n_elements)."""
    blocks = []
    for sel in selection:
        values, dims = _values(posterior, sel.name, arg)
        if dims != sel.dims:
            raise ValueError(
                f"Posterior variable {sel.name!r} of {arg} has element dims {dims}, but "
                f"idata's has {sel.dims}; before must be the same posterior before relabelling."
            )
        flat = values.reshape(*values.shape[:2], -1)
        if flat.shape[2] <= sel.flat_index.max():
            raise ValueError(
                f"Posterior variable {sel.name!r} of {arg} has shape {values.shape[2:]} per "
                "draw, which differs from idata's; before must be the same posterior before "
                "relabelling."
            )
        blocks.append(flat[:, :, sel.flat_index])
    return np.concatenate(blocks, axis=2)


# --------------------------------------------------------------------------- statistics


def _stats_table(draws: np.ndarray, selection: list[_Selection]) -> pd.DataFrame:
    """R-hat, bulk/tail ESS, MCSE, mean and sd of every column of ``draws``."""
    da = xr.DataArray(draws, dims=(*_SAMPLE_DIMS, "parameter"))
    return pd.DataFrame(
        {
            "parameter": [label for sel in selection for label in sel.labels],
            "variable": [sel.name for sel in selection for _ in sel.labels],
            "rhat": np.asarray(azs.rhat(da, method="rank").values, dtype=float),
            "ess_bulk": np.asarray(azs.ess(da, method="bulk").values, dtype=float),
            "ess_tail": np.asarray(
                azs.ess(da, method="tail", prob=TAIL_ESS_PROB).values, dtype=float
            ),
            "mcse_mean": np.asarray(azs.mcse(da, method="mean").values, dtype=float),
            "mean": draws.mean(axis=(0, 1)),
            "sd": draws.reshape(-1, draws.shape[2]).std(axis=0, ddof=1),
        }
    )


def _ok(table: pd.DataFrame, rhat_max: float, ess_min: float) -> pd.Series:
    # NaN compares False, so an R-hat or ESS that could not be computed is not ok.
    return (
        (table["rhat"] <= rhat_max)
        & (table["ess_bulk"] >= ess_min)
        & (table["ess_tail"] >= ess_min)
    )


def _first_present(dataset: xr.Dataset | None, names: tuple[str, ...]) -> xr.DataArray | None:
    if dataset is None:
        return None
    for name in names:
        if name in dataset.data_vars:
            return dataset[name]
    return None


def _sampler_stats(idata: xr.DataTree) -> dict[str, Any]:
    stats = idata["sample_stats"].to_dataset() if "sample_stats" in idata.children else None
    out: dict[str, Any] = {
        "n_divergent": None,
        "max_treedepth_fraction": None,
        "max_tree_depth": None,
        "ebfmi": None,
    }
    diverging = _first_present(stats, _DIVERGING)
    if diverging is not None:
        out["n_divergent"] = int(np.count_nonzero(np.asarray(diverging.values, dtype=bool)))
    flag = _first_present(stats, _MAX_DEPTH_FLAG)
    if flag is not None and flag.size:
        out["max_treedepth_fraction"] = float(np.asarray(flag.values, dtype=bool).mean())
    depth = _first_present(stats, _TREE_DEPTH)
    if depth is not None and depth.size:
        out["max_tree_depth"] = int(np.max(depth.values))
    energy = _first_present(stats, _ENERGY)
    if energy is not None:
        if all(d in energy.dims for d in _SAMPLE_DIMS) and energy.sizes["draw"] > 2:
            # E-BFMI = sum(diff(E)^2) / sum((E - mean E)^2) per chain (Betancourt 2016).
            ebfmi = azs.bfmi(energy.transpose(*_SAMPLE_DIMS, ...))
            out["ebfmi"] = np.asarray(ebfmi.values, dtype=float).reshape(-1)
        else:
            _log.warning(
                "diagnose: the energy statistic has dims %s; E-BFMI needs (chain, draw) with "
                "more than 2 draws and is reported as not available.",
                energy.dims,
            )
    return out


# --------------------------------------------------------------------------- verdict


def _worst(table: pd.DataFrame, column: str, largest: bool) -> tuple[float, str]:
    values = table[column]
    if values.isna().any():
        row = table[values.isna()].iloc[0]
        return float("nan"), str(row["parameter"])
    row = table.loc[values.idxmax() if largest else values.idxmin()]
    return float(row[column]), str(row["parameter"])


def _verdict(report: DiagnosticsReport, with_component: set[str]) -> str:
    """One paragraph: what failed (worst values), what is fine, what to do, what is missing.

    ``with_component`` names the checked variables that have a ``component`` dim, whose R-hat
    label switching can inflate.
    """
    table = report.table
    failed: list[str] = []
    fine: list[str] = []
    advice: list[str] = []
    unavailable: list[str] = []

    rhat, rhat_at = _worst(table, "rhat", largest=True)
    n_bad_rhat = int((~(table["rhat"] <= report.rhat_max)).sum())
    if report.n_chains < 2:
        failed.append("R-hat not available with one chain (it compares chains)")
        advice.append("run at least 2 chains (4 is usual), since R-hat compares chains")
    elif n_bad_rhat:
        if np.isnan(rhat):
            what = f"R-hat could not be computed (e.g. {rhat_at})"
        else:
            what = f"R-hat is {rhat:.3f} at {rhat_at}"
        failed.append(
            f"{what}, above {report.rhat_max:g} for {n_bad_rhat} of {len(table)} parameters"
        )
        bad_vars = set(table.loc[~(table["rhat"] <= report.rhat_max), "variable"])
        switched = sorted(bad_vars & with_component)
        if switched and report.before_table is None:
            advice.append(
                "if the posterior has not been relabelled, relabel it first "
                "(bayesgmm.relabel.relabel), because chains that use different component "
                f"labels inflate the R-hat of {', '.join(switched)}; if it has, run more "
                "tuning and draws or fit fewer components"
            )
        elif switched:
            advice.append(
                "the chains still disagree after relabelling, so they may sit in different "
                "modes rather than different labellings: run more tuning and draws, try "
                "relabelling with method='stephens', or fit fewer components (two "
                "components sharing one cluster never converge)"
            )
        else:
            advice.append("run more tuning and draws, and check the chains' trace plots")
    else:
        fine.append(f"R-hat is at most {rhat:.3f} (≤ {report.rhat_max:g})")

    low_ess = []
    for column, kind in (("ess_bulk", "bulk"), ("ess_tail", "tail")):
        value, at = _worst(table, column, largest=False)
        if not value >= report.ess_min:
            low_ess.append(f"the smallest {kind} ESS is {value:.0f} at {at}")
    if low_ess:
        failed.append(" and ".join(low_ess) + f" (below {report.ess_min:g})")
        advice.append(
            "draw more samples (ESS grows with the number of draws; a low tail ESS also calls "
            "for more draws before trusting intervals)"
        )
    else:
        fine.append(
            f"bulk and tail ESS are at least {report.min_ess_bulk:.0f} and "
            f"{report.min_ess_tail:.0f} (≥ {report.ess_min:g})"
        )

    if report.n_divergent is None:
        unavailable.append("divergences")
    elif report.n_divergent:
        failed.append(
            f"{report.n_divergent} of {report.n_draws_total} transitions diverged "
            f"({100 * report.n_divergent / report.n_draws_total:.1f}%)"
        )
        advice.append(
            "raise target_accept (e.g. 0.95 or 0.99); if divergences persist, a nearly empty "
            "component is the usual cause, so try fewer components or tighter priors"
        )
    else:
        fine.append(f"none of the {report.n_draws_total} transitions diverged")

    if report.ebfmi is None:
        unavailable.append("E-BFMI (no energy statistic)")
    else:
        low = np.flatnonzero(report.ebfmi < report.ebfmi_min)
        if low.size:
            failed.append(
                f"E-BFMI is {np.min(report.ebfmi):.2f} (below {report.ebfmi_min:g}) in "
                f"{low.size} of {report.ebfmi.size} chains"
            )
            advice.append(
                "the sampler explores the energy distribution poorly: use stronger priors on "
                "the scales, standardise X, or reparameterise"
            )
        else:
            fine.append(f"E-BFMI is at least {np.min(report.ebfmi):.2f} in every chain")

    if report.max_treedepth_fraction is None:
        unavailable.append("tree-depth saturation")
    elif report.max_treedepth_fraction > 0:
        advice.append(
            f"{100 * report.max_treedepth_fraction:.1f}% of transitions hit the maximum tree "
            "depth, which costs efficiency but not correctness; raise max_treedepth or "
            "standardise X"
        )

    parts = []
    if report.passed:
        parts.append("All convergence checks passed: " + "; ".join(fine) + ".")
        parts.append("Posterior summaries and intervals of these parameters can be trusted.")
    else:
        parts.append("Convergence checks failed: " + "; ".join(failed) + ".")
        if fine:
            parts.append("Fine: " + "; ".join(fine) + ".")
    if report.before_table is not None and report.n_chains >= 2:
        before = _max_or_nan(report.before_table["rhat"])
        parts.append(
            f"Relabelling changed the largest R-hat from {before:.3f} to {report.max_rhat:.3f}."
        )
    if report.em_start_note:
        parts.append(report.em_start_note)
    if advice:
        parts.append("To do: " + "; ".join(advice) + ".")
    if unavailable:
        parts.append("Not available from this sampler: " + ", ".join(unavailable) + ".")
    return " ".join(parts)


def _em_start_note(idata: xr.DataTree) -> str | None:
    """The verdict's sentence on a non-converged or degenerate EM start (``em`` group)."""
    if "em" not in idata.children:
        return None
    em = idata["em"]
    problems: list[str] = []
    advice: list[str] = []
    if not bool(em.attrs.get("converged", 1)):
        n_iter = em.attrs.get("n_iter")
        after = ""
        if n_iter is not None:
            after = f" (stopped after {int(n_iter)} iteration{'' if int(n_iter) == 1 else 's'})"
        problems.append(f"did not converge{after}")
        advice.append("more EM restarts (n_init) or standardised X")
    if "degenerate" in em.data_vars:
        collapsed = np.flatnonzero(np.asarray(em["degenerate"].values, dtype=bool)).tolist()
        if collapsed:
            problems.append(
                f"has collapsed (degenerate) component(s) {collapsed}, shrunk onto too few "
                "points or onto the covariance floor"
            )
            advice.append("fewer components")
    if not problems:
        return None
    return (
        "The EM solution that started the chains and is the relabelling pivot "
        + " and ".join(problems)
        + ", so the chains may sit near a poor or spurious mode and their labels follow it: "
        "check the trace plots and refit with " + " or ".join(advice) + "."
    )


# --------------------------------------------------------------------------- helpers


def _max_or_nan(values: pd.Series) -> float:
    return float("nan") if values.isna().any() else float(values.max())


def _min_or_nan(values: pd.Series) -> float:
    return float("nan") if values.isna().any() else float(values.min())


def _fmt(value: Any) -> str:
    if value is None:
        return "not available"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
