"""A Potts (hidden Markov random field) prior on segmentation labels, fitted by mean-field EM.

The labels ``z`` of an image's pixels get the prior

    p(z) ∝ exp( beta * sum_{i ~ j} [z_i = z_j] ),

``i ~ j`` running over 4-neighbour pixel pairs (for a volume's voxels, the 6 face neighbours,
two along each axis): neighbouring pixels tend to share a label, the
more so the larger ``beta`` (``beta = 0`` is the mixture with equal weights). The posterior of
the labels given the pixel features is approximated by the mean-field factorisation
``q(z) = prod_i q_i(z_i)`` (Zhang, Brady & Smith 2001; Celeux, Forbes & Peyrard 2003):

    q_i(k) ∝ N(x_i | theta_k) exp(beta * s_ik),    s_ik = sum_{j ~ i} q_j(k).

The prior has no per-label field (no mixing weights ``pi_k``), as in Zhang et al.: with one,
measured on the three-region test image, the majority label won every pixel with two
neighbours of each label (the corners of a region) at each sweep, and the smaller regions
eroded away over the iterations. The reported weights are the shares ``mean_i q_i(k)``.

Updates are red-black (checkerboard; in a volume the colour of voxel ``(z, y, x)`` is the parity
of ``z + y + x``): the pixels of one colour depend only on the other's, so a
sweep updates every pixel once from its neighbours' latest values without the oscillation of
simultaneous updates. One EM iteration is one sweep, then the M-step: the component means and
covariances from the pixel subsample the mixture was fitted to, each pixel weighted by its
``q_i(k)``.

**beta.** Unless given, ``beta`` is re-estimated after every sweep by maximising the mean-field
pseudo-likelihood (Celeux, Forbes & Peyrard 2003), the neighbours' labels replaced by their
current ``q``:

    PL(beta) = sum_i sum_k q_i(k) log [ exp(beta s_ik) / sum_l exp(beta s_il) ],

a concave function of ``beta``, maximised on ``[0, BETA_MAX]`` by a bounded 1-D optimiser over
the pixels of the fitting subsample (``s`` from the full maps). It starts at ``BETA_STEP`` and
rises by at most ``BETA_STEP`` per iteration, so that the component parameters follow the
smoothing rather than being frozen by a strong prior in the first sweeps. Images made of large
uniform regions drive the estimate to ``BETA_MAX`` (their pseudo-likelihood keeps rising with
``beta``), where it is capped.

**Posterior draws** (``segment_image(method="bayes", spatial="potts")``). The Potts EM above
runs first. The component parameters are then sampled with NUTS under the Potts field: each
fitted pixel's label gets the prior ``p_ik ∝ exp(beta s_ik)``, ``s`` the neighbour sums of the
Potts EM's ``q`` (Celeux, Forbes & Peyrard's mean-field-like approximation: the neighbours'
labels fixed at their current estimate), so the likelihood is
``sum_i log sum_k p_ik N(x_i | theta_k)`` (:func:`potts_field_model`). Sampling the
independent-pixel mixture instead and making only the maps spatial was measured first: on the
three-region image at noise 0.20 (3 seeds) its chains drifted from the Potts solution to the
independent mixture's (a middle component at 0.19 instead of 0.60 in scaled units, R-hat
failed), and the maps averaged over those draws were underconfident (ARI 0.956 to 0.959 but
ECE 0.040 to 0.045, the epistemic entropy ten times the aleatoric). Each map draw's label
probabilities are then the mean-field fixed point for its parameters, swept from the Potts
EM's ``q`` at the same ``beta`` (:func:`potts_draw_maps`): beta is a property of the label
field, which the field model conditions on, so it is not re-estimated per draw (and the
maps start from, and stay near, one fixed point of the mean-field equations rather than
wandering between several).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from ._draw_kernels import mixture_responsibilities
from ._kernels import parallel_parts, run_on_threads
from ._numerics import precisions_cholesky_from_covariances

#: Upper bound of the estimated beta. The critical value of the 4-neighbour Potts model with
#: K = 2..4 labels is log(1 + sqrt(K)) = 0.88..1.10; beyond about twice that, the prior alone
#: freezes whole regions into one label.
BETA_MAX = 2.5
#: Largest increase of the estimated beta per iteration.
BETA_STEP = 0.25
#: Converged when beta moves by less than this in an iteration (and q and the means by less
#: than ``tol``).
BETA_TOL = 0.05
#: Most pixels of the fitting subsample the pseudo-likelihood of beta is evaluated on.
BETA_PIXELS = 20_000


@njit(cache=True, nogil=True)
def _half_sweep(q, lo, hi, r, beta, colour, part):  # pragma: no cover
    """Mean-field update, in place, of the voxels ``(z, y, x)`` of rows ``lo:hi`` (row
    ``t = z * Y + y``) with ``(z + y + x) % 2 == colour``; returns the sum of the absolute
    changes of their q_i(k).

    ``q`` (Z, Y, X, K) current label probabilities, ``r`` (Z, Y, X, K) the data term
    ``N(x_i | theta_k) / sum_l N(x_i | theta_l)``; an image is the volume with ``Z = 1``.
    A voxel of one colour reads only voxels of the other, so row bands of one colour can run
    on separate threads. The neighbours are summed in the order z, y, x (before, after): with
    ``Z = 1`` the sums, and so the results, are those of the 4-neighbour image sweep.
    """
    nz, h, w, k = q.shape
    s = np.empty(k)
    u = np.empty(k)
    change = 0.0
    for t in range(lo, hi):
        z = t // h
        i = t - z * h
        for j in range((z + i + colour) % 2, w, 2):
            for c in range(k):
                acc = 0.0
                if z > 0:
                    acc += q[z - 1, i, j, c]
                if z < nz - 1:
                    acc += q[z + 1, i, j, c]
                if i > 0:
                    acc += q[z, i - 1, j, c]
                if i < h - 1:
                    acc += q[z, i + 1, j, c]
                if j > 0:
                    acc += q[z, i, j - 1, c]
                if j < w - 1:
                    acc += q[z, i, j + 1, c]
                s[c] = acc
            top = s[0]
            for c in range(1, k):
                top = max(top, s[c])
            tot = 0.0
            for c in range(k):
                u[c] = r[z, i, j, c] * np.exp(beta * (s[c] - top))
                tot += u[c]
            if tot > 0.0:
                for c in range(k):
                    v = u[c] / tot
                    change += abs(v - q[z, i, j, c])
                    q[z, i, j, c] = v
    return change


def _as_volume(a: np.ndarray) -> np.ndarray:
    """An image's (H, W, K) map as a (1, H, W, K) volume (a view); volumes as they are."""
    return a[None] if a.ndim == 3 else a


