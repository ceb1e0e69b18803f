"""The ``bayesgmm`` command line. The only module that prints.

Errors are one readable line on stderr with a non-zero exit code; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ._version import __version__

EXIT_PARTIAL = 1  # results written, the report or a figure failed
EXIT_ERROR = 2


class FitFailedError(RuntimeError):
    """A fit failed for a reason the message explains (raised by the command line)."""


class _LazyModule:
    """A module imported on first attribute access.

    ``bayesgmm --help``, ``--version`` and argument errors answer without importing NumPy and
    pandas; every command's real work reaches them through these names.
    """

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str):
        import importlib

        return getattr(importlib.import_module(self._name), attr)


np = _LazyModule("numpy")
pd = _LazyModule("pandas")


def _print_table(frame: pd.DataFrame) -> None:
    print(frame.to_string(float_format=lambda v: f"{v:.4g}"))


def cmd_demo(args: argparse.Namespace) -> int:
    """Fit EM and NUTS on the shipped Old Faithful data for K = 1..max; print and report them.

    One grid of fits (:func:`bayesgmm.selection.compare_models`) gives every number: the EM
    table printed here is the report's comparison table, and the posterior shown for the BIC
    pick is the one fitted in that grid, not a second fit.
    """
    from .datasets import load_faithful
    from .selection import BIC, compare_models

    if args.max_components < 1:
        raise ValueError(f"--max-components={args.max_components}; it must be at least 1.")
    X = load_faithful()
    print(f"Old Faithful: {X.shape[0]} eruptions, features {', '.join(X.columns)}")
    print(X.describe().loc[["mean", "std", "min", "max"]].T.to_string(float_format="{:.2f}".format))
    print()
    ks = range(1, args.max_components + 1)
    bayes = args.draws > 0
    fitted: dict[int, Any] = {}
    print(
        f"Full covariances, K = 1..{args.max_components}, seed {args.seed}: EM (best of "
        f"{args.n_init} starts)"
        + (
            f" and the Bayesian mixture by NUTS ({args.chains} chains x ({args.draws} tune + "
            f"{args.draws} draws), started from its own EM fit)"
            if bayes
            else ""
        )
    )
    with _verdicts_on_stdout():
        comparison = compare_models(
            X,
            n_components=ks,
            covariance_types=("full",),
            methods=("em", "bayes") if bayes else ("em",),
            random_state=args.seed,
            n_init=args.n_init,
            progress=None if args.quiet else lambda msg: print(f"  {msg}", flush=True),
            **(
                {
                    "bayes_fit": _keeping_estimators(fitted, args),
                    "draws": args.draws,
                    "tune": args.draws,
                    "chains": args.chains,
                }
                if bayes
                else {}
            ),
        )
    table = comparison.table.set_index("n_components").rename_axis("K")
    columns = {
        "log_likelihood (higher better)": "log-lik",
        "n_parameters": "params",
        "bic (lower better)": "BIC (lower better)",
        "aic (lower better)": "AIC (lower better)",
        "icl (lower better)": "ICL (lower better)",
        "degenerate": "degenerate",
    }
    print()
    print(
        "EM, one fit per K"
        + (" (the report's comparison table shows the same fits):" if bayes else ":")
    )
    _print_table(table[list(columns)].rename(columns=columns))
    choice = comparison.best.get("bic")
    if choice is None:
        print("BIC picks no model: every EM fit is degenerate.")
        return 0
    best = int(choice[1])
    print()
    if not bayes:
        gm = comparison.em_models[f"full-K{best}"]
        print(f"BIC picks K = {best} (BIC {table.loc[best, BIC]:.1f}).")
        _print_components(gm, "Its components (sorted by mean eruption length):")
        return 0
    print(f"BIC picks K = {best}.")
    return _demo_bayes(X, fitted[best], comparison, args)


def _keeping_estimators(fitted: dict[int, Any], args: argparse.Namespace):
    """A ``bayes_fit`` for compare_models that keeps each fitted estimator in ``fitted``.

    It fits exactly as compare_models' default does (the same relabelling and convergence
    summary) and takes the sampler options compare_models passes, so a retry with stronger
    settings really samples with them.
    """
    from .selection import _fit_posterior

    def fit(
        X: pd.DataFrame,
        n_components: int,
        *,
        covariance_type: str,
        random_state,
        em_start=None,
        **options,
    ):
        bgm = _fit_posterior(
            X, n_components, covariance_type, random_state, em_start, n_init=args.n_init, **options
        )
        fitted[n_components] = bgm
        return bgm.idata_

    return fit


def _print_components(gm: Any, title: str) -> None:
    print(title)
    for j in range(gm.n_components):
        sd = np.sqrt(np.diag(gm.covariances_[j]))
        corr = gm.covariances_[j][0, 1] / (sd[0] * sd[1])
        print(
            f"  component {j}: weight {gm.weights_[j]:.3f}, mean "
            f"({', '.join(f'{m:.2f}' for m in gm.means_[j])}), sd "
            f"({', '.join(f'{s:.2f}' for s in sd)}), correlation {corr:.2f}"
        )
    state = "converged" if gm.converged_ else "did NOT converge"
    print(f"  {state} in {gm.n_iter_} iterations, best of {gm.n_init} starts")


def _demo_bayes(X: pd.DataFrame, bgm: Any, comparison: Any, args: argparse.Namespace) -> int:
    """The BIC pick's posterior (fitted in the grid): diagnostics, posterior vs EM, report.

    Returns the exit code: 0, or :data:`EXIT_PARTIAL` when the results were written but the
    report failed.
    """
    from .report import write_report

    k = bgm.n_components
    tree = bgm.idata_
    print(
        f"Bayesian mixture, K = {k}: sampler {tree.attrs['sampler']}, sampling "
        f"{tree.attrs['sampling_time']:.1f} s, whole fit {tree.attrs['fit_time']:.1f} s"
    )
    _print_components(bgm.em_, "  started from its EM fit (the report's EM section):")
    print(f"  diagnostics: {bgm.diagnostics_.verdict}")
    post = tree["posterior"]
    q = 0.055, 0.945
    rows = []
    for j in range(k):
        w = post["weights"].sel(component=j)
        rows.append(
            {
                "parameter": f"weight[{j}]",
                "EM": bgm.em_.weights_[j],
                "posterior mean": float(w.mean()),
                "89% interval": _interval(w.values, q),
            }
        )
        for f, name in enumerate(X.columns):
            m = post["means"].sel(component=j, feature=name)
            rows.append(
                {
                    "parameter": f"mean[{j}, {name}]",
                    "EM": bgm.em_.means_[j, f],
                    "posterior mean": float(m.mean()),
                    "89% interval": _interval(m.values, q),
                }
            )
    _print_table(pd.DataFrame(rows).set_index("parameter"))
    member = bgm.membership()
    unsure = int(np.sum(member.label_probability < 0.9))
    print(
        f"  membership: {unsure} of {len(X)} eruptions have P(label) < 0.9; the most "
        f"uncertain has total entropy {member.entropy_total.max():.3f} nats "
        f"(epistemic part {member.entropy_epistemic.max():.4f})"
    )
    print()
    print("Model comparison, BIC/AIC/ICL from EM beside WAIC and PSIS-LOO from NUTS:")
    print(f"  {comparison.verdict}")
    out = Path(args.out)
    # The demo replaces its own earlier results, atomically: a killed run leaves them intact.
    with _staged_dir(out, force=True) as tmp:
        bgm.save(tmp / "posterior.nc")
        comparison.table.to_csv(tmp / "comparison.csv", index=False)
        # The results above are kept whatever happens to the report.
        report_error = _try_report(
            tmp,
            ("report.html",),
            lambda: write_report(
                tmp / "report.html",
                bgm=bgm,
                comparison=comparison,
                embed=True,
                title="bayesgmm demo: Old Faithful",
            ),
        )
    if report_error is not None:
        return _partial(out, "the report", report_error)
    print(f"  posterior, comparison table and report.html written to {out}")
    return 0


class _OmitVerdictLog(logging.Filter):
    """Drops the library's log line that repeats a fit's verdict, which the CLI prints itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("BayesGaussianMixture fit in")


@contextmanager
def _verdicts_on_stdout():
    """While active, each posterior's verdict reaches the reader once: on stdout, by the CLI."""
    logger = logging.getLogger("bayesgmm")
    omit = _OmitVerdictLog()
    logger.addFilter(omit)
    try:
        yield
    finally:
        logger.removeFilter(omit)


