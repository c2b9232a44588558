"""The README's examples run as written, and its Set up block is what CI runs.

Every ```python block of the README runs, each in a fresh namespace, from a
temporary directory. A block that uses torch or bfloat16 skips where torch or
ml_dtypes is not installed.
"""

import os
import re

import pytest
from optional import extra_import, missing_reason
from util import REPO_ROOT

README = os.path.join(REPO_ROOT, "README.md")
MAX_LINES = 300
# What GitHub shows of a code line without scrolling: its README column is
# about 830 px wide beside the file list in a 1280 px window, 13.6 px
# monospace, 16 px padding each side.
MAX_CODE_COLUMNS = 88
SET_UP = """\
# 1. Install fastpe and run the main job: the benchmark report
python -m venv .venv && . .venv/bin/activate && pip install . && fastpe bench

# 2. Install the test extra and run the whole test suite against the installed package
python -m venv .venv && . .venv/bin/activate && pip install ".[test]" && pytest
"""


def _readme():
    if not os.path.exists(README):
        pytest.skip("README.md is not beside the tests (an installed test tree)")
    with open(README, encoding="utf-8") as f:
        return f.read()


def _python_blocks():
    if not os.path.exists(README):
        return []
    return re.findall(r"^```python\n(.*?)^```", _readme(), flags=re.M | re.S)


@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_readme_example_runs(index, tmp_path, monkeypatch):
    code = _python_blocks()[index]
    if re.search(r"\btorch\b", code):
        pytest.importorskip("torch", reason=missing_reason("torch"))
    if "bfloat16" in code:
        extra_import("ml_dtypes", "test")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"README.md (python block {index + 1})", "exec"), {"__name__": "readme_example"})


def test_readme_has_three_examples():
    assert len(_python_blocks()) == 3, "the README shows three short examples; the rest lives in docs/"


def test_readme_is_short():
    n_lines = _readme().count("\n")
    assert n_lines <= MAX_LINES, f"README.md has {n_lines} lines; move detail into docs/ (limit {MAX_LINES})"


def test_readme_code_lines_fit_githubs_width():
    blocks = re.findall(r"^```\w*\n(.*?)^```", _readme(), flags=re.M | re.S)
    long = [line for block in blocks for line in block.splitlines() if len(line) > MAX_CODE_COLUMNS]
    assert blocks and not long, f"code lines over {MAX_CODE_COLUMNS} columns (GitHub would cut them): {long}"


def test_set_up_block_reads_as_documented():
    match = re.search(r"^## Set up\n\n```bash\n(.*?)^```", _readme(), flags=re.M | re.S)
    assert match, "README.md has no bash block right under '## Set up'"
    assert match.group(1) == SET_UP


def test_readme_links_resolve():
    root = os.path.dirname(README)
    targets = re.findall(r"\]\(((?!https?:)[^)#]+)", _readme())
    assert targets, "the README links to no docs page"
    missing = [t for t in targets if not os.path.exists(os.path.join(root, t))]
    assert not missing, f"README links to missing files: {missing}"
