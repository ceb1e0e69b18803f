"""The report's model section of a custom model says what was sampled."""

from __future__ import annotations


def test_a_custom_model_with_a_potential_is_not_described_as_the_plain_mixture():
    """The report's model section of a custom model: a model function's own description
    wins; without one, potentials are named, since they change the density sampled."""
    import json

    from bayesgmm.report import _custom_model_blocks

    def text(attrs):
        return " ".join(str(getattr(b, "text", "")) for b in _custom_model_blocks(attrs))

    base = {"custom_model": "mine.model"}
    assert "potential" not in text(base)
    with_pot = text({**base, "custom_model_potentials": json.dumps(["penalty"])})
    assert "penalty" in with_pot and "not that likelihood alone" in with_pot
    own = text({**base, "custom_model_description": "Likelihood: something else."})
    assert "something else" in own and "sum_k w_k" not in own
