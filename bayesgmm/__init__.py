"""bayesgmm: Gaussian mixtures, the EM point estimate and the Bayesian posterior side by side."""

from ._version import __version__
from .bayes import BayesGaussianMixture
from .datasets import (
    load_acidity,
    load_enzyme,
    load_faithful,
    load_galaxy,
    load_sample_photo,
    make_mixture,
    make_regions_image,
)
from .diagnostics import diagnose
from .em import EMGaussianMixture
from .exceptions import ConvergenceWarning, DegenerateMixtureWarning, SamplingWarning
from .model import Priors, build_model
from .segmentation import SegmentationResult, segment_image
from .selection import compare_models

__all__ = [
    "BayesGaussianMixture",
    "ConvergenceWarning",
    "DegenerateMixtureWarning",
    "EMGaussianMixture",
    "Priors",
    "SamplingWarning",
    "SegmentationResult",
    "__version__",
    "build_model",
    "compare_models",
    "diagnose",
    "load_acidity",
    "load_enzyme",
    "load_faithful",
    "load_galaxy",
    "load_sample_photo",
    "make_mixture",
    "make_regions_image",
    "segment_image",
]
