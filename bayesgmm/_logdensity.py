"""Compiled log-posterior of the mixture on the unconstrained scale, with its exact gradient.

This is the log-density that NUTS explores by default. It is *the same function* as the PyMC
graph of :func:`bayesgmm.build_model` (priors, PyMC's default transforms and their
log-Jacobians, normalising constants included), written out by hand with an analytic gradient
and compiled with Numba. Its prior hyper-parameters come from the one function that gives
``build_model`` its priors (:func:`bayesgmm.model.prior_hyperparameters`), and
``tests/test_fastpath_proof.py`` proves value and gradient equal to PyMC's compiled
log-posterior of build_model's reference formulation on a grid of shapes ((K, D) in
{(1, 1), (3, 1), (1, 3), (3, 3), (2, 9)}) for all four covariance types. It is used only where
that proof holds: the stock model with a ``Priors`` object
(:func:`bayesgmm.sampling._fast_path_applies`). It produces the constrained parameters
(``weights``, ``means``, ``chol``/``sigma``; :func:`expand`); the deterministics derived from
them are :func:`bayesgmm._numerics.covariance_deterministics`'s.

One pass over the data computes the likelihood and the responsibility-weighted sufficient
statistics from which every gradient follows (the E-step of EM):

* ``d/dlog w_k``: ``S_k = sum_i r_ik``;
* ``d/dmu_k = U_k z1_k`` with ``z_ik = (x_i - mu_k) U_k`` and ``z1_k = sum_i r_ik z_ik``;
* ``d/dL_k = tril(L_k^{-T} Z2_k) - S_k diag(1/L_k)`` with ``Z2_k = sum_i r_ik z_ik z_ik^T``.

Layout of the unconstrained vector ``theta`` (``K`` components, ``D`` features,
``P = D (D + 1) / 2``)::

    [0, K-1)            weights, PyMC's "simplex" transform: w = softmax([y, -sum(y)])
    [K-1, K-1+K*D)      means, row-major (component, feature)
    then                "full": K blocks of P packed lower-Cholesky entries of the covariance
                        (row-major lower triangle, log of the diagonal entries) -- PyMC's
                        LKJCholeskyCov "cholesky-cov-packed" value; "tied": one such block;
                        "diag": K*D log standard deviations; "spherical": K of them.

The data and hyper-parameters travel in one float64 array (:func:`pack_user_data`) whose
address nutpie hands to the C callbacks, so the compiled code is data-independent and cached
on disk by Numba (first use compiles in a few seconds, later processes load it).
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numba
import numpy as np
from numba import types
from scipy.special import gammaln

from ._kernels import _chunk_diag, _chunk_full
from ._numerics import COVARIANCE_TYPES

__all__ = [
    "LogDensitySpec",
    "c_callbacks",
    "expand",
    "from_unconstrained",
    "log_density_and_grad",
    "n_unconstrained",
    "pack_user_data",
    "to_unconstrained",
]

_log = logging.getLogger("bayesgmm")

COV_CODES = {name: i for i, name in enumerate(COVARIANCE_TYPES)}  # full, tied, diag, spherical
_HEADER = 6  # n_samples, n_features, n_components, cov code, lkj eta, constant
_LOG_2PI = math.log(2.0 * math.pi)
_HALF_LOG_2_OVER_PI = 0.5 * math.log(2.0 / math.pi)


def _n_cov(code: int, k: int, d: int) -> int:
    p = d * (d + 1) // 2
    return (k * p, p, k * d, k)[code]


def n_unconstrained(n_components: int, n_features: int, covariance_type: str) -> int:
    """Length of the unconstrained parameter vector."""
    k, d = n_components, n_features
    return k - 1 + k * d + _n_cov(COV_CODES[covariance_type], k, d)


def n_expanded(n_components: int, n_features: int, covariance_type: str) -> int:
    """Length of the expanded (constrained) draw: weights, means, Cholesky factors or sigmas."""
    k, d = n_components, n_features
    cov = (k * d * d, d * d, k * d, k)[COV_CODES[covariance_type]]
    return k + k * d + cov


@dataclass(frozen=True)
class LogDensitySpec:
    """Data and prior hyper-parameters of one posterior, exactly as ``build_model`` sets them.

    Build with :meth:`from_data`; ``user_data`` is the flat array the C callbacks read.
    """

    X: np.ndarray
    covariance_type: str
    n_components: int
    alpha: np.ndarray  # Dirichlet concentration, (K,)
    mean_loc: np.ndarray  # prior mean of the means, (K, D)
    mean_scale: np.ndarray  # prior sd of the means, (K, D)
    sd_scale: np.ndarray  # half-normal scale of the standard deviations, (D,)
    lkj_eta: float
    constant: float

    @classmethod
    def from_data(
        cls, X: np.ndarray, n_components: int, covariance_type: str, priors
    ) -> LogDensitySpec:
        """Hyper-parameters of ``X`` from :func:`bayesgmm.model.prior_hyperparameters`.

        The same function gives :func:`bayesgmm.build_model` its priors; this adds the
        normalising constants of the priors and of the likelihood.
        """
        from .model import prior_hyperparameters

        X = np.ascontiguousarray(X, dtype=np.float64)
        n, d = X.shape
        k = int(n_components)
        hp = prior_hyperparameters(X, k, covariance_type=covariance_type, priors=priors)
        alpha, tau, sds, eta = hp.weights_concentration, hp.means_scale, hp.sd_scale, hp.lkj_eta
        const = -0.5 * n * d * _LOG_2PI
        const += gammaln(alpha.sum()) - gammaln(alpha).sum() + math.log(k)
        const += float(np.sum(-0.5 * _LOG_2PI - np.log(tau)))
        half_normal = _HALF_LOG_2_OVER_PI - np.log(sds)
        if covariance_type in ("full", "tied"):
            n_cov = k if covariance_type == "full" else 1
            j = np.arange(1, d)
            lkj_norm = (d - 1) * gammaln(eta + 0.5 * (d - 1)) - float(
                np.sum(0.5 * j * math.log(math.pi) + gammaln(eta + 0.5 * (d - 1 - j)))
            )
            const += n_cov * (lkj_norm + float(half_normal.sum()))
        elif covariance_type == "diag":
            const += k * float(half_normal.sum())
        else:
            const += k * float(half_normal[0])
        return cls(
            X,
            covariance_type,
            k,
            np.ascontiguousarray(alpha),
            np.ascontiguousarray(hp.means_loc),
            np.ascontiguousarray(tau),
            np.ascontiguousarray(sds),
            eta,
            float(const),
        )

    @property
    def n_dim(self) -> int:
        return n_unconstrained(self.n_components, self.X.shape[1], self.covariance_type)

    @property
    def user_data(self) -> np.ndarray:
        return pack_user_data(self)


def pack_user_data(spec: LogDensitySpec) -> np.ndarray:
    """One contiguous float64 array: header, alpha, mean_loc, mean_scale (row-major K x D),
    sd_scale, X."""
    n, d = spec.X.shape
    header = [n, d, spec.n_components, COV_CODES[spec.covariance_type], spec.lkj_eta, spec.constant]
    return np.ascontiguousarray(
        np.concatenate(
            [
                np.asarray(header, dtype=np.float64),
                spec.alpha,
                spec.mean_loc.ravel(),
                spec.mean_scale.ravel(),
                spec.sd_scale,
                spec.X.ravel(),
            ]
        )
    )


# --------------------------------------------------------------------------- compiled core

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")


@_jit
def _weights(theta, k):  # pragma: no cover - compiled
    z = np.empty(k)
    total = 0.0
    for j in range(k - 1):
        z[j] = theta[j]
        total += theta[j]
    z[k - 1] = -total
    mx = z.max()
    s = 0.0
    for j in range(k):
        s += math.exp(z[j] - mx)
    lse = mx + math.log(s)
    log_w = z - lse
    return log_w, np.exp(log_w)


@_jit
def _unpack_chol(theta, start, d, out):  # pragma: no cover - compiled
    """Fill lower-triangular ``out`` from a packed block; returns the sum of log-diagonals."""
    p = start
    jac = 0.0
    for i in range(d):
        for j in range(i + 1):
            if i == j:
                out[i, i] = math.exp(theta[p])
                jac += theta[p]
            else:
                out[i, j] = theta[p]
            p += 1
        for j in range(i + 1, d):
            out[i, j] = 0.0
    return jac


@_jit
def _lower_inverse(chol, out):  # pragma: no cover - compiled
    d = chol.shape[0]
    for i in range(d):
        for j in range(d):
            out[i, j] = 0.0
    for i in range(d):
        out[i, i] = 1.0 / chol[i, i]
        for j in range(i):
            acc = 0.0
            for m in range(j, i):
                acc += chol[i, m] * out[m, j]
            out[i, j] = -acc / chol[i, i]


@_jit
def _log_density_and_grad(
    theta, grad, X, alpha, mean_loc, mean_scale, sd_scale, eta, code, k, const
):  # pragma: no cover - compiled
    n, d = X.shape
    full_like = code <= 1
    n_cov = k if code == 0 else 1
    off_mu = k - 1
    off_cov = off_mu + k * d
    for i in range(grad.shape[0]):
        grad[i] = 0.0

    # ---- weights: Dirichlet + simplex Jacobian = sum_k alpha_k log w_k (+ constant)
    log_w, w = _weights(theta, k)
    logp = const
    for j in range(k):
        logp += alpha[j] * log_w[j]

    # ---- means: Normal(mean_loc, mean_scale)
    mu = np.empty((k, d))
    for j in range(k):
        for e in range(d):
            v = theta[off_mu + j * d + e]
            mu[j, e] = v
            t = (v - mean_loc[j, e]) / mean_scale[j, e]
            logp -= 0.5 * t * t
            grad[off_mu + j * d + e] = -t / mean_scale[j, e]

    # ---- covariance parameters and their priors
    p_len = d * (d + 1) // 2
    chol = np.zeros((n_cov, d, d))
    linv = np.zeros((n_cov, d, d))  # L^{-1}; for diag/spherical its diagonal is 1/sigma
    sig = np.ones((k, d))
    log_det = np.empty(k)  # log det U_k = -log det L_k
    if full_like:
        for c in range(n_cov):
            start = off_cov + c * p_len
            logp += _unpack_chol(theta, start, d, chol[c])
            _lower_inverse(chol[c], linv[c])
            ld = 0.0
            for i in range(d):
                ld -= math.log(chol[c, i, i])
            if code == 0:
                log_det[c] = ld
            else:
                for j in range(k):
                    log_det[j] = ld
            # LKJCholeskyCov(eta, HalfNormal(sd_scale)) on the packed Cholesky factor
            for i in range(d):
                sd2 = 0.0
                for m in range(i + 1):
                    sd2 += chol[c, i, m] * chol[c, i, m]
                a_i = 2.0 * eta - 2.0 + d - i
                s2 = sd_scale[i] * sd_scale[i]
                logp += a_i * math.log(chol[c, i, i]) - 0.5 * (a_i + i) * math.log(sd2)
                logp -= 0.5 * sd2 / s2
                p = start + i * (i + 1) // 2
                for m in range(i + 1):
                    g = -(a_i + i) * chol[c, i, m] / sd2 - chol[c, i, m] / s2
                    if m == i:
                        g += a_i / chol[c, i, i]
                    grad[p + m] += g
    else:
        for j in range(k):
            ld = 0.0
            for e in range(d):
                u = theta[off_cov + j * d + e] if code == 2 else theta[off_cov + j]
                s = math.exp(u)
                sig[j, e] = s
                ld -= u
            log_det[j] = ld
            n_free = d if code == 2 else 1
            for e in range(n_free):
                s = sig[j, e]
                s2 = sd_scale[e] * sd_scale[e]
                logp += math.log(s) - 0.5 * s * s / s2  # log-Jacobian + half-normal
                grad[off_cov + j * n_free + e] = 1.0 - s * s / s2

    # ---- likelihood: the EM kernel's pass gives log p(X) and the responsibility-weighted
    # moments around the means: nk_k = sum_i r_ik, s1_k = sum_i r_ik (x_i - mu_k), m2_k the
    # same for (x_i - mu_k)(x_i - mu_k)^T (lower triangle for full, diagonal for diag).
    log_const = np.empty(k)
    for j in range(k):
        log_const[j] = log_w[j] + log_det[j]
    nk = np.zeros(k)
    s1 = np.zeros((k, d))
    ones = np.ones(n)
    if full_like:
        prec_chol = np.empty((k, d, d))  # U_k = L_k^{-T}, upper triangular
        for j in range(k):
            c = j if code == 0 else 0
            for a in range(d):
                for b in range(d):
                    prec_chol[j, a, b] = linv[c, b, a]
        m2 = np.zeros((k, d, d))
        loglik = _chunk_full(X, ones, log_const, mu, prec_chol, 0, n, nk, s1, m2)
    else:
        inv_sig = 1.0 / sig
        s2d = np.zeros((k, d))
        loglik = _chunk_diag(X, ones, log_const, mu, inv_sig, 0, n, nk, s1, s2d)
    logp += loglik

    # ---- gradients of the likelihood
    a_tot = alpha.sum()
    gz = np.empty(k)
    for j in range(k):
        gz[j] = nk[j] + alpha[j] - (n + a_tot) * w[j]
    for j in range(k - 1):
        grad[j] = gz[j] - gz[k - 1]
    if full_like:
        # precision P = L^{-T} L^{-1}; d/dmu_k = P s1_k; d/dL = tril(P S2 L^{-T}) - n diag(1/L)
        prec = np.zeros((n_cov, d, d))
        for c in range(n_cov):
            for a in range(d):
                for b in range(d):
                    acc = 0.0
                    for m in range(max(a, b), d):
                        acc += linv[c, m, a] * linv[c, m, b]
                    prec[c, a, b] = acc
        big = np.zeros((n_cov, d, d))  # sum over the covariance's components of sym(m2_k)
        n_c = np.zeros(n_cov)
        for j in range(k):
            c = j if code == 0 else 0
            n_c[c] += nk[j]
            for a in range(d):
                acc = 0.0
                for b in range(d):
                    acc += prec[c, a, b] * s1[j, b]
                grad[off_mu + j * d + a] += acc
                for b in range(a + 1):
                    big[c, a, b] += m2[j, a, b]
                    if a != b:
                        big[c, b, a] += m2[j, a, b]
        tmp = np.empty((d, d))
        for c in range(n_cov):
            for a in range(d):  # tmp = P @ big
                for b in range(d):
                    acc = 0.0
                    for m in range(d):
                        acc += prec[c, a, m] * big[c, m, b]
                    tmp[a, b] = acc
            start = off_cov + c * p_len
            for a in range(d):
                p = start + a * (a + 1) // 2
                for b in range(a + 1):
                    acc = 0.0  # (tmp @ L^{-T})[a, b] = sum_m tmp[a, m] linv[b, m]
                    for m in range(b + 1):
                        acc += tmp[a, m] * linv[c, b, m]
                    if a == b:
                        acc -= n_c[c] / chol[c, a, a]
                        # chain rule through L_aa = exp(u), plus the log-Jacobian
                        grad[p + b] = (grad[p + b] + acc) * chol[c, a, a] + 1.0
                    else:
                        grad[p + b] += acc
    else:
        for j in range(k):
            acc = 0.0
            for a in range(d):
                iv = inv_sig[j, a] * inv_sig[j, a]
                grad[off_mu + j * d + a] += s1[j, a] * iv
                if code == 2:
                    grad[off_cov + j * d + a] += s2d[j, a] * iv - nk[j]
                else:
                    acc += s2d[j, a] * iv
            if code == 3:
                grad[off_cov + j] += acc - d * nk[j]
    return logp


@_jit
def _expand(theta, out, k, d, code):  # pragma: no cover - compiled
    """Constrained draw: weights (K), means (K*D), then L (K*D*D or D*D) or sigma."""
    _, w = _weights(theta, k)
    for j in range(k):
        out[j] = w[j]
    off_mu = k - 1
    for q in range(k * d):
        out[k + q] = theta[off_mu + q]
    off_cov = off_mu + k * d
    pos = k + k * d
    if code <= 1:
        n_cov = k if code == 0 else 1
        p_len = d * (d + 1) // 2
        chol = np.empty((d, d))
        for c in range(n_cov):
            _unpack_chol(theta, off_cov + c * p_len, d, chol)
            for a in range(d):
                for b in range(d):
                    out[pos] = chol[a, b]
                    pos += 1
    else:
        n_free = k * d if code == 2 else k
        for q in range(n_free):
            out[pos + q] = math.exp(theta[off_cov + q])


@_jit
def _unpack(ud):  # pragma: no cover - compiled
    n = int(ud[0])
    d = int(ud[1])
    k = int(ud[2])
    code = int(ud[3])
    eta = ud[4]
    const = ud[5]
    o = 6
    alpha = ud[o : o + k]
    o += k
    loc = ud[o : o + k * d].reshape((k, d))
    o += k * d
    tau = ud[o : o + k * d].reshape((k, d))
    o += k * d
    sds = ud[o : o + d]
    o += d
    X = ud[o : o + n * d].reshape((n, d))
    return X, alpha, loc, tau, sds, eta, code, k, const


def _logp_c(dim, x_ptr, grad_ptr, logp_ptr, ud_ptr):  # pragma: no cover - compiled
    head = numba.carray(ud_ptr, (_HEADER,))
    n, d, k = int(head[0]), int(head[1]), int(head[2])
    ud = numba.carray(ud_ptr, (_HEADER + k + 2 * k * d + d + n * d,))
    X, alpha, loc, tau, sds, eta, code, k, const = _unpack(ud)
    theta = numba.carray(x_ptr, (dim,))
    grad = numba.carray(grad_ptr, (dim,))
    value = _log_density_and_grad(theta, grad, X, alpha, loc, tau, sds, eta, code, k, const)
    logp_ptr[0] = value
    if not np.isfinite(value):
        return 4
    for i in range(dim):
        if not np.isfinite(grad[i]):
            return 3
    return 0


def _expand_c(dim, n_out, x_ptr, out_ptr, ud_ptr):  # pragma: no cover - compiled
    head = numba.carray(ud_ptr, (_HEADER,))
    d, k, code = int(head[1]), int(head[2]), int(head[3])
    theta = numba.carray(x_ptr, (dim,))
    out = numba.carray(out_ptr, (n_out,))
    _expand(theta, out, k, d, code)
    return 0


_F64P = types.CPointer(types.float64)
_LOGP_SIG = types.int64(types.uint64, _F64P, _F64P, _F64P, _F64P)
_EXPAND_SIG = types.int64(types.uint64, types.uint64, _F64P, _F64P, _F64P)


# ------------------------------------------------------------------ one compiled code for all
# A kernel that Numba compiles in memory and the same kernel loaded from its on-disk cache by a
# later process can differ in the last bits of their floating-point results (they are
# compiled with fastmath: the in-memory and the cached code form fused multiply-adds and
# reassociated sums differently). NUTS amplifies such bits, so the first fit after a cache
# miss drew another posterior from the same seed than every later fit. So on a cache miss
# the kernels are compiled in a child process, which writes the cache, and this process then
# loads them from it like every later one (tests/test_kernels_cache.py). Where Numba cannot
# cache (a read-only install), every process compiles in memory and they agree again.

_WARMUP_ENV = "BAYESGMM_KERNEL_WARMUP"
_cache_checked = False


def _tiny_spec(covariance_type: str) -> LogDensitySpec:
    from .model import Priors

    X = np.array([[0.0, 1.0], [1.0, 0.5], [2.0, 2.0]])
    return LogDensitySpec.from_data(X, 2, covariance_type, Priors())


def _compile_all() -> None:
    """Compile (and cache) the stock log density for both data layouts and the C callbacks."""
    for cov in ("full", "diag"):
        spec = _tiny_spec(cov)
        log_density_and_grad(np.zeros(spec.n_dim), spec)
    c_callbacks()


def _kernels_cached() -> bool | None:
    """Whether Numba's cache holds the log density for this source (None: cannot tell)."""
    spec = _tiny_spec("full")
    args = (
        np.zeros(spec.n_dim), np.zeros(spec.n_dim), spec.X, spec.alpha, spec.mean_loc,
        spec.mean_scale, spec.sd_scale, spec.lkj_eta, COV_CODES["full"], spec.n_components,
        spec.constant,
    )  # fmt: skip
    disp = _log_density_and_grad
    sig = tuple(numba.typeof(a) for a in args)
    try:
        return disp._cache.load_overload(sig, disp.targetctx) is not None
    except Exception:  # Numba internals changed: do not guess
        return None


