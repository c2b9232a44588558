"""Every example in fastpe's docstrings runs (doctest), without network; those
of fastpe.dask where Dask is installed (the test extra brings it)."""

import doctest
import importlib
import importlib.util
import pkgutil

import pytest

import fastpe

MODULES = sorted(name for _, name, _ in pkgutil.iter_modules(fastpe.__path__, "fastpe.")
                 if name not in ("fastpe.__main__", "fastpe.dask", "fastpe.bench"))
HAS_DASK = importlib.util.find_spec("dask") is not None
if HAS_DASK:
    import fastpe.dask

    MODULES += ["fastpe.dask"] + [name for _, name, _ in pkgutil.iter_modules(fastpe.dask.__path__, "fastpe.dask.")]


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


@pytest.mark.skipif(not HAS_DASK, reason="Dask is not installed; the test extra brings it: pip install \".[test]\"")
def test_every_lazy_function_has_an_example():
    documented = {t.name.rsplit(".", 1)[-1] for t in EXAMPLES if t.name.startswith("fastpe.dask.")}
    assert set(fastpe.dask.__all__) <= documented, sorted(set(fastpe.dask.__all__) - documented)


@pytest.mark.parametrize("test", EXAMPLES, ids=lambda t: t.name)
def test_docstring_example(test):
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {test.name} failed (see above)"
