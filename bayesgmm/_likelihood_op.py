"""The mixture likelihood as a PyTensor Op: compiled kernels for its value and its gradient.

:class:`MixtureLogDensity` computes the pointwise Gaussian-mixture log-density

.. math::

    \\log p(x_i) = \\operatorname{logsumexp}_k \\Big[\\log w_k + \\log\\det U_k
    - \\tfrac{D}{2}\\log 2\\pi - \\tfrac12 \\lVert (x_i - \\mu_k) U_k \\rVert^2 \\Big]

of observations ``X (N, D)`` given ``weights (K,)``, ``means (K, D)`` and the precision
Cholesky parameter of the covariance type, in the layout of :mod:`bayesgmm._numerics`:
``"full"`` (K, D, D) and ``"tied"`` (D, D) upper-triangular ``U`` with precision ``U U^T`` (only
the upper triangle is read: the lower one is taken to be zero and gets a zero gradient),
``"diag"`` (K, D) and ``"spherical"`` (K,) inverse standard deviations.

Its gradient is a second Op, :class:`MixtureLogDensityGrad`, that returns the vector-Jacobian
product for an output cotangent ``g (N,)`` from one pass over the data: the EM kernel of
:mod:`bayesgmm._kernels`, run with ``g`` as the sample weights, gathers the ``g``-weighted
responsibility moments ``n_k = sum_i g_i r_ik``, ``s1_k = sum_i g_i r_ik (x_i - mu_k)`` and
``S_k = sum_i g_i r_ik (x_i - mu_k)(x_i - mu_k)^T``, from which

* ``d/dw_k = n_k / w_k``;
* ``d/dmu_k = U_k U_k^T s1_k``;
* ``d/dU_k = upper(n_k diag(1 / U_k) - S_k U_k)`` (diagonal precisions: the diagonal of the
  same; ``"tied"`` and ``"spherical"`` sum over the components and features that share a
  parameter).

Both Ops run the same Numba kernels: ``perform`` calls them from Python, and
``numba_funcify`` registrations hand them to PyTensor's Numba backend, so a model compiled by
``nutpie.compile_pymc_model(model, backend="numba")`` or in PyMC's Numba mode calls them
directly (no object mode). There is no JAX implementation: graphs for JAX samplers use the
reference formulation of :func:`bayesgmm.model.build_model` (``likelihood="reference"``).
"""

from __future__ import annotations

import math

import numpy as np
import pytensor.tensor as pt
from numba import njit
from pytensor.gradient import grad_not_implemented
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key

from ._kernels import (
    _BLOCK,
    _FASTMATH,
    _chunk_diag,
    _chunk_full,
    block_log_probs_diag,
    block_log_probs_full,
    softmax_block,
)
from ._numerics import COVARIANCE_TYPES
from ._validation import check_choice

__all__ = ["MixtureLogDensity", "MixtureLogDensityGrad", "mixture_log_density"]

_LOG_2PI = math.log(2.0 * math.pi)
#: Number of dimensions of the precision parameter per covariance type.
_PARAM_NDIM = {"full": 3, "tied": 2, "diag": 2, "spherical": 1}
#: Bumped whenever the kernels change, so that PyTensor's Numba cache is not reused.
_CACHE_VERSION = 2

_jit = njit(cache=True, nogil=True, fastmath=_FASTMATH, error_model="numpy")


# --------------------------------------------------------------------------- compiled kernels


@_jit
def _check_shapes(X, weights, means, precision_shape, want_shape):  # pragma: no cover - compiled
    """Raise on inconsistent shapes (the kernels do not check their indices)."""
    if means.shape[0] != weights.shape[0] or means.shape[1] != X.shape[1]:
        raise ValueError("MixtureLogDensity: means must have shape (K, D), K = len(weights).")
    if precision_shape != want_shape:
        raise ValueError(
            "MixtureLogDensity: the precision parameter's shape does not match the covariance "
            "type: (K, D, D) full, (D, D) tied, (K, D) diag, (K,) spherical."
        )


@_jit
def _check_cotangent(X, g):  # pragma: no cover - compiled
    if g.shape[0] != X.shape[0]:
        raise ValueError("MixtureLogDensityGrad: the output gradient must have shape (N,).")


@_jit
def _log_const_full(weights, prec_chol, d):  # pragma: no cover - compiled
    """``log w_k + log det U_k - D/2 log 2 pi`` for (K, D, D) upper factors."""
    k = weights.shape[0]
    out = np.empty(k)
    for j in range(k):
        ld = 0.0
        for a in range(d):
            ld += math.log(prec_chol[j, a, a])
        out[j] = math.log(weights[j]) + ld - 0.5 * d * _LOG_2PI
    return out


