"""The ``bayesgmm`` command line. The only module that prints.

Errors are one readable line on stderr with a non-zero exit code; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from ._version import __version__

EXIT_ERROR = 2


def _print_table(frame: pd.DataFrame) -> None:
    print(frame.to_string(float_format=lambda v: f"{v:.4g}"))


def cmd_demo(args: argparse.Namespace) -> int:
    """Fit EM and then NUTS on the shipped Old Faithful data and print a summary."""
    from .datasets import load_faithful
    from .em import EMGaussianMixture

    if args.max_components < 1:
        raise ValueError(f"--max-components={args.max_components}; it must be at least 1.")
    X = load_faithful()
    print(f"Old Faithful: {X.shape[0]} eruptions, features {', '.join(X.columns)}")
    print(X.describe().loc[["mean", "std", "min", "max"]].T.to_string(float_format="{:.2f}".format))
    print()
    print(
        f"EM, full covariances, K = 1..{args.max_components}, n_init={args.n_init}, "
        f"seed {args.seed}:"
    )
    rows, fits = [], {}
    for k in range(1, args.max_components + 1):
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            gm = EMGaussianMixture(
                k, n_init=args.n_init, tol=1e-8, max_iter=1000, random_state=args.seed
            ).fit(X)
        fits[k] = gm
        rows.append(
            {
                "K": k,
                "log-lik": gm.score(X) * len(X),
                "params": gm.n_parameters_,
                "BIC (lower better)": gm.bic(X),
                "AIC (lower better)": gm.aic(X),
                "ICL (lower better)": gm.icl(X),
                "degenerate": bool(gm.degenerate_.any()),
                "seconds": time.perf_counter() - start,
            }
        )
        for w in caught:
            if not args.quiet:
                print(f"  K={k}: {w.category.__name__}: {w.message}", file=sys.stderr)
    table = pd.DataFrame(rows).set_index("K")
    _print_table(table)
    ok = table[~table["degenerate"]]
    best = int(ok["BIC (lower better)"].idxmin())
    gm = fits[best]
    print()
    print(f"BIC picks K = {best}. Its components (sorted by mean eruption length):")
    for j in range(best):
        sd = np.sqrt(np.diag(gm.covariances_[j]))
        corr = gm.covariances_[j][0, 1] / (sd[0] * sd[1])
        print(
            f"  component {j}: weight {gm.weights_[j]:.3f}, mean "
            f"({', '.join(f'{m:.2f}' for m in gm.means_[j])}), sd "
            f"({', '.join(f'{s:.2f}' for s in sd)}), correlation {corr:.2f}"
        )
    print(f"  converged in {gm.n_iter_} iterations of the best of {args.n_init} starts")
    if args.draws > 0:
        _demo_bayes(X, best, args)
    return 0


def _demo_bayes(X: pd.DataFrame, k: int, args: argparse.Namespace) -> None:
    """NUTS on the BIC-chosen K, started from EM: diagnostics, posterior vs EM, membership."""
    from pathlib import Path

    from .bayes import BayesGaussianMixture
    from .exceptions import SamplingWarning

    print()
    print(
        f"Bayesian mixture, K = {k}, full covariances: NUTS, {args.chains} chains x "
        f"({args.draws} tune + {args.draws} draws), started from EM"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)  # the verdict is printed below
        bgm = BayesGaussianMixture(
            k,
            draws=args.draws,
            tune=args.draws,
            chains=args.chains,
            random_state=args.seed,
            progressbar=not args.quiet,
        ).fit(X)
    tree = bgm.idata_
    print(
        f"  sampler {tree.attrs['sampler']}: sampling {tree.attrs['sampling_time']:.1f} s, "
        f"whole fit {tree.attrs['fit_time']:.1f} s"
    )
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
    from .report import write_report
    from .selection import compare_models

    print()
    print(
        f"Model comparison, full covariances, K = 1..{args.max_components}: BIC/AIC/ICL "
        "from EM beside WAIC and PSIS-LOO from NUTS posteriors"
    )
    comparison = compare_models(
        X,
        n_components=range(1, args.max_components + 1),
        covariance_types=("full",),
        methods=("em", "bayes"),
        random_state=args.seed,
        n_init=args.n_init,
        progress=None if args.quiet else lambda msg: print(f"  {msg}", flush=True),
        draws=args.draws,
        tune=args.draws,
        chains=args.chains,
    )
    print(f"  {comparison.verdict}")
    out = Path(args.out)
    # The demo replaces its own earlier results, atomically: a killed run leaves them intact.
    with _staged_dir(out, force=True) as tmp:
        bgm.save(tmp / "posterior.nc")
        comparison.table.to_csv(tmp / "comparison.csv", index=False)
        write_report(
            tmp / "report.html",
            bgm=bgm,
            comparison=comparison,
            embed=True,
            title="bayesgmm demo: Old Faithful",
        )
    print(f"  posterior, comparison table and report.html written to {out}")


def _interval(values: np.ndarray, q: tuple[float, float]) -> str:
    lo, hi = np.quantile(values, q)
    return f"[{lo:.4g}, {hi:.4g}]"


# --------------------------------------------------------------------------- fit / compare


def _parse_k(text: str) -> list[int]:
    """``"3"`` or an inclusive range ``"1:6"``."""
    try:
        if ":" in text:
            lo, hi = (int(part) for part in text.split(":", 1))
            ks = list(range(lo, hi + 1))
        else:
            ks = [int(text)]
    except ValueError:
        raise ValueError(f"-k {text!r} is not a number or a range like 1:6.") from None
    if not ks or min(ks) < 1:
        raise ValueError(f"-k {text!r}: numbers of components must be at least 1.")
    return ks


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise ValueError(
            f"Output {str(out)!r} already exists; choose another --out or pass --force to "
            "replace it."
        )


@contextmanager
def _staged_dir(out: Path, force: bool):
    """Write into a hidden sibling directory, then move it into place in one rename.

    A run that fails or is killed leaves ``out`` untouched (and at most a ``.tmp`` sibling),
    never a half-written results directory that looks complete.
    """
    _check_out(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private (0700); results are ordinary files
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)


def _write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")


def _json_default(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _read(args: argparse.Namespace) -> pd.DataFrame:
    from .datasets import read_data

    columns = [c.strip() for c in args.columns.split(",")] if args.columns else None
    frame, dropped = read_data(args.data, columns=columns, dropna=args.dropna)
    if dropped.size and not args.quiet:
        print(f"dropped {dropped.size} row(s) with missing values", file=sys.stderr)
    # Index = 0-based row in the file, so output rows match input rows after --dropna.
    frame.index = np.delete(np.arange(len(frame) + dropped.size), dropped)
    return frame


def _em_payload(gm, X: pd.DataFrame) -> dict:
    n = len(X)
    return {
        "n_components": gm.n_components,
        "covariance_type": gm.covariance_type,
        "features": [str(c) for c in X.columns],
        "weights": gm.weights_,
        "means": gm.means_,
        "covariances": gm.covariances_,
        "precisions_cholesky": gm.precisions_cholesky_,
        "log_likelihood": float(gm.score(X) * n),
        "bic (lower better)": float(gm.bic(X)),
        "aic (lower better)": float(gm.aic(X)),
        "icl (lower better)": float(gm.icl(X)),
        "n_parameters": int(gm.n_parameters_),
        "degenerate": gm.degenerate_,
        "converged": bool(gm.converged_),
    }


def _em_from_json(payload: dict):
    from .em import fitted_from_parameters

    return fitted_from_parameters(
        payload["weights"],
        payload["means"],
        payload["covariances"],
        payload["precisions_cholesky"],
        covariance_type=payload["covariance_type"],
        degenerate=payload["degenerate"],
        converged=payload["converged"],
        feature_names=payload["features"],
    )


def _provenance(args: argparse.Namespace, command: str) -> dict:
    return {
        "bayesgmm_version": __version__,
        "command": command,
        "arguments": {k: v for k, v in vars(args).items() if k != "func"},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def cmd_fit(args: argparse.Namespace) -> int:
    """Fit EM and/or the Bayesian mixture to a data file and save the results."""
    from .bayes import BayesGaussianMixture
    from .em import EMGaussianMixture
    from .exceptions import SamplingWarning

    out = Path(args.out)
    _check_out(out, args.force)
    X = _read(args)
    ks = _parse_k(args.k)
    if len(ks) != 1:
        raise ValueError("fit takes one -k; use 'bayesgmm compare' for a range.")
    k = ks[0]
    with _staged_dir(out, args.force) as tmp:
        _write_json(tmp / "run.json", _provenance(args, "fit"))
        if args.method in ("em", "both"):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                gm = EMGaussianMixture(
                    k, covariance_type=args.covariance, n_init=args.n_init, random_state=args.seed
                ).fit(X)
            for w in caught:
                print(f"EM: {w.category.__name__}: {w.message}", file=sys.stderr)
            _write_json(tmp / "em.json", _em_payload(gm, X))
            em_member = pd.DataFrame(
                gm.predict_proba(X), columns=[f"p_{j}" for j in range(k)], index=X.index
            )
            em_member.insert(0, "label", gm.predict(X))
            em_member.to_csv(tmp / "membership_em.csv", index_label="row")
            if not args.quiet:
                print(f"EM: log-likelihood {gm.score(X) * len(X):.3f}, BIC {gm.bic(X):.2f}")
        if args.method in ("bayes", "both"):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", SamplingWarning)
                bgm = BayesGaussianMixture(
                    k,
                    covariance_type=args.covariance,
                    draws=args.draws,
                    tune=args.tune,
                    chains=args.chains,
                    n_init=args.n_init,
                    random_state=args.seed,
                    progressbar=not args.quiet,
                ).fit(X)
            for w in caught:
                # Failed convergence checks reach stderr even with --quiet; without it the
                # verdict printed below says the same.
                if args.quiet or not issubclass(w.category, SamplingWarning):
                    print(f"NUTS: {w.category.__name__}: {w.message}", file=sys.stderr)
            bgm.save(tmp / "posterior.nc")
            bgm.diagnostics_.table.to_csv(tmp / "posterior_summary.csv", index=False)
            bgm.membership().to_frame().set_axis(X.index).to_csv(
                tmp / "membership.csv", index_label="row"
            )
            from .report import write_report

            # report.html with its figures as PNG files in report_figures/
            write_report(
                tmp / "report.html", bgm=bgm, title=f"bayesgmm fit: {Path(args.data).name}"
            )
            if not args.quiet:
                print(f"NUTS ({bgm.idata_.attrs['sampler']}): {bgm.diagnostics_.verdict}")
    if not args.quiet:
        print(f"results written to {out}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare numbers of components and covariance types; save the table and figure."""
    from .selection import compare_models

    out = Path(args.out)
    _check_out(out, args.force)
    X = _read(args)
    covs = tuple(c.strip() for c in args.covariance.split(","))
    methods = ("em",) if args.method == "em" else ("em", "bayes")
    options = {}
    if "bayes" in methods:
        options = {"draws": args.draws, "tune": args.tune, "chains": args.chains}
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
            **options,
        )
        result.table.to_csv(tmp / "comparison.csv", index=False)
        (tmp / "verdict.txt").write_text(result.verdict + "\n")
        result.plot().savefig(tmp / "comparison.png", dpi=120)
    if not args.quiet:
        print(result.verdict)
        print(f"results written to {out}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Labels, membership probabilities (with intervals) and anomaly scores for new data."""
    src = Path(args.results)
    target = Path(args.out)
    if target.exists() and not args.force:
        raise ValueError(f"{str(target)!r} already exists; pass --force to replace it.")
    if (src / "posterior.nc").is_file():
        from .bayes import BayesGaussianMixture

        model = BayesGaussianMixture.load(src / "posterior.nc")
        features = [str(f) for f in model.idata_["observed_data"]["feature"].values]
    elif (src / "em.json").is_file():
        payload = json.loads((src / "em.json").read_text())
        model = _em_from_json(payload)
        features = payload["features"]
    else:
        raise FileNotFoundError(
            f"{str(src)!r} holds no posterior.nc or em.json; run 'bayesgmm fit' first."
        )
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
    tmp = target.with_name(f".{target.name}.tmp")
    frame.to_csv(tmp, index_label="row")
    os.replace(tmp, target)
    if not args.quiet:
        print(f"{len(frame)} predictions written to {target}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Render a report from saved results (no refitting)."""
    from .bayes import BayesGaussianMixture
    from .report import write_report

    src = Path(args.results)
    if not (src / "posterior.nc").is_file():
        raise FileNotFoundError(
            f"{str(src)!r} holds no posterior.nc; run 'bayesgmm fit --method bayes|both' first."
        )
    target = src / f"report.{args.format}"
    if target.exists() and not args.force:
        raise ValueError(f"{str(target)!r} already exists; pass --force to replace it.")
    bgm = BayesGaussianMixture.load(src / "posterior.nc")
    path = write_report(target, bgm=bgm, embed=args.format == "html")
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


def cmd_segment(args: argparse.Namespace) -> int:
    """Segment an image: label map, uncertainty maps, figure and per-segment summary."""
    from PIL import Image

    from .exceptions import SamplingWarning
    from .segmentation import segment_image

    out = Path(args.out)
    _check_out(out, args.force)
    image = _read_image(Path(args.image))
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
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SamplingWarning)
        result = segment_image(
            image,
            args.k,
            features=features,
            method=args.method,
            n_fit_pixels=args.n_fit_pixels,
            n_map_draws=args.map_draws,
            position_weight=args.position_weight,
            random_state=args.seed,
            **options,
        )
    for w in caught:
        print(f"{w.category.__name__}: {w.message}", file=sys.stderr)
    with _staged_dir(out, args.force) as tmp:
        _write_json(
            tmp / "segmentation.json",
            {
                **_provenance(args, "segment"),
                "image_shape": list(image.shape),
                "features": result.features.names,
                "feature_offset": result.features.offset,
                "feature_scale": result.features.scale,
                "n_fit_pixels": int(result.fit_pixels.size),
                "n_map_draws": result.n_map_draws,
                "timings_seconds": result.timings,
                "diagnostics": (
                    result.estimator.diagnostics_.verdict if args.method == "bayes" else None
                ),
            },
        )
        result.to_npz(tmp / "maps.npz")
        summary = result.summary().join(result.component_means())
        summary.to_csv(tmp / "segments.csv")
        Image.fromarray(result.labels.astype(np.uint8)).save(tmp / "labels.png")
        top = np.log(result.n_components) if result.n_components > 1 else 1.0
        gray = np.clip(result.uncertainty_total / top, 0.0, 1.0)
        Image.fromarray((gray * 255).round().astype(np.uint8)).save(tmp / "uncertainty.png")
        from .report import write_report

        # One figure, drawn once: saved as segmentation.png and embedded in report.html
        # (a self-contained file).
        write_report(
            tmp / "report.html",
            segmentation=result,
            embed=True,
            figures_dir=tmp,
            title=f"bayesgmm segment: {Path(args.image).name}",
        )
    if not args.quiet:
        _print_table(summary)
        print(
            f"fit {result.timings['fit']:.1f} s on {result.fit_pixels.size} pixels, maps "
            f"{result.timings['maps']:.1f} s; results written to {out}"
        )
    return 0


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="data file: .csv, .tsv, .parquet or .npy")
    p.add_argument("--columns", help="comma-separated columns to use (default: all)")
    p.add_argument("--dropna", action="store_true", help="drop rows with missing values")


