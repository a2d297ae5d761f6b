"""Sphinx configuration of the API reference: autodoc of dynet_api's public names, built offline.

Build: ``sphinx-build -W -b html docs docs/_build/html`` (warnings are errors, so a broken
docstring fails the build).
"""

project = "dynet_api"
author = "dynet_api contributors"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon"]

# Google-style "Args:" / "Returns:" sections.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# A class's page shows its docstring and its constructor's (the constructor arguments).
autoclass_content = "both"
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True

# No network: no intersphinx, nothing fetched (only autodoc and napoleon above).
exclude_patterns = ["_build", "*.md"]
html_theme = "alabaster"
html_static_path: list[str] = []
