"""The one place that touches nutpie's private API; everything else calls this module.

nutpie's public API compiles a PyMC or Stan model itself. Our default sampler instead hands
nutpie the compiled C callbacks of :mod:`bayesgmm._logdensity` (log-density with analytic
gradient, and the expansion to named variables), which needs nutpie's private pieces:
``nutpie._lib`` (``LogpFunc``, ``ExpandFunc``, ``PyVariable.new_variables``, ``PyMcModel``,
``PySampler.from_pymc``) and a subclass of ``nutpie.sample.CompiledModel`` overriding its
private ``_make_sampler``/``_make_model`` (the shape of nutpie 0.16's ``compile_pymc``
model, written out for our callbacks).

None of this is promised by nutpie. So it is used only with the nutpie series it was tested
against (``TESTED_SERIES``), and every use of it is checked before a single draw is taken. Another
nutpie version, or a mismatch (an ``ImportError``, ``AttributeError`` or ``TypeError`` from a
module, class or signature that moved), becomes :class:`NutpiePrivateAPIError`, on which
:func:`bayesgmm.sampling.sample_posterior` falls back to the public path (PyMC's NUTS on
:func:`bayesgmm.build_model`'s graph, the ``sampler="pymc"`` path, tested to give the same
posterior) with one warning in the ``"bayesgmm"`` log:

- :func:`make_model` builds the model and, as a probe, the Rust-side model object at a
  probe point (every private constructor but the sampler's is called there);
- the sampler's constructor, called by ``nutpie.sample`` through ``_make_sampler`` before any
  sampling, converts the same errors.

Errors after sampling has started are not caught here: they are not API mismatches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["NutpiePrivateAPIError", "make_model"]

#: Errors that mean nutpie's private API is not the one this module was written for.
_MISMATCH = (ImportError, AttributeError, TypeError)
#: nutpie minor series whose private API this module was written and tested against. Other
#: versions take the public path: a changed C callback convention or argument order would
#: raise nothing here and could give wrong draws, so untested versions are not tried.
TESTED_SERIES = ("0.16",)


class NutpiePrivateAPIError(RuntimeError):
    """nutpie's private API is missing or changed (set-up only, before any draw)."""


def _private() -> tuple[Any, type]:
    """``nutpie._lib`` and ``nutpie.sample.CompiledModel``, or :class:`NutpiePrivateAPIError`."""
    try:
        import nutpie
        from nutpie import _lib
        from nutpie.sample import CompiledModel
    except _MISMATCH as exc:
        raise NutpiePrivateAPIError(f"{type(exc).__name__}: {exc}") from exc
    version = str(getattr(nutpie, "__version__", "unknown"))
    if ".".join(version.split(".")[:2]) not in TESTED_SERIES:
        raise NutpiePrivateAPIError(
            f"nutpie {version} is installed; the compiled fast path was tested with nutpie "
            f"{', '.join(s + '.x' for s in TESTED_SERIES)} only"
        )
    return _lib, CompiledModel


def make_model(
    *,
    logp_address: int,
    expand_address: int,
    user_data: np.ndarray,
    n_dim: int,
    n_expanded: int,
    names: Sequence[str],
    shapes: Sequence[tuple[int, ...]],
    dims: dict[str, tuple[str, ...]],
    coords: dict[str, Any],
    initial_point: Callable[..., np.ndarray],
    probe_point: np.ndarray,
) -> Any:
    """A ``nutpie.sample.CompiledModel`` whose log-density and expansion are C callbacks.

    Parameters
    ----------
    logp_address, expand_address : int
        Addresses of the C functions ``logp(dim, x, grad, logp, data)`` and
        ``expand(dim, n_out, x, out, data)`` (see :func:`bayesgmm._logdensity.c_callbacks`).
    user_data : ndarray
        The data block passed to both callbacks; the model keeps a reference, so it lives as
        long as the model does.
    n_dim, n_expanded : int
        Unconstrained dimension and length of the expanded (named variables) vector.
    names, shapes, dims, coords
        Expanded variables, their shapes and dims, and the coordinates of those dims.
    initial_point : callable
        ``initial_point(chain_seed) -> ndarray of shape (n_dim,)``, one start per call.
    probe_point : ndarray of shape (n_dim,)
        A point at which the set-up probe builds nutpie's model object (no evaluation).

    Returns
    -------
    nutpie.sample.CompiledModel
        For ``nutpie.sample``.

    Raises
    ------
    NutpiePrivateAPIError
        If nutpie's private API is missing or changed.
    """
    _lib, CompiledModel = _private()
    names = list(names)
    shapes = [tuple(s) for s in shapes]
    dim_sizes = {name: len(v) for name, v in coords.items()}

    def build(init_mean: Any) -> Any:
        logp_fn = _lib.LogpFunc(logp_address, user_data.ctypes.data, user_data)
        expand_fn = _lib.ExpandFunc(
            n_dim, n_expanded, expand_address, user_data.ctypes.data, user_data
        )
        variables = _lib.PyVariable.new_variables(
            names, ["float64"] * len(names), shapes, dim_sizes, dims
        )
        return _lib.PyMcModel(
            logp_fn, expand_fn, variables, n_dim, dim_sizes, coords, initial_point, None
        )

    try:

        class _CallbackModel(CompiledModel):
            @property
            def n_dim(self) -> int:
                return n_dim

            @property
            def shapes(self) -> dict[str, tuple[int, ...]]:
                return dict(zip(names, shapes, strict=True))

            @property
            def coords(self) -> dict[str, Any]:
                return coords

            def _make_sampler(self, settings, init_mean, cores, progress_type, *rest):
                try:
                    return _lib.PySampler.from_pymc(
                        settings, cores, self._make_model(init_mean), progress_type, *rest
                    )
                except _MISMATCH as exc:
                    raise NutpiePrivateAPIError(f"{type(exc).__name__}: {exc}") from exc

            def _make_model(self, init_mean):
                return build(init_mean)

        model = _CallbackModel(dims=dims)
        build(probe_point)  # every private constructor except the sampler's
    except _MISMATCH as exc:
        raise NutpiePrivateAPIError(f"{type(exc).__name__}: {exc}") from exc
    return model