@_jit
def _log_const_diag(weights, inv_sd, d):  # pragma: no cover - compiled
    k = weights.shape[0]
    out = np.empty(k)
    for j in range(k):
        ld = 0.0
        for a in range(d):
            ld += math.log(inv_sd[j, a])
        out[j] = math.log(weights[j]) + ld - 0.5 * d * _LOG_2PI
    return out


@_jit
def _tied_to_full(prec_chol, k):  # pragma: no cover - compiled
    d = prec_chol.shape[0]
    out = np.empty((k, d, d))
    for j in range(k):
        for a in range(d):
            for b in range(d):
                out[j, a, b] = prec_chol[a, b]
    return out


@_jit
def _spherical_to_diag(prec_chol, d):  # pragma: no cover - compiled
    k = prec_chol.shape[0]
    out = np.empty((k, d))
    for j in range(k):
        for a in range(d):
            out[j, a] = prec_chol[j]
    return out


@_jit
def _pointwise_full(X, log_const, means, prec_chol):  # pragma: no cover - compiled
    n, d = X.shape
    k = means.shape[0]
    out = np.empty(n)
    lp = np.empty((k, _BLOCK))
    diff = np.empty((k, d, _BLOCK))
    y = np.empty(_BLOCK)
    mx = np.empty(_BLOCK)
    for start in range(0, n, _BLOCK):
        m = min(_BLOCK, n - start)
        block_log_probs_full(X, start, m, log_const, means, prec_chol, diff, y, lp)
        softmax_block(lp, m, None, 0, mx, out[start : start + m])
    return out


@_jit
def _pointwise_diag(X, log_const, means, inv_sd):  # pragma: no cover - compiled
    n, d = X.shape
    k = means.shape[0]
    out = np.empty(n)
    lp = np.empty((k, _BLOCK))
    diff = np.empty((k, d, _BLOCK))
    mx = np.empty(_BLOCK)
    for start in range(0, n, _BLOCK):
        m = min(_BLOCK, n - start)
        block_log_probs_diag(X, start, m, log_const, means, inv_sd, diff, lp)
        softmax_block(lp, m, None, 0, mx, out[start : start + m])
    return out


@_jit
def logp_full(X, weights, means, prec_chol):  # pragma: no cover - compiled
    """Pointwise log-density, ``"full"``: ``prec_chol`` (K, D, D) upper triangular."""
    _check_shapes(X, weights, means, prec_chol.shape, (weights.shape[0], X.shape[1], X.shape[1]))
    log_const = _log_const_full(weights, prec_chol, X.shape[1])
    return _pointwise_full(X, log_const, means, prec_chol)


@_jit
def logp_tied(X, weights, means, prec_chol):  # pragma: no cover - compiled
    """Pointwise log-density, ``"tied"``: ``prec_chol`` (D, D) upper triangular."""
    _check_shapes(X, weights, means, prec_chol.shape, (X.shape[1], X.shape[1]))
    full = _tied_to_full(prec_chol, means.shape[0])
    return logp_full(X, weights, means, full)


@_jit
def logp_diag(X, weights, means, prec_chol):  # pragma: no cover - compiled
    """Pointwise log-density, ``"diag"``: ``prec_chol`` (K, D) inverse standard deviations."""
    _check_shapes(X, weights, means, prec_chol.shape, (weights.shape[0], X.shape[1]))
    log_const = _log_const_diag(weights, prec_chol, X.shape[1])
    return _pointwise_diag(X, log_const, means, prec_chol)


@_jit
def logp_spherical(X, weights, means, prec_chol):  # pragma: no cover - compiled
    """Pointwise log-density, ``"spherical"``: ``prec_chol`` (K,) inverse standard deviations."""
    _check_shapes(X, weights, means, prec_chol.shape, (weights.shape[0],))
    return logp_diag(X, weights, means, _spherical_to_diag(prec_chol, X.shape[1]))


@_jit
def _moments_full(X, g, weights, means, prec_chol):  # pragma: no cover - compiled
    """``g``-weighted responsibility moments and the weights' and means' gradients."""
    n, d = X.shape
    k = means.shape[0]
    log_const = _log_const_full(weights, prec_chol, d)
    nk = np.zeros(k)
    s1 = np.zeros((k, d))
    s2 = np.zeros((k, d, d))  # lower triangle of sum_i g_i r_ik diff diff^T
    _chunk_full(X, g, log_const, means, prec_chol, 0, n, nk, s1, s2)
    g_w = np.empty(k)
    g_mu = np.empty((k, d))
    g_u = np.zeros((k, d, d))
    sym = np.empty((d, d))
    for j in range(k):
        g_w[j] = nk[j] / weights[j]
        u = prec_chol[j]
        for a in range(d):  # mean: (U U^T) s1, with U read from its upper triangle
            acc = 0.0
            for b in range(d):
                p_ab = 0.0
                for m in range(max(a, b), d):
                    p_ab += u[a, m] * u[b, m]
                acc += p_ab * s1[j, b]
            g_mu[j, a] = acc
        for a in range(d):
            for b in range(a + 1):
                sym[a, b] = s2[j, a, b]
                sym[b, a] = s2[j, a, b]
        for a in range(d):  # factor: n_k diag(1/U) - S U, upper triangle only
            for b in range(a, d):
                acc = 0.0
                for m in range(b + 1):
                    acc += sym[a, m] * u[m, b]
                g_u[j, a, b] = -acc
            g_u[j, a, a] += nk[j] / u[a, a]
    return g_w, g_mu, g_u


