"""The HTML report in a real browser: headless Chromium decodes every image, logs no error.

Chromium is Debian's ``chromium`` package; ``./dev test`` installs it where it is missing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from bayesgmm.report import write_report

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
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=10000",
]


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(
            "Chromium is not installed; run the tests through ./dev test (which installs "
            "Debian's chromium package) or install it: apt-get install chromium."
        )
    return path


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
