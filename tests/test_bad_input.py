"""Bad input through the Python API and the command line: every case is refused (or repaired)
with a message that names the problem, and no case loses a file.

Each case asserts the exception type or exit code *and* a phrase of the message. The command
line runs in-process (``main``) where that is enough and in a subprocess where the case needs
a real process (concurrent writers, stderr of warnings, imports). EM (``--method em``) is used
wherever the Bayesian fit is not the point.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayesgmm import BayesGaussianMixture, EMGaussianMixture
from bayesgmm.cli import MARKER, main
from bayesgmm.datasets import read_data

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_cli(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bayesgmm", *argv],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        env=_env(),
    )


def cli(capsys, *argv: str) -> tuple[int, str]:
    """Run the command line in-process; return the exit code and stderr."""
    code = main(list(argv))
    return code, capsys.readouterr().err


def one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.startswith("bayesgmm: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def tree_of(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` with its bytes, to prove nothing changed."""
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    a = rng.normal([0.0, 0.0], 0.5, size=(20, 2))
    b = rng.normal([4.0, 3.0], 0.5, size=(20, 2))
    return pd.DataFrame(np.vstack([a, b]), columns=["a", "b"])


@pytest.fixture
def csv(tmp_path, small) -> Path:
    path = tmp_path / "data.csv"
    small.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def em_results(tmp_path_factory, small) -> Path:
    """A results directory written by ``bayesgmm fit --method em``."""
    root = tmp_path_factory.mktemp("em_results")
    small.to_csv(root / "data.csv", index=False)
    argv = ["--quiet", "fit", str(root / "data.csv"), "-k", "2", "--method", "em"]
    assert main([*argv, "--n-init", "1", "--out", str(root / "fit")]) == 0
    return root / "fit"


# --------------------------------------------------------------------------- read_data: refused


def _write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


TEXT_CASES = [
    ("empty.csv", "", ValueError, "is empty"),
    ("header.csv", "a,b\n", ValueError, "no data rows"),
    ("blank.csv", "\n\n  \n", ValueError, "only blank lines"),
    ("binary.csv", bytes(range(256)) * 4, ValueError, "binary data"),
    ("text.csv", "a,b\n1,x\n2,y\n", ValueError, "'b' (e.g. 'x')"),
    ("dates.csv", "when,x\n2024-01-01,1\n2024-01-02,2\n", ValueError, "dates/times"),
    ("mixed.csv", "a;b\n1,5;2.5\n2;3\n", ValueError, "data row 1: '1,5'"),
    ("ragged.csv", "a,b\n1,2\n3,4,5\n", ValueError, "same number of columns"),
    ("gaps.csv", "a,b\n1,2\n,4\n5,6\n", ValueError, "data rows 2"),
    ("data.xlsx", "not really", ValueError, "unknown data format '.xlsx'"),
    ("bad.npy", b"\x93NUMPY this is not an array", ValueError, "not a readable .npy"),
    ("bad.parquet", b"PAR1 truncated", ValueError, "not a readable Parquet"),
]


@pytest.mark.parametrize(("name", "content", "exc", "message"), TEXT_CASES)
def test_read_data_refuses_and_names_file(tmp_path, name, content, exc, message):
    path = _write(tmp_path / name, content)
    with pytest.raises(exc) as info:
        read_data(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


NPY_CASES = [
    ("complex", np.array([1 + 2j, 3 - 1j]), TypeError, "complex numbers"),
    ("strings", np.array(["a", "b"]), TypeError, "not numbers"),
    ("dates", np.array(["2024-01-01"], dtype="datetime64[D]"), TypeError, "dates/times"),
    ("cube", np.zeros((2, 2, 2)), ValueError, "1-D or 2-D"),
    ("no_rows", np.zeros((0, 3)), ValueError, "no rows"),
]


@pytest.mark.parametrize(("name", "array", "exc", "message"), NPY_CASES)
def test_read_data_refuses_npy(tmp_path, name, array, exc, message):
    path = tmp_path / f"{name}.npy"
    np.save(path, array)
    with pytest.raises(exc, match=message):
        read_data(path)


def test_read_data_never_unpickles(tmp_path):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(TypeError, match="never unpickles"):
        read_data(path)


def test_read_data_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_data(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="is a directory"):
        read_data(tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "exc", "message"),
    [
        ({"columns": ["zz"]}, ValueError, "no column(s) 'zz'"),
        ({"sep": ",", "decimal": ","}, ValueError, "both ','"),
        ({"decimal": "x"}, ValueError, "decimal='x'"),
        ({"sep": "ab"}, ValueError, "one character"),
    ],
)
def test_read_data_bad_options(csv, kwargs, exc, message):
    with pytest.raises(exc) as info:
        read_data(csv, **kwargs)
    assert message in str(info.value)


