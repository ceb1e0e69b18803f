"""bayesgmm: Gaussian mixtures, the EM point estimate and the Bayesian posterior side by side.

The public names below are imported on first use (PEP 562), so ``import bayesgmm`` and the
EM-only paths do not pay for PyMC, xarray and ArviZ until a Bayesian name is touched.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily
    from .bayes import BayesGaussianMixture
    from .bootstrap import BootstrapResult
    from .datasets import (
        load_acidity,
        load_enzyme,
        load_faithful,
        load_galaxy,
        load_horse,
        load_ihc,
        load_phantom,
        load_sample_photo,
        make_mixture,
        make_noisy_shape,
        make_regions_image,
        make_regions_volume,
    )
    from .diagnostics import diagnose
    from .em import EMGaussianMixture
    from .evidence import log_marginal_likelihood
    from .exceptions import ConvergenceWarning, DegenerateMixtureWarning, SamplingWarning
    from .model import Priors, build_model
    from .segmentation import SegmentationResult, segment_image
    from .selection import compare_models
    from .volume import VolumeSegmentationResult, segment_volume

_LAZY = {
    "BayesGaussianMixture": "bayes",
    "BootstrapResult": "bootstrap",
    "ConvergenceWarning": "exceptions",
    "DegenerateMixtureWarning": "exceptions",
    "EMGaussianMixture": "em",
    "Priors": "model",
    "SamplingWarning": "exceptions",
    "SegmentationResult": "segmentation",
    "VolumeSegmentationResult": "volume",
    "build_model": "model",
    "compare_models": "selection",
    "diagnose": "diagnostics",
    "load_acidity": "datasets",
    "load_enzyme": "datasets",
    "load_faithful": "datasets",
    "load_galaxy": "datasets",
    "load_horse": "datasets",
    "load_ihc": "datasets",
    "load_phantom": "datasets",
    "load_sample_photo": "datasets",
    "log_marginal_likelihood": "evidence",
    "make_mixture": "datasets",
    "make_noisy_shape": "datasets",
    "make_regions_image": "datasets",
    "make_regions_volume": "datasets",
    "segment_image": "segmentation",
    "segment_volume": "volume",
}

__all__ = [
    "BayesGaussianMixture",
    "BootstrapResult",
    "ConvergenceWarning",
    "DegenerateMixtureWarning",
    "EMGaussianMixture",
    "Priors",
    "SamplingWarning",
    "SegmentationResult",
    "VolumeSegmentationResult",
    "__version__",
    "build_model",
    "compare_models",
    "diagnose",
    "load_acidity",
    "load_enzyme",
    "load_faithful",
    "load_galaxy",
    "load_horse",
    "load_ihc",
    "load_phantom",
    "load_sample_photo",
    "log_marginal_likelihood",
    "make_mixture",
    "make_noisy_shape",
    "make_regions_image",
    "make_regions_volume",
    "segment_image",
    "segment_volume",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bayesgmm' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