def _sweep(q: np.ndarray, r: np.ndarray, beta: float) -> float:
    """One red-black mean-field sweep in place (bands of rows on threads); returns the mean
    absolute change of the q_i(k).

    ``q`` and ``r`` of shape (H, W, K) for an image (4 neighbours) or (Z, Y, X, K) for a
    volume (6 neighbours).
    """
    q4, r4 = _as_volume(q), _as_volume(r)
    nz, h, w, k = q4.shape
    rows = nz * h
    parts = parallel_parts(rows * w * k, rows, min_per_part=8)
    total = 0.0
    for colour in range(2):
        total += sum(run_on_threads(_half_sweep, rows, parts, q4, r4, float(beta), colour))
    return total / (rows * w * k)


def settle(q: np.ndarray, r: np.ndarray, beta: float, *, max_sweeps: int, tol: float) -> int:
    """Sweep (:func:`_sweep`) in place until the mean absolute change of the ``q_i(k)`` in a
    sweep is below ``tol``, at most ``max_sweeps`` times; returns the sweeps run."""
    for n in range(1, max_sweeps + 1):
        if _sweep(q, r, beta) < tol:
            return n
    return max_sweeps


def _data_term(features, shape: tuple[int, ...], means, prec_chol, cov_type: str) -> np.ndarray:
    """``r_ik = N(x_i | theta_k) / sum_l N(x_i | theta_l)`` of every pixel, float32 of shape
    ``(*shape, K)``: the mixture's responsibilities with equal weights (the prior has no
    per-label field). ``features()`` yields ``(rows, X)`` pairs, as for :func:`potts_em`."""
    k = means.shape[0]
    r = np.empty((int(np.prod(shape)), k), dtype=np.float32)
    uniform = np.full(k, 1.0 / k)
    for sl, X in features():
        r[sl] = mixture_responsibilities(X, uniform, means, prec_chol, cov_type)[0]
    return r.reshape(*shape, k)