def test_a_wrong_separator_never_cuts_rows_short(tmp_path):
    path = _write(tmp_path / "eu.csv", "a;b\n1,5;2,5\n3;4\n")
    with pytest.raises(ValueError, match="line 1 has 1 field"):
        read_data(path, sep=",")
    long = _write(tmp_path / "long.csv", "a,b\n" + "1,2\n" * 300 + "3,4,5\n")
    with pytest.raises(ValueError, match="Expected 2 fields in line 302"):
        read_data(long)


def test_read_data_all_rows_missing(tmp_path):
    path = _write(tmp_path / "holes.csv", "a,b\n1,\n,2\n")
    with pytest.raises(ValueError, match="every row has missing values"):
        read_data(path, dropna=True)


def test_read_data_parquet_dates(tmp_path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "t.parquet"
    pd.DataFrame({"t": pd.date_range("2020", periods=3), "x": [1.0, 2.0, 3.0]}).to_parquet(path)
    with pytest.raises(ValueError, match="'t' holds dates/times"):
        read_data(path)


# --------------------------------------------------------------------------- read_data: repaired


def test_semicolon_and_decimal_comma_are_read_as_numbers(tmp_path):
    path = _write(tmp_path / "eu.csv", "Länge;Breite\n1,5;2,25\n2,5;3,75\n4;5\n")
    frame, _ = read_data(path)
    assert frame.columns.tolist() == ["Länge", "Breite"]
    np.testing.assert_array_equal(frame.to_numpy(), [[1.5, 2.25], [2.5, 3.75], [4.0, 5.0]])
    notes = " ".join(frame.attrs["notes"])
    assert "semicolon" in notes and "decimal comma" in notes


def test_one_column_with_decimal_commas(tmp_path):
    frame, _ = read_data(_write(tmp_path / "one.csv", "x\n1,5\n2,25\n3\n"))
    assert frame["x"].tolist() == [1.5, 2.25, 3.0]


@pytest.mark.parametrize(
    ("name", "content"),
    [("tab.csv", "a\tb\n1.5\t2\n3\t4\n"), ("pipe.txt", "a|b\n1.5|2\n3|4\n")],
)
def test_separator_detected(tmp_path, name, content):
    frame, _ = read_data(_write(tmp_path / name, content))
    np.testing.assert_array_equal(frame.to_numpy(), [[1.5, 2.0], [3.0, 4.0]])


def test_given_separator_and_decimal_are_used(tmp_path):
    path = _write(tmp_path / "given.txt", "a b\n1,5 2\n3 4\n")
    frame, _ = read_data(path, sep=" ", decimal=",")
    np.testing.assert_array_equal(frame.to_numpy(), [[1.5, 2.0], [3.0, 4.0]])


def test_pandas_index_column_is_dropped_with_a_note(tmp_path, small):
    path = tmp_path / "indexed.csv"
    small.to_csv(path)  # writes the row numbers as a first, unnamed column
    frame, _ = read_data(path)
    assert frame.columns.tolist() == ["a", "b"]
    assert "row labels" in frame.attrs["notes"][0]


def test_headerless_file_keeps_its_first_row(tmp_path):
    frame, _ = read_data(_write(tmp_path / "bare.csv", "1,2\n3,4\n"))
    assert frame.columns.tolist() == ["x0", "x1"] and len(frame) == 2
    assert "not column names" in frame.attrs["notes"][0]


def test_windows_encoding_is_read(tmp_path):
    path = _write(tmp_path / "cp.csv", "Länge;b\n1,5;2\n".encode("cp1252"))
    frame, _ = read_data(path)
    assert frame.columns.tolist() == ["Länge", "b"] and frame.iloc[0, 0] == 1.5


def test_utf8_bom_is_not_part_of_the_first_name(tmp_path):
    frame, _ = read_data(_write(tmp_path / "bom.csv", "\ufeffa,b\n1,2\n".encode()))
    assert frame.columns.tolist() == ["a", "b"]


# --------------------------------------------------------------------------- estimators (API)


X20 = np.random.default_rng(0).normal(size=(20, 2))


def _poke(value: float) -> np.ndarray:
    X = X20.copy()
    X[3, 1] = value
    return X


@pytest.mark.parametrize(
    ("make", "exc", "message"),
    [
        (lambda: EMGaussianMixture(1).fit(X20 + 1j), ValueError, "complex numbers"),
        (
            lambda: EMGaussianMixture(1).fit(
                pd.DataFrame({"t": pd.date_range("2020", periods=20), "x": X20[:, 0]})
            ),
            TypeError,
            "'t' hold dates/times",
        ),
        (
            lambda: EMGaussianMixture(1).fit(pd.DataFrame({"a": list("abcdefghij")})),
            TypeError,
            "numeric",
        ),
        (lambda: EMGaussianMixture(1).fit(_poke(np.nan)), ValueError, "NaN in row 3"),
        (lambda: EMGaussianMixture(1).fit(_poke(np.inf)), ValueError, "inf"),
        (lambda: EMGaussianMixture(30).fit(X20), ValueError, "exceeds n_samples=20"),
        (lambda: EMGaussianMixture(0).fit(X20), ValueError, "at least 1"),
        (lambda: EMGaussianMixture(2.5).fit(X20), TypeError, "must be an integer"),
        (lambda: EMGaussianMixture(1, covariance_type="ful").fit(X20), ValueError, "'ful'"),
        (lambda: EMGaussianMixture(1).fit(X20).predict(X20[:, :1]), ValueError, "features"),
        (lambda: BayesGaussianMixture(0).fit(X20), ValueError, "at least 1"),
        (
            lambda: BayesGaussianMixture(1).fit(_poke(np.nan)),
            ValueError,
            "NaN",
        ),
    ],
)
def test_api_refuses(make, exc, message):
    with pytest.raises(exc) as info:
        make()
    assert message in str(info.value)
    assert len(str(info.value).splitlines()) == 1  # no array dumped into the message


# --------------------------------------------------------------------------- results files


def _netcdf(path: Path, **attrs) -> Path:
    import xarray as xr

    xr.DataTree(xr.Dataset({"v": ("x", np.arange(50.0))}, attrs=attrs)).to_netcdf(
        path, engine="h5netcdf"
    )
    return path


@pytest.mark.parametrize(
    ("kind", "exc", "message"),
    [
        ("missing", FileNotFoundError, "does not exist"),
        ("directory", ValueError, "is a directory"),
        ("empty", ValueError, "is empty"),
        ("text", ValueError, "not a netCDF-4 file"),
        ("foreign", ValueError, "not written by BayesGaussianMixture.save"),
        ("truncated", ValueError, "truncated or damaged"),
        ("incomplete", ValueError, "incomplete or damaged bayesgmm result"),
    ],
)
def test_load_names_the_path_and_the_problem(tmp_path, kind, exc, message):
    path = tmp_path / "posterior.nc"
    if kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("posterior means: 1, 2, 3\n")
    elif kind == "foreign":
        _netcdf(path)
    elif kind == "truncated":
        whole = _netcdf(tmp_path / "whole.nc", estimator="BayesGaussianMixture").read_bytes()
        path.write_bytes(whole[: len(whole) // 2])
    elif kind == "incomplete":
        _netcdf(path, estimator="BayesGaussianMixture", params="{}")
    with pytest.raises(exc) as info:
        BayesGaussianMixture.load(path)
    text = str(info.value)
    assert message in text and str(path) in text and len(text.splitlines()) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"weights": [0.5, ', "damaged or truncated"),
        ("[1, 2, 3]", "not a bayesgmm em.json"),
        ('{"weights": [1.0]}', "not a bayesgmm em.json"),
        (b"\xff\xfe\x00garbage", "not text"),
    ],
)
def test_predict_with_a_damaged_em_json(tmp_path, capsys, em_results, csv, content, message):
    broken = tmp_path / "broken"
    broken.mkdir()
    _write(broken / "em.json", content)
    code, err = cli(capsys, "predict", str(broken), str(csv), "--out", str(tmp_path / "p.csv"))
    line = one_error_line(err)
    assert code == 2 and message in line and str(broken / "em.json") in line


def test_predict_with_a_truncated_posterior(tmp_path, capsys, csv):
    broken = tmp_path / "broken"
    broken.mkdir()
    whole = _netcdf(tmp_path / "whole.nc", estimator="BayesGaussianMixture").read_bytes()
    (broken / "posterior.nc").write_bytes(whole[: len(whole) // 2])
    code, err = cli(capsys, "predict", str(broken), str(csv), "--out", str(tmp_path / "p.csv"))
    line = one_error_line(err)
    assert code == 2 and "truncated or damaged" in line and "posterior.nc" in line


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: root / "nowhere", "does not exist"),
        (lambda root: (root / "empty").mkdir() or root / "empty", "holds no posterior.nc"),
        (lambda root: _write(root / "file.txt", "x"), "is a file, not a results directory"),
    ],
)
def test_predict_needs_a_results_directory(tmp_path, capsys, csv, make, message):
    src = make(tmp_path)
    code, err = cli(capsys, "predict", str(src), str(csv), "--out", str(tmp_path / "p.csv"))
    assert code == 2 and message in one_error_line(err)


def test_predict_never_overwrites_the_input_or_the_results(tmp_path, capsys, em_results):
    data = tmp_path / "new.csv"
    pd.DataFrame({"a": [0.0, 4.0], "b": [0.0, 3.0]}).to_csv(data, index=False)
    before = data.read_bytes()
    code, err = cli(capsys, "predict", str(em_results), str(data), "--out", str(data), "--force")
    assert code == 2 and "is the input file" in one_error_line(err)
    assert data.read_bytes() == before
    target = em_results / "em.json"
    kept = target.read_bytes()
    argv = ["predict", str(em_results), str(data), "--out", str(target), "--force"]
    code, err = cli(capsys, *argv)
    assert code == 2 and "a file of the results" in one_error_line(err)
    assert target.read_bytes() == kept


def test_predict_new_data_without_the_fitted_columns(tmp_path, capsys, em_results):
    data = _write(tmp_path / "other.csv", "x,y\n1,2\n")
    code, err = cli(capsys, "predict", str(em_results), str(data), "--out", str(tmp_path / "p"))
    assert code == 2 and "no column(s) 'a', 'b'" in one_error_line(err)


def test_report_needs_a_posterior(tmp_path, capsys, em_results):
    code, err = cli(capsys, "report", str(em_results))
    assert code == 2 and "holds no posterior.nc" in one_error_line(err)
    code, err = cli(capsys, "report", str(tmp_path / "nowhere"))
    assert code == 2 and "does not exist" in one_error_line(err)


# --------------------------------------------------------------------------- CLI: data files


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", "", "is empty"),
        ("header.csv", "a,b\n", "no data rows"),
        ("binary.csv", bytes(range(256)) * 4, "binary data"),
        ("dates.csv", "when,x\n2024-01-01,1\n2024-01-02,2\n", "dates/times"),
        ("text.csv", "a,b\n1,x\n2,y\n", "not numeric"),
        ("ragged.csv", "a,b\n1,2\n3,4,5\n", "same number of columns"),
    ],
)
def test_cli_refuses_bad_data_files(tmp_path, capsys, name, content, message):
    path = _write(tmp_path / name, content)
    code, err = cli(capsys, "fit", str(path), "--method", "em", "--out", str(tmp_path / "o"))
    line = one_error_line(err)
    assert code == 2 and message in line and str(path) in line
    assert not (tmp_path / "o").exists()


