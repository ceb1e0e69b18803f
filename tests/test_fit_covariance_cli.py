"""``bayesgmm fit --covariance`` with mclust's 14 model names (issue 18, item 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bayesgmm import EMGaussianMixture, cli, load_faithful
from bayesgmm._mclust import MCLUST_MODELS


@pytest.mark.parametrize("model", MCLUST_MODELS)
def test_em_takes_every_mclust_name_in_any_case(model):
    assert cli._parse_fit_covariance(model, "em") == model
    assert cli._parse_fit_covariance(model.lower(), "em") == model
    assert cli._parse_fit_covariance(f" {model} ", "em") == model


@pytest.mark.parametrize("name", ["full", "tied", "diag", "spherical"])
def test_scikit_learn_names_stay(name):
    for method in ("em", "bayes", "both"):
        assert cli._parse_fit_covariance(name.upper(), method) == name


@pytest.mark.parametrize("method", ["bayes", "both"])
def test_bayesian_fit_maps_its_four_mclust_names_and_refuses_the_rest(method):
    mapped = {"VVV": "full", "EEE": "tied", "VVI": "diag", "VII": "spherical"}
    for model in MCLUST_MODELS:
        if model in mapped:
            assert cli._parse_fit_covariance(model.lower(), method) == mapped[model]
        else:
            with pytest.raises(
                ValueError, match=f"--covariance {model} has no Bayesian .*--method em"
            ):
                cli._parse_fit_covariance(model, method)


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match=r"'VVX' is not a covariance type.*EII.*VVV"):
        cli._parse_fit_covariance("VVX", "em")


@pytest.mark.parametrize("given", ["EEV", "vev"])
def test_fit_command_with_an_mclust_model(tmp_path, given):
    data = tmp_path / "faithful.csv"
    load_faithful().to_csv(data, index=False)
    out = tmp_path / "fit"
    argv = ["--quiet", "fit", str(data), "-k", "3", "--covariance", given, "--method", "em"]
    assert cli.main([*argv, "--n-init", "2", "--seed", "1", "--out", str(out)]) == 0
    payload = json.loads((out / "em.json").read_text())
    model = given.upper()
    assert payload["covariance_type"] == model
    X = load_faithful()
    em = EMGaussianMixture(3, covariance_type=model, n_init=2, random_state=1).fit(X)
    assert payload["n_parameters"] == em.n_parameters_
    assert payload["log_likelihood"] == pytest.approx(em.score(X) * len(X), rel=1e-9)
    run = json.loads((out / "run.json").read_text())
    assert f"--covariance {model}" in run["reproducibility"]["command"]


def test_fit_command_refuses_an_em_only_model_for_the_bayesian_fit(tmp_path, capsys):
    data = tmp_path / "faithful.csv"
    load_faithful().to_csv(data, index=False)
    out = tmp_path / "fit"
    argv = ["fit", str(data), "-k", "2", "--covariance", "EVE", "--out", str(out)]
    assert cli.main(argv) == cli.EXIT_ERROR  # --method both is the default
    err = capsys.readouterr().err
    assert "EVE has no Bayesian model" in err and "--method em" in err
    assert not out.exists()


def test_fit_command_em_result_loads_back(tmp_path):
    """em.json of an mclust model reads back into an estimator with the same predictions."""
    data = tmp_path / "faithful.csv"
    load_faithful().to_csv(data, index=False)
    out = tmp_path / "fit"
    argv = ["--quiet", "fit", str(data), "-k", "2", "--covariance", "EVI", "--method", "em"]
    assert cli.main([*argv, "--out", str(out)]) == 0
    gm, features = cli._load_em_json(out / "em.json")
    assert features == list(load_faithful().columns)
    assert gm.covariance_type == "EVI"
    X = load_faithful()
    labels = np.loadtxt(out / "membership_em.csv", delimiter=",", skiprows=1, usecols=1)
    np.testing.assert_array_equal(gm.predict(X), labels)
