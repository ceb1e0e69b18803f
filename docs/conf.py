"""Sphinx configuration of the bayesgmm documentation.

Build with ``./dev docs`` (HTML in ``docs/_build/html``); the test suite builds it with
warnings as errors (``tests/test_docs.py``).

Math is rendered by a copy of MathJax that ships with the site (the sphinx-mathjax-offline
package), never a script from a CDN: ``tests/test_docs.py`` checks that no page loads anything
from another host.

Choices: pydata-sphinx-theme, numpydoc and myst-nb are what PyMC, ArviZ and scikit-learn use,
so the pages look and read like the libraries our users know. numpydoc renders our NumPy-style
docstrings; autosummary writes one page per public name; myst-nb renders the notebooks with
their committed outputs (they are executed by the test suite, not again by the docs build);
the model-comparison guide is executed at build time, so its numbers cannot go stale.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import bayesgmm  # noqa: E402

project = "bayesgmm"
author = "the bayesgmm developers"
copyright = "2026, the bayesgmm developers"
version = release = bayesgmm.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    # MathJax shipped with the docs (copied into _static/mathjax, mathjax_path set to it), so
    # math renders offline and behind proxies instead of showing raw LaTeX.
    "sphinx-mathjax-offline",
    "numpydoc",
    "myst_nb",
]

# --- sources
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "**.ipynb_checkpoints", "jupyter_execute"]
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# The notebooks live in notebooks/ at the top of the repository (run there by the test
# suite); they are copied next to the docs sources at build time, outputs included.
_NB_SRC, _NB_DST = ROOT / "notebooks", HERE / "notebooks"
_NB_DST.mkdir(exist_ok=True)
for _nb in sorted(_NB_SRC.glob("*.ipynb")):
    _target = _NB_DST / _nb.name
    if not _target.exists() or _target.read_bytes() != _nb.read_bytes():
        shutil.copyfile(_nb, _target)
nb_execution_mode = "off"  # pages that compute their numbers opt in (model-comparison.md)
nb_merge_streams = True
# Their kernel logs errors only: ipykernel warns about its TCP transport on every start,
# which would break the warning-free build. A private IPython directory holds that setting.
_IPYTHON_DIR = Path(tempfile.mkdtemp(prefix="bayesgmm-docs-ipython-"))
(_IPYTHON_DIR / "profile_default").mkdir()
(_IPYTHON_DIR / "profile_default" / "ipython_kernel_config.py").write_text(
    'c.IPKernelApp.log_level = "ERROR"\n'
)
os.environ["IPYTHONDIR"] = str(_IPYTHON_DIR)

# --- API reference
autosummary_generate = True
# The stubs in generated/ are build output: start from none, so a name removed from the API
# leaves no stale page behind (autodoc would fail on it, and -W makes that an error).
shutil.rmtree(Path(__file__).parent / "generated", ignore_errors=True)
autosummary_imported_members = True
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()

templates_path = ["_templates"]  # classes: attributes come from numpydoc's sections

intersphinx_mapping: dict[str, tuple[str, str | None]] = {}  # no network at build time
# Every cross-reference must resolve (with -W, a broken one fails the build), except those to
# other projects and the standard library (no intersphinx without network) and to private modules.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(numpy|scipy|pandas|sklearn|matplotlib|xarray|arviz\w*|pymc|pytensor|html)\b.*"),
    (r"py:.*", r"bayesgmm\._\w+.*"),
]

# --- HTML
html_theme = "pydata_sphinx_theme"
html_title = f"bayesgmm {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_static_path: list[str] = []


def _skip_metadata_requests(app, what, name, obj, skip, options):
    """Hide scikit-learn's generated ``set_*_request`` methods (metadata routing)."""
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_metadata_requests)