def _load_compiled_from_cache() -> None:
    """On a cache miss, compile the kernels in a child process so that this one loads them
    from Numba's cache, as every later process will (see the comment above)."""
    global _cache_checked
    if _cache_checked:
        return
    _cache_checked = True
    if os.environ.get(_WARMUP_ENV) == "1" or _kernels_cached() is not False:
        return
    env = dict(os.environ)
    env[_WARMUP_ENV] = "1"
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    code = "from bayesgmm._logdensity import _compile_all; _compile_all()"
    try:
        subprocess.run(
            [sys.executable, "-c", code], env=env, check=True, capture_output=True, timeout=900
        )
    except (OSError, subprocess.SubprocessError) as exc:
        _log.debug("Compiling the kernels in a child process failed (%s); compiling here.", exc)
        return
    if not _kernels_cached():
        _log.debug("Numba's cache is not usable here; the kernels are compiled in memory.")


@cache
def c_callbacks():
    """Compile (or load from Numba's cache) the two C callbacks nutpie calls.

    Returns ``(logp, expand)`` :class:`numba.core.ccallback.CFunc` objects with the C
    signatures ``int64 logp(uint64 dim, double *x, double *grad, double *logp, double *data)``
    and ``int64 expand(uint64 dim, uint64 n_out, double *x, double *out, double *data)``.
    """
    _load_compiled_from_cache()
    logp = numba.cfunc(_LOGP_SIG, nogil=True, cache=True, error_model="numpy")(_logp_c)
    expand_ = numba.cfunc(_EXPAND_SIG, nogil=True, cache=True, error_model="numpy")(_expand_c)
    return logp, expand_


