"""Label switching: give every posterior draw the same component labelling.

A mixture's likelihood is invariant to permuting its components, so chains (and, when they
mix well, draws within a chain) may visit different labellings. Summaries, R-hat and
intervals of component parameters are meaningless until every draw is permuted to a common
labelling. Two methods:

``"pivot"``
    Match each draw to a pivot solution (the EM fit by default) by a minimum-cost assignment
    (:func:`scipy.optimize.linear_sum_assignment`). The cost of giving draw component ``j``
    the pivot label ``k`` is the cross-entropy ``-sum_i r_ij log p_ik`` between the draw's
    allocation probabilities ``r`` and the pivot's ``p``: it works in any dimension, unlike
    ordering constraints, which only identify 1-D means.
``"stephens"``
    Stephens' (2000) algorithm: starting from the pivot labelling, alternate between the
    mean allocation matrix ``Q`` of the relabelled draws and, per draw, the permutation that
    minimises the Kullback-Leibler divergence from ``Q``; stop when no permutation changes.

Both return the permutation of every draw, so that ``new[..., k] = old[..., perm[k]]`` for
every variable with a ``component`` dimension.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import xarray as xr
from scipy.optimize import linear_sum_assignment

# Per-draw responsibilities: compiled, parallel over draws, tested against _numerics.
from ._draw_kernels import responsibility_draws
from ._validation import check_choice
from .exceptions import BayesGMMDeprecationWarning

__all__ = [
    "apply_permutations",
    "find_permutations",
    "relabel",
]

_LOG_FLOOR = 1e-300
# Allocation probabilities of every draw on every point can be large; the cost matrices only
# need enough points to tell the components apart.
MAX_RELABEL_POINTS = 2000


def _assign(cost: np.ndarray) -> np.ndarray:
    """Permutation ``perm`` with ``perm[k]`` = the draw component given label ``k``."""
    rows, cols = linear_sum_assignment(cost)  # rows: draw components, cols: labels
    perm = np.empty(cost.shape[0], dtype=np.int64)
    perm[cols] = rows
    return perm


def _permutations_to(probs: np.ndarray, log_target: np.ndarray) -> np.ndarray:
    """Per-draw permutations minimising ``-sum_i p_ij log target_ik``."""
    # cost[s, j, k] = -sum_i probs[s, i, j] * log_target[i, k]
    cost = -np.einsum("sij,ik->sjk", probs, log_target)
    return np.stack([_assign(c) for c in cost])


def find_permutations(
    probs: np.ndarray,
    pivot_probs: np.ndarray,
    *,
    method: str = "pivot",
    max_iter: int = 100,
) -> tuple[np.ndarray, int]:
    """Per-draw permutations that align allocation probabilities with a pivot.

    Parameters
    ----------
    probs : ndarray of shape (n_draws, n_samples, n_components)
        Each draw's allocation probabilities.
    pivot_probs : ndarray of shape (n_samples, n_components)
        The pivot's allocation probabilities (labels to align to).
    method : {"pivot", "stephens"}
    max_iter : int, default=100
        Iteration cap of Stephens' algorithm.

    Returns
    -------
    perms : ndarray of shape (n_draws, n_components)
        ``perms[s, k]`` is the component of draw ``s`` that receives label ``k``.
    n_iter : int
        Stephens iterations used (0 for ``"pivot"``).
    """
    check_choice("method", method, ("pivot", "stephens"))
    perms = _permutations_to(probs, np.log(np.maximum(pivot_probs, _LOG_FLOOR)))
    if method == "pivot":
        return perms, 0
    for n_iter in range(1, max_iter + 1):
        relabelled = np.take_along_axis(probs, perms[:, None, :], axis=2)
        q = relabelled.mean(axis=0)
        new = _permutations_to(probs, np.log(np.maximum(q, _LOG_FLOOR)))
        if np.array_equal(new, perms):
            return perms, n_iter
        perms = new
    return perms, max_iter


def apply_permutations(
    dataset: xr.Dataset, perms: np.ndarray, *, dim: str = "component"
) -> xr.Dataset:
    """Permute the ``dim`` axis of every variable that has it, draw by draw.

    Parameters
    ----------
    dataset : xarray.Dataset
        Posterior with dims ``(chain, draw, ...)``.
    perms : ndarray of shape (n_chains, n_draws, n_components)
        ``new[c, s, k] = old[c, s, perms[c, s, k]]``.
    """
    out: dict[str, Any] = {}
    for name, var in dataset.data_vars.items():
        if dim not in var.dims:
            out[name] = var
            continue
        var = var.transpose("chain", "draw", dim, ...)
        values = var.values
        index = perms.reshape(perms.shape + (1,) * (values.ndim - 3))
        permuted = np.take_along_axis(values, np.broadcast_to(index, values.shape), axis=2)
        out[name] = var.copy(data=permuted).transpose(*dataset[name].dims)
    return xr.Dataset(out, coords=dataset.coords, attrs=dataset.attrs)


def _draw_arrays(posterior: xr.Dataset, covariance_type: str) -> tuple[np.ndarray, ...]:
    """Weights, means and precision factors with (chain, draw) flattened to one axis."""
    tail = {
        "full": ("component", "feature", "feature_bis"),
        "tied": ("feature", "feature_bis"),
        "diag": ("component", "feature"),
        "spherical": ("component",),
    }[covariance_type]
    out = []
    for name, dims in (
        ("weights", ("component",)),
        ("means", ("component", "feature")),
        ("precisions_cholesky", tail),
    ):
        var = posterior[name].transpose("chain", "draw", *dims)
        out.append(var.values.reshape(-1, *var.shape[2:]))
    return tuple(out)


def relabel(
    posterior: xr.Dataset,
    X: np.ndarray,
    pivot: Any,
    *,
    covariance_type: str,
    method: str = "pivot",
    max_points: int = MAX_RELABEL_POINTS,
    random_state: int = 0,
) -> tuple[xr.Dataset, xr.DataArray, dict[str, Any]]:
    """Relabel a mixture posterior so that every draw uses the pivot's labels.

    Parameters
    ----------
    posterior : xarray.Dataset
        Draws with dims ``(chain, draw, component, ...)``, holding ``weights``, ``means`` and
        ``precisions_cholesky`` in the layout of :mod:`bayesgmm._numerics`.
    X : ndarray of shape (n_samples, n_features)
        The data the allocation probabilities are computed on.
    pivot : fitted EMGaussianMixture, or ndarray of shape (n_samples, n_components)
        The labelling to align to, or its allocation probabilities on ``X``.
    covariance_type : {"full", "tied", "diag", "spherical"}
    method : {"pivot", "stephens"}, default="pivot"
    max_points : int, default=2000
        At most this many points (a fixed random subset) enter the cost matrices.
    random_state : int, default=0
        Seed of that subset.

    Returns
    -------
    relabelled : xarray.Dataset
        ``posterior`` with every ``component`` axis permuted.
    permutations : xarray.DataArray of int, dims (chain, draw, component)
        ``relabelled[..., k] = posterior[..., permutations[..., k]]``.
    info : dict
        ``method``, ``n_iter`` (Stephens), ``n_points`` used and ``n_changed`` (draws whose
        labelling changed).
    """
    check_choice("method", method, ("pivot", "stephens"))
    X = np.asarray(X, dtype=np.float64)
    rng = np.random.default_rng(random_state)
    idx = np.arange(X.shape[0])
    if X.shape[0] > max_points:
        idx = np.sort(rng.choice(X.shape[0], size=max_points, replace=False))
    pivot_probs = (
        pivot.predict_proba(X[idx]) if hasattr(pivot, "predict_proba") else np.asarray(pivot)[idx]
    )
    n_chains, n_draws = posterior.sizes["chain"], posterior.sizes["draw"]
    weights, means, pc = _draw_arrays(posterior, covariance_type)
    probs = responsibility_draws(X[idx], weights, means, pc, covariance_type)
    perms, n_iter = find_permutations(probs, pivot_probs, method=method)
    perms = perms.reshape(n_chains, n_draws, -1)
    identity = np.arange(perms.shape[-1])
    relabelled = apply_permutations(posterior, perms)
    perm_da = xr.DataArray(
        perms,
        dims=("chain", "draw", "component"),
        coords={
            d: posterior.coords[d] for d in ("chain", "draw", "component") if d in posterior.coords
        },
        name="permutation",
    )
    info = {
        "method": method,
        "n_iter": n_iter,
        "n_points": int(idx.size),
        "n_changed": int((perms != identity).any(axis=-1).sum()),
    }
    return relabelled, perm_da, info


def allocation_probabilities(*args: Any, **kwargs: Any) -> np.ndarray:
    """Deprecated name of the per-draw responsibilities; use
    :func:`bayesgmm.responsibilities.responsibility_draws` (the same numbers, with a memory
    check), or ``BayesGaussianMixture.responsibility_draws``."""
    warnings.warn(
        "bayesgmm.relabel.allocation_probabilities is deprecated: the per-draw responsibilities "
        "are bayesgmm.responsibilities.responsibility_draws everywhere now.",
        BayesGMMDeprecationWarning,
        stacklevel=2,
    )
    return responsibility_draws(*args, **kwargs)
