"""compare_models with scikit-learn's and mclust's names for one model (issue 18, item 3)."""

from __future__ import annotations

import re

import pytest

from bayesgmm import load_faithful
from bayesgmm.selection import COVARIANCE_TYPE, compare_models


@pytest.mark.parametrize(
    ("given", "first", "second", "model"),
    [
        (("full", "VVV"), "full", "VVV", "VVV"),
        (("EEE", "EEV", "tied"), "EEE", "tied", "EEE"),
        (("VVI", "diag"), "VVI", "diag", "VVI"),
        (("spherical", "EII", "VII"), "spherical", "VII", "VII"),
    ],
)
def test_one_model_under_two_names_is_refused(given, first, second, model):
    message = f"'{first}' and '{second}' are both mclust's {model}; give it once"
    with pytest.raises(ValueError, match=re.escape(message)):
        compare_models(load_faithful(), n_components=[1], covariance_types=given, methods=("em",))


def test_distinct_models_and_a_repeated_name_pass():
    """A name repeated as such is still taken once, as before; distinct models all run."""
    res = compare_models(
        load_faithful(),
        n_components=[1],
        covariance_types=("full", "full", "EEE", "diag", "EII"),
        methods=("em",),
        random_state=0,
    )
    assert list(res.table[COVARIANCE_TYPE]) == ["full", "EEE", "diag", "EII"]
