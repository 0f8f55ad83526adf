from __future__ import annotations

import importlib.metadata

project = "Flask-OAuthClient"
copyright = "2026 Flask-OAuthClient contributors"
release = importlib.metadata.version("Flask-OAuthClient")
version = release

extensions = [
    "sphinx.ext.autodoc",
    "pallets_sphinx_themes",
]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_preserve_defaults = True
nitpicky = False

html_theme = "flask"
html_theme_options = {"index_sidebar_logo": False}
html_title = f"Flask-OAuthClient Documentation ({version})"
html_show_sourcelink = False
exclude_patterns = ["_build"]
