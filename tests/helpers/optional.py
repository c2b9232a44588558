"""Optional libraries: the skips of the tests that compare fastpe with other
libraries, each naming the install that brings the library (the `test` extra
does not, so that `pip install ".[test]" && pytest` says what it left out and
how to add it), and what the tests that use torch share (they import torch,
or skip, before importing those)."""

import importlib.util
import os

import pytest

CONFORMANCE_INSTALL = 'pip install ".[conformance]"'


def extra_reason(library, extra):
    """The skip reason for a library that pyproject.toml's `extra` brings."""
    return f'{library} is not installed; the {extra} extra brings it: pip install ".[{extra}]"'


def extra_import(module, extra):
    """pytest.importorskip for a module of a library that `extra` brings, the reason naming it."""
    return pytest.importorskip(module, reason=extra_reason(module.split(".")[0], extra))


def missing_reason(library):
    """The skip reason for a library of the conformance extra (torch, transformers, positional-encodings)."""
    return extra_reason(library, "conformance")


def no_deps_reason(library):
    """The skip reason for timm and torchtune, installed without their dependencies
    (pyproject.toml's conformance extra says why)."""
    return f"{library} is not installed: {CONFORMANCE_INSTALL} && pip install --no-deps {library}"


TORCH_INSTALL = 'pip install ".[torch]"'


def torch_or_skip():
    """torch for the tests of fastpe.torch (tests/torch/), or a skip naming the torch extra."""
    return pytest.importorskip("torch", reason=f"torch is not installed; the torch extra brings it: {TORCH_INSTALL}")


def conformance_import(module):
    """pytest.importorskip for a module of a conformance library, with the reason above."""
    return pytest.importorskip(module, reason=missing_reason(module.split(".")[0]))


@pytest.fixture(autouse=True, scope="module")
def single_threaded_torch():
    """One torch thread: this torch build's multi-threaded float32 cos was seen
    ~3e-5 off on some elements."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def np32(t):
    return t.detach().cpu().numpy()


def torchtune_file(relative):
    """One source file of the installed torchtune, loaded on its own (torchtune's
    package __init__ needs a matching torchao; its position-embedding files need
    torch alone), or a skip naming how to install torchtune."""
    spec = importlib.util.find_spec("torchtune")
    if spec is None or spec.origin is None:
        pytest.skip(no_deps_reason("torchtune"))
    path = os.path.join(os.path.dirname(spec.origin), relative)
    name = "_fastpe_conformance_" + relative.replace("/", "_").replace(".py", "")
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module