def test_cli_refuses_a_directory_and_a_missing_file(tmp_path, capsys):
    for data, message in ((tmp_path, "is a directory"), (tmp_path / "no.csv", "does not exist")):
        code, err = cli(capsys, "fit", str(data), "--out", str(tmp_path / "o"))
        assert code == 2 and message in one_error_line(err)


def test_cli_refuses_complex_npy(tmp_path, capsys):
    path = tmp_path / "z.npy"
    np.save(path, np.array([[1 + 1j, 2.0], [3.0, 4 - 1j]]))
    code, err = cli(capsys, "fit", str(path), "--method", "em", "--out", str(tmp_path / "o"))
    assert code == 2 and "complex numbers" in one_error_line(err)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-k", "5:1"], "empty range (5 > 1)"),
        (["-k", "0"], "at least 1"),
        (["-k", "two"], "not a number or a range"),
        (["-k", "1:3"], "fit takes one -k"),
        (["--n-init", "0"], "--n-init=0"),
        (["--decimal", ";"], "--decimal ';'"),
        (["--sep", "::"], "--sep '::'"),
    ],
)
def test_cli_refuses_bad_arguments(tmp_path, capsys, csv, argv, message):
    code, err = cli(capsys, "fit", str(csv), *argv, "--method", "em", "--out", str(tmp_path / "o"))
    assert code == 2 and message in one_error_line(err)


