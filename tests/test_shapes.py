"""Shapes nobody here drew (scikit-image's horse, phantom and IHC photo): loaders, the noisy
test images, and the spatial prior on them."""

from __future__ import annotations

import hashlib
from importlib import resources

import numpy as np
import pytest

from bayesgmm import load_horse, load_ihc, load_phantom, make_noisy_shape
from bayesgmm.segmentation import calibration, segment_image

# SHA-256 of the files in scikit-image 0.26's wheel, as its data registry
# (skimage/data/_registry.py) records them: the shipped copies are byte for byte the same.
SKIMAGE_SHA256 = {
    "horse.png": "c7fb60789fe394c485f842291ea3b21e50d140f39d6dcb5fb9917cc178225455",
    "phantom.png": "552ff698167aa402cceb17981130607a228a0a0aa7c519299eaa4d5f301ba36c",
    "ihc.png": "f8dd1aa387ddd1f49d8ad13b50921b237df8e9b262606d258770687b0ef93cef",
}


@pytest.mark.parametrize("name", sorted(SKIMAGE_SHA256))
def test_shipped_images_are_scikit_images_files(name):
    data = resources.files("bayesgmm").joinpath("data", name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == SKIMAGE_SHA256[name]
    readme = resources.files("bayesgmm").joinpath("data", "README.md").read_text()
    assert name in readme


def test_loaders():
    horse = load_horse()
    assert horse.shape == (328, 400) and horse.dtype == bool
    assert 0.30 < horse.mean() < 0.36
    phantom = load_phantom()
    assert phantom.shape == (400, 400)
    np.testing.assert_allclose(np.unique(phantom), np.array([0, 25, 51, 76, 102, 255]) / 255)
    ihc = load_ihc()
    assert ihc.shape == (512, 512, 3) and ihc.dtype == np.uint8


def test_make_noisy_shape_truth_and_levels():
    image, truth = make_noisy_shape("horse", noise=0.0, blur=0.0)
    assert image.shape == truth.shape == (105, 128)
    assert set(np.unique(truth)) == {0, 1}
    # Without noise or blur the image is the grey level of each class: horse black.
    np.testing.assert_array_equal(image, np.where(truth == 1, 0.0, 1.0))
    assert abs(truth.mean() - load_horse().mean()) < 0.02

    image, truth = make_noisy_shape("phantom", noise=0.0, blur=0.0, size=400)
    # At full size the truth is the phantom's grey levels with 0.1 merged into 0 and 0.4
    # into 0.3; the image keeps every level.
    np.testing.assert_array_equal(image, load_phantom())
    codes = np.rint(image * 255).astype(int)
    expected = np.select([codes <= 25, codes == 51, codes <= 102], [0, 1, 2], 3)
    np.testing.assert_array_equal(truth, expected)

    a, ta = make_noisy_shape("phantom", noise=0.1, random_state=3)
    b, tb = make_noisy_shape("phantom", noise=0.1, random_state=3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ta, tb)
    clean, _ = make_noisy_shape("phantom", noise=0.0)
    assert abs((a - clean).std() - 0.1) < 0.005


def test_make_noisy_shape_bad_input():
    with pytest.raises(ValueError, match="not a shape"):
        make_noisy_shape("zebra", noise=0.1)
    with pytest.raises(ValueError, match="noise"):
        make_noisy_shape("horse", noise=-1.0)
    with pytest.raises(ValueError, match="size=500"):
        make_noisy_shape("horse", noise=0.1, size=500)
    with pytest.raises(TypeError, match="size"):
        make_noisy_shape("horse", noise=0.1, size=12.5)


# The noise levels of the issue's "must show" on these shapes (3 seeds each):
# - horse, 105 x 128 pixels, contrast 1, blur 0.8, noise 0.4;
# - phantom, 128 x 128, smallest contrast 0.1, no blur (its skull is 1 to 2 pixels wide at
#   this size: a blur of 0.8 pixels spreads it over its neighbours, whose true class is then
#   not what the image shows), noise 0.05.
CASES = [("horse", 2, 0.4, 0.8), ("phantom", 4, 0.05, 0.0)]


@pytest.fixture(scope="module", params=CASES, ids=[c[0] for c in CASES])
def shape_fits(request):
    name, k, noise, blur = request.param
    out = []
    for seed in range(3):
        image, truth = make_noisy_shape(name, noise=noise, blur=blur, random_state=seed)
        plain = calibration(segment_image(image, k, random_state=seed), truth)
        potts = calibration(segment_image(image, k, spatial="potts", random_state=seed), truth)
        out.append((plain, potts))
    return name, out


def test_potts_meets_the_issue_targets_on_the_shapes(shape_fits):
    name, fits = shape_fits
    for plain, potts in fits:
        assert potts.ari >= 0.9, (name, potts.ari)
        assert potts.ece <= 0.03, (name, potts.ece)
        # Independent pixels, for comparison (measured ARI 0.57 on the horse, 0.55 to 0.80
        # on the phantom): the test tells the two apart.
        assert plain.ari < 0.85, (name, plain.ari)
        assert potts.ari > plain.ari + 0.15
