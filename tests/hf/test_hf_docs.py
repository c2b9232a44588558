"""docs/hf.rst's examples and fastpe.hf's docstring examples run (they need
transformers and kernels, which tests/docs/ does not assume)."""

import doctest
import os

import pytest
from optional import conformance_import, missing_reason
from util import REPO_ROOT

conformance_import("torch")
conformance_import("transformers")
pytest.importorskip("kernels", reason=missing_reason("kernels"))

from optional import single_threaded_torch  # noqa: E402,F401 (autouse fixture)

import fastpe.hf  # noqa: E402

PAGE = os.path.join(REPO_ROOT, "docs", "hf.rst")
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def test_the_page_runs():
    if not os.path.exists(PAGE):
        pytest.skip("docs/ is not beside the tests (an installed test tree)")
    result = doctest.testfile(PAGE, module_relative=False, optionflags=FLAGS, report=True)
    assert result.attempted > 40 and result.failed == 0, f"{result.failed} of {result.attempted} failed (see above)"


@pytest.mark.parametrize("test", [t for t in doctest.DocTestFinder(exclude_empty=True).find(fastpe.hf)
                                  if t.examples] + [
    t for module in (fastpe.hf._models, fastpe.hf._rotation, fastpe.hf._hub)
    for t in doctest.DocTestFinder(exclude_empty=True).find(module) if t.examples], ids=lambda t: t.name)
def test_docstring_example(test):
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {test.name} failed (see above)"
