"""Every example in fastpe's docstrings runs (doctest), without network or optional packages."""

import doctest
import importlib
import pkgutil

import pytest

import fastpe

# fastpe.hf's examples need transformers and kernels: tests/hf/test_hf_docs.py runs them.
MODULES = sorted(name for _, name, _ in pkgutil.iter_modules(fastpe.__path__, "fastpe.")
                 if name not in ("fastpe.__main__", "fastpe.dask", "fastpe.bench", "fastpe.hf"))


def _examples():
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = []
    for name in MODULES:
        module = importlib.import_module(name)
        tests += [t for t in finder.find(module) if t.examples]
    return tests


EXAMPLES = _examples()


def test_the_documented_rope_examples_are_collected():
    names = {t.name.rsplit(".", 1)[-1] for t in EXAMPLES}
    assert {"apply_rotary", "rope_inv_freq"} <= names


@pytest.mark.parametrize("test", EXAMPLES, ids=lambda t: t.name)
def test_docstring_example(test):
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {test.name} failed (see above)"
