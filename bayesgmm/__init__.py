"""bayesgmm: Gaussian mixtures, the EM point estimate and the Bayesian posterior side by side."""

from ._version import __version__
from .bayes import BayesGaussianMixture
from .datasets import load_acidity, load_enzyme, load_faithful, load_galaxy, make_mixture
from .diagnostics import diagnose
from .em import EMGaussianMixture
from .exceptions import ConvergenceWarning, DegenerateMixtureWarning, SamplingWarning
from .model import Priors, build_model

__all__ = [
    "BayesGaussianMixture",
    "ConvergenceWarning",
    "DegenerateMixtureWarning",
    "EMGaussianMixture",
    "Priors",
    "SamplingWarning",
    "__version__",
    "build_model",
    "diagnose",
    "load_acidity",
    "load_enzyme",
    "load_faithful",
    "load_galaxy",
    "make_mixture",
]
