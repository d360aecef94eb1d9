"""Sphinx configuration for the fastinfo documentation.

Build (warnings are errors), from the repository root, after building the extension in place::

    python setup.py build_ext --inplace
    sphinx-build -W -b html docs docs/_build/html

The API reference is generated from the numpydoc docstrings, so the build imports fastinfo
from the source tree (``../src``), not from an installed copy. The build needs no network:
MathJax is loaded by the reader's browser.
"""
import importlib
import importlib.util
import os
import sys

from sphinx.util import logging

DOCS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(DOCS, "..", "src"))

try:
    import fastinfo
except ImportError as exc:  # the compiled extension is missing: say how to build it
    raise RuntimeError(
        "the documentation imports fastinfo from ../src; build the extension in place first "
        f"with `python setup.py build_ext --inplace` ({exc})"
    ) from exc

project = "fastinfo"
author = "the fastinfo developers"
copyright = "2026, the fastinfo developers"
release = fastinfo.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.doctest",
    "numpydoc",
]

root_doc = "index"
source_suffix = {".rst": "restructuredtext"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path = []

# API reference: autosummary writes one stub page per function into docs/generated/
# (git-ignored) and autodoc + numpydoc render the docstrings.
autosummary_generate = True
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_use_plots = False

# Guide snippets are plain ``>>>`` blocks. tests/test_docs.py runs them with the standard library's
# doctest, one page at a time, in a temporary directory (some examples write .npy files).
doctest_global_setup = "import numpy as np\nimport fastinfo as fi\n"

# Optional public submodules get their own API page (docs/api/<name>.rst); a page whose module
# is not importable in this checkout is left out instead of failing the whole build.
OPTIONAL_API_MODULES = {"sklearn": "fastinfo.sklearn", "scipy": "fastinfo.scipy"}
for _page, _module in OPTIONAL_API_MODULES.items():
    if importlib.util.find_spec(_module) is None:
        exclude_patterns.append(f"api/{_page}.rst")

html_theme = "alabaster"
html_title = f"fastinfo {release}"
html_static_path = ["_static"]
html_theme_options = {
    "description": "Fast information theory on large arrays",
    "fixed_sidebar": True,
    "page_width": "1100px",
    "sidebar_width": "240px",
}
pygments_style = "sphinx"


def _api_names_listed():
    """Every ``fastinfo.<name>`` listed in an autosummary block of docs/api/*.rst."""
    listed = set()
    api_dir = os.path.join(DOCS, "api")
    for filename in sorted(os.listdir(api_dir)):
        if not filename.endswith(".rst"):
            continue
        module = "fastinfo"
        in_autosummary = False
        with open(os.path.join(api_dir, filename), encoding="utf-8") as f:
            for line in f:
                stripped = line.strip()
                if stripped.startswith(".. currentmodule::"):
                    module = stripped.split("::", 1)[1].strip()
                elif stripped.startswith(".. autosummary::"):
                    in_autosummary = True
                elif in_autosummary and line[:1] not in (" ", "\t", "\n"):
                    in_autosummary = False
                elif in_autosummary and stripped and not stripped.startswith(":"):
                    listed.add(f"{module}.{stripped}")
    return listed


def _check_api_complete(app):
    """Warn (an error under -W) when a public name has no entry in the API reference."""
    logger = logging.getLogger("fastinfo.docs")
    listed = _api_names_listed()
    public = {f"fastinfo.{name}" for name in fastinfo.__all__ if not name.startswith("__")}
    for module_name in OPTIONAL_API_MODULES.values():
        if importlib.util.find_spec(module_name) is not None:
            module = importlib.import_module(module_name)
            names = getattr(module, "__all__", [n for n in dir(module) if not n.startswith("_")])
            public |= {f"{module_name}.{name}" for name in names}
    for name in sorted(public - listed):
        logger.warning("public name %s is missing from the API reference (docs/api/*.rst)", name)


def setup(app):
    app.connect("builder-inited", _check_api_complete)
