"""Every example in fastpe's docstrings runs (doctest), without network; those
of fastpe.dask where Dask is installed (the test extra brings it), those of
fastpe.torch where torch is installed (skipped otherwise, naming the torch extra)."""

import doctest
import importlib
import importlib.util
import pkgutil

import pytest

import fastpe

from optional import TORCH_INSTALL

# fastpe.hf's examples need transformers and kernels: tests/hf/test_hf_docs.py runs them.
MODULES = sorted(name for _, name, _ in pkgutil.iter_modules(fastpe.__path__, "fastpe.")
                 if name not in ("fastpe.__main__", "fastpe.dask", "fastpe.bench", "fastpe.torch", "fastpe.hf"))
HAS_DASK = importlib.util.find_spec("dask") is not None
HAS_TORCH = importlib.util.find_spec("torch") is not None
if HAS_DASK:
    import fastpe.dask

    MODULES += ["fastpe.dask"] + [name for _, name, _ in pkgutil.iter_modules(fastpe.dask.__path__, "fastpe.dask.")]


def _examples(modules):
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = []
    for name in modules:
        module = importlib.import_module(name)
        tests += [t for t in finder.find(module) if t.examples]
    return tests


def _torch_modules():
    import fastpe.torch

    return ["fastpe.torch"] + sorted(name for _, name, _ in pkgutil.iter_modules(fastpe.torch.__path__,
                                                                                 "fastpe.torch."))


EXAMPLES = _examples(MODULES)
NO_TORCH = f"torch is not installed; the torch extra brings it: {TORCH_INSTALL}"
TORCH_EXAMPLES = _examples(_torch_modules()) if HAS_TORCH else [pytest.param(None, marks=pytest.mark.skip(NO_TORCH))]


def test_the_documented_rope_examples_are_collected():
    names = {t.name.rsplit(".", 1)[-1] for t in EXAMPLES}
    assert {"apply_rotary", "rope_inv_freq"} <= names


@pytest.mark.skipif(not HAS_DASK, reason="Dask is not installed; the test extra brings it: pip install \".[test]\"")
def test_every_lazy_function_has_an_example():
    documented = {t.name.rsplit(".", 1)[-1] for t in EXAMPLES if t.name.startswith("fastpe.dask.")}
    assert set(fastpe.dask.__all__) <= documented, sorted(set(fastpe.dask.__all__) - documented)


def _run(test):
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {test.name} failed (see above)"


@pytest.mark.parametrize("test", EXAMPLES, ids=lambda t: t.name)
def test_docstring_example(test):
    _run(test)


@pytest.mark.skipif(not HAS_TORCH, reason=NO_TORCH)
def test_the_torch_examples_are_collected():
    names = {t.name.rsplit(".", 1)[-1] for t in TORCH_EXAMPLES}
    assert {"apply_rotary", "apply_rotary_cos_sin", "RotaryEmbedding", "T5RelativeBias"} <= names


@pytest.mark.parametrize("test", TORCH_EXAMPLES, ids=lambda t: getattr(t, "name", "no torch"))
def test_torch_docstring_example(test):
    _run(test)