# --------------------------------------------------------------------------- Python side


def log_density_and_grad(theta: np.ndarray, spec: LogDensitySpec) -> tuple[float, np.ndarray]:
    """Log-posterior (unconstrained scale, Jacobians included) and its gradient at ``theta``."""
    theta = np.ascontiguousarray(theta, dtype=np.float64)
    if theta.shape != (spec.n_dim,):
        raise ValueError(f"theta must have shape ({spec.n_dim},), got {theta.shape}.")
    grad = np.empty_like(theta)
    _load_compiled_from_cache()
    value = _log_density_and_grad(
        theta,
        grad,
        spec.X,
        spec.alpha,
        spec.mean_loc,
        spec.mean_scale,
        spec.sd_scale,
        spec.lkj_eta,
        COV_CODES[spec.covariance_type],
        spec.n_components,
        spec.constant,
    )
    return float(value), grad


def expand(theta: np.ndarray, n_components: int, n_features: int, covariance_type: str):
    """The flat constrained draw written by the compiled ``expand`` callback."""
    theta = np.ascontiguousarray(theta, dtype=np.float64)
    out = np.empty(n_expanded(n_components, n_features, covariance_type))
    _expand(theta, out, n_components, n_features, COV_CODES[covariance_type])
    return out


def to_unconstrained(
    weights: np.ndarray, means: np.ndarray, cov_param: np.ndarray, covariance_type: str
) -> np.ndarray:
    """Unconstrained vector from constrained values.

    ``cov_param`` is the lower Cholesky factor of the covariance(s) for ``"full"`` (K, D, D)
    and ``"tied"`` (D, D), and the standard deviations for ``"diag"`` (K, D) and
    ``"spherical"`` (K,).
    """
    weights = np.asarray(weights, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    log_w = np.log(weights)
    parts = [log_w[:-1] - log_w.mean(), means.ravel()]
    cov_param = np.asarray(cov_param, dtype=np.float64)
    if covariance_type in ("full", "tied"):
        chol = cov_param if covariance_type == "full" else cov_param[None]
        d = chol.shape[-1]
        rows, cols = np.tril_indices(d)
        packed = chol[:, rows, cols].copy()
        diag = rows == cols
        packed[:, diag] = np.log(packed[:, diag])
        parts.append(packed.ravel())
    else:
        parts.append(np.log(cov_param).ravel())
    return np.concatenate(parts)


def from_unconstrained(
    draws: np.ndarray, n_components: int, n_features: int, covariance_type: str
) -> dict[str, np.ndarray]:
    """Split expanded draws ``(..., n_expanded)`` into named constrained arrays.

    Returns ``weights`` (..., K), ``means`` (..., K, D) and ``chol`` (..., K, D, D) / (..., D, D)
    or ``sigma`` (..., K, D) / (..., K).
    """
    k, d = n_components, n_features
    lead = draws.shape[:-1]
    out = {
        "weights": draws[..., :k],
        "means": draws[..., k : k + k * d].reshape((*lead, k, d)),
    }
    rest = draws[..., k + k * d :]
    if covariance_type == "full":
        out["chol"] = rest.reshape((*lead, k, d, d))
    elif covariance_type == "tied":
        out["chol"] = rest.reshape((*lead, d, d))
    elif covariance_type == "diag":
        out["sigma"] = rest.reshape((*lead, k, d))
    else:
        out["sigma"] = rest.reshape((*lead, k))
    return out
