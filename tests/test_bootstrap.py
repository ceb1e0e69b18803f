"""Bootstrap uncertainty of the EM fit (bayesgmm.bootstrap)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from bayesgmm import ConvergenceWarning, EMGaussianMixture, make_mixture
from bayesgmm.bootstrap import BootstrapResult, _alignment, _full_covariances, bootstrap
from bayesgmm.em import fitted_from_parameters

# Two well-separated 2-D components with different spreads: no point is ambiguous, so the
# standard error of a component mean is the textbook sigma / sqrt(n_k).
SEPARATED = dict(
    weights=[0.4, 0.6],
    means=[[-8.0, 0.0], [8.0, 3.0]],
    covariances=[[[1.0, 0.3], [0.3, 2.0]], [[3.0, -0.5], [-0.5, 0.5]]],
)


@pytest.fixture(scope="module")
def separated_fit():
    X, _ = make_mixture(500, **SEPARATED, random_state=11)
    return X, EMGaussianMixture(2, random_state=0).fit(X)


@pytest.mark.parametrize("kind", ["nonparametric", "weighted"])
def test_mean_standard_errors_match_the_analytic_ones(separated_fit, kind):
    X, em = separated_fit
    boot = em.bootstrap(X, n_boot=200, kind=kind, random_state=1)
    assert boot.counts == {"ok": 200, "not converged": 0, "degenerate": 0, "failed": 0}
    table = boot.table(0.95)
    means = table[table["variable"] == "means"]
    n_k = em.weights_ * X.shape[0]
    sds = np.sqrt(np.diagonal(em.covariances_, axis1=1, axis2=2))
    analytic = (sds / np.sqrt(n_k)[:, None]).ravel()
    ratio = means["std_error"].to_numpy() / analytic
    # The Monte Carlo error of a standard error from 200 replicates is about 5 %.
    assert np.all(np.abs(ratio - 1.0) < 0.15), ratio
    # intervals contain the estimate and are about 2 * 1.96 standard errors wide
    assert np.all((means["lower"] < means["estimate"]) & (means["estimate"] < means["upper"]))
    width = (means["upper"] - means["lower"]).to_numpy() / (2 * 1.96 * analytic)
    assert np.all(np.abs(width - 1.0) < 0.3), width


def test_same_seed_same_replicates_other_seed_other(separated_fit):
    X, em = separated_fit
    a = bootstrap(em, X, n_boot=20, random_state=5)
    b = bootstrap(em, X, n_boot=20, random_state=np.random.default_rng(5))
    c = bootstrap(em, X, n_boot=20, random_state=5)
    d = bootstrap(em, X, n_boot=20, random_state=6)
    assert a.replicates.identical(c.replicates)
    pd.testing.assert_frame_equal(a.table(), c.table())
    assert not np.array_equal(a.replicates["means"].values, d.replicates["means"].values)
    assert b.replicates["means"].shape == a.replicates["means"].shape
    # the method's default seed is the estimator's own random_state
    em_seeded = EMGaussianMixture(2, random_state=5).fit(X)
    e = em_seeded.bootstrap(X, n_boot=20)
    assert e.replicates["means"].identical(em_seeded.bootstrap(X, n_boot=20).replicates["means"])


def test_the_fit_is_not_modified(separated_fit):
    X, em = separated_fit
    before = (em.weights_.copy(), em.means_.copy(), em.get_params())
    em.bootstrap(X, n_boot=3, kind="weighted", random_state=0)
    assert np.array_equal(em.weights_, before[0]) and np.array_equal(em.means_, before[1])
    assert em.get_params() == before[2]


def test_alignment_undoes_a_permutation():
    X3, _ = make_mixture(
        600,
        [0.3, 0.3, 0.4],
        [[0.0, 0.0], [5.0, 5.0], [10.0, 0.0]],
        [np.eye(2)] * 3,
        random_state=2,
    )
    fit = EMGaussianMixture(3, random_state=0).fit(X3)
    pivot = fit.predict_proba(X3)
    for perm in ([2, 0, 1], [1, 0, 2], [0, 1, 2]):
        perm = np.array(perm)
        permuted = fitted_from_parameters(
            fit.weights_[perm],
            fit.means_[perm],
            fit.covariances_[perm],
            fit.precisions_cholesky_[perm],
            covariance_type="full",
        )
        found = _alignment(permuted, X3, pivot)
        # permuted component found[k] is the fit's component k
        assert np.array_equal(perm[found], np.arange(3))
        assert np.allclose(permuted.means_[found], fit.means_)


def test_labels_are_aligned_when_the_component_order_flips():
    # Two components with (almost) the same first-feature mean: EM orders its components by
    # the first feature, so replicates come back in either order; aligned, each component
    # mean in the second feature varies only by its standard error.
    X, _ = make_mixture(300, [0.5, 0.5], [[0.0, 0.0], [0.02, 6.0]], [np.eye(2)] * 2, random_state=4)
    em = EMGaussianMixture(2, random_state=0).fit(X)
    boot = em.bootstrap(X, n_boot=60, random_state=3)
    perms = boot.replicates["permutation"].values
    assert (perms[:, 0] != 0).sum() > 5  # the order did flip in several replicates
    table = boot.table()
    second = table[(table["variable"] == "means") & (table["feature"] == "x1")]
    assert np.all(second["std_error"] < 0.25), second  # sigma / sqrt(150) = 0.08
    assert np.all(np.abs(np.sort(second["estimate"].to_numpy()) - [0.0, 6.0]) < 0.5)


def test_both_kinds_give_a_tidy_table_and_house_style_dataset(separated_fit):
    X, em = separated_fit
    for kind in ("nonparametric", "weighted"):
        boot = em.bootstrap(X, n_boot=10, kind=kind, random_state=0)
        assert isinstance(boot, BootstrapResult) and boot.kind == kind
        reps = boot.replicates
        assert reps["means"].dims == ("replicate", "component", "feature")
        assert reps["corr"].dims == ("replicate", "component", "feature", "feature_bis")
        assert reps.attrs["kind"] == kind and reps.attrs["n_ok"] == 10
        np.testing.assert_allclose(reps["weights"].sum("component"), 1.0)
        table = boot.table()
        assert list(table["variable"].unique()) == ["weights", "means", "stds", "corr"]
        assert len(table) == 2 + 4 + 4 + 2
        assert table.attrs["interval"] == 0.89 and table.attrs["kind"] == kind
        assert (table["n_replicates"] == 10).all()
        assert (table["std_error"] > 0).all()


def test_feature_names_and_covariance_structures():
    X, _ = make_mixture(200, [0.5, 0.5], [[0.0, 0.0], [6.0, 6.0]], [np.eye(2)] * 2, random_state=0)
    df = pd.DataFrame(X, columns=["a", "b"])
    rows = {}
    for cov in ("full", "tied", "diag", "spherical"):
        em = EMGaussianMixture(2, covariance_type=cov, random_state=0).fit(df)
        table = em.bootstrap(df, n_boot=8, random_state=0).table()
        rows[cov] = table["variable"].value_counts().to_dict()
        assert set(table["feature"]) - {""} <= {"a", "b"}
        if cov == "tied":
            shared = table[table["variable"].isin(["stds", "corr"])]
            assert shared["component"].isna().all()
    assert rows["full"] == {"weights": 2, "means": 4, "stds": 4, "corr": 2}
    assert rows["tied"] == {"weights": 2, "means": 4, "stds": 2, "corr": 1}
    assert rows["diag"] == {"weights": 2, "means": 4, "stds": 4}
    assert rows["spherical"] == {"weights": 2, "means": 4, "stds": 2}


def test_full_covariances_of_every_storage():
    k, d = 2, 2
    full = np.array([[[2.0, 0.5], [0.5, 1.0]], [[1.0, 0.0], [0.0, 3.0]]])
    assert np.array_equal(_full_covariances(full, "full", k, d), full)
    assert np.array_equal(_full_covariances(full[0], "tied", k, d), np.stack([full[0]] * 2))
    diag = np.array([[2.0, 1.0], [1.0, 3.0]])
    assert np.array_equal(_full_covariances(diag, "diag", k, d)[1], np.diag([1.0, 3.0]))
    assert np.array_equal(
        _full_covariances(np.array([2.0, 5.0]), "spherical", k, d)[1], 5 * np.eye(2)
    )


def test_unusable_replicates_are_counted_and_left_out_of_the_table(separated_fit):
    X, em = separated_fit
    with pytest.warns(ConvergenceWarning, match="12 of 12 bootstrap replicates") as record:
        boot = em.bootstrap(X, n_boot=12, random_state=0, max_iter=1, tol=0.0)
    assert record[0].filename == __file__  # the warning points at the caller
    assert boot.counts["not converged"] == 12 and boot.counts["ok"] == 0
    assert boot.replicates.attrs["n_not_converged"] == 12
    with pytest.raises(ValueError, match="Only 0 of 12 bootstrap replicates are usable"):
        boot.table()
    table = boot.table(include_unconverged=True)
    assert (table["n_replicates"] == 12).all()
    assert "12 not converged" in repr(boot)


def test_degenerate_replicates_are_counted():
    # A far-away component of 4 points in 2-D: resamples that draw fewer than 3 of them
    # collapse it (fewer than n_features + 1 points).
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(40, 2)), rng.normal(size=(4, 2)) * 0.5 + 20.0])
    em = EMGaussianMixture(2, random_state=0).fit(X)
    assert not em.degenerate_.any()
    with pytest.warns(ConvergenceWarning, match="degenerate"):
        boot = em.bootstrap(X, n_boot=40, random_state=0)
    counts = boot.counts
    assert counts["degenerate"] > 0 and sum(counts.values()) == 40
    assert boot.replicates["degenerate"].values.sum() == counts["degenerate"]
    assert (boot.table()["n_replicates"] == counts["ok"]).all()


def test_bad_input_is_refused_with_a_hint(separated_fit):
    X, em = separated_fit
    with pytest.raises(ValueError, match="n_boot=0 is invalid"):
        em.bootstrap(X, n_boot=0)
    with pytest.raises(TypeError, match="n_boot must be an integer"):
        em.bootstrap(X, n_boot=2.5)
    with pytest.raises(ValueError, match="kind"):
        em.bootstrap(X, n_boot=2, kind="parametric")
    with pytest.raises(ValueError, match="features"):
        em.bootstrap(X[:, :1], n_boot=2)
    with pytest.raises(NotFittedError):
        EMGaussianMixture(2).bootstrap(X, n_boot=2)
    with pytest.raises(TypeError, match="fitted EMGaussianMixture"):
        bootstrap("not a fit", X)
    with pytest.raises(ValueError, match="sample_weight"):
        em.bootstrap(X, n_boot=2, sample_weight=np.ones(3))
    with pytest.raises(TypeError, match="progress"):
        em.bootstrap(X, n_boot=2, progress="yes")
    boot = em.bootstrap(X, n_boot=3, random_state=0)
    with pytest.raises(ValueError, match="interval"):
        boot.table(1.5)


def test_progress_and_frequency_weights(separated_fit):
    X, em = separated_fit
    lines: list[str] = []
    em.bootstrap(X, n_boot=3, random_state=0, progress=lines.append)
    assert lines == [f"bootstrap replicate {b}/3: ok" for b in (1, 2, 3)]
    # rows of weight 0 are never drawn: the bootstrap of the first 200 rows with weight 1
    # (the rest 0) equals the bootstrap of those rows alone in distribution; with the same
    # seed the weighted draws of the kept rows coincide exactly
    w = np.zeros(len(X))
    w[:200] = 1.0
    sub = EMGaussianMixture(2, random_state=0).fit(X[:200])
    a = bootstrap(sub, X[:200], n_boot=4, kind="weighted", random_state=1)
    b = bootstrap(sub, X, n_boot=4, kind="weighted", random_state=1, sample_weight=w)
    np.testing.assert_allclose(a.replicates["means"], b.replicates["means"], rtol=1e-6)
