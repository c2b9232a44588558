"""Sphinx configuration of the fastpe documentation.

Built by tools/build_docs.sh against the installed package (never the source
tree): `sphinx-build -W --keep-going -b html docs <dir>` and the same with
`-b doctest`, which runs every ``>>>`` example of the pages and of the
docstrings autodoc pulls in, except those of EXAMPLES_RUN_BY_TESTS.
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

# Examples that need libraries the docs extra does not bring (transformers,
# kernels): page (docname) -> (the package whose docstrings need them too, the
# test of the suite that runs both). The doctest builder skips the page's
# blocks (the docstrings autodoc pulls into it included), tools/build_docs.sh
# leaves the package out of its `pytest --doctest-modules` step, and the test
# runs them, skipping with the extra named where the libraries are missing
# (CI's wheel job has them and allows no skip).
EXAMPLES_RUN_BY_TESTS = {"hf": ("fastpe.hf", "tests/hf/test_hf_docs.py")}


def _leave_examples_to_their_test(app, doctree):
    if app.env.docname in EXAMPLES_RUN_BY_TESTS:
        from docutils import nodes

        for block in doctree.findall(nodes.doctest_block):
            block["skipif"] = "True"     # what sphinx.ext.doctest evaluates to skip a block


html_theme = "pydata_sphinx_theme"
html_title = f"fastpe {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_prev_next": True,
}
# The pages are one flat list (the header's links): the left sidebar would
# stay empty, so it is left out and the text column gets its width (code
# lines of about 100 characters fit at 1280 px; longer ones wrap, _static/fastpe.css).
html_sidebars = {"**": []}
html_static_path = ["_static"]
html_css_files = ["fastpe.css"]


def setup(app):
    app.connect("doctree-read", _leave_examples_to_their_test)
