"""A user's own PyMC model of the mixture: the contract, its check, and its provenance.

:class:`~bayesgmm.BayesGaussianMixture` (``model=``), :func:`~bayesgmm.compare_models` and
``bayesgmm fit --model`` accept a function ``model(X, n_components, covariance_type=...,
priors=...) -> pymc.Model`` in place of :func:`bayesgmm.build_model` (which itself satisfies
the contract). It is called with:

``X``
    ndarray of shape (n_samples, n_features), float64, **in the data's units** (a copy of
    the validated training data; DataFrame columns become the fit's ``feature`` names, the
    function sees the values). Informative priors, for example from an earlier study, are
    therefore written in the data's units. The model is sampled exactly as returned: no
    standardisation, so its draws are in the data's units too.
``n_components``
    int, ``K``.
``covariance_type``, ``priors``
    Passed by keyword: the estimator's ``covariance_type`` and ``priors`` (which the
    function may ignore).

The returned model must define, as :func:`bayesgmm.build_model` names them (each may be a
free random variable or a deterministic, e.g. ``means`` drawn around a hyper-prior):

* ``weights`` (component) and ``means`` (component, feature);
* the covariance variables: ``chol_cov_<k>`` for every component (``"full"``) or ``chol_cov``
  (``"tied"``), the packed lower Cholesky factor of ``pm.LKJCholeskyCov`` (with one feature a
  vector of length 1, the standard deviation); ``sigma`` (component, feature) for ``"diag"``
  and (component,) for ``"spherical"``;
* the deterministics ``covariances`` and ``precisions_cholesky`` in scikit-learn's layouts
  and, for ``"full"``/``"tied"``, ``chol``, ``corr`` and ``stds``;
* one observed variable whose observed data is ``X`` and whose log-density is the Gaussian
  mixture log-likelihood at ``weights``, ``means`` and ``precisions_cholesky``.

:func:`check_model` verifies all of this when the fit starts (names, shapes, dims when the
model declares them, the deterministics' consistency with the covariance factor, the
observed data, and the likelihood numerically at the model's initial point, a point near it
and the EM start) and raises a ``TypeError``/``ValueError`` that names what is missing and
how to fix it. Any other free variable (hyper-priors) is sampled, kept in the posterior
(relabelled with the components when it has a ``component`` dim) and diagnosed.

Writing the likelihood as a ``pm.CustomDist``: PyMC may hand its ``logp`` the parameters
with leading length-1 batch dimensions, so reshape them to their core shapes (``(K,)``,
``(K, D)``, ...) before contracting axes (``bayesgmm.build_model`` does the same).
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._numerics import log_mixture_density
from .methods import python_backend

__all__ = ["CustomModel", "check_model", "load_model_function", "model_name", "model_source"]

_HOW = (
    "build it like bayesgmm.build_model (copy its structure or call its pieces; see "
    "bayesgmm._custom for the contract)"
)


@dataclass(frozen=True)
class CustomModel:
    """A checked custom model and what sampling it needs to know.

    Attributes
    ----------
    model : pymc.Model
    name : str
        Qualified name of the function that built it.
    source : str or None
        The function's source text, when :func:`inspect.getsource` finds it.
    free_stock : tuple of str
        The stock variables (``weights``, ``means``, ``chol_cov*``, ``sigma``) that are free
        random variables here (they receive the EM start).
    extra : tuple of str
        The model's other free random variables (hyper-priors), kept in the posterior.
    """

    model: Any
    name: str
    source: str | None
    free_stock: tuple[str, ...]
    extra: tuple[str, ...]


def model_name(fn: Any) -> str:
    """``module.qualname`` of a model function (its ``repr`` for other callables).

    A function loaded by :func:`load_model_function` is named ``path/to/file.py:function``,
    as it was given on the command line.
    """
    module = getattr(fn, "__module__", None)
    qual = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if qual is None:
        return repr(fn)
    given = getattr(sys.modules.get(module or ""), "__bayesgmm_model_file__", None)
    if given is not None:
        return f"{given}:{qual}"
    return f"{module}.{qual}" if module else str(qual)


def model_source(fn: Any) -> str | None:
    """The source text of a model function, or None when Python cannot find it."""
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        return None


def cov_param_name(covariance_type: str) -> str:
    """The covariance factor the posterior is built from: ``chol`` or ``sigma``."""
    return "chol" if covariance_type in ("full", "tied") else "sigma"


def cov_free_names(covariance_type: str, k: int) -> list[str]:
    """The stock names of the covariance prior's variables."""
    if covariance_type == "full":
        return [f"chol_cov_{j}" for j in range(k)]
    if covariance_type == "tied":
        return ["chol_cov"]
    return ["sigma"]


