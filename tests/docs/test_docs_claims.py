"""Sentences of the docs that a test can check, checked.

* docs/api.rst: `fastpe.reference.alibi_slopes` and
  `fastpe.reference.relative_position_bucket` are the reference's own
  functions, which share with fastpe only the checks and the formulas, so
  they return the same values and raise the same errors.
* docs/install.rst: a build leaves in the source tree only the folders it
  names, each ignored by git, and CI's check after each README command
  allows exactly those.
"""

import fnmatch
import os
import re

import numpy as np
import pytest
from util import REPO_ROOT

import fastpe
import fastpe.reference as R

INSTALL_PAGE = os.path.join(REPO_ROOT, "docs", "install.rst")
API_PAGE = os.path.join(REPO_ROOT, "docs", "api.rst")
CI_SCRIPT = os.path.join(REPO_ROOT, ".ci", "run")
GITIGNORE = os.path.join(REPO_ROOT, ".gitignore")


def _read(path):
    if not os.path.exists(path):
        pytest.skip(f"{os.path.relpath(path, REPO_ROOT)} is not beside the tests (an installed test tree)")
    with open(path, encoding="utf-8") as f:
        return f.read()


# --------------------------------------------------------------------------
# docs/api.rst: the reference's slopes and buckets


def test_api_page_says_the_reference_slopes_and_buckets_are_its_own():
    text = " ".join(_read(API_PAGE).split())
    assert "are the reference's own functions, not `fastpe.alibi_slopes`" in text
    assert "themselves" not in text


@pytest.mark.parametrize("name", ["alibi_slopes", "relative_position_bucket"])
def test_the_reference_slopes_and_buckets_are_the_references_own_functions(name):
    ours, reference = getattr(fastpe, name), getattr(R, name)
    assert ours is not reference
    assert reference.__module__ == "fastpe._reference_bias"


def test_the_reference_slopes_equal_fastpes():
    for n_heads in (1, 2, 3, 5, 8, 12, 16, 33, 64):
        for max_bias in (8.0, 4.0, 0.5):
            assert np.array_equal(R.alibi_slopes(n_heads, max_bias), fastpe.alibi_slopes(n_heads, max_bias))


def test_the_reference_buckets_equal_fastpes():
    distances = np.concatenate([np.arange(-300, 301), [-(2**40), 2**40]])
    for bidirectional in (True, False):
        for num_buckets, max_distance in ((32, 128), (8, 16), (4, 5), (6, 200)):
            settings = dict(bidirectional=bidirectional, num_buckets=num_buckets, max_distance=max_distance)
            assert np.array_equal(R.relative_position_bucket(distances, **settings),
                                  fastpe.relative_position_bucket(distances, **settings)), settings


@pytest.mark.parametrize("call", [
    lambda f: f.alibi_slopes(0),
    lambda f: f.alibi_slopes(2.5),
    lambda f: f.alibi_slopes(4, float("nan")),
    lambda f: f.relative_position_bucket([1.5]),
    lambda f: f.relative_position_bucket([1], num_buckets=0),
    lambda f: f.relative_position_bucket([1], max_distance=-1),
], ids=["zero heads", "fractional heads", "nan bias", "fractional distance", "no buckets", "negative distance"])
def test_the_reference_slopes_and_buckets_raise_fastpes_errors(call):
    with pytest.raises(Exception) as ours:
        call(fastpe)
    with pytest.raises(Exception) as reference:
        call(R)
    assert (type(reference.value), str(reference.value)) == (type(ours.value), str(ours.value))
    assert isinstance(ours.value, (TypeError, ValueError))


# --------------------------------------------------------------------------
# docs/install.rst: what a build leaves in the source tree


def _folders_a_build_leaves():
    """The folders install.rst's sentence on the build names (``build/`` ...)."""
    text = " ".join(_read(INSTALL_PAGE).split())
    sentence = re.search(r"In the source tree it leaves (.*?) and nothing else", text)
    assert sentence, "docs/install.rst no longer says what a build leaves in the source tree"
    return re.findall(r"``([^`]+/)``", sentence.group(1))


def test_install_page_names_the_build_folders():
    assert _folders_a_build_leaves() == ["build/", "fastpe.egg-info/"]


def test_the_folders_a_build_leaves_are_ignored_by_git():
    patterns = [line.strip() for line in _read(GITIGNORE).splitlines() if line.strip() and not line.startswith("#")]
    for folder in _folders_a_build_leaves():
        assert any(fnmatch.fnmatch(folder, pattern) for pattern in patterns), (folder, patterns)


def test_ci_allows_the_readme_commands_exactly_those_build_folders():
    allowed = re.search(r"^readme_leftovers='([^']+)'", _read(CI_SCRIPT), flags=re.M)
    assert allowed, ".ci/run no longer checks what the README commands leave"
    pattern = allowed.group(1)
    for folder in _folders_a_build_leaves():
        assert re.fullmatch(pattern, folder), folder
    for other in ("fastpe/_kernels.c", "fastpe/_build_info.py", "docs/_build/", "README.md", "dist/"):
        assert not re.fullmatch(pattern, other), other
    for cache in (".venv/", ".pytest_cache/", ".hypothesis/", "tests/docs/__pycache__/"):
        assert re.fullmatch(pattern, cache), cache
