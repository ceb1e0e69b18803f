"""The command line: help, version, the demo, and one-line errors."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from bayesgmm import __version__
from bayesgmm.cli import main


def test_version_and_help(capsys):
    for argv, text in ((["--version"], __version__), (["--help"], "demo")):
        try:
            main(argv)
        except SystemExit as exc:
            assert exc.code == 0
        assert text in capsys.readouterr().out


def test_demo_prints_a_summary(capsys, tmp_path):
    argv = ["demo", "--max-components", "3", "--n-init", "3", "--draws", "300", "--chains", "2"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "BIC picks K = 2" in out
    assert "-1130" in out
    assert "diagnostics:" in out and "mean[1, waiting]" in out
    assert "PSIS-LOO picks" in out  # the comparison includes the posterior criteria
    assert (tmp_path / "posterior.nc").exists()
    assert (tmp_path / "comparison.csv").exists()
    html = (tmp_path / "report.html").read_text()
    assert "Old Faithful" in html and "data:image/png;base64," in html


def test_console_script_reports_errors_in_one_line():
    proc = subprocess.run(
        [sys.executable, "-m", "bayesgmm", "demo", "--max-components", "0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert proc.stderr.strip().startswith("bayesgmm: error:")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "--max-components=0" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_retry_budget_is_refused_before_any_work(tmp_path, capsys):
    from bayesgmm.cli import main

    data = tmp_path / "x.csv"
    data.write_text("a,b\n" + "\n".join(f"{i},{i % 7}" for i in range(30)) + "\n")
    out = tmp_path / "out"
    assert main(["compare", str(data), "-k", "1:2", "--retry-budget", "-1", "--out", str(out)]) == 2
    assert "--retry-budget -1.0: it must be at least 0" in capsys.readouterr().err
    assert not out.exists()


def test_fit_compare_predict_round_trip_on_a_csv(tmp_path, capsys):
    import json

    import pandas as pd

    from bayesgmm import load_faithful

    data = tmp_path / "faithful.csv"
    load_faithful().assign(note="x").to_csv(data, index=False)
    fit_dir = tmp_path / "fit"
    argv = ["--quiet", "fit", str(data), "--columns", "eruptions,waiting", "-k", "2"]
    fast = ["--draws", "200", "--tune", "200", "--chains", "2", "--n-init", "3"]
    assert main([*argv, *fast, "--out", str(fit_dir)]) == 0
    names = {p.name for p in fit_dir.iterdir()}
    assert {"em.json", "posterior.nc", "posterior_summary.csv", "membership.csv"} <= names
    assert {"report.html", "report_figures"} <= names
    assert len(list((fit_dir / "report_figures").glob("*.png"))) >= 5
    em = json.loads((fit_dir / "em.json").read_text())
    assert em["log_likelihood"] == pytest.approx(-1130.264, abs=0.01)
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())

    new = tmp_path / "new.csv"
    pd.DataFrame({"waiting": [54.0, 80.0], "eruptions": [2.0, 4.3]}).to_csv(new, index=False)
    pred = tmp_path / "pred.csv"
    assert main(["--quiet", "predict", str(fit_dir), str(new), "--out", str(pred)]) == 0
    table = pd.read_csv(pred)
    assert list(table["label"]) == [0, 1]
    assert {"label_probability", "p_0_lower", "p_0_upper", "log_density"} <= set(table.columns)
    # Output rows keep the input file's row numbers when --dropna drops some.
    gappy = tmp_path / "gappy.csv"
    gappy.write_text("waiting,eruptions\n54,2.0\n,3.0\n80,4.3\n")
    argv = ["--quiet", "predict", str(fit_dir), str(gappy), "--dropna", "--out"]
    assert main([*argv, str(tmp_path / "gappy_pred.csv")]) == 0
    table = pd.read_csv(tmp_path / "gappy_pred.csv")
    assert list(table["row"]) == [0, 2] and list(table["label"]) == [0, 1]
    # Results directories get ordinary permissions (not mkdtemp's private 0700).
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(fit_dir.stat().st_mode) == 0o777 & ~umask

    assert main(["--quiet", "report", str(fit_dir), "--force"]) == 0
    assert "<html" in (fit_dir / "report.html").read_text().lower()
    assert main(["--quiet", "report", str(fit_dir), "--format", "md"]) == 0
    assert (fit_dir / "report.md").stat().st_size > 0

    em_dir = tmp_path / "em_only"
    argv = ["--quiet", "fit", str(data), "--columns", "eruptions,waiting", "-k", "2"]
    assert main([*argv, "--method", "em", "--n-init", "3", "--out", str(em_dir)]) == 0
    em_pred = tmp_path / "em_pred.csv"
    assert main(["--quiet", "predict", str(em_dir), str(new), "--out", str(em_pred)]) == 0
    assert list(pd.read_csv(em_pred)["label"]) == [0, 1]

    cmp_dir = tmp_path / "cmp"
    argv = ["--quiet", "compare", str(data), "--columns", "eruptions,waiting", "-k", "1:3"]
    assert main([*argv, "--covariance", "full", "--method", "em", "--out", str(cmp_dir)]) == 0
    table = pd.read_csv(cmp_dir / "comparison.csv")
    assert len(table) == 3 and (cmp_dir / "comparison.png").stat().st_size > 0
    capsys.readouterr()


@pytest.mark.parametrize(
    ("setup", "argv_tail", "message"),
    [
        ("none", ["-k", "2"], "does not exist"),
        ("csv", ["--columns", "nope", "-k", "2"], "no column"),
        ("text", ["-k", "2"], "not numeric"),
        ("nan", ["-k", "2"], "missing values"),
        ("csv", ["-k", "0"], "at least 1"),
        ("existing", ["-k", "2"], "already exists"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, setup, argv_tail, message):
    import pandas as pd

    data = tmp_path / "data.csv"
    out = tmp_path / "out"
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [0.5, 0.1, 0.7, 0.2]})
    if setup == "text":
        frame["c"] = list("wxyz")
    if setup == "nan":
        frame.loc[2, "a"] = None
    if setup != "none":
        frame.to_csv(data, index=False)
    if setup == "existing":
        out.mkdir()
        (out / "em.json").write_text("{}")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bayesgmm",
            "fit",
            str(data),
            *argv_tail,
            "--method",
            "em",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert err.startswith("bayesgmm: error:") and len(err.splitlines()) == 1, err
    assert message in err
    assert "Traceback" not in err
    if setup == "existing":
        assert (out / "em.json").read_text() == "{}"  # nothing lost
