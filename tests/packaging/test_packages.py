"""The wheel carries every package of the source tree.

Regression: fastpe._rope was a folder with an __init__.py that pyproject.toml's
explicit package list did not name, so `pip install .` gave a fastpe that
could not import, while the editable install (which reads the source tree)
worked.
"""

import ast
import os
import re

import pytest
from util import REPO_ROOT

import fastpe


def _source_packages():
    found = []
    source = os.path.join(REPO_ROOT, "fastpe")
    for folder, dirs, files in os.walk(source):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        if "__init__.py" in files:
            found.append(os.path.relpath(folder, REPO_ROOT).replace(os.sep, "."))
    return sorted(found)


def test_pyproject_lists_every_package_of_the_source_tree():
    path = os.path.join(REPO_ROOT, "pyproject.toml")
    if not os.path.exists(path):
        pytest.skip("pyproject.toml is not beside the tests (an installed test tree)")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    # [tool.setuptools] packages = [...] (tomllib would need Python 3.11)
    match = re.search(r"^\[tool\.setuptools\]\npackages = (\[[^]]*\])", text, flags=re.M)
    assert match, "pyproject.toml has no packages list under [tool.setuptools]"
    listed = ast.literal_eval(match.group(1))
    assert sorted(listed) == _source_packages()


def test_the_installed_fastpe_has_every_package_of_the_source_tree():
    installed = os.path.dirname(fastpe.__file__)
    for package in _source_packages():
        folder = os.path.join(installed, *package.split(".")[1:])
        assert os.path.exists(os.path.join(folder, "__init__.py")), f"{package} is not installed"