@_jit
def grad_full(X, weights, means, prec_chol, g):  # pragma: no cover - compiled
    """Vector-Jacobian product of :func:`logp_full` for the cotangent ``g`` (N,)."""
    _check_shapes(X, weights, means, prec_chol.shape, (weights.shape[0], X.shape[1], X.shape[1]))
    _check_cotangent(X, g)
    return _moments_full(X, g, weights, means, prec_chol)


@_jit
def grad_tied(X, weights, means, prec_chol, g):  # pragma: no cover - compiled
    """Vector-Jacobian product of :func:`logp_tied`; the factor's gradient summed over K."""
    _check_shapes(X, weights, means, prec_chol.shape, (X.shape[1], X.shape[1]))
    _check_cotangent(X, g)
    full = _tied_to_full(prec_chol, means.shape[0])
    g_w, g_mu, g_u = _moments_full(X, g, weights, means, full)
    d = prec_chol.shape[0]
    g_tied = np.zeros((d, d))
    for j in range(means.shape[0]):
        for a in range(d):
            for b in range(d):
                g_tied[a, b] += g_u[j, a, b]
    return g_w, g_mu, g_tied


@_jit
def _moments_diag(X, g, weights, means, inv_sd):  # pragma: no cover - compiled
    n, d = X.shape
    k = means.shape[0]
    log_const = _log_const_diag(weights, inv_sd, d)
    nk = np.zeros(k)
    s1 = np.zeros((k, d))
    s2 = np.zeros((k, d))
    _chunk_diag(X, g, log_const, means, inv_sd, 0, n, nk, s1, s2)
    g_w = np.empty(k)
    g_mu = np.empty((k, d))
    g_u = np.empty((k, d))
    for j in range(k):
        g_w[j] = nk[j] / weights[j]
        for a in range(d):
            u = inv_sd[j, a]
            g_mu[j, a] = s1[j, a] * u * u
            g_u[j, a] = nk[j] / u - u * s2[j, a]
    return g_w, g_mu, g_u


@_jit
def grad_diag(X, weights, means, prec_chol, g):  # pragma: no cover - compiled
    """Vector-Jacobian product of :func:`logp_diag` for the cotangent ``g`` (N,)."""
    _check_shapes(X, weights, means, prec_chol.shape, (weights.shape[0], X.shape[1]))
    _check_cotangent(X, g)
    return _moments_diag(X, g, weights, means, prec_chol)


@_jit
def grad_spherical(X, weights, means, prec_chol, g):  # pragma: no cover - compiled
    """Vector-Jacobian product of :func:`logp_spherical`; summed over the features."""
    _check_shapes(X, weights, means, prec_chol.shape, (weights.shape[0],))
    _check_cotangent(X, g)
    d = X.shape[1]
    g_w, g_mu, g_u = _moments_diag(X, g, weights, means, _spherical_to_diag(prec_chol, d))
    k = means.shape[0]
    g_s = np.zeros(k)
    for j in range(k):
        for a in range(d):
            g_s[j] += g_u[j, a]
    return g_w, g_mu, g_s


_LOGP_KERNELS = {
    "full": logp_full,
    "tied": logp_tied,
    "diag": logp_diag,
    "spherical": logp_spherical,
}
_GRAD_KERNELS = {
    "full": grad_full,
    "tied": grad_tied,
    "diag": grad_diag,
    "spherical": grad_spherical,
}


# --------------------------------------------------------------------------- the Ops


def _check_covariance_type(covariance_type: str) -> str:
    return check_choice("covariance_type", covariance_type, COVARIANCE_TYPES)


def _as_float64(x) -> pt.TensorVariable:
    x = pt.as_tensor_variable(x)
    return x if x.dtype == "float64" else pt.cast(x, "float64")