def test_cli_compare_refuses_reversed_k_and_unknown_covariance(tmp_path, capsys, csv):
    out = str(tmp_path / "o")
    code, err = cli(capsys, "compare", str(csv), "-k", "5:1", "--method", "em", "--out", out)
    assert code == 2 and "empty range" in one_error_line(err)
    argv = ["compare", str(csv), "--covariance", "full,ful", "--method", "em", "--out", out]
    code, err = cli(capsys, *argv)
    assert code == 2 and "'ful'" in one_error_line(err)


def test_cli_reads_a_european_csv_correctly(tmp_path, capsys, small):
    path = tmp_path / "eu.csv"
    small.to_csv(path, sep=";", decimal=",", index=False)
    assert "," in path.read_text()
    out = tmp_path / "o"
    code, err = cli(capsys, "fit", str(path), "-k", "2", "--method", "em", "--out", str(out))
    assert code == 0 and "decimal comma" in err
    em = json.loads((out / "em.json").read_text())
    assert em["features"] == ["a", "b"]
    means = np.sort(np.asarray(em["means"])[:, 0])
    truth = np.sort(small.groupby(small["a"] > 2)["a"].mean().to_numpy())
    np.testing.assert_allclose(means, truth, atol=1e-6)


def test_cli_drops_the_pandas_index_column(tmp_path, capsys, small):
    path = tmp_path / "indexed.csv"
    small.to_csv(path)
    out = tmp_path / "o"
    code, err = cli(capsys, "fit", str(path), "-k", "2", "--method", "em", "--out", str(out))
    assert code == 0 and "row labels" in err
    assert json.loads((out / "em.json").read_text())["features"] == ["a", "b"]


