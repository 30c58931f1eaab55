"""Sphinx configuration of the alma_store documentation site (tools/build_docs.sh builds it)."""

from __future__ import annotations

import alma_store

project = "alma_store"
author = "the alma_store developers"
copyright = "2026, the alma_store developers"  # noqa: A001 - Sphinx's name for it
version = release = alma_store.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx_click",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
templates_path = ["_templates"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autosummary_generate = True
autodoc_typehints = "description"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False

html_theme = "furo"
html_title = f"alma_store {release}"

# "--items" must stay two hyphens (not an en dash) in the CLI reference and the pages.
smartquotes = False
