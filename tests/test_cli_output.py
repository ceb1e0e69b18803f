"""What the command line prints: one EM fit per model everywhere, each verdict once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

from bayesgmm import load_faithful

ROOT = Path(__file__).resolve().parent.parent


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    proc = subprocess.run(
        [sys.executable, "-m", "bayesgmm", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _verdicts(text: str) -> list[str]:
    return re.findall(r"All convergence checks passed|Convergence checks failed", text)


def test_demo_shows_one_em_fit_per_model_and_each_verdict_once(tmp_path):
    out = tmp_path / "demo"
    proc = _cli(
        "demo", "--max-components", "3", "--n-init", "4", "--draws", "150", "--chains", "2",
        "--out", str(out),
    )  # fmt: skip
    # The printed EM table is the comparison's: the same BIC for every K in both.
    saved = pd.read_csv(out / "comparison.csv").set_index("n_components")
    table = proc.stdout.split("EM, one fit per K")[1].split("BIC picks")[0]
    printed = dict(re.findall(r"^(\d)\s+\S+\s+\d+\s+(\S+)", table, flags=re.M))
    assert sorted(printed) == ["1", "2", "3"]
    for k, bic in printed.items():
        assert f"{saved.loc[int(k), 'bic (lower better)']:.4g}" == bic
    # The EM start of the reported posterior is described with the demo's own n_init, and the
    # report says the same; there is no second EM table with other settings.
    assert "best of 4 starts" in proc.stdout
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "best of 4 initialisation(s)" in report
    assert proc.stdout.count("EM, one fit per K") == 1
    # The posterior's verdict reaches the reader once (stdout), not again in the log.
    assert len(_verdicts(proc.stdout)) == 1
    assert _verdicts(proc.stderr) == []


def test_fit_prints_the_verdict_once(tmp_path):
    data = tmp_path / "faithful.csv"
    load_faithful().to_csv(data, index=False)
    proc = _cli(
        "fit", str(data), "-k", "2", "--draws", "150", "--tune", "150", "--chains", "2",
        "--out", str(tmp_path / "fit"),
    )  # fmt: skip
    assert len(_verdicts(proc.stdout + proc.stderr)) == 1, proc.stdout + proc.stderr