def test_cli_never_writes_nan_results_or_floods_stderr(tmp_path, small):
    path = tmp_path / "huge.csv"
    (small * 1e300).to_csv(path, index=False)
    out = tmp_path / "o"
    proc = run_cli("fit", str(path), "-k", "2", "--method", "em", "--out", str(out))
    assert "Traceback" not in proc.stderr and "panicked" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 6, proc.stderr
    if proc.returncode == 0:  # EM works in any units
        em = json.loads((out / "em.json").read_text())
        assert np.isfinite(np.asarray(em["means"], dtype=float)).all()
    else:
        assert proc.returncode == 2 and "Rescale" in one_error_line(proc.stderr)
        assert not out.exists()


# --------------------------------------------------------------------------- CLI: files are safe


def test_force_never_deletes_a_foreign_directory(tmp_path, capsys, csv):
    study = tmp_path / "study"
    study.mkdir()
    (study / "thesis.tex").write_text("chapter 1")
    before = tree_of(study)
    argv = ["fit", str(csv), "--method", "em", "--out", str(study), "--force"]
    code, err = cli(capsys, *argv)
    assert code == 2 and "did not write (thesis.tex)" in one_error_line(err)
    assert tree_of(study) == before


def test_out_holding_the_input_is_refused_even_with_force(tmp_path, capsys, small):
    study = tmp_path / "study"
    study.mkdir()
    data = study / "data.csv"
    small.to_csv(data, index=False)
    (study / "notes.txt").write_text("keep me")
    before = tree_of(tmp_path)
    for out in (study, tmp_path):  # the input's directory and one of its parents
        argv = ["fit", str(data), "-k", "2", "--method", "em", "--out", str(out), "--force"]
        code, err = cli(capsys, *argv)
        assert code == 2 and "holds the input" in one_error_line(err)
    assert tree_of(tmp_path) == before