def _check_inputs(covariance_type: str, X, weights, means, prec_chol) -> list:
    inputs = [_as_float64(v) for v in (X, weights, means, prec_chol)]
    want = {"X": 2, "weights": 1, "means": 2, "precision parameter": _PARAM_NDIM[covariance_type]}
    for var, (name, ndim) in zip(inputs, want.items(), strict=True):
        if var.ndim != ndim:
            raise ValueError(
                f"MixtureLogDensity({covariance_type!r}): {name} must have {ndim} "
                f"dimension(s), got {var.ndim}; pass one parameter set (no batch dimensions)."
            )
    return inputs


class MixtureLogDensity(Op):
    """Pointwise Gaussian-mixture log-density ``(X, weights, means, prec_chol) -> (N,)``.

    Parameters
    ----------
    covariance_type : {"full", "tied", "diag", "spherical"}
        Layout of the precision parameter (module docstring). ``X`` is differentiated
        nowhere (its gradient is not implemented): it is the observed data.
    """

    __props__ = ("covariance_type",)

    def __init__(self, covariance_type: str) -> None:
        self.covariance_type = _check_covariance_type(covariance_type)
        super().__init__()

    def make_node(self, X, weights, means, prec_chol) -> Apply:
        inputs = _check_inputs(self.covariance_type, X, weights, means, prec_chol)
        out = pt.tensor(dtype="float64", shape=(inputs[0].type.shape[0],))
        return Apply(self, inputs, [out])

    def perform(self, node, inputs, output_storage) -> None:
        X, weights, means, prec_chol = inputs
        output_storage[0][0] = _LOGP_KERNELS[self.covariance_type](X, weights, means, prec_chol)

    def infer_shape(self, node, input_shapes):
        return [(input_shapes[0][0],)]

    def pullback(self, inputs, outputs, cotangents):
        X, weights, means, prec_chol = inputs
        g_w, g_mu, g_p = MixtureLogDensityGrad(self.covariance_type)(
            X, weights, means, prec_chol, cotangents[0]
        )
        return [grad_not_implemented(self, 0, X, "the data X is not a parameter"), g_w, g_mu, g_p]


class MixtureLogDensityGrad(Op):
    """Gradients of ``sum_i g_i log p(x_i)`` with respect to weights, means and ``prec_chol``.

    ``(X, weights, means, prec_chol, g) -> (d weights, d means, d prec_chol)``, each of its
    parameter's shape, from one pass over the data (module docstring).
    """

    __props__ = ("covariance_type",)

    def __init__(self, covariance_type: str) -> None:
        self.covariance_type = _check_covariance_type(covariance_type)
        super().__init__()

    def make_node(self, X, weights, means, prec_chol, g) -> Apply:
        inputs = _check_inputs(self.covariance_type, X, weights, means, prec_chol)
        g = _as_float64(g)
        if g.ndim != 1:
            raise ValueError(f"The output gradient must be 1-D (N,), got {g.ndim} dimensions.")
        outputs = [pt.tensor(dtype="float64", shape=v.type.shape) for v in inputs[1:]]
        return Apply(self, [*inputs, g], outputs)

    def perform(self, node, inputs, output_storage) -> None:
        out = _GRAD_KERNELS[self.covariance_type](*inputs)
        for storage, value in zip(output_storage, out, strict=True):
            storage[0] = value

    def infer_shape(self, node, input_shapes):
        return [input_shapes[1], input_shapes[2], input_shapes[3]]

    def pullback(self, inputs, outputs, cotangents):
        return [
            grad_not_implemented(self, i, v, "second derivatives of the mixture likelihood")
            for i, v in enumerate(inputs)
        ]


@register_funcify_default_op_cache_key(MixtureLogDensity)
def _numba_mixture_log_density(op, node=None, **kwargs):
    return _LOGP_KERNELS[op.covariance_type], _CACHE_VERSION


@register_funcify_default_op_cache_key(MixtureLogDensityGrad)
def _numba_mixture_log_density_grad(op, node=None, **kwargs):
    return _GRAD_KERNELS[op.covariance_type], _CACHE_VERSION


def mixture_log_density(X, weights, means, prec_chol, covariance_type: str) -> pt.TensorVariable:
    """Symbolic pointwise mixture log-density through :class:`MixtureLogDensity`.

    Parameters
    ----------
    X : tensor-like of shape (n_samples, n_features)
        Observations (a constant in a model).
    weights : tensor-like of shape (n_components,)
    means : tensor-like of shape (n_components, n_features)
    prec_chol : tensor-like
        Precision Cholesky parameter in the layout of ``covariance_type`` (module docstring).
    covariance_type : {"full", "tied", "diag", "spherical"}

    Returns
    -------
    TensorVariable of shape (n_samples,)
    """
    return MixtureLogDensity(covariance_type)(X, weights, means, prec_chol)
