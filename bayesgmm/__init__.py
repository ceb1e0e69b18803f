"""bayesgmm: Gaussian mixtures, the EM point estimate and the Bayesian posterior side by side."""

from ._version import __version__
from .datasets import load_acidity, load_enzyme, load_faithful, load_galaxy, make_mixture
from .em import EMGaussianMixture
from .exceptions import ConvergenceWarning, DegenerateMixtureWarning

__all__ = [
    "ConvergenceWarning",
    "DegenerateMixtureWarning",
    "EMGaussianMixture",
    "__version__",
    "load_acidity",
    "load_enzyme",
    "load_faithful",
    "load_galaxy",
    "make_mixture",
]