def _interval(values: np.ndarray, q: tuple[float, float]) -> str:
    lo, hi = np.quantile(values, q)
    return f"[{lo:.4g}, {hi:.4g}]"


# --------------------------------------------------------------------------- results directories
#
# Files are sacred. bayesgmm writes every results directory under a hidden temporary name
# beside the target, marks it as its own (MARKER, which lists what it wrote) and moves it into
# place with one rename, holding a lock on the parent directory while it checks and renames.
# It replaces a directory only when that directory carries the marker and holds nothing else,
# never the directory holding an input file (or one of its parents), never the working
# directory, and never anything else, with or without --force.

MARKER = ".bayesgmm-results"
_TMP_TAG = ".bayesgmm-"
_DESKTOP_FILES = (".DS_Store", "Thumbs.db", "desktop.ini")  # file managers' own; not data
_PROTECTED: list[Path] = []  # input files of the current command (set by main)


def _parse_k(text: str) -> list[int]:
    """``"3"`` or an inclusive range ``"1:6"``."""
    try:
        if ":" in text:
            lo, hi = (int(part) for part in text.split(":", 1))
            ks = list(range(lo, hi + 1))
        else:
            lo = hi = int(text)
            ks = [lo]
    except ValueError:
        raise ValueError(f"-k {text!r} is not a number or a range like 1:6.") from None
    if hi < lo:
        raise ValueError(
            f"-k {text!r} is an empty range ({lo} > {hi}); write the smaller number first, "
            f"e.g. -k {hi}:{lo}."
        )
    if min(ks) < 1:
        raise ValueError(f"-k {text!r}: numbers of components must be at least 1.")
    return ks


