"""The ``bayesgmm`` command line. The only module that prints.

Errors are one readable line on stderr with a non-zero exit code; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from collections.abc import Sequence

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
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "posterior.nc"
    bgm.save(path)
    print(f"  posterior written to {path}")


def _interval(values: np.ndarray, q: tuple[float, float]) -> str:
    lo, hi = np.quantile(values, q)
    return f"[{lo:.4g}, {hi:.4g}]"


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bayesgmm`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_ERROR
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(message)s",
    )
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
