"""Skips of the tests that compare fastpe with other libraries, each naming
the install that brings the library: the `test` extra does not, so that
`pip install ".[test]" && pytest` says what it left out and how to add it."""

import pytest

CONFORMANCE_INSTALL = 'pip install ".[conformance]"'


def missing_reason(library):
    """The skip reason for a library of the conformance extra (torch, transformers, positional-encodings)."""
    return f"{library} is not installed; the conformance extra brings it: {CONFORMANCE_INSTALL}"


def no_deps_reason(library):
    """The skip reason for timm and torchtune, installed without their dependencies
    (pyproject.toml's conformance extra says why)."""
    return f"{library} is not installed: {CONFORMANCE_INSTALL} && pip install --no-deps {library}"


def conformance_import(module):
    """pytest.importorskip for a module of a conformance library, with the reason above."""
    return pytest.importorskip(module, reason=missing_reason(module.split(".")[0]))
