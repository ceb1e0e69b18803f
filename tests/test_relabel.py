"""Relabelling: undo permutations applied to posterior draws."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from arviz_stats import rhat

from bayesgmm import EMGaussianMixture
from bayesgmm.relabel import apply_permutations, relabel


@pytest.fixture(scope="module")
def posterior_and_pivot(separated):
    """A 4-chain synthetic posterior around the EM solution, in posterior-group layout."""
    X, _ = separated
    gm = EMGaussianMixture(3, random_state=0).fit(X)
    rng = np.random.default_rng(1)
    c, s, k, d = 4, 150, 3, 2
    ds = xr.Dataset(
        {
            "weights": (("chain", "draw", "component"), rng.dirichlet(gm.weights_ * 600, (c, s))),
            "means": (
                ("chain", "draw", "component", "feature"),
                gm.means_ + 0.05 * rng.normal(size=(c, s, k, d)),
            ),
            "precisions_cholesky": (
                ("chain", "draw", "component", "feature", "feature_bis"),
                np.broadcast_to(gm.precisions_cholesky_, (c, s, k, d, d)).copy(),
            ),
        },
        coords={"chain": np.arange(c), "draw": np.arange(s), "component": np.arange(k)},
    )
    return X, gm, ds


def scramble(ds, rng, per_draw):
    c, s, k = ds.sizes["chain"], ds.sizes["draw"], ds.sizes["component"]
    if per_draw:
        perms = np.stack([[rng.permutation(k) for _ in range(s)] for _ in range(c)])
    else:  # one permutation per chain: chains stuck in different labellings
        perms = np.stack([np.broadcast_to(rng.permutation(k), (s, k)) for _ in range(c)])
    return apply_permutations(ds, perms), perms


@pytest.mark.parametrize("method", ["pivot", "stephens"])
@pytest.mark.parametrize("per_draw", [True, False])
def test_relabel_undoes_any_permutation(posterior_and_pivot, method, per_draw):
    X, gm, ds = posterior_and_pivot
    scrambled, _ = scramble(ds, np.random.default_rng(2), per_draw)
    fixed, perms, info = relabel(scrambled, X, gm, covariance_type="full", method=method)
    for name in ("weights", "means", "precisions_cholesky"):
        np.testing.assert_array_equal(fixed[name].values, ds[name].values)
    assert perms.dims == ("chain", "draw", "component")
    assert info["n_changed"] > 0
    again, perms2, info2 = relabel(fixed, X, gm, covariance_type="full", method=method)
    xr.testing.assert_identical(again, fixed)  # idempotent
    assert info2["n_changed"] == 0
    np.testing.assert_array_equal(perms2.values, np.broadcast_to(np.arange(3), perms2.shape))


def test_rhat_fails_before_and_passes_after(posterior_and_pivot):
    X, gm, ds = posterior_and_pivot
    scrambled, _ = scramble(ds, np.random.default_rng(3), per_draw=False)
    before = float(rhat(scrambled["means"]).max())
    fixed, _, _ = relabel(scrambled, X, gm, covariance_type="full")
    after = float(rhat(fixed["means"]).max())
    assert before > 1.5
    assert after <= 1.01


def test_pivot_probabilities_and_point_subsample(posterior_and_pivot):
    X, gm, ds = posterior_and_pivot
    scrambled, _ = scramble(ds, np.random.default_rng(4), per_draw=True)
    fixed, _, info = relabel(
        scrambled, X, gm.predict_proba(X), covariance_type="full", max_points=50
    )
    assert info["n_points"] == 50
    np.testing.assert_array_equal(fixed["means"].values, ds["means"].values)


def test_unknown_method():
    with pytest.raises(ValueError, match="choose one of"):
        relabel(xr.Dataset(), np.zeros((2, 2)), None, covariance_type="full", method="kl")
