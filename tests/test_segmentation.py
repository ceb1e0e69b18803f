"""Image segmentation: accuracy against known regions, uncertainty where it belongs, the CLI."""

from __future__ import annotations

import json
import logging
import warnings

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from PIL import Image
from scipy.ndimage import binary_dilation, binary_erosion
from sklearn.metrics import adjusted_rand_score

from bayesgmm.cli import main
from bayesgmm.datasets import load_sample_photo, make_regions_image
from bayesgmm.exceptions import SamplingWarning
from bayesgmm.plots import plot_segmentation
from bayesgmm.segmentation import image_features, segment_image

NUTS = dict(draws=300, tune=300, chains=2, progressbar=False)


def boundary_and_interior(truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels within 2 px of a region edge, and pixels more than 4 px from any edge."""
    edge = np.zeros(truth.shape, dtype=bool)
    for k in np.unique(truth):
        region = truth == k
        edge |= region & ~binary_erosion(region, iterations=2)
    return edge, ~binary_dilation(edge, iterations=2)


@pytest.fixture(scope="module")
def regions():
    return make_regions_image((96, 96), random_state=3)


@pytest.fixture(scope="module")
def bayes_result(regions):
    image, _ = regions
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)  # short chains; checked elsewhere
        return segment_image(image, 3, method="bayes", max_draws=150, random_state=0, **NUTS)


def test_regions_image_overlaps_in_intensity(regions):
    image, truth = regions
    # Neighbouring levels 0.3 apart with noise 0.06 and blur: the regions' intensity ranges
    # overlap, so a threshold cannot be perfect.
    lo = [np.quantile(image[truth == k], 0.001) for k in range(3)]
    hi = [np.quantile(image[truth == k], 0.999) for k in range(3)]
    assert hi[0] > lo[1] and hi[1] > lo[2]


@pytest.mark.parametrize("method", ["em", "bayes"])
def test_recovers_known_regions_and_boundaries_are_uncertain(method, regions, bayes_result):
    image, truth = regions
    result = bayes_result if method == "bayes" else segment_image(image, 3, random_state=0)
    ari = adjusted_rand_score(truth.ravel(), result.labels.ravel())
    assert ari >= 0.9, ari
    edge, interior = boundary_and_interior(truth)
    total = result.uncertainty_total
    assert total[edge].mean() > 2 * total[interior].mean()
    if method == "bayes":
        assert (
            result.uncertainty_epistemic[edge].mean()
            > result.uncertainty_epistemic[interior].mean()
        )
        assert result.interval_width[edge].mean() > result.interval_width[interior].mean()


def test_bayes_maps_are_consistent(bayes_result, regions):
    r = bayes_result
    assert r.n_map_draws == 150
    # Maps are float32 (rounded once from float64: relative error <= 2**-24).
    np.testing.assert_allclose(r.probabilities.sum(axis=-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(
        r.uncertainty_total, r.uncertainty_aleatoric + r.uncertainty_epistemic, atol=1e-6
    )
    assert (r.uncertainty_epistemic >= 0).all()
    assert ((r.interval_width >= 0) & (r.interval_width <= 1)).all()
    np.testing.assert_array_equal(r.labels, r.probabilities.argmax(axis=-1))
    # The maps are the estimator's membership on every pixel with thinned draws.
    X, f = image_features(regions[0])
    check = r.estimator.membership(pd.DataFrame(X[:500], columns=f.names), max_draws=150)
    np.testing.assert_allclose(check.mean, r.probabilities.reshape(-1, 3)[:500], atol=6e-8)
    assert r.probabilities.dtype == np.float32
    assert r.fit_pixels.size == 5000 and np.unique(r.fit_pixels).size == 5000
    assert list(r.estimator.idata_["posterior"]["feature"].values) == ["intensity"]
    fig = plot_segmentation(r)
    assert isinstance(fig, Figure) and len(fig.axes) == 6 + 5  # panels + colour bars


def test_em_maps_are_predict_proba_of_every_pixel():
    image, _ = make_regions_image((300, 260), color=True, random_state=1)
    r = segment_image(image, 3, features=("color",), n_fit_pixels=4000, random_state=2)
    X, f = image_features(image, ("color",))
    expected = r.estimator.predict_proba(pd.DataFrame(X, columns=f.names))
    np.testing.assert_allclose(r.probabilities.reshape(-1, 3), expected, atol=6e-8)
    np.testing.assert_array_equal(r.labels.ravel(), expected.argmax(axis=1))
    assert (r.uncertainty_epistemic == 0).all() and r.interval_width is None
    again = segment_image(image, 3, features=("color",), n_fit_pixels=4000, random_state=2)
    np.testing.assert_array_equal(r.labels, again.labels)
    summary = r.summary()
    assert summary["pixel_share"].sum() == pytest.approx(1.0)
    means = r.component_means()
    assert list(means.columns) == ["weight", "red", "green", "blue"]
    assert len(plot_segmentation(r).axes) == 3 + 2


def test_feature_scaling():
    image, _ = make_regions_image((40, 80), color=True, random_state=0)
    X, f = image_features(image, ("color", "position"), position_weight=0.5)
    assert f.names == ["red", "green", "blue", "row", "col"]
    np.testing.assert_allclose(X.mean(axis=0), 0.0, atol=1e-12)
    # One pooled scale per group: colour channels keep their relative spread ...
    assert np.sqrt((X[:, :3] ** 2).mean()) == pytest.approx(1.0)
    assert f.scale[0] == f.scale[1] == f.scale[2]
    # ... and position keeps the aspect ratio, at position_weight times colour's spread.
    assert f.scale[3] == f.scale[4]
    assert np.sqrt((X[:, 3:] ** 2).mean()) == pytest.approx(0.5)
    raw = f.to_raw(X[:3])
    np.testing.assert_allclose(raw[:, 3:], [[0, 0], [0, 1], [0, 2]], atol=1e-9)
    np.testing.assert_allclose(raw[:, :3], image[0, :3], atol=1e-12)
    # uint8 input is read on [0, 1]; grayscale 'color' is its intensity.
    u8 = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    X8, _ = image_features(u8, ("color",))
    Xf, _ = image_features(u8 / 255.0, ("color",))
    np.testing.assert_allclose(X8, Xf)
    gray, _ = image_features(image[..., 0], ("color",))
    assert gray.shape == (40 * 80, 1)


def test_sample_photo_loads_offline_and_segments(monkeypatch):
    import socket
    from pathlib import Path

    import sklearn

    # The JPEG is a file inside the installed scikit-learn package ...
    assert (Path(sklearn.__file__).parent / "datasets" / "images" / "flower.jpg").is_file()

    # ... and loading it opens no network connection.
    def no_network(*args, **kwargs):
        raise AssertionError("load_sample_photo tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    photo = load_sample_photo("flower")
    monkeypatch.undo()
    assert photo.shape == (427, 640, 3) and photo.dtype == np.uint8
    r = segment_image(photo, 4, features=("color",), n_fit_pixels=20_000, random_state=0)
    # The flower is orange-red; the background green-blue: one segment is the reddest.
    means = r.component_means()
    reddest = int((means["red"] - means["blue"]).idxmax())
    assert means.loc[reddest, "red"] > 0.6
    assert 0.1 < (r.labels == reddest).mean() < 0.5
    with pytest.raises(ValueError, match="sample photo"):
        load_sample_photo("moon")


@pytest.mark.parametrize(
    "image, kwargs, exc, message",
    [
        (np.zeros((8, 8, 4)), {}, ValueError, "RGBA"),
        (np.zeros((8, 8, 5)), {}, ValueError, "shape"),
        (np.ones((8, 8), dtype=bool), {}, TypeError, "dtype"),
        (np.full((8, 8), np.nan), {}, ValueError, "NaN"),
        (np.full((8, 8), 0.3), {}, ValueError, "constant"),
        (np.eye(8), {"features": ("texture",)}, ValueError, "features"),
        (np.eye(8), {"features": ("position",)}, ValueError, "position alone"),
        (np.eye(8), {"method": "kmeans"}, ValueError, "method"),
        (np.eye(8), {"n_fit_pixels": 1}, ValueError, "n_fit_pixels"),
        (
            np.eye(8),
            {"position_weight": -1.0, "features": ("intensity", "position")},
            ValueError,
            "position_weight",
        ),
    ],
)
def test_bad_input_is_refused_clearly(image, kwargs, exc, message):
    with pytest.raises(exc, match=message):
        segment_image(image, 2, **kwargs)


def test_cli_segments_the_photo_and_a_png(tmp_path, capsys):
    photo = tmp_path / "flower.jpg"
    Image.fromarray(load_sample_photo("flower")).save(photo, quality=95)
    out = tmp_path / "seg"
    argv = ["segment", str(photo), "-k", "4", "--out", str(out), "--n-fit-pixels", "20000"]
    assert main(argv) == 0
    assert "results written" in capsys.readouterr().out
    names = ("labels.png", "uncertainty.png", "segmentation.png", "maps.npz", "segments.csv")
    for name in (*names, "report.html"):
        assert (out / name).is_file(), name
    labels = np.asarray(Image.open(out / "labels.png"))
    assert labels.shape == (427, 640) and set(np.unique(labels)) <= {0, 1, 2, 3}
    meta = json.loads((out / "segmentation.json").read_text())
    assert meta["n_fit_pixels"] == 20000 and meta["features"] == ["red", "green", "blue"]
    with np.load(out / "maps.npz") as maps:
        np.testing.assert_array_equal(maps["labels"], labels)

    # A grayscale PNG through the Bayesian path.
    image, truth = make_regions_image((48, 48), random_state=5)
    png = tmp_path / "regions.png"
    Image.fromarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8)).save(png)
    out2 = tmp_path / "seg_bayes"
    argv = ["--quiet", "segment", str(png), "-k", "3", "--out", str(out2), "--method", "bayes"]
    argv += ["--features", "intensity", "--draws", "200", "--tune", "200", "--chains", "2"]
    assert main([*argv, "--map-draws", "40"]) == 0
    meta = json.loads((out2 / "segmentation.json").read_text())
    assert meta["n_map_draws"] == 40 and meta["diagnostics"]
    with np.load(out2 / "maps.npz") as maps:
        assert adjusted_rand_score(truth.ravel(), maps["labels"].ravel()) > 0.85
        assert "interval_width" in maps


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_text("not an image"), "not an image"),
    ],
)
def test_cli_segment_errors_are_one_line(tmp_path, capsys, setup, message):
    path = tmp_path / "in.png"
    setup(path)
    out = tmp_path / "out"
    assert main(["segment", str(path), "-k", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bayesgmm: error:") and message in err and len(err.splitlines()) == 1
    assert not out.exists()


# ------------------------------------------------------------ memory, dtypes, constant images


def warnings_logged(caplog) -> list:
    # (an earlier CLI test may have left the bayesgmm logger at INFO)
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_maps_have_compact_dtypes_and_npz_keeps_them(tmp_path, caplog):
    image, _ = make_regions_image((40, 50), color=True, random_state=0)
    r = segment_image(image, 3, features=("color",), random_state=0)
    assert r.labels.dtype == np.uint8
    for name in (
        "probabilities",
        "label_probability",
        "uncertainty_total",
        "uncertainty_epistemic",
    ):
        assert getattr(r, name).dtype == np.float32, name
    assert r.image is image  # the caller's image, not a float64 copy of it
    u8 = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    assert segment_image(u8, 3, features=("color",), random_state=0).image is u8
    path = tmp_path / "maps.npz"
    caplog.clear()
    with caplog.at_level("WARNING", logger="bayesgmm"):
        r.to_npz(path)
    assert not warnings_logged(caplog)
    with np.load(path) as maps:
        assert maps["labels"].dtype == np.uint8 and maps["probabilities"].dtype == np.float32
        np.testing.assert_array_equal(maps["probabilities"], r.probabilities)  # lossless
        np.testing.assert_array_equal(maps["labels"], r.labels)
    # More segments than a uint8 holds: the next unsigned integer.
    from bayesgmm.segmentation import _Maps

    assert _Maps(10, 257, bayes=False).labels.dtype == np.uint16


def test_large_maps_warn_before_writing(tmp_path, caplog):
    image, _ = make_regions_image((40, 50), random_state=0)
    r = segment_image(image, 2, random_state=0)
    size = sum(
        a.nbytes
        for a in (
            r.labels,
            r.probabilities,
            r.label_probability,
            r.uncertainty_total,
            r.uncertainty_aleatoric,
            r.uncertainty_epistemic,
            r.fit_pixels,
        )
    )
    caplog.clear()
    with caplog.at_level("WARNING", logger="bayesgmm"):
        r.to_npz(tmp_path / "small.npz", warn_bytes=size)  # exactly at the threshold: quiet
        assert not warnings_logged(caplog)
        r.to_npz(tmp_path / "big.npz", warn_bytes=size - 1)
    (record,) = warnings_logged(caplog)
    assert "50 x 40 pixels x 2 segments" in record.getMessage()
    assert "big.npz" in record.getMessage() and (tmp_path / "big.npz").is_file()


@pytest.mark.parametrize("features", [("color",), ("color", "position")])
def test_chunked_maps_equal_unchunked(monkeypatch, features):
    import bayesgmm.segmentation as seg

    image, _ = make_regions_image((61, 47), color=True, random_state=4)  # 2867 pixels
    whole = segment_image(image, 3, features=features, random_state=1)
    monkeypatch.setattr(seg, "CHUNK_PIXELS", 500)  # 6 chunks, the last one partial
    chunked = segment_image(image, 3, features=features, random_state=1)
    np.testing.assert_array_equal(chunked.labels, whole.labels)
    np.testing.assert_allclose(chunked.features.offset, whole.features.offset, rtol=1e-14)
    np.testing.assert_allclose(chunked.features.scale, whole.features.scale, rtol=1e-14)
    for name in ("probabilities", "label_probability", "uncertainty_total"):
        np.testing.assert_allclose(getattr(chunked, name), getattr(whole, name), atol=1e-6)
    # And both are the estimator's predict_proba of every pixel's features, built at once.
    X, f = image_features(image, features)
    expected = chunked.estimator.predict_proba(pd.DataFrame(X, columns=f.names))
    np.testing.assert_allclose(chunked.probabilities.reshape(-1, 3), expected, atol=6e-8)


def test_chunked_bayes_maps_are_membership_of_every_pixel(monkeypatch):
    import bayesgmm.segmentation as seg

    image, _ = make_regions_image((30, 34), random_state=2)
    monkeypatch.setattr(seg, "CHUNK_PIXELS", 256)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        r = segment_image(
            image,
            2,
            method="bayes",
            max_draws=50,
            random_state=0,
            draws=100,
            tune=100,
            chains=1,
            progressbar=False,
        )
    X, f = image_features(image)
    s = r.estimator.membership(pd.DataFrame(X, columns=f.names), max_draws=50)
    np.testing.assert_allclose(r.probabilities.reshape(-1, 2), s.mean, atol=6e-8)
    np.testing.assert_array_equal(r.labels.ravel(), s.labels)
    for mine, full in [
        (r.uncertainty_aleatoric, s.entropy_aleatoric),
        (r.uncertainty_epistemic, s.entropy_epistemic),
    ]:
        np.testing.assert_allclose(mine.ravel(), full, rtol=1e-6, atol=1e-7)
    rows = np.arange(X.shape[0])
    width = s.upper[rows, s.labels] - s.lower[rows, s.labels]
    np.testing.assert_allclose(r.interval_width.ravel(), width, atol=1e-7)
    assert r.interval_width.dtype == np.float32


@pytest.mark.parametrize(
    "image, detail",
    [
        (np.full((20, 30, 3), 128, dtype=np.uint8), "color is constant;"),  # uniform grey
        (np.full((20, 30), 40_000, dtype=np.uint16), "color is constant;"),
        (np.full((20, 30, 3), 0.25), "color is constant;"),
        # float64 rounding noise (a few ulps) around a grey level
        (
            0.3 + np.random.default_rng(0).normal(0, 1e-16, (20, 30)),
            "constant to within float64 rounding",
        ),
        # float32 rounding noise, e.g. left by a colour conversion or a resampling
        (
            (0.7 + np.random.default_rng(1).normal(0, 1e-7, (20, 30, 3))).astype(np.float32),
            "constant to within float32 rounding",
        ),
    ],
)
def test_constant_and_near_constant_images_are_refused(image, detail):
    with pytest.raises(ValueError, match="nothing to segment") as info:
        segment_image(image, 3, features=("color",))
    assert detail in str(info.value)
    with pytest.raises(ValueError, match="nothing to segment"):
        image_features(image, ("color",))


def test_small_but_real_variation_is_segmented():
    # Two levels 1e-9 apart in float64 (millions of ulps) and one odd pixel in a uint8 image
    # are data, not rounding: neither is refused.
    truth = np.zeros((20, 30), dtype=int)
    truth[:, 15:] = 1
    noise = np.random.default_rng(0).normal(0.0, 0.1, truth.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no degenerate fit
        r = segment_image(0.5 + 1e-9 * (truth + noise), 2, random_state=0)
    assert adjusted_rand_score(truth.ravel(), r.labels.ravel()) == 1.0
    grey = np.full((20, 30), 128, dtype=np.uint8)
    grey[3, 4] = 129
    X, f = image_features(grey)
    assert f.scale[0] > 0 and np.isfinite(X).all()


def test_cli_refuses_a_uniform_grey_photo(tmp_path, capsys):
    # Issue 14: not "segmented" into one real and two empty segments with NaN rows.
    path = tmp_path / "grey.png"
    Image.fromarray(np.full((30, 40, 3), 128, dtype=np.uint8)).save(path)
    out = tmp_path / "out"
    assert main(["--quiet", "segment", str(path), "-k", "3", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bayesgmm: error:") and len(err.splitlines()) == 1
    assert "color is constant" in err and "nothing to segment" in err
    assert not out.exists()


def test_plot_draws_large_maps_at_display_resolution(monkeypatch):
    import bayesgmm.plots as plots

    image, _ = make_regions_image((40, 50), color=True, random_state=0)
    u8 = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    r = segment_image(u8, 3, features=("color",), random_state=0)
    monkeypatch.setattr(plots, "_MAX_PANEL_PIXELS", 16)  # as if the image were huge
    fig = plot_segmentation(r)
    shapes = [ax.images[0].get_array().shape[:2] for ax in fig.axes if ax.images]
    assert shapes == [(10, 13)] * 3  # every 4th pixel of 40 x 50
    shown = fig.axes[0].images[0].get_array()
    np.testing.assert_array_equal(shown, u8[::4, ::4] / 255.0)  # uint8 read on [0, 1]