def required_variables(
    covariance_type: str, k: int, d: int
) -> dict[str, tuple[tuple[int, ...], tuple[str, ...] | None]]:
    """Name -> (shape, dims or None) of every variable the contract asks for."""
    packed = d * (d + 1) // 2
    comp = ("component",)
    mat = ("feature", "feature_bis")
    out: dict[str, tuple[tuple[int, ...], tuple[str, ...] | None]] = {
        "weights": ((k,), comp),
        "means": ((k, d), ("component", "feature")),
    }
    if covariance_type in ("full", "tied"):
        for name in cov_free_names(covariance_type, k):
            out[name] = ((packed,), None)
        lead, ldims = ((k,), comp) if covariance_type == "full" else ((), ())
        for name in ("chol", "corr", "covariances", "precisions_cholesky"):
            out[name] = ((*lead, d, d), (*ldims, *mat))
        out["stds"] = ((*lead, d), (*ldims, "feature"))
    elif covariance_type == "diag":
        out["sigma"] = ((k, d), ("component", "feature"))
        out["covariances"] = ((k, d, d), ("component", *mat))
        out["precisions_cholesky"] = ((k, d), ("component", "feature"))
    else:
        out["sigma"] = ((k,), comp)
        out["covariances"] = ((k, d, d), ("component", *mat))
        out["precisions_cholesky"] = ((k,), comp)
    return out


def build(
    fn: Callable[..., Any],
    X: np.ndarray,
    n_components: int,
    covariance_type: str,
    priors: Any,
) -> Any:
    """Call a model function the documented way: ``fn(X, K, covariance_type=, priors=)``."""
    if not callable(fn):
        raise TypeError(
            f"model must be a function (X, n_components, covariance_type, priors) -> pm.Model "
            f"or None for bayesgmm.build_model, got {type(fn).__name__}."
        )
    return fn(
        np.array(X, dtype=np.float64, copy=True),
        int(n_components),
        covariance_type=covariance_type,
        priors=priors,
    )


def _observed_value(model: Any, rv: Any) -> np.ndarray | None:
    value = model.rvs_to_values.get(rv)
    if value is None:
        return None
    try:
        if hasattr(value, "get_value"):
            return np.asarray(value.get_value())
        if hasattr(value, "data"):
            return np.asarray(value.data)
        return np.asarray(value.eval())
    except Exception:  # a symbolic observation we cannot evaluate alone
        return None


def _fail(name: str, what: str, fix: str, exc: type[Exception] = ValueError) -> Exception:
    return exc(f"model function {name} returned a model {what}; {fix}.")