def _add_fit_args(p: argparse.ArgumentParser, *, k_default: str) -> None:
    p.add_argument("-k", default=k_default, help=f"number of components (default {k_default})")
    p.add_argument("--draws", type=int, default=1000, help="NUTS draws per chain")
    p.add_argument("--tune", type=int, default=1000, help="NUTS warm-up per chain")
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--n-init", type=int, default=10, help="EM restarts (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="replace existing results")


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
    fit.add_argument("--covariance", default="full", choices=["full", "tied", "diag", "spherical"])
    fit.add_argument("--method", default="both", choices=["em", "bayes", "both"])
    fit.add_argument("--out", required=True, help="results directory")
    fit.set_defaults(func=cmd_fit)

    compare = sub.add_parser("compare", help="BIC/AIC/ICL and WAIC/LOO over K and covariances")
    _add_data_args(compare)
    _add_fit_args(compare, k_default="1:6")
    compare.add_argument(
        "--covariance", default="full,tied,diag,spherical", help="comma-separated types"
    )
    compare.add_argument("--method", default="both", choices=["em", "both"])
    compare.add_argument(
        "--no-retry",
        action="store_true",
        help="do not sample a posterior that failed its convergence checks a second time "
        "(it is excluded from WAIC/LOO either way)",
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
    predict.add_argument("--force", action="store_true")
    predict.set_defaults(func=cmd_predict)

    seg = sub.add_parser(
        "segment", help="segment an image (PNG/JPEG) with label and uncertainty maps"
    )
    seg.add_argument("image", help="image file: PNG, JPEG or anything Pillow reads")
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
    seg.add_argument("--n-init", type=int, default=5, help="EM restarts (default 5)")
    seg.add_argument("--seed", type=int, default=0)
    seg.add_argument("--force", action="store_true", help="replace existing results")
    seg.set_defaults(func=cmd_segment)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bayesgmm`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_ERROR
    # Other libraries log at WARNING; bayesgmm's own progress at INFO unless --quiet.
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("bayesgmm").setLevel(logging.WARNING if args.quiet else logging.INFO)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("bayesgmm: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one readable line, unless --debug
        if args.debug:
            raise
        print(f"bayesgmm: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
