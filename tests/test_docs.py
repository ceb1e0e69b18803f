"""The documentation site builds with warnings as errors, and the API reference is complete."""

from __future__ import annotations

import html
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import bayesgmm

DOCS = Path(__file__).parent.parent / "docs"


def _text(path: Path) -> str:
    """Visible text of an HTML page, whitespace collapsed."""
    raw = re.sub(r"<[^>]+>", " ", path.read_text(encoding="utf-8"))
    return " ".join(html.unescape(raw).split())


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("html")
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
    proc = subprocess.run([*cmd, str(DOCS), str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, f"sphinx-build failed or warned:\n{proc.stderr[-5000:]}"
    assert not proc.stderr.strip(), proc.stderr[-5000:]
    return out


def test_api_reference_lists_every_public_name_with_its_docstring(site):
    api = _text(site / "api.html")
    for name in bayesgmm.__all__:
        if name == "__version__":
            assert "bayesgmm.__version__" in api
            continue
        page = site / "generated" / f"bayesgmm.{name}.html"
        assert page.is_file(), f"no API page for {name}"
        assert name in api, f"{name} missing from api.html"
        doc = inspect.getdoc(getattr(bayesgmm, name))
        assert doc, f"{name} has no docstring"
        first = " ".join(doc.split("\n\n")[0].split())
        # Compare on words only: Sphinx renders ``code`` and math differently from the source.
        words = [w for w in re.findall(r"[A-Za-z]{4,}", first)][:8]
        body = _text(page)
        assert all(w in body for w in words), f"{name}: summary line not rendered ({words})"


def test_notebooks_and_user_guide_are_rendered(site):
    notebooks = sorted(p.stem for p in (DOCS.parent / "notebooks").glob("*.ipynb"))
    assert notebooks
    for stem in notebooks:
        page = site / "notebooks" / f"{stem}.html"
        assert page.is_file(), f"notebook {stem} not rendered"
        assert "<img" in page.read_text(encoding="utf-8"), f"{stem}: no figures in the page"
    guide = sorted(p.name for p in (site / "user-guide").glob("*.html"))
    for topic in (
        "em",
        "bayesian-model",
        "label-switching",
        "responsibilities",
        "model-comparison",
        "segmentation",
        "cli",
    ):
        assert f"{topic}.html" in guide, f"user guide page {topic} missing"
    assert (site / "getting-started.html").is_file()


# Attributes through which a page loads something (a plain link, <a href>, loads nothing).
_LOADS = re.compile(
    r"<(script|link|img|iframe|source|video|audio|embed|object)\b[^>]*?"
    r"\b(src|href|data|srcset)\s*=\s*[\"']?\s*((?:[a-z][a-z0-9+.-]*:)?//[^\"' >]*)",
    re.I,
)
_CSS_REMOTE = re.compile(r"(?:url\(\s*[\"']?|@import\s+[\"'])\s*((?:https?:)?//[^\"')\s]+)", re.I)


def test_no_page_loads_anything_from_another_host(site):
    """Offline and behind a proxy the site is whole: scripts (MathJax too), styles, fonts and
    images all come from the site itself."""
    remote = []
    for page in sorted(site.rglob("*.html")):
        for tag, _, url in _LOADS.findall(page.read_text(encoding="utf-8")):
            if not url.startswith("file:"):
                remote.append(f"{page.relative_to(site)}: <{tag}> {url}")
    for sheet in sorted(site.rglob("*.css")):
        for url in _CSS_REMOTE.findall(sheet.read_text(encoding="utf-8", errors="replace")):
            remote.append(f"{sheet.relative_to(site)}: {url}")
    assert not remote, "\n".join(remote[:20])
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file()


def test_math_renders_offline_in_a_browser(site, tmp_path):
    """A page with math, opened in headless Chromium: MathJax typesets it from the site's own
    copy, and every request the page makes is for a local file."""
    from _devtools import DevTools, find_chromium

    page = site / "user-guide" / "model-comparison.html"
    assert "\\(" in page.read_text(encoding="utf-8")  # the page has inline math to render
    browser = DevTools(find_chromium(), tmp_path / "profile")
    try:
        typeset, requests = browser.open(
            page.as_uri(),
            "window.MathJax && MathJax.startup ? MathJax.startup.promise.then(function () {"
            " return document.querySelectorAll('mjx-container').length; }) : -1",
            await_promise=True,
        )
    finally:
        browser.close()
    remote = [url for url in requests if not url.startswith(("file:", "data:", "blob:"))]
    assert not remote, remote
    assert any(url.endswith("_static/mathjax/tex-chtml.js") for url in requests), requests
    assert typeset > 0, "MathJax typeset no formula"


def test_landing_page_shows_an_example_and_the_figure(site):
    page = (site / "index.html").read_text(encoding="utf-8")
    assert "BayesGaussianMixture" in _text(site / "index.html")
    assert re.search(r"<pre>.*BayesGaussianMixture.*</pre>", page, re.S), "no code example"
    images = re.findall(r'<img[^>]+src="([^"]+)"', page)
    assert any(src.endswith("landing.png") for src in images), images
    for src in images:
        assert (site / src).is_file(), src
    # The committed figure is the one the script in docs/ draws.
    assert (DOCS / "make_landing_figure.py").is_file()
    assert (DOCS / "_static" / "landing.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_readme_em_example_prints_what_the_readme_shows(tmp_path):
    """The README's first example, run as written, prints exactly the block shown under it.

    (The Bayesian and segmentation examples take a minute of sampling; their output was
    pasted from a run in the same way.)"""
    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    code = re.findall(r"```python\n(.*?)```", readme, re.S)[0]
    shown = re.findall(r"```text\n(.*?)```", readme, re.S)[0]
    assert "EMGaussianMixture" in code
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(DOCS.parent)},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    def lines(text: str) -> list[str]:
        return [line.rstrip() for line in text.strip().splitlines()]

    assert lines(proc.stdout) == lines(shown)