def _read_marker(directory: Path) -> dict | None:
    """The marker of a directory bayesgmm wrote, or None."""
    try:
        payload = json.loads((directory / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(payload, dict) or payload.get("written_by") != "bayesgmm":
        return None
    return payload


def _check_out(out: Path, force: bool, inputs: Sequence[Path] = ()) -> str | None:
    """Refuse an output directory bayesgmm may not write; return its state.

    The state is None for a directory still to create, ``"empty"`` for an empty directory and
    the run id of the results it holds otherwise; :func:`_staged_dir` compares it again just
    before replacing, so a concurrent run's results are never replaced silently.
    """
    out = Path(out)
    shown = str(out)
    where = out.resolve()
    cwd = Path.cwd().resolve()
    if where == cwd or where in cwd.parents:
        raise ValueError(
            f"--out {shown!r} is the current directory (or holds it); give a new directory "
            "for the results, e.g. --out results."
        )
    for item in [*_PROTECTED, *inputs]:
        item = Path(item).resolve()
        if where == item or where in item.parents:
            raise ValueError(
                f"--out {shown!r} holds the input {str(item)!r}; bayesgmm never replaces the "
                "directory of its input. Choose another --out."
            )
        if item.is_dir() and item in where.parents:  # an input store (.zarr) is a directory
            raise ValueError(
                f"--out {shown!r} is inside the input {str(item)!r}; bayesgmm never writes into "
                "its input. Choose another --out."
            )
    for parent in out.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise ValueError(f"cannot create {shown!r}: {str(parent)!r} is not a directory.")
            break
    if out.is_symlink():
        raise ValueError(
            f"--out {shown!r} is a symbolic link; bayesgmm replaces only directories it wrote "
            "itself. Choose another --out."
        )
    if not out.exists():
        return None
    if not out.is_dir():
        raise ValueError(
            f"--out {shown!r} already exists and is a file, not a results directory; bayesgmm "
            "never replaces it. Choose another --out."
        )
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return "empty"
    marker = _read_marker(out)
    if marker is None:
        listed = ", ".join(entries[:5]) + (
            f" and {len(entries) - 5} more" if len(entries) > 5 else ""
        )
        raise ValueError(
            f"--out {shown!r} already exists and holds files bayesgmm did not write ({listed}); "
            "bayesgmm replaces only its own results, with or without --force. Choose another "
            "--out."
        )
    foreign = sorted(set(entries) - set(marker.get("files", [])) - {MARKER, *_DESKTOP_FILES})
    if foreign:
        raise ValueError(
            f"--out {shown!r} holds bayesgmm results and also files it did not write "
            f"({', '.join(foreign[:5])}); move them out or choose another --out (nothing was "
            "changed)."
        )
    if not force:
        raise ValueError(
            f"--out {shown!r} already exists (results of an earlier bayesgmm run); pass --force "
            "to replace them, or choose another --out."
        )
    return str(marker.get("run_id"))


@contextmanager
def _dir_lock(directory: Path):
    """An exclusive advisory lock on ``directory`` (where the platform has flock)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: the rename is the only guard
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _remove_stale_temps(parent: Path) -> None:
    """Remove temporary directories that killed bayesgmm runs left in ``parent``.

    Only directories named ``.<name>.bayesgmm-<pid>-*.tmp`` that carry the marker, and
    ``predict``'s files ``.<name>.bayesgmm-<pid>-*.csv.tmp``, whose process is gone, are removed;
    earlier results set aside by a run killed in the middle of its final swap are moved back.
    """
    if not parent.is_dir():
        return
    for entry in parent.iterdir():
        name = entry.name
        if not (name.startswith(".") and _TMP_TAG in name and name.endswith(".tmp")):
            continue
        pid_text = name.rsplit(_TMP_TAG, 1)[1].split("-", 1)[0]
        if not pid_text.isdigit() or entry.is_symlink() or _pid_alive(int(pid_text)):
            continue
        if entry.is_dir() and (entry / MARKER).is_file():
            home = parent / name[1:].rsplit(_TMP_TAG, 1)[0]
            if name.endswith("-old.tmp") and not home.exists() and not home.is_symlink():
                entry.rename(home)  # killed mid-swap: put the earlier results back
            else:
                shutil.rmtree(entry, ignore_errors=True)
        elif entry.is_file() and name.endswith(".csv.tmp"):  # a predictions file in the making
            entry.unlink(missing_ok=True)


def _write_marker(directory: Path, **extra) -> None:
    payload = {
        "written_by": "bayesgmm",
        "bayesgmm_version": __version__,
        "note": "bayesgmm wrote this directory; it may replace it (with --force) only while it "
        "holds nothing but the files listed here.",
        **extra,
    }
    (directory / MARKER).write_text(json.dumps(payload, indent=2) + "\n")


def _record_written(directory: Path, *names: str) -> None:
    """Add files written later (a report) to the marker of a results directory."""
    marker = _read_marker(directory)
    if marker is None:
        return
    marker["files"] = sorted({*marker.get("files", []), *names})
    _write_marker(directory, **{k: v for k, v in marker.items() if k != "bayesgmm_version"})


@contextmanager
def _staged_dir(out: Path, force: bool):
    """Write into a hidden sibling directory, then move it into place in one rename.

    A run that fails or is killed leaves ``out`` untouched (and at most a temporary sibling,
    removed by the next run), never a half-written results directory that looks complete. Of
    two runs writing the same ``out`` at once, the first to finish wins; the other fails with
    a message and changes nothing.
    """
    import uuid

    out = Path(out)
    state = _check_out(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(out.parent)
    tmp = Path(
        tempfile.mkdtemp(
            prefix=f".{out.name}{_TMP_TAG}{os.getpid()}-", suffix=".tmp", dir=out.parent
        )
    )
    run_id = uuid.uuid4().hex
    try:
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private (0700); results are ordinary files
        _write_marker(tmp, run_id=run_id, files=[])
        yield tmp
        files = sorted(p.name for p in tmp.iterdir() if p.name != MARKER)
        _write_marker(tmp, run_id=run_id, files=files, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        with _dir_lock(out.parent):
            try:
                now = _check_out(out, True)
            except ValueError as exc:
                raise ValueError(
                    f"{exc} (It changed while this run worked; this run's results were discarded.)"
                ) from None
            if now != state:
                raise ValueError(
                    f"another bayesgmm run wrote {str(out)!r} while this one worked; its results "
                    "are kept and this run's were discarded. Rerun with another --out."
                )
            if now == "empty":
                out.rmdir()
            if now is None or now == "empty":
                try:
                    tmp.rename(out)
                except OSError:
                    raise ValueError(
                        f"another program created {str(out)!r} while this run worked; this "
                        "run's results were discarded. Rerun with another --out."
                    ) from None
            else:
                old = out.with_name(f".{out.name}{_TMP_TAG}{os.getpid()}-old.tmp")
                out.rename(old)
                tmp.rename(out)
                shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")


def _json_default(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _read(args: argparse.Namespace) -> pd.DataFrame:
    """The data file of ``args``, read once (the preflight reads it before heavy imports)."""
    cached = getattr(args, "_frame", None)
    if cached is not None:
        return cached
    from .datasets import read_data

    columns = [c.strip() for c in args.columns.split(",")] if args.columns else None
    frame, dropped = read_data(
        args.data,
        columns=columns,
        dropna=args.dropna,
        sep=_separator(getattr(args, "sep", None)),
        decimal=getattr(args, "decimal", None),
    )
    if not args.quiet:
        for note in frame.attrs.get("notes", []):
            print(f"note: {note}", file=sys.stderr)
        if dropped.size:
            print(f"dropped {dropped.size} row(s) with missing values", file=sys.stderr)
    # Index = 0-based row in the file, so output rows match input rows after --dropna.
    frame.index = np.delete(np.arange(len(frame) + dropped.size), dropped)
    return frame


def _separator(text: str | None) -> str | None:
    if text is None:
        return None
    named = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "space": " "}
    return named.get(text.lower(), text)


def _em_payload(gm, X: pd.DataFrame) -> dict:
    """``em.json``: the fitted state (:func:`bayesgmm.em.em_state`) plus fit statistics."""
    from .em import em_state

    n = len(X)
    return {
        "n_components": gm.n_components,
        **em_state(gm, [str(c) for c in X.columns]),
        "log_likelihood": float(gm.score(X) * n),
        "bic (lower better)": float(gm.bic(X)),
        "aic (lower better)": float(gm.aic(X)),
        "icl (lower better)": float(gm.icl(X)),
        "n_parameters": int(gm.n_parameters_),
    }


_EM_KEYS = ("weights", "means", "covariances", "precisions_cholesky", "covariance_type")


def _em_from_json(payload: dict):
    from .em import em_from_state

    return em_from_state(payload)


def _load_em_json(path: Path):
    """The EM solution saved in ``em.json``; a damaged file is refused in one line."""
    shown = str(path)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{shown!r} is not a bayesgmm em.json (it is not text).") from None
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{shown!r} is damaged or truncated (invalid JSON at line {exc.lineno}, column "
            f"{exc.colno}: {exc.msg}); refit with 'bayesgmm fit'."
        ) from None
    missing = [
        k for k in (*_EM_KEYS, "features") if not isinstance(payload, dict) or k not in payload
    ]
    if missing:
        raise ValueError(
            f"{shown!r} is not a bayesgmm em.json (no {', '.join(missing)}); refit with "
            "'bayesgmm fit'."
        )
    payload.setdefault("degenerate", None)
    payload.setdefault("converged", True)
    try:
        model = _em_from_json(payload)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise ValueError(f"{shown!r} holds an inconsistent EM solution: {exc}") from None
    return model, [str(f) for f in payload["features"]]


def _check_finite_fit(what: str, arrays: dict, data: str) -> None:
    """Refuse to write results holding NaN or infinity (a numerical breakdown)."""
    bad = [name for name, a in arrays.items() if not np.isfinite(np.asarray(a, dtype=float)).all()]
    if bad:
        raise ValueError(
            f"{what} produced non-finite {', '.join(bad)} for {data!r} (a numerical breakdown, "
            "usually from values far from 1 in size); nothing was written. Rescale the columns "
            "(e.g. standardise them) and fit again."
        )


def _print_warnings(prefix: str, caught: Sequence[warnings.WarningMessage]) -> None:
    """Each distinct warning once, with a count; NumPy's RuntimeWarnings as one line."""
    seen: dict[tuple[str, str], int] = {}
    for w in caught:
        text = str(w.message).strip().splitlines()[0] if str(w.message).strip() else ""
        if issubclass(w.category, RuntimeWarning) and "encountered in" in text:
            text = "floating-point trouble (overflow or invalid values) in the computation"
        key = (w.category.__name__, text)
        seen[key] = seen.get(key, 0) + 1
    for (category, text), count in seen.items():
        times = f" ({count} times)" if count > 1 else ""
        print(f"{prefix}: {category}: {text}{times}", file=sys.stderr)


def _provenance(args: argparse.Namespace, command: str) -> dict:
    return {
        "bayesgmm_version": __version__,
        "command": command,
        "arguments": {k: v for k, v in vars(args).items() if k != "func" and k[0] != "_"},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _try_report(tmp: Path, names: Sequence[str], write) -> str | None:
    """Run ``write()``; on failure remove what it left in ``tmp`` and return the reason.

    The results beside it are kept: a report is rendered from them and can be redone with
    ``bayesgmm report``.
    """
    try:
        write()
    except Exception as exc:  # any failure of figures or rendering
        for name in names:
            target = tmp / name
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            elif target.exists():
                target.unlink()
        text = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {text[0] if text else 'no message'}"
    return None


def _partial(out: Path, what: str, error: str, retry: str = "") -> int:
    """Warn that the results were written but ``what`` failed; the exit code for that."""
    print(
        f"bayesgmm: warning: results written to {out}, but {what} failed ({error}); the "
        f"results are complete{'; ' + retry if retry else ''}.",
        file=sys.stderr,
    )
    return EXIT_PARTIAL


def _fit_command(args: argparse.Namespace) -> str:
    """The ``bayesgmm fit`` command line that reproduces this run (every option explicit)."""
    parts = ["bayesgmm", "fit", args.data, "-k", str(args.k)]
    for flag, value in (
        ("--columns", args.columns),
        ("--sep", getattr(args, "sep", None)),
        ("--decimal", getattr(args, "decimal", None)),
    ):
        if value is not None:
            parts += [flag, str(value)]
    if args.dropna:
        parts.append("--dropna")
    parts += [
        "--covariance",
        args.covariance,
        "--method",
        args.method,
        "--draws",
        str(args.draws),
        "--tune",
        str(args.tune),
        "--chains",
        str(args.chains),
        "--n-init",
        str(args.n_init),
        "--seed",
        str(args.seed),
    ]
    if getattr(args, "model", None):
        parts += ["--model", str(args.model)]
    parts += ["--out", str(args.out)]
    return shlex.join(parts)


def cmd_fit(args: argparse.Namespace) -> int:
    """Fit EM and/or the Bayesian mixture to a data file and save the results."""
    out = Path(args.out)
    _check_out(out, args.force)
    ks = _parse_k(args.k)
    if len(ks) != 1:
        raise ValueError("fit takes one -k; use 'bayesgmm compare' for a range.")
    k = ks[0]
    X = _read(args)
    from .em import EMGaussianMixture

    report_error = None
    with _staged_dir(out, args.force) as tmp:
        from .methods import reproducibility as _repro

        _write_json(
            tmp / "run.json",
            {
                **_provenance(args, "fit"),
                "reproducibility": _repro(
                    command=_fit_command(args), data_path=args.data, seed=args.seed
                ),
            },
        )
        if args.method in ("em", "both"):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                gm = EMGaussianMixture(
                    k, covariance_type=args.covariance, n_init=args.n_init, random_state=args.seed
                ).fit(X)
            _check_finite_fit(
                "EM",
                {"weights": gm.weights_, "means": gm.means_, "covariances": gm.covariances_},
                args.data,
            )
            _print_warnings("EM", caught)
            _write_json(tmp / "em.json", _em_payload(gm, X))
            em_member = pd.DataFrame(
                gm.predict_proba(X), columns=[f"p_{j}" for j in range(k)], index=X.index
            )
            em_member.insert(0, "label", gm.predict(X))
            em_member.to_csv(tmp / "membership_em.csv", index_label="row")
            if not args.quiet:
                print(f"EM: log-likelihood {gm.score(X) * len(X):.3f}, BIC {gm.bic(X):.2f}")
        if args.method in ("bayes", "both"):
            from .bayes import BayesGaussianMixture
            from .exceptions import SamplingWarning

            with warnings.catch_warnings(record=True) as caught, _verdicts_on_stdout():
                warnings.simplefilter("always")
                try:
                    bgm = BayesGaussianMixture(
                        k,
                        covariance_type=args.covariance,
                        model=getattr(args, "_model_fn", None),
                        draws=args.draws,
                        tune=args.tune,
                        chains=args.chains,
                        n_init=args.n_init,
                        random_state=args.seed,
                        progressbar=not args.quiet,
                    ).fit(X)
                except RuntimeError as exc:  # the sampler's own failures (nutpie, PyMC)
                    raise FitFailedError(
                        f"the Bayesian fit of {args.data!r} failed ({_one_line(exc)}); with "
                        "values far from 1 in size, rescale the columns (e.g. standardise "
                        "them) and fit again."
                    ) from exc
            post = bgm.idata_["posterior"]
            _check_finite_fit(
                "The Bayesian fit",
                {name: post[name].values for name in ("weights", "means") if name in post},
                args.data,
            )
            # Failed convergence checks reach stderr even with --quiet; without it the
            # verdict printed below says the same.
            _print_warnings(
                "NUTS",
                [w for w in caught if args.quiet or not issubclass(w.category, SamplingWarning)],
            )
            bgm.save(tmp / "posterior.nc")
            from .methods import methods_markdown, reproducibility

            repro = reproducibility(
                bgm, command=_fit_command(args), data_path=args.data, seed=args.seed
            )
            _write_json(tmp / "run.json", {**_provenance(args, "fit"), "reproducibility": repro})
            bgm.diagnostics_.table.to_csv(tmp / "posterior_summary.csv", index=False)
            bgm.membership().to_frame().set_axis(X.index).to_csv(
                tmp / "membership.csv", index_label="row"
            )
            if not args.quiet:
                print(
                    f"NUTS ({bgm.idata_.attrs['sampler']}, fit in "
                    f"{bgm.idata_.attrs['fit_time']:.1f} s): {bgm.diagnostics_.verdict}"
                )

            def report() -> None:
                from .report import write_report

                (tmp / "methods.md").write_text(
                    methods_markdown(bgm, reproducibility=repro), encoding="utf-8"
                )

                # report.html with its figures as PNG files in report_figures/
                write_report(
                    tmp / "report.html",
                    bgm=bgm,
                    title=f"bayesgmm fit: {Path(args.data).name}",
                    reproducibility=repro,
                )

            # The results above are kept whatever happens to the report.
            report_error = _try_report(tmp, ("methods.md", "report.html", "report_figures"), report)
    if report_error is not None:
        return _partial(
            out, "the report", report_error, f"retry with 'bayesgmm report {out} --force'"
        )
    if not args.quiet:
        print(f"results written to {out}")
    return 0


def _parse_k_prior(text: str) -> str | tuple[str, float]:
    """``--k-prior``: ``uniform`` or ``poisson:RATE`` -> compare_models' ``k_prior``."""
    if text == "uniform":
        return "uniform"
    kind, _, rate = text.partition(":")
    try:
        value = float(rate)
    except ValueError:
        value = float("nan")
    if kind != "poisson" or not value > 0 or value == float("inf"):
        raise ValueError(
            f"--k-prior {text!r} is not understood; give 'uniform' or 'poisson:RATE' with a "
            "positive rate, e.g. --k-prior poisson:3."
        )
    return ("poisson", value)


# compare's --covariance: scikit-learn's four names and mclust's 14 models (bayesgmm._mclust;
# written out here so that argument errors answer without importing the library).
_SKLEARN_COVARIANCES = ("full", "tied", "diag", "spherical")
_MCLUST_COVARIANCES = (
    "EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE",
    "VEE", "EVE", "VVE", "EEV", "VEV", "EVV", "VVV",
)  # fmt: skip
_MCLUST_ALIASES = {"full": "VVV", "tied": "EEE", "diag": "VVI", "spherical": "VII"}
# EMGaussianMixture's init_params (bayesgmm.em.INIT_PARAMS)
_INIT_CHOICES = ("kmeans", "k-means++", "random", "random_from_data", "hc")


def _printable(text: str) -> str:
    """``text`` with its marks (★, †, —) in ASCII when stdout cannot encode them."""
    try:
        text.encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        for mark, ascii_mark in (("★", "*"), ("†", "+"), ("—", "-")):
            text = text.replace(mark, ascii_mark)
    return text


def _parse_covariances(text: str) -> tuple[str, ...]:
    """``--covariance``: a comma-separated list of covariance types, or ``all`` (mclust's 14).

    Names are matched ignoring case (``vvv`` is ``VVV``, ``Full`` is ``full``); a model given
    twice, under one name or both (``full`` is mclust's ``VVV``), is refused.
    """
    known = {c.lower(): c for c in (*_SKLEARN_COVARIANCES, *_MCLUST_COVARIANCES)}
    items = [c.strip() for c in text.split(",")]
    valid = (
        f"{', '.join(_SKLEARN_COVARIANCES)} or mclust's models "
        f"{', '.join(_MCLUST_COVARIANCES)}, comma-separated, or 'all' for mclust's 14"
    )
    if any(not c for c in items):
        raise ValueError(f"--covariance {text!r} has an empty name; give {valid}.")
    if [c.lower() for c in items] == ["all"]:
        return _MCLUST_COVARIANCES
    if "all" in (c.lower() for c in items):
        raise ValueError(
            f"--covariance {text!r}: 'all' already holds mclust's 14 models (the four "
            "scikit-learn types among them, as VVV, EEE, VVI and VII); give 'all' alone."
        )
    unknown = [c for c in items if c.lower() not in known]
    if unknown:
        raise ValueError(
            f"--covariance: unknown type(s) {', '.join(map(repr, unknown))}; choose from {valid}."
        )
    covs = [known[c.lower()] for c in items]
    seen: dict[str, str] = {}
    for cov in covs:
        model = _MCLUST_ALIASES.get(cov, cov)
        if model in seen:
            same = (
                f"{seen[model]!r} is given twice"
                if seen[model] == cov
                else f"{seen[model]!r} and {cov!r} are the same model (mclust's {model})"
            )
            raise ValueError(f"--covariance {text!r}: {same}; give each model once.")
        seen[model] = cov
    return tuple(covs)


def _parse_fit_covariance(text: str, method: str) -> str:
    """``fit --covariance``: one covariance type, its name matched ignoring case.

    EM takes all 18 names. The Bayesian fit has scikit-learn's four structures only, so with
    ``--method bayes`` or ``both`` mclust's VVV, EEE, VVI and VII become full, tied, diag and
    spherical, and the ten others are refused with the way out (``--method em``).
    """
    known = {c.lower(): c for c in (*_SKLEARN_COVARIANCES, *_MCLUST_COVARIANCES)}
    cov = known.get(text.strip().lower())
    if cov is None:
        raise ValueError(
            f"--covariance {text!r} is not a covariance type; choose one of "
            f"{', '.join(_SKLEARN_COVARIANCES)} or mclust's models "
            f"{', '.join(_MCLUST_COVARIANCES)}."
        )
    if method == "em":
        return cov
    bayes_name = {model: name for name, model in _MCLUST_ALIASES.items()}
    if cov in bayes_name:
        return bayes_name[cov]
    if cov in _SKLEARN_COVARIANCES:
        return cov
    four = ", ".join(f"{name} ({model})" for name, model in _MCLUST_ALIASES.items())
    raise ValueError(
        f"--covariance {cov} has no Bayesian model (the Bayesian fit has four covariance "
        f"structures: {four}); fit {cov} with --method em, or choose one of those four."
    )


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare numbers of components and covariance types; save the table and figure."""
    from .selection import compare_models

    k_prior = _parse_k_prior(args.k_prior)
    out = Path(args.out)
    _check_out(out, args.force)
    X = _read(args)
    covs = _parse_covariances(args.covariance)
    methods = ("em",) if args.method == "em" else ("em", "bayes")
    options = {}
    if "bayes" in methods:
        options = {"draws": args.draws, "tune": args.tune, "chains": args.chains}
        if getattr(args, "_model_fn", None) is not None:
            options["model"] = args._model_fn
    with _staged_dir(out, args.force) as tmp:
        _write_json(tmp / "run.json", _provenance(args, "compare"))
        result = compare_models(
            X,
            n_components=_parse_k(args.k),
            covariance_types=covs,
            methods=methods,
            random_state=args.seed,
            n_init=args.n_init,
            progress=None if args.quiet else lambda msg: print(msg, file=sys.stderr, flush=True),
            retry=not args.no_retry,
            retry_budget=args.retry_budget,
            evidence=not args.no_evidence,
            k_prior=k_prior,
            em_options={"init_params": args.init},
            **options,
        )
        result.table.to_csv(tmp / "comparison.csv", index=False)
        (tmp / "verdict.txt").write_text(result.verdict + "\n")
        figures = ["comparison.png"]
        grid = result.shows_bic_grid
        if grid:  # mclust's models: its BIC grid, degenerate fits missing as mclust has them
            result.bic_grid(drop_degenerate=True).to_csv(tmp / "bic_grid.csv")
            figures.append("bic_grid.png")

        def write_figures() -> None:
            result.plot().savefig(tmp / "comparison.png", dpi=120)
            if grid:
                result.plot_bic_grid().savefig(tmp / "bic_grid.png", dpi=120)

        # the tables above are kept if a figure fails
        figure_error = _try_report(tmp, figures, write_figures)
    if not args.quiet:
        if grid:
            text = (
                "BIC = -2 log L + p log n, lower is better (mclust prints the same numbers "
                "with the opposite sign); ★ BIC's choice, † degenerate fit (excluded):\n"
                + result.bic_grid(marked=True).to_string()
                + "\n"
            )
            print(_printable(text))
        print(result.verdict)
    if figure_error is not None:
        return _partial(out, "the figure(s) " + " and ".join(figures), figure_error)
    if not args.quiet:
        print(f"results written to {out}")
    return 0


def _load_results(src: Path):
    """The model saved in a results directory: the posterior if there is one, else EM."""
    shown = str(src)
    if not src.exists():
        raise FileNotFoundError(f"Results directory {shown!r} does not exist; check the path.")
    if not src.is_dir():
        raise ValueError(
            f"{shown!r} is a file, not a results directory; give the directory that "
            "'bayesgmm fit --out' wrote."
        )
    if (src / "posterior.nc").is_file():
        from .bayes import BayesGaussianMixture

        model = BayesGaussianMixture.load(src / "posterior.nc")
        return model, [str(f) for f in model.idata_["observed_data"]["feature"].values]
    if (src / "em.json").is_file():
        return _load_em_json(src / "em.json")
    raise FileNotFoundError(
        f"{shown!r} holds no posterior.nc or em.json; run 'bayesgmm fit' first."
    )


def cmd_predict(args: argparse.Namespace) -> int:
    """Labels, membership probabilities (with intervals) and anomaly scores for new data."""
    src = Path(args.results)
    target = Path(args.out)
    _check_predict_target(target, src, args.force)
    model, features = _load_results(src)
    args.columns = ",".join(features)
    X = _read(args)
    if hasattr(model, "membership"):
        frame = model.membership(X, interval=args.interval).to_frame().set_axis(X.index)
    else:
        frame = pd.DataFrame(
            model.predict_proba(X),
            columns=[f"p_{j}" for j in range(model.n_components)],
            index=X.index,
        )
        frame.insert(0, "label", model.predict(X))
        frame["log_density"] = model.score_samples(X)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(target.parent)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}{_TMP_TAG}{os.getpid()}-", suffix=".csv.tmp", dir=target.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        frame.to_csv(tmp, index_label="row")
        tmp.chmod(0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if not args.quiet:
        print(f"{len(frame)} predictions written to {target}")
    return 0


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _check_predict_target(target: Path, src: Path, force: bool) -> None:
    """The predictions file may not be a directory, an input, or a file of the results."""
    shown = str(target)
    where = target.resolve()
    if target.is_dir():
        raise ValueError(f"--out {shown!r} is a directory; give a file name, e.g. predictions.csv.")
    for item in _PROTECTED:
        if where == Path(item).resolve():
            raise ValueError(f"--out {shown!r} is the input file; bayesgmm never overwrites it.")
    if where.parent == src.resolve():
        if where.name in {MARKER, "posterior.nc", "em.json", "run.json"} or where.name.startswith(
            "membership"
        ):
            raise ValueError(
                f"--out {shown!r} would overwrite a file of the results; choose another name."
            )
    if target.exists() and not force:
        raise ValueError(f"{shown!r} already exists; pass --force to replace it.")
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"cannot create {shown!r}: {str(parent)!r} is not a directory.")
            break


def cmd_report(args: argparse.Namespace) -> int:
    """Render a report from saved results (no refitting)."""
    src = Path(args.results)
    if not src.is_dir():
        raise FileNotFoundError(
            f"Results directory {str(src)!r} does not exist; give the directory that "
            "'bayesgmm fit --out' wrote."
        )
    if not (src / "posterior.nc").is_file():
        raise FileNotFoundError(
            f"{str(src)!r} holds no posterior.nc; run 'bayesgmm fit --method bayes|both' first."
        )
    target = src / f"report.{args.format}"
    if target.exists() and not args.force:
        raise ValueError(f"{str(target)!r} already exists; pass --force to replace it.")
    from .bayes import BayesGaussianMixture
    from .methods import methods_markdown
    from .report import write_report

    bgm = BayesGaussianMixture.load(src / "posterior.nc")
    repro = None
    try:  # the reproducibility block that 'bayesgmm fit' recorded
        repro = json.loads((src / "run.json").read_text(encoding="utf-8"))["reproducibility"]
    except (OSError, ValueError, KeyError, TypeError):
        repro = None
    path = write_report(target, bgm=bgm, embed=args.format == "html", reproducibility=repro)
    methods = src / "methods.md"
    if args.force or not methods.exists():
        tmp = methods.with_name(f".{methods.name}.tmp")
        tmp.write_text(methods_markdown(bgm, reproducibility=repro), encoding="utf-8")
        os.replace(tmp, methods)
    _record_written(src, target.name, f"{target.stem}_figures", methods.name)
    if not args.quiet:
        print(f"report written to {path}")
    return 0


def _read_image(path: Path) -> np.ndarray:
    """A PNG/JPEG (anything Pillow reads) as a uint8/uint16 grayscale or RGB array."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise ValueError(f"image file {str(path)!r} does not exist.")
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("L", "I;16", "I;16B", "I;16L"):
                return np.asarray(im)
            if im.mode in ("I", "F"):
                return np.asarray(im, dtype=np.float64)
            return np.asarray(im.convert("RGB"))
    except UnidentifiedImageError:
        raise ValueError(f"{str(path)!r} is not an image file Pillow can read.") from None
    except OSError as exc:  # a truncated or damaged image
        raise ValueError(f"{str(path)!r} is damaged or truncated: {exc}.") from None


#: A zarr image's PNGs, figure and report show a strided preview at most this many pixels
#: on a side (its maps are written whole, to maps.zarr).
PREVIEW_SIDE = 1024


def _is_zarr_path(path: Path) -> bool:
    return path.suffix.lower() == ".zarr"


def cmd_segment(args: argparse.Namespace) -> int:
    """Segment an image: label map, uncertainty maps, figure and per-segment summary."""
    from PIL import Image

    from .exceptions import SamplingWarning
    from .segmentation import _open_zarr, segment_image

    if _is_volume(Path(args.image)):  # a .npy array or a multipage TIFF (issue 20)
        return _cmd_segment_volume(args)
    out = Path(args.out)
    _check_out(out, args.force)
    lazy = _is_zarr_path(Path(args.image))
    if lazy and args.spatial != "none":
        raise ValueError(
            f"--spatial {args.spatial}: the spatial prior needs the image in memory; a .zarr "
            "image is segmented with --spatial none."
        )
    if lazy and args.truth is not None:
        raise ValueError(
            "--truth: calibration against a truth map needs the maps in memory; it is not "
            "available for a .zarr image (segment a PNG crop of it with --truth instead)."
        )
    image = _open_zarr(Path(args.image)) if lazy else _read_image(Path(args.image))
    truth = None
    if args.truth is not None:
        truth = _read_image(Path(args.truth))
        if np.issubdtype(truth.dtype, np.floating) and np.array_equal(truth, np.round(truth)):
            truth = truth.astype(np.int64)  # 32-bit integer images are read as float
        if truth.ndim != 2 or not np.issubdtype(truth.dtype, np.integer):
            raise ValueError(
                f"--truth {args.truth!r}: expected a single-channel integer label image "
                f"(one class code per pixel, e.g. an 8-bit grey PNG), got shape {truth.shape} "
                f"and dtype {truth.dtype}."
            )
        if truth.shape != image.shape[:2]:
            raise ValueError(
                f"--truth {args.truth!r} has {truth.shape[1]} x {truth.shape[0]} pixels; "
                f"the image has {image.shape[1]} x {image.shape[0]}. Pass the label map of "
                "this image."
            )
    spatial = None if args.spatial == "none" else args.spatial
    features = tuple(f.strip() for f in args.features.split(","))
    options: dict = {"n_init": args.n_init}
    if args.method == "bayes":
        options.update(
            draws=args.draws, tune=args.tune, chains=args.chains, progressbar=not args.quiet
        )
    if not args.quiet:
        print(
            f"segmenting {Path(args.image).name} ({image.shape[1]} x {image.shape[0]} pixels) "
            f"into {args.k} segments by {args.method.upper()} on {', '.join(features)}",
            file=sys.stderr,
        )
    with warnings.catch_warnings(record=True) as caught, _verdicts_on_stdout():
        warnings.simplefilter("always", SamplingWarning)
        result = segment_image(
            image,
            args.k,
            features=features,
            method=args.method,
            n_fit_pixels=args.n_fit_pixels,
            max_draws=args.map_draws,
            position_weight=args.position_weight,
            spatial=spatial,
            beta=args.beta,
            random_state=args.seed,
            **options,
        )
    for w in caught:
        # Without --quiet the verdict is printed below, once.
        if args.quiet or not issubclass(w.category, SamplingWarning):
            print(f"{w.category.__name__}: {w.message}", file=sys.stderr)
    if args.method == "bayes" and not args.quiet:
        print(f"NUTS: {result.estimator.diagnostics_.verdict}")
    maps_zarr = lazy or args.maps_zarr
    h, w = image.shape[:2]
    step = max(1, -(-max(h, w) // PREVIEW_SIDE)) if lazy else 1
    with _staged_dir(out, args.force) as tmp:
        if maps_zarr:
            # Written first, block by block: the maps are computed as they are stored.
            t0 = time.perf_counter()
            stored = result.to_zarr(tmp / "maps.zarr")
            result.timings["maps"] += time.perf_counter() - t0
            if lazy:  # PNGs, figure and report from a strided preview of the stored maps
                result = stored.preview(step)
        _write_json(
            tmp / "segmentation.json",
            {
                **_provenance(args, "segment"),
                "image_shape": list(image.shape),
                "maps": "maps.zarr" if maps_zarr else "maps.npz",
                "png_and_report_step": step,
                "features": result.features.names,
                "feature_offset": result.features.offset,
                "feature_scale": result.features.scale,
                "n_fit_pixels": int(result.fit_pixels.size),
                "n_map_draws": result.n_map_draws,
                "spatial": result.spatial,
                "beta": result.beta,
                "timings_seconds": result.timings,
                "diagnostics": (
                    result.estimator.diagnostics_.verdict if args.method == "bayes" else None
                ),
            },
        )
        if not maps_zarr:
            result.to_npz(tmp / "maps.npz")
        summary = result.summary().join(result.component_means())
        summary.to_csv(tmp / "segments.csv")
        Image.fromarray(result.labels.astype(np.uint8)).save(tmp / "labels.png")
        top = np.log(result.n_components) if result.n_components > 1 else 1.0
        gray = result.uncertainty_total * np.float32(255 / top)  # one float32 copy, then in place
        np.rint(np.clip(gray, 0.0, 255.0, out=gray), out=gray)
        Image.fromarray(gray.astype(np.uint8)).save(tmp / "uncertainty.png")
        cal = None
        if truth is not None:
            from .segmentation import calibration

            cal = calibration(result, truth)
            _write_json(
                tmp / "calibration.json",
                {
                    "truth": str(args.truth),
                    "accuracy": cal.accuracy,
                    "ari": cal.ari,
                    "ece": cal.ece,
                    "label_map": cal.label_map,
                },
            )
            cal.curve.to_csv(tmp / "reliability.csv")
        from .report import write_report

        # One figure, drawn once: saved as segmentation.png and embedded in report.html
        # (a self-contained file). The maps above are kept whatever happens to the report.
        report_error = _try_report(
            tmp,
            ("report.html", "segmentation.png"),
            lambda: write_report(
                tmp / "report.html",
                segmentation=result,
                calibration=cal,
                embed=True,
                figures_dir=tmp,
                title=f"bayesgmm segment: {Path(args.image).name}",
            ),
        )
        if cal is not None:
            from .plots import plot_reliability

            reliability_error = _try_report(
                tmp,
                ("reliability.png",),
                lambda: plot_reliability(cal).savefig(tmp / "reliability.png", dpi=100),
            )
            report_error = report_error or reliability_error
    if not args.quiet:
        _print_table(summary)
        print(
            f"fit {result.timings['fit']:.1f} s on {result.fit_pixels.size} pixels, maps "
            f"{result.timings['maps']:.1f} s; results written to {out}"
        )
        if step > 1:
            print(
                f"maps of all pixels in {out / 'maps.zarr'}; the PNGs, figure and report show "
                f"one row and column in {step}"
            )
    if not args.quiet and cal is not None:
        print(
            f"against {Path(args.truth).name}: accuracy {cal.accuracy:.3f}, ARI {cal.ari:.3f}, "
            f"ECE {cal.ece:.3f} (labels matched to the truth)"
        )
    if report_error is not None:
        return _partial(out, "the report", report_error)
    return 0


# ------------------------------------------------------------------ volumes (segment)


def _is_volume(path: Path) -> bool:
    """Whether ``bayesgmm segment`` reads ``path`` as a volume: a ``.npy`` array or a TIFF
    with more than one page (a one-page TIFF is an image)."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return True
    if suffix not in (".tif", ".tiff"):
        return False
    from PIL import Image

    try:
        with Image.open(path) as im:
            return getattr(im, "n_frames", 1) > 1
    except Exception:  # unreadable: the image path says why
        return False


def _read_volume(path: Path, what: str = "volume") -> np.ndarray:
    """A ``.npy`` volume (z, y, x) or (z, y, x, channel), or a multipage TIFF, one page per
    slice (grey or RGB pages)."""
    if not path.is_file():
        raise ValueError(f"{what} file {str(path)!r} does not exist.")
    if path.suffix.lower() == ".npy":
        try:
            # Memory-mapped: the maps are computed chunk by chunk from the file.
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            raise ValueError(
                f"{str(path)!r} is not a complete NumPy array file (np.save of a numeric "
                f"array): {exc}"
            ) from None
        except (OSError, EOFError) as exc:
            raise ValueError(f"{str(path)!r} is damaged or truncated: {exc}.") from None
        if arr.ndim not in (3, 4):
            raise ValueError(
                f"{what} {str(path)!r} has shape {arr.shape}; a .npy volume is (z, y, x) or "
                "(z, y, x, channel). For a 2-D image save it as PNG or TIFF, or add a first "
                "axis of length 1."
            )
        return arr
    from PIL import Image, ImageSequence, UnidentifiedImageError

    pages = []
    try:
        with Image.open(path) as im:
            for n, page in enumerate(ImageSequence.Iterator(im)):
                if page.mode in ("L", "I;16", "I;16B", "I;16L"):
                    a = np.asarray(page)
                elif page.mode in ("I", "F"):
                    a = np.asarray(page, dtype=np.float64)
                else:
                    a = np.asarray(page.convert("RGB"))
                if pages and (a.shape != pages[0].shape or a.dtype != pages[0].dtype):
                    raise ValueError(
                        f"{what} {str(path)!r}: page {n + 1} has shape {a.shape} and dtype "
                        f"{a.dtype}, page 1 {pages[0].shape} and {pages[0].dtype}; the pages "
                        "of a volume must match."
                    )
                pages.append(a)
    except UnidentifiedImageError:
        raise ValueError(f"{str(path)!r} is not a TIFF file Pillow can read.") from None
    except OSError as exc:
        raise ValueError(f"{str(path)!r} is damaged or truncated: {exc}.") from None
    return np.stack(pages)


def _cmd_segment_volume(args: argparse.Namespace) -> int:
    """``bayesgmm segment`` of a volume: label and uncertainty volumes (.npy), the middle
    slices, the per-segment summary and the report."""
    from .exceptions import SamplingWarning
    from .segmentation import LUMA
    from .volume import _report_html, plot_volume, segment_volume

    out = Path(args.out)
    _check_out(out, args.force)
    volume = _read_volume(Path(args.image))
    features = tuple(f.strip() for f in args.features.split(","))
    if "position" in features or len(features) != 1 or features[0] not in ("color", "intensity"):
        raise ValueError(
            f"--features {args.features}: a volume is segmented on its values, 'color' (every "
            "channel, the default) or 'intensity'; position features are for 2-D images."
        )
    channels = volume.ndim == 4
    if channels and features == ("intensity",):
        if volume.shape[-1] != 3:
            raise ValueError(
                f"--features intensity: the volume has {volume.shape[-1]} channels, not RGB; "
                "use --features color to segment on all channels."
            )
        top = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(volume.dtype, 1.0)
        volume = volume.astype(np.float64) @ (LUMA / top)
        channels = False
    truth = None
    if args.truth is not None:
        truth = _read_volume(Path(args.truth), "--truth")
        if np.issubdtype(truth.dtype, np.floating) and np.array_equal(truth, np.round(truth)):
            truth = truth.astype(np.int64)
        if truth.shape != volume.shape[:3] or not np.issubdtype(truth.dtype, np.integer):
            raise ValueError(
                f"--truth {args.truth!r}: expected integer class codes of the volume's shape "
                f"{volume.shape[:3]} (z, y, x), got shape {truth.shape} and dtype {truth.dtype}."
            )
    spatial = None if args.spatial == "none" else args.spatial
    options: dict = {"n_init": args.n_init}
    if args.method == "bayes":
        options.update(
            draws=args.draws, tune=args.tune, chains=args.chains, progressbar=not args.quiet
        )
    shape = " x ".join(map(str, volume.shape[:3]))
    if not args.quiet:
        print(
            f"segmenting {Path(args.image).name} ({shape} voxels (z, y, x)"
            f"{f', {volume.shape[3]} channels' if channels else ''}) into {args.k} segments "
            f"by {args.method.upper()}",
            file=sys.stderr,
        )
    with warnings.catch_warnings(record=True) as caught, _verdicts_on_stdout():
        warnings.simplefilter("always", SamplingWarning)
        result = segment_volume(
            volume,
            args.k,
            channel_axis=-1 if channels else None,
            method=args.method,
            n_fit_voxels=args.n_fit_pixels,
            max_draws=args.map_draws,
            spatial=spatial,
            beta=args.beta,
            random_state=args.seed,
            **options,
        )
    for w in caught:
        if args.quiet or not issubclass(w.category, SamplingWarning):
            print(f"{w.category.__name__}: {w.message}", file=sys.stderr)
    if args.method == "bayes" and not args.quiet:
        print(f"NUTS: {result.estimator.diagnostics_.verdict}")
    with _staged_dir(out, args.force) as tmp:
        _write_json(
            tmp / "segmentation.json",
            {
                **_provenance(args, "segment"),
                "volume_shape": list(result.volume.shape),
                "features": result.features.names,
                "feature_offset": result.features.offset,
                "feature_scale": result.features.scale,
                "n_fit_voxels": int(result.fit_voxels.size),
                "n_map_draws": result.n_map_draws,
                "spatial": result.spatial,
                "beta": result.beta,
                "timings_seconds": result.timings,
                "diagnostics": (
                    result.estimator.diagnostics_.verdict if args.method == "bayes" else None
                ),
            },
        )
        np.save(tmp / "labels.npy", result.labels)
        np.save(tmp / "uncertainty.npy", result.uncertainty_total)
        result.to_npz(tmp / "maps.npz")
        summary = result.summary().join(result.component_means())
        summary.to_csv(tmp / "segments.csv")
        cal = None
        if truth is not None:
            from .segmentation import calibration

            cal = calibration(result, truth)
            _write_json(
                tmp / "calibration.json",
                {
                    "truth": str(args.truth),
                    "accuracy": cal.accuracy,
                    "ari": cal.ari,
                    "ece": cal.ece,
                    "label_map": cal.label_map,
                },
            )
            cal.curve.to_csv(tmp / "reliability.csv")
        # The maps above are kept whatever happens to the figures and the report.
        report_error = _try_report(
            tmp,
            ("slices.png",),
            lambda: plot_volume(result).savefig(tmp / "slices.png", dpi=100),
        )

        def report() -> None:
            page = _report_html(
                result,
                calibration=cal,
                title=f"bayesgmm segment: {Path(args.image).name}",
                figures_dir=tmp if cal is not None else None,
            )
            (tmp / "report.html").write_text(page, encoding="utf-8")

        names = ("report.html", "reliability.png") if cal is not None else ("report.html",)
        report_error = report_error or _try_report(tmp, names, report)
    if not args.quiet:
        _print_table(summary)
        print(
            f"fit {result.timings['fit']:.1f} s on {result.fit_voxels.size} voxels, maps "
            f"{result.timings['maps']:.1f} s; results written to {out}"
        )
    if not args.quiet and cal is not None:
        print(
            f"against {Path(args.truth).name}: accuracy {cal.accuracy:.3f}, ARI {cal.ari:.3f}, "
            f"ECE {cal.ece:.3f} (labels matched to the truth)"
        )
    if report_error is not None:
        return _partial(out, "the report", report_error)
    return 0


def _add_text_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--sep",
        help="field separator of a text table: one character, or tab (default: detected)",
    )
    p.add_argument("--decimal", help="decimal mark of a text table: '.' or ',' (default: detected)")


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="data file: .csv, .tsv, .parquet or .npy")
    p.add_argument("--columns", help="comma-separated columns to use (default: all)")
    p.add_argument("--dropna", action="store_true", help="drop rows with missing values")
    _add_text_args(p)


def _add_fit_args(p: argparse.ArgumentParser, *, k_default: str) -> None:
    p.add_argument("-k", default=k_default, help=f"number of components (default {k_default})")
    p.add_argument("--draws", type=int, default=1000, help="NUTS draws per chain")
    p.add_argument("--tune", type=int, default=1000, help="NUTS warm-up per chain")
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--n-init", type=int, default=10, help="EM restarts (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="replace existing results")
    p.add_argument(
        "--model",
        metavar="FILE.py:FUNCTION",
        help="your own PyMC model for the Bayesian fit: a function (X, n_components, "
        "covariance_type, priors) -> pm.Model in a Python file, which is run to load it "
        "(X in the data's units; see BayesGaussianMixture's model parameter)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bayesgmm",
        description="Gaussian mixture models: the EM point estimate and the Bayesian "
        "posterior side by side.",
    )
    parser.add_argument("--version", action="version", version=f"bayesgmm {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--quiet", action="store_true", help="print results only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="run the analysis on the shipped Old Faithful data")
    demo.add_argument(
        "--max-components",
        type=int,
        default=4,
        metavar="K",
        help="largest number of components tried (default 4)",
    )
    demo.add_argument("--n-init", type=int, default=10, help="EM restarts (default 10)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument(
        "--draws",
        type=int,
        default=1000,
        help="NUTS tune and kept draws per chain (default 1000; 0 skips the Bayesian fit)",
    )
    demo.add_argument("--chains", type=int, default=4, help="NUTS chains (default 4)")
    demo.add_argument(
        "--out", default="results/demo", help="output directory (default results/demo)"
    )
    demo.set_defaults(func=cmd_demo)

    fit = sub.add_parser("fit", help="fit EM and/or the Bayesian mixture to a data file")
    _add_data_args(fit)
    _add_fit_args(fit, k_default="2")
    fit.add_argument(
        "--covariance",
        default="full",
        help="covariance type: full, tied, diag, spherical, or one of mclust's 14 models "
        "(EII ... VVV; EM only except VVV, EEE, VVI and VII, which are full, tied, diag and "
        "spherical); default full",
    )
    fit.add_argument("--method", default="both", choices=["em", "bayes", "both"])
    fit.add_argument("--out", required=True, help="results directory")
    fit.set_defaults(func=cmd_fit)

    compare = sub.add_parser("compare", help="BIC/AIC/ICL and WAIC/LOO over K and covariances")
    _add_data_args(compare)
    _add_fit_args(compare, k_default="1:6")
    compare.add_argument(
        "--covariance",
        default="full,tied,diag,spherical",
        help="comma-separated covariance types: full, tied, diag, spherical and/or mclust's "
        "models EII, VII, EEI, VEI, EVI, VVI, EEE, VEE, EVE, VVE, EEV, VEV, EVV, VVV; 'all' "
        "for mclust's 14 (the Bayesian fit has the first four only; default "
        "full,tied,diag,spherical)",
    )
    compare.add_argument(
        "--init",
        default="kmeans",
        choices=_INIT_CHOICES,
        help="EM start: k-means (default), or 'hc', mclust's model-based hierarchical "
        "clustering (deterministic: one start, whatever --n-init, up to 2000 rows)",
    )
    compare.add_argument("--method", default="both", choices=["em", "both"])
    compare.add_argument(
        "--no-retry",
        action="store_true",
        help="do not sample a posterior that failed its convergence checks a second time "
        "(it is excluded from WAIC/LOO either way)",
    )
    compare.add_argument(
        "--retry-budget",
        type=float,
        default=0.3,
        metavar="SHARE",
        help="retries of failed posteriors may add at most this share of the grid's time, "
        "nearest misses first (default 0.3; inf retries every failure)",
    )
    compare.add_argument(
        "--no-evidence",
        action="store_true",
        help="skip the log marginal likelihood log p(y | K) (bridge sampling) and p(K | y)",
    )
    compare.add_argument(
        "--k-prior",
        default="uniform",
        help="prior on K for p(K | y): 'uniform' over the grid (default) or 'poisson:RATE', a "
        "Poisson truncated to the grid; renormalised over the K whose evidence is estimable",
    )
    compare.add_argument("--out", required=True, help="results directory")
    compare.set_defaults(func=cmd_compare)

    report = sub.add_parser("report", help="render a report from a 'bayesgmm fit' directory")
    report.add_argument("results", help="a directory written by 'bayesgmm fit'")
    report.add_argument("--format", default="html", choices=["html", "md"])
    report.add_argument("--force", action="store_true")
    report.set_defaults(func=cmd_report)

    predict = sub.add_parser("predict", help="membership and anomaly scores for new data")
    predict.add_argument("results", help="a directory written by 'bayesgmm fit'")
    predict.add_argument("data", help="new data with the fitted columns")
    predict.add_argument("--out", required=True, help="output CSV")
    predict.add_argument("--interval", type=float, default=0.89)
    predict.add_argument("--dropna", action="store_true")
    _add_text_args(predict)
    predict.add_argument("--force", action="store_true")
    predict.set_defaults(func=cmd_predict)

    seg = sub.add_parser(
        "segment", help="segment an image (PNG/JPEG) with label and uncertainty maps"
    )
    seg.add_argument(
        "image",
        help="image file: PNG, JPEG or anything Pillow reads; a .zarr array (H, W) or "
        "(H, W, 3), segmented block by block without loading it (maps go to maps.zarr; "
        "PNGs, figure and report show a preview of at most 1024 pixels a side); or a volume: "
        "a .npy array (z, y, x) or (z, y, x, channel), or a multipage TIFF",
    )
    seg.add_argument("-k", type=int, required=True, help="number of segments")
    seg.add_argument("--out", required=True, help="results directory")
    seg.add_argument("--method", default="em", choices=["em", "bayes"])
    seg.add_argument(
        "--features",
        default="color",
        help="comma-separated: intensity or color, optionally position (default color)",
    )
    seg.add_argument(
        "--position-weight", type=float, default=1.0, help="weight of position vs colour"
    )
    seg.add_argument(
        "--n-fit-pixels",
        type=int,
        default=None,
        help="pixels sampled for the fit (default 50000 for EM, 5000 for bayes)",
    )
    seg.add_argument(
        "--map-draws", type=int, default=200, help="posterior draws behind the maps (bayes)"
    )
    seg.add_argument("--draws", type=int, default=1000, help="NUTS draws per chain")
    seg.add_argument("--tune", type=int, default=1000, help="NUTS warm-up per chain")
    seg.add_argument("--chains", type=int, default=4)
    seg.add_argument(
        "--spatial",
        default="none",
        choices=["none", "potts"],
        help="spatial prior on the labels: potts (neighbours share labels; volumes: em only)",
    )
    seg.add_argument(
        "--beta", type=float, default=None, help="strength of the Potts prior (default: estimated)"
    )
    seg.add_argument(
        "--truth",
        default=None,
        metavar="MASK",
        help="true label image (integer codes): writes calibration.json, reliability.csv/.png",
    )
    seg.add_argument(
        "--maps-zarr",
        action="store_true",
        help="write the maps to maps.zarr instead of maps.npz (always so for a .zarr image)",
    )
    seg.add_argument("--n-init", type=int, default=5, help="EM restarts (default 5)")
    seg.add_argument("--seed", type=int, default=0)
    seg.add_argument("--force", action="store_true", help="replace existing results")
    seg.set_defaults(func=cmd_segment)
    return parser


def _preflight(args: argparse.Namespace) -> None:
    """Check arguments and input paths before anything heavy is imported or computed."""
    from ._files import check_data_path

    _PROTECTED.clear()
    for name in ("draws", "chains", "n_init"):
        value = getattr(args, name, None)
        if value is not None and value < 1 and not (args.command == "demo" and name == "draws"):
            raise ValueError(f"--{name.replace('_', '-')}={value}; it must be at least 1.")
    if getattr(args, "draws", 1) < 0:
        raise ValueError(f"--draws={args.draws}; it must be at least 0.")
    if getattr(args, "tune", 0) < 0:
        raise ValueError(f"--tune={args.tune}; it must be at least 0.")
    if args.command == "demo" and args.max_components < 1:
        raise ValueError(f"--max-components={args.max_components}; it must be at least 1.")
    if args.command in ("fit", "compare"):
        ks = _parse_k(args.k)
        if args.command == "fit" and len(ks) != 1:
            raise ValueError("fit takes one -k; use 'bayesgmm compare' for a range.")
    if args.command == "compare" and not args.retry_budget >= 0:
        raise ValueError(
            f"--retry-budget {args.retry_budget}: it must be at least 0 (a share of the "
            "grid's time; inf retries every failure)."
        )
    if args.command == "compare":
        _parse_covariances(args.covariance)
    if args.command == "fit":
        args.covariance = _parse_fit_covariance(args.covariance, args.method)
    if args.command == "segment" and args.k < 1:
        raise ValueError(f"-k {args.k}: the number of segments must be at least 1.")
    if getattr(args, "decimal", None) not in (None, ".", ","):
        raise ValueError(f"--decimal {args.decimal!r}: use '.' or ','.")
    sep = _separator(getattr(args, "sep", None))
    if sep is not None and len(sep) != 1:
        raise ValueError(f"--sep {args.sep!r}: give one character, or tab, comma, semicolon.")
    if args.command == "predict":
        src = Path(args.results)
        if not src.is_dir():
            _load_results(src)  # raises the message for a missing path or a file
    if hasattr(args, "data"):
        _PROTECTED.append(check_data_path(args.data))
    if args.command == "segment":
        image = Path(args.image)
        if not (_is_zarr_path(image) and image.is_dir()):  # a zarr store is a directory
            if not image.is_file():
                what = "is a directory, not an image" if image.is_dir() else "does not exist"
                raise FileNotFoundError(f"image file {str(image)!r} {what}; check the path.")
            if image.stat().st_size == 0:
                raise ValueError(f"image file {str(image)!r} is empty (0 bytes).")
        _PROTECTED.append(image)
        if args.truth is not None:
            _PROTECTED.append(Path(args.truth))
    if args.command == "predict":
        _check_predict_target(Path(args.out), Path(args.results), args.force)
    elif args.command in ("fit", "compare", "segment") or (
        args.command == "demo" and args.draws > 0
    ):
        _check_out(Path(args.out), args.command == "demo" or args.force)
    if args.command in ("fit", "compare") and args.model is not None:
        if args.method == "em":
            raise ValueError(
                "--model is a model for the Bayesian fit, but --method em fits EM only; use "
                "--method both (or bayes for fit), or drop --model."
            )
        from ._custom import load_model_function

        # Running the user's file is what --model asks for; results files are never run.
        args._model_fn = load_model_function(args.model)
    if args.command in ("fit", "compare"):
        args._frame = _read(args)  # a data problem is answered before any fitting import


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bayesgmm`` console script.

    Exit codes: 0 success; 1 the results were written but the report (or a figure) failed;
    2 an error (nothing written); 130 interrupted.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_ERROR
    # Other libraries log at WARNING; bayesgmm's own progress at INFO unless --quiet.
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("bayesgmm").setLevel(logging.WARNING if args.quiet else logging.INFO)
    try:
        _preflight(args)
        return args.func(args)
    except KeyboardInterrupt:
        print("bayesgmm: interrupted", file=sys.stderr)
        return 130
    except (SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # one readable line, unless --debug (Rust panics included)
        if args.debug:
            raise
        print(f"bayesgmm: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        _PROTECTED.clear()


def _one_line(exc: BaseException) -> str:
    """The first line of an exception's message; its type when that says more."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = lines[0] if lines else "(no message)"
    if len(lines) > 1:
        text += " [more with --debug]"
    ours = type(exc).__module__.startswith("bayesgmm")
    if not ours and not isinstance(exc, ValueError | TypeError | OSError):
        text = f"{type(exc).__name__}: {text}"
    return text


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