@python_backend()  # its few evaluations need no compiled code
def check_model(
    model: Any,
    X: np.ndarray,
    n_components: int,
    covariance_type: str,
    *,
    name: str,
    source: str | None = None,
    start: Mapping[str, np.ndarray] | None = None,
    rtol: float = 1e-6,
) -> CustomModel:
    """Check that ``model`` keeps the custom-model contract (module docstring) for ``X``.

    Parameters
    ----------
    model : object
        What the model function returned.
    X : ndarray of shape (n_samples, n_features)
        The data the function was given.
    n_components : int
    covariance_type : str
    name : str
        The function's name, for the messages.
    source : str, optional
        The function's source, recorded in the result.
    start : dict, optional
        Constrained values (``weights``, ``means``, ``chol``/``sigma``) of a second point
        (the EM start) at which the likelihood is checked, besides the model's own initial
        point.
    rtol : float, default 1e-6
        Relative tolerance of the numerical checks.

    Returns
    -------
    CustomModel

    Raises
    ------
    TypeError
        If ``model`` is not a ``pymc.Model``.
    ValueError
        If a variable is missing or has the wrong shape or dims, the observed data is not
        ``X``, or the likelihood is not the Gaussian mixture's.
    """
    import pymc as pm

    if not isinstance(model, pm.Model):
        raise TypeError(
            f"model function {name} returned {type(model).__name__}, not a pymc.Model; "
            "build the model in a 'with pm.Model(coords=...) as model:' block and return model."
        )
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    k = int(n_components)
    required = required_variables(covariance_type, k, d)
    free = {rv.name for rv in model.free_RVs}
    dets = {v.name for v in model.deterministics}
    for var, (shape, dims) in required.items():
        shown = f" of dims {dims}" if dims else f" of shape {shape}"
        if var not in free and var not in dets:
            kind = "an observed or data" if var in model.named_vars else "a"
            raise _fail(
                name,
                f"without {kind} free or deterministic variable {var!r}{shown}",
                f"define {var!r} in the model ({covariance_type!r} covariances need "
                f"{', '.join(map(repr, required))}); " + _HOW,
            )
        declared = model.named_vars_to_dims.get(var)
        if dims and declared is not None and tuple(declared) != dims:
            raise _fail(
                name,
                f"whose variable {var!r} has dims {tuple(declared)}",
                f"give it dims={dims} (the layout of bayesgmm.build_model)",
            )

    # Values at the model's initial point and, if given, at the EM start.
    wanted = list(required)
    fn = model.compile_fn(
        model.replace_rvs_by_values([model[v] for v in wanted]),
        inputs=model.value_vars,
        point_fn=True,
        on_unused_input="ignore",
        mode="FAST_COMPILE",
    )
    # The model's initial point (uniform weights, prior centres: symmetric, so a likelihood
    # that ignored the weights would pass there), a fixed generic move away from it on the
    # unconstrained scale, and the EM start when given.
    first = model.initial_point()
    rng = np.random.default_rng(20261202)
    moved = {key: v + 0.3 * rng.standard_normal(np.shape(v)) for key, v in first.items()}
    points = [first, moved]
    labels = ["its initial point", "a point near its initial point"]
    if start is not None:
        points.append(initial_point(model, start, covariance_type, k))
        labels.append("the EM start")
    observed = list(model.observed_RVs)
    if len(observed) != 1:
        raise _fail(
            name,
            f"with {len(observed)} observed variables "
            f"({', '.join(repr(o.name) for o in observed) or 'none'})",
            "observe X exactly once, through the mixture likelihood "
            "(pm.CustomDist('obs', ..., observed=X)); put other information in the priors",
        )
    obs = observed[0]
    value = _observed_value(model, obs)
    if value is None or value.shape != X.shape or not np.allclose(value, X, rtol=0, atol=0):
        got = "an unknown value" if value is None else f"data of shape {value.shape}"
        raise _fail(
            name,
            f"whose observed variable {obs.name!r} observes {got} that is not X "
            f"(shape {X.shape}, in the data's units)",
            "pass observed=X, the array the model function receives, unchanged (no "
            "standardisation: priors are stated in the data's units)",
        )
    logp_obs = model.compile_logp(vars=[obs], sum=True, mode="FAST_COMPILE")
    for where, point in zip(labels, points, strict=True):
        values = dict(zip(wanted, fn(point), strict=True))
        for var, (shape, _dims) in required.items():
            got = np.shape(values[var])
            if tuple(got) != shape:
                raise _fail(
                    name,
                    f"whose variable {var!r} has shape {tuple(got)}",
                    f"it must have shape {shape} for K={k}, {d} feature(s) and "
                    f"{covariance_type!r} covariances",
                )
        _check_deterministics(values, covariance_type, name, rtol)
        expected = float(
            log_mixture_density(
                X,
                values["weights"],
                values["means"],
                values["precisions_cholesky"],
                covariance_type,
            ).sum()
        )
        got = float(logp_obs(point))
        if not np.isclose(got, expected, rtol=rtol, atol=1e-8 * n):
            raise _fail(
                name,
                f"whose observed variable {obs.name!r} has log-density {got:.6g} at {where}, "
                f"but the Gaussian mixture log-likelihood of X at that point's weights, "
                f"means and precisions_cholesky is {expected:.6g}",
                "observe X through the mixture likelihood of bayesgmm.build_model (its "
                "observed variable 'obs', features summed per observation)",
            )
    stock = ["weights", "means", *cov_free_names(covariance_type, k)]
    free_stock = tuple(v for v in stock if v in free)
    extra = tuple(rv.name for rv in model.free_RVs if rv.name not in stock)
    return CustomModel(model, name, source, free_stock, extra)


