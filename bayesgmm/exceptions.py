"""Warnings and errors raised by bayesgmm."""

from sklearn.exceptions import ConvergenceWarning

__all__ = [
    "BayesGMMDeprecationWarning",
    "ConvergenceWarning",
    "DegenerateMixtureWarning",
    "SamplingWarning",
]


class DegenerateMixtureWarning(UserWarning):
    """A fitted component collapsed onto too few points or onto the ``reg_covar`` floor.

    The Gaussian-mixture likelihood is unbounded: a component can shrink onto a handful of
    (possibly tied) points and drive the log-likelihood up without describing the data.
    Such fits are kept but marked (``degenerate_``) and never preferred by model selection.
    """


class BayesGMMDeprecationWarning(DeprecationWarning):
    """A bayesgmm feature is deprecated."""


class SamplingWarning(UserWarning):
    """The posterior sampler's diagnostics failed (R-hat, ESS, divergences or E-BFMI).

    Sampling problems never raise: the draws are kept, the failure is recorded in the
    diagnostics (``BayesGaussianMixture.diagnostics_``) and this warning says what to do.
    """
