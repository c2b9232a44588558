"""The documentation build and what a reader meets first.

* The examples the docs build leaves out (docs/conf.py's
  EXAMPLES_RUN_BY_TESTS: they need transformers, which the docs extra does not
  bring) are run by the test named there, and the build's hook skips those
  pages' doctest blocks and no other page's.
* Code blocks wrap instead of being cut (docs/_static/fastpe.css, linked by
  docs/conf.py).
* The index page has an install line and a first example; the README lists
  every page.
"""

import os
import re
import runpy
import types

import pytest
from util import REPO_ROOT

DOCS = os.path.join(REPO_ROOT, "docs")
DOCS_EXTRA = 'the docs extra brings it: pip install ".[docs]"'


def _conf():
    path = os.path.join(DOCS, "conf.py")
    if not os.path.exists(path):
        pytest.skip("docs/ is not beside the tests (an installed test tree)")
    return runpy.run_path(path)


def _read(*parts):
    with open(os.path.join(REPO_ROOT, *parts), encoding="utf-8") as f:
        return f.read()


def test_the_examples_the_build_leaves_out_are_run_by_the_named_test():
    left_out = _conf()["EXAMPLES_RUN_BY_TESTS"]
    assert left_out, "nothing is left out: drop this test and the hook"
    for page, (package, test) in left_out.items():
        assert os.path.exists(os.path.join(DOCS, page + ".rst")), page
        source = _read(test)
        assert f'"{page}.rst"' in source and "doctest.testfile(" in source, f"{test} does not run docs/{page}.rst"
        assert f"import {package}" in source and "DocTestFinder" in source, f"{test} does not run {package}'s docstrings"


def test_the_build_skips_the_doctest_blocks_of_those_pages_only():
    nodes = pytest.importorskip("docutils.nodes", reason=f"docutils is not installed; {DOCS_EXTRA}")
    conf = _conf()
    hook = conf["_leave_examples_to_their_test"]
    for page, skipped in [(next(iter(conf["EXAMPLES_RUN_BY_TESTS"])), True), ("quickstart", False)]:
        doctree = nodes.document(None, None)
        doctree += nodes.doctest_block(">>> 1 + 1\n2", ">>> 1 + 1\n2")
        hook(types.SimpleNamespace(env=types.SimpleNamespace(docname=page)), doctree)
        (block,) = doctree.findall(nodes.doctest_block)
        # sphinx.ext.doctest skips a block whose "skipif" evaluates true
        assert (block.get("skipif") == "True") is skipped, page


def test_code_blocks_wrap_instead_of_being_cut():
    conf = _conf()
    assert conf["html_css_files"] == ["fastpe.css"]
    (static,) = conf["html_static_path"]
    css = _read("docs", static, "fastpe.css")
    rule = re.search(r"(?:^|\n)pre\s*\{([^}]*)\}", css)
    assert rule, "docs/_static/fastpe.css has no rule for pre"
    assert re.search(r"white-space:\s*pre-wrap", rule.group(1))
    assert re.search(r"overflow-wrap:\s*anywhere", rule.group(1))


def test_the_index_page_has_an_install_line_and_a_first_example():
    index = _read("docs", "index.rst")
    assert re.search(r"\.\. code-block:: bash\n\n   pip install \.\n", index)
    example = re.search(r"^A first example\n-+\n(.*?)^\S[^\n]*\n-+\n", index, flags=re.M | re.S)
    assert example and ">>> import fastpe" in example.group(1)


def test_the_readme_lists_every_page():
    listed = set(re.findall(r"^- \[[^]]+\]\(docs/([\w-]+)\.rst\)", _read("README.md"), flags=re.M))
    pages = {name[:-4] for name in os.listdir(DOCS) if name.endswith(".rst")} - {"index"}
    assert listed == pages, f"missing: {sorted(pages - listed)}; not a page: {sorted(listed - pages)}"
