"""Wall time and peak memory of segmenting a 1024 x 1024 RGB photograph.

The image is scikit-learn's shipped flower photograph resized to 1024 x 1024 (1 048 576
pixels), segmented on colour into K = 4 segments. Each row is a separate process, so its peak
RSS is its own; "cold" runs with empty compile caches, "warm" is a second run reusing them.

- ``em``: bayesgmm's EM on a 50 000-pixel sample, then membership probabilities, labels and
  the entropy map of all pixels (``segment_image(method="em")``). Target: under 10 s.
- ``potts``: as ``em`` with the Potts spatial prior (``spatial="potts"``, beta estimated):
  the start on locally averaged features, then mean-field EM sweeps over all pixels.
  Target: under 3 s warm.
- ``sklearn``: the peer, scikit-learn's GaussianMixture (same K and defaults: full
  covariances, k-means start, n_init 1, tol 1e-3) on the same sample, then
  ``predict_proba`` of all pixels and the entropy map.
- ``bayes``: NUTS (4 chains x (1000 + 1000)) on a 5 000-pixel sample, then the posterior
  maps (mean probabilities, total/aleatoric/epistemic entropy, interval width) of all pixels
  from 200 thinned draws (``segment_image(method="bayes")``). Target: under 5 minutes warm.
- ``bayes_potts``: as ``bayes`` with the spatial prior (``spatial="potts"``): the Potts EM,
  NUTS of the Potts-field model on the 5 000 pixels, then every one of the 200 map draws'
  mean-field label map over all pixels, summarised. Rows ``potts``, ``bayes`` and
  ``bayes_potts`` also report CPU time (user + system, all threads), which on a shared
  machine says more than wall time.
- ``cli8000``: the whole ``bayesgmm segment`` command (EM, K = 4, colour) on the same photo
  upscaled (bicubic) to 8000 x 8000 = 64 million pixels, saved as a PNG: wall time of the
  process, its peak RSS and the size of what it writes. Target: peak RSS under 4 GB (issue
  14: 12.6 GB before the maps were computed in chunks into compact dtypes). Run warm (a small
  segmentation fills the compile cache first); not part of the default rows.
- ``volume``: EM with the 6-neighbour Potts prior on a 256^3 volume (16.8 million voxels,
  ``make_regions_volume`` at noise 0.2, K = 3, beta estimated) by ``segment_volume``, warm
  (a 16^3 segmentation in the same process compiles first): wall time, CPU time (on an
  otherwise idle machine wall is about CPU / cores), peak RSS, ARI. Target: under 60 s warm.

    python bench/segment_speed.py            # em, potts, sklearn, bayes, bayes_potts, volume
    python bench/segment_speed.py --only em --only sklearn
    python bench/segment_speed.py --only cli8000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

from _env import worker_env

SIZE = 1024
BIG = 8000
VOLUME = 256
K = 4


def photo(size: int = SIZE):
    import numpy as np
    from PIL import Image

    from bayesgmm.datasets import load_sample_photo

    im = Image.fromarray(load_sample_photo("flower")).resize((size, size), Image.BICUBIC)
    return np.asarray(im)


def run_cli_big(cache: str) -> dict:
    """``bayesgmm segment`` on the 8000 x 8000 photo, in a child process of this worker."""
    from pathlib import Path

    from PIL import Image

    work = Path(cache) / "cli8000"
    work.mkdir()
    Image.fromarray(photo(BIG)).save(work / "big.png", compress_level=1)
    Image.fromarray(photo(256)).save(work / "small.png")
    cli = [sys.executable, "-m", "bayesgmm", "--quiet", "segment", "-k", str(K)]
    cli += ["--features", "color"]
    env = worker_env(cache)
    # Warm-up: fills the compile cache, so that the row times the segmentation.
    subprocess.run(
        [*cli, str(work / "small.png"), "--out", str(work / "warm")], env=env, check=True
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run(
        [*cli, str(work / "big.png"), "--out", str(work / "out")],
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"bayesgmm segment failed:\n{proc.stderr[-3000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:
        raise SystemExit("the warm-up run's peak RSS hides the measured run's; run them apart")
    files = {p.name: p.stat().st_size for p in (work / "out").iterdir()}
    timings = json.loads((work / "out" / "segmentation.json").read_text())["timings_seconds"]
    return {
        "seconds": wall,
        "fit_s": timings["fit"],
        "maps_s": timings["maps"],
        "features_s": timings["features"],
        "child_peak_rss_mb": peak / 1024.0,
        "maps_npz_mb": files["maps.npz"] / 1e6,
        "output_mb": sum(files.values()) / 1e6,
        "warned": "GB of maps" in proc.stderr,
    }


def run_em(image) -> dict:
    from bayesgmm.segmentation import image_features, segment_image

    t0 = time.perf_counter()
    r = segment_image(image, K, features=("color",), n_fit_pixels=50_000, random_state=0)
    wall = time.perf_counter() - t0
    X, _ = image_features(image, ("color",))
    return {
        "seconds": wall,
        "fit_s": r.timings["fit"],
        "maps_s": r.timings["maps"],
        "loglik": float(r.estimator.score(X[r.fit_pixels])),
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(r, t0: float, cpu0: float, **extra) -> dict:
    """A row of a segmentation call started at wall time t0 and process CPU time cpu0."""
    wall = time.perf_counter() - t0
    return {
        "seconds": wall,
        "cpu_s": _cpu() - cpu0,
        "fit_s": r.timings["fit"],
        "maps_s": r.timings["maps"],
        **extra,
    }


def run_potts(image) -> dict:
    from bayesgmm.segmentation import segment_image

    cpu0, t0 = _cpu(), time.perf_counter()
    r = segment_image(
        image, K, features=("color",), n_fit_pixels=50_000, spatial="potts", random_state=0
    )
    return _timed(r, t0, cpu0, beta=r.beta, n_iter=r.estimator.n_iter_)


def run_sklearn(image) -> dict:
    import numpy as np
    from sklearn.mixture import GaussianMixture

    from bayesgmm.segmentation import image_features

    t0 = time.perf_counter()
    X, _ = image_features(image, ("color",))
    rng = np.random.RandomState(0)
    idx = np.sort(rng.choice(X.shape[0], size=50_000, replace=False))
    t1 = time.perf_counter()
    gm = GaussianMixture(K, random_state=0).fit(X[idx])  # defaults, as bayesgmm's
    t2 = time.perf_counter()
    prob = gm.predict_proba(X)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(prob > 0, prob * np.log(prob), 0.0).sum(axis=1)
    labels = prob.argmax(axis=1).reshape(image.shape[:2])
    assert entropy.shape[0] == labels.size
    t3 = time.perf_counter()
    loglik = float(gm.score(X[idx]))
    return {"seconds": t3 - t0, "fit_s": t2 - t1, "maps_s": t3 - t2, "loglik": loglik}


def run_bayes(image, spatial=None) -> dict:
    import warnings

    from bayesgmm.exceptions import SamplingWarning
    from bayesgmm.segmentation import segment_image

    cpu0, t0 = _cpu(), time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        r = segment_image(
            image,
            K,
            features=("color",),
            method="bayes",
            n_fit_pixels=5_000,
            max_draws=200,
            spatial=spatial,
            random_state=0,
            progressbar=False,
        )
    return _timed(
        r, t0, cpu0, n_map_draws=r.n_map_draws, verdict_passed=bool(r.estimator.diagnostics_.passed)
    )


def run_bayes_potts(image) -> dict:
    return run_bayes(image, spatial="potts")


def run_volume() -> dict:
    from bayesgmm.datasets import make_regions_volume
    from bayesgmm.segmentation import calibration
    from bayesgmm.volume import segment_volume

    small, _ = make_regions_volume((16, 16, 16), noise=0.2, random_state=0)
    segment_volume(small, 3, spatial="potts", random_state=0)  # compiles: the row is warm
    volume, truth = make_regions_volume((VOLUME,) * 3, noise=0.2, random_state=0)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = usage.ru_utime + usage.ru_stime
    t0 = time.perf_counter()
    r = segment_volume(volume, 3, spatial="potts", random_state=0)
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "seconds": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime - cpu0,
        "fit_s": r.timings["fit"],
        "maps_s": r.timings["maps"],
        "beta": r.beta,
        "n_iter": r.estimator.n_iter_,
        "ari": calibration(r, truth).ari,
    }


RUNNERS = {
    "em": run_em,
    "potts": run_potts,
    "sklearn": run_sklearn,
    "bayes": run_bayes,
    "bayes_potts": run_bayes_potts,
}
KINDS = [*RUNNERS, "cli8000", "volume"]


def worker(kind: str, cache: str) -> None:
    if kind == "cli8000":
        result = run_cli_big(cache)
    elif kind == "volume":
        result = run_volume()
    else:
        result = RUNNERS[kind](photo())
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps(result))


def run_process(kind: str, cache: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--cache", cache]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=worker_env(cache), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        raise SystemExit(f"{kind} worker failed:\n{proc.stderr[-3000:]}")
    return {"process_s": wall, **json.loads(lines[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(KINDS), action="append")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.cache)
        return
    kinds = args.only or ["em", "potts", "sklearn", "bayes", "bayes_potts", "volume"]
    if "volume" in kinds:
        kinds.remove("volume")
        with tempfile.TemporaryDirectory(prefix="bayesgmm_segment_") as cache:
            r = run_process("volume", cache)
        print(
            f"segment_volume, {VOLUME}^3 volume ({VOLUME**3 / 1e6:.1f} million voxels), EM + "
            f"6-neighbour Potts prior, K = 3, noise 0.2, warm; {os.cpu_count()} CPUs\n"
            f"  wall time {r['seconds']:.1f} s (fit {r['fit_s']:.1f} s, maps {r['maps_s']:.1f} "
            f"s), CPU time {r['cpu_s']:.1f} s; target < 60 s warm\n"
            f"  {r['n_iter']} iterations, beta {r['beta']:.2f}, ARI {r['ari']:.3f}; peak RSS "
            f"{r['peak_rss_mb']:.0f} MB",
            flush=True,
        )
        if not kinds:
            return
    if "cli8000" in kinds:
        kinds.remove("cli8000")
        with tempfile.TemporaryDirectory(prefix="bayesgmm_segment_") as cache:
            r = run_process("cli8000", cache)
        print(
            f"bayesgmm segment, {BIG} x {BIG} RGB photograph ({BIG * BIG / 1e6:.0f} million "
            f"pixels), EM, K = {K}, colour, warm; {os.cpu_count()} CPUs\n"
            f"  wall time {r['seconds']:.1f} s (features {r['features_s']:.1f} s, fit "
            f"{r['fit_s']:.1f} s, maps {r['maps_s']:.1f} s; the rest reads the PNG and writes "
            "the results)\n"
            f"  peak RSS {r['child_peak_rss_mb']:.0f} MB (target < 4000 MB)\n"
            f"  output {r['output_mb']:.0f} MB, of which maps.npz {r['maps_npz_mb']:.0f} MB; "
            f"warned before writing more than 1 GB of maps: {r['warned']}",
            flush=True,
        )
        if not kinds:
            return
    print(
        f"{SIZE} x {SIZE} RGB photograph, K = {K}, colour features; {os.cpu_count()} CPUs; "
        "seconds = segmentation call, process = whole process incl. imports"
    )
    header = (
        f"{'row':>11} {'start':>5} {'seconds':>8} {'fit s':>7} {'maps s':>7} "
        f"{'process s':>9} {'peak RSS MB':>11}"
    )
    print(header)
    print("-" * len(header), flush=True)
    rows = {}
    for kind in kinds:
        with tempfile.TemporaryDirectory(prefix="bayesgmm_segment_") as cache:
            for start in ("cold", "warm"):
                r = run_process(kind, cache)
                rows[kind, start] = r
                extra = f"  (mean log-lik {r['loglik']:.4f})" if "loglik" in r else ""
                if kind == "potts":
                    extra = f"  (CPU {r['cpu_s']:.2f} s; beta {r['beta']:.2f}, "
                    extra += f"{r['n_iter']} iterations)"
                if kind in ("bayes", "bayes_potts"):
                    extra = f"  (CPU {r['cpu_s']:.1f} s; {r['n_map_draws']} map draws, "
                    extra += f"checks passed: {r['verdict_passed']})"
                print(
                    f"{kind:>11} {start:>5} {r['seconds']:8.2f} {r['fit_s']:7.2f} "
                    f"{r['maps_s']:7.2f} {r['process_s']:9.1f} {r['peak_rss_mb']:11.0f}{extra}",
                    flush=True,
                )
    if ("em", "warm") in rows and ("sklearn", "warm") in rows:
        ratio = rows["sklearn", "warm"]["seconds"] / rows["em", "warm"]["seconds"]
        print(f"warm EM segmentation: scikit-learn time / bayesgmm time = {ratio:.2f}")
    if ("em", "warm") in rows:
        print(f"EM target < 10 s: {rows['em', 'warm']['seconds']:.2f} s")
    if ("potts", "warm") in rows:
        print(f"EM + Potts prior target < 3 s warm: {rows['potts', 'warm']['seconds']:.2f} s")
    if ("bayes", "warm") in rows:
        print(f"NUTS target < 300 s warm: {rows['bayes', 'warm']['seconds']:.1f} s")
    if ("bayes_potts", "warm") in rows:
        r = rows["bayes_potts", "warm"]
        print(
            f"NUTS + spatial maps, warm: {r['seconds']:.1f} s (fit {r['fit_s']:.1f} s, maps "
            f"{r['maps_s']:.1f} s; CPU {r['cpu_s']:.1f} s)"
        )


if __name__ == "__main__":
    main()