def test_out_holding_the_input_is_refused_for_our_own_results(tmp_path, capsys, em_results):
    data = em_results / "membership_em.csv"
    argv = ["fit", str(data), "--method", "em", "--out", str(em_results), "--force"]
    code, err = cli(capsys, *argv)
    assert code == 2 and "holds the input" in one_error_line(err)
    assert data.is_file()


def test_segment_out_holding_the_image_is_refused(tmp_path, capsys):
    image = _write(tmp_path / "photo.png", b"\x89PNG not decoded before the check")
    argv = ["segment", str(image), "-k", "2", "--out", str(tmp_path), "--force"]
    code, err = cli(capsys, *argv)
    assert code == 2 and "holds the input" in one_error_line(err)
    assert image.is_file()


def test_segment_truncated_image(tmp_path, capsys):
    from PIL import Image

    whole = tmp_path / "whole.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(whole)
    cut = _write(tmp_path / "cut.png", whole.read_bytes()[:2000])
    code, err = cli(capsys, "segment", str(cut), "-k", "2", "--out", str(tmp_path / "o"))
    line = one_error_line(err)
    assert code == 2 and "damaged or truncated" in line and str(cut) in line


def test_predict_out_that_is_a_directory_is_refused(tmp_path, capsys, em_results, csv):
    (tmp_path / "preds").mkdir()
    argv = ["predict", str(em_results), str(csv), "--out", str(tmp_path / "preds"), "--force"]
    code, err = cli(capsys, *argv)
    assert code == 2 and "is a directory" in one_error_line(err)
    assert (tmp_path / "preds").is_dir()


def test_out_dot_is_refused_before_any_work(tmp_path, csv):
    work = tmp_path / "work"
    work.mkdir()
    proc = run_cli("fit", str(csv), "--method", "em", "--out", ".", "--force", cwd=work)
    assert proc.returncode == 2 and "current directory" in one_error_line(proc.stderr)
    assert list(work.iterdir()) == []  # no hidden temporary directory either


def test_out_that_is_a_file_is_refused(tmp_path, capsys, csv):
    target = _write(tmp_path / "results", "mine")
    argv = ["fit", str(csv), "--method", "em", "--out", str(target), "--force"]
    code, err = cli(capsys, *argv)
    assert code == 2 and "is a file" in one_error_line(err)
    assert target.read_text() == "mine"


def test_own_results_need_force_and_extra_files_are_protected(tmp_path, capsys, csv):
    out = tmp_path / "o"
    argv = ["fit", str(csv), "-k", "2", "--method", "em", "--n-init", "1", "--out", str(out)]
    assert cli(capsys, *argv)[0] == 0
    marker = json.loads((out / MARKER).read_text())
    assert marker["written_by"] == "bayesgmm" and "em.json" in marker["files"]
    code, err = cli(capsys, *argv)
    assert code == 2 and "pass --force" in one_error_line(err)
    (out / "my-notes.txt").write_text("mine")
    code, err = cli(capsys, *argv, "--force")
    assert code == 2 and "my-notes.txt" in one_error_line(err)
    assert (out / "my-notes.txt").read_text() == "mine"
    (out / "my-notes.txt").unlink()
    assert cli(capsys, *argv, "--force")[0] == 0
    assert json.loads((out / MARKER).read_text())["run_id"] != marker["run_id"]


def test_demo_never_replaces_a_foreign_directory(tmp_path, capsys):
    study = tmp_path / "mystudy"
    study.mkdir()
    (study / "thesis.tex").write_text("chapter 1")
    code, err = cli(capsys, "demo", "--draws", "10", "--out", str(study))
    assert code == 2 and "did not write (thesis.tex)" in one_error_line(err)
    assert (study / "thesis.tex").read_text() == "chapter 1"


def test_stale_temporary_directories_are_removed(tmp_path, capsys, csv):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], **_capture())
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".o.bayesgmm-{dead_pid}-abc.tmp"
    stale.mkdir()
    (stale / MARKER).write_text(json.dumps({"written_by": "bayesgmm"}))
    live = tmp_path / f".o.bayesgmm-{os.getpid()}-def.tmp"  # a running process: kept
    live.mkdir()
    (live / MARKER).write_text(json.dumps({"written_by": "bayesgmm"}))
    foreign = tmp_path / f".o.bayesgmm-{dead_pid}-ghi.tmp"  # no marker: not ours, kept
    foreign.mkdir()
    argv = ["fit", str(csv), "-k", "2", "--method", "em", "--n-init", "1", "--out"]
    assert cli(capsys, *argv, str(tmp_path / "o"))[0] == 0
    assert not stale.exists() and live.exists() and foreign.exists()


