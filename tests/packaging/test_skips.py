"""Every skip for a missing library names the install that brings it.

`pytest.importorskip(module)` without a reason reports "could not import
'torch'", which names no extra: every call in the suite passes a reason
(tests/helpers/optional.py builds them: extra_import, conformance_import).
"""

import ast
import os

import pytest
from util import REPO_ROOT

TESTS = os.path.join(REPO_ROOT, "tests")


def _importorskip_calls_without_reason():
    found = []
    for folder, _, files in os.walk(TESTS):
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read(), filename=path)
            for node in ast.walk(tree):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr == "importorskip"
                        and not any(keyword.arg == "reason" for keyword in node.keywords)):
                    found.append(f"{os.path.relpath(path, REPO_ROOT)}:{node.lineno}")
    return found


def test_every_importorskip_names_the_install():
    if not os.path.isdir(os.path.join(TESTS, "helpers")):
        pytest.skip("the test sources are not beside the tests (an installed test tree)")
    assert _importorskip_calls_without_reason() == []
