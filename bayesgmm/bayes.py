"""``BayesGaussianMixture``: the Bayesian mixture sampled with NUTS, beside its EM fit.

``fit`` runs, in order: input validation; an :class:`~bayesgmm.em.EMGaussianMixture` fit (its
solution, jittered per chain, starts every chain in the same labelling and is the pivot of
the relabelling); NUTS (:func:`bayesgmm.sampling.sample_posterior`); relabelling of every
draw to the EM labels (:func:`bayesgmm.relabel.relabel`); convergence diagnostics before and
after relabelling (:func:`bayesgmm.diagnose`), with a
:class:`~bayesgmm.exceptions.SamplingWarning` when the verdict fails. Everything lands in
``idata_``, an :class:`xarray.DataTree` that :meth:`~bayesgmm.BayesGaussianMixture.save` writes to
netCDF and :meth:`~bayesgmm.BayesGaussianMixture.load` reads back.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
import warnings
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import xarray as xr
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.utils.validation import check_is_fitted

from . import _draw_kernels
from ._dask import is_dask_collection
from ._numerics import COVARIANCE_TYPES, log_weighted_prob, responsibilities
from ._validation import (
    check_choice,
    check_n_components,
    check_positive,
    check_random_state,
    check_X,
)
from ._version import __version__
from .diagnostics import diagnose
from .em import EMGaussianMixture, em_from_dataset, em_to_dataset
from .exceptions import ConvergenceWarning, DegenerateMixtureWarning, SamplingWarning
from .model import Priors
from .relabel import apply_permutations
from .relabel import relabel as relabel_posterior
from .responsibilities import (
    MembershipSummary,
    responsibility_draws,
    summarize_responsibilities,
)
from .sampling import SAMPLERS, sample_custom_posterior, sample_posterior

__all__ = ["BayesGaussianMixture"]

_log = logging.getLogger("bayesgmm")

#: Dims of the covariance parameters (sklearn layout: covariances_, precisions_cholesky_).
_PARAM_DIMS = {
    "full": ("component", "feature", "feature_bis"),
    "tied": ("feature", "feature_bis"),
    "diag": ("component", "feature"),
    "spherical": ("component",),
}
_INIT_JITTER = 0.05  # relative jitter of the EM start on the unconstrained scale
_MEAN_JITTER = 0.5  # mean jitter, in approximate posterior standard deviations
#: Per-draw values held at once by predict_proba/score_samples (8 MB of float64 each).
_CHUNK_ELEMENTS = 1024 * 1024


class BayesGaussianMixture(DensityMixin, BaseEstimator):
    """Bayesian Gaussian mixture: Dirichlet weights, LKJ covariances, sampled with NUTS.

    The model (labels marginalised out, priors scaled to the data) is
    :func:`bayesgmm.build_model`; see :class:`bayesgmm.model.Priors` for the priors.

    Parameters
    ----------
    n_components : int, default 1
        Number of mixture components ``K``.
    covariance_type : {"full", "tied", "diag", "spherical"}, default "full"
    priors : Priors, optional
        Prior hyper-parameters; ``Priors()`` when omitted.
    model : callable, optional
        Your own PyMC model instead of :func:`bayesgmm.build_model` (the default, ``None``):
        a function called as ``model(X, n_components, covariance_type=..., priors=...)``
        that returns a ``pymc.Model``. ``X`` is an ndarray of shape (n_samples, n_features)
        **in the data's units**, so priors (say from an earlier study) are written in those
        units; the model is sampled as returned (no standardisation) with nutpie's public
        API (``sampler="auto"``/``"nutpie"``) or ``pymc.sample`` (``sampler="pymc"``), and
        its draws are in the data's units. The model must define ``weights``, ``means`` and
        the covariance variables and deterministics as ``build_model`` names them (free or
        deterministic: a hyper-prior on the means is fine) and observe ``X`` through the
        Gaussian mixture likelihood; :mod:`bayesgmm._custom` states the contract, and
        ``fit`` checks it (names, shapes, observed data, and the likelihood numerically)
        with an error that says what is missing. Relabelling, diagnostics (the model's
        other free variables included), membership, prediction, the report and
        :func:`~bayesgmm.compare_models` work as for the stock model. The function's name
        and source are recorded in ``idata_.attrs`` (``custom_model``,
        ``custom_model_source``); :meth:`load` never runs that source: a loaded custom fit
        has ``model`` set to the recorded name (a string), answers everything that needs
        only its draws, and refuses to refit until you pass the function again.
    draws, tune : int, default 1000
        Kept draws and warm-up iterations per chain.
    chains : int, default 4
    target_accept : float, default 0.8
        NUTS target acceptance rate; raise it (0.9-0.99) when there are divergences.
    sampler : {"auto", "nutpie", "pymc", "numpyro", "blackjax"}, default "auto"
        NUTS implementation (:mod:`bayesgmm.sampling`); ``"auto"`` takes the fastest
        installed one by our measurements (nutpie with the compiled log-density).
    init : {"em", "prior"}, default "em"
        ``"em"``: every chain starts from the EM solution, jittered per chain, so all chains
        begin in the same labelling. ``"prior"``: the sampler's default start.
    relabel : {"pivot", "stephens"} or None, default "pivot"
        Relabelling of the draws to the EM labels (:mod:`bayesgmm.relabel`); ``None`` keeps
        the sampler's labels.
    n_init : int, default 5
        EM restarts for the starting point and pivot.
    random_state : int, numpy.random.Generator, RandomState or None, default None
        Seeds EM, the jitter and the sampler (resolved once per ``fit``; a ``Generator`` is
        advanced by one draw).
    progressbar : bool, default True
        Show the sampler's progress bar.

    Attributes
    ----------
    idata_ : xarray.DataTree
        ``posterior`` (relabelled; ``weights``, ``means``, ``covariances``,
        ``precisions_cholesky``, ``chol``/``stds``/``corr`` or ``sigma``), ``sample_stats``,
        ``log_likelihood`` (``obs``: chain, draw, obs_id), ``observed_data``, ``relabel``
        (``permutation``: chain, draw, component, such that relabelled[..., k] =
        sampled[..., permutation[..., k]]), ``em`` (the EM solution) and ``log_prior``
        (``weights``, ``means``, ``covariance``: each prior's log density at every draw,
        for :meth:`prior_sensitivity`). Root attributes hold
        the provenance: package version, estimator parameters (JSON), seed, sampler, timings.
    em_ : EMGaussianMixture
        The EM fit that started and pivoted the chains.
    diagnostics_ : DiagnosticsReport
        R-hat, ESS, divergences, E-BFMI before and after relabelling, with a verdict.
    weights_ : ndarray of shape (n_components,)
        Posterior mean of the (relabelled) mixture weights.
    means_ : ndarray of shape (n_components, n_features)
        Posterior mean of the component means.
    covariances_ : ndarray
        Posterior mean of the covariances in scikit-learn's layout: (n_components,
        n_features, n_features) for ``"full"``, (n_features, n_features) for ``"tied"``,
        (n_components, n_features) variances for ``"diag"``, (n_components,) for
        ``"spherical"``. A summary: :meth:`predict`, :meth:`predict_proba` and
        :meth:`score_samples` average over every draw, not over this single mixture.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` was a DataFrame with string column names.
    model_source_ : str or None
        With a custom ``model``: the source text of its function as recorded at fit (None
        when Python could not find it). Provenance only; never executed.

    Examples
    --------
    >>> from bayesgmm import BayesGaussianMixture, load_faithful
    >>> bgm = BayesGaussianMixture(2, random_state=0, progressbar=False)
    >>> bgm = bgm.fit(load_faithful())  # doctest: +SKIP
    >>> bgm.diagnostics_.passed  # doctest: +SKIP
    True
    >>> bgm.predict(load_faithful().iloc[:3])  # doctest: +SKIP
    array([1, 0, 1])
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: Literal["full", "tied", "diag", "spherical"] = "full",
        priors: Priors | None = None,
        model: Callable[..., Any] | str | None = None,
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        target_accept: float = 0.8,
        sampler: str = "auto",
        init: Literal["em", "prior"] = "em",
        relabel: Literal["pivot", "stephens"] | None = "pivot",
        n_init: int = 5,
        random_state: int | np.random.Generator | np.random.RandomState | None = None,
        progressbar: bool = True,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.priors = priors
        self.model = model
        self.draws = draws
        self.tune = tune
        self.chains = chains
        self.target_accept = target_accept
        self.sampler = sampler
        self.init = init
        self.relabel = relabel
        self.n_init = n_init
        self.random_state = random_state
        self.progressbar = progressbar

    # ------------------------------------------------------------------ fitting

    def _check_params(self, n_samples: int) -> int:
        k = check_n_components(self.n_components, n_samples)
        check_choice("covariance_type", self.covariance_type, COVARIANCE_TYPES)
        check_choice("sampler", self.sampler, SAMPLERS)
        check_choice("init", self.init, ("em", "prior"))
        if self.relabel is not None:
            check_choice("relabel", self.relabel, ("pivot", "stephens"))
        for name in ("draws", "chains", "n_init"):
            check_positive(name, getattr(self, name), integer=True)
        check_positive("tune", self.tune, integer=True, allow_zero=True)
        check_positive("target_accept", self.target_accept)
        if not self.target_accept < 1.0:
            raise ValueError(
                f"target_accept={self.target_accept!r} is invalid; it must lie in (0, 1)."
            )
        if self.priors is not None and not isinstance(self.priors, Priors):
            raise TypeError(
                "priors must be a bayesgmm.model.Priors instance, got "
                f"{type(self.priors).__name__}; pass Priors(...) or None."
            )
        if isinstance(self.model, str):
            raise ValueError(
                f"model={self.model!r} is the recorded name of a custom model function: the "
                "model function is not restored from a file (loading never runs code); pass "
                "model=your_function to refit."
            )
        if self.model is not None and not callable(self.model):
            raise TypeError(
                "model must be a function (X, n_components, covariance_type, priors) -> "
                f"pymc.Model, or None for bayesgmm.build_model; got {type(self.model).__name__}."
            )
        return k

    def fit(
        self, X: Any, y: Any = None, *, em_start: EMGaussianMixture | None = None
    ) -> BayesGaussianMixture:
        """Fit EM, sample the posterior with NUTS, relabel and diagnose.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)
        y : ignored
        em_start : EMGaussianMixture, optional
            An EM fit of the same ``X`` with the same ``n_components`` and
            ``covariance_type`` to start the chains from and to relabel to, instead of
            fitting one here (``n_init`` is then unused). :func:`~bayesgmm.compare_models`
            passes each cell's EM fit, so the table's EM row and the posterior's start are
            one fit.

        Returns
        -------
        self

        Warns
        -----
        ConvergenceWarning, DegenerateMixtureWarning
            When the EM start did not converge or has collapsed components; the verdict of
            ``diagnostics_`` says so too.
        SamplingWarning
            When the convergence diagnostics fail.
        """
        t0 = time.perf_counter()
        if is_dask_collection(X):
            raise TypeError(
                "BayesGaussianMixture.fit needs its data in memory (NUTS evaluates every row "
                "at every step). Fit it on a uniform random sample of rows, e.g. "
                "X[np.sort(rng.choice(len(X), 20_000, replace=False))].compute(); membership, "
                "predict and score_samples then take the whole Dask array."
            )
        X = check_X(X, estimator=self, reset=True, min_samples=2)
        k = self._check_params(X.shape[0])
        rs = check_random_state(self.random_state)
        seed = int(rs.randint(np.iinfo(np.int32).max))
        names = (
            [str(c) for c in self.feature_names_in_]
            if hasattr(self, "feature_names_in_")
            else [f"x{j}" for j in range(X.shape[1])]
        )
        if em_start is None:
            em = EMGaussianMixture(
                k, covariance_type=self.covariance_type, n_init=self.n_init, random_state=seed
            )
            _fit_em_start(em, X)
        else:
            em = _checked_em_start(em_start, k, self.covariance_type, X.shape[1])
        if hasattr(self, "feature_names_in_"):
            em.feature_names_in_ = self.feature_names_in_
        t_em = time.perf_counter() - t0
        custom = None
        if self.model is not None:
            custom = self._custom_model(X, k, em)
            tree = sample_custom_posterior(
                custom,
                X,
                k,
                covariance_type=self.covariance_type,
                feature_names=names,
                start=_em_values(em) if self.init == "em" else None,
                mean_jitter=_em_mean_sd(em, X.shape[0]) * _MEAN_JITTER,
                draws=self.draws,
                tune=self.tune,
                chains=self.chains,
                sampler=self.sampler,
                target_accept=self.target_accept,
                random_seed=seed,
                progressbar=self.progressbar,
            )
        else:
            initvals, jitter = _em_start(em, X) if self.init == "em" else (None, None)
            tree = sample_posterior(
                X,
                k,
                covariance_type=self.covariance_type,
                priors=self.priors,
                feature_names=names,
                initvals=initvals,
                init_jitter=jitter,
                draws=self.draws,
                tune=self.tune,
                chains=self.chains,
                sampler=self.sampler,
                target_accept=self.target_accept,
                random_seed=seed,
                progressbar=self.progressbar,
            )
        before = None
        if self.relabel is not None:
            # the draws as sampled, for the before/after diagnostics
            before = xr.DataTree.from_dict(
                {
                    "posterior": tree["posterior"].to_dataset(),
                    "sample_stats": tree["sample_stats"].to_dataset(),
                }
            )
            pivot = responsibilities(
                log_weighted_prob(
                    X, em.weights_, em.means_, em.precisions_cholesky_, self.covariance_type
                )
            )[0]
            relabelled, perms, info = relabel_posterior(
                tree["posterior"].to_dataset(),
                X,
                pivot,
                covariance_type=self.covariance_type,
                method=self.relabel,
                random_state=seed,
            )
            tree["posterior"] = xr.DataTree(relabelled)
            tree["relabel"] = xr.DataTree(xr.Dataset({"permutation": perms}, attrs=dict(info)))
        tree["em"] = xr.DataTree(em_to_dataset(em, names))
        # The log prior of every draw, from the model's own prior terms: the group that
        # power-scaling prior sensitivity (prior_sensitivity) needs.
        try:
            tree["log_prior"] = xr.DataTree(
                _log_prior(tree, X, names, k, self.covariance_type, self.priors)
                if custom is None
                else _custom_log_prior(tree["posterior"].to_dataset(), custom, self.covariance_type)
            )
        except Exception as exc:  # never lose a posterior to this extra; say why it is missing
            _log.warning("The log prior of the draws could not be computed (%s).", exc)
        report = diagnose(tree, before=before, var_names=_diagnosed(tree["posterior"]))
        if custom is not None:
            tree.attrs["custom_model"] = custom.name
            if custom.source is not None:
                tree.attrs["custom_model_source"] = custom.source
            tree.attrs.update(_custom_model_description(custom, self.covariance_type, k))
            description = getattr(self.model, "model_description", None)
            if isinstance(description, str) and description.strip():
                tree.attrs["custom_model_description"] = description.strip()
            self.model_source_ = custom.source
        tree.attrs.update(
            bayesgmm_version=__version__,
            estimator="BayesGaussianMixture",
            params=json.dumps(self._json_params()),
            random_seed=seed,
            em_time=float(t_em),
            fit_time=float(time.perf_counter() - t0),
            diagnostics_passed=int(report.passed),
            diagnostics_verdict=report.verdict,
        )
        self.idata_ = tree
        self.em_ = em
        self.diagnostics_ = report
        self._set_posterior_means()
        if not report.passed:
            warnings.warn(report.verdict, SamplingWarning, stacklevel=2)
        _log.info("BayesGaussianMixture fit in %.1f s: %s", tree.attrs["fit_time"], report.verdict)
        return self

    def _custom_model(self, X: np.ndarray, k: int, em: EMGaussianMixture) -> Any:
        """Build the user's model on ``X`` (data units) and check its contract."""
        from ._custom import build, check_model, model_name, model_source

        name = model_name(self.model)
        model = build(self.model, X, k, self.covariance_type, self.priors)
        return check_model(
            model,
            X,
            k,
            self.covariance_type,
            name=name,
            source=model_source(self.model),
            start=_em_values(em),
        )

    def _json_params(self) -> dict[str, Any]:
        params = self.get_params()
        if params["model"] is not None and not isinstance(params["model"], str):
            from ._custom import model_name

            params["model"] = model_name(params["model"])
        if params["priors"] is not None:
            params["priors"] = dataclasses.asdict(params["priors"])
        rs = params["random_state"]
        if rs is not None and not isinstance(rs, int | np.integer):
            params["random_state"] = None
        return params

    def prior_sensitivity(self, *, threshold: float = 0.05) -> Any:
        """Power-scaling prior and likelihood sensitivity of the posterior (Kallioinen et al.).

        :func:`arviz_stats.psense_summary` on the weights, means, standard deviations and
        (for ``"full"``/``"tied"`` with several features) the correlations below the
        diagonal: how much each posterior quantity moves (cumulative Jensen-Shannon distance
        per unit of log power) when the prior or the likelihood is raised to a power near 1,
        estimated by Pareto-smoothed importance sampling of the draws already taken.

        Parameters
        ----------
        threshold : float, default 0.05
            Sensitivity above which a quantity is flagged (the value the method's authors
            suggest).

        Returns
        -------
        pandas.DataFrame
            Indexed by parameter (``"means[1, eruptions]"``), with columns ``prior``,
            ``likelihood`` (the sensitivities) and ``diagnosis``: ``"potential prior-data
            conflict"`` (both above the threshold), ``"potential strong prior / weak
            likelihood"`` (only the prior's) or ``"✓"``.
        """
        from .methods import sensitivity_table

        check_is_fitted(self, "idata_")
        tree = self.idata_
        if "log_prior" not in tree.children and "custom_model" in tree.attrs:
            raise ValueError(
                "This custom-model fit has no log_prior group (it could not be computed at "
                "fit; the log says why), and a loaded fit cannot rebuild its model: refit "
                "with model=your_function to assess prior sensitivity."
            )
        if "log_prior" not in tree.children:  # a fit saved before the group existed
            X = tree["observed_data"]["obs"]
            names = [str(f) for f in X["feature"].values]
            lp = _log_prior(
                tree,
                X.values,
                names,
                tree["posterior"].sizes["component"],
                self.covariance_type,
                self.priors,
            )
            tree = tree.copy()
            tree["log_prior"] = xr.DataTree(lp)
        return sensitivity_table(tree, self.covariance_type, threshold=threshold)

    # ------------------------------------------------------------------ posterior summaries

    def _draws(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        check_is_fitted(self, "idata_")
        post = self.idata_["posterior"]
        tail = _PARAM_DIMS[self.covariance_type]
        w = post["weights"].transpose("chain", "draw", "component").values
        mu = post["means"].transpose("chain", "draw", "component", "feature").values
        pc = post["precisions_cholesky"].transpose("chain", "draw", *tail).values
        return w, mu, pc

    def _data(self, X: Any) -> np.ndarray:
        """``X`` validated against the fit, or the training data when ``X`` is None."""
        check_is_fitted(self, "idata_")
        if X is None:
            return self.idata_["observed_data"]["obs"].values
        return check_X(X, estimator=self, reset=False)

    def membership(
        self,
        X: Any = None,
        *,
        interval: float = 0.89,
        max_draws: int | None = None,
        intervals: str = "all",
    ) -> MembershipSummary:
        """Per-point membership summaries over the posterior (training data by default).

        Mean responsibilities with equal-tailed intervals, the label and the probability that
        it is right, total/aleatoric/epistemic entropy and the posterior predictive
        log-density; see :func:`bayesgmm.responsibilities.summarize_responsibilities` (which
        streams over points, so memory stays bounded).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), optional
            Points to summarise; the training data when omitted. A Dask array gives a
            summary of lazy Dask arrays chunked like its rows (so do :meth:`predict`,
            :meth:`predict_proba` and :meth:`score_samples`); the draws are sent to each
            worker once.
        interval : float, default=0.89
            Probability mass of the equal-tailed intervals.
        max_draws : int, optional
            Use at most this many posterior draws, evenly spaced over the pooled chains
            (thinning, for very many points); all draws when omitted. The summary's
            ``n_draws`` says how many were used.
        intervals : {"all", "label"}, default="all"
            ``"label"``: intervals of each point's most probable component only, faster for
            very many points (see
            :func:`~bayesgmm.responsibilities.summarize_responsibilities`).
        """
        dask_input = is_dask_collection(X)
        X = X if dask_input else self._data(X)
        w, mu, pc = self._draws()
        if max_draws is not None:
            check_positive("max_draws", max_draws, integer=True)
            w, mu, pc = _thin(max_draws, w, mu, pc)
        if dask_input:  # lazy Dask arrays chunked like X's rows (bayesgmm._dask)
            from ._dask import summarize_rows

            return summarize_rows(
                X,
                w,
                mu,
                pc,
                self.covariance_type,
                n_features=self.n_features_in_,
                interval=interval,
                intervals=intervals,
            )
        return summarize_responsibilities(
            X, w, mu, pc, self.covariance_type, interval=interval, intervals=intervals
        )

    def responsibility_draws(self, X: Any = None, *, max_memory_mb: float = 1024.0) -> xr.DataArray:
        """Every draw's responsibilities ``p(z_i = k | x_i, theta_s)`` (training data by default).

        Returns
        -------
        xarray.DataArray of dims (chain, draw, obs_id, component)
            Refused with a ``ValueError`` when larger than ``max_memory_mb``; use
            :meth:`membership` (which streams) for summaries of large data.
        """
        X = self._data(X)
        w, mu, pc = self._draws()
        values = responsibility_draws(
            X, w, mu, pc, self.covariance_type, max_memory_mb=max_memory_mb
        )
        post = self.idata_["posterior"]
        return xr.DataArray(
            values,
            dims=("chain", "draw", "obs_id", "component"),
            coords={
                "chain": post["chain"].values,
                "draw": post["draw"].values,
                "obs_id": np.arange(values.shape[2]),
                "component": post["component"].values,
            },
            name="responsibilities",
        )

    def predict_proba(self, X: Any) -> np.ndarray:
        """Posterior mean membership probabilities ``E_theta[p(z_i = k | x_i, theta)]``.

        The scikit-learn contract: one row per point, rows sum to one. The draws are averaged
        without sorting them, so no interval is computed; for equal-tailed intervals of these
        probabilities use :meth:`membership` (``lower``/``upper``, or ``to_frame()``).

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_components)
            Equal to ``membership(X).mean``. For a Dask array, a lazy Dask array chunked
            like ``X``'s rows (``membership(X).mean``, streamed chunk by chunk).
        """
        if is_dask_collection(X):
            return self.membership(X, intervals="label").mean
        return self._posterior_mean(self._data(X), proba=True)[0]

    def predict(self, X: Any) -> np.ndarray:
        """Most probable component of every point under the posterior.

        The component with the highest posterior mean membership probability
        (:meth:`predict_proba`), i.e. ``membership(X).labels``; the probability that it is
        right is ``membership(X).label_probability``.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)

        Returns
        -------
        ndarray of int of shape (n_samples,)
            For a Dask array, a lazy Dask array chunked like ``X``'s rows.
        """
        if is_dask_collection(X):
            return self.membership(X, intervals="label").labels
        return self.predict_proba(X).argmax(axis=1)

    def score_samples(self, X: Any) -> np.ndarray:
        """Posterior predictive log-density ``log mean_s p(x_i | theta_s)`` of every point.

        Equal to ``membership(X).log_density``, without its intervals.

        Parameters
        ----------
        X : array-like or DataFrame of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
            For a Dask array, a lazy Dask array chunked like ``X``'s rows.
        """
        if is_dask_collection(X):
            return self.membership(X, intervals="label").log_density
        return self._posterior_mean(self._data(X), proba=False)[1]

    def _posterior_mean(self, X: np.ndarray, *, proba: bool) -> tuple[Any, Any]:
        """Mean responsibilities (``proba``) or the predictive log-density, over all draws.

        Streams over blocks of points and of draws (at most ``_CHUNK_ELEMENTS`` per-draw
        values at a time) with the compiled per-draw kernels; nothing is sorted.
        """
        w, mu, pc = (a.reshape(-1, *a.shape[2:]) for a in self._draws())
        n_draws, k = w.shape
        n = X.shape[0]
        rows = max(1, min(n, _CHUNK_ELEMENTS // k))
        step = max(1, _CHUNK_ELEMENTS // (max(1, min(n, rows)) * k))
        out = np.zeros((n, k)) if proba else np.empty(n)
        for lo in range(0, n, rows):
            block = X[lo : lo + rows]
            if proba:
                acc = np.zeros((block.shape[0], k))
                for s in range(0, n_draws, step):
                    sl = slice(s, s + step)
                    acc += _draw_kernels.responsibility_draws(
                        block, w[sl], mu[sl], pc[sl], self.covariance_type
                    ).sum(axis=0)
                out[lo : lo + rows] = acc / n_draws
            else:
                # running log-sum-exp over draws of log p(x_i | theta_s)
                top = np.full(block.shape[0], -np.inf)
                acc = np.zeros(block.shape[0])
                for s in range(0, n_draws, step):
                    sl = slice(s, s + step)
                    ll = _draw_kernels.pointwise_log_likelihood(
                        block, w[sl], mu[sl], pc[sl], self.covariance_type
                    )
                    new_top = np.maximum(top, ll.max(axis=0))
                    with np.errstate(invalid="ignore"):
                        acc = acc * np.exp(top - new_top) + np.exp(ll - new_top).sum(axis=0)
                    top = new_top
                out[lo : lo + rows] = top + np.log(acc / n_draws)
        return (out, None) if proba else (None, out)

    def score(self, X: Any, y: Any = None) -> float:
        """Mean posterior predictive log-density of ``X``."""
        return float(np.mean(self.score_samples(X)))

    def _set_posterior_means(self) -> None:
        """``weights_``, ``means_``, ``covariances_``: posterior means, scikit-learn layouts."""
        post = self.idata_["posterior"]
        pooled = ("chain", "draw")
        self.weights_ = post["weights"].mean(pooled).transpose("component").values
        self.means_ = post["means"].mean(pooled).transpose("component", "feature").values
        cov = post["covariances"].mean(pooled)
        if self.covariance_type == "full":
            self.covariances_ = cov.transpose("component", "feature", "feature_bis").values
        elif self.covariance_type == "tied":
            self.covariances_ = cov.transpose("feature", "feature_bis").values
        else:
            var = np.diagonal(
                cov.transpose("component", "feature", "feature_bis").values, axis1=-2, axis2=-1
            )
            self.covariances_ = var.copy() if self.covariance_type == "diag" else var[:, 0].copy()

    def sample(
        self,
        n_samples: int = 1,
        *,
        random_state: int | np.random.Generator | np.random.RandomState | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw points from the posterior predictive distribution.

        Each point takes a posterior draw ``theta_s`` at random (all chains pooled), then a
        component ``k`` with probability ``weights[s, k]``, then ``x ~ N(means[s, k],
        covariances[s, k])``; so parameter uncertainty is in the sample, unlike a draw from
        the posterior-mean mixture.

        Parameters
        ----------
        n_samples : int, default 1
        random_state : int, Generator, RandomState or None, optional
            Seed of this call; the estimator's ``random_state`` when omitted (as in
            scikit-learn, an integer there gives the same sample at every call).

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        labels : ndarray of int of shape (n_samples,)
            The component each point was drawn from (relabelled components).
        """
        check_is_fitted(self, "idata_")
        check_positive("n_samples", n_samples, integer=True)
        rs = check_random_state(self.random_state if random_state is None else random_state)
        post = self.idata_["posterior"]
        w = post["weights"].transpose("chain", "draw", "component").values
        k = w.shape[-1]
        w = w.reshape(-1, k)
        mu = post["means"].transpose("chain", "draw", "component", "feature").values
        mu = mu.reshape(w.shape[0], k, -1)
        d = mu.shape[-1]
        cov = (
            post["covariances"]
            .transpose(
                "chain",
                "draw",
                *(("component",) if "component" in post["covariances"].dims else ()),
                "feature",
                "feature_bis",
            )
            .values.reshape(w.shape[0], -1, d, d)
        )
        s = rs.randint(w.shape[0], size=n_samples)
        cum = np.cumsum(w[s], axis=1)
        u = rs.uniform(size=n_samples) * cum[:, -1]
        labels = np.minimum((cum <= u[:, None]).sum(axis=1), k - 1)
        chol = np.linalg.cholesky(cov[s, labels if cov.shape[1] == k else 0])
        z = rs.standard_normal((n_samples, d))
        X = mu[s, labels] + np.einsum("nab,nb->na", chol, z)
        return X, labels

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike) -> None:
        """Write ``idata_`` (posterior, statistics, EM solution, provenance) to netCDF.

        Every array is stored compressed and lossless (HDF5 byte shuffle + gzip level 4) in
        its own dtype: posterior draws and the pointwise log-likelihood stay float64, so a
        loaded fit gives the same WAIC, LOO and predictions, bit for bit.
        """
        check_is_fitted(self, "idata_")
        # Shuffle groups the bytes of each float by significance (sign/exponent bytes of
        # neighbouring draws are alike), which is what lets gzip shrink float64 data.
        lossless = {"zlib": True, "complevel": 4, "shuffle": True}
        encoding = {
            node.path: {name: dict(lossless) for name in node.data_vars}
            for node in self.idata_.subtree
            if node.data_vars
        }
        self.idata_.to_netcdf(os.fspath(path), engine="h5netcdf", encoding=encoding)

    @classmethod
    def load(cls, path: str | os.PathLike) -> BayesGaussianMixture:
        """Rebuild a fitted estimator from a file written by :meth:`save` (no refitting).

        Loading reads netCDF data and JSON text only: it never unpickles or runs code from
        the file.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        ValueError
            If ``path`` is a directory, empty, not a netCDF file, truncated or damaged, or
            not a complete result of :meth:`save` (the message names the path).
        """
        shown = os.fspath(path)
        if not os.path.exists(shown):
            raise FileNotFoundError(f"Results file {shown!r} does not exist; check the path.")
        if os.path.isdir(shown):
            raise ValueError(
                f"{shown!r} is a directory; give the netCDF file BayesGaussianMixture.save "
                "wrote (posterior.nc in a 'bayesgmm fit' directory)."
            )
        if os.path.getsize(shown) == 0:
            raise ValueError(
                f"{shown!r} is empty (0 bytes), not a saved bayesgmm result; fit and save again."
            )
        with open(shown, "rb") as fh:
            hdf5 = fh.read(8) == b"\x89HDF\r\n\x1a\n"
        try:
            with xr.open_datatree(shown, engine="h5netcdf") as opened:
                tree = opened.load()
        except Exception as exc:  # h5py/h5netcdf raise OSError, ValueError, KeyError...
            lines = str(exc).strip().splitlines()
            detail = lines[0] if lines else type(exc).__name__
            what = (
                "is truncated or damaged"
                if hdf5
                else "is not a netCDF-4 file (bayesgmm saves results as netCDF-4)"
            )
            raise ValueError(
                f"{shown!r} {what} and cannot be loaded ({detail}); fit and save again."
            ) from None
        if tree.attrs.get("estimator") != "BayesGaussianMixture":
            raise ValueError(
                f"{shown!r} was not written by BayesGaussianMixture.save; load a file that was."
            )
        try:
            return cls._from_tree(tree)
        except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ValueError(
                f"{shown!r} is an incomplete or damaged bayesgmm result "
                f"({type(exc).__name__}: {detail}); fit and save again."
            ) from None

    @classmethod
    def _from_tree(cls, tree: xr.DataTree) -> BayesGaussianMixture:
        """The estimator behind a tree written by :meth:`save`."""
        params = json.loads(tree.attrs["params"])
        if params.get("priors") is not None:
            params["priors"] = Priors(**params["priors"])
        est = cls(**params)  # a custom model stays its recorded name: nothing is executed
        est.idata_ = tree
        if "custom_model" in tree.attrs:
            est.model = str(tree.attrs["custom_model"])
            source = tree.attrs.get("custom_model_source")
            est.model_source_ = None if source is None else str(source)
        est._set_posterior_means()
        X = tree["observed_data"]["obs"]
        est.n_features_in_ = X.shape[1]
        names = [str(f) for f in X["feature"].values]
        named = names != [f"x{j}" for j in range(len(names))]
        if named:
            est.feature_names_in_ = np.asarray(names, dtype=object)
        est.em_ = em_from_dataset(
            tree["em"].to_dataset(),
            covariance_type=params["covariance_type"],
            feature_names=names if named else None,
            n_init=params["n_init"],
        )
        before = None
        if "relabel" in tree.children:
            # undo the stored permutations to diagnose the draws as sampled
            perms = tree["relabel"]["permutation"].values
            raw = apply_permutations(tree["posterior"].to_dataset(), np.argsort(perms, axis=-1))
            before = xr.DataTree.from_dict(
                {"posterior": raw, "sample_stats": tree["sample_stats"].to_dataset()}
            )
        est.diagnostics_ = diagnose(
            tree, before=before, var_names=_diagnosed(tree["posterior"].to_dataset())
        )
        return est


# ---------------------------------------------------------------------- helpers


def _log_prior(
    tree: xr.DataTree,
    X: np.ndarray,
    names: list[str],
    k: int,
    covariance_type: str,
    priors: Priors | None,
) -> xr.Dataset:
    """The ``log_prior`` group: each prior's log density at every draw, from build_model."""
    import pandas as pd

    from .methods import log_prior_dataset
    from .model import build_model

    model = build_model(
        pd.DataFrame(X, columns=names), k, covariance_type=covariance_type, priors=priors
    )
    return log_prior_dataset(tree["posterior"].to_dataset(), model, covariance_type)


#: Posterior variables every fit has; anything else came from a custom model's hyper-priors.
_STOCK_POSTERIOR = frozenset(
    {"weights", "means", "covariances", "precisions_cholesky", "chol", "corr", "stds", "sigma"}
)


def _diagnosed(posterior: Any) -> list[str] | None:
    """Variables to diagnose: the default ones plus a custom model's hyper-parameters."""
    from .diagnostics import DEFAULT_VAR_NAMES

    extra = [str(v) for v in posterior.data_vars if str(v) not in _STOCK_POSTERIOR]
    if not extra:
        return None  # the stock fit: diagnose's defaults
    return [v for v in DEFAULT_VAR_NAMES if v in posterior.data_vars] + extra


def _custom_log_prior(posterior: xr.Dataset, custom: Any, covariance_type: str) -> xr.Dataset:
    """The ``log_prior`` group of a custom-model fit, from the model's own prior terms.

    Every free variable's log density (no Jacobian) at every draw, its parents at that
    draw's values, grouped as ``weights``, ``means``, ``covariance`` (``chol_cov*``/``sigma``)
    and ``other`` (hyper-priors); each group is absent when no free variable falls in it.
    """
    from pymc.model.transform.conditioning import remove_value_transforms

    from .methods import evaluate_over_draws

    model = remove_value_transforms(custom.model)
    pooled = ("chain", "draw")

    def flat(name: str) -> np.ndarray:
        da = posterior[name].transpose("chain", "draw", ...)
        return da.values.reshape(-1, *da.shape[2:])

    stock = {"weights": flat("weights"), "means": flat("means")}
    if covariance_type in ("full", "tied"):
        rows, cols = np.tril_indices(posterior.sizes["feature"])
        chol = flat("chol")  # PyMC packs the lower triangle row by row
        if covariance_type == "full":
            for j in range(posterior.sizes["component"]):
                stock[f"chol_cov_{j}"] = chol[:, j][:, rows, cols]
        else:
            stock["chol_cov"] = chol[:, rows, cols]
    else:
        stock["sigma"] = flat("sigma")
    groups: dict[str, list] = {"weights": [], "means": [], "covariance": [], "other": []}
    values = {}
    for rv in model.free_RVs:
        name = rv.name
        values[name] = stock[name] if name in stock else flat(name)
        group = (
            name
            if name in ("weights", "means")
            else "covariance"
            if name.startswith("chol_cov") or name == "sigma"
            else "other"
        )
        groups[group].append(model.logp(vars=[rv], jacobian=False, sum=True))
    names = [g for g, terms in groups.items() if terms]
    outputs = [
        terms[0] if len(terms) == 1 else sum(terms[1:], terms[0])
        for terms in groups.values()
        if terms
    ]
    inputs = [model.rvs_to_values[rv] for rv in model.free_RVs]
    order = [rv.name for rv in model.free_RVs]
    out = evaluate_over_draws(inputs, outputs, [values[name] for name in order])
    shape = tuple(posterior.sizes[d] for d in pooled)
    coords = {d: posterior[d].values for d in pooled}
    return xr.Dataset(
        {g: (pooled, out[i].reshape(shape)) for i, g in enumerate(names)}, coords=coords
    )


def _em_values(em: EMGaussianMixture) -> dict[str, np.ndarray]:
    """The EM solution as constrained values: ``weights``, ``means``, ``chol``/``sigma``."""
    key, cov = _cov_param(em)
    return {"weights": em.weights_, "means": em.means_, key: cov}


def _em_mean_sd(em: EMGaussianMixture, n: int) -> np.ndarray:
    """Approximate posterior standard deviation of every mean, ``sqrt(var / (n w_k))``."""
    k, d = em.means_.shape
    if em.covariance_type == "full":
        var = np.diagonal(em.covariances_, axis1=-2, axis2=-1)
    elif em.covariance_type == "tied":
        var = np.broadcast_to(np.diag(em.covariances_), (k, d))
    elif em.covariance_type == "diag":
        var = em.covariances_
    else:
        var = np.broadcast_to(em.covariances_[:, None], (k, d))
    return np.sqrt(var / np.maximum(n * em.weights_, 1.0)[:, None])


def _custom_model_description(custom: Any, covariance_type: str, k: int) -> dict[str, str]:
    """The custom model as PyMC prints it and the role of each variable the library reads
    (recorded as text at fit time, so a report of a loaded fit never needs the function)."""
    from ._custom import required_variables

    model = custom.model
    out: dict[str, str] = {}
    try:
        out["custom_model_text"] = str(model.str_repr())
    except Exception as exc:  # a description is an extra; never lose a fit to it
        _log.warning("The custom model's text representation failed (%s).", exc)
    free = {v.name for v in model.free_RVs}
    deterministic = {v.name for v in model.deterministics}
    observed = [v.name for v in model.observed_RVs]
    d = int(np.asarray(custom.model.coords.get("feature", ())).size) or 1
    roles = {}
    for name in required_variables(covariance_type, k, d):
        roles[name] = (
            "free random variable"
            if name in free
            else ("deterministic" if name in deterministic else "other")
        )
    for name in observed:
        roles[name] = "observed: the mixture likelihood of X"
    for name in custom.extra:
        roles[name] = "free random variable of the model's own (kept in the posterior)"
    potentials = [v.name for v in model.potentials]
    for name in potentials:
        roles[name] = "potential: a term added to the model's log density"
    if potentials:
        out["custom_model_potentials"] = json.dumps(potentials)
    out["custom_model_variables"] = json.dumps(roles)
    return out


def _thin(max_draws: int, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Pool (chain, draw) and keep ``max_draws`` evenly spaced draws (all if fewer)."""
    pooled = [a.reshape(-1, *a.shape[2:]) for a in arrays]
    n = pooled[0].shape[0]
    if max_draws >= n:
        return tuple(pooled)
    keep = np.unique(np.linspace(0, n - 1, max_draws).round().astype(int))
    return tuple(a[keep] for a in pooled)


def _cov_param(em: EMGaussianMixture) -> tuple[str, np.ndarray]:
    if em.covariance_type in ("full", "tied"):
        return "chol", np.linalg.cholesky(em.covariances_)
    return "sigma", np.sqrt(em.covariances_)


def _em_start(em: EMGaussianMixture, X: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    """The EM solution as a start, and per-coordinate jitter on the unconstrained scale.

    Means move by about half a posterior standard deviation (``sqrt(var / (n w_k))``); the
    weights' and covariances' unconstrained coordinates by ``_INIT_JITTER``. The jitter is
    on the scale of the standardised problem the sampler runs (see
    ``bayesgmm.sampling.standardization``), so it is the same in any units.
    """
    from ._logdensity import n_unconstrained
    from .sampling import standardization

    _, scale = standardization(X, em.covariance_type)
    k, d = em.means_.shape
    mean_sd = _em_mean_sd(em, X.shape[0]) / scale
    jitter = np.full(n_unconstrained(k, d, em.covariance_type), _INIT_JITTER)
    jitter[k - 1 : k - 1 + k * d] = _MEAN_JITTER * mean_sd.ravel()
    return _em_values(em), jitter


def _checked_em_start(
    em_start: Any, n_components: int, covariance_type: str, n_features: int
) -> EMGaussianMixture:
    """A copy of a given EM start, after checking that it fits the model to be sampled."""
    import copy

    if not isinstance(em_start, EMGaussianMixture):
        raise TypeError(
            f"em_start must be a fitted EMGaussianMixture, got {type(em_start).__name__}."
        )
    check_is_fitted(em_start)
    found = (em_start.n_components, em_start.covariance_type, em_start.n_features_in_)
    if found != (n_components, covariance_type, n_features):
        raise ValueError(
            f"em_start has n_components={found[0]}, covariance_type={found[1]!r} and "
            f"{found[2]} feature(s), but this fit has n_components={n_components}, "
            f"covariance_type={covariance_type!r} and {n_features} feature(s); pass an EM fit "
            "of the same model to the same data."
        )
    return copy.deepcopy(em_start)


def _fit_em_start(em: EMGaussianMixture, X: np.ndarray) -> None:
    """Fit the EM start of :meth:`BayesGaussianMixture.fit`, passing its warnings on.

    A non-converged or degenerate EM solution starts the chains and pivots the relabelling,
    so its warning is re-emitted as a warning about the Bayesian fit (same category, pointing
    at the caller of ``fit``); :func:`bayesgmm.diagnose` also names it in the verdict.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        em.fit(X)
    for w in caught:
        if issubclass(w.category, ConvergenceWarning | DegenerateMixtureWarning):
            warnings.warn(
                f"The EM start of BayesGaussianMixture: {w.message} The chains start from this "
                "EM solution and are relabelled to it; diagnostics_.verdict notes it.",
                w.category,
                stacklevel=3,
            )
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
