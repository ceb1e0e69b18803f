"""mclust's fourteen covariance models: names, parameter counts and constrained M-steps.

Banfield & Raftery (1993) and Celeux & Govaert (1995) write each component's covariance as
``Sigma_k = lambda_k D_k A_k D_k^T``: a volume ``lambda_k = det(Sigma_k)^(1/D)``, a shape
``A_k`` (diagonal, determinant 1, decreasing entries) and an orientation ``D_k`` (orthogonal).
A model's three letters say whether volume, shape and orientation are equal (``E``) or vary
(``V``) across components, ``I`` meaning the identity (spherical shape, or axis-aligned
orientation):

=====  ===========================  ==========  =============================
model  Sigma_k                      layout      M-step
=====  ===========================  ==========  =============================
EII    lambda I                     spherical   closed form
VII    lambda_k I                   spherical   closed form (= "spherical")
EEI    lambda A                     diag        closed form
VEI    lambda_k A                   diag        iterative (alternating)
EVI    lambda A_k                   diag        closed form
VVI    lambda_k A_k                 diag        closed form (= "diag")
EEE    lambda D A D^T               tied        closed form (= "tied")
VEE    lambda_k D A D^T             full        iterative (alternating)
EVE    lambda D A_k D^T             full        iterative (Jacobi rotations)
VVE    lambda_k D A_k D^T           full        iterative (Jacobi rotations)
EEV    lambda D_k A D_k^T           full        closed form (eigendecompositions)
VEV    lambda_k D_k A D_k^T         full        iterative (alternating)
EVV    lambda D_k A_k D_k^T         full        closed form
VVV    lambda_k D_k A_k D_k^T       full        closed form (= "full")
=====  ===========================  ==========  =============================

*Layout* is how the fitted covariances are stored (the shapes of
:mod:`bayesgmm._numerics`): the E-step, prediction and sampling of every model reuse the
kernels of the four scikit-learn types.

Every M-step here maximises (or, for the iterative ones, increases from the previous
parameters) ``sum_k [-n_k/2 log det Sigma_k - 1/2 tr(W_k Sigma_k^{-1})]`` over the model's
covariances, where ``n_k`` is the component's weight and ``W_k = n_k S_k`` its scatter matrix
about its new mean; so EM stays monotone (a generalised EM when the M-step is iterative).
The iterative steps start from the previous parameters and alternate exact maximisations
over one block of parameters at a time (volumes, shape, orientation); the common orientation
of EVE and VVE is improved by Jacobi sweeps, each plane rotation being the exact minimiser
of the trace term over its angle.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = [
    "MCLUST_MODELS",
    "bayes_covariance_type",
    "constrained_covariances",
    "covariance_layout",
    "is_scale_invariant",
    "mclust_name",
    "n_covariance_parameters",
]

MCLUST_MODELS = (
    "EII",
    "VII",
    "EEI",
    "VEI",
    "EVI",
    "VVI",
    "EEE",
    "VEE",
    "EVE",
    "VVE",
    "EEV",
    "VEV",
    "EVV",
    "VVV",
)
#: scikit-learn's four names and the mclust models they are.
ALIASES = {"full": "VVV", "tied": "EEE", "diag": "VVI", "spherical": "VII"}
_LAYOUT = {"EII": "spherical", "VII": "spherical", "EEE": "tied"}
_LAYOUT.update(dict.fromkeys(("EEI", "VEI", "EVI", "VVI"), "diag"))
_LAYOUT.update(dict.fromkeys(("VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV"), "full"))
#: Models whose family is unchanged by rescaling single features (x -> S x, S diagonal):
#: those with a common or free orientation and no constraint tying the eigenvalues of
#: differently oriented components. The others are fitted in units that rescale every
#: feature by one constant.
_SCALE_INVARIANT = frozenset({"EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVV", "VVV"})

_INNER_TOL = 1e-10
_INNER_MAX_ITER = 200


def mclust_name(covariance_type: str) -> str:
    """The mclust name of a covariance type (scikit-learn's four names are aliases)."""
    return ALIASES.get(covariance_type, covariance_type)


def bayes_covariance_type(covariance_type: str) -> str | None:
    """The Bayesian fit's name for a covariance type, or None if it has no such model (it
    has scikit-learn's four: mclust's VVV, EEE, VVI and VII)."""
    if covariance_type in ALIASES:
        return covariance_type
    return {v: k for k, v in ALIASES.items()}.get(covariance_type)


def covariance_layout(covariance_type: str) -> str:
    """How covariances of this type are stored: ``"full"``, ``"tied"``, ``"diag"`` or
    ``"spherical"`` (module table). Other strings are returned unchanged (and refused by
    the caller)."""
    return _LAYOUT.get(covariance_type, covariance_type)


def is_scale_invariant(covariance_type: str) -> bool:
    """Whether rescaling single features maps the model onto itself."""
    return mclust_name(covariance_type) in _SCALE_INVARIANT


def n_covariance_parameters(covariance_type: str, n_components: int, n_features: int) -> int:
    """Free covariance parameters of a model (mclust's ``nVarParams``).

    Volumes count 1 (E) or K (V); shapes D - 1 (E) or K (D - 1) (V); orientations
    D (D - 1) / 2 (E) or K D (D - 1) / 2 (V); ``I`` counts nothing.
    """
    name = mclust_name(covariance_type)
    k, d = n_components, n_features
    counts = {"E": 1, "V": k, "I": 0}
    volume = counts[name[0]]
    shape = counts[name[1]] * (d - 1)
    orientation = counts[name[2]] * d * (d - 1) // 2
    return int(volume + shape + orientation)


# ------------------------------------------------------------------ M-steps


def _geo(x: np.ndarray) -> np.ndarray:
    """``det(diag(x))^(1/D)`` along the last axis (geometric mean), in logs for safety."""
    return np.exp(np.mean(np.log(x), axis=-1))


def _sorted_eigh(W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (decreasing) and eigenvectors (columns) of symmetric matrices."""
    vals, vecs = np.linalg.eigh(W)
    return vals[..., ::-1], vecs[..., ::-1]


@njit(cache=True)
def _diagonals_given_orientation(W, nk, D, equal_volume, M, lam):  # pragma: no cover
    """``M_k = D^T W_k D`` and the optimal diagonal ``Lambda_k`` given ``D`` (into ``M`` and
    ``lam``); returns the objective of :func:`_common_orientation`."""
    k, d = W.shape[0], W.shape[1]
    for g in range(k):
        for a in range(d):
            for b in range(d):
                acc = 0.0
                for u in range(d):
                    for v in range(d):
                        acc += D[u, a] * W[g, u, v] * D[v, b]
                M[g, a, b] = acc
    if equal_volume:
        geo = np.empty(k)
        for g in range(k):
            t = 0.0
            for a in range(d):
                t += math.log(M[g, a, a])
            geo[g] = math.exp(t / d)
        volume = geo.sum() / nk.sum()
        for g in range(k):
            for a in range(d):
                lam[g, a] = volume * M[g, a, a] / geo[g]
    else:
        for g in range(k):
            for a in range(d):
                lam[g, a] = M[g, a, a] / nk[g]
    objective = 0.0
    for g in range(k):
        for a in range(d):
            objective += nk[g] * math.log(lam[g, a]) + M[g, a, a] / lam[g, a]
    return objective


@njit(cache=True)
def _common_orientation(W, nk, D, equal_volume, max_iter, tol):  # pragma: no cover
    """EVE/VVE M-step: alternate the diagonal matrices ``Lambda_k`` given ``D`` (exact) and
    Jacobi sweeps over ``D`` given them; returns ``D`` and ``Lambda`` (K, d).

    The objective ``sum_k [n_k log det Lambda_k + tr(D^T W_k D Lambda_k^{-1})]`` never
    increases: with ``M_k = D^T W_k D``, rotating columns ``j < m`` of ``D`` by ``theta``
    changes ``sum_k tr(M_k Lambda_k^{-1})`` by ``P cos 2 theta + Q sin 2 theta`` (plus a
    constant), minimised exactly at ``2 theta = atan2(-Q, -P)``.
    """
    k, d = W.shape[0], W.shape[1]
    D = D.copy()
    M = np.empty((k, d, d))
    lam = np.empty((k, d))
    prev = np.inf
    for _ in range(max_iter):
        objective = _diagonals_given_orientation(W, nk, D, equal_volume, M, lam)
        if prev - objective <= tol * abs(objective):
            break
        prev = objective
        # one Jacobi sweep over D given Lambda
        for j in range(d - 1):
            for m in range(j + 1, d):
                P = 0.0
                Q = 0.0
                for g in range(k):
                    dif = 1.0 / lam[g, j] - 1.0 / lam[g, m]
                    P += 0.5 * (M[g, j, j] - M[g, m, m]) * dif
                    Q += M[g, j, m] * dif
                if P * P + Q * Q == 0.0:
                    continue
                theta = 0.5 * math.atan2(-Q, -P)
                cs, sn = math.cos(theta), math.sin(theta)
                for a in range(d):
                    dj, dm = D[a, j], D[a, m]
                    D[a, j] = cs * dj + sn * dm
                    D[a, m] = -sn * dj + cs * dm
                for g in range(k):  # M_g <- R^T M_g R for the plane rotation R
                    for a in range(d):
                        x, y = M[g, a, j], M[g, a, m]
                        M[g, a, j] = cs * x + sn * y
                        M[g, a, m] = -sn * x + cs * y
                    for a in range(d):
                        x, y = M[g, j, a], M[g, m, a]
                        M[g, j, a] = cs * x + sn * y
                        M[g, m, a] = -sn * x + cs * y
    _diagonals_given_orientation(W, nk, D, equal_volume, M, lam)
    return D, lam


def constrained_covariances(
    model: str, nk: np.ndarray, covs: np.ndarray, state: dict | None = None
) -> tuple[np.ndarray, dict]:
    """The covariance M-step of an mclust model.

    Parameters
    ----------
    model : str
        An mclust name (not an alias).
    nk : ndarray of shape (K,)
        Component weights ``n_k``.
    covs : ndarray of shape (K, D, D), or (K, D) for the diagonal and spherical models
        Per-component sample covariances ``S_k = W_k / n_k`` (already regularised).
    state : dict, optional
        What the previous M-step returned (volumes, shape, orientation), from which the
        iterative models start; ``None`` at the first M-step.

    Returns
    -------
    covariances : ndarray
        In the model's layout: ``(K,)`` spherical, ``(K, D)`` diag, ``(D, D)`` tied,
        ``(K, D, D)`` full.
    state : dict
        Start for the next M-step.
    """
    k = nk.shape[0]
    n = nk.sum()
    if model in ("EII", "VII", "EEI", "VEI", "EVI", "VVI"):
        diag = covs if covs.ndim == 2 else np.diagonal(covs, axis1=1, axis2=2)
        Wd = nk[:, None] * diag  # diagonals of the scatter matrices
        d = Wd.shape[1]
        if model == "EII":
            return np.full(k, Wd.sum() / (n * d)), {}
        if model == "VII":
            return Wd.sum(axis=1) / (d * nk), {}
        if model == "EEI":
            return np.broadcast_to(Wd.sum(axis=0) / n, (k, d)).copy(), {}
        if model == "VVI":
            return Wd / nk[:, None], {}
        if model == "EVI":
            g = _geo(Wd)
            shape = Wd / g[:, None]
            lam = g.sum() / n
            return lam * shape, {}
        # VEI: lambda_k A, alternate A | lambda and lambda | A
        lam = state["volumes"] if state and "volumes" in state else Wd.sum(axis=1) / (d * nk)
        shape = np.ones(d)
        for _ in range(_INNER_MAX_ITER):
            B = (Wd / lam[:, None]).sum(axis=0)
            shape = B / _geo(B)
            new = (Wd / shape).sum(axis=1) / (d * nk)
            done = np.max(np.abs(new - lam) / new) < _INNER_TOL
            lam = new
            if done:
                break
        return lam[:, None] * shape, {"volumes": lam}
    d = covs.shape[1]
    W = nk[:, None, None] * covs
    if model == "VVV":
        return covs.copy(), {}
    if model == "EEE":
        return W.sum(axis=0) / n, {}
    if model == "EVV":
        dets = np.linalg.slogdet(W)[1]
        g = np.exp(dets / d)  # det(W_k)^(1/D)
        return (g.sum() / n) * W / g[:, None, None], {}
    if model == "EEV":
        vals, vecs = _sorted_eigh(W)
        omega = vals.sum(axis=0)
        g = _geo(omega)
        shape, lam = omega / g, g / n
        return lam * np.einsum("kab,b,kcb->kac", vecs, shape, vecs), {}
    if model == "VEV":
        vals, vecs = _sorted_eigh(W)
        lam = state["volumes"] if state and "volumes" in state else vals.sum(axis=1) / (d * nk)
        for _ in range(_INNER_MAX_ITER):
            B = (vals / lam[:, None]).sum(axis=0)
            shape = B / _geo(B)
            new = (vals / shape).sum(axis=1) / (d * nk)
            done = np.max(np.abs(new - lam) / new) < _INNER_TOL
            lam = new
            if done:
                break
        return np.einsum("k,kab,b,kcb->kac", lam, vecs, shape, vecs), {"volumes": lam}
    if model == "VEE":
        lam = (
            state["volumes"]
            if state and "volumes" in state
            else np.trace(W, axis1=1, axis2=2) / (d * nk)
        )
        for _ in range(_INNER_MAX_ITER):
            C = (W / lam[:, None, None]).sum(axis=0)
            C = C / np.exp(np.linalg.slogdet(C)[1] / d)
            new = np.einsum("kab,ba->k", W, np.linalg.inv(C)) / (d * nk)
            done = np.max(np.abs(new - lam) / new) < _INNER_TOL
            lam = new
            if done:
                break
        return lam[:, None, None] * C, {"volumes": lam}
    if model in ("EVE", "VVE"):
        # common orientation D; diagonal Lambda_k = lambda A_k (EVE) or free (VVE)
        if state and "orientation" in state:
            D = state["orientation"]
        else:
            D = _sorted_eigh(W.sum(axis=0))[1]
        D, lam_diag = _common_orientation(
            np.ascontiguousarray(W),
            nk,
            np.ascontiguousarray(D),
            model == "EVE",
            _INNER_MAX_ITER,
            _INNER_TOL,
        )
        return np.einsum("ab,kb,cb->kac", D, lam_diag, D), {"orientation": D}
    raise ValueError(
        f"covariance_type={model!r} is not an mclust model; choose one of "
        f"{', '.join(MCLUST_MODELS)}."
    )
