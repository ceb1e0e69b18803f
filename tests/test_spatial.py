"""The Potts spatial prior of segment_image and the calibration of segmentation maps."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from bayesgmm._spatial import _sweep, estimate_beta, neighbour_sums, pseudo_log_likelihood
from bayesgmm.datasets import make_regions_image
from bayesgmm.segmentation import calibration, segment_image


@pytest.fixture(scope="module")
def noisy():
    """The three-region image at noise 0.20, 3 seeds: independent and Potts segmentations."""
    out = []
    for seed in range(3):
        image, truth = make_regions_image((96, 96), noise=0.20, random_state=seed)
        plain = segment_image(image, 3, random_state=seed)
        potts = segment_image(image, 3, spatial="potts", random_state=seed)
        out.append((truth, plain, potts))
    return out


def test_potts_meets_the_issue_targets_at_noise_020(noisy):
    for truth, plain, potts in noisy:
        cal, cal0 = calibration(potts, truth), calibration(plain, truth)
        # Issue 20: ARI >= 0.9 and ECE <= 0.03 with the spatial prior; independent pixels
        # are far off (ARI 0.23, ECE 0.2), so the test can tell the two apart.
        assert cal.ari >= 0.9, cal.ari
        assert cal.ece <= 0.03, cal.ece
        assert cal0.ari < 0.5 and cal0.ece > 0.1
        assert potts.spatial == "potts" and 0.0 < potts.beta <= 2.5
        assert plain.spatial is None and plain.beta is None


def test_potts_no_worse_at_noise_006():
    for seed in range(3):
        image, truth = make_regions_image((96, 96), noise=0.06, random_state=seed)
        cal0 = calibration(segment_image(image, 3, random_state=seed), truth)
        cal = calibration(segment_image(image, 3, spatial="potts", random_state=seed), truth)
        assert cal.ari >= cal0.ari - 0.005 and cal.ari >= 0.94, (cal.ari, cal0.ari)
        assert cal.ece <= max(cal0.ece, 0.010) + 0.002, (cal.ece, cal0.ece)


def test_potts_maps_are_consistent(noisy):
    _, _, r = noisy[0]
    np.testing.assert_allclose(r.probabilities.sum(axis=-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(r.labels, r.probabilities.argmax(axis=-1))
    assert (r.uncertainty_epistemic == 0).all()
    np.testing.assert_array_equal(r.uncertainty_aleatoric, r.uncertainty_total)
    # The estimator carries the Potts fit: weights are the label shares.
    np.testing.assert_allclose(
        r.estimator.weights_, r.probabilities.reshape(-1, 3).mean(axis=0), atol=1e-5
    )
    means = r.component_means()["intensity"].to_numpy()
    np.testing.assert_allclose(np.sort(means), [0.2, 0.5, 0.8], atol=0.05)


def test_spatial_none_is_unchanged():
    image, _ = make_regions_image((48, 48), noise=0.1, random_state=1)
    a = segment_image(image, 3, random_state=0)
    b = segment_image(image, 3, spatial=None, random_state=0)
    for name in ("labels", "probabilities", "uncertainty_total"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


# beta = 0 leaves plain EM of an equal-weight mixture, which creeps: 50 iterations do not
# meet the tolerance on this image (the warning says so), yet the fixed point below holds.
@pytest.mark.filterwarnings("ignore:the Potts mean-field EM did not converge")
def test_beta_zero_is_independent_pixels_with_equal_weights():
    image, _ = make_regions_image((48, 48), noise=0.2, random_state=2)
    r = segment_image(image, 3, spatial="potts", beta=0.0, random_state=0)
    assert r.beta == 0.0
    # With beta = 0 the fixed point is plain EM of an equal-weight mixture: each map is the
    # normalised product of the fitted component densities.
    from scipy.stats import norm

    mu = r.estimator.means_[:, 0]
    sd = np.sqrt(r.estimator.covariances_.reshape(3, -1)[:, 0])
    x = (r.image.ravel() - r.features.offset[0]) / r.features.scale[0]
    dens = norm.pdf(x[:, None], mu, sd)
    np.testing.assert_allclose(
        r.probabilities.reshape(-1, 3), dens / dens.sum(axis=1, keepdims=True), atol=2e-3
    )


def test_fixed_beta_is_used_and_larger_beta_smooths_more():
    image, _ = make_regions_image((64, 64), noise=0.2, random_state=0)
    weak = segment_image(image, 3, spatial="potts", beta=0.3, random_state=0)
    strong = segment_image(image, 3, spatial="potts", beta=1.5, random_state=0)
    assert weak.beta == 0.3 and strong.beta == 1.5

    def changes(lab):
        return (lab[1:] != lab[:-1]).sum() + (lab[:, 1:] != lab[:, :-1]).sum()

    assert changes(strong.labels) < changes(weak.labels)


def test_sweep_against_numpy_reference():
    rng = np.random.default_rng(0)
    r = rng.dirichlet(np.ones(3), size=(7, 5)).astype(np.float32)
    q = rng.dirichlet(np.ones(3), size=(7, 5)).astype(np.float32)
    ref = q.astype(np.float64).copy()
    beta = 0.8
    for colour in range(2):
        s = neighbour_sums(ref)
        u = r * np.exp(beta * s)
        new = u / u.sum(axis=-1, keepdims=True)
        ii, jj = np.indices((7, 5))
        mask = (ii + jj) % 2 == colour
        ref[mask] = new[mask]
    _sweep(q, r, beta)
    np.testing.assert_allclose(q, ref, atol=1e-6)


def test_beta_estimate_maximises_the_pseudo_likelihood():
    rng = np.random.default_rng(1)
    # Soft labels of a two-region image with some noise: a finite, positive optimum.
    lab = np.zeros((30, 30), dtype=int)
    lab[:, 15:] = 1
    flip = rng.random(lab.shape) < 0.15
    lab[flip] = 1 - lab[flip]
    q = np.eye(2)[lab] * 0.9 + 0.05
    s = neighbour_sums(q).reshape(-1, 2)
    qf = q.reshape(-1, 2)
    b = estimate_beta(qf, s, np.zeros(2))
    grid = np.linspace(0, 2.5, 501)
    pl = [pseudo_log_likelihood(g, qf, s, np.zeros(2)) for g in grid]
    assert 0.0 < b < 2.5
    assert abs(b - grid[int(np.argmax(pl))]) < 0.01


def test_calibration_against_direct_computation():
    image, truth = make_regions_image((48, 48), noise=0.12, random_state=0)
    r = segment_image(image, 3, random_state=0)
    # Rename the truth classes and permute them: the matching must undo it.
    codes = np.array([7, 3, 5])[truth]
    cal = calibration(r, codes)
    assert cal.ari == pytest.approx(adjusted_rand_score(truth.ravel(), r.labels.ravel()))
    # Direct: best permutation by brute force.
    import itertools

    best = max(
        itertools.permutations(range(3)),
        key=lambda p: (np.array(p)[r.labels] == truth).mean(),
    )
    correct = np.array(best)[r.labels] == truth
    assert cal.accuracy == pytest.approx(correct.mean())
    np.testing.assert_array_equal(cal.label_map, np.array([7, 3, 5])[list(best)])
    conf = r.label_probability.astype(np.float64).ravel()
    ece = 0.0
    for lo in np.arange(15) / 15:
        inb = (conf >= lo) & (conf < lo + 1 / 15) if lo < 14 / 15 else conf >= lo
        if inb.any():
            ece += inb.sum() / conf.size * abs(correct.ravel()[inb].mean() - conf[inb].mean())
    assert cal.ece == pytest.approx(ece, abs=1e-9)
    assert cal.curve["n_pixels"].sum() == conf.size
    assert list(cal.curve.columns) == ["lower", "upper", "n_pixels", "confidence", "accuracy"]


def test_calibration_bad_input():
    image, truth = make_regions_image((32, 32), random_state=0)
    r = segment_image(image, 3, random_state=0)
    with pytest.raises(ValueError, match="expected the label map's shape"):
        calibration(r, truth[:-1])
    with pytest.raises(TypeError, match="integer class codes"):
        calibration(r, truth.astype(float))
    # uint8 codes (a label PNG) and more segments than classes: the unmatched one gets -1.
    r4 = segment_image(image, 4, random_state=0)
    cal = calibration(r4, truth.astype(np.uint8))
    assert sorted(cal.label_map.tolist()) == [-1, 0, 1, 2]
    from bayesgmm.report import render_report

    with pytest.raises(ValueError, match="pass the segmentation= it was computed from"):
        render_report(calibration=cal, figures=False)
    text = render_report(segmentation=r4, calibration=cal, fmt="md", figures=False)
    assert f"| expected calibration error (ECE) | {cal.ece:.3f} |" in text


def test_spatial_bad_input():
    image, _ = make_regions_image((32, 32), random_state=0)
    with pytest.raises(ValueError, match="spatial='mrf' is invalid"):
        segment_image(image, 3, spatial="mrf")
    with pytest.raises(ValueError, match="pass spatial='potts'"):
        segment_image(image, 3, beta=1.0)
    with pytest.raises(ValueError, match="finite number >= 0"):
        segment_image(image, 3, spatial="potts", beta=-1.0)


def test_plot_reliability(noisy):
    from matplotlib.figure import Figure

    from bayesgmm.plots import plot_reliability

    truth, plain, potts = noisy[0]
    cals = {"independent": calibration(plain, truth), "Potts": calibration(potts, truth)}
    fig = plot_reliability(cals)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    # The diagonal plus one curve per result, each through its non-empty bins.
    assert len(ax.lines) == 3
    for line, cal in zip(ax.lines[1:], cals.values(), strict=True):
        filled = cal.curve["n_pixels"] > 0
        np.testing.assert_allclose(line.get_ydata(), cal.curve["accuracy"][filled])
    assert "ECE" in ax.get_legend().get_texts()[1].get_text()
    assert isinstance(plot_reliability(cals["Potts"]), Figure)
    with pytest.raises(TypeError, match="CalibrationResult objects"):
        plot_reliability(potts)


def test_cli_spatial_and_truth(tmp_path, capsys):
    import json

    from PIL import Image

    from bayesgmm.cli import main

    image, truth = make_regions_image((96, 96), noise=0.20, random_state=0)
    img = tmp_path / "noisy.png"
    mask = tmp_path / "truth.png"
    Image.fromarray(np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)).save(img)
    Image.fromarray(truth.astype(np.uint8)).save(mask)
    out = tmp_path / "out"
    argv = ["segment", str(img), "-k", "3", "--features", "intensity", "--out", str(out)]
    assert main([*argv, "--spatial", "potts", "--truth", str(mask)]) == 0
    printed = capsys.readouterr().out
    assert "ARI" in printed and "ECE" in printed
    cal = json.loads((out / "calibration.json").read_text())
    assert cal["ari"] >= 0.9 and cal["ece"] <= 0.03
    meta = json.loads((out / "segmentation.json").read_text())
    assert meta["spatial"] == "potts" and 0 < meta["beta"] <= 2.5
    assert (out / "reliability.png").stat().st_size > 0
    # The report shows the calibration with its reliability diagram (issue 20, item 2).
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Calibration against the truth map" in page and "Reliability diagram" in page
    assert f"<td>{cal['ece']:.3f}</td>" in page
    curve = (out / "reliability.csv").read_text().splitlines()
    assert curve[0] == "bin,lower,upper,n_pixels,confidence,accuracy" and len(curve) == 16
    # A truth map of another size is refused before anything is fitted or written.
    Image.fromarray(truth[:50].astype(np.uint8)).save(mask)
    assert main([*argv, "--truth", str(mask), "--force"]) == 2
    assert "the image has 96 x 96" in capsys.readouterr().err


def test_unconverged_potts_warns(monkeypatch):
    import bayesgmm._spatial as spatial
    from bayesgmm.exceptions import ConvergenceWarning

    original = spatial.potts_em
    monkeypatch.setattr(spatial, "potts_em", lambda *a, **kw: original(*a, **kw, max_iter=2))
    image, _ = make_regions_image((32, 32), noise=0.2, random_state=0)
    with pytest.warns(ConvergenceWarning, match="did not converge in 2 iterations"):
        segment_image(image, 3, spatial="potts", random_state=0)
