"""The model-comparison section of the HTML report in a real browser (headless Chromium).

Issue 13: no table row is taller than a line or two (long notes go in lists under the
table), and the WAIC/LOO columns are visible without scrolling the page: the table fits, or
it scrolls inside its own box with the model name kept in view. Measured on the rendered
page at a wide and a narrow window.

Chromium is Debian's ``chromium`` package; ``./dev test`` installs it where it is missing.
"""

from __future__ import annotations

import json
import re
import subprocess
import warnings

import numpy as np
import pytest
import xarray as xr
from _devtools import FLAGS as DEVTOOLS_FLAGS
from _devtools import find_chromium

from bayesgmm import load_faithful
from bayesgmm._mclust import MCLUST_MODELS
from bayesgmm.report import write_report
from bayesgmm.selection import compare_models

# On load: measure the comparison table and every data table's rows, and write the figures
# into the page, which --dump-dom then prints.
PROBE = """<script>
window.addEventListener("load", function () {
  var out = {viewport: window.innerWidth, page_width: document.documentElement.scrollWidth,
             rows: [], tables: 0};
  var probe = document.createElement("div");
  probe.style.cssText = "position:absolute;visibility:hidden;font-size:.85em";
  probe.textContent = "x";
  document.body.appendChild(probe);
  out.line = probe.getBoundingClientRect().height;
  document.querySelectorAll("table.data").forEach(function (t, ti) {
    out.tables += 1;
    t.querySelectorAll("tr").forEach(function (tr, ri) {
      out.rows.push({table: ti, row: ri, height: tr.getBoundingClientRect().height,
                     text: tr.textContent.slice(0, 80)});
    });
  });
  var table = Array.from(document.querySelectorAll("table.data")).find(function (t) {
    return t.textContent.indexOf("elpd LOO") >= 0;
  });
  if (table) {
    var heads = Array.from(table.querySelectorAll("th"));
    var find = function (label) {
      return heads.find(function (h) { return h.textContent.indexOf(label) === 0; });
    };
    var box = table.getBoundingClientRect();
    out.box = {left: box.left, right: box.right, client: table.clientWidth,
               scroll: table.scrollWidth};
    ["elpd WAIC", "elpd LOO"].forEach(function (label) {
      var cell = find(label);
      // Scroll the table's own box (not the page) to the column, as a reader would.
      cell.scrollIntoView({inline: "nearest", block: "nearest"});
      var r = cell.getBoundingClientRect();
      var model = table.querySelector("tbody tr td").getBoundingClientRect();
      out[label] = {left: r.left, right: r.right, model_left: model.left,
                    model_right: model.right, page_x: window.scrollX,
                    table_scroll: table.scrollLeft};
      table.scrollLeft = 0;
      window.scrollTo(0, window.scrollY);
    });
  }
  var pre = document.createElement("pre");
  pre.id = "bayesgmm-probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""

FLAGS = [
    *DEVTOOLS_FLAGS,
    "--hide-scrollbars",
    "--virtual-time-budget=10000",
]


@pytest.fixture(scope="module")
def chromium() -> str:
    return find_chromium()


def _posterior(X, n_components, covariance_type, random_state, **options):
    """Synthetic posterior; K >= 4 fails its checks (long notes), like overfitted mixtures."""
    n = np.asarray(X).shape[0]
    rng = np.random.default_rng(random_state)
    ll = rng.normal(-4.0 + 0.05 * n_components, 0.05, size=(4, 100, n))
    post = xr.Dataset({"mu": (("chain", "draw"), rng.normal(size=(4, 100)))})
    tree = xr.DataTree.from_dict(
        {
            "posterior": post,
            "log_likelihood": xr.Dataset({"obs": (("chain", "draw", "obs_id"), ll)}),
        }
    )
    bad = n_components >= 4
    summary = {
        "passed": not bad,
        "max_rhat": 1.35 if bad else 1.002,
        "min_ess_bulk": 9.0 if bad else 900.0,
        "min_ess_tail": 14.0 if bad else 800.0,
        "n_divergent": 57 if bad else 0,
        "min_ebfmi": 0.8,
    }
    tree.attrs["diagnostics_summary"] = json.dumps(summary)
    return tree


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = compare_models(
            load_faithful(),
            n_components=range(1, 7),
            random_state=0,
            n_init=2,
            bayes_fit=_posterior,
        )
    assert len(result.table) == 24 and len(result.excluded_posteriors) == 12
    path = tmp_path_factory.mktemp("cmp") / "comparison.html"
    return write_report(path, comparison=result, embed=True, dpi=40)


def _measure(chromium: str, report, tmp_path, width: int) -> dict:
    html = report.read_text()
    probe = tmp_path / f"probe_{width}.html"
    probe.write_text(re.sub(r"(</body>)", PROBE.replace("\\", r"\\") + r"\1", html, count=1))
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    proc = subprocess.run(
        [
            chromium,
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={width},900",
            "--dump-dom",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    found = re.search(r'<pre id="bayesgmm-probe">(.*?)</pre>', proc.stdout, re.S)
    assert found, f"the page did not finish loading: {proc.stderr[-2000:]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.mark.parametrize("width", [1280, 800])
def test_comparison_table_rows_are_short_and_elpd_columns_in_view(
    chromium, report, tmp_path, width
):
    m = _measure(chromium, report, tmp_path, width)
    assert m["viewport"] == width
    # No row of any table is taller than two lines of its text (plus cell padding).
    assert m["tables"] >= 2 and m["rows"]
    tallest = max(m["rows"], key=lambda r: r["height"])
    assert tallest["height"] <= 2 * m["line"] + 10, tallest
    # The page itself never scrolls sideways: a wide table scrolls in its own box.
    assert m["page_width"] <= m["viewport"]
    assert m["box"]["right"] <= m["viewport"]
    for label in ("elpd WAIC", "elpd LOO"):
        cell = m[label]
        assert cell["page_x"] == 0
        # In view once the table's own box is scrolled to it ...
        assert 0 <= cell["left"] and cell["right"] <= m["viewport"], (label, cell)
        # ... with the model name column still in view (sticky) and not covering it.
        assert 0 <= cell["model_left"] and cell["model_right"] <= cell["left"], (label, cell)
    if width == 1280:
        assert m["box"]["scroll"] <= m["box"]["client"]  # it fits: nothing to scroll


@pytest.fixture(scope="module")
def mclust_report(tmp_path_factory):
    """mclust's 14 models x K = 1..6 (EM only): the comparison table and the BIC grid."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = compare_models(
            load_faithful(),
            n_components=range(1, 7),
            covariance_types=MCLUST_MODELS,
            methods=("em",),
            random_state=0,
            n_init=1,
            em_options={"init_params": "hc"},
        )
    assert result.shows_bic_grid and len(result.table) == 84
    path = tmp_path_factory.mktemp("mclust") / "comparison.html"
    return write_report(path, comparison=result, embed=True, dpi=40)


@pytest.mark.parametrize("width", [1280, 800])
def test_bic_grid_rows_are_short_and_the_page_does_not_scroll_sideways(
    chromium, mclust_report, tmp_path, width
):
    m = _measure(chromium, mclust_report, tmp_path, width)
    assert m["viewport"] == width
    # the grid: one row per model name, then its values (the comparison table says "EEE-K1")
    grid = [r for r in m["rows"] if re.match(r"(EEE|VEV)\d", r["text"])]
    assert len(grid) == 2 and "★" in grid[0]["text"], grid
    tallest = max(m["rows"], key=lambda r: r["height"])
    assert tallest["height"] <= 2 * m["line"] + 10, tallest
    assert m["page_width"] <= m["viewport"]
