"""Draw the figure of the documentation's landing page: ``docs/_static/landing.png``.

Run from the repository root: ``python docs/make_landing_figure.py`` (about 10 s). The figure is
committed, so building the docs fits nothing; rerun this script when the library's output
changes. Everything is seeded, so the same versions draw the same figure.

Left: Old Faithful with the EM fit's 2-standard-deviation ellipses (thick, black) over the
ellipses of 40 random posterior draws (thin, in the component's colour). Right: every eruption
coloured by the entropy of its membership probabilities (total uncertainty, nats, on a
power scale), the uncertain ones drawn larger.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bayesgmm import BayesGaussianMixture, load_faithful  # noqa: E402

OUT = HERE / "_static" / "landing.png"


def ellipse(mean: np.ndarray, cov: np.ndarray, **style) -> Ellipse:
    """The ellipse of 2 standard deviations of a 2-D Gaussian."""
    values, vectors = np.linalg.eigh(cov)
    angle = np.degrees(np.arctan2(vectors[1, -1], vectors[0, -1]))
    width, height = 4.0 * np.sqrt(values[::-1])
    return Ellipse(mean, width, height, angle=angle, fill=False, **style)


def main() -> None:
    X = load_faithful()
    bgm = BayesGaussianMixture(2, random_state=0, progressbar=False).fit(X)
    post = bgm.idata_["posterior"].to_dataset().stack(sample=("chain", "draw"))
    means = post["means"].transpose("sample", "component", "feature").values
    covs = post["covariances"].transpose("sample", "component", "feature", "feature_bis").values
    pick = np.random.default_rng(0).choice(means.shape[0], size=40, replace=False)
    member = bgm.membership()

    fig = Figure(figsize=(9.0, 3.6), layout="constrained")
    left, right = fig.subplots(1, 2, sharex=True, sharey=True)
    x, y = X["eruptions"].to_numpy(), X["waiting"].to_numpy()
    left.scatter(x, y, s=8, color="0.6", linewidths=0)
    for k in range(bgm.n_components):
        for s in pick:
            left.add_patch(ellipse(means[s, k], covs[s, k], color=f"C{k}", lw=0.6, alpha=0.5))
        em_cov = bgm.em_.covariances_[k]
        left.add_patch(ellipse(bgm.em_.means_[k], em_cov, color="black", lw=1.8))
    left.set_title("EM (black) and 40 posterior draws")
    order = np.argsort(member.entropy_total)
    dots = right.scatter(
        x[order],
        y[order],
        c=member.entropy_total[order],
        s=8 + 60 * member.entropy_total[order] / np.log(2),
        cmap="viridis",
        norm=PowerNorm(0.3, vmin=0, vmax=np.log(2)),  # spreads the many small entropies
        linewidths=0,
    )
    fig.colorbar(dots, ax=right, label="membership entropy (nats)")
    unsure = int(np.sum(member.label_probability < 0.9))
    right.set_title(f"Label uncertainty: {unsure} of {len(x)} below P = 0.9")
    for ax in (left, right):
        ax.set_xlabel("eruption length (min)")
    left.set_ylabel("waiting time (min)")
    fig.savefig(OUT, dpi=100)
    print(f"wrote {OUT.relative_to(HERE.parent)} ({OUT.stat().st_size // 1024} kB)")


if __name__ == "__main__":
    main()
