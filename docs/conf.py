"""Sphinx configuration of the fastpe documentation.

Built by tools/build_docs.sh against the installed package (never the source
tree): `sphinx-build -W --keep-going -b html docs <dir>` and the same with
`-b doctest`, which runs every ``>>>`` example of the pages and of the
docstrings autodoc pulls in.
"""

import fastpe

project = "fastpe"
author = "the fastpe developers"
copyright = "the fastpe developers"
release = fastpe.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "numpydoc",
]

# No network at build time: no intersphinx, no remote images.
exclude_patterns = ["_build"]
root_doc = "index"
# Single backticks link to the API where the name is documented (fastpe.x,
# fastpe.dask.x, fastpe.reference.x), and show as code where it is not.
default_role = "py:obj"

autodoc_typehints = "none"          # the signature line is enough; types are in the docstrings
autodoc_default_options = {"members": False}
numpydoc_show_class_members = False
numpydoc_xref_param_type = False

# Every example imports what it uses, so the pages and the docstrings run alike
# under `sphinx-build -b doctest` and `pytest --doctest-modules`.
doctest_global_setup = ""
trim_doctest_flags = True

html_theme = "pydata_sphinx_theme"
html_title = f"fastpe {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_prev_next": True,
}
html_static_path = []
