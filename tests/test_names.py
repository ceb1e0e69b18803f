"""Issue 15, item 8: one name per concept, and the old name of the per-draw responsibilities
still works, with a deprecation warning."""

from __future__ import annotations

import numpy as np
import pytest

from bayesgmm import EMGaussianMixture, _draw_kernels, load_faithful, relabel, responsibilities
from bayesgmm.exceptions import BayesGMMDeprecationWarning


def _draws():
    X = load_faithful().to_numpy()
    em = EMGaussianMixture(2, random_state=0).fit(X)
    w = np.stack([em.weights_, em.weights_[::-1]])
    mu = np.stack([em.means_, em.means_[::-1]])
    pc = np.stack([em.precisions_cholesky_, em.precisions_cholesky_[::-1]])
    return X, w, mu, pc


def test_one_name_for_the_per_draw_responsibilities():
    X, w, mu, pc = _draws()
    kernel = _draw_kernels.responsibility_draws(X, w, mu, pc, "full")
    public = responsibilities.responsibility_draws(X, w, mu, pc, "full")
    np.testing.assert_array_equal(kernel, public)
    assert kernel.shape == (2, len(X), 2)
    np.testing.assert_allclose(kernel[0], kernel[1][:, ::-1])
    with pytest.warns(BayesGMMDeprecationWarning, match="responsibility_draws"):
        old = relabel.allocation_probabilities(X, w, mu, pc, "full")
    np.testing.assert_array_equal(old, kernel)
    assert "allocation_probabilities" not in relabel.__all__


def test_one_name_for_the_pointwise_log_likelihood():
    from bayesgmm import _numerics

    X, w, mu, pc = _draws()
    ll = _draw_kernels.pointwise_log_likelihood(X, w, mu, pc, "full")
    ref = _numerics.log_mixture_density(X, w[0], mu[0], pc[0], "full")
    np.testing.assert_allclose(ll[0], ref, rtol=1e-10)
    assert not hasattr(_draw_kernels, "pointwise_log_density")


def test_one_name_for_the_cap_on_posterior_draws():
    """membership(max_draws=), segment_image(max_draws=), segment_volume(max_draws=); the old
    segmentation name still works and warns."""
    from bayesgmm import make_regions_image, segment_image
    from bayesgmm.volume import segment_volume

    image, _ = make_regions_image((24, 24), noise=0.05, random_state=0)
    new = segment_image(image, 3, max_draws=7, random_state=0)
    with pytest.warns(BayesGMMDeprecationWarning, match="max_draws"):
        old = segment_image(image, 3, n_map_draws=7, random_state=0)
    np.testing.assert_array_equal(new.labels, old.labels)
    with pytest.raises(ValueError, match="max_draws"):
        segment_image(image, 3, max_draws=0)
    volume = np.stack([image] * 4)
    with pytest.warns(BayesGMMDeprecationWarning, match="max_draws"):
        segment_volume(volume, 3, n_map_draws=7, random_state=0)
