"""Every example in fastpe.dask's docstrings runs (tests/docs/ leaves fastpe.dask
out: it needs Dask, which the examples of the other modules do not)."""

import doctest
import importlib
import pkgutil

import pytest

pytest.importorskip("dask.array")

import fastpe.dask  # noqa: E402

MODULES = ["fastpe.dask"] + [name for _, name, _ in pkgutil.iter_modules(fastpe.dask.__path__, "fastpe.dask.")]
EXAMPLES = [test for name in MODULES for test in doctest.DocTestFinder(exclude_empty=True).find(
    importlib.import_module(name)) if test.examples]


def test_every_lazy_function_has_an_example():
    documented = {test.name.rsplit(".", 1)[-1] for test in EXAMPLES}
    assert set(fastpe.dask.__all__) <= documented, sorted(set(fastpe.dask.__all__) - documented)


@pytest.mark.parametrize("test", EXAMPLES, ids=lambda t: t.name)
def test_docstring_example(test):
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {test.name} failed (see above)"
