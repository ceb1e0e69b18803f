"""The documentation site builds with warnings as errors, and the API reference is complete."""

from __future__ import annotations

import html
import inspect
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
