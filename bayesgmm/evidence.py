"""Marginal likelihood ``p(y | K)`` of a fitted mixture by bridge sampling, and ``p(K | y)``.

The evidence of a fitted mixture (the stock model of :func:`bayesgmm.build_model` or a
custom model) is estimated from the NUTS draws with the iterative "optimal" bridge sampler
of Meng & Wong (1996), in the form of Gronau et al. (2017) with a multivariate normal
proposal:

* the target is the unnormalised posterior on the unconstrained scale, exactly as PyMC
  defines it: ``model.compile_logp(jacobian=True)`` evaluated at the value variables (priors
  with their normalising constants, the likelihood, and the log-Jacobians of PyMC's default
  transforms), so ``∫ q(θ) dθ = p(y | K)``. By default it is evaluated by the Numba twin of
  that graph in :mod:`bayesgmm._logdensity` (the function NUTS sampled; the test suite proves
  the two equal), which needs no PyTensor compilation; ``target="pymc"`` uses the graph;
* the draws of every chain are split in halves: the first halves fit the proposal, the
  second halves (and twice as many fresh proposal draws, by default) enter the bridge;
* label switching (Frühwirth-Schnatter 2004): the posterior of a mixture is invariant under
  the ``K!`` permutations of the component labels, and NUTS explores one or a few of these
  copies. The proposal is therefore *symmetrised*: a normal ``g`` is fitted to draws
  relabelled (in the unconstrained space) to one labelling, and the bridge uses
  ``g_sym(θ) = (1/K!) Σ_σ g(σ θ)``. Every permutation acts linearly on ``θ`` with
  ``|det| = 1`` (it permutes the centred log-weights, means and covariance blocks), so
  ``g_sym`` is a normalised density, and ``q`` and ``g_sym`` are both symmetric functions.
  The bridge estimator uses the draws only through ``q`` and ``g_sym``, so it is *exact*
  whatever labelling the draws carry and whether or not the sampler visited the other
  copies; the estimate does not depend on how the draws were relabelled (the proposal is fitted
  after an internal relabelling that starts from the EM solution, so it does not either).
  The cost grows with ``K!``: ``max_labellings`` caps it (720, i.e. ``K <= 6``, by default).
* a **custom model** (``BayesGaussianMixture(model=fn)``, :mod:`bayesgmm._custom`) is
  bridged on its own PyMC log-posterior, ``model.logp(jacobian=True)`` of the model ``fn``
  builds again on the observed data, over its value variables (hyper-priors included) on
  the unconstrained scale: one estimator, two targets. Its draws, in the data's units as
  it was sampled, are mapped there by the model's transforms (``transform.forward`` with
  each variable's parents at the same draw). Relabelling acts on every value variable with
  a ``component`` dim (the stock ``weights``/``means``/``sigma`` without dims too, and the
  ``chol_cov_j`` of ``"full"`` as blocks): the permutation of the centred log-weights for
  the simplex, of the coordinates for untransformed, log and log-odds variables, all
  volume-preserving; a component variable under another transform is refused. Because
  a variable without a ``component`` dim is left unchanged, the log-posterior's invariance
  under label swaps is checked at a few draws, and a model that is not label-invariant
  (component-specific priors, a per-component variable without dims) is reported not
  estimable. A fit loaded from a file has no model function and is not estimable;
* units: the stock model's evidence is that of ``X`` in the data's units, like a custom
  model's. (The stock sampler runs on standardised data ``Z = (X - loc) / scale``;
  ``log p(X) = log p(Z) - n_samples * sum(log scale)``, and the log-posterior densities at
  corresponding unconstrained points differ by that and the log-Jacobian of the change of
  units, tested in ``tests/test_evidence_custom.py``.)
* the Monte Carlo standard error is Frühwirth-Schnatter's (2004) approximation of the relative
  mean squared error of the estimate, with the autocorrelation of the posterior draws taken
  into account through their effective sample size.

The evidence is reported only for posteriors whose convergence checks passed
(``bgm.diagnostics_.passed``) and whose proposal overlaps the posterior well enough (both
sides of the bridge keep an effective share of their weights, the iteration converges and the
standard error is small); otherwise the result says "not estimable" and why, without a number.

References
----------
Meng, X.-L. & Wong, W. H. (1996). Simulating ratios of normalizing constants via a simple
identity. *Statistica Sinica* 6, 831-860.
Frühwirth-Schnatter, S. (2004). Estimating marginal likelihoods for mixture and Markov
switching models using bridge sampling techniques. *Econometrics Journal* 7, 143-167.
Gronau, Q. F. et al. (2017). A tutorial on bridge sampling. *J. Math. Psych.* 81, 80-97.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from scipy.special import gammaln, logsumexp

from ._validation import check_positive, check_random_state

if TYPE_CHECKING:
    from .bayes import BayesGaussianMixture

__all__ = [
    "EvidenceResult",
    "KPosterior",
    "log_marginal_likelihood",
    "posterior_over_k",
]

_log = logging.getLogger("bayesgmm")
_LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class EvidenceResult:
    """Bridge-sampling estimate of the log marginal likelihood ``log p(y | K)``.

    Attributes
    ----------
    log_evidence : float or None
        The estimate, in nats; ``None`` when ``estimable`` is False.
    standard_error : float or None
        Monte Carlo standard error of ``log_evidence`` (Frühwirth-Schnatter's relative-MSE
        approximation); ``None`` when not estimable.
    n_iterations : int
        Iterations of the bridge fixed-point scheme (0 when it did not run).
    estimable : bool
        Whether the estimate passed every check.
    reason : str
        Why it is not estimable, or a one-line summary when it is.
    n_fit, n_bridge, n_proposal : int
        Posterior draws used to fit the proposal, posterior draws and proposal draws in the
        bridge.
    n_labellings : int
        Permutations the proposal was symmetrised over (``K!``).
    overlap : float
        Smaller of the two sides' effective-sample-size fractions of the bridge terms (1 when
        the proposal equals the posterior; near 0 when they barely overlap). NaN if not run.
    autocorrelation_time : float
        Integrated autocorrelation time of the posterior-side bridge terms (1 for independent
        draws). NaN if not run.
    """

    log_evidence: float | None
    standard_error: float | None
    n_iterations: int
    estimable: bool
    reason: str
    n_fit: int = 0
    n_bridge: int = 0
    n_proposal: int = 0
    n_labellings: int = 1
    overlap: float = float("nan")
    autocorrelation_time: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dictionary (for tables and JSON)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


# --------------------------------------------------------------------------- parameter layout


@dataclass(frozen=True)
class _Layout:
    """The unconstrained vector of the stock model: PyMC's value variables, in model order.

    ``[weights_simplex__ (K-1), means (K*D), covariance block]``, the covariance block being K
    packed Cholesky factors (``"full"``), one (``"tied"``), or log standard deviations
    ``(K, D)`` / ``(K,)``; the same layout as :mod:`bayesgmm._logdensity`.
    """

    n_components: int
    n_features: int
    covariance_type: str

    @property
    def n_cov_per_component(self) -> int:
        d = self.n_features
        return {"full": d * (d + 1) // 2, "tied": 0, "diag": d, "spherical": 1}[
            self.covariance_type
        ]

    @property
    def dim(self) -> int:
        from ._logdensity import n_unconstrained

        return n_unconstrained(self.n_components, self.n_features, self.covariance_type)

    def permute(self, theta: np.ndarray, perm: np.ndarray) -> np.ndarray:
        """``theta`` (n, dim) with component ``j`` of the result taken from ``perm[j]``.

        Linear in ``theta`` with determinant ±1; the log-posterior is invariant under it.
        """
        k, d = self.n_components, self.n_features
        n = theta.shape[0]
        y = theta[:, : k - 1]
        z = np.concatenate([y, -y.sum(axis=1, keepdims=True)], axis=1)[:, perm]
        mu = theta[:, k - 1 : k - 1 + k * d].reshape(n, k, d)[:, perm].reshape(n, k * d)
        rest = theta[:, k - 1 + k * d :]
        c = self.n_cov_per_component
        if c:
            rest = rest.reshape(n, k, c)[:, perm].reshape(n, k * c)
        return np.concatenate([z[:, : k - 1], mu, rest], axis=1)

    def permutations(self) -> list[np.ndarray]:
        return [np.asarray(p) for p in itertools.permutations(range(self.n_components))]


def _theta_from_posterior(posterior: Any, layout: _Layout) -> np.ndarray:
    """Unconstrained draws ``(chain, draw, dim)`` from the posterior group of ``idata_``."""
    from ._logdensity import to_unconstrained

    cov = layout.covariance_type
    w = posterior["weights"].transpose("chain", "draw", "component").values
    mu = posterior["means"].transpose("chain", "draw", "component", "feature").values
    if cov in ("full", "tied"):
        dims = ("component", "feature", "feature_bis") if cov == "full" else None
        dims = dims or ("feature", "feature_bis")
        param = posterior["chol"].transpose("chain", "draw", *dims).values
    else:
        dims = ("component", "feature") if cov == "diag" else ("component",)
        param = posterior["sigma"].transpose("chain", "draw", *dims).values
    n_chains, n_draws = w.shape[:2]
    out = np.empty((n_chains, n_draws, layout.dim))
    for c in range(n_chains):
        for s in range(n_draws):
            out[c, s] = to_unconstrained(w[c, s], mu[c, s], param[c, s], cov)
    return out


def _theta_from_em(em: Any, layout: _Layout) -> np.ndarray:
    """The EM solution on the unconstrained scale (the reference labelling)."""
    from ._logdensity import to_unconstrained

    cov = layout.covariance_type
    if cov in ("full", "tied"):
        param = np.linalg.cholesky(em.covariances_)
    else:
        param = np.sqrt(em.covariances_)
    w = np.clip(np.asarray(em.weights_, dtype=float), 1e-300, None)
    return to_unconstrained(w / w.sum(), em.means_, param, cov)


def _pymc_log_target(X: np.ndarray, layout: _Layout, priors: Any) -> Callable:
    """``theta (n, dim) -> (n,)``: PyMC's compiled log-posterior of ``build_model``.

    Priors with their normalising constants, likelihood and transform log-Jacobians, i.e. the
    unnormalised posterior density on the unconstrained scale whose integral is ``p(y | K)``.
    """
    from .model import build_model

    cov = layout.covariance_type
    if cov == "full" and layout.n_components == 1:
        # One component: "full" and "tied" are the same model (same prior, same packed value
        # variable); build_model(K=1, "full") currently fails on its "chol" dims.
        cov = "tied"
    model = build_model(X, layout.n_components, covariance_type=cov, priors=priors)
    flat = _FlatModel(model)
    if flat.dim != layout.dim:  # pragma: no cover - guards the layout assumption
        raise RuntimeError(
            f"the PyMC model has {flat.dim} unconstrained values, expected {layout.dim}; "
            "log_marginal_likelihood supports the stock model of build_model only."
        )
    return flat.log_density


def _compiled_log_target(X: np.ndarray, layout: _Layout, priors: Any) -> Callable:
    """``theta (n, dim) -> (n,)``: the Numba twin of PyMC's log-posterior (what NUTS samples).

    :mod:`bayesgmm._logdensity` writes out the same function as ``build_model``'s graph
    (``tests/test_fastpath_proof.py`` proves value and gradient equal on a grid of shapes);
    it needs no PyTensor compilation.
    """
    from ._logdensity import LogDensitySpec, log_density_and_grad
    from .model import Priors

    spec = LogDensitySpec.from_data(
        X, layout.n_components, layout.covariance_type, Priors() if priors is None else priors
    )

    def log_target(theta: np.ndarray) -> np.ndarray:
        return np.array([log_density_and_grad(row, spec)[0] for row in theta])

    return log_target


# --------------------------------------------------------------------------- any PyMC model

#: Transforms of a value variable under which permuting its ``component`` axis on the
#: unconstrained scale is the same as permuting the constrained values (one elementwise map
#: for every element, so the log-Jacobian is a symmetric sum).
_ELEMENTWISE_TRANSFORMS = ("LogTransform", "LogOddsTransform", "LogExpM1")

#: The component layout of the stock variables, for a custom model that declares no dims.
_STOCK_DIMS: dict[str, tuple[str, ...]] = {
    "weights": ("component",),
    "means": ("component", "feature"),
}


class _FlatModel:
    """A PyMC model's value variables as one flat vector on the unconstrained scale.

    The layout is ``model.value_vars`` in model order, each raveled (C order), exactly the
    space PyMC's NUTS samples. :meth:`log_density` is ``model.logp(jacobian=True)``: priors
    with their normalising constants, the likelihood, any potentials and the log-Jacobians
    of the transforms, whose integral over the flat vector is the marginal likelihood.
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.value_vars = list(model.value_vars)
        self.rvs = [model.values_to_rvs[v] for v in self.value_vars]
        point = model.initial_point()
        self.shapes = [tuple(np.shape(point[v.name])) for v in self.value_vars]
        sizes = [int(np.prod(shape, dtype=int)) for shape in self.shapes]
        self.bounds = np.cumsum([0, *sizes])
        self.dim = int(self.bounds[-1])
        self._logp: Callable | None = None
        self._forward: Callable | None = None

    def _split(self, row: np.ndarray) -> list[np.ndarray]:
        b = self.bounds
        return [row[b[j] : b[j + 1]].reshape(shape) for j, shape in enumerate(self.shapes)]

    def log_density(self, theta: np.ndarray) -> np.ndarray:
        """``theta (n, dim) -> (n,)``: the model's compiled log-posterior, row by row."""
        if self._logp is None:
            self._logp = self.model.compile_fn(
                outs=self.model.logp(jacobian=True, sum=True),
                inputs=self.value_vars,
                point_fn=False,
                on_unused_input="ignore",
            )
        out = np.empty(theta.shape[0])
        for i, row in enumerate(theta):
            out[i] = self._logp(*self._split(row))
        return out

    def to_unconstrained(self, values: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        """``(n, dim)`` from constrained draws ``{free variable: (n, *shape)}``.

        Each value is ``transform.forward(value, *rv_inputs)`` with the variable's parents at
        the same draw's values, as PyMC maps an initial point.
        """
        if self._forward is None:
            import pytensor
            from pytensor.graph.replace import graph_replace

            holders = {rv: rv.type() for rv in self.rvs}
            outs = []
            for rv in self.rvs:
                transform = self.model.rvs_to_transforms.get(rv)
                if transform is None:
                    outs.append(holders[rv])
                    continue
                inputs = graph_replace(list(rv.owner.inputs), holders, strict=False)
                outs.append(transform.forward(holders[rv], *inputs))
            self._forward = pytensor.function(
                [holders[rv] for rv in self.rvs], outs, on_unused_input="ignore"
            )
        columns = [np.asarray(values[rv.name], dtype=np.float64) for rv in self.rvs]
        out = np.empty((n, self.dim))
        for i in range(n):
            pieces = self._forward(*(c[i] for c in columns))
            out[i] = np.concatenate([np.ravel(p) for p in pieces])
        return out

    def label_permutation(
        self, k: int, covariance_type: str
    ) -> tuple[Callable[[np.ndarray, np.ndarray], np.ndarray] | None, str]:
        """The relabelling ``(theta, perm) -> theta`` on the flat vector, or why not.

        Every value variable with a ``component`` dim (declared, or the stock layout of
        ``weights``/``means``/``sigma``) is permuted along that axis; the stock ``chol_cov_j``
        of ``"full"`` are permuted as blocks; all others are left alone. On the unconstrained
        scale this is a permutation of coordinates (or, for the simplex of ``weights``, the
        permutation of the centred log-weights), so it preserves volume; it equals the
        relabelling of the constrained draws for untransformed, log, log-odds and simplex
        variables, and other transforms on a component axis are refused.
        """
        stock = dict(_STOCK_DIMS)
        stock["sigma"] = ("component", "feature") if covariance_type == "diag" else ("component",)
        axes: list[tuple[int, int, tuple[int, ...], int, bool]] = []
        blocks: dict[int, tuple[int, int]] = {}
        for j, (rv, shape) in enumerate(zip(self.rvs, self.shapes, strict=True)):
            name = rv.name
            lo, hi = int(self.bounds[j]), int(self.bounds[j + 1])
            dims = self.model.named_vars_to_dims.get(name) or stock.get(name)
            if covariance_type == "full" and name.startswith("chol_cov_"):
                tail = name.removeprefix("chol_cov_")
                if tail.isdigit() and int(tail) < k and not (dims and "component" in dims):
                    blocks[int(tail)] = (lo, hi)
                    continue
            if not dims or "component" not in dims:
                continue  # unchanged by relabelling
            axis = tuple(dims).index("component")
            transform = self.model.rvs_to_transforms.get(rv)
            kind = None if transform is None else type(transform).__name__
            simplex = kind == "SimplexTransform"
            if kind is not None and not simplex and kind not in _ELEMENTWISE_TRANSFORMS:
                return None, (
                    f"the free variable {name!r} has a 'component' dim and the transform {kind}; "
                    "relabelling is supported on the unconstrained scale only for "
                    "untransformed, log, log-odds and simplex variables"
                )
            if simplex and axis != len(dims) - 1:
                return None, (
                    f"the simplex variable {name!r} has its 'component' dim on axis {axis}, "
                    "not the last axis"
                )
            expected = k - 1 if simplex else k
            if len(shape) != len(dims) or shape[axis] != expected:
                return None, (
                    f"the free variable {name!r} has dims {tuple(dims)} but unconstrained "
                    f"shape {shape}; expected {expected} along 'component'"
                )
            axes.append((lo, hi, shape, axis, simplex))
        if blocks:
            sizes = {hi - lo for lo, hi in blocks.values()}
            if sorted(blocks) != list(range(k)) or len(sizes) != 1:
                return None, (
                    "the free covariance factors chol_cov_j are not one per component of equal size"
                )
        block_list = [blocks[j] for j in range(k)] if blocks else []

        def permute(theta: np.ndarray, perm: np.ndarray) -> np.ndarray:
            out = theta.copy()
            n = theta.shape[0]
            for lo, hi, shape, axis, simplex in axes:
                seg = theta[:, lo:hi].reshape(n, *shape)
                if simplex:
                    z = np.concatenate([seg, -seg.sum(axis=-1, keepdims=True)], axis=-1)
                    seg = z[..., perm][..., :-1]
                else:
                    seg = np.take(seg, perm, axis=axis + 1)
                out[:, lo:hi] = seg.reshape(n, hi - lo)
            for j, (lo, hi) in enumerate(block_list):
                src_lo, src_hi = block_list[perm[j]]
                out[:, lo:hi] = theta[:, src_lo:src_hi]
            return out

        return permute, ""


_NO_FUNCTION = (
    "not estimable: the posterior comes from the custom model {name}, whose function is not "
    "restored from a file (a loaded fit keeps only its name and source, and never runs it); "
    "refit with model=your_function to estimate the evidence."
)


def _stock_draws(posterior: Any, covariance_type: str) -> dict[str, np.ndarray]:
    """Constrained draws ``(chain, draw, ...)`` of every stock free variable a model may have."""
    out = {
        "weights": posterior["weights"].transpose("chain", "draw", "component").values,
        "means": posterior["means"].transpose("chain", "draw", "component", "feature").values,
    }
    if covariance_type in ("full", "tied"):
        rows, cols = np.tril_indices(posterior.sizes["feature"])  # PyMC packs row by row
        if covariance_type == "full":
            chol = (
                posterior["chol"]
                .transpose("chain", "draw", "component", "feature", "feature_bis")
                .values
            )
            for j in range(chol.shape[2]):
                out[f"chol_cov_{j}"] = chol[:, :, j][..., rows, cols]
        else:
            chol = posterior["chol"].transpose("chain", "draw", "feature", "feature_bis").values
            out["chol_cov"] = chol[..., rows, cols]
    else:
        dims = ("component", "feature") if covariance_type == "diag" else ("component",)
        out["sigma"] = posterior["sigma"].transpose("chain", "draw", *dims).values
    return out


def _custom_target(
    bgm: BayesGaussianMixture, posterior: Any, X: np.ndarray, k: int
) -> tuple[_Target | None, str]:
    """The bridge's target for a custom-model fit: its own PyMC log-posterior, or why not."""
    from ._custom import build, stock_values

    fn = bgm.model
    if not callable(fn):
        return None, _NO_FUNCTION.format(name=bgm.idata_.attrs.get("custom_model"))
    cov = bgm.covariance_type
    model = build(fn, X, k, cov, bgm.priors)  # the data's units, as it was sampled
    flat = _FlatModel(model)
    stock = _stock_draws(posterior, cov)
    n_chains, n_draws = int(posterior.sizes["chain"]), int(posterior.sizes["draw"])
    values: dict[str, np.ndarray] = {}
    for rv in flat.rvs:
        if rv.name in stock:
            da = stock[rv.name]
        elif rv.name in posterior.data_vars:
            var = posterior[rv.name]
            dims = model.named_vars_to_dims.get(rv.name)
            if dims and all(d in var.dims for d in dims):
                da = var.transpose("chain", "draw", *dims).values
            else:
                da = var.transpose("chain", "draw", ...).values
        else:
            return None, (
                f"not estimable: the model function now builds a free variable {rv.name!r} "
                "that the fit's posterior does not hold (was the function changed since the "
                "fit?); refit with it."
            )
        values[rv.name] = da.reshape(n_chains * n_draws, *da.shape[2:])
    permute, why = flat.label_permutation(k, cov)
    if permute is None:
        return None, f"not estimable: {why}; the relabelled draws cannot be mapped."
    theta = flat.to_unconstrained(values, n_chains * n_draws)
    # The reference labelling: the EM solution, on the coordinates of the stock variables
    # that are free here (hyper-priors and non-centred parametrisations have no EM value).
    em = bgm.em_
    if cov in ("full", "tied"):
        factor = {"chol": np.linalg.cholesky(em.covariances_)}
    else:
        factor = {"sigma": np.sqrt(em.covariances_)}
    w = np.clip(np.asarray(em.weights_, dtype=float), 1e-300, None)
    start = stock_values({"weights": w / w.sum(), "means": em.means_, **factor}, cov, k)
    first = {key: v[:1] for key, v in values.items()}
    known = np.zeros(flat.dim, dtype=bool)
    for j, rv in enumerate(flat.rvs):
        if rv.name in start:
            first[rv.name] = start[rv.name][None]
            known[flat.bounds[j] : flat.bounds[j + 1]] = True
    reference = None
    if known.any():
        reference = flat.to_unconstrained(first, 1)[0]
        reference[~known] = np.nan
    return (
        _Target(
            draws=theta.reshape(n_chains, n_draws, flat.dim),
            log_density=flat.log_density,
            permute=permute,
            reference=reference,
            check_symmetry=True,
        ),
        "",
    )


@dataclass(frozen=True)
class _Target:
    """One model's side of the bridge: the unnormalised posterior on the unconstrained scale.

    Attributes
    ----------
    draws : ndarray of shape (n_chains, n_draws, dim)
        The posterior draws on that scale.
    log_density : callable
        ``theta (n, dim) -> (n,)``, the log-posterior whose integral is ``p(y | K)``.
    permute : callable
        ``(theta (n, dim), perm) -> (n, dim)``, component ``j`` taken from ``perm[j]``; a
        volume-preserving map under which ``log_density`` is invariant.
    reference : ndarray of shape (dim,) or None
        A point in the reference labelling (the EM solution), NaN on coordinates without
        one; None when there is none.
    check_symmetry : bool
        Verify numerically that ``log_density`` is invariant under ``permute`` (a custom
        model's label symmetry is not proven by the test suite).
    """

    draws: np.ndarray
    log_density: Callable[[np.ndarray], np.ndarray]
    permute: Callable[[np.ndarray, np.ndarray], np.ndarray]
    reference: np.ndarray | None
    check_symmetry: bool = False

    @property
    def dim(self) -> int:
        return int(self.draws.shape[-1])


def _stock_target(
    bgm: BayesGaussianMixture, posterior: Any, X: np.ndarray, k: int, target: str
) -> _Target:
    """The stock model's target: the compiled twin of ``build_model``'s graph, or the graph."""
    layout = _Layout(k, X.shape[1], bgm.covariance_type)
    make_target = _pymc_log_target if target == "pymc" else _compiled_log_target
    return _Target(
        draws=_theta_from_posterior(posterior, layout),
        log_density=make_target(X, layout, bgm.priors),
        permute=layout.permute,
        reference=_theta_from_em(bgm.em_, layout),
    )


def _symmetry_gap(target: _Target, k: int, n_points: int = 4) -> float:
    """Largest relative change of the log-density under a swap of two adjacent labels, at a
    few posterior draws (adjacent swaps generate every permutation)."""
    flat = target.draws.reshape(-1, target.dim)
    rows = flat[np.unique(np.linspace(0, flat.shape[0] - 1, n_points).astype(int))]
    base = target.log_density(rows)
    worst = 0.0
    for i in range(k - 1):
        perm = np.arange(k)
        perm[[i, i + 1]] = perm[[i + 1, i]]
        moved = target.log_density(target.permute(rows, perm))
        gap = np.abs(moved - base) / np.maximum(1.0, np.abs(base))
        worst = max(worst, float(np.nan_to_num(gap, nan=np.inf).max()))
    return worst


# --------------------------------------------------------------------------- the estimator


class _Gaussian:
    """Multivariate normal with a Cholesky factor, vectorised log-density and draws."""

    def __init__(self, mean: np.ndarray, cov: np.ndarray) -> None:
        self.mean = mean
        self.chol = np.linalg.cholesky(cov)
        self.log_norm = -0.5 * mean.size * _LOG_2PI - np.log(np.diag(self.chol)).sum()

    def logpdf(self, x: np.ndarray) -> np.ndarray:
        from scipy.linalg import solve_triangular

        z = solve_triangular(self.chol, (x - self.mean).T, lower=True)
        return self.log_norm - 0.5 * np.einsum("ij,ij->j", z, z)

    def sample(self, n: int, rs: np.random.RandomState) -> np.ndarray:
        return self.mean + rs.standard_normal((n, self.mean.size)) @ self.chol.T


def _symmetric_logpdf(g: _Gaussian, theta: np.ndarray, permute: Callable, perms) -> np.ndarray:
    """``log g_sym(θ) = log mean_σ g(σ θ)`` over the given permutations."""
    total = np.full(theta.shape[0], -np.inf)
    for perm in perms:
        total = np.logaddexp(total, g.logpdf(permute(theta, perm)))
    return total - math.log(len(perms))


def _best_labelling(theta: np.ndarray, score: Callable, permute: Callable, perms) -> np.ndarray:
    """Per draw, the index of the permutation whose relabelled draw scores highest."""
    best = np.full(theta.shape[0], -np.inf)
    choice = np.zeros(theta.shape[0], dtype=np.intp)
    for i, perm in enumerate(perms):
        value = score(permute(theta, perm))
        better = value > best
        best[better] = value[better]
        choice[better] = i
    return choice


def _apply_labelling(theta: np.ndarray, choice: np.ndarray, permute: Callable, perms) -> np.ndarray:
    out = np.empty_like(theta)
    for i in np.unique(choice):
        rows = choice == i
        out[rows] = permute(theta[rows], perms[i])
    return out


def _fit_relabelled_gaussian(
    theta: np.ndarray,
    reference: np.ndarray | None,
    permute: Callable,
    perms,
    max_sweeps: int = 25,
) -> tuple[_Gaussian | None, str]:
    """Normal fitted to ``theta`` (n, dim) relabelled to one labelling.

    Each draw first takes the permutation closest (Euclidean, over the coordinates where
    ``reference`` is not NaN) to ``reference`` (its own labels when there is none), then,
    repeatedly, the one of highest density under the normal fitted to the current labels,
    until the labels stop changing. With a reference the result depends only on the
    permutation orbits of the draws, not on the labels they came with.
    """
    n, dim = theta.shape
    if n < 2 * dim + 2:
        return None, (
            f"only {n} draws to fit a {dim}-dimensional proposal; sample more draws "
            f"(at least {2 * (2 * dim + 2)} in all)."
        )
    if reference is None:
        choice = np.zeros(n, dtype=np.intp)
    else:
        known = np.isfinite(reference)
        ref = reference[known]
        choice = _best_labelling(
            theta, lambda x: -((x[:, known] - ref) ** 2).sum(-1), permute, perms
        )
    g = None
    for _ in range(max_sweeps):
        x = _apply_labelling(theta, choice, permute, perms)
        mean = x.mean(axis=0)
        cov = np.cov(x, rowvar=False).reshape(dim, dim)
        cov = 0.5 * (cov + cov.T) + 1e-10 * np.eye(dim) * max(np.trace(cov) / dim, 1e-300)
        try:
            g = _Gaussian(mean, cov)
        except np.linalg.LinAlgError:
            return None, "the proposal covariance is singular (the draws do not vary)."
        if len(perms) == 1:
            break
        new = _best_labelling(theta, g.logpdf, permute, perms)
        if np.array_equal(new, choice):
            break
        choice = new
    return g, ""


def _ess_mean(values: np.ndarray) -> float:
    """Effective sample size for the mean of ``values`` of shape (chain, draw)."""
    from arviz_stats.base import array_stats

    if np.ptp(values) == 0:
        return float(values.size)
    return float(array_stats.ess(values, chain_axis=0, draw_axis=1, method="mean"))


def _kish(w: np.ndarray) -> float:
    """Kish effective-sample-size fraction of positive weights."""
    return float(w.sum() ** 2 / (w.size * (w**2).sum()))


@dataclass
class _Bridge:
    log_evidence: float
    standard_error: float
    n_iterations: int
    converged: bool
    overlap: float
    tau: float


def _bridge(l1: np.ndarray, l2: np.ndarray, *, tol: float, max_iter: int) -> _Bridge:
    """The iterative optimal bridge from log ratios ``l = log q - log g_sym``.

    ``l1`` (chain, draw): at posterior draws; ``l2`` (n,): at proposal draws.
    """
    flat = l1.ravel()
    n1, n2 = flat.size, l2.size
    lstar = float(np.median(flat))
    a1, a2 = flat - lstar, l2 - lstar
    # the effective size of the posterior side sets the (near-)optimal bridge weights
    n1_eff = min(_ess_mean(np.exp(np.clip(l1 - lstar, -700, 700))), float(n1))
    log_s1 = math.log(n1_eff / (n1_eff + n2))
    log_s2 = math.log(n2 / (n1_eff + n2))
    log_r = 0.0
    converged = False
    it = 0
    while it < max_iter:
        it += 1
        num = logsumexp(a2 - np.logaddexp(log_s1 + a2, log_s2 + log_r)) - math.log(n2)
        den = logsumexp(-np.logaddexp(log_s1 + a1, log_s2 + log_r)) - math.log(n1)
        new = float(num - den)
        if not np.isfinite(new):
            break
        done = abs(new - log_r) < tol
        log_r = new
        if done:
            converged = True
            break
    log_ml = log_r + lstar
    # Frühwirth-Schnatter (2004): relative MSE of the estimate of p(y | K)
    s1, s2 = math.exp(log_s1), math.exp(log_s2)
    b2 = np.exp(np.clip(l2 - log_ml, -700, 700))  # p/g at proposal draws
    b1 = np.exp(np.clip(l1 - log_ml, -700, 700))  # p/g at posterior draws
    f1 = b2 / (s1 * b2 + s2)
    f2 = 1.0 / (s1 * b1 + s2)
    tau = n1 / _ess_mean(f2)
    re2 = f1.var(ddof=1) / (n2 * f1.mean() ** 2) + tau * f2.var(ddof=1) / (n1 * f2.mean() ** 2)
    overlap = min(_kish(f1), _kish(f2.ravel()))
    return _Bridge(
        log_evidence=float(log_ml),
        standard_error=float(math.sqrt(re2)),
        n_iterations=it,
        converged=converged,
        overlap=overlap,
        tau=float(tau),
    )


def _not_estimable(reason: str, **info: Any) -> EvidenceResult:
    return EvidenceResult(None, None, 0, False, reason, **info)


def log_marginal_likelihood(
    bgm: BayesGaussianMixture,
    *,
    max_labellings: int = 720,
    max_standard_error: float = 0.5,
    min_overlap: float = 0.05,
    tol: float = 1e-10,
    max_iter: int = 1000,
    proposal_ratio: float = 2.0,
    target: Literal["compiled", "pymc"] = "compiled",
    random_state: int | np.random.RandomState | None = None,
) -> EvidenceResult:
    """Log marginal likelihood ``log p(y | K)`` of a fitted Bayesian mixture, by bridge sampling.

    The iterative optimal bridge sampler (Meng & Wong 1996; Gronau et al. 2017) between the
    posterior on PyMC's unconstrained scale (the model of :func:`bayesgmm.build_model`, priors
    with their normalising constants and transform Jacobians included) and a multivariate
    normal proposal fitted to the relabelled first halves of the chains, symmetrised over the
    ``K!`` labellings (Frühwirth-Schnatter 2004), so label switching needs no correction
    factor and the answer does not depend on how the draws are labelled. The second halves of
    the chains and as many proposal draws enter the bridge. See :mod:`bayesgmm.evidence`.

    A custom model (``model=fn``) is bridged on its own PyMC log-posterior, rebuilt by
    calling ``fn`` on the observed data (hyper-priors included; see :mod:`bayesgmm.evidence`);
    a loaded custom fit, whose function is not restored, is not estimable.

    Parameters
    ----------
    bgm : BayesGaussianMixture
        A fitted estimator (stock or custom model, any covariance type).
    max_labellings : int, default 720
        Largest ``K!`` to symmetrise over (720: ``K <= 6``); larger ``K`` is not estimable.
    max_standard_error : float, default 0.5
        Estimates with a larger Monte Carlo standard error (nats) are reported not estimable.
    min_overlap : float, default 0.05
        Smallest accepted effective-sample-size fraction of the bridge terms on either side
        (a measure of how well the proposal overlaps the posterior).
    tol : float, default 1e-10
        Convergence tolerance of the fixed-point iteration, on the log scale.
    max_iter : int, default 1000
        Iteration cap of the fixed-point scheme.
    proposal_ratio : float, default 2.0
        Proposal draws per posterior draw in the bridge. Target evaluations are cheap beside
        sampling, and more proposal draws shrink the proposal side of the Monte Carlo error.
    target : {"compiled", "pymc"}, default "compiled"
        How the log-posterior is evaluated. ``"pymc"``: ``build_model(...).compile_logp()``,
        the specification (adds a few seconds of PyTensor compilation). ``"compiled"``: its
        Numba twin in :mod:`bayesgmm._logdensity`, the function NUTS sampled, which the test
        suite proves equal to the PyMC graph; the two give the same estimate. A custom
        model always uses its own graph.
    random_state : int, RandomState or None, default None
        Seeds the proposal draws.

    Returns
    -------
    EvidenceResult
        ``log_evidence`` and ``standard_error`` in nats, ``n_iterations``, ``estimable`` and
        ``reason``; the numbers are ``None`` when the posterior failed its convergence checks,
        ``K!`` exceeds ``max_labellings``, the proposal does not fit, the iteration does not
        converge or the standard error exceeds ``max_standard_error``, and for a custom
        model that is not label-invariant, relabels a variable under a transform other than
        log, log-odds or simplex, or whose function was not restored (a loaded fit).

    Examples
    --------
    >>> from bayesgmm import BayesGaussianMixture, load_faithful, log_marginal_likelihood
    >>> bgm = BayesGaussianMixture(2, random_state=0, progressbar=False)
    >>> bgm = bgm.fit(load_faithful())  # doctest: +SKIP
    >>> res = log_marginal_likelihood(bgm, random_state=0)  # doctest: +SKIP
    >>> res.estimable, round(res.log_evidence), res.standard_error < 0.1  # doctest: +SKIP
    (True, -1167, True)
    """
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(bgm, "idata_")
    check_positive("max_labellings", max_labellings, integer=True)
    check_positive("max_standard_error", max_standard_error)
    check_positive("tol", tol)
    check_positive("max_iter", max_iter, integer=True)
    check_positive("proposal_ratio", proposal_ratio)
    if target not in ("compiled", "pymc"):
        raise ValueError(f"target={target!r} is not supported; choose 'compiled' or 'pymc'.")
    if not 0.0 <= min_overlap < 1.0:
        raise ValueError(f"min_overlap={min_overlap!r} is invalid; it must lie in [0, 1).")
    rs = check_random_state(random_state)

    post = bgm.idata_["posterior"]
    X = np.asarray(bgm.idata_["observed_data"]["obs"].values, dtype=np.float64)
    k = int(post.sizes["component"])
    n_lab = math.factorial(k)
    custom = bgm.idata_.attrs.get("custom_model")
    if custom is not None and not callable(bgm.model):
        return _not_estimable(_NO_FUNCTION.format(name=custom), n_labellings=n_lab)
    report = getattr(bgm, "diagnostics_", None)
    if report is None or not report.passed:
        verdict = getattr(report, "verdict", "no diagnostics were computed")
        return _not_estimable(
            f"not estimable: the posterior failed its convergence checks ({verdict})",
            n_labellings=n_lab,
        )
    if n_lab > max_labellings:
        return _not_estimable(
            f"not estimable: K={k} has K!={n_lab} labellings, more than max_labellings="
            f"{max_labellings}; raise max_labellings (cost grows with K!) or use fewer "
            "components.",
            n_labellings=n_lab,
        )
    if int(post.sizes["draw"]) < 4:
        return _not_estimable(
            f"not estimable: {int(post.sizes['draw'])} draws per chain are too few to split; "
            "sample more.",
            n_labellings=n_lab,
        )
    if custom is None:
        model_target = _stock_target(bgm, post, X, k, target)
    else:  # the user's own PyMC model: its own log-posterior, in the data's units
        found, why = _custom_target(bgm, post, X, k)
        if found is None:
            return _not_estimable(why, n_labellings=n_lab)
        model_target = found
    return _bridge_sampling(
        model_target,
        k,
        min_overlap=min_overlap,
        max_standard_error=max_standard_error,
        tol=tol,
        max_iter=max_iter,
        proposal_ratio=proposal_ratio,
        rs=rs,
    )


def _bridge_sampling(
    target: _Target,
    k: int,
    *,
    min_overlap: float,
    max_standard_error: float,
    tol: float,
    max_iter: int,
    proposal_ratio: float,
    rs: np.random.RandomState,
) -> EvidenceResult:
    """The estimator, for any target: proposal from the first halves, bridge on the rest."""
    n_lab = math.factorial(k)
    perms = [np.asarray(p) for p in itertools.permutations(range(k))]
    theta = target.draws  # (chain, draw, dim)
    n_chains, n_draws, dim = theta.shape
    half = n_draws // 2
    fit, bridge = theta[:, :half].reshape(-1, dim), theta[:, half:]
    info: dict[str, Any] = dict(n_fit=fit.shape[0], n_labellings=n_lab)
    if target.check_symmetry and k > 1:
        gap = _symmetry_gap(target, k)
        if not gap < 1e-8:
            return _not_estimable(
                "not estimable: the model's log-posterior changes when two component labels "
                f"are swapped (relative change {gap:.3g} at a posterior draw), so relabelled "
                "draws are not draws of its posterior: a per-component variable lacks "
                "dims=('component', ...), or the prior is not exchangeable over components "
                "(an ordering or component-specific priors).",
                **info,
            )
    g, why = _fit_relabelled_gaussian(fit, target.reference, target.permute, perms)
    if g is None:
        return _not_estimable(f"not estimable: {why}", **info)
    flat = bridge.reshape(-1, dim)
    proposal = g.sample(max(round(proposal_ratio * flat.shape[0]), 2), rs)
    info.update(n_bridge=flat.shape[0], n_proposal=proposal.shape[0])
    q1, q2 = target.log_density(flat), target.log_density(proposal)
    if not np.all(np.isfinite(q1)):
        return _not_estimable(
            "not estimable: the log-posterior is not finite at some posterior draws.", **info
        )
    q2 = np.where(np.isfinite(q2), q2, -np.inf)  # proposal draws outside the support
    l1 = (q1 - _symmetric_logpdf(g, flat, target.permute, perms)).reshape(n_chains, -1)
    l2 = q2 - _symmetric_logpdf(g, proposal, target.permute, perms)
    res = _bridge(l1, l2, tol=tol, max_iter=max_iter)
    info.update(overlap=res.overlap, autocorrelation_time=res.tau)
    problems = []
    if not res.converged:
        problems.append(f"the bridge iteration did not converge in {res.n_iterations} steps")
    if not np.isfinite(res.standard_error) or res.standard_error > max_standard_error:
        problems.append(
            f"its standard error {res.standard_error:.3g} exceeds max_standard_error="
            f"{max_standard_error:g}"
        )
    if not res.overlap >= min_overlap:
        problems.append(
            f"the normal proposal overlaps the posterior poorly (overlap {res.overlap:.3g} < "
            f"min_overlap={min_overlap:g})"
        )
    if problems:
        return EvidenceResult(
            None,
            None,
            res.n_iterations,
            False,
            "not estimable: "
            + "; ".join(problems)
            + ". More draws may help; a posterior far from normal (e.g. too many components) "
            "cannot be bridged with a normal proposal.",
            **info,
        )
    _log.info(
        "log p(y | K=%d) = %.3f ± %.3f (bridge sampling, %d iterations)",
        k,
        res.log_evidence,
        res.standard_error,
        res.n_iterations,
    )
    return EvidenceResult(
        res.log_evidence,
        res.standard_error,
        res.n_iterations,
        True,
        f"estimated by bridge sampling over {n_lab} labelling(s), overlap {res.overlap:.2f}",
        **info,
    )


# --------------------------------------------------------------------------- p(K | y)


@dataclass(frozen=True)
class KPosterior:
    """Posterior probabilities of the number of components, ``p(K | y)``.

    Attributes
    ----------
    probabilities : dict of int to float
        ``p(K | y)`` over the ``K`` whose evidence is estimable (sums to one).
    prior : dict of int to float
        The prior on those ``K``, renormalised over them.
    excluded : dict of int to str
        The ``K`` left out and why.
    prior_name : str
        ``"uniform"`` or ``"poisson(rate)"``.
    """

    probabilities: dict[int, float]
    prior: dict[int, float]
    excluded: dict[int, str]
    prior_name: str


def posterior_over_k(
    log_evidence: Mapping[int, EvidenceResult | float | None],
    *,
    prior: Literal["uniform", "poisson"] = "uniform",
    poisson_rate: float | None = None,
) -> KPosterior:
    """``p(K | y)`` from the log evidences of several ``K`` under a prior on ``K``.

    ``p(K | y) ∝ p(y | K) p(K)``, normalised over the ``K`` whose evidence is estimable; the
    others are listed in ``excluded`` with their reason. The prior is uniform over those ``K``,
    or a Poisson(``poisson_rate``) truncated to them (``p(K) ∝ rate^K / K!``).

    Parameters
    ----------
    log_evidence : mapping of int to EvidenceResult, float or None
        ``K`` -> its :func:`~bayesgmm.log_marginal_likelihood` result, or a log evidence in
        nats; ``None`` or NaN marks ``K`` as not estimable.
    prior : {"uniform", "poisson"}, default "uniform"
    poisson_rate : float, optional
        Rate of the truncated Poisson prior; required when ``prior="poisson"``.

    Returns
    -------
    KPosterior

    Examples
    --------
    >>> from bayesgmm.evidence import posterior_over_k
    >>> post = posterior_over_k({1: -120.0, 2: -110.0, 3: None})
    >>> round(post.probabilities[2], 5), post.excluded
    (0.99995, {3: 'no estimate'})
    """
    if prior not in ("uniform", "poisson"):
        raise ValueError(f"prior={prior!r} is not supported; choose 'uniform' or 'poisson'.")
    if prior == "poisson":
        if poisson_rate is None:
            raise ValueError("prior='poisson' needs poisson_rate (a positive number).")
        check_positive("poisson_rate", poisson_rate)
    values: dict[int, float] = {}
    excluded: dict[int, str] = {}
    for key, item in log_evidence.items():
        k = int(key)
        if k < 1:
            raise ValueError(f"K must be a positive integer, got {key!r}.")
        if isinstance(item, EvidenceResult):
            if item.estimable and item.log_evidence is not None:
                values[k] = float(item.log_evidence)
            else:
                excluded[k] = item.reason
        elif item is None or not np.isfinite(float(item)):
            excluded[k] = "no estimate"
        else:
            values[k] = float(item)
    if not values:
        raise ValueError(
            "no K has an estimable evidence; p(K | y) is undefined. Reasons: "
            + "; ".join(f"K={k}: {r}" for k, r in sorted(excluded.items()))
        )
    ks = sorted(values)
    if prior == "uniform":
        log_prior = np.zeros(len(ks))
        name = "uniform"
    else:
        rate = float(poisson_rate)  # type: ignore[arg-type]
        log_prior = np.array([k * math.log(rate) - gammaln(k + 1) for k in ks])
        name = f"poisson({rate:g})"
    log_prior = log_prior - logsumexp(log_prior)
    log_post = np.array([values[k] for k in ks]) + log_prior
    log_post = log_post - logsumexp(log_post)
    return KPosterior(
        probabilities={k: float(np.exp(v)) for k, v in zip(ks, log_post, strict=True)},
        prior={k: float(np.exp(v)) for k, v in zip(ks, log_prior, strict=True)},
        excluded=dict(sorted(excluded.items())),
        prior_name=name,
    )