def neighbour_sums(q: np.ndarray) -> np.ndarray:
    """``s_ik = sum_{j ~ i} q_j(k)`` over the 4 neighbours of an image's pixels ((H, W, K)
    maps) or the 6 of a volume's voxels ((Z, Y, X, K)); none beyond the border."""
    s = np.zeros_like(q)
    for axis in range(q.ndim - 1):
        lo = [slice(None)] * q.ndim
        hi = [slice(None)] * q.ndim
        lo[axis], hi[axis] = slice(1, None), slice(None, -1)
        s[tuple(lo)] += q[tuple(hi)]
        s[tuple(hi)] += q[tuple(lo)]
    return s


def _neighbour_index(idx: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices (n, 2 d) of the neighbours of the flat pixels (or voxels) ``idx`` of a
    grid of ``shape`` (d axes; per axis the one before, then the one after), and which exist
    (a missing neighbour beyond the border points at the pixel itself, weight 0)."""
    coords = np.unravel_index(idx, shape)
    nbr = np.empty((idx.size, 2 * len(shape)), dtype=np.intp)
    valid = np.empty((idx.size, 2 * len(shape)), dtype=np.float32)
    n = 0
    for axis, size in enumerate(shape):
        for step in (-1, 1):
            moved = coords[axis] + step
            ok = (moved >= 0) & (moved < size)
            at = list(coords)
            at[axis] = np.where(ok, moved, coords[axis])
            nbr[:, n] = np.ravel_multi_index(tuple(at), shape)
            valid[:, n] = ok
            n += 1
    return nbr, valid


def pseudo_log_likelihood(beta: float, q: np.ndarray, s: np.ndarray, log_pi: np.ndarray) -> float:
    """Mean-field pseudo-log-likelihood of ``beta`` (module docstring), per pixel.

    ``q`` and ``s`` of shape (n, K): soft labels of some pixels and their neighbour sums.
    """
    a = log_pi + beta * s
    top = a.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(a - top).sum(axis=1))
    return float(((q * a).sum(axis=1) - log_norm).mean())


def estimate_beta(
    q: np.ndarray, s: np.ndarray, log_pi: np.ndarray, start: float = 1.0, tol: float = 1e-4
) -> float:
    """Maximise :func:`pseudo_log_likelihood` over ``beta`` in ``[0, BETA_MAX]``.

    Newton's method on a concave function: the gradient is the mean over pixels of
    ``sum_k (q_ik - p_ik) s_ik`` and the curvature minus the mean variance of ``s_i.`` under
    ``p_i`` (the local conditional ``p_ik ∝ pi_k exp(beta s_ik)``); steps are clipped to the
    bounds, and a zero curvature (all neighbour sums equal) ends the search.
    """
    b = float(np.clip(start, 0.0, BETA_MAX))
    for _ in range(50):
        a = log_pi + b * s
        a -= a.max(axis=1, keepdims=True)
        p = np.exp(a)
        p /= p.sum(axis=1, keepdims=True)
        ps = (p * s).sum(axis=1)
        grad = float(((q * s).sum(axis=1) - ps).mean())
        curv = float(((p * s * s).sum(axis=1) - ps * ps).mean())
        if curv <= 1e-12:
            return BETA_MAX if grad > 0 else (0.0 if grad < 0 else b)
        new = float(np.clip(b + grad / curv, 0.0, BETA_MAX))
        if abs(new - b) < tol:
            return new
        b = new
    return b


@dataclass
class PottsFit:
    """Result of :func:`potts_em`: label probabilities and the fitted parameters."""

    q: np.ndarray  # (H, W, K) or (Z, Y, X, K) float32
    beta: float
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    precisions_cholesky: np.ndarray
    n_iter: int
    converged: bool
    betas: list[float]


def _weighted_m_step(
    X: np.ndarray, q: np.ndarray, covariance_type: str, reg: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Means and covariances from soft labels ``q`` (n, K) of the rows of ``X`` (n, D)."""
    nk = q.sum(axis=0) + 1e-10
    means = (q.T @ X) / nk[:, None]
    k, d = means.shape
    if covariance_type in ("full", "tied"):
        covs = np.empty((k, d, d))
        for c in range(k):
            diff = X - means[c]
            covs[c] = (q[:, c] * diff.T) @ diff / nk[c]
        if covariance_type == "tied":
            covs = np.einsum("k,kab->ab", nk, covs) / nk.sum()
            covs.flat[:: d + 1] += reg
        else:
            covs[:, np.arange(d), np.arange(d)] += reg
    else:
        covs = np.stack([(q[:, c] @ (X - means[c]) ** 2) / nk[c] for c in range(k)]) + reg
        if covariance_type == "spherical":
            covs = covs.mean(axis=1)
    return means, covs


def potts_em(
    features,
    shape: tuple[int, ...],
    X_fit: np.ndarray,
    fit_idx: np.ndarray,
    start,
    *,
    beta: float | None,
    max_iter: int = 50,
    tol: float = 1e-3,
) -> PottsFit:
    """Mean-field EM of the Potts-prior mixture, started from a fitted independent-pixel EM.

    Parameters
    ----------
    features : callable
        ``features()`` yields ``(rows, X)`` pairs: flat pixel slices and their scaled features.
    shape : (H, W) or (Z, Y, X)
        The grid: an image's pixels (4 neighbours) or a volume's voxels (6 neighbours),
        flat indices row-major.
    X_fit : ndarray of shape (n_fit, D)
        Features of the fitting subsample ``fit_idx`` (flat indices).
    start : EMGaussianMixture
        The fitted independent-pixel mixture: starting parameters, covariance type and
        ``reg_covar``.
    beta : float or None
        Fixed interaction strength, or None to estimate it.
    max_iter, tol
        At most ``max_iter`` EM iterations; converged when the mean absolute change of the
        ``q_i(k)`` in a sweep and the largest change of a component mean (in scaled feature
        units) are below ``tol``, and beta moved by less than :data:`BETA_TOL`.
    """
    shape = tuple(int(v) for v in shape)
    cov_type = start.covariance_type
    weights = start.weights_.copy()
    means, covs = start.means_.copy(), start.covariances_.copy()
    prec_chol = start.precisions_cholesky_.copy()
    k = weights.size
    reg = start.reg_covar * X_fit.var(axis=0)
    if cov_type == "spherical":
        reg = float(reg.mean())

    def data_term() -> np.ndarray:
        return _data_term(features, shape, means, prec_chol, cov_type)

    r = data_term()
    q = r.copy()
    # beta is estimated on up to BETA_PIXELS of the fitted pixels (evenly spaced in the
    # random subsample), their neighbours gathered by precomputed flat indices.
    sub = np.linspace(0, fit_idx.size - 1, min(fit_idx.size, BETA_PIXELS)).astype(np.intp)
    nbr, valid = _neighbour_index(fit_idx[sub], shape)
    b = BETA_STEP if beta is None else float(beta)
    betas: list[float] = []
    converged = False
    n_iter = 0
    q_flat = q.reshape(-1, k)
    while n_iter < max_iter:
        n_iter += 1
        change = _sweep(q, r, b)
        q_fit = q_flat[fit_idx].astype(np.float64)
        old_b, old_means = b, means
        if beta is None:
            s_sub = (q_flat[nbr] * valid[..., None]).sum(axis=1, dtype=np.float64)
            b_hat = estimate_beta(q_fit[sub], s_sub, np.zeros(k), start=b)
            b = min(b_hat, b + BETA_STEP)
        betas.append(b)
        means, covs = _weighted_m_step(X_fit, q_fit, cov_type, reg)
        prec_chol = precisions_cholesky_from_covariances(covs, cov_type)
        r = data_term()
        moved = float(np.abs(means - old_means).max())
        if change < tol and moved < tol and abs(b - old_b) < BETA_TOL:
            converged = True
            break
    # The maps: sweep with the final parameters until q settles.
    settle(q, r, b, max_sweeps=max_iter, tol=tol)
    weights = q_flat.mean(axis=0, dtype=np.float64)
    weights /= weights.sum()
    return PottsFit(q, b, weights, means, covs, prec_chol, n_iter, converged, betas)


# ------------------------------------------------------------- posterior draws: spatial maps


@njit(cache=True, nogil=True)
def _keep_extremes(q, lo, hi, low, high, part):  # pragma: no cover
    """For pixels ``lo:hi`` and every component, insert ``q[i, k]`` into the ascending list
    ``low[i, k]`` of the smallest values seen so far and the descending ``high[i, k]`` of the
    largest (both of length ``m``, started at +inf and -inf)."""
    k = q.shape[1]
    m = low.shape[2]
    for i in range(lo, hi):
        for c in range(k):
            v = q[i, c]
            row = low[i, c]
            if v < row[m - 1]:
                j = m - 1
                while j > 0 and row[j - 1] > v:
                    row[j] = row[j - 1]
                    j -= 1
                row[j] = v
            row = high[i, c]
            if v > row[m - 1]:
                j = m - 1
                while j > 0 and row[j - 1] < v:
                    row[j] = row[j - 1]
                    j -= 1
                row[j] = v


def _extremes_needed(n_draws: int, lower_q: float) -> int:
    """Order statistics kept at each end for the ``lower_q`` and ``1 - lower_q`` quantiles
    of ``n_draws`` values by NumPy's default (linear) rule."""
    return min(n_draws, int(np.floor((n_draws - 1) * lower_q)) + 2)


def _quantile_from_extremes(ends: np.ndarray, n: int, q: float, *, top: bool) -> np.ndarray:
    """NumPy's linear ``q``-quantile of ``n`` values from their smallest (``top=False``,
    ascending) or largest (``top=True``, descending) order statistics ``ends`` (..., m)."""
    h = (n - 1) * q
    j = int(np.floor(h))
    frac = h - j
    j1 = min(j + 1, n - 1)
    if top:  # the j-th smallest is the (n - 1 - j)-th largest
        a, b = ends[..., n - 1 - j], ends[..., n - 1 - j1]
    else:
        a, b = ends[..., j], ends[..., j1]
    a, b = a.astype(np.float64), b.astype(np.float64)
    return a + frac * (b - a)


@dataclass
class PottsDrawMaps:
    """Label maps of :func:`potts_draw_maps`, flat over pixels (float64)."""

    mean: np.ndarray  # (n_pixels, K): mean over draws of the mean-field q
    aleatoric: np.ndarray  # (n_pixels,): mean over draws of the entropy of q
    lower: np.ndarray  # (n_pixels,): interval of the label's per-draw q, lower bound
    upper: np.ndarray  # (n_pixels,)
    n_draws: int
    sweeps: list[int]  # mean-field sweeps per draw


def potts_draw_maps(
    features,
    shape: tuple[int, ...],
    means: np.ndarray,
    precisions_cholesky: np.ndarray,
    covariance_type: str,
    start: np.ndarray,
    beta: float,
    *,
    interval: float,
    max_sweeps: int = 50,
    tol: float = 1e-3,
) -> PottsDrawMaps:
    """Mean-field label maps of every posterior draw of the component parameters, and their
    summaries over the draws, one draw at a time.

    For draw ``s`` the data term of its parameters (:func:`_data_term`) is swept
    (:func:`settle`) from ``start`` (the ``q`` of the Potts EM fit, shape ``(*shape, K)``)
    with the Potts strength ``beta`` until it settles: the mean-field label posterior
    ``q^s`` given ``theta_s``. Over the draws: the mean ``q`` (whose entropy is the total
    uncertainty), the mean of the entropies of the ``q^s`` (aleatoric) and the equal-tailed
    ``interval`` of ``q^s_i(label_i)`` at the label of the mean, from order statistics kept
    per pixel and component (NumPy's default quantile rule): memory is ``16 K + 8 m K``
    bytes per pixel beside the maps, ``m = floor((S - 1) (1 - interval) / 2) + 2`` for ``S``
    draws, whatever ``S``.

    ``means`` (S, K, D) and ``precisions_cholesky`` (S, ...) are the draws; ``features`` as
    for :func:`potts_em`.
    """
    from .responsibilities import _entropy

    shape = tuple(int(v) for v in shape)
    n_draws, k = means.shape[0], means.shape[1]
    n = int(np.prod(shape))
    lower_q = (1.0 - interval) / 2.0
    m = _extremes_needed(n_draws, lower_q)
    total = np.zeros((n, k))
    aleatoric = np.zeros(n)
    low = np.full((n, k, m), np.inf, dtype=np.float32)
    high = np.full((n, k, m), -np.inf, dtype=np.float32)
    parts = parallel_parts(n * k * m, n)
    sweeps = []
    for s in range(n_draws):
        r = _data_term(features, shape, means[s], precisions_cholesky[s], covariance_type)
        q = start.astype(np.float32, copy=True)
        sweeps.append(settle(q, r, beta, max_sweeps=max_sweeps, tol=tol))
        flat = q.reshape(n, k)
        total += flat
        aleatoric += _entropy(flat.astype(np.float64))
        run_on_threads(_keep_extremes, n, parts, flat, low, high)
    total /= n_draws
    aleatoric /= n_draws
    labels = total.argmax(axis=1)
    at = np.arange(n)
    lo = _quantile_from_extremes(low[at, labels], n_draws, lower_q, top=False)
    hi = _quantile_from_extremes(high[at, labels], n_draws, 1.0 - lower_q, top=True)
    return PottsDrawMaps(total, aleatoric, lo, hi, n_draws, sweeps)


def field_log_prior(q: np.ndarray, idx: np.ndarray, beta: float) -> np.ndarray:
    """``log p(z_i = k | neighbours) = log softmax_k(beta s_ik)`` of the flat pixels ``idx``,
    ``s`` the neighbour sums of the label probabilities ``q`` ((H, W, K) or (Z, Y, X, K)):
    the Potts prior of each pixel's label with its neighbours' labels replaced by their
    ``q`` (the mean-field-like approximation of Celeux, Forbes & Peyrard 2003). Shape
    ``(idx.size, K)``, float64."""
    k = q.shape[-1]
    shape = q.shape[:-1]
    nbr, valid = _neighbour_index(np.asarray(idx, dtype=np.intp), shape)
    s = (q.reshape(-1, k)[nbr] * valid[..., None]).sum(axis=1, dtype=np.float64)
    a = beta * s
    a -= a.max(axis=1, keepdims=True)
    return a - np.log(np.exp(a).sum(axis=1, keepdims=True))


def potts_field_model(log_field: np.ndarray):
    """The model function (for :class:`~bayesgmm.BayesGaussianMixture`'s ``model=``) of the
    mixture whose pixels have their own label priors ``exp(log_field)`` (n_samples, K), the
    rows of ``X`` in order: the stock model (:func:`bayesgmm.build_model`, its priors and
    variables) with the log-likelihood ``sum_i log sum_k p_ik N(x_i | theta_k)`` in place of
    the mixture's ``sum_i log sum_k w_k N(x_i | theta_k)``.

    The stock observed variable stays (the custom-model contract checks it); a
    ``pm.Potential`` named ``potts_field`` adds the difference of the two, so the density
    sampled is the field's. The ``weights`` then have no likelihood left and follow their
    Dirichlet prior; the spatial maps do not use them (the Potts prior has no per-label
    field).
    """
    log_field = np.ascontiguousarray(log_field, dtype=np.float64)

    def potts_field(X, n_components, *, covariance_type="full", priors=None):
        import pymc as pm
        import pytensor.tensor as pt

        from .model import _make_logp, build_model

        model = build_model(X, n_components, covariance_type=covariance_type, priors=priors)
        one = _make_logp(covariance_type, 1, X.shape[1], "whiten")
        tied = covariance_type == "tied"
        with model:
            means, pc = model["means"], model["precisions_cholesky"]
            x = pt.as_tensor_variable(np.asarray(X, dtype=np.float64))
            log_dens = pt.stack(
                [
                    one(x, pt.ones(1), means[j : j + 1], pc if tied else pc[j : j + 1])
                    for j in range(n_components)
                ],
                axis=-1,
            )
            spatial = pt.logsumexp(log_field + log_dens, axis=-1).sum()
            independent = pt.logsumexp(pt.log(model["weights"]) + log_dens, axis=-1).sum()
            pm.Potential("potts_field", spatial - independent)
        return model

    potts_field.model_description = (
        "It is the Bayesian spatial segmentation's model (spatial='potts'): bayesgmm's stock "
        "model (build_model, with its priors on the means and covariances) in which each fitted "
        "pixel has its own label prior p_ik = softmax_k(beta * s_ik), s_ik being the sum of the "
        "label probabilities of pixel i's neighbours in the Potts EM fit (beta fixed at that "
        "fit's estimate, shown above). Likelihood: x_i ~ sum_k p_ik Normal(mu_k, Sigma_k), the "
        "labels marginalised out; the potential 'potts_field' replaces the stock mixture "
        "likelihood by this one. The weights then have no likelihood left and follow their "
        "Dirichlet prior; the maps do not use them."
    )
    return potts_field