def test_results_set_aside_by_a_killed_swap_are_put_back(tmp_path, capsys, csv):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], **_capture())
    argv = ["fit", str(csv), "-k", "2", "--method", "em", "--n-init", "1", "--out"]
    assert cli(capsys, *argv, str(tmp_path / "res"))[0] == 0
    aside = tmp_path / f".res.bayesgmm-{int(dead.stdout)}-old.tmp"
    (tmp_path / "res").rename(aside)  # as if killed between the two renames
    assert cli(capsys, *argv, str(tmp_path / "other"))[0] == 0
    assert (tmp_path / "res" / "em.json").is_file() and not aside.exists()


def _capture() -> dict:
    return {"capture_output": True, "text": True, "check": True}


def test_concurrent_writers_one_wins(tmp_path, small):
    data = tmp_path / "data.csv"
    pd.concat([small] * 50, ignore_index=True).to_csv(data, index=False)
    out = tmp_path / "shared"
    command = [sys.executable, "-m", "bayesgmm", "fit", str(data), "-k", "2", "--method", "em"]
    command += ["--n-init", "3"]
    procs = [
        subprocess.Popen(
            [*command, "--seed", str(seed), "--out", str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for seed in (1, 2)
    ]
    results = [(p.wait(), p.stdout.read(), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    winner = next(r for r in results if r[0] == 0)
    loser = next(r for r in results if r[0] == 2)
    assert "results written" in winner[1]
    line = one_error_line(loser[2])
    assert "another bayesgmm run wrote" in line or "already exists" in line
    seed = json.loads((out / "run.json").read_text())["arguments"]["seed"]
    assert f"--seed {seed}" in " ".join(procs[[1, 2].index(seed)].args)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_mathtext_names_in_the_report(faithful_fit, tmp_path):
    """Column names with ``$`` reach every figure as plain text (the report renders)."""
    from bayesgmm.plots import _text
    from bayesgmm.report import write_report

    assert _text("cost $x^$") == r"cost \$x^\$"
    tree = faithful_fit.idata_.copy()
    names = ["cost $x^$", "w_$a"]
    renamed = tree.map_over_datasets(
        lambda ds: ds.assign_coords(
            {d: names for d in ("feature", "feature_bis") if d in ds.coords}
        )
    )
    renamed.attrs = tree.attrs
    bgm = BayesGaussianMixture._from_tree(renamed)
    path = write_report(tmp_path / "report.html", bgm=bgm, embed=True)
    assert "cost $x^$" in path.read_text()


# --------------------------------------------------------------------------- CLI: reports


def test_cli_fit_with_mathtext_column_names(tmp_path, capsys, small):
    data = tmp_path / "prices.csv"
    small.set_axis(["cost $x^$", "w_$a"], axis=1).to_csv(data, index=False)
    out = tmp_path / "o"
    fast = ["--draws", "60", "--tune", "60", "--chains", "2", "--n-init", "1"]
    code, err = cli(capsys, "--quiet", "fit", str(data), "-k", "2", *fast, "--out", str(out))
    assert code == 0, err
    assert "cost $x^$" in (out / "report.html").read_text()
    assert len(list((out / "report_figures").glob("*.png"))) >= 5


def test_a_report_failure_keeps_the_results(tmp_path, capsys, monkeypatch, small):
    import bayesgmm.report

    data = tmp_path / "prices.csv"
    small.set_axis(["cost $x^$", "w_$a"], axis=1).to_csv(data, index=False)
    out = tmp_path / "o"
    fast = ["--draws", "60", "--tune", "60", "--chains", "2", "--n-init", "1"]

    def broken(*args, **kwargs):
        raise RuntimeError("disk quota exceeded")

    monkeypatch.setattr(bayesgmm.report, "write_report", broken)
    code, err = cli(capsys, "--quiet", "fit", str(data), "-k", "2", *fast, "--out", str(out))
    assert code == 1 and "the report failed (RuntimeError: disk quota exceeded)" in err
    assert "bayesgmm report" in err
    names = {p.name for p in out.iterdir()}
    assert {"posterior.nc", "em.json", "membership.csv"} <= names
    assert "report.html" not in names
    monkeypatch.undo()
    # The saved posterior renders (mathtext-like names included) and the report is recorded.
    assert cli(capsys, "--quiet", "report", str(out))[0] == 0
    assert "report.html" in json.loads((out / MARKER).read_text())["files"]
    argv = ["--quiet", "fit", str(data), "-k", "2", "--method", "em", "--force", "--out"]
    assert cli(capsys, *argv, str(out))[0] == 0  # still ours: replaceable


def test_a_segmentation_report_failure_keeps_the_maps(tmp_path, capsys, monkeypatch):
    from PIL import Image

    import bayesgmm.report
    from bayesgmm import make_regions_image

    image, _ = make_regions_image((48, 48), random_state=0)
    png = tmp_path / "regions.png"
    Image.fromarray(np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)).save(png)

    def broken(*args, **kwargs):
        raise RuntimeError("disk quota exceeded")

    monkeypatch.setattr(bayesgmm.report, "write_report", broken)
    out = tmp_path / "seg"
    code, err = cli(capsys, "--quiet", "segment", str(png), "-k", "3", "--out", str(out))
    assert code == 1 and "the report failed (RuntimeError: disk quota exceeded)" in err
    names = {p.name for p in out.iterdir()}
    assert {"maps.npz", "segments.csv", "labels.png", "segmentation.json"} <= names
    assert "report.html" not in names


def test_a_figure_failure_keeps_the_comparison(tmp_path, capsys, monkeypatch, csv):
    from bayesgmm.selection import ComparisonResult

    def broken(self, *args, **kwargs):
        raise ValueError("bad font")

    monkeypatch.setattr(ComparisonResult, "plot", broken)
    out = tmp_path / "cmp"
    argv = ["compare", str(csv), "-k", "1:2", "--covariance", "full", "--method", "em"]
    code, err = cli(capsys, "--quiet", *argv, "--n-init", "1", "--out", str(out))
    assert code == 1 and "comparison.png failed (ValueError: bad font)" in err
    assert (out / "comparison.csv").is_file() and not (out / "comparison.png").exists()


# --------------------------------------------------------------------------- CLI: fast answers


HEAVY = ("pymc", "arviz", "arviz_base", "xarray", "nutpie", "matplotlib", "pytensor")

_PROBE = """
import sys
from bayesgmm.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(code, ",".join(m for m in {heavy!r} if m in sys.modules))
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["--version"],
        ["fit", "missing.csv", "--out", "o"],
        ["compare", "missing.csv", "--out", "o"],
        ["segment", "missing.png", "-k", "2", "--out", "o"],
        ["fit", "TEXT", "--out", "o"],
        ["compare", "TEXT", "--out", "o"],
        ["fit", "TEXT", "-k", "5:1", "--out", "o"],
    ],
)
def test_errors_answer_before_heavy_imports(tmp_path, argv):
    text = _write(tmp_path / "text.csv", "a,b\n1,x\n")
    argv = [str(text) if a == "TEXT" else a for a in argv]
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE.format(heavy=HEAVY), *argv],
        **{**_capture(), "check": False},
        cwd=tmp_path,
        env=_env(),
    )
    code, _, loaded = proc.stdout.strip().splitlines()[-1].partition(" ")
    assert code in ("0", "2"), proc.stdout + proc.stderr
    assert loaded == "", f"{argv} imported {loaded}"
    if code == "2":
        one_error_line(proc.stderr)


class _Panic(BaseException):
    """Like pyo3's PanicException (a Rust panic), which is not an Exception."""


@pytest.mark.parametrize(
    ("target", "error", "message"),
    [
        (
            "bayesgmm.bayes.BayesGaussianMixture.fit",
            RuntimeError("All initialization points failed\n  0: backtrace frame\n  1: frame"),
            "rescale the columns",
        ),
        ("bayesgmm.em.EMGaussianMixture.fit", _Panic("called unwrap on None\nframe 0"), "_Panic"),
    ],
)
def test_sampler_failures_are_one_line(tmp_path, capsys, monkeypatch, csv, target, error, message):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(target, fail)
    out = tmp_path / "o"
    code, err = cli(capsys, "fit", str(csv), "--method", "both", "--out", str(out))
    line = one_error_line(err)
    assert code == 2 and message in line and "frame" not in err
    assert not out.exists()
