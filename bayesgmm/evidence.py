"""Marginal likelihood ``p(y | K)`` of a fitted mixture by bridge sampling, and ``p(K | y)``.

The evidence of the stock model (:func:`bayesgmm.build_model`) is estimated from the NUTS
draws with the iterative "optimal" bridge sampler of Meng & Wong (1996), in the form of
Gronau et al. (2017) with a multivariate normal proposal:

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
    n_chain, n_draw = w.shape[:2]
    out = np.empty((n_chain, n_draw, layout.dim))
    for c in range(n_chain):
        for s in range(n_draw):
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
    logp = model.compile_logp(jacobian=True)
    names = [v.name for v in model.value_vars]
    shapes = [tuple(v.type.shape) for v in model.value_vars]
    if any(n is None for shape in shapes for n in shape):  # pragma: no cover - not static
        point = model.initial_point()
        shapes = [np.shape(point[name]) for name in names]
    sizes = [int(np.prod(s)) for s in shapes]
    if sum(sizes) != layout.dim:  # pragma: no cover - guards the layout assumption
        raise RuntimeError(
            f"the PyMC model has {sum(sizes)} unconstrained values, expected {layout.dim}; "
            "log_marginal_likelihood supports the stock model of build_model only."
        )
    bounds = np.cumsum([0, *sizes])

    def log_target(theta: np.ndarray) -> np.ndarray:
        out = np.empty(theta.shape[0])
        for i, row in enumerate(theta):
            pt_ = {
                name: row[bounds[j] : bounds[j + 1]].reshape(shapes[j])
                for j, name in enumerate(names)
            }
            out[i] = logp(pt_)
        return out

    return log_target


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


def _symmetric_logpdf(g: _Gaussian, theta: np.ndarray, layout: _Layout, perms) -> np.ndarray:
    """``log g_sym(θ) = log mean_σ g(σ θ)`` over the given permutations."""
    total = np.full(theta.shape[0], -np.inf)
    for perm in perms:
        total = np.logaddexp(total, g.logpdf(layout.permute(theta, perm)))
    return total - math.log(len(perms))


def _best_labelling(theta: np.ndarray, score: Callable, layout: _Layout, perms) -> np.ndarray:
    """Per draw, the index of the permutation whose relabelled draw scores highest."""
    best = np.full(theta.shape[0], -np.inf)
    choice = np.zeros(theta.shape[0], dtype=np.intp)
    for i, perm in enumerate(perms):
        value = score(layout.permute(theta, perm))
        better = value > best
        best[better] = value[better]
        choice[better] = i
    return choice


def _apply_labelling(theta: np.ndarray, choice: np.ndarray, layout: _Layout, perms) -> np.ndarray:
    out = np.empty_like(theta)
    for i in np.unique(choice):
        rows = choice == i
        out[rows] = layout.permute(theta[rows], perms[i])
    return out


def _fit_relabelled_gaussian(
    theta: np.ndarray, reference: np.ndarray, layout: _Layout, perms, max_sweeps: int = 25
) -> tuple[_Gaussian | None, str]:
    """Normal fitted to ``theta`` (n, dim) relabelled to one labelling.

    Each draw first takes the permutation closest (Euclidean) to ``reference``, then,
    repeatedly, the one of highest density under the normal fitted to the current labels,
    until the labels stop changing. The result depends only on the permutation orbits of
    the draws, not on the labels they came with.
    """
    n, dim = theta.shape
    if n < 2 * dim + 2:
        return None, (
            f"only {n} draws to fit a {dim}-dimensional proposal; sample more draws "
            f"(at least {2 * (2 * dim + 2)} in all)."
        )
    choice = _best_labelling(theta, lambda x: -((x - reference) ** 2).sum(-1), layout, perms)
    g = None
    for _ in range(max_sweeps):
        x = _apply_labelling(theta, choice, layout, perms)
        mean = x.mean(axis=0)
        cov = np.cov(x, rowvar=False).reshape(dim, dim)
        cov = 0.5 * (cov + cov.T) + 1e-10 * np.eye(dim) * max(np.trace(cov) / dim, 1e-300)
        try:
            g = _Gaussian(mean, cov)
        except np.linalg.LinAlgError:
            return None, "the proposal covariance is singular (the draws do not vary)."
        if len(perms) == 1:
            break
        new = _best_labelling(theta, g.logpdf, layout, perms)
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

    Parameters
    ----------
    bgm : BayesGaussianMixture
        A fitted estimator (stock model, any covariance type).
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
        suite proves equal to the PyMC graph; the two give the same estimate.
    random_state : int, RandomState or None, default None
        Seeds the proposal draws.

    Returns
    -------
    EvidenceResult
        ``log_evidence`` and ``standard_error`` in nats, ``n_iterations``, ``estimable`` and
        ``reason``; the numbers are ``None`` when the posterior failed its convergence checks,
        ``K!`` exceeds ``max_labellings``, the proposal does not fit, the iteration does not
        converge or the standard error exceeds ``max_standard_error``.

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
    layout = _Layout(k, X.shape[1], bgm.covariance_type)
    n_lab = math.factorial(k)
    custom = bgm.idata_.attrs.get("custom_model")
    if custom is not None:  # the bridge's target is the stock model's density, not this one
        return _not_estimable(
            f"not estimable: the posterior comes from a custom model ({custom}), and the "
            "bridge sampler here evaluates only the stock model's log-posterior.",
            n_labellings=math.factorial(k),
        )
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
    theta = _theta_from_posterior(post, layout)  # (chain, draw, dim)
    n_chain, n_draw = theta.shape[:2]
    if n_draw < 4:
        return _not_estimable(
            f"not estimable: {n_draw} draws per chain are too few to split; sample more.",
            n_labellings=n_lab,
        )
    half = n_draw // 2
    fit, bridge = theta[:, :half].reshape(-1, layout.dim), theta[:, half:]
    perms = layout.permutations()
    g, why = _fit_relabelled_gaussian(fit, _theta_from_em(bgm.em_, layout), layout, perms)
    info = dict(n_fit=fit.shape[0], n_labellings=n_lab)
    if g is None:
        return _not_estimable(f"not estimable: {why}", **info)
    make_target = _pymc_log_target if target == "pymc" else _compiled_log_target
    log_target = make_target(X, layout, bgm.priors)
    flat = bridge.reshape(-1, layout.dim)
    proposal = g.sample(max(round(proposal_ratio * flat.shape[0]), 2), rs)
    info.update(n_bridge=flat.shape[0], n_proposal=proposal.shape[0])
    q1, q2 = log_target(flat), log_target(proposal)
    if not np.all(np.isfinite(q1)):
        return _not_estimable(
            "not estimable: the log-posterior is not finite at some posterior draws.", **info
        )
    q2 = np.where(np.isfinite(q2), q2, -np.inf)  # proposal draws outside the support
    l1 = (q1 - _symmetric_logpdf(g, flat, layout, perms)).reshape(n_chain, -1)
    l2 = q2 - _symmetric_logpdf(g, proposal, layout, perms)
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
