"""The command line: help, version, the demo, and one-line errors."""

from __future__ import annotations

import subprocess
import sys

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
    assert (tmp_path / "posterior.nc").exists()


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
