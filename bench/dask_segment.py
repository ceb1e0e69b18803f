"""Segmenting a zarr image larger than we care to hold: wall time and peak memory.

Writes a ``--side`` x ``--side`` RGB uint8 image of three regions (background, disc,
rectangle, as :func:`bayesgmm.datasets.make_regions_image` draws them, with noise; no blur)
to a zarr store in chunks of ``--chunk`` pixels a side, block by block (never whole in
memory). Then, each in its own process so that peak memories are separate:

* ``lazy``: ``segment_image`` on ``dask.array.from_zarr`` (threaded scheduler, ``--threads``
  threads) and ``result.to_zarr`` of all maps;
* ``memory`` (unless ``--no-memory``): the same image read whole into NumPy, segmented by the
  in-memory path and saved with ``to_zarr`` too.

Prints per run the wall time of the fit and of the maps (computed while written), the peak
resident memory of the process (``ru_maxrss``), and the agreement of the two label maps.

    python bench/dask_segment.py --side 2048 --chunk 512      # a smoke run
    python bench/dask_segment.py --side 8192 --chunk 2048     # the issue's case
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

LEVELS = np.array([0.2, 0.5, 0.8])
TINTS = np.array([[0.9, 1.0, 1.3], [1.3, 0.9, 0.8], [0.8, 1.05, 1.2]])
TINTS /= (TINTS @ np.array([0.299, 0.587, 0.114]))[:, None]


def _block(r0: int, c0: int, bh: int, bw: int, side: int, noise: float) -> np.ndarray:
    rr, cc = np.mgrid[r0 : r0 + bh, c0 : c0 + bw].astype(np.float64)
    h = w = side
    labels = np.zeros((bh, bw), dtype=np.int64)
    disc = (rr - 0.6 * h) ** 2 + (cc - 0.33 * w) ** 2 <= (0.25 * min(h, w)) ** 2
    rect = (rr >= 0.15 * h) & (rr < 0.5 * h) & (cc >= 0.5 * w) & (cc < 0.85 * w)
    labels[disc] = 1
    labels[rect] = 2
    rng = np.random.default_rng([r0, c0])
    values = LEVELS[labels][..., None] * TINTS[labels] + noise * rng.standard_normal((bh, bw, 3))
    return (np.clip(values, 0, 1) * 255).round().astype(np.uint8)


def write_image(path: str, side: int, chunk: int, noise: float) -> None:
    import zarr

    z = zarr.create_array(path, shape=(side, side, 3), chunks=(chunk, chunk, 3), dtype=np.uint8)
    for r0 in range(0, side, chunk):
        for c0 in range(0, side, chunk):
            bh, bw = min(chunk, side - r0), min(chunk, side - c0)
            z[r0 : r0 + bh, c0 : c0 + bw] = _block(r0, c0, bh, bw, side, noise)


def child(mode: str, src: str, out: str, threads: int) -> None:
    import dask
    import dask.array as da

    from bayesgmm.segmentation import segment_image

    warnings.simplefilter("ignore")
    dask.config.set(scheduler="threads", num_workers=threads)
    t0 = time.perf_counter()
    image = da.from_zarr(src) if mode == "lazy" else da.from_zarr(src).compute()
    t_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = segment_image(image, 3, features=("color",), random_state=0)
    t_segment = time.perf_counter() - t0
    t0 = time.perf_counter()
    result.to_zarr(out)
    t_write = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "read_s": t_read,
                "segment_s": t_segment,
                "fit_s": result.timings["fit"],
                "write_s": t_write,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=2048)
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--noise", type=float, default=0.06)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "SRC", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.threads)
        return
    import zarr

    tmp = tempfile.mkdtemp(prefix="bayesgmm-dask-segment-")
    try:
        src = os.path.join(tmp, "image.zarr")
        t0 = time.perf_counter()
        write_image(src, args.side, args.chunk, args.noise)
        mb = args.side**2 * 3 / 1e6
        print(
            f"image {args.side} x {args.side} RGB uint8 ({mb:.0f} MB), chunks {args.chunk}^2, "
            f"written in {time.perf_counter() - t0:.1f} s; {args.threads} threads"
        )
        runs = {}
        for mode in ("lazy",) + (() if args.no_memory else ("memory",)):
            out = os.path.join(tmp, f"maps-{mode}.zarr")
            cmd = [sys.executable, __file__, "--child", mode, src, out]
            proc = subprocess.run(
                [*cmd, "--threads", str(args.threads)], capture_output=True, text=True, check=True
            )
            runs[mode] = r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(
                f"{mode:>6}: read {r['read_s']:6.1f} s, segment_image {r['segment_s']:6.1f} s "
                f"(fit {r['fit_s']:.1f} s), maps computed and written {r['write_s']:6.1f} s, "
                f"peak RSS {r['peak_rss_mb']:7.0f} MB"
            )
        if "memory" in runs:
            a = zarr.open_group(os.path.join(tmp, "maps-lazy.zarr"), mode="r")
            b = zarr.open_group(os.path.join(tmp, "maps-memory.zarr"), mode="r")
            same = float(np.mean(a["labels"][:] == b["labels"][:]))
            diff = float(np.abs(a["probabilities"][:] - b["probabilities"][:]).max())
            print(
                f"labels identical on {same:.6%} of pixels; max |probability difference| {diff:.2e}"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