def _check_deterministics(values: dict, covariance_type: str, name: str, rtol: float) -> None:
    """``covariances``/``precisions_cholesky`` (and ``stds``/``corr``) agree with the factor."""
    from .sampling import posterior_dataset

    key = cov_param_name(covariance_type)
    w = np.asarray(values["weights"], dtype=np.float64)
    mu = np.asarray(values["means"], dtype=np.float64)
    draws = {"weights": w[None, None], "means": mu[None, None]}
    draws[key] = np.asarray(values[key], dtype=np.float64)[None, None]
    k, d = mu.shape
    post = posterior_dataset(draws, covariance_type, [f"x{j}" for j in range(d)])
    if covariance_type in ("full", "tied"):
        rows, cols = np.tril_indices(d)
        chol = np.asarray(values["chol"])
        for var in cov_free_names(covariance_type, k):
            packed = np.asarray(values[var])
            own = chol[int(var.rsplit("_", 1)[1])] if covariance_type == "full" else chol
            if not np.allclose(own[..., rows, cols], packed, rtol=rtol, atol=0):
                raise _fail(
                    name,
                    f"whose 'chol' is not the unpacked {var!r}",
                    "make 'chol' the lower-triangular matrix of the packed LKJCholeskyCov "
                    "values, as bayesgmm.build_model does",
                )
        names = ("covariances", "precisions_cholesky", "stds", "corr")
    else:
        names = ("precisions_cholesky",)
    for var in names:
        ours = post[var].values[0, 0]
        if not np.allclose(values[var], ours, rtol=rtol, atol=rtol * np.abs(ours).max()):
            raise _fail(
                name,
                f"whose deterministic {var!r} does not follow from {key!r} as in "
                "bayesgmm.build_model",
                f"compute {var!r} from {key!r} the way build_model does (scikit-learn's "
                "layout: precisions_cholesky is the upper factor U with precision = U U^T)",
            )
    if covariance_type in ("diag", "spherical"):
        cov = np.asarray(values["covariances"])
        ours = post["covariances"].values[0, 0]
        if not np.allclose(cov, ours, rtol=rtol, atol=rtol * np.abs(ours).max()):
            raise _fail(
                name,
                "whose deterministic 'covariances' does not follow from 'sigma'",
                "make covariances[k] = diag(sigma[k]**2) as bayesgmm.build_model does",
            )


def stock_values(
    start: Mapping[str, np.ndarray], covariance_type: str, k: int
) -> dict[str, np.ndarray]:
    """Constrained values of the stock free variables from ``weights``, ``means``, chol/sigma."""
    out = {
        "weights": np.asarray(start["weights"], dtype=np.float64),
        "means": np.asarray(start["means"], dtype=np.float64),
    }
    if covariance_type in ("full", "tied"):
        chol = np.asarray(start["chol"], dtype=np.float64)
        rows, cols = np.tril_indices(chol.shape[-1])
        if covariance_type == "full":
            for j in range(k):
                out[f"chol_cov_{j}"] = chol[j][rows, cols]
        else:
            out["chol_cov"] = chol[rows, cols]
    else:
        out["sigma"] = np.asarray(start["sigma"], dtype=np.float64)
    return out


def initial_point(
    model: Any, start: Mapping[str, np.ndarray], covariance_type: str, k: int
) -> dict[str, np.ndarray]:
    """The model's initial point (transformed values) with the stock free variables at ``start``.

    Variables that are deterministic in the custom model keep the model's defaults.
    """
    from pymc.initial_point import make_initial_point_fn

    free = {rv.name for rv in model.free_RVs}
    overrides = {
        name: value
        for name, value in stock_values(start, covariance_type, k).items()
        if name in free
    }
    fn = make_initial_point_fn(
        model=model, overrides=overrides, jitter_rvs=set(), return_transformed=True
    )
    return fn(0)


def load_model_function(spec: str) -> Callable[..., Any]:
    """Import ``path/to/module.py:function`` (the command line's ``--model``).

    This runs the user's file, which is what they asked for by naming it; results files are
    never executed.

    Raises
    ------
    ValueError
        If ``spec`` is not ``FILE.py:FUNCTION``, or the file has no such attribute.
    FileNotFoundError
        If the file does not exist.
    TypeError
        If the attribute is not callable.
    """
    path_text, sep, func = str(spec).rpartition(":")
    if not sep or not path_text or not func.isidentifier():
        raise ValueError(
            f"--model {spec!r}: give the model function as FILE.py:FUNCTION, e.g. "
            "--model my_models.py:hierarchical_means."
        )
    path = Path(path_text)
    if not path.is_file():
        what = "is a directory, not a Python file" if path.is_dir() else "does not exist"
        raise FileNotFoundError(f"--model: file {path_text!r} {what}; check the path.")
    module_name = f"bayesgmm_user_model_{abs(hash(str(path.resolve())))}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise ValueError(f"--model: {path_text!r} cannot be imported as a Python module.")
    module = importlib.util.module_from_spec(loader_spec)
    module.__bayesgmm_model_file__ = path_text  # type: ignore[attr-defined]  # model_name
    sys.modules[module_name] = module  # inspect.getsource and pickling find it
    try:
        loader_spec.loader.exec_module(module)
    except Exception:
        sys.modules.pop(module_name, None)
        raise
    if not hasattr(module, func):
        defined = sorted(
            n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
        )
        raise ValueError(
            f"--model: {path_text!r} defines no {func!r}"
            + (f" (its functions: {', '.join(defined)})" if defined else "")
            + "; check the name after the colon."
        )
    obj = getattr(module, func)
    if not callable(obj):
        raise TypeError(
            f"--model: {func!r} in {path_text!r} is not callable (it is of type "
            f"{type(obj).__name__}); name a function (X, n_components, covariance_type, "
            "priors) -> pm.Model."
        )
    return obj
