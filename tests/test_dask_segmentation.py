"""Segmentation of Dask and zarr images (maps as lazy Dask arrays, written to zarr)."""

from __future__ import annotations

import json
import threading
import warnings

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import zarr
from PIL import Image
from test_dask import client  # noqa: F401  (the LocalCluster of two worker processes)

from bayesgmm.datasets import make_regions_image
from bayesgmm.exceptions import SamplingWarning
from bayesgmm.segmentation import MAP_NAMES, image_features, segment_image

# In-process scheduler: cheap, and the same code paths as a cluster's (see test_on_a_cluster).
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(autouse=True)
def synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


@pytest.fixture(scope="module")
def color_image() -> np.ndarray:
    return make_regions_image((61, 47), color=True, random_state=4)[0]  # 2867 pixels


def _maps(result) -> dict[str, np.ndarray]:
    """Every map of a result in memory (lazy ones computed together, in one pass)."""
    maps = {n: getattr(result, n) for n in MAP_NAMES if getattr(result, n) is not None}
    return dict(zip(maps, dask.compute(*maps.values()), strict=True))


def _assert_same(lazy, ref, *, params: bool = True) -> None:
    got, want = _maps(lazy), _maps(ref)
    assert got.keys() == want.keys()
    np.testing.assert_array_equal(got["labels"], want["labels"])
    for name, values in want.items():
        assert got[name].dtype == values.dtype, name
        np.testing.assert_allclose(got[name], values, rtol=0, atol=1e-10, err_msg=name)
    np.testing.assert_allclose(lazy.features.offset, ref.features.offset, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(lazy.features.scale, ref.features.scale, rtol=1e-14)
    np.testing.assert_array_equal(lazy.fit_pixels, ref.fit_pixels)
    if params:
        for attr in ("weights_", "means_", "covariances_"):
            a, b = getattr(lazy.estimator, attr), getattr(ref.estimator, attr)
            assert np.abs(a - b).max() <= 1e-10 * np.abs(b).max(), attr


@pytest.mark.parametrize(
    ("features", "as_uint8"),
    [(("intensity",), True), (("color", "position"), False), (("color",), False)],
)
def test_em_maps_equal_the_in_memory_maps(color_image, features, as_uint8):
    image = (color_image.clip(0, 1) * 255).round().astype(np.uint8) if as_uint8 else color_image
    ref = segment_image(image, 3, features=features, n_fit_pixels=1500, random_state=1)
    lazy = segment_image(
        da.from_array(image, chunks=(20, 15, 3)),  # uneven blocks at the edges
        3,
        features=features,
        n_fit_pixels=1500,
        random_state=1,
    )
    assert lazy.lazy and not ref.lazy
    assert lazy.labels.chunks == ((20, 20, 20, 1), (15, 15, 15, 2))
    assert lazy.probabilities.chunks[:2] == lazy.labels.chunks
    assert lazy.probabilities.chunks[2] == (3,)
    _assert_same(lazy, ref)
    pd.testing.assert_frame_equal(lazy.summary(), ref.summary(), rtol=1e-12)
    pd.testing.assert_frame_equal(lazy.component_means(), ref.component_means(), rtol=1e-9)


def test_grayscale_and_single_channel_images(color_image):
    gray = color_image @ np.array([0.299, 0.587, 0.114])
    ref = segment_image(gray, 2, random_state=0)
    lazy = segment_image(da.from_array(gray[..., None], chunks=(32, 32, 1)), 2, random_state=0)
    _assert_same(lazy, ref)


def test_bayes_maps_are_the_membership_of_every_pixel(tmp_path):
    image, _ = make_regions_image((30, 34), random_state=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)  # short chains, on purpose
        lazy = segment_image(
            da.from_array(image, chunks=(16, 16)),
            2,
            method="bayes",
            max_draws=50,
            random_state=0,
            draws=100,
            tune=100,
            chains=1,
            progressbar=False,
        )
    assert lazy.lazy and lazy.n_map_draws == 50 and lazy.interval_width is not None
    # The in-memory maps of the same fitted posterior: its streaming summary of every pixel.
    X, f = image_features(image)
    np.testing.assert_allclose(lazy.features.offset, f.offset, rtol=1e-14)
    np.testing.assert_allclose(lazy.features.scale, f.scale, rtol=1e-14)
    s = lazy.estimator.membership(pd.DataFrame(X, columns=f.names), max_draws=50, intervals="label")
    got = _maps(lazy)
    at = np.arange(s.labels.size)
    np.testing.assert_array_equal(got["labels"].ravel(), s.labels)
    expected = {
        "probabilities": s.mean,
        "label_probability": s.mean[at, s.labels],
        "uncertainty_total": s.entropy_total,
        "uncertainty_aleatoric": s.entropy_aleatoric,
        "uncertainty_epistemic": s.entropy_epistemic,
        "interval_width": s.upper[at, s.labels] - s.lower[at, s.labels],
    }
    for name, values in expected.items():
        want = values.astype(np.float32).reshape(got[name].shape)
        np.testing.assert_allclose(got[name], want, rtol=0, atol=1e-10, err_msg=name)
    assert got["uncertainty_epistemic"].max() > 0  # posterior draws disagree somewhere
    lazy.to_zarr(tmp_path / "bayes.zarr")
    group = zarr.open_group(str(tmp_path / "bayes.zarr"), mode="r")
    assert group.attrs["method"] == "bayes" and group.attrs["n_map_draws"] == 50
    for name, values in got.items():
        np.testing.assert_array_equal(group[name][:], values, err_msg=name)


class _Guarded:
    """An image that counts its reads and refuses any read of more than one block."""

    def __init__(self, values: np.ndarray, block: tuple[int, int]) -> None:
        self.values, self.block = values, block
        self.shape, self.dtype, self.ndim = values.shape, values.dtype, values.ndim
        self.reads: dict[tuple[int, int], int] = {}
        self.lock = threading.Lock()

    def __getitem__(self, key):
        rows, cols = key[0], key[1]
        if (rows.stop - rows.start) > self.block[0] or (cols.stop - cols.start) > self.block[1]:
            raise AssertionError(f"read {key} spans more than one block")
        if rows.stop == rows.start or cols.stop == cols.start:
            return self.values[key]  # dask's look at the dtype: no pixel read
        with self.lock:
            at = (rows.start // self.block[0], cols.start // self.block[1])
            self.reads[at] = self.reads.get(at, 0) + 1
        return self.values[key]


def test_the_image_is_read_block_by_block_and_the_maps_are_lazy(color_image):
    guarded = _Guarded(color_image, (16, 16))
    image = da.from_array(guarded, chunks=(16, 16, 3), asarray=True)
    n_blocks = 4 * 3
    result = segment_image(image, 3, features=("color", "position"), random_state=0)
    # Scaling (one pass), the first pixel, the fitted sample: each block read at most twice
    # (block (0, 0) three times) and nothing of the maps computed yet.
    assert len(guarded.reads) == n_blocks
    assert sum(guarded.reads.values()) <= 2 * n_blocks + 1
    before = dict(guarded.reads)
    for name in MAP_NAMES[:-1]:
        assert isinstance(getattr(result, name), da.Array), name
    assert result.interval_width is None
    _maps(result)  # all maps together: one more read of every block
    assert {b: guarded.reads[b] - before[b] for b in before} == dict.fromkeys(before, 1)
    ref = segment_image(color_image, 3, features=("color", "position"), random_state=0)
    _assert_same(result, ref)


def test_to_zarr_round_trip_and_file_safety(color_image, tmp_path):
    lazy = segment_image(da.from_array(color_image, chunks=(32, 24, 3)), 3, random_state=0)
    store = tmp_path / "maps.zarr"
    opened = lazy.to_zarr(store)
    assert opened.lazy and sorted(p.name for p in tmp_path.iterdir()) == ["maps.zarr"]
    group = zarr.open_group(str(store), mode="r")
    assert group.attrs["written_by"] == "bayesgmm" and group.attrs["method"] == "em"
    assert group["labels"].chunks == (32, 24) and group["probabilities"].chunks == (32, 24, 3)
    np.testing.assert_array_equal(group["fit_pixels"][:], lazy.fit_pixels)
    for name, values in _maps(lazy).items():
        np.testing.assert_array_equal(group[name][:], values, err_msg=name)
        assert group[name].dtype == values.dtype
    # Files are sacred: an existing store is replaced only when asked and when it is ours.
    with pytest.raises(FileExistsError, match="overwrite=True"):
        lazy.to_zarr(store)
    lazy.to_zarr(store, overwrite=True)
    (store / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"notes\.txt"):
        lazy.to_zarr(store, overwrite=True)
    foreign = tmp_path / "foreign.zarr"
    zarr.open_group(str(foreign), mode="w").attrs["owner"] = "someone"
    before = json.loads((foreign / "zarr.json").read_text())
    with pytest.raises(FileExistsError, match="not a maps store bayesgmm wrote"):
        lazy.to_zarr(foreign, overwrite=True)
    assert json.loads((foreign / "zarr.json").read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign.zarr", "maps.zarr"]
    # In-memory maps go to zarr too, and lazy maps refuse .npz (which needs them in memory).
    ref = segment_image(color_image, 3, random_state=0)
    from_memory = ref.to_zarr(tmp_path / "memory.zarr")
    np.testing.assert_array_equal(from_memory.labels.compute(), ref.labels)
    with pytest.raises(TypeError, match="to_zarr"):
        lazy.to_npz(tmp_path / "maps.npz")


def test_zarr_array_and_store_path_inputs(color_image, tmp_path):
    uint8 = (color_image.clip(0, 1) * 255).round().astype(np.uint8)
    path = tmp_path / "image.zarr"
    z = zarr.create_array(str(path), shape=uint8.shape, chunks=(24, 24, 3), dtype=np.uint8)
    z[:] = uint8
    ref = segment_image(uint8, 3, random_state=0)
    import xarray as xr

    dims = ("y", "x", "channel")
    as_xarray = xr.DataArray(da.from_zarr(str(path)), dims=dims)
    for image in (zarr.open_array(str(path), mode="r"), path, str(path), as_xarray):
        result = segment_image(image, 3, random_state=0)
        assert result.labels.chunks == ((24, 24, 13), (24, 23))
        _assert_same(result, ref)


def test_preview_shows_every_step_th_pixel_and_keeps_the_whole_summary(color_image):
    lazy = segment_image(da.from_array(color_image, chunks=(20, 20, 3)), 3, random_state=0)
    small = lazy.preview(4)
    assert not small.lazy and small.preview_step == 4 and small.full_shape == (61, 47)
    assert small.labels.shape == (16, 12) and small.image.shape == (16, 12, 3)
    assert small.n_pixels == 61 * 47
    full = _maps(lazy)
    np.testing.assert_array_equal(small.labels, full["labels"][::4, ::4])
    np.testing.assert_array_equal(small.image, color_image[::4, ::4])
    pd.testing.assert_frame_equal(small.summary(), lazy.summary())


def test_refusals_are_clear(color_image):
    image = da.from_array(color_image, chunks=(20, 20, 3))
    with pytest.raises(ValueError, match="the spatial prior needs the image in memory"):
        segment_image(image, 3, spatial="potts")
    bad = color_image.copy()
    bad[45, 33, 1] = np.nan
    with pytest.raises(ValueError, match=r"1 pixel\(s\) with NaN .* row 45, column 33"):
        segment_image(da.from_array(bad, chunks=(20, 20, 3)), 3)
    flat = da.full((40, 40), 0.5, chunks=20)
    with pytest.raises(ValueError, match="intensity is constant"):
        segment_image(flat, 2)
    with pytest.raises(ValueError, match="RGBA"):
        segment_image(da.zeros((8, 8, 4), chunks=4), 2)
    with pytest.raises(TypeError, match="block by block"):
        image_features(image)


def test_on_a_cluster_of_worker_processes(client, color_image, tmp_path):  # noqa: F811
    """The same maps from two worker processes as in-process, written to zarr there."""
    import distributed

    image = da.from_array(color_image, chunks=(16, 16, 3))
    local = segment_image(image, 3, features=("color", "position"), random_state=0)
    with dask.config.set(scheduler=client.get), distributed.get_task_stream(client=client) as ts:
        remote = segment_image(image, 3, features=("color", "position"), random_state=0)
        stored = remote.to_zarr(tmp_path / "maps.zarr")
        maps = _maps(stored)
    assert len({t["worker"] for t in ts.data}) == 2  # both workers took part
    for name, values in _maps(local).items():
        np.testing.assert_array_equal(maps[name], values, err_msg=name)


# --------------------------------------------------------------------------- command line


def _zarr_image(path, values: np.ndarray, chunks) -> None:
    z = zarr.create_array(str(path), shape=values.shape, chunks=chunks, dtype=values.dtype)
    z[:] = values


def test_cli_segments_a_zarr_image_into_zarr_maps(tmp_path, capsys, monkeypatch):
    import bayesgmm.cli as cli

    monkeypatch.setattr(cli, "PREVIEW_SIDE", 40)  # a 61 x 47 image: previews of every 2nd pixel
    image = make_regions_image((61, 47), color=True, random_state=4)[0]
    uint8 = (image.clip(0, 1) * 255).round().astype(np.uint8)
    src = tmp_path / "scene.zarr"
    _zarr_image(src, uint8, (24, 24, 3))
    before = sorted(p.name for p in src.rglob("*"))
    out = tmp_path / "seg"
    argv = ["segment", str(src), "-k", "3", "--out", str(out), "--n-init", "2"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert "results written" in capsys.readouterr().out
    names = {p.name for p in out.iterdir()}
    assert {"maps.zarr", "labels.png", "uncertainty.png", "segments.csv", "report.html"} <= names
    assert "maps.npz" not in names
    assert json.loads((out / cli.MARKER).read_text())["files"] == sorted(names - {cli.MARKER})
    meta = json.loads((out / "segmentation.json").read_text())
    assert meta["maps"] == "maps.zarr" and meta["png_and_report_step"] == 2
    assert meta["image_shape"] == [61, 47, 3]
    # The maps are the whole image's, equal to the in-memory segmentation's.
    ref = segment_image(uint8, 3, features=("color",), random_state=0, n_init=2)
    group = zarr.open_group(str(out / "maps.zarr"), mode="r")
    np.testing.assert_array_equal(group["labels"][:], ref.labels)
    np.testing.assert_allclose(group["probabilities"][:], ref.probabilities, atol=1e-10)
    assert group["labels"].chunks == (24, 24)
    # PNGs and report show the preview, and say so; the table is the whole image's.
    labels_png = np.asarray(Image.open(out / "labels.png"))
    np.testing.assert_array_equal(labels_png, ref.labels[::2, ::2])
    html = (out / "report.html").read_text()
    assert "a preview, one row and one column in 2 (24 x 31 pixels)" in html
    table = pd.read_csv(out / "segments.csv", index_col=0)
    np.testing.assert_allclose(table["pixel_share"], ref.summary()["pixel_share"], rtol=1e-12)
    assert sorted(p.name for p in src.rglob("*")) == before  # the input is untouched

    # Results are replaced only with --force; the input store is never an output.
    assert cli.main(["--quiet", *argv]) == 2
    assert "--force" in capsys.readouterr().err
    inside = ["--quiet", "segment", str(src), "-k", "3", "--out", str(src / "out")]
    assert cli.main(inside) == 2 and "inside the input" in capsys.readouterr().err
    for extra, message in [
        (["--spatial", "potts"], "needs the image in memory"),
        (["--truth", str(png_of(tmp_path, ref.labels))], "--truth: calibration"),
    ]:
        bad = ["--quiet", "segment", str(src), "-k", "3", "--out", str(tmp_path / "y"), *extra]
        assert cli.main(bad) == 2 and message in capsys.readouterr().err
        assert not (tmp_path / "y").exists()
    assert sorted(p.name for p in src.rglob("*")) == before


def png_of(directory, values: np.ndarray):
    path = directory / "truth.png"
    Image.fromarray(values.astype(np.uint8)).save(path)
    return path


def test_cli_maps_zarr_option_for_an_image_in_memory(tmp_path):
    from bayesgmm.cli import main

    image = make_regions_image((40, 36), random_state=1)[0]
    png = tmp_path / "regions.png"
    Image.fromarray((image.clip(0, 1) * 255).round().astype(np.uint8)).save(png)
    out = tmp_path / "seg"
    argv = ["--quiet", "segment", str(png), "-k", "3", "--out", str(out), "--maps-zarr"]
    assert main([*argv, "--features", "intensity"]) == 0
    assert (out / "maps.zarr").is_dir() and not (out / "maps.npz").exists()
    labels = zarr.open_group(str(out / "maps.zarr"), mode="r")["labels"][:]
    np.testing.assert_array_equal(labels, np.asarray(Image.open(out / "labels.png")))


def test_a_zarr_group_with_one_array_is_read_and_other_stores_are_explained(tmp_path):
    image = make_regions_image((20, 24), random_state=0)[0]
    one = tmp_path / "one.zarr"
    zarr.open_group(str(one), mode="w").create_array("image", data=image, chunks=(10, 12))
    result = segment_image(one, 2, random_state=0)
    assert result.labels.chunks == ((10, 10), (12, 12))
    two = tmp_path / "two.zarr"
    group = zarr.open_group(str(two), mode="w")
    group.create_array("a", data=image)
    group.create_array("b", data=image)
    with pytest.raises(ValueError, match=r"holding 2 arrays \(a, b\).*two.zarr/a"):
        segment_image(two, 2)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        segment_image(tmp_path / "missing.zarr", 2)


def test_calibration_of_lazy_maps_equals_in_memory():
    from bayesgmm.segmentation import calibration

    image, truth = make_regions_image((48, 48), random_state=0)
    ref = calibration(segment_image(image, 3, random_state=0), truth)
    got = calibration(segment_image(da.from_array(image, chunks=20), 3, random_state=0), truth)
    assert (got.accuracy, got.ari, got.ece) == (ref.accuracy, ref.ari, ref.ece)
    pd.testing.assert_frame_equal(got.curve, ref.curve)
