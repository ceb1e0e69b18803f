"""The HTML reports in a real browser, headless Chromium, as a reader would open them.

1. The faithful report loads, decodes every image and logs no error (``--dump-dom``).
2. The layout of four reports (the demo's, an iris fit with 4 long-named features, a model
   comparison and a Bayesian image segmentation) is measured in the laid-out page, through the
   Chrome DevTools protocol (over ``--remote-debugging-pipe``, no extra package): no element
   wider than the page (a table may scroll inside its own box), no table row taller than
   120 px, no two text boxes overlapping, every image decoded and shown at least half its
   pixel width. The measuring script is ``tests/_layout_probe.js``.

Chromium is Debian's ``chromium`` package; ``./dev test`` installs it where it is missing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from _devtools import FLAGS as DEVTOOLS_FLAGS
from _devtools import DevTools, find_chromium

from bayesgmm.report import write_report

PROBE_JS = Path(__file__).with_name("_layout_probe.js")
VIEWPORT = (1280, 900)  # a laptop screen, CSS pixels
MAX_ROW_HEIGHT = 120.0

# Runs before the report's own scripts: records page errors and console.error calls, and on
# load writes what it found into the page, which --dump-dom then prints.
PROBE = """<script>
window.__errors = [];
window.addEventListener("error", function (e) {
  window.__errors.push(String(e.message || (e.target && e.target.outerHTML) || e.type));
}, true);
console.error = (function (orig) {
  return function () { window.__errors.push(Array.from(arguments).join(" "));
                       orig.apply(console, arguments); };
})(console.error);
window.addEventListener("load", function () {
  var imgs = Array.from(document.images);
  var bad = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
  var pre = document.createElement("pre");
  pre.id = "bayesgmm-probe";
  pre.textContent = JSON.stringify({images: imgs.length, undecoded: bad.length,
                                    errors: window.__errors});
  document.body.appendChild(pre);
});
</script>"""

FLAGS = [
    *DEVTOOLS_FLAGS,
    "--virtual-time-budget=10000",
]


@pytest.fixture(scope="module")
def chromium() -> str:
    return find_chromium()


def _run(chromium: str, tmp_path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_report_renders_in_headless_chromium(faithful_fit, chromium, tmp_path):
    report = write_report(tmp_path / "report.html", bgm=faithful_fit, embed=True)
    html = report.read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(re.sub(r"(<head[^>]*>)", r"\1" + PROBE.replace("\\", r"\\"), html, count=1))
    proc = _run(chromium, tmp_path, "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="bayesgmm-probe">(.*?)</pre>', proc.stdout, re.S)
    assert found, f"the page did not finish loading: {proc.stderr[-2000:]}"
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["images"] >= 6
    assert result["undecoded"] == 0
    assert result["errors"] == []

    shot = tmp_path / "report.png"
    proc = _run(
        chromium, tmp_path, f"--screenshot={shot}", "--window-size=1280,2400", report.as_uri()
    )
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", proc.stderr[-2000:]
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one


# ---------------------------------------------------------------------- layout, over CDP


@pytest.fixture(scope="module")
def devtools(chromium, tmp_path_factory):
    browser = DevTools(chromium, tmp_path_factory.mktemp("profile"))
    yield browser
    browser.close()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    return env


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    """Four self-contained HTML reports, from small but real fits (about half a minute)."""
    from sklearn.datasets import load_iris

    from bayesgmm import BayesGaussianMixture, load_faithful, load_sample_photo, segment_image
    from bayesgmm.selection import compare_models

    out = tmp_path_factory.mktemp("reports")
    found: dict[str, Path] = {}
    # The demo, as ./dev demo runs it (fewer draws and components).
    demo = out / "demo"
    cmd = [sys.executable, "-m", "bayesgmm", "--quiet", "demo", "--draws", "150", "--chains"]
    cmd += ["2", "--max-components", "3", "--out", str(demo)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found["demo"] = demo / "report.html"
    sampler = dict(draws=150, tune=150, chains=2, random_state=0)
    with warnings.catch_warnings():
        # These short runs may not converge; the reports say so, which is what they are for.
        warnings.simplefilter("ignore")
        # Iris: 4 features with long names ("sepal length (cm)").
        iris = load_iris(as_frame=True).data
        bgm = BayesGaussianMixture(3, progressbar=False, **sampler).fit(iris)
        found["iris"] = write_report(out / "iris.html", bgm=bgm, embed=True, title="iris")
        # A model comparison alone: two covariance types, K = 1..3, EM and NUTS.
        comparison = compare_models(
            load_faithful(),
            n_components=[1, 2, 3],
            covariance_types=("full", "diag"),
            methods=("em", "bayes"),
            **sampler,
        )
        found["comparison"] = write_report(
            out / "comparison.html", comparison=comparison, embed=True, title="comparison"
        )
        # A Bayesian segmentation of a crop of a photograph, on colour and position.
        photo = load_sample_photo("flower")[100:190, 200:330]
        seg = segment_image(
            photo,
            3,
            features=("color", "position"),
            method="bayes",
            n_fit_pixels=1500,
            max_draws=50,
            progressbar=False,
            **sampler,
        )
        found["segmentation"] = write_report(
            out / "segmentation.html", segmentation=seg, embed=True, title="segmentation"
        )
    return found


@pytest.fixture(scope="module")
def layouts(reports, devtools) -> dict[str, dict]:
    """What the layout probe measured in each report."""
    script = PROBE_JS.read_text(encoding="utf-8")
    return {
        name: devtools.open(path.as_uri(), script, viewport=VIEWPORT)[0]
        for name, path in reports.items()
    }


@pytest.mark.parametrize("name", ["demo", "iris", "comparison", "segmentation"])
@pytest.mark.parametrize("check", ["wide", "tall_rows", "overlaps", "undecoded", "small_figures"])
def test_report_layout_in_headless_chromium(layouts, name, check):
    layout = layouts[name]
    assert layout["viewport"] <= VIEWPORT[0]
    if check == "undecoded":
        assert layout["images"] >= 1
    bad = layout[check]
    assert not bad, f"{name} report, {check}: {json.dumps(bad[:5], indent=1)}"
